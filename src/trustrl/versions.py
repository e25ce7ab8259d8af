"""The library versions a run's numbers rest on: recorded in its checkpoints, compared when it is read again.

The same config and seed give other numbers under another simulator or torch (a MuJoCo patch release
turned one Walker2d seed from 783 into 5448), so every checkpoint record carries the versions it was
written with, and evaluating or resuming a run under other versions says so in one note.
"""

from __future__ import annotations

import functools
import logging
import platform
import re
from importlib import metadata
from pathlib import Path

#: Distributions whose version can move a run's numbers; trustrl's and Python's are recorded beside them.
DISTRIBUTIONS = ("torch", "gymnasium", "numpy", "mujoco", "minari")
_VERSION = re.compile(r"^[A-Za-z0-9.+!_-]{1,64}$")  # anything else in a record is not shown, nor compared
_log = logging.getLogger("trustrl")


@functools.cache
def _running() -> tuple[tuple[str, str], ...]:
    import trustrl

    found = [("trustrl", trustrl.__version__)]
    for name in DISTRIBUTIONS:
        try:
            found.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            pass
    return (*found, ("python", platform.python_version()))


def running() -> dict[str, str]:
    """The versions this process runs: trustrl, the :data:`DISTRIBUTIONS` installed, Python."""
    return dict(_running())


def recorded(value: object) -> dict[str, str]:
    """The versions a checkpoint record gives (data from anywhere: what is not a plain version is left out);
    an older record names fewer libraries, one without any gives none."""
    if not isinstance(value, dict):
        return {}
    return {k: v for k, v in value.items() if isinstance(k, str) and isinstance(v, str) and _VERSION.match(k)
            and _VERSION.match(v)}


def differences(record: dict[str, str], now: dict[str, str] | None = None) -> list[tuple[str, str, str]]:
    """(name, recorded, running) for each library the record names at another version than ``now`` runs
    (one no longer installed runs as ``"none"``); a library the record does not name is not compared."""
    now = running() if now is None else now
    known = {"trustrl", "python", *DISTRIBUTIONS}
    return [(name, old, now.get(name, "none")) for name, old in record.items()
            if name in known and now.get(name, "none") != old]


def note_differences(record: dict[str, str], record_path: Path) -> None:
    """One note naming each library the checkpoint ``record_path`` was written with at another version than
    this process runs; nothing when they match, or when the record names none."""
    changed = differences(record)
    run = record_path.parent.parent if record_path.parent.name == "checkpoints" else record_path
    if changed:
        listed = ", ".join(f"{name} {old} (running {new})" for name, old, new in changed)
        _log.warning(f"note: the run {run} was trained with {listed}; its numbers may differ here")

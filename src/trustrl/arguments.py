"""Checks of the arguments the Python API is given, at its edge: one TrustrlError naming the argument.

The command line only ever passes values of the right type; code calling :mod:`trustrl.api` may pass
anything, and a wrong type found deep inside a run would be a traceback about something else (or, for
``progress="yes"``, no error at all) -- so each public function checks its arguments before it acts.
"""

from __future__ import annotations

import math
import numbers
import os
from pathlib import Path
from typing import Any

import numpy as np

from trustrl.errors import ConfigError, TrustrlError


def path(name: str, value: Any) -> Path:
    """A file or directory named by a non-empty ``str`` or ``os.PathLike``."""
    if isinstance(value, (str, os.PathLike)) and str(value).strip():
        return Path(value)
    raise TrustrlError(f"{name} must be a path (a str or pathlib.Path), got {_short(value)}")


def strings(name: str, value: Any, example: str) -> list[str]:
    """A list (or tuple) of strings; a single string, whose characters would be taken one by one, is refused."""
    if isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value):
        return list(value)
    if isinstance(value, str):
        raise TrustrlError(f"{name} must be a list of strings, e.g. [{example!r}], not one string ({_short(value)})")
    raise TrustrlError(f"{name} must be a list of strings, e.g. [{example!r}], got {_short(value)}")


def flag(name: str, value: Any) -> bool:
    """True or False (numpy's booleans too): ``"no"`` is truthy, so a string is refused rather than guessed."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise TrustrlError(f"{name} must be True or False, got {_short(value)}")


def progress(value: Any) -> bool | float:
    """``progress``: True, False, or the seconds between progress lines (a finite number > 0)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, numbers.Real) and math.isfinite(value) and value > 0:
        return float(value)
    raise TrustrlError(f"progress must be True, False or a number of seconds > 0, got {_short(value)}")


def mapping(name: str, value: Any) -> dict | None:
    """None or a dict (``env_kwargs``)."""
    if value is None or isinstance(value, dict):
        return value
    raise TrustrlError(f"{name} must be a dict of keyword arguments, got {_short(value)}")


def integer(key: str, value: Any) -> int | None:
    """A count or seed given from Python: an integer (its range is the config's to check)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigError(f"{key} must be an integer, got {_short(value)}")
    return int(value)


def dataset(value: Any) -> str:
    """``offline``: a Minari dataset id or path; an empty one would mean no dataset, i.e. training online."""
    if isinstance(value, (str, os.PathLike)) and str(value).strip():
        return str(value)
    raise TrustrlError(f"offline (--offline) must name a Minari dataset, an id or a path; got {_short(value)}")


def command(value: Any) -> list[str] | None:
    """What ``command.txt`` records: None (this process's command line) or a list of strings."""
    return None if value is None else strings("command", value, "trustrl")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."

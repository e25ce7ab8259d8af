"""The run directory: one writer at a time, never two runs mixed, an old run replaced only once the new one holds.

- **Lock.** A process writing a run holds an OS lock (``flock``) on ``<run>/.trustrl.lock``, which also
  records its PID. The OS releases it when the process exits, however it exits (``kill -9`` included), so
  a lock is never stale; a second writer is refused with the holder's PID.
- **Overwrite.** ``--overwrite`` moves the old run's files aside into ``<run>/.trustrl-replaced`` and puts
  them back if the new run fails before its first ``last`` checkpoint (the first it can be resumed from);
  once that checkpoint is written they are deleted. A process killed at any step of this leaves a state
  the next writer finishes one way or the other (:func:`recover`).
- **Leftovers.** Temporary files of an interrupted write, and weights files no checkpoint record names,
  are removed by the next writer.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
from pathlib import Path

from trustrl.config import Config
from trustrl.errors import TrustrlError
from trustrl.files import check_name_length, writing

#: Files and folders a run writes; their presence means "this directory holds a run".
RUN_ARTIFACTS = ("config.toml", "command.txt", "metrics.csv", "timing.csv", "tensorboard", "checkpoints", "videos",
                 "wandb")
LOCK_FILE = ".trustrl.lock"
ASIDE = ".trustrl-replaced"  # the old run's files during an --overwrite
DISCARD = ".trustrl-discarded"  # the new run's files while a failed --overwrite puts the old run back
DROPPED = ".trustrl-replaced-dropped"  # the old run's files being deleted once the new run stands
SET_ASIDE, RESTORING = ".set-aside", ".restoring"  # markers in ASIDE: every old file is in it; it is going back
_WEIGHTS = re.compile(r"^(best|last)-\d+\.safetensors$")


class RunLock:
    """The one-writer lock of a run directory (created if missing); :meth:`release` or process exit frees it."""

    def __init__(self, run_dir: Path, what: str = "run directory"):
        self.run_dir = check_name_length(run_dir, what)
        if run_dir.exists() and not run_dir.is_dir():
            raise TrustrlError(f"{what} {run_dir} exists and is not a directory")
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            self.fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise TrustrlError(f"cannot write the {what} {run_dir}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(self.fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(self.fd)
            raise TrustrlError(f"{what} {run_dir} is being written by another trustrl process (pid {holder}); "
                               "wait for it to end, or choose another directory") from None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # closing the descriptor releases the flock
            self.fd = -1


class Replacement:
    """An old run's files set aside while a new run starts in their place (see the module docstring).

    Every step is a rename or a marker file, so a process killed at any point leaves a state that
    :func:`recover` can finish one way or the other without losing the old run: ``.set-aside`` in the
    aside folder says all the old files are in it, ``.restoring`` that the new run's files are gone.
    """

    def __init__(self, run_dir: Path, names: list[str]):
        self.run_dir = run_dir
        self.aside = run_dir / ASIDE
        self.done = not names
        if names:
            self.aside.mkdir()
            for name in names:
                os.replace(run_dir / name, self.aside / name)  # a rename: nothing is copied or deleted yet
            (self.aside / SET_ASIDE).touch()

    def commit(self) -> None:
        """The new run has a ``last`` checkpoint: the old run's files go (one rename, then a deletion that a
        stop midway cannot turn into a mix of two runs)."""
        if not self.done:
            self.done = True
            _drop_aside(self.run_dir)

    def rollback(self) -> None:
        """The new run failed before its first ``last`` checkpoint: its files go, the old run's come back."""
        if not self.done:
            _rollback(self.run_dir)
            self.done = True


def prepare_run_dir(run_dir: Path, overwrite: bool) -> Replacement:
    """Refuse to mix two runs in one directory; with ``overwrite``, set the old run's files aside (nothing else of
    the directory is touched). Call with the directory's :class:`RunLock` held."""
    present = [name for name in RUN_ARTIFACTS if (run_dir / name).exists()]
    if present and not overwrite:
        raise TrustrlError(
            f"run directory {run_dir} already holds a run ({', '.join(present)}); "
            "pass --overwrite to replace it, --resume to continue it, or choose another --run-dir"
        )
    try:
        check_writable(run_dir)  # fail here, before anything is moved
        return Replacement(run_dir, present)
    except OSError as exc:
        raise TrustrlError(f"cannot write the run directory {run_dir}: {exc.strerror or exc}") from None


def recover(run_dir: Path) -> list[str]:
    """Settle what a killed writer left (call with the lock held); returns what was done, for the log."""
    done = []
    aside = run_dir / ASIDE
    if aside.is_dir():
        if not (aside / SET_ASIDE).exists() or (aside / RESTORING).exists():
            _move_back(run_dir)  # cut off while setting the old run aside, or while putting it back: finish that
            done.append("restored the run an interrupted --overwrite had set aside")
        elif (run_dir / "checkpoints" / "last.json").is_file():
            _drop_aside(run_dir)  # the new run had its first checkpoint: it stands
            done.append("removed the files of the run an interrupted --overwrite replaced")
        else:
            _rollback(run_dir)
            done.append("restored the run an interrupted --overwrite had set aside")
    shutil.rmtree(run_dir / DISCARD, ignore_errors=True)
    shutil.rmtree(run_dir / DROPPED, ignore_errors=True)
    if not (run_dir / "config.toml").is_file():  # not a trustrl run (or not yet): nothing of it is ours to delete
        return done
    leftovers = [p for p in [*run_dir.glob(".config.toml.tmp"), *run_dir.glob(".metrics.csv.tmp"),
                             *run_dir.glob(".timing.csv.tmp"), *(run_dir / "checkpoints").glob(".best*.tmp"),
                             *(run_dir / "checkpoints").glob(".last*.tmp"),
                             *(run_dir / "checkpoints").glob(".step-*.tmp")] if p.is_file()]
    named = _named_weights(run_dir / "checkpoints")
    if named:  # weights files no record names, beside records that all name theirs
        leftovers += [p for p in (run_dir / "checkpoints").glob("*.safetensors")
                      if _WEIGHTS.match(p.name) and p.name not in named]
    for path in leftovers:
        path.unlink(missing_ok=True)
    if leftovers:
        done.append(f"removed {len(leftovers)} file(s) an interrupted write left: "
                    + ", ".join(sorted(p.name for p in leftovers)))
    return done


def _named_weights(checkpoints: Path) -> set[str] | None:
    """The weights files the checkpoint records name; None -- touch nothing -- unless every record there is
    readable and names a weights file that exists (a record edited by hand must not cost its weights)."""
    named = set()
    for tag in ("last", "best"):
        path = checkpoints / f"{tag}.json"
        if not path.is_file():
            continue
        try:
            weights = json.loads(path.read_text())["weights"]
        except (OSError, ValueError, KeyError, TypeError, RecursionError):
            return None
        if not isinstance(weights, str) or not _WEIGHTS.match(weights) or not (checkpoints / weights).is_file():
            return None
        named.add(weights)
    return named


def _drop_aside(run_dir: Path) -> None:
    """Delete the old run's files: renamed away first, so what is left at any instant is all or nothing."""
    if (run_dir / ASIDE).exists():
        os.replace(run_dir / ASIDE, run_dir / DROPPED)
    shutil.rmtree(run_dir / DROPPED, ignore_errors=True)


def _rollback(run_dir: Path) -> None:
    """The new run's files out of the way (all of them: every old one is set aside), then the old ones back."""
    aside, discard = run_dir / ASIDE, run_dir / DISCARD
    discard.mkdir(exist_ok=True)
    for name in RUN_ARTIFACTS:
        if (run_dir / name).exists():
            if (discard / name).exists():  # from an earlier attempt that was cut off
                shutil.rmtree(discard / name) if (discard / name).is_dir() else (discard / name).unlink()
            os.replace(run_dir / name, discard / name)
    if aside.is_dir():
        (aside / RESTORING).touch()
    _move_back(run_dir)


def _move_back(run_dir: Path) -> None:
    aside = run_dir / ASIDE
    for name in RUN_ARTIFACTS:
        if (aside / name).exists() and not (run_dir / name).exists():
            os.replace(aside / name, run_dir / name)
    shutil.rmtree(run_dir / DISCARD, ignore_errors=True)
    shutil.rmtree(aside, ignore_errors=True)


def check_writable(run_dir: Path) -> None:
    probe = run_dir / ".trustrl-write-test"
    probe.write_text("")
    probe.unlink()


def write_run_files(run_dir: Path, cfg: Config, command: list[str], resumed: bool = False) -> None:
    """``config.toml`` (the resolved config) and ``command.txt``; a resumed run appends its command line."""
    tmp = run_dir / ".config.toml.tmp"
    with writing("the run's config", run_dir / "config.toml"):
        try:
            tmp.write_text(cfg.to_toml())
            os.replace(tmp, run_dir / "config.toml")  # whole or not at all
        finally:
            tmp.unlink(missing_ok=True)
    with writing("the run's command line", run_dir / "command.txt"), \
            open(run_dir / "command.txt", "a" if resumed else "w") as f:
        f.write(" ".join(command) + "\n")

"""The run directory: one writer at a time, never two runs mixed, an old run replaced only once the new one holds.

- **Lock.** A process writing a run holds an OS lock (``flock``) on ``<run>/.trustrl.lock``, which also
  records its PID. The OS releases it when the process exits, however it exits (``kill -9`` included), so
  a lock is never stale; a second writer is refused with the holder's PID.
- **Overwrite.** ``--overwrite`` moves the old run's files aside into ``<run>/.trustrl-replaced`` and puts
  them back if the new run fails before its first ``last`` checkpoint (the first it can be resumed from);
  once that checkpoint is written they are deleted. A process killed at any step of this leaves a state
  the next writer finishes one way or the other (:func:`recover`).
- **A start that fails.** A new run in a directory that held none, failing before it wrote any checkpoint,
  takes its files with it (and the directory, if it made it and nothing else is there), so that the same
  command can simply be run again; files that were there before it are never touched.
- **Leftovers.** Temporary files of an interrupted write, and weights files no checkpoint record names,
  are removed by the next writer -- only once every record there names the weights of its own tag and step,
  with the hash they carry (a record edited by hand must not cost the weights it no longer names).
- **Links.** Nothing is written through a symbolic link (:mod:`trustrl.links`): the lock and the files a
  writer creates are opened with ``O_NOFOLLOW``, and a link where a run's files or folders belong is refused.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
from pathlib import Path

from trustrl import checkpoint
from trustrl.checkpoint_files import MAX_COUNT
from trustrl.config import Config
from trustrl.errors import TrustrlError
from trustrl.files import check_name_length, writing
from trustrl.links import open_nofollow, refuse_link, write_new

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
        self.created = not run_dir.exists()  # so a start that fails can take the directory away again
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            self.fd = open_nofollow(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT)
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

    def release(self, remove_created: bool = False) -> None:
        """Free the lock; ``remove_created``: also remove the directory if this lock made it and nothing but the
        lock file is in it (a start that failed and took its files away)."""
        if self.fd < 0:
            return
        remove = remove_created and self.created and _holds_only(self.run_dir, LOCK_FILE)
        if remove:
            (self.run_dir / LOCK_FILE).unlink(missing_ok=True)  # while held: no other writer is inside
        os.close(self.fd)  # closing the descriptor releases the flock
        self.fd = -1
        if remove:
            try:
                self.run_dir.rmdir()  # only if still empty: a writer that came in since keeps it
            except OSError:
                pass


def _holds_only(folder: Path, name: str) -> bool:
    try:
        return [p.name for p in folder.iterdir()] == [name]
    except OSError:
        return False


class Replacement:
    """An old run's files set aside while a new run starts in their place (see the module docstring).

    Every step is a rename or a marker file, so a process killed at any point leaves a state that
    :func:`recover` can finish one way or the other without losing the old run: ``.set-aside`` in the
    aside folder says all the old files are in it, ``.restoring`` that the new run's files are gone.
    With no old run (``names`` empty) nothing is set aside, and a start that fails before any checkpoint
    takes its own files away.
    """

    def __init__(self, run_dir: Path, names: list[str]):
        self.run_dir = run_dir
        self.aside = run_dir / ASIDE
        self.fresh = not names
        self.done = False
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
            if not self.fresh:
                _drop_aside(self.run_dir)

    def rollback(self) -> bool:
        """The new run failed before its first ``last`` checkpoint: its files go, the old run's come back. A
        fresh run's files stay if it wrote a checkpoint (a ``best`` is worth keeping). Returns whether the
        directory holds no run files of the new run any more."""
        if self.done:
            return False
        self.done = True
        if not self.fresh:
            _rollback(self.run_dir)
            return True
        if any((self.run_dir / "checkpoints").glob("*.json")):
            return False
        try:
            _rollback(self.run_dir)  # nothing to bring back: the new run's files go, all of them
        except OSError:  # they stay (the retry then needs --overwrite); the error that ended the run is the one told
            return False
        return True


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
    refuse_links(run_dir, (ASIDE, DISCARD, DROPPED, *RUN_ARTIFACTS))  # before anything is moved or deleted
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
    readable and names the weights file of its own tag and step, which exists and has the recorded hash (a
    record edited by hand must not cost the weights it no longer names)."""
    named = set()
    for tag in ("last", "best"):
        path = checkpoints / f"{tag}.json"
        if not path.is_file():
            continue
        try:
            record = json.loads(path.read_text())
            weights, step, digest = record["weights"], record["step"], record["weights_sha256"]
        except (OSError, ValueError, KeyError, TypeError, RecursionError):
            return None
        if (not isinstance(step, int) or isinstance(step, bool) or not 0 <= step <= MAX_COUNT
                or weights != checkpoint.weights_name(tag, step) or not _WEIGHTS.match(weights)
                or not checkpoint.has_digest(checkpoints / weights, digest)):
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


def refuse_links(run_dir: Path, names: tuple[str, ...]) -> None:
    """One clear error if any of a run's files or folders ``names`` is a symbolic link: a writer would follow it
    out of the run (``checkpoints/`` to another run's, ``command.txt`` to a file of yours)."""
    for name in names:
        refuse_link(run_dir / name)


def check_writable(run_dir: Path) -> None:
    probe = run_dir / ".trustrl-write-test"
    write_new(probe, b"")  # a link planted there is removed, never written through
    probe.unlink()


def write_run_files(run_dir: Path, cfg: Config, command: list[str], resumed: bool = False) -> None:
    """``config.toml`` (the resolved config) and ``command.txt``; a resumed run appends its command line."""
    tmp = run_dir / ".config.toml.tmp"
    with writing("the run's config", run_dir / "config.toml"):
        try:
            write_new(tmp, cfg.to_toml().encode())
            os.replace(tmp, run_dir / "config.toml")  # whole or not at all
        finally:
            tmp.unlink(missing_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if resumed else os.O_TRUNC)
    with writing("the run's command line", run_dir / "command.txt"), \
            os.fdopen(open_nofollow(run_dir / "command.txt", flags), "w") as f:
        f.write(" ".join(command) + "\n")

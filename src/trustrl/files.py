"""File-system faults as one clear line: a name too long for the file system, a full disk, a read-only folder.

trustrl writes runs, datasets, plots and studies where the user points it. What the file system refuses
there (``ENOSPC``, ``EFBIG`` under ``ulimit -f``, ``EROFS``, ``EACCES``, a name over ``NAME_MAX``) is not a
bug in trustrl but a fact about that place: it becomes a :class:`~trustrl.errors.TrustrlError` naming the
file and the cause. Python ignores ``SIGXFSZ``, so ``ulimit -f`` reaches us as ``EFBIG`` like a full disk.
"""

from __future__ import annotations

import errno
import os
import resource
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from trustrl.errors import TrustrlError

_CAUSES = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is used up",
    errno.EFBIG: "the file is larger than this process may write (ulimit -f)",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "the operation is not permitted (an immutable file or folder?)",
    errno.ENAMETOOLONG: "the name is longer than the file system allows",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "it is a folder, not a file",
    errno.EEXIST: "something else is already there",
    errno.EIO: "the device reported an input/output error",
}


#: What the place written to refuses (space, size, permission, name), as opposed to a path trustrl got wrong.
REFUSALS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM,
                      errno.ENAMETOOLONG, errno.EIO})


def cause(exc: OSError) -> str:
    """What an OSError says about the file system, in words."""
    return _CAUSES.get(exc.errno, exc.strerror or str(exc)) if exc.errno is not None else str(exc)


def write_error(what: str, path: str | os.PathLike, exc: OSError) -> TrustrlError:
    """One line: what could not be written, where, and why."""
    return TrustrlError(f"cannot write {what} {path}: {cause(exc)}")


@contextmanager
def writing(what: str, path: str | os.PathLike) -> Iterator[None]:
    """Turn an OSError raised inside the block (while writing ``path``) into one line naming it."""
    try:
        yield
    except OSError as exc:
        raise write_error(what, path, exc) from None


def check_room(directory: str | os.PathLike, needed: int, what: str) -> None:
    """Refuse up front a file of about ``needed`` bytes that ``ulimit -f`` or the free space of ``directory``
    will not let through: some writers (HDF5) crash rather than fail cleanly when the OS refuses a write."""
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if limit != resource.RLIM_INFINITY and needed > limit:
        raise TrustrlError(f"cannot write {what}: it needs about {needed:,} bytes, more than this process may "
                           f"write to one file ({limit:,} bytes, ulimit -f)")
    try:
        free = shutil.disk_usage(directory).free
    except OSError:
        return
    if needed > free:
        raise TrustrlError(f"cannot write {what}: it needs about {needed:,} bytes and {directory} has "
                           f"{free:,} free (the disk is full)")


def check_name_length(path: str | os.PathLike, what: str) -> Path:
    """``path``, if every part of it fits the file system's limits; else one line (before anything is written:
    a name too long fails on the first ``stat``, wherever that is)."""
    path = Path(path)
    parent = next((p for p in path.absolute().parents if p.is_dir()), Path("/"))
    try:
        name_max = os.pathconf(parent, "PC_NAME_MAX")
    except (OSError, ValueError):
        name_max = 255
    for part in path.parts:
        if len(os.fsencode(part)) > name_max:
            raise TrustrlError(f"{what} {str(path)[:80]}...: the name {part[:40]}... is {len(os.fsencode(part))} "
                               f"bytes, longer than the file system allows ({name_max})")
    if len(os.fsencode(str(path.absolute()))) >= 4096:
        raise TrustrlError(f"{what} {str(path)[:80]}...: the path is longer than the file system allows (4096)")
    return path


def temp_beside(directory: Path, name: str) -> Path:
    """A fresh temporary file in ``directory`` for writing ``name`` and renaming it into place, with the mode
    any file this process creates gets (mkstemp's is 0600, which would hide checkpoints from a teammate who can
    read the rest of the run)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)
    return Path(tmp)


def _default_file_mode() -> int:
    """0666 less the process's umask, read once (setting the umask to read it is not thread-safe later)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


#: The mode a file this process creates gets: 0666 less the umask.
FILE_MODE = _default_file_mode()

"""Symbolic links in a run directory: never written through, and read only where they stay inside the run.

A run directory may come from anyone (a download, a shared disk). A link planted in it -- ``.trustrl.lock``
to a file of yours, ``checkpoints/`` to another run's -- must not make trustrl write, truncate, move or
delete anything elsewhere, nor print or use a file outside the run. Writers open with ``O_NOFOLLOW`` (and
``O_EXCL`` for files they create), so even a link planted after a check is not followed; readers refuse a
path that resolves outside the folder it is read from.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from trustrl.errors import TrustrlError


def refuse_link(path: Path, error: type[TrustrlError] = TrustrlError) -> None:
    """One clear error if ``path`` is a symbolic link (of any kind: to a file, a folder, nothing)."""
    if path.is_symlink():
        raise error(f"{path} is a symbolic link (to {os.readlink(path)}); trustrl never writes through one: "
                    "remove it, or choose another directory")


def open_nofollow(path: Path, flags: int, mode: int = 0o666, error: type[TrustrlError] = TrustrlError) -> int:
    """``os.open`` that refuses a symbolic link at ``path`` (``O_NOFOLLOW``) with one clear error."""
    try:
        return os.open(path, flags | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP or path.is_symlink():
            refuse_link(path, error)
        raise


def nofollow_opener(path: str, flags: int) -> int:
    """An ``opener`` for :func:`open`: never through a symbolic link."""
    return open_nofollow(Path(path), flags)


def write_new(path: Path, data: bytes) -> None:
    """Write ``data`` to a file created afresh at ``path`` (whatever was there, a link included, is removed first,
    never followed): for temporary files that a rename then puts in place."""
    path.unlink(missing_ok=True)
    fd = open_nofollow(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def inside(path: Path, root: Path, error: type[TrustrlError] = TrustrlError) -> Path:
    """``path`` if it (following any links) stays inside the folder ``root``; else one clear error."""
    target = path.resolve()
    if not target.is_relative_to(root.resolve()):
        raise error(f"{path} leads to {target} (a symbolic link), outside {root}; trustrl reads a run's files only "
                    "from inside it")
    return path

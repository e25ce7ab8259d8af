"""Where env modules may be imported from: never from a run directory this process has loaded.

A run directory is data that came from somewhere -- a download, a colleague -- and a ``shipped_envs.py``
inside it must not run because the run's record lists ``env.imports = ["shipped_envs"]``. Loading a run
(:func:`trustrl.checkpoint.load`, ``--resume``) marks its folder; from then on the ``sys.path`` entries equal
to or inside a marked folder are skipped when this process imports an env module, and are not handed to
worker processes. Standard library only: worker processes import it before anything else.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from types import ModuleType

_RUN_DIRECTORIES: set[str] = set()


def never_import_from(folder: str | Path) -> None:
    """Skip ``folder`` and everything below it when importing env modules, for the rest of this process."""
    _RUN_DIRECTORIES.add(os.path.realpath(folder))


def is_run_directory_path(entry: str) -> bool:
    """Whether the ``sys.path`` entry ``entry`` ('' is the working directory) is, or is inside, a loaded run."""
    real = os.path.realpath(entry or os.curdir)
    return any(real == run or real.startswith(run.rstrip(os.sep) + os.sep) for run in _RUN_DIRECTORIES)


def found_in_run_directory(name: str) -> str | None:
    """The run folder on ``sys.path`` that holds module ``name`` (a file or a package), if one does: for messages."""
    top = name.split(".")[0]
    for entry in sys.path:
        folder = entry or os.curdir
        if is_run_directory_path(entry) and (os.path.isfile(os.path.join(folder, top + ".py"))
                                             or os.path.isdir(os.path.join(folder, top))):
            return os.path.abspath(folder)
    return None


def import_env_module(name: str) -> ModuleType:
    """``importlib.import_module(name)`` with the entries of loaded runs taken off ``sys.path`` meanwhile.

    Entries the module itself adds stay; the ones taken off go back where they were.
    """
    if not _RUN_DIRECTORIES:
        return importlib.import_module(name)
    hidden = [(i, entry) for i, entry in enumerate(sys.path) if is_run_directory_path(entry)]
    for i, _ in reversed(hidden):
        del sys.path[i]
    try:
        return importlib.import_module(name)
    finally:
        for i, entry in hidden:
            sys.path.insert(i, entry)

"""A dataset written beside the one it replaces, then swapped in: a kill at any moment loses neither.

``collect`` writes a new dataset whole into a staging root (``<root>/.trustrl-writing-<pid>``, with
the same id, so its metadata is the final one); only then is the old dataset renamed aside
(``.<name>.set-aside-<pid>``) and the new one renamed into its place -- that rename is the commit -- and
the old one deleted. Whoever next writes or reads the id (:func:`settle`) finishes what a killed
``collect`` left: a set-aside with no dataset in its place goes back, one beside a committed dataset goes,
and staging roots of dead processes are removed. ``.<name>.replaced-<pid>`` is what older trustrl set
aside before writing in place; finding one means that write never finished, so it goes back too.
"""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from trustrl.files import write_error

NAMESPACE_FILE = "namespace_metadata.json"


def settle(target: Path) -> list[str]:
    """Finish what a killed ``collect`` left at ``target`` (a dataset's directory); returns what was done."""
    try:
        return _settle(target)
    except OSError as exc:  # a read-only Minari root: the set-aside dataset stays where it is, named
        raise write_error("the dataset an interrupted collect --overwrite set aside, back to", target, exc) from None


def _settle(target: Path) -> list[str]:
    done = []
    parent = target.parent
    if not parent.is_dir():
        return done
    for aside in sorted(parent.glob(f".{target.name}.set-aside-*")) + sorted(parent.glob(f".{target.name}.replaced-*")):
        if _alive(aside.name.rsplit("-", 1)[-1]):
            continue  # its collect is still running
        committed = aside.name.startswith(f".{target.name}.set-aside-") and target.exists()
        if committed:
            shutil.rmtree(aside, ignore_errors=True)
            done.append(f"removed the dataset an interrupted collect --overwrite replaced ({aside.name})")
            continue
        if target.exists():  # an older trustrl's write in place, cut off: the old dataset is the good one
            shutil.rmtree(target)
        os.replace(aside, target)
        done.append(f"restored the dataset {target.name} an interrupted collect --overwrite had set aside")
    root = _minari_root()
    for staging in root.glob(".trustrl-writing-*") if root.is_dir() else ():
        if not _alive(staging.name.rsplit("-", 1)[-1]):
            shutil.rmtree(staging, ignore_errors=True)
    return done


@contextmanager
def staged(dataset_id: str) -> Iterator[Path]:
    """Minari writes ``dataset_id`` into a staging root for the duration (its directory is yielded); the
    staging root is removed afterwards, whatever happens."""
    root = _minari_root()
    staging = root / f".trustrl-writing-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    saved = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(staging)
    try:
        yield staging / dataset_id
    finally:
        if saved is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = saved
        shutil.rmtree(staging, ignore_errors=True)


def swap_in(written: Path, target: Path) -> None:
    """Put the dataset at ``written`` (complete) in ``target``'s place; the old one, if any, is deleted after."""
    aside = target.with_name(f".{target.name}.set-aside-{os.getpid()}")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _copy_namespace_files(written, target)
        if target.exists():
            os.replace(target, aside)
        os.replace(written, target)  # the commit
    except OSError as exc:
        if aside.exists() and not target.exists():
            os.replace(aside, target)
        raise write_error("the dataset", target, exc) from None
    shutil.rmtree(aside, ignore_errors=True)


def _copy_namespace_files(written: Path, target: Path) -> None:
    """Minari's namespace metadata files the staging root got, where the real root has none yet."""
    staged_ns, real_ns = written.parent, target.parent
    while not staged_ns.name.startswith(".trustrl-writing-") and staged_ns != staged_ns.parent:
        if (staged_ns / NAMESPACE_FILE).is_file() and not (real_ns / NAMESPACE_FILE).exists():
            shutil.copyfile(staged_ns / NAMESPACE_FILE, real_ns / NAMESPACE_FILE)
        staged_ns, real_ns = staged_ns.parent, real_ns.parent


def _minari_root() -> Path:
    from minari.storage import get_dataset_path

    return Path(get_dataset_path())


def _alive(pid_text: str) -> bool:
    """Whether the process that named a file after its PID still runs (ours counts as dead: it is us, settling)."""
    if not pid_text.isdigit() or int(pid_text) == os.getpid():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

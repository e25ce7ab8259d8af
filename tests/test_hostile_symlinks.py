"""A symbolic link planted in a run (or study) directory is never written through: a file elsewhere keeps its bytes.

Each row plants one link, runs one writer (``train``, ``--overwrite``, ``--resume``, a fresh ``--run-dir``,
``tune --out``) and says what must happen instead: one ``error:`` line (exit 2), or, where trustrl owns the
name and creates the file afresh, the link itself replaced and the run written.
"""

import os
import shutil
from pathlib import Path

import pytest
from hostile_run_files import files_of, finished_run, one_error_line

from trustrl.cli import main

SHORT = ["--total-steps", "1024", "--quiet"]
PRECIOUS = "precious: not a run's file\n"


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    return finished_run(tmp_path_factory.mktemp("base"), 2048)


def _target_file(tmp: Path) -> Path:
    target = tmp / "outside.txt"
    target.write_text(PRECIOUS)
    return target


def _target_folder(tmp: Path) -> Path:
    """A folder of someone else's, holding names a run also uses."""
    folder = tmp / "elsewhere"
    (folder / "videos").mkdir(parents=True)
    (folder / "videos" / "mine.mp4").write_text(PRECIOUS)
    (folder / "metrics.csv").write_text(PRECIOUS)
    return folder


def _other_checkpoints(tmp: Path, base_run: Path) -> Path:
    other = tmp / "other-run"
    shutil.copytree(base_run, other)
    return other / "checkpoints"


WRITERS = {
    "train": lambda run: ["train", "cartpole-trpo", "--run-dir", str(run), *SHORT],
    "overwrite": lambda run: ["train", "cartpole-trpo", "--run-dir", str(run), "--overwrite", *SHORT],
    "resume": lambda run: ["train", "--resume", str(run), "--total-steps", "3072", "--quiet"],
    "tune": lambda run: ["tune", "cartpole-trpo", "--out", str(run), "--trials", "1", "--total-steps", "1024",
                         "--param", "algo.max_kl=log:0.005:0.05"],
}

# (writer, holds a run already, link name in the directory, what it points to, expected: error text or None = runs)
CASES = [
    ("overwrite", True, ".trustrl.lock", "file", ".trustrl.lock is a symbolic link"),
    ("resume", True, ".trustrl.lock", "file", ".trustrl.lock is a symbolic link"),
    ("train", False, ".trustrl.lock", "file", ".trustrl.lock is a symbolic link"),
    ("tune", False, ".trustrl.lock", "file", ".trustrl.lock is a symbolic link"),
    ("overwrite", True, ".trustrl-write-test", "file", None),
    ("resume", True, ".trustrl-write-test", "file", None),
    ("train", False, ".trustrl-write-test", "file", None),
    ("resume", True, "command.txt", "file", "command.txt is a symbolic link"),
    ("overwrite", True, "command.txt", "file", "command.txt is a symbolic link"),
    ("resume", True, ".trustrl-replaced", "folder", ".trustrl-replaced is a symbolic link"),
    ("overwrite", True, ".trustrl-replaced", "folder", ".trustrl-replaced is a symbolic link"),
    ("resume", True, ".trustrl-discarded", "folder", ".trustrl-discarded is a symbolic link"),
    ("resume", True, "checkpoints", "checkpoints", "checkpoints is a symbolic link"),
    ("overwrite", True, "checkpoints", "checkpoints", "checkpoints is a symbolic link"),
    ("resume", True, "metrics.csv", "file", "metrics.csv is a symbolic link"),
    ("resume", True, "videos", "folder", "videos is a symbolic link"),
    ("train", False, ".config.toml.tmp", "file", None),
    ("train", False, ".metrics.csv.tmp", "file", None),
]  # fmt: skip


@pytest.mark.parametrize("writer, has_run, name, kind, expected", CASES,
                         ids=[f"{w}-{n}" for w, _, n, _, _ in CASES])
def test_a_planted_link_is_never_written_through(base_run, tmp_path, capsys, writer, has_run, name, kind, expected):
    run = tmp_path / "run"
    if has_run:
        shutil.copytree(base_run, run)
    else:
        run.mkdir()
    target = {"file": _target_file, "folder": _target_folder}[kind](tmp_path) if kind != "checkpoints" \
        else _other_checkpoints(tmp_path, base_run)
    before = files_of(target)
    planted = run / name
    if planted.is_dir() and not planted.is_symlink():
        shutil.rmtree(planted)
    planted.unlink(missing_ok=True)
    os.symlink(target, planted)
    kept = files_of(run)  # the run's own files (through the link too), for the refusals

    code = main(WRITERS[writer](run))

    assert files_of(target) == before  # nothing elsewhere written, truncated, moved in or deleted
    if expected is None:
        assert code == 0, capsys.readouterr().err
        assert not planted.is_symlink()  # the link itself was replaced (or removed), never followed
    else:
        assert code == 2 and expected in one_error_line(capsys)
        assert files_of(run) == kept and planted.is_symlink()  # refused before anything of the run was touched

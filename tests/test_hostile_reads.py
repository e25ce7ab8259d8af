"""Readers of a run (``plot``, ``compare``, ``eval``) never print or use a file a symbolic link leads outside it,
and never hash a weights file larger than its record says (a sparse file of 100 GiB is refused at once).

Each row plants one link or one oversized file in a copy of a finished run and runs one reader: one
``error:`` line (exit 2), nothing of the file outside in the output.
"""

import json
import os
import shutil
from pathlib import Path

import pytest
from hostile_run_files import finished_run, one_error_line

from trustrl.cli import main

SECRET = "step,episode_return_mean,elapsed_s\n0,12345.5,1\n1024,SECRET-67890,2\n"
WEIGHTS = "checkpoints/last-000002048.safetensors"


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    return finished_run(tmp_path_factory.mktemp("base"), 2048)


def _outside_file(tmp: Path, base_run: Path) -> Path:
    secret = tmp / "secret.csv"
    secret.write_text(SECRET)
    return secret


def _other_run(tmp: Path, base_run: Path) -> Path:
    shutil.copytree(base_run, tmp / "other")
    return tmp / "other"


TARGETS = {
    "secret": _outside_file,
    "passwd": lambda tmp, base_run: Path("/etc/passwd"),
    "other-record": lambda tmp, base_run: _other_run(tmp, base_run) / "checkpoints" / "last.json",
    "other-weights": lambda tmp, base_run: _other_run(tmp, base_run) / WEIGHTS,
    "other-checkpoints": lambda tmp, base_run: _other_run(tmp, base_run) / "checkpoints",
}
PLOT = ["plot", "{run}", "--out", "{tmp}/curve.png"]
READERS = {
    "plot": PLOT,
    "plot-seconds": [*PLOT, "--x", "seconds"],
    "eval": ["eval", "{run}", "--episodes", "1"],
    "eval-json": ["eval", "{run}/checkpoints/last.json", "--episodes", "1"],
}

# (reader, link in the run, what it leads to)
LINKS = [
    ("plot", "metrics.csv", "secret"),
    ("plot", "metrics.csv", "passwd"),
    ("plot-seconds", "timing.csv", "secret"),
    ("plot", "config.toml", "passwd"),
    ("eval", "checkpoints/last.json", "other-record"),
    ("eval-json", "checkpoints/last.json", "other-record"),
    ("eval", WEIGHTS, "other-weights"),
    ("eval", "checkpoints", "other-checkpoints"),
]  # fmt: skip


@pytest.mark.parametrize("reader, name, target", LINKS, ids=[f"{r}-{n}-{t}" for r, n, t in LINKS])
def test_a_reader_never_follows_a_link_out_of_the_run(base_run, tmp_path, capsys, reader, name, target):
    run = tmp_path / "run"
    shutil.copytree(base_run, run)
    planted = run / name
    shutil.rmtree(planted) if planted.is_dir() else planted.unlink()
    os.symlink(TARGETS[target](tmp_path, base_run), planted)
    args = [arg.format(run=run, tmp=tmp_path) for arg in READERS[reader]]
    assert main(args) == 2
    line = one_error_line(capsys)
    assert "leads to" in line and "outside" in line
    assert "12345" not in line and "SECRET" not in line and "root:" not in line
    assert not (tmp_path / "curve.png").exists()


def test_a_link_that_stays_inside_the_run_is_read(base_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(base_run, run)
    (run / "metrics.csv").rename(run / "metrics-kept.csv")
    os.symlink("metrics-kept.csv", run / "metrics.csv")
    assert main(["plot", str(run), "--out", str(tmp_path / "curve.png")]) == 0
    assert (tmp_path / "curve.png").stat().st_size > 0


def _sparse(path: Path, size: int) -> None:
    with open(path, "wb") as f:
        f.truncate(size)


def _sparse_in_place(run: Path, tmp: Path) -> None:
    _sparse(run / WEIGHTS, 100 << 30)


def _sparse_in_place_old_record(run: Path, tmp: Path) -> None:
    """A record of an older trustrl gives no size: the bound and the safetensors header decide."""
    _sparse(run / WEIGHTS, 100 << 30)
    _drop_size(run)


def _drop_size(run: Path) -> None:
    record = json.loads((run / "checkpoints" / "last.json").read_text())
    del record["weights_bytes"]
    (run / "checkpoints" / "last.json").write_text(json.dumps(record))


def _sparse_link_in_run(run: Path, tmp: Path) -> None:
    _sparse(run / "checkpoints" / "big", 100 << 30)
    (run / WEIGHTS).unlink()
    os.symlink("big", run / WEIGHTS)
    _drop_size(run)


def _zeros_of_the_right_size(run: Path, tmp: Path) -> None:
    size = (run / WEIGHTS).stat().st_size
    (run / WEIGHTS).unlink()
    _sparse(run / WEIGHTS, size)
    _drop_size(run)


def _sparse_outside(run: Path, tmp: Path) -> None:
    _sparse(tmp / "big", 100 << 30)
    (run / WEIGHTS).unlink()
    os.symlink(tmp / "big", run / WEIGHTS)


OVERSIZED = [
    (_sparse_in_place, "its record says"),
    (_sparse_in_place_old_record, "more than a checkpoint can"),
    (_sparse_link_in_run, "more than a checkpoint can"),
    (_zeros_of_the_right_size, "is not a safetensors file of the size its header gives"),
    (_sparse_outside, "outside"),
]  # fmt: skip


@pytest.mark.parametrize("plant, message", OVERSIZED, ids=[p.__name__.strip("_") for p, _ in OVERSIZED])
def test_weights_are_bounded_before_they_are_hashed(base_run, tmp_path, capsys, plant, message):
    run = tmp_path / "run"
    shutil.copytree(base_run, run)
    plant(run, tmp_path)
    assert main(["eval", str(run), "--episodes", "1"]) == 2
    assert message in one_error_line(capsys)

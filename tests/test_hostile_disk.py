"""A full disk, `ulimit -f`, an immutable or read-only `checkpoints/`: one `error:` line naming the file and the
cause, exit 2, and the previous checkpoint as it was.

A full disk cannot be mounted in a test, so ENOSPC (and EROFS) is raised at the write functions themselves;
`ulimit -f` is real (RLIMIT_FSIZE in a child process: Python ignores SIGXFSZ, so writes fail with EFBIG), and so
is an immutable `checkpoints/` (`chattr +i`, where the file system and our privileges allow it; root ignores a
`chmod 0500`, so that stand-in would test nothing).
"""

import errno
import os
import pathlib
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import trustrl
import trustrl.checkpoint
import trustrl.metrics
import trustrl.run.rundir
from trustrl import checkpoint
from trustrl.agent import load
from trustrl.cli import main

SRC = str(Path(trustrl.__file__).resolve().parents[1])  # child processes run the code this test imports
SHORT = ["--total-steps", "2048", "--set", "run.n_steps=256", "--quiet"]
RESUME = ["train", "--resume", "{run}", "--total-steps", "4096", "--quiet"]


@pytest.fixture(scope="module")
def good_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("good") / "run"
    assert main(["train", "cartpole-trpo", "--run-dir", str(run), *SHORT]) == 0
    return run


@pytest.fixture
def run(good_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(good_run, copy)
    return copy


def refused(code: int):
    def write(*args, **kwargs):
        raise OSError(code, os.strerror(code))
    return write


def refuse_text_named(monkeypatch, suffix: str, code: int = errno.ENOSPC) -> None:
    """Path.write_text of files whose name ends with ``suffix`` fails as on a full disk."""
    write_text = pathlib.Path.write_text

    def full(self, *args, **kwargs):
        if self.name.endswith(suffix):
            raise OSError(code, os.strerror(code), str(self))
        return write_text(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "write_text", full)


def refuse_new_file_named(monkeypatch, suffix: str, code: int = errno.ENOSPC) -> None:
    """A run directory's files created afresh (``write_new``) whose name ends with ``suffix`` fail as on a full
    disk."""
    write_new = trustrl.run.rundir.write_new

    def full(path, data):
        if path.name.endswith(suffix):
            raise OSError(code, os.strerror(code), str(path))
        return write_new(path, data)

    monkeypatch.setattr(trustrl.run.rundir, "write_new", full)


def refuse_open_in(monkeypatch, module, code: int = errno.ENOSPC) -> None:
    """``open`` for writing, as ``module`` calls it, fails as on a full disk."""
    def full(file, mode="r", *args, **kwargs):
        if any(c in mode for c in "wax"):
            raise OSError(code, os.strerror(code), str(file))
        return open(file, mode, *args, **kwargs)

    monkeypatch.setattr(module, "open", full, raising=False)


def checkpoint_files(run: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((run / "checkpoints").iterdir())}


IN_PROCESS = [
    ("weights, full disk", lambda mp: mp.setattr(trustrl.checkpoint, "save_file", refused(errno.ENOSPC)),
     "cannot write checkpoint best at step 4096 in {run}/checkpoints: the disk is full"),
    ("weights, read-only file system", lambda mp: mp.setattr(trustrl.checkpoint, "save_file", refused(errno.EROFS)),
     "cannot write checkpoint best at step 4096 in {run}/checkpoints: the file system is read-only"),
    ("weights temp file, permission denied", lambda mp: mp.setattr(trustrl.checkpoint, "temp_beside",
                                                                   refused(errno.EACCES)),
     "cannot write checkpoint best at step 4096 in {run}/checkpoints: permission denied"),
    ("record, full disk", lambda mp: refuse_open_in(mp, trustrl.checkpoint),
     "cannot write checkpoint best at step 4096 in {run}/checkpoints: the disk is full"),
    ("metrics.csv, full disk", lambda mp: refuse_open_in(mp, trustrl.metrics),
     "cannot write the metrics file {run}/metrics.csv: the disk is full"),
    ("config.toml, full disk", lambda mp: refuse_new_file_named(mp, ".config.toml.tmp"),
     "cannot write the run's config {run}/config.toml: the disk is full"),
]  # fmt: skip


@pytest.mark.parametrize("name, inject, message", IN_PROCESS, ids=[row[0] for row in IN_PROCESS])
def test_a_refused_write_on_resume_is_one_line_and_the_previous_checkpoint_stands(run, capsys, monkeypatch, name,
                                                                                   inject, message):
    before = checkpoint_files(run)
    inject(monkeypatch)
    assert main([arg.format(run=run) for arg in RESUME]) == 2
    monkeypatch.undo()
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: " + message.format(run=run)), lines
    assert checkpoint_files(run) == before  # no temporary file, no unnamed weights, the records as they were
    assert load(run).checkpoint.step == 2048


def test_a_full_disk_during_an_overwrite_puts_the_old_run_back(run, capsys, monkeypatch):
    before = checkpoint_files(run)
    monkeypatch.setattr(trustrl.checkpoint, "save_file", refused(errno.ENOSPC))
    assert main(["train", "cartpole-trpo", "--run-dir", str(run), "--overwrite", *SHORT]) == 2
    assert capsys.readouterr().err.startswith(f"error: cannot write checkpoint best at step 0 in {run}/checkpoints: "
                                              "the disk is full")
    assert checkpoint_files(run) == before


def test_a_full_disk_writing_the_study_summary_is_one_line(tmp_path, capsys, monkeypatch):
    refuse_text_named(monkeypatch, ".summary.csv.tmp")
    out = tmp_path / "study"
    assert main(["tune", "cartpole-trpo", "--param", "algo.max_kl=log:0.005:0.05", "--trials", "1", "--out", str(out),
                 "--total-steps", "256", "--set", "run.n_steps=128", "--set", "env.n_envs=2"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: cannot write the study summary {out}/summary.csv: the disk is full"]
    assert not (out / ".summary.csv.tmp").exists()


def test_a_full_disk_writing_the_comparison_summary_is_one_line(tmp_path, capsys, monkeypatch):
    import trustrl.compare

    refuse_open_in(monkeypatch, trustrl.compare)
    out = tmp_path / "cmp"
    assert main(["compare", "cartpole", "--algos", "trpo", "--seeds", "1", "--out", str(out), "--total-steps", "256",
                 "--eval-episodes", "1"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1:] == [
        f"error: cannot write the comparison summary {out}/summary.csv: the disk is full"]
    assert (out / "trpo" / "seed0" / "checkpoints" / "last.json").is_file()  # the run it trained is kept


def test_a_refusal_from_a_write_site_of_a_library_is_one_line_and_other_os_errors_stay_tracebacks(run, capsys,
                                                                                                   monkeypatch):
    def full(self, *args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(run / "tensorboard" / "events"))

    monkeypatch.setattr(trustrl.metrics.MetricsLogger, "hparams", full)
    assert main([arg.format(run=run) for arg in RESUME]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"error: {run}/tensorboard/events: the disk is full"]

    def bug(self, *args):
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", "a path trustrl got wrong")

    monkeypatch.setattr(trustrl.metrics.MetricsLogger, "hparams", bug)
    with pytest.raises(FileNotFoundError):
        main([arg.format(run=run) for arg in RESUME])


def limited(size: int):
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))


def cli(argv: list[str], tmp_path: Path, size: int | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": SRC, "MINARI_DATASETS_PATH": str(tmp_path / "minari")}
    return subprocess.run([sys.executable, "-m", "trustrl", *argv], env=env, capture_output=True, text=True,
                          timeout=300, preexec_fn=None if size is None else limited(size))


ULIMIT = [
    ("resume", lambda run, tmp: [a.format(run=run) for a in RESUME], "cannot write checkpoint best at step 4096"),
    ("fresh run", lambda run, tmp: ["train", "cartpole-trpo", "--run-dir", str(tmp / "fresh"), *SHORT],
     "cannot write checkpoint best at step 0"),
    ("overwrite", lambda run, tmp: ["train", "cartpole-trpo", "--run-dir", str(run), "--overwrite", *SHORT],
     "cannot write checkpoint best at step 0"),
    ("collect", lambda run, tmp: ["collect", str(run), "--dataset", "cp/big-v0", "--episodes", "20"],
     "cannot write the dataset"),
]  # fmt: skip


@pytest.mark.parametrize("name, argv, message", ULIMIT, ids=[row[0] for row in ULIMIT])
def test_ulimit_f_is_one_line_and_the_previous_checkpoint_stands(run, tmp_path, name, argv, message):
    before = checkpoint_files(run)
    result = cli(argv(run, tmp_path), tmp_path, size=16 * 1024)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and message in lines[0], result.stderr
    assert "ulimit -f" in lines[0]
    assert checkpoint_files(run) == before
    assert not list((tmp_path / "minari").glob(".*")) if (tmp_path / "minari").exists() else True


def test_an_immutable_checkpoints_folder_is_one_line_and_the_last_checkpoint_stands(run, tmp_path):
    folder = run / "checkpoints"
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(folder)]).returncode != 0:
        pytest.skip("chattr +i is not available here (file system or privileges)")
    try:
        before = checkpoint_files(run)
        result = cli([a.format(run=run) for a in RESUME], tmp_path)
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: cannot write checkpoint best at step 4096 in {folder}: the operation is "
                               "not permitted"), lines
    assert checkpoint_files(run) == before
    assert checkpoint.load(run).step == 2048

"""`collect --overwrite` cut off at any moment loses neither dataset; a truncated dataset is one `error:` line.

Each row kills a `collect --overwrite` (SIGKILL, from inside, at one step of writing and swapping) and then
reads the id as a later command does: the old dataset must be there whole, or the new one whole, and nothing
of the attempt may be left beside it.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import trustrl
from trustrl.cli import main
from trustrl.datasets.read import read_dataset

SRC = str(Path(trustrl.__file__).resolve().parents[1])  # child processes run the code this test imports
OLD_EPISODES, NEW_EPISODES = 3, 40

# Injected into the collect process before trustrl's CLI runs: each kills the process at one moment.
KILL = "import os, signal\ndef die(*a, **k):\n    os.kill(os.getpid(), signal.SIGKILL)\n"
KILLS = {
    "while Minari writes the new file": KILL + (
        "import minari\n_create = minari.create_dataset_from_buffers\n"
        "def create(dataset_id, *a, **k):\n"
        "    from minari.storage import get_dataset_path\n"
        "    (get_dataset_path(dataset_id) / 'data').mkdir(parents=True)\n"
        "    (get_dataset_path(dataset_id) / 'data' / 'main_data.hdf5').write_bytes(b'\\x89HDF' + bytes(100))\n"
        "    die()\n"
        "minari.create_dataset_from_buffers = create\n"),
    "after writing, before the old dataset is set aside": KILL + (
        "import trustrl.datasets.replace as r\nr._copy_namespace_files = die\n"),
    "after the old dataset is set aside, before the new one goes in": KILL + (
        "import types, trustrl.datasets.replace as r\n"
        "def replace(a, b):\n"
        "    os.replace(a, b)\n"
        "    if '.set-aside-' in str(b): die()\n"
        "r.os = types.SimpleNamespace(**{**vars(os), 'replace': replace})\n"),
    "after the new dataset went in, before the old one is deleted": KILL + (
        "import shutil, types, trustrl.datasets.replace as r\n"
        "def rmtree(path, ignore_errors=False):\n"
        "    die() if '.set-aside-' in str(path) else shutil.rmtree(path, ignore_errors=ignore_errors)\n"
        "r.shutil = types.SimpleNamespace(**{**vars(shutil), 'rmtree': rmtree})\n"),
    "midway through deleting the old dataset": KILL + (
        "import shutil, types, trustrl.datasets.replace as r\nfrom pathlib import Path\n"
        "def rmtree(path, ignore_errors=False):\n"
        "    if '.set-aside-' not in str(path): return shutil.rmtree(path, ignore_errors=ignore_errors)\n"
        "    next(Path(path).rglob('*.hdf5')).unlink(); die()\n"
        "r.shutil = types.SimpleNamespace(**{**vars(shutil), 'rmtree': rmtree})\n"),
}


@pytest.fixture
def minari_root(tmp_path, monkeypatch):
    root = tmp_path / "minari"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    assert main(["collect", "--random", "--env", "CartPole-v1", "--dataset", "cp/data-v0",
                 "--episodes", str(OLD_EPISODES)]) == 0
    return root


def collect_process(code: str, root: Path) -> subprocess.Popen:
    script = code + "import sys\nfrom trustrl.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    env = {**os.environ, "PYTHONPATH": SRC, "MINARI_DATASETS_PATH": str(root)}
    return subprocess.Popen([sys.executable, "-c", script, "collect", "--random", "--env", "CartPole-v1",
                             "--dataset", "cp/data-v0", "--episodes", str(NEW_EPISODES), "--overwrite"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def assert_one_whole_dataset(root: Path) -> int:
    """A later command reads the id: one whole dataset (old or new), nothing else left beside it."""
    episodes = len(read_dataset("cp/data-v0").episodes)
    assert episodes in (OLD_EPISODES, NEW_EPISODES)
    assert sorted(p.name for p in (root / "cp").iterdir()) == ["data-v0", "namespace_metadata.json"]
    assert not [p for p in root.iterdir() if p.name.startswith(".")]
    return episodes


@pytest.mark.parametrize("moment", list(KILLS))
def test_collect_overwrite_killed_at_any_step_keeps_a_whole_dataset(minari_root, moment):
    proc = collect_process(KILLS[moment], minari_root)
    proc.wait(timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read()
    episodes = assert_one_whole_dataset(minari_root)
    committed = moment.startswith(("after the new", "midway"))
    assert episodes == (NEW_EPISODES if committed else OLD_EPISODES)


@pytest.mark.parametrize("delay", [0.0, 0.05, 0.2])
def test_collect_overwrite_killed_from_outside_while_writing_keeps_a_whole_dataset(minari_root, delay):
    proc = collect_process("", minari_root)
    started = time.monotonic()
    while proc.poll() is None and not [*minari_root.glob(".*"), *(minari_root / "cp").glob(".*")]:  # writing began
        assert time.monotonic() - started < 120
        time.sleep(0.002)
    time.sleep(delay)
    proc.kill()
    proc.wait(timeout=60)
    assert_one_whole_dataset(minari_root)


def test_a_later_collect_puts_back_a_set_aside_dataset_and_refuses_to_replace_it_unasked(minari_root, capsys):
    proc = collect_process(KILLS["after the old dataset is set aside, before the new one goes in"], minari_root)
    proc.wait(timeout=120)
    assert not (minari_root / "cp" / "data-v0").exists()  # the old dataset is only set aside at this point
    assert main(["collect", "--random", "--env", "CartPole-v1", "--dataset", "cp/data-v0", "--episodes", "2"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert assert_one_whole_dataset(minari_root) == OLD_EPISODES


def test_what_an_older_trustrl_left_mid_write_is_put_back(minari_root):
    """Older trustrl renamed the old dataset to `.<name>.replaced-<pid>` and wrote in place: finding one means
    that write never finished, so the old dataset goes back over the half-written one."""
    target = minari_root / "cp" / "data-v0"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    os.replace(target, target.with_name(f".data-v0.replaced-{int(dead.stdout)}"))
    (target / "data").mkdir(parents=True)
    (target / "data" / "main_data.hdf5").write_bytes(b"\x89HDF" + bytes(64))
    assert assert_one_whole_dataset(minari_root) == OLD_EPISODES


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _zero(path: Path) -> None:
    path.write_bytes(bytes(4096))


@pytest.mark.parametrize("damage", [_truncate, _zero])
def test_a_truncated_or_corrupt_dataset_is_one_error_line_for_offline_training(minari_root, tmp_path, capsys, damage):
    damage(next((minari_root / "cp" / "data-v0").rglob("*.hdf5")))
    assert main(["train", "cartpole-trpo", "--offline", "cp/data-v0", "--run-dir", str(tmp_path / "run"),
                 "--quiet"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot read Minari dataset 'cp/data-v0': its data is "
                                                   "truncated or corrupt"), lines


def test_collect_on_a_full_disk_is_one_line_and_keeps_the_old_dataset(minari_root, monkeypatch, capsys):
    import errno

    import minari

    def full(dataset_id, *args, **kwargs):
        from minari.storage import get_dataset_path

        (get_dataset_path(dataset_id) / "data").mkdir(parents=True)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(minari, "create_dataset_from_buffers", full)
    assert main(["collect", "--random", "--env", "CartPole-v1", "--dataset", "cp/data-v0", "--episodes", "2",
                 "--overwrite"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: cannot write the dataset {minari_root / 'cp' / 'data-v0'}: the disk is full"]
    assert assert_one_whole_dataset(minari_root) == OLD_EPISODES

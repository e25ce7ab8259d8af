"""An offline dataset with a NaN, an infinity, an action outside its space or fields of different lengths is
refused when read, with one error naming the dataset, the episode and the field -- before a run is written."""

import os
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from trustrl.cli import main
from trustrl.datasets.read import read_dataset
from trustrl.errors import TrustrlError


@pytest.fixture(scope="module")
def datasets():
    """Random-policy datasets, one with Discrete actions, one with Box actions (4 episodes each), under the
    session's Minari root (conftest.py)."""
    root = Path(os.environ["MINARI_DATASETS_PATH"])
    for env_id, name in (("CartPole-v1", "cartpole/hostile-v0"), ("Pendulum-v1", "pendulum/hostile-v0")):
        if not (root / name).exists():
            assert main(["collect", "--random", "--env", env_id, "--episodes", "4", "--seed", "0", "--dataset",
                         name]) == 0
    return {"Discrete": root / "cartpole" / "hostile-v0", "Box": root / "pendulum" / "hostile-v0"}


def set_value(field, index, value):
    def edit(episode):
        data = episode[field][()]
        data[index] = value
        episode[field][...] = data
    return edit


def shorten(field):
    def edit(episode):
        data = episode[field][()]
        del episode[field]
        episode.create_dataset(field, data=data[:-1])
    return edit


CASES = {
    "observation NaN": ("Discrete", set_value("observations", (5, 2), np.nan), "observations", "step 5"),
    "observation infinite": ("Box", set_value("observations", (0, 0), np.inf), "observations", "step 0"),
    "final observation NaN": ("Box", set_value("observations", (-1, 1), np.nan), "observations", "step"),
    "reward NaN": ("Discrete", set_value("rewards", 3, np.nan), "rewards", "step 3"),
    "reward infinite": ("Box", set_value("rewards", 7, -np.inf), "rewards", "step 7"),
    "Box action NaN": ("Box", set_value("actions", (2, 0), np.nan), "actions", "step 2"),
    "Discrete action outside the space": ("Discrete", set_value("actions", 1, 7), "actions", "step 1"),
    "one action too few": ("Discrete", shorten("actions"), "actions", "rewards"),
    "one termination flag too few": ("Box", shorten("terminations"), "terminations", "rewards"),
    "one truncation flag too few": ("Discrete", shorten("truncations"), "truncations", "rewards"),
    "one observation too few": ("Box", shorten("observations"), "observations", "rewards"),
}


@pytest.fixture
def spoiled(request, datasets, tmp_path):
    """A copy of a dataset with episode 1 spoiled as the case says; returns (path, case)."""
    kind, edit, _, _ = CASES[request.param]
    copy = tmp_path / "spoiled"
    shutil.copytree(datasets[kind], copy)
    with h5py.File(copy / "data" / "main_data.hdf5", "r+") as f:
        edit(f["episode_1"])
    return copy, request.param


@pytest.mark.parametrize("spoiled", list(CASES), indirect=True)
def test_a_spoiled_dataset_is_refused_when_read_naming_dataset_episode_and_field(spoiled, tmp_path, capsys):
    path, case = spoiled
    kind, _, field, where = CASES[case]
    with pytest.raises(TrustrlError) as error:
        read_dataset(path)
    message = str(error.value)
    assert "hostile-v0" in message and "episode 1" in message and field in message and where in message
    preset = "cartpole-trpo" if kind == "Discrete" else "pendulum-trpo"
    run = tmp_path / "run"
    assert main(["train", preset, "--offline", str(path), "--epochs", "1", "--run-dir", str(run), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1 and "episode 1" in err and field in err
    assert not run.exists()


@pytest.mark.parametrize("kind", ["Discrete", "Box"])
def test_a_sound_dataset_reads_as_written(datasets, kind):
    data = read_dataset(datasets[kind])
    with h5py.File(datasets[kind] / "data" / "main_data.hdf5") as f:
        for i, episode in enumerate(data.episodes):
            stored = f[f"episode_{i}"]
            assert np.array_equal(episode.observations, stored["observations"][()])
            assert np.array_equal(episode.actions, stored["actions"][()])
            assert np.array_equal(episode.rewards, stored["rewards"][()])

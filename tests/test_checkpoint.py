"""Checkpoints: round trip, atomic replacement, and clear errors on damage."""

import json

import numpy as np
import pytest
import torch

from trustrl import checkpoint
from trustrl.config import CriticConfig, PolicyConfig
from trustrl.errors import CheckpointError
from trustrl.nets import GaussianPolicy, ValueNet


def _save(directory, step=100, tag="last", policy=None):
    policy = policy or GaussianPolicy(3, 2, PolicyConfig(hidden=(8,)))
    critic = ValueNet(3, CriticConfig(hidden=(8,)))
    path = checkpoint.save(
        directory, tag, policy, critic,
        config={"name": "x"}, spaces={"obs_shape": [3]},
        obs_norm={"enabled": True, "clip": 10.0, "mean": [0.1, 0.2, 0.3], "var": [1.0, 2.0, 3.0], "count": 5.0},
        reward_norm={}, step=step, update=1,
    )
    return path, policy, critic


def test_round_trip_restores_weights_and_statistics(tmp_path):
    path, policy, critic = _save(tmp_path)
    loaded = checkpoint.load(tmp_path, "last")
    assert loaded.step == 100 and loaded.obs_norm["mean"] == [0.1, 0.2, 0.3]
    for k, v in policy.state_dict().items():
        assert torch.equal(loaded.policy_state[k], v)
    for k, v in critic.state_dict().items():
        assert torch.equal(loaded.critic_state[k], v)
    record = json.loads(path.read_text())
    assert record["versions"]["torch"] == torch.__version__


def test_resave_replaces_old_weights_and_leaves_no_temp_files(tmp_path):
    _save(tmp_path, step=100)
    _save(tmp_path, step=200)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["last-000000200.safetensors", "last.json"]
    assert checkpoint.load(tmp_path).step == 200


def test_tampered_weights_are_detected(tmp_path):
    _save(tmp_path)
    weights = tmp_path / "last-000000100.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="does not match its recorded SHA-256"):
        checkpoint.load(tmp_path)


def test_corrupt_record_is_detected(tmp_path):
    path, _, _ = _save(tmp_path)
    path.write_text(path.read_text()[:50])
    with pytest.raises(CheckpointError, match="corrupt"):
        checkpoint.load(tmp_path)


def test_missing_checkpoint_names_what_was_looked_for(tmp_path):
    with pytest.raises(CheckpointError, match="no 'best' checkpoint"):
        checkpoint.load(tmp_path, "best")
    with pytest.raises(CheckpointError, match="no run or checkpoint"):
        checkpoint.load(tmp_path / "nowhere")


def test_no_pickle_in_the_format(tmp_path):
    _save(tmp_path)
    blob = (tmp_path / "last-000000100.safetensors").read_bytes()
    header_len = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8 : 8 + header_len])  # safetensors: a JSON header, then raw tensor bytes
    assert header["__metadata__"]["format"] == "trustrl"
    assert all(np.dtype("float32") == np.dtype(v["dtype"].lower().replace("f32", "float32")) for k, v in header.items() if k != "__metadata__")

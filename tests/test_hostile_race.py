"""A reader racing a writer: a record read just before the writer replaces its weights still loads.

The writer renames new weights in, commits the record, then deletes the weights the old record named; a
reader that read the old record in between finds its weights gone. Each row replays one interleaving
deterministically (the writer runs right after the reader's first read of the record).
"""

import pytest
import torch

from trustrl import checkpoint
from trustrl.config import CriticConfig, PolicyConfig
from trustrl.errors import CheckpointError
from trustrl.nets import GaussianPolicy, ValueNet


def _writer(directory):
    policy, critic = GaussianPolicy(3, 2, PolicyConfig(hidden=(8,))), ValueNet(3, CriticConfig(hidden=(8,)))

    def save(step):
        with torch.no_grad():
            for param in policy.parameters():
                param.fill_(float(step))  # tell the checkpoints apart by their weights too
        checkpoint.save(directory, "last", policy, critic, config={}, spaces={}, obs_norm={}, reward_norm={},
                        step=step, update=step // 100)
    return save


# (checkpoints the writer saves between the reader's reads of the record, step the reader gets or None: error)
INTERLEAVINGS = [
    ([200], 200),  # one new checkpoint: the reader reads the record again and loads it
    ([200, 300], 300),  # two, one after each of the reader's reads
    ([200, 300, 400], 400),  # the weights replaced again under the second try: a third
    ([200, 300, 400, 500, 600], None),  # a writer faster than every read: one clear error, never a wrong pairing
]


@pytest.mark.parametrize("saves, expected", INTERLEAVINGS, ids=["one", "two", "three", "five"])
def test_a_load_during_training_rereads_a_record_whose_weights_were_replaced(tmp_path, monkeypatch, saves, expected):
    save = _writer(tmp_path)
    save(100)
    real_read, pending = checkpoint._read_record, list(saves)

    def read_then_writer_runs(path):
        record = real_read(path)
        if pending:
            save(pending.pop(0))  # the writer commits a new record and deletes the weights `record` names
        return record

    monkeypatch.setattr(checkpoint, "_read_record", read_then_writer_runs)
    if expected is None:
        with pytest.raises(CheckpointError, match="weights file 'last-000000500.safetensors' is missing"):
            checkpoint.load(tmp_path)
        return
    loaded = checkpoint.load(tmp_path)
    assert loaded.step == expected
    for name, _ in GaussianPolicy(3, 2, PolicyConfig(hidden=(8,))).named_parameters():
        assert torch.all(loaded.policy_state[name] == float(expected))  # the weights of that very record


def test_weights_that_are_simply_missing_are_still_an_error(tmp_path):
    save = _writer(tmp_path)
    save(100)
    (tmp_path / "last-000000100.safetensors").unlink()
    with pytest.raises(CheckpointError, match="weights file 'last-000000100.safetensors' is missing"):
        checkpoint.load(tmp_path)

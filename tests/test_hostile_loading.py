"""A checkpoint edited into nonsense -- non-finite weights under a recomputed hash, statistics out of range -- is
refused at load with one error naming the file and the field, by ``load``, ``eval`` and ``--resume`` alike."""

import hashlib
import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file
from tiny_runs import tiny_run

import trustrl
from trustrl.cli import main
from trustrl.errors import CheckpointError


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    return tiny_run(tmp_path_factory)


def edit_weights(record_path, record, key, value):
    """Set one weight of the record's safetensors file and recompute the hash the record keeps."""
    weights = record_path.parent / record["weights"]
    tensors = load_file(str(weights))
    tensors[key] = tensors[key].clone()
    tensors[key].view(-1)[0] = value
    save_file(tensors, str(weights), metadata={"format": "trustrl"})
    record["weights_sha256"] = hashlib.sha256(weights.read_bytes()).hexdigest()


def edit_field(section, key, value):
    def edit(record_path, record):
        record[section][key] = value
    return edit


def edit_weight(key, value):
    return lambda record_path, record: edit_weights(record_path, record, key, value)


CASES = {
    "policy weight NaN, hash recomputed": (edit_weight("policy.logits_net.layers.0.weight", float("nan")),
                                           "policy weight logits_net.layers.0.weight"),
    "critic weight infinite, hash recomputed": (edit_weight("critic.net.layers.0.bias", float("inf")),
                                                "critic weight net.layers.0.bias"),
    "clip -1": (edit_field("obs_norm", "clip", -1.0), "obs_norm.clip"),
    "clip NaN": (edit_field("obs_norm", "clip", float("nan")), "obs_norm.clip"),
    "clip a string": (edit_field("obs_norm", "clip", "ten"), "obs_norm.clip"),
    "var Infinity": (edit_field("obs_norm", "var", [1.0, float("inf"), 1.0, 1.0]), "obs_norm.var"),
    "var negative": (edit_field("obs_norm", "var", [1.0, -1.0, 1.0, 1.0]), "obs_norm.var"),
    "mean NaN": (edit_field("obs_norm", "mean", [0.0, float("nan"), 0.0, 0.0]), "obs_norm.mean"),
    "mean of strings": (edit_field("obs_norm", "mean", ["a", "b", "c", "d"]), "obs_norm.mean"),
    "count NaN": (edit_field("obs_norm", "count", float("nan")), "obs_norm.count"),
    "count negative": (edit_field("obs_norm", "count", -5.0), "obs_norm.count"),
    "enabled a string": (edit_field("obs_norm", "enabled", "no"), "obs_norm.enabled"),
}


@pytest.fixture
def tampered(request, original, tmp_path):
    edit, _ = CASES[request.param]
    run = tmp_path / "run"
    shutil.copytree(original, run)
    record_path = run / "checkpoints" / "last.json"
    record = json.loads(record_path.read_text())
    edit(record_path, record)
    record_path.write_text(json.dumps(record))
    return run


@pytest.mark.parametrize("tampered", list(CASES), indirect=True)
def test_a_tampered_checkpoint_is_refused_at_load_naming_the_file_and_field(tampered, request, capsys):
    field = CASES[request.node.callspec.params["tampered"]][1]
    with pytest.raises(CheckpointError) as error:
        trustrl.load(tampered)
    assert "last.json" in str(error.value) and field in str(error.value)
    assert main(["eval", str(tampered), "--episodes", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1 and "last.json" in err and field in err


def test_a_resume_refuses_a_non_finite_weight_and_keeps_the_run(original, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(original, run)
    record_path = run / "checkpoints" / "last.json"
    record = json.loads(record_path.read_text())
    edit_weights(record_path, record, "policy.logits_net.layers.2.bias", float("-inf"))
    record_path.write_text(json.dumps(record))
    before = {p.name: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert main(["train", "--resume", str(run), "--total-steps", "1024", "--quiet"]) == 2
    assert "policy weight logits_net.layers.2.bias" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != ".trustrl.lock"} == {
        name: data for name, data in before.items() if name != ".trustrl.lock"}


def test_sane_statistics_still_load_and_act_as_saved(original):
    agent = trustrl.load(original)
    record = json.loads((original / "checkpoints" / "last.json").read_text())
    assert agent.obs_norm.clip == record["obs_norm"]["clip"] and agent.obs_norm.enabled
    assert agent.obs_norm.rms.var.tolist() == record["obs_norm"]["var"]
    obs = torch.tensor([[0.01, -0.02, 0.03, 0.04]])
    expected = (obs.double() - torch.tensor(record["obs_norm"]["mean"])) / torch.sqrt(
        torch.tensor(record["obs_norm"]["var"]) + 1e-8)
    assert torch.allclose(torch.from_numpy(agent.obs_norm.normalize(obs.numpy().astype("float64"))),
                          expected.clamp(-10, 10).float())

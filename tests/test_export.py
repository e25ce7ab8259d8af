"""Exported policies (``Agent.to_torch``, ONNX, TorchScript) act as ``Agent.act`` does; ``Agent.predict`` is SB3's."""

import os
import subprocess
import sys

import numpy as np
import onnxruntime
import pytest
import torch

import trustrl
from trustrl.cli import main

SHORT = ["--total-steps", "2048", "--quiet"]
N_OBS = 1000
#: The Box policy's last layer is scaled by this, so that many mean actions fall outside the bounds.
MEAN_SCALE = 500.0
#: Float tolerance of a Box action: float32 rounding (which differs with the batch size, and with ONNX Runtime's
#: tanh) of a policy whose output is scaled by MEAN_SCALE.
ATOL = 1e-6 * MEAN_SCALE


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One tiny run with Box actions (Pendulum) and one with Discrete actions (CartPole)."""
    root = tmp_path_factory.mktemp("export-runs")
    for kind, preset in (("box", "pendulum-trpo"), ("discrete", "cartpole-trpo")):
        assert main(["train", preset, "--seed", "3", "--run-dir", str(root / kind), *SHORT]) == 0
    return root


def _agent(runs, kind: str) -> trustrl.Agent:
    """The run's agent; the Box policy's mean is scaled up so that many actions fall outside the bounds."""
    agent = trustrl.load(runs / kind)
    if kind == "box":
        with torch.no_grad():
            agent.policy.mean_net.layers[-1].weight.mul_(MEAN_SCALE)
    return agent


def _observations(agent: trustrl.Agent, seed: int = 0) -> np.ndarray:
    """Raw observations from -1.5 to 1.5 times the normaliser's clip range (in standard deviations)."""
    norm = agent.obs_norm
    z = np.random.default_rng(seed).uniform(-1.5 * norm.clip, 1.5 * norm.clip, (N_OBS, *norm.rms.shape))
    return (norm.rms.mean + z * np.sqrt(norm.rms.var)).astype(np.float32)


def _acted(agent: trustrl.Agent, obs: np.ndarray) -> np.ndarray:
    return np.stack([agent.act(o, deterministic=True) for o in obs])


def _assert_same_actions(actual: np.ndarray, expected: np.ndarray) -> None:
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    if expected.dtype.kind == "i":
        np.testing.assert_array_equal(actual, expected)
    else:
        np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=ATOL)


@pytest.mark.parametrize("kind", ["box", "discrete"])
def test_to_torch_is_a_plain_module_that_acts_as_act(runs, kind):
    agent = _agent(runs, kind)
    obs = _observations(agent)
    module = agent.to_torch()
    assert isinstance(module, torch.nn.Module) and not module.training
    with torch.no_grad():
        actions = module(torch.from_numpy(obs)).numpy()
    expected = _acted(agent, obs)
    _assert_same_actions(actions, expected)
    if kind == "box":
        assert actions.shape == (N_OBS, 1) and actions.dtype == np.float32
        assert (actions == 2.0).any() and (actions == -2.0).any() and (np.abs(actions) < 2.0).any()
    else:
        assert actions.shape == (N_OBS,) and actions.dtype == np.int64 and set(actions.tolist()) == {0, 1}
    with torch.no_grad():  # a snapshot: later changes to the agent's policy do not reach it
        for param in agent.policy.parameters():
            param.add_(1.0)
        _assert_same_actions(module(torch.from_numpy(obs)).numpy(), expected)


def test_to_torch_without_observation_normalisation_passes_the_raw_observation(runs):
    agent = _agent(runs, "discrete")
    obs = _observations(agent, seed=6)
    with torch.no_grad():
        normalised = agent.to_torch()(torch.from_numpy(obs)).numpy()
        agent.obs_norm.enabled = False
        raw = agent.to_torch()(torch.from_numpy(obs)).numpy()
    _assert_same_actions(raw, _acted(agent, obs))
    assert (raw != normalised).any()  # the statistics were not the identity


def test_to_torch_computes_the_normalised_clipped_mean_by_hand(runs):
    """An independent numpy forward pass: clip((obs - mean) / sqrt(var + eps)), the tanh MLP, clip to [-2, 2]."""
    agent = _agent(runs, "box")
    obs = _observations(agent, seed=1)
    norm = agent.obs_norm
    x = np.clip((obs.astype(np.float64) - norm.rms.mean) / np.sqrt(norm.rms.var + norm.eps), -norm.clip, norm.clip)
    assert (np.abs(x) == norm.clip).any() and (np.abs(x) < norm.clip).any()  # the clip range is spanned
    *hidden, last = [(layer.weight.detach().double().numpy(), layer.bias.detach().double().numpy())
                     for layer in agent.policy.mean_net.layers]
    for w, b in hidden:
        x = np.tanh(x @ w.T + b)
    expected = np.clip(x @ last[0].T + last[1], -2.0, 2.0)
    with torch.no_grad():
        actions = agent.to_torch()(torch.from_numpy(obs)).numpy()
    np.testing.assert_allclose(actions, expected, rtol=1e-5, atol=ATOL)


def _run_onnx(path, obs: np.ndarray) -> np.ndarray:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"obs": obs})[0]


def _run_torchscript(path, obs: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return torch.jit.load(str(path))(torch.from_numpy(obs)).numpy()


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
@pytest.mark.parametrize("kind", ["box", "discrete"])
@pytest.mark.parametrize("fmt, suffix, run_file", [("onnx", ".onnx", _run_onnx),
                                                   ("torchscript", ".pt", _run_torchscript)])
def test_exported_file_acts_as_act_for_any_batch_size(runs, tmp_path, kind, fmt, suffix, run_file):
    agent = _agent(runs, kind)
    obs = _observations(agent, seed=2)
    out = trustrl.export(agent, tmp_path / f"policy{suffix}", fmt)
    assert out == tmp_path / f"policy{suffix}" and sorted(p.name for p in tmp_path.iterdir()) == [out.name]
    expected = _acted(agent, obs)
    _assert_same_actions(run_file(out, obs), expected)
    _assert_same_actions(run_file(out, obs[:1]), expected[:1])  # the batch axis is not fixed at export


def test_torchscript_file_runs_in_a_fresh_process_without_trustrl(runs, tmp_path):
    agent = _agent(runs, "box")
    obs = _observations(agent, seed=3)
    np.save(tmp_path / "obs.npy", obs)
    trustrl.export(agent, tmp_path / "policy.pt", "torchscript")
    code = (
        "import sys, numpy as np, torch\n"
        "policy = torch.jit.load('policy.pt')\n"
        "np.save('actions.npy', policy(torch.from_numpy(np.load('obs.npy'))).detach().numpy())\n"
        "assert not any(name.split('.')[0] == 'trustrl' for name in sys.modules), 'trustrl was imported'\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, check=True, timeout=120)
    _assert_same_actions(np.load(tmp_path / "actions.npy"), _acted(agent, obs))


def test_export_command_writes_the_checkpoint_policy(runs, tmp_path, capsys):
    out = tmp_path / "best.onnx"
    assert main(["export", str(runs / "discrete"), "--checkpoint", "best", "--format", "onnx", "--out", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    agent = trustrl.load(runs / "discrete", checkpoint="best")
    obs = _observations(agent, seed=4)
    _assert_same_actions(_run_onnx(out, obs), _acted(agent, obs))
    assert oct(out.stat().st_mode & 0o777) == oct(0o666 & ~_umask())  # readable as every other file written


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@pytest.mark.parametrize("args, message", [
    (["{run}/missing", "--format", "torchscript", "--out", "{dir}/p.pt"], "no run or checkpoint"),
    (["{run}", "--format", "tflite", "--out", "{dir}/p.pt"], "invalid choice: 'tflite'"),
    (["{run}", "--format", "onnx", "--out", "{dir}/p.pt"], "must end in .onnx"),
    (["{run}", "--format", "torchscript", "--out", "{dir}/p.onnx"], "must end in .pt"),
    (["{run}", "--format", "torchscript", "--out", "{dir}/nowhere/p.pt"], "does not exist"),
    (["{run}", "--format", "torchscript", "--out", "{dir}/p.pt", "--checkpoint", "first"], "unknown checkpoint 'first'"),
])
def test_bad_export_input_is_one_error_line_and_writes_nothing(runs, tmp_path, capsys, args, message):
    args = [a.format(run=runs / "box", dir=tmp_path) for a in args]
    assert main(["export", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and err.startswith("error: ")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt, name", [("onnx", "p.onnx"), ("torchscript", "p.pt")])
def test_an_existing_file_is_kept_unless_overwrite(runs, tmp_path, capsys, fmt, name):
    out = tmp_path / name
    out.write_bytes(b"keep")
    command = ["export", str(runs / "box"), "--format", fmt, "--out", str(out)]
    assert main(command) == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err and out.read_bytes() == b"keep"
    assert main([*command, "--overwrite"]) == 0 and out.read_bytes() != b"keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


@pytest.mark.parametrize("missing", ["onnx", "onnxscript"])
def test_onnx_export_without_its_packages_says_what_to_install(runs, tmp_path, capsys, monkeypatch, missing):
    monkeypatch.setitem(sys.modules, missing, None)  # import fails as if the package were not installed
    assert main(["export", str(runs / "box"), "--format", "onnx", "--out", str(tmp_path / "p.onnx")]) == 2
    err = capsys.readouterr().err
    assert err == f"error: ONNX export needs the package '{missing}': pip install 'trustrl[export]'\n"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kind", ["box", "discrete"])
def test_predict_is_sb3s_predict(runs, kind):
    agent = trustrl.load(runs / kind)
    obs = _observations(agent, seed=5)[:16]
    state = object()
    action, returned = agent.predict(obs[0], deterministic=True)  # one observation: one action
    assert returned is None
    _assert_same_actions(np.asarray(action), np.asarray(agent.act(obs[0])))
    actions, returned = agent.predict(obs, state=state, episode_start=np.ones(16, bool), deterministic=True)
    assert returned is state  # passed through: the policy is not recurrent
    _assert_same_actions(actions, agent.act_batch(obs))
    assert actions.shape[0] == 16
    torch.manual_seed(7)
    sampled, _ = agent.predict(obs)  # deterministic=False by default, as in SB3
    torch.manual_seed(7)
    _assert_same_actions(sampled, agent.act_batch(obs, deterministic=False))
    torch.manual_seed(7)
    one, _ = agent.predict(obs[0])
    torch.manual_seed(7)
    _assert_same_actions(np.asarray(one), np.asarray(agent.act(obs[0], deterministic=False)))
    if kind == "box":  # a draw, not the mean
        assert not np.allclose(sampled, agent.act_batch(obs))


def test_predict_refuses_what_is_not_an_observation(runs):
    agent = trustrl.load(runs / "box")
    with pytest.raises(trustrl.TrustrlError, match=r"shape \(3,\) or a batch of them \(first axis\), got shape \(2,\)"):
        agent.predict(np.zeros(2, np.float32))
    with pytest.raises(trustrl.TrustrlError, match="not the \\(observation, info\\) pair"):
        agent.predict((np.zeros(3, np.float32), {}))

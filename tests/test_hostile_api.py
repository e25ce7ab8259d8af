"""The Python API's edge: an argument of the wrong type or value is one TrustrlError naming it, before anything
is written; ``Agent.act`` refuses observations of the wrong shape, of no numbers, or not finite."""

import gymnasium as gym
import numpy as np
import pytest
from tiny_runs import TINY, tiny_run

import trustrl
from trustrl.cli import main
from trustrl.errors import TrustrlError


@pytest.fixture(scope="module")
def cartpole_run(tmp_path_factory):
    return tiny_run(tmp_path_factory, "cartpole-trpo")


@pytest.fixture(scope="module")
def pendulum_run(tmp_path_factory):
    return tiny_run(tmp_path_factory, "pendulum-trpo")


def make_failing_env():
    raise RuntimeError("no licence for this simulator")


CALLS = {
    "train run_dir=123": (lambda run, out: trustrl.train("cartpole-trpo", run_dir=123), "run_dir"),
    "train overrides=None": (lambda run, out: trustrl.train("cartpole-trpo", overrides=None, run_dir=out),
                             "overrides"),
    "train overrides a string": (lambda run, out: trustrl.train("cartpole-trpo", overrides="run.seed=1", run_dir=out),
                                 "overrides"),
    "train progress='yes'": (lambda run, out: trustrl.train("cartpole-trpo", progress="yes", run_dir=out), "progress"),
    "train overwrite='no'": (lambda run, out: trustrl.train("cartpole-trpo", overwrite="no", run_dir=out),
                             "overwrite"),
    "train command=5": (lambda run, out: trustrl.train("cartpole-trpo", command=5, run_dir=out), "command"),
    "train algo=5": (lambda run, out: trustrl.train("CartPole-v1", algo=5, run_dir=out), "algo"),
    "train offline=5": (lambda run, out: trustrl.train("cartpole-trpo", offline=5, run_dir=out), "offline"),
    "train offline=''": (lambda run, out: trustrl.train("cartpole-trpo", offline="", run_dir=out), "offline"),
    "train env=123": (lambda run, out: trustrl.train(env=123, run_dir=out), "env"),
    "train env function raises": (lambda run, out: trustrl.train(env=make_failing_env, run_dir=out,
                                                                 overrides=TINY, progress=False),
                                  "make_failing_env() raised RuntimeError: no licence for this simulator"),
    "load(None)": (lambda run, out: trustrl.load(None), "run"),
    "load(123)": (lambda run, out: trustrl.load(123), "run"),
    "load env_kwargs='x'": (lambda run, out: trustrl.load(run, env_kwargs="x"), "env_kwargs"),
    "load env=5": (lambda run, out: trustrl.load(run, env=5), "env"),
    "evaluate(None)": (lambda run, out: trustrl.evaluate(None), "agent"),
    "evaluate episodes='3'": (lambda run, out: trustrl.evaluate(run, episodes="3"), "episodes"),
    "evaluate episodes=0": (lambda run, out: trustrl.evaluate(run, episodes=0), "episodes"),
    "evaluate seed='x'": (lambda run, out: trustrl.evaluate(run, seed="x"), "seed"),
    "evaluate deterministic='no'": (lambda run, out: trustrl.evaluate(run, deterministic="no"), "deterministic"),
    "resume(None)": (lambda run, out: trustrl.resume(None), "run_dir"),
    "resume layout=None": (lambda run, out: trustrl.resume(run, layout=None), "layout"),
    "resume layout a string": (lambda run, out: trustrl.resume(run, layout="run.workers=2"), "layout"),
    "resume env_kwargs=5": (lambda run, out: trustrl.resume(run, env_kwargs=5), "env_kwargs"),
    "resume progress='yes'": (lambda run, out: trustrl.resume(run, progress="yes"), "progress"),
    "export out=None": (lambda run, out: trustrl.export(run, None, "onnx"), "out"),
    "export format=5": (lambda run, out: trustrl.export(run, out.with_suffix(".onnx"), 5), "format"),
}


@pytest.mark.parametrize("case", list(CALLS))
def test_a_wrong_argument_is_one_error_naming_it(case, cartpole_run, tmp_path):
    call, named = CALLS[case]
    out = tmp_path / "out"
    before = sorted(p.name for p in cartpole_run.rglob("*"))
    with pytest.raises(TrustrlError) as error:
        call(cartpole_run, out)
    assert named in str(error.value) and len(str(error.value).splitlines()) == 1
    assert not out.exists() and not out.with_suffix(".onnx").exists()
    assert sorted(p.name for p in cartpole_run.rglob("*")) == before  # nothing of the run touched


OBSERVATIONS = {
    "too short": (np.zeros(3, np.float32), "shape (3,)"),
    "a batch given to act": (np.zeros((2, 4), np.float32), "shape (2, 4)"),
    "a scalar": (np.float32(1.0), "shape ()"),
    "None": (None, "observation"),
    "strings": (np.array(["a", "b", "c", "d"]), "numbers"),
    "a ragged list": ([0.0, [1.0, 2.0], 0.0, 0.0], "observation"),
    "a dict for a Box space": ({"x": np.zeros(4)}, "numbers"),
    "NaN": (np.array([0.0, np.nan, 0.0, 0.0], np.float32), "not finite"),
    "infinity": (np.array([0.0, 0.0, np.inf, 0.0]), "not finite"),
}


@pytest.mark.parametrize("case", list(OBSERVATIONS))
def test_act_refuses_an_observation_it_cannot_act_on(case, cartpole_run):
    obs, message = OBSERVATIONS[case]
    agent = trustrl.load(cartpole_run)
    with pytest.raises(TrustrlError, match="observation") as error:
        agent.act(obs)
    assert message in str(error.value)


def test_act_batch_refuses_a_batch_of_the_wrong_shape_or_with_a_nan(cartpole_run):
    agent = trustrl.load(cartpole_run)
    with pytest.raises(TrustrlError, match=r"shape \(2, 3\)"):
        agent.act_batch(np.zeros((2, 3), np.float32))
    batch = np.zeros((3, 4), np.float32)
    batch[2, 1] = np.nan
    with pytest.raises(TrustrlError, match="observation 2 .*not finite"):
        agent.act_batch(batch)
    assert agent.act_batch(np.zeros((3, 4), np.float32)).shape == (3,)


def test_a_box_policy_refuses_a_nan_observation_rather_than_act_outside_its_bounds(pendulum_run):
    agent = trustrl.load(pendulum_run)
    with pytest.raises(TrustrlError, match="not finite"):
        agent.act(np.array([np.nan, 0.0, 0.0], np.float32))
    env = gym.make("Pendulum-v1")
    obs, _ = env.reset(seed=0)
    action = agent.act(obs)  # a good observation still acts, within the bounds
    assert action.shape == (1,) and np.all(np.abs(action) <= 2.0)


def test_an_empty_offline_dataset_is_refused_not_trained_online(tmp_path, capsys):
    run = tmp_path / "r"
    assert main(["train", "cartpole-trpo", "--offline", "", "--run-dir", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "--offline" in err and len(err.splitlines()) == 1
    assert not run.exists()

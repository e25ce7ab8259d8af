"""MultiDiscrete and MultiBinary actions: spaces recorded and refused, batches in the space's dtypes, every
algorithm running, TRPO learning, checkpoints acting, datasets recording the behaviour policy."""

import json
import math

import gymnasium as gym
import multi_action_envs  # noqa: F401 -- registers MatchDigits-v0 and MatchBits-v0
import numpy as np
import pytest
import torch

from trustrl import config
from trustrl.agent import load
from trustrl.algos import ALGORITHMS
from trustrl.api import evaluate
from trustrl.cli import main
from trustrl.datasets.collect import collect
from trustrl.datasets.read import read_dataset
from trustrl.envs import check_spaces, describe_spaces, make_vec_env
from trustrl.errors import CheckpointError, ConfigError
from trustrl.nets import make_policy
from trustrl.normalization import ObsNormalizer, RewardScaler
from trustrl.run import resume, train, train_offline
from trustrl.samplers.vector import VectorSampler

DIGITS, BITS = "multi_action_envs:MatchDigits-v0", "multi_action_envs:MatchBits-v0"
OBS = gym.spaces.Box(-1.0, 1.0, (2,))


def _train(tmp_path, env_id, name, *overrides, algo="trpo"):
    cfg = config.load(env_id, ["run.n_steps=64", "env.n_envs=4", "run.eval_every=0", *overrides], algo=algo)
    train(cfg, tmp_path / name, progress=False)
    return tmp_path / name


def test_spaces_record_the_action_type_and_sizes():
    digits = gym.spaces.MultiDiscrete([3, 4], start=[-2, 1])
    assert describe_spaces(OBS, digits) == {
        "obs_shape": [2], "action": {"type": "multi_discrete", "nvec": [3, 4], "start": [-2, 1]}}
    assert describe_spaces(OBS, gym.spaces.MultiBinary(5))["action"] == {"type": "multi_binary", "n": 5}
    assert describe_spaces(OBS, digits) != describe_spaces(OBS, gym.spaces.MultiDiscrete([3, 4]))
    check_spaces(OBS, digits, "ok")
    check_spaces(OBS, gym.spaces.MultiBinary(5), "ok")


@pytest.mark.parametrize("space, message", [
    (gym.spaces.MultiDiscrete([[2, 3], [4, 5]]), "MultiDiscrete actions must be a non-empty vector"),
    (gym.spaces.MultiBinary([2, 3]), "MultiBinary actions must be a non-empty vector"),
    (gym.spaces.Discrete(3, start=1), "Discrete actions must start at 0"),
    (gym.spaces.Tuple([gym.spaces.Discrete(2)]), "actions must be Box, Discrete, MultiDiscrete or MultiBinary"),
])  # fmt: skip
def test_action_spaces_no_head_fits_are_refused(space, message):
    with pytest.raises(ConfigError, match=message):
        check_spaces(OBS, space, "env")


def test_cli_refuses_a_two_dimensional_multi_binary_space_in_one_line(tmp_path, capsys):
    code = main(["train", BITS, "--run-dir", str(tmp_path / "r"), "--set", "env.kwargs={shape=[2, 2]}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "MultiBinary actions must be a non-empty vector" in err[0], err
    assert not (tmp_path / "r" / "metrics.csv").exists()


@pytest.mark.parametrize("env_id, dtype, width", [(DIGITS, torch.int64, 3), (BITS, torch.int8, 4)])
def test_batches_hold_env_actions_in_the_space_dtype_with_the_acting_log_probs(env_id, dtype, width):
    envs = make_vec_env(config.EnvConfig(id=env_id, n_envs=3))
    space = envs.single_action_space
    torch.manual_seed(0)
    policy = make_policy(envs.single_observation_space, space, config.PolicyConfig(out_gain=1.0))
    sampler = VectorSampler(envs, ObsNormalizer(envs.single_observation_space.shape, clip=1e9),
                            RewardScaler(3, 0.99, False, clip=1e9), 50, seed=1)
    batch = sampler.collect(policy)
    assert batch.actions.shape == (50, 3, width) and batch.actions.dtype == dtype
    assert all(space.contains(a.numpy()) for a in batch.actions.reshape(-1, width))  # the env also checks
    with torch.no_grad():
        expected = policy(batch.obs).log_prob(batch.actions)
    torch.testing.assert_close(batch.log_probs, expected)
    # the env's reward says how many coordinates matched: the stored actions are what the env was sent
    assert 0.0 < float(batch.rewards.mean()) < 1.0
    sampler.close()


@pytest.mark.parametrize("env_id, threshold", [(DIGITS, 8.5), (BITS, 9.0)])
def test_trpo_learns_to_match_the_target(tmp_path, env_id, threshold):
    """A uniform policy earns 3.6 (digits) and 5 (bits) of the 10 a perfect one earns."""
    run = _train(tmp_path, env_id, "run", "run.total_steps=4096")
    result = evaluate(run, episodes=20)
    assert result.mean_return >= threshold, result.mean_return


@pytest.mark.parametrize("env_id", [DIGITS, BITS])
@pytest.mark.parametrize("algo", [*ALGORITHMS, "vine"])
def test_every_algorithm_runs_with_vector_actions(tmp_path, env_id, algo):
    vine = algo == "vine"
    overrides = ["run.total_steps=1024", *(["run.sampling=\"vine\"", "vine.rollout_set=8"] if vine else [])]
    run = _train(tmp_path, env_id, algo, *overrides, algo="trpo" if vine else algo)
    header, *rows = [line.split(",") for line in (run / "metrics.csv").read_text().splitlines()]
    assert len(rows) >= 2
    for name in ("value_loss", "entropy"):
        if name in header:
            assert all(math.isfinite(float(row[header.index(name)])) for row in rows[1:]), name
    assert math.isfinite(evaluate(run, episodes=2).mean_return)


def test_a_checkpoint_acts_in_the_space_and_refuses_other_spaces(tmp_path):
    run = _train(tmp_path, DIGITS, "digits", "run.total_steps=512")
    agent = load(run)
    env = gym.make("MatchDigits-v0")
    obs, _ = env.reset(seed=3)
    action = agent.act(obs)
    assert action.dtype == np.int64 and env.action_space.contains(action)
    with torch.no_grad():
        mode = agent.policy(torch.from_numpy(agent.obs_norm.normalize(obs[None]))).mode()[0].numpy()
    assert np.array_equal(action, mode)
    assert np.all(action >= env.action_space.start)
    drawn = agent.act_batch(np.repeat(obs[None], 200, 0), deterministic=False)
    assert drawn.shape == (200, 3) and all(env.action_space.contains(a) for a in drawn)
    with pytest.raises(CheckpointError, match="multi_discrete"):
        load(run, env_kwargs={"start": [0, 0, 0]})  # same sizes, other offsets
    with pytest.raises(CheckpointError, match="multi_binary"):
        load(run, env=BITS)

    bits = load(_train(tmp_path, BITS, "bits", "run.total_steps=512"))
    obs, _ = gym.make("MatchBits-v0").reset(seed=0)
    action = bits.act(obs)
    assert action.dtype == np.int8 and action.shape == (4,) and set(action.tolist()) <= {0, 1}


@pytest.mark.parametrize("env_id, dtype, width", [(DIGITS, np.int64, 3), (BITS, np.int8, 4)])
def test_datasets_record_the_behaviour_policy_and_offline_trpo_beats_it(tmp_path, monkeypatch, env_id, dtype, width):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    run = _train(tmp_path, env_id, "behaviour", "run.total_steps=1024")
    name = env_id.split(":")[1].lower().replace("-v0", "")
    collect(f"test/{name}-v0", run, episodes=30)
    loaded = load(run)
    data = read_dataset(f"test/{name}-v0")
    for ep in data.episodes[:5]:
        assert ep.actions.dtype == dtype and ep.actions.shape == (ep.length, width)
        with torch.no_grad():
            dist = loaded.policy(torch.from_numpy(loaded.obs_norm.normalize(ep.observations[:-1])))
        np.testing.assert_allclose(ep.log_probs, dist.log_prob(torch.from_numpy(ep.actions)), atol=1e-5)
        np.testing.assert_allclose(ep.params["logits"], dist.logits, atol=1e-5)

    collect(f"test/{name}-random-v0", random=True, env_id=env_id, episodes=3)
    ep = read_dataset(f"test/{name}-random-v0").episodes[0]
    sizes = (3, 4, 2) if env_id == DIGITS else (2, 2, 2, 2)
    np.testing.assert_allclose(ep.log_probs, -sum(math.log(n) for n in sizes), rtol=1e-6)  # uniform
    assert ep.actions.dtype == dtype and all(gym.make(env_id).action_space.contains(a) for a in ep.actions)

    cfg = config.load(env_id, ["offline.epochs=5"])
    result = train_offline(cfg, tmp_path / "offline", dataset=f"test/{name}-v0", progress=False, log=lambda m: None)
    behaviour = result.extra["behaviour_return_mean"]
    final = evaluate(result.run_dir, episodes=10).mean_return
    assert final > behaviour + 1.0, (final, behaviour)


@pytest.mark.parametrize("env_id", [DIGITS, BITS])
def test_worker_processes_give_the_run_of_one_process_byte_for_byte(tmp_path, env_id):
    one = _train(tmp_path, env_id, "one", "run.total_steps=768", "env.n_envs=3")
    two = _train(tmp_path, env_id, "two", "run.total_steps=768", "env.n_envs=3", "run.workers=2")
    assert (one / "metrics.csv").read_bytes() == (two / "metrics.csv").read_bytes()
    sha = lambda run: json.loads((run / "checkpoints" / "last.json").read_text())["weights_sha256"]  # noqa: E731
    assert sha(one) == sha(two)


@pytest.mark.parametrize("layout", [[], ["run.async_sampling=true", "run.workers=2"]])
def test_a_resumed_run_is_the_run_in_one_go(tmp_path, layout):
    common = ["run.checkpoint_every=1", *layout]
    whole = _train(tmp_path, DIGITS, "whole", "run.total_steps=1536", *common)
    part = _train(tmp_path, DIGITS, "part", "run.total_steps=768", *common)
    resume(part, total_steps=1536, progress=False)
    assert (whole / "metrics.csv").read_bytes() == (part / "metrics.csv").read_bytes()

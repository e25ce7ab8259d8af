"""Every algorithm on Discrete and Box actions, and the pieces of math that are their own."""

import copy
import math

import gymnasium as gym
import numpy as np
import pytest
import torch

from trustrl import config
from trustrl.advantages import compute_advantages
from trustrl.algos import ALGORITHMS, make_algorithm
from trustrl.algos.npg import NPG
from trustrl.algos.trpo import TRPO
from trustrl.api import evaluate
from trustrl.config import PolicyConfig
from trustrl.envs import make_vec_env
from trustrl.nets import make_critic, make_policy
from trustrl.normalization import ObsNormalizer, RewardScaler
from trustrl.run import train
from trustrl.samplers.vector import VectorSampler

ENVS = {"cartpole": "CartPole-v1", "pendulum": "Pendulum-v1"}
NOT_LEARNED = {"step", "update", "episode_return_mean", "episode_length_mean", "episodes",
               "eval_return_mean", "eval_return_std", "eval_length_mean"}  # nan between evaluations


def _short_run(tmp_path, preset, overrides=()):
    cfg = config.load(preset, ["run.total_steps=1024", "run.n_steps=64", "env.n_envs=4", *overrides])
    run = tmp_path / preset
    train(cfg, run, progress=False)
    header, *rows = [line.split(",") for line in (run / "metrics.csv").read_text().splitlines()]
    updates = [row for row in rows if row[header.index("update")] != "0"]  # row 0: the starting policy's evaluation
    return cfg, run, header, updates


@pytest.mark.parametrize("env", ENVS)
@pytest.mark.parametrize("algo", ALGORITHMS)
def test_short_run_gives_finite_metrics_and_a_loadable_checkpoint(tmp_path, algo, env):
    cfg, run, header, rows = _short_run(tmp_path, f"{env}-{algo}")
    assert cfg.algo.name == algo and cfg.env.id == ENVS[env]
    assert len(rows) == 4
    for row in rows:
        for key, value in zip(header, row):
            if key not in NOT_LEARNED:
                assert math.isfinite(float(value)), (key, value)
    assert {"value_loss_before", "value_loss", "explained_variance"} <= set(header)
    ev = evaluate(run, episodes=1)
    assert math.isfinite(ev.mean_return)


@pytest.mark.parametrize(
    "preset, overrides",
    [
        ("pendulum-reinforce", ["critic.fit=lbfgs", "run.n_steps=256"]),
        ("cartpole-a2c", ["critic.fit=lbfgs", "critic.l2=1e-3"]),
        ("pendulum-ppo", ["critic.fit=lbfgs", "critic.l2=1e-3"]),
        ("pendulum-ppo", ["algo.value_clip=0.2", "algo.target_kl=0.02"]),
        ("cartpole-npg", ["algo.step=fixed", "algo.step_size=0.05", "critic.fit=lbfgs"]),
        ("pendulum-trpo", ["critic.fit=lbfgs", "critic.l2=1e-3", "algo.fvp_fraction=0.2"]),
    ],
)
def test_variants_give_finite_metrics(tmp_path, preset, overrides):
    _, _, header, rows = _short_run(tmp_path, preset, overrides)
    for row in rows:
        for key, value in zip(header, row):
            if key not in NOT_LEARNED:
                assert math.isfinite(float(value)), (key, value)


def _batch(preset, seed=0, n_steps=64, extra=()):
    """A real batch from a preset's env, advantages filled in, and fresh nets for it."""
    cfg = config.load(preset, [f"run.seed={seed}", "env.n_envs=4", *extra])
    torch.manual_seed(seed)
    envs = make_vec_env(cfg.env)
    policy = make_policy(envs.single_observation_space, envs.single_action_space, cfg.policy)
    critic = make_critic(envs.single_observation_space, cfg.critic)
    sampler = VectorSampler(envs, ObsNormalizer(envs.single_observation_space.shape), RewardScaler(4, cfg.algo.gamma),
                            n_steps, seed)
    batch = sampler.collect(policy)
    envs.close()
    compute_advantages(batch, critic, cfg.algo.gamma, cfg.algo.gae_lambda, cfg.algo.normalize_advantage)
    return cfg, batch, policy, critic


@pytest.mark.parametrize("env", ENVS)
def test_npg_and_trpo_compute_the_identical_search_direction(env):
    cfg, batch, policy, critic = _batch(f"{env}-trpo", extra=["algo.fvp_fraction=0.5"])
    npg_cfg = config.load(f"{env}-npg", ["algo.fvp_fraction=0.5"]).algo
    npg_cfg.max_kl, npg_cfg.damping, npg_cfg.cg_iters = cfg.algo.max_kl, cfg.algo.damping, cfg.algo.cg_iters
    trpo = TRPO(policy, critic, cfg.algo, cfg.critic, torch.Generator().manual_seed(3))
    npg = NPG(copy.deepcopy(policy), copy.deepcopy(critic), npg_cfg, cfg.critic, torch.Generator().manual_seed(3))
    a, b = trpo.search_direction(batch), npg.search_direction(batch)
    assert torch.equal(a.direction, b.direction) and torch.equal(a.loss_grad, b.loss_grad)
    assert torch.equal(a.curvature, b.curvature) and a.cg.iterations == b.cg.iterations
    assert a.direction.norm() > 0


def test_npg_kl_step_is_trpo_full_step_when_the_line_search_accepts_it():
    cfg, batch, policy, critic = _batch("cartpole-trpo", extra=["algo.max_kl=0.001"])
    npg_cfg = config.NPGConfig(max_kl=0.001, damping=cfg.algo.damping, cg_iters=cfg.algo.cg_iters)
    trpo_policy, npg_policy = copy.deepcopy(policy), copy.deepcopy(policy)
    trpo = TRPO(trpo_policy, copy.deepcopy(critic), cfg.algo, cfg.critic, torch.Generator().manual_seed(0))
    npg = NPG(npg_policy, copy.deepcopy(critic), npg_cfg, cfg.critic, torch.Generator().manual_seed(0))
    t_stats, n_stats = trpo.update(batch), npg.update(batch)
    assert t_stats["line_search_accepted"] == 1.0 and t_stats["step_fraction"] == 1.0
    for p, q in zip(trpo_policy.parameters(), npg_policy.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-7)
    assert n_stats["kl"] == pytest.approx(t_stats["kl"], rel=1e-5)
    assert 0 < n_stats["kl"] < 2 * 0.001  # the quadratic model is close at a small radius


def test_npg_fixed_step_moves_step_size_times_the_direction():
    cfg, batch, policy, critic = _batch("cartpole-npg", extra=["algo.step=fixed", "algo.step_size=0.01"])
    algo = NPG(policy, critic, cfg.algo, cfg.critic, torch.Generator().manual_seed(0))
    before = torch.nn.utils.parameters_to_vector(policy.parameters()).detach().clone()
    direction = NPG(copy.deepcopy(policy), critic, cfg.algo, cfg.critic, torch.Generator()).search_direction(batch).direction
    algo.update(batch)
    after = torch.nn.utils.parameters_to_vector(policy.parameters()).detach()
    torch.testing.assert_close(after - before, 0.01 * direction, rtol=1e-5, atol=1e-7)


def test_reinforce_weights_are_returns_to_go_minus_the_baseline_bootstrapped_at_the_batch_cut():
    """lambda = 1: the advantage of every step is G_t - V(s_t), where an episode still running at the end
    of the batch bootstraps G from V(last observation) -- no step is dropped, none depends on the future."""
    cfg, batch, policy, critic = _batch("cartpole-reinforce", n_steps=80)
    compute_advantages(batch, critic, cfg.algo.gamma, 1.0, normalize=False)
    rewards, terminated = batch.rewards.numpy(), batch.terminated.numpy()
    assert not batch.truncated.any()  # CartPole's 500-step limit is not reached in 80 steps
    with torch.no_grad():
        v_last = critic(batch.last_obs).numpy()
    T, N = rewards.shape
    expected = np.zeros((T, N), np.float32)
    for n in range(N):
        G = float(v_last[n])
        for t in reversed(range(T)):
            G = rewards[t, n] + (0.0 if terminated[t, n] else cfg.algo.gamma * G)
            expected[t, n] = G
    assert terminated.any()
    torch.testing.assert_close(batch.advantages, torch.from_numpy(expected) - batch.values, rtol=1e-5, atol=1e-4)


def test_reinforce_without_a_baseline_is_refused_before_anything_is_written(tmp_path, capsys):
    from trustrl.cli import main

    assert main(["train", "cartpole-reinforce", "--set", "algo.baseline=false", "--run-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: algo.baseline = false is not supported") and len(err.splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_reinforce_gae_lambda_must_be_one():
    with pytest.raises(config.ConfigError, match="gae_lambda must be 1.0 for reinforce"):
        config.load("cartpole-reinforce", ["algo.gae_lambda=0.95"])


def test_ppo_early_stop_on_target_kl():
    cfg, batch, policy, critic = _batch("cartpole-ppo", extra=["algo.target_kl=1e-6", "algo.lr=1e-2"])
    stats = make_algorithm(cfg, policy, critic, torch.Generator().manual_seed(0)).update(batch)
    assert stats["early_stopped"] == 1.0 and 0 < stats["epochs_completed"] < cfg.algo.epochs
    cfg.algo.target_kl = None
    stats = make_algorithm(cfg, policy, critic, torch.Generator().manual_seed(0)).update(batch)
    assert stats["early_stopped"] == 0.0 and stats["epochs_completed"] == cfg.algo.epochs


def test_ppo_value_clipping_limits_the_critic_step():
    """With a tiny value_clip, the clipped loss has no gradient once V leaves the band around V_old."""
    cfg, batch, policy, critic = _batch("pendulum-ppo", extra=["algo.value_clip=1e-4", "critic.lr=1e-2"])
    free = copy.deepcopy(critic)
    make_algorithm(cfg, copy.deepcopy(policy), critic, torch.Generator().manual_seed(0)).update(batch)
    cfg.algo.value_clip = None
    make_algorithm(cfg, copy.deepcopy(policy), free, torch.Generator().manual_seed(0)).update(batch)
    obs, old = batch.flat("obs"), batch.flat("values")
    with torch.no_grad():
        moved_clipped = (critic(obs) - old).abs().mean()
        moved_free = (free(obs) - old).abs().mean()
    assert moved_clipped < 0.35 * moved_free  # 0.12-0.25 over the batches of seeds 0-5; 1 without the clip


def test_a_stale_batch_is_weighted_by_the_policy_that_acted_with_the_trust_region_around_the_current_one():
    """Surrogate mean(pi_theta / beta * A): its value at theta against numpy, its gradient against the
    importance-weighted score function; the KL is to the current policy (zero before any step)."""
    from trustrl.algos.natural import policy_objective
    from trustrl.config import TRPOConfig

    torch.manual_seed(0)
    policy = make_policy(gym.spaces.Box(-1, 1, (3,)), gym.spaces.Box(-1, 1, (2,)), PolicyConfig(hidden=(8,), out_gain=1.0))
    obs, actions, adv = torch.randn(64, 3), torch.randn(64, 2), torch.randn(64)
    behaviour = policy(obs).log_prob(actions).detach() + 0.3 * torch.randn(64)  # another policy's log-probs
    cfg = TRPOConfig(entropy_coef=0.0)
    objective = policy_objective(policy, obs, actions, adv, cfg, torch.Generator(), behaviour)
    current = policy(obs).log_prob(actions).detach()
    weights = np.exp(current.double().numpy() - behaviour.double().numpy())
    assert objective.surrogate().item() == pytest.approx(float(np.mean(weights * adv.double().numpy())), rel=1e-5)
    grads = torch.autograd.grad(objective.surrogate(), list(policy.parameters()))
    score = torch.autograd.grad((torch.from_numpy(weights).float() * adv * policy(obs).log_prob(actions)).mean(),
                                list(policy.parameters()))
    for g, s in zip(grads, score):
        torch.testing.assert_close(g, s, rtol=1e-4, atol=1e-6)
    assert objective.mean_kl().item() == pytest.approx(0.0, abs=1e-7)

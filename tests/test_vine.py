"""Vine sampling: exact Q-values on a tiny MDP, both surrogates against independent math, common random
numbers, env copies left as they were, the same bits in every layout and after a resume, clear refusals."""

import csv
import re

import gymnasium as gym
import numpy as np
import pytest
import torch
from continued import assert_extended_is_the_run_in_one_go

from trustrl import checkpoint, config
from trustrl.advantages import compute_advantages
from trustrl.algos import make_algorithm
from trustrl.algos.natural import vine_objective
from trustrl.algos.vine import vine_surrogate
from trustrl.cli import main
from trustrl.config import EnvConfig
from trustrl.envs import make_vec_env
from trustrl.errors import ConfigError
from trustrl.nets import make_critic, make_policy, numpy_actor
from trustrl.normalization import ObsNormalizer, RewardScaler
from trustrl.run import resume, train
from trustrl.samplers.fragments import FragmentCollector
from trustrl.samplers.pools import LocalPool
from trustrl.samplers.vector import VectorSampler
from trustrl.samplers.vine import VineSampler

# ----------------------------------------------------------------------------- a tiny MDP with known Q

REWARD = np.array([[1.0, 0.0], [0.0, 2.0], [0.5, 0.25]])  # choice state s, action a
TAIL = np.array([[0, 1], [1, 0], [1, 1]])  # the tail (s, a) leads to
TAIL_REWARD = np.array([1.0, -1.0])  # every step of a tail, whatever the action
TAIL_STEPS = 3


class TwoStage(gym.Env):
    """One choice among 2 actions in one of 3 states, then a tail of 3 steps whose reward the choice fixed.

    Q is known in closed form (:func:`exact_q`) and the state is settable (``snapshot_state`` /
    ``restore_state``), so vine branches must find Q exactly.
    """

    observation_space = gym.spaces.Box(-1.0, 1.0, (6,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.choice, self.tail, self.remaining = int(self.np_random.integers(3)), None, 0
        return self._obs(), {}

    def step(self, action):
        if self.tail is None:
            reward = REWARD[self.choice, action]
            self.tail, self.choice, self.remaining = int(TAIL[self.choice, action]), None, TAIL_STEPS
            return self._obs(), float(reward), False, False, {}
        self.remaining -= 1
        return self._obs(), float(TAIL_REWARD[self.tail]), self.remaining == 0, False, {}

    def _obs(self):
        obs = np.zeros(6, np.float32)
        if self.tail is None:
            obs[self.choice] = 1.0
        else:
            obs[3 + self.tail] = 1.0
            obs[5] = self.remaining / TAIL_STEPS
        return obs

    def snapshot_state(self):
        return {"choice": self.choice, "tail": self.tail, "remaining": self.remaining}

    def restore_state(self, state):
        self.choice, self.tail, self.remaining = state["choice"], state["tail"], state["remaining"]


class Sealed(TwoStage):
    """The same MDP with no way to set its state."""

    snapshot_state = None
    restore_state = None


gym.register("trustrl-test/TwoStage-v0", entry_point=TwoStage)
gym.register("trustrl-test/Sealed-v0", entry_point=Sealed)
GAMMA = 0.9


def exact_q(obs: np.ndarray) -> np.ndarray:
    """Q(s, a) for both actions from an observation of :class:`TwoStage`."""
    tail_value = lambda kind, steps: TAIL_REWARD[kind] * sum(GAMMA**j for j in range(steps))  # noqa: E731
    if obs[:3].any():
        s = int(obs[:3].argmax())
        return np.array([REWARD[s, a] + GAMMA * tail_value(TAIL[s, a], TAIL_STEPS) for a in (0, 1)])
    kind, remaining = int(obs[3:5].argmax()), int(round(obs[5] * TAIL_STEPS))
    return np.full(2, tail_value(kind, remaining))


def _vine_sampler(cfg, policy_seed=0):
    torch.manual_seed(policy_seed)
    envs = make_vec_env(cfg.env)
    pool = LocalPool(envs)
    obs_space, act_space = pool.observation_space, pool.action_space
    trunk = VectorSampler(pool, ObsNormalizer(obs_space.shape, cfg.env.norm_obs, cfg.env.clip_obs),
                          RewardScaler(cfg.env.n_envs, cfg.algo.gamma, cfg.env.norm_reward, cfg.env.clip_reward),
                          cfg.run.n_steps, cfg.run.seed)
    policy = make_policy(obs_space, act_space, cfg.policy)
    return VineSampler(trunk, cfg.vine, cfg.run.seed), policy, make_critic(obs_space, cfg.critic)


def _two_stage(*extra):
    return config.load("trustrl-test/TwoStage-v0", [
        "env.n_envs=2", "env.norm_obs=false", "run.n_steps=8", f"algo.gamma={GAMMA}", "run.sampling=vine",
        "vine.rollout_set=8", "vine.horizon=6", "vine.bootstrap=false", "policy.out_gain=1.0", *extra,
    ])  # fmt: skip


def test_branches_find_the_exact_q_values_of_a_tiny_mdp_and_the_surrogate_its_exact_gradient():
    cfg = _two_stage("algo.normalize_advantage=false")
    sampler, policy, critic = _vine_sampler(cfg)
    batch = sampler.collect(policy)
    compute_advantages(batch, critic, cfg.algo.gamma, cfg.algo.gae_lambda, False)
    branches = batch.branches
    assert branches.exact and branches.actions.tolist() == [[0, 1]] * 8
    expected = np.stack([exact_q(o) for o in branches.obs.numpy()])
    assert branches.obs[:, :3].any() and (~branches.obs[:, :3].any(dim=1)).any(), "choice and tail states both"
    np.testing.assert_allclose(branches.q_values.numpy(), expected, rtol=1e-6)
    # Every simulated step counts: the trunk, and each branch up to the episode's end.
    assert sampler.total_steps == 16 + int(branches.lengths.sum())

    # L(theta) = mean_n sum_a pi_theta(a|s_n) A(s_n, a); for softmax logits z, dL/dz_na = pi_na (A_na - sum_b pi_nb A_nb) / M.
    objective = vine_objective(policy, branches, cfg.algo, torch.Generator().manual_seed(0))
    params = list(policy.parameters())
    grad = torch.autograd.grad(objective.surrogate(), params, allow_unused=True)
    logits = policy.logits_net(branches.obs)
    pi = torch.softmax(logits, -1).detach()
    adv = torch.from_numpy(expected - (pi.numpy() * expected).sum(-1, keepdims=True)).float()
    np.testing.assert_allclose(branches.advantages.numpy(), adv.numpy(), rtol=1e-5, atol=1e-6)
    assert objective.surrogate().item() == pytest.approx(float((pi * adv).sum(-1).mean()), abs=1e-6)
    d_logits = pi * (adv - (pi * adv).sum(-1, keepdim=True)) / len(adv)
    expected_grad = torch.autograd.grad(logits, params, grad_outputs=d_logits, allow_unused=True)
    for g, e in zip(grad, expected_grad):
        if e is None:
            assert g is None or not g.any()
        else:
            torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-7)
    sampler.close()


def test_the_kl_can_cover_the_whole_trunk_and_the_critic_learn_the_values_the_branches_found():
    cfg = _two_stage("algo.normalize_advantage=false", "vine.kl_states=trunk", "vine.critic_on_branches=true",
                     "vine.bootstrap=true")
    sampler, policy, critic = _vine_sampler(cfg)
    batch = sampler.collect(policy)
    compute_advantages(batch, critic, cfg.algo.gamma, cfg.algo.gae_lambda, False)
    branches, trunk = batch.branches, batch.flat("obs")
    # A rollout state's value from its branches: sum_a pi_old(a|s) Q(s, a), Q exact on this MDP.
    with torch.no_grad():
        old_pi = torch.softmax(policy.logits_net(trunk), -1)
        pi = torch.softmax(policy.logits_net(branches.obs), -1)
    q = np.stack([exact_q(o) for o in branches.obs.numpy()])
    np.testing.assert_allclose(branches.values.numpy(), (pi.numpy() * q).sum(-1), rtol=1e-5)

    algo = make_algorithm(cfg, policy, critic, torch.Generator().manual_seed(0))
    over_trunk = algo.objective(batch)
    over_rollout = vine_objective(policy, branches, cfg.algo, torch.Generator().manual_seed(0))
    branches.kl_states = "rollout"  # the paper's constraint, on the states of the surrogate only
    as_in_the_paper = algo.objective(batch)
    assert over_trunk.surrogate().item() == over_rollout.surrogate().item()  # the surrogate is the rollout states'
    with torch.no_grad():  # move the policy; the two KLs are then means over different states
        for p in policy.parameters():
            p.add_(0.3 * torch.randn_like(p))
        new_pi = torch.softmax(policy.logits_net(trunk), -1)
    per_state = (old_pi * (old_pi.log() - new_pi.log())).sum(-1)  # KL(old || new) of a categorical, by hand
    rows = branches.index[:, 0] * batch.obs.shape[1] + branches.index[:, 1]  # (t, n) -> row of the flat trunk
    assert len(trunk) == 16 and len(branches.obs) == 8
    assert over_trunk.mean_kl().item() == pytest.approx(per_state.mean().item(), rel=1e-5)
    assert over_rollout.mean_kl().item() == pytest.approx(per_state[rows].mean().item(), rel=1e-5)
    assert over_trunk.mean_kl().item() != pytest.approx(over_rollout.mean_kl().item(), rel=1e-3)
    assert as_in_the_paper.mean_kl().item() == over_rollout.mean_kl().item()

    seen = {}
    algo.critic_fitter.fit = lambda obs, returns: seen.update(obs=obs, returns=returns) or {}
    algo.fit_critic(batch)
    torch.testing.assert_close(seen["obs"], torch.cat([trunk, branches.obs]))
    torch.testing.assert_close(seen["returns"], torch.cat([batch.flat("returns"), branches.values]))
    sampler.close()


def test_with_sampled_actions_a_states_value_from_its_branches_is_the_mean_of_their_q_values():
    cfg = config.load("pendulum-trpo-vine", ["env.n_envs=2", "run.n_steps=8", "vine.rollout_set=6", "vine.horizon=4"])
    sampler, policy, critic = _vine_sampler(cfg)
    batch = sampler.collect(policy)
    compute_advantages(batch, critic, cfg.algo.gamma, cfg.algo.gae_lambda, False)
    q = batch.branches.q_values.numpy()
    np.testing.assert_allclose(batch.branches.values.numpy(), q.mean(-1), rtol=1e-6)
    np.testing.assert_allclose(batch.branches.advantages.numpy(), q - q.mean(-1, keepdims=True), rtol=1e-5, atol=1e-6)
    sampler.close()


def test_the_self_normalised_surrogate_and_its_gradient_match_independent_formulas():
    torch.manual_seed(3)
    space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    policy = make_policy(gym.spaces.Box(-5.0, 5.0, (3,), np.float32), space, config.PolicyConfig(out_gain=1.0))
    obs, K = torch.randn(5, 3), 4
    with torch.no_grad():
        old = policy(obs)
        actions = old.mean[:, None, :] + old.std[:, None, :] * torch.randn(5, K, 2)
    old_log_probs = old.log_prob(actions.transpose(0, 1)).T
    advantages = torch.randn(5, K)
    with torch.no_grad():  # move the policy off pi_old, so the ratios are not all 1
        for p in policy.parameters():
            p.add_(0.05 * torch.randn_like(p))

    dist = policy(obs)
    log_probs = dist.log_prob(actions.transpose(0, 1)).T
    # numpy: Gaussian densities by hand, then sum_k r_k A_k / sum_k r_k per state, averaged
    mean, std = dist.mean.detach().numpy()[:, None, :], dist.std.detach().numpy()[:, None, :]
    a = actions.numpy()
    log_pdf = (-0.5 * ((a - mean) / std) ** 2 - np.log(std) - 0.5 * np.log(2 * np.pi)).sum(-1)
    r = np.exp(log_pdf - old_log_probs.numpy())
    expected = ((r * advantages.numpy()).sum(-1) / r.sum(-1)).mean()
    value = vine_surrogate(log_probs, old_log_probs, advantages, exact=False)
    assert value.item() == pytest.approx(expected, rel=1e-5)

    # At pi_theta = pi_old the gradient is the score function with the states' mean advantage as baseline.
    log_probs_old = policy(obs).log_prob(actions.transpose(0, 1)).T
    frozen = log_probs_old.detach()
    grad = torch.autograd.grad(vine_surrogate(log_probs_old, frozen, advantages, exact=False),
                               list(policy.parameters()))
    baseline = advantages - advantages.mean(-1, keepdim=True)
    score = (policy(obs).log_prob(actions.transpose(0, 1)).T * baseline).sum(-1).div(K).mean()
    for g, e in zip(grad, torch.autograd.grad(score, list(policy.parameters()))):
        torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-7)


# ----------------------------------------------------------------------------- branches on a real env


def _pendulum_collector(seed=0):
    collector = FragmentCollector(make_vec_env(EnvConfig(id="Pendulum-v1", n_envs=1)))
    collector.reset(seed)
    return collector


def _pendulum_actor():
    torch.manual_seed(0)
    space = make_vec_env(EnvConfig(id="Pendulum-v1", n_envs=1))
    policy = make_policy(space.single_observation_space, space.single_action_space, config.PolicyConfig())
    return numpy_actor(policy), ObsNormalizer((3,), False, 10.0)


def test_branches_with_the_same_action_and_common_noise_return_the_same_q():
    actor, norm = _pendulum_actor()
    collector = _pendulum_collector()
    rng = np.random.default_rng(0)
    collector.collect(actor, norm, rng.standard_normal((6, 1, 1), dtype=np.float32), np.array([[4, 0]]))
    first = np.array([[[0.3], [0.3], [-1.2]]], np.float32)  # branches 0 and 1 take the same action
    out = collector.branch(actor, norm, first, rng.standard_normal((1, 19, 1), dtype=np.float32), 20)
    np.testing.assert_array_equal(out.rewards[0, 0], out.rewards[0, 1])
    assert not np.array_equal(out.rewards[0, 0], out.rewards[0, 2])
    assert out.lengths.tolist() == [[20, 20, 20]]


def test_common_random_numbers_make_q_differences_far_less_noisy():
    """Q(s, a1) - Q(s, a2) over 40 repeats of the branch noise, with one noise sequence per state or one per branch."""
    actor, norm = _pendulum_actor()
    rng = np.random.default_rng(1)
    first = np.array([[[-0.5], [0.5]]], np.float32)
    discounts = 0.95 ** np.arange(30)
    differences = {True: [], False: []}
    for _ in range(40):
        for common in (True, False):
            collector = _pendulum_collector(seed=3)
            collector.collect(actor, norm, np.zeros((3, 1, 1), np.float32), np.array([[2, 0]]))
            shape = (1, 29, 1) if common else (1, 2, 29, 1)
            out = collector.branch(actor, norm, first, rng.standard_normal(shape, dtype=np.float32), 30)
            q = (out.rewards[0] * discounts).sum(-1)
            differences[common].append(q[0] - q[1])
    with_crn, without = np.var(differences[True]), np.var(differences[False])
    assert with_crn < 0.25 * without, (with_crn, without)


def test_branching_leaves_every_env_copy_where_the_trunk_left_it():
    actor, norm = _pendulum_actor()
    noise = np.random.default_rng(2).standard_normal((2, 8, 1, 1), dtype=np.float32)
    plain, branched = _pendulum_collector(), _pendulum_collector()
    plain.collect(actor, norm, noise[0])
    branched.collect(actor, norm, noise[0], np.array([[1, 0], [5, 0]]))
    branched.branch(actor, norm, np.ones((2, 3, 1), np.float32), np.ones((2, 4, 1), np.float32), 5)
    a, b = plain.collect(actor, norm, noise[1]), branched.collect(actor, norm, noise[1])
    for name in ("raw_obs", "actions", "rewards", "last_raw_obs"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


# ----------------------------------------------------------------------------- runs: layouts, resume, refusals

SMALL = ["env.n_envs=3", "run.n_steps=16", "env.max_episode_steps=40", "run.total_steps=4000",
         "run.eval_every=1500", "run.eval_episodes=2", "run.checkpoint_every=2", "run.seed=5",
         "vine.rollout_set=5", "vine.horizon=12", "vine.bootstrap=true"]


def _run(tmp_path, name, preset="cartpole-trpo-vine", *extra):
    return train(config.load(preset, [*SMALL, *extra]), tmp_path / name, progress=False).run_dir


def test_a_vine_run_is_the_same_bits_in_two_worker_processes_and_after_a_resume(tmp_path):
    one = _run(tmp_path, "one")
    two = _run(tmp_path, "two", "cartpole-trpo-vine", "run.workers=2")
    assert (one / "metrics.csv").read_bytes() == (two / "metrics.csv").read_bytes()
    half = _run(tmp_path, "half", "cartpole-trpo-vine", "run.total_steps=2000")
    boundary = checkpoint.load(half).step
    resume(half, total_steps=4000, progress=False)
    assert_extended_is_the_run_in_one_go(half, one, boundary)


@pytest.mark.parametrize("options", [["vine.kl_states=rollout", "vine.critic_on_branches=false"],
                                     ["vine.kl_states=trunk", "vine.critic_on_branches=true"]])
def test_continuous_vine_runs_the_same_in_two_worker_processes(tmp_path, options):
    pendulum = ["env.n_envs=2", "run.n_steps=16", "run.total_steps=1500", "run.seed=1", "vine.rollout_set=4",
                "vine.horizon=5", "run.eval_every=0", *options]
    runs = [train(config.load("pendulum-trpo-vine", [*pendulum, *extra]), tmp_path / name, progress=False).run_dir
            for name, extra in (("one", []), ("two", ["run.workers=2"]))]
    assert (runs[0] / "metrics.csv").read_bytes() == (runs[1] / "metrics.csv").read_bytes()


@pytest.mark.xdist_group("ray")
def test_a_vine_run_on_ray_actors_is_the_run_of_one_process(tmp_path, ray_cluster):
    one = _run(tmp_path, "one", "cartpole-trpo-vine", "run.total_steps=2000")
    ray = _run(tmp_path, "ray", "cartpole-trpo-vine", "run.total_steps=2000", "run.placement=ray", "run.workers=2")
    assert (one / "metrics.csv").read_bytes() == (ray / "metrics.csv").read_bytes()


@pytest.mark.parametrize("preset, overrides, message", [
    ("cartpole-trpo", ["run.placement=vine"], "the vine scheme is run.sampling = 'vine'"),
    ("cartpole-ppo", ["run.sampling=vine"], "needs online TRPO or NPG (not ppo)"),
    ("cartpole-trpo", ["run.sampling=vine", "run.async_sampling=true"], "cannot be combined"),
    ("cartpole-trpo", ["run.sampling=vine", "vine.rollout_set=100", "run.n_steps=8"], "needs 13 states from each"),
    ("cartpole-trpo", ["run.sampling=vine", "vine.branches=1"], "vine.branches must be >= 2"),
    ("cartpole-trpo", ["run.sampling=vine", "vine.kl_states=all"], "vine.kl_states must be one of rollout, trunk"),
    ("cartpole-trpo-vine", ["vine.critic_on_branches=true"], "vine.critic_on_branches needs vine.bootstrap = true"),
    ("cartpole-trpo", ["run.sampling=vine", "env.vectorization=async"], "env.vectorization must be 'sync'"),
])  # fmt: skip
def test_vine_settings_that_cannot_work_are_refused_by_the_config(preset, overrides, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        config.load(preset, overrides)


def test_an_env_whose_state_cannot_be_restored_is_refused_before_anything_is_written(tmp_path, capsys):
    run_dir = tmp_path / "sealed"
    code = main(["train", "trustrl-test/Sealed-v0", "--run-dir", str(run_dir), "--quiet",
                 "--set", "run.sampling=vine", "--set", "vine.rollout_set=4"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and not run_dir.exists()
    assert len(err) == 1 and err[0].startswith("error: run.sampling = 'vine' needs env states it can restore")
    assert "Sealed" in err[0] and "snapshot_state()" in err[0]


def test_an_env_of_your_own_is_snapshotted_through_its_methods_and_only_as_exact_json():
    from trustrl import envs

    env = gym.make("trustrl-test/TwoStage-v0")
    first, _ = env.reset(seed=1)
    snap = envs.snapshot(env)
    assert snap["kind"] == "custom"
    env.step(1)
    envs.restore(env, snap)
    np.testing.assert_array_equal(env.unwrapped._obs(), first)
    assert env.step(0)[1] == REWARD[int(first[:3].argmax()), 0]
    env.unwrapped.snapshot_state = lambda: {"position": np.float64(float("nan"))}
    with pytest.raises(ConfigError, match="JSON cannot hold exactly"):
        envs.snapshot(env)


def test_a_vine_run_spends_its_budget_counting_updates_by_the_steps_taken(tmp_path):
    """Branches that end early (CartPole falls within the horizon) take fewer steps than a batch's nominal size:
    the run goes on while one more batch of the mean size so far fits in its budget, instead of stopping
    after budget // nominal updates (walker2d-trpo with vine sampling trained 11,802 of 30,000 steps)."""
    budget = 4000
    cfg = config.load("cartpole-trpo-vine", [*SMALL, "vine.horizon=40", "run.eval_every=0"])
    result = train(cfg, tmp_path / "r", progress=False)
    nominal = 3 * 16 + 5 * 2 * 40  # the trunk, and every branch's full horizon
    mean = result.steps / result.updates
    assert mean < 0.75 * nominal, "the test needs branches that end early"
    assert result.updates > budget // nominal
    assert result.steps <= budget + nominal and result.steps + mean > budget  # another mean batch would not fit
    rows = list(csv.DictReader(open(tmp_path / "r" / "metrics.csv")))
    assert int(rows[-1]["step"]) == result.steps and int(rows[-1]["update"]) == result.updates

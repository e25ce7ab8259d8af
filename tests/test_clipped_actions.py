"""Box actions clipped to their bounds: importance weights stay unbiased, from draws or censored likelihoods.

The references here are written with ``math.erf`` only, independent of the torch code under test.
"""

import math

import gymnasium as gym
import minari
import numpy as np
import pytest
import torch

from trustrl import config
from trustrl.algos.offline_trpo import OfflineTRPO, censoring_bounds
from trustrl.algos.trpo import TRPOConfig
from trustrl.config.sections import CriticConfig, OfflineConfig, PolicyConfig
from trustrl.datasets.collect import collect
from trustrl.datasets.read import DRAW_KEY, LOG_PROB_KEY, read_dataset
from trustrl.distributions import DiagGaussian, censored_log_prob
from trustrl.errors import TrustrlError
from trustrl.nets import GaussianPolicy, make_critic
from trustrl.normalization import ObsNormalizer, RewardScaler
from trustrl.run import train, train_offline
from trustrl.samplers.dataset import DatasetSampler


@pytest.fixture(autouse=True)
def minari_root(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))


def _cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def _clipped_mean(m: float, s: float, low: float, high: float) -> float:
    """E[clip(X, low, high)] for X ~ N(m, s^2), in closed form."""
    pdf = lambda z: math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)  # noqa: E731
    a, b = (low - m) / s, (high - m) / s
    cdf_a = _cdf(a) if math.isfinite(a) else 0.0
    cdf_b = _cdf(b) if math.isfinite(b) else 1.0
    inside = m * (cdf_b - cdf_a) + s * ((pdf(a) if math.isfinite(a) else 0.0) - (pdf(b) if math.isfinite(b) else 0.0))
    return (low * cdf_a if math.isfinite(a) else 0.0) + inside + (high * (1 - cdf_b) if math.isfinite(b) else 0.0)


def test_censored_log_prob_is_the_tail_mass_on_a_bound_and_the_density_elsewhere():
    m, s = 0.8, 0.5
    dist = DiagGaussian(torch.tensor([[m], [m], [m], [m]], dtype=torch.float64),
                        torch.full((4, 1), math.log(s), dtype=torch.float64))
    low, high = torch.tensor([-1.0], dtype=torch.float64), torch.tensor([1.0], dtype=torch.float64)
    actions = torch.tensor([[1.0], [-1.0], [0.3], [1.5]], dtype=torch.float64)  # 1.5: a draw beyond the bound
    got = censored_log_prob(dist, actions, low, high)
    density = lambda a: -0.5 * ((a - m) / s) ** 2 - math.log(s) - 0.5 * math.log(2 * math.pi)  # noqa: E731
    want = [math.log(1 - _cdf((1.0 - m) / s)), math.log(_cdf((-1.0 - m) / s)), density(0.3), density(1.5)]
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-10)
    # an infinite bound censors nothing, and the gradient stays finite
    mean = torch.tensor([[0.2, 0.2]], requires_grad=True)
    both = DiagGaussian(mean, torch.zeros(1, 2))
    out = censored_log_prob(both, torch.tensor([[1.0, 1.0]]), torch.tensor([-1.0, -math.inf]),
                            torch.tensor([1.0, math.inf]))
    out.sum().backward()
    assert torch.isfinite(mean.grad).all()
    np.testing.assert_allclose(float(out.detach()), math.log(1 - _cdf(0.8)) + density_at(1.0, 0.2, 1.0), rtol=1e-5)


def density_at(a: float, m: float, s: float) -> float:
    return -0.5 * ((a - m) / s) ** 2 - math.log(s) - 0.5 * math.log(2 * math.pi)


CASES = {
    # beta N(0.8, 0.5), pi N(0.9, 0.5), bound 1: about a third of the actions clipped
    "one coordinate": ([0.8], [0.5], [0.9], [0.5], [-1.0], [1.0]),
    "two coordinates, one bound each": ([0.0, -0.3], [0.7, 0.6], [0.3, -0.6], [0.5, 0.8], [-1.0, -0.5], [0.6, math.inf]),
    "bounds never reached": ([0.8], [0.5], [0.9], [0.5], [-10.0], [10.0]),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_importance_weights_are_unbiased_for_clipped_actions(case):
    """E_beta[w] = 1 and E_beta[w f(a)] = E_pi[f(a)], f the executed (clipped) action, within Monte-Carlo
    error: for weights of the draws, and for censored weights of the executed actions; the density at the
    clipped point (what a naive reader computes) is off wherever actions are clipped."""
    mb, sb, mp, sp, lo, hi = (torch.tensor(v, dtype=torch.float64) for v in CASES[case])
    beta, pi = DiagGaussian(mb.expand(1, -1), sb.log().expand(1, -1)), DiagGaussian(mp.expand(1, -1), sp.log().expand(1, -1))
    n = 400_000
    generator = torch.Generator().manual_seed(0)
    draws = mb + sb * torch.randn(n, len(mb), generator=generator, dtype=torch.float64)
    executed = torch.maximum(torch.minimum(draws, hi), lo)
    truth = torch.tensor([_clipped_mean(float(m), float(s), float(a), float(b)) for m, s, a, b in zip(mp, sp, lo, hi)])
    weights = {
        "draws": (pi.log_prob(draws) - beta.log_prob(draws)).exp(),
        "censored": (censored_log_prob(pi, executed, lo, hi) - censored_log_prob(beta, executed, lo, hi)).exp(),
        "density at the clipped point": (pi.log_prob(executed) - beta.log_prob(executed)).exp(),
    }
    clipped = bool((executed != draws).any())
    for name, w in weights.items():
        mean_error = abs(float(w.mean()) - 1.0) / float(w.std() / math.sqrt(n))
        estimate = (w[:, None] * executed).mean(0)
        errors = (estimate - truth).abs() / ((w[:, None] * executed).std(0) / math.sqrt(n))
        if name == "density at the clipped point" and clipped:
            assert mean_error > 10, (name, float(w.mean()))  # biased: the check above can fail
        else:
            assert mean_error < 4, (name, float(w.mean()))
            assert float(errors.max()) < 4, (name, estimate, truth)


def test_collect_records_the_draw_and_offline_training_learns_from_it(tmp_path):
    run = tmp_path / "pendulum"
    # a wide policy (std e ~ 2.7 against bounds of 2): about half the actions are clipped
    train(config.load("pendulum-trpo", ["run.total_steps=2048", "policy.log_std_init=1.0"]), run, progress=False)
    collect("pendulum/wide-v0", run, episodes=2)
    from trustrl.api import load

    loaded = load(run)
    n_clipped = 0
    for ep in minari.load_dataset("pendulum/wide-v0").iterate_episodes():
        draws, actions = ep.infos[DRAW_KEY][:-1], ep.actions
        assert np.isnan(ep.infos[DRAW_KEY][-1]).all()
        np.testing.assert_array_equal(np.clip(draws, -2.0, 2.0), actions)  # stored: what the env executed
        n_clipped += int((np.abs(draws) > 2.0).sum())
        with torch.no_grad():
            dist = loaded.policy(torch.from_numpy(loaded.obs_norm.normalize(ep.observations[:-1])))
        np.testing.assert_allclose(ep.infos[LOG_PROB_KEY][:-1], dist.log_prob(torch.from_numpy(draws)), atol=1e-4)
    assert n_clipped > 100
    data = read_dataset("pendulum/wide-v0")
    assert data.has_draws
    sampler = DatasetSampler(data, ObsNormalizer((3,), False), RewardScaler(1, 0.99, False))
    learned = sampler.batch.actions[sampler.batch.valid]
    assert float(learned.abs().max()) > 2.0  # the draws, not the clipped actions
    notes = []
    cfg = config.load("pendulum-trpo", ["offline.epochs=2", "offline.eval_episodes=1", "offline.critic_rounds=1"])
    result = train_offline(cfg, tmp_path / "offline", dataset="pendulum/wide-v0", progress=False, log=notes.append)
    assert result.extra["behaviour_source"] == "dataset"
    assert not any("censored" in n for n in notes)  # nothing to censor: the draws are known


def test_a_draw_that_does_not_clip_to_its_action_is_refused(tmp_path):
    from minari.data_collector import EpisodeBuffer

    env = gym.make("Pendulum-v1")
    obs, _ = env.reset(seed=0)
    actions = np.array([[2.0], [0.5]], np.float32)
    draws = np.array([[2.7], [0.4], [np.nan]], np.float32)  # step 1: 0.4 is not the stored 0.5
    buffer = EpisodeBuffer(id=0, observations=np.stack([obs] * 3), actions=actions, rewards=np.zeros(2),
                           terminations=np.zeros(2, bool), truncations=np.array([False, True]),
                           infos={LOG_PROB_KEY: np.array([-1.0, -1.0, np.nan]), DRAW_KEY: draws})
    with pytest.warns(UserWarning):
        minari.create_dataset_from_buffers("pendulum/bad-draw-v0", [buffer], env=env)
    with pytest.raises(TrustrlError, match=r"episode 0: infos\['behaviour_draw'\] at step 1 does not clip"):
        read_dataset("pendulum/bad-draw-v0")


def test_the_maximum_likelihood_fit_of_clipped_actions_is_censored():
    """A Gaussian fitted to clipped actions as if they were draws is too narrow; censored, it recovers the std."""
    n, true_std = 20_000, 1.5
    generator = torch.Generator().manual_seed(1)
    obs = torch.randn(n, 1, generator=generator)
    actions = (0.5 * obs + true_std * torch.randn(n, 1, generator=generator)).clamp(-2.0, 2.0)
    fitted = {}
    for name, censor in (("censored", censoring_bounds(gym.spaces.Box(-2.0, 2.0, (1,)))), ("plain", None)):
        torch.manual_seed(0)
        policy = GaussianPolicy(1, 1, PolicyConfig(hidden=[16], log_std_init=0.0))
        critic = make_critic(gym.spaces.Box(-np.inf, np.inf, (1,)), CriticConfig())
        algo = OfflineTRPO(policy, critic, TRPOConfig(), CriticConfig(), torch.Generator().manual_seed(0),
                           OfflineConfig(bc_epochs=10, bc_lr=1e-2), censor_at=censor)
        algo._fit_max_likelihood(obs, actions)
        fitted[name] = float(policy.log_std.detach().exp())
    assert abs(fitted["censored"] - true_std) < 0.08, fitted
    assert fitted["plain"] < true_std - 0.15, fitted


def test_a_dataset_from_minaris_data_collector_fits_beta_and_censors_clipped_actions(tmp_path):
    """Another tool's dataset, written by Minari's DataCollector from a policy that is not trustrl's: no
    log-probabilities, actions clipped to the bounds. beta is fitted (censored), and training runs on it."""
    env = minari.DataCollector(gym.make("Pendulum-v1"))
    rng = np.random.default_rng(0)
    for episode in range(6):
        obs, _ = env.reset(seed=episode)
        done = False
        while not done:
            theta_dot = obs[2]
            action = np.clip([-0.8 * theta_dot + 1.5 * rng.standard_normal()], -2.0, 2.0).astype(np.float32)
            obs, _, terminated, truncated, _ = env.step(action)
            done = terminated or truncated
    with pytest.warns(UserWarning):
        env.create_dataset("pendulum/heuristic-v0", algorithm_name="hand-written linear Gaussian")
    env.close()
    data = read_dataset("pendulum/heuristic-v0")
    assert not data.has_log_probs and not data.has_draws
    notes = []
    cfg = config.load("pendulum-trpo", ["offline.epochs=3", "offline.eval_episodes=1", "offline.critic_rounds=1"])
    result = train_offline(cfg, tmp_path / "r", dataset="pendulum/heuristic-v0", progress=False, log=notes.append)
    assert result.extra["behaviour_source"] == "maximum likelihood"
    assert any("estimated beta by maximum likelihood" in n for n in notes)
    assert any("have a coordinate on a bound of the action space" in n and "censored" in n for n in notes), notes
    assert math.isfinite(result.eval_last)


def test_recorded_densities_at_a_bound_are_replaced_by_tail_masses_of_the_recorded_beta():
    """A dataset that records beta's parameters and log-densities of clipped actions (what collect wrote
    before it kept the draws): at a bound the log-probability is recomputed as the tail mass of the
    recorded Gaussian; elsewhere the recorded value is kept."""
    from minari.data_collector import EpisodeBuffer

    env = gym.make("Pendulum-v1")
    rng = np.random.default_rng(3)
    T, mean, std = 40, 1.2, 1.0
    draws = mean + std * rng.standard_normal((T, 1))
    actions = np.clip(draws, -2.0, 2.0).astype(np.float32)
    density = -0.5 * ((actions[:, 0] - mean) / std) ** 2 - math.log(std) - 0.5 * math.log(2 * math.pi)
    obs, _ = env.reset(seed=0)
    nan = np.full((1, 1), np.nan, np.float32)
    buffer = EpisodeBuffer(
        id=0, observations=np.repeat(obs[None], T + 1, 0), actions=actions, rewards=np.zeros(T),
        terminations=np.zeros(T, bool), truncations=np.r_[np.zeros(T - 1, bool), True],
        infos={LOG_PROB_KEY: np.r_[density, np.nan].astype(np.float32),
               "behaviour_mean": np.r_[np.full((T, 1), mean, np.float32), nan],
               "behaviour_log_std": np.r_[np.full((T, 1), math.log(std), np.float32), nan]})
    with pytest.warns(UserWarning):
        minari.create_dataset_from_buffers("pendulum/densities-v0", [buffer], env=env)
    data = read_dataset("pendulum/densities-v0")
    assert data.has_log_probs and data.has_params and not data.has_draws
    batch = DatasetSampler(data, ObsNormalizer((3,), False), RewardScaler(1, 0.99, False)).batch
    cfg = config.load("pendulum-trpo", ["offline.bc_epochs=1", "offline.critic_rounds=1"])
    policy = GaussianPolicy(3, 1, cfg.policy)
    algo = OfflineTRPO(policy, make_critic(gym.spaces.Box(-np.inf, np.inf, (3,)), cfg.critic), cfg.algo, cfg.critic,
                       torch.Generator().manual_seed(0), cfg.offline,
                       censor_at=censoring_bounds(env.action_space))
    notes = algo.prepare(batch)
    on_bound = np.abs(actions[:, 0]) == 2.0
    assert on_bound.sum() >= 5
    assert any(f"{on_bound.sum()} of {T} actions have a coordinate on a bound" in n for n in notes), notes
    tail = np.where(actions[:, 0] >= 2.0, np.log(1 - _cdf((2.0 - mean) / std)), np.log(_cdf((-2.0 - mean) / std)))
    want = np.where(on_bound, tail, density)
    np.testing.assert_array_equal(batch.actions[batch.valid].numpy(), actions)  # one episode: rows in order
    np.testing.assert_allclose(algo.estimated_log_probs.numpy(), want, rtol=1e-5)

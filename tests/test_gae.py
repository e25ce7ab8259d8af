"""GAE against a naive per-env reference loop, and the truncation bootstrap."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from trustrl.config import CriticConfig, EnvConfig
from trustrl.nets import ValueNet
from trustrl.normalization import ObsNormalizer, RewardScaler
from trustrl.advantages import attach_values, gae
from trustrl.samplers.vector import VectorSampler


def naive_gae(rewards, values, next_values, terminated, truncated, gamma, lam):
    """Each env walked separately, episode by episode, with explicit sums over l."""
    T, N = rewards.shape
    adv = np.zeros((T, N))
    for n in range(N):
        for t in range(T):
            total, discount = 0.0, 1.0
            for k in range(t, T):
                bootstrap = 0.0 if terminated[k, n] else next_values[k, n]
                delta = rewards[k, n] + gamma * bootstrap - values[k, n]
                total += discount * delta
                if terminated[k, n] or truncated[k, n]:
                    break
                discount *= gamma * lam
            adv[t, n] = total
    return adv


@pytest.mark.parametrize("lam", [0.0, 0.95, 1.0])
def test_gae_matches_naive_loop_with_terminated_and_truncated(lam):
    rng = np.random.default_rng(0)
    T, N, gamma = 40, 4, 0.97
    rewards = rng.normal(size=(T, N))
    values = rng.normal(size=(T, N))
    next_values = rng.normal(size=(T, N))
    terminated = rng.random((T, N)) < 0.08
    truncated = (rng.random((T, N)) < 0.08) & ~terminated
    terminated[5, 0] = True  # make sure both kinds occur, in one env and across envs
    truncated[12, 0] = True
    truncated[7, 1] = True
    expected = naive_gae(rewards, values, next_values, terminated, truncated, gamma, lam)
    t = lambda a: torch.as_tensor(a, dtype=torch.float64)  # noqa: E731
    adv, ret = gae(t(rewards), t(values), t(next_values), torch.as_tensor(terminated), torch.as_tensor(truncated), gamma, lam)
    np.testing.assert_allclose(adv.numpy(), expected, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(ret.numpy(), expected + values, rtol=1e-10, atol=1e-10)


def test_truncation_bootstraps_to_infinite_horizon_value():
    """Reward 1 forever, cut by a time limit: with V = 1/(1-gamma) the return is exactly V."""
    T, N, gamma = 30, 3, 0.99
    v = 1.0 / (1.0 - gamma)
    values = torch.full((T, N), v, dtype=torch.float64)
    truncated = torch.zeros(T, N, dtype=torch.bool)
    truncated[9::10] = True
    terminated = torch.zeros_like(truncated)
    adv, ret = gae(torch.ones(T, N, dtype=torch.float64), values, values.clone(), terminated, truncated, gamma, 0.95)
    torch.testing.assert_close(ret, values)
    # Treating the time limit as a termination would be badly biased:
    _, wrong = gae(torch.ones(T, N, dtype=torch.float64), values, values.clone(), truncated, truncated, gamma, 0.95)
    assert wrong[9].max() < 2.0


class ConstantRewardEnv(gym.Env):
    """Reward 1 every step, never terminates; observation 0 at reset, then cycles 0.1 ... 1.0.

    Every observation recurs inside episodes (so the critic is trained on each),
    and the final observation of a 50-step episode (0.1) differs from the reset one (0).
    """

    observation_space = gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([0.0], np.float32), {}

    def step(self, action):
        self.t += 1
        return np.array([(self.t % 10 + 1) / 10.0], np.float32), 1.0, False, False, {}


def test_sampler_and_critic_learn_v_of_infinite_horizon_under_time_limit():
    """End to end through the real sampler: a time limit of 50 and reward 1 must give V ~= 100.

    The sampler bootstraps a truncated step from V(the true final observation),
    so fitting V to its GAE returns converges to 1 / (1 - gamma) = 100 for
    every state; bootstrapping from the reset observation or treating the limit
    as terminal would not.
    """
    torch.manual_seed(0)
    gym.register("trustrl-test/ConstantReward-v0", entry_point=ConstantRewardEnv, max_episode_steps=50)
    env_cfg = EnvConfig(id="trustrl-test/ConstantReward-v0", n_envs=2)
    envs = gym.make_vec(env_cfg.id, num_envs=2, vectorization_mode="sync",
                        vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP})
    from trustrl.config import PolicyConfig
    from trustrl.nets import make_policy

    policy = make_policy(envs.single_observation_space, envs.single_action_space, PolicyConfig())
    critic = ValueNet(1, CriticConfig(hidden=(32,)))
    sampler = VectorSampler(envs, ObsNormalizer((1,), enabled=False), RewardScaler(2, 0.99), n_steps=64, seed=0)
    optimizer = torch.optim.Adam(critic.parameters(), lr=3e-2)
    for _ in range(60):
        batch = sampler.collect(policy)
        assert batch.truncated.any() and len(batch.final_obs) == batch.truncated.sum()
        # final observations are the last of their episodes (0.1), not the reset ones (0)
        torch.testing.assert_close(batch.final_obs, torch.full_like(batch.final_obs, 0.1))
        attach_values(batch, critic)
        _, returns = gae(batch.rewards, batch.values, batch.next_values, batch.terminated, batch.truncated, 0.99, 1.0)
        for _ in range(50):
            loss = (critic(batch.obs) - returns).pow(2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        v = critic(torch.linspace(0, 1, 11).unsqueeze(-1))
    torch.testing.assert_close(v, torch.full_like(v, 100.0), atol=3.0, rtol=0)

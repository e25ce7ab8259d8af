"""The vector sampler's contracts: statistics frozen within a batch, updated once after it; one noise stream per copy."""

import numpy as np
import pytest
import torch

from trustrl import config
from trustrl.envs import make_vec_env
from trustrl.nets import make_policy
from trustrl.normalization import ObsNormalizer, RewardScaler, RunningMeanStd
from trustrl.samplers.vector import VectorSampler, copy_rng


def _sampler(env_id, n_envs, n_steps=32, seed=5, norm_reward=False, norm_obs_steps=None):
    cfg = config.EnvConfig(id=env_id, n_envs=n_envs, norm_reward=norm_reward)
    envs = make_vec_env(cfg)
    torch.manual_seed(0)
    policy = make_policy(envs.single_observation_space, envs.single_action_space, config.PolicyConfig())
    norm = ObsNormalizer(envs.single_observation_space.shape, clip=1e9)
    scaler = RewardScaler(n_envs, 0.99, norm_reward, clip=1e9)
    return VectorSampler(envs, norm, scaler, n_steps, seed, norm_obs_steps=norm_obs_steps), policy


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_a_batch_is_normalised_with_the_statistics_at_its_start_and_updates_them_once(env_id):
    sampler, policy = _sampler(env_id, 3)
    first = sampler.collect(policy)  # the initial statistics: mean 0, var 1
    raw1 = first.obs.numpy().astype(np.float64).reshape(-1, first.obs.shape[-1])
    reference = RunningMeanStd(raw1.shape[1:])
    reference.update(raw1)
    np.testing.assert_allclose(sampler.obs_norm.rms.mean, reference.mean, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(sampler.obs_norm.rms.var, reference.var, rtol=1e-5)
    before = sampler.obs_norm.copy()
    second = sampler.collect(policy)
    # invert the frozen normalisation of batch 2 to get its raw observations back
    raw2 = second.obs.numpy().astype(np.float64) * np.sqrt(before.rms.var + before.eps) + before.rms.mean
    reference.update(raw2.reshape(-1, raw2.shape[-1]))
    np.testing.assert_allclose(sampler.obs_norm.rms.mean, reference.mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sampler.obs_norm.rms.var, reference.var, rtol=1e-4)
    assert sampler.obs_norm.rms.count == pytest.approx(1e-4 + 2 * 32 * 3)
    sampler.close()


def test_the_observation_statistics_learn_only_from_batches_that_start_within_norm_obs_steps():
    sampler, policy = _sampler("Pendulum-v1", 3, norm_obs_steps=100)  # batches of 96 steps: at 0 and 96, not 192
    learned = RunningMeanStd((3,))
    for _ in range(2):
        before = sampler.obs_norm.copy()
        batch = sampler.collect(policy)
        raw = batch.obs.numpy().astype(np.float64) * np.sqrt(before.rms.var + before.eps) + before.rms.mean
        learned.update(raw.reshape(-1, 3))
    np.testing.assert_allclose(sampler.obs_norm.rms.mean, learned.mean, rtol=1e-5, atol=1e-6)
    assert sampler.obs_norm.rms.count == pytest.approx(1e-4 + 2 * 96)
    fixed = sampler.obs_norm.copy()
    for _ in range(2):
        batch = sampler.collect(policy)
        assert batch.obs.abs().max() > 0
        np.testing.assert_array_equal(sampler.obs_norm.rms.mean, fixed.rms.mean)
        np.testing.assert_array_equal(sampler.obs_norm.rms.var, fixed.rms.var)
        assert sampler.obs_norm.rms.count == fixed.rms.count
    assert sampler.total_steps == 4 * 96
    # the batches after the last update are normalised with the statistics it left
    raw = sampler.raw_obs
    np.testing.assert_allclose(batch.last_obs.numpy(), fixed.normalize(raw), rtol=1e-6)
    sampler.close()


def test_each_copy_acts_from_its_own_noise_stream_whatever_the_number_of_copies():
    """With the same (initial) statistics, copies 0 and 1 draw the same noise and take the same actions,
    bit for bit, whether 2 or 4 copies run (the actor computes each row on its own)."""
    two, policy = _sampler("Pendulum-v1", 2)
    four, _ = _sampler("Pendulum-v1", 4)
    for n in range(2):
        assert np.array_equal(two.rngs[n].standard_normal(5), four.rngs[n].standard_normal(5))
    two, _ = _sampler("Pendulum-v1", 2)
    four, _ = _sampler("Pendulum-v1", 4)
    a, b = two.collect(policy), four.collect(policy)
    assert torch.equal(a.actions, b.actions[:, :2])
    assert not torch.allclose(b.actions[:, 2], b.actions[:, 0])
    two.close()
    four.close()


def test_copy_streams_depend_on_seed_and_index_only():
    assert copy_rng(3, 1).random() == copy_rng(3, 1).random()
    assert copy_rng(3, 1).random() != copy_rng(3, 0).random() != copy_rng(4, 0).random()


def test_reward_scale_is_updated_once_per_batch_from_each_copys_discounted_return():
    """The scale is the running std of each copy's discounted return, updated after the batch in copy order;
    the batch's rewards are divided by it (so the first batch is scaled too)."""
    sampler, policy = _sampler("Pendulum-v1", 2, norm_reward=True)
    gamma = sampler.reward_scaler.gamma
    running = np.zeros(2)
    reference = RunningMeanStd(())
    for _ in range(2):
        batch = sampler.collect(policy)
        var = sampler.reward_scaler.rms.var
        rewards = batch.rewards.numpy().astype(np.float64) * np.sqrt(var + 1e-8)  # unscaled again
        assert np.all(rewards <= 1e-5) and np.all(rewards >= -16.3)  # Pendulum's reward range
        per_step = []
        for r in rewards:  # Pendulum never terminates, and 32 steps are within its time limit
            running = running * gamma + r
            per_step.append(running.copy())
        reference.update(np.concatenate(per_step))
        np.testing.assert_allclose(var, reference.var, rtol=1e-4)
        assert batch.rewards.dtype == torch.float32
    assert sampler.reward_scaler.rms.count == pytest.approx(1e-4 + 2 * 32 * 2)
    sampler.close()

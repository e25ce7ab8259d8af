"""Policies and their numpy acting snapshot agree with each other."""

import numpy as np
import pytest
import torch

from trustrl.config import PolicyConfig
from trustrl.nets import CategoricalPolicy, GaussianPolicy, NumpyActor


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_numpy_actor_computes_the_policy_mean(activation):
    torch.manual_seed(0)
    policy = GaussianPolicy(5, 3, PolicyConfig(hidden=(16, 8), activation=activation, out_gain=1.0, log_std_init=-0.7))
    obs = np.random.default_rng(0).normal(size=(4, 5)).astype(np.float32)
    actor = NumpyActor(policy, np.random.default_rng(0))
    with torch.no_grad():
        dist = policy(torch.from_numpy(obs))
    np.testing.assert_allclose(actor.forward(obs), dist.mean.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(actor.std, dist.std[0].numpy(), rtol=1e-6)


def test_numpy_actor_gaussian_samples_have_the_policy_distribution():
    torch.manual_seed(1)
    policy = GaussianPolicy(3, 2, PolicyConfig(hidden=(8,), out_gain=1.0, log_std_init=-0.5))
    obs = np.ones((1, 3), np.float32)
    actor = NumpyActor(policy, np.random.default_rng(1))
    samples = np.concatenate([actor(obs) for _ in range(20_000)])
    with torch.no_grad():
        dist = policy(torch.from_numpy(obs))
    np.testing.assert_allclose(samples.mean(0), dist.mean[0].numpy(), atol=0.02)
    np.testing.assert_allclose(samples.std(0), dist.std[0].numpy(), rtol=0.03)


def test_numpy_actor_categorical_samples_follow_the_softmax():
    torch.manual_seed(2)
    policy = CategoricalPolicy(4, 3, PolicyConfig(hidden=(8,), out_gain=1.0))
    obs = np.random.default_rng(2).normal(size=(1, 4)).astype(np.float32)
    actor = NumpyActor(policy, np.random.default_rng(2))
    counts = np.bincount(np.concatenate([actor(obs) for _ in range(30_000)]), minlength=3) / 30_000
    with torch.no_grad():
        probs = policy(torch.from_numpy(obs)).probs[0].numpy()
    np.testing.assert_allclose(actor.forward(obs)[0] - actor.forward(obs)[0].max(),
                               np.log(probs) - np.log(probs).max(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(counts, probs, atol=0.01)


def test_log_std_is_clamped():
    policy = GaussianPolicy(2, 2, PolicyConfig(hidden=(4,), log_std_min=-1.0, log_std_max=0.5, log_std_init=0.0))
    with torch.no_grad():
        policy.log_std.fill_(3.0)
    dist = policy(torch.zeros(1, 2))
    assert torch.allclose(dist.log_std, torch.full((1, 2), 0.5))

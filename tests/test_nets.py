"""Policies and their numpy acting snapshot agree with each other."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from trustrl.config import PolicyConfig
from trustrl.nets import CategoricalPolicy, GaussianPolicy, make_policy, numpy_actor


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_numpy_actor_computes_the_policy_mean(activation):
    torch.manual_seed(0)
    policy = GaussianPolicy(5, 3, PolicyConfig(hidden=(16, 8), activation=activation, out_gain=1.0, log_std_init=-0.7))
    obs = np.random.default_rng(0).normal(size=(4, 5)).astype(np.float32)
    actor = numpy_actor(policy)
    with torch.no_grad():
        dist = policy(torch.from_numpy(obs))
    np.testing.assert_allclose(actor.forward(obs), dist.mean.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(actor.std, dist.std[0].numpy(), rtol=1e-6)


def test_numpy_actor_gaussian_samples_have_the_policy_distribution():
    torch.manual_seed(1)
    policy = GaussianPolicy(3, 2, PolicyConfig(hidden=(8,), out_gain=1.0, log_std_init=-0.5))
    obs = np.ones((1, 3), np.float32)
    actor = numpy_actor(policy)
    samples = actor.act(np.repeat(obs, 20_000, 0), actor.draw_noise(np.random.default_rng(1), 20_000))
    with torch.no_grad():
        dist = policy(torch.from_numpy(obs))
    np.testing.assert_allclose(samples.mean(0), dist.mean[0].numpy(), atol=0.02)
    np.testing.assert_allclose(samples.std(0), dist.std[0].numpy(), rtol=0.03)


def test_numpy_actor_categorical_samples_follow_the_softmax():
    torch.manual_seed(2)
    policy = CategoricalPolicy(4, 3, PolicyConfig(hidden=(8,), out_gain=1.0))
    obs = np.random.default_rng(2).normal(size=(1, 4)).astype(np.float32)
    actor = numpy_actor(policy)
    counts = np.bincount(actor.act(np.repeat(obs, 30_000, 0), actor.draw_noise(np.random.default_rng(2), 30_000)),
                         minlength=3) / 30_000
    with torch.no_grad():
        probs = policy(torch.from_numpy(obs)).probs[0].numpy()
    np.testing.assert_allclose(actor.forward(obs)[0] - actor.forward(obs)[0].max(),
                               np.log(probs) - np.log(probs).max(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(counts, probs, atol=0.01)


def test_log_std_is_bounded_but_keeps_its_gradient():
    """Past a bound the distribution stays at the bound, yet the gradient (and the Fisher row) is not zero,
    so the coordinate can come back."""
    policy = GaussianPolicy(2, 2, PolicyConfig(hidden=(4,), log_std_min=-1.0, log_std_max=0.5, log_std_init=0.0))
    with torch.no_grad():
        policy.log_std.copy_(torch.tensor([3.0, -4.0]))
    dist = policy(torch.zeros(1, 2))
    assert torch.equal(dist.log_std, torch.tensor([[0.5, -1.0]]))
    np.testing.assert_allclose(numpy_actor(policy).std, np.exp([0.5, -1.0]), rtol=1e-6)
    action = torch.tensor([[0.3, -0.2]])
    grad, = torch.autograd.grad(dist.log_prob(action).sum(), policy.log_std)
    assert torch.all(grad != 0)
    # inside the bounds it is the identity, value and gradient
    with torch.no_grad():
        policy.log_std.copy_(torch.tensor([0.2, -0.3]))
    inside = policy(torch.zeros(1, 2))
    assert torch.equal(inside.log_std, torch.tensor([[0.2, -0.3]]))
    (g_inside,) = torch.autograd.grad(inside.log_prob(action).sum(), policy.log_std)
    expected = ((action - inside.mean).pow(2) / inside.std.pow(2) - 1).squeeze(0).detach()
    torch.testing.assert_close(g_inside, expected)


def test_fisher_row_of_a_bounded_log_std_is_not_zero():
    """The Fisher matrix (Hessian of the mean KL) keeps a non-zero row for a log-std beyond its bound."""
    from trustrl.trust_region import fisher_vector_product

    torch.manual_seed(0)
    policy = GaussianPolicy(3, 2, PolicyConfig(hidden=(4,), log_std_min=-1.0, log_std_max=0.5))
    with torch.no_grad():
        policy.log_std.copy_(torch.tensor([2.0, 0.0]))
    obs = torch.randn(16, 3)
    old = policy(obs).detach()
    params = list(policy.parameters())
    fvp = fisher_vector_product(old.kl(policy(obs)).mean(), params, damping=0.0)
    e = torch.zeros(sum(p.numel() for p in params))
    offset = sum(p.numel() for p in params[: [p is policy.log_std for p in params].index(True)])
    e[offset] = 1.0
    assert fvp(e)[offset] > 0


def test_numpy_actor_rows_are_the_same_bits_whatever_the_number_of_rows():
    """A BLAS product over B rows may pick its kernel by B; the actor's rows must not depend on their neighbours."""
    torch.manual_seed(3)
    policy = GaussianPolicy(17, 6, PolicyConfig(hidden=(64, 64), out_gain=1.0))
    obs = np.random.default_rng(3).normal(size=(64, 17)).astype(np.float32)
    actor = numpy_actor(policy)
    full = actor.forward(obs)
    for start, stop in [(0, 1), (0, 2), (5, 8), (3, 19), (0, 32), (7, 64)]:
        assert np.array_equal(actor.forward(obs[start:stop]), full[start:stop])


def test_numpy_actor_multi_discrete_samples_follow_each_coordinate_softmax_from_its_start():
    torch.manual_seed(4)
    space = gym.spaces.MultiDiscrete([3, 4, 2], start=[-1, 0, 5])
    policy = make_policy(gym.spaces.Box(-1, 1, (4,)), space, PolicyConfig(hidden=(8,), out_gain=1.0))
    obs = np.random.default_rng(4).normal(size=(1, 4)).astype(np.float32)
    actor = numpy_actor(policy)
    draws = actor.act(np.repeat(obs, 30_000, 0), actor.draw_noise(np.random.default_rng(4), 30_000))
    assert draws.shape == (30_000, 3) and draws.dtype == np.int64
    assert all(space.contains(row) for row in draws[:200])
    with torch.no_grad():
        dist = policy(torch.from_numpy(obs))
    for out, normalised in zip(np.split(actor.forward(obs)[0], [3, 7]), dist.logits[0].split((3, 4, 2))):
        np.testing.assert_allclose(out - out.max(), (normalised - normalised.max()).numpy(), rtol=1e-4, atol=1e-5)
    for i, (n, start, probs) in enumerate(zip(space.nvec, space.start, dist.logits[0].exp().split((3, 4, 2)))):
        freq = np.bincount(draws[:, i] - start, minlength=n) / len(draws)
        np.testing.assert_allclose(freq, probs.numpy(), atol=0.012)


def test_numpy_actor_multi_binary_samples_are_int8_bernoullis():
    torch.manual_seed(5)
    cfg = PolicyConfig(hidden=(8,), out_gain=2.0)
    policy = make_policy(gym.spaces.Box(-1, 1, (3,)), gym.spaces.MultiBinary(5), cfg)
    obs = np.random.default_rng(5).normal(size=(1, 3)).astype(np.float32)
    actor = numpy_actor(policy)
    draws = actor.act(np.repeat(obs, 30_000, 0), actor.draw_noise(np.random.default_rng(5), 30_000))
    assert draws.shape == (30_000, 5) and draws.dtype == np.int8 and set(np.unique(draws)) <= {0, 1}
    with torch.no_grad():
        dist = policy(torch.from_numpy(obs))
    np.testing.assert_allclose(actor.forward(obs), dist.logits.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(draws.mean(0), dist.probs[0].numpy(), atol=0.012)
    huge = actor.head.act(np.array([[1e4, -1e4, 0.0, 50.0, -50.0]], np.float32), np.full((1, 5), 0.5))
    assert huge.tolist() == [[1, 0, 0, 1, 0]]  # sigmoid without overflow; exactly 1/2 at 0 is not below 1/2

"""Closed-form KL, log-prob and entropy against independent computations."""

import torch

from trustrl.nets import Categorical, DiagGaussian


def test_gaussian_kl_matches_monte_carlo_with_several_action_dims():
    g = torch.Generator().manual_seed(0)
    batch, dims, samples = 5, 4, 400_000
    p = DiagGaussian(torch.randn(batch, dims, generator=g), 0.3 * torch.randn(batch, dims, generator=g))
    q = DiagGaussian(torch.randn(batch, dims, generator=g), 0.3 * torch.randn(batch, dims, generator=g))
    x = p.mean + p.std * torch.randn(samples, batch, dims, generator=g, dtype=torch.float32)
    mc = (p.log_prob(x) - q.log_prob(x)).mean(0)
    torch.testing.assert_close(p.kl(q), mc, atol=0.03, rtol=0.02)
    # and against torch.distributions (summed over dimensions)
    ref = torch.distributions.kl_divergence(
        torch.distributions.Normal(p.mean, p.std), torch.distributions.Normal(q.mean, q.std)
    ).sum(-1)
    torch.testing.assert_close(p.kl(q), ref)


def test_gaussian_log_prob_and_entropy_match_torch():
    g = torch.Generator().manual_seed(1)
    mean, log_std = torch.randn(6, 3, generator=g), torch.randn(3, generator=g)
    p = DiagGaussian(mean, log_std)
    ref = torch.distributions.Normal(mean, log_std.exp().expand_as(mean))
    a = torch.randn(6, 3, generator=g)
    torch.testing.assert_close(p.log_prob(a), ref.log_prob(a).sum(-1))
    torch.testing.assert_close(p.entropy(), ref.entropy().sum(-1))


def test_categorical_kl_matches_monte_carlo():
    g = torch.Generator().manual_seed(2)
    batch, n, samples = 5, 6, 400_000
    p, q = Categorical(torch.randn(batch, n, generator=g)), Categorical(torch.randn(batch, n, generator=g))
    a = torch.multinomial(p.probs, samples, replacement=True, generator=g).T  # (samples, batch)
    mc = (p.log_prob(a) - q.log_prob(a)).mean(0)
    torch.testing.assert_close(p.kl(q), mc, atol=0.02, rtol=0.02)
    ref = torch.distributions.kl_divergence(
        torch.distributions.Categorical(logits=p.logits), torch.distributions.Categorical(logits=q.logits)
    )
    torch.testing.assert_close(p.kl(q), ref)


def test_categorical_entropy_and_log_prob_match_torch():
    logits = torch.randn(4, 5)
    p, ref = Categorical(logits), torch.distributions.Categorical(logits=logits)
    a = torch.tensor([0, 4, 2, 1])
    torch.testing.assert_close(p.log_prob(a), ref.log_prob(a))
    torch.testing.assert_close(p.entropy(), ref.entropy())


def test_kl_of_a_distribution_with_itself_is_zero():
    p = DiagGaussian(torch.randn(3, 2), torch.randn(2))
    torch.testing.assert_close(p.kl(p), torch.zeros(3))
    c = Categorical(torch.randn(3, 4))
    torch.testing.assert_close(c.kl(c), torch.zeros(3))

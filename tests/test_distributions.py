"""Closed-form KL, log-prob and entropy against independent computations."""

import torch

from trustrl.distributions import Bernoulli, Categorical, DiagGaussian, MultiCategorical


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


SIZES, START = (3, 5, 2), (-1, 0, 4)


def _multi_categorical(g, batch=6):
    return MultiCategorical(torch.randn(batch, sum(SIZES), generator=g), SIZES, START)


def _per_coordinate(logits):
    """torch's own categorical of each coordinate of side-by-side logits."""
    return [torch.distributions.Categorical(logits=part) for part in logits.split(SIZES, -1)]


def test_multi_categorical_log_prob_entropy_and_kl_are_torch_categoricals_summed():
    g = torch.Generator().manual_seed(3)
    p, q = _multi_categorical(g), _multi_categorical(g)
    ref_p, ref_q = _per_coordinate(p.logits), _per_coordinate(q.logits)
    index = torch.stack([torch.randint(n, (6,), generator=g) for n in SIZES], -1)
    actions = index + torch.tensor(START)  # the env's values
    torch.testing.assert_close(p.log_prob(actions), sum(d.log_prob(index[:, i]) for i, d in enumerate(ref_p)))
    torch.testing.assert_close(p.entropy(), sum(d.entropy() for d in ref_p))
    torch.testing.assert_close(p.kl(q), sum(torch.distributions.kl_divergence(a, b) for a, b in zip(ref_p, ref_q)))
    torch.testing.assert_close(p.kl(p), torch.zeros(6))
    # normalised per coordinate: each coordinate's probabilities sum to one
    for part in p.logits.split(SIZES, -1):
        torch.testing.assert_close(part.exp().sum(-1), torch.ones(6))


def test_multi_categorical_mode_and_samples_are_env_values_with_the_right_frequencies():
    g = torch.Generator().manual_seed(4)
    p = _multi_categorical(g, batch=1)
    ref = _per_coordinate(p.logits)
    mode = p.mode()
    assert mode.shape == (1, 3)
    assert mode[0].tolist() == [int(d.probs.argmax()) + s for d, s in zip(ref, START)]
    torch.manual_seed(4)
    draws = p[torch.zeros(40_000, dtype=torch.long)].sample()  # 40 000 copies of the one distribution
    assert draws.shape == (40_000, 3)
    for i, (d, n, s) in enumerate(zip(ref, SIZES, START)):
        freq = torch.bincount(draws[:, i] - s, minlength=n).double() / len(draws)
        assert len(freq) == n  # nothing outside start .. start + n - 1
        torch.testing.assert_close(freq, d.probs[0].double(), atol=0.01, rtol=0)


def test_multi_categorical_indexes_detaches_and_gives_its_params():
    g = torch.Generator().manual_seed(5)
    logits = torch.randn(4, sum(SIZES), generator=g, requires_grad=True)
    p = MultiCategorical(logits, SIZES, START)
    sub = p[torch.tensor([2, 0])]
    torch.testing.assert_close(sub.logits, p.logits[[2, 0]])
    assert (sub.sizes, sub.start) == (SIZES, START)
    assert not p.detach().logits.requires_grad and p.logits.requires_grad
    torch.testing.assert_close(p.params()["logits"], p.logits)


def test_bernoulli_log_prob_entropy_and_kl_match_torch_summed():
    g = torch.Generator().manual_seed(6)
    lp, lq = 2 * torch.randn(6, 4, generator=g), 2 * torch.randn(6, 4, generator=g)
    p, q = Bernoulli(lp), Bernoulli(lq)
    ref_p, ref_q = torch.distributions.Bernoulli(logits=lp), torch.distributions.Bernoulli(logits=lq)
    a = torch.randint(2, (6, 4), generator=g, dtype=torch.int8)  # MultiBinary's own dtype
    torch.testing.assert_close(p.log_prob(a), ref_p.log_prob(a.float()).sum(-1))
    torch.testing.assert_close(p.entropy(), ref_p.entropy().sum(-1))
    torch.testing.assert_close(p.kl(q), torch.distributions.kl_divergence(ref_p, ref_q).sum(-1))
    torch.testing.assert_close(p.kl(p), torch.zeros(6))
    big = Bernoulli(torch.tensor([[80.0, -80.0]]))  # far past where sigmoid rounds to 0 or 1: still finite
    assert torch.isfinite(big.log_prob(torch.tensor([[0, 1]]))).all() and torch.isfinite(big.entropy()).all()


def test_bernoulli_mode_and_samples():
    logits = torch.tensor([[1.5, -0.3, 0.0, -3.0]])
    p = Bernoulli(logits)
    assert p.mode().tolist() == [[1, 0, 0, 0]]
    torch.manual_seed(7)
    draws = p[torch.zeros(40_000, dtype=torch.long)].sample()
    assert set(draws.unique().tolist()) <= {0, 1}
    torch.testing.assert_close(draws.double().mean(0), torch.sigmoid(logits[0]).double(), atol=0.01, rtol=0)
    torch.testing.assert_close(p[0].logits, logits[0])
    assert p.params()["logits"] is p.logits and not Bernoulli(logits.requires_grad_()).detach().logits.requires_grad

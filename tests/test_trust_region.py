"""CG, Fisher-vector products and the line search against independent references."""


import pytest
import torch
from fisher import mean_kl_hessian

from trustrl.config import PolicyConfig
from trustrl.nets import CategoricalPolicy, GaussianPolicy
from trustrl.trust_region import conjugate_gradient, fisher_vector_product, line_search, scheduled_max_kl


@pytest.mark.parametrize("n", [3, 10, 40])
def test_conjugate_gradient_matches_direct_solve(n):
    g = torch.Generator().manual_seed(n)
    m = torch.randn(n, n, generator=g, dtype=torch.float64)
    a = m @ m.T + 0.5 * torch.eye(n, dtype=torch.float64)  # SPD
    b = torch.randn(n, generator=g, dtype=torch.float64)
    result = conjugate_gradient(lambda v: a @ v, b, max_iters=10 * n, residual_tol=1e-20)
    torch.testing.assert_close(result.x, torch.linalg.solve(a, b), rtol=1e-7, atol=1e-8)


def test_conjugate_gradient_starts_at_zero_and_stops_at_max_iters():
    a = torch.diag(torch.arange(1.0, 6.0, dtype=torch.float64))
    b = torch.ones(5, dtype=torch.float64)
    one = conjugate_gradient(lambda v: a @ v, b, max_iters=1)
    # one CG step from x=0 is the steepest-descent step along b
    alpha = (b @ b) / (b @ a @ b)
    torch.testing.assert_close(one.x, alpha * b)
    assert one.iterations == 1


@pytest.mark.parametrize("kind", ["gaussian", "categorical"])
def test_fisher_vector_product_matches_explicit_hessian(kind):
    torch.manual_seed(0)
    cfg = PolicyConfig(hidden=(5,), out_gain=1.0, log_std_init=-0.3)
    policy = (GaussianPolicy(3, 2, cfg) if kind == "gaussian" else CategoricalPolicy(3, 4, cfg)).double()
    obs = torch.randn(16, 3, dtype=torch.float64)
    damping = 0.1
    hessian = mean_kl_hessian(policy, obs, damping)
    with torch.no_grad():
        old = policy(obs)
    fvp = fisher_vector_product(old.kl(policy(obs)).mean(), list(policy.parameters()), damping)
    for seed in range(3):
        v = torch.randn(hessian.shape[0], generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        torch.testing.assert_close(fvp(v), hessian @ v, rtol=1e-8, atol=1e-10)


def _quadratic_problem():
    """Surrogate = -(x - 1)^2 summed (max at x = 1); 'KL' = mean squared distance from x0."""
    x = torch.nn.Parameter(torch.zeros(4, dtype=torch.float64))
    x0 = x.detach().clone()
    surrogate = lambda: -(x - 1.0).pow(2).sum()  # noqa: E731
    kl = lambda: 0.5 * (x - x0).pow(2).sum()  # noqa: E731
    return x, surrogate, kl


def test_line_search_shrinks_a_step_that_violates_the_kl_bound():
    x, surrogate, kl = _quadratic_problem()
    full_step = torch.ones(4, dtype=torch.float64)  # KL of the full step is 2.0
    result = line_search([x], full_step, lambda: (surrogate(), kl()), max_kl=0.5, shrink=0.5, max_steps=10)
    assert result.accepted and result.step_fraction == 0.5 and result.n_backtracks == 1
    assert result.kl <= 0.5 and result.improvement > 0
    torch.testing.assert_close(x.detach(), torch.full((4,), 0.5, dtype=torch.float64))


def test_line_search_shrinks_a_step_that_worsens_the_surrogate():
    x, surrogate, kl = _quadratic_problem()
    full_step = torch.full((4,), 2.5, dtype=torch.float64)  # overshoots: surrogate worse at 2.5 and 2.0
    result = line_search([x], full_step, lambda: (surrogate(), kl()), max_kl=100.0, shrink=0.8, max_steps=10)
    assert result.accepted and result.n_backtracks == 2  # 2.5 -> 2.0 (equal, not better) -> 1.6 accepted
    assert result.improvement > 0


def test_rejected_line_search_restores_parameters_bit_for_bit():
    torch.manual_seed(0)
    policy = GaussianPolicy(3, 2, PolicyConfig(hidden=(8,)))
    params = list(policy.parameters())
    before = [p.detach().clone() for p in params]
    obs = torch.randn(32, 3)
    with torch.no_grad():
        old = policy(obs)
    step = 1e-3 * torch.randn(sum(p.numel() for p in params))
    result = line_search(
        params,
        step,
        evaluate=lambda: (-old.kl(policy(obs)).mean(), old.kl(policy(obs)).mean()),  # every move makes it worse
        max_kl=1.0,
        max_steps=5,
    )
    assert not result.accepted and result.step_fraction == 0.0
    for p, b in zip(params, before):
        assert torch.equal(p, b)


def test_line_search_takes_the_full_step_when_it_is_good():
    x, surrogate, kl = _quadratic_problem()
    result = line_search([x], torch.full((4,), 0.5, dtype=torch.float64), lambda: (surrogate(), kl()), max_kl=1.0)
    assert result.accepted and result.step_fraction == 1.0 and result.n_backtracks == 0


@pytest.mark.parametrize(
    "start, final, schedule, progress, expected",
    [
        (0.02, 0.0, "constant", 0.9, 0.02),
        (0.02, 0.0, "linear", 0.0, 0.02),
        (0.02, 0.0, "linear", 0.25, 0.015),
        (0.02, 0.0, "linear", 0.5, 0.01),
        (0.03, 0.01, "linear", 0.75, 0.015),
        (0.01, 0.02, "linear", 0.5, 0.015),  # a radius may grow too
        (0.02, 0.0, "linear", 1.5, 0.0),  # clamped to the schedule's end
    ],
)
def test_scheduled_max_kl_is_the_straight_line_from_start_to_final(start, final, schedule, progress, expected):
    assert scheduled_max_kl(start, final, schedule, progress) == pytest.approx(expected, abs=1e-15)


def test_fvp_rows_draw_a_fixed_number_of_rows_or_none():
    from trustrl.algos.natural import fvp_rows

    g = torch.Generator().manual_seed(0)
    before = g.get_state()
    assert fvp_rows(100, 1.0, 0, g) == slice(None) and fvp_rows(100, 0.5, 100, g) == slice(None)
    assert fvp_rows(100, 1.0, 500, g) == slice(None)
    assert torch.equal(g.get_state(), before), "the whole batch draws nothing"
    rows = fvp_rows(100, 1.0, 30, g)
    assert len(rows) == 30 and len(set(rows.tolist())) == 30
    assert len(fvp_rows(100_000, 1.0, 30, g)) == 30, "the same count however wide the batch"
    assert len(fvp_rows(100, 0.25, 0, g)) == 25


@pytest.mark.parametrize("kind", ["gaussian", "categorical"])
def test_fisher_vector_products_on_fvp_samples_rows_are_the_hessian_of_their_kl(kind):
    """With ``algo.fvp_samples = k`` the products are (H_k + damping I) v, H_k the explicit Hessian of the mean
    KL over the k rows the generator draws; the surrogate still sees every row."""
    from trustrl.algos.natural import fvp_rows, policy_objective
    from trustrl.config import TRPOConfig

    torch.manual_seed(1)
    cfg = PolicyConfig(hidden=(5,), out_gain=1.0, log_std_init=-0.3)
    policy = (GaussianPolicy(3, 2, cfg) if kind == "gaussian" else CategoricalPolicy(3, 4, cfg)).double()
    obs = torch.randn(40, 3, dtype=torch.float64)
    with torch.no_grad():
        actions = policy(obs).sample()
    advantages = torch.randn(40, dtype=torch.float64)
    algo = TRPOConfig(fvp_samples=12)
    objective = policy_objective(policy, obs, actions, advantages, algo, torch.Generator().manual_seed(5))
    surrogate, fisher_kl = objective.start()
    rows = fvp_rows(40, 1.0, 12, torch.Generator().manual_seed(5))
    hessian = mean_kl_hessian(policy, obs[rows], algo.damping)
    fvp = fisher_vector_product(fisher_kl, list(policy.parameters()), algo.damping)
    for seed in range(3):
        v = torch.randn(hessian.shape[0], generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        torch.testing.assert_close(fvp(v), hessian @ v, rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(surrogate, objective.surrogate())  # every row: mean ratio * A = mean A at theta_old
    torch.testing.assert_close(surrogate, advantages.mean())


def test_fvp_samples_as_wide_as_the_batch_is_the_full_batch_step_bit_for_bit():
    from trustrl.algos.natural import policy_objective
    from trustrl.config import TRPOConfig
    from trustrl.trust_region import natural_direction

    torch.manual_seed(2)
    policy = GaussianPolicy(3, 2, PolicyConfig(hidden=(8,)))
    obs, advantages = torch.randn(64, 3), torch.randn(64)
    with torch.no_grad():
        actions = policy(obs).sample()
    steps = []
    for algo in (TRPOConfig(), TRPOConfig(fvp_samples=64), TRPOConfig(fvp_samples=1000)):
        objective = policy_objective(policy, obs, actions, advantages, algo, torch.Generator().manual_seed(0))
        steps.append(natural_direction(policy.parameters(), objective.start, 0.1, 10, 1e-10)[1])
    assert torch.equal(steps[0], steps[1]) and torch.equal(steps[0], steps[2])

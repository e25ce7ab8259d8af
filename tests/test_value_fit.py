"""Critic fitting: L-BFGS against Adam on a fixed batch, the L2 term, and the reported numbers."""

import copy

import pytest
import torch

from trustrl.algos.base import make_fitter
from trustrl.config import CriticConfig
from trustrl.nets import ValueNet
from trustrl.value_fit import explained_variance, l2_penalty, minibatch_bounds


def _problem(n=2048, seed=0):
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(n, 4, generator=g)
    returns = 10 * torch.sin(obs[:, 0]) + 5 * obs[:, 1] * obs[:, 2] + 20 + 0.5 * torch.randn(n, generator=g)
    torch.manual_seed(seed)
    return obs, returns, ValueNet(4, CriticConfig(hidden=(32, 32)))


def test_lbfgs_lowers_the_loss_at_least_as_much_as_one_epoch_of_adam():
    obs, returns, critic = _problem()
    adam = make_fitter(copy.deepcopy(critic), CriticConfig(epochs=1, minibatch=64, lr=1e-3), torch.Generator().manual_seed(0))
    lbfgs = make_fitter(copy.deepcopy(critic), CriticConfig(fit="lbfgs", lbfgs_iters=25), torch.Generator())
    a, b = adam.fit(obs, returns), lbfgs.fit(obs, returns)
    assert a["value_loss_before"] == b["value_loss_before"] > 0
    assert b["value_loss"] <= a["value_loss"] < a["value_loss_before"]
    assert b["value_loss"] < 0.5 * b["value_loss_before"]


def test_lbfgs_uses_its_iteration_budget(monkeypatch):
    obs, returns, critic = _problem()
    short = make_fitter(copy.deepcopy(critic), CriticConfig(fit="lbfgs", lbfgs_iters=2), torch.Generator())
    long = make_fitter(copy.deepcopy(critic), CriticConfig(fit="lbfgs", lbfgs_iters=50), torch.Generator())
    assert long.fit(obs, returns)["value_loss"] < short.fit(obs, returns)["value_loss"]
    # the optimizer runs exactly the budget on a problem it cannot finish in it
    iterations = []
    step = torch.optim.LBFGS.step

    def counting_step(self, closure):
        loss = step(self, closure)
        iterations.append(self.state[self._params[0]]["n_iter"])
        return loss

    monkeypatch.setattr(torch.optim.LBFGS, "step", counting_step)
    make_fitter(copy.deepcopy(critic), CriticConfig(fit="lbfgs", lbfgs_iters=7), torch.Generator()).fit(obs, returns)
    assert iterations == [7]


@pytest.mark.parametrize("fit", ["adam", "lbfgs"])
def test_l2_term_is_applied(fit):
    """The penalty l2 * sum ||W||^2 shrinks the weights; a huge one leaves almost only the biases."""
    obs, returns, critic = _problem()
    norms = {}
    for l2 in (0.0, 1e-2, 10.0):
        c = copy.deepcopy(critic)
        make_fitter(c, CriticConfig(fit=fit, l2=l2, lbfgs_iters=25, epochs=3), torch.Generator().manual_seed(0)).fit(obs, returns)
        norms[l2] = l2_penalty(c, 1.0).item()
    assert norms[10.0] < norms[1e-2] < norms[0.0]
    weights = [p.detach() for n, p in critic.named_parameters() if n.endswith("weight")]
    assert l2_penalty(critic, 0.5).item() == pytest.approx(0.5 * sum(float(w.pow(2).sum()) for w in weights))
    assert l2_penalty(critic, 0.0) == 0.0


def test_lbfgs_keeps_the_old_weights_when_the_fit_cannot_improve():
    """Already at the minimum of the penalised loss (a constant target, zero weights): nothing may get worse."""
    obs, _, critic = _problem()
    with torch.no_grad():
        for p in critic.parameters():
            p.zero_()
        critic.net.layers[-1].bias.fill_(3.0)
    before = [p.detach().clone() for p in critic.parameters()]
    stats = make_fitter(critic, CriticConfig(fit="lbfgs", l2=1.0), torch.Generator()).fit(obs, torch.full((len(obs),), 3.0))
    assert stats["value_loss"] <= stats["value_loss_before"] + 1e-12
    for p, b in zip(critic.parameters(), before):
        torch.testing.assert_close(p, b)


def test_fitters_report_explained_variance_of_the_critic_before_fitting():
    obs, returns, critic = _problem()
    with torch.no_grad():
        predicted = critic(obs)
    stats = make_fitter(critic, CriticConfig(fit="lbfgs"), torch.Generator()).fit(obs, returns)
    assert stats["explained_variance"] == pytest.approx(explained_variance(predicted, returns))
    assert explained_variance(returns, returns) == 1.0


def _reference_adam_fit(critic, obs, returns, epochs, lr, generator, bounds):
    """The fit written out step by step: a permutation per epoch, rows gathered by index per minibatch."""
    optimizer = torch.optim.Adam(critic.parameters(), lr=lr, fused=True)
    steps = 0
    for _ in range(epochs):
        order = torch.randperm(len(obs), generator=generator)
        for lo, hi in bounds:
            idx = order[lo:hi]
            loss = (critic(obs[idx]) - returns[idx]).pow(2).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            steps += 1
    return steps


@pytest.mark.parametrize("minibatches", [0, 3])
def test_adam_fit_is_the_minibatch_loop_written_out_bit_for_bit(minibatches):
    obs, returns, critic = _problem(n=1000)
    fitted, reference = copy.deepcopy(critic), copy.deepcopy(critic)
    cfg = CriticConfig(epochs=2, minibatch=64, minibatches=minibatches, lr=1e-3)
    make_fitter(fitted, cfg, torch.Generator().manual_seed(3)).fit(obs, returns)
    bounds = ([(0, 333), (333, 666), (666, 1000)] if minibatches
              else [(lo, min(lo + 64, 1000)) for lo in range(0, 1000, 64)])
    _reference_adam_fit(reference, obs, returns, 2, 1e-3, torch.Generator().manual_seed(3), bounds)
    for a, b in zip(fitted.parameters(), reference.parameters()):
        assert torch.equal(a, b)


def test_a_fit_in_minibatches_takes_the_same_number_of_steps_whatever_the_batch(monkeypatch):
    steps = []
    step = torch.optim.Adam.step
    monkeypatch.setattr(torch.optim.Adam, "step", lambda self, *a, **k: (steps.append(1), step(self, *a, **k))[1])
    for n in (500, 4000):
        obs, returns, critic = _problem(n=n)
        steps.clear()
        make_fitter(critic, CriticConfig(epochs=3, minibatches=4), torch.Generator().manual_seed(0)).fit(obs, returns)
        assert len(steps) == 12
        steps.clear()
        make_fitter(critic, CriticConfig(epochs=3, minibatch=100), torch.Generator().manual_seed(0)).fit(obs, returns)
        assert len(steps) == 3 * -(-n // 100)


def test_minibatch_bounds_cover_every_row_once():
    assert minibatch_bounds(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert minibatch_bounds(10, 4, count=3) == [(0, 3), (3, 6), (6, 10)]
    assert minibatch_bounds(2, 4, count=5) == [(0, 1), (1, 2)]  # never an empty minibatch
    for n, size, count in ((2048, 64, 0), (2048, 64, 8), (32768, 64, 8), (7, 3, 0), (7, 3, 7)):
        rows = [i for lo, hi in minibatch_bounds(n, size, count) for i in range(lo, hi)]
        assert rows == list(range(n))

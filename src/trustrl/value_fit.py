"""Fitting the value network to a batch of returns: Adam minibatches or L-BFGS.

Both fitters minimise ``mean (V(s) - R)^2 + l2 * ||w||^2`` and report the loss
before and after, and how much of the returns' variance the critic explained
before fitting (the honest measure: it is what GAE used).
"""

from __future__ import annotations

import math
import time

import torch
from torch import Tensor
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from trustrl.nets import ValueNet


def explained_variance(predicted: Tensor, target: Tensor) -> float:
    """1 - Var(target - predicted) / Var(target): 1 is perfect, 0 is no better than a constant."""
    var = target.var()
    if var <= 0:
        return float("nan")
    return float(1.0 - (target - predicted).var() / var)


class AdamFitter:
    """``epochs`` passes of shuffled minibatches; the optimizer state persists across updates.

    Minibatches hold ``minibatch`` rows, or, with ``minibatches`` > 0, each pass splits the batch into
    that many: the fit then takes ``epochs * minibatches`` Adam steps whatever the batch size, and
    wider batches make wider (not more) steps -- the per-step overhead of eager PyTorch is paid a
    fixed number of times.
    """

    def __init__(self, critic: ValueNet, lr: float, epochs: int, minibatch: int, l2: float, generator: torch.Generator,
                 minibatches: int = 0):
        self.critic = critic
        self.epochs, self.minibatch, self.minibatches, self.l2 = epochs, minibatch, minibatches, l2
        self.generator = generator
        self.optimizer = torch.optim.Adam(critic.parameters(), lr=lr, fused=True)  # fused: one kernel per step on CPU

    def fit(self, obs: Tensor, returns: Tensor) -> dict[str, float]:
        started = time.perf_counter()
        before = value_loss(self.critic, obs, returns)
        n = len(obs)
        bounds = minibatch_bounds(n, self.minibatch, self.minibatches)
        for _ in range(self.epochs):
            order = torch.randperm(n, generator=self.generator)
            shuffled_obs, shuffled_returns = obs[order], returns[order]  # one gather; minibatches are then views
            for lo, hi in bounds:
                loss = ((self.critic(shuffled_obs[lo:hi]) - shuffled_returns[lo:hi]).pow(2).mean()
                        + l2_penalty(self.critic, self.l2))
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
        return fit_report(self.critic, obs, returns, before, started)

    def state_dict(self) -> dict:
        return {"optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])


class LBFGSFitter:
    """Full-batch L-BFGS with a strong-Wolfe line search, as in Schulman et al. (2016), sec. 5.

    Reference notebook 001 fits its value net the same way (SciPy's
    ``fmin_l_bfgs_b``, an L2 penalty, ``maxiter=25``); here it is PyTorch's
    L-BFGS with ``critic.lbfgs_iters`` iterations. A fit that ends worse than it
    started (or non-finite) is undone, so one bad batch cannot wreck the critic.
    """

    def __init__(self, critic: ValueNet, iters: int, l2: float):
        self.critic = critic
        self.iters, self.l2 = iters, l2

    def fit(self, obs: Tensor, returns: Tensor) -> dict[str, float]:
        started = time.perf_counter()
        before = value_loss(self.critic, obs, returns)
        params = list(self.critic.parameters())
        start = parameters_to_vector(params).detach().clone()
        optimizer = torch.optim.LBFGS(
            params,
            lr=1.0,
            max_iter=self.iters,
            # PyTorch's default (1.25 x max_iter evaluations) would end the fit after a few
            # line searches, well before the iteration budget; SciPy's (15000) is no limit.
            max_eval=4 * self.iters,
            history_size=10,
            line_search_fn="strong_wolfe",
        )

        def objective() -> Tensor:
            return (self.critic(obs) - returns).pow(2).mean() + l2_penalty(self.critic, self.l2)

        def closure() -> Tensor:
            optimizer.zero_grad(set_to_none=True)
            loss = objective()
            loss.backward()
            return loss

        with torch.no_grad():
            initial = float(objective())
        optimizer.step(closure)
        with torch.no_grad():
            final = float(objective())
            if not math.isfinite(final) or final > initial:
                vector_to_parameters(start, params)
        return fit_report(self.critic, obs, returns, before, started)

    def state_dict(self) -> dict:
        return {}  # a fresh L-BFGS every fit: nothing carries over

    def load_state_dict(self, state: dict) -> None:
        pass


def minibatch_bounds(n: int, size: int, count: int = 0) -> list[tuple[int, int]]:
    """``[lo, hi)`` of each minibatch of a pass over ``n`` rows: ``count`` near-equal ones when positive
    (fewer when ``n`` is smaller), else consecutive runs of ``size`` rows (the last may be shorter)."""
    if count > 0:
        count = min(count, n)
        edges = [n * i // count for i in range(count + 1)]
        return list(zip(edges[:-1], edges[1:]))
    return [(lo, min(lo + size, n)) for lo in range(0, n, size)]


def l2_penalty(critic: ValueNet, l2: float) -> Tensor | float:
    """``l2 * sum ||W||^2`` over the critic's weight matrices (biases are not penalised)."""
    if l2 == 0.0:
        return 0.0
    return l2 * sum(p.pow(2).sum() for name, p in critic.named_parameters() if name.endswith("weight"))


@torch.no_grad()
def value_loss(critic: ValueNet, obs: Tensor, returns: Tensor) -> tuple[float, Tensor]:
    """The unpenalised mean squared error and the predictions, without a graph."""
    predicted = critic(obs)
    return float((predicted - returns).pow(2).mean()), predicted


@torch.no_grad()
def fit_report(
    critic: ValueNet, obs: Tensor, returns: Tensor, before: tuple[float, Tensor], started: float | None = None
) -> dict[str, float]:
    """Losses and explained variance; with ``started``, the fit's seconds as ``time_critic_s`` (for timing.csv)."""
    loss_before, predicted_before = before
    loss_after, _ = value_loss(critic, obs, returns)
    report = {
        "value_loss_before": loss_before,
        "value_loss": loss_after,
        "explained_variance": explained_variance(predicted_before, returns),
    }
    if started is not None:
        report["time_critic_s"] = time.perf_counter() - started
    return report

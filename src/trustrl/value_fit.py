"""Fitting the value network to a batch of returns: Adam minibatches or L-BFGS.

Both fitters minimise ``mean (V(s) - R)^2 + l2 * ||w||^2`` and report the loss
before and after, and how much of the returns' variance the critic explained
before fitting (the honest measure: it is what GAE used).
"""

from __future__ import annotations

import time

import torch
from torch import Tensor

from trustrl.config import CriticConfig
from trustrl.nets import ValueNet


def explained_variance(predicted: Tensor, target: Tensor) -> float:
    """1 - Var(target - predicted) / Var(target): 1 is perfect, 0 is no better than a constant."""
    var = target.var()
    if var <= 0:
        return float("nan")
    return float(1.0 - (target - predicted).var() / var)


class AdamFitter:
    """``epochs`` passes of shuffled minibatches; the optimizer state persists across updates."""

    def __init__(self, critic: ValueNet, cfg: CriticConfig, generator: torch.Generator):
        self.critic = critic
        self.cfg = cfg
        self.generator = generator
        self.optimizer = torch.optim.Adam(critic.parameters(), lr=cfg.lr, fused=True)  # fused: one kernel per step on CPU

    def fit(self, obs: Tensor, returns: Tensor) -> dict[str, float]:
        start = time.perf_counter()
        before = _loss(self.critic, obs, returns)
        n, mb = len(obs), self.cfg.minibatch
        for _ in range(self.cfg.epochs):
            order = torch.randperm(n, generator=self.generator)
            for first in range(0, n, mb):
                idx = order[first : first + mb]
                loss = (self.critic(obs[idx]) - returns[idx]).pow(2).mean() + _l2(self.critic, self.cfg.l2)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
        return _report(self.critic, obs, returns, before, start)


class LBFGSFitter:
    """Full-batch L-BFGS with a strong-Wolfe line search, as in Schulman et al. (2016), sec. 5."""

    def __init__(self, critic: ValueNet, cfg: CriticConfig, generator: torch.Generator):
        self.critic = critic
        self.cfg = cfg

    def fit(self, obs: Tensor, returns: Tensor) -> dict[str, float]:
        start = time.perf_counter()
        before = _loss(self.critic, obs, returns)
        optimizer = torch.optim.LBFGS(
            self.critic.parameters(),
            lr=1.0,
            max_iter=self.cfg.lbfgs_iters,
            history_size=10,
            line_search_fn="strong_wolfe",
        )

        def closure() -> Tensor:
            optimizer.zero_grad(set_to_none=True)
            loss = (self.critic(obs) - returns).pow(2).mean() + _l2(self.critic, self.cfg.l2)
            loss.backward()
            return loss

        optimizer.step(closure)
        return _report(self.critic, obs, returns, before, start)


def make_fitter(critic: ValueNet, cfg: CriticConfig, generator: torch.Generator) -> AdamFitter | LBFGSFitter:
    return {"adam": AdamFitter, "lbfgs": LBFGSFitter}[cfg.fit](critic, cfg, generator)


def _l2(critic: ValueNet, l2: float) -> Tensor | float:
    if l2 == 0.0:
        return 0.0
    return l2 * sum(p.pow(2).sum() for name, p in critic.named_parameters() if name.endswith("weight"))


@torch.no_grad()
def _loss(critic: ValueNet, obs: Tensor, returns: Tensor) -> tuple[float, Tensor]:
    predicted = critic(obs)
    return float((predicted - returns).pow(2).mean()), predicted


@torch.no_grad()
def _report(
    critic: ValueNet, obs: Tensor, returns: Tensor, before: tuple[float, Tensor], start: float
) -> dict[str, float]:
    """Losses and explained variance; ``time_critic_s`` goes to timing.csv, not metrics.csv."""
    loss_before, predicted_before = before
    loss_after, _ = _loss(critic, obs, returns)
    return {
        "time_critic_s": time.perf_counter() - start,
        "value_loss_before": loss_before,
        "value_loss": loss_after,
        "explained_variance": explained_variance(predicted_before, returns),
    }

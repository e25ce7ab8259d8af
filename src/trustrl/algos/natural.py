"""The natural-gradient step NPG and TRPO share: surrogate, its gradient, and s = F^-1 g by CG.

Both algorithms call :func:`natural_gradient_step` and differ only in how far
they move along the direction it returns: NPG by a fixed rule, TRPO by a
backtracking line search inside the trust region. The Fisher matrix is never
formed: conjugate gradient only needs Fisher-vector products
(:func:`trustrl.trust_region.fisher_vector_product`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from trustrl.config import CriticConfig, NaturalGradientConfig
from trustrl.nets import Distribution, Policy, ValueNet
from trustrl.rollout import Batch
from trustrl.trust_region import CGResult, flat_grad, natural_gradient
from trustrl.value_fit import make_fitter


@dataclass
class NaturalGradient:
    """Everything one natural-gradient step computed on a batch, before any parameter moves."""

    old_dist: Distribution  # pi_old on the batch, detached
    surrogate: Callable[[], Tensor]  # L(theta) = mean ratio * A (+ entropy bonus), at the current parameters
    mean_kl: Callable[[], Tensor]  # mean KL(pi_old || pi_theta) over the whole batch
    loss_grad: Tensor  # g = dL/dtheta at theta_old, flat
    direction: Tensor  # s ~= (F + damping I)^-1 g, flat
    curvature: Tensor  # s^T (F + damping I) s
    cg: CGResult

    def kl_scaled_step(self, max_kl: float) -> Tensor | None:
        """``sqrt(2 max_kl / s^T F s) * s``: the step whose quadratic-model KL is ``max_kl``.

        None when the direction is degenerate (zero or non-finite curvature, e.g. all
        advantages zero): the caller then takes no step.
        """
        if not (self.curvature > 0 and torch.isfinite(self.curvature)):
            return None
        return math.sqrt(2 * max_kl / float(self.curvature)) * self.direction


def natural_gradient_step(
    policy: Policy,
    obs: Tensor,
    actions: Tensor,
    advantages: Tensor,
    cfg: NaturalGradientConfig,
    generator: torch.Generator,
) -> NaturalGradient:
    """The surrogate at theta_old and the natural-gradient direction on this batch.

    ``obs`` ``(B, obs_dim)``, ``actions`` ``(B, ...)``, ``advantages`` ``(B,)``.
    Fisher-vector products use a random ``cfg.fvp_fraction`` of the batch
    (drawn from ``generator``); the gradient uses all of it.
    """
    params = list(policy.parameters())
    with torch.no_grad():
        old_dist = policy(obs)
        old_log_probs = old_dist.log_prob(actions)

    def surrogate() -> Tensor:
        dist = policy(obs)
        ratio = (dist.log_prob(actions) - old_log_probs).exp()
        return (ratio * advantages).mean() + cfg.entropy_coef * dist.entropy().mean()

    def mean_kl() -> Tensor:
        return old_dist.kl(policy(obs)).mean()

    fvp_idx = _subsample(len(obs), cfg.fvp_fraction, generator)
    fvp_kl = old_dist[fvp_idx].kl(policy(obs[fvp_idx])).mean()
    loss_grad = flat_grad(surrogate(), params)
    direction, curvature, cg = natural_gradient(loss_grad, fvp_kl, params, cfg.damping, cfg.cg_iters, cfg.cg_tol)
    return NaturalGradient(old_dist, surrogate, mean_kl, loss_grad, direction, curvature, cg)


def _subsample(n: int, fraction: float, generator: torch.Generator) -> Tensor | slice:
    """Indices of a random ``fraction`` of the batch (all of it when fraction is 1)."""
    if fraction >= 1.0:
        return slice(None)
    k = max(1, int(round(n * fraction)))
    return torch.randperm(n, generator=generator)[:k]


class NaturalGradientAlgorithm:
    """What NPG and TRPO share beyond the step: the direction on a batch and the separate critic fit.

    Each defines only ``update_policy`` -- how far to move along the direction.
    ``fit_critic`` touches only the critic, so the trainer may run it while the
    next batch is collected (``run.overlap_critic``).
    """

    def __init__(self, policy: Policy, critic: ValueNet, cfg, critic_cfg: CriticConfig, generator: torch.Generator):
        self.policy = policy
        self.cfg = cfg
        self.generator = generator
        self.critic_fitter = make_fitter(critic, critic_cfg, generator)

    def search_direction(self, batch: Batch) -> NaturalGradient:
        return natural_gradient_step(
            self.policy, batch.flat("obs"), batch.flat("actions"), batch.flat("advantages"), self.cfg, self.generator
        )

    def fit_critic(self, batch: Batch) -> dict[str, float]:
        return self.critic_fitter.fit(batch.flat("obs"), batch.flat("returns"))

    def update(self, batch: Batch) -> dict[str, float]:
        return {**self.update_policy(batch), **self.fit_critic(batch)}

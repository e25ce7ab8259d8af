"""TRPO (Schulman et al. 2015): a natural-gradient step scaled to the trust region, then a line search.

maximise  L(theta) = E[ pi_theta(a|s) / pi_old(a|s) * A(s, a) ]
s.t.      mean KL(pi_old || pi_theta) <= max_kl
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from trustrl.config import CriticConfig, TRPOConfig
from trustrl.nets import Policy, ValueNet
from trustrl.rollout import Batch
from trustrl.trust_region import flat_grad, line_search, natural_gradient
from trustrl.value_fit import make_fitter


class TRPO:
    def __init__(self, policy: Policy, critic: ValueNet, cfg: TRPOConfig, critic_cfg: CriticConfig, generator: torch.Generator):
        self.policy = policy
        self.cfg = cfg
        self.generator = generator
        self.critic_fitter = make_fitter(critic, critic_cfg, generator)

    def search_direction(self, obs: Tensor, actions: Tensor, advantages: Tensor):
        """Old distribution, surrogate closure, and the natural-gradient direction on this batch."""
        params = list(self.policy.parameters())
        with torch.no_grad():
            old_dist = self.policy(obs)
            old_log_probs = old_dist.log_prob(actions)

        def surrogate() -> Tensor:
            dist = self.policy(obs)
            ratio = (dist.log_prob(actions) - old_log_probs).exp()
            return (ratio * advantages).mean() + self.cfg.entropy_coef * dist.entropy().mean()

        fvp_idx = _subsample(len(obs), self.cfg.fvp_fraction, self.generator)
        mean_kl = old_dist[fvp_idx].kl(self.policy(obs[fvp_idx])).mean()
        loss_grad = flat_grad(surrogate(), params)
        direction, curvature, cg = natural_gradient(
            loss_grad, mean_kl, params, self.cfg.damping, self.cfg.cg_iters, self.cfg.cg_tol
        )
        return old_dist, surrogate, loss_grad, direction, curvature, cg

    def update(self, batch: Batch) -> dict[str, float]:
        obs, actions, advantages = batch.flat("obs"), batch.flat("actions"), batch.flat("advantages")
        params = list(self.policy.parameters())
        old_dist, surrogate, loss_grad, direction, curvature, cg = self.search_direction(obs, actions, advantages)

        if curvature > 0 and torch.isfinite(curvature):
            full_step = math.sqrt(2 * self.cfg.max_kl / float(curvature)) * direction
            result = line_search(
                params,
                full_step,
                surrogate,
                lambda: old_dist.kl(self.policy(obs)).mean(),
                self.cfg.max_kl,
                self.cfg.backtrack_shrink,
                self.cfg.backtrack_iters,
            )
        else:  # a degenerate direction (e.g. zero advantages): take no step
            result = None

        with torch.no_grad():
            entropy = float(self.policy(obs).entropy().mean())
        critic_stats = self.critic_fitter.fit(obs, batch.flat("returns"))
        return {
            "surrogate_improvement": result.improvement if result else 0.0,
            "kl": result.kl if result else 0.0,
            "line_search_accepted": float(result.accepted) if result else 0.0,
            "line_search_backtracks": float(result.n_backtracks) if result else 0.0,
            "step_fraction": result.step_fraction if result else 0.0,
            "entropy": entropy,
            "grad_norm": float(loss_grad.norm()),
            "cg_iterations": float(cg.iterations),
            "cg_residual": cg.residual_norm_sq,
            **critic_stats,
        }


def _subsample(n: int, fraction: float, generator: torch.Generator) -> Tensor | slice:
    """Indices of a random ``fraction`` of the batch (all of it when fraction is 1)."""
    if fraction >= 1.0:
        return slice(None)
    k = max(1, int(round(n * fraction)))
    return torch.randperm(n, generator=generator)[:k]

"""TRPO (Schulman et al. 2015): a natural-gradient step scaled to the trust region, then a line search.

maximise  L(theta) = E[ pi_theta(a|s) / pi_old(a|s) * A(s, a) ]
s.t.      mean KL(pi_old || pi_theta) <= max_kl

The objective is NPG's (:func:`~trustrl.algos.natural.policy_objective`); the
step is the one trust-region step every TRPO variant calls
(:func:`~trustrl.trust_region.trust_region_step`).
"""

from __future__ import annotations

import torch

from trustrl.algos.natural import NaturalGradientAlgorithm
from trustrl.config import TRPOConfig
from trustrl.samplers.batch import Batch
from trustrl.trust_region import trust_region_step


class TRPO(NaturalGradientAlgorithm):
    cfg: TRPOConfig

    def update_policy(self, batch: Batch) -> dict[str, float]:
        cfg = self.cfg
        objective = self.objective(batch)
        step = trust_region_step(
            self.policy.parameters(), objective.surrogate, objective.fisher_kl, objective.mean_kl, self.max_kl(),
            damping=cfg.damping, cg_iters=cfg.cg_iters, cg_tol=cfg.cg_tol,
            shrink=cfg.backtrack_shrink, max_backtracks=cfg.backtrack_iters,
        )  # fmt: skip
        with torch.no_grad():
            entropy = float(self.policy(batch.flat("obs")).entropy().mean())
        return {**step_stats(step), "entropy": entropy}


def step_stats(step) -> dict[str, float]:
    """metrics.csv columns of one :class:`~trustrl.trust_region.TrustRegionStep` (a degenerate one: no step)."""
    search = step.search
    return {
        "surrogate_improvement": search.improvement if search else 0.0,
        "kl": search.kl if search else 0.0,
        "line_search_accepted": float(search.accepted) if search else 0.0,
        "line_search_backtracks": float(search.n_backtracks) if search else 0.0,
        "step_fraction": search.step_fraction if search else 0.0,
        "grad_norm": float(step.loss_grad.norm()),
        "cg_iterations": float(step.cg.iterations),
        "cg_residual": step.cg.residual_norm_sq,
    }

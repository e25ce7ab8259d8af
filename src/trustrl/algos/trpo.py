"""TRPO (Schulman et al. 2015): a natural-gradient step scaled to the trust region, then a line search.

maximise  L(theta) = E[ pi_theta(a|s) / pi_old(a|s) * A(s, a) ]
s.t.      mean KL(pi_old || pi_theta) <= max_kl

The objective is NPG's (:func:`~trustrl.algos.natural.policy_objective`); the
step is the one trust-region step every TRPO variant calls
(:func:`~trustrl.trust_region.trust_region_step`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from trustrl.algos.base import Capabilities
from trustrl.algos.natural import NaturalGradientAlgorithm, NaturalGradientConfig, bound_holds
from trustrl.batch import Batch
from trustrl.config.limits import positive
from trustrl.errors import ConfigError
from trustrl.trust_region import trust_region_step


@dataclass
class TRPOConfig(NaturalGradientConfig):
    """TRPO: the natural-gradient direction, scaled to the KL radius, then a backtracking line search."""

    name: str = "trpo"
    """Which update rule: one of ``trustrl.algos.ALGORITHMS``."""
    backtrack_shrink: float = 0.8
    """Line search: each rejected step is multiplied by this factor."""
    backtrack_iters: int = 10
    """Line search: steps tried before the update is rejected."""

    def validate(self) -> None:
        super().validate()
        if not 0.0 < self.backtrack_shrink < 1.0:
            raise ConfigError(f"algo.backtrack_shrink must be in (0, 1), got {self.backtrack_shrink}")
        positive("algo.backtrack_iters", self.backtrack_iters, 1_000)


class TRPO(NaturalGradientAlgorithm):
    config = TRPOConfig
    capabilities = Capabilities(stale_batches=True, vine=True, offline=True)
    cfg: TRPOConfig

    def update_policy(self, batch: Batch) -> dict[str, float]:
        cfg = self.cfg
        objective = self.objective(batch)
        step = trust_region_step(
            self.policy.parameters(), objective.start, objective.evaluate, self.max_kl(),
            damping=cfg.damping, cg_iters=cfg.cg_iters, cg_tol=cfg.cg_tol,
            shrink=cfg.backtrack_shrink, max_backtracks=cfg.backtrack_iters, held=bound_holds(self.policy),
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

"""TRPO (Schulman et al. 2015): a natural-gradient step scaled to the trust region, then a line search.

maximise  L(theta) = E[ pi_theta(a|s) / pi_old(a|s) * A(s, a) ]
s.t.      mean KL(pi_old || pi_theta) <= max_kl

The direction s = F^-1 g is NPG's (:func:`~trustrl.algos.natural.natural_gradient_step`);
only the backtracking line search is TRPO's own.
"""

from __future__ import annotations

import torch

from trustrl.algos.natural import NaturalGradientAlgorithm
from trustrl.config import TRPOConfig
from trustrl.rollout import Batch
from trustrl.trust_region import line_search


class TRPO(NaturalGradientAlgorithm):
    cfg: TRPOConfig

    def update_policy(self, batch: Batch) -> dict[str, float]:
        ng = self.search_direction(batch)
        full_step = ng.kl_scaled_step(self.cfg.max_kl)
        result = None  # a degenerate direction (e.g. zero advantages): take no step
        if full_step is not None:
            result = line_search(
                list(self.policy.parameters()),
                full_step,
                ng.surrogate,
                ng.mean_kl,
                self.cfg.max_kl,
                self.cfg.backtrack_shrink,
                self.cfg.backtrack_iters,
            )

        obs = batch.flat("obs")
        with torch.no_grad():
            entropy = float(self.policy(obs).entropy().mean())
        return {
            "surrogate_improvement": result.improvement if result else 0.0,
            "kl": result.kl if result else 0.0,
            "line_search_accepted": float(result.accepted) if result else 0.0,
            "line_search_backtracks": float(result.n_backtracks) if result else 0.0,
            "step_fraction": result.step_fraction if result else 0.0,
            "entropy": entropy,
            "grad_norm": float(ng.loss_grad.norm()),
            "cg_iterations": float(ng.cg.iterations),
            "cg_residual": ng.cg.residual_norm_sq,
        }

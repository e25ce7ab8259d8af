"""TRPO (Schulman et al. 2015): a natural-gradient step scaled to the trust region, then a line search.

maximise  L(theta) = E[ pi_theta(a|s) / pi_old(a|s) * A(s, a) ]
s.t.      mean KL(pi_old || pi_theta) <= max_kl

The direction s = F^-1 g is NPG's (:func:`~trustrl.algos.natural.natural_gradient_step`);
only the backtracking line search is TRPO's own.
"""

from __future__ import annotations

import torch

from trustrl.algos.natural import NaturalGradient, natural_gradient_step
from trustrl.config import CriticConfig, TRPOConfig
from trustrl.nets import Policy, ValueNet
from trustrl.rollout import Batch
from trustrl.trust_region import line_search
from trustrl.value_fit import make_fitter


class TRPO:
    def __init__(self, policy: Policy, critic: ValueNet, cfg: TRPOConfig, critic_cfg: CriticConfig, generator: torch.Generator):
        self.policy = policy
        self.cfg = cfg
        self.generator = generator
        self.critic_fitter = make_fitter(critic, critic_cfg, generator)

    def search_direction(self, batch: Batch) -> NaturalGradient:
        return natural_gradient_step(
            self.policy, batch.flat("obs"), batch.flat("actions"), batch.flat("advantages"), self.cfg, self.generator
        )

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

    def fit_critic(self, batch: Batch) -> dict[str, float]:
        """Regress V on this batch's returns. Touches only the critic, so the trainer may run it
        while the next batch is collected (``run.overlap_critic``)."""
        return self.critic_fitter.fit(batch.flat("obs"), batch.flat("returns"))

    def update(self, batch: Batch) -> dict[str, float]:
        return {**self.update_policy(batch), **self.fit_critic(batch)}

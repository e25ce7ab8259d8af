"""Natural policy gradient (Kakade 2001; the NPG baseline of Schulman et al. 2015).

theta <- theta + step * s,  s = F^-1 g  (conjugate gradient on Fisher-vector products)

``step`` is either fixed (``algo.step = "fixed"``: ``algo.step_size``) or
normalised so the quadratic model of the KL equals ``algo.max_kl``
(``algo.step = "kl"``: ``sqrt(2 max_kl / s^T F s)``). The direction is
exactly TRPO's (:func:`~trustrl.algos.natural.natural_gradient_direction`); unlike
TRPO there is no line search, so the true KL of a step is reported, not enforced.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from trustrl.algos.base import Capabilities
from trustrl.algos.natural import NaturalGradientAlgorithm, NaturalGradientConfig
from trustrl.batch import Batch
from trustrl.config.limits import choice, positive


@dataclass
class NPGConfig(NaturalGradientConfig):
    """Natural policy gradient (Kakade 2001): the same CG direction as TRPO, no line search."""

    name: str = "npg"
    """Which update rule: one of ``trustrl.algos.ALGORITHMS``."""
    step: str = "kl"
    """How far to move along s = F^-1 g: ``kl`` scales it to a quadratic-model KL of ``max_kl``
    (sqrt(2 max_kl / s^T F s) s); ``fixed`` moves ``step_size * s``."""
    step_size: float = 0.1
    """Learning rate of the ``fixed`` step (unused when ``step = "kl"``)."""

    def validate(self) -> None:
        super().validate()
        choice("algo.step", self.step, ("kl", "fixed"))
        positive("algo.step_size", self.step_size)


class NPG(NaturalGradientAlgorithm):
    config = NPGConfig
    capabilities = Capabilities(stale_batches=True, vine=True)
    cfg: NPGConfig

    def update_policy(self, batch: Batch) -> dict[str, float]:
        ng = self.search_direction(batch)
        if self.cfg.step == "kl":
            step = ng.kl_scaled_step(self.max_kl())
        else:
            step = self.cfg.step_size * ng.direction if torch.isfinite(ng.direction).all() else None

        improvement, kl, step_norm = 0.0, 0.0, 0.0
        if step is not None:
            params = list(self.policy.parameters())
            with torch.no_grad():
                vector_to_parameters(parameters_to_vector(params) + step, params)
                surrogate, kl = ng.objective.evaluate()
                improvement, kl = float(surrogate) - ng.surrogate, float(kl)
            step_norm = float(step.norm())

        obs = batch.flat("obs")
        with torch.no_grad():
            entropy = float(self.policy(obs).entropy().mean())
        return {
            "surrogate_improvement": improvement,
            "kl": kl,
            "step_norm": step_norm,
            "entropy": entropy,
            "grad_norm": float(ng.loss_grad.norm()),
            "cg_iterations": float(ng.cg.iterations),
            "cg_residual": ng.cg.residual_norm_sq,
        }

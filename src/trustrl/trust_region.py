"""The trust-region toolbox: conjugate gradient, Fisher-vector products, line search, one TRPO step.

Pure functions over flat parameter vectors and closures, shared by NPG,
TRPO and offline TRPO (Schulman et al. 2015, appendix C). Nothing here knows
about policies beyond "a list of parameters" and "a function returning a
scalar": each algorithm brings its own surrogate and KL closures to
:func:`trust_region_step`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import Tensor, nn
from torch.nn.utils import parameters_to_vector, vector_to_parameters


@dataclass
class CGResult:
    x: Tensor
    iterations: int
    residual_norm_sq: float


def conjugate_gradient(
    Avp: Callable[[Tensor], Tensor], b: Tensor, max_iters: int = 10, residual_tol: float = 1e-10
) -> CGResult:
    """Approximately solve ``A x = b`` for symmetric positive-definite ``A``, from ``x = 0``.

    Only matrix-vector products ``Avp(v) = A v`` are needed, so ``A`` (the
    Fisher matrix) is never formed. Stops after ``max_iters`` or when the
    squared residual norm drops below ``residual_tol``.
    """
    x = torch.zeros_like(b)
    r = b.clone()  # residual b - A x with x = 0
    p = r.clone()
    rr = r @ r
    iterations = 0
    while iterations < max_iters and rr > residual_tol:
        Ap = Avp(p)
        alpha = rr / (p @ Ap)
        x += alpha * p
        r -= alpha * Ap
        rr_new = r @ r
        p = r + (rr_new / rr) * p
        rr = rr_new
        iterations += 1
    return CGResult(x, iterations, float(rr))


def flat_grad(output: Tensor, params: Sequence[nn.Parameter], **kwargs) -> Tensor:
    """d output / d params as one flat vector (zeros for parameters it does not touch)."""
    grads = torch.autograd.grad(output, params, allow_unused=True, **kwargs)
    return torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(grads, params)])


def fisher_vector_product(
    mean_kl: Tensor, params: Sequence[nn.Parameter], damping: float
) -> Callable[[Tensor], Tensor]:
    """``v -> (H + damping I) v`` with ``H`` the Hessian of ``mean_kl`` at the current parameters.

    At the old policy, the Hessian of KL(pi_old || pi_theta) is the Fisher
    information matrix. The KL gradient graph is built once (``create_graph``)
    and reused by every product: each call is one extra backward pass.
    ``mean_kl`` must be evaluated with the old distribution detached.
    """
    params = list(params)
    kl_grad = flat_grad(mean_kl, params, create_graph=True)

    def fvp(v: Tensor) -> Tensor:
        hv = flat_grad(kl_grad @ v, params, retain_graph=True)
        return hv + damping * v

    return fvp


@dataclass
class LineSearchResult:
    accepted: bool
    step_fraction: float  # fraction of the full step taken (0 when rejected)
    n_backtracks: int  # steps tried beyond the first
    improvement: float  # surrogate(new) - surrogate(old); 0 when rejected
    kl: float  # mean KL(old || new) at the accepted step; 0 when rejected


@torch.no_grad()
def line_search(
    params: Sequence[nn.Parameter],
    full_step: Tensor,
    evaluate: Callable[[], tuple[Tensor, Tensor]],
    max_kl: float,
    shrink: float = 0.8,
    max_steps: int = 10,
    base: float | None = None,
) -> LineSearchResult:
    """Backtracking line search along ``full_step`` (Schulman et al. 2015, appendix C).

    ``evaluate()`` gives ``(surrogate, constraint)`` at the current parameters -- one forward
    pass for both. Tries ``theta + shrink**k * full_step`` for k = 0, 1, ..., and keeps the
    first with constraint <= ``max_kl`` and a positive surrogate improvement over ``base``
    (the surrogate at the start; evaluated here when not given). If none qualifies the
    parameters are restored exactly (bit for bit).
    """
    params = list(params)
    old = parameters_to_vector(params).clone()
    if base is None:
        base = float(evaluate()[0])
    fraction = 1.0
    for k in range(max_steps):
        vector_to_parameters(old + fraction * full_step, params)
        surrogate, kl = evaluate()
        kl, improvement = float(kl), float(surrogate) - base
        if kl <= max_kl and improvement > 0:
            return LineSearchResult(True, fraction, k, improvement, kl)
        fraction *= shrink
    vector_to_parameters(old, params)
    return LineSearchResult(False, 0.0, max_steps - 1, 0.0, 0.0)


def natural_gradient(
    loss_grad: Tensor,
    mean_kl: Tensor,
    params: Sequence[nn.Parameter],
    damping: float,
    cg_iters: int,
    cg_tol: float,
    free: Tensor | None = None,
) -> tuple[Tensor, Tensor, CGResult]:
    """The natural-gradient direction ``s ~= F^-1 g`` and its curvature ``s^T F s``.

    NPG and TRPO share this step; they differ only in how far they move along
    ``s``: NPG by a fixed rule, TRPO by a line search inside the trust region.
    ``free`` (a bool mask, ``loss_grad`` zero outside it): the direction moves only these coordinates -- CG
    solves the system of the Fisher matrix restricted to them, and ``s`` is zero elsewhere.
    """
    fvp = fisher_vector_product(mean_kl, params, damping)
    if free is not None:
        full, keep = fvp, free.to(loss_grad.dtype)
        fvp = lambda v: keep * full(keep * v)  # noqa: E731 -- P (F + damping I) P, on the free coordinates
    cg = conjugate_gradient(fvp, loss_grad, cg_iters, cg_tol)
    curvature = cg.x @ fvp(cg.x)
    return cg.x, curvature, cg


def natural_direction(
    params: Sequence[nn.Parameter],
    start: Callable[[], tuple[Tensor, Tensor]],
    damping: float,
    cg_iters: int,
    cg_tol: float,
    held: Callable[[Tensor], Tensor | None] | None = None,
) -> tuple[Tensor, Tensor, Tensor, CGResult, float]:
    """``(g, s, s^T F s, cg, L)`` at the current parameters: the surrogate's gradient, s = CG(F, g), and
    the surrogate's value.

    ``start()`` gives the surrogate and the KL whose Hessian is the Fisher matrix, both with their
    graphs (sharing one forward pass when the Fisher uses the whole batch). ``held(g)``: a bool mask of
    the coordinates a bound holds against the gradient (:func:`trustrl.nets.held_at_bound`), or None;
    ``g`` and the Fisher matrix leave them out, so ``s`` does not spend the trust region where the
    distribution cannot move. The one place NPG, TRPO and offline TRPO get their direction from.
    """
    params = list(params)
    surrogate, fisher_kl = start()
    loss_grad = flat_grad(surrogate, params, retain_graph=True)
    mask = held(loss_grad) if held is not None else None
    free = None
    if mask is not None:
        free = ~mask
        loss_grad = loss_grad.masked_fill(mask, 0.0)
    direction, curvature, cg = natural_gradient(loss_grad, fisher_kl, params, damping, cg_iters, cg_tol, free)
    return loss_grad, direction, curvature, cg, float(surrogate.detach())


def scheduled_max_kl(start: float, final: float, schedule: str, progress: float) -> float:
    """The KL radius of an update taken when ``progress`` (in [0, 1)) of the run's updates are done.

    ``constant``: ``start`` throughout; ``linear``: ``start + (final - start) * progress``.
    """
    if schedule == "constant":
        return start
    if schedule == "linear":
        return start + (final - start) * min(max(progress, 0.0), 1.0)
    raise ValueError(f"unknown max_kl schedule {schedule!r}")


def kl_scaled_step(direction: Tensor, curvature: Tensor, max_kl: float) -> Tensor | None:
    """``sqrt(2 max_kl / s^T F s) * s``: the step whose quadratic-model KL is ``max_kl``.

    None when the direction is degenerate (zero or non-finite curvature, e.g. all
    advantages zero): the caller then takes no step.
    """
    if not (curvature > 0 and torch.isfinite(curvature)):
        return None
    return math.sqrt(2 * max_kl / float(curvature)) * direction


@dataclass
class TrustRegionStep:
    loss_grad: Tensor  # g at the old parameters
    direction: Tensor  # s ~= (F + damping I)^-1 g
    curvature: Tensor  # s^T (F + damping I) s
    cg: CGResult
    search: LineSearchResult | None  # None: degenerate direction, no step tried

    @property
    def accepted(self) -> bool:
        return self.search is not None and self.search.accepted


def trust_region_step(
    params: Sequence[nn.Parameter],
    start: Callable[[], tuple[Tensor, Tensor]],
    evaluate: Callable[[], tuple[Tensor, Tensor]],
    max_kl: float,
    *,
    damping: float,
    cg_iters: int,
    cg_tol: float,
    shrink: float,
    max_backtracks: int,
    constraint_limit: float | None = None,
    held: Callable[[Tensor], Tensor | None] | None = None,
) -> TrustRegionStep:
    """One TRPO step from closures (Schulman et al. 2015, appendix C).

    ``start()`` gives, with their graphs, the objective to maximise and the mean KL(pi_old || pi_theta)
    whose Hessian is the Fisher matrix (a sub-sample of the batch will do); ``evaluate()`` the objective
    and what the line search must keep at or below ``constraint_limit`` (default ``max_kl``), from one
    forward pass: TRPO's is the full-batch KL, offline TRPO's both of its trust regions as one ratio.
    The full step is scaled so its quadratic-model KL is ``max_kl``; ``held``: see :func:`natural_direction`.
    """
    params = list(params)
    loss_grad, direction, curvature, cg, base = natural_direction(params, start, damping, cg_iters, cg_tol, held)
    full_step = kl_scaled_step(direction, curvature, max_kl)
    search = None
    if full_step is not None:
        limit = max_kl if constraint_limit is None else constraint_limit
        search = line_search(params, full_step, evaluate, limit, shrink, max_backtracks, base)
    return TrustRegionStep(loss_grad, direction, curvature, cg, search)

"""The natural-gradient step NPG and TRPO share: surrogate and KL closures, and s = F^-1 g by CG.

Both algorithms build the same :class:`PolicyObjective` on a batch and differ
only in how far they move along the direction: NPG by a fixed rule
(:func:`natural_gradient_direction`), TRPO by the backtracking line search of
:func:`trustrl.trust_region.trust_region_step`. The Fisher matrix is never
formed: conjugate gradient only needs Fisher-vector products
(:func:`trustrl.trust_region.fisher_vector_product`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np
import torch
from torch import Tensor

from trustrl.algos.base import AlgoConfig, SeparateCriticAlgorithm, make_fitter
from trustrl.algos.vine import vine_surrogate
from trustrl.batch import Batch, Branches
from trustrl.config.limits import MAX_BATCH, non_negative, positive
from trustrl.distributions import Distribution
from trustrl.errors import ConfigError
from trustrl.nets import Policy, ValueNet, held_at_bound
from trustrl.trust_region import CGResult, kl_scaled_step, natural_direction, scheduled_max_kl

if TYPE_CHECKING:
    from trustrl.config.sections import CriticConfig


MAX_KL_SCHEDULES = ("constant", "linear")
FISHER_STREAM = 0x46495348  # the spawn key of the Fisher rows' random stream


@dataclass
class NaturalGradientConfig(AlgoConfig):
    """Fields of the natural-gradient step that NPG and TRPO share (one CG solve of F s = g)."""

    max_kl: float = 0.01
    """KL radius delta: TRPO's bound on mean KL(old || new); NPG's step size when ``step = "kl"``."""
    max_kl_schedule: str = "constant"
    """``constant``: every update uses ``max_kl``; ``linear``: the radius goes from ``max_kl`` at the
    first update to ``max_kl_final`` at the end of the run, so late updates refine the policy instead
    of moving it as far as early ones (the final policy then wanders less from update to update)."""
    max_kl_final: float = 0.0
    """The radius the ``linear`` schedule reaches at the end of the run (unused when ``constant``)."""
    cg_iters: int = 10
    """Conjugate-gradient iterations for the search direction."""
    cg_tol: float = 1e-10
    """Conjugate gradient stops early when the squared residual norm falls below this."""
    damping: float = 0.1
    """Added to the Fisher matrix (F + damping I) so CG stays well conditioned."""
    fvp_fraction: float = 1.0
    """Fraction of the batch used for Fisher-vector products (the TRPO paper uses 0.1)."""
    fvp_samples: int = 0
    """When positive, the Fisher-vector products use this many random rows of the batch (all of it when
    the batch is smaller) in place of ``fvp_fraction``: the cost of conjugate gradient then stays the
    same however wide the batch, and only the gradient and the line search see every row."""

    def validate(self) -> None:
        super().validate()
        positive("algo.max_kl", self.max_kl)
        if self.max_kl_schedule not in MAX_KL_SCHEDULES:
            raise ConfigError(f"algo.max_kl_schedule must be one of {', '.join(MAX_KL_SCHEDULES)}, "
                              f"got {self.max_kl_schedule!r}")
        non_negative("algo.max_kl_final", self.max_kl_final)
        positive("algo.cg_iters", self.cg_iters, 1_000)
        positive("algo.cg_tol", self.cg_tol)
        non_negative("algo.damping", self.damping)
        if not 0.0 < self.fvp_fraction <= 1.0:
            raise ConfigError(f"algo.fvp_fraction must be in (0, 1], got {self.fvp_fraction}")
        non_negative("algo.fvp_samples", self.fvp_samples, MAX_BATCH)
        if self.fvp_samples and self.fvp_fraction < 1.0:
            raise ConfigError("algo.fvp_samples and algo.fvp_fraction both choose the Fisher-vector products' rows: "
                              "set one of them")


@dataclass
class PolicyObjective:
    """The closures of one batch, evaluated at the policy's current parameters.

    The trust-region step calls ``start`` once, for the gradient and the Fisher-vector products (one
    forward pass, two when the Fisher takes a sub-sample), and ``evaluate`` once per line-search trial
    (one forward pass for the surrogate and the KL both).
    """

    old_dist: Distribution  # pi_old on the batch, detached
    start: Callable[[], tuple[Tensor, Tensor]]  # (L(theta), the KL whose Hessian is F), with their graphs
    evaluate: Callable[[], tuple[Tensor, Tensor]]  # (L(theta), mean KL(pi_old || pi_theta) over the whole batch)

    def surrogate(self) -> Tensor:
        """L(theta) = mean ratio * A (+ entropy bonus)."""
        return self.evaluate()[0]

    def mean_kl(self) -> Tensor:
        """Mean KL(pi_old || pi_theta) over the whole batch."""
        return self.evaluate()[1]


def policy_objective(
    policy: Policy,
    obs: Tensor,
    actions: Tensor,
    advantages: Tensor,
    cfg: NaturalGradientConfig,
    generator: torch.Generator,
    behaviour_log_probs: Tensor | None = None,
) -> PolicyObjective:
    """``obs`` ``(B, obs_dim)``, ``actions`` ``(B, ...)``, ``advantages`` ``(B,)``.

    The Fisher-vector products use a random ``cfg.fvp_samples`` rows or ``cfg.fvp_fraction`` of the
    batch (drawn from ``generator`` when ``start`` is called); the gradient uses all of it.

    ``behaviour_log_probs``: log beta(a|s) of the policy that acted, when that is not the policy
    being updated (asynchronous sampling). The surrogate is then E_beta[pi_theta / beta * A], the
    objective whose gradient at theta is the policy gradient at pi_theta for data from beta, while
    the trust region stays around the current policy: KL(pi_old || pi_theta) with pi_old the
    parameters before this step, not beta.
    """
    with torch.no_grad():
        old_dist = policy(obs)
        old_log_probs = old_dist.log_prob(actions) if behaviour_log_probs is None else behaviour_log_probs

    def surrogate(dist: Distribution) -> Tensor:
        ratio = (dist.log_prob(actions) - old_log_probs).exp()
        return (ratio * advantages).mean() + cfg.entropy_coef * dist.entropy().mean()

    return _objective(policy, obs, old_dist, surrogate, cfg, generator)


def vine_objective(
    policy: Policy, branches: Branches, cfg: NaturalGradientConfig, generator: torch.Generator,
    trunk_obs: Tensor | None = None,
) -> PolicyObjective:
    """The closures of a vine batch: :func:`~trustrl.algos.vine.vine_surrogate` over the rollout states, and
    the mean KL over the same states -- or, given ``trunk_obs`` (``vine.kl_states = "trunk"``), over every
    state of the trunk, the Fisher then on ``cfg``'s rows of them."""
    obs, old_log_probs, advantages = branches.obs, branches.log_probs, branches.advantages
    actions = branches.actions.transpose(0, 1)  # (K, M, ...): broadcast against the M states' distributions

    def surrogate(dist: Distribution) -> Tensor:
        log_probs = dist.log_prob(actions).T
        return (vine_surrogate(log_probs, old_log_probs, advantages, branches.exact)
                + cfg.entropy_coef * dist.entropy().mean())

    kl_obs = obs if trunk_obs is None else trunk_obs
    with torch.no_grad():
        old_dist = policy(kl_obs)
    surrogate_obs = None if trunk_obs is None else obs
    return _objective(policy, kl_obs, old_dist, surrogate, cfg, generator, surrogate_obs)


def _objective(policy: Policy, obs: Tensor, old_dist: Distribution, surrogate: Callable[[Distribution], Tensor],
               cfg: NaturalGradientConfig, generator: torch.Generator,
               surrogate_obs: Tensor | None = None) -> PolicyObjective:
    """The closures over ``surrogate(dist)`` and the mean KL from ``old_dist`` (pi_old at ``obs``). The surrogate
    is taken at ``obs`` too unless ``surrogate_obs`` names other states (vine's rollout states, its KL over the
    trunk). The Fisher KL shares the surrogate's forward pass when both take the same whole batch, and runs its
    own otherwise."""
    shared = surrogate_obs is None

    def start() -> tuple[Tensor, Tensor]:
        dist = policy(obs if shared else surrogate_obs)
        value = surrogate(dist)
        rows = fvp_rows(len(obs), cfg.fvp_fraction, cfg.fvp_samples, generator)
        current = dist if shared and isinstance(rows, slice) else policy(obs[rows])
        return value, old_dist[rows].kl(current).mean()

    def evaluate() -> tuple[Tensor, Tensor]:
        dist = policy(obs)
        return surrogate(dist if shared else policy(surrogate_obs)), old_dist.kl(dist).mean()

    return PolicyObjective(old_dist, start, evaluate)


@dataclass
class NaturalGradient:
    """The natural-gradient direction on a batch, before any parameter moves."""

    objective: PolicyObjective
    loss_grad: Tensor  # g = dL/dtheta at theta_old, flat
    direction: Tensor  # s ~= (F + damping I)^-1 g, flat
    curvature: Tensor  # s^T (F + damping I) s
    cg: CGResult
    surrogate: float  # L(theta_old)

    def kl_scaled_step(self, max_kl: float) -> Tensor | None:
        """The step along ``direction`` whose quadratic-model KL is ``max_kl`` (None if degenerate)."""
        return kl_scaled_step(self.direction, self.curvature, max_kl)


def natural_gradient_direction(objective: PolicyObjective, policy: Policy,
                               cfg: NaturalGradientConfig) -> NaturalGradient:
    """g and s = CG(F, g) by :func:`~trustrl.trust_region.natural_direction`, as TRPO's step gets them (log-std
    coordinates a bound holds left out)."""
    parts = natural_direction(policy.parameters(), objective.start, cfg.damping, cfg.cg_iters, cfg.cg_tol,
                              bound_holds(policy))
    return NaturalGradient(objective, *parts)


def bound_holds(policy: Policy) -> Callable[[Tensor], Tensor | None]:
    """``g -> held_at_bound(policy, g)``: what the natural-gradient step of NPG, TRPO and offline TRPO leaves out."""
    return lambda ascent: held_at_bound(policy, ascent)


def fvp_rows(n: int, fraction: float, samples: int, generator: torch.Generator) -> Tensor | slice:
    """Random rows of a batch of ``n`` for the Fisher-vector products: ``samples`` of them when positive,
    else a ``fraction``; ``slice(None)`` for the whole batch (nothing drawn from ``generator`` then)."""
    if samples > 0:
        if samples >= n:
            return slice(None)
        k = samples
    elif fraction >= 1.0:
        return slice(None)
    else:
        k = max(1, int(round(n * fraction)))
    return torch.randperm(n, generator=generator)[:k]


def fisher_generator(generator: torch.Generator) -> torch.Generator:
    """The stream of the Fisher-vector products' rows: a child of the run's generator's seed (a
    ``SeedSequence`` spawn key no other stream uses), drawing nothing from the run's generator."""
    seed = np.random.SeedSequence(generator.initial_seed(), spawn_key=(FISHER_STREAM,)).generate_state(1, np.uint64)[0]
    return torch.Generator().manual_seed(int(seed))


class NaturalGradientAlgorithm(SeparateCriticAlgorithm):
    """What NPG and TRPO share beyond the step: the objective on a batch and the separate critic fit.

    Each defines only ``update_policy`` -- how far to move along the direction.
    """

    def __init__(self, policy: Policy, critic: ValueNet, cfg, critic_cfg: CriticConfig, generator: torch.Generator):
        self.policy = policy
        self.cfg = cfg
        self.generator = generator
        self.critic_fitter = make_fitter(critic, critic_cfg, generator)
        # The Fisher's rows come from a stream of their own, so the policy step and the critic fit share no
        # state: they may run side by side, and the critic's minibatches do not depend on algo.fvp_samples.
        self.fvp_generator = fisher_generator(generator)

    def objective(self, batch: Batch) -> PolicyObjective:
        if batch.branches is not None:
            trunk_obs = batch.flat("obs") if batch.branches.kl_states == "trunk" else None
            return vine_objective(self.policy, batch.branches, self.cfg, self.fvp_generator, trunk_obs)
        behaviour = batch.flat("log_probs") if batch.stale else None
        return policy_objective(self.policy, batch.flat("obs"), batch.flat("actions"), batch.flat("advantages"),
                                self.cfg, self.fvp_generator, behaviour)

    def state_dict(self) -> dict:
        return {**super().state_dict(), "fvp_generator": self.fvp_generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        if "fvp_generator" in state:  # a run saved before the stream was its own starts it afresh
            self.fvp_generator.set_state(state["fvp_generator"])

    def search_direction(self, batch: Batch) -> NaturalGradient:
        return natural_gradient_direction(self.objective(batch), self.policy, self.cfg)

    def max_kl(self) -> float:
        """This update's KL radius, on ``algo.max_kl_schedule``."""
        return scheduled_max_kl(self.cfg.max_kl, self.cfg.max_kl_final, self.cfg.max_kl_schedule, self.progress)

    def fit_critic(self, batch: Batch) -> dict[str, float]:
        obs, returns = batch.flat("obs"), batch.flat("returns")
        branches = batch.branches
        if branches is not None and branches.critic_on_branches:  # vine: the rollout states' values too
            obs, returns = torch.cat([obs, branches.obs]), torch.cat([returns, branches.values.to(returns.dtype)])
        return self.critic_fitter.fit(obs, returns)

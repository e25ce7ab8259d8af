"""What the run loop knows of an algorithm: this interface, and nothing else.

An algorithm holds the math that is its own -- an update rule over a
:class:`~trustrl.batch.Batch` of experience with advantages -- and the
optimiser state that rule carries from batch to batch.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from trustrl.batch import Batch
from trustrl.config.limits import non_negative
from trustrl.errors import ConfigError
from trustrl.value_fit import AdamFitter, LBFGSFitter


@dataclass
class AlgoConfig:
    """Fields every algorithm shares: how advantages are estimated."""

    name: str = "trpo"
    """Which update rule: one of ``trustrl.algos.ALGORITHMS``."""
    gamma: float = 0.99
    """Discount factor, in (0, 1]."""
    gae_lambda: float = 0.95
    """GAE lambda in [0, 1]: 0 is one-step TD, 1 is Monte-Carlo minus the baseline."""
    normalize_advantage: bool = True
    """Standardise advantages over the batch before the policy update."""
    entropy_coef: float = 0.0
    """Weight of the mean policy entropy added to the objective."""

    def validate(self) -> None:
        if not 0.0 < self.gamma <= 1.0:
            raise ConfigError(f"algo.gamma must be in (0, 1], got {self.gamma}")
        if not 0.0 <= self.gae_lambda <= 1.0:
            raise ConfigError(f"algo.gae_lambda must be in [0, 1], got {self.gae_lambda}")
        non_negative("algo.entropy_coef", self.entropy_coef)


@dataclass(frozen=True)
class Capabilities:
    """What an update rule can learn from, declared beside it; the config is checked against it."""

    stale_batches: bool = False
    """Corrects for a batch acted on by the policy one update earlier (``run.async_sampling``)."""
    vine: bool = False
    """Learns from vine branches (``run.sampling = "vine"``)."""
    offline: bool = False
    """Has a trust-region step from a dataset (``offline.dataset``: offline TRPO)."""


class Algorithm(ABC):
    config: ClassVar[type[AlgoConfig]]
    """The dataclass of its ``[algo]`` settings."""
    capabilities: ClassVar[Capabilities] = Capabilities()
    uses_critic: bool = True
    """Advantages are computed with the critic's V (False: V = 0, plain discounted returns-to-go)."""
    finished: bool = False
    """Set by an update after which another cannot change anything (the loop then stops early)."""
    progress: float = 0.0
    """The fraction of the run's updates done before the current one, set by the run loop before
    each update; schedules (``algo.max_kl_schedule``) read it. It follows from the update count, so a
    resumed run sees the same values."""

    def prepare(self, batch: Batch) -> list[str]:
        """Called once, on the first batch of a fresh run, before anything is evaluated or updated.

        Offline TRPO fits its starting policy and critic to the data here; online algorithms need
        nothing. Returns notes for the log.
        """
        return []

    @abstractmethod
    def update(self, batch: Batch) -> dict[str, float]:
        """Learn from one batch (advantages filled in); returns metrics for metrics.csv."""

    def info(self) -> dict[str, Any]:
        """Facts about this run's algorithm for the checkpoints' JSON (offline TRPO: where beta came from)."""
        return {}

    critic_fitter: AdamFitter | LBFGSFitter | None = None
    """The critic's own fitter (:func:`make_fitter`), or None where the critic trains inside the update."""

    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs beyond the weights: optimiser states and the like (tensors allowed)."""
        return {"critic": self.critic_fitter.state_dict() if self.critic_fitter is not None else {}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output."""
        if self.critic_fitter is not None:
            self.critic_fitter.load_state_dict(state["critic"])


class SeparateCriticAlgorithm(Algorithm):
    """An algorithm whose critic fit touches only the critic, after the policy step.

    The run loop may then fit the critic of batch k while batch k+1 is collected
    (``run.overlap_critic``): the policy step of k+1 needs only the policy, and
    GAE of k+1 waits for the fitted critic, so no number changes.
    """

    @abstractmethod
    def update_policy(self, batch: Batch) -> dict[str, float]:
        """The policy step on one batch."""

    @abstractmethod
    def fit_critic(self, batch: Batch) -> dict[str, float]:
        """Fit the critic to ``batch.returns``."""

    def update(self, batch: Batch) -> dict[str, float]:
        return {**self.update_policy(batch), **self.fit_critic(batch)}


def make_fitter(critic: torch.nn.Module, critic_cfg: Any, generator: torch.Generator) -> AdamFitter | LBFGSFitter:
    """The critic fitter ``critic.fit`` names, with its settings from the ``[critic]`` section."""
    if critic_cfg.fit == "lbfgs":
        return LBFGSFitter(critic, critic_cfg.lbfgs_iters, critic_cfg.l2)
    return AdamFitter(critic, critic_cfg.lr, critic_cfg.epochs, critic_cfg.minibatch, critic_cfg.l2, generator,
                      critic_cfg.minibatches)

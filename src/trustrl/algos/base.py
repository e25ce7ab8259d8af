"""What the run loop knows of an algorithm: this interface, and nothing else.

An algorithm holds the math that is its own -- an update rule over a
:class:`~trustrl.samplers.batch.Batch` of experience with advantages -- and the
optimiser state that rule carries from batch to batch.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from trustrl.samplers.batch import Batch


class Algorithm(ABC):
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

    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs beyond the weights: optimiser states and the like (tensors allowed)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output."""


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

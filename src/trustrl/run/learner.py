"""One update of the learner: the algorithm's step, with the critic fit beside it where it can be.

With ``run.overlap_critic`` and an algorithm whose critic fit is separate (NPG, TRPO), the fit of update k
runs in a thread beside the policy step of k and on while batch k+1 is collected; GAE of k+1 waits for it,
so no number changes. With ``run.on_nonfinite = "skip"`` an update that made something non-finite is undone
as if its batch never came.
"""

from __future__ import annotations

import copy
import math
from concurrent.futures import Future, ThreadPoolExecutor

import torch

from trustrl.algos.base import Algorithm, SeparateCriticAlgorithm
from trustrl.batch import Batch
from trustrl.nets import Policy, ValueNet


class Learner:
    def __init__(self, algo: Algorithm, policy: Policy, critic: ValueNet, overlap_critic: bool, undoable: bool):
        self.algo, self.policy, self.critic = algo, policy, critic
        self.undoable = undoable
        # an undone update takes its critic fit with it, so the fit never runs beside the next batch then
        self.overlap = overlap_critic and isinstance(algo, SeparateCriticAlgorithm) and not undoable
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="trustrl-critic") if self.overlap else None
        self._before: tuple | None = None

    def update(self, batch: Batch, progress: float) -> tuple[dict[str, float], Future | None, str | None]:
        """The update on ``batch`` (advantages filled in): its metrics, the critic fit still running (or None),
        and what it made non-finite (or None: then the update stands)."""
        self._before = _copy_state(self.policy, self.critic, self.algo) if self.undoable else None
        self.algo.progress = progress
        if self.overlap:
            # the fit starts beside the policy step (they share no state) and goes on beside the next batch
            fitting = self._thread.submit(self.algo.fit_critic, batch)
            stats = self.algo.update_policy(batch)
        else:
            stats, fitting = self.algo.update(batch), None
        return stats, fitting, nonfinite_learner(self.policy, None if self.overlap else self.critic, stats)

    def undo(self) -> None:
        """Put policy, critic and optimiser states back as they were before the last :meth:`update`."""
        policy, critic, algo = self._before
        self.policy.load_state_dict(policy)
        self.critic.load_state_dict(critic)
        self.algo.load_state_dict(algo)

    def close(self) -> None:
        if self._thread is not None:
            self._thread.shutdown(wait=True)


def nonfinite_learner(policy: Policy | None, critic: ValueNet | None, stats: dict[str, float]) -> str | None:
    """What an update made non-finite -- a loss or gradient among its metrics, a weight -- or None."""
    for key, value in stats.items():
        if key != "explained_variance" and isinstance(value, float) and not math.isfinite(value):
            return f"the update's {key} is {value}"
    for name, net in (("policy", policy), ("critic", critic)):
        if net is not None and not all(bool(torch.isfinite(p).all()) for p in net.parameters()):
            return f"the update made the {name}'s weights non-finite"
    return None


def _copy_state(policy: Policy, critic: ValueNet, algo: Algorithm) -> tuple:
    """A copy of everything an update changes, to undo it."""
    return copy.deepcopy(policy.state_dict()), copy.deepcopy(critic.state_dict()), copy.deepcopy(algo.state_dict())

"""Callbacks: your code, called after each update of a run, that may stop it.

    import trustrl
    from trustrl.callbacks import SaveEvery, StopAtReturn

    trustrl.train("cartpole-trpo", callbacks=[StopAtReturn(475.0), SaveEvery(10_000)])

A callback is any function (or object with ``__call__``) of ``(step, metrics, agent)`` -- see :class:`Callback`.
Returning a truthy value stops the run, the way its last update would end it: the policy the callback saw is
evaluated (when the run evaluates), may become ``best``, and is saved as ``last``, so ``--resume`` carries on
from it. An exception raised in a callback is not caught: ``last`` is saved at that update first, and the
exception goes on to the caller.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Callable, Mapping, Protocol

from trustrl.agent import Agent
from trustrl.errors import ConfigError


@dataclass
class TrainingAgent(Agent):
    """The :class:`~trustrl.Agent` a callback is given: the run's policy as it is after the update, acting with
    the observation statistics the next batch will use (frozen). Valid during the call only -- the next update
    changes the policy in place; :meth:`keep` saves a copy that stays."""

    step_before: int = 0
    """Env steps (or dataset transitions) before this update's batch."""
    keep_copy: Callable[[], str] | None = None

    def keep(self) -> str:
        """Save this policy (with its statistics and critic) as checkpoint ``step-<N>`` in the run's
        ``checkpoints/`` folder, ``N`` the step; returns that name, which ``trustrl.load(run, checkpoint=...)``,
        ``trustrl eval --checkpoint`` and ``--init-from RUN:step-<N>`` take."""
        if self.keep_copy is None:
            raise ConfigError("keep() saves the policy of the update a callback is called for, during that call; "
                              "this agent's update is over (or it is not part of a run in training)")
        return self.keep_copy()


class Callback(Protocol):
    """Called after each update's row is written to metrics.csv (not for the starting evaluation at step 0).

    ``step``: env steps (offline: dataset transitions) after the update. ``metrics``: the row just written
    (``update``, ``episode_return_mean``, the algorithm's statistics, and the ``eval_*`` columns when the run
    evaluates -- ``nan`` on rows off the evaluation schedule). ``agent``: see :class:`TrainingAgent`.

    Return a truthy value to stop the run after this update; ``None`` or ``False`` to go on. A callback must
    not change the agent's policy: it is the run's own. Random numbers drawn from torch's global generator
    inside a callback do not change the run's (it is forked around the call).
    """

    def __call__(self, step: int, metrics: Mapping[str, float], agent: TrainingAgent) -> object: ...


class StopAtReturn:
    """Stop once the evaluation return (``eval_return_mean``, the mean over ``run.eval_episodes`` deterministic
    episodes) reaches ``threshold``. ``column`` watches another metrics.csv column instead, e.g.
    ``episode_return_mean`` (the rolling mean of training episodes) for a run without evaluation."""

    def __init__(self, threshold: float, column: str = "eval_return_mean"):
        if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) or math.isnan(threshold):
            raise ConfigError(f"StopAtReturn needs a number to stop at, got {threshold!r}")
        self.threshold, self.column = float(threshold), column

    def __call__(self, step: int, metrics: Mapping[str, float], agent: TrainingAgent) -> bool:
        if self.column not in metrics:
            known = ", ".join(sorted(metrics))
            hint = " (the eval_* columns need run.eval_every > 0)" if self.column.startswith("eval_") else ""
            raise ConfigError(f"StopAtReturn watches {self.column!r}, which this run does not record{hint}; "
                              f"its columns: {known}")
        value = metrics[self.column]
        return math.isfinite(value) and value >= self.threshold

    def __repr__(self) -> str:
        return f"StopAtReturn({self.threshold!r}, column={self.column!r})"


class SaveEvery:
    """Keep a copy of the policy each time the run's step count crosses a multiple of ``steps``: checkpoint
    ``step-<N>`` (``N`` the step of the update that crossed it) beside ``last`` and ``best``, which
    ``trustrl.load(run, checkpoint="step-<N>")`` loads. A resumed run writes its copies again from its
    ``last`` on, over those of the same name."""

    def __init__(self, steps: int):
        if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 1:
            raise ConfigError(f"SaveEvery needs a positive whole number of steps, got {steps!r}")
        self.steps = int(steps)
        self.kept: list[str] = []

    def __call__(self, step: int, metrics: Mapping[str, float], agent: TrainingAgent) -> None:
        if step // self.steps > agent.step_before // self.steps:
            self.kept.append(agent.keep())

    def __repr__(self) -> str:
        return f"SaveEvery({self.steps})"


__all__ = ["Callback", "SaveEvery", "StopAtReturn", "TrainingAgent"]

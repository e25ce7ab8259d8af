"""The run loop: collect -> advantages -> update -> record -> repeat.

It is the same for every sampler and every algorithm; nothing in it is specific to either. The sampler
decides what a batch is (an asynchronous one hands over the batch the previous policy collected); the
:class:`~trustrl.run.learner.Learner` runs the update, fitting the critic beside the next batch where it
can; the :class:`~trustrl.run.recorder.Recorder` decides what is evaluated, logged and checkpointed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch

from trustrl.advantages import compute_advantages
from trustrl.algos.base import Algorithm
from trustrl.callbacks import Callback
from trustrl.config import Config
from trustrl.errors import NonFiniteError
from trustrl.nets import Policy, ValueNet, keep_in_bounds
from trustrl.run.evaluation import Evaluator
from trustrl.run.learner import Learner
from trustrl.run.recorder import Recorder
from trustrl.run.state import LoopState
from trustrl.run.writer import RunWriter
from trustrl.samplers import Sampler


@dataclass
class Parts:
    """What one run is made of; the online and offline modes differ only in how these are built."""

    cfg: Config
    sampler: Sampler
    policy: Policy
    critic: ValueNet
    algo: Algorithm
    generator: torch.Generator
    n_updates: int  # the run's updates, when its batches are of one size (at least one)
    steps_per_update: int  # env steps (or dataset transitions) of one batch: vine's when no branch ends early
    budget: int | None = None
    """Env steps the run may take when its batches differ in size (vine: branches that end early take fewer
    steps): the updates are then counted by the steps actually taken, and ``n_updates`` is unused."""
    evaluator: Evaluator | None = None
    eval_due: Callable[[int, int, int], bool] = lambda update, before, step: False
    """(update, env steps before its batch, after it) -> evaluate now?"""
    extra: dict = field(default_factory=dict)  # recorded in every checkpoint's JSON
    notes: list[str] = field(default_factory=list)
    start_notes: list[str] = field(default_factory=list)
    """Notes said when the loop starts, once nothing can refuse the run: a refused start says only its error."""
    log: Callable[[str], None] = lambda message: None

    def ended(self, update: int, steps: int) -> bool:
        """Whether the run is over after ``update`` updates and ``steps`` env steps: with a ``budget``, once one
        more batch of the mean size so far would not fit in it -- ``floor(budget / batch)`` updates, as for
        batches of one size, with the mean batch taken for ``batch``."""
        if self.budget is None:
            return update >= self.n_updates
        return update > 0 and steps + steps / update > self.budget

    def known_last(self, update: int) -> bool:
        """Update ``update`` is the run's last, known before its batch is collected (batches of one size)."""
        return self.budget is None and update == self.n_updates

    def progress(self, update: int, steps_before: int) -> float:
        """The fraction of the run done when update ``update`` starts (``steps_before`` env steps taken)."""
        if self.budget is None:
            return (update - 1) / self.n_updates
        return min(steps_before / self.budget, 1.0)

    @property
    def planned_steps(self) -> int:
        """The steps the run is to take, for its progress line."""
        return self.budget if self.budget is not None else self.n_updates * self.steps_per_update


def run(parts: Parts, state: LoopState, writer: RunWriter, callbacks: Sequence[Callback] = ()) -> int | None:
    """Train from ``state`` (fresh or resumed, updated in place) until :meth:`Parts.ended` or a callback stops
    the run; returns the step it was stopped at, or None."""
    cfg, sampler, policy, algo = parts.cfg, parts.sampler, parts.policy, parts.algo
    recorder = Recorder(parts, state, writer, callbacks)
    learner = Learner(algo, policy, parts.critic, cfg.run.overlap_critic, undoable=recorder.skip)
    update = state.update
    for note in parts.start_notes:
        parts.notes.append(note)
        parts.log(note)
    try:
        while not parts.ended(update, sampler.total_steps):
            update += 1
            t0 = time.perf_counter()
            step_before = sampler.total_steps
            acting_norm = sampler.obs_norm.copy()  # the statistics this batch is normalised with
            try:
                batch = sampler.collect(policy, last=parts.known_last(update))
            except NonFiniteError as exc:  # the sampler dropped the batch: no statistic or episode took it
                recorder.nonfinite(str(exc), sampler.total_steps)
                recorder.skipped(update)
                continue
            t1 = time.perf_counter()
            recorder.settle()  # the update before, once its critic is fitted
            if recorder.stopped_at is not None:  # this batch is dropped: a resume collects it again
                break
            # a fresh run's first batch (a resumed run starts past it): preparation and the initial evaluation
            prepare_s = recorder.start(batch, acting_norm) if update == 1 else 0.0
            t3 = time.perf_counter()
            recorder.episodes(batch, update, acting_norm)
            t4 = time.perf_counter()
            compute_advantages(batch, parts.critic if algo.uses_critic else None, cfg.algo.gamma,
                               cfg.algo.gae_lambda, cfg.algo.normalize_advantage)
            t5 = time.perf_counter()
            stats, fitting, problem = learner.update(batch, progress=parts.progress(update, step_before))
            if problem:
                recorder.nonfinite(problem, sampler.total_steps)
                learner.undo()  # skip: as if the batch never came
                recorder.skipped(update)
                continue
            keep_in_bounds(policy)
            t6 = time.perf_counter()
            recorder.film()
            recorder.updated(update, step_before, batch, stats, fitting, {
                "sample_s": t1 - t0, "prepare_s": prepare_s, "advantage_s": t5 - t4, "update_s": t6 - t5,
                "checkpoint_s": t4 - t3, "video_s": time.perf_counter() - t6})  # fmt: skip
            if recorder.stopped_at is not None:
                break
            if algo.finished and not parts.ended(update, sampler.total_steps):
                recorder.note(f"stopped after {update} updates: {type(algo).__name__} cannot improve further")
                break
    finally:
        learner.close()
    return recorder.stopped_at

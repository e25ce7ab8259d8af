"""What the run keeps of each update: the evaluation schedule, ``best`` and ``last``, a metrics row.

The loop hands the recorder each finished update (:class:`Pending`); the recorder decides whether it
is evaluated, whether it is the new ``best``, whether a ``last`` checkpoint is due, and writes the row
(through :class:`~trustrl.run.writer.RunWriter`, which knows the run directory's layout). The row goes
out before ``last`` does: a resume keeps the rows up to its checkpoint's step, so a run killed between
the two loses nothing. The run's callbacks (:mod:`trustrl.callbacks`) see each update's row once it is out;
one that asks to stop ends the run there as its last update would (:meth:`Recorder._stop`).
"""

from __future__ import annotations

import math
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch

from trustrl.batch import Batch
from trustrl.callbacks import Callback, TrainingAgent
from trustrl.checkpoint import kept_tag
from trustrl.errors import NonFiniteError
from trustrl.nets import Policy
from trustrl.normalization import ObsNormalizer
from trustrl.run.evaluation import NOT_EVALUATED, EvalStats
from trustrl.run.learner import nonfinite_learner
from trustrl.run.state import LoopState
from trustrl.run.writer import RunWriter

if TYPE_CHECKING:
    from trustrl.run.loop import Parts


@dataclass
class Pending:
    """An update whose policy step is done and whose critic fit may still be running."""

    update: int
    step: int
    step_before: int  # env steps before this update's batch
    obs_norm: ObsNormalizer  # frozen copy: the statistics the next batch acts with
    reward_norm: dict
    sampler_state: dict | None  # captured when a checkpoint of this update is due, or a callback may ask for one
    checkpoint_due: bool  # ``last`` is saved at this update whatever the callbacks say
    metrics: dict[str, float]
    stats: dict[str, float]
    critic: Future | None
    timing: dict[str, float]
    final: bool  # the run's last update (or the algorithm can improve no further): evaluated whatever the schedule


class Recorder:
    """Keeps ``state`` (best score, recent episodes, evaluations) and writes rows and checkpoints."""

    def __init__(self, parts: Parts, state: LoopState, writer: RunWriter, callbacks: Sequence[Callback] = ()):
        self.parts, self.state, self.writer = parts, state, writer
        self.callbacks = list(callbacks)
        self.stopped_at: int | None = None  # the step a callback stopped the run at
        window = parts.cfg.run.best_window
        self.recent = deque(state.recent_returns, maxlen=window)
        self.recent_lengths = deque(state.recent_lengths, maxlen=window)
        self.skip = parts.cfg.run.on_nonfinite == "skip"
        self.by_eval = parts.evaluator is not None
        if self.by_eval:  # a checkpoint records them, so a resumed run evaluates on the same episodes
            state.eval_seeds = list(parts.evaluator.seeds)
        self.pending: Pending | None = None
        self.started = self.last_logged = time.perf_counter()
        self.carried_checkpoint_s = 0.0  # time of the last ``last`` save, reported on the next row

    # -- what the loop calls, in the order it calls it

    def start(self, batch: Batch, acting_norm: ObsNormalizer) -> float:
        """A fresh run's first batch: the algorithm's preparation, then the starting policy evaluated as a row
        of its own at step 0 (it may well be the best). Returns the preparation's seconds."""
        started = time.perf_counter()
        for note in self.parts.algo.prepare(batch):
            self.note(note)
        prepare_s = time.perf_counter() - started
        if not self.by_eval:
            return prepare_s
        initial, eval_s = self._checked_evaluation(acting_norm, 0)
        self.state.eval_initial = self.state.eval_last = initial.return_mean
        self.writer.log(0, {"update": 0, **initial.metrics()}, {"eval_s": eval_s})
        self._keep_if_best(initial, 0, 0, acting_norm.state(), self.parts.sampler.reward_scaler.state())
        return prepare_s

    def episodes(self, batch: Batch, update: int, acting_norm: ObsNormalizer) -> None:
        """The batch's finished episodes join the rolling window; without evaluation, ``best`` follows its mean
        and holds the policy that collected them -- with asynchronous sampling one update older than the
        policy about to learn from them."""
        self.recent.extend(batch.episode_returns)
        self.recent_lengths.extend(batch.episode_lengths)
        mean = _mean(self.recent)
        if not self.by_eval and len(self.recent) == self.recent.maxlen and math.isfinite(mean) and mean > self.state.best:
            self.state.best = mean
            sampler = self.parts.sampler
            acted = max(update - 1 - int(batch.stale), 0)  # the update the acting policy came out of
            self._save("best", acted, sampler.total_steps, acting_norm.state(), sampler.reward_scaler.state(),
                       math.nan, policy=batch.acted_by)

    def updated(self, update: int, step_before: int, batch: Batch, stats: dict[str, float], critic: Future | None,
                timing: dict[str, float]) -> None:
        """Update ``update`` is done but for its critic fit (``critic``): it is recorded once the fit is
        (:meth:`settle`), at once if nothing is running or it is the run's last."""
        parts, sampler = self.parts, self.parts.sampler
        final = parts.ended(update, sampler.total_steps) or parts.algo.finished
        due = final or update % parts.cfg.run.checkpoint_every == 0
        self.pending = Pending(
            update=update, step=sampler.total_steps, step_before=step_before, obs_norm=sampler.obs_norm.copy(),
            reward_norm=sampler.reward_scaler.state(),
            sampler_state=sampler.state() if due or self.callbacks else None, checkpoint_due=due,
            metrics={
                "update": update,
                "episode_return_mean": _mean(self.recent),
                "episode_length_mean": _mean(self.recent_lengths),
                "episodes": len(batch.episode_returns),
                **({"skipped_batches": self.state.skipped} if self.skip else {}),
            },
            stats=stats, critic=critic, timing=timing, final=final,
        )  # fmt: skip
        if critic is None or final:
            self.settle()

    def settle(self) -> None:
        """Record the update waiting for its critic fit, if any (the critic must be fitted before it is saved
        or used for GAE)."""
        if self.pending is not None:
            done, self.pending = self.pending, None
            self._finish(done)

    def nonfinite(self, what: str, step: int) -> None:
        """A NaN or infinity: stop the run (``stop``, after recording the whole update before) or count a
        dropped batch (``skip``)."""
        if not self.skip:
            self.settle()
            raise NonFiniteError(f"stopped after env step {step}: {what}; nothing of this batch was saved, and the "
                                 "checkpoints hold the last finite update (run.on_nonfinite = 'skip' drops such a "
                                 "batch and goes on)")
        self.state.skipped += 1
        self.parts.log(f"skipped a batch at env step {step}: {what}")

    def skipped(self, update: int) -> None:
        """An update whose batch was dropped (or whose step was undone) still counts, and the run's last one
        still evaluates the final policy (a row of its own) and leaves a ``last`` checkpoint to resume."""
        self.state.update = update
        sampler = self.parts.sampler
        if self.parts.ended(update, sampler.total_steps):
            if self.by_eval:
                frozen = sampler.obs_norm.copy()
                evaluation, eval_s = self._checked_evaluation(frozen, sampler.total_steps)
                self._keep_if_best(evaluation, update, sampler.total_steps, frozen.state(),
                                   sampler.reward_scaler.state())
                self.writer.log(sampler.total_steps, {"update": update, "skipped_batches": self.state.skipped,
                                                      **evaluation.metrics()}, {"eval_s": eval_s})
            self._save("last", update, sampler.total_steps, sampler.obs_norm.state(), sampler.reward_scaler.state(),
                       self.state.eval_last, full_state=self._full_state(sampler.state()))

    def film(self) -> None:
        """A training video when the step count crosses a multiple of ``run.video_every``."""
        every, sampler = self.parts.cfg.run.video_every, self.parts.sampler
        if every and sampler.total_steps // every > self.state.filmed:
            self.state.filmed = sampler.total_steps // every
            self.writer.video(self.parts.policy, sampler.obs_norm, sampler.total_steps)

    def note(self, message: str) -> None:
        self.parts.notes.append(message)
        self.parts.log(message)

    # -- recording one update

    def _finish(self, done: Pending) -> None:
        """Wait for update ``done``'s critic fit; then evaluate, checkpoint and log it."""
        t0 = time.perf_counter()
        stats = {**done.stats, **(done.critic.result() if done.critic is not None else {})}
        waited = time.perf_counter() - t0
        if done.critic is not None and (problem := nonfinite_learner(None, self.parts.critic, stats)):
            self.nonfinite(problem, done.step)  # the critic fit runs beside the next batch only when stopping
        timing = {key: stats.pop(key) for key in list(stats) if key.startswith("time_")}
        evaluation, eval_s = self._scheduled_evaluation(done)
        t1 = time.perf_counter()
        self._keep_if_best(evaluation, done.update, done.step, done.obs_norm.state(), done.reward_norm)
        now = time.perf_counter()
        row = {**done.metrics, **(evaluation.metrics() if self.by_eval else {}), **stats}
        self.writer.log(done.step, row, {
            "steps_per_s": (done.step - done.step_before) / (now - self.last_logged),
            "elapsed_s": now - self.started,
            **done.timing,
            "critic_wait_s": waited,
            "eval_s": eval_s,
            "checkpoint_s": done.timing["checkpoint_s"] + self.carried_checkpoint_s + (now - t1),
            **timing,
        })  # fmt: skip
        self.last_logged = now
        self.state.update = done.update
        self.state.recent_returns, self.state.recent_lengths = list(self.recent), list(self.recent_lengths)
        self.carried_checkpoint_s = 0.0
        if self.callbacks and self._call_back(done, row) and not done.final:
            self._stop(done, evaluated=math.isfinite(evaluation.return_mean))
        if done.checkpoint_due or self.stopped_at is not None:
            t2 = time.perf_counter()
            self._save_last(done)
            self.carried_checkpoint_s = time.perf_counter() - t2

    def _call_back(self, done: Pending, row: dict[str, float]) -> bool:
        """Every callback sees the row; True if one asks to stop. One that raises leaves ``last`` saved at this
        update (the run resumable from the policy it saw), and its exception goes on."""
        sampler = self.parts.sampler
        agent = TrainingAgent(self.parts.policy, done.obs_norm.copy(), None, self.parts.cfg, sampler.action_space,
                              sampler.observation_space, step_before=done.step_before,
                              keep_copy=lambda: self._keep(done, row))
        stop = False
        try:
            with torch.random.fork_rng(devices=[]):  # a callback's draws are not the run's
                for callback in self.callbacks:
                    stop = bool(callback(done.step, dict(row), agent)) or stop
        except BaseException:
            self._save_last(done)
            raise
        finally:
            agent.keep_copy = None  # a copy kept later would not be of this update
        return stop

    def _save_last(self, done: Pending) -> None:
        """``last`` at update ``done``, with the training state a resume continues from."""
        self._save("last", done.update, done.step, done.obs_norm.state(), done.reward_norm, self.state.eval_last,
                   full_state=self._full_state(done.sampler_state))

    def _stop(self, done: Pending, evaluated: bool) -> None:
        """A callback stopped the run after update ``done``: like the run's last update, its policy is evaluated
        (a row of its own at the same step, unless its row already had one) and may become ``best``; the caller
        saves it as ``last``."""
        self.stopped_at = done.step
        self.note(f"stopped by a callback after {done.update} updates ({done.step} steps)")
        if self.by_eval and not evaluated:
            evaluation, eval_s = self._checked_evaluation(done.obs_norm, done.step)
            self._keep_if_best(evaluation, done.update, done.step, done.obs_norm.state(), done.reward_norm)
            self.writer.log(done.step, {"update": done.update, **evaluation.metrics()}, {"eval_s": eval_s})

    def _keep(self, done: Pending, row: dict[str, float]) -> str:
        """A copy of the policy after update ``done`` as checkpoint ``step-<N>`` (see :meth:`TrainingAgent.keep`)."""
        tag = kept_tag(done.step)
        self._save(tag, done.update, done.step, done.obs_norm.state(), done.reward_norm,
                   row.get("eval_return_mean", math.nan))
        return tag

    def _scheduled_evaluation(self, done: Pending) -> tuple[EvalStats, float]:
        """On the schedule (a function of the step alone), so a run resumed from any checkpoint evaluates
        exactly where the run that never stopped did -- and the run's final policy, whatever the schedule."""
        if not self.by_eval or not (done.final or self.parts.eval_due(done.update, done.step_before, done.step)):
            return NOT_EVALUATED, 0.0
        return self._checked_evaluation(done.obs_norm, done.step)

    def _checked_evaluation(self, obs_norm: ObsNormalizer, step: int) -> tuple[EvalStats, float]:
        """The policy evaluated now; a non-finite result stops the run or, skipped, counts as no evaluation."""
        evaluation, eval_s = self._evaluate(obs_norm)
        if not math.isfinite(evaluation.return_mean):
            self.nonfinite(f"the evaluation episodes returned {evaluation.return_mean}", step)
            evaluation = NOT_EVALUATED  # skipped: neither best nor the eval columns take it
        if math.isfinite(evaluation.return_mean):
            self.state.eval_last = evaluation.return_mean
        return evaluation, eval_s

    def _keep_if_best(self, evaluation: EvalStats, update: int, step: int, obs_norm: dict, reward_norm: dict) -> None:
        """The evaluated policy becomes ``best`` when it beats every evaluation before it (strictly)."""
        if self.by_eval and math.isfinite(evaluation.return_mean) and evaluation.return_mean > self.state.best:
            self.state.best = evaluation.return_mean
            self._save("best", update, step, obs_norm, reward_norm, self.state.best)

    def _evaluate(self, obs_norm: ObsNormalizer) -> tuple[EvalStats, float]:
        t0 = time.perf_counter()
        result = self.parts.evaluator(self.parts.policy, obs_norm, on_episode=self.writer.evaluating)
        return result, time.perf_counter() - t0

    def _save(self, tag: str, update: int, step: int, obs_norm: dict, reward_norm: dict, eval_return: float,
              full_state: dict | None = None, policy: Policy | None = None) -> None:
        """Save ``policy`` (default: the run's policy as it is now) with the run's critic as checkpoint ``tag``."""
        parts = self.parts
        extra = {**parts.extra, **parts.algo.info(), "eval_return_mean": eval_return,
                 "recent_return_mean": _mean(self.recent)}
        self.writer.checkpoint(tag, policy if policy is not None else parts.policy, parts.critic, step=step,
                               update=update, obs_norm=obs_norm, reward_norm=reward_norm, extra=extra, state=full_state)

    def _full_state(self, sampler_state: dict) -> dict:
        """The training state a ``last`` checkpoint carries for ``--resume``."""
        return {
            "loop": self.state.to_json(),
            "sampler": sampler_state,
            "algo": self.parts.algo.state_dict(),
            "generator": self.parts.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
        }


def _mean(values) -> float:
    return float(np.mean(values)) if len(values) else float("nan")

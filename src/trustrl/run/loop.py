"""The run loop: collect -> advantages -> update -> evaluate, log, checkpoint -> repeat.

It is the same for every sampler and every algorithm; nothing in it is
specific to either. With ``run.async_sampling`` the sampler collects batch
k+1 with the policy before update k while update k is computed (the batch
is marked stale, and the algorithm weights it by pi_theta / beta). With ``run.overlap_critic`` and an algorithm whose critic
fit is separate (NPG, TRPO), the fit of update k runs in a thread while batch
k+1 is collected, and update k is finished (evaluated, checkpointed, logged)
once it is done -- exactly as without the thread: the loop captures what a
checkpoint of update k holds before the next batch moves anything.
"""

from __future__ import annotations

import copy
import math
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from trustrl.advantages import compute_advantages
from trustrl.algos.base import Algorithm, SeparateCriticAlgorithm
from trustrl.config import Config
from trustrl.errors import NonFiniteError
from trustrl.nets import Policy, ValueNet, keep_in_bounds
from trustrl.normalization import ObsNormalizer
from trustrl.run.evaluation import NOT_EVALUATED, EvalStats, Evaluator
from trustrl.run.recorder import Recorder
from trustrl.samplers import Sampler


@dataclass
class LoopState:
    """The loop's own counters and history: with the models and the sampler, all a continuation needs."""

    update: int = 0  # updates done
    best: float = -math.inf  # best score so far: evaluation mean, or rolling training return without evaluation
    recent_returns: list[float] = field(default_factory=list)  # the last run.best_window training episodes
    recent_lengths: list[int] = field(default_factory=list)
    filmed: int = 0  # training videos written
    eval_initial: float = math.nan
    eval_last: float = math.nan
    skipped: int = 0  # batches dropped (or updates undone) for a NaN or infinity, with run.on_nonfinite = "skip"

    def to_json(self) -> dict:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in vars(self).items()}

    @classmethod
    def from_json(cls, data: dict) -> "LoopState":
        state = cls()
        for key, default in vars(cls()).items():
            value = data.get(key, default)
            setattr(state, key, default if value is None else type(default)(value))
        return state


@dataclass
class Parts:
    """What one run is made of; the online and offline modes differ only in how these are built."""

    cfg: Config
    sampler: Sampler
    policy: Policy
    critic: ValueNet
    algo: Algorithm
    generator: torch.Generator
    recorder: Recorder
    n_updates: int
    steps_per_update: int  # env steps (or dataset transitions) of one batch: vine's when no branch ends early
    evaluator: Evaluator | None = None
    eval_due: Callable[[int, int, int], bool] = lambda update, before, step: False
    """(update, env steps before its batch, after it) -> evaluate now?"""
    extra: dict = field(default_factory=dict)  # recorded in every checkpoint's JSON
    notes: list[str] = field(default_factory=list)
    log: Callable[[str], None] = lambda message: None


@dataclass
class _Pending:
    """An update whose policy step is done and whose critic fit may still be running."""

    update: int
    step: int
    step_before: int  # env steps before this update's batch
    obs_norm: ObsNormalizer  # frozen copy: the statistics the next batch acts with
    reward_norm: dict
    sampler_state: dict | None  # captured only when a checkpoint of this update is due
    metrics: dict[str, float]
    stats: dict[str, float]
    critic: Future | None
    timing: dict[str, float]
    finished: bool  # the algorithm can improve no further: evaluate this last policy


def run(parts: Parts, state: LoopState) -> LoopState:
    """Train from ``state`` (fresh or resumed) to ``parts.n_updates``; returns the final state."""
    cfg, sampler, policy, algo, recorder = parts.cfg, parts.sampler, parts.policy, parts.algo, parts.recorder
    window = cfg.run.best_window
    recent = deque(state.recent_returns, maxlen=window)
    recent_lengths = deque(state.recent_lengths, maxlen=window)
    skip = cfg.run.on_nonfinite == "skip"
    # skip undoes a whole update, critic fit included, so the fit is not left running beside the next batch
    overlap = cfg.run.overlap_critic and isinstance(algo, SeparateCriticAlgorithm) and not skip
    critic_thread = ThreadPoolExecutor(1, thread_name_prefix="trustrl-critic") if overlap else None
    pending: _Pending | None = None
    start = last_logged = time.perf_counter()
    carried_checkpoint_s = 0.0  # time of the last ``last`` save, reported on the next row
    by_eval = parts.evaluator is not None
    asynchronous = cfg.run.async_sampling

    def evaluate(obs_norm: ObsNormalizer) -> tuple[EvalStats, float]:
        t0 = time.perf_counter()
        result = parts.evaluator(policy, obs_norm)
        return result, time.perf_counter() - t0

    def save(tag: str, update: int, step: int, obs_norm: dict, reward_norm: dict, eval_return: float,
             full_state: dict | None = None) -> None:
        extra = {**parts.extra, **algo.info(), "eval_return_mean": eval_return, "recent_return_mean": _mean(recent)}
        recorder.checkpoint(tag, policy, parts.critic, step=step, update=update, obs_norm=obs_norm,
                            reward_norm=reward_norm, extra=extra, state=full_state)

    def nonfinite(what: str, step: int) -> None:
        """Stop the run (``stop``) or count a dropped batch (``skip``)."""
        nonlocal pending
        if pending is not None and not skip:  # the update before is whole: it is recorded before the run stops
            done, pending = pending, None
            finish(done)
        if not skip:
            raise NonFiniteError(f"stopped after env step {step}: {what}; nothing of this batch was saved, and the "
                                 "checkpoints hold the last finite update (run.on_nonfinite = 'skip' drops such a "
                                 "batch and goes on)")
        state.skipped += 1
        parts.log(f"skipped a batch at env step {step}: {what}")

    def skipped(update: int) -> None:
        """An update whose batch was dropped (or whose step was undone) still counts, and the run's last one
        still leaves a ``last`` checkpoint to evaluate and resume."""
        state.update = update
        if update == parts.n_updates:
            if asynchronous and not sampler.busy:
                sampler.defer(policy)
            save("last", update, sampler.total_steps, sampler.obs_norm.state(), sampler.reward_scaler.state(),
                 state.eval_last, full_state=_full_state(state, sampler.state(), algo, parts.generator))

    def finish(done: _Pending) -> None:
        """Wait for update ``done``'s critic fit; then evaluate, checkpoint and log it."""
        nonlocal last_logged, carried_checkpoint_s
        t0 = time.perf_counter()
        stats = {**done.stats, **(done.critic.result() if done.critic is not None else {})}
        waited = time.perf_counter() - t0
        if done.critic is not None and (problem := _nonfinite_learner(None, parts.critic, stats)):
            nonfinite(problem, done.step)  # the critic fit runs beside the next batch only when stopping
        timing = {key: stats.pop(key) for key in list(stats) if key.startswith("time_")}
        evaluation, eval_s = NOT_EVALUATED, 0.0
        # Only on the schedule (a function of the step alone), so a run extended by --resume evaluates
        # exactly where the run that never stopped did.
        if by_eval and (done.finished or parts.eval_due(done.update, done.step_before, done.step)):
            evaluation, eval_s = evaluate(done.obs_norm)
            if not math.isfinite(evaluation.return_mean):
                nonfinite(f"the evaluation episodes returned {evaluation.return_mean}", done.step)
                evaluation = NOT_EVALUATED  # skipped: neither best nor the eval columns take it
            state.eval_last = evaluation.return_mean if math.isfinite(evaluation.return_mean) else state.eval_last
        t1 = time.perf_counter()
        if by_eval and math.isfinite(evaluation.return_mean) and evaluation.return_mean > state.best:
            state.best = evaluation.return_mean
            save("best", done.update, done.step, done.obs_norm.state(), done.reward_norm, state.best)
        now = time.perf_counter()
        # The row goes out before ``last`` does: a resume keeps the rows up to its checkpoint's step,
        # so a run killed between the two loses nothing. The save's time is on the next row.
        recorder.log(
            done.step,
            {**done.metrics, **(evaluation.metrics() if by_eval else {}), **stats},
            {
                "steps_per_s": (done.step - done.step_before) / (now - last_logged),
                "elapsed_s": now - start,
                **done.timing,
                "critic_wait_s": waited,
                "eval_s": eval_s,
                "checkpoint_s": done.timing["checkpoint_s"] + carried_checkpoint_s + (now - t1),
                **timing,
            },
        )
        last_logged = now
        state.update = done.update
        state.recent_returns, state.recent_lengths = list(recent), list(recent_lengths)
        carried_checkpoint_s = 0.0
        if done.sampler_state is not None:
            t2 = time.perf_counter()
            save("last", done.update, done.step, done.obs_norm.state(), done.reward_norm, state.eval_last,
                 full_state=_full_state(state, done.sampler_state, algo, parts.generator))
            carried_checkpoint_s = time.perf_counter() - t2

    try:
        for update in range(state.update + 1, parts.n_updates + 1):
            t0 = time.perf_counter()
            step_before = sampler.total_steps
            acting_norm = sampler.obs_norm.copy()  # the statistics this batch is normalised with
            try:
                if asynchronous:
                    if not sampler.busy:  # the first batch of this invocation (a resumed one re-sends the one it had out)
                        sampler.start(policy, capture=True)
                    batch = sampler.finish()
                    batch.stale = True
                    if update < parts.n_updates:  # the next batch, with this policy, while this one is learned from
                        sampler.start(policy, capture=True)
                    else:  # none is due; a checkpoint still records which policy would act next
                        sampler.defer(policy)
                else:
                    batch = sampler.collect(policy)
            except NonFiniteError as exc:  # the sampler dropped the batch: no statistic or episode took it
                nonfinite(str(exc), sampler.total_steps)
                if asynchronous and update < parts.n_updates:
                    sampler.start(policy, capture=True)
                skipped(update)
                continue
            t1 = time.perf_counter()
            if pending is not None:  # the critic must be fitted before it is saved or used for GAE
                done, pending = pending, None
                finish(done)
            t2 = time.perf_counter()
            prepare_s = 0.0
            if update == 1:  # a fresh run (a resumed one starts past it)
                for note in algo.prepare(batch):
                    parts.notes.append(note)
                    parts.log(note)
                prepare_s = time.perf_counter() - t2
                if by_eval:  # the starting policy, as a row of its own at step 0; it may well be the best
                    initial, eval_s = evaluate(acting_norm)
                    if not math.isfinite(initial.return_mean):
                        nonfinite(f"the evaluation episodes returned {initial.return_mean}", 0)
                        initial = NOT_EVALUATED
                    state.eval_initial = state.eval_last = initial.return_mean
                    recorder.log(0, {"update": 0, **initial.metrics()}, {"eval_s": eval_s})
                    if initial.return_mean > state.best:
                        state.best = initial.return_mean
                        save("best", 0, 0, acting_norm.state(), sampler.reward_scaler.state(), state.best)
                t2 = time.perf_counter()
            recent.extend(batch.episode_returns)
            recent_lengths.extend(batch.episode_lengths)
            # Without evaluation, ``best`` holds the policy that just collected the episodes behind the score.
            if not by_eval and len(recent) == window and math.isfinite(_mean(recent)) and _mean(recent) > state.best:
                state.best = _mean(recent)
                save("best", update - 1, sampler.total_steps, acting_norm.state(), sampler.reward_scaler.state(),
                     math.nan)
            t3 = time.perf_counter()
            compute_advantages(batch, parts.critic if algo.uses_critic else None, cfg.algo.gamma,
                               cfg.algo.gae_lambda, cfg.algo.normalize_advantage)
            t4 = time.perf_counter()
            before = _learner_state(policy, parts.critic, algo) if skip else None
            algo.progress = (update - 1) / parts.n_updates
            if overlap:
                stats = algo.update_policy(batch)
                fitting = critic_thread.submit(algo.fit_critic, batch)
            else:
                stats, fitting = algo.update(batch), None
            if problem := _nonfinite_learner(policy, None if overlap else parts.critic, stats):
                nonfinite(problem, sampler.total_steps)
                _load_learner_state(before, policy, parts.critic, algo)  # skip: as if the batch never came
                skipped(update)
                continue
            keep_in_bounds(policy)
            t5 = time.perf_counter()
            if cfg.run.video_every and sampler.total_steps // cfg.run.video_every > state.filmed:
                state.filmed = sampler.total_steps // cfg.run.video_every
                recorder.video(policy, sampler.obs_norm, sampler.total_steps)
            t6 = time.perf_counter()
            final = update == parts.n_updates or algo.finished
            pending = _Pending(
                update=update,
                step=sampler.total_steps,
                step_before=step_before,
                obs_norm=sampler.obs_norm.copy(),
                reward_norm=sampler.reward_scaler.state(),
                sampler_state=sampler.state() if final or update % cfg.run.checkpoint_every == 0 else None,
                metrics={
                    "update": update,
                    "episode_return_mean": _mean(recent),
                    "episode_length_mean": _mean(recent_lengths),
                    "episodes": len(batch.episode_returns),
                    **({"skipped_batches": state.skipped} if skip else {}),
                },
                stats=stats,
                critic=fitting,
                timing={"sample_s": t1 - t0, "prepare_s": prepare_s, "advantage_s": t4 - t3, "update_s": t5 - t4,
                        "checkpoint_s": t3 - t2, "video_s": t6 - t5},
                finished=algo.finished,
            )
            if fitting is None or final:
                done, pending = pending, None
                finish(done)
            if algo.finished and update < parts.n_updates:
                message = f"stopped after {update} updates: {type(algo).__name__} cannot improve further"
                parts.notes.append(message)
                parts.log(message)
                break
    finally:
        if critic_thread is not None:
            critic_thread.shutdown(wait=True)
    return state


def _full_state(state: LoopState, sampler_state: dict, algo: Algorithm, generator: torch.Generator) -> dict:
    """The training state a ``last`` checkpoint carries for ``--resume``."""
    return {
        "loop": state.to_json(),
        "sampler": sampler_state,
        "algo": algo.state_dict(),
        "generator": generator.get_state(),
        "torch_rng": torch.get_rng_state(),
    }


def _nonfinite_learner(policy: Policy | None, critic: ValueNet | None, stats: dict[str, float]) -> str | None:
    """What an update made non-finite -- a loss or gradient among its metrics, a weight -- or None."""
    for key, value in stats.items():
        if key != "explained_variance" and isinstance(value, float) and not math.isfinite(value):
            return f"the update's {key} is {value}"
    for name, net in (("policy", policy), ("critic", critic)):
        if net is not None and not all(bool(torch.isfinite(p).all()) for p in net.parameters()):
            return f"the update made the {name}'s weights non-finite"
    return None


def _learner_state(policy: Policy, critic: ValueNet, algo: Algorithm) -> tuple:
    """A copy of everything an update changes, to undo it."""
    return (copy.deepcopy(policy.state_dict()), copy.deepcopy(critic.state_dict()), copy.deepcopy(algo.state_dict()))


def _load_learner_state(saved: tuple, policy: Policy, critic: ValueNet, algo: Algorithm) -> None:
    policy.load_state_dict(saved[0])
    critic.load_state_dict(saved[1])
    algo.load_state_dict(saved[2])


def _mean(values) -> float:
    return float(np.mean(values)) if len(values) else float("nan")

"""Training a policy, online or from a dataset, fresh or resumed: one way through, whatever the mode.

:func:`train` and :func:`train_offline` hand a builder of :mod:`trustrl.run.build` (the sampler, the
algorithm, the evaluation schedule) to :func:`_execute`, which owns seeding, the run directory and its
writer, and runs :func:`trustrl.run.loop.run`. :func:`resume` rebuilds the same parts from a run's
``last`` checkpoint and continues the loop.
"""

from __future__ import annotations

import copy
import json
import math
import sys
import time
import tomllib
from pathlib import Path
from typing import Callable, Sequence

import torch

from trustrl import checkpoint
from trustrl.agent import EnvFactory, check_compatible_spaces
from trustrl.callbacks import Callback
from trustrl.config import Config, accept_env_kwargs, from_dict, with_layout
from trustrl.config.overrides import with_device
from trustrl.envs import describe_spaces
from trustrl.envs.registry import is_factory_id, register_again
from trustrl.errors import CheckpointError, ConfigError, EnvUnavailableError, TrustrlError, WorkerError
from trustrl.import_paths import never_import_from
from trustrl.nets import make_critic, make_policy
from trustrl.run.build import Builder, offline, online
from trustrl.run.evaluation import legacy_eval_seeds
from trustrl.run.init_from import start_from
from trustrl.run.loop import Parts, run
from trustrl.run.result import TrainResult
from trustrl.run.rundir import ASIDE, RunLock, check_writable, prepare_run_dir, recover, write_run_files
from trustrl.run.state import LoopState
from trustrl.run.writer import RunWriter
from trustrl.versions import note_differences


def train(
    cfg: Config,
    run_dir: str | Path,
    *,
    overwrite: bool = False,
    progress: bool | float = True,
    command: list[str] | None = None,
    log: Callable[[str], None] | None = None,
    callbacks: Sequence[Callback] = (),
) -> TrainResult:
    """Train ``cfg``'s algorithm on its env; ``cfg.offline.dataset`` set trains from that dataset instead.

    ``callbacks`` see each update's metrics row and may stop the run (:mod:`trustrl.callbacks`).
    """
    if cfg.offline.dataset:
        return train_offline(cfg, run_dir, overwrite=overwrite, progress=progress, command=command, log=log,
                             callbacks=callbacks)
    cfg.validate()
    return _execute(cfg, Path(run_dir), online, overwrite=overwrite, progress=progress, command=command, log=log,
                    callbacks=callbacks)


def train_offline(
    cfg: Config,
    run_dir: str | Path,
    *,
    dataset: str | None = None,
    overwrite: bool = False,
    progress: bool | float = True,
    command: list[str] | None = None,
    log: Callable[[str], None] | None = None,
    callbacks: Sequence[Callback] = (),
) -> TrainResult:
    """Train ``cfg``'s policy from a Minari dataset (``dataset``, default ``cfg.offline.dataset``) with offline TRPO.

    ``step`` in metrics.csv counts dataset transitions processed (epoch x
    dataset size); the policy is evaluated online every ``offline.eval_every``
    epochs, and ``best`` is the checkpoint with the best evaluation.
    """
    if dataset is not None:
        cfg.offline.dataset = str(dataset)
    cfg.validate()
    if not cfg.offline.dataset:
        raise TrustrlError("offline training needs a dataset: --offline ID (or offline.dataset in the config)")
    return _execute(cfg, Path(run_dir), offline, overwrite=overwrite, progress=progress, command=command, log=log,
                    callbacks=callbacks)


def resume(
    run_dir: str | Path,
    *,
    total_steps: int | None = None,
    epochs: int | None = None,
    layout: list[str] | tuple[str, ...] = (),
    progress: bool | float = True,
    command: list[str] | None = None,
    log: Callable[[str], None] | None = None,
    env_kwargs: dict | None = None,
    env: EnvFactory | None = None,
    callbacks: Sequence[Callback] = (),
) -> TrainResult:
    """Continue a stopped (or killed) run from its ``last`` checkpoint, to ``total_steps`` (or ``epochs``).

    ``env_kwargs``: a saved env kwarg that names a file is used only when passed here again, with the
    same value (the run's config does not change on resume). ``env``: for a run whose env a Python function
    made (``trustrl-factory/<name>``), that function again.

    Where the env's state could be captured the continuation is bit-for-bit
    the run that never stopped; otherwise it continues with fresh episodes and
    a note says so. ``layout`` (``run.workers=4``, ``run.placement=ray``, ...)
    moves the env copies elsewhere, which changes no number.
    """
    say = log or (lambda message: print(message, file=sys.stderr))
    given = Path(run_dir)
    lock = None
    if given.is_dir() and ((given / "checkpoints").is_dir() or (given / ASIDE).is_dir()):  # settle what a killed
        # writer left (an interrupted --overwrite, temporary files) before reading
        lock = RunLock(given)
        for note in recover(given):
            say(note)
    try:
        if _never_checkpointed(given):  # killed before its first ``last``: the run starts again, from its config
            ckpt, where = None, given / "config.toml"
            never_import_from(given)  # as checkpoint.load does for a run with a checkpoint
            saved = _read_config(where)
        else:
            ckpt = checkpoint.load(run_dir, "last")
            if (ckpt.path.name != "last.json" or ckpt.path.parent.name != "checkpoints"
                    or not (ckpt.path.parent.parent / "config.toml").is_file()):
                raise CheckpointError(f"--resume takes a run directory (or its checkpoints/last.json), not {ckpt.path}")
            if not isinstance(ckpt.state, dict):
                raise CheckpointError(f"checkpoint {ckpt.path} holds no training state (written by an older "
                                      "trustrl); it can be evaluated but not resumed")
            saved, where = ckpt.config, ckpt.path
            note_differences(ckpt.versions, ckpt.path)
        if env is not None:
            _register_env_again(saved, where, env)
        cfg = _resumed_config(saved, where, total_steps, epochs, layout, env_kwargs or {})
    except BaseException:
        if lock is not None:
            lock.release()
        raise
    build = offline if cfg.offline.dataset else online
    if ckpt is None:
        say(f"{given} holds no checkpoint yet: the run starts again from its config.toml")
        return _execute(cfg, given, build, overwrite=True, progress=progress, command=command, log=log, lock=lock,
                        callbacks=callbacks)
    run_dir = ckpt.path.parent.parent  # the run the checkpoint belongs to, and nothing else, is written
    if lock is not None and run_dir.resolve() != given.resolve():
        lock.release()
        lock = None
    return _execute(cfg, run_dir, build, resume_from=ckpt, progress=progress, command=command, log=log, lock=lock,
                    callbacks=callbacks)


def _never_checkpointed(run_dir: Path) -> bool:
    """A run directory whose run wrote its config but was stopped before its first ``last`` checkpoint."""
    return (run_dir.is_dir() and (run_dir / "config.toml").is_file()
            and not (run_dir / "checkpoints" / "last.json").exists())


def _read_config(path: Path) -> dict:
    """A run's config.toml, as data."""
    try:
        return tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise CheckpointError(f"{path} cannot be read as a config ({str(exc).splitlines()[0][:200]})") from None
    except RecursionError:
        raise CheckpointError(f"{path} cannot be read as a config (nested too deeply)") from None


def _register_env_again(saved: dict, where: Path, env: EnvFactory) -> None:
    """The function that made the run's env, registered again under the id its config records."""
    recorded = saved.get("env", {}).get("id") if isinstance(saved.get("env"), dict) else None
    if not is_factory_id(recorded):
        raise TrustrlError(f"env= gives again the Python function that made a run's env; the run of {where} "
                           f"was trained on {recorded!r}, which it makes by itself: resume it without env=")
    register_again(env, recorded)


def _resumed_config(saved: dict, where: Path, total_steps: int | None, epochs: int | None,
                    layout: list[str] | tuple[str, ...], env_kwargs: dict) -> Config:
    """The config a run saved (in ``where``: its ``last`` checkpoint or its config.toml), with a new length and
    layout."""
    kwargs = saved.get("env", {}).get("kwargs", {}) if isinstance(saved.get("env"), dict) else {}
    changed = [key for key, value in env_kwargs.items() if not isinstance(kwargs, dict) or kwargs.get(key) != value]
    if changed:
        raise CheckpointError(f"a resumed run keeps its env: --env-kwarg {changed[0]} differs from the run's own "
                              "(or the run has none); pass the values it was trained with")
    saved = with_device(saved, layout, _named(where))
    try:
        cfg = from_dict(accept_env_kwargs(saved, env_kwargs, _named(where)), source=str(where))
    except EnvUnavailableError:  # the config is fine; this process lacks the env's module or function
        raise
    except (TrustrlError, TypeError, AttributeError, ValueError) as exc:
        raise CheckpointError(f"{_named(where)} holds an invalid config: {exc}") from None
    if layout:
        cfg = from_dict(with_layout(cfg.to_dict(), layout), source="--set")
    if total_steps is not None:
        if cfg.offline.dataset:
            raise TrustrlError("this run trained from a dataset: extend it with --epochs N, not --total-steps")
        _keeps_schedule(cfg, "--total-steps", cfg.run.total_steps, total_steps)
        cfg.run.total_steps = total_steps
    if epochs is not None:
        if not cfg.offline.dataset:
            raise TrustrlError("--epochs counts passes over a dataset; this run trained online: use --total-steps")
        _keeps_schedule(cfg, "--epochs", cfg.offline.epochs, epochs)
        cfg.offline.epochs = epochs
    return cfg.validate()


def _named(where: Path) -> str:
    return f"checkpoint {where}" if where.suffix == ".json" else str(where)


def _keeps_schedule(cfg: Config, flag: str, old: int, new: int) -> None:
    """A schedule is laid over the run's length: another length would make the resumed run another run."""
    schedule = getattr(cfg.algo, "max_kl_schedule", "constant")
    if schedule != "constant" and new != old:
        raise TrustrlError(f"this run's trust region follows algo.max_kl_schedule = {schedule!r} over its length "
                           f"({old}); {flag} {new} would change every radius after the checkpoint: "
                           f"resume it without {flag}")


def _close(parts: Parts, lock: RunLock | None, remove_created: bool = False) -> None:
    """Close the env copies and the evaluation env and release the lock (``remove_created``: with the directory
    a failed start made), each even if one before it fails (an env's close() may raise); then raise the first
    failure, unless an error is already on its way out: that error is the one to report."""
    release = lock and (lambda: lock.release(remove_created=remove_created))
    failure = None
    for close in (parts.sampler.close, parts.evaluator and parts.evaluator.close, release):
        try:
            if close:
                close()
        except Exception as exc:  # noqa: BLE001 -- raised below, after the rest is closed
            failure = failure or exc
    if failure is not None and sys.exc_info()[1] is None:
        raise failure


def _execute(
    cfg: Config,
    run_dir: Path,
    build: Builder,
    *,
    overwrite: bool = False,
    resume_from: checkpoint.Checkpoint | None = None,
    progress: bool | float = True,
    command: list[str] | None = None,
    log: Callable[[str], None] | None = None,
    lock: RunLock | None = None,
    callbacks: Sequence[Callback] = (),
) -> TrainResult:
    """Build the parts, take the run directory (its lock held throughout), run the loop, close everything."""
    log = log or (lambda message: print(message, file=sys.stderr))
    torch.set_num_threads(cfg.run.torch_threads)
    torch.manual_seed(cfg.run.seed)

    def policy_factory(obs_space, act_space):
        policy = make_policy(obs_space, act_space, cfg.policy).to(cfg.run.device)
        critic = make_critic(obs_space, cfg.critic).to(cfg.run.device)
        return policy, critic, torch.Generator().manual_seed(cfg.run.seed)

    try:
        parts = build(cfg, policy_factory, log)  # a bad env or dataset fails here, before anything is written
    except BaseException:
        if lock is not None:
            lock.release()
        raise
    state = LoopState()
    replacement = None
    discarded = False  # a new run that failed before any checkpoint took its files away
    try:
        if resume_from is None and cfg.run.init_from:  # read before the run directory is touched
            note = start_from(parts, cfg.run.init_from)
            parts.notes.append(note)
            log(note)
        if lock is None:
            lock = RunLock(run_dir)
            for note in recover(run_dir):
                log(note)
        if resume_from is not None:
            state, inexact = _restore(parts, resume_from)
            if parts.algo.finished:
                raise TrustrlError(f"{run_dir} ended after {state.update} updates with a step its algorithm "
                                   "could not improve on, so there is nothing to continue")
            if parts.ended(state.update, parts.sampler.total_steps):
                raise TrustrlError(
                    f"{run_dir} has already trained {resume_from.step} steps ({state.update} updates); "
                    "pass a larger --total-steps (or --epochs) to continue it"
                )
            try:
                check_writable(run_dir)
                if inexact:  # not the same run: a best from the timeline that was thrown away must not win
                    _set_aside_later_best(run_dir, resume_from, state, parts)
            except OSError as exc:
                raise TrustrlError(f"cannot write the run directory {run_dir}: {exc.strerror or exc}") from None
        else:
            replacement = prepare_run_dir(run_dir, overwrite)
        write_run_files(run_dir, cfg, command if command is not None else sys.argv, resumed=resume_from is not None)
        spaces = describe_spaces(parts.sampler.observation_space, parts.sampler.action_space)
        writer = RunWriter(
            run_dir, cfg, spaces, parts.planned_steps, progress=progress,
            resume_step=None if resume_from is None else resume_from.step,
            on_checkpoint=replacement.commit if replacement is not None else None,
        )  # fmt: skip
        started = time.perf_counter()  # the loop's own time: setup (imports, envs, nets, writers) is not training
        try:
            stopped_at = run(parts, state, writer, callbacks)
        finally:
            seconds = time.perf_counter() - started
            writer.close()
    except BaseException:
        if replacement is not None:  # no checkpoint of the new run yet: the directory goes back to how it was
            discarded = replacement.rollback()
        raise
    finally:
        _close(parts, lock, remove_created=discarded)
    extra = {**parts.extra, **parts.algo.info()}
    best = state.best if math.isfinite(state.best) else math.nan
    recent = sum(state.recent_returns) / len(state.recent_returns) if state.recent_returns else math.nan
    return TrainResult(
        name=cfg.name, run_dir=run_dir, steps=parts.sampler.total_steps if stopped_at is None else stopped_at,
        updates=state.update, seconds=seconds, best_return=best, last_return=recent, eval_initial=state.eval_initial,
        eval_last=state.eval_last, notes=parts.notes, extra=extra, stopped_by_callback=stopped_at is not None,
    )  # fmt: skip


def _restore(parts: Parts, ckpt: checkpoint.Checkpoint) -> tuple[LoopState, bool]:
    """Load everything ``last`` holds into freshly built parts.

    Returns the loop's state, and whether the continuation is inexact (the sampler could not restore
    the envs' state, and said so in a note).
    """
    check_compatible_spaces(ckpt, parts.sampler.observation_space, parts.sampler.action_space)
    state = ckpt.state
    try:
        parts.policy.load_state_dict(ckpt.policy_state)
        parts.critic.load_state_dict(ckpt.critic_state)
        parts.algo.load_state_dict(state["algo"])
        parts.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        _check_in_flight(parts, state["sampler"])
        sampler_notes = parts.sampler.load_state(state["sampler"])
        for note in sampler_notes:
            parts.notes.append(note)
            parts.log(note)
        loop = LoopState.from_json(state["loop"])
    except (ConfigError, WorkerError) as exc:  # WorkerError: a worker refused its share of the env state
        raise CheckpointError(f"checkpoint {ckpt.path}: {exc}") from None
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError, IndexError) as exc:
        detail = str(exc).strip().splitlines()[-1].strip() if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"checkpoint {ckpt.path}: cannot restore the training state ({detail})") from None
    if parts.evaluator is not None:
        parts.evaluator.seeds = loop.eval_seeds or legacy_eval_seeds(len(parts.evaluator.seeds))
    if loop.update != ckpt.update:
        raise CheckpointError(f"checkpoint {ckpt.path}: its training state is for update {loop.update}, "
                              f"not {ckpt.update}")
    if parts.sampler.total_steps != ckpt.step:  # checked before the metrics past ``step`` are dropped
        raise CheckpointError(f"checkpoint {ckpt.path}: its training state is at step {parts.sampler.total_steps}, "
                              f"its record says {ckpt.step} (edited by hand?)")
    return loop, bool(sampler_notes)


def _check_in_flight(parts: Parts, sampler_state: dict) -> None:
    """A batch in flight at the checkpoint (asynchronous runs only) must name a policy this run can load."""
    in_flight = sampler_state.get("in_flight") if isinstance(sampler_state, dict) else None
    if in_flight is None:
        return
    if not parts.cfg.run.async_sampling:
        raise ConfigError("its sampler state has a batch in flight, which only an asynchronous run has")
    try:
        copy.deepcopy(parts.policy).load_state_dict(in_flight["policy"])
    except (KeyError, TypeError, RuntimeError, AttributeError, ValueError) as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"the policy of its batch in flight does not fit this policy ({detail})") from None


def _set_aside_later_best(run_dir: Path, ckpt: checkpoint.Checkpoint, state: LoopState, parts: Parts) -> None:
    """A resume with fresh episodes is another run from ``last`` on: a ``best`` written after ``last`` by the
    run that stopped is removed, and the best score is taken anew from the resumed run's evaluations."""
    record_path = run_dir / "checkpoints" / "best.json"
    try:
        best = checkpoint.load(record_path)
        weights = json.loads(record_path.read_text())["weights"]
    except (CheckpointError, OSError, ValueError, KeyError, TypeError):
        return
    if best.step > ckpt.step:
        record_path.unlink()
        if weights == checkpoint.weights_name("best", best.step):  # an edited record must not cost other weights
            (record_path.parent / weights).unlink(missing_ok=True)
        state.best = float("-inf")
        message = (f"removed the best checkpoint at step {best.step}: it was chosen after the last checkpoint "
                   f"(step {ckpt.step}), on episodes this continuation does not replay")
        parts.notes.append(message)
        parts.log(message)

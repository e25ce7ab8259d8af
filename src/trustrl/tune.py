"""``trustrl tune``: a hyper-parameter study on Optuna, each trial an ordinary run directory.

A trial draws a value for every ``--param`` (TPE sampling), trains the config with them on ``seeds``
seeds, and scores the mean of their last deterministic evaluations -- the evaluation of each run's final
policy, which every run makes at its end, on the episodes ``best`` is chosen by (a config that would
evaluate fewer than twice during training gets about ten evaluations a run, for the pruner). The
evaluations of the first seed are reported to a median pruner as they come, which stops a trial well
below the median of earlier ones at the same step. The study lives in ``<out>/study.db`` (SQLite):
running the same command again continues it to ``--trials`` finished trials; ``--jobs`` processes take
trials from it at once.

``--param`` forms (``KEY=SPEC``, KEY any config key):

    algo.max_kl=log:0.005:0.05        log-uniform float        critic.epochs=int:5:20      integer
    algo.gae_lambda=float:0.9:0.99    uniform float            run.n_steps=logint:128:2048 log-uniform integer
    env.norm_reward=true,false        choices (TOML values)    policy.hidden=[64,64]|[256,256]  choices split on |
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping

from trustrl import config as config_mod
from trustrl.config import check_count, check_seed
from trustrl.errors import ConfigError, TrustrlError
from trustrl.files import writing
from trustrl.search_space import Param, searched_params

if TYPE_CHECKING:
    from trustrl.callbacks import TrainingAgent

STATES_COUNTED = ("COMPLETE", "PRUNED", "FAIL")  # a trial in any of these is one of ``--trials``


@dataclass
class TuneResult:
    study_dir: Path
    trials: list[dict]  # every trial of the study: number, state, value, params, seconds, run_dirs
    best: dict | None  # the best complete trial
    importances: dict[str, float]  # param -> importance (Optuna's fANOVA), empty with too few trials
    importance_note: str = ""


def tune(
    config: str,
    params: list[str],
    trials: int,
    out: str | Path,
    *,
    jobs: int = 1,
    seeds: int = 1,
    overrides: list[str] | tuple[str, ...] = (),
    total_steps: int | None = None,
    algo: str | None = None,
    sampler_seed: int = 0,
    prune: bool = True,
    prune_after: int = 5,
    log: Callable[[str], None] = print,
) -> TuneResult:
    """Run (or continue) the study in ``out`` until it has ``trials`` finished trials; see the module docstring.

    The trials vary the config :func:`trustrl.api.build_config` makes of ``config``, ``algo``,
    ``overrides`` and ``total_steps`` (``--total-steps``).
    """
    check_count("--trials", trials, 10_000)
    check_count("--jobs", jobs, 64)
    check_count("--seeds", seeds, 100)
    check_count("--prune-after", prune_after, 10_000)
    check_seed("--sampler-seed", sampler_seed)
    searched = searched_params(params)
    base_data = _base_data(config, algo, total_steps, overrides, seeds, searched)
    steps = base_data["run"]["total_steps"]
    spec = {"config": base_data, "params": params, "seeds": seeds}

    import optuna

    from trustrl.run.rundir import RunLock

    out = Path(out)
    lock = RunLock(out, what="study directory")
    try:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        with _database(out):
            return _tune(out, spec, trials, jobs, base_data, searched, seeds, sampler_seed, prune, prune_after,
                         steps, log)
    finally:
        lock.release()


@contextmanager
def _database(out: Path) -> Iterator[None]:
    """A study database that is not one (corrupt, a folder) or that the disk cannot hold is one line, not an
    SQL traceback."""
    from sqlalchemy.exc import DatabaseError, OperationalError

    db = out / "study.db"
    if db.exists() and not db.is_file():
        raise TrustrlError(f"the study database {db} is not a file; move it away to start a new study")
    try:
        yield
    except (DatabaseError, OperationalError) as exc:  # OperationalError: also a full disk, a read-only file
        detail = str(getattr(exc, "orig", exc) or exc).splitlines()[0][:160]
        raise TrustrlError(f"the study database {db} cannot be used ({detail}); if it is corrupt, move it away "
                           "to start a new study") from None


def _tune(out: Path, spec: dict, trials: int, jobs: int, base_data: dict, searched: list[Param], seeds: int,
          sampler_seed: int, prune: bool, prune_after: int, steps: int, log: Callable[[str], None]) -> TuneResult:
    """The study's trials, continued to ``trials`` finished ones (with the study directory's lock held)."""
    study = _study(out, sampler_seed, prune, prune_after, steps)
    started = study.user_attrs.get("spec")
    if started is not None and started != json.loads(json.dumps(spec)):
        raise ConfigError(f"the study in {out} was started with another config, --param list or --seeds; "
                          "continue it with the same ones, or choose another --out")
    study.set_user_attr("spec", spec)
    _fail_stale(study, log)
    remaining = trials - _counted(study)
    jobs = min(jobs, max(remaining, 1))  # never more processes than trials to run
    if remaining > 0:
        log(f"study {out}: {remaining} trial(s) to run ({trials} in all), {jobs} at a time")
        task = (str(out), base_data, [p.__dict__ for p in searched], seeds, trials, sampler_seed, prune,
                prune_after)
        _run_jobs(task, jobs, log)
    study = _study(out, sampler_seed, prune, prune_after, steps)
    return _summarise(study, out, searched)


def _fail_stale(study, log: Callable[[str], None]) -> None:
    """Trials a killed study left running are marked failed (they count as finished, and are not resumed)."""
    import optuna

    for stale in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study._storage.set_trial_state_values(stale._trial_id, optuna.trial.TrialState.FAIL)
        log(f"trial {stale.number} was cut off when the study stopped: marked failed")


def _run_jobs(task: tuple, jobs: int, log: Callable[[str], None]) -> None:
    """:func:`_run_trials` here, or in ``jobs`` processes of their own, which end when this one dies (a study
    killed with ``kill -9`` leaves no trial running on without its lock).

    A spawned process starts as ``python -c ...``, which searches the working directory before the standard
    library (a ``pickle.py`` there would run): PYTHONSAFEPATH keeps it off while they start."""
    if jobs == 1:
        _run_trials(*task, worker=0, log=log)
        return
    given = os.environ.get("PYTHONSAFEPATH")
    os.environ["PYTHONSAFEPATH"] = "1"
    try:  # the pool starts multiprocessing's resource tracker, and each submit a trial process
        pool = ProcessPoolExecutor(jobs, mp_context=get_context("spawn"), initializer=_start_trial_process,
                                   initargs=(os.getpid(), given))
        try:
            futures = [pool.submit(_run_trials, *task, worker=w) for w in range(jobs)]
        except BaseException:
            pool.shutdown(cancel_futures=True)
            raise
    finally:
        _set_safe_path(given)
    with pool:
        for future in futures:
            future.result()


def _start_trial_process(parent_pid: int, safe_path: str | None) -> None:
    """In a trial process: end with the study's process; PYTHONSAFEPATH as the user had it, for what it starts."""
    from trustrl.lifeline import die_with_parent

    die_with_parent(parent_pid)
    _set_safe_path(safe_path)


def _set_safe_path(value: str | None) -> None:
    if value is None:
        os.environ.pop("PYTHONSAFEPATH", None)
    else:
        os.environ["PYTHONSAFEPATH"] = value


def _base_data(config: str, algo: str | None, total_steps: int | None, overrides: list[str] | tuple[str, ...],
               seeds: int, searched: list[Param]) -> dict:
    """The tables of the config every trial varies (made by :func:`trustrl.api.build_config`), checked so that
    every end of every searched range makes a valid config: a study fails before its first trial, not in it."""
    from trustrl.api import build_config

    base = build_config(config, algo=algo, total_steps=total_steps, overrides=overrides)
    if not 0 < base.run.eval_every <= base.run.total_steps // 2:  # the pruner compares evaluations during
        updates = max(1, base.run.total_steps // base.batch_size)  # training: about ten a run
        base.run.eval_every = base.batch_size * max(1, updates // 10)
    base_data = base.to_dict()
    check_seed("run.seed (with --seeds)", base.run.seed, seeds)
    for param in searched:
        for value in param.endpoints():
            where = f"--param {param.key}={config_mod.toml_value(value)}"
            try:
                config_mod.with_overrides(base_data, [param.override(value)], source=where)
            except ConfigError as exc:
                raise ConfigError(str(exc) if str(exc).startswith(where) else f"{where}: {exc}") from None
    return base_data


def _study(out: Path, sampler_seed: int, prune: bool, prune_after: int, total_steps: int, worker: int = 0):
    import optuna

    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TrustrlError(f"cannot write the study directory {out}: {exc.strerror or exc}") from None
    storage = f"sqlite:///{out.resolve() / 'study.db'}"
    try:  # a continued study's sampler must not replay the draws the study already made
        done = len(optuna.load_study(study_name="trustrl", storage=storage).trials)
    except KeyError:
        done = 0
    sampler = optuna.samplers.TPESampler(seed=(sampler_seed + 7919 * worker + 104_729 * done) % 2**32,
                                         constant_liar=True)
    pruner = (optuna.pruners.MedianPruner(n_startup_trials=prune_after, n_warmup_steps=total_steps // 5)
              if prune else optuna.pruners.NopPruner())
    return optuna.create_study(study_name="trustrl", storage=storage, direction="maximize", sampler=sampler,
                               pruner=pruner, load_if_exists=True)


def _counted(study) -> int:
    return sum(1 for t in study.get_trials(deepcopy=False) if t.state.name in STATES_COUNTED)


def _run_trials(out: str, base_data: dict, params: list[dict], seeds: int, trials: int, sampler_seed: int,
                prune: bool, prune_after: int, *, worker: int, log: Callable[[str], None] = print) -> None:
    """One process's share of the study: trials until the study has ``trials`` finished ones."""
    import optuna

    from trustrl.run import train

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    searched = [Param(**{**p, "choices": tuple(p["choices"])}) for p in params]
    total_steps = base_data["run"]["total_steps"]
    study = _study(Path(out), sampler_seed, prune, prune_after, total_steps, worker)

    def objective(trial) -> float:
        values = {p.key: p.suggest(trial) for p in searched}
        cfg = config_mod.with_overrides(base_data, [p.override(v) for p, v in zip(searched, values.values())],
                                        source=f"trial {trial.number}")
        started, evaluations, run_dirs = time.perf_counter(), [], []
        trial.set_user_attr("params", {k: config_mod.toml_value(v) for k, v in values.items()})

        pruned: list[str] = []

        def report(step: int, metrics: Mapping[str, float], agent: TrainingAgent) -> bool:
            """Each evaluation goes to Optuna; the run stops where the pruner says so."""
            value = metrics.get("eval_return_mean")
            if value is not None and math.isfinite(value):
                trial.report(value, step)
                if trial.should_prune():
                    pruned.append(f"pruned at step {step} with evaluation {value:.1f}")
                    return True
            return False

        try:
            for k in range(seeds):
                cfg.run.seed = base_data["run"]["seed"] + k
                run_dir = Path(out) / f"trial-{trial.number:04d}" / f"seed{cfg.run.seed}"
                run_dirs.append(str(run_dir))
                trial.set_user_attr("run_dirs", run_dirs)
                result = train(cfg, run_dir, overwrite=True, progress=False, log=lambda message: None,
                               callbacks=[report] if k == 0 else [])
                if pruned:
                    raise optuna.TrialPruned(pruned[0])
                evaluations.append(result.eval_last)
        except optuna.TrialPruned as exc:
            trial.set_user_attr("seconds", time.perf_counter() - started)
            log(f"trial {trial.number}: {exc} ({_describe(values)})")
            raise
        except TrustrlError as exc:  # a setting that diverges (NaN), a worker that died: this trial failed
            trial.set_user_attr("seconds", time.perf_counter() - started)
            trial.set_user_attr("error", str(exc))
            log(f"trial {trial.number}: failed: {exc} ({_describe(values)})")
            raise
        seconds = time.perf_counter() - started
        trial.set_user_attr("seconds", seconds)
        trial.set_user_attr("evaluations", evaluations)
        value = float(sum(evaluations) / len(evaluations))
        log(f"trial {trial.number}: {value:.1f} ({_describe(values)}) in {seconds:.0f}s")
        return value

    # running trials count too: a process stops once the finished and the running make the number asked for
    states = tuple(getattr(optuna.trial.TrialState, name) for name in (*STATES_COUNTED, "RUNNING"))
    study.optimize(objective, callbacks=[optuna.study.MaxTrialsCallback(trials, states=states)],
                   catch=(TrustrlError,))


def _describe(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={config_mod.toml_value(v)}" for k, v in values.items())


def _summarise(study, out: Path, searched: list[Param]) -> TuneResult:
    """Every trial as a row (also ``<out>/summary.csv``), the best one, and the params' importances."""
    import optuna

    rows = []
    for t in study.get_trials(deepcopy=False):
        rows.append({
            "trial": t.number, "state": t.state.name.lower(), "value": t.value if t.value is not None else math.nan,
            "params": t.user_attrs.get("params", {}), "seconds": t.user_attrs.get("seconds", math.nan),
            "run_dirs": t.user_attrs.get("run_dirs", []), "evaluations": t.user_attrs.get("evaluations", []),
            "error": t.user_attrs.get("error", ""),
        })  # fmt: skip
    complete = [r for r in rows if r["state"] == "complete"]
    best = max(complete, key=lambda r: r["value"]) if complete else None
    importances, note = {}, ""
    if len(complete) >= 2:
        try:
            with warnings.catch_warnings():  # e.g. "importances will be equal" with too few distinct trials
                warnings.simplefilter("ignore")
                importances = dict(optuna.importance.get_param_importances(study))
        except (RuntimeError, ValueError) as exc:
            note = f"no importance ranking: {exc}"
    else:
        note = "no importance ranking: it needs at least two complete trials"
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(["trial", "state", "value", *[p.key for p in searched], "seconds", "run_dirs", "error"])
    for r in sorted(rows, key=lambda r: (r["state"] != "complete", -r["value"] if r["state"] == "complete" else 0,
                                         r["trial"])):
        writer.writerow([r["trial"], r["state"], repr(r["value"]), *[r["params"].get(p.key, "") for p in searched],
                         f"{r['seconds']:.1f}", " ".join(r["run_dirs"]), r["error"]])
    tmp = out / ".summary.csv.tmp"
    with writing("the study summary", out / "summary.csv"):
        try:
            tmp.write_text(buffer.getvalue())
            os.replace(tmp, out / "summary.csv")
        finally:
            tmp.unlink(missing_ok=True)
    return TuneResult(out, rows, best, importances, note)

"""Side-by-side comparison of algorithms on one env: train each x seed, plot and tabulate.

``trustrl compare cartpole --algos reinforce,a2c,npg,trpo,ppo --seeds 3 --out cmp/``
(or ``--algos trpo,trpo-vine``: single path against vine) trains ``<env>-<algo>``
presets with seeds 0..K-1 into ``cmp/<algo>/seed<k>/`` (one after another, in
this process). What is compared on is named as ``trustrl train`` names it, or by
the short env name of the presets (``cartpole``):

- a short env name: its ``<env>-<algo>`` presets;
- an env id (``CartPole-v1``, ``module:Id``): per algorithm the config ``trustrl train ID --algo ALGO``
  makes (its preset, else defaults); a variant (``trpo-vine``) needs a preset for that id;
- a preset or a .toml file: that config, seeds against seeds (``--algos`` defaults to its algorithm;
  another is refused as ``train`` refuses it, naming the preset to use).

Then it writes

- ``cmp/curves.png``: per algorithm, the mean ± std over seeds of
  ``episode_return_mean`` (the rolling mean of recent training episodes) against
  environment steps;
- ``cmp/summary.csv``: per algorithm, the deterministic evaluation return of the
  final (``last``) policy -- mean and std over seeds --, steps and wall time.

The curves are aggregated and drawn by :mod:`trustrl.plots` (as ``trustrl
plot`` does: every run interpolated onto the steps all runs cover); the table
(:func:`summarize`) is pure numpy and tested numerically.
Standard deviations are population ones (``ddof=0``), as in ``trustrl eval``.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from trustrl import config as config_mod
from trustrl.api import build_config, evaluate, train
from trustrl.config import MAX_EPISODES, check_count
from trustrl.envs.registry import similar_env_ids
from trustrl.errors import ConfigError
from trustrl.files import check_name_length, writing
from trustrl.plots import plot_runs, read_series
from trustrl.suggestions import close_matches, did_you_mean

SUMMARY_FIELDS = (
    "env", "algo", "seeds", "steps", "eval_return_mean", "eval_return_std",
    "eval_return_per_seed", "train_return_final", "wall_time_s",
)  # fmt: skip


@dataclass
class RunRecord:
    """One trained seed: its learning curve and the deterministic evaluation of its final policy."""

    algo: str
    seed: int
    steps: np.ndarray  # env steps at each update
    returns: np.ndarray  # episode_return_mean at each update (nan before the first episode ends)
    eval_return: float  # mean over the evaluation episodes
    total_steps: int
    seconds: float


@dataclass
class AlgoSummary:
    algo: str
    seeds: int
    steps: int
    eval_return_mean: float
    eval_return_std: float
    eval_returns: list[float] = field(default_factory=list)
    train_return_final: float = math.nan
    wall_time_s: float = math.nan


def summarize(records: Sequence[RunRecord]) -> list[AlgoSummary]:
    """Per algorithm (in first-seen order): eval mean and std over seeds, steps, mean wall time."""
    by_algo: dict[str, list[RunRecord]] = {}
    for record in records:
        by_algo.setdefault(record.algo, []).append(record)
    out = []
    for algo, runs in by_algo.items():
        evals = np.array([r.eval_return for r in runs], np.float64)
        finals = [r.returns[np.isfinite(r.returns)][-1] for r in runs if np.isfinite(r.returns).any()]
        out.append(
            AlgoSummary(
                algo=algo,
                seeds=len(runs),
                steps=int(np.mean([r.total_steps for r in runs])),
                eval_return_mean=float(evals.mean()),
                eval_return_std=float(evals.std()),
                eval_returns=[float(v) for v in evals],
                train_return_final=float(np.mean(finals)) if finals else math.nan,
                wall_time_s=float(np.mean([r.seconds for r in runs])),
            )
        )
    return out


def write_summary(path: Path, env_id: str, summaries: Sequence[AlgoSummary]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=SUMMARY_FIELDS)
        writer.writeheader()
        for s in summaries:
            writer.writerow({
                "env": env_id,
                "algo": s.algo,
                "seeds": s.seeds,
                "steps": s.steps,
                "eval_return_mean": f"{s.eval_return_mean:.2f}",
                "eval_return_std": f"{s.eval_return_std:.2f}",
                "eval_return_per_seed": ";".join(f"{v:.1f}" for v in s.eval_returns),
                "train_return_final": f"{s.train_return_final:.2f}",
                "wall_time_s": f"{s.wall_time_s:.1f}",
            })  # fmt: skip


#: What an env is compared with when ``--algos`` is not given.
ALL_ALGOS = ("reinforce", "a2c", "npg", "trpo", "ppo")


def compare(
    env: str,
    algos: Sequence[str] | None,
    seeds: int,
    out: str | Path,
    *,
    total_steps: int | None = None,
    eval_episodes: int = 10,
    overwrite: bool = False,
    log: Callable[[str], None] | None = None,
) -> list[AlgoSummary]:
    """Train every algo on ``env`` (see the module docstring) with seeds 0..seeds-1, then write the plot and the
    table. ``algos`` None: all five algorithms, or a preset's or file's own."""
    check_count("--seeds", seeds, 1_000)
    if algos is not None and not algos:
        raise ConfigError("--algos needs at least one algorithm")
    check_count("--eval-episodes", eval_episodes, MAX_EPISODES)
    out = check_name_length(out, "--out")
    configs = _configs(env, algos, total_steps)  # every config made before anything is trained
    taken = [out / a / f"seed{k}" for a in configs for k in range(seeds) if (out / a / f"seed{k}" / "config.toml").exists()]
    if taken and not overwrite:  # refuse before training anything, not when that seed comes up
        raise ConfigError(f"{taken[0]} already holds a run; pass --overwrite or choose another --out")
    env_ids = {cfg.env.id for cfg in configs.values()}
    env_id = env_ids.pop() if len(env_ids) == 1 else env

    records = []
    for algo, cfg in configs.items():
        for seed in range(seeds):
            run_dir = out / algo / f"seed{seed}"
            result = train(cfg, seed=seed, run_dir=run_dir, overwrite=overwrite, progress=False,
                           command=["trustrl", "compare", env, "--algos", algo, "--seeds", str(seeds)])
            ev = evaluate(run_dir, eval_episodes, checkpoint="last")
            curve = read_series(run_dir)
            records.append(RunRecord(algo, seed, curve.steps, curve.values, ev.mean_return, result.steps, result.seconds))
            if log:
                log(f"{env_id} {algo} seed {seed}: eval {ev.mean_return:.1f} ± {ev.std_return:.1f} "
                    f"after {result.steps} steps ({result.seconds:.0f}s)")
    summaries = summarize(records)
    with writing("the comparison summary", out / "summary.csv"):
        out.mkdir(parents=True, exist_ok=True)
        write_summary(out / "summary.csv", env_id, summaries)
    run_dirs = [out / r.algo / f"seed{r.seed}" for r in records]
    plot_runs(run_dirs, out / "curves.png", labels=[r.algo for r in records], overwrite=True,  # this comparison's own
              title=f"{env_id}: mean return of the last 20 training episodes (band: ± 1 std over seeds)")
    return summaries


def _configs(env: str, algos: Sequence[str] | None, total_steps: int | None) -> dict[str, config_mod.Config]:
    """The config of each algorithm compared on ``env``: a short env name, an env id, a preset or a file."""
    if env in _short_names():
        return {algo: build_config(_preset_for(env, algo), total_steps=total_steps) for algo in algos or ALL_ALGOS}
    kind = config_mod.spec_kind(env)
    if kind is None:
        hints = close_matches(env, [*_short_names(), *config_mod.preset_names(), *similar_env_ids(env)])
        raise ConfigError(f"unknown env or preset {env!r}{did_you_mean(hints)}; compare takes a short env name of the "
                          f"presets ({', '.join(_short_names())}), an env id such as CartPole-v1 (or module:Id), a "
                          "preset or a .toml file")
    if kind != "env":  # a preset's or a file's settings are tuned for its own algorithm
        algos = algos or [build_config(env).algo.name]
        return {algo: build_config(env, algo=algo, total_steps=total_steps) for algo in algos}
    return {algo: build_config(_variant_preset(env, algo) or env, algo=None if "-" in algo else algo,
                               total_steps=total_steps) for algo in algos or ALL_ALGOS}


def _short_names() -> list[str]:
    return sorted({_split_preset(name)[0] for name in config_mod.preset_names()})


def _variant_preset(env_id: str, algo: str) -> str | None:
    """The preset of a variant (``trpo-vine``) made for ``env_id``; None for a plain algorithm."""
    if "-" not in algo:
        return None
    _base_algorithm(algo)
    made = [name for name in config_mod.preset_names()
            if _split_preset(name)[1] == algo and config_mod.preset_data(name).get("env", {}).get("id") == env_id]
    if not made:
        raise ConfigError(f"no {algo} preset for {env_id}; a variant is compared where a preset made for the env "
                          "has it (see `trustrl presets`)")
    return made[0]


def _base_algorithm(algo: str) -> str:
    base = algo.split("-", 1)[0]
    if base not in config_mod.ALGO_CONFIGS:
        raise ConfigError(f"unknown algorithm {algo!r}; choose from {', '.join(config_mod.ALGO_CONFIGS)} "
                          "(or a variant such as trpo-vine where the env has that preset)")
    return base


def _preset_for(env: str, algo: str) -> str:
    """``<env>-<algo>`` for a short env name: an algorithm, or a variant of one that the env has a preset for
    (``trpo-vine``, ``trpo-notebook``)."""
    _base_algorithm(algo)
    name = f"{env}-{algo}"
    names = config_mod.preset_names()
    if name not in names:
        have = sorted(a for e, a in map(_split_preset, names) if e == env)
        raise ConfigError(f"no preset {name}; {env} has presets for {', '.join(have)}")
    return name


def _split_preset(name: str) -> tuple[str, str]:
    """``cartpole-trpo-vine`` -> (``cartpole``, ``trpo-vine``); ``walker2d-ppo`` -> (``walker2d``, ``ppo``):
    the algorithm is the first part that names one, and what follows it is its variant."""
    parts = name.split("-")
    at = next((i for i, part in enumerate(parts) if i and part in config_mod.ALGO_CONFIGS), len(parts) - 1)
    return "-".join(parts[:at]), "-".join(parts[at:])

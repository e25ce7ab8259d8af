"""Side-by-side comparison of algorithms on one env: train each x seed, plot and tabulate.

``trustrl compare cartpole --algos reinforce,a2c,npg,trpo,ppo --seeds 3 --out cmp/``
trains ``<env>-<algo>`` presets with seeds 0..K-1 into ``cmp/<algo>/seed<k>/``
(one after another, in this process), then writes

- ``cmp/curves.png``: per algorithm, the mean ± std over seeds of
  ``episode_return_mean`` (the rolling mean of recent training episodes) against
  environment steps, every run interpolated onto one common step grid;
- ``cmp/summary.csv``: per algorithm, the deterministic evaluation return of the
  final (``last``) policy -- mean and std over seeds --, steps and wall time.

The aggregation (:func:`align_curves`, :func:`summarize`) is pure numpy and
tested numerically; plotting and training are thin layers around it.
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
from trustrl.errors import ConfigError
from trustrl.evaluate import evaluate
from trustrl.trainer import train

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


def align_curves(
    curves: Sequence[tuple[np.ndarray, np.ndarray]], n_points: int = 100
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and std over runs of ``y(x)`` on a common grid of ``x`` (env steps).

    Each curve is ``(x, y)`` with increasing ``x``; points where ``y`` is nan
    (no finished episode yet) are dropped. The grid spans the steps every run
    covers -- from the latest first point to the earliest last point -- so
    nothing is extrapolated; each run is linearly interpolated onto it.
    Returns ``(grid, mean, std)`` each of shape ``(n_points,)`` (one point if
    the runs share a single step).
    """
    cleaned = []
    for x, y in curves:
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        keep = np.isfinite(y)
        if keep.any():
            cleaned.append((x[keep], y[keep]))
    if not cleaned:
        raise ValueError("no curve has a finite value")
    lo = max(x[0] for x, _ in cleaned)
    hi = min(x[-1] for x, _ in cleaned)
    if lo > hi:
        raise ValueError(f"the curves share no step range (latest start {lo}, earliest end {hi})")
    grid = np.linspace(lo, hi, n_points) if hi > lo else np.array([lo])
    stacked = np.stack([np.interp(grid, x, y) for x, y in cleaned])
    return grid, stacked.mean(0), stacked.std(0)


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


def plot_curves(path: Path, env_id: str, records: Sequence[RunRecord]) -> None:
    """``curves.png``: mean ± std band of the training return per algorithm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_algo: dict[str, list[RunRecord]] = {}
    for record in records:
        by_algo.setdefault(record.algo, []).append(record)
    fig, ax = plt.subplots(figsize=(8, 5))
    for algo, runs in by_algo.items():
        try:
            grid, mean, std = align_curves([(r.steps, r.returns) for r in runs])
        except ValueError:
            continue  # no finished episode in some run: nothing to draw
        ax.plot(grid, mean, label=f"{algo} ({len(runs)} seeds)")
        ax.fill_between(grid, mean - std, mean + std, alpha=0.2)
    seeds = max(len(runs) for runs in by_algo.values())
    ax.set_title(f"{env_id}: training return, mean ± std over up to {seeds} seeds")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("mean return of the last 20 training episodes")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def read_curve(run_dir: Path, column: str = "episode_return_mean") -> tuple[np.ndarray, np.ndarray]:
    with open(run_dir / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return (
        np.array([float(r["step"]) for r in rows]),
        np.array([float(r[column]) for r in rows]),
    )


def compare(
    env: str,
    algos: Sequence[str],
    seeds: int,
    out: str | Path,
    *,
    total_steps: int | None = None,
    eval_episodes: int = 10,
    overwrite: bool = False,
    log: Callable[[str], None] | None = None,
) -> list[AlgoSummary]:
    """Train ``<env>-<algo>`` for every algo and seed 0..seeds-1, then write the plot and the table."""
    if seeds <= 0:
        raise ConfigError(f"--seeds must be > 0, got {seeds}")
    if not algos:
        raise ConfigError("--algos needs at least one algorithm")
    out = Path(out)
    overrides = [f"run.total_steps={total_steps}"] if total_steps is not None else []
    configs = {algo: config_mod.load(_preset_for(env, algo), overrides) for algo in algos}  # fail before training
    env_ids = {cfg.env.id for cfg in configs.values()}
    env_id = env_ids.pop() if len(env_ids) == 1 else env

    records = []
    for algo, cfg in configs.items():
        for seed in range(seeds):
            cfg.run.seed = seed
            run_dir = out / algo / f"seed{seed}"
            result = train(cfg, run_dir, overwrite=overwrite, progress=False,
                           command=["trustrl", "compare", env, "--algos", algo, "--seeds", str(seeds)])
            ev = evaluate(run_dir, episodes=eval_episodes, tag="last")
            steps, returns = read_curve(run_dir)
            records.append(RunRecord(algo, seed, steps, returns, ev.mean_return, result.steps, result.seconds))
            if log:
                log(f"{env_id} {algo} seed {seed}: eval {ev.mean_return:.1f} ± {ev.std_return:.1f} "
                    f"after {result.steps} steps ({result.seconds:.0f}s)")
    summaries = summarize(records)
    out.mkdir(parents=True, exist_ok=True)
    write_summary(out / "summary.csv", env_id, summaries)
    plot_curves(out / "curves.png", env_id, records)
    return summaries


def _preset_for(env: str, algo: str) -> str:
    if algo not in config_mod.ALGO_CONFIGS:
        raise ConfigError(f"unknown algorithm {algo!r}; choose from {', '.join(config_mod.ALGO_CONFIGS)}")
    name = f"{env}-{algo}"
    names = config_mod.preset_names()
    if name not in names:
        envs = sorted({n.rsplit("-", 1)[0] for n in names})
        have = sorted(n.rsplit("-", 1)[1] for n in names if n.startswith(f"{env}-"))
        if not have:
            raise ConfigError(f"no presets for env {env!r}; compare knows {', '.join(envs)}")
        raise ConfigError(f"no preset {name}; {env} has presets for {', '.join(have)}")
    return name

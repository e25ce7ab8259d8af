"""Learning curves: runs aligned on environment steps (or wall-clock seconds), mean ± std per label.

The numbers are computed by :func:`aggregate_series`, a pure function of
``(label, steps, values)`` series that is tested against the CSVs; drawing
(:func:`plot_runs`) only puts its output on axes.
"""

from __future__ import annotations

import csv
import math
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from trustrl.errors import TrustrlError
from trustrl.files import check_name_length
from trustrl.links import inside

FORMATS = (".png", ".svg")


@dataclass
class Series:
    """One run's curve: ``values[i]`` measured at ``steps[i]``."""

    label: str
    steps: np.ndarray
    values: np.ndarray


@dataclass
class Band:
    """Runs of one label on a common step grid: mean and std across runs at each step."""

    label: str
    steps: np.ndarray  # (K,) increasing
    mean: np.ndarray  # (K,)
    std: np.ndarray  # (K,) population std (ddof=0); 0 for a single run
    n_runs: int


def aggregate_series(series: Sequence[Series | tuple[str, Sequence[float], Sequence[float]]]) -> list[Band]:
    """Group series by label and average each group on a common env-step grid.

    Per label, the grid is every step at which any of its runs has a value,
    restricted to the range all of them cover (from the largest first step to
    the smallest last step), so a band never extrapolates a run beyond its
    data. Each run is linearly interpolated onto the grid; runs logged at the
    same steps (same config) are therefore averaged exactly, with no
    interpolation. Non-finite values (a metric not yet measured) are dropped
    first. Bands come back in order of first appearance of their label.
    """
    groups: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    for item in series:
        label, steps, values = (item.label, item.steps, item.values) if isinstance(item, Series) else item
        steps = np.asarray(steps, np.float64)
        values = np.asarray(values, np.float64)
        if steps.shape != values.shape or steps.ndim != 1:
            raise ValueError(f"{label}: steps and values must be 1-D and of equal length")
        keep = np.isfinite(steps) & np.isfinite(values)
        steps, values = steps[keep], values[keep]
        if len(steps) == 0:
            raise TrustrlError(f"a run labelled {label!r} has no finite values to plot")
        order = np.argsort(steps, kind="stable")
        steps, values = steps[order], values[order]
        if np.any(np.diff(steps) == 0):
            raise TrustrlError(f"a run labelled {label!r} has two values at the same step")
        groups.setdefault(label, []).append((steps, values))

    bands = []
    for label, runs in groups.items():
        lo = max(s[0] for s, _ in runs)
        hi = min(s[-1] for s, _ in runs)
        if lo > hi:
            raise TrustrlError(f"the runs labelled {label!r} cover no common range of steps")
        grid = np.unique(np.concatenate([s for s, _ in runs]))
        grid = grid[(grid >= lo) & (grid <= hi)]
        stacked = np.stack([np.interp(grid, s, v) for s, v in runs])
        bands.append(Band(label, grid, stacked.mean(0), stacked.std(0), len(runs)))
    return bands


X_AXES = ("steps", "seconds")


def read_series(
    run_dir: str | Path, metric: str = "episode_return_mean", label: str | None = None, x: str = "steps"
) -> Series:
    """One run's ``metric`` against its ``step`` column, from ``<run_dir>/metrics.csv``.

    ``x = "seconds"`` puts it against the training loop's wall-clock time instead (``elapsed_s`` of
    ``timing.csv``, the same rows; a resumed run's invocations are laid end to end).

    The label defaults to the config's ``name`` (from ``config.toml``), so
    seeds of one preset share a band. A run trained from a dataset has no
    training episodes: its ``episode_return_mean`` is read from its online
    evaluations (``eval_return_mean``).
    """
    run_dir = check_name_length(run_dir, "run directory")
    if metric == "episode_return_mean" and _is_offline(run_dir):
        metric = "eval_return_mean"
    path = _run_file(run_dir, "metrics.csv")
    if not path.is_file():
        what = "no run" if not run_dir.exists() else "no metrics.csv"
        raise TrustrlError(f"{what} at {run_dir}: a run directory written by `trustrl train` holds metrics.csv")
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise TrustrlError(f"cannot read {path} as a CSV file ({str(exc).splitlines()[0][:120]})") from None
    columns = list(rows[0]) if rows else []
    if not rows:
        raise TrustrlError(f"{path} has no rows yet")
    if "step" not in columns:
        raise TrustrlError(f"{path} has no step column (columns: {', '.join(columns)[:200]}); "
                           "a run's metrics.csv starts with one")
    if metric not in columns:
        options = ", ".join(c for c in columns if c != "step")
        raise TrustrlError(f"{path} has no column {metric!r}; columns: {options}")
    steps = np.array([_number(r["step"]) for r in rows])
    values = np.array([_number(r[metric]) for r in rows])
    if x == "seconds":
        steps = _seconds_at(run_dir, steps)
    elif x != "steps":
        raise TrustrlError(f"the x axis is one of {', '.join(X_AXES)}, not {x!r}")
    return Series(label or _config_name(run_dir), steps, values)


def _seconds_at(run_dir: Path, steps: np.ndarray) -> np.ndarray:
    """Wall-clock seconds of training at each step (0 at step 0), from ``timing.csv``."""
    path = _run_file(run_dir, "timing.csv")
    try:
        with open(path, newline="") as f:
            rows = [(_number(r["step"]), _number(r["elapsed_s"])) for r in csv.DictReader(f)]
    except (OSError, KeyError, UnicodeDecodeError, csv.Error) as exc:
        raise TrustrlError(f"cannot read wall-clock times from {path}: {str(exc).splitlines()[0][:120]}") from None
    at, offset, previous = {0.0: 0.0}, 0.0, 0.0
    for step, elapsed in rows:
        if not math.isfinite(elapsed):
            continue
        if elapsed < previous:  # a resumed invocation starts its clock again
            offset += previous
        previous = elapsed
        at[step] = offset + elapsed
    return np.array([at.get(step, math.nan) for step in steps])


def plot_runs(
    run_dirs: Sequence[str | Path],
    out: str | Path,
    metric: str = "episode_return_mean",
    labels: Sequence[str] | None = None,
    title: str | None = None,
    x: str = "steps",
    overwrite: bool = False,
) -> list[Band]:
    """Draw mean ± std bands of ``metric`` over env steps (or wall-clock seconds), one per label, into a PNG or SVG.

    An existing ``out`` is kept unless ``overwrite``; the file appears whole (written beside it, then renamed).
    """
    out = check_name_length(out, "plot output")
    if out.suffix.lower() not in FORMATS:
        raise TrustrlError(f"plot output {out} must end in {' or '.join(FORMATS)}")
    if out.exists() and not overwrite:
        raise TrustrlError(f"{out} already exists; pass --overwrite to replace it")
    if not out.parent.is_dir():
        raise TrustrlError(f"directory {out.parent} for the plot does not exist")
    if not run_dirs:
        raise TrustrlError("plot needs at least one run directory")
    if labels and len(labels) not in (1, len(run_dirs)):
        raise TrustrlError(f"give one --label for all runs or one per run ({len(run_dirs)}), not {len(labels)}")
    if labels and len(labels) == 1:
        labels = list(labels) * len(run_dirs)
    for what, text in [("--title", title), *(("--label", label) for label in labels or ())]:
        _check_mathtext(what, text)
    series = [read_series(d, metric, labels[i] if labels else None, x) for i, d in enumerate(run_dirs)]
    bands = aggregate_series(series)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    for band in bands:
        runs = f"{band.n_runs} run{'s' if band.n_runs > 1 else ''}"
        marker = "o" if len(band.steps) <= 30 else None
        line = ax.plot(band.steps, band.mean, marker=marker, markersize=3, label=f"{band.label} ({runs})")[0]
        if band.n_runs > 1:
            ax.fill_between(band.steps, band.mean - band.std, band.mean + band.std, color=line.get_color(), alpha=0.25)
    offline = [_is_offline(Path(d)) for d in run_dirs]
    pretty = _pretty(metric)
    if all(offline):  # trained from a dataset: steps count transitions processed, returns are online evaluations
        ax.set_xlabel("dataset transitions processed (epochs x dataset size)")
        if metric == "episode_return_mean":
            pretty = "episode return (online deterministic evaluation)"
    elif any(offline):
        ax.set_xlabel("environment steps (offline runs: dataset transitions processed)")
    else:
        ax.set_xlabel("environment steps")
    if x == "seconds":
        ax.set_xlabel("wall-clock seconds of training")
    ax.set_ylabel(pretty)
    spread = " (line: mean over runs, band: ± 1 std)" if any(b.n_runs > 1 for b in bands) else ""
    ax.set_title(title or f"{pretty} over training{spread}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 4))
    fig.tight_layout()
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp{out.suffix}")
    try:
        fig.savefig(tmp)
        os.replace(tmp, out)
    except OSError as exc:
        raise TrustrlError(f"cannot write the plot {out}: {exc.strerror or exc}") from None
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)
    return bands


_PRETTY = {
    "episode_return_mean": "episode return (mean of recent training episodes)",
    "episode_length_mean": "episode length (mean of recent training episodes)",
    "kl": "KL(old || new) per update",
    "entropy": "policy entropy",
    "value_loss": "value loss",
    "explained_variance": "explained variance of the critic",
    "eval_return_mean": "evaluation return (deterministic)",
}


def _pretty(metric: str) -> str:
    return _PRETTY.get(metric, metric.replace("_", " "))


def _number(text: str) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def _run_file(run_dir: Path, name: str) -> Path:
    """A file of the run, refused if a symbolic link leads it outside (``metrics.csv`` -> ``/etc/passwd``)."""
    return inside(run_dir / name, run_dir)


def _check_mathtext(what: str, text: str | None) -> None:
    """A title or label with ``$...$`` is drawn as matplotlib mathtext: one that does not parse is refused here,
    not as a parser traceback at drawing time."""
    if text is None:
        return
    from matplotlib import cbook
    from matplotlib.mathtext import MathTextParser

    if cbook.is_math_text(text):
        try:
            MathTextParser("path").parse(text)
        except ValueError as exc:
            detail = " ".join(str(exc).split())[:120]
            raise TrustrlError(f"{what} {text!r} is not valid matplotlib mathtext ({detail}); "
                               r"write \$ for a literal dollar sign") from None


def _saved_config(run_dir: Path) -> dict:
    """A run's config.toml as data, or {} when it cannot be read (the plot then uses defaults); a link out of
    the run is refused."""
    try:
        config = tomllib.loads(_run_file(run_dir, "config.toml").read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, RecursionError):
        return {}
    return config


def _is_offline(run_dir: Path) -> bool:
    offline = _saved_config(run_dir).get("offline")
    return isinstance(offline, dict) and bool(offline.get("dataset"))


def _config_name(run_dir: Path) -> str:
    return str(_saved_config(run_dir).get("name", run_dir.name))

"""One call site for everything a run reports: progress bar, TensorBoard, CSV.

``metrics.csv`` holds what was learned (returns, losses, KL, ...) and is
identical for two runs with the same seed and config; ``timing.csv`` holds the
wall-clock figures (steps/s, seconds per phase), which never are. TensorBoard
gets both.
"""

from __future__ import annotations

import csv
import math
import sys
from pathlib import Path
from typing import IO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class MetricsLogger:
    def __init__(self, run_dir: Path, total_steps: int, progress: bool = True, tensorboard: bool = True):
        self.run_dir = run_dir
        self._files: dict[str, tuple[IO[str], csv.DictWriter]] = {}
        self._writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"))
        self._progress = None
        if progress:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("steps"),
                TextColumn("{task.fields[sps]:>7.0f} steps/s"),
                TextColumn("return {task.fields[ret]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                disable=not sys.stderr.isatty(),
            )
            self._task = self._progress.add_task("train", total=total_steps, sps=0.0, ret="-")
            self._progress.start()

    def log(self, step: int, metrics: dict[str, float], timing: dict[str, float]) -> None:
        self._append("metrics.csv", {"step": step, **metrics})
        self._append("timing.csv", {"step": step, **timing})
        if self._writer is not None:
            for group, values in (("train", metrics), ("time", timing)):
                for key, value in values.items():
                    if value is not None and not (isinstance(value, float) and math.isnan(value)):
                        self._writer.add_scalar(f"{group}/{key}", value, step)
        if self._progress is not None:
            ret = metrics.get("episode_return_mean", float("nan"))
            self._progress.update(
                self._task,
                completed=step,
                sps=timing.get("steps_per_s", 0.0),
                ret="-" if math.isnan(ret) else f"{ret:.1f}",
            )

    def _append(self, name: str, row: dict[str, float]) -> None:
        if name not in self._files:
            f = open(self.run_dir / name, "w", newline="")
            writer = csv.DictWriter(f, fieldnames=list(row))
            writer.writeheader()
            self._files[name] = (f, writer)
        f, writer = self._files[name]
        writer.writerow({k: _fmt(v) for k, v in row.items()})
        f.flush()

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
        if self._writer is not None:
            self._writer.close()
        for f, _ in self._files.values():
            f.close()


def _fmt(value: float) -> str:
    """repr() round-trips floats exactly, so equal runs give byte-identical CSVs."""
    if isinstance(value, float):
        return repr(value)
    return str(value)

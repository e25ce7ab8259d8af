"""One call site for everything a run reports: progress bar, TensorBoard, CSV.

``metrics.csv`` holds what was learned (returns, losses, KL, ...) and is
identical for two runs with the same seed and config; ``timing.csv`` holds the
wall-clock figures (steps/s, seconds per phase), which never are. TensorBoard
gets both: ``eval_*`` metrics as ``eval/*``, the other metrics as ``train/*``,
timing as ``time/*``.

A column that first appears in a later row (an evaluation column, say) is
added to the header and earlier rows read ``nan`` there; a row missing a
column writes ``nan``. A resumed run keeps the rows up to its checkpoint's
step and appends after them, and TensorBoard drops its later events, so the
files read as if the run had never stopped.
"""

from __future__ import annotations

import csv
import io
import math
import os
import sys
from pathlib import Path
from typing import IO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class MetricsLogger:
    def __init__(
        self,
        run_dir: Path,
        total_steps: int,
        progress: bool = True,
        tensorboard: bool = True,
        resume_step: int | None = None,
    ):
        self.run_dir = run_dir
        self._files: dict[str, tuple[IO[str], csv.DictWriter]] = {}
        self._writer = None
        if resume_step is not None:
            for name in ("metrics.csv", "timing.csv"):
                self._files[name] = _reopen(run_dir / name, resume_step)
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            # purge_step: TensorBoard discards events the stopped run wrote past the checkpoint
            purge = None if resume_step is None else resume_step + 1
            self._writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"), purge_step=purge)
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
            self._task = self._progress.add_task("train", total=total_steps, completed=resume_step or 0,
                                                 sps=0.0, ret="-")
            self._progress.start()

    def log(self, step: int, metrics: dict[str, float], timing: dict[str, float]) -> None:
        self._append("metrics.csv", {"step": step, **metrics})
        self._append("timing.csv", {"step": step, **timing})
        if self._writer is not None:
            for group, values in (("train", metrics), ("time", timing)):
                for key, value in values.items():
                    if value is not None and not (isinstance(value, float) and math.isnan(value)):
                        tag = f"eval/{key[5:]}" if group == "train" and key.startswith("eval_") else f"{group}/{key}"
                        self._writer.add_scalar(tag, value, step)
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
            writer = csv.DictWriter(f, fieldnames=list(row), restval="nan")
            writer.writeheader()
            self._files[name] = (f, writer)
        f, writer = self._files[name]
        new = [key for key in row if key not in writer.fieldnames]
        if new:
            f.close()
            self._files[name] = f, writer = _widen(self.run_dir / name, [*writer.fieldnames, *new])
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


def _widen(path: Path, fieldnames: list[str]) -> tuple[IO[str], csv.DictWriter]:
    """Rewrite a CSV with more columns (``nan`` in the old rows) and reopen it for appending."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return _rewrite(path, fieldnames, rows)


def _reopen(path: Path, last_step: int) -> tuple[IO[str], csv.DictWriter]:
    """Keep the rows of a resumed run's CSV up to ``last_step`` and reopen it for appending."""
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            rows = [r for r in reader if _step(r) <= last_step]
            fieldnames = list(reader.fieldnames or ["step"])
    except FileNotFoundError:
        rows, fieldnames = [], ["step"]
    return _rewrite(path, fieldnames, rows)


def _rewrite(path: Path, fieldnames: list[str], rows: list[dict]) -> tuple[IO[str], csv.DictWriter]:
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=fieldnames, restval="nan")
    writer.writeheader()
    writer.writerows(rows)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as out:
        out.write(buffer.getvalue())
    os.replace(tmp, path)  # a crash here leaves the old file or the new one, never half of one
    f = open(path, "a", newline="")
    return f, csv.DictWriter(f, fieldnames=fieldnames, restval="nan")


def _step(row: dict) -> float:
    try:
        return float(row.get("step") or "nan")
    except ValueError:
        return math.inf

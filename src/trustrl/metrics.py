"""One call site for everything a run reports: progress (a bar on a terminal, else lines), TensorBoard, CSV.

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
import time
from pathlib import Path
from typing import IO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from trustrl.errors import TrustrlError
from trustrl.files import cause, writing
from trustrl.links import nofollow_opener
from trustrl.mirrors import WandbMirror, write_hparams


class MetricsLogger:
    def __init__(
        self,
        run_dir: Path,
        total_steps: int,
        progress: bool | float = True,
        tensorboard: bool = True,
        resume_step: int | None = None,
        mirror: WandbMirror | None = None,
    ):
        self.run_dir = run_dir
        self._mirror = mirror
        self._files: dict[str, tuple[IO[str], csv.DictWriter]] = {}
        self._writer = None
        if resume_step is not None:
            for name in ("metrics.csv", "timing.csv"):
                with writing("the metrics file", run_dir / name):
                    self._files[name] = _reopen(run_dir / name, resume_step)
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            # purge_step: TensorBoard discards events the stopped run wrote past the checkpoint
            purge = None if resume_step is None else resume_step + 1
            self._writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"), purge_step=purge)
        self._progress = None
        self._lines = None
        if progress is not False and not sys.stderr.isatty():
            every = PROGRESS_EVERY_S if progress is True else float(progress)
            self._lines = ProgressLines(total_steps, every, resume_step or 0)
        elif progress is not False:
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
            )
            self._task = self._progress.add_task("train", total=total_steps, completed=resume_step or 0,
                                                 sps=0.0, ret="-")
            self._progress.start()

    def hparams(self, params: dict, config_text: str) -> None:
        """The resolved config in TensorBoard (HPARAMS tab, and as text), scored by the returns."""
        if self._writer is not None:
            write_hparams(self._writer, params, ["train/episode_return_mean", "eval/return_mean"], config_text)

    def log(self, step: int, metrics: dict[str, float], timing: dict[str, float]) -> None:
        self._append("metrics.csv", {"step": step, **metrics})
        self._append("timing.csv", {"step": step, **timing})
        tagged = _tagged(metrics, timing)
        if self._writer is not None:
            for tag, value in tagged.items():
                self._writer.add_scalar(tag, value, step)
        if self._mirror is not None:
            self._mirror.log(step, tagged)
        if self._lines is not None:
            self._lines.log(step, metrics, timing)
        if self._progress is not None:
            ret = metrics.get("episode_return_mean", float("nan"))
            self._progress.update(
                self._task,
                completed=step,
                sps=timing.get("steps_per_s", 0.0),
                ret="-" if math.isnan(ret) else f"{ret:.1f}",
            )

    def evaluating(self, done: int, total: int) -> None:
        """A long evaluation shows as it runs: the bar reads ``evaluating 3/10 episodes`` (``train`` again
        once all are played); log lines say the same at most once per interval."""
        if self._lines is not None:
            self._lines.evaluating(done, total)
        if self._progress is not None:
            self._progress.update(self._task, description=_evaluating(done, total) if done < total else "train")

    def _append(self, name: str, row: dict[str, float]) -> None:
        with writing("the metrics file", self.run_dir / name):
            self._append_row(name, row)

    def _append_row(self, name: str, row: dict[str, float]) -> None:
        if name not in self._files:
            f = open(self.run_dir / name, "w", newline="", opener=nofollow_opener)
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
        if self._lines is not None:
            self._lines.close()
        if self._mirror is not None:
            self._mirror.close()
        if self._writer is not None:
            self._writer.close()
        for f, _ in self._files.values():
            f.close()


#: Seconds between progress lines when stderr is not a terminal (a log file, nohup, SLURM, CI).
PROGRESS_EVERY_S = 30.0


class ProgressLines:
    """Progress as plain lines on stderr, for logs that a bar would fill with control codes.

    A line after the first update (the run is moving), then one at most every ``every`` seconds, and the
    last update's line when the run ends::

        step 245760/1000000 (24.6%) | 2113 steps/s | return 1432.5 | eval 1610.2 | 0:01:56 elapsed, 0:05:57 left
    """

    def __init__(self, total_steps: int, every: float, start_step: int = 0, stream: IO[str] | None = None):
        self.total = total_steps
        self.every = every
        self.stream = stream
        self.started = time.monotonic()
        self.start_step = start_step
        self.printed_at: float | None = None
        self.printed_step: int | None = None
        self.pending: str | None = None
        self.step = start_step  # the last step logged
        self.evaluating_at = -math.inf  # when the last evaluation line was printed

    def log(self, step: int, metrics: dict[str, float], timing: dict[str, float]) -> None:
        now = time.monotonic()
        self.step = step
        self.pending = self._line(step, metrics, timing, now)
        # the first row, and the first update's after an initial evaluation's row, then one per ``every`` seconds
        if self.printed_at is None or self.printed_step == self.start_step or now - self.printed_at >= self.every:
            self._print(now)
            self.printed_step = step

    def evaluating(self, done: int, total: int) -> None:
        """A line while an evaluation runs, once ``every`` seconds have passed since the last line (or the start)::

            step 20480/1000000 (2.0%) | evaluating 3/10 episodes | 0:04:10 elapsed
        """
        now = time.monotonic()
        last = max(self.started if self.printed_at is None else self.printed_at, self.evaluating_at)
        if done < total and now - last >= self.every:
            head = f"step {self.step}/{self.total} ({100.0 * self.step / max(self.total, 1):.1f}%)"
            line = f"{head} | {_evaluating(done, total)} | {_clock(now - self.started)} elapsed"
            print(line, file=self.stream or sys.stderr, flush=True)
            self.evaluating_at = now

    def close(self) -> None:
        if self.pending is not None:
            self._print(time.monotonic())

    def _print(self, now: float) -> None:
        print(self.pending, file=self.stream or sys.stderr, flush=True)
        self.printed_at, self.pending = now, None

    def _line(self, step: int, metrics: dict[str, float], timing: dict[str, float], now: float) -> str:
        elapsed = now - self.started
        parts = [f"step {step}/{self.total} ({100.0 * step / max(self.total, 1):.1f}%)"]
        sps = timing.get("steps_per_s")
        if sps is not None and math.isfinite(sps):
            parts.append(f"{sps:.0f} steps/s")
        for key, label in (("episode_return_mean", "return"), ("eval_return_mean", "eval")):
            value = metrics.get(key)
            if value is not None and math.isfinite(value):
                parts.append(f"{label} {value:.1f}")
        done = step - self.start_step
        left = f", {_clock(elapsed * (self.total - step) / done)} left" if done > 0 and step < self.total else ""
        parts.append(f"{_clock(elapsed)} elapsed{left}")
        return " | ".join(parts)


def _evaluating(done: int, total: int) -> str:
    return f"evaluating {done}/{total} episodes"


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _tagged(metrics: dict[str, float], timing: dict[str, float]) -> dict[str, float]:
    """TensorBoard's (and W&B's) names: ``eval_*`` metrics as ``eval/*``, other metrics as ``train/*``, timing
    as ``time/*``; missing (nan) values are left out."""
    tagged = {}
    for group, values in (("train", metrics), ("time", timing)):
        for key, value in values.items():
            if value is not None and not (isinstance(value, float) and math.isnan(value)):
                tagged[f"eval/{key[5:]}" if group == "train" and key.startswith("eval_") else f"{group}/{key}"] = value
    return tagged


def _fmt(value: float) -> str:
    """repr() round-trips floats exactly, so equal runs give byte-identical CSVs."""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _widen(path: Path, fieldnames: list[str]) -> tuple[IO[str], csv.DictWriter]:
    """Rewrite a CSV with more columns (``nan`` in the old rows) and reopen it for appending."""
    with open(path, newline="", opener=nofollow_opener) as f:
        rows = list(csv.DictReader(f))
    return _rewrite(path, fieldnames, rows)


def _reopen(path: Path, last_step: int) -> tuple[IO[str], csv.DictWriter]:
    """Keep the rows of a resumed run's CSV up to ``last_step`` and reopen it for appending.

    A file whose rows cannot be told apart by step (no ``step`` column, not a CSV) is refused rather than
    emptied: every row of it would be dropped as "after the checkpoint"."""
    try:
        with open(path, newline="", opener=nofollow_opener) as f:
            reader = csv.DictReader(f)
            rows = [r for r in reader if _step(r) <= last_step]
            fieldnames = list(reader.fieldnames or ["step"])
    except FileNotFoundError:
        rows, fieldnames = [], ["step"]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        detail = cause(exc) if isinstance(exc, OSError) else str(exc).splitlines()[0][:120]
        raise TrustrlError(f"cannot read {path} to continue it ({detail})") from None
    if "step" not in fieldnames:
        raise TrustrlError(f"{path} has no step column (columns: {', '.join(fieldnames)[:200]}), so the rows "
                           "after the checkpoint cannot be told apart; restore the file or move it away")
    return _rewrite(path, fieldnames, rows)


def _rewrite(path: Path, fieldnames: list[str], rows: list[dict]) -> tuple[IO[str], csv.DictWriter]:
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=fieldnames, restval="nan")
    writer.writeheader()
    writer.writerows(rows)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)  # created afresh ("x"): a link planted there is never written through
    with open(tmp, "x", newline="", opener=nofollow_opener) as out:
        out.write(buffer.getvalue())
    os.replace(tmp, path)  # a crash here leaves the old file or the new one, never half of one
    f = open(path, "a", newline="", opener=nofollow_opener)
    return f, csv.DictWriter(f, fieldnames=fieldnames, restval="nan")


def _step(row: dict) -> float:
    try:
        return float(row.get("step") or "nan")
    except ValueError:
        return math.inf

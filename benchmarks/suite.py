"""Train configs on several seeds at once and report the final and best checkpoints of each run.

    .venv/bin/python benchmarks/suite.py run --spec hopper-trpo halfcheetah-trpo --seeds 0 1 2 --jobs 2 --out runs/bench-suite
    .venv/bin/python benchmarks/suite.py run --plan plan.txt --jobs 16 --out runs/bench-suite
    .venv/bin/python benchmarks/suite.py table --out runs/bench-suite
    .venv/bin/python benchmarks/suite.py reach runs/bench-suite/humanoid-trpo/seed* --returns 1000 3000 5000

A spec is anything ``trustrl train`` takes (a preset, a .toml file, an env id). Each (spec, seed)
trains in its own process into ``OUT/<name>/seed<k>`` (``name``: the preset's name or the file's
stem), one core each, in the order given (a plan file lists ``spec seed`` a line, so the runs that
matter most start first). Then the ``last`` and ``best`` checkpoints are each evaluated for 10
deterministic episodes on other episodes than training saw (``trustrl eval``'s seeds), into
``summary.json`` beside the run. A run that already has its summary is skipped, so a stopped suite
resumes where it was. ``table`` prints one Markdown table of every summary under OUT; ``reach`` the
steps and training wall clock at which each run's evaluations first reached given returns (a budget
study, also of a run still training).
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def spec_name(spec: str) -> str:
    return Path(spec).stem if spec.endswith(".toml") else spec


def run_one(spec: str, seed: int, out: Path, overrides: list[str], episodes: int) -> Path:
    run_dir = out / spec_name(spec) / f"seed{seed}"
    if (run_dir / "summary.json").exists():
        return run_dir
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "trustrl.cli", "train", spec, "--seed", str(seed), "--run-dir", str(run_dir),
           "--overwrite", "--quiet", *[f"--set={o}" for o in overrides]]
    with open(run_dir.parent / f"seed{seed}.log", "w") as log:
        subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT)
        subprocess.run([sys.executable, __file__, "summarize", str(run_dir), "--episodes", str(episodes)],
                       check=True, stdout=log, stderr=subprocess.STDOUT)
    return run_dir


def evaluate_run(run_dir: Path, episodes: int) -> dict:
    """A finished run's length and wall time, and both checkpoints evaluated on fresh episodes."""
    from trustrl.api import evaluate

    rows = list(csv.DictReader(open(run_dir / "timing.csv")))
    out: dict = {"steps": int(rows[-1]["step"]), "wall_s": float(rows[-1]["elapsed_s"])}
    for tag in ("last", "best"):
        result = evaluate(run_dir, episodes=episodes, checkpoint=tag)
        out[tag] = {"mean": result.mean_return, "std": result.std_return, "step": result.step}
    return out


def summarize(run_dir: Path, episodes: int) -> dict:
    """:func:`evaluate_run`, kept beside the run as ``summary.json``."""
    out = evaluate_run(run_dir, episodes)
    (run_dir / "summary.json").write_text(json.dumps(out, indent=1) + "\n")
    return out


def highest(steps, values) -> tuple[float, int]:
    """The highest of an evaluation curve's returns, and its step."""
    import numpy as np

    i = int(np.nanargmax(values))
    return float(values[i]), int(steps[i])


def top_eval(run_dir: Path) -> tuple[float, int]:
    """The highest ``eval_return_mean`` in the run's metrics, and its step."""
    from trustrl.plots import read_series

    curve = read_series(run_dir, "eval_return_mean")
    return highest(curve.steps, curve.values)


def eval_curve(run_dir: Path) -> tuple:
    """The run's evaluations during training: their steps, the training loop's wall-clock seconds at them
    (evaluations included, a resumed run's invocations laid end to end, as ``trustrl plot --x seconds``
    draws them) and their returns, one array each."""
    from trustrl.plots import read_series

    by_step = read_series(run_dir, "eval_return_mean")
    return by_step.steps, read_series(run_dir, "eval_return_mean", x="seconds").steps, by_step.values


def first_reached(curve: tuple, threshold: float) -> tuple[int, float] | None:
    """The step and seconds of the first evaluation of ``curve`` (:func:`eval_curve`) at or above ``threshold``
    (None: never)."""
    for step, seconds, value in zip(*curve):
        if value >= threshold:
            return int(step), float(seconds)
    return None


def reach_table(run_dirs: list[Path], returns: list[float]) -> str:
    """One row a run: its steps so far and, per return, the steps and wall clock to first reach it."""
    head = " | ".join(f"first eval ≥ {r:g}: steps (wall)" for r in returns)
    lines = [f"| run | steps so far | top eval (step) | {head} |", "|---|---:|---:|" + "---:|" * len(returns)]
    for run_dir in run_dirs:
        curve = eval_curve(run_dir)
        top, top_step = highest(curve[0], curve[2])
        cells = []
        for r in returns:
            hit = first_reached(curve, r)
            cells.append("never" if hit is None else f"{hit[0] / 1e6:.2f}M ({hit[1] / 60:.0f} min)")
        lines.append(f"| {run_dir} | {int(curve[0][-1]):,} | {top:.0f} ({top_step / 1e6:.2f}M) | {' | '.join(cells)} |")
    return "\n".join(lines)


def read_plan(path: Path) -> list[tuple[str, int]]:
    jobs = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            spec, seed = line.split()
            jobs.append((spec, int(seed)))
    return jobs


def within_tenth_of(final: float, top: float) -> bool:
    """Whether ``final`` is no more than 10% of ``top``'s size below it: 90% of a positive top, and for a
    negative one (Reacher, Pusher) at most a tenth of its size lower."""
    return final >= top - 0.1 * abs(top)


def table(out: Path) -> str:
    """One row per run, and per config the mean ± std over its seeds of the final and best returns. ``top eval``
    is the highest evaluation during training (the final one included), which a stable run ends near; ``≥ 90%``
    says whether the final checkpoint's return is within a tenth of it."""
    lines = ["| config | seed | final (last) return | best return | top eval | final ≥ 90% of top | steps "
             "| wall time |", "|---|---:|---:|---:|---:|:---:|---:|---:|"]
    spread = lambda xs: statistics.stdev(xs) if len(xs) > 1 else 0.0  # noqa: E731
    for config_dir in sorted(p for p in out.iterdir() if p.is_dir()):
        runs = sorted(config_dir.glob("seed*/summary.json"), key=lambda p: int(p.parent.name[4:]))
        if not runs:
            continue
        summaries = [json.loads(path.read_text()) for path in runs]
        finals = [r["last"]["mean"] for r in summaries]
        bests = [r["best"]["mean"] for r in summaries]
        # returns of order 1 to 100 (Reacher, Pusher) keep two decimals; whole numbers hide them
        n = lambda x: f"{x:.0f}" if max(map(abs, finals)) >= 100 else f"{x:.2f}"  # noqa: E731
        tops = [top_eval(path.parent) for path in runs]
        stable = [within_tenth_of(r["last"]["mean"], top[0]) for r, top in zip(summaries, tops)]
        for path, r, top, steady in zip(runs, summaries, tops, stable):
            lines.append(
                f"| {config_dir.name} | {path.parent.name[4:]} | {n(r['last']['mean'])} ± {n(r['last']['std'])} | "
                f"{n(r['best']['mean'])} ± {n(r['best']['std'])} (step {r['best']['step']}) | "
                f"{n(top[0])} (step {top[1]}) | {'yes' if steady else 'no'} | "
                f"{r['steps']} | {r['wall_s'] / 60:.1f} min |")
        lines.append(f"| **{config_dir.name}**, {len(finals)} seeds | | **{n(statistics.mean(finals))} ± "
                     f"{n(spread(finals))}** (min {n(min(finals))}) | {n(statistics.mean(bests))} ± "
                     f"{n(spread(bests))} | | {sum(stable)} of {len(finals)} | | |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="train and evaluate every (spec, seed)")
    r.add_argument("--spec", nargs="+", default=[])
    r.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    r.add_argument("--plan", type=Path, help="a file of 'spec seed' lines, run in that order")
    r.add_argument("--jobs", type=int, default=1, help="runs trained at once (one core each)")
    r.add_argument("--episodes", type=int, default=10)
    r.add_argument("--set", dest="overrides", action="append", default=[], help="config override, as for trustrl train")
    r.add_argument("--out", type=Path, default=Path("runs/bench-suite"))
    s = sub.add_parser("summarize", help="evaluate one finished run into its summary.json")
    s.add_argument("run_dir", type=Path)
    s.add_argument("--episodes", type=int, default=10)
    t = sub.add_parser("table", help="the Markdown table of every summary under OUT")
    t.add_argument("--out", type=Path, default=Path("runs/bench-suite"))
    b = sub.add_parser("reach", help="steps and wall clock at which runs first reached given returns")
    b.add_argument("run_dirs", type=Path, nargs="+")
    b.add_argument("--returns", type=float, nargs="+", required=True)
    args = p.parse_args()

    if args.command == "reach":
        from trustrl.errors import TrustrlError

        try:
            print(reach_table(args.run_dirs, args.returns))
        except TrustrlError as exc:
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(2)
        return

    if args.command == "summarize":
        print(json.dumps(summarize(args.run_dir, args.episodes)))
        return
    if args.command == "run":
        jobs = read_plan(args.plan) if args.plan else [(spec, seed) for seed in args.seeds for spec in args.spec]
        if not jobs:
            p.error("nothing to run: give --spec (and --seeds) or --plan")
        with ThreadPoolExecutor(args.jobs) as pool:
            futures = [pool.submit(run_one, spec, seed, args.out, args.overrides, args.episodes) for spec, seed in jobs]
            for future in futures:
                try:
                    print(f"done {future.result()}", flush=True)
                except subprocess.CalledProcessError as exc:
                    print(f"failed: {' '.join(map(str, exc.cmd))} (exit {exc.returncode})", flush=True)
    table_text = table(args.out)
    print(table_text)
    (args.out / "results.md").write_text(table_text + "\n")


if __name__ == "__main__":
    main()

"""TRPO + GAE on Walker2d-v5 for 1M steps, several seeds: the returns of the final and best checkpoints.

    .venv/bin/python benchmarks/walker2d_trpo.py --seeds 0 1 2 --jobs 2 --out runs/bench-walker2d

Each seed trains ``walker2d-trpo-notebook`` (or ``--preset``) in its own process into
``OUT/seed<k>``, then both checkpoints are evaluated for 10 deterministic
episodes. A seed whose run directory already holds a finished run is only
evaluated, so an interrupted benchmark can be resumed. Prints a Markdown
table (also written to ``OUT/results.md``) and, with ``--json``, one JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from suite import evaluate_run


def train_seed(preset: str, seed: int, run_dir: Path, overrides: list[str]) -> None:
    if (run_dir / "checkpoints" / "last.json").exists() and _finished(run_dir, preset, overrides):
        return
    cmd = [sys.executable, "-m", "trustrl.cli", "train", preset, "--seed", str(seed), "--run-dir", str(run_dir),
           "--overwrite", "--quiet", *[f"--set={o}" for o in overrides]]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def _finished(run_dir: Path, preset: str, overrides: list[str]) -> bool:
    from trustrl import checkpoint, config

    total = config.load(preset, overrides).run.total_steps
    return checkpoint.load(run_dir, "last").step >= total - config.load(preset, overrides).batch_size


def summarize_seed(run_dir: Path, episodes: int) -> dict:
    out = evaluate_run(run_dir, episodes)
    return {"run_dir": str(run_dir), **out, "steps_per_s": out["steps"] / out["wall_s"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="walker2d-trpo-notebook")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--jobs", type=int, default=1, help="seeds trained at once (one core each)")
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--set", dest="overrides", action="append", default=[], help="config override, as for trustrl train")
    p.add_argument("--out", type=Path, default=Path("runs/bench-walker2d"))
    p.add_argument("--json", action="store_true")
    args = p.parse_args()

    dirs = {s: args.out / f"seed{s}" for s in args.seeds}
    with ThreadPoolExecutor(args.jobs) as pool:
        list(pool.map(lambda s: train_seed(args.preset, s, dirs[s], args.overrides), args.seeds))
    results = {s: summarize_seed(d, args.episodes) for s, d in dirs.items()}

    lines = [
        "| seed | final (last) return | best return | steps | wall time | steps/s |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for s, r in results.items():
        lines.append(
            f"| {s} | {r['last']['mean']:.0f} ± {r['last']['std']:.0f} | {r['best']['mean']:.0f} ± {r['best']['std']:.0f} "
            f"(step {r['best']['step']}) | {r['steps']} | {r['wall_s'] / 60:.1f} min | {r['steps_per_s']:.0f} |"
        )
    finals = [r["last"]["mean"] for r in results.values()]
    bests = [r["best"]["mean"] for r in results.values()]
    spread = lambda xs: statistics.stdev(xs) if len(xs) > 1 else 0.0  # noqa: E731
    lines.append(
        f"| mean over {len(finals)} seeds | {statistics.mean(finals):.0f} ± {spread(finals):.0f} | "
        f"{statistics.mean(bests):.0f} ± {spread(bests):.0f} | | | |"
    )
    table = "\n".join(lines)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.md").write_text(table + "\n")
    if args.json:
        print(json.dumps({"preset": args.preset, "overrides": args.overrides, "seeds": results}))


if __name__ == "__main__":
    main()

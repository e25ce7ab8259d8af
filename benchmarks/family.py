"""The policy-gradient family side by side: ``trustrl compare`` on CartPole-v1 and Pendulum-v1.

    .venv/bin/python benchmarks/family.py                        # after `make install`: both envs, 5 seeds
    .venv/bin/python benchmarks/family.py --seeds 3 --envs cartpole
    .venv/bin/python benchmarks/family.py --walker2d --seeds 3   # PPO vs TRPO on Walker2d-v5, 1M steps each

Every algorithm trains its bundled ``<env>-<algo>`` preset (its own step
budget) for seeds 0..K-1, one run after another; the final (``last``) policy of
each run is evaluated for 10 deterministic episodes. Runs go to
``runs/benchmarks/family/<env>/<algo>/seed<k>/`` (git-ignored); each env's
``summary.csv`` and ``curves.png`` are copied to ``benchmarks/results/family-<env>.{csv,png}``
with its Markdown table as ``family-<env>.md``, and the table of all of them is printed.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FAMILY = ("reinforce", "a2c", "npg", "trpo", "ppo")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", default="cartpole,pendulum", help="comma-separated short env names")
    parser.add_argument("--algos", default=",".join(FAMILY), help="comma-separated algorithms")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--walker2d", action="store_true",
                        help="instead: PPO vs TRPO on Walker2d-v5 with their presets (1M steps per run: hours)")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "benchmarks" / "family")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--overwrite", action="store_true", help="replace runs already in --runs")
    args = parser.parse_args(argv)

    from trustrl.compare import compare

    if args.walker2d:
        plan = [("walker2d", ["ppo", "trpo"])]
    else:
        algos = [a for a in args.algos.split(",") if a]
        plan = [(env, algos) for env in args.envs.split(",") if env]

    args.results.mkdir(parents=True, exist_ok=True)
    header = ["| env | algo | seeds | steps | eval return (mean ± std over seeds) | per seed | wall s / run |",
              "|---|---|---|---|---|---|---|"]  # fmt: skip
    rows = []
    start = time.perf_counter()
    for env, algos in plan:
        out = args.runs / env
        summaries = compare(env, algos, args.seeds, out, overwrite=args.overwrite, log=print)
        env_rows = []
        for s in summaries:
            per_seed = ", ".join(f"{v:.0f}" for v in s.eval_returns)
            env_rows.append(f"| {env} | {s.algo} | {s.seeds} | {s.steps:,} | "
                            f"{s.eval_return_mean:.1f} ± {s.eval_return_std:.1f} | {per_seed} | {s.wall_time_s:.0f} |")
        shutil.copy(out / "summary.csv", args.results / f"family-{env}.csv")
        shutil.copy(out / "curves.png", args.results / f"family-{env}.png")
        (args.results / f"family-{env}.md").write_text("\n".join(header + env_rows) + "\n")
        rows += env_rows
    print("\n".join(header + rows))
    print(f"total {time.perf_counter() - start:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

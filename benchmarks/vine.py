"""Vine against single path at equal simulator cost: CartPole-v1, Pendulum-v1, Hopper-v5, Walker2d-v5.

    .venv/bin/python benchmarks/vine.py --envs cartpole pendulum hopper walker2d --seeds 0 1 2 --jobs 2 \\
        --out runs/bench-vine
    .venv/bin/python benchmarks/vine.py --envs hopper-trpo walker2d-trpo --seeds 0 1 2 --jobs 2 --out runs/bench-vine

``hopper`` and ``walker2d`` are the first comparison (the env's defaults and ``walker2d-trpo-notebook``, the
KL over the rollout states); ``hopper-trpo`` and ``walker2d-trpo`` the presets against vine on their
settings with the KL over the whole trunk and the critic fitted on the branches' values too.

Each env has a single-path and a vine configuration with the same ``run.total_steps``; every simulated
step, trunk and branch, counts toward it (vine branches that end early cost less, so a vine run may
simulate fewer steps than its budget: the table gives the steps each run really simulated). Each run
trains in its own process into ``OUT/<env>/<scheme>/seed<k>``; its ``last`` and ``best`` checkpoints
are then evaluated for 10 deterministic episodes. A seed already evaluated is not run again, so an
interrupted benchmark resumes. Writes ``OUT/results.md``, ``OUT/results.json`` and, per env, learning
curves against simulated steps (``OUT/<env>-steps.png``) and against wall-clock seconds
(``OUT/<env>-seconds.png``), both drawn by ``trustrl plot``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from suite import eval_curve, evaluate_run, first_reached

# env -> scheme -> (config spec, overrides). MuJoCo vine: a trunk of 512 steps (Hopper 8 copies x 64,
# Walker2d 2 x 256), 128 of its states, 2 actions each, 10-step branches bootstrapped with the critic.
BRANCHES = ["run.sampling=vine", "vine.rollout_set=128", "vine.branches=2", "vine.horizon=10"]
FIRST = [*BRANCHES, "vine.kl_states=rollout"]  # the first comparison's: the KL over the rollout states
# Chosen on hopper-trpo's seeds 10-11 (section 5): the KL over the whole trunk, and the critic fitted on the
# rollout states' values from their branches too.
CHOSEN = [*BRANCHES, "vine.kl_states=trunk", "vine.critic_on_branches=true"]
PAIRS: dict[str, dict[str, tuple[str, list[str]]]] = {
    "cartpole": {
        "single-path": ("cartpole-trpo", ["run.total_steps=200000"]),
        "vine": ("cartpole-trpo-vine", []),
    },
    "pendulum": {
        "single-path": ("pendulum-trpo", []),
        "vine": ("pendulum-trpo-vine", []),
    },
    "hopper": {
        "single-path": ("Hopper-v5", ["run.total_steps=1000000", "run.eval_every=100000"]),
        "vine": ("Hopper-v5", ["run.total_steps=1000000", "run.eval_every=100000", "run.n_steps=64", *FIRST]),
    },
    "walker2d": {
        "single-path": ("walker2d-trpo-notebook", ["run.eval_every=100000"]),
        "vine": ("walker2d-trpo-notebook", ["run.eval_every=100000", "run.n_steps=256", *FIRST]),
    },
    # The MuJoCo presets as they are, against vine on the same settings with a trunk of 8 x 64 steps and
    # the vine settings chosen on Hopper-v5's seeds 10-11 (benchmarks/README.md, section 5).
    "hopper-trpo": {
        "single-path": ("hopper-trpo", []),
        "vine": ("hopper-trpo", ["run.n_steps=64", *CHOSEN]),
    },
    "walker2d-trpo": {
        "single-path": ("walker2d-trpo", []),
        "vine": ("walker2d-trpo", ["run.n_steps=64", *CHOSEN]),
    },
}
# The return each env's "steps to" column counts the steps to (the first evaluation at or above it).
THRESHOLDS = {"cartpole": 475.0, "pendulum": -200.0, "hopper": 3000.0, "walker2d": 3000.0, "hopper-trpo": 3000.0,
              "walker2d-trpo": 3000.0}


def run_seed(env: str, scheme: str, seed: int, out: Path, episodes: int) -> dict:
    run_dir = out / env / scheme / f"seed{seed}"
    summary_path = run_dir / "summary.json"
    if summary_path.exists():
        return json.loads(summary_path.read_text())
    spec, overrides = PAIRS[env][scheme]
    cmd = [sys.executable, "-m", "trustrl.cli", "train", spec, "--seed", str(seed), "--run-dir", str(run_dir),
           "--overwrite", "--quiet", *[f"--set={o}" for o in overrides]]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    summary = {"env": env, "scheme": scheme, "seed": seed, "command": " ".join(["trustrl", *cmd[3:]]),
               **evaluate_run(run_dir, episodes), "steps_to_threshold": steps_to(run_dir, THRESHOLDS[env])}
    summary_path.write_text(json.dumps(summary, indent=1))
    return summary


def steps_to(run_dir: Path, threshold: float) -> int | None:
    """The step of the run's first evaluation at or above ``threshold`` (None: never)."""
    hit = first_reached(eval_curve(run_dir), threshold)
    return None if hit is None else hit[0]


def table(results: list[dict]) -> str:
    lines = ["| env | scheme | seeds | simulated steps (mean) | last: mean ± std over seeds | per seed | "
             "best: mean | steps to the threshold, per seed | wall (min, mean) |", "|---|---|---|---|---|---|---|---|---|"]
    for env in dict.fromkeys(r["env"] for r in results):
        for scheme in ("single-path", "vine"):
            rs = [r for r in results if r["env"] == env and r["scheme"] == scheme]
            if not rs:
                continue
            last = [r["last"]["mean"] for r in rs]
            best = [r["best"]["mean"] for r in rs]
            spread = statistics.pstdev(last) if len(last) > 1 else 0.0
            lines.append(
                f"| {env} | {scheme} | {len(rs)} | {statistics.mean(r['steps'] for r in rs):,.0f} | "
                f"{statistics.mean(last):.1f} ± {spread:.1f} | {', '.join(f'{v:.0f}' for v in last)} | "
                f"{statistics.mean(best):.1f} | ≥ {THRESHOLDS[env]:g}: {', '.join(map(reached, rs))} | "
                f"{statistics.mean(r['wall_s'] for r in rs) / 60:.1f} |"
            )
    return "\n".join(lines)


def reached(summary: dict) -> str:
    """A run's steps to its env's threshold, in thousands ("never"; "--" for a summary written without it)."""
    if "steps_to_threshold" not in summary:
        return "--"
    steps = summary["steps_to_threshold"]
    return "never" if steps is None else f"{steps / 1000:.0f}k"


def plot(env: str, results: list[dict], out: Path) -> None:
    runs = [r for r in results if r["env"] == env]
    dirs = [str(out / env / r["scheme"] / f"seed{r['seed']}") for r in runs]
    labels = [f"--label={r['scheme']}" for r in runs]
    for x in ("steps", "seconds"):
        subprocess.run([sys.executable, "-m", "trustrl.cli", "plot", *dirs, *labels, f"--x={x}",
                        f"--out={out / f'{env}-{x}.png'}", "--overwrite", f"--title={env}: single path vs vine (band: ± 1 std)"],
                       check=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--envs", nargs="+", choices=list(PAIRS), default=list(PAIRS))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--jobs", type=int, default=1, help="runs trained at once (one core each)")
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--out", type=Path, default=Path("runs/bench-vine"))
    args = p.parse_args()
    jobs = [(env, scheme, seed) for env in args.envs for seed in args.seeds for scheme in PAIRS[env]]
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda job: run_seed(*job, args.out, args.episodes), jobs))
    for env in args.envs:
        plot(env, results, args.out)
    text = table(results)
    (args.out / "results.md").write_text(text + "\n")
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    print(text)


if __name__ == "__main__":
    main()

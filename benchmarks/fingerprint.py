"""The numbers a refactor must keep: SHA-256 of metrics.csv and of every checkpoint's weights.

Runs six short trainings that between them reach every path of the loop --
TRPO and PPO, Discrete and Box, vine sampling, asynchronous sampling over two
worker processes, and offline TRPO from a dataset collected on the spot --
and prints one row per file. Run it from two checkouts (``PYTHONPATH=<checkout>/src``)
and compare the tables: a change that claims to keep every number must give
the same digests.

    python benchmarks/fingerprint.py --out runs/fingerprint [--json digests.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

#: (name, trustrl train arguments)
CASES = [
    ("cartpole-trpo", ["cartpole-trpo", "--total-steps", "8192", "--set", "run.eval_every=2048",
                       "--set", "run.eval_episodes=3"]),
    # best chosen by the rolling training return (no evaluation)
    ("pendulum-ppo", ["pendulum-ppo", "--total-steps", "8192", "--set", "run.eval_every=0",
                      "--set", "run.best_window=5"]),
    ("walker2d-trpo", ["walker2d-trpo", "--total-steps", "8192", "--set", "run.eval_every=4096",
                       "--set", "run.eval_episodes=1"]),
    ("cartpole-trpo-vine", ["cartpole-trpo-vine", "--total-steps", "12000", "--set", "run.eval_every=3000",
                            "--set", "run.eval_episodes=2"]),
    ("async-2-workers", ["cartpole-trpo", "--total-steps", "8192", "--set", "run.workers=2",
                         "--set", "run.async_sampling=true", "--set", "run.eval_every=0",
                         "--set", "run.best_window=10"]),
]
DATASET = "fingerprint/cartpole-trpo-v0"


def trustrl(*args: str, env: dict[str, str]) -> None:
    subprocess.run([sys.executable, "-m", "trustrl", *args], check=True, env=env, stdout=subprocess.DEVNULL)


def digests(run_dir: Path) -> dict[str, str]:
    files = [run_dir / "metrics.csv", *sorted((run_dir / "checkpoints").glob("*.safetensors"))]
    return {f"{run_dir.name}/{path.relative_to(run_dir)}": hashlib.sha256(path.read_bytes()).hexdigest()
            for path in files}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="a folder for the runs (replaced)")
    parser.add_argument("--json", type=Path, help="also write the digests here")
    args = parser.parse_args()
    out = args.out.resolve()
    env = {**os.environ, "MINARI_DATASETS_PATH": str(out / "datasets")}
    table: dict[str, str] = {}
    for name, train_args in CASES:
        trustrl("train", *train_args, "--run-dir", str(out / name), "--overwrite", "--quiet", env=env)
        table.update(digests(out / name))
    trustrl("collect", str(out / "cartpole-trpo"), "--dataset", DATASET, "--episodes", "20", "--overwrite", env=env)
    trustrl("train", "cartpole-trpo", "--offline", DATASET, "--epochs", "4", "--run-dir", str(out / "offline"),
            "--overwrite", "--quiet", env=env)
    table.update(digests(out / "offline"))
    width = max(map(len, table))
    for key, digest in table.items():
        print(f"{key:<{width}}  {digest[:16]}")
    if args.json:
        args.json.write_text(json.dumps(table, indent=1) + "\n")


if __name__ == "__main__":
    main()

"""``trustrl``: a thin command line over the library. Parses, calls the API, prints.

Every bad input ends in one ``error: ...`` line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from trustrl.errors import TrustrlError


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args, argv) or 0)
    except TrustrlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trustrl", description="Trust-region policy gradients for gymnasium.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a policy from a preset, a TOML config or a gymnasium env id")
    p.add_argument("config", help="preset name (e.g. walker2d-trpo, see `trustrl presets`), a .toml file, "
                   "or a gymnasium env id (e.g. CartPole-v1: its <env>-<algo> preset, else defaults)")
    p.add_argument("--algo", help="algorithm for an env id: reinforce, a2c, npg, trpo (default) or ppo; "
                   "with a preset or file it must match the one there (use the <env>-<algo> preset instead)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one config field, e.g. --set algo.max_kl=0.02 (repeatable)")
    p.add_argument("--seed", type=int, help="shorthand for --set run.seed=N")
    p.add_argument("--total-steps", type=int, help="shorthand for --set run.total_steps=N")
    p.add_argument("--run-dir", type=Path, help="where to write the run (default runs/<name>-s<seed>-<time>)")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --run-dir")
    p.add_argument("--quiet", action="store_true", help="no progress bar; print one summary line")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="replay a checkpoint for some episodes and report the returns")
    p.add_argument("run", type=Path, help="run directory (or a checkpoints/<tag>.json file)")
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--checkpoint", choices=("last", "best"), default="last", help="which checkpoint (default last)")
    p.add_argument("--seed", type=int, default=1_000_000, help="seed of the first evaluation episode")
    p.add_argument("--stochastic", action="store_true", help="sample actions instead of the mean / arg-max")
    p.add_argument("--env", help="evaluate in another env id (spaces must match)")
    p.add_argument("--render", action="store_true", help="show the episodes in a window")
    p.add_argument("--json", action="store_true", help="print one JSON line")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("compare", help="train several algorithms x seeds on one env; plot and tabulate")
    p.add_argument("env", help="short env name of the presets: cartpole, pendulum or walker2d")
    p.add_argument("--algos", default="reinforce,a2c,npg,trpo,ppo",
                   help="comma-separated algorithms, each with an <env>-<algo> preset (default: all five)")
    p.add_argument("--seeds", type=int, default=3, help="seeds 0..K-1 per algorithm (default 3)")
    p.add_argument("--out", type=Path, required=True, help="writes <out>/<algo>/seed<k>/, curves.png, summary.csv")
    p.add_argument("--total-steps", type=int, help="override every preset's run.total_steps")
    p.add_argument("--eval-episodes", type=int, default=10, help="deterministic episodes per final policy")
    p.add_argument("--overwrite", action="store_true", help="replace runs already in --out")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("presets", help="list the bundled presets")
    p.set_defaults(func=cmd_presets)
    return parser


def cmd_train(args: argparse.Namespace, argv: list[str]) -> int:
    from trustrl import config as config_mod
    from trustrl.trainer import train

    overrides = list(args.overrides)
    if args.seed is not None:
        overrides.append(f"run.seed={args.seed}")
    if args.total_steps is not None:
        overrides.append(f"run.total_steps={args.total_steps}")
    cfg = config_mod.load(args.config, overrides, algo=args.algo)
    run_dir = args.run_dir or Path("runs") / f"{cfg.name}-s{cfg.run.seed}-{time.strftime('%Y%m%d-%H%M%S')}"
    result = train(cfg, run_dir, overwrite=args.overwrite, progress=not args.quiet, command=["trustrl", *argv])
    print(
        f"trained {cfg.name} for {result.steps} steps ({result.updates} updates) in {result.seconds:.0f}s; "
        f"recent mean return {result.last_return:.1f}, best {result.best_return:.1f}; run dir {result.run_dir}"
    )
    return 0


def cmd_eval(args: argparse.Namespace, argv: list[str]) -> int:
    from trustrl.evaluate import evaluate

    result = evaluate(
        args.run,
        episodes=args.episodes,
        tag=args.checkpoint,
        seed=args.seed,
        deterministic=not args.stochastic,
        env_id=args.env,
        render=args.render,
    )
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        kind = "deterministic" if result.deterministic else "stochastic"
        print(
            f"{result.env} {args.checkpoint} checkpoint (step {result.step}), {result.episodes} {kind} episodes: "
            f"return {result.mean_return:.1f} ± {result.std_return:.1f} "
            f"[min {result.min_return:.1f}, max {result.max_return:.1f}], mean length {result.mean_length:.0f}"
        )
    return 0


def cmd_compare(args: argparse.Namespace, argv: list[str]) -> int:
    from trustrl.compare import compare

    algos = [a.strip() for a in args.algos.split(",") if a.strip()]
    summaries = compare(
        args.env, algos, args.seeds, args.out, total_steps=args.total_steps,
        eval_episodes=args.eval_episodes, overwrite=args.overwrite, log=print,
    )  # fmt: skip
    print(f"{'algo':<10} {'seeds':>5} {'steps':>9} {'eval return':>17} {'wall s':>7}")
    for s in summaries:
        ret = f"{s.eval_return_mean:.1f} ± {s.eval_return_std:.1f}"
        print(f"{s.algo:<10} {s.seeds:>5} {s.steps:>9} {ret:>17} {s.wall_time_s:>7.0f}")
    print(f"wrote {args.out / 'curves.png'} and {args.out / 'summary.csv'}")
    return 0


def cmd_presets(args: argparse.Namespace, argv: list[str]) -> int:
    from trustrl.config import preset_names

    print("\n".join(preset_names()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``trustrl``: a thin command line over the library. Parses, calls the API, prints.

Every bad input ends in one ``error: ...`` line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from trustrl import __version__
from trustrl.episodes import DEFAULT_EVAL_SEED
from trustrl.errors import TrustrlError


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already printed as one line
        return exc.code if isinstance(exc.code, int) else 2
    try:
        return int(args.func(args, argv) or 0)
    except TrustrlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a write site not covered yet (a library's own file): the file system refused it
        from trustrl.files import REFUSALS, cause

        if exc.errno not in REFUSALS:
            raise
        print(f"error: {exc.filename or 'a file'}: {cause(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one ``error:`` line naming the command's --help, and exit code 2."""

    def error(self, message: str):
        print(f"error: {message} (see `{self.prog} --help`)", file=sys.stderr)
        self.exit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="trustrl", description="Trust-region policy gradients for gymnasium.")
    parser.add_argument("--version", action="version", version=f"trustrl {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_train, _add_eval, _add_video, _add_export, _add_plot, _add_collect, _add_compare, _add_tune,
                _add_config):
        add(sub)
    p = sub.add_parser("presets", help="list the bundled presets")
    p.set_defaults(func=cmd_presets)
    return parser


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a policy from a preset, a TOML config or a gymnasium env id")
    p.add_argument("config", nargs="?", help="preset name (e.g. walker2d-trpo, see `trustrl presets`), a .toml file, "
                   "or a gymnasium env id (e.g. CartPole-v1: its <env>-<algo> preset, else defaults)")
    p.add_argument("--resume", type=Path, metavar="RUN",
                   help="continue the run in RUN from its last checkpoint (with --total-steps or --epochs to extend it)")
    p.add_argument("--init-from", metavar="RUN[:TAG]",
                   help="start a new run from RUN's policy and observation statistics (TAG: last (default), best or "
                        "step-N); shorthand for --set run.init_from=RUN[:TAG]")
    p.add_argument("--algo", help="algorithm for an env id: reinforce, a2c, npg, trpo (default) or ppo; "
                   "with a preset or file it must match the one there (use the <env>-<algo> preset instead)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one config field, e.g. --set algo.max_kl=0.02 (repeatable)")
    p.add_argument("--seed", type=int, help="shorthand for --set run.seed=N")
    p.add_argument("--total-steps", type=int, help="shorthand for --set run.total_steps=N")
    p.add_argument("--run-dir", type=Path, help="where to write the run (default runs/<name>-s<seed>-<time>)")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --run-dir")
    p.add_argument("--quiet", action="store_true", help="no progress bar; print one summary line")
    p.add_argument("--progress-every", type=float, metavar="SECONDS",
                   help="when stderr is not a terminal (a log file, nohup, SLURM): a progress line every this many "
                        "seconds (default 30); on a terminal a progress bar")
    p.add_argument("--offline", metavar="DATASET",
                   help="learn from a local Minari dataset (id or path) instead of the env; see `trustrl collect`")
    p.add_argument("--epochs", type=int, help="with --offline: passes over the dataset (shorthand for --set offline.epochs=N)")
    p.add_argument("--env-kwarg", dest="env_kwargs", action="append", default=[], metavar="KEY=VALUE",
                   help="with --resume: a saved env kwarg that names a file, passed again to use it (repeatable)")
    p.set_defaults(func=cmd_train)


def _add_eval(sub) -> None:
    p = sub.add_parser("eval", help="replay a checkpoint for some episodes and report the returns")
    p.add_argument("run", type=Path, help="run directory (or a checkpoints/<tag>.json file)")
    p.add_argument("--episodes", type=int, default=10)
    _add_checkpoint(p)
    p.add_argument("--seed", type=int, default=DEFAULT_EVAL_SEED,
                   help="seed of the evaluation episodes (the same seed plays the same episodes)")
    _add_stochastic(p)
    p.add_argument("--env", help="evaluate in another env id (spaces must match)")
    p.add_argument("--render", action="store_true", help="show the episodes in a window")
    p.add_argument("--json", action="store_true", help="print one JSON line")
    _add_env_kwargs(p)
    p.set_defaults(func=cmd_eval)


def _add_video(sub) -> None:
    p = sub.add_parser("video", help="film a checkpoint's episodes into an mp4 (headless)")
    p.add_argument("run", type=Path, help="run directory (or a checkpoints/<tag>.json file)")
    p.add_argument("--out", type=Path, required=True, help="the .mp4 file to write")
    p.add_argument("--episodes", type=int, default=3, help="episodes to film (default 3)")
    _add_checkpoint(p)
    p.add_argument("--seed", type=int, default=DEFAULT_EVAL_SEED,
                   help="seed of the episodes (the same seed plays the same episodes)")
    _add_stochastic(p)
    p.add_argument("--min-return", type=float, help="film only episodes whose return reaches this")
    p.add_argument("--max-attempts", type=int, help="with --min-return: episodes to try at most (default 20 x --episodes)")
    p.add_argument("--fps", type=int, help="frames per second (default: the env's render_fps)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    _add_env_kwargs(p)
    p.set_defaults(func=cmd_video)


def _add_export(sub) -> None:
    p = sub.add_parser("export", help="write a checkpoint's deterministic policy, normalisation inside, as ONNX or "
                       "TorchScript")
    p.add_argument("run", type=Path, help="run directory (or a checkpoints/<tag>.json file)")
    p.add_argument("--format", required=True, choices=("onnx", "torchscript"),
                   help="onnx (needs pip install 'trustrl[export]') or torchscript")
    p.add_argument("--out", type=Path, required=True, help="the file to write: .onnx or .pt")
    _add_checkpoint(p)
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    _add_env_kwargs(p)
    p.set_defaults(func=cmd_export)


def _add_plot(sub) -> None:
    p = sub.add_parser("plot", help="learning curves of runs: mean ± std per label over env steps")
    p.add_argument("runs", type=Path, nargs="+", help="run directories (each with a metrics.csv)")
    p.add_argument("--out", type=Path, required=True, help="the .png or .svg file to write")
    p.add_argument("--metric", default="episode_return_mean", help="a metrics.csv column (default episode_return_mean)")
    p.add_argument("--label", dest="labels", action="append", metavar="NAME",
                   help="label of the runs, once for all or once per run in order (default: the config name)")
    p.add_argument("--title", help="plot title (default: says what is drawn)")
    p.add_argument("--x", choices=("steps", "seconds"), default="steps",
                   help="x axis: env steps (default) or wall-clock seconds of training")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.set_defaults(func=cmd_plot)


def _add_collect(sub) -> None:
    p = sub.add_parser("collect", help="roll out a checkpoint's policy (or a random one) into a Minari dataset")
    p.add_argument("run", type=Path, nargs="?", help="run directory whose policy to roll out (omit with --random --env)")
    p.add_argument("--dataset", required=True, help="Minari dataset id, e.g. cartpole/trpo-medium-v0")
    p.add_argument("--episodes", type=int, help="episodes to collect")
    p.add_argument("--steps", type=int, help="or: collect whole episodes until this many steps")
    _add_checkpoint(p)
    p.add_argument("--random", action="store_true", help="uniformly random actions instead of a policy")
    p.add_argument("--env", help="env id (needed with --random and no run directory)")
    p.add_argument("--seed", type=int, default=0, help="seed of the episodes collected (default 0)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset with this id")
    _add_env_kwargs(p)
    p.set_defaults(func=cmd_collect)


def _add_compare(sub) -> None:
    p = sub.add_parser("compare", help="train several algorithms x seeds on one env; plot and tabulate")
    p.add_argument("env", help="what to compare on: a short env name of the presets (cartpole, pendulum, walker2d, "
                   "...), an env id (e.g. CartPole-v1: per algorithm its preset, else defaults, as for train), "
                   "or a preset or .toml file (compared with itself over seeds)")
    p.add_argument("--algos", help="comma-separated algorithms (default: all five, or a preset's or file's own; "
                   "trpo-vine: TRPO with vine sampling, where the env has that preset)")
    p.add_argument("--seeds", type=int, default=3, help="seeds 0..K-1 per algorithm (default 3)")
    p.add_argument("--out", type=Path, required=True, help="writes <out>/<algo>/seed<k>/, curves.png, summary.csv")
    p.add_argument("--total-steps", type=int, help="override every preset's run.total_steps")
    p.add_argument("--eval-episodes", type=int, default=10, help="deterministic episodes per final policy")
    p.add_argument("--overwrite", action="store_true", help="replace runs already in --out")
    p.set_defaults(func=cmd_compare)


def _add_tune(sub) -> None:
    p = sub.add_parser("tune", help="search hyper-parameters with Optuna: each trial a run, scored by its evaluations")
    p.add_argument("config", help="preset name, .toml file or env id whose config the trials vary")
    p.add_argument("--param", dest="params", action="append", default=[], metavar="KEY=SPEC",
                   help="a searched key (repeatable): log:LOW:HIGH, float:LOW:HIGH, int:LOW:HIGH, logint:LOW:HIGH, "
                        "or choices a,b,c (a|b|c when a choice holds commas, e.g. [64,64]|[256,256])")
    p.add_argument("--trials", type=int, default=20, help="finished trials the study should have (default 20)")
    p.add_argument("--out", type=Path, required=True,
                   help="the study directory: study.db (run again to continue), trial-NNNN/seed<k>/ (trial-0000/seed0/, "
                        "...), summary.csv")
    p.add_argument("--jobs", type=int, default=1, help="trials run at once, each in its own process (default 1)")
    p.add_argument("--seeds", type=int, default=1,
                   help="seeds per trial, from run.seed on; the score is the mean of their last evaluations")
    p.add_argument("--total-steps", type=int, help="shorthand for --set run.total_steps=N")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one config field for every trial (repeatable)")
    p.add_argument("--algo", help="algorithm for an env id (as for train)")
    p.add_argument("--sampler-seed", type=int, default=0, help="seed of the TPE sampler (default 0)")
    p.add_argument("--prune-after", type=int, default=5,
                   help="finished trials before the median pruner may stop one (default 5)")
    p.add_argument("--no-prune", action="store_true", help="let every trial run to the end")
    p.set_defaults(func=cmd_tune)


def _add_config(sub) -> None:
    p = sub.add_parser("config", help="print a config as TOML: every key with its value, default and doc")
    p.add_argument("config", help="preset name, .toml file or env id (as for train)")
    p.add_argument("--algo", help="algorithm for an env id (as for train)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one config field (repeatable), as for train")
    p.set_defaults(func=cmd_config)


def _add_checkpoint(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", default="last", metavar="{last,best,step-N}",
                   help="which checkpoint: last (default), best, or step-N, a copy kept at step N")


def _add_stochastic(p: argparse.ArgumentParser) -> None:
    p.add_argument("--stochastic", action="store_true", help="sample actions instead of the mean / arg-max")


def _add_env_kwargs(p: argparse.ArgumentParser) -> None:
    p.add_argument("--env-kwarg", dest="env_kwargs", action="append", default=[], metavar="KEY=VALUE",
                   help="keyword argument for the env over the saved ones (repeatable); a saved one that names a "
                        "file is used only when passed again")


def cmd_train(args: argparse.Namespace, argv: list[str]) -> int:
    from trustrl import api
    from trustrl.config import parse_env_kwargs

    if args.progress_every is not None and not args.progress_every > 0:
        raise TrustrlError(f"--progress-every must be > 0 seconds, got {args.progress_every}")
    progress = False if args.quiet else True if args.progress_every is None else args.progress_every
    if args.resume is not None:
        given = [flag for flag, value in ((f"a config ({args.config})", args.config), ("--algo", args.algo),
                                          ("--seed", args.seed),
                                          ("--run-dir", args.run_dir), ("--overwrite", args.overwrite or None),
                                          ("--offline", args.offline), ("--init-from", args.init_from))
                 if value is not None]
        if given:
            raise TrustrlError(f"--resume continues a run with its own config and directory; it cannot be combined "
                               f"with {', '.join(given)} (only with --total-steps, --epochs, --quiet and --set of "
                               "run.workers, run.placement, run.worker_cpus or run.device)")
        result = api.resume(args.resume, total_steps=args.total_steps, epochs=args.epochs, layout=args.overrides,
                            env_kwargs=parse_env_kwargs(args.env_kwargs), progress=progress,
                            command=["trustrl", *argv])
        print(result.summary())
        return 0
    if args.config is None:
        raise TrustrlError("train needs a preset, a .toml file or an env id (or --resume RUN)")
    if args.env_kwargs:
        raise TrustrlError("--env-kwarg is for --resume; a new run takes env kwargs as --set 'env.kwargs={...}'")
    result = api.train(args.config, algo=args.algo, seed=args.seed, total_steps=args.total_steps, epochs=args.epochs,
                       offline=args.offline, init_from=args.init_from, overrides=args.overrides, run_dir=args.run_dir,
                       overwrite=args.overwrite, progress=progress, command=["trustrl", *argv])
    print(result.summary())
    return 0


def cmd_eval(args: argparse.Namespace, argv: list[str]) -> int:
    from trustrl import api
    from trustrl.config import MAX_EPISODES, check_count, check_seed, parse_env_kwargs

    check_count("--episodes", args.episodes, MAX_EPISODES)  # before the checkpoint is read, named as given
    check_seed("--seed", args.seed, args.episodes)
    result = api.evaluate(args.run, args.episodes, seed=args.seed, deterministic=not args.stochastic,
                          checkpoint=args.checkpoint, env=args.env, env_kwargs=parse_env_kwargs(args.env_kwargs),
                          render=args.render)
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


def cmd_video(args: argparse.Namespace, argv: list[str]) -> int:
    from trustrl.config import parse_env_kwargs
    from trustrl.video import video

    if args.out.exists() and not args.overwrite:
        raise TrustrlError(f"{args.out} already exists; pass --overwrite to replace it")
    result = video(args.run, args.out, episodes=args.episodes, checkpoint=args.checkpoint, seed=args.seed,
                   deterministic=not args.stochastic, min_return=args.min_return, max_attempts=args.max_attempts,
                   fps=args.fps, env_kwargs=parse_env_kwargs(args.env_kwargs))
    returns = ", ".join(f"{r:.1f}" for r in result.returns)
    print(f"wrote {result.path}: {len(result.returns)} episodes ({result.attempts} played), "
          f"{result.frames} frames at {result.fps} fps; returns {returns}")
    return 0


def cmd_export(args: argparse.Namespace, argv: list[str]) -> int:
    from trustrl import api
    from trustrl.config import parse_env_kwargs

    out = api.export(args.run, args.out, args.format, checkpoint=args.checkpoint, overwrite=args.overwrite,
                     env_kwargs=parse_env_kwargs(args.env_kwargs))
    print(f"wrote {out}: the {args.checkpoint} checkpoint's deterministic policy as {args.format} "
          "(raw observations in, actions out)")
    return 0


def cmd_plot(args: argparse.Namespace, argv: list[str]) -> int:
    from trustrl.plots import plot_runs

    bands = plot_runs(args.runs, args.out, metric=args.metric, labels=args.labels, title=args.title, x=args.x,
                      overwrite=args.overwrite)
    summary = "; ".join(f"{b.label}: {b.n_runs} runs, final {b.mean[-1]:.1f} ± {b.std[-1]:.1f}" for b in bands)
    print(f"wrote {args.out} ({args.metric}) -- {summary}")
    return 0


def cmd_collect(args: argparse.Namespace, argv: list[str]) -> int:
    from trustrl.config import parse_env_kwargs
    from trustrl.datasets.collect import collect

    result = collect(
        args.dataset,
        args.run,
        episodes=args.episodes,
        steps=args.steps,
        tag=args.checkpoint,
        random=args.random,
        env_id=args.env,
        seed=args.seed,
        overwrite=args.overwrite,
        env_kwargs=parse_env_kwargs(args.env_kwargs),
    )
    print(f"wrote Minari dataset {result.dataset_id} at {result.path}: {result.episodes} episodes, "
          f"{result.steps} steps, return {result.mean_return:.1f} ± {result.std_return:.1f} ({result.behaviour} behaviour)")
    return 0


def cmd_compare(args: argparse.Namespace, argv: list[str]) -> int:
    from trustrl.compare import compare

    algos = None if args.algos is None else [a.strip() for a in args.algos.split(",") if a.strip()]
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


def cmd_tune(args: argparse.Namespace, argv: list[str]) -> int:
    from trustrl.tune import tune

    result = tune(args.config, args.params, args.trials, args.out, jobs=args.jobs, seeds=args.seeds,
                  overrides=args.overrides, total_steps=args.total_steps, algo=args.algo,
                  sampler_seed=args.sampler_seed, prune=not args.no_prune, prune_after=args.prune_after)
    states = {}
    for trial in result.trials:
        states[trial["state"]] = states.get(trial["state"], 0) + 1
    print(f"study {result.study_dir}: " + ", ".join(f"{n} {state}" for state, n in sorted(states.items())))
    complete = sorted((t for t in result.trials if t["state"] == "complete"), key=lambda t: -t["value"])
    for trial in complete[:10]:
        params = " ".join(f"--set {shlex.quote(f'{k}={v}')}" for k, v in trial["params"].items())
        print(f"  trial {trial['trial']:>4}  {trial['value']:>10.1f}  {trial['seconds']:>6.0f}s  {params}")
    if result.importances:
        print("importance: " + ", ".join(f"{k} {v:.2f}" for k, v in result.importances.items()))
    elif result.importance_note:
        print(result.importance_note)
    print(f"wrote {result.study_dir / 'summary.csv'}")
    return 0


def cmd_config(args: argparse.Namespace, argv: list[str]) -> int:
    from trustrl import config as config_mod
    from trustrl.config.document import describe

    print(describe(config_mod.load(args.config, args.overrides, algo=args.algo)), end="")
    return 0


def cmd_presets(args: argparse.Namespace, argv: list[str]) -> int:
    from trustrl.config import preset_names

    print("\n".join(preset_names()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Offline TRPO on MuJoCo datasets made here, against behaviour cloning: the recipe, end to end.

Stages (each reads what the one before wrote under ``--out``; run them in order, or ``all``):

``behaviour``
    One TRPO run per env (the env's preset, seed ``--behaviour-seed``) keeping a copy of its policy every
    ``--save-every`` steps (``checkpoints/step-<N>``). Its last policy is the *expert*; the first kept policy
    whose evaluation reaches a third of the expert's is the *medium* one.
``datasets``
    ``trustrl collect`` writes, per env, Minari datasets ``trustrl-mujoco/<env>-<kind>-v0`` under
    ``MINARI_DATASETS_PATH``: ``random`` (uniform actions), ``medium``, ``expert``, and ``medium-replay``
    (the same number of transitions from every kept policy up to the medium one: the batches the run
    learned from on its way there, played again). ``references.json`` holds each env's random and expert
    return, so scores read D4RL-style as 0 (random) to 100 (expert).
``offline``
    ``trustrl train --offline`` on every dataset, per seed. The row at step 0 of a run's metrics.csv is the
    behaviour-cloning policy (the maximum-likelihood fit every offline run starts from); the final policy
    is offline TRPO's.
``table``
    Normalised scores per dataset (BC, offline TRPO, the dataset's own mean) into ``table.md`` and curves.

    MINARI_DATASETS_PATH=runs/offline-mujoco/minari python benchmarks/offline_mujoco.py all --out runs/offline-mujoco
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

ENVS = {"walker2d": "walker2d-trpo", "hopper": "hopper-trpo", "halfcheetah": "halfcheetah-trpo"}
KINDS = ("random", "medium-replay", "medium", "expert")
MEDIUM_FRACTION = 1 / 3  # the medium policy: the first kept one at a third of the expert's evaluation
# Every offline run: the final policy and the behaviour-cloning start scored on 10 deterministic episodes;
# 20 epochs of 20,000-transition steps (chosen on seed 10 of walker2d-medium and hopper-medium, where
# whole-dataset steps stopped after 4 epochs below the behaviour-cloning start and a looser
# offline.max_kl_behaviour of 0.5 let the importance weights degenerate), the Fisher-vector products on
# 512 of them, as the online presets take theirs (half the time of a step).
OFFLINE_SETTINGS = ("offline.eval_episodes=10", "offline.eval_every=5", "offline.minibatch=20000",
                    "offline.epochs=20", "algo.fvp_samples=512")


def stage_behaviour(args) -> None:
    import trustrl
    from trustrl.callbacks import SaveEvery

    for env in args.envs:
        run_dir = args.out / "behaviour" / env
        finished = run_dir.with_suffix(".txt")  # the run's summary line, written once it has ended
        if finished.is_file():
            print(f"{env}: behaviour run already at {run_dir}", flush=True)
            continue
        result = trustrl.train(ENVS[env], seed=args.behaviour_seed, run_dir=run_dir, overwrite=True,
                               progress=False, callbacks=[SaveEvery(args.save_every)])
        finished.write_text(result.summary() + "\n")
        print(f"{env}: {result.summary()}", flush=True)


def stage_datasets(args) -> None:
    import minari

    from trustrl.datasets.collect import collect

    for env in args.envs:
        run_dir = args.out / "behaviour" / env
        medium_step, replay = _medium(run_dir)
        plan = {
            "random": dict(random=True, env_id=_env_id(run_dir), steps=args.dataset_steps, seed=0),
            "medium": dict(run=run_dir, tag=f"step-{medium_step}", steps=args.dataset_steps, seed=1),
            "expert": dict(run=run_dir, tag="last", steps=args.dataset_steps, seed=2),
        }
        for kind, request in plan.items():
            result = collect(_dataset_id(env, kind), overwrite=True, **request)
            print(f"{env} {kind}: {result.episodes} episodes, {result.steps} steps, "
                  f"return {result.mean_return:.1f} ± {result.std_return:.1f}", flush=True)
        # medium-replay: every kept policy up to the medium one, an equal share of transitions each
        parts = []
        for i, tag in enumerate(replay):
            part = collect(_dataset_id(env, f"replay-part{i}"), run_dir, tag=tag, overwrite=True,
                           steps=max(1, args.dataset_steps // len(replay)), seed=100 + i)
            parts.append(part.dataset_id)
        replay_id = _dataset_id(env, "medium-replay")
        _remove_dataset(replay_id)
        minari.combine_datasets([minari.load_dataset(p) for p in parts], replay_id)
        for part in parts:
            _remove_dataset(part)
        print(f"{env} medium-replay: {len(replay)} checkpoints up to step {medium_step}", flush=True)


def _medium(run_dir: Path) -> tuple[int, list[str]]:
    """The medium policy's step (the first kept policy evaluated at a third of the final one's return) and
    the kept policies up to it."""
    evaluations = _evaluations(run_dir)
    expert = evaluations[max(evaluations)]
    kept = _kept(run_dir)
    step = next(step for step, _ in kept if evaluations.get(step, -math.inf) >= MEDIUM_FRACTION * expert)
    return step, [tag for s, tag in kept if s <= step]


def _references(out: Path, env: str) -> dict:
    """The 0 and 100 of the normalised score: the random dataset's mean return and the expert policy's
    evaluation (deterministic, the behaviour run's final one)."""
    from trustrl.datasets.read import read_dataset

    run_dir = out / "behaviour" / env
    evaluations = _evaluations(run_dir)
    medium_step, replay = _medium(run_dir)
    return {"random": float(read_dataset(_dataset_id(env, "random")).returns.mean()),
            "expert": evaluations[max(evaluations)], "medium_step": medium_step,
            "medium_eval": evaluations[medium_step], "replay_checkpoints": replay}


def stage_offline(args) -> None:
    from concurrent.futures import ProcessPoolExecutor

    first = ("medium", "medium-replay", "expert", "random")  # the datasets the targets name come first
    jobs = [(env, kind, seed) for kind in sorted(args.kinds, key=first.index) for env in args.envs
            for seed in args.seeds]
    jobs = [job for job in jobs if not _offline_dir(args.out, *job).with_suffix(".txt").is_file()]
    with ProcessPoolExecutor(args.jobs) as pool:
        for line in pool.map(_offline_run, [(args.out, *job, tuple(args.set)) for job in jobs]):
            print(line, flush=True)


def _offline_dir(out: Path, env: str, kind: str, seed: int) -> Path:
    return out / "offline" / env / kind / f"seed{seed}"


def _offline_run(job: tuple) -> str:
    """One offline run (in a process of its own); its summary line is written beside it once it has ended."""
    import trustrl

    out, env, kind, seed, overrides = job
    run_dir = _offline_dir(out, env, kind, seed)
    result = trustrl.train(ENVS[env], offline=_dataset_id(env, kind), seed=seed, run_dir=run_dir, overwrite=True,
                           progress=False, overrides=[*OFFLINE_SETTINGS, *overrides])
    line = f"{env} {kind} seed {seed}: {result.summary()}"
    run_dir.with_suffix(".txt").write_text(line + "\n")
    return line


def stage_table(args) -> None:
    import numpy as np

    references = {env: _references(args.out, env) for env in args.envs}
    _write_json(args.out / "references.json", references)
    rows, curves = [], {}
    for env in args.envs:
        score = lambda r: _normalised(r, references[env])  # noqa: E731
        for kind in args.kinds:
            per_seed = []
            for seed in args.seeds:
                run_dir = _offline_dir(args.out, env, kind, seed)
                if not run_dir.with_suffix(".txt").is_file():
                    continue
                evaluations = _evaluations(run_dir)
                steps = sorted(evaluations)
                per_seed.append((seed, evaluations[steps[0]], evaluations[steps[-1]], _behaviour_return(run_dir)))
                curves.setdefault((env, kind), []).append(
                    (np.array(steps) / _transitions(run_dir), np.array([score(evaluations[s]) for s in steps])))
            if not per_seed:
                continue
            bc = np.array([score(b) for _, b, _, _ in per_seed])
            trpo = np.array([score(t) for _, _, t, _ in per_seed])
            data = score(per_seed[0][3])
            rows.append((env, kind, data, bc, trpo, [s for s, *_ in per_seed]))
    table = _markdown(rows, references) + "\n" + _datasets_table(args.envs, args.kinds, references)
    (args.out / "table.md").write_text(table)
    print(table)
    _plot(curves, rows, args.out / "curves.png")


def _transitions(run_dir: Path) -> int:
    """The dataset's transitions: the step count of one epoch (the row of update 1 in metrics.csv)."""
    updates = _recorded(run_dir, "update")
    return next(step for step, update in updates.items() if update == 1)


def _behaviour_return(run_dir: Path) -> float:
    """The dataset's mean episode return, as the offline run recorded it in metrics.csv."""
    recorded = _recorded(run_dir, "behaviour_return_mean")
    if not recorded:
        raise ValueError(f"{run_dir}: no behaviour_return_mean in metrics.csv")
    return recorded[min(recorded)]


def _normalised(value: float, reference: dict) -> float:
    """A return on the D4RL scale: 0 for the random dataset's mean, 100 for the expert's evaluation."""
    return 100.0 * (value - reference["random"]) / (reference["expert"] - reference["random"])


def _markdown(rows, references) -> str:
    lines = [
        "| dataset | dataset mean | BC | offline TRPO | TRPO - BC | per seed: BC → offline TRPO |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for env, kind, data, bc, trpo, seeds in rows:
        per_seed = ", ".join(f"{s}: {b:.1f} → {t:.1f}" for s, b, t in zip(seeds, bc, trpo))
        lines.append(f"| {env}-{kind} | {data:.1f} | {bc.mean():.1f} ± {bc.std():.1f} | "
                     f"{trpo.mean():.1f} ± {trpo.std():.1f} | {trpo.mean() - bc.mean():+.1f} | {per_seed} |")
    lines += ["", "| env | random return (0) | expert return (100) | medium policy (step, evaluation) |",
              "|---|---:|---:|---|"]
    for env in sorted({r[0] for r in rows}):
        ref = references[env]
        lines.append(f"| {env} | {ref['random']:.1f} | {ref['expert']:.1f} | "
                     f"step {ref['medium_step']}, {ref['medium_eval']:.1f} |")
    return "\n".join(lines) + "\n"


def _datasets_table(envs: list[str], kinds: list[str], references: dict) -> str:
    """What each dataset holds: episodes, transitions, return (raw and normalised), and how often the
    behaviour policy's draw was clipped (a step with any coordinate beyond a bound)."""
    import numpy as np

    from trustrl.datasets.read import read_dataset

    lines = ["| dataset | episodes | transitions | return | normalised | steps with a clipped coordinate |",
             "|---|---:|---:|---:|---:|---:|"]
    for env in envs:
        ref = references[env]
        for kind in kinds:
            data = read_dataset(_dataset_id(env, kind))
            returns = data.returns
            clipped = (np.concatenate([np.any(ep.draws != ep.actions, axis=1) for ep in data.episodes]).mean()
                       if data.has_draws else 0.0)
            score = _normalised(returns.mean(), ref)
            lines.append(f"| {env}-{kind} | {len(data.episodes)} | {data.n_steps} | {returns.mean():.1f} ± "
                         f"{returns.std():.1f} | {score:.1f} | {100 * clipped:.0f}% |")
    return "\n".join(lines) + "\n"


def _plot(curves, rows, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    envs = sorted({env for env, _ in curves})
    kinds = [k for k in KINDS if any((env, k) in curves for env in envs)]
    fig, axes = plt.subplots(len(envs), len(kinds), figsize=(3.2 * len(kinds), 2.6 * len(envs)), squeeze=False)
    data_of = {(env, kind): data for env, kind, data, *_ in rows}
    for i, env in enumerate(envs):
        for j, kind in enumerate(kinds):
            ax = axes[i][j]
            for x, y in curves.get((env, kind), []):
                ax.plot(x, y, color="tab:blue", alpha=0.6, lw=1)
            if (env, kind) in data_of:
                ax.axhline(data_of[env, kind], color="gray", ls="--", lw=1, label="dataset mean")
            ax.set_title(f"{env}-{kind}", fontsize=9)
            ax.set_xlabel("epoch", fontsize=8)
            if j == 0:
                ax.set_ylabel("normalised return", fontsize=8)
            ax.tick_params(labelsize=7)
    axes[0][0].legend(fontsize=7)
    fig.suptitle("offline TRPO from the behaviour-cloning start (epoch 0), per seed", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _dataset_id(env: str, kind: str) -> str:
    return f"trustrl-mujoco/{env}-{kind}-v0"


def _remove_dataset(dataset_id: str) -> None:
    import shutil

    from minari.storage import get_dataset_path

    path = Path(get_dataset_path(dataset_id))
    if path.exists():
        shutil.rmtree(path)


def _evaluations(run_dir: Path) -> dict[int, float]:
    """step -> eval_return_mean of every evaluated row of a run's metrics.csv."""
    return _recorded(run_dir, "eval_return_mean")


def _recorded(run_dir: Path, column: str) -> dict[int, float]:
    """step -> ``column`` of every row of a run's metrics.csv that has a value in it."""
    from trustrl.plots import read_series

    curve = read_series(run_dir, column)
    return {int(step): float(value) for step, value in zip(curve.steps, curve.values) if not math.isnan(value)}


def _env_id(run_dir: Path) -> str:
    import tomllib

    return tomllib.loads((run_dir / "config.toml").read_text())["env"]["id"]


def _kept(run_dir: Path) -> list[tuple[int, str]]:
    """The ``step-<N>`` checkpoints a run kept, by step."""
    tags = [p.stem for p in (run_dir / "checkpoints").glob("step-*.json")]
    return sorted((int(t.split("-")[1]), t) for t in tags)


def _write_json(path: Path, value: dict) -> None:
    path.write_text(json.dumps(value, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=("behaviour", "datasets", "offline", "table", "all"))
    parser.add_argument("--out", type=Path, default=Path("runs/offline-mujoco"))
    parser.add_argument("--envs", default=",".join(ENVS), help="comma-separated, of " + ", ".join(ENVS))
    parser.add_argument("--behaviour-seed", type=int, default=1000)
    parser.add_argument("--save-every", type=int, default=25_000)
    parser.add_argument("--dataset-steps", type=int, default=200_000, help="transitions per dataset")
    parser.add_argument("--kinds", default=",".join(KINDS), help="datasets per env, of " + ", ".join(KINDS))
    parser.add_argument("--seeds", default="0,1,2", help="offline runs' seeds, comma-separated")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a config override for every offline run (repeatable)")
    parser.add_argument("--jobs", type=int, default=2, help="offline runs at once")
    args = parser.parse_args(argv)
    args.envs = [e for e in args.envs.split(",") if e]
    args.kinds = [k for k in args.kinds.split(",") if k]
    args.seeds = [int(s) for s in args.seeds.split(",") if s]
    unknown = [e for e in args.envs if e not in ENVS]
    if unknown:
        print(f"error: unknown env {unknown[0]!r}; choose from {', '.join(ENVS)}", file=sys.stderr)
        return 2
    stages = ("behaviour", "datasets", "offline", "table") if args.stage == "all" else (args.stage,)
    for stage in stages:
        globals()[f"stage_{stage}"](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())

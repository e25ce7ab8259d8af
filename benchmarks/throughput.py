"""Training throughput side by side: the raw simulator, trustrl, and sb3-contrib's TRPO.

    .venv/bin/python benchmarks/throughput.py                 # after `make bench`
    .venv/bin/python benchmarks/throughput.py --json --rounds 3 --steps 40960

Each measurement runs in a fresh subprocess (no shared state), its peak
memory summed over the whole process tree (workers, and Ray's own processes,
included), and the kinds alternate -- raw, trustrl, peer, raw, trustrl, peer, ... --
so drift of the machine's speed affects them alike. Reported figures are
medians over rounds.

- raw:      the vector env trustrl trains on, stepping random actions in one process (the one-core ceiling);
            ``raw_parallel``: the same copies split over 2 processes stepping at once (the ceiling of
            this 2-core machine); ``raw_gym`` is gymnasium's own SyncVectorEnv in one process.
- trustrl:  ``trustrl.run.training.train`` on the preset for ``--steps`` env steps, copies in this process
            (``trustrl_serial``: the same with ``run.overlap_critic = false``; ``trustrl_workers``:
            ``run.workers = 2`` worker processes, ``_serial`` without the critic thread, ``_async`` with
            ``run.async_sampling``; ``trustrl_ray``: 2 actors on a local Ray).
- peer:     sb3-contrib TRPO with the preset's settings (env, n_envs, n_steps,
            network sizes and activation, GAE, critic epochs/minibatch/lr, CG steps,
            damping, target KL, line search, observation normalisation, the share of
            the batch its Fisher-vector products see).

``--scaling`` adds the learner's time per update against batch size and torch threads
(``learner.py``), training steps/s against workers (1, 2, 4) and batch size, and the
scale-out model fitted to both.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

KINDS = ("raw", "raw_parallel", "raw_gym", "trustrl", "trustrl_serial", "trustrl_workers", "trustrl_workers_serial",
         "trustrl_workers_async", "trustrl_ray", "peer")
TRUSTRL_KINDS = {  # kind -> the overrides it trains with
    "trustrl": [],
    "trustrl_serial": ["run.overlap_critic=false"],
    "trustrl_workers": ["run.workers=2"],
    "trustrl_workers_serial": ["run.workers=2", "run.overlap_critic=false"],
    "trustrl_workers_async": ["run.workers=2", "run.async_sampling=true"],
    "trustrl_ray": ['run.placement="ray"', "run.workers=2"],
}


# --------------------------------------------------------------------------- workers


def _max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _tree_rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and all its descendants now, from /proc."""
    total, stack, seen = 0.0, [pid], set()
    while stack:
        p = stack.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            with open(f"/proc/{p}/status") as f:
                total += next((int(line.split()[1]) for line in f if line.startswith("VmRSS:")), 0) / 1024.0
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    stack.extend(int(c) for c in f.read().split())
        except (OSError, ValueError):
            continue
    return total


class PeakTreeRss:
    """Samples the summed RSS of this process tree every 50 ms; ``peak`` is the largest sum seen."""

    def __enter__(self) -> "PeakTreeRss":
        import threading

        self.peak, self._stop = _max_rss_mb(), threading.Event()

        def poll() -> None:
            while not self._stop.wait(0.05):
                self.peak = max(self.peak, _tree_rss_mb(os.getpid()))

        self._thread = threading.Thread(target=poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _max_rss_mb())


def worker_raw(preset: str, steps: int, gym_vector: bool, n_envs: int | None = None) -> dict:
    import gymnasium as gym

    from trustrl import config
    from trustrl.envs import make_vec_env

    cfg = config.load(preset, [f"env.n_envs={n_envs}"] if n_envs else [])
    if gym_vector:
        envs = gym.make_vec(
            cfg.env.id,
            num_envs=cfg.env.n_envs,
            vectorization_mode=cfg.env.vectorization,
            vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP},
        )
    else:
        envs = make_vec_env(cfg.env)
    envs.reset(seed=0)
    envs.action_space.seed(0)
    n_vec_steps = steps // cfg.env.n_envs
    actions = [envs.action_space.sample() for _ in range(n_vec_steps)]
    start = time.perf_counter()
    for a in actions:
        envs.step(a)
    seconds = time.perf_counter() - start
    envs.close()
    return {"sps": n_vec_steps * cfg.env.n_envs / seconds, "seconds": seconds, "max_rss_mb": _max_rss_mb()}


def worker_raw_parallel(preset: str, steps: int, processes: int = 2) -> dict:
    """The preset's copies split over ``processes`` processes stepping random actions at once."""
    from trustrl import config

    n_envs = config.load(preset).env.n_envs
    shares = [n_envs // processes + (i < n_envs % processes) for i in range(processes)]
    with PeakTreeRss() as rss:
        procs = [subprocess.Popen([sys.executable, __file__, "--worker", "raw", "--preset", preset,
                                   "--steps", str(steps * share // n_envs), "--n-envs", str(share)],
                                  stdout=subprocess.PIPE, text=True) for share in shares]
        results = [json.loads(proc.communicate()[0].strip().splitlines()[-1]) for proc in procs]
    seconds = max(r["seconds"] for r in results)  # they run at once: the slower one bounds the pair
    done = sum(r["sps"] * r["seconds"] for r in results)
    return {"sps": done / seconds, "seconds": seconds, "max_rss_mb": rss.peak}


def worker_trustrl(preset: str, steps: int, kind: str = "trustrl", extra: tuple[str, ...] = ()) -> dict:
    import csv

    from trustrl import config
    from trustrl.run import train

    # evaluation during training off: this measures training, side by side with a trainer that has none
    overrides = [f"run.total_steps={steps}", "run.eval_every=0", *TRUSTRL_KINDS[kind], *extra]
    cfg = config.load(preset, overrides)
    overlap = cfg.run.overlap_critic
    with tempfile.TemporaryDirectory() as tmp, PeakTreeRss() as rss:
        result = train(cfg, Path(tmp) / "run", progress=False)
        with open(Path(tmp) / "run" / "timing.csv") as f:
            rows = list(csv.DictReader(f))
    total = lambda key: sum(float(r.get(key) or 0.0) for r in rows)  # noqa: E731
    # Wall-clock parts of the loop. With the overlap the critic fit runs in a thread while
    # the next batch is sampled; only the time spent waiting for it is on the main path.
    split = {
        "sampling_s": total("sample_s"),
        "gae_s": total("advantage_s"),
        "policy_update_s": total("update_s") - (0.0 if overlap else total("time_critic_s")),
        "critic_fit_s": total("critic_wait_s") if overlap else total("time_critic_s"),
        "checkpoint_s": total("checkpoint_s") + total("video_s"),
    }
    split["logging_s"] = max(0.0, result.seconds - sum(split.values()))
    per_batch = [float(r["update_s"]) + (float(r["time_critic_s"]) if overlap else 0.0) for r in rows]
    return {
        "sps": result.steps / result.seconds,
        "seconds": result.seconds,
        "steps": result.steps,
        "update_s_per_batch": statistics.median(per_batch[1:] or per_batch),  # policy step + critic fit
        "critic_fit_s_total": total("time_critic_s"),  # the fit's own duration, overlapped or not
        "split_s": split,
        "max_rss_mb": rss.peak,
    }


def worker_peer(preset: str, steps: int) -> dict:
    import torch
    from sb3_contrib import TRPO
    from stable_baselines3.common.env_util import make_vec_env as sb3_make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    from trustrl import config

    cfg = config.load(preset)
    torch.set_num_threads(cfg.run.torch_threads)  # the same thread count as trustrl
    env = sb3_make_vec_env(cfg.env.id, n_envs=cfg.env.n_envs, seed=cfg.run.seed)
    env = VecNormalize(
        env, norm_obs=cfg.env.norm_obs, norm_reward=cfg.env.norm_reward,
        clip_obs=cfg.env.clip_obs, clip_reward=cfg.env.clip_reward, gamma=cfg.algo.gamma,
    )
    activation = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh}
    batch = cfg.run.n_steps * cfg.env.n_envs
    # the critic's minibatch and the Fisher's rows as trustrl's settings make them for this batch
    minibatch = -(-batch // cfg.critic.minibatches) if cfg.critic.minibatches else cfg.critic.minibatch
    fvp_every = max(1, batch // cfg.algo.fvp_samples) if cfg.algo.fvp_samples else max(1, round(1 / cfg.algo.fvp_fraction))
    model = TRPO(
        "MlpPolicy",
        env,
        learning_rate=cfg.critic.lr,
        n_steps=cfg.run.n_steps,
        batch_size=minibatch,
        gamma=cfg.algo.gamma,
        cg_max_steps=cfg.algo.cg_iters,
        cg_damping=cfg.algo.damping,
        line_search_shrinking_factor=cfg.algo.backtrack_shrink,
        line_search_max_iter=cfg.algo.backtrack_iters,
        n_critic_updates=cfg.critic.epochs,
        gae_lambda=cfg.algo.gae_lambda,
        normalize_advantage=cfg.algo.normalize_advantage,
        target_kl=cfg.algo.max_kl,
        sub_sampling_factor=fvp_every,  # sb3 takes every k-th row for its Fisher-vector products
        policy_kwargs=dict(
            net_arch=dict(pi=list(cfg.policy.hidden), vf=list(cfg.critic.hidden)),
            activation_fn=activation[cfg.policy.activation],
            log_std_init=cfg.policy.log_std_init,
        ),
        seed=cfg.run.seed,
        device="cpu",
        verbose=0,
    )
    train_times: list[float] = []
    original_train = model.train

    def timed_train() -> None:
        t = time.perf_counter()
        original_train()
        train_times.append(time.perf_counter() - t)

    model.train = timed_train
    with PeakTreeRss() as rss:
        start = time.perf_counter()
        model.learn(total_timesteps=steps)
        seconds = time.perf_counter() - start
    done = model.num_timesteps
    return {
        "sps": done / seconds,
        "seconds": seconds,
        "steps": done,
        "update_s_per_batch": statistics.median(train_times[1:] or train_times),
        "max_rss_mb": rss.peak,
    }


# --------------------------------------------------------------------------- scaling


def learner_table(presets: tuple[str, ...], batches=(2048, 8192, 32768), threads=(1,)) -> list[dict]:
    """``benchmarks/learner.py``'s rows: the policy step and the critic fit of one update against batch size,
    for each preset and torch thread count (a fresh process each, so nothing is shared with other rows)."""
    rows = []
    for n_threads in threads:
        cmd = [sys.executable, str(Path(__file__).with_name("learner.py")), "--batches", *map(str, batches),
               "--threads", str(n_threads), "--json", *[a for preset in presets for a in ("--preset", preset)]]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        rows += [{**row, "threads": n_threads} for row in json.loads(out.stdout.strip().splitlines()[-1])["rows"]]
    return rows


def learner_cost(rows: list[dict], preset: str, threads: int = 1) -> tuple[float, float]:
    """``(a, b)`` of the least-squares line L(B) = a + b B through the preset's learner rows (seconds)."""
    import numpy as np

    mine = [r for r in rows if r["preset"] == preset and r["threads"] == threads]
    b, a = np.polyfit([r["batch"] for r in mine], [r["policy_s"] + r["critic_s"] for r in mine], 1)
    return max(0.0, float(a)), float(b)


def workers_table(preset: str, steps: int, workers=(1, 2, 4), n_steps=(512, 2048), n_envs: int = 4) -> dict:
    """Training steps/s with ``n_envs`` copies against workers and batch size (each in a fresh subprocess).

    The critic fit is not overlapped here, so sampling and learning take turns and the scale-out model
    can read the cost of each off ``timing.csv``.
    """
    table: dict = {}
    for T in n_steps:
        for w in workers:
            extra = [f"env.n_envs={n_envs}", f"run.n_steps={T}", f"run.workers={w}", "run.overlap_critic=false"]
            res = run_worker("trustrl", preset, max(steps, 4 * T * n_envs), extra)
            table[f"batch{T * n_envs}_workers{w}"] = {
                "batch": T * n_envs, "n_steps": T, "n_envs": n_envs, "workers": w, "sps": res["sps"],
                "steps": res["steps"], "sampling_s": res["split_s"]["sampling_s"], "seconds": res["seconds"],
                "max_rss_mb": res["max_rss_mb"],
            }  # fmt: skip
    return table


def scaleout_model(table: dict, learner: tuple[float, float], n_steps: int = 1024, copies_per_worker: int = 1,
                   workers=(1, 2, 4, 8, 32, 128)) -> dict:
    """Steps/s predicted for W workers from constants fitted to the workers table (batch 2048 rows) and to
    the learner table.

    - ``c``: seconds per env step of simulating and acting (one process stepping all copies);
    - ``o``: seconds per worker per batch of sending the policy and noise and gathering a fragment;
    - ``L(B) = a + b B``: seconds of one update (policy step and critic fit) on a batch of B, fitted to
      ``learner_table``: ``a`` is what does not grow with the batch (Fisher-vector products on a fixed
      number of rows, a fixed number of critic steps' overhead), ``b`` what does (gradient passes);
    - ``r(B) = e0 + e1 B``: the rest of the learner's loop (GAE and statistics grow with the batch;
      logging and checkpoints do not), fitted through what the 1-worker rows of the two batch sizes
      spend beyond L (with one batch size, ``e0 = 0``).

    Each worker steps ``copies_per_worker`` copies for ``n_steps``, so the batch grows with W:
    B = W k T. Synchronous: t = k T c + o W + L(B) + r(B) (workers and learner take turns);
    asynchronous: t = max(k T c + o W, L(B) + r(B)). The learner binds once it is the larger.
    """
    smallest = min(r["batch"] for r in table.values())
    rows = {row["workers"]: row for row in table.values() if row["batch"] == smallest}
    one, two = rows[1], rows[2]
    batches = lambda row: row["steps"] / row["batch"]  # noqa: E731
    a, b = learner
    update = lambda batch: a + b * batch  # noqa: E731
    c = one["sampling_s"] / one["steps"]
    o = max(0.0, (two["sampling_s"] / batches(two) - two["n_steps"] * two["n_envs"] / 2 * c) / 2)
    rest = {row["batch"]: (row["seconds"] - row["sampling_s"]) / batches(row) - update(row["batch"])
            for row in table.values() if row["workers"] == 1}
    if len(rest) > 1:
        (b0, r0), (b1, r1) = min(rest.items()), max(rest.items())
        e1 = max(0.0, (r1 - r0) / (b1 - b0))
        e0 = max(0.0, r0 - e1 * b0)
    else:
        e0, e1 = 0.0, max(0.0, rest[smallest] / smallest)
    learn = lambda batch: update(batch) + e0 + e1 * batch  # noqa: E731

    def measured_config(w: int) -> float:  # the table's own layout: n_envs copies shared by w workers
        row = rows[w]
        t = row["n_steps"] * math.ceil(row["n_envs"] / w) * c + (o * w if w > 1 else 0.0) + learn(row["batch"])
        return row["batch"] / t

    predictions = {}
    for w in workers:
        batch = w * copies_per_worker * n_steps
        simulate = copies_per_worker * n_steps * c + o * w
        predictions[w] = {"batch": batch, "sync_sps": batch / (simulate + learn(batch)),
                          "async_sps": batch / max(simulate, learn(batch)), "learner_bound": learn(batch) > simulate,
                          "learner_us_per_transition": learn(batch) / batch * 1e6}
    return {
        "c_s_per_step": c, "o_s_per_worker_batch": o, "learner_a_s": a, "learner_b_s_per_transition": b,
        "rest_e0_s": e0, "rest_e1_s_per_transition": e1,
        "check": {w: {"predicted_sps": measured_config(w), "measured_sps": rows[w]["sps"]} for w in sorted(rows)},
        "predicted": predictions, "n_steps": n_steps, "copies_per_worker": copies_per_worker,
    }  # fmt: skip


# --------------------------------------------------------------------------- driver


def run_worker(kind: str, preset: str, steps: int, extra: list[str] | tuple[str, ...] = ()) -> dict:
    cmd = [sys.executable, __file__, "--worker", kind, "--preset", preset, "--steps", str(steps)]
    cmd += [arg for item in extra for arg in ("--set", item)]
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"})
    if out.returncode != 0:
        raise RuntimeError(f"{kind} worker failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(preset: str, steps: int, rounds: int, kinds: tuple[str, ...]) -> dict:
    results: dict[str, list[dict]] = {k: [] for k in kinds}
    for r in range(rounds):
        for kind in kinds:
            res = run_worker(kind, preset, steps)
            results[kind].append(res)
            print(f"  round {r + 1}/{rounds} {kind:8s} {res['sps']:8.0f} steps/s  rss {res['max_rss_mb']:.0f} MB",
                  file=sys.stderr, flush=True)
    med = lambda kind, key: statistics.median(x[key] for x in results[kind])  # noqa: E731
    summary: dict = {"preset": preset, "steps": steps, "rounds": rounds}
    for kind in kinds:
        summary[f"{kind}_sps"] = med(kind, "sps")
        summary[f"{kind}_max_rss_mb"] = max(x["max_rss_mb"] for x in results[kind])
        summary[f"{kind}_sps_all"] = [x["sps"] for x in results[kind]]
    for kind in TRUSTRL_KINDS:
        if kind not in kinds:
            continue
        split = {key: statistics.median(x["split_s"][key] for x in results[kind]) for key in results[kind][0]["split_s"]}
        summary[f"{kind}_split_s"] = split
        summary[f"{kind}_split_fraction"] = {k: v / sum(split.values()) for k, v in split.items()}
        summary[f"{kind}_update_s_per_batch"] = med(kind, "update_s_per_batch")
    if "peer" in kinds and "trustrl" in kinds:
        summary["peer_update_s_per_batch"] = med("peer", "update_s_per_batch")
        summary["ratio_vs_peer"] = summary["trustrl_sps"] / summary["peer_sps"]
        # The update on its own, policy step then critic fit one after the other, as sb3's train() does them.
        serial = "trustrl_serial" if "trustrl_serial" in kinds else "trustrl"
        summary["update_ratio_peer_over_trustrl"] = summary["peer_update_s_per_batch"] / summary[f"{serial}_update_s_per_batch"]
        summary["memory_ratio_trustrl_over_peer"] = summary["trustrl_max_rss_mb"] / summary["peer_max_rss_mb"]
    if "raw" in kinds and "trustrl" in kinds:
        summary["ratio_vs_raw"] = summary["trustrl_sps"] / summary["raw_sps"]
    # The parallel kinds: 2 worker processes against sb3 and against both cores stepping random actions.
    if "trustrl_workers" in kinds:
        if "peer" in kinds:
            summary["workers_ratio_vs_peer"] = summary["trustrl_workers_sps"] / summary["peer_sps"]
            summary["workers_memory_ratio_over_peer"] = summary["trustrl_workers_max_rss_mb"] / summary["peer_max_rss_mb"]
        if "raw_parallel" in kinds:
            summary["ratio_vs_raw_parallel"] = summary["trustrl_workers_sps"] / summary["raw_parallel_sps"]
        if "raw" in kinds:
            summary["workers_ratio_vs_raw"] = summary["trustrl_workers_sps"] / summary["raw_sps"]
        if "trustrl_workers_async" in kinds and "peer" in kinds:
            summary["async_ratio_vs_peer"] = summary["trustrl_workers_async_sps"] / summary["peer_sps"]
        if "trustrl_workers_async" in kinds and "raw_parallel" in kinds:
            summary["async_ratio_vs_raw_parallel"] = summary["trustrl_workers_async_sps"] / summary["raw_parallel_sps"]
        if "trustrl_ray" in kinds:
            summary["ray_sps"] = summary["trustrl_ray_sps"]
            summary["ray_ratio_vs_workers"] = summary["trustrl_ray_sps"] / summary["trustrl_workers_sps"]
    if "trustrl_serial" in kinds and "trustrl" in kinds:
        summary["overlap_speedup"] = summary["trustrl_sps"] / summary["trustrl_serial_sps"]
    if "raw_gym" in kinds and "trustrl" in kinds:
        summary["ratio_vs_raw_gym"] = summary["trustrl_sps"] / summary["raw_gym_sps"]
    return summary


def print_table(s: dict) -> None:
    print(f"\n{s['preset']}: {s['steps']} env steps per measurement, median of {s['rounds']} alternating rounds")
    for kind in KINDS:
        if f"{kind}_sps" in s:
            print(f"  {kind:22s} {s[f'{kind}_sps']:9.0f} steps/s   peak RSS {s[f'{kind}_max_rss_mb']:6.0f} MB")
    for key in ("ratio_vs_peer", "ratio_vs_raw", "ratio_vs_raw_gym", "overlap_speedup", "update_ratio_peer_over_trustrl",
                "memory_ratio_trustrl_over_peer", "workers_ratio_vs_peer", "ratio_vs_raw_parallel", "workers_ratio_vs_raw",
                "ray_ratio_vs_workers", "workers_memory_ratio_over_peer", "async_ratio_vs_peer",
                "async_ratio_vs_raw_parallel"):
        if key in s:
            print(f"  {key:32s} {s[key]:.2f}")
    serial = "trustrl_serial" if "trustrl_serial_update_s_per_batch" in s else "trustrl"
    if f"{serial}_update_s_per_batch" in s:
        print(f"  update of one batch (policy step + critic fit): trustrl {s[f'{serial}_update_s_per_batch'] * 1e3:.0f} ms", end="")
        if "peer_update_s_per_batch" in s:
            print(f", peer train() {s['peer_update_s_per_batch'] * 1e3:.0f} ms", end="")
        print()
    for kind in TRUSTRL_KINDS:
        if f"{kind}_split_fraction" in s:
            parts = ", ".join(f"{k.removesuffix('_s')} {v:.0%}" for k, v in s[f"{kind}_split_fraction"].items())
            print(f"  {kind} time split: {parts}")


def print_model(model: dict) -> None:
    print(f"\nscale-out model: c = {model['c_s_per_step'] * 1e6:.0f} us per env step, o = "
          f"{model['o_s_per_worker_batch'] * 1e3:.1f} ms per worker per batch, update L(B) = "
          f"{model['learner_a_s'] * 1e3:.1f} ms + {model['learner_b_s_per_transition'] * 1e6:.1f} us x B, "
          f"rest of the learner's loop r(B) = {model['rest_e0_s'] * 1e3:.1f} ms + "
          f"{model['rest_e1_s_per_transition'] * 1e6:.1f} us x B")
    for w, row in model["check"].items():
        print(f"  check, {w} workers: predicted {row['predicted_sps']:.0f}, measured {row['measured_sps']:.0f} steps/s")
    for w, row in model["predicted"].items():
        print(f"  {w:4d} workers x {model['copies_per_worker']} copy x {model['n_steps']} steps: sync "
              f"{row['sync_sps']:8.0f}, async {row['async_sps']:8.0f} steps/s, learner "
              f"{row['learner_us_per_transition']:.1f} us per transition"
              f"{'  (learner-bound)' if row['learner_bound'] else ''}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="walker2d-trpo")
    p.add_argument("--second-preset", default="walker2d-trpo-notebook", help="measured the same way ('' to skip)")
    p.add_argument("--steps", type=int, default=20480, help="env steps per measurement")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--cartpole-steps", type=int, default=20480, help="env steps for the CartPole-v1 row (0: skip)")
    p.add_argument("--no-peer", action="store_true", help="skip sb3-contrib (not installed)")
    p.add_argument("--scaling", action="store_true", help="also time updates vs batch size and width")
    p.add_argument("--json", action="store_true", help="end with one JSON line holding every figure")
    p.add_argument("--kinds", default=",".join(KINDS),
                   help=f"comma-separated subset of {', '.join(KINDS)} ('' with --scaling: only the tables)")
    p.add_argument("--refit", type=Path, metavar="OUTPUT",
                   help="recompute the scale-out model from the JSON line a --scaling --json run ended with, "
                        "measuring nothing")
    p.add_argument("--worker", choices=KINDS, help=argparse.SUPPRESS)
    p.add_argument("--n-envs", type=int, help=argparse.SUPPRESS)
    p.add_argument("--set", dest="overrides", action="append", default=[], help=argparse.SUPPRESS)
    args = p.parse_args()

    if args.worker:
        if args.worker in ("raw", "raw_gym"):
            res = worker_raw(args.preset, args.steps, gym_vector=args.worker == "raw_gym", n_envs=args.n_envs)
        elif args.worker == "raw_parallel":
            res = worker_raw_parallel(args.preset, args.steps)
        elif args.worker in TRUSTRL_KINDS:
            res = worker_trustrl(args.preset, args.steps, args.worker, tuple(args.overrides))
        else:
            res = worker_peer(args.preset, args.steps)
        print(json.dumps(res))
        return

    if args.refit:
        saved = json.loads(args.refit.read_text().strip().splitlines()[-1])
        preset = saved.get("preset", args.preset)
        print_model(scaleout_model(saved["workers_table"], learner_cost(saved["learner_table"], preset)))
        return
    unknown = set(args.kinds.split(",")) - set(KINDS) - {""}
    if unknown:
        p.error(f"unknown kinds {sorted(unknown)}; choose from {', '.join(KINDS)}")
    kinds = tuple(k for k in KINDS if k in args.kinds.split(",") and not (args.no_peer and k == "peer"))
    out: dict = {}
    if kinds:
        walker = measure(args.preset, args.steps, args.rounds, kinds)
        print_table(walker)
        out.update({k: v for k, v in walker.items()})
    if kinds and args.second_preset:
        second = measure(args.second_preset, args.steps, args.rounds, kinds)
        print_table(second)
        out["second"] = second
    if kinds and args.cartpole_steps:
        cart = measure("cartpole-trpo", args.cartpole_steps, args.rounds, kinds)
        print_table(cart)
        out["cartpole"] = cart
    if args.scaling:
        presets = tuple(p for p in (args.preset, args.second_preset) if p)
        out["learner_table"] = learner_table(presets, threads=(1, 2))
        print("\nlearner time of one update against batch size (benchmarks/learner.py, median of 5):")
        for row in out["learner_table"]:
            print(f"  {row['preset']:24s} {row['threads']} thread(s), batch {row['batch']:6d}: policy step "
                  f"{row['policy_s'] * 1e3:7.1f} ms, critic fit {row['critic_s'] * 1e3:7.1f} ms, "
                  f"{row['us_per_transition']:5.1f} us per transition")
        print(f"\ntraining steps/s against workers and batch size ({args.preset}, 4 copies, critic fit "
              "not overlapped so that the phases add up):")
        out["workers_table"] = workers_table(args.preset, args.steps)
        for row in out["workers_table"].values():
            print(f"  batch {row['batch']:6d}, workers {row['workers']}: {row['sps']:8.0f} steps/s, "
                  f"sampling {row['sampling_s'] / row['seconds']:4.0%} of the time, peak RSS {row['max_rss_mb']:5.0f} MB")
        model = out["scaleout_model"] = scaleout_model(out["workers_table"], learner_cost(out["learner_table"], args.preset))
        print_model(model)
    if args.json:
        print(json.dumps(out, default=lambda x: x if not isinstance(x, float) or math.isfinite(x) else None))


if __name__ == "__main__":
    main()

"""The learner on its own: one update's policy step and critic fit, timed and profiled op by op.

    .venv/bin/python benchmarks/learner.py                          # the batch-size table, walker2d-trpo
    .venv/bin/python benchmarks/learner.py --preset walker2d-trpo-notebook --batches 2048 --profile
    .venv/bin/python benchmarks/learner.py --set algo.fvp_samples=0 --set critic.minibatches=0 --json

Batches come from the preset's own env and policy (a few updates in, so the policy is not the
initial one), advantages from its critic; then the update runs ``--repeats`` times from the same
starting state and the median of each part is reported, in milliseconds and in microseconds per
transition. ``--profile`` adds torch.profiler's table of the ops that took the time, for the policy
step and the critic fit separately. One thread unless ``--threads`` says otherwise.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time


def make_learner(preset: str, batch: int, overrides: list[str], seed: int = 0):
    """(algo, batch with advantages): a ``batch``-step batch after two updates on the preset (``batch``
    rounded down to whole steps of its copies)."""
    import torch

    from trustrl import config
    from trustrl.advantages import compute_advantages
    from trustrl.algos import ALGORITHMS, SeparateCriticAlgorithm, make_algorithm
    from trustrl.envs import make_vec_env
    from trustrl.nets import make_critic, make_policy
    from trustrl.normalization import ObsNormalizer, RewardScaler
    from trustrl.samplers.vector import VectorSampler

    cfg = config.load(preset, overrides)
    if not issubclass(ALGORITHMS[cfg.algo.name], SeparateCriticAlgorithm):
        sys.exit(f"error: {preset} trains {cfg.algo.name}, whose critic is not fitted apart from the policy step; "
                 f"this benchmark times {' and '.join(n for n, a in ALGORITHMS.items() if issubclass(a, SeparateCriticAlgorithm))}")
    envs = make_vec_env(cfg.env)
    obs_space, act_space = envs.single_observation_space, envs.single_action_space
    torch.manual_seed(seed)
    policy, critic = make_policy(obs_space, act_space, cfg.policy), make_critic(obs_space, cfg.critic)
    algo = make_algorithm(cfg, policy, critic, torch.Generator().manual_seed(seed))
    sampler = VectorSampler(envs, ObsNormalizer(obs_space.shape), RewardScaler(cfg.env.n_envs, cfg.algo.gamma),
                            max(1, batch // cfg.env.n_envs), seed)
    for _ in range(2):  # a policy and critic a little way into training
        data = sampler.collect(policy)
        compute_advantages(data, critic, cfg.algo.gamma, cfg.algo.gae_lambda, cfg.algo.normalize_advantage)
        algo.update(data)
    data = sampler.collect(policy)
    compute_advantages(data, critic, cfg.algo.gamma, cfg.algo.gae_lambda, cfg.algo.normalize_advantage)
    envs.close()
    return algo, data


def time_update(algo, data, repeats: int) -> dict:
    """Median seconds of the policy step and of the critic fit, each from the same starting state."""
    start = copy.deepcopy((algo.policy.state_dict(), algo.critic_fitter.critic.state_dict(), algo.state_dict(),
                           algo.generator.get_state()))
    policy_s, critic_s = [], []
    for _ in range(repeats + 1):  # the first is a warm-up
        algo.policy.load_state_dict(start[0])
        algo.critic_fitter.critic.load_state_dict(start[1])
        algo.load_state_dict(copy.deepcopy(start[2]))
        algo.generator.set_state(start[3])
        t0 = time.perf_counter()
        algo.update_policy(data)
        t1 = time.perf_counter()
        algo.fit_critic(data)
        t2 = time.perf_counter()
        policy_s.append(t1 - t0)
        critic_s.append(t2 - t1)
    return {"policy_s": statistics.median(policy_s[1:]), "critic_s": statistics.median(critic_s[1:])}


def profile_update(algo, data, rows: int = 12) -> str:
    from torch.profiler import ProfilerActivity, profile

    tables = []
    for name, part in (("policy step", algo.update_policy), ("critic fit", algo.fit_critic)):
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            part(data)
        tables.append(f"{name}:\n" + prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows))
    return "\n".join(tables)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", action="append", help="preset (repeatable; default walker2d-trpo)")
    p.add_argument("--batches", type=int, nargs="+", default=[2048, 8192, 32768], help="transitions per update")
    p.add_argument("--set", dest="overrides", action="append", default=[], help="config override, as for train")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1, help="torch threads of the learner")
    p.add_argument("--profile", action="store_true", help="also print the ops that took the time")
    p.add_argument("--json", action="store_true", help="end with one JSON line holding every figure")
    args = p.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    out: dict = {"threads": args.threads, "overrides": args.overrides, "rows": []}
    print(f"learner time per update, {args.threads} thread(s), median of {args.repeats}"
          + (f", with {' '.join(args.overrides)}" if args.overrides else ""), file=sys.stderr)
    for preset in args.preset or ["walker2d-trpo"]:
        for batch in args.batches:
            algo, data = make_learner(preset, batch, args.overrides)
            t = time_update(algo, data, args.repeats)
            n = data.n_steps
            row = {"preset": preset, "batch": n, **t, "us_per_transition": (t["policy_s"] + t["critic_s"]) / n * 1e6}
            out["rows"].append(row)
            print(f"  {preset:24s} batch {n:6d}: policy step {t['policy_s'] * 1e3:7.1f} ms, critic fit "
                  f"{t['critic_s'] * 1e3:7.1f} ms, {row['us_per_transition']:6.1f} us per transition", flush=True)
            if args.profile:
                print(profile_update(algo, data))
    if args.json:
        print(json.dumps(out))


if __name__ == "__main__":
    main()

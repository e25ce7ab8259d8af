"""The numpy actor's forward pass: row by row (what samplers use) against one product over rows padded to a
fixed count, for the copies one process steps.

    .venv/bin/python benchmarks/actor.py [--preset walker2d-trpo] [--pad 16]

Row by row gives each copy the same bits whatever its neighbours (``trustrl.samplers.actor``). A product of
one fixed shape runs the same kernel whatever the share, so it could too, if every row position computes
alike: the script checks that (position independence) and whether the padded product gives the one-row
bits, then times both for 1 to 32 rows.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def padded_forward(actor, obs: np.ndarray, pad: int) -> np.ndarray:
    """The actor's output for ``obs`` from one product over ``pad`` rows (zeros below the real ones)."""
    x = np.zeros((pad, obs.shape[1]), np.float32)
    x[: len(obs)] = obs
    *hidden, (w_out, b_out) = actor.layers
    for w, b in hidden:
        x = x @ w
        x += b
        np.maximum(x, 0.0, out=x) if actor.relu else np.tanh(x, out=x)
    out = x @ w_out
    out += b_out
    return out[: len(obs)]


def per_call_us(fn, *args, calls: int = 3000) -> float:
    for _ in range(200):
        fn(*args)
    start = time.perf_counter()
    for _ in range(calls):
        fn(*args)
    return (time.perf_counter() - start) / calls * 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="walker2d-trpo")
    p.add_argument("--pad", type=int, default=32, help="rows of the fixed-shape product")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()

    import torch

    from trustrl import config
    from trustrl.envs import make_vec_env
    from trustrl.nets import make_policy, numpy_actor

    cfg = config.load(args.preset)
    envs = make_vec_env(cfg.env)
    torch.manual_seed(0)
    actor = numpy_actor(make_policy(envs.single_observation_space, envs.single_action_space, cfg.policy))
    envs.close()
    rng = np.random.default_rng(0)
    obs = rng.standard_normal((args.pad, actor.layers[0][0].shape[0])).astype(np.float32)
    one_row = np.concatenate([actor.forward(obs[i : i + 1]) for i in range(args.pad)])
    same_bits = all(np.array_equal(padded_forward(actor, obs[:k], args.pad), one_row[:k]) for k in range(1, args.pad + 1))
    positions = []
    for row in range(args.pad):
        x = np.zeros_like(obs)
        x[row] = obs[0]
        positions.append(padded_forward(actor, x, args.pad)[row])
    position_independent = all(np.array_equal(positions[0], other) for other in positions)
    out = {"preset": args.preset, "pad": args.pad, "padded_gives_one_row_bits": same_bits,
           "padded_position_independent": position_independent, "rows": []}
    print(f"{args.preset}: padded to {args.pad} rows: the one-row bits {same_bits}; every row position alike "
          f"{position_independent}")
    for k in (1, 2, 4, 8, 16, 32):
        if k > args.pad:
            break
        row = {"rows": k, "row_by_row_us": per_call_us(actor.forward, obs[:k]),
               "padded_us": per_call_us(padded_forward, actor, obs[:k], args.pad),
               "one_product_us": per_call_us(padded_forward, actor, obs[:k], k)}
        out["rows"].append(row)
        print(f"  {k:3d} rows: row by row {row['row_by_row_us']:6.1f} us, padded to {args.pad} "
              f"{row['padded_us']:6.1f} us, one product of {k} rows {row['one_product_us']:6.1f} us")
    if args.json:
        print(json.dumps(out))


if __name__ == "__main__":
    main()

"""Learning within a step budget (not a timed test): the shipped presets must solve their envs.

Each run trains a bundled preset with its own ``run.total_steps`` (the budget)
and evaluates the final (``last``) policy for 10 deterministic episodes.
"""

import pytest

from trustrl import config
from trustrl.api import evaluate
from trustrl.run import train

# preset -> (deterministic eval mean to reach, largest step budget allowed)
TARGETS = {
    "cartpole-trpo": (475, 100_000),
    "cartpole-npg": (475, 100_000),
    "cartpole-ppo": (475, 100_000),
    "cartpole-a2c": (475, 100_000),
    "cartpole-reinforce": (400, 100_000),
    "pendulum-trpo": (-300, 150_000),
    "pendulum-ppo": (-300, 100_000),
    "cartpole-trpo-vine": (475, 200_000),  # every branch step counts toward the budget
    "pendulum-trpo-vine": (-300, 150_000),
}
RUNS = [(preset, seed) for preset in TARGETS for seed in (0, 1)] + [("cartpole-trpo", 2)]


def _train_and_eval(tmp_path, preset, seed, overrides=()):
    cfg = config.load(preset, [f"run.seed={seed}", *overrides])
    result = train(cfg, tmp_path / f"{preset}-{seed}", progress=False)
    return cfg, result, evaluate(result.run_dir, episodes=10, checkpoint="last")


@pytest.mark.parametrize("preset, seed", RUNS)
def test_preset_reaches_its_target_within_its_step_budget(tmp_path, preset, seed):
    target, budget = TARGETS[preset]
    cfg, result, ev = _train_and_eval(tmp_path, preset, seed)
    assert cfg.run.total_steps <= budget and result.steps <= budget
    assert ev.deterministic and ev.mean_return >= target, ev.returns


@pytest.mark.parametrize("seed", [1, 2])
def test_asynchronous_trpo_solves_cartpole_within_the_same_budget(tmp_path, seed):
    """Every batch one update stale, corrected by pi_theta / beta: CartPole is still solved in 100k steps."""
    target, budget = TARGETS["cartpole-trpo"]
    cfg, result, ev = _train_and_eval(tmp_path, "cartpole-trpo", seed, ["run.async_sampling=true"])
    assert result.steps <= budget
    assert ev.deterministic and ev.mean_return >= target, ev.returns

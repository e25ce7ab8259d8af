"""Learning within a step budget (not a timed test): the shipped presets must solve their envs."""

import pytest

from trustrl import config
from trustrl.evaluate import evaluate
from trustrl.trainer import train


def _train_and_eval(tmp_path, preset, seed, overrides=()):
    cfg = config.load(preset, [f"run.seed={seed}", *overrides])
    result = train(cfg, tmp_path / f"{preset}-{seed}", progress=False)
    return cfg, result, evaluate(result.run_dir, episodes=10, tag="last")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cartpole_trpo_reaches_475_within_100k_steps(tmp_path, seed):
    cfg, result, ev = _train_and_eval(tmp_path, "cartpole-trpo", seed)
    assert result.steps <= 100_000
    assert ev.deterministic and ev.mean_return >= 475, ev.returns


def test_pendulum_trpo_reaches_minus_300_within_its_budget(tmp_path):
    cfg, result, ev = _train_and_eval(tmp_path, "pendulum-trpo", 0)
    assert result.steps <= cfg.run.total_steps
    assert ev.mean_return >= -300, ev.returns

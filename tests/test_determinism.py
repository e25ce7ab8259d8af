"""Same seed, same config -> byte-identical metrics.csv; save -> load -> same actions."""

import numpy as np
import torch

from trustrl import config
from trustrl.api import load as load_policy
from trustrl.run import train


def _train(run_dir, preset, seed, steps):
    cfg = config.load(preset, [f"run.seed={seed}", f"run.total_steps={steps}"])
    train(cfg, run_dir, progress=False)
    return (run_dir / "metrics.csv").read_text()


def test_same_seed_gives_identical_metrics(tmp_path):
    a = _train(tmp_path / "a", "pendulum-trpo", 5, 4096)
    b = _train(tmp_path / "b", "pendulum-trpo", 5, 4096)
    c = _train(tmp_path / "c", "pendulum-trpo", 6, 4096)
    assert a == b
    assert a != c


def test_loaded_policy_acts_deterministically_with_frozen_statistics(tmp_path):
    _train(tmp_path / "p", "pendulum-trpo", 0, 2048)
    loaded = load_policy(tmp_path / "p")
    again = load_policy(tmp_path / "p")
    obs = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    for o in obs:
        np.testing.assert_array_equal(loaded.act(o), again.act(o))
    # normalisation is frozen: acting does not move the statistics
    mean = loaded.obs_norm.rms.mean.copy()
    loaded.act(obs[0])
    np.testing.assert_array_equal(mean, loaded.obs_norm.rms.mean)
    assert loaded.obs_norm.rms.count > 2048 - 1
    with torch.no_grad():
        dist = loaded.policy(torch.from_numpy(loaded.obs_norm.normalize(obs)))
    np.testing.assert_allclose(dist.mean.numpy()[0], loaded.act(obs[0]), rtol=1e-5, atol=1e-6)


def test_async_workers_give_the_same_run_as_sync(tmp_path):
    """One process per env copy changes where the simulation runs, not a single number."""
    sync = _train(tmp_path / "sync", "pendulum-trpo", 3, 4096)
    cfg = config.load("pendulum-trpo", ["run.seed=3", "run.total_steps=4096", 'env.vectorization="async"'])
    train(cfg, tmp_path / "async", progress=False)
    assert (tmp_path / "async" / "metrics.csv").read_text() == sync


def test_overlapping_the_critic_fit_changes_no_number(tmp_path):
    """The critic fitted in a background thread beside the policy step and the next collection: same metrics,
    same checkpoints (the policy step draws its Fisher rows from a stream the critic does not touch)."""
    import json

    runs = {}
    for overlap in (True, False):
        cfg = config.load("pendulum-trpo", ["run.seed=4", "run.total_steps=8192", "run.checkpoint_every=3",
                                            "algo.fvp_samples=100", "critic.minibatches=4",
                                            f"run.overlap_critic={str(overlap).lower()}"])
        train(cfg, tmp_path / str(overlap), progress=False)
        runs[overlap] = tmp_path / str(overlap)
    assert (runs[True] / "metrics.csv").read_text() == (runs[False] / "metrics.csv").read_text()
    for tag in ("last", "best"):
        a = json.loads((runs[True] / "checkpoints" / f"{tag}.json").read_text())
        b = json.loads((runs[False] / "checkpoints" / f"{tag}.json").read_text())
        assert a["weights_sha256"] == b["weights_sha256"] and a["obs_norm"] == b["obs_norm"] and a["step"] == b["step"]

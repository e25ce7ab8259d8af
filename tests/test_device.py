"""The learner on a GPU (``run.device = "cuda"``): the same update as on the CPU, and a run that loads anywhere.

Skipped where torch sees no CUDA device (every CI machine); run on a GPU machine with
``python -m pytest tests/test_device.py``.
"""

import copy

import numpy as np
import pytest
import torch

from trustrl import config
from trustrl.advantages import compute_advantages
from trustrl.algos import make_algorithm
from trustrl.api import evaluate
from trustrl.envs import make_vec_env
from trustrl.nets import make_critic, make_policy
from trustrl.normalization import ObsNormalizer, RewardScaler
from trustrl.run import train
from trustrl.samplers.vector import VectorSampler

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def _moved(batch, device: str):
    """A copy of ``batch`` with every tensor on ``device`` (the lists of episode returns as they are)."""
    batch = copy.copy(batch)
    for name, value in vars(batch).items():
        if isinstance(value, torch.Tensor):
            setattr(batch, name, value.to(device))
    return batch


@pytest.mark.parametrize("preset", ["cartpole-trpo", "walker2d-trpo"])
def test_a_trpo_update_on_the_gpu_is_the_cpu_update_to_rounding(preset):
    """In float64 the two devices differ by rounding only: the same step, the same fitted critic."""
    cfg = config.load(preset, ["run.n_steps=128"])
    envs = make_vec_env(cfg.env)
    obs_space, act_space = envs.single_observation_space, envs.single_action_space
    torch.manual_seed(0)
    policy, critic = make_policy(obs_space, act_space, cfg.policy).double(), make_critic(obs_space, cfg.critic).double()
    sampler = VectorSampler(envs, ObsNormalizer(obs_space.shape), RewardScaler(cfg.env.n_envs, 0.99), 128, 0)
    batch = sampler.collect(policy)
    for name in ("obs", "rewards", "final_obs", "last_obs", "log_probs") + (("actions",) if cfg.env.id != "CartPole-v1" else ()):
        setattr(batch, name, getattr(batch, name).double())
    compute_advantages(batch, critic, cfg.algo.gamma, cfg.algo.gae_lambda, True)
    results = {}
    for device in ("cpu", "cuda"):
        p, c = copy.deepcopy(policy).to(device), copy.deepcopy(critic).to(device)
        algo = make_algorithm(cfg, p, c, torch.Generator().manual_seed(0))
        stats = algo.update(_moved(batch, device))
        results[device] = (stats, [t.detach().cpu() for t in (*p.parameters(), *c.parameters())])
    sampler.close()
    (cpu_stats, cpu_weights), (gpu_stats, gpu_weights) = results["cpu"], results["cuda"]
    assert gpu_stats["line_search_accepted"] == cpu_stats["line_search_accepted"]
    assert gpu_stats["kl"] == pytest.approx(cpu_stats["kl"], rel=1e-6)
    for a, b in zip(cpu_weights, gpu_weights):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-8)


def test_training_on_the_gpu_learns_cartpole_and_its_checkpoint_plays_on_the_cpu(tmp_path):
    cfg = config.load("cartpole-trpo", ["run.total_steps=40960", "run.eval_every=0", 'run.device="cuda"'])
    result = train(cfg, tmp_path / "run", progress=False)
    assert result.steps >= 40960
    returns = evaluate(tmp_path / "run", checkpoint="last", episodes=5)
    assert np.isfinite(returns.mean_return) and returns.mean_return > 150

"""Reset seeds: neighbouring run seeds share no env copy's episodes, nor evaluation or collected episodes."""

import numpy as np
import pytest

from trustrl import config
from trustrl.datasets.collect import _RandomBehaviour, _roll_out
from trustrl.envs import make_env
from trustrl.episodes import episode_seeds
from trustrl.normalization import ObsNormalizer, RewardScaler
from trustrl.run.evaluation import training_eval_seeds
from trustrl.samplers.placement import make_pool
from trustrl.samplers.vector import VectorSampler
from trustrl.seeding import COLLECTION, ENV_COPIES, EPISODES, TRAINING_EVAL, reset_seed, reset_seeds


def _sampler(seed: int, n_envs: int = 8, workers: int = 1) -> VectorSampler:
    cfg = config.EnvConfig(id="CartPole-v1", n_envs=n_envs)
    pool = make_pool(cfg, workers, "local" if workers == 1 else "process")
    return VectorSampler(pool, ObsNormalizer(pool.observation_space.shape), RewardScaler(n_envs, 0.99), 16, seed)


def _rows(obs: np.ndarray) -> set[tuple[float, ...]]:
    return {tuple(row) for row in obs}


@pytest.mark.parametrize("seed", [0, 41])
def test_the_start_states_of_seeds_s_and_s_plus_1_share_no_copy(seed):
    """Copy i+1 of seed s used to start where copy i of seed s+1 did (both reset with s + i + 1)."""
    this, next_ = _sampler(seed), _sampler(seed + 1)
    assert len(_rows(this.raw_obs)) == 8 and len(_rows(next_.raw_obs)) == 8
    assert not _rows(this.raw_obs) & _rows(next_.raw_obs)
    # a restart of every copy (a run resumed where the envs cannot be captured) starts elsewhere again
    first = _rows(this.raw_obs)
    this._fresh_episodes()
    next_._fresh_episodes()
    assert not _rows(this.raw_obs) & _rows(next_.raw_obs) and not _rows(this.raw_obs) & first
    this.close()
    next_.close()


def test_a_copys_start_state_is_the_same_wherever_it_runs():
    local, spread = _sampler(3), _sampler(3, workers=2)
    assert np.array_equal(local.raw_obs, spread.raw_obs)
    local.close()
    spread.close()


def test_reset_seeds_are_pure_32_bit_and_distinct_over_seeds_copies_and_streams():
    assert reset_seed(5, ENV_COPIES, 3) == reset_seed(5, ENV_COPIES, 3)
    seen = {}
    for stream in (ENV_COPIES, TRAINING_EVAL, EPISODES, COLLECTION):
        for seed in range(40):
            for i, value in enumerate(reset_seeds(seed, stream, range(32))):
                assert 0 <= value < 2**32
                assert value not in seen, f"{(stream, seed, i)} meets {seen[value]}"
                seen[value] = (stream, seed, i)
    # a fresh start of the copies (epoch) is a stream of its own too
    assert not set(reset_seeds(0, ENV_COPIES, range(8), epoch=1)) & set(reset_seeds(0, ENV_COPIES, range(8)))


def test_evaluation_and_collection_episodes_of_neighbouring_seeds_are_apart():
    assert not set(training_eval_seeds(0, 10)) & set(training_eval_seeds(1, 10))
    assert not set(episode_seeds(1_000_000, 10)) & set(episode_seeds(1_000_001, 10))
    assert episode_seeds(3, 5) == episode_seeds(3, 8)[:5]  # more episodes extend the same list
    env = make_env(config.EnvConfig(id="CartPole-v1"))
    starts = []
    for seed in (0, 1):
        buffers, _ = _roll_out(env, _RandomBehaviour(env.action_space), 4, None, seed)
        assert [b.seed for b in buffers] == reset_seeds(seed, COLLECTION, range(4))
        starts.append({tuple(b.observations[0]) for b in buffers})
    env.close()
    assert len(starts[0]) == 4 and not starts[0] & starts[1]

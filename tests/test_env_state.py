"""Env snapshot -> JSON -> restore into a second env continues bit-for-bit (resume, vine branches)."""

import json

import gymnasium as gym
import numpy as np
import pytest

from trustrl.config import EnvConfig
from trustrl.envs import can_snapshot, make_env, make_vec_env, restore, snapshot
from trustrl.errors import ConfigError

WARMUP_STEPS = 50
REPLAY_STEPS = 300


@pytest.fixture(autouse=True)
def _mujoco_log_in_tmp(tmp_path, monkeypatch):
    """MuJoCo writes MUJOCO_LOG.TXT into the working directory on model warnings."""
    monkeypatch.chdir(tmp_path)


def _actions(space: gym.Space, n: int, seed: int) -> list:
    rng = np.random.default_rng(seed)
    if isinstance(space, gym.spaces.Discrete):
        return [int(a) for a in rng.integers(space.n, size=n)]
    return [rng.uniform(space.low, space.high).astype(space.dtype) for _ in range(n)]


def _play(env: gym.Env, actions: list) -> list[tuple]:
    """Step through ``actions``, resetting (unseeded) when an episode ends; one record per step and reset."""
    records = []
    for action in actions:
        obs, reward, terminated, truncated, _ = env.step(action)
        records.append(("step", obs.copy(), reward, terminated, truncated))
        if terminated or truncated:
            obs, _ = env.reset()
            records.append(("reset", obs.copy()))
    return records


def _assert_same(expected: list[tuple], actual: list[tuple]) -> None:
    assert len(actual) == len(expected)
    for i, (want, got) in enumerate(zip(expected, actual)):
        assert want[0] == got[0], f"record {i}"
        np.testing.assert_array_equal(got[1], want[1], err_msg=f"record {i}")
        assert got[1].dtype == want[1].dtype
        assert got[2:] == want[2:], f"record {i}"


def _assert_plain_json(value) -> None:
    """No numpy scalars or tuples hiding in the snapshot (np.float64 would pass json.dumps)."""
    if isinstance(value, dict):
        assert all(type(key) is str for key in value)
        for item in value.values():
            _assert_plain_json(item)
    elif isinstance(value, list):
        for item in value:
            _assert_plain_json(item)
    else:
        assert value is None or type(value) in (bool, int, float, str), type(value)


def _time_limit(snap: dict) -> dict:
    (record,) = [w for w in snap["wrappers"] if w["wrapper"] == "TimeLimit"]
    return record


# Random actions topple the walkers within ~10-45 steps, so their limits sit near the
# typical episode length: the replay then has both terminations and truncations.
CASES = [
    ("Walker2d-v5", 20),
    ("Hopper-v5", 20),
    ("Ant-v5", 40),
    ("Humanoid-v5", 20),
    ("CartPole-v1", 20),
    ("Pendulum-v1", 120),
    ("MountainCar-v0", 120),
    ("MountainCarContinuous-v0", 120),
    ("Acrobot-v1", 120),
]


@pytest.mark.parametrize("env_id, max_steps", CASES)
def test_restored_env_continues_bit_for_bit(env_id, max_steps):
    cfg = EnvConfig(id=env_id, max_episode_steps=max_steps)
    env = make_env(cfg)
    env.reset(seed=0)
    _play(env, _actions(env.action_space, WARMUP_STEPS, seed=1))

    snap = snapshot(env)
    _assert_plain_json(snap)
    snap = json.loads(json.dumps(snap))
    assert _time_limit(snap)["elapsed_steps"] > 0, "snapshot taken at an episode start checks no counter"

    actions = _actions(env.action_space, REPLAY_STEPS, seed=2)
    expected = _play(env, actions)
    assert any(r[0] == "step" and r[4] and not r[3] for r in expected), "no time-limit truncation in the replay"
    assert any(r[0] == "reset" for r in expected)

    other = make_env(cfg)
    other.reset(seed=123)
    restore(other, snap)
    restored = snapshot(other)
    _assert_same(expected, _play(other, actions))
    assert restored == snap


def test_restore_into_an_env_never_reset():
    cfg = EnvConfig(id="CartPole-v1", max_episode_steps=30)
    env = make_env(cfg)
    env.reset(seed=0)
    _play(env, _actions(env.action_space, 7, seed=1))
    snap = snapshot(env)
    actions = _actions(env.action_space, 60, seed=2)
    expected = _play(env, actions)

    fresh = make_env(cfg)
    restore(fresh, snap)
    _assert_same(expected, _play(fresh, actions))


def test_vec_env_round_trip_including_final_obs():
    cfg = EnvConfig(id="Walker2d-v5", n_envs=2, max_episode_steps=20)
    envs = make_vec_env(cfg)
    envs.reset(seed=0)
    rng = np.random.default_rng(3)
    space = envs.action_space
    for _ in range(37):
        envs.step(rng.uniform(space.low, space.high).astype(np.float32))
    snaps = json.loads(json.dumps(envs.snapshot()))
    assert len(snaps) == 2 and snaps[0] != snaps[1]
    actions = [rng.uniform(space.low, space.high).astype(np.float32) for _ in range(100)]

    def run(vec):
        out = []
        for action in actions:
            obs, rewards, terminated, truncated, info = vec.step(action)
            final = info.get("final_obs", np.full(2, None, dtype=object))
            out.append((obs, rewards, terminated, truncated, final))
        return out

    expected = run(envs)
    assert any(step[3].any() for step in expected), "no truncation in the continuation"
    assert any(step[2].any() for step in expected), "no termination in the continuation"
    fresh = make_vec_env(cfg)
    fresh.reset(seed=9)
    fresh.restore(snaps)
    for want, got in zip(expected, run(fresh), strict=True):
        for a, b in zip(want[:4], got[:4]):
            np.testing.assert_array_equal(b, a)
        for a, b in zip(want[4], got[4]):
            assert (a is None) == (b is None)
            if a is not None:
                np.testing.assert_array_equal(b, a)

    with pytest.raises(ConfigError, match="1 env snapshots into 2 copies"):
        fresh.restore(snaps[:1])


@pytest.mark.parametrize(
    "source, target",
    [("CartPole-v1", "Pendulum-v1"), ("Walker2d-v5", "CartPole-v1"), ("Humanoid-v5", "HumanoidStandup-v5")],
)
def test_snapshot_of_another_env_is_refused(source, target):
    env = make_env(EnvConfig(id=source))
    env.reset(seed=0)
    other = make_env(EnvConfig(id=target))
    other.reset(seed=0)
    before = snapshot(other)
    with pytest.raises(ConfigError) as err:
        restore(other, snapshot(env))
    assert source in str(err.value) and target in str(err.value)
    assert snapshot(other) == before


def test_other_time_limit_or_truncated_physics_is_refused_and_changes_nothing():
    env = make_env(EnvConfig(id="Hopper-v5", max_episode_steps=50))
    env.reset(seed=0)
    env.step(env.action_space.sample())
    snap = snapshot(env)

    longer = make_env(EnvConfig(id="Hopper-v5", max_episode_steps=60))
    longer.reset(seed=1)
    with pytest.raises(ConfigError, match="time limit 50"):
        restore(longer, snap)

    same = make_env(EnvConfig(id="Hopper-v5", max_episode_steps=50))
    same.reset(seed=1)
    before = snapshot(same)
    with pytest.raises(ConfigError, match="physics"):
        restore(same, {**snap, "physics": snap["physics"][:-1]})
    assert snapshot(same) == before


class _Counter(gym.Env):
    """Not registered, keeps its episode in a plain attribute: no way to know it is captured."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.count = 0
        return np.zeros(1, np.float32), {}

    def step(self, action):
        self.count += 1
        return np.full(1, self.count, np.float32), 0.0, False, False, {}


@pytest.mark.parametrize(
    "build, name",
    [
        (lambda: _Counter(), "_Counter"),
        (lambda: gym.wrappers.RecordEpisodeStatistics(gym.make("CartPole-v1")), "CartPole-v1"),
        (lambda: gym.make_vec("CartPole-v1", num_envs=2, vectorization_mode="sync"), "CartPole-v1"),
    ],
    ids=["custom-env", "unknown-wrapper", "gym-vector-env"],
)
def test_uncapturable_env_is_named_in_the_error(build, name):
    env = build()
    env.reset(seed=0)
    assert not can_snapshot(env)
    with pytest.raises(ConfigError, match=f"{name}: its state cannot be captured") as err:
        snapshot(env)
    assert "vine sampling is unavailable" in str(err.value)


def test_can_snapshot_for_supported_envs():
    env = make_env(EnvConfig(id="Pendulum-v1"))
    assert can_snapshot(env)

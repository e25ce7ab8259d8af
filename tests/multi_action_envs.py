"""Two tiny envs with vector actions; importing this module registers them with gymnasium.

Each step shows a random target and pays the fraction of action coordinates that match it, 10 steps an
episode (a return of 10 at best):

- ``MatchDigits-v0``: MultiDiscrete actions with sizes (3, 4, 2) and starts (-1, 0, 5) (kwarg ``start``); the
  target is shown one-hot per coordinate. A uniform policy earns (1/3 + 1/4 + 1/2) / 3 = 0.36 a step.
- ``MatchBits-v0``: MultiBinary(4) actions; the target bits are shown as -1/+1. A uniform policy earns 0.5.
"""

import gymnasium as gym
import numpy as np


class MatchDigits(gym.Env):
    SIZES = (3, 4, 2)
    START = (-1, 0, 5)
    observation_space = gym.spaces.Box(0.0, 1.0, (sum(SIZES),), np.float32)

    def __init__(self, start=START):
        self.start = np.asarray(start)
        self.action_space = gym.spaces.MultiDiscrete(self.SIZES, start=self.start)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self._new_target(), {}

    def step(self, action):
        action = np.asarray(action)
        if action.shape != (3,) or not self.action_space.contains(action):
            raise ValueError(f"action {action!r} is not in {self.action_space}")
        reward = float(np.mean(action == self.target))
        return self._new_target(), reward, False, False, {}

    def _new_target(self):
        index = [int(self.np_random.integers(n)) for n in self.SIZES]
        self.target = np.asarray(index) + self.start
        obs = np.zeros(sum(self.SIZES), np.float32)
        obs[np.cumsum((0, *self.SIZES[:-1])) + index] = 1.0
        return obs

    def snapshot_state(self):
        return {"target": self.target.tolist(), "rng": self.np_random.bit_generator.state}

    def restore_state(self, state):
        self.target = np.asarray(state["target"])
        self.np_random.bit_generator.state = state["rng"]


class MatchBits(gym.Env):
    observation_space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)

    def __init__(self, shape=(4,)):
        self.action_space = gym.spaces.MultiBinary(list(shape))  # another shape: to see it refused

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self._new_target(), {}

    def step(self, action):
        action = np.asarray(action)
        if not self.action_space.contains(action):
            raise ValueError(f"action {action!r} is not in {self.action_space}")
        reward = float(np.mean(action == self.target))
        return self._new_target(), reward, False, False, {}

    def _new_target(self):
        self.target = self.np_random.integers(2, size=4)
        return (2.0 * self.target - 1.0).astype(np.float32)

    def snapshot_state(self):
        return {"target": self.target.tolist(), "rng": self.np_random.bit_generator.state}

    def restore_state(self, state):
        self.target = np.asarray(state["target"])
        self.np_random.bit_generator.state = state["rng"]


gym.register("MatchDigits-v0", entry_point="multi_action_envs:MatchDigits", max_episode_steps=10)
gym.register("MatchBits-v0", entry_point="multi_action_envs:MatchBits", max_episode_steps=10)

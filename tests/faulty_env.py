"""An env that misbehaves once, on cue: importing this module registers ``Faulty-v0``.

A point pushed along a line (Box observation and action, reward -x^2, 50 steps an episode). Each env copy
counts its own steps; at step ``at`` it returns a NaN or infinite reward or observation, or raises.
"""

import gymnasium as gym
import numpy as np

FAULTS = ("none", "nan_reward", "inf_reward", "nan_obs", "inf_obs", "raise")


class Faulty(gym.Env):
    observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float64)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def __init__(self, fault="none", at=10**9):
        assert fault in FAULTS, fault
        self.fault, self.at, self.steps, self.x = fault, at, 0, 0.0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x = float(self.np_random.uniform(-1.0, 1.0))
        return np.array([self.x, 1.0]), {}

    def step(self, action):
        self.steps += 1
        self.x = float(np.clip(self.x + 0.2 * float(action[0]), -3.0, 3.0))
        obs, reward = np.array([self.x, 1.0]), -self.x**2
        if self.steps == self.at:
            if self.fault == "raise":
                raise RuntimeError("the simulator broke")
            if self.fault.endswith("reward"):
                reward = np.nan if self.fault == "nan_reward" else np.inf
            elif self.fault.endswith("obs"):
                obs[0] = np.nan if self.fault == "nan_obs" else np.inf
        return obs, reward, False, False, {}


gym.register("Faulty-v0", entry_point=Faulty, max_episode_steps=50)

"""An env that misbehaves once, on cue: importing this module registers ``Faulty-v0``.

A point pushed along a line (Box observation and action, reward -x^2, 50 steps an episode). Each env copy
counts its own steps; at step ``at`` it returns a NaN or infinite reward or observation, or raises.
"""

import sys

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


# An env that breaks the API instead: raises, exits, or returns what its spaces do not allow.
API_FAULTS = ("none", "init", "init_exit", "reset", "step", "step_exit", "close", "snapshot", "restore", "step_close",
              "four_values", "obs_shape", "obs_scalar", "obs_string", "obs_list", "reset_obs_shape", "reward_vector",
              "reward_complex", "reward_string", "terminated_array", "zero_obs", "zero_act", "discrete_start")


class Misbehaving(Faulty):
    """Faulty's line, whose ``fault`` breaks the env API at step ``at`` (or in the call it names, every time);
    its state is captured by ``snapshot_state`` / ``restore_state``."""

    def __init__(self, fault="none", at=10**9):
        assert fault in API_FAULTS, fault
        if fault == "init":
            raise RuntimeError("no licence for the simulator")
        if fault == "init_exit":
            sys.exit(3)
        self.fault, self.at, self.steps, self.x = fault, at, 0, 0.0
        if fault == "zero_obs":
            self.observation_space = gym.spaces.Box(-1.0, 1.0, (0,), np.float64)
        if fault == "zero_act":
            self.action_space = gym.spaces.Box(-1.0, 1.0, (0,), np.float32)
        if fault == "discrete_start":
            self.action_space = gym.spaces.Discrete(3, start=-1)

    def reset(self, *, seed=None, options=None):
        if self.fault == "reset":
            raise OSError("the simulator did not start")
        obs, info = super().reset(seed=seed, options=options)
        return (np.zeros(3) if self.fault == "reset_obs_shape" else obs), info

    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(np.array([0.1]))  # the action is not needed
        if self.steps != self.at:
            return obs, reward, terminated, truncated, info
        if self.fault in ("step", "step_close"):
            raise RuntimeError("the simulator broke")
        if self.fault == "step_exit":
            sys.exit("the simulator gave up")
        if self.fault == "four_values":
            return obs, reward, terminated or truncated, info  # the API of gym before 0.26
        obs = {"obs_shape": np.zeros(3), "obs_scalar": np.float64(0.5), "obs_string": np.array(["a", "b"]),
               "obs_list": [self.x, 1.0]}.get(self.fault, obs)
        reward = {"reward_vector": np.array([1.0, 2.0]), "reward_complex": 1.0 + 2.0j,
                  "reward_string": "1.5"}.get(self.fault, reward)
        terminated = np.array([False, False]) if self.fault == "terminated_array" else terminated
        return obs, reward, terminated, truncated, info

    def close(self):
        if self.fault in ("close", "step_close"):
            raise RuntimeError("the simulator would not shut down")

    def snapshot_state(self):
        if self.fault == "snapshot":
            raise RuntimeError("the simulator cannot save")
        return {"x": self.x, "steps": self.steps}

    def restore_state(self, state):
        if self.fault == "restore":
            raise KeyError("slot")
        self.x, self.steps = state["x"], state["steps"]


gym.register("Misbehaving-v0", entry_point=Misbehaving, max_episode_steps=50)

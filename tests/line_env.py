"""An env of a user's own, in a module of its own: importing it registers ``Line-v0`` with gymnasium.

A point on a line is pushed by a bounded force towards the origin; reward is -x^2 per step, 40 steps an
episode. It can be filmed (``rgb_array``) and its state captured, so eval, video and an exact resume of a
run trained on it can be tested from ``line_env:Line-v0``.
"""

import gymnasium as gym
import numpy as np


class Line(gym.Env):
    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}
    observation_space = gym.spaces.Box(-2.0, 2.0, (1,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def __init__(self, render_mode=None, start=1.0):
        self.render_mode = render_mode
        self.start = start
        self.x = 0.0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x = float(self.np_random.uniform(-self.start, self.start))
        return np.array([self.x], np.float32), {}

    def step(self, action):
        self.x = float(np.clip(self.x + 0.2 * float(action[0]), -2.0, 2.0))
        return np.array([self.x], np.float32), -self.x**2, False, False, {}

    def render(self):
        frame = np.zeros((32, 64, 3), np.uint8)
        frame[12:20, int((self.x + 2.0) / 4.0 * 63)] = 255
        return frame

    def snapshot_state(self):
        return {"x": self.x}

    def restore_state(self, state):
        self.x = state["x"]


gym.register("Line-v0", entry_point=Line, max_episode_steps=40)

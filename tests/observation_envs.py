"""Envs with observations other than a flat Box; importing this module registers them with gymnasium.

- ``Dot-v0``: a 12x12 grey uint8 image (HWC) with one bright dot in its left or right half; the action
  that names the half earns 1, the other 0, and every step shows a new dot (8 steps an episode). Only
  the pixels say which action pays: a policy that does not see the dot earns 4 an episode, one that does 8.
  Its state can be captured, so a resumed run continues exactly.
- ``DictGoal-v0``: a nested Dict -- a one-hot ``goal`` (Discrete 3), a ``pos`` Box and a 2x2 ``noise``
  matrix under ``extra`` -- where the action equal to ``goal`` earns 1 (8 steps an episode; chance: 8/3).
- :class:`Downsample`: every ``every``-th pixel of an image observation, for rendered frames (no OpenCV).
"""

import gymnasium as gym
import numpy as np


class Dot(gym.Env):
    observation_space = gym.spaces.Box(0, 255, (12, 12, 1), np.uint8)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, channels_first=False):
        self.channels_first = channels_first
        if channels_first:
            self.observation_space = gym.spaces.Box(0, 255, (1, 12, 12), np.uint8)
        self.side = 0

    def _image(self):
        self.side = int(self.np_random.integers(2))
        image = np.zeros((12, 12, 1), np.uint8)
        row, col = self.np_random.integers(2, 10), self.np_random.integers(1, 5) + 6 * self.side
        image[row : row + 2, col : col + 2] = 255
        return image.transpose(2, 0, 1).copy() if self.channels_first else image

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self._image(), {}

    def step(self, action):
        reward = float(int(action) == self.side)
        return self._image(), reward, False, False, {}

    def snapshot_state(self):
        return {"side": self.side}

    def restore_state(self, state):
        self.side = state["side"]


class DictGoal(gym.Env):
    observation_space = gym.spaces.Dict({
        "pos": gym.spaces.Box(-1.0, 1.0, (1,), np.float32),
        "goal": gym.spaces.Discrete(3),
        "extra": gym.spaces.Dict({"noise": gym.spaces.Box(-1.0, 1.0, (2, 2), np.float32)}),
    })
    action_space = gym.spaces.Discrete(3)

    def _obs(self):
        self.goal = int(self.np_random.integers(3))
        return {"pos": self.np_random.uniform(-1, 1, (1,)).astype(np.float32), "goal": self.goal,
                "extra": {"noise": self.np_random.uniform(-1, 1, (2, 2)).astype(np.float32)}}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self._obs(), {}

    def step(self, action):
        reward = float(int(action) == self.goal)
        return self._obs(), reward, False, False, {}


class Downsample(gym.ObservationWrapper):
    """Every ``every``-th row and column of an HWC image observation."""

    def __init__(self, env, every=2):
        super().__init__(env)
        self.every = every
        space = env.observation_space
        low, high = space.low[::every, ::every], space.high[::every, ::every]
        self.observation_space = gym.spaces.Box(low, high, low.shape, space.dtype)

    def observation(self, observation):
        return np.ascontiguousarray(observation[:: self.every, :: self.every])


gym.register("Dot-v0", entry_point=Dot, max_episode_steps=8)
gym.register("DictGoal-v0", entry_point=DictGoal, max_episode_steps=8)

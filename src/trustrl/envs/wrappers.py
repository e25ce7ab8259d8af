"""The one wrapper trustrl puts on an env: Box actions clipped to the bounds the env declares."""

from __future__ import annotations

import gymnasium as gym
import numpy as np


class ClipToBounds(gym.ActionWrapper):
    """Clip Box actions to the env's bounds, keeping the declared action space.

    (gymnasium's ClipAction widens the declared space to (-inf, inf), which
    would hide the bounds from checkpoints that record the spaces.) The policy
    samples unbounded Gaussian actions; log-probabilities are of those.
    """

    def action(self, action):
        return np.clip(action, self.action_space.low, self.action_space.high)


def clip_if_box(env: gym.Env) -> gym.Env:
    return ClipToBounds(env) if isinstance(env.action_space, gym.spaces.Box) else env

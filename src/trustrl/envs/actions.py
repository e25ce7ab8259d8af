"""The action spaces trustrl acts in: which are accepted, how a checkpoint records one, how actions are stored.

Box and Discrete actions, and vectors of independent choices: MultiDiscrete (a
categorical per coordinate, each with its own ``n`` and ``start``) and
MultiBinary (a Bernoulli per coordinate). Multi-dimensional MultiDiscrete and
MultiBinary spaces are refused: the policy heads are flat vectors. This module
imports numpy and gymnasium only, like the rest of :mod:`trustrl.envs`.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from trustrl.errors import ConfigError

#: The action spaces trustrl's policies handle.
ACTION_SPACES = (gym.spaces.Box, gym.spaces.Discrete, gym.spaces.MultiDiscrete, gym.spaces.MultiBinary)


def check_action_space(space: gym.Space, env_id: str) -> None:
    """Refuse an action space no policy head fits, with the reason in one line."""
    if not isinstance(space, ACTION_SPACES):
        raise ConfigError(f"{env_id}: actions must be Box, Discrete, MultiDiscrete or MultiBinary, got {space}")
    if isinstance(space, gym.spaces.Discrete):
        if int(space.start) != 0:
            raise ConfigError(f"{env_id}: Discrete actions must start at 0, got {space}")
        return
    if len(space.shape) != 1 or space.shape[0] == 0:
        raise ConfigError(f"{env_id}: {type(space).__name__} actions must be a non-empty vector, got {space}")


def describe_action_space(space: gym.Space) -> dict[str, Any]:
    """A JSON-able fingerprint of the action space (its type and sizes), stored in checkpoints and compared on load."""
    if isinstance(space, gym.spaces.Discrete):
        return {"type": "discrete", "n": int(space.n)}
    if isinstance(space, gym.spaces.MultiDiscrete):
        return {"type": "multi_discrete", "nvec": space.nvec.tolist(), "start": space.start.tolist()}
    if isinstance(space, gym.spaces.MultiBinary):
        return {"type": "multi_binary", "n": int(space.shape[0])}
    return {
        "type": "box",
        "shape": list(space.shape),
        "low": np.asarray(space.low, np.float64).tolist(),
        "high": np.asarray(space.high, np.float64).tolist(),
    }


def action_layout(space: gym.Space) -> tuple[tuple[int, ...], type]:
    """The shape of one step's action in a buffer and the buffer's dtype.

    Discrete: one int64 index; Box: float32 vectors (the Gaussian draw);
    MultiDiscrete: int64 vectors (the env's values, ``start`` included);
    MultiBinary: int8 vectors of 0/1, gymnasium's own dtype for the space.
    """
    if isinstance(space, gym.spaces.Discrete):
        return (), np.int64
    if isinstance(space, gym.spaces.MultiDiscrete):
        return space.shape, np.int64
    if isinstance(space, gym.spaces.MultiBinary):
        return space.shape, np.int8
    return space.shape, np.float32

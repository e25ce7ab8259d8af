"""Observations the policy does not take as they come -- Dicts, Tuples, matrices, images -- made one flat vector.

Every env copy (one env, a vector env, a worker's or a Ray actor's share) is flattened when it is made
(:func:`flatten_if_structured`), so the samplers, the batch, the normaliser and the checkpoints see a flat
Box whatever the env gives. The flat space is a :class:`FlatBox`: a Box that remembers the space it was
made from, so a checkpoint records the structure (:func:`describe_source`), the networks find an image
inside it (:func:`image_layout`) and :class:`~trustrl.agent.Agent` flattens a raw observation the same way.

The flattening is gymnasium's own (``gymnasium.spaces.flatten``): a Dict's entries in the order of its
keys -- sorted, as ``gymnasium.spaces.Dict`` sorts a plain dict -- nested Dicts and Tuples depth first, Box
entries of any shape in C order, Discrete and MultiDiscrete entries one-hot, MultiBinary as 0/1.
An image (a 3-D Box) is flattened in its own layout, HWC or CHW, and unflattened by the image encoder.
Nothing here imports torch.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from trustrl.errors import ConfigError

#: The spaces a Dict or Tuple may hold (any nesting of Dicts and Tuples of these).
LEAVES = (gym.spaces.Box, gym.spaces.Discrete, gym.spaces.MultiDiscrete, gym.spaces.MultiBinary)

#: An image has at most this many channels (grey, RGB, RGBA), first (CHW) or last (HWC).
MAX_CHANNELS = 4


class FlatBox(gym.spaces.Box):
    """The flat Box of ``gymnasium.spaces.flatten_space(source)``, remembering ``source``.

    It equals any Box of the same shape, dtype and bounds, so gymnasium's vector envs take it as one.
    """

    def __init__(self, source: gym.Space):
        flat = gym.spaces.flatten_space(source)
        super().__init__(flat.low, flat.high, flat.shape, flat.dtype)
        self.source = source


class FlattenStructured(gym.ObservationWrapper):
    """An env whose observations are flattened into its :class:`FlatBox`."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.observation_space = FlatBox(env.observation_space)

    def observation(self, observation):
        return gym.spaces.flatten(self.env.observation_space, observation)


def is_structured(space: gym.Space) -> bool:
    """Anything but a flat Box: what :func:`flatten_if_structured` flattens."""
    return not (isinstance(space, gym.spaces.Box) and len(space.shape) == 1)


def check_observation_space(space: gym.Space, env_id: str) -> None:
    """Refuse, in one line, what trustrl cannot flatten: a space other than Box, Discrete, MultiDiscrete,
    MultiBinary, or Dicts and Tuples of them; a 3-D Box that is no image."""
    if isinstance(space, gym.spaces.Dict):
        for key, sub in space.spaces.items():
            check_observation_space(sub, f"{env_id} (entry {key!r})")
    elif isinstance(space, gym.spaces.Tuple):
        for i, sub in enumerate(space.spaces):
            check_observation_space(sub, f"{env_id} (entry {i})")
    elif not isinstance(space, LEAVES):
        raise ConfigError(f"{env_id}: observations must be a Box, Discrete, MultiDiscrete, MultiBinary, or a "
                          f"Dict or Tuple of them, got {space}")


def flatten_if_structured(env: gym.Env) -> gym.Env:
    """``env`` with its observations flattened (:class:`FlattenStructured`), or ``env`` itself for a flat Box."""
    space = env.observation_space
    if not is_structured(space):
        return env
    check_observation_space(space, env.spec.id if env.spec else "this env")
    if isinstance(space, gym.spaces.Box) and len(space.shape) == 3:
        image_layout(space)  # refuse a 3-D Box that is no image when the env is made, not in the network
    return FlattenStructured(env)


def image_layout(space: gym.Space) -> tuple[str, tuple[int, int, int], float, float] | None:
    """For an image -- a 3-D Box, channels last (HWC, as gymnasium renders) or first (CHW) -- its layout,
    ``(channels, height, width)`` and the pixel range ``(low, high)`` it is scaled from to [0, 1];
    None for any other space. A :class:`FlatBox` is looked through to its source.

    Channels are taken to be last when the last axis has at most :data:`MAX_CHANNELS` entries, else first.
    """
    if isinstance(space, FlatBox):
        space = space.source
    if not isinstance(space, gym.spaces.Box) or len(space.shape) != 3:
        return None
    a, b, c = space.shape
    if c <= MAX_CHANNELS:
        layout, chw = "hwc", (c, a, b)
    elif a <= MAX_CHANNELS:
        layout, chw = "chw", (a, b, c)
    else:
        raise ConfigError(f"image observations {space}: the channels ({MAX_CHANNELS} at most) must be the first "
                          "or the last axis")
    low, high = float(np.min(space.low)), float(np.max(space.high))
    if not (np.isfinite(low) and np.isfinite(high) and high > low):
        raise ConfigError(f"image observations {space}: pixels need finite bounds (uint8 images have [0, 255]) "
                          "to be scaled to [0, 1]")
    return layout, chw, low, high


def describe_source(space: gym.Space) -> Any:
    """A JSON-able description of an observation space's structure: entries by key, shapes, Discrete sizes."""
    if isinstance(space, gym.spaces.Dict):
        return {"dict": {key: describe_source(sub) for key, sub in space.spaces.items()}}
    if isinstance(space, gym.spaces.Tuple):
        return {"tuple": [describe_source(sub) for sub in space.spaces]}
    if isinstance(space, gym.spaces.Discrete):
        return {"discrete": int(space.n), "start": int(space.start)}
    if isinstance(space, gym.spaces.MultiDiscrete):
        return {"multi_discrete": np.asarray(space.nvec).tolist()}
    if isinstance(space, gym.spaces.MultiBinary):
        return {"multi_binary": np.asarray(space.n).tolist()}
    return {"box": list(space.shape), "dtype": str(space.dtype)}


def flatten_observation(space: gym.Space, obs: Any) -> np.ndarray:
    """One observation as :class:`FlatBox` ``space`` has it: a raw one (a dict, an image) flattened, one
    already flat as it is."""
    if isinstance(obs, np.ndarray) and obs.shape == space.shape:
        return obs
    try:
        return gym.spaces.flatten(space.source, obs)
    except (KeyError, TypeError, ValueError, IndexError, AssertionError) as exc:
        raise ConfigError(f"an observation that does not fit {space.source}: {type(exc).__name__}: {exc}") from None


def flatten_observations(space: gym.Space, obs: Any) -> np.ndarray:
    """A batch of observations (first axis, or a list) as ``space`` has them: flattened if it is a
    :class:`FlatBox` and they are raw (dicts, images), as they are otherwise."""
    if not isinstance(space, FlatBox):
        return np.asarray(obs)
    if isinstance(obs, np.ndarray) and obs.shape[1:] == space.shape:
        return obs
    return np.stack([flatten_observation(space, one) for one in obs])

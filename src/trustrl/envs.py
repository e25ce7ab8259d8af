"""Vector environments: any gymnasium id, ``n_envs`` copies, same-step autoreset.

Normalisation is not a per-copy wrapper here: the sampler owns one
:class:`~trustrl.normalization.ObsNormalizer` for the whole vector env, so all
copies share one statistic and a checkpoint carries exactly one.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

from trustrl.config import EnvConfig, check_env_id
from trustrl.errors import ConfigError


def make_env(cfg: EnvConfig, render_mode: str | None = None) -> gym.Env:
    """One env (for evaluation and video), with the same time limit as training."""
    check_env_id(cfg.id)
    kwargs: dict[str, Any] = dict(cfg.kwargs)
    if cfg.max_episode_steps is not None:
        kwargs["max_episode_steps"] = cfg.max_episode_steps
    if render_mode is not None:
        kwargs["render_mode"] = render_mode
    try:
        env = gym.make(cfg.id, **kwargs)
    except (gym.error.Error, TypeError, ImportError) as exc:
        raise ConfigError(f"cannot make environment {cfg.id!r}: {exc}") from None
    check_spaces(env.observation_space, env.action_space, cfg.id)
    if isinstance(env.action_space, gym.spaces.Box):
        env = ClipToBounds(env)
    return env


class ClipToBounds(gym.ActionWrapper):
    """Clip Box actions to the env's bounds, keeping the declared action space.

    (gymnasium's ClipAction widens the declared space to (-inf, inf), which
    would hide the bounds from checkpoints that record the spaces.) The policy
    samples unbounded Gaussian actions; log-probabilities are of those.
    """

    def action(self, action):
        return np.clip(action, self.action_space.low, self.action_space.high)


def make_vec_env(cfg: EnvConfig) -> "SyncVecEnv | gym.vector.VectorEnv":
    """``n_envs`` copies stepped together; a finished episode resets within the same step.

    Same-step autoreset means every step is a real transition and the true
    final observation of an episode arrives in ``info["final_obs"]`` -- the
    one a truncated step must bootstrap from. ``sync`` uses trustrl's own
    :class:`SyncVecEnv` (no per-step info merging); ``async`` uses gymnasium's
    AsyncVectorEnv with shared memory, one process per copy.
    """
    check_env_id(cfg.id)
    kwargs: dict[str, Any] = dict(cfg.kwargs)
    if cfg.max_episode_steps is not None:
        kwargs["max_episode_steps"] = cfg.max_episode_steps
    try:
        if cfg.vectorization == "sync":
            envs = SyncVecEnv([gym.make(cfg.id, **kwargs) for _ in range(cfg.n_envs)])
        else:
            envs = gym.make_vec(
                cfg.id,
                num_envs=cfg.n_envs,
                vectorization_mode="async",
                vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP, "shared_memory": True},
                wrappers=[_clip_if_box],
                **kwargs,
            )
    except (gym.error.Error, TypeError, ImportError) as exc:
        raise ConfigError(f"cannot make environment {cfg.id!r}: {exc}") from None
    check_spaces(envs.single_observation_space, envs.single_action_space, cfg.id)
    return envs


def _clip_if_box(env: gym.Env) -> gym.Env:
    return ClipToBounds(env) if isinstance(env.action_space, gym.spaces.Box) else env


class SyncVecEnv:
    """Steps ``envs`` in turn with same-step autoreset, returning stacked arrays.

    The same contract as gymnasium's sync vector env in ``SAME_STEP`` mode,
    minus the per-step merging of every sub-env's info dict, which on MuJoCo
    envs costs about as much as the simulation: ``info`` is empty unless an
    episode ended, and then holds only ``final_obs`` (an object array with
    the final observation at the finished positions, None elsewhere).
    Box actions are clipped to the action bounds.
    """

    def __init__(self, envs: list[gym.Env]):
        self.envs = envs
        self.num_envs = len(envs)
        self.single_observation_space = envs[0].observation_space
        self.single_action_space = envs[0].action_space
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, self.num_envs)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, self.num_envs)
        box = isinstance(self.single_action_space, gym.spaces.Box)
        self._low = self.single_action_space.low if box else None
        self._high = self.single_action_space.high if box else None
        self._obs = np.zeros((self.num_envs, *self.single_observation_space.shape), self.single_observation_space.dtype)
        self._rewards = np.zeros(self.num_envs, np.float64)
        self._terminated = np.zeros(self.num_envs, bool)
        self._truncated = np.zeros(self.num_envs, bool)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        for i, env in enumerate(self.envs):
            self._obs[i], _ = env.reset(seed=None if seed is None else seed + i, options=options)
        return self._obs.copy(), {}

    def step(self, actions: np.ndarray):
        if self._low is not None:
            actions = np.minimum(np.maximum(actions, self._low), self._high)
        info: dict[str, Any] = {}
        for i, env in enumerate(self.envs):
            obs, reward, terminated, truncated, _ = env.step(actions[i])
            if terminated or truncated:
                final = info.setdefault("final_obs", np.full(self.num_envs, None, dtype=object))
                final[i] = obs
                obs, _ = env.reset()
            self._obs[i] = obs
            self._rewards[i] = reward
            self._terminated[i] = terminated
            self._truncated[i] = truncated
        return self._obs.copy(), self._rewards.copy(), self._terminated.copy(), self._truncated.copy(), info

    def render(self):
        return self.envs[0].render()

    def close(self) -> None:
        for env in self.envs:
            env.close()


def check_spaces(obs_space: gym.Space, act_space: gym.Space, env_id: str) -> None:
    """trustrl's policies handle flat Box observations and Box or Discrete actions."""
    if not isinstance(obs_space, gym.spaces.Box) or len(obs_space.shape) != 1:
        raise ConfigError(f"{env_id}: observations must be a flat Box, got {obs_space}")
    if isinstance(act_space, gym.spaces.Box):
        if len(act_space.shape) != 1:
            raise ConfigError(f"{env_id}: Box actions must be a vector, got {act_space}")
    elif not isinstance(act_space, gym.spaces.Discrete):
        raise ConfigError(f"{env_id}: actions must be Box or Discrete, got {act_space}")


def describe_spaces(obs_space: gym.Space, act_space: gym.Space) -> dict[str, Any]:
    """A JSON-able fingerprint of the spaces, stored in checkpoints and compared on load."""
    out: dict[str, Any] = {"obs_shape": list(obs_space.shape)}
    if isinstance(act_space, gym.spaces.Discrete):
        out["action"] = {"type": "discrete", "n": int(act_space.n)}
    else:
        out["action"] = {
            "type": "box",
            "shape": list(act_space.shape),
            "low": np.asarray(act_space.low, np.float64).tolist(),
            "high": np.asarray(act_space.high, np.float64).tolist(),
        }
    return out

"""trustrl's own synchronous vector env: same-step autoreset without gymnasium's per-step info merging."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from trustrl.envs.checks import (FLAG_TYPES, REAL_TYPES, call_env, check_reset, check_step, checked_reset,
                                 checked_step, close_env, step_failed)
from trustrl.envs.state import prepare_restore, snapshot
from trustrl.errors import ConfigError, EnvError


class SyncVecEnv:
    """Steps ``envs`` in turn with same-step autoreset, returning stacked arrays.

    The same contract as gymnasium's sync vector env in ``SAME_STEP`` mode,
    minus the per-step merging of every sub-env's info dict, which on MuJoCo
    envs costs about as much as the simulation: ``info`` is empty unless an
    episode ended, and then holds only ``final_obs`` (an object array with
    the final observation at the finished positions, None elsewhere).
    Box actions are clipped to the action bounds. Every call into a copy is checked
    (:mod:`trustrl.envs.checks`): a fault is one EnvError naming the copy, counted from ``first``.
    """

    def __init__(self, envs: list[gym.Env], first: int = 0):
        self.envs = envs
        self.first = first  # the run-wide index of copy 0 (a worker's share starts further on), for messages
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

    def reset(self, *, seed: int | list[int] | None = None, options: dict | None = None):
        """``seed``: one per copy, or one int for copy ``i`` to take ``seed + i`` (as gymnasium's vector envs)."""
        seeds = seed if isinstance(seed, list) else [None if seed is None else seed + i for i in range(self.num_envs)]
        for i, env in enumerate(self.envs):
            self._obs[i] = checked_reset(env, self.first + i, seed=seeds[i], options=options)
        return self._obs.copy(), {}

    def bound(self, actions: np.ndarray) -> np.ndarray:
        """Box actions clipped to the action bounds (Discrete ones as they are): what :meth:`step` does first,
        and what a vine branch, stepping one copy on its own, does too."""
        if self._low is None:
            return actions
        return np.minimum(np.maximum(actions, self._low), self._high)

    def step(self, actions: np.ndarray):
        actions = self.bound(actions)
        info: dict[str, Any] = {}
        shape, dtype = self._obs.shape[1:], self._obs.dtype
        for i, env in enumerate(self.envs):
            try:
                obs, reward, terminated, truncated, _ = env.step(actions[i])
            except (Exception, SystemExit) as exc:
                raise step_failed(self.first + i, exc) from None
            # check_step's test, inline: this loop is the hottest in sampling
            if not (type(obs) is np.ndarray and obs.shape == shape and obs.dtype is dtype and type(reward) in REAL_TYPES
                    and type(terminated) in FLAG_TYPES and type(truncated) in FLAG_TYPES):
                check_step((obs, reward, terminated, truncated, None), shape, self.first + i)
            if terminated or truncated:
                final = info.setdefault("final_obs", np.full(self.num_envs, None, dtype=object))
                final[i] = obs
                obs = check_reset(call_env(i + self.first, "reset", env.reset), shape, i + self.first)[0]
            self._obs[i] = obs
            self._rewards[i] = reward
            self._terminated[i] = terminated
            self._truncated[i] = truncated
        return self._obs.copy(), self._rewards.copy(), self._terminated.copy(), self._truncated.copy(), info

    def step_copy(self, i: int, action: np.ndarray):
        """Copy ``i`` alone takes ``action`` (bounded), with no autoreset: a vine branch."""
        return checked_step(self.envs[i], self.bound(action), self.first + i)

    def render(self):
        return self.envs[0].render()

    def close(self) -> None:
        """Close every copy, even after one fails; the first failure is raised at the end
        (:func:`~trustrl.envs.checks.close_env`)."""
        failure = None
        for i, env in enumerate(self.envs):
            try:
                close_env(env, self.first + i)
            except EnvError as exc:
                failure = failure or exc
        if failure is not None:
            raise failure

    def snapshot(self) -> list[dict]:
        """Each copy's :func:`snapshot`, in copy order (for bit-exact resume and vine branches)."""
        return [self.snapshot_copy(i) for i in range(self.num_envs)]

    def snapshot_copy(self, i: int) -> dict:
        try:
            return snapshot(self.envs[i])
        except EnvError as exc:
            raise EnvError(f"env copy {self.first + i}: {exc}") from None

    def restore(self, snaps: list[dict]) -> None:
        """Restore every copy from :meth:`snapshot`'s list; all are checked before any is changed."""
        if len(snaps) != self.num_envs:
            raise ConfigError(f"cannot restore {len(snaps)} env snapshots into {self.num_envs} copies")
        for i, apply in enumerate([prepare_restore(env, snap) for env, snap in zip(self.envs, snaps)]):
            self._apply(i, apply)

    def restore_copy(self, i: int, snap: dict) -> None:
        self._apply(i, prepare_restore(self.envs[i], snap))

    def _apply(self, i: int, apply) -> None:
        try:
            apply()
        except EnvError as exc:
            raise EnvError(f"env copy {self.first + i}: {exc}") from None

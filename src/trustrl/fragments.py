"""One fragment of a batch: ``T`` steps of a few env copies with a fixed actor, wherever the copies live.

A :class:`FragmentCollector` owns env copies ``first .. first + n - 1`` of a
run and steps them for a whole fragment with no message in between: it is
handed the acting policy (a :class:`~trustrl.actor.NumpyActor`), the
observation statistics frozen for the batch and its copies' pre-drawn noise,
and returns raw arrays. The learner (:mod:`trustrl.samplers.vector`) keeps
everything that spans copies -- statistics, noise streams, episode
bookkeeping, reward scale -- so a fragment depends on its copies alone, and
the same copies give the same bits in this process, in a worker process
(:mod:`trustrl.worker`) or on a Ray actor.

This module imports numpy and gymnasium only (no torch), so a worker starts
in well under a second.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import gymnasium as gym
import numpy as np

from trustrl import envs as envs_mod
from trustrl.actor import NumpyActor
from trustrl.config import EnvConfig
from trustrl.errors import ConfigError
from trustrl.normalization import ObsNormalizer


@dataclass
class Fragment:
    """``T`` steps of ``n`` copies, time-major; arrays only, so it pickles compactly."""

    raw_obs: np.ndarray  # (T, n, obs_dim) float64: what the statistics are updated from
    obs: np.ndarray  # (T, n, obs_dim) float32: normalised, as the actor saw them
    actions: np.ndarray  # (T, n, *act_shape)
    rewards: np.ndarray  # (T, n) float64, raw
    terminated: np.ndarray  # (T, n) bool
    truncated: np.ndarray  # (T, n) bool
    final_obs: np.ndarray  # (k, obs_dim) float64: true last observations of the steps truncated, not terminated
    final_index: np.ndarray  # (k, 2) int64: their (t, copy) positions, copy counted within the fragment
    last_raw_obs: np.ndarray  # (n, obs_dim) float64: where the next fragment starts


class FragmentCollector:
    """Steps ``envs`` (a vector env of run copies ``first ..``) a fragment at a time."""

    def __init__(self, envs, first: int = 0):
        self.envs = envs
        self.first = first
        self.n_envs = envs.num_envs
        self.raw_obs: np.ndarray | None = None

    @classmethod
    def build(cls, env_cfg: EnvConfig, first: int, count: int) -> "FragmentCollector":
        """Copies ``first .. first + count - 1`` of ``env_cfg``, made here (in a worker, in the worker)."""
        return cls(envs_mod.make_vec_env(replace(env_cfg, n_envs=count, vectorization="sync")), first)

    def spaces(self) -> tuple[gym.Space, gym.Space]:
        return self.envs.single_observation_space, self.envs.single_action_space

    def reset(self, seed: int) -> np.ndarray:
        """Start fresh episodes (copy ``i`` of the run seeded ``seed + i``, however the copies are spread);
        returns their first observations, float64."""
        self.raw_obs, _ = self.envs.reset(seed=seed + self.first)
        return np.asarray(self.raw_obs, np.float64)

    def collect(self, actor: NumpyActor, obs_norm: ObsNormalizer, noise: np.ndarray) -> Fragment:
        """``noise`` ``(T, n, k)``: this fragment's copies' draws. ``obs_norm`` is only read."""
        T, n = noise.shape[0], self.n_envs
        obs_dim = self.raw_obs.shape[-1]
        act_space = self.envs.single_action_space
        discrete = isinstance(act_space, gym.spaces.Discrete)
        raw_buf = np.empty((T, n, obs_dim), np.float64)
        obs_buf = np.empty((T, n, obs_dim), np.float32)
        act_buf = np.empty((T, n, *(() if discrete else act_space.shape)), np.int64 if discrete else np.float32)
        rew_buf = np.empty((T, n), np.float64)
        term_buf = np.empty((T, n), bool)
        trunc_buf = np.empty((T, n), bool)
        final_obs, final_index = [], []
        normalize = obs_norm.normalize
        for t in range(T):
            raw_buf[t] = self.raw_obs
            obs_buf[t] = normalize(self.raw_obs)
            action = actor.act(obs_buf[t], noise[t])
            act_buf[t] = action
            raw_obs, reward, terminated, truncated, info = self.envs.step(action)
            rew_buf[t] = reward
            term_buf[t] = terminated
            trunc_buf[t] = truncated
            if truncated.any():  # rare: most steps end no episode
                for i in np.flatnonzero(truncated & ~terminated):
                    final_obs.append(info["final_obs"][i])
                    final_index.append((t, i))
            self.raw_obs = raw_obs
        return Fragment(
            raw_obs=raw_buf,
            obs=obs_buf,
            actions=act_buf,
            rewards=rew_buf,
            terminated=term_buf,
            truncated=trunc_buf,
            final_obs=np.asarray(final_obs, np.float64).reshape(len(final_obs), obs_dim),
            final_index=np.asarray(final_index, np.int64).reshape(-1, 2),
            last_raw_obs=np.asarray(self.raw_obs, np.float64),
        )

    def snapshot(self) -> list[dict]:
        """The copies' states (:func:`trustrl.envs.snapshot`), JSON-able; ConfigError when one cannot be captured."""
        if not isinstance(self.envs, envs_mod.SyncVecEnv):
            raise ConfigError("env copies in gymnasium's own vector env cannot be captured")
        return self.envs.snapshot()

    def can_restore(self) -> bool:
        return isinstance(self.envs, envs_mod.SyncVecEnv) and all(envs_mod.can_snapshot(e) for e in self.envs.envs)

    def restore(self, snaps: list[dict], raw_obs: list) -> None:
        self.envs.restore(snaps)
        self.raw_obs = np.asarray(raw_obs, np.float64).astype(self.envs.single_observation_space.dtype)

    def close(self) -> None:
        self.envs.close()


class CollectorService:
    """A collector behind a message boundary (a worker process, a Ray actor): its methods by name, nothing else.

    It is built by a call (``build``), not in the constructor, so an env that cannot be made is an
    error of that call -- a ConfigError the learner re-raises -- rather than a worker dying at birth.
    """

    METHODS = frozenset({"spaces", "reset", "collect", "snapshot", "can_restore", "restore", "close"})

    def __init__(self) -> None:
        self.collector: FragmentCollector | None = None

    def call(self, method: str, *args: Any) -> Any:
        if method == "build":
            self.collector = FragmentCollector.build(*args)
            return None
        if method not in self.METHODS or self.collector is None:
            raise ValueError(f"unknown request {method!r}" if method not in self.METHODS
                             else f"{method!r} before the collector was built")
        return getattr(self.collector, method)(*args)


def serve(conn: Any) -> None:
    """A worker process's loop: ``("build", (env_cfg, first, count))`` first, then calls until ``close``.

    Replies are ``("ok", value)`` or ``("error", is_config_error, message)``: a ConfigError (an env that
    cannot be made or captured) crosses back as one, anything else as its type and message.
    """
    service = CollectorService()
    while True:
        try:
            method, args = conn.recv()
        except (EOFError, OSError):  # the learner is gone: nothing left to do
            break
        try:
            reply: tuple = ("ok", service.call(method, *args))
        except ConfigError as exc:
            reply = ("error", True, str(exc))
        except Exception as exc:  # noqa: BLE001 -- reported to the learner, which raises it as one error
            reply = ("error", False, f"{type(exc).__name__}: {exc}")
        try:
            conn.send(reply)
        except OSError:
            break
        if method == "close":
            break

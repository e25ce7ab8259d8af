"""One fragment of a batch: ``T`` steps of a few env copies with a fixed actor, wherever the copies live.

A :class:`FragmentCollector` owns env copies ``first .. first + n - 1`` of a
run and steps them for a whole fragment with no message in between: it is
handed the acting policy (a :class:`~trustrl.samplers.actor.NumpyActor`), the
observation statistics frozen for the batch and its copies' pre-drawn noise,
and returns raw arrays. The learner (:mod:`trustrl.samplers.vector`) keeps
everything that spans copies -- statistics, noise streams, episode
bookkeeping, reward scale -- so a fragment depends on its copies alone, and
the same copies give the same bits in this process, in a worker process
(:mod:`trustrl.samplers.worker`) or on a Ray actor.

This module imports numpy and gymnasium only (no torch), so a worker starts
in well under a second.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, replace
from typing import Any

import gymnasium as gym
import numpy as np

from trustrl import envs as envs_mod
from trustrl.config.sections import EnvConfig
from trustrl.display import NOT_RENDERING, gl_failures_explained
from trustrl.envs.actions import action_layout
from trustrl.envs.checks import async_copies
from trustrl.errors import ConfigError, EnvUnavailableError, TrustrlError
from trustrl.normalization import ObsNormalizer
from trustrl.samplers.actor import NumpyActor
from trustrl.seeding import ENV_COPIES, reset_seeds


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


@dataclass
class BranchRollouts:
    """The rollouts branched from ``m`` states of a fragment, ``K`` each, at most ``H`` steps; raw arrays."""

    actions: np.ndarray  # (m, K, *act_shape): the first action of each branch
    rewards: np.ndarray  # (m, K, H) float64, raw; 0 after a branch's last step
    lengths: np.ndarray  # (m, K) int64: steps simulated
    terminated: np.ndarray  # (m, K) bool: the branch ended in a terminal state (nothing to bootstrap from)
    end_obs: np.ndarray  # (m, K, obs_dim) float64: the observation a branch stopped at (horizon or time limit)


class FragmentCollector:
    """Steps ``envs`` (a vector env of run copies ``first ..``) a fragment at a time."""

    def __init__(self, envs, first: int = 0):
        self.envs = envs
        self.first = first
        if isinstance(envs, envs_mod.SyncVecEnv):
            envs.first = first  # its messages name run-wide copies
        self.n_envs = envs.num_envs
        self.raw_obs: np.ndarray | None = None
        self.rollout_states: list[tuple[int, dict, np.ndarray]] = []  # (copy, snapshot, raw obs) to branch from

    @classmethod
    def build(cls, env_cfg: EnvConfig, first: int, count: int, factory: bytes | None = None) -> "FragmentCollector":
        """Copies ``first .. first + count - 1`` of ``env_cfg``, made here (in a worker, in the worker);
        ``factory``: the pickled function that makes the env, for an env made by one."""
        envs_mod.register_payload(env_cfg.id, factory)
        return cls(envs_mod.make_vec_env(replace(env_cfg, n_envs=count, vectorization="sync")), first)

    def spaces(self) -> tuple[gym.Space, gym.Space]:
        return self.envs.single_observation_space, self.envs.single_action_space

    def reset(self, seed: int, epoch: int = 0) -> np.ndarray:
        """Start fresh episodes, copy ``i`` of the run reset with its own seed from ``(seed, i)`` however the copies
        are spread (``epoch``: which fresh start of the run); returns their first observations, float64."""
        seeds = reset_seeds(seed, ENV_COPIES, range(self.first, self.first + self.n_envs), epoch)
        with nullcontext() if isinstance(self.envs, envs_mod.SyncVecEnv) else async_copies():
            self.raw_obs, _ = self.envs.reset(seed=seeds)
        return np.asarray(self.raw_obs, np.float64)

    def collect(
        self, actor: NumpyActor, obs_norm: ObsNormalizer, noise: np.ndarray, snapshot_at: np.ndarray | None = None
    ) -> Fragment:
        """``noise`` ``(T, n, k)``: this fragment's copies' draws. ``obs_norm`` is only read.

        ``snapshot_at`` ``(m, 2)``: ``(t, copy)`` positions (copy counted within the fragment) whose env
        state is kept, before the step is taken, for :meth:`branch` -- in the order given.
        """
        T, n = noise.shape[0], self.n_envs
        obs_dim = self.raw_obs.shape[-1]
        act_space = self.envs.single_action_space
        act_shape, act_dtype = action_layout(act_space)
        raw_buf = np.empty((T, n, obs_dim), np.float64)
        obs_buf = np.empty((T, n, obs_dim), np.float32)
        act_buf = np.empty((T, n, *act_shape), act_dtype)
        rew_buf = np.empty((T, n), np.float64)
        term_buf = np.empty((T, n), bool)
        trunc_buf = np.empty((T, n), bool)
        final_obs, final_index = [], []
        normalize = obs_norm.normalize
        step = self.envs.step if isinstance(self.envs, envs_mod.SyncVecEnv) else self._async_step
        keep: dict[int, list[tuple[int, int]]] = {}
        for j, (t, i) in enumerate(np.zeros((0, 2), np.int64) if snapshot_at is None else snapshot_at):
            keep.setdefault(int(t), []).append((j, int(i)))
        kept: list = [None] * sum(len(v) for v in keep.values())
        for t in range(T):
            for j, i in keep.get(t, ()):
                kept[j] = (i, self.envs.snapshot_copy(i), np.asarray(self.raw_obs[i], np.float64))
            raw_buf[t] = self.raw_obs
            obs_buf[t] = normalize(self.raw_obs)
            action = actor.act(obs_buf[t], noise[t])
            act_buf[t] = action
            raw_obs, reward, terminated, truncated, info = step(action)
            rew_buf[t] = reward
            term_buf[t] = terminated
            trunc_buf[t] = truncated
            if truncated.any():  # rare: most steps end no episode
                for i in np.flatnonzero(truncated & ~terminated):
                    final_obs.append(info["final_obs"][i])
                    final_index.append((t, i))
            self.raw_obs = raw_obs
        self.rollout_states = kept
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

    def _async_step(self, action: np.ndarray):
        with async_copies():
            return self.envs.step(action)

    def branch(
        self, actor: NumpyActor, obs_norm: ObsNormalizer, first: np.ndarray | None, noise: np.ndarray, horizon: int
    ) -> BranchRollouts:
        """Roll out ``K`` branches of ``horizon`` steps from each state kept by the last :meth:`collect`.

        ``first``: ``(m, K, act_dim)`` noise for each branch's first action (drawn like a step's), or
        None for a Discrete space, whose ``K`` branches take every action in turn. ``noise``: the
        actions after it, ``(m, horizon - 1, k)`` shared by a state's branches (common random numbers)
        or ``(m, K, horizon - 1, k)``, one sequence each. Each branch starts from the state restored
        exactly; afterwards every copy is back where the fragment left it.
        """
        states, self.rollout_states = self.rollout_states, []
        if len(states) != len(noise):
            raise ValueError(f"{len(noise)} noise sequences for {len(states)} rollout states")
        act_space = self.envs.single_action_space
        discrete = isinstance(act_space, gym.spaces.Discrete)
        m, K = len(states), (int(act_space.n) if discrete else first.shape[1])
        obs_dim = self.raw_obs.shape[-1]
        act_shape, act_dtype = action_layout(act_space)
        actions = np.empty((m, K, *act_shape), act_dtype)
        rewards = np.zeros((m, K, horizon), np.float64)
        lengths = np.zeros((m, K), np.int64)
        terminated = np.zeros((m, K), bool)
        end_obs = np.empty((m, K, obs_dim), np.float64)
        homes = {i: self.envs.snapshot_copy(i) for i in sorted({i for i, _, _ in states})}
        normalize = obs_norm.normalize
        for j, (i, snap, raw) in enumerate(states):
            if discrete:
                actions[j] = np.arange(K)
            else:
                actions[j] = actor.act(np.repeat(normalize(raw[None]), K, axis=0), first[j])
            for k in range(K):
                self.envs.restore_copy(i, snap)
                steps, obs = (noise[j] if noise.ndim == 3 else noise[j, k]), raw
                for h in range(horizon):
                    action = actions[j, k] if h == 0 else actor.act(normalize(obs[None]), steps[h - 1][None])[0]
                    obs, reward, term, trunc, _ = self.envs.step_copy(i, action)
                    rewards[j, k, h] = reward
                    if term or trunc:
                        break
                lengths[j, k], terminated[j, k], end_obs[j, k] = h + 1, term, obs
        for i, home in homes.items():
            self.envs.restore_copy(i, home)
        return BranchRollouts(actions, rewards, lengths, terminated, end_obs)

    def snapshot(self) -> list[dict]:
        """The copies' states (:func:`trustrl.envs.snapshot`), JSON-able; ConfigError when one cannot be captured."""
        if not isinstance(self.envs, envs_mod.SyncVecEnv):
            raise ConfigError("env copies in gymnasium's own vector env cannot be captured")
        return self.envs.snapshot()

    def can_restore(self) -> bool:
        try:
            self.snapshot()
        except ConfigError:
            return False
        return True

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

    METHODS = frozenset({"spaces", "reset", "collect", "branch", "snapshot", "can_restore", "restore", "close"})

    def __init__(self) -> None:
        self.collector: FragmentCollector | None = None

    def call(self, method: str, *args: Any) -> Any:
        if method == "build":
            with gl_failures_explained(NOT_RENDERING, EnvUnavailableError):  # a failing MUJOCO_GL the user set
                self.collector = FragmentCollector.build(*args)
            return None
        if method not in self.METHODS or self.collector is None:
            raise ValueError(f"unknown request {method!r}" if method not in self.METHODS
                             else f"{method!r} before the collector was built")
        return getattr(self.collector, method)(*args)


def serve(conn: Any) -> None:
    """A worker process's loop: ``("build", (env_cfg, first, count, factory))`` first, then calls until ``close``.

    Replies are ``("ok", value)`` or ``("error", is_config_error, message)``: a TrustrlError (an env that
    cannot be made or captured, or that failed a call) crosses back as one line, anything else as its type
    and message.
    """
    service = CollectorService()
    while True:
        try:
            method, args = conn.recv()
        except (EOFError, OSError):  # the learner is gone: nothing left to do
            break
        try:
            reply: tuple = ("ok", service.call(method, *args))
        except TrustrlError as exc:
            reply = ("error", True, str(exc))
        except Exception as exc:  # noqa: BLE001 -- reported to the learner, which raises it as one error
            reply = ("error", False, f"{type(exc).__name__}: {exc}")
        try:
            conn.send(reply)
        except OSError:
            break
        if method == "close":
            break

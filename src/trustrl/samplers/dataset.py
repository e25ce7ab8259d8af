"""A Minari dataset as a source of batches: the whole dataset per batch, statistics frozen.

Episodes are packed end to end into ``N`` columns of near-equal length, so a
dataset reads as one ``T x N`` :class:`Batch` (``T ~ n / N``) and GAE runs
over ``T`` rows instead of ``n``. Columns are padded at the bottom with
terminated zero-reward steps that ``Batch.valid`` leaves out; every column's
last real step ends an episode, so no value leaks across. Box actions recorded with
their draws before clipping are learned from as those draws (see :mod:`trustrl.datasets.read`). Observation (and,
with reward normalisation, reward) statistics are computed once from the
dataset and frozen: they are the data's, not the learner's.
"""

from __future__ import annotations

import dataclasses
import hashlib
import heapq

import numpy as np
import torch

from trustrl.batch import Batch
from trustrl.datasets.read import OfflineData
from trustrl.envs.actions import action_layout
from trustrl.errors import ConfigError
from trustrl.nets import Policy
from trustrl.normalization import ObsNormalizer, RewardScaler


class DatasetSampler:
    """Hands out the packed dataset as every batch; ``total_steps`` counts transitions processed."""

    def __init__(
        self,
        data: OfflineData,
        obs_norm: ObsNormalizer,
        reward_scaler: RewardScaler,
        columns: int = 64,
        device: str = "cpu",
    ):
        self.data = data
        self.observation_space, self.action_space = data.observation_space, data.action_space
        self.obs_norm = obs_norm
        if obs_norm.enabled:
            obs_norm.update(np.concatenate([ep.observations for ep in data.episodes]))
        obs_norm.frozen = True
        self.reward_scaler = reward_scaler
        if reward_scaler.enabled:
            for ep in data.episodes:  # the running std of each episode's discounted return
                reward_scaler.update(discounted_running_return(ep.rewards, reward_scaler.gamma))
        reward_scaler.frozen = True
        self.batch = pack(data, obs_norm, reward_scaler, columns, device)
        self.transitions = data.n_steps
        self.digest = dataset_digest(data)
        self.behaviour_return = float(data.returns.mean())  # the dataset's mean episode return
        self.total_steps = 0

    def collect(self, policy: Policy, last: bool = False) -> Batch:
        self.total_steps += self.transitions
        return dataclasses.replace(self.batch, values=None, next_values=None, advantages=None, returns=None)

    def state(self) -> dict:
        return {"kind": "dataset", "total_steps": self.total_steps, **self._fingerprint()}

    def load_state(self, state: dict) -> list[str]:
        if state.get("kind") != "dataset":
            raise ConfigError("the checkpoint's sampler state is not a dataset's")
        if {k: state.get(k) for k in self._fingerprint()} != self._fingerprint():
            raise ConfigError(f"dataset {self.data.dataset_id} has changed since the checkpoint was written "
                              "(other episodes or values); a run resumes only on the data it trained on")
        self.total_steps = int(state["total_steps"])
        return []

    def _fingerprint(self) -> dict:
        """What identifies the data: its id, size and the SHA-256 of its arrays, in episode order."""
        return {"dataset": self.data.dataset_id, "transitions": self.transitions,
                "episodes": len(self.data.episodes), "sha256": self.digest}

    def close(self) -> None:
        pass


def dataset_digest(data: OfflineData) -> str:
    """SHA-256 over every episode's observations, actions, rewards, ends and behaviour records."""
    h = hashlib.sha256()
    for ep in data.episodes:
        arrays = [ep.observations, ep.actions, ep.rewards, ep.terminated, ep.truncated]
        arrays += [ep.log_probs] if ep.log_probs is not None else []
        arrays += [ep.params[k] for k in sorted(ep.params)] if ep.params is not None else []
        arrays += [ep.draws] if ep.draws is not None else []
        for array in arrays:
            array = np.ascontiguousarray(array)
            h.update(f"{array.dtype.str}{array.shape}".encode())
            h.update(array.tobytes())
    return h.hexdigest()


def discounted_running_return(rewards: np.ndarray, gamma: float) -> np.ndarray:
    """``R_t = gamma R_{t-1} + r_t`` from ``R_{-1} = 0``: what the reward scale is the std of."""
    out = np.empty(len(rewards))
    running = 0.0
    for t, r in enumerate(rewards):
        running = running * gamma + r
        out[t] = running
    return out


def pack(data: OfflineData, obs_norm: ObsNormalizer, reward_scaler: RewardScaler, columns: int,
         device: str = "cpu") -> Batch:
    """The dataset's episodes end to end in ``columns`` columns (longest first, each to the shortest column)."""
    episodes = data.episodes
    N = min(columns, len(episodes))
    heap = [(0, c) for c in range(N)]
    placement: list[list[int]] = [[] for _ in range(N)]
    for i in sorted(range(len(episodes)), key=lambda i: (-episodes[i].length, i)):
        length, c = heapq.heappop(heap)
        placement[c].append(i)
        heapq.heappush(heap, (length + episodes[i].length, c))
    T = max(length for length, _ in heap)
    obs_dim = episodes[0].observations.shape[1]
    act_shape, act_dtype = action_layout(data.action_space)

    obs = np.zeros((T, N, obs_dim), np.float32)
    act = np.zeros((T, N, *act_shape), act_dtype)
    rew = np.zeros((T, N), np.float32)
    term = np.ones((T, N), bool)  # padding: terminated, so no value leaks into real steps
    trunc = np.zeros((T, N), bool)
    valid = np.zeros((T, N), bool)
    logp = np.zeros((T, N), np.float32)
    params = {}
    if data.has_params:
        params = {k: np.zeros((T, N, v.shape[1]), np.float32) for k, v in episodes[0].params.items()}
    final_obs, final_index = [], []
    for c, column in enumerate(placement):
        t = 0
        for i in column:
            ep = episodes[i]
            sl = slice(t, t + ep.length)
            obs[sl, c] = obs_norm.normalize(ep.observations[:-1])
            act[sl, c] = (ep.draws if data.has_draws else ep.actions).reshape(ep.length, *act_shape)
            rew[sl, c] = reward_scaler.scale(ep.rewards)
            term[sl, c] = ep.terminated
            trunc[sl, c] = ep.truncated & ~ep.terminated
            valid[sl, c] = True
            if data.has_log_probs:
                logp[sl, c] = ep.log_probs
            for k in params:
                params[k][sl, c] = ep.params[k]
            for s in np.flatnonzero(trunc[sl, c]):
                # A truncated step bootstraps from the next observation, the episode's last one at its end.
                final_obs.append(ep.observations[s + 1])
                final_index.append((t + s, c))
            t += ep.length
    final = obs_norm.normalize(np.asarray(final_obs)) if final_obs else np.empty((0, obs_dim), np.float32)
    to = lambda a: torch.from_numpy(a).to(device)  # noqa: E731
    return Batch(
        obs=to(obs),
        actions=to(act),
        log_probs=to(logp),
        rewards=to(rew),
        terminated=to(term),
        truncated=to(trunc),
        last_obs=torch.zeros(N, obs_dim, device=device),
        final_obs=to(np.asarray(final, np.float32)),
        final_index=torch.tensor(final_index, dtype=torch.long).reshape(-1, 2),
        episode_returns=[],
        episode_lengths=[],
        valid=to(valid),
        behaviour_log_probs=to(logp) if data.has_log_probs else None,
        behaviour_params={k: to(v) for k, v in params.items()} if data.has_params else None,
    )

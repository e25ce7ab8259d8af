"""Sampling ``T x N`` batches from ``N`` copies of an env, episodes running on across batches.

Two rules make a batch independent of where its env copies run (one process
today, worker processes or Ray actors tomorrow):

- the policy acts on observations normalised with the statistics as they
  stood at the start of the batch, and the statistics are updated once, after
  it, from its raw observations in copy order; the reward scale is updated
  the same way, from each copy's running discounted return, and the batch's
  rewards are scaled after that update (no action depends on them);
- action noise for copy ``i`` comes from its own stream, seeded from
  ``(seed, i)`` and drawn a batch at a time (:func:`copy_rng`).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch

from trustrl import envs as envs_mod
from trustrl.errors import ConfigError
from trustrl.nets import NumpyActor, Policy
from trustrl.normalization import ObsNormalizer, RewardScaler
from trustrl.samplers.batch import Batch


def copy_rng(seed: int, index: int) -> np.random.Generator:
    """The action-noise stream of env copy ``index``: the same whatever process steps the copy."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(index,))))


def _can_snapshot(envs) -> bool:
    """Only trustrl's own SyncVecEnv holds its copies in this process, where their state can be read."""
    return isinstance(envs, envs_mod.SyncVecEnv) and all(envs_mod.can_snapshot(env) for env in envs.envs)


def _env_id(envs) -> str:
    spec = envs.envs[0].spec if isinstance(envs, envs_mod.SyncVecEnv) else getattr(envs, "spec", None)
    return spec.id if spec is not None else "this env"


class VectorSampler:
    """Steps a vector env with a policy for ``n_steps`` per copy per batch."""

    def __init__(
        self,
        envs,
        obs_norm: ObsNormalizer,
        reward_scaler: RewardScaler,
        n_steps: int,
        seed: int,
        device: str = "cpu",
    ):
        self.envs = envs
        self.obs_norm = obs_norm
        self.reward_scaler = reward_scaler
        self.n_steps = n_steps
        self.seed = seed
        self.device = device
        self.n_envs = envs.num_envs
        self.observation_space, self.action_space = envs.single_observation_space, envs.single_action_space
        act_space = envs.single_action_space
        self.discrete = isinstance(act_space, gym.spaces.Discrete)
        self.act_shape = () if self.discrete else act_space.shape
        self.raw_obs, _ = envs.reset(seed=seed)
        self.rngs = [copy_rng(seed, i) for i in range(self.n_envs)]
        self.ep_return = np.zeros(self.n_envs)
        self.ep_length = np.zeros(self.n_envs, np.int64)
        self.total_steps = 0

    @torch.no_grad()  # not inference_mode: the batch's tensors feed autograd later
    def collect(self, policy: Policy) -> Batch:
        T, N = self.n_steps, self.n_envs
        obs_dim = self.raw_obs.shape[-1]
        raw_buf = np.empty((T, N, obs_dim), np.float64)  # for the statistics' update after the batch
        obs_buf = np.empty((T, N, obs_dim), np.float32)  # normalised, as the policy saw them
        act_buf = np.empty((T, N, *self.act_shape), np.int64 if self.discrete else np.float32)
        rew_buf = np.empty((T, N), np.float64)
        ret_buf = np.empty((T, N), np.float64)  # each copy's running discounted return, for the reward scale
        term_buf = np.empty((T, N), bool)
        trunc_buf = np.empty((T, N), bool)
        final_obs, final_index = [], []
        ep_returns, ep_lengths = [], []
        actor = NumpyActor(policy)
        noise = np.stack([actor.draw_noise(rng, T) for rng in self.rngs], axis=1)  # (T, N, k)
        normalize = self.obs_norm.normalize  # the statistics stay as they are until the batch ends
        scaling = self.reward_scaler.enabled

        for t in range(T):
            raw_buf[t] = self.raw_obs
            obs_buf[t] = normalize(self.raw_obs)
            action = actor.act(obs_buf[t], noise[t])
            act_buf[t] = action
            raw_obs, reward, terminated, truncated, info = self.envs.step(action)
            done = terminated | truncated
            rew_buf[t] = reward
            if scaling:
                ret_buf[t] = self.reward_scaler.accumulate(reward, done)
            term_buf[t] = terminated
            trunc_buf[t] = truncated
            self.ep_return += reward
            self.ep_length += 1
            if done.any():
                for n in np.flatnonzero(done):
                    ep_returns.append(float(self.ep_return[n]))
                    ep_lengths.append(int(self.ep_length[n]))
                    if truncated[n] and not terminated[n]:
                        final_obs.append(info["final_obs"][n])
                        final_index.append((t, n))
                self.ep_return[done] = 0.0
                self.ep_length[done] = 0
            self.raw_obs = raw_obs

        last_obs = normalize(self.raw_obs)
        final = normalize(np.stack(final_obs)) if final_obs else np.empty((0, obs_dim), np.float32)
        # The per-batch update, once, in copy order within each step. Nothing acts on rewards, so they
        # are scaled with the statistics that include this batch (the first batch too has a scale).
        self.obs_norm.update(raw_buf.reshape(T * N, obs_dim))
        if scaling:
            self.reward_scaler.update(ret_buf.reshape(-1))
        rewards = self.reward_scaler.scale(rew_buf)
        self.total_steps += T * N

        to = lambda a: torch.from_numpy(a).to(self.device)  # noqa: E731
        obs_t, actions = to(obs_buf), to(act_buf)
        # One batched pass instead of T small ones: the policy has not changed since it acted.
        log_probs = policy(obs_t.reshape(T * N, -1)).log_prob(actions.reshape(T * N, *self.act_shape))
        return Batch(
            obs=obs_t,
            actions=actions,
            log_probs=log_probs.reshape(T, N),
            rewards=to(rewards),
            terminated=to(term_buf),
            truncated=to(trunc_buf),
            last_obs=to(last_obs),
            final_obs=to(final),
            final_index=torch.tensor(final_index, dtype=torch.long).reshape(-1, 2),
            episode_returns=ep_returns,
            episode_lengths=ep_lengths,
        )

    def state(self) -> dict:
        try:
            env_states = self.envs.snapshot() if isinstance(self.envs, envs_mod.SyncVecEnv) else None
        except ConfigError:  # an env whose state cannot be captured: a resume starts fresh episodes
            env_states = None
        return {
            "kind": "vector",
            "total_steps": self.total_steps,
            "obs_norm": self.obs_norm.state(),
            "reward_norm": self.reward_scaler.state(),
            "reward_returns": self.reward_scaler.returns.tolist(),
            "rngs": [rng.bit_generator.state for rng in self.rngs],
            "raw_obs": np.asarray(self.raw_obs, np.float64).tolist(),
            "ep_return": self.ep_return.tolist(),
            "ep_length": self.ep_length.tolist(),
            "envs": env_states,
        }

    def load_state(self, state: dict) -> list[str]:
        N, obs_shape = self.n_envs, self.raw_obs.shape
        if (state.get("kind") != "vector" or len(state["rngs"]) != N
                or np.shape(state["raw_obs"]) != obs_shape or np.shape(state["reward_returns"]) != (N,)
                or np.shape(state["ep_return"]) != (N,) or np.shape(state["ep_length"]) != (N,)
                or np.shape(state["obs_norm"]["mean"]) != obs_shape[1:]
                or np.shape(state["obs_norm"]["var"]) != obs_shape[1:]
                or (state.get("envs") is not None and len(state["envs"]) != N)):
            raise ConfigError("the checkpoint's sampler state does not match this run's env copies")
        self.total_steps = int(state["total_steps"])
        self.obs_norm.load_state(state["obs_norm"])
        self.reward_scaler.load_state(state["reward_norm"])
        self.reward_scaler.returns = np.asarray(state["reward_returns"], np.float64)
        for rng, rng_state in zip(self.rngs, state["rngs"]):
            rng.bit_generator.state = rng_state
        if state.get("envs") is not None and _can_snapshot(self.envs):
            self.envs.restore(state["envs"])
            dtype = self.envs.single_observation_space.dtype
            self.raw_obs = np.asarray(state["raw_obs"], np.float64).astype(dtype)
            self.ep_return = np.asarray(state["ep_return"], np.float64)
            self.ep_length = np.asarray(state["ep_length"], np.int64)
            return []
        # The env state could not be captured: start fresh episodes, seeded apart from the first ones.
        self.raw_obs, _ = self.envs.reset(seed=self.seed + 7919 * (1 + self.total_steps))
        self.ep_return = np.zeros(self.n_envs)
        self.ep_length = np.zeros(self.n_envs, np.int64)
        self.reward_scaler.returns = np.zeros(self.n_envs)  # the discounted returns restart with the episodes
        return [f"resumed with fresh episodes: the state of {_env_id(self.envs)} cannot be captured here, "
                "so the continuation is not bit-for-bit the run that stopped"]

    def close(self) -> None:
        self.envs.close()

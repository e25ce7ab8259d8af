"""Sampling T x N batches from a vector env, and GAE as a pure function.

The sampler runs only the policy per step; values are computed afterwards in
one batched forward pass (:func:`attach_values`), which is both faster and lets
the critic used for GAE be chosen after collection.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from trustrl.nets import NumpyActor, Policy, ValueNet
from trustrl.normalization import ObsNormalizer, RewardScaler


@dataclass
class Batch:
    """One batch of ``T`` steps from ``N`` envs; every tensor is time-major ``(T, N, ...)``.

    ``final_obs`` holds the true last observation of each episode that ended
    by truncation, at the positions ``final_index`` (rows of ``(t, n)``), so a
    truncated step can bootstrap from V(final observation).
    """

    obs: Tensor  # (T, N, obs_dim), normalised as the policy saw them
    actions: Tensor  # (T, N, act_dim) float or (T, N) long
    log_probs: Tensor  # (T, N) log pi_old(a|s), computed in one pass after collection
    rewards: Tensor  # (T, N), scaled if reward normalisation is on
    terminated: Tensor  # (T, N) bool: the episode ended in a terminal state (no bootstrap)
    truncated: Tensor  # (T, N) bool: cut by a time limit (bootstrap from final_obs)
    last_obs: Tensor  # (N, obs_dim): where the next batch starts
    final_obs: Tensor  # (K, obs_dim): true final observations of the K truncated steps
    final_index: Tensor  # (K, 2) long: their (t, n) positions
    episode_returns: list[float] = field(default_factory=list)  # raw (unscaled) returns finished in this batch
    episode_lengths: list[int] = field(default_factory=list)
    # Filled by attach_values / the trainer:
    values: Tensor | None = None  # (T, N) V(s_t)
    next_values: Tensor | None = None  # (T, N) V(s_{t+1}), V(final_obs) at truncations
    advantages: Tensor | None = None  # (T, N)
    returns: Tensor | None = None  # (T, N) advantage + value: the critic's regression target

    @property
    def n_steps(self) -> int:
        return self.obs.shape[0] * self.obs.shape[1]

    def flat(self, name: str) -> Tensor:
        """A field reshaped to ``(T*N, ...)``."""
        value = getattr(self, name)
        return value.reshape(-1, *value.shape[2:])


class Sampler:
    """Steps a vector env with a policy, keeping episodes running across batches."""

    def __init__(
        self,
        envs: gym.vector.VectorEnv,
        policy: Policy,
        obs_norm: ObsNormalizer,
        reward_scaler: RewardScaler,
        seed: int,
        device: str = "cpu",
    ):
        self.envs = envs
        self.policy = policy
        self.obs_norm = obs_norm
        self.reward_scaler = reward_scaler
        self.device = device
        self.n_envs = envs.num_envs
        act_space = envs.single_action_space
        self.discrete = isinstance(act_space, gym.spaces.Discrete)
        self.act_shape = () if self.discrete else act_space.shape
        raw_obs, _ = envs.reset(seed=seed)
        envs.action_space.seed(seed)
        self.rng = np.random.default_rng(seed)  # action noise
        self.obs = obs_norm(raw_obs)
        self.ep_return = np.zeros(self.n_envs)
        self.ep_length = np.zeros(self.n_envs, np.int64)
        self.total_steps = 0

    @torch.no_grad()  # not inference_mode: the batch's tensors feed autograd later
    def collect(self, n_steps: int) -> Batch:
        T, N = n_steps, self.n_envs
        obs_dim = self.obs.shape[-1]
        obs_buf = np.empty((T, N, obs_dim), np.float32)
        act_buf = np.empty((T, N, *self.act_shape), np.int64 if self.discrete else np.float32)
        rew_buf = np.empty((T, N), np.float32)
        term_buf = np.empty((T, N), bool)
        trunc_buf = np.empty((T, N), bool)
        final_obs, final_index = [], []
        ep_returns, ep_lengths = [], []
        actor = NumpyActor(self.policy, self.rng)

        for t in range(T):
            obs_buf[t] = self.obs
            action_np = actor(self.obs)
            act_buf[t] = action_np
            raw_obs, reward, terminated, truncated, info = self.envs.step(action_np)
            done = terminated | truncated
            rew_buf[t] = self.reward_scaler(reward, done)
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
            self.obs = self.obs_norm(raw_obs)

        self.total_steps += T * N
        if final_obs:
            final = self.obs_norm(np.stack(final_obs), update=False)
        else:
            final = np.empty((0, obs_dim), np.float32)
        to = lambda a: torch.from_numpy(a).to(self.device)  # noqa: E731
        obs, actions = to(obs_buf), to(act_buf)
        # One batched pass instead of T small ones: the policy has not changed since it acted.
        log_probs = self.policy(obs.reshape(T * N, -1)).log_prob(actions.reshape(T * N, *self.act_shape))
        return Batch(
            obs=obs,
            actions=actions,
            log_probs=log_probs.reshape(T, N),
            rewards=to(rew_buf),
            terminated=to(term_buf),
            truncated=to(trunc_buf),
            last_obs=to(self.obs.copy()),
            final_obs=to(final),
            final_index=torch.tensor(final_index, dtype=torch.long).reshape(-1, 2),
            episode_returns=ep_returns,
            episode_lengths=ep_lengths,
        )


@torch.no_grad()
def attach_values(batch: Batch, critic: ValueNet | None) -> None:
    """V(s_t) for every step and V(s_{t+1}) for bootstrapping, in one forward pass.

    ``next_values[t]`` is ``values[t+1]`` (the last row: V(last_obs)), except at
    truncated steps where it is V(the episode's true final observation).
    Terminated steps keep whatever is there: GAE masks them.
    ``critic=None`` means V = 0 everywhere (returns-to-go with no baseline).
    """
    T, N = batch.obs.shape[:2]
    if critic is None:
        batch.values, batch.next_values = torch.zeros_like(batch.rewards), torch.zeros_like(batch.rewards)
        return
    all_obs = torch.cat([batch.obs.reshape(T * N, -1), batch.last_obs, batch.final_obs])
    v = critic(all_obs)
    values = v[: T * N].reshape(T, N)
    next_values = torch.cat([values[1:], v[T * N : T * N + N].unsqueeze(0)])
    if len(batch.final_index):
        t, n = batch.final_index.T
        next_values[t, n] = v[T * N + N :]
    batch.values, batch.next_values = values, next_values


def gae(
    rewards: Tensor,
    values: Tensor,
    next_values: Tensor,
    terminated: Tensor,
    truncated: Tensor,
    gamma: float,
    lam: float,
) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimation over a ``(T, N)`` batch (Schulman et al. 2016, eq. 16).

    delta_t = r_t + gamma * (1 - terminated_t) * V(s_{t+1}) - V(s_t)
    A_t     = delta_t + gamma * lam * (1 - done_t) * A_{t+1},  done = terminated | truncated

    ``terminated`` removes the bootstrap; ``terminated | truncated`` cuts the
    recursion, so no advantage leaks across an episode boundary. The last row
    bootstraps from ``next_values[-1]`` with no further recursion.
    Returns ``(advantages, returns)`` with ``returns = advantages + values``.
    """
    not_terminated = (~terminated).to(values.dtype)
    not_done = (~(terminated | truncated)).to(values.dtype)
    deltas = rewards + gamma * not_terminated * next_values - values
    advantages = torch.empty_like(values)
    running = torch.zeros_like(values[0])
    for t in range(values.shape[0] - 1, -1, -1):
        running = deltas[t] + gamma * lam * not_done[t] * running
        advantages[t] = running
    return advantages, advantages + values

"""Vine sampling (Schulman et al. 2015, section 5.2): Q-values from rollouts branched at states of the trunk.

Each batch is a trunk -- ``run.n_steps`` steps of every env copy, collected
exactly as single path collects them -- plus, at ``vine.rollout_set`` of its
states, ``K`` branches: the env copy is restored to the state, takes one of
``K`` actions (every action of a Discrete space; draws from the acting policy
for Box actions) and follows the policy for the rest of ``vine.horizon``
steps. With common random numbers the ``K`` branches of a state follow one
noise sequence, so Q(s, a1) - Q(s, a2) differs by the action, not the luck.

The branches run where their env copy lives (this process, a worker process,
a Ray actor), in parallel across workers. Which states are branched from and
every branch's noise come from a stream per env copy, seeded from
``(seed, copy)`` apart from the trunk's, so a vine batch too is the same bits
whatever the layout. Every simulated step, trunk and branch, counts in
``total_steps``.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch

from trustrl.batch import Batch, Branches
from trustrl.config import VineConfig
from trustrl.errors import ConfigError, NonFiniteError
from trustrl.nets import Policy, numpy_actor
from trustrl.normalization import ObsNormalizer, RewardScaler
from trustrl.samplers.fragments import BranchRollouts
from trustrl.samplers.vector import VectorSampler


def branch_rng(seed: int, index: int) -> np.random.Generator:
    """Env copy ``index``'s stream for choosing rollout states and branch noise (apart from its action noise)."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(index, 1))))


class VineSampler:
    """A :class:`VectorSampler` for the trunk, and the branches rolled out from its states."""

    def __init__(self, trunk: VectorSampler, cfg: VineConfig, seed: int):
        self.trunk = trunk
        self.cfg = cfg
        self.observation_space, self.action_space = trunk.observation_space, trunk.action_space
        self.exact = isinstance(self.action_space, gym.spaces.Discrete)
        self.n_branches = int(self.action_space.n) if self.exact else cfg.branches
        n, T = trunk.n_envs, trunk.n_steps
        size, extra = divmod(cfg.rollout_set, n)
        self.per_copy = [size + (i < extra) for i in range(n)]
        if max(self.per_copy) > T:
            raise ConfigError(f"vine.rollout_set = {cfg.rollout_set} needs {max(self.per_copy)} states per env copy; "
                              f"a trunk has {T}")
        self.rngs = [branch_rng(seed, i) for i in range(n)]

    @property
    def obs_norm(self) -> ObsNormalizer:
        return self.trunk.obs_norm

    @property
    def reward_scaler(self) -> RewardScaler:
        return self.trunk.reward_scaler

    @property
    def total_steps(self) -> int:
        return self.trunk.total_steps

    @property
    def steps_per_update(self) -> int:
        """Env steps of one batch when no branch ends early: the trunk, and every branch's full horizon."""
        return self.trunk.n_steps * self.trunk.n_envs + self.cfg.rollout_set * self.n_branches * self.cfg.horizon

    @torch.no_grad()
    def collect(self, policy: Policy, last: bool = False) -> Batch:
        trunk, H, K = self.trunk, self.cfg.horizon, self.n_branches
        actor = numpy_actor(policy)
        acting_norm = trunk.obs_norm.copy()  # the trunk acts with these; so do its branches
        plans = [self._plan(rng, m, actor) for rng, m in zip(self.rngs, self.per_copy)]
        positions = np.concatenate([np.stack([times, np.full_like(times, i)], axis=1)
                                    for i, (times, _, _) in enumerate(plans)])
        batch = trunk.collect(policy, snapshot_at=positions)

        pool = trunk.pool
        shared_actor, shared_norm = pool.share(actor), pool.share(acting_norm)
        join = lambda parts: None if parts[0] is None else np.concatenate(parts)  # noqa: E731
        rollouts: list[BranchRollouts] = pool.call("branch", [
            (shared_actor, shared_norm, join([plans[i][1] for i in share]), join([plans[i][2] for i in share]), H)
            for share in pool.copies
        ])  # fmt: skip
        cat = lambda name: np.concatenate([getattr(r, name) for r in rollouts])  # noqa: E731
        actions, raw_rewards, lengths = cat("actions"), cat("rewards"), cat("lengths")
        terminated, end_obs = cat("terminated"), cat("end_obs")
        M, obs_dim = len(positions), end_obs.shape[-1]
        trunk.total_steps += int(lengths.sum())  # every branch step is a simulated step
        if not (np.isfinite(raw_rewards).all() and np.isfinite(end_obs).all()):  # before any Q-value is made of it
            what = "reward" if not np.isfinite(raw_rewards).all() else "observation"
            raise NonFiniteError(f"a vine branch returned a non-finite {what} (batch ending at env step "
                                 f"{trunk.total_steps})")

        index = torch.from_numpy(positions)
        obs = batch.obs[index[:, 0], index[:, 1]]
        actions_t = torch.from_numpy(actions).to(obs.device)
        log_probs = policy(obs).log_prob(actions_t.transpose(0, 1)).T  # (K, M) against M distributions
        # Branch rewards are scaled like the trunk's (with the statistics after its update), and never update them.
        rewards = trunk.reward_scaler.scale(raw_rewards).astype(np.float64)
        ends = acting_norm.normalize(end_obs.reshape(M * K, obs_dim)).reshape(M, K, obs_dim)
        to = lambda a: torch.from_numpy(a).to(obs.device)  # noqa: E731
        batch.branches = Branches(
            index=index, obs=obs, actions=actions_t, log_probs=log_probs, rewards=to(rewards),
            lengths=to(lengths), end_obs=to(ends), bootstrap=to(~terminated & self.cfg.bootstrap), exact=self.exact,
            kl_states=self.cfg.kl_states, critic_on_branches=self.cfg.critic_on_branches,
        )  # fmt: skip
        return batch

    def _plan(self, rng: np.random.Generator, m: int, actor) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """One copy's rollout times (sorted), its branches' first-action noise (None: every discrete action),
        and the noise of the steps after it -- shared by a state's branches under common random numbers."""
        H, K = self.cfg.horizon, self.n_branches
        times = np.sort(rng.choice(self.trunk.n_steps, size=m, replace=False)).astype(np.int64)
        first = None if self.exact else actor.draw_noise(rng, m * K).reshape(m, K, -1)
        shape = (m, H - 1) if self.cfg.common_random_numbers else (m, K, H - 1)
        noise = actor.draw_noise(rng, int(np.prod(shape))).reshape(*shape, -1)
        return times, first, noise

    def state(self) -> dict:
        return {"kind": "vine", "trunk": self.trunk.state(), "rngs": [rng.bit_generator.state for rng in self.rngs]}

    def load_state(self, state: dict) -> list[str]:
        if state.get("kind") != "vine" or len(state["rngs"]) != len(self.rngs):
            raise ConfigError("the checkpoint's sampler state is not a vine sampler's with these env copies")
        notes = self.trunk.load_state(state["trunk"])
        for rng, rng_state in zip(self.rngs, state["rngs"]):
            rng.bit_generator.state = rng_state
        return notes

    def close(self) -> None:
        self.trunk.close()

"""Sampling ``T x N`` batches from ``N`` copies of an env, episodes running on across batches.

Two rules make a batch independent of where its env copies run (this
process, worker processes or Ray actors: :mod:`trustrl.samplers.pools`):

- the policy acts on observations normalised with the statistics as they
  stood at the start of the batch, and the statistics are updated once, after
  it, from its raw observations in copy order; the reward scale is updated
  the same way, from each copy's running discounted return, and the batch's
  rewards are scaled after that update (no action depends on them);
- action noise for copy ``i`` comes from its own stream, seeded from
  ``(seed, i)`` and drawn a batch at a time (:func:`copy_rng`).
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from trustrl.batch import Batch
from trustrl.envs.actions import action_layout
from trustrl.errors import ConfigError, NonFiniteError
from trustrl.nets import Policy, numpy_actor
from trustrl.normalization import ObsNormalizer, RewardScaler
from trustrl.samplers.fragments import Fragment
from trustrl.samplers.pools import LocalPool, WorkerPool


def copy_rng(seed: int, index: int) -> np.random.Generator:
    """The action-noise stream of env copy ``index``: the same whatever process steps the copy."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(index,))))


class VectorSampler:
    """Steps ``N`` env copies with a policy for ``n_steps`` per copy per batch.

    ``pool`` is a vector env (stepped in this process) or a
    :class:`~trustrl.samplers.pools.WorkerPool` (worker processes, Ray actors):
    the workers simulate whole fragments, and everything that spans copies --
    statistics, noise streams, episode bookkeeping, reward scale -- stays here,
    so the batches are the same bits for the same seed whatever the layout.
    :meth:`start` sends a batch off and :meth:`finish` gathers it;
    :meth:`collect` does both.
    """

    def __init__(
        self,
        pool,
        obs_norm: ObsNormalizer,
        reward_scaler: RewardScaler,
        n_steps: int,
        seed: int,
        device: str = "cpu",
        norm_obs_steps: int | None = None,
    ):
        self.pool: WorkerPool = pool if isinstance(pool, WorkerPool) else LocalPool(pool)
        self.obs_norm = obs_norm
        self.reward_scaler = reward_scaler
        self.n_steps = n_steps
        self.seed = seed
        self.device = device
        self.norm_obs_steps = norm_obs_steps  # the statistics learn from batches starting before this step
        self.n_envs = self.pool.n_envs
        self.observation_space, self.action_space = self.pool.observation_space, self.pool.action_space
        self.act_shape = action_layout(self.action_space)[0]
        self.raw_obs = self._reset(seed)
        self.rngs = [copy_rng(seed, i) for i in range(self.n_envs)]
        self.ep_return = np.zeros(self.n_envs)
        self.ep_length = np.zeros(self.n_envs, np.int64)
        self.total_steps = 0
        self._acting: tuple[Policy, ObsNormalizer] | None = None  # the batch in flight: its policy and statistics
        self._captured: dict | None = None  # the state before the batch in flight was sent (asynchronous runs)
        self._resend: dict | None = None  # weights of the policy that acted on a batch in flight at a checkpoint
        self._deferred: dict | None = None  # weights the next batch is to be acted with (see defer)

    def _reset(self, seed: int, epoch: int = 0) -> np.ndarray:
        """Fresh episodes, copy ``i`` reset with the seed of ``(seed, i)`` (:mod:`trustrl.seeding`; ``epoch``:
        which fresh start); returns the first observations, float64."""
        return np.concatenate(self.pool.call("reset", [(seed, epoch)] * self.pool.workers), axis=0)

    def _fresh_episodes(self) -> None:
        """Every copy starts a new episode, seeded from the step count (apart from the first episodes), and the
        episode bookkeeping and discounted returns restart with them."""
        self.raw_obs = self._reset(self.seed, epoch=1 + self.total_steps)
        self.ep_return = np.zeros(self.n_envs)
        self.ep_length = np.zeros(self.n_envs, np.int64)
        self.reward_scaler.returns = np.zeros(self.n_envs)

    def collect(self, policy: Policy, last: bool = False, snapshot_at: np.ndarray | None = None) -> Batch:
        """One batch (``last`` changes nothing here); ``snapshot_at`` ``(m, 2)``: ``(t, copy)`` positions whose
        env states the copies keep for a following ``branch`` call (vine sampling), in that order within each
        worker's share."""
        self.start(policy, snapshot_at=snapshot_at)
        return self.finish()

    @property
    def busy(self) -> bool:
        """A batch has been sent off and not gathered yet."""
        return self._acting is not None

    def start(self, policy: Policy, capture: bool = False, snapshot_at: np.ndarray | None = None) -> None:
        """Send the next batch off to be collected with ``policy`` (as it is now) and the statistics as they are.

        ``capture``: first take the state a checkpoint needs while the batch is out (:meth:`state`).
        After :meth:`load_state` of such a checkpoint the first call re-sends that batch with the policy
        that acted on it, so the continuation is exact.
        """
        policy = copy.deepcopy(policy)  # as it acts now, for the batch's log-probabilities when it is gathered
        if self._resend is not None:
            try:
                policy.load_state_dict(self._resend)
            except (RuntimeError, TypeError, AttributeError) as exc:
                raise ConfigError(f"the checkpoint's policy of the batch in flight does not fit this policy: {exc}") from None
            self._resend = None
        self._captured = self._state_now() if capture else None
        self._deferred = None
        actor = numpy_actor(policy)
        noise = np.stack([actor.draw_noise(rng, self.n_steps) for rng in self.rngs], axis=1)  # (T, N, k)
        acting_norm = self.obs_norm.copy()  # frozen: the statistics stay as they are until the batch ends
        shared_actor, shared_norm = self.pool.share(actor), self.pool.share(acting_norm)
        self.pool.start("collect", [(shared_actor, shared_norm, noise[:, share.start:share.stop],  # views, not copies
                                     _within(snapshot_at, share)) for share in self.pool.copies])
        self._acting = (policy, acting_norm)

    def defer(self, policy: Policy) -> None:
        """Record, without sending anything, that the next batch is to be acted on by ``policy`` as it is now.

        An asynchronous run ends with its next batch unsent; a checkpoint then still says which policy
        acts next, so a run extended by ``--resume`` is the run that never stopped.
        """
        self._deferred = copy.deepcopy(policy.state_dict())

    @torch.no_grad()  # not inference_mode: the batch's tensors feed autograd later
    def finish(self) -> Batch:
        """The batch :meth:`start` sent off; the statistics are updated from it."""
        fragments: list[Fragment] = self.pool.finish()
        acting_policy, acting_norm = self._acting
        self._acting = self._captured = None
        T, N = self.n_steps, self.n_envs
        join = lambda name: np.concatenate([getattr(f, name) for f in fragments], axis=1)  # noqa: E731
        raw, obs, actions = join("raw_obs"), join("obs"), join("actions")
        rewards, terminated, truncated = join("rewards"), join("terminated"), join("truncated")
        self.raw_obs = np.concatenate([f.last_raw_obs for f in fragments], axis=0)
        final_obs, final_index = _finals(fragments, [share.start for share in self.pool.copies])
        problem = _first_nonfinite(raw, rewards, final_obs, final_index, self.raw_obs)
        if problem is not None:  # before anything learns from the batch or counts its episodes
            what, t, n = problem
            step = self.total_steps + t * N + n + 1  # counting env steps as total_steps does
            self.total_steps += T * N
            self._fresh_episodes()  # the batch is dropped, and the episodes it was part of restart
            raise NonFiniteError(f"env copy {n} returned {what} at env step {step}")

        # Episode bookkeeping and each copy's running discounted return, step by step as if stepped here.
        scaling = self.reward_scaler.enabled
        ret_buf = np.empty((T, N), np.float64) if scaling else None
        ep_returns, ep_lengths = [], []
        dones = terminated | truncated
        ends = dones.any(axis=1)
        for t in range(T):
            reward, done = rewards[t], dones[t]
            if scaling:
                ret_buf[t] = self.reward_scaler.accumulate(reward, done)
            self.ep_return += reward
            self.ep_length += 1
            if ends[t]:
                for n in np.flatnonzero(done):
                    ep_returns.append(float(self.ep_return[n]))
                    ep_lengths.append(int(self.ep_length[n]))
                self.ep_return[done] = 0.0
                self.ep_length[done] = 0

        obs_dim = raw.shape[-1]
        last_obs = acting_norm.normalize(self.raw_obs)
        final = acting_norm.normalize(final_obs) if len(final_obs) else np.empty((0, obs_dim), np.float32)
        # The per-batch update, once, in copy order within each step. Nothing acts on rewards, so they
        # are scaled with the statistics that include this batch (the first batch too has a scale).
        if self.norm_obs_steps is None or self.total_steps < self.norm_obs_steps:
            self.obs_norm.update(raw.reshape(T * N, obs_dim))
        if scaling:
            self.reward_scaler.update(ret_buf.reshape(-1))
        scaled = self.reward_scaler.scale(rewards)
        self.total_steps += T * N

        to = lambda a: torch.from_numpy(a).to(self.device)  # noqa: E731
        obs_t, actions_t = to(obs), to(actions)
        # One batched pass instead of T small ones, with the policy as it acted.
        log_probs = acting_policy(obs_t.reshape(T * N, -1)).log_prob(actions_t.reshape(T * N, *self.act_shape))
        return Batch(
            obs=obs_t,
            actions=actions_t,
            log_probs=log_probs.reshape(T, N),
            rewards=to(scaled),
            terminated=to(terminated),
            truncated=to(truncated),
            last_obs=to(last_obs),
            final_obs=to(final),
            final_index=torch.from_numpy(final_index),
            episode_returns=ep_returns,
            episode_lengths=ep_lengths,
            acted_by=acting_policy,
        )

    def state(self) -> dict:
        if self.busy:
            if self._captured is None:
                raise RuntimeError("the state of a sampler with a batch out is known only if start() captured it")
            return {**self._captured, "in_flight": {"policy": self._acting[0].state_dict()}}
        if self._deferred is not None:
            return {**self._state_now(), "in_flight": {"policy": self._deferred}}
        return self._state_now()

    def _state_now(self) -> dict:
        try:
            env_states = [snap for share in self.pool.call("snapshot") for snap in share]
        except ConfigError:  # an env whose state cannot be captured: a resume starts fresh episodes
            env_states = None
        return {
            "kind": "vector",
            "total_steps": self.total_steps,
            "obs_norm": self.obs_norm.state(),
            "reward_norm": self.reward_scaler.state(),
            "reward_returns": self.reward_scaler.returns.tolist(),
            "rngs": [rng.bit_generator.state for rng in self.rngs],
            "raw_obs": self.raw_obs.tolist(),
            "ep_return": self.ep_return.tolist(),
            "ep_length": self.ep_length.tolist(),
            "envs": env_states,
        }

    def load_state(self, state: dict) -> list[str]:
        N, obs_shape = self.n_envs, self.raw_obs.shape
        if (state.get("kind") != "vector" or len(state["rngs"]) != N
                or np.shape(state["raw_obs"]) != obs_shape or np.shape(state["reward_returns"]) != (N,)
                or np.shape(state["ep_return"]) != (N,) or np.shape(state["ep_length"]) != (N,)
                or np.shape(state["obs_norm"]["mean"]) != self.obs_norm.rms.mean.shape
                or np.shape(state["obs_norm"]["var"]) != self.obs_norm.rms.mean.shape
                or (state.get("envs") is not None and len(state["envs"]) != N)):
            raise ConfigError("the checkpoint's sampler state does not match this run's env copies")
        self.total_steps = int(state["total_steps"])
        self._resend = state["in_flight"]["policy"] if state.get("in_flight") else None
        self.obs_norm.load_state(state["obs_norm"])
        self.reward_scaler.load_state(state["reward_norm"])
        self.reward_scaler.returns = np.asarray(state["reward_returns"], np.float64)
        for rng, rng_state in zip(self.rngs, state["rngs"]):
            rng.bit_generator.state = rng_state
        if state.get("envs") is not None and all(self.pool.call("can_restore")):
            raw_obs = np.asarray(state["raw_obs"], np.float64)
            self.pool.call("restore", [(state["envs"][share.start:share.stop], raw_obs[share].tolist())
                                       for share in self.pool.copies])
            self.raw_obs = raw_obs
            self.ep_return = np.asarray(state["ep_return"], np.float64)
            self.ep_length = np.asarray(state["ep_length"], np.int64)
            return []
        self._fresh_episodes()  # the env state could not be captured
        return [f"resumed with fresh episodes: the state of {self.pool.env_id} cannot be captured here, "
                "so the continuation is not bit-for-bit the run that stopped"]

    def close(self) -> None:
        self.pool.close()


def _first_nonfinite(raw: np.ndarray, rewards: np.ndarray, final_obs: np.ndarray, final_index: np.ndarray,
                     last_obs: np.ndarray) -> tuple[str, int, int] | None:
    """The earliest thing not finite in a batch -- ``raw`` (T, N, d), ``rewards`` (T, N), the final observations
    at ``final_index`` rows ``(t, copy)``, the observations after the batch (N, d) -- as (what, t, copy) with
    ``t`` the step that returned it; None if everything is finite."""
    T, N = rewards.shape
    found = []  # (t, copy, what)
    bad = ~np.isfinite(rewards)
    if bad.any():
        t, n = np.argwhere(bad)[0]
        found.append((t, n, f"a non-finite reward ({rewards[t, n]})"))
    bad = ~np.isfinite(raw).all(axis=tuple(range(2, raw.ndim)))
    if bad.any():
        t, n = np.argwhere(bad)[0]
        found.append((t - 1, n, "a non-finite observation"))  # returned by the step before
    bad = ~np.isfinite(final_obs).all(axis=tuple(range(1, final_obs.ndim)))
    if bad.any():
        t, n = final_index[np.argmax(bad)]
        found.append((t, n, "a non-finite final observation"))
    bad = ~np.isfinite(last_obs).all(axis=tuple(range(1, last_obs.ndim)))
    if bad.any():
        found.append((T - 1, int(np.argmax(bad)), "a non-finite observation"))
    if not found:
        return None
    t, n, what = min(found, key=lambda item: (item[0], item[1]))
    return what, int(t), int(n)


def _within(positions: np.ndarray | None, share: range) -> np.ndarray | None:
    """The ``(t, copy)`` rows of ``positions`` in ``share``, copies counted from the share's first."""
    if positions is None:
        return None
    rows = positions[(positions[:, 1] >= share.start) & (positions[:, 1] < share.stop)]
    return rows - np.array([0, share.start])


def _finals(fragments: list[Fragment], firsts: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """The truncated steps' final observations of all fragments, at run-wide ``(t, copy)``, in step-then-copy order."""
    index = np.concatenate([f.final_index + np.array([0, first]) for f, first in zip(fragments, firsts)])
    obs = np.concatenate([f.final_obs for f in fragments])
    order = np.lexsort((index[:, 1], index[:, 0]))
    return obs[order], index[order]

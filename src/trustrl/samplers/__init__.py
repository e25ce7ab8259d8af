"""Sources of experience. The run loop is handed a sampler; it never builds one inside.

A sampler turns the current policy into a :class:`~trustrl.batch.Batch` and owns what that
takes: the envs or the dataset, the observation and reward statistics the
batches are normalised with, the random streams, and the count of env steps.
Its ``state()`` is plain JSON, so a checkpoint carries it and a resumed run
continues it exactly.

- :class:`~trustrl.samplers.vector.VectorSampler`: ``n_envs`` copies of an env, ``n_steps`` each per batch,
  wherever the copies run (:func:`~trustrl.samplers.placement.make_pool`: this process, worker processes,
  Ray actors);
- :class:`~trustrl.samplers.asynchronous.AsyncSampler`: a vector sampler that collects the next batch while
  the learner updates on this one;
- :class:`~trustrl.samplers.vine.VineSampler`: a vector sampler's batch as the trunk, plus rollouts branched
  from some of its states with the env restored there (vine sampling); the batch then carries ``branches``;
- :class:`~trustrl.samplers.dataset.DatasetSampler`: a Minari dataset, the whole of it per batch, statistics frozen.

What crosses to a worker -- :mod:`~trustrl.samplers.fragments` (the collector),
:mod:`~trustrl.samplers.actor` (the policy as numpy arrays), :mod:`~trustrl.samplers.worker` (the process's
entry point) -- imports no torch, and neither does this package's ``__init__``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import gymnasium as gym

    from trustrl.batch import Batch
    from trustrl.nets import Policy
    from trustrl.normalization import ObsNormalizer, RewardScaler

__all__ = ["Sampler"]


class Sampler(Protocol):
    total_steps: int
    """Transitions produced so far (env steps, or dataset transitions processed)."""
    obs_norm: ObsNormalizer
    """The statistics the next batch will be normalised with (and a checkpoint of now holds)."""
    reward_scaler: RewardScaler
    observation_space: gym.Space
    """The single-copy spaces the batches are of (what a checkpoint records and checks)."""
    action_space: gym.Space

    def collect(self, policy: Policy, last: bool = False) -> Batch:
        """One batch of experience for ``policy`` (which must not change during the call).

        ``last``: no batch follows this one in this run, so an asynchronous sampler sends none off.
        """
        ...

    def state(self) -> dict:
        """Everything needed to continue exactly from here, as JSON-able values."""
        ...

    def load_state(self, state: dict) -> list[str]:
        """Continue from ``state``; returns notes for the log (e.g. what could not be restored)."""
        ...

    def close(self) -> None: ...

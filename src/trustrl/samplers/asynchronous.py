"""Asynchronous sampling: the next batch is collected, with the policy as it is, while the learner updates.

The batch the learner gets was acted on by the policy one update older than the one it updates, so it
is marked ``stale`` and the algorithm weights it by pi_theta / beta (beta: the policy that acted). With
worker processes or Ray actors the simulation overlaps the update; with the copies in this process the
two still take turns.
"""

from __future__ import annotations

from trustrl.batch import Batch
from trustrl.errors import NonFiniteError
from trustrl.nets import Policy
from trustrl.normalization import ObsNormalizer, RewardScaler
from trustrl.samplers.vector import VectorSampler


class AsyncSampler:
    """A :class:`VectorSampler` that keeps one batch out: :meth:`collect` gathers it and sends the next."""

    def __init__(self, sampler: VectorSampler):
        self.sampler = sampler
        self.observation_space, self.action_space = sampler.observation_space, sampler.action_space

    @property
    def total_steps(self) -> int:
        return self.sampler.total_steps

    @property
    def obs_norm(self) -> ObsNormalizer:
        return self.sampler.obs_norm

    @property
    def reward_scaler(self) -> RewardScaler:
        return self.sampler.reward_scaler

    def collect(self, policy: Policy, last: bool = False) -> Batch:
        """The batch sent off before (by the policy one update older), and the next one sent off with ``policy``.

        The first call of a run -- or of a resumed run, which re-sends the batch it had out -- sends one
        first. A run's last batch sends none; its checkpoint still records which policy would act next,
        so a run extended by ``--resume`` is the run that never stopped.
        """
        if not self.sampler.busy:
            self.sampler.start(policy, capture=True)
        try:
            batch = self.sampler.finish()
        except NonFiniteError:  # dropped: the next call sends the next batch, with the same policy and state
            if last:
                self.sampler.defer(policy)
            raise
        batch.stale = True
        if last:
            self.sampler.defer(policy)
        else:  # the next batch, with this policy, while this one is learned from
            self.sampler.start(policy, capture=True)
        return batch

    def state(self) -> dict:
        return self.sampler.state()

    def load_state(self, state: dict) -> list[str]:
        return self.sampler.load_state(state)

    def close(self) -> None:
        self.sampler.close()

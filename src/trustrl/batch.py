"""The unit of experience every sampler produces and every algorithm consumes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from torch import Tensor

if TYPE_CHECKING:
    from trustrl.nets import Policy


@dataclass
class Branches:
    """Vine sampling's rollouts: ``K`` actions tried at each of ``M`` states of the batch's trunk.

    Q(s_n, a_k) is the discounted sum of a branch's (scaled) rewards, plus gamma^h V at the
    horizon or a time limit where ``bootstrap`` says so; :mod:`trustrl.advantages` fills it in.
    """

    index: Tensor  # (M, 2) long: the (t, n) positions of the rollout states in the trunk
    obs: Tensor  # (M, obs_dim) the rollout states, normalised as the policy saw them
    actions: Tensor  # (M, K, act_dim) or (M, K) (Discrete): the first action of each branch (dtypes: action_layout)
    log_probs: Tensor  # (M, K) log pi_old(a_k|s_n)
    rewards: Tensor  # (M, K, H) scaled like the trunk's, 0 after a branch's last step
    lengths: Tensor  # (M, K) long: steps each branch simulated
    end_obs: Tensor  # (M, K, obs_dim) normalised: where each branch stopped
    bootstrap: Tensor  # (M, K) bool: add gamma^length V(end_obs)
    exact: bool  # a Discrete space: the K branches are every action, and the surrogate sums over them
    kl_states: str = "trunk"  # where the trust region's KL is measured: the rollout states or the whole trunk
    critic_on_branches: bool = False  # the critic is fitted on ``values`` at ``obs`` too
    # Filled by trustrl.advantages:
    q_values: Tensor | None = None  # (M, K)
    values: Tensor | None = None  # (M,) each rollout state's value from its branches (the advantages' baseline)
    advantages: Tensor | None = None  # (M, K) Q minus the state's baseline (standardised if asked)


@dataclass
class Batch:
    """One batch of ``T`` steps from ``N`` env copies (or dataset columns); every tensor is time-major ``(T, N, ...)``.

    ``final_obs`` holds the true last observation of each episode that ended
    by truncation, at the positions ``final_index`` (rows of ``(t, n)``), so a
    truncated step can bootstrap from V(final observation). Observations are
    normalised with the statistics the batch was acted on with.
    """

    obs: Tensor  # (T, N, obs_dim), normalised as the policy saw them
    actions: Tensor  # (T, N, act_dim), or (T, N) for Discrete; dtype from trustrl.envs.actions.action_layout
    log_probs: Tensor  # (T, N) log pi_old(a|s) of the policy that acted (a dataset's: its behaviour policy's, or 0)
    rewards: Tensor  # (T, N), scaled if reward normalisation is on
    terminated: Tensor  # (T, N) bool: the episode ended in a terminal state (no bootstrap)
    truncated: Tensor  # (T, N) bool: cut by a time limit (bootstrap from final_obs)
    last_obs: Tensor  # (N, obs_dim): where the next batch starts
    final_obs: Tensor  # (K, obs_dim): true final observations of the K truncated steps
    final_index: Tensor  # (K, 2) long: their (t, n) positions
    episode_returns: list[float] = field(default_factory=list)  # raw (unscaled) returns finished in this batch
    episode_lengths: list[int] = field(default_factory=list)
    valid: Tensor | None = None  # (T, N) bool: real transitions (a packed dataset pads its columns); None: all
    behaviour_log_probs: Tensor | None = None  # (T, N) log beta(a|s) recorded with a dataset
    behaviour_params: dict[str, Tensor] | None = None  # beta's distribution parameters, (T, N, k) each
    stale: bool = False  # acted on by an earlier policy than the one it updates: ratios are pi_theta / log_probs'
    branches: Branches | None = None  # vine sampling: the policy step learns from these, the critic from the trunk
    acted_by: Policy | None = None  # a copy of the policy that acted (the one a best chosen by its episodes saves)
    # Filled by trustrl.advantages:
    values: Tensor | None = None  # (T, N) V(s_t)
    next_values: Tensor | None = None  # (T, N) V(s_{t+1}), V(final_obs) at truncations
    advantages: Tensor | None = None  # (T, N)
    returns: Tensor | None = None  # (T, N) advantage + value: the critic's regression target

    @property
    def n_steps(self) -> int:
        """Real transitions in the batch (padding excluded)."""
        if self.valid is not None:
            return int(self.valid.sum())
        return self.obs.shape[0] * self.obs.shape[1]

    def flat(self, name: str) -> Tensor:
        """A field reshaped to ``(T*N, ...)``, keeping only real transitions when the batch is padded."""
        value = getattr(self, name)
        value = value.reshape(-1, *value.shape[2:])
        return value if self.valid is None else value[self.valid.reshape(-1)]

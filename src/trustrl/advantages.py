"""Advantages are made here and only here: critic values, GAE as a pure function, vine Q-values, standardisation.

Values are computed after collection in one batched forward pass
(:func:`attach_values`), which is both faster than per step and lets the
critic used for GAE be chosen after collection.
"""

from __future__ import annotations

import torch
from torch import Tensor

from trustrl.batch import Batch, Branches
from trustrl.nets import ValueNet


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


def standardize(x: Tensor, mask: Tensor | None = None) -> Tensor:
    """``(x - mean) / (std + 1e-8)`` with mean and std over the entries ``mask`` keeps (all when None).

    Entries outside the mask (a dataset's padding) are shifted and scaled too, but never used.
    """
    kept = x if mask is None else x[mask]
    if kept.numel() <= 1:
        return x
    return (x - kept.mean()) / (kept.std() + 1e-8)


def branch_q_values(
    rewards: Tensor, lengths: Tensor, end_values: Tensor, bootstrap: Tensor, gamma: float
) -> Tensor:
    """Q(s_n, a_k) of vine branches: sum_h gamma^h r_h, plus gamma^length V(end) where ``bootstrap``.

    ``rewards`` ``(M, K, H)`` (0 past a branch's end), ``lengths``, ``end_values``, ``bootstrap`` ``(M, K)``.
    """
    discounts = gamma ** torch.arange(rewards.shape[-1], dtype=torch.float64)
    q = (rewards.to(torch.float64) * discounts).sum(-1)
    tail = gamma ** lengths.to(torch.float64) * end_values.to(torch.float64)
    return q + torch.where(bootstrap, tail, torch.zeros_like(tail))


def branch_baseline(q_values: Tensor, old_log_probs: Tensor, exact: bool) -> Tensor:
    """Each state's value from its branches, ``(M,)``: the pi_old-weighted mean of Q over every action
    (``exact``), else the plain mean over the sampled actions (an unbiased estimate of V(s_n) when they were
    drawn from pi_old). Both vine surrogates are unchanged by a per-state constant, so subtracting it only
    centres the numbers the trust-region step sees."""
    if exact:
        return (old_log_probs.exp() * q_values).sum(-1)
    return q_values.mean(-1)


@torch.no_grad()
def attach_branch_advantages(branches: Branches, critic: ValueNet | None, gamma: float, normalize: bool) -> None:
    """Fill ``branches.q_values`` and ``branches.advantages`` (V at the branch ends from ``critic``; None: 0)."""
    M, K = branches.lengths.shape
    if critic is None or not bool(branches.bootstrap.any()):
        end_values = torch.zeros(M, K, dtype=torch.float64)
    else:
        end_values = critic(branches.end_obs.reshape(M * K, -1)).reshape(M, K)
    q = branch_q_values(branches.rewards, branches.lengths, end_values, branches.bootstrap, gamma)
    baseline = branch_baseline(q, branches.log_probs.to(torch.float64), branches.exact)
    advantages = q - baseline.unsqueeze(-1)
    if normalize:
        advantages = standardize(advantages)
    branches.q_values, branches.values, branches.advantages = q.float(), baseline.float(), advantages.float()


def compute_advantages(batch: Batch, critic: ValueNet | None, gamma: float, lam: float, normalize: bool) -> None:
    """Fill ``batch.values/next_values/advantages/returns`` with the current critic (None: V = 0), and the
    vine branches' Q-values and advantages when the batch has them."""
    attach_values(batch, critic)
    advantages, returns = gae(
        batch.rewards, batch.values, batch.next_values, batch.terminated, batch.truncated, gamma, lam
    )
    if normalize:
        advantages = standardize(advantages, batch.valid)
    batch.advantages, batch.returns = advantages, returns
    if batch.branches is not None:
        attach_branch_advantages(batch.branches, critic, gamma, normalize)

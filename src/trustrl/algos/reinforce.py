"""REINFORCE (Williams 1992): ascend E[ sum_t grad log pi(a_t|s_t) * (G_t - b(s_t)) ].

G_t is the discounted Monte-Carlo return-to-go, which is GAE with lambda = 1
(the trainer computes it; ``algo.gae_lambda`` is fixed to 1). The sampler cuts
episodes at batch boundaries, so one of two honest choices is made:

- ``baseline = true``: ``b = V``, the critic, and the advantage is exactly
  ``G_t - V(s_t)``; an episode cut by the batch boundary (or a time limit)
  bootstraps its return from V there, as GAE does everywhere in trustrl.
- ``baseline = false`` (pure Monte Carlo): no critic is used (the trainer
  computes returns with V = 0, ``uses_critic = False``), and only the steps
  whose episode ends inside the batch enter the loss -- a step whose episode
  is still running has no complete return, so it is dropped, not guessed.
  A time-limit truncation counts as the end of a (finite) episode.

The policy takes one Adam step per batch. With ``normalize_advantage`` the
weights are standardised over the steps used, which subtracts a constant
baseline and rescales the step; it does not change which direction is ascended.
"""

from __future__ import annotations

import torch
from torch import Tensor

from trustrl.config import CriticConfig, REINFORCEConfig
from trustrl.nets import Policy, ValueNet
from trustrl.rollout import Batch
from trustrl.value_fit import make_fitter


class REINFORCE:
    def __init__(self, policy: Policy, critic: ValueNet, cfg: REINFORCEConfig, critic_cfg: CriticConfig, generator: torch.Generator):
        self.policy = policy
        self.cfg = cfg
        self.uses_critic = cfg.baseline
        self.optimizer = torch.optim.Adam(policy.parameters(), lr=cfg.lr)
        self.critic_fitter = make_fitter(critic, critic_cfg, generator) if cfg.baseline else None

    def update(self, batch: Batch) -> dict[str, float]:
        if self.cfg.baseline:
            used = torch.ones_like(batch.terminated)
        else:
            used = completed_episode_steps(batch.terminated | batch.truncated)
        mask = used.reshape(-1)
        obs, actions = batch.flat("obs")[mask], batch.flat("actions")[mask]
        weights = batch.flat("advantages")[mask]
        if not self.cfg.baseline and self.cfg.normalize_advantage and len(weights) > 1:
            # the trainer standardised over all steps; re-standardising over the used
            # ones gives exactly their standardisation (it is affine-invariant)
            weights = (weights - weights.mean()) / (weights.std() + 1e-8)

        grad_norm, entropy = 0.0, float("nan")
        if len(obs):
            dist = self.policy(obs)
            entropy_t = dist.entropy().mean()
            loss = -(dist.log_prob(actions) * weights).mean() - self.cfg.entropy_coef * entropy_t
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            max_norm = self.cfg.max_grad_norm or float("inf")
            grad_norm = float(torch.nn.utils.clip_grad_norm_(self.policy.parameters(), max_norm))
            self.optimizer.step()
            entropy = entropy_t.item()

        stats = {"grad_norm": grad_norm, "entropy": entropy, "used_fraction": float(mask.float().mean())}
        if self.critic_fitter is not None:
            stats.update(self.critic_fitter.fit(batch.flat("obs"), batch.flat("returns")))
        return stats


def completed_episode_steps(done: Tensor) -> Tensor:
    """``(T, N)`` bool: steps at or before the last episode end of their env in this batch.

    Those steps belong to episodes that finished inside the batch, so their
    return-to-go is a complete Monte-Carlo sum.
    """
    flipped = done.flip(0).to(torch.int8)
    return flipped.cummax(0).values.flip(0).bool()

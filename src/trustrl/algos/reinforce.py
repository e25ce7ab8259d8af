"""REINFORCE with a learned baseline (Williams 1992): ascend E[ sum_t grad log pi(a_t|s_t) (G_t - V(s_t)) ].

G_t is the discounted return-to-go, which is GAE with lambda = 1 (the run
loop computes it; ``algo.gae_lambda`` is fixed to 1). The sampler cuts
episodes at batch boundaries, and an episode cut there (or by a time limit)
bootstraps its return from V -- as GAE does everywhere in trustrl -- so every
step of the batch is used and none depends on how the future turns out.

The policy takes one Adam step per batch; the critic is then fitted by
``critic.fit``. With ``normalize_advantage`` the weights are standardised
over the batch, which subtracts a constant and rescales the step; it does
not change which direction is ascended.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from trustrl.algos.base import AlgoConfig, Algorithm, make_fitter
from trustrl.batch import Batch
from trustrl.config.limits import positive
from trustrl.errors import ConfigError
from trustrl.nets import Policy, ValueNet

if TYPE_CHECKING:
    from trustrl.config.sections import CriticConfig


@dataclass
class REINFORCEConfig(AlgoConfig):
    """REINFORCE (Williams 1992): Monte-Carlo returns-to-go, one Adam step on the policy per batch."""

    name: str = "reinforce"
    """Which update rule: one of ``trustrl.algos.ALGORITHMS``."""
    gae_lambda: float = 1.0
    """Must be 1: REINFORCE weights by Monte-Carlo returns-to-go (use ``a2c`` for lambda-returns)."""
    baseline: bool = True
    """Must be true to train: the advantage is G_t - V(s_t) with the critic fitted by ``critic.fit``, and
    an episode cut by the batch boundary bootstraps its return from V there. (Pure Monte Carlo with no
    baseline would have to drop or guess the steps of episodes still running at the boundary.)
    ``false`` is still read, so runs saved with it can be evaluated, but training with it is refused."""
    lr: float = 1e-3
    """Adam learning rate of the policy."""
    max_grad_norm: float | None = None
    """Clip the policy gradient to this global norm; None disables."""

    def validate(self) -> None:
        super().validate()
        if self.gae_lambda != 1.0:
            raise ConfigError(
                f"algo.gae_lambda must be 1.0 for reinforce (Monte-Carlo returns), got {self.gae_lambda}; "
                "use algo.name=a2c for lambda-returns"
            )
        positive("algo.lr", self.lr)
        if self.max_grad_norm is not None:
            positive("algo.max_grad_norm", self.max_grad_norm)


class REINFORCE(Algorithm):
    config = REINFORCEConfig
    def __init__(self, policy: Policy, critic: ValueNet, cfg: REINFORCEConfig, critic_cfg: CriticConfig, generator: torch.Generator):
        if not cfg.baseline:  # refused here, not in the config, so runs saved with it can still be evaluated
            raise ConfigError(
                "algo.baseline = false is not supported: without a critic the steps of episodes still "
                "running at the batch boundary have no return; reinforce always subtracts V(s_t)"
            )
        self.policy = policy
        self.cfg = cfg
        self.optimizer = torch.optim.Adam(policy.parameters(), lr=cfg.lr)
        self.critic_fitter = make_fitter(critic, critic_cfg, generator)

    def update(self, batch: Batch) -> dict[str, float]:
        obs, actions, weights = batch.flat("obs"), batch.flat("actions"), batch.flat("advantages")
        dist = self.policy(obs)
        entropy = dist.entropy().mean()
        loss = -(dist.log_prob(actions) * weights).mean() - self.cfg.entropy_coef * entropy
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        max_norm = self.cfg.max_grad_norm or float("inf")
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.policy.parameters(), max_norm))
        self.optimizer.step()
        stats = {"grad_norm": grad_norm, "entropy": entropy.item()}
        stats.update(self.critic_fitter.fit(obs, batch.flat("returns")))
        return stats

    def state_dict(self) -> dict:
        return {"optimizer": self.optimizer.state_dict(), **super().state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        super().load_state_dict(state)

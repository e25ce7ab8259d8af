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

import torch

from trustrl.algos.base import Algorithm
from trustrl.config import CriticConfig, REINFORCEConfig
from trustrl.errors import ConfigError
from trustrl.nets import Policy, ValueNet
from trustrl.samplers.batch import Batch
from trustrl.value_fit import make_fitter


class REINFORCE(Algorithm):
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
        return {"optimizer": self.optimizer.state_dict(), "critic": self.critic_fitter.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.critic_fitter.load_state_dict(state["critic"])

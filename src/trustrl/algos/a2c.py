"""Synchronous advantage actor-critic, A2C (Mnih et al. 2016): one gradient step per batch.

loss = -mean(log pi(a|s) * A) - entropy_coef * mean H[pi(.|s)] + vf_coef * mean (V(s) - R)^2

A are the run loop's GAE advantages (``gae_lambda = 1`` with a short
``run.n_steps`` is the paper's n-step estimate) and R = A + V the returns.
Policy and critic are separate networks in one Adam optimizer (learning rates
``algo.lr`` and ``critic.lr``), and the joint gradient is clipped to
``max_grad_norm``. With ``critic.fit = "lbfgs"`` the loss is the policy part
only and the critic is fitted by L-BFGS afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from trustrl.algos.actor_critic import ActorCriticAlgorithm
from trustrl.algos.base import AlgoConfig
from trustrl.batch import Batch
from trustrl.config.limits import positive
from trustrl.value_fit import fit_report, l2_penalty, value_loss


@dataclass
class A2CConfig(AlgoConfig):
    """Advantage actor-critic (Mnih et al. 2016, synchronous): one gradient step per batch.

    n-step advantages are ``gae_lambda = 1`` with a short ``run.n_steps``;
    any other lambda gives GAE advantages.
    """

    name: str = "a2c"
    """Which update rule: one of ``trustrl.algos.ALGORITHMS``."""
    entropy_coef: float = 0.01
    """Weight of the mean policy entropy added to the objective."""
    lr: float = 7e-4
    """Adam learning rate of the policy (the critic uses ``critic.lr``)."""
    vf_coef: float = 0.5
    """Weight of the value loss in the joint loss (matters through the shared gradient clipping)."""
    max_grad_norm: float | None = 0.5
    """Clip the joint gradient of policy and critic to this global norm; None disables."""

    def validate(self) -> None:
        super().validate()
        positive("algo.lr", self.lr)
        positive("algo.vf_coef", self.vf_coef)
        if self.max_grad_norm is not None:
            positive("algo.max_grad_norm", self.max_grad_norm)


class A2C(ActorCriticAlgorithm):
    config = A2CConfig
    cfg: A2CConfig

    def update(self, batch: Batch) -> dict[str, float]:
        obs, actions = batch.flat("obs"), batch.flat("actions")
        advantages, returns = batch.flat("advantages"), batch.flat("returns")
        before = value_loss(self.critic, obs, returns)

        dist = self.policy(obs)
        old_dist = dist.detach()
        entropy = dist.entropy().mean()
        policy_loss = -(dist.log_prob(actions) * advantages).mean()
        loss = policy_loss - self.cfg.entropy_coef * entropy
        if self.joint:
            v_loss = (self.critic(obs) - returns).pow(2).mean() + l2_penalty(self.critic, self.critic_cfg.l2)
            loss = loss + self.cfg.vf_coef * v_loss
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, self.cfg.max_grad_norm or float("inf"))
        self.optimizer.step()

        with torch.no_grad():
            kl = float(old_dist.kl(self.policy(obs)).mean())
        if self.joint:
            critic_stats = fit_report(self.critic, obs, returns, before)
        else:
            critic_stats = self.critic_fitter.fit(obs, returns)
        return {
            "policy_loss": policy_loss.item(),
            "entropy": entropy.item(),
            "kl": kl,
            "grad_norm": float(grad_norm),
            **critic_stats,
        }

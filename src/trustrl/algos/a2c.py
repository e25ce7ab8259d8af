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

import torch

from trustrl.algos.actor_critic import ActorCriticAlgorithm
from trustrl.config import A2CConfig
from trustrl.samplers.batch import Batch
from trustrl.value_fit import fit_report, l2_penalty, value_loss


class A2C(ActorCriticAlgorithm):
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

"""Synchronous advantage actor-critic, A2C (Mnih et al. 2016): one gradient step per batch.

loss = -mean(log pi(a|s) * A) - entropy_coef * mean H[pi(.|s)] + vf_coef * mean (V(s) - R)^2

A are the trainer's GAE advantages (``gae_lambda = 1`` with a short
``run.n_steps`` is the paper's n-step estimate) and R = A + V the returns.
Policy and critic are separate networks in one Adam optimizer (learning rates
``algo.lr`` and ``critic.lr``), and the joint gradient is clipped to
``max_grad_norm``. With ``critic.fit = "lbfgs"`` the loss is the policy part
only and the critic is fitted by L-BFGS afterwards.
"""

from __future__ import annotations

import torch

from trustrl.algos.actor_critic import joint_adam
from trustrl.config import A2CConfig, CriticConfig
from trustrl.nets import Policy, ValueNet
from trustrl.rollout import Batch
from trustrl.value_fit import fit_report, l2_penalty, value_loss


class A2C:
    def __init__(self, policy: Policy, critic: ValueNet, cfg: A2CConfig, critic_cfg: CriticConfig, generator: torch.Generator):
        self.policy = policy
        self.critic = critic
        self.cfg = cfg
        self.critic_cfg = critic_cfg
        self.optimizer, self.params, self.critic_fitter = joint_adam(policy, critic, cfg.lr, critic_cfg, generator)
        self.joint = self.critic_fitter is None

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

"""PPO with the clipped surrogate (Schulman et al. 2017).

For ``epochs`` passes over the batch in shuffled minibatches, minimise

    -mean min(r A, clip(r, 1 - eps, 1 + eps) A) - entropy_coef * H + vf_coef * L_V,
    r = pi(a|s) / pi_old(a|s)

with L_V = mean (V(s) - R)^2, or with ``value_clip`` the pessimistic
max((V - R)^2, (V_old + clip(V - V_old, -c, c) - R)^2) (as in the PPO2 code).
Policy and critic are separate networks in one Adam optimizer (learning rates
``algo.lr`` and ``critic.lr``); the joint gradient is clipped to
``max_grad_norm``. With ``target_kl`` the update stops, before stepping, at
the first minibatch whose approximate KL(old || new) -- the low-variance
estimator mean((r - 1) - log r) -- exceeds it. With ``critic.fit = "lbfgs"``
the minibatch loss is the policy part only and the critic is fitted by L-BFGS
on the whole batch afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from trustrl.algos.actor_critic import ActorCriticAlgorithm
from trustrl.algos.base import AlgoConfig
from trustrl.batch import Batch
from trustrl.config.limits import MAX_BATCH, positive
from trustrl.errors import ConfigError
from trustrl.value_fit import fit_report, l2_penalty, value_loss


@dataclass
class PPOConfig(AlgoConfig):
    """PPO with the clipped surrogate (Schulman et al. 2017): epochs of shuffled minibatches."""

    name: str = "ppo"
    """Which update rule: one of ``trustrl.algos.ALGORITHMS``."""
    lr: float = 3e-4
    """Adam learning rate of the policy (the critic uses ``critic.lr``)."""
    epochs: int = 10
    """Passes over the batch per update."""
    minibatch: int = 64
    """Minibatch size (transitions) for each gradient step."""
    clip_range: float = 0.2
    """epsilon: the ratio pi/pi_old is clipped to [1 - epsilon, 1 + epsilon] in the surrogate."""
    vf_coef: float = 0.5
    """Weight of the value loss in the joint loss (matters through the shared gradient clipping)."""
    value_clip: float | None = None
    """Clip V(s) to within this distance of its value at collection time in the value loss; None disables."""
    target_kl: float | None = None
    """Stop the update as soon as a minibatch's approximate KL(old || new) exceeds this; None disables."""
    max_grad_norm: float | None = 0.5
    """Clip the joint gradient of policy and critic to this global norm; None disables."""

    def validate(self) -> None:
        super().validate()
        positive("algo.lr", self.lr)
        positive("algo.epochs", self.epochs, 10_000)
        positive("algo.minibatch", self.minibatch, MAX_BATCH)
        if not 0.0 < self.clip_range < 1.0:
            raise ConfigError(f"algo.clip_range must be in (0, 1), got {self.clip_range}")
        positive("algo.vf_coef", self.vf_coef)
        for key in ("value_clip", "target_kl", "max_grad_norm"):
            if getattr(self, key) is not None:
                positive(f"algo.{key}", getattr(self, key))


class PPO(ActorCriticAlgorithm):
    config = PPOConfig
    cfg: PPOConfig

    def update(self, batch: Batch) -> dict[str, float]:
        cfg = self.cfg
        obs, actions = batch.flat("obs"), batch.flat("actions")
        advantages, returns = batch.flat("advantages"), batch.flat("returns")
        old_log_probs, old_values = batch.flat("log_probs"), batch.flat("values")
        before = value_loss(self.critic, obs, returns)
        with torch.no_grad():
            old_dist = self.policy(obs)

        n = len(obs)
        steps, stopped = 0, False
        sums = {"policy_loss": 0.0, "clip_fraction": 0.0, "approx_kl": 0.0, "grad_norm": 0.0}
        for _ in range(cfg.epochs):
            order = torch.randperm(n, generator=self.generator)
            for start in range(0, n, cfg.minibatch):
                idx = order[start : start + cfg.minibatch]
                dist = self.policy(obs[idx])
                log_ratio = dist.log_prob(actions[idx]) - old_log_probs[idx]
                ratio = log_ratio.exp()
                with torch.no_grad():
                    approx_kl = float(((ratio - 1) - log_ratio).mean())
                if cfg.target_kl is not None and approx_kl > cfg.target_kl:
                    stopped = True
                    break
                adv = advantages[idx]
                surrogate = torch.min(ratio * adv, ratio.clamp(1 - cfg.clip_range, 1 + cfg.clip_range) * adv)
                policy_loss = -surrogate.mean()
                loss = policy_loss - cfg.entropy_coef * dist.entropy().mean()
                if self.joint:
                    loss = loss + cfg.vf_coef * self._value_loss(obs[idx], returns[idx], old_values[idx])
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                grad_norm = torch.nn.utils.clip_grad_norm_(self.params, cfg.max_grad_norm or float("inf"))
                self.optimizer.step()
                steps += 1
                sums["policy_loss"] += policy_loss.item()
                sums["clip_fraction"] += float(((ratio - 1).abs() > cfg.clip_range).float().mean())
                sums["approx_kl"] += approx_kl
                sums["grad_norm"] += float(grad_norm)
            if stopped:
                break

        with torch.no_grad():
            new_dist = self.policy(obs)
            kl = float(old_dist.kl(new_dist).mean())
            entropy = float(new_dist.entropy().mean())
        if self.joint:
            critic_stats = fit_report(self.critic, obs, returns, before)
        else:
            critic_stats = self.critic_fitter.fit(obs, returns)
        minibatches_per_epoch = -(-n // cfg.minibatch)
        return {
            **{key: value / max(steps, 1) for key, value in sums.items()},
            "kl": kl,
            "entropy": entropy,
            "epochs_completed": steps / minibatches_per_epoch,
            "early_stopped": float(stopped),
            **critic_stats,
        }

    def _value_loss(self, obs, returns, old_values):
        values = self.critic(obs)
        loss = (values - returns).pow(2)
        if self.cfg.value_clip is not None:
            clipped = old_values + (values - old_values).clamp(-self.cfg.value_clip, self.cfg.value_clip)
            loss = torch.max(loss, (clipped - returns).pow(2))
        return loss.mean() + l2_penalty(self.critic, self.critic_cfg.l2)

"""What A2C and PPO share: one Adam over the policy and, with ``critic.fit = "adam"``, the critic."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from trustrl.algos.base import Algorithm, make_fitter
from trustrl.nets import Policy, ValueNet
from trustrl.value_fit import AdamFitter, LBFGSFitter

if TYPE_CHECKING:
    from trustrl.config.sections import CriticConfig


def joint_adam(
    policy: Policy, critic: ValueNet, lr: float, critic_cfg: CriticConfig, generator: torch.Generator
) -> tuple[torch.optim.Adam, list[torch.nn.Parameter], AdamFitter | LBFGSFitter | None]:
    """``(optimizer, its parameters, separate critic fitter or None)``.

    The critic joins the policy's optimizer (at its own ``critic.lr``) when it
    is fitted by Adam; with ``critic.fit = "lbfgs"`` it is fitted separately
    after the policy step, and the optimizer holds the policy alone.
    """
    groups = [{"params": list(policy.parameters()), "lr": lr}]
    joint = critic_cfg.fit == "adam"
    if joint:
        groups.append({"params": list(critic.parameters()), "lr": critic_cfg.lr})
    params = [p for g in groups for p in g["params"]]
    return torch.optim.Adam(groups, eps=1e-5), params, None if joint else make_fitter(critic, critic_cfg, generator)


class ActorCriticAlgorithm(Algorithm):
    """The setup and the optimiser state of an algorithm whose policy loss may carry the value loss."""

    def __init__(self, policy: Policy, critic: ValueNet, cfg, critic_cfg: CriticConfig, generator: torch.Generator):
        self.policy = policy
        self.critic = critic
        self.cfg = cfg
        self.critic_cfg = critic_cfg
        self.generator = generator
        self.optimizer, self.params, self.critic_fitter = joint_adam(policy, critic, cfg.lr, critic_cfg, generator)
        self.joint = self.critic_fitter is None  # the critic trains inside the loss, not after it

    def state_dict(self) -> dict:
        return {"optimizer": self.optimizer.state_dict(), **super().state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        super().load_state_dict(state)

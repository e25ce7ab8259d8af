"""The optimizer A2C and PPO share: one Adam over the policy and, with ``critic.fit = "adam"``, the critic."""

from __future__ import annotations

import torch

from trustrl.config import CriticConfig
from trustrl.nets import Policy, ValueNet
from trustrl.value_fit import AdamFitter, LBFGSFitter, make_fitter


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

"""Update rules: each algorithm is an :class:`~trustrl.algos.base.Algorithm` with ``update(batch) -> metrics``.

Each file holds one rule with its settings (``TRPOConfig`` beside ``TRPO``) and declares what it can learn
from (:class:`~trustrl.algos.base.Capabilities`); the config is checked against that declaration, never
against a list of names. Adding an algorithm is a file and a line in :data:`ALGORITHMS`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from trustrl.algos.a2c import A2C, A2CConfig
from trustrl.algos.base import AlgoConfig, Algorithm, Capabilities, SeparateCriticAlgorithm
from trustrl.algos.natural import NaturalGradientConfig
from trustrl.algos.npg import NPG, NPGConfig
from trustrl.algos.offline_trpo import OfflineTRPO
from trustrl.algos.ppo import PPO, PPOConfig
from trustrl.algos.reinforce import REINFORCE, REINFORCEConfig
from trustrl.algos.trpo import TRPO, TRPOConfig
from trustrl.errors import ConfigError
from trustrl.nets import Policy, ValueNet

if TYPE_CHECKING:
    from trustrl.config import Config

#: Algorithm name (``algo.name``) -> its update rule.
ALGORITHMS: dict[str, type[Algorithm]] = {"reinforce": REINFORCE, "a2c": A2C, "npg": NPG, "trpo": TRPO, "ppo": PPO}

__all__ = ["A2CConfig", "ALGORITHMS", "AlgoConfig", "Algorithm", "Capabilities", "NPGConfig", "NaturalGradientConfig",
           "PPOConfig", "REINFORCEConfig", "SeparateCriticAlgorithm", "TRPOConfig", "able", "make_algorithm",
           "make_offline_algorithm"]


def able(capability: str) -> list[str]:
    """The names of the algorithms that declare ``capability`` (a :class:`Capabilities` field)."""
    return [name for name, algo in ALGORITHMS.items() if getattr(algo.capabilities, capability)]


def make_algorithm(cfg: Config, policy: Policy, critic: ValueNet, generator: torch.Generator) -> Algorithm:
    return ALGORITHMS[cfg.algo.name](policy, critic, cfg.algo, cfg.critic, generator)


def make_offline_algorithm(
    cfg: Config, policy: Policy, critic: ValueNet, generator: torch.Generator, behaviour_return: float,
    censor_at: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> OfflineTRPO:
    if not ALGORITHMS[cfg.algo.name].capabilities.offline:
        raise ConfigError(f"offline training takes trust-region steps: algo.name must be "
                          f"{' or '.join(able('offline'))}, got {cfg.algo.name!r}")
    return OfflineTRPO(policy, critic, cfg.algo, cfg.critic, generator, cfg.offline, behaviour_return, censor_at)

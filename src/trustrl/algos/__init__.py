"""Update rules: each algorithm is an :class:`~trustrl.algos.base.Algorithm` with ``update(batch) -> metrics``.

The run loop builds one with :func:`make_algorithm` (online) or
:func:`make_offline_algorithm` (from a dataset) and knows nothing else about it
than the :class:`~trustrl.algos.base.Algorithm` interface.
"""

from __future__ import annotations

import torch

from trustrl.algos.a2c import A2C
from trustrl.algos.base import Algorithm, SeparateCriticAlgorithm
from trustrl.algos.npg import NPG
from trustrl.algos.offline_trpo import OfflineTRPO
from trustrl.algos.ppo import PPO
from trustrl.algos.reinforce import REINFORCE
from trustrl.algos.trpo import TRPO
from trustrl.config import ALGO_CONFIGS, Config, TRPOConfig
from trustrl.errors import ConfigError
from trustrl.nets import Policy, ValueNet

ALGORITHMS: dict[str, type[Algorithm]] = {"reinforce": REINFORCE, "a2c": A2C, "npg": NPG, "trpo": TRPO, "ppo": PPO}
assert set(ALGORITHMS) == set(ALGO_CONFIGS), "every algorithm needs a config dataclass and vice versa"

__all__ = ["ALGORITHMS", "Algorithm", "SeparateCriticAlgorithm", "make_algorithm", "make_offline_algorithm"]


def make_algorithm(cfg: Config, policy: Policy, critic: ValueNet, generator: torch.Generator) -> Algorithm:
    return ALGORITHMS[cfg.algo.name](policy, critic, cfg.algo, cfg.critic, generator)


def make_offline_algorithm(
    cfg: Config, policy: Policy, critic: ValueNet, generator: torch.Generator, behaviour_return: float
) -> OfflineTRPO:
    if not isinstance(cfg.algo, TRPOConfig):
        raise ConfigError(f"offline training takes trust-region steps: algo.name must be trpo, got {cfg.algo.name!r}")
    return OfflineTRPO(policy, critic, cfg.algo, cfg.critic, generator, cfg.offline, behaviour_return)

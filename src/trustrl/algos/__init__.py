"""Update rules: each algorithm is a class with ``update(batch) -> metrics``.

The trainer builds one with ``make_algorithm`` and knows nothing else about it,
except one optional flag: an algorithm with ``uses_critic = False`` (REINFORCE
without a baseline) gets its advantages computed with V = 0, i.e. plain
discounted returns-to-go.
"""

from __future__ import annotations

import torch

from trustrl.algos.a2c import A2C
from trustrl.algos.npg import NPG
from trustrl.algos.ppo import PPO
from trustrl.algos.reinforce import REINFORCE
from trustrl.algos.trpo import TRPO
from trustrl.config import ALGO_CONFIGS, Config
from trustrl.nets import Policy, ValueNet

ALGORITHMS = {"reinforce": REINFORCE, "a2c": A2C, "npg": NPG, "trpo": TRPO, "ppo": PPO}
assert set(ALGORITHMS) == set(ALGO_CONFIGS), "every algorithm needs a config dataclass and vice versa"


def make_algorithm(cfg: Config, policy: Policy, critic: ValueNet, generator: torch.Generator):
    return ALGORITHMS[cfg.algo.name](policy, critic, cfg.algo, cfg.critic, generator)

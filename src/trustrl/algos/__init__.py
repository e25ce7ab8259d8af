"""Update rules: each algorithm is a class with ``update(batch) -> metrics``.

The trainer builds one with ``make_algorithm`` and knows nothing else about it.
"""

from __future__ import annotations

import torch

from trustrl.algos.trpo import TRPO
from trustrl.config import Config
from trustrl.nets import Policy, ValueNet

ALGORITHMS = {"trpo": TRPO}


def make_algorithm(cfg: Config, policy: Policy, critic: ValueNet, generator: torch.Generator):
    return ALGORITHMS[cfg.algo.name](policy, critic, cfg.algo, cfg.critic, generator)

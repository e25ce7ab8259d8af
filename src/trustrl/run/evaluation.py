"""Evaluation during training: deterministic episodes on a separate env, statistics frozen.

The episodes reset from the same seeds every time (``EVAL_SEED``, +1, ...), so
two evaluations differ only by the policy; the seeds are apart from
``trustrl eval``'s default, so a report made afterwards with ``trustrl eval``
is on episodes the ``best`` checkpoint was not chosen on. The same code plays
them as ``trustrl eval`` (:func:`trustrl.episodes.run_episodes`): no random
number of the training run is drawn.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trustrl.agent import Agent
from trustrl.config import Config
from trustrl.envs import make_env
from trustrl.episodes import run_episodes
from trustrl.nets import Policy
from trustrl.normalization import ObsNormalizer

EVAL_SEED = 2_000_000


@dataclass
class EvalStats:
    return_mean: float
    return_std: float
    length_mean: float

    def metrics(self) -> dict[str, float]:
        """The metrics.csv columns (``eval/*`` in TensorBoard)."""
        return {"eval_return_mean": self.return_mean, "eval_return_std": self.return_std,
                "eval_length_mean": self.length_mean}


NOT_EVALUATED = EvalStats(float("nan"), float("nan"), float("nan"))


class Evaluator:
    def __init__(self, cfg: Config, episodes: int, seed: int = EVAL_SEED):
        self.cfg = cfg
        self.episodes = episodes
        self.seed = seed
        self.env = make_env(cfg.env)

    def __call__(self, policy: Policy, obs_norm: ObsNormalizer) -> EvalStats:
        """``obs_norm`` must be a frozen copy (:meth:`ObsNormalizer.copy`): evaluation never moves it."""
        actor = Agent(policy, obs_norm, None, self.cfg)
        returns, lengths = run_episodes(actor, self.env, self.episodes, self.seed, deterministic=True)
        return EvalStats(float(np.mean(returns)), float(np.std(returns)), float(np.mean(lengths)))

    def close(self) -> None:
        self.env.close()

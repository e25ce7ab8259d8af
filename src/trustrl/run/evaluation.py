"""Evaluation during training: deterministic episodes on a separate env, statistics frozen.

The episodes reset from the same seeds every time (:func:`training_eval_seeds`: the run's seed and
the episode's index, in a stream of their own), so two evaluations of a run differ only by the
policy, runs of different seeds are evaluated on different episodes, and a report made afterwards
with ``trustrl eval`` is on episodes the ``best`` checkpoint was not chosen on. The same code plays
them as ``trustrl eval`` (:func:`trustrl.episodes.run_episodes`): no random number of the training
run is drawn. Its episodes end at the env's time limit, or at the cap of one that has none
(:func:`trustrl.episodes.step_cap`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from trustrl.agent import Agent
from trustrl.config import Config
from trustrl.envs import make_env
from trustrl.envs.checks import close_env
from trustrl.episodes import EVALUATION_ENV, run_episodes, step_cap
from trustrl.nets import Policy
from trustrl.normalization import ObsNormalizer
from trustrl.seeding import TRAINING_EVAL, reset_seeds

#: The reset seed of the first evaluation episode (then +1, ...) of runs saved before the seeds were
#: the run's own: such a run, resumed, goes on evaluating on the episodes it began with.
LEGACY_EVAL_SEED = 2_000_000


def training_eval_seeds(run_seed: int, episodes: int) -> list[int]:
    """The reset seeds of the evaluation episodes of a run of seed ``run_seed``."""
    return reset_seeds(run_seed, TRAINING_EVAL, range(episodes))


def legacy_eval_seeds(episodes: int) -> list[int]:
    """The evaluation episodes' reset seeds of a run whose checkpoint records none (saved before they did)."""
    return [LEGACY_EVAL_SEED + i for i in range(episodes)]


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
    def __init__(self, cfg: Config, episodes: int):
        self.cfg = cfg
        self.seeds = training_eval_seeds(cfg.run.seed, episodes)
        self.env = make_env(cfg.env)
        step_cap(self.env)  # an env with no time limit is said now, before progress is shown

    def __call__(self, policy: Policy, obs_norm: ObsNormalizer,
                 on_episode: Callable[[int, int], None] | None = None) -> EvalStats:
        """``obs_norm`` must be a frozen copy (:meth:`ObsNormalizer.copy`): evaluation never moves it.
        ``on_episode(done, total)`` runs after each episode (progress)."""
        actor = Agent(policy, obs_norm, None, self.cfg)
        returns, lengths = run_episodes(actor, self.env, self.seeds, deterministic=True, on_episode=on_episode)
        return EvalStats(float(np.mean(returns)), float(np.std(returns)), float(np.mean(lengths)))

    def close(self) -> None:
        close_env(self.env, EVALUATION_ENV)

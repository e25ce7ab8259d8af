"""The loop's own counters and history: with the models and the sampler, all a continuation needs."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class LoopState:
    """The loop's own counters and history: with the models and the sampler, all a continuation needs."""

    update: int = 0  # updates done
    best: float = -math.inf  # best score so far: evaluation mean, or rolling training return without evaluation
    recent_returns: list[float] = field(default_factory=list)  # the last run.best_window training episodes
    recent_lengths: list[int] = field(default_factory=list)
    filmed: int = 0  # training videos written
    eval_initial: float = math.nan
    eval_last: float = math.nan
    skipped: int = 0  # batches dropped (or updates undone) for a NaN or infinity, with run.on_nonfinite = "skip"
    eval_seeds: list[int] = field(default_factory=list)  # reset seeds of the evaluation episodes (empty: none)

    def to_json(self) -> dict:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in vars(self).items()}

    @classmethod
    def from_json(cls, data: dict) -> "LoopState":
        state = cls()
        for key, default in vars(cls()).items():
            value = data.get(key, default)
            setattr(state, key, default if value is None else type(default)(value))
        return state

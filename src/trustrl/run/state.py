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
        """The state a checkpoint recorded; a value of the wrong type or out of range (an edited record) is a
        ValueError naming it, never a silent conversion."""
        if not isinstance(data, dict):
            raise ValueError(f"the loop state must be a table, got {type(data).__name__}")
        state = cls()
        for key, default in vars(cls()).items():
            value = data.get(key)  # missing (an older record) or null (not finite): the default
            setattr(state, key, default if value is None else _checked(key, value, default))
        return state


MAX_COUNT = 10**15  # updates, episodes, lengths: far beyond any run
_ITEMS = {"recent_returns": float, "recent_lengths": int, "eval_seeds": int}


def _checked(key: str, value: object, default: object) -> object:
    if isinstance(default, list):
        if not isinstance(value, list):
            raise ValueError(f"loop.{key} must be a list, got {type(value).__name__}")
        return [_number(f"loop.{key}[{i}]", item, _ITEMS[key]) for i, item in enumerate(value)]
    return _number(f"loop.{key}", value, type(default))


def _number(name: str, value: object, kind: type) -> int | float:
    """An int in [0, MAX_COUNT], or a finite float (infinities are recorded as null)."""
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_COUNT:
            raise ValueError(f"{name} must be an integer from 0 to {MAX_COUNT:.0e}, got {value!r:.40}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r:.40}")
    return float(value)

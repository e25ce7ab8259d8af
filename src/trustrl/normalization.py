"""Running statistics for observation and reward normalisation.

One statistic serves the whole vector env (every copy updates it), it is frozen
at evaluation, and it travels with every checkpoint as plain numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class RunningMeanStd:
    """Mean and variance of a stream of batches (parallel Welford / Chan et al. 1979)."""

    shape: tuple[int, ...] = ()
    mean: np.ndarray = field(default=None)  # type: ignore[assignment]
    var: np.ndarray = field(default=None)  # type: ignore[assignment]
    count: float = 1e-4

    def __post_init__(self) -> None:
        if self.mean is None:
            self.mean = np.zeros(self.shape, np.float64)
        if self.var is None:
            self.var = np.ones(self.shape, np.float64)

    def update(self, batch: np.ndarray) -> None:
        """Merge a batch of shape ``(B, *shape)`` into the statistic."""
        batch = np.asarray(batch, np.float64)
        b_count = batch.shape[0]
        # np.add.reduce rather than .mean()/.var(): this runs every env step, and
        # the wrappers' Python overhead outweighs the arithmetic on a few numbers.
        b_mean = np.add.reduce(batch, 0) / b_count
        centred = batch - b_mean
        b_var = np.add.reduce(centred * centred, 0) / b_count
        delta = b_mean - self.mean
        total = self.count + b_count
        self.mean = self.mean + delta * (b_count / total)
        m2 = self.var * self.count + b_var * b_count + delta**2 * (self.count * b_count / total)
        self.var = m2 / total
        self.count = total

    def state(self) -> dict:
        return {"mean": self.mean.tolist(), "var": self.var.tolist(), "count": float(self.count)}

    @classmethod
    def from_state(cls, state: dict) -> "RunningMeanStd":
        mean = np.asarray(state["mean"], np.float64)
        var = np.asarray(state["var"], np.float64)
        if mean.shape != var.shape or not np.all(np.isfinite(mean)) or not np.all(var >= 0):
            raise ValueError("normalisation statistics are malformed")
        return cls(shape=mean.shape, mean=mean, var=var, count=float(state["count"]))


class ObsNormalizer:
    """``clip((obs - mean) / sqrt(var + eps))``; identity when disabled."""

    def __init__(self, shape: tuple[int, ...], enabled: bool = True, clip: float = 10.0, eps: float = 1e-8):
        self.rms = RunningMeanStd(shape)
        self.enabled = enabled
        self.clip = clip
        self.eps = eps
        self.frozen = False

    def __call__(self, obs: np.ndarray, update: bool = True) -> np.ndarray:
        """Normalise a batch ``(B, *shape)``; update the statistic first unless frozen."""
        if not self.enabled:
            return np.asarray(obs, np.float32)
        if update and not self.frozen:
            self.rms.update(obs)
        scaled = (obs - self.rms.mean) / np.sqrt(self.rms.var + self.eps)
        return _clip(scaled, self.clip).astype(np.float32)

    def state(self) -> dict:
        return {"enabled": self.enabled, "clip": self.clip, **self.rms.state()}

    def load_state(self, state: dict) -> None:
        self.enabled = bool(state["enabled"])
        self.clip = float(state["clip"])
        self.rms = RunningMeanStd.from_state(state)


class RewardScaler:
    """Divide rewards by the running std of the discounted return (as SB3's VecNormalize).

    The mean is not subtracted: shifting rewards would change which episodes
    are worth ending early.
    """

    def __init__(self, n_envs: int, gamma: float, enabled: bool = False, clip: float = 10.0, eps: float = 1e-8):
        self.rms = RunningMeanStd(())
        self.returns = np.zeros(n_envs, np.float64)
        self.gamma = gamma
        self.enabled = enabled
        self.clip = clip
        self.eps = eps
        self.frozen = False

    def __call__(self, rewards: np.ndarray, dones: np.ndarray) -> np.ndarray:
        if not self.enabled:
            return np.asarray(rewards, np.float32)
        if not self.frozen:
            self.returns = self.returns * self.gamma + rewards
            self.rms.update(self.returns)
            self.returns[dones] = 0.0
        scaled = rewards / np.sqrt(self.rms.var + self.eps)
        return _clip(scaled, self.clip).astype(np.float32)

    def state(self) -> dict:
        return {"enabled": self.enabled, "clip": self.clip, **self.rms.state()}

    def load_state(self, state: dict) -> None:
        self.enabled = bool(state["enabled"])
        self.clip = float(state["clip"])
        self.rms = RunningMeanStd.from_state(state)


def _clip(x: np.ndarray, bound: float) -> np.ndarray:
    """In-place clip to [-bound, bound] with the raw ufuncs (np.clip's wrapper is slow per step)."""
    np.minimum(x, bound, out=x)
    np.maximum(x, -bound, out=x)
    return x

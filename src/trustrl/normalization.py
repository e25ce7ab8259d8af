"""Running statistics for observation and reward normalisation.

One statistic serves the whole vector env (every copy updates it), it is frozen
at evaluation, and it travels with every checkpoint as plain numbers.

The samplers apply the per-batch rule: a batch's observations are normalised
with the statistics as they stood at its start (:meth:`ObsNormalizer.normalize`),
and the statistics are updated once, after the batch, from all of its raw
values in copy order (:meth:`ObsNormalizer.update`, :meth:`RewardScaler.update`);
rewards, which no action depends on, are scaled after that update
(:meth:`RewardScaler.scale`). So how the env copies are spread over processes
cannot change a single number.
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
    def from_state(cls, state: dict, field: str = "statistics") -> "RunningMeanStd":
        """The statistic saved as ``state``, each number checked (a checkpoint is data: an infinite variance
        would silently turn every observation into 0); a ValueError names ``field`` and what is wrong."""
        mean, var, count = (_numbers(f"{field}.{key}", state[key]) for key in ("mean", "var", "count"))
        if mean.shape != var.shape or count.shape != ():
            raise ValueError(f"{field}: mean {mean.shape}, var {var.shape} and count {count.shape} do not fit")
        if not np.all(np.isfinite(mean)):
            raise ValueError(f"{field}.mean is not finite")
        if not np.all(np.isfinite(var) & (var >= 0)):
            raise ValueError(f"{field}.var must be finite and >= 0")
        if not (np.isfinite(count) and count > 0):
            raise ValueError(f"{field}.count must be finite and > 0, got {float(count)}")
        return cls(shape=mean.shape, mean=mean, var=var, count=float(count))


class ObsNormalizer:
    """``clip((obs - mean) / sqrt(var + eps))``; identity when disabled."""

    def __init__(self, shape: tuple[int, ...], enabled: bool = True, clip: float = 10.0, eps: float = 1e-8):
        self.rms = RunningMeanStd(shape)
        self.enabled = enabled
        self.clip = clip
        self.eps = eps
        self.frozen = False

    def normalize(self, obs: np.ndarray) -> np.ndarray:
        """``(B, *shape)`` float32, with the statistic as it stands (never updated here)."""
        if not self.enabled:
            return np.asarray(obs, np.float32)
        scaled = (obs - self.rms.mean) / np.sqrt(self.rms.var + self.eps)
        return _clip(scaled, self.clip).astype(np.float32)

    def update(self, raw_obs: np.ndarray) -> None:
        """Merge a batch of raw observations ``(B, *shape)`` into the statistic (unless frozen or off)."""
        if self.enabled and not self.frozen and len(raw_obs):
            self.rms.update(raw_obs)

    def copy(self) -> "ObsNormalizer":
        """An independent, frozen copy: what a checkpoint or an evaluation of this moment uses."""
        other = ObsNormalizer(self.rms.shape, self.enabled, self.clip, self.eps)
        other.rms = RunningMeanStd(self.rms.shape, self.rms.mean.copy(), self.rms.var.copy(), self.rms.count)
        other.frozen = True
        return other

    def state(self) -> dict:
        return {"enabled": self.enabled, "clip": self.clip, **self.rms.state()}

    def load_state(self, state: dict) -> None:
        self.enabled, self.clip, self.rms = _loaded(state, "obs_norm")


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

    def scale(self, rewards: np.ndarray) -> np.ndarray:
        """``rewards / sqrt(var + eps)``, clipped, float32, with the statistic as it stands."""
        if not self.enabled:
            return np.asarray(rewards, np.float32)
        scaled = np.asarray(rewards, np.float64) / np.sqrt(self.rms.var + self.eps)
        return _clip(scaled, self.clip).astype(np.float32)

    def accumulate(self, rewards: np.ndarray, dones: np.ndarray) -> np.ndarray:
        """Advance each copy's discounted return by one step; returns its values (before the reset at ``dones``)."""
        self.returns = self.returns * self.gamma + rewards
        out = self.returns.copy()
        self.returns[dones] = 0.0
        return out

    def update(self, returns: np.ndarray) -> None:
        """Merge a batch of discounted-return values (from :meth:`accumulate`) into the statistic."""
        if self.enabled and not self.frozen and len(returns):
            self.rms.update(returns)

    def state(self) -> dict:
        return {"enabled": self.enabled, "clip": self.clip, **self.rms.state()}

    def load_state(self, state: dict) -> None:
        self.enabled, self.clip, self.rms = _loaded(state, "reward_norm")


def _loaded(state: dict, field: str) -> tuple[bool, float, RunningMeanStd]:
    """A normaliser's saved ``enabled``, ``clip`` and statistic, checked; a ValueError names the field."""
    enabled, clip = state["enabled"], state["clip"]
    if not isinstance(enabled, (bool, np.bool_)):
        raise ValueError(f"{field}.enabled must be true or false, got {enabled!r}")
    if isinstance(clip, bool) or not isinstance(clip, (int, float)) or not (np.isfinite(clip) and clip > 0):
        raise ValueError(f"{field}.clip must be a finite number > 0, got {clip!r}")
    return bool(enabled), float(clip), RunningMeanStd.from_state(state, field)


def _numbers(field: str, value) -> np.ndarray:
    """``value`` as float64 numbers, or a ValueError naming ``field`` (a string, a ragged list, a null)."""
    try:
        return np.asarray(value, np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{field} must be numbers, got {str(value)[:40]}") from None


def _clip(x: np.ndarray, bound: float) -> np.ndarray:
    """In-place clip to [-bound, bound] with the raw ufuncs (np.clip's wrapper is slow per step)."""
    np.minimum(x, bound, out=x)
    np.maximum(x, -bound, out=x)
    return x

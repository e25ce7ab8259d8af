"""The action distributions of the policies: diagonal Gaussian, categorical, one categorical per coordinate,
Bernoulli per coordinate.

Small tensor classes rather than ``torch.distributions``: the trust-region math needs the closed-form KL,
summed over action dimensions (so ``max_kl`` means the same thing whatever the action size), and indexing a
batch of distributions for the Fisher-vector sub-sample.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.nn import functional as F

_LOG_2PI = math.log(2 * math.pi)


class DiagGaussian:
    """Independent Gaussians per action dimension; every quantity summed over dimensions."""

    def __init__(self, mean: Tensor, log_std: Tensor):
        self.mean = mean
        self.log_std = log_std.expand_as(mean)

    @property
    def std(self) -> Tensor:
        return self.log_std.exp()

    def sample(self) -> Tensor:
        return self.mean + self.std * torch.randn_like(self.mean)

    def mode(self) -> Tensor:
        return self.mean

    def log_prob(self, actions: Tensor) -> Tensor:
        z = (actions - self.mean) / self.std
        return (-0.5 * z.pow(2) - self.log_std - 0.5 * _LOG_2PI).sum(-1)

    def entropy(self) -> Tensor:
        return (self.log_std + 0.5 * (1.0 + _LOG_2PI)).sum(-1)

    def kl(self, other: "DiagGaussian") -> Tensor:
        """KL(self || other) = sum_i log(s2/s1) + (s1^2 + (m1 - m2)^2) / (2 s2^2) - 1/2."""
        var_ratio = (2 * (self.log_std - other.log_std)).exp()
        mean_term = ((self.mean - other.mean) / other.std).pow(2)
        return (other.log_std - self.log_std + 0.5 * (var_ratio + mean_term) - 0.5).sum(-1)

    def __getitem__(self, idx) -> "DiagGaussian":
        return DiagGaussian(self.mean[idx], self.log_std[idx])

    def detach(self) -> "DiagGaussian":
        return DiagGaussian(self.mean.detach(), self.log_std.detach())

    def params(self) -> dict[str, Tensor]:
        return {"mean": self.mean, "log_std": self.log_std}


def censored_log_prob(dist: DiagGaussian, actions: Tensor, low: Tensor, high: Tensor) -> Tensor:
    """log-likelihood of actions that were clipped to ``[low, high]`` after a draw from ``dist``.

    A coordinate exactly on a finite bound stands for every draw beyond it: its likelihood is the Gaussian's
    tail mass there, log P(x >= high) or log P(x <= low), not the density at the bound (which is no
    probability, so pi/beta of two densities at a bound is no importance weight). Other coordinates -- inside
    the bounds, or beyond them (a stored draw) -- keep the density. Summed over action dimensions.
    """
    std = dist.std
    z = (actions - dist.mean) / std
    density = -0.5 * z.pow(2) - dist.log_std - 0.5 * _LOG_2PI
    # an infinite bound censors nothing; finite stand-ins keep the unused branch (and its gradient) finite
    finite_high, finite_low = torch.isfinite(high), torch.isfinite(low)
    upper = torch.special.log_ndtr((dist.mean - torch.where(finite_high, high, 0.0)) / std)
    lower = torch.special.log_ndtr((torch.where(finite_low, low, 0.0) - dist.mean) / std)
    on_high, on_low = (actions == high) & finite_high, (actions == low) & finite_low
    return torch.where(on_high, upper, torch.where(on_low, lower, density)).sum(-1)


class Categorical:
    """A batch of categorical distributions over ``n`` actions, from unnormalised logits."""

    def __init__(self, logits: Tensor):
        self.logits = logits - logits.logsumexp(-1, keepdim=True)

    @property
    def probs(self) -> Tensor:
        return self.logits.exp()

    def sample(self) -> Tensor:
        return torch.multinomial(self.probs.reshape(-1, self.logits.shape[-1]), 1).reshape(self.logits.shape[:-1])

    def mode(self) -> Tensor:
        return self.logits.argmax(-1)

    def log_prob(self, actions: Tensor) -> Tensor:
        logits = self.logits.expand(*actions.shape, self.logits.shape[-1])  # broadcast over sample dims
        return logits.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)

    def entropy(self) -> Tensor:
        return -(self.probs * self.logits).sum(-1)

    def kl(self, other: "Categorical") -> Tensor:
        """KL(self || other) = sum_a p(a) (log p(a) - log q(a))."""
        return (self.probs * (self.logits - other.logits)).sum(-1)

    def __getitem__(self, idx) -> "Categorical":
        return Categorical(self.logits[idx])

    def detach(self) -> "Categorical":
        return Categorical(self.logits.detach())

    def params(self) -> dict[str, Tensor]:
        return {"logits": self.logits}


class MultiCategorical:
    """Independent categoricals, one per coordinate of a MultiDiscrete space (sizes ``n_i``); quantities summed.

    ``logits`` ``(..., sum n_i)`` hold each coordinate's logits side by side. Actions are the env's values:
    coordinate ``i`` takes ``start_i + index`` (``start``: the space's offsets, None when all are 0).
    """

    def __init__(self, logits: Tensor, sizes: tuple[int, ...], start: tuple[int, ...] | None = None):
        self.sizes = sizes
        self.start = start
        self.parts = [Categorical(part) for part in logits.split(sizes, -1)]

    @property
    def logits(self) -> Tensor:
        """Each coordinate's normalised logits, side by side ``(..., sum n_i)``."""
        return torch.cat([part.logits for part in self.parts], -1)

    def _to_values(self, index: Tensor) -> Tensor:
        return index if self.start is None else index + torch.tensor(self.start, device=index.device)

    def sample(self) -> Tensor:
        return self._to_values(torch.stack([part.sample() for part in self.parts], -1))

    def mode(self) -> Tensor:
        return self._to_values(torch.stack([part.mode() for part in self.parts], -1))

    def log_prob(self, actions: Tensor) -> Tensor:
        """``actions`` ``(..., k)``: env values, ``start`` included."""
        index = actions.long()
        if self.start is not None:
            index = index - torch.tensor(self.start, device=index.device)
        return sum(part.log_prob(index[..., i]) for i, part in enumerate(self.parts))

    def entropy(self) -> Tensor:
        return sum(part.entropy() for part in self.parts)

    def kl(self, other: "MultiCategorical") -> Tensor:
        """Sum over coordinates of the categorical KL."""
        return sum(part.kl(theirs) for part, theirs in zip(self.parts, other.parts))

    def __getitem__(self, idx) -> "MultiCategorical":
        return MultiCategorical(self.logits[idx], self.sizes, self.start)

    def detach(self) -> "MultiCategorical":
        return MultiCategorical(self.logits.detach(), self.sizes, self.start)

    def params(self) -> dict[str, Tensor]:
        return {"logits": self.logits}


class Bernoulli:
    """Independent Bernoullis, one per coordinate of a MultiBinary space, from logits; quantities summed.

    Log-probabilities are ``logsigmoid(+-logits)``, finite and exact for any logit.
    """

    def __init__(self, logits: Tensor):
        self.logits = logits

    @property
    def probs(self) -> Tensor:
        return torch.sigmoid(self.logits)

    def sample(self) -> Tensor:
        return (torch.rand_like(self.logits) < self.probs).long()

    def mode(self) -> Tensor:
        return (self.logits > 0).long()

    def log_prob(self, actions: Tensor) -> Tensor:
        """``actions`` ``(..., k)`` of 0 and 1."""
        ones = actions.to(self.logits.dtype)
        return (ones * F.logsigmoid(self.logits) + (1 - ones) * F.logsigmoid(-self.logits)).sum(-1)

    def entropy(self) -> Tensor:
        p = self.probs
        return -(p * F.logsigmoid(self.logits) + (1 - p) * F.logsigmoid(-self.logits)).sum(-1)

    def kl(self, other: "Bernoulli") -> Tensor:
        """KL(self || other) = sum_i p_i log(p_i / q_i) + (1 - p_i) log((1 - p_i) / (1 - q_i))."""
        p = self.probs
        on = F.logsigmoid(self.logits) - F.logsigmoid(other.logits)
        off = F.logsigmoid(-self.logits) - F.logsigmoid(-other.logits)
        return (p * on + (1 - p) * off).sum(-1)

    def __getitem__(self, idx) -> "Bernoulli":
        return Bernoulli(self.logits[idx])

    def detach(self) -> "Bernoulli":
        return Bernoulli(self.logits.detach())

    def params(self) -> dict[str, Tensor]:
        return {"logits": self.logits}


Distribution = DiagGaussian | Categorical | MultiCategorical | Bernoulli

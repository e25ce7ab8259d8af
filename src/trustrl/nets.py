"""Policies and the value network; their action distributions are in :mod:`trustrl.distributions`."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import gymnasium as gym
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from trustrl.distributions import Bernoulli, Categorical, DiagGaussian, Distribution, MultiCategorical
from trustrl.encoders import Encoded, image_encoder
from trustrl.samplers.actor import Actor, BernoulliHead, MultiCategoricalHead, NumpyActor
from trustrl.torch_actor import TorchActor

if TYPE_CHECKING:
    from trustrl.config.sections import CriticConfig, PolicyConfig


class MLP(nn.Module):
    """Linear layers with an activation between them; the last layer is linear.

    ``forward`` calls ``F.linear`` on the layers' parameters directly instead of
    going through ``nn.Sequential``: the sampler calls it once per env step on a
    handful of observations, where module-call overhead is most of the cost.
    """

    def __init__(self, sizes: list[int], activation: str, init: str, out_gain: float):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(n_in, n_out) for n_in, n_out in zip(sizes[:-1], sizes[1:]))
        self.activation = {"tanh": torch.tanh, "relu": torch.relu}[activation]
        for i, linear in enumerate(self.layers):
            if i == len(self.layers) - 1:
                # Small output gain: the first policy is near uniform / zero-mean.
                nn.init.orthogonal_(linear.weight, gain=out_gain)
            elif init == "orthogonal":
                nn.init.orthogonal_(linear.weight, gain=math.sqrt(2))
            elif init == "kaiming":
                nn.init.kaiming_normal_(linear.weight, mode="fan_in", nonlinearity=activation)
            else:
                nn.init.xavier_normal_(linear.weight, gain=nn.init.calculate_gain(activation))
            nn.init.zeros_(linear.bias)

    def forward(self, x: Tensor) -> Tensor:
        *hidden, last = self.layers
        for layer in hidden:
            x = self.activation(F.linear(x, layer.weight, layer.bias))
        return F.linear(x, last.weight, last.bias)


def mlp(sizes: list[int], activation: str, init: str, out_gain: float) -> MLP:
    return MLP(sizes, activation, init, out_gain)


def body(encoder: nn.Module | None, obs_dim: int, sizes: list[int], activation: str, init: str,
         out_gain: float) -> MLP | Encoded:
    """The MLP ``[obs_dim, *sizes]`` -- or, with an encoder (images), the MLP ``[encoder.out_dim, *sizes]``
    after it."""
    if encoder is None:
        return mlp([obs_dim, *sizes], activation, init, out_gain)
    return Encoded(encoder, mlp([encoder.out_dim, *sizes], activation, init, out_gain))


def numpy_actor(policy: "Policy") -> Actor:
    """A numpy snapshot of ``policy`` for acting (see :mod:`trustrl.samplers.actor`); tests check it against the module.

    A policy with an encoder (images) has no numpy mirror: it acts with a copy of its torch network instead
    (:class:`~trustrl.torch_actor.TorchActor`), with the same noise and sampling rule."""
    net = policy.mean_net if isinstance(policy, GaussianPolicy) else policy.logits_net
    std = None
    if isinstance(policy, GaussianPolicy):
        std = policy.log_std.detach().clamp(policy.log_std_min, policy.log_std_max).exp().cpu().numpy()
    if not isinstance(net, MLP):
        return TorchActor(net, std, head=_numpy_head(policy))
    layers = [
        (layer.weight.detach().cpu().numpy().T.copy(), layer.bias.detach().cpu().numpy().copy())
        for layer in net.layers
    ]
    return NumpyActor(layers, relu=net.activation is torch.relu, std=std, head=_numpy_head(policy))


def _numpy_head(policy: "Policy") -> MultiCategoricalHead | BernoulliHead | None:
    """How a MultiDiscrete or MultiBinary policy's logits become actions; None for Box and Discrete."""
    if isinstance(policy, MultiCategoricalPolicy):
        return MultiCategoricalHead(policy.sizes, policy.start)
    if isinstance(policy, BernoulliPolicy):
        return BernoulliHead()
    return None


def bounded_log_std(log_std: Tensor, low: float, high: float) -> Tensor:
    """``clamp(log_std, low, high)`` in value, the identity in gradient (a straight-through bound).

    A hard clamp has zero gradient outside the bounds -- and a zero Fisher row --
    so a coordinate that once crossed a bound could never come back. Passing the
    gradient straight through keeps the bound on the distribution and leaves
    the parameter free to return; :func:`keep_in_bounds`, after every update,
    stops it drifting beyond the bound meanwhile (which changes no distribution).
    """
    return log_std + (log_std.clamp(low, high) - log_std).detach()


@torch.no_grad()
def held_at_bound(policy: "Policy", ascent: Tensor) -> Tensor | None:
    """The coordinates of ``policy.parameters()`` (flat, as a bool mask) where the log-std sits at a bound and
    ``ascent`` -- the surrogate's gradient -- points further out; None when there are none.

    The distribution cannot move there (the bound holds it), so the true KL is flat along them, while the
    straight-through gradient would give them full weight in the Fisher matrix: a step would spend its KL
    budget on a move :func:`keep_in_bounds` then throws away. The natural-gradient step leaves them out.
    """
    if not isinstance(policy, GaussianPolicy):
        return None
    offset = 0
    for param in policy.parameters():
        if param is policy.log_std:
            break
        offset += param.numel()
    n = policy.log_std.numel()
    value, pushed = policy.log_std.reshape(-1), ascent[offset : offset + n]
    held = ((value >= policy.log_std_max) & (pushed > 0)) | ((value <= policy.log_std_min) & (pushed < 0))
    if not bool(held.any()):
        return None
    mask = torch.zeros(ascent.shape, dtype=torch.bool, device=ascent.device)
    mask[offset : offset + n] = held
    return mask


@torch.no_grad()
def keep_in_bounds(policy: "Policy") -> None:
    """Project a Gaussian policy's log-std parameter back into its bounds (a no-op for the distribution)."""
    if isinstance(policy, GaussianPolicy):
        policy.log_std.clamp_(policy.log_std_min, policy.log_std_max)


class GaussianPolicy(nn.Module):
    """State-dependent mean from an MLP; state-independent log-std, bounded to a range (:func:`bounded_log_std`)."""

    def __init__(self, obs_dim: int, act_dim: int, cfg: PolicyConfig, encoder: nn.Module | None = None):
        super().__init__()
        self.mean_net = body(encoder, obs_dim, [*cfg.hidden, act_dim], cfg.activation, cfg.init, cfg.out_gain)
        self.log_std = nn.Parameter(torch.full((act_dim,), cfg.log_std_init))
        self.log_std_min = cfg.log_std_min
        self.log_std_max = cfg.log_std_max

    def forward(self, obs: Tensor) -> DiagGaussian:
        log_std = bounded_log_std(self.log_std, self.log_std_min, self.log_std_max)
        return DiagGaussian(self.mean_net(obs), log_std)


class CategoricalPolicy(nn.Module):
    def __init__(self, obs_dim: int, n_actions: int, cfg: PolicyConfig, encoder: nn.Module | None = None):
        super().__init__()
        self.logits_net = body(encoder, obs_dim, [*cfg.hidden, n_actions], cfg.activation, cfg.init, cfg.out_gain)

    def forward(self, obs: Tensor) -> Categorical:
        return Categorical(self.logits_net(obs))


class MultiCategoricalPolicy(CategoricalPolicy):
    """One logits vector for all coordinates of a MultiDiscrete space: each coordinate's logits side by side."""

    def __init__(self, obs_dim: int, space: gym.spaces.MultiDiscrete, cfg: PolicyConfig,
                 encoder: nn.Module | None = None):
        super().__init__(obs_dim, int(space.nvec.sum()), cfg, encoder)
        self.sizes = tuple(int(n) for n in space.nvec)
        self.start = tuple(int(s) for s in space.start) if space.start.any() else None

    def forward(self, obs: Tensor) -> MultiCategorical:
        return MultiCategorical(self.logits_net(obs), self.sizes, self.start)


class BernoulliPolicy(CategoricalPolicy):
    """A logit per coordinate of a MultiBinary space."""

    def forward(self, obs: Tensor) -> Bernoulli:
        return Bernoulli(self.logits_net(obs))


Policy = GaussianPolicy | CategoricalPolicy | MultiCategoricalPolicy | BernoulliPolicy


class ValueNet(nn.Module):
    """V(s): an MLP to one output, returned with shape ``(...,)``."""

    def __init__(self, obs_dim: int, cfg: CriticConfig, encoder: nn.Module | None = None):
        super().__init__()
        self.net = body(encoder, obs_dim, [*cfg.hidden, 1], cfg.activation, cfg.init, out_gain=1.0)

    def forward(self, obs: Tensor) -> Tensor:
        return self.net(obs).squeeze(-1)


def make_policy(obs_space: gym.Space, act_space: gym.Space, cfg: PolicyConfig) -> Policy:
    """The policy for the spaces; image observations get an :class:`~trustrl.encoders.ImageEncoder` first."""
    obs_dim = int(obs_space.shape[0])
    encoder = image_encoder(obs_space)
    if isinstance(act_space, gym.spaces.Discrete):
        return CategoricalPolicy(obs_dim, int(act_space.n), cfg, encoder)
    if isinstance(act_space, gym.spaces.MultiDiscrete):
        return MultiCategoricalPolicy(obs_dim, act_space, cfg, encoder)
    if isinstance(act_space, gym.spaces.MultiBinary):
        return BernoulliPolicy(obs_dim, int(act_space.shape[0]), cfg, encoder)
    return GaussianPolicy(obs_dim, int(act_space.shape[0]), cfg, encoder)


def distribution_of(policy: Policy, params: dict[str, Tensor]) -> Distribution:
    """A distribution of the kind ``policy`` acts with, from parameters as :meth:`params` gives them (a
    behaviour policy recorded in a dataset: logits, or mean and log-std)."""
    if isinstance(policy, MultiCategoricalPolicy):
        return MultiCategorical(params["logits"], policy.sizes, policy.start)
    if isinstance(policy, BernoulliPolicy):
        return Bernoulli(params["logits"])
    if isinstance(policy, CategoricalPolicy):
        return Categorical(params["logits"])
    return DiagGaussian(params["mean"], params["log_std"])


def make_critic(obs_space: gym.Space, cfg: CriticConfig) -> ValueNet:
    return ValueNet(int(obs_space.shape[0]), cfg, image_encoder(obs_space))

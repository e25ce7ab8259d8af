"""The acting policy as numpy arrays: what a sampler, or a worker process far from torch, steps envs with.

The sampler asks for an action every step for a few observations; at that
size torch's per-op dispatch costs ~4x the arithmetic, so acting runs on
numpy copies of the weights, taken once per batch when the policy is fixed
(:func:`trustrl.nets.numpy_actor`). The object is plain arrays, cheap to send
to another process or a Ray actor, and this module imports numpy only.

Two properties make a batch the same wherever its env copies run:

- randomness comes in from outside, as pre-drawn noise: each env copy owns its
  own random stream (:meth:`NumpyActor.draw_noise`);
- each observation's output is computed on its own: a matrix product over a
  batch of rows lets BLAS pick a kernel by the row count, and another kernel
  rounds differently, so the rows go through as a stack of one-row products
  (:meth:`NumpyActor.forward`) -- the same bits for a copy whether it is
  stepped alone, beside one other or beside a thousand.
"""

from __future__ import annotations

import numpy as np


class MultiCategoricalHead:
    """MultiDiscrete actions from logits side by side: Gumbel-max within each coordinate's slice, plus its start."""

    def __init__(self, sizes: tuple[int, ...], start: tuple[int, ...] | None):
        self.bounds = np.cumsum((0, *sizes))
        self.start = np.zeros(len(sizes), np.int64) if start is None else np.asarray(start, np.int64)

    def act(self, logits: np.ndarray, noise: np.ndarray) -> np.ndarray:
        perturbed = logits - np.log(-np.log(noise))
        index = [perturbed[:, lo:hi].argmax(-1) for lo, hi in zip(self.bounds[:-1], self.bounds[1:])]
        return np.stack(index, axis=-1) + self.start


class BernoulliHead:
    """MultiBinary actions from one logit per coordinate: 1 where the uniform falls below sigmoid(logit)."""

    def act(self, logits: np.ndarray, noise: np.ndarray) -> np.ndarray:
        probs = 0.5 * (1.0 + np.tanh(0.5 * logits))  # sigmoid, with no overflow for large logits
        return (noise < probs).astype(np.int8)


class Actor:
    """How an acting policy turns its output and pre-drawn noise into actions; :meth:`forward` is the network.

    ``std``: a Gaussian policy's standard deviations (None: the output is logits); ``head``: how the logits
    of a MultiDiscrete or MultiBinary policy become actions (None: a Gaussian, or the categorical of a
    Discrete space); ``noise_size``: action dims (Gaussian) or logits (one uniform each).
    """

    std: np.ndarray | None
    head: MultiCategoricalHead | BernoulliHead | None = None
    noise_size: int

    def forward(self, obs: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def draw_noise(self, rng: np.random.Generator, n_steps: int) -> np.ndarray:
        """``(n_steps, noise_size)`` noise for one env copy: standard normals (Gaussian) or uniforms (logits)."""
        if self.std is not None:
            return rng.standard_normal((n_steps, self.noise_size), dtype=np.float32)
        return rng.random((n_steps, self.noise_size))

    def act(self, obs: np.ndarray, noise: np.ndarray) -> np.ndarray:
        """Sample actions for ``(B, obs_dim)`` observations given ``(B, noise_size)`` noise from :meth:`draw_noise`."""
        out = self.forward(obs)
        if self.std is not None:
            return out + self.std * noise
        if self.head is not None:
            return self.head.act(out, noise)
        # Gumbel-max: argmax(logits + Gumbel noise) is a sample from softmax(logits).
        return np.argmax(out - np.log(-np.log(noise)), axis=-1)


class NumpyActor(Actor):
    """An MLP policy's layers (``(weight (in, out), bias)`` pairs, float32), its Gaussian std and its head, if any."""

    def __init__(self, layers: list[tuple[np.ndarray, np.ndarray]], relu: bool, std: np.ndarray | None,
                 head: MultiCategoricalHead | BernoulliHead | None = None):
        self.layers = layers
        self.relu = relu
        self.std = std  # None: logits (categorical, or the head's)
        self.head = head
        self.noise_size = layers[-1][1].shape[0]  # action dims (Gaussian) or logits (one uniform each)

    def forward(self, obs: np.ndarray) -> np.ndarray:
        """Gaussian mean or logits for ``(B, obs_dim)`` float32 observations, row by row."""
        x = obs[:, None, :]  # (B, 1, obs_dim): B one-row products, each the same call whatever B is
        *hidden, (w_out, b_out) = self.layers
        for w, b in hidden:
            x = x @ w
            x += b
            if self.relu:
                np.maximum(x, 0.0, out=x)
            else:
                np.tanh(x, out=x)
        out = x @ w_out
        out += b_out
        return out[:, 0, :]

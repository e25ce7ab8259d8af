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


class Actor:
    """How an acting policy turns its output and pre-drawn noise into actions; :meth:`forward` is the network.

    ``std``: a Gaussian policy's standard deviations (None: categorical, the output is logits);
    ``noise_size``: action dims (Gaussian) or actions (categorical).
    """

    std: np.ndarray | None
    noise_size: int

    def forward(self, obs: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def draw_noise(self, rng: np.random.Generator, n_steps: int) -> np.ndarray:
        """``(n_steps, noise_size)`` noise for one env copy: standard normals (Gaussian) or uniforms (categorical)."""
        if self.std is not None:
            return rng.standard_normal((n_steps, self.noise_size), dtype=np.float32)
        return rng.random((n_steps, self.noise_size))

    def act(self, obs: np.ndarray, noise: np.ndarray) -> np.ndarray:
        """Sample actions for ``(B, obs_dim)`` observations given ``(B, noise_size)`` noise from :meth:`draw_noise`."""
        out = self.forward(obs)
        if self.std is not None:
            return out + self.std * noise
        # Gumbel-max: argmax(logits + Gumbel noise) is a sample from softmax(logits).
        return np.argmax(out - np.log(-np.log(noise)), axis=-1)


class NumpyActor(Actor):
    """An MLP policy's layers (``(weight (in, out), bias)`` pairs, float32) and its Gaussian std, if any."""

    def __init__(self, layers: list[tuple[np.ndarray, np.ndarray]], relu: bool, std: np.ndarray | None):
        self.layers = layers
        self.relu = relu
        self.std = std  # None: categorical (the last layer gives logits)
        self.noise_size = layers[-1][1].shape[0]  # action dims (Gaussian) or actions (categorical)

    def forward(self, obs: np.ndarray) -> np.ndarray:
        """Gaussian mean or categorical logits for ``(B, obs_dim)`` float32 observations, row by row."""
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

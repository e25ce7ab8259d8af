"""The image encoder: a small CNN in front of a policy's or a value net's MLP, for image observations.

Observations arrive flat (:mod:`trustrl.envs.observations` flattens every env's when it is made), so the
encoder first puts an image back into shape -- HWC or CHW, as the env gave it -- and scales its pixels from
the Box's bounds to [0, 1] (uint8: ``x / 255``). That scaling takes the place of the running normaliser,
which is off for images: a per-pixel mean and variance would be noise on the background pixels.

The layers follow the Nature-DQN encoder (Mnih et al. 2015) scaled down for small images: two 3x3
convolutions of stride 2 (16 and 32 channels, ReLU), then one linear layer to :data:`FEATURES` features
(ReLU). The MLP of the policy or the value net comes after it, as for flat observations; the policy and
the value net each have their own encoder (separate networks, as their MLPs are).
"""

from __future__ import annotations

import math

import gymnasium as gym
import torch
from torch import Tensor, nn

from trustrl.envs.observations import image_layout

#: Width of the encoder's output: what the MLP after it takes.
FEATURES = 128


class ImageEncoder(nn.Module):
    """Flat pixels ``(B, H*W*C)`` (or ``(B, C*H*W)``) -> features ``(B, FEATURES)``."""

    def __init__(self, layout: str, chw: tuple[int, int, int], low: float, high: float):
        super().__init__()
        self.layout, self.chw = layout, tuple(chw)
        self.low, self.scale = float(low), 1.0 / (float(high) - float(low))
        channels, height, width = chw
        self.convs = nn.ModuleList([nn.Conv2d(channels, 16, 3, stride=2, padding=1),
                                    nn.Conv2d(16, 32, 3, stride=2, padding=1)])
        size = lambda n: (n - 1) // 2 + 1  # noqa: E731 -- a 3x3, stride-2, padding-1 convolution's output
        flat = 32 * size(size(height)) * size(size(width))
        self.linear = nn.Linear(flat, FEATURES)
        self.out_dim = FEATURES
        for layer in (*self.convs, self.linear):
            nn.init.orthogonal_(layer.weight, gain=math.sqrt(2))
            nn.init.zeros_(layer.bias)

    def images(self, flat: Tensor) -> Tensor:
        """``(B, C, H, W)`` pixels in [0, 1] from the flat observations."""
        c, h, w = self.chw
        x = flat.reshape(-1, h, w, c).permute(0, 3, 1, 2) if self.layout == "hwc" else flat.reshape(-1, c, h, w)
        return (x - self.low) * self.scale

    def forward(self, flat: Tensor) -> Tensor:
        lead = flat.shape[:-1]
        x = self.images(flat.reshape(-1, flat.shape[-1]))
        for conv in self.convs:
            x = torch.relu(conv(x))
        return torch.relu(self.linear(x.flatten(1))).reshape(*lead, FEATURES)


class Encoded(nn.Module):
    """``head(encoder(obs))``: an encoder in front of an MLP (the head keeps the MLP's ``layers``)."""

    def __init__(self, encoder: nn.Module, head: nn.Module):
        super().__init__()
        self.encoder = encoder
        self.head = head

    def forward(self, obs: Tensor) -> Tensor:
        return self.head(self.encoder(obs))


def image_encoder(obs_space: gym.Space) -> ImageEncoder | None:
    """The encoder for an image observation space (a 3-D Box, flattened or not); None for any other."""
    found = image_layout(obs_space)
    return None if found is None else ImageEncoder(*found)

"""Acting with a copy of a torch network, for policies the numpy mirror cannot hold (an image encoder).

:class:`~trustrl.samplers.actor.NumpyActor` mirrors MLPs only; a policy with a CNN in front acts through
its own network instead, on the CPU, with the same pre-drawn noise and the same sampling rule
(:class:`~trustrl.samplers.actor.Actor`). Rows go through one at a time, as the numpy mirror's do, so a
copy's actions do not depend on how many copies are stepped beside it. Sent to a worker process or a
Ray actor, it travels as plain pickled bytes (not as tensors in shared memory, which a worker launched
on its own cannot open) and is unpickled there -- which imports torch in that worker, on one thread, as
the learner's own sampling would be; MLP policies never do.
"""

from __future__ import annotations

import copy
import pickle

import numpy as np
import torch

from trustrl.encoders import Encoded
from trustrl.samplers.actor import Actor, BernoulliHead, MultiCategoricalHead


class TorchActor(Actor):
    """``net``: the policy's :class:`~trustrl.encoders.Encoded` network to its Gaussian mean or categorical
    logits; ``std`` and ``head`` as in :class:`~trustrl.samplers.actor.Actor`."""

    def __init__(self, net: Encoded, std: np.ndarray | None, head: MultiCategoricalHead | BernoulliHead | None = None):
        self.net = copy.deepcopy(net).cpu().requires_grad_(False)
        self.std = std
        self.head = head
        self.noise_size = net.head.layers[-1].out_features

    @torch.no_grad()
    def forward(self, obs: np.ndarray) -> np.ndarray:
        """Gaussian mean or categorical logits for ``(B, obs_dim)`` float32 observations, row by row."""
        x = torch.from_numpy(np.ascontiguousarray(obs, np.float32))
        return torch.cat([self.net(x[i : i + 1]) for i in range(len(x))]).numpy()


    def __getstate__(self) -> dict:
        return {**self.__dict__, "net": pickle.dumps(self.net)}

    def __setstate__(self, state: dict) -> None:
        torch.set_num_threads(1)  # a worker steps its copies on one core; tiny convolutions gain nothing from more
        self.__dict__.update({**state, "net": pickle.loads(state["net"])})

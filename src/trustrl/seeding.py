"""Reset seeds: one per (seed, index) pair, and no two pairs share one.

Counting up -- copy ``i`` of run seed ``s`` reset with ``s + i`` -- gives copy ``i + 1`` of seed ``s``
the episodes of copy ``i`` of seed ``s + 1``: two "independent" seeds would then share all but one
copy's start states. Here every reset seed is hashed from the pair by a ``numpy.random.SeedSequence``
(seed as entropy, the pair's place in a stream as spawn key), so neighbouring seeds share nothing,
and each use -- the training env copies, the evaluation during training, ``trustrl eval`` and
``trustrl video``, dataset collection -- has a stream of its own.

The result is a 32-bit integer, what every env's ``reset(seed=...)`` takes; two different pairs
meet only by a 32-bit hash collision. Numpy only, so worker processes import it at no cost.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

#: Spawn keys of the streams, above any copy index so that no stream is another's ``(index,)`` key.
ENV_COPIES = 0x434F5059  # the run's env copies; the key's middle word counts their fresh starts
TRAINING_EVAL = 0x4556414C  # the evaluation episodes during training
EPISODES = 0x45505344  # episodes played from a seed the user gives (trustrl eval, trustrl video)
COLLECTION = 0x434F4C4C  # episodes collected into a dataset


def reset_seed(seed: int, stream: int, index: int, epoch: int = 0) -> int:
    """The 32-bit reset seed of item ``index`` of ``stream`` under ``seed`` (``epoch``: which fresh start)."""
    return int(np.random.SeedSequence(seed, spawn_key=(stream, epoch, index)).generate_state(1)[0])


def reset_seeds(seed: int, stream: int, indices: Iterable[int], epoch: int = 0) -> list[int]:
    """:func:`reset_seed` of every index, in order."""
    return [reset_seed(seed, stream, i, epoch) for i in indices]

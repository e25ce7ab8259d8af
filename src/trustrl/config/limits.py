"""Bounds on every setting and count, checked before anything is written; one ``ConfigError`` line each.

Upper bounds sit where memory or time would explode long before a run could finish; the check
functions name the key that is wrong, so the error a user sees says what to change.
"""

from __future__ import annotations

from trustrl.errors import ConfigError

#: Upper bounds where memory or time would explode long before a run could finish (checked before anything is
#: written): env copies, transitions in one batch, env steps of a run, episodes of one evaluation, layer widths.
MAX_ENVS = 1_024
MAX_BATCH = 10_000_000
MAX_STEPS = 10**13
MAX_EPISODES = 100_000
MAX_WIDTH = 16_384
MAX_LAYERS = 64
MAX_WEIGHTS = 2**28  # weights between hidden layers: 1 GiB of float32
#: Seeds are 32-bit (what numpy's legacy seeding, gymnasium and torch all take); the seeds of a tuning
#: trial count up from ``run.seed``, so its bound leaves room for them (reset seeds are hashed:
#: :mod:`trustrl.seeding`).
MAX_SEED = 2**32 - 1


def check_seed(key: str, seed: int, count: int = 1) -> None:
    """``seed`` .. ``seed + count - 1`` are all valid seeds."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED - max(count - 1, 0):
        raise ConfigError(f"{key} must be an integer between 0 and {MAX_SEED - max(count - 1, 0)}, got {seed}")


def check_count(key: str, value: int, at_most: int) -> None:
    """A count from the command line or the API: an integer from 1 to ``at_most``."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= at_most:
        raise ConfigError(f"{key} must be an integer from 1 to {at_most:,}, got {value}")


def positive(key: str, value: float, at_most: float | None = None) -> None:
    if not value > 0:
        raise ConfigError(f"{key} must be > 0, got {value}")
    if at_most is not None and value > at_most:
        raise ConfigError(f"{key} must be at most {at_most:,}, got {value:,}")


def non_negative(key: str, value: float, at_most: float | None = None) -> None:
    if not value >= 0:
        raise ConfigError(f"{key} must be >= 0, got {value}")
    if at_most is not None and value > at_most:
        raise ConfigError(f"{key} must be at most {at_most:,}, got {value:,}")


def choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{key} must be one of {', '.join(choices)}; got {value!r}")


def widths(key: str, sizes: tuple[int, ...]) -> None:
    if not sizes or any(s <= 0 for s in sizes):
        raise ConfigError(f"{key} must be a non-empty list of positive widths, got {list(sizes)}")
    if len(sizes) > MAX_LAYERS or max(sizes) > MAX_WIDTH or sum(a * b for a, b in zip(sizes, sizes[1:])) > MAX_WEIGHTS:
        raise ConfigError(f"{key} must have at most {MAX_LAYERS} layers of at most {MAX_WIDTH:,} units and "
                          f"{MAX_WEIGHTS:,} weights between them, got {list(sizes)}")


def missing_cuda(device: object) -> bool:
    """Whether ``device`` names a CUDA device and this machine has none: a run trained on a GPU, read on a
    CPU-only machine (its weights are saved on the CPU, so it can still act there)."""
    import torch

    if not isinstance(device, str):
        return False
    try:
        return torch.device(device).type == "cuda" and not torch.cuda.is_available()
    except (RuntimeError, ValueError):
        return False  # not a device at all: validation says so


def check_device(device: str) -> None:
    """A device torch knows and this machine has, checked before anything is written."""
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise ConfigError(f"run.device {device!r} is not a torch device (e.g. cpu, cuda, cuda:0)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"run.device {device!r}: this machine has no CUDA device; use cpu")
    if dev.type not in ("cpu", "cuda"):
        raise ConfigError(f"run.device {device!r}: trustrl runs on cpu or cuda")

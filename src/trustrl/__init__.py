"""trustrl: trust-region policy gradients (TRPO + GAE and its family) for any gymnasium environment.

The public API -- :func:`train`, :func:`resume`, :func:`load`, :func:`evaluate`, :func:`export`,
:class:`Config`, :class:`Agent` -- is imported when first used, so ``trustrl --version`` and the
sampling workers do not pay for torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from trustrl.api import Agent, EnvFactory, EvalResult, TrainResult, evaluate, export, load, resume, train
    from trustrl.config import Config
    from trustrl.config import load as load_config
    from trustrl.errors import TrustrlError

#: Public name -> the module that defines it (and its name there).
_PUBLIC = {
    "train": ("trustrl.api", "train"),
    "resume": ("trustrl.api", "resume"),
    "load": ("trustrl.api", "load"),
    "evaluate": ("trustrl.api", "evaluate"),
    "export": ("trustrl.api", "export"),
    "Agent": ("trustrl.api", "Agent"),
    "EnvFactory": ("trustrl.api", "EnvFactory"),
    "EvalResult": ("trustrl.api", "EvalResult"),
    "TrainResult": ("trustrl.api", "TrainResult"),
    "Config": ("trustrl.config", "Config"),
    "load_config": ("trustrl.config", "load"),
    "TrustrlError": ("trustrl.errors", "TrustrlError"),
}

__all__ = ["Agent", "Config", "EnvFactory", "EvalResult", "TrainResult", "TrustrlError", "__version__", "evaluate",
           "export", "load", "load_config", "resume", "train"]


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'trustrl' has no attribute {name!r}")
    module, attr = _PUBLIC[name]
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value  # once imported, an ordinary attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_PUBLIC})

"""Run configuration: dataclasses with a docstring per field, TOML presets, validation.

A config is the sections ``env``, ``policy``, ``critic``, ``run`` (:mod:`~trustrl.config.sections`), the
algorithm's own ``[algo]`` settings (beside its update, in :mod:`trustrl.algos`), plus ``offline``, read only
when training from a dataset, and ``vine``, read only with ``run.sampling = "vine"``. Every value is
checked once, when the config is built, so the rest of the library can trust it.

- :mod:`~trustrl.config.limits`: bounds on every setting, and the checks that name what is wrong;
- :mod:`~trustrl.config.sections`: the section dataclasses;
- :mod:`~trustrl.config.schema`: the whole :class:`Config`, the checks across sections, dict and TOML forms;
- :mod:`~trustrl.config.values`: TOML values, and tables checked against a dataclass's field types;
- :mod:`~trustrl.config.overrides`: ``--set`` overrides and the keys a resumed run may change;
- :mod:`~trustrl.config.resolve`: presets, env-id defaults, a spec to a Config (:func:`load`);
- :mod:`~trustrl.config.safety`: the env kwargs of a saved run that name files;
- :mod:`~trustrl.config.document`: a config as commented TOML (``trustrl config``).

The names below are imported when first used, so a worker process that unpickles an
:class:`EnvConfig` loads the sections alone, never the algorithms (and torch) behind :class:`Config`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trustrl.algos import (A2CConfig, AlgoConfig, NaturalGradientConfig, NPGConfig, PPOConfig, REINFORCEConfig,
                               TRPOConfig)
    from trustrl.config.limits import MAX_BATCH, MAX_ENVS, MAX_EPISODES, MAX_SEED, MAX_STEPS, check_count, check_seed
    from trustrl.config.overrides import LAYOUT_KEYS, parse_env_kwargs, with_layout, with_overrides
    from trustrl.config.resolve import env_defaults, find_preset, load, preset_data, preset_names, spec_kind
    from trustrl.config.safety import accept_env_kwargs, names_file
    from trustrl.config.schema import ALGO_CONFIGS, SECTIONS, Config, from_dict, similar_keys
    from trustrl.config.sections import CriticConfig, EnvConfig, OfflineConfig, PolicyConfig, RunConfig, VineConfig
    from trustrl.config.values import parse_value, toml_key, toml_value
    from trustrl.errors import ConfigError

_MODULES = {
    "trustrl.algos": ("A2CConfig", "AlgoConfig", "NaturalGradientConfig", "NPGConfig", "PPOConfig", "REINFORCEConfig",
                      "TRPOConfig"),
    "trustrl.config.limits": ("MAX_BATCH", "MAX_ENVS", "MAX_EPISODES", "MAX_SEED", "MAX_STEPS", "check_count",
                              "check_seed"),
    "trustrl.config.overrides": ("LAYOUT_KEYS", "parse_env_kwargs", "with_layout", "with_overrides"),
    "trustrl.config.resolve": ("env_defaults", "find_preset", "load", "preset_data", "preset_names", "spec_kind"),
    "trustrl.config.safety": ("accept_env_kwargs", "names_file"),
    "trustrl.config.schema": ("ALGO_CONFIGS", "SECTIONS", "Config", "from_dict", "similar_keys"),
    "trustrl.config.sections": ("CriticConfig", "EnvConfig", "OfflineConfig", "PolicyConfig", "RunConfig",
                                "VineConfig"),
    "trustrl.config.values": ("parse_value", "toml_key", "toml_value"),
    "trustrl.errors": ("ConfigError",),
}
_PUBLIC = {name: module for module, names in _MODULES.items() for name in names}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'trustrl.config' has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_PUBLIC})

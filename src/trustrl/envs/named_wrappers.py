"""Wrappers named in the config (``env.wrappers``), put on every env copy in the order given.

An entry is ``"module:Wrapper"`` or a table ``{wrapper = "module:Wrapper", kwargs = {...}}``. The module is
imported as an ``env.imports`` module is (:func:`~trustrl.envs.registry.import_env_modules`), the attribute
must be a ``gymnasium.Wrapper`` class, and the kwargs must fit its signature. The wrappers go on right after
``gymnasium.make`` (and its time limit), before trustrl flattens the observations and clips the actions, so
a wrapper sees the env's own spaces. The run's config records them, so eval, video and ``--resume`` rebuild
the same env. Nothing here imports torch.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any, Iterable

import gymnasium as gym

from trustrl.envs.registry import import_env_modules
from trustrl.errors import ConfigError

FORM = 'the form is "module:Wrapper" or {wrapper = "module:Wrapper", kwargs = {...}}'


def wrapper_spec(entry: Any) -> tuple[str, dict[str, Any]]:
    """An ``env.wrappers`` entry as ``(target, kwargs)``; ConfigError on anything else."""
    if isinstance(entry, str):
        target, kwargs = entry, {}
    elif isinstance(entry, dict):
        unknown = set(entry) - {"wrapper", "kwargs"}
        if unknown or not isinstance(entry.get("wrapper"), str):
            raise ConfigError(f"env.wrappers: {entry!r}: {FORM}")
        target, kwargs = entry["wrapper"], entry.get("kwargs", {})
        if not isinstance(kwargs, dict):
            raise ConfigError(f"env.wrappers: the kwargs of {target!r} must be a table, got {kwargs!r}")
    else:
        raise ConfigError(f"env.wrappers: {entry!r}: {FORM}")
    module, sep, name = target.partition(":")
    if not sep or not module or not name:
        raise ConfigError(f"env.wrappers: {target!r}: {FORM}")
    return target, dict(kwargs)


def wrapper_class(target: str) -> type[gym.Wrapper]:
    """The ``gymnasium.Wrapper`` subclass ``module:Name`` names, its module imported as ``env.imports`` are."""
    module, _, name = target.partition(":")
    import_env_modules([module])
    found: Any = importlib.import_module(module)
    for part in name.split("."):
        if not hasattr(found, part):
            raise ConfigError(f"env.wrappers: module {module!r} has no attribute {name!r}")
        found = getattr(found, part)
    if not (isinstance(found, type) and issubclass(found, gym.Wrapper)):
        raise ConfigError(f"env.wrappers: {target!r} is not a gymnasium.Wrapper class (got {found!r})")
    return found


def check_wrappers(entries: Iterable[Any]) -> None:
    """Each entry names a wrapper class whose constructor takes ``(env, **kwargs)``."""
    for entry in entries:
        target, kwargs = wrapper_spec(entry)
        cls = wrapper_class(target)
        try:
            inspect.signature(cls).bind(None, **kwargs)
        except TypeError as exc:
            raise ConfigError(f"env.wrappers: bad kwargs for {target!r} ({exc})") from None
        except ValueError:  # a class without an inspectable signature: making the env will tell
            pass


def apply_wrappers(env: gym.Env, entries: Iterable[Any]) -> gym.Env:
    """``env`` inside each wrapper of ``entries``, the first innermost."""
    for entry in entries:
        target, kwargs = wrapper_spec(entry)
        try:
            env = wrapper_class(target)(env, **kwargs)
        except ConfigError:
            raise
        except Exception as exc:  # noqa: BLE001 -- the wrapper's own complaint, whatever it is, in one line
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise ConfigError(f"env.wrappers: cannot apply {target!r}: {type(exc).__name__}"
                              f"{': ' + detail if detail else ''}") from None
    return env

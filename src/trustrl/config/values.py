"""Values as TOML writes and ``--set`` reads them, and a section dataclass built from a table with its
values checked against the fields' types (ints accepted for floats, lists for tuples, ``"none"`` for None)."""

from __future__ import annotations

import dataclasses
import math
import re
import tomllib
import types
import typing
from typing import Any, Callable

import tomli_w

from trustrl.errors import ConfigError
from trustrl.suggestions import did_you_mean


def parse_toml_value(raw: str) -> Any:
    """A value as ``--set`` reads it: TOML syntax, else the text as a string."""
    return parse_value(raw)


_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def toml_value(value: Any) -> str:
    """One TOML value on one line (tables inline); None as the string ``"none"``, as config files write it."""
    if value is None:
        return '"none"'
    if isinstance(value, dict):
        return "{" + ", ".join(f"{toml_key(str(k))} = {toml_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return tomli_w.dumps({"v": value})[len("v = "):].strip()


def toml_key(name: str) -> str:
    return name if _BARE_KEY.match(name) else toml_value(name)


def parse_value(raw: str) -> Any:
    """TOML syntax for a value (``0.02``, ``true``, ``[64, 64]``); anything else is a string."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw
    except RecursionError:
        raise ConfigError(f"value {raw[:40]!r}... is nested too deeply") from None


def build_section(cls: type, values: dict[str, Any], section: str, source: str,
                  similar: Callable[[str], list[str]]) -> Any:
    """``cls`` from a table; ``similar(section.key)`` names what an unknown key may have meant."""
    if not isinstance(values, dict):
        raise ConfigError(f"{source}: [{section}] must be a table")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in values.items():
        if key not in fields:
            raise ConfigError(f"{source}: unknown key {section}.{key}{did_you_mean(similar(f'{section}.{key}'))}")
        kwargs[key] = coerce(value, hints[key], f"{section}.{key}", source)
    return cls(**kwargs)


def coerce(value: Any, hint: Any, key: str, source: str) -> Any:
    """Check a value against its field's type, accepting ints for floats and lists for tuples."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() == "none"):
            return None
        inner = [a for a in args if a is not type(None)]
        return coerce(value, inner[0], key, source)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            example = list_example(value)
            raise ConfigError(f"{source}: {key} must be a list, got {value!r}; a list is written in brackets, "
                              f"{example} (on the command line quoted: --set '{key}={example}')")
        return tuple(coerce(v, args[0], key, source) for v in value)
    if hint is dict or origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: {key} must be a table, got {value!r}")
        return dict(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: {key} must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{source}: {key} must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{source}: {key} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{source}: {key} must be finite, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{source}: {key} must be a string, got {value!r}")
        return value
    return value


def list_example(value: Any) -> str:
    """``'256,256'`` -> ``[256, 256]``: the TOML list a value written without brackets was meant to be."""
    items = [item.strip() for item in value.split(",")] if isinstance(value, str) else [value]
    return toml_value([parse_value(item) if isinstance(item, str) else item for item in items if item != ""])


def toml_safe(value: Any) -> Any:
    """TOML has no null: an optional field set to None is written as the string ``"none"``,
    which reads back as None (so ``max_grad_norm = none`` survives a round trip even
    where the default is a number)."""
    if isinstance(value, dict):
        return {k: toml_safe(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return list(value)
    if value is None:
        return "none"
    return value

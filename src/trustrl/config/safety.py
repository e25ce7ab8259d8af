"""A saved run is data from wherever it came from: its env kwargs choose no file for the env to read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trustrl.errors import ConfigError


def names_file(value: Any) -> bool:
    """A value that points at a file: a string with a path separator, a home-relative path, or an existing file."""
    if not isinstance(value, str):
        return False
    return "/" in value or "\\" in value or value.startswith("~") or Path(value).exists()


def accept_env_kwargs(data: dict[str, Any], given: dict[str, Any], source: str) -> dict[str, Any]:
    """The config tables ``data`` of a saved run with its env kwargs made safe to use here.

    A saved config is data from wherever the run came from: an ``env.kwargs`` value that names a file
    (``xml_file = "/etc/passwd"``) would make the env read it. Such a kwarg is used only if the user passes
    it again in ``given`` (the user's own values override the saved ones).
    """
    env = data.get("env") if isinstance(data, dict) else None
    kwargs = env.get("kwargs") if isinstance(env, dict) else None
    if not isinstance(kwargs, dict):
        if given:
            return {**data, "env": {**(env if isinstance(env, dict) else {}), "kwargs": dict(given)}}
        return data
    for key, value in kwargs.items():
        if names_file(value) and key not in given:
            raise ConfigError(f"{source}: env.kwargs.{key} names a file ({str(value)[:80]!r}); a saved run chooses no "
                              f"file for the env to read: pass it yourself to use it (--env-kwarg {key}=PATH)")
    return {**data, "env": {**env, "kwargs": {**kwargs, **given}}}

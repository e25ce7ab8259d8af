"""``--set section.key=value`` overrides, and the layout keys (and device) a resumed run may change."""

from __future__ import annotations

import logging
from typing import Any

from trustrl.config.limits import missing_cuda
from trustrl.config.schema import RENAMED, Config, from_dict, renamed_keys, similar_keys
from trustrl.config.values import parse_value
from trustrl.errors import ConfigError
from trustrl.suggestions import did_you_mean

_log = logging.getLogger("trustrl")

# Where the env copies run, never what they compute: a resumed run may change these.
LAYOUT_KEYS = ("run.workers", "run.placement", "run.worker_cpus")
#: What ``--resume`` may change: the layout, and the learner's device (a GPU run resumed on a CPU-only machine).
RESUME_KEYS = (*LAYOUT_KEYS, "run.device")


def with_layout(data: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """A config dict with ``overrides`` of :data:`RESUME_KEYS` only applied (anything else is refused)."""
    data = {key: dict(value) if isinstance(value, dict) else value for key, value in data.items()}
    for item in overrides:
        key = item.partition("=")[0].strip()
        section, _, name = key.partition(".")
        if f"{section}.{RENAMED.get((section, name), name)}" not in RESUME_KEYS:
            raise ConfigError(f"a resumed run keeps its config; --set may change only where it runs "
                              f"({', '.join(RESUME_KEYS)}), not {key!r}")
        if not isinstance(data.get(section, {}), dict):
            raise ConfigError(f"the run's config has no [{section}] table to set {key!r} in")
        apply_override(data, item)
    return data


def with_device(data: dict[str, Any], overrides: list[str] | tuple[str, ...], source: str) -> dict[str, Any]:
    """A resumed run's saved config with the ``run.device`` that ``overrides`` give, set before it is validated
    (so a run trained on a GPU resumes on a CPU-only machine), and a note that the numbers then differ from the
    run that never stopped; without one, a GPU run on such a machine is one error saying how."""
    recorded = data.get("run", {}).get("device") if isinstance(data.get("run"), dict) else None
    given = [item for item in overrides if item.partition("=")[0].strip() == "run.device"]
    if not given:
        if missing_cuda(recorded):
            raise ConfigError(f"{source}: the run trained on run.device {recorded!r} and this machine has no CUDA "
                              "device; resume it with --set run.device=cpu to continue on the CPU")
        return data
    data = with_layout(data, given)
    if data["run"]["device"] != recorded:
        _log.warning(f"note: the run trained on run.device {recorded!r} continues on {data['run']['device']!r}: the "
                     "continuation is not bit for bit the run that never stopped (devices differ in arithmetic)")
    return data


def apply_override(data: dict[str, Any], item: str) -> None:
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set expects section.key=value, got {item!r}")
    parts = key.strip().split(".")
    if len(parts) == 1 and parts[0] == "name":
        data["name"] = raw
        return
    if len(parts) != 2:
        algo = data.get("algo", {}).get("name", "trpo") if isinstance(data.get("algo"), dict) else "trpo"
        raise ConfigError(f"--set key must be section.key (e.g. algo.max_kl), got {key.strip()!r}"
                          f"{did_you_mean(similar_keys(key.strip(), algo))}")
    section, name = parts
    if (section, name) in RENAMED:
        name = RENAMED[section, name]
        _log.warning(f"note: --set {section}.{parts[1]} is now called {section}.{name} (read as such)")
    data.setdefault(section, {})[name] = parse_value(raw)


def with_overrides(data: dict[str, Any], overrides: list[str] | tuple[str, ...] = (), source: str = "config") -> Config:
    """A validated Config from the tables of a config with ``--set``-style overrides applied."""
    data = {key: dict(value) if isinstance(value, dict) else value for key, value in renamed_keys(data, source).items()}
    for item in overrides:
        apply_override(data, item)
    return from_dict(data, source)


def parse_env_kwargs(items: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """``["xml_file=/path/model.xml", "ctrl_cost_weight=0.1"]`` -> a dict (values in TOML syntax, else strings)."""
    kwargs = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--env-kwarg expects KEY=VALUE, got {item!r}")
        kwargs[key.strip()] = parse_value(raw)
    return kwargs

"""From what a user names -- a preset, a TOML file, an env id -- to a validated Config.

An env id gets its ``<env>-<algo>`` preset if one is bundled, else defaults for its action space
(:func:`env_defaults`). A preset or file keeps its algorithm: switching it would hand one algorithm
another's tuned settings, so the error names the preset or command to use instead.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from trustrl.config.overrides import apply_override
from trustrl.config.schema import ALGO_CONFIGS, Config, from_dict, renamed_keys
from trustrl.config.sections import EnvConfig
from trustrl.config.values import parse_value
from trustrl.envs.checks import close_env, describe_exception
from trustrl.envs.registry import check_env_id, import_env_modules, registered_id, similar_env_ids
from trustrl.errors import ConfigError, TrustrlError
from trustrl.suggestions import close_matches, did_you_mean

PRESETS = "trustrl.config.presets"


def load(spec: str, overrides: list[str] | tuple[str, ...] = (), algo: str | None = None) -> Config:
    """Resolve a preset name, a TOML path or a gymnasium env id, apply overrides, validate.

    ``spec`` may be a registered env id (``CartPole-v1``): the config is then the
    ``<env>-<algo>`` preset made for that id if there is one, else the defaults
    for the env's action space (:func:`env_defaults`). ``algo`` picks the
    algorithm for an env id (default ``trpo``); for a preset or a file it must
    match the algorithm already there -- a preset's settings are tuned for its
    algorithm, so switching silently would hand one algorithm another's
    hyper-parameters -- and the error names the preset or command to use instead.
    """
    if algo is not None and algo not in ALGO_CONFIGS:
        raise ConfigError(f"unknown algorithm {algo!r}; choose from {', '.join(ALGO_CONFIGS)}")
    for item in overrides:  # --set env.imports=[...] registers the ids that ``spec`` may name
        key, _, raw = item.partition("=")
        if key.strip() == "env.imports":
            modules = parse_value(raw)
            import_env_modules(modules if isinstance(modules, list) else [modules])
    data, source = _read_spec(spec, algo)
    data = renamed_keys(data, source)  # before overrides, which name keys as they are called today
    if algo is not None:
        _check_algo(data, source, algo)
    for item in overrides:
        apply_override(data, item)
    return from_dict(data, source)


def preset_names() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files(PRESETS).iterdir() if p.name.endswith(".toml"))


def preset_data(name: str) -> dict[str, Any]:
    """The raw TOML tables of a bundled preset."""
    return tomllib.loads(resources.files(PRESETS).joinpath(f"{name}.toml").read_text())


def find_preset(env_id: str, algo: str) -> str | None:
    """The bundled single-path preset for exactly this env id and algorithm, if there is one (a vine
    preset, or a variant such as ``walker2d-trpo-notebook``, is asked for by its name: of several
    matches the shortest name wins)."""
    matches = []
    for name in preset_names():
        data = preset_data(name)
        if (data.get("env", {}).get("id") == env_id and data.get("algo", {}).get("name", "trpo") == algo
                and data.get("run", {}).get("sampling", "single-path") == "single-path"):
            matches.append(name)
    return min(matches, key=lambda name: (len(name), name)) if matches else None


#: Defaults beyond the dataclasses' for an env id with no preset, by action-space kind.
_ACTION_KIND_DEFAULTS: dict[str, dict[str, dict[str, Any]]] = {
    "discrete": {},
    # continuous-control rewards vary in scale from env to env: scale them so V's targets are O(1)
    "box": {"env": {"norm_reward": True}},
}

#: ... and by action-space kind and algorithm. On Walker2d-v5 (benchmarks/README.md, section 7) a
#: trust region shrinking linearly from 0.03 to 0 with a starting action std of 0.61
#: (log_std_init -0.5) ended at or above 4294 on each of ten seeds (mean 5012 on seeds 0-4), where
#: from std 1 the same trust region gave 3704 on seeds 0-4 with one at 1888. It also beat a constant
#: max_kl 0.01 from std 1 on Hopper-v5 (3341 against 1858) and HalfCheetah-v5 (5286 against 1685),
#: 3 seeds each: the evidence for other Box envs is those three.
_ALGO_DEFAULTS: dict[tuple[str, str], dict[str, dict[str, Any]]] = {
    ("box", "trpo"): {"policy": {"log_std_init": -0.5},
                      "algo": {"max_kl": 0.03, "max_kl_schedule": "linear", "max_kl_final": 0.0}},
}


def env_defaults(env_id: str, algo: str) -> tuple[dict[str, Any], str]:
    """A config for any registered env id: its ``<env>-<algo>`` preset, else sensible defaults.

    The defaults are the dataclass defaults (``algo``'s own config class for the
    algorithm) plus :data:`_ACTION_KIND_DEFAULTS` for a Box or a discrete (Discrete, MultiDiscrete,
    MultiBinary) action space and :data:`_ALGO_DEFAULTS` for that kind and algorithm.
    """
    preset = find_preset(env_id, algo)
    if preset is not None:
        return preset_data(preset), f"preset {preset}"
    kind = _action_kind(env_id)
    data: dict[str, Any] = {"name": f"{env_id}-{algo}", "env": {"id": env_id}, "algo": {"name": algo}}
    for defaults in (_ACTION_KIND_DEFAULTS[kind], _ALGO_DEFAULTS.get((kind, algo), {})):
        for section, values in defaults.items():
            data.setdefault(section, {}).update(values)
    return data, f"{env_id} with {algo} defaults"


def _action_kind(env_id: str) -> str:
    import gymnasium as gym

    from trustrl.display import NOT_RENDERING, gl_failures_explained

    try:
        with gl_failures_explained(NOT_RENDERING):  # a MUJOCO_GL the user set may fail as mujoco is imported
            env = gym.make(registered_id(env_id))
    except TrustrlError:
        raise
    except (Exception, SystemExit) as exc:  # missing extras (mujoco, box2d), bad kwargs, an env that exits
        raise ConfigError(f"cannot make environment {env_id!r}: {describe_exception(exc)}") from None
    try:
        return "box" if isinstance(env.action_space, gym.spaces.Box) else "discrete"  # MultiDiscrete, MultiBinary
    finally:
        close_env(env, "the env")


def _check_algo(data: dict[str, Any], source: str, algo: str) -> None:
    current = data.get("algo", {}).get("name", "trpo")
    if current == algo:
        return
    env_id = data.get("env", {}).get("id", EnvConfig.id)
    preset = find_preset(env_id, algo)
    instead = f"preset {preset}" if preset else f"`trustrl train {env_id} --algo {algo}`"
    raise ConfigError(
        f"{source} is a {current} config; it cannot be switched to {algo} "
        f"(its settings are tuned for {current}); use {instead}"
    )


def _is_env_id(spec: str) -> bool:
    """A registered id, or ``module:Id`` (the module is imported to find out)."""
    import gymnasium as gym

    if ":" in spec:
        check_env_id(spec)  # an import that fails, or an id the module did not register, is named here
        return True
    return spec in gym.registry


def spec_kind(spec: str) -> str | None:
    """What ``spec`` names, as :func:`load` reads it: ``"file"`` (a .toml path or any file), ``"preset"``, ``"env"``
    (a registered id, or ``module:Id``), or None: nothing."""
    if spec.endswith(".toml") or Path(spec).is_file():
        return "file"
    if spec in preset_names():
        return "preset"
    return "env" if _is_env_id(spec) else None


def _read_spec(spec: str, algo: str | None = None) -> tuple[dict[str, Any], str]:
    kind = spec_kind(spec)
    if kind == "file":
        path = Path(spec)
        if not path.is_file():
            raise ConfigError(f"config file {spec!r} does not exist")
        try:
            return tomllib.loads(path.read_text(encoding="utf-8")), str(path)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{spec}: not valid TOML ({exc})") from None
        except RecursionError:
            raise ConfigError(f"{spec}: nested too deeply to be a config") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{spec}: not a UTF-8 text file (byte {exc.start}); TOML files are UTF-8") from None
        except OSError as exc:
            raise ConfigError(f"cannot read {spec}: {exc.strerror or exc}") from None
    if kind == "preset":
        return preset_data(spec), f"preset {spec}"
    if kind == "env":
        return env_defaults(spec, algo or "trpo")
    names = preset_names()
    raise ConfigError(
        f"unknown preset or env id {spec!r}{did_you_mean(close_matches(spec, [*names, *similar_env_ids(spec)]))} "
        f"(presets: {', '.join(names)}; "
        "or pass a .toml file, a gymnasium env id such as CartPole-v1, or an env of your own as module:Id)"
    )

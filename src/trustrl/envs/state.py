"""An env's state as JSON, and back: what vine branches from and what a checkpoint carries for an exact resume.

MuJoCo and classic-control envs are captured field by field; an env of your own by its
``snapshot_state()`` / ``restore_state()`` methods or its plain attributes. An env whose state cannot be
captured raises ConfigError, and a resume then starts fresh episodes and says so.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import gymnasium as gym
import numpy as np

from trustrl.envs.checks import describe_exception
from trustrl.envs.observations import FlattenStructured
from trustrl.envs.wrappers import ClipToBounds
from trustrl.errors import ConfigError, EnvError


def can_snapshot(env: gym.Env) -> bool:
    """Whether :func:`snapshot` can capture ``env`` exactly (else resume starts fresh episodes)."""
    try:
        snapshot(env)
    except ConfigError:
        return False
    return True


def snapshot(env: gym.Env) -> dict:
    """Everything needed to continue ``env`` bit-for-bit elsewhere, as plain JSON data.

    Resume restores it to replay the interrupted run exactly; vine sampling
    restores it several times to branch rollouts from one state. Covers the
    physics (or classic-control attributes), the env's RNG (so later resets
    match) and the wrapper counters (so time-limit truncation lands on the same
    step). Raises ConfigError for envs whose state is not known to be capturable.

    An env of your own takes part by defining ``snapshot_state() -> dict`` (plain
    JSON data: numbers, strings, lists, dicts) and ``restore_state(state)`` on
    its unwrapped class; its ``np_random`` and the wrappers are captured here.
    """
    kind = _snapshot_kind(env)
    base = env.unwrapped
    try:
        state = _CAPTURE[kind](base)
        rng = _capture_rng(base)
    except TypeError as exc:
        raise _cannot_capture(env, str(exc)) from None
    return {
        "kind": kind,
        "env_id": _env_name(env),
        **state,
        "rng": rng,
        "wrappers": [_capture_wrapper(wrapper) for wrapper in _wrapper_chain(env)],
    }


def restore(env: gym.Env, snap: dict) -> None:
    """Put ``env`` (built like the snapshotted one) into the state :func:`snapshot` recorded.

    Everything is checked before anything is changed, so a snapshot of another
    env or time limit raises ConfigError and leaves ``env`` as it was.
    """
    prepare_restore(env, snap)()


_MUJOCO_PREFIX = "gymnasium.envs.mujoco."
_CLASSIC_CONTROL_PREFIX = "gymnasium.envs.classic_control."
_RENDER_FIELDS = frozenset(
    {"render_mode", "screen", "clock", "isopen", "surf", "screen_width", "screen_height", "screen_dim"}
)
_SEEDABLE_BIT_GENERATORS = ("PCG64", "PCG64DXSM")
_JSON_DTYPE_KINDS = "biuf"
_KNOWN_WRAPPERS = (ClipToBounds, FlattenStructured, gym.wrappers.PassiveEnvChecker, gym.wrappers.OrderEnforcing,
                   gym.wrappers.TimeLimit)
"""Wrappers :func:`snapshot` accepts: ClipToBounds and FlattenStructured are stateless, PassiveEnvChecker's flags
only gate one-time API warnings (restore marks them done), OrderEnforcing and TimeLimit
keep one field each."""


def _env_name(env: Any) -> str:
    spec = getattr(env, "spec", None)
    return spec.id if spec is not None else type(getattr(env, "unwrapped", env)).__name__


def _cannot_capture(env: Any, reason: str) -> ConfigError:
    return ConfigError(
        f"{_env_name(env)}: its state cannot be captured ({reason}), so resuming "
        "starts fresh episodes and vine sampling is unavailable for it"
    )


def _snapshot_kind(env: Any) -> str:
    if not isinstance(env, gym.Env):
        raise _cannot_capture(env, f"{type(env).__name__} is not a single gymnasium.Env")
    for wrapper in _wrapper_chain(env):
        if type(wrapper) not in _KNOWN_WRAPPERS:
            raise _cannot_capture(env, f"wrapper {type(wrapper).__name__} may hold state")
    base = env.unwrapped
    if callable(getattr(base, "snapshot_state", None)) and callable(getattr(base, "restore_state", None)):
        return "custom"
    module = type(base).__module__
    if module.startswith(_MUJOCO_PREFIX):
        from gymnasium.envs.mujoco.mujoco_env import MujocoEnv

        if isinstance(base, MujocoEnv):
            return "mujoco"
    if module.startswith(_CLASSIC_CONTROL_PREFIX):
        return "classic_control"
    raise _cannot_capture(env, f"{type(base).__name__} is neither a gymnasium MuJoCo nor a classic-control env, "
                               "and defines no snapshot_state() / restore_state(state)")


def _wrapper_chain(env: gym.Env) -> list[gym.Wrapper]:
    chain = []
    while isinstance(env, gym.Wrapper):
        chain.append(env)
        env = env.env
    return chain


def _capture_wrapper(wrapper: gym.Wrapper) -> dict:
    record: dict[str, Any] = {"wrapper": type(wrapper).__name__}
    if type(wrapper) is gym.wrappers.TimeLimit:
        record["max_episode_steps"] = int(wrapper._max_episode_steps)
        record["elapsed_steps"] = _optional_int(wrapper._elapsed_steps)
    elif type(wrapper) is gym.wrappers.OrderEnforcing:
        record["has_reset"] = bool(wrapper._has_reset)
    return record


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _mujoco_state_kind() -> int:
    import mujoco

    return mujoco.mjtState.mjSTATE_INTEGRATION


def _capture_mujoco(base: Any) -> dict:
    """The integration state (incl. warm-start accelerations) and the body positions.

    ``xpos``/``xipos`` are left over from the last substep, one substep behind
    ``qpos``; Ant and Humanoid read them before stepping, so recomputing them on
    restore would change the next reward.
    """
    import mujoco

    physics = np.empty(mujoco.mj_stateSize(base.model, _mujoco_state_kind()), np.float64)
    mujoco.mj_getState(base.model, base.data, physics, _mujoco_state_kind())
    return {
        "physics": physics.tolist(),
        "body_xpos": base.data.xpos.ravel().tolist(),
        "body_xipos": base.data.xipos.ravel().tolist(),
    }


def _capture_classic(base: Any) -> dict:
    """The instance's number, array and None attributes: classic-control envs keep their episode there."""
    episode = {key: value for key, value in sorted(vars(base).items()) if _is_episode_attribute(key, value)}
    return {"attributes": {key: _encode_value(value, key) for key, value in episode.items()}}


def _is_episode_attribute(key: str, value: Any) -> bool:
    if key in _RENDER_FIELDS or key.startswith("_np_random") or key.startswith("__"):
        return False
    if isinstance(value, tuple):
        return all(_is_number(item) for item in value)
    return value is None or _is_number(value) or isinstance(value, np.ndarray)


def _is_number(value: Any) -> bool:
    return type(value) in (bool, int, float) or isinstance(value, np.generic)


def _encode_value(value: Any, key: str) -> Any:
    if value is None or type(value) in (bool, int, float):
        return value
    if isinstance(value, tuple):
        return {"tuple": [_encode_value(item, key) for item in value]}
    if value.dtype.kind not in _JSON_DTYPE_KINDS or value.dtype.itemsize > 8:
        raise TypeError(f"attribute {key!r} has dtype {value.dtype}, which has no exact JSON form")
    dtype = value.dtype.name
    if isinstance(value, np.ndarray):
        return {"dtype": dtype, "shape": list(value.shape), "data": value.ravel().tolist()}
    return {"dtype": dtype, "value": value.item()}


def _decode_value(encoded: Any) -> Any:
    if encoded is None or type(encoded) in (bool, int, float):
        return encoded
    if "tuple" in encoded:
        return tuple(_decode_value(item) for item in encoded["tuple"])
    dtype = np.dtype(encoded["dtype"])
    if dtype.kind not in _JSON_DTYPE_KINDS or dtype.itemsize > 8:
        raise ValueError(f"dtype {dtype} cannot be restored exactly")
    if "shape" not in encoded:
        return dtype.type(encoded["value"])
    array = np.array(encoded["data"], dtype=dtype)
    if array.size != int(np.prod(encoded["shape"])):
        raise ValueError(f"{array.size} values for shape {encoded['shape']}")
    return array.reshape(encoded["shape"])


def _capture_rng(base: Any) -> dict | None:
    """The env's own generator (None if never created), so the next unseeded reset matches."""
    if base._np_random is None:
        return None
    state = base._np_random.bit_generator.state
    if state["bit_generator"] not in _SEEDABLE_BIT_GENERATORS:
        raise TypeError(f"random generator {state['bit_generator']} keeps array state")
    return {"state": _plain_ints(state), "seed": _optional_int(base._np_random_seed)}


def _plain_ints(state: dict) -> dict:
    """A PCG64-style state dict with numpy integers (if any) made Python ints."""
    return {key: _plain_ints(value) if isinstance(value, dict) else _int_or_str(value) for key, value in state.items()}


def _int_or_str(value: Any) -> int | str:
    return value if isinstance(value, str) else int(value)


def _decode_rng(rng: dict | None) -> tuple[np.random.Generator | None, int | None]:
    if rng is None:
        return None, None
    state = rng["state"]
    if state["bit_generator"] not in _SEEDABLE_BIT_GENERATORS:
        raise ValueError(f"unsupported random generator {state['bit_generator']!r}")
    generator = np.random.Generator(getattr(np.random, state["bit_generator"])())
    generator.bit_generator.state = state
    return generator, _optional_int(rng["seed"])


def prepare_restore(env: gym.Env, snap: dict):
    """Validate ``snap`` against ``env`` and decode it; return the function that applies it (so several envs
    can all be checked before any is changed)."""
    kind = _snapshot_kind(env)
    name = _env_name(env)
    if snap.get("kind") != kind or snap.get("env_id") != name:
        raise ConfigError(
            f"cannot restore a snapshot of {snap.get('env_id')!r} ({snap.get('kind')}) into {name!r} ({kind})"
        )
    try:
        apply_wrappers = _prepare_wrappers(env, snap["wrappers"])
        apply_state = _PREPARE[kind](env.unwrapped, snap)
        generator, seed = _decode_rng(snap["rng"])
    except (KeyError, TypeError, ValueError, OverflowError) as exc:  # OverflowError: an RNG integer too large
        raise ConfigError(f"{name}: snapshot does not fit this env ({exc})") from None

    def apply() -> None:
        apply_state()
        env.unwrapped._np_random, env.unwrapped._np_random_seed = generator, seed
        apply_wrappers()

    return apply


def _prepare_wrappers(env: gym.Env, records: list[dict]):
    chain = _wrapper_chain(env)
    names = [type(wrapper).__name__ for wrapper in chain]
    if [record["wrapper"] for record in records] != names:
        raise ValueError(f"wrappers {[record['wrapper'] for record in records]} recorded, env has {names}")
    settings = []
    for wrapper, record in zip(chain, records):
        if type(wrapper) is gym.wrappers.TimeLimit:
            if record["max_episode_steps"] != wrapper._max_episode_steps:
                raise ValueError(
                    f"time limit {record['max_episode_steps']} recorded, env has {wrapper._max_episode_steps}"
                )
            settings.append((wrapper, "_elapsed_steps", _optional_int(record["elapsed_steps"])))
        elif type(wrapper) is gym.wrappers.OrderEnforcing:
            settings.append((wrapper, "_has_reset", bool(record["has_reset"])))
        elif type(wrapper) is gym.wrappers.PassiveEnvChecker:
            settings.extend(_checks_done(wrapper))

    def apply() -> None:
        for wrapper, field_name, value in settings:
            setattr(wrapper, field_name, value)

    return apply


def _checks_done(checker: gym.wrappers.PassiveEnvChecker) -> list[tuple]:
    """Mark the one-time API checks as run: they ran on the original, and a fresh
    checker would compare the first step with a reset that never happened here."""
    return [(checker, flag, True) for flag in ("checked_reset", "checked_step", "checked_data_reuse")] + [
        (checker, "_previous_data", None)
    ]


def _prepare_mujoco(base: Any, snap: dict):
    import mujoco

    physics = np.array(snap["physics"], dtype=np.float64)
    xpos = np.array(snap["body_xpos"], dtype=np.float64)
    xipos = np.array(snap["body_xipos"], dtype=np.float64)
    expected = mujoco.mj_stateSize(base.model, _mujoco_state_kind())
    if physics.shape != (expected,) or xpos.size != base.data.xpos.size or xipos.size != base.data.xipos.size:
        raise ValueError(
            f"physics of {physics.size} values and {xpos.size // 3} bodies recorded, "
            f"env has {expected} and {base.model.nbody}"
        )

    def apply() -> None:
        mujoco.mj_setState(base.model, base.data, physics, _mujoco_state_kind())
        mujoco.mj_forward(base.model, base.data)
        base.data.xpos[:] = xpos.reshape(base.data.xpos.shape)
        base.data.xipos[:] = xipos.reshape(base.data.xipos.shape)

    return apply


def _prepare_classic(base: Any, snap: dict):
    recorded = snap["attributes"]
    attributes = {key: _decode_value(value) for key, value in recorded.items() if _is_restorable_key(base, key)}
    if len(attributes) != len(recorded):
        raise ValueError(f"attributes {sorted(set(recorded) - set(attributes))} cannot be restored")
    unrecorded = sorted(
        key for key, value in vars(base).items() if _is_episode_attribute(key, value) and key not in attributes
    )
    if unrecorded:
        raise ValueError(f"env attributes {unrecorded} are missing from the snapshot")

    def apply() -> None:
        for key, value in attributes.items():
            setattr(base, key, value)

    return apply


def _is_restorable_key(base: Any, key: Any) -> bool:
    """A plain attribute of the instance: never one that would shadow a method or class attribute (``step``)."""
    return (isinstance(key, str) and key.isidentifier() and _is_episode_attribute(key, None)
            and (key in vars(base) or not hasattr(type(base), key)))


def _capture_custom(base: Any) -> dict:
    """The env's own ``snapshot_state()`` as JSON data (a checkpoint stores it), copied: the env may go on
    changing the lists it returned. A ``snapshot_state()`` that raises is the env's fault (EnvError)."""
    try:
        state = base.snapshot_state()
    except (Exception, SystemExit) as exc:
        raise EnvError(f"snapshot_state() raised {describe_exception(exc)}") from None
    try:
        state = json.loads(json.dumps(state, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"snapshot_state() returned what JSON cannot hold exactly ({exc})") from None
    return {"custom": state}


def _prepare_custom(base: Any, snap: dict):
    state = snap["custom"]

    def apply() -> None:
        try:
            base.restore_state(copy.deepcopy(state))  # a restored env never shares the snapshot's lists
        except (Exception, SystemExit) as exc:
            raise EnvError(f"restore_state() raised {describe_exception(exc)}") from None

    return apply


_CAPTURE = {"mujoco": _capture_mujoco, "classic_control": _capture_classic, "custom": _capture_custom}
_PREPARE = {"mujoco": _prepare_mujoco, "classic_control": _prepare_classic, "custom": _prepare_custom}

"""Vector environments: any gymnasium id, ``n_envs`` copies, same-step autoreset.

Normalisation is not a per-copy wrapper here: the sampler owns one
:class:`~trustrl.normalization.ObsNormalizer` for the whole vector env, so all
copies share one statistic and a checkpoint carries exactly one.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any, Callable

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

from trustrl.config import FACTORY_NAMESPACE, EnvConfig, registered_id
from trustrl.errors import ConfigError

#: Env functions registered in this process (id -> function): what a worker process is sent to make the env.
_FACTORIES: dict[str, Callable[..., gym.Env]] = {}


def register_factory(factory: Callable[..., gym.Env], name: str | None = None) -> str:
    """Register a function that makes the env (``lambda: MyEnv(level=3)``) with gymnasium; returns its id.

    The id, ``trustrl-factory/<name>``, is what the run's config records: it says that a function made
    the env, and evaluating the run in another process needs that function again. ``render_mode`` is
    passed to the function when a video is filmed, and only then.
    """
    if isinstance(factory, gym.Env) or not callable(factory):
        raise ConfigError(f"env must be a function that makes a new env each time it is called (every copy and "
                          f"every evaluation needs its own), e.g. env=lambda: MyEnv(); got {type(factory).__name__}")
    base = name or getattr(factory, "__name__", None) or type(factory).__name__
    base = re.sub(r"[^A-Za-z0-9_.-]+", "", base) or "env"
    env_id = f"{FACTORY_NAMESPACE}/{base}"
    if name is None:  # a name of the function's own: another function registered under it keeps its id
        number = 1
        while env_id in _FACTORIES and _FACTORIES[env_id] is not factory:
            number += 1
            env_id = f"{FACTORY_NAMESPACE}/{base}-{number}"
    if env_id in gym.registry:
        del gym.registry[env_id]  # a run's recorded id given its function again: that function is the one meant
    gym.register(env_id, entry_point=lambda **kwargs: factory(**kwargs))
    _FACTORIES[env_id] = factory
    return env_id


def factory_payload(env_id: str) -> bytes | None:
    """The function registered for ``env_id``, pickled for a worker process or Ray actor (None for other ids)."""
    if env_id not in _FACTORIES:
        return None
    import cloudpickle  # gymnasium's own dependency; pickles lambdas and closures by value

    try:
        return cloudpickle.dumps(_FACTORIES[env_id])
    except Exception as exc:  # noqa: BLE001 -- whatever the function holds that cannot be pickled
        raise ConfigError(f"the env function of {env_id!r} cannot be sent to worker processes ({type(exc).__name__}: "
                          f"{exc}); train with run.workers = 1, or make the env from a registered id") from None


def register_payload(env_id: str, payload: bytes | None) -> None:
    """In a worker: register the env function a :func:`factory_payload` carried (nothing for other ids)."""
    if payload is None:
        return
    import cloudpickle

    factory = cloudpickle.loads(payload)
    register_factory(factory, env_id.split("/", 1)[1])


def make_env(cfg: EnvConfig, render_mode: str | None = None) -> gym.Env:
    """One env (for evaluation and video), with the same time limit as training."""
    env_id = registered_id(cfg.id, cfg.imports)
    kwargs: dict[str, Any] = dict(cfg.kwargs)
    if cfg.max_episode_steps is not None:
        kwargs["max_episode_steps"] = cfg.max_episode_steps
    if render_mode is not None:
        kwargs["render_mode"] = render_mode
    try:
        env = gym.make(env_id, **kwargs)
    except (gym.error.Error, TypeError, ImportError) as exc:
        raise ConfigError(f"cannot make environment {cfg.id!r}: {exc}") from None
    check_spaces(env.observation_space, env.action_space, cfg.id)
    if isinstance(env.action_space, gym.spaces.Box):
        env = ClipToBounds(env)
    return env


class ClipToBounds(gym.ActionWrapper):
    """Clip Box actions to the env's bounds, keeping the declared action space.

    (gymnasium's ClipAction widens the declared space to (-inf, inf), which
    would hide the bounds from checkpoints that record the spaces.) The policy
    samples unbounded Gaussian actions; log-probabilities are of those.
    """

    def action(self, action):
        return np.clip(action, self.action_space.low, self.action_space.high)


def make_vec_env(cfg: EnvConfig) -> "SyncVecEnv | gym.vector.VectorEnv":
    """``n_envs`` copies stepped together; a finished episode resets within the same step.

    Same-step autoreset means every step is a real transition and the true
    final observation of an episode arrives in ``info["final_obs"]`` -- the
    one a truncated step must bootstrap from. ``sync`` uses trustrl's own
    :class:`SyncVecEnv` (no per-step info merging); ``async`` uses gymnasium's
    AsyncVectorEnv with shared memory, one process per copy.
    """
    env_id = registered_id(cfg.id, cfg.imports)
    kwargs: dict[str, Any] = dict(cfg.kwargs)
    if cfg.max_episode_steps is not None:
        kwargs["max_episode_steps"] = cfg.max_episode_steps
    try:
        if cfg.vectorization == "sync":
            envs = SyncVecEnv([gym.make(env_id, **kwargs) for _ in range(cfg.n_envs)])
        else:
            envs = gym.make_vec(
                env_id,
                num_envs=cfg.n_envs,
                vectorization_mode="async",
                vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP, "shared_memory": True},
                wrappers=[_clip_if_box],
                **kwargs,
            )
    except (gym.error.Error, TypeError, ImportError) as exc:
        raise ConfigError(f"cannot make environment {cfg.id!r}: {exc}") from None
    check_spaces(envs.single_observation_space, envs.single_action_space, cfg.id)
    return envs


def _clip_if_box(env: gym.Env) -> gym.Env:
    return ClipToBounds(env) if isinstance(env.action_space, gym.spaces.Box) else env


class SyncVecEnv:
    """Steps ``envs`` in turn with same-step autoreset, returning stacked arrays.

    The same contract as gymnasium's sync vector env in ``SAME_STEP`` mode,
    minus the per-step merging of every sub-env's info dict, which on MuJoCo
    envs costs about as much as the simulation: ``info`` is empty unless an
    episode ended, and then holds only ``final_obs`` (an object array with
    the final observation at the finished positions, None elsewhere).
    Box actions are clipped to the action bounds.
    """

    def __init__(self, envs: list[gym.Env]):
        self.envs = envs
        self.num_envs = len(envs)
        self.single_observation_space = envs[0].observation_space
        self.single_action_space = envs[0].action_space
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, self.num_envs)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, self.num_envs)
        box = isinstance(self.single_action_space, gym.spaces.Box)
        self._low = self.single_action_space.low if box else None
        self._high = self.single_action_space.high if box else None
        self._obs = np.zeros((self.num_envs, *self.single_observation_space.shape), self.single_observation_space.dtype)
        self._rewards = np.zeros(self.num_envs, np.float64)
        self._terminated = np.zeros(self.num_envs, bool)
        self._truncated = np.zeros(self.num_envs, bool)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        for i, env in enumerate(self.envs):
            self._obs[i], _ = env.reset(seed=None if seed is None else seed + i, options=options)
        return self._obs.copy(), {}

    def bound(self, actions: np.ndarray) -> np.ndarray:
        """Box actions clipped to the action bounds (Discrete ones as they are): what :meth:`step` does first,
        and what a vine branch, stepping one copy on its own, does too."""
        if self._low is None:
            return actions
        return np.minimum(np.maximum(actions, self._low), self._high)

    def step(self, actions: np.ndarray):
        actions = self.bound(actions)
        info: dict[str, Any] = {}
        for i, env in enumerate(self.envs):
            obs, reward, terminated, truncated, _ = env.step(actions[i])
            if terminated or truncated:
                final = info.setdefault("final_obs", np.full(self.num_envs, None, dtype=object))
                final[i] = obs
                obs, _ = env.reset()
            self._obs[i] = obs
            self._rewards[i] = reward
            self._terminated[i] = terminated
            self._truncated[i] = truncated
        return self._obs.copy(), self._rewards.copy(), self._terminated.copy(), self._truncated.copy(), info

    def render(self):
        return self.envs[0].render()

    def close(self) -> None:
        for env in self.envs:
            env.close()

    def snapshot(self) -> list[dict]:
        """Each copy's :func:`snapshot`, in copy order (for bit-exact resume and vine branches)."""
        return [snapshot(env) for env in self.envs]

    def restore(self, snaps: list[dict]) -> None:
        """Restore every copy from :meth:`snapshot`'s list; all are checked before any is changed."""
        if len(snaps) != self.num_envs:
            raise ConfigError(f"cannot restore {len(snaps)} env snapshots into {self.num_envs} copies")
        for apply in [_prepare_restore(env, snap) for env, snap in zip(self.envs, snaps)]:
            apply()


def check_spaces(obs_space: gym.Space, act_space: gym.Space, env_id: str) -> None:
    """trustrl's policies handle flat Box observations and Box or Discrete actions."""
    if not isinstance(obs_space, gym.spaces.Box) or len(obs_space.shape) != 1:
        raise ConfigError(f"{env_id}: observations must be a flat Box, got {obs_space}")
    if isinstance(act_space, gym.spaces.Box):
        if len(act_space.shape) != 1:
            raise ConfigError(f"{env_id}: Box actions must be a vector, got {act_space}")
    elif not isinstance(act_space, gym.spaces.Discrete):
        raise ConfigError(f"{env_id}: actions must be Box or Discrete, got {act_space}")


def describe_spaces(obs_space: gym.Space, act_space: gym.Space) -> dict[str, Any]:
    """A JSON-able fingerprint of the spaces, stored in checkpoints and compared on load."""
    out: dict[str, Any] = {"obs_shape": list(obs_space.shape)}
    if isinstance(act_space, gym.spaces.Discrete):
        out["action"] = {"type": "discrete", "n": int(act_space.n)}
    else:
        out["action"] = {
            "type": "box",
            "shape": list(act_space.shape),
            "low": np.asarray(act_space.low, np.float64).tolist(),
            "high": np.asarray(act_space.high, np.float64).tolist(),
        }
    return out


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
    _prepare_restore(env, snap)()


_MUJOCO_PREFIX = "gymnasium.envs.mujoco."
_CLASSIC_CONTROL_PREFIX = "gymnasium.envs.classic_control."
_RENDER_FIELDS = frozenset(
    {"render_mode", "screen", "clock", "isopen", "surf", "screen_width", "screen_height", "screen_dim"}
)
_SEEDABLE_BIT_GENERATORS = ("PCG64", "PCG64DXSM")
_JSON_DTYPE_KINDS = "biuf"
_KNOWN_WRAPPERS = (ClipToBounds, gym.wrappers.PassiveEnvChecker, gym.wrappers.OrderEnforcing, gym.wrappers.TimeLimit)
"""Wrappers :func:`snapshot` accepts: ClipToBounds is stateless, PassiveEnvChecker's flags
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


def _prepare_restore(env: gym.Env, snap: dict):
    """Validate ``snap`` against ``env`` and decode it; return the function that applies it."""
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
    except (KeyError, TypeError, ValueError) as exc:
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
    attributes = {key: _decode_value(value) for key, value in recorded.items() if _is_restorable_key(key)}
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


def _is_restorable_key(key: Any) -> bool:
    return isinstance(key, str) and key.isidentifier() and _is_episode_attribute(key, None)


def _capture_custom(base: Any) -> dict:
    """The env's own ``snapshot_state()`` as JSON data (a checkpoint stores it), copied: the env may go on
    changing the lists it returned."""
    try:
        state = json.loads(json.dumps(base.snapshot_state(), allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"snapshot_state() returned what JSON cannot hold exactly ({exc})") from None
    return {"custom": state}


def _prepare_custom(base: Any, snap: dict):
    state = snap["custom"]
    return lambda: base.restore_state(copy.deepcopy(state))  # a restored env never shares the snapshot's lists


_CAPTURE = {"mujoco": _capture_mujoco, "classic_control": _capture_classic, "custom": _capture_custom}
_PREPARE = {"mujoco": _prepare_mujoco, "classic_control": _prepare_classic, "custom": _prepare_custom}

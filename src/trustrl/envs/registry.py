"""Which env an id names: gymnasium ids, ``module:Id`` ids whose module registers them, and env functions.

An env made by a Python function is registered under ``trustrl-factory/<name>``; a worker process or Ray
actor is sent the function pickled (:func:`factory_payload`) and registers it the same way there.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Iterable

import gymnasium as gym

from trustrl.errors import ConfigError, EnvUnavailableError, TrustrlError
from trustrl.import_paths import found_in_run_directory, import_env_module
from trustrl.suggestions import close_matches, did_you_mean

#: Ids of envs made by a Python function (``trustrl.train(cfg, env=make)``) live in this gymnasium namespace.
FACTORY_NAMESPACE = "trustrl-factory"

_MODULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def import_env_modules(modules: Iterable[Any]) -> None:
    """Import each module (dotted name), so the env ids it registers with gymnasium exist; never from a loaded
    run's folder (:mod:`trustrl.import_paths`)."""
    for name in modules:
        if not isinstance(name, str) or not _MODULE_NAME.match(name):
            raise ConfigError(f"env.imports: {name!r} is not a module name (e.g. mypkg.envs)")
        try:
            import_env_module(name)
        except (Exception, SystemExit) as exc:  # noqa: BLE001 -- the module's own error (or exit), in one line
            if isinstance(exc, SystemExit):
                raise EnvUnavailableError(f"cannot import module {name!r} for the env: it called "
                                          f"sys.exit({exc.code!r})") from None
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            hint = "; is its folder on PYTHONPATH?" if isinstance(exc, ModuleNotFoundError) else ""
            shipped = found_in_run_directory(name) if isinstance(exc, ModuleNotFoundError) else None
            if shipped is not None:
                hint = f"; the one in {shipped} is inside a run directory, never imported: keep it outside runs"
            raise EnvUnavailableError(f"cannot import module {name!r} for the env: {type(exc).__name__}"
                                      f"{': ' + detail if detail else ''}{hint}") from None


def registered_id(env_id: str, imports: Iterable[str] = ()) -> str:
    """The gymnasium id to make: ``imports`` and the module of a ``module:Id`` imported first, the module
    prefix dropped. Fails early, with suggestions, on an id gymnasium does not know."""
    import_env_modules(imports)
    module, sep, bare = env_id.rpartition(":")
    if sep:
        if not module:
            raise ConfigError(f"env id {env_id!r}: nothing before ':' (the form is module:Id, e.g. mypkg.envs:Line-v0)")
        import_env_modules([module])
    if bare in gym.registry:
        return bare
    if bare.startswith(FACTORY_NAMESPACE + "/"):
        raise EnvUnavailableError(f"the env {bare!r} was made by a Python function (trustrl.train(..., env=make_env)); "
                                  "pass the same function again (trustrl.load(run, env=make_env), "
                                  "trustrl.resume(run, env=make_env)), or evaluate in a registered env with --env ID")
    where = f" (module {module!r} was imported but did not register it)" if sep else ""
    custom = "" if sep else "; an env of your own: module:Id or env.imports"
    raise EnvUnavailableError(f"unknown environment id {bare!r}{where}{did_you_mean(similar_env_ids(bare))}{custom}")


def similar_env_ids(name: str) -> list[str]:
    """Registered ids that ``name`` may have meant (``Cartpole-v1`` -> ``CartPole-v1``)."""
    return close_matches(name, [env_id for env_id in gym.registry if not env_id.startswith(FACTORY_NAMESPACE + "/")])


def check_env_id(env_id: str, imports: Iterable[str] = ()) -> None:
    """Fail early, with suggestions, on an id gymnasium does not know (after importing what it needs)."""
    registered_id(env_id, imports)


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
    gym.register(env_id, entry_point=lambda **kwargs: _made_by(factory, kwargs))
    _FACTORIES[env_id] = factory
    return env_id


def _made_by(factory: Callable[..., gym.Env], kwargs: dict[str, Any]) -> gym.Env:
    """The env ``factory`` makes; a failure of it is one error naming the function (the user's code, whose
    traceback would otherwise end the run from deep inside gymnasium)."""
    try:
        return factory(**kwargs)
    except TrustrlError:
        raise
    except Exception as exc:
        name = getattr(factory, "__name__", type(factory).__name__)
        detail = (str(exc).strip().splitlines() or [""])[0][:200]
        raise EnvUnavailableError(f"the env function {name}() raised {type(exc).__name__}: {detail}") from None


def is_factory_id(env_id: object) -> bool:
    """Whether a run's recorded env id says a Python function made its env."""
    return isinstance(env_id, str) and env_id.startswith(FACTORY_NAMESPACE + "/")


def register_again(factory: Callable[..., gym.Env], recorded_id: object) -> str:
    """Register ``factory`` -- the function that made a run's env, given again -- under the id the run recorded;
    for a run whose env had an id of its own, under a fresh id of the function's. Returns the id."""
    name = recorded_id.split("/", 1)[1] if is_factory_id(recorded_id) else None
    return register_factory(factory, name)


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

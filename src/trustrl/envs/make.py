"""Making envs: one for evaluation and video, ``n_envs`` copies stepped together with same-step autoreset.

Normalisation is not a per-copy wrapper here: the sampler owns one
:class:`~trustrl.normalization.ObsNormalizer` for the whole vector env, so all
copies share one statistic and a checkpoint carries exactly one. The functions
read an :class:`~trustrl.config.EnvConfig`'s fields and nothing else of a config.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Callable, Iterator

import gymnasium as gym
from gymnasium.vector import AutoresetMode

from trustrl.display import is_gl_failure
from trustrl.envs.actions import check_action_space, describe_action_space
from trustrl.envs.checks import CheckedCopy, describe_exception
from trustrl.envs.named_wrappers import apply_wrappers
from trustrl.envs.observations import FlatBox, describe_source, flatten_if_structured
from trustrl.envs.registry import registered_id
from trustrl.envs.vector import SyncVecEnv
from trustrl.envs.wrappers import ClipToBounds, clip_if_box
from trustrl.errors import ConfigError, TrustrlError
from trustrl.lifeline import die_with_parent

if TYPE_CHECKING:
    from trustrl.config import EnvConfig


def make_env(cfg: EnvConfig, render_mode: str | None = None) -> gym.Env:
    """One env (for evaluation and video), with the same time limit, wrappers and flattening as training."""
    env_id, kwargs = _make_args(cfg)
    if render_mode is not None:
        kwargs["render_mode"] = render_mode
    with _making(cfg.id):
        env = gym.make(env_id, **kwargs)
    env = prepared(env, cfg)
    check_spaces(env.observation_space, env.action_space, cfg.id)
    if isinstance(env.action_space, gym.spaces.Box):
        env = ClipToBounds(env)
    return env


def make_vec_env(cfg: EnvConfig) -> "SyncVecEnv | gym.vector.VectorEnv":
    """``n_envs`` copies stepped together; a finished episode resets within the same step.

    Same-step autoreset means every step is a real transition and the true
    final observation of an episode arrives in ``info["final_obs"]`` -- the
    one a truncated step must bootstrap from. ``sync`` uses trustrl's own
    :class:`SyncVecEnv` (no per-step info merging); ``async`` uses gymnasium's
    AsyncVectorEnv with shared memory, one process per copy. Each copy gets the config's wrappers and
    flat observations (:func:`prepared`).
    """
    env_id, kwargs = _make_args(cfg)
    with _making(cfg.id):
        if cfg.vectorization == "sync":
            envs = SyncVecEnv([prepared(gym.make(env_id, **kwargs), cfg) for _ in range(cfg.n_envs)])
        else:
            envs = gym.make_vec(
                env_id,
                num_envs=cfg.n_envs,
                vectorization_mode="async",
                vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP, "shared_memory": True},
                wrappers=[lambda env: prepared(env, cfg), CheckedCopy, clip_if_box, tied_to_process(os.getpid())],
                **kwargs,
            )
    check_spaces(envs.single_observation_space, envs.single_action_space, cfg.id)
    return envs


def _make_args(cfg: EnvConfig) -> tuple[str, dict[str, Any]]:
    """The gymnasium id to make and its keyword arguments: ``env.kwargs`` with ``env.max_episode_steps`` over
    them. A ``max_episode_steps`` among the kwargs gets the same check as the setting (gymnasium asserts)."""
    env_id = registered_id(cfg.id, cfg.imports)
    kwargs: dict[str, Any] = dict(cfg.kwargs)
    if cfg.max_episode_steps is not None:
        kwargs["max_episode_steps"] = cfg.max_episode_steps
    limit = kwargs.get("max_episode_steps")
    if limit is not None and (type(limit) is not int or limit < 1):
        raise ConfigError(f"env.kwargs: max_episode_steps must be a positive integer (or None), got {limit!r}")
    return env_id, kwargs


@contextmanager
def _making(env_id: str) -> Iterator[None]:
    """Whatever making the env raises -- its ``__init__`` is the user's code, and may even call sys.exit --
    is one ConfigError naming the env; trustrl's own errors (a space refused) go through as they are."""
    try:
        yield
    except TrustrlError:
        raise
    except (gym.error.Error, TypeError, ImportError) as exc:
        raise ConfigError(f"cannot make environment {env_id!r}: {exc}") from None
    except (Exception, SystemExit) as exc:
        if isinstance(exc, Exception) and is_gl_failure(exc):
            raise  # OpenGL, not the env: said with the packages to install (trustrl.display.gl_failures_explained)
        raise ConfigError(f"cannot make environment {env_id!r}: it raised {describe_exception(exc)}") from None


def tied_to_process(learner_pid: int) -> Callable[[gym.Env], gym.Env]:
    """A "wrapper" that wraps nothing: made in an async copy's own process, it ties that process's life to the
    learner's (:mod:`trustrl.lifeline`), so a copy whose env hangs in ``step`` ends with a killed learner."""
    def tie(env: gym.Env) -> gym.Env:
        # gymnasium makes one copy in the learner too, to read the spaces; a copy started by a fork server
        # has another parent, and ends when its pipe to the learner closes
        if os.getpid() != learner_pid and os.getppid() == learner_pid:
            die_with_parent(learner_pid)
        return env

    return tie


def prepared(env: gym.Env, cfg: EnvConfig) -> gym.Env:
    """A freshly made env inside the config's wrappers (``env.wrappers``, in order), then with its observations
    flattened if they are not a flat Box already (:mod:`trustrl.envs.observations`); a flat-Box env with no
    wrappers named is returned as it is."""
    return flatten_if_structured(apply_wrappers(env, cfg.wrappers))


def check_spaces(obs_space: gym.Space, act_space: gym.Space, env_id: str) -> None:
    """trustrl's policies handle flat Box observations (envs flatten others when made) and the actions of
    :mod:`trustrl.envs.actions`."""
    if not isinstance(obs_space, gym.spaces.Box) or len(obs_space.shape) != 1:
        raise ConfigError(f"{env_id}: observations must be a flat Box, got {obs_space}")
    if obs_space.shape[0] == 0:
        raise ConfigError(f"{env_id}: observations must have at least one entry, got {obs_space}")
    check_action_space(act_space, env_id)


def describe_spaces(obs_space: gym.Space, act_space: gym.Space) -> dict[str, Any]:
    """A JSON-able fingerprint of the spaces, stored in checkpoints and compared on load; flattened
    observations add the structure they came from (keys and shapes)."""
    out: dict[str, Any] = {"obs_shape": list(obs_space.shape)}
    if isinstance(obs_space, FlatBox):
        out["obs_source"] = describe_source(obs_space.source)
    out["action"] = describe_action_space(act_space)
    return out

"""What an env returns, checked where it enters trustrl: a failed call is one line naming the copy and the call.

An env is the user's code. What it raises -- or returns against its spaces -- would otherwise end
in a traceback deep in a sampler, or worse be taken silently: numpy broadcasts an observation of
shape ``()`` into a ``(4,)`` row and turns the string ``"1.5"`` into a reward. Every call into an env
that trustrl makes itself (reset, step, close, and the snapshots of :mod:`trustrl.envs.state`) goes
through here, and a fault raises :class:`~trustrl.errors.EnvError`:
``env copy 0: step() returned an observation of shape (3,), the space is (4,)``.

The per-step checks are identity tests on the types envs return (a Python or numpy float, a bool, an
ndarray of the space's shape); only what fails them is looked at closely. Nothing here imports torch.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import gymnasium as gym
import numpy as np

from trustrl.errors import EnvError, TrustrlError

#: Reward types taken as they are; anything else must be a real number of no dimensions.
REAL_TYPES = frozenset({float, int, np.float64, np.float32, np.float16, np.int64, np.int32})
#: ``terminated`` / ``truncated`` types taken as they are; anything else must be a 0-d bool or 0/1.
FLAG_TYPES = frozenset({bool, np.bool_})
#: Array kinds an observation may hold: bool, signed and unsigned integers, floats.
_NUMBER_KINDS = "biuf"

def label(who: int | str) -> str:
    """``env copy 3`` for a copy index, the name itself otherwise (``who`` is made a message only on failure)."""
    return f"env copy {who}" if isinstance(who, int) else who


def describe_exception(exc: BaseException) -> str:
    """``RuntimeError: the simulator broke`` (its first line), or ``sys.exit(3)`` for a SystemExit."""
    if isinstance(exc, SystemExit):
        return f"sys.exit({exc.code!r})"
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def raised(who: int | str, call: str, exc: BaseException) -> EnvError:
    """The error for an env call that raised (or exited): the copy, the call, the env's own message."""
    how = "called" if isinstance(exc, SystemExit) else "raised"
    return EnvError(f"{label(who)}: {call}() {how} {describe_exception(exc)}")


def call_env(who: int | str, call: str, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``method(*args, **kwargs)`` -- a call into an env off the per-step path -- with what it raises (a
    SystemExit too) made one :class:`EnvError`; Ctrl-C goes through."""
    try:
        return method(*args, **kwargs)
    except (Exception, SystemExit) as exc:
        raise raised(who, call, exc) from None


def close_env(env: Any, who: int | str) -> None:
    """``env.close()``, a failure of it one :class:`EnvError` -- unless an error is already on its way out
    (``close_env`` in a ``finally``): that error is the one to report."""
    on_its_way = sys.exc_info()[1]
    try:
        env.close()
    except (Exception, SystemExit) as exc:
        if on_its_way is None:
            raise raised(who, "close", exc) from None


def checked_reset(env: Any, who: int | str, **kwargs: Any) -> Any:
    """``env.reset(**kwargs)``'s observation, checked against ``env.observation_space``."""
    return check_reset(call_env(who, "reset", env.reset, **kwargs), env.observation_space.shape, who)[0]


def check_reset(result: Any, obs_shape: tuple[int, ...], who: int | str) -> tuple[Any, Any]:
    """``result`` of a ``reset()`` if it is ``(observation, info)`` with an observation of the space's shape."""
    if type(result) is not tuple or len(result) != 2:
        raise EnvError(f"{label(who)}: reset() returned {_kind_of(result)}, not (observation, info)")
    check_observation(result[0], obs_shape, who, "reset")
    return result


def step_failed(who: int | str, exc: BaseException) -> EnvError:
    """The error for ``obs, reward, terminated, truncated, info = env.step(action)`` that raised ``exc``: the
    env's own error, or -- raised in the caller's frame itself -- the unpacking of other than five values."""
    if isinstance(exc, (ValueError, TypeError)) and exc.__traceback__ is not None and exc.__traceback__.tb_next is None:
        return EnvError(f"{label(who)}: step() did not return five values (observation, reward, terminated, "
                        f"truncated, info): {exc}")
    return raised(who, "step", exc)


def checked_step(env: Any, action: Any, who: int | str) -> tuple[Any, Any, Any, Any, Any]:
    """``env.step(action)``, each of its five values checked (:func:`check_step`)."""
    try:
        result = env.step(action)
    except (Exception, SystemExit) as exc:
        raise raised(who, "step", exc) from None
    return check_step(result, env.observation_space.shape, who)


def check_step(result: Any, obs_shape: tuple[int, ...], who: int | str) -> tuple[Any, Any, Any, Any, Any]:
    """``result`` of a ``step()`` if it is five values of the right kinds; EnvError naming the first wrong one.

    The fast path is one expression of identity tests, so the check costs a fraction of a microsecond.
    """
    if type(result) is not tuple or len(result) != 5:
        raise EnvError(f"{label(who)}: step() returned {_kind_of(result)}, not (observation, reward, terminated, "
                       "truncated, info)")
    obs, reward, terminated, truncated, _ = result
    if not (type(obs) is np.ndarray and obs.shape == obs_shape and obs.dtype.kind in _NUMBER_KINDS
            and type(reward) in REAL_TYPES and type(terminated) in FLAG_TYPES and type(truncated) in FLAG_TYPES):
        check_observation(obs, obs_shape, who, "step")
        check_reward(reward, who)
        check_flag(terminated, "terminated", who)
        check_flag(truncated, "truncated", who)
    return result


def check_observation(obs: Any, shape: tuple[int, ...], who: int | str, call: str) -> None:
    """An observation must be a numpy array of numbers of the space's shape (lists and scalars are refused:
    numpy would take them, broadcast a scalar into every entry, and the policy would act on that)."""
    where = f"{label(who)}: {call}() returned an observation"
    if isinstance(obs, np.generic):
        obs = np.asarray(obs)  # a numpy scalar: its shape, (), is what is wrong
    if not isinstance(obs, np.ndarray):
        raise EnvError(f"{where} of type {type(obs).__name__}, not a numpy array of shape {shape}")
    if obs.shape != shape:
        raise EnvError(f"{where} of shape {obs.shape}, the space is {shape}")
    if obs.dtype.kind not in _NUMBER_KINDS:
        raise EnvError(f"{where} of dtype {obs.dtype}, not numbers")


def check_reward(reward: Any, who: int | str) -> None:
    """A reward is one real number (a 0-d array of one is fine); not a vector, a complex number or a string."""
    value = np.asarray(reward) if not isinstance(reward, str) else None
    if value is None or value.ndim != 0 or value.dtype.kind not in _NUMBER_KINDS:
        raise EnvError(f"{label(who)}: step() returned a reward of {_kind_of(reward)}, not one real number")


def check_flag(flag: Any, name: str, who: int | str) -> None:
    """``terminated`` and ``truncated`` are each one bool (0 and 1 pass too); not an array."""
    value = np.asarray(flag) if not isinstance(flag, str) else None
    if value is None or value.ndim != 0 or not (value.dtype.kind == "b" or (value.dtype.kind in "iu"
                                                                           and value in (0, 1))):
        raise EnvError(f"{label(who)}: step() returned {name} as {_kind_of(flag)}, not one bool")


#: How an env copy in gymnasium's async vector env is named: its process does not know its index.
ASYNC_COPY = "an env copy"


class CheckedCopy(gym.Wrapper):
    """An env copy in a process of gymnasium's async vector env, its calls checked there -- before a wrong
    observation fails to fit shared memory, or a string reward is cast to a float on the way back."""

    def reset(self, **kwargs: Any):
        return check_reset(call_env(ASYNC_COPY, "reset", self.env.reset, **kwargs), self.observation_space.shape,
                           ASYNC_COPY)

    def step(self, action: Any):
        return checked_step(self.env, action, ASYNC_COPY)

    def close(self) -> None:
        close_env(self.env, ASYNC_COPY)


@contextmanager
def async_copies() -> Iterator[None]:
    """Around a call of gymnasium's async vector env: what a copy raised comes back as one EnvError, without
    the lines gymnasium logs before raising it again."""
    level = gym.logger.min_level
    gym.logger.min_level = gym.logger.ERROR + 1
    try:
        yield
    except TrustrlError:
        raise
    except Exception as exc:  # noqa: BLE001 -- a copy's own error, raised again in this process
        raise EnvError(f"{ASYNC_COPY}: {describe_exception(exc)}") from None
    finally:
        gym.logger.min_level = level


def _kind_of(value: Any) -> str:
    """``an array of shape (2,) and dtype float64``, ``str '1.5'``, ``complex (1+2j)``: what an env returned."""
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape} and dtype {value.dtype}"
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"

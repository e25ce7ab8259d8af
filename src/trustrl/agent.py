"""A trained policy ready to act: the :class:`Agent`, and loading one from a run's checkpoint.

A checkpoint only acts in an env with the observation and action spaces it was
trained on; :func:`check_compatible` and :func:`check_compatible_spaces` are
the one place that says so.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Union

import gymnasium as gym
import numpy as np
import torch

from trustrl import arguments
from trustrl import checkpoint as ckpt
from trustrl.config import Config, accept_env_kwargs, from_dict
from trustrl.config.limits import missing_cuda
from trustrl.display import NOT_RENDERING, gl_failures_explained
from trustrl.envs import describe_spaces, make_env
from trustrl.envs.checks import close_env
from trustrl.envs.observations import FlatBox, flatten_observations
from trustrl.envs.registry import register_again
from trustrl.errors import CheckpointError, EnvUnavailableError, TrustrlError
from trustrl.exporting import DeterministicPolicy
from trustrl.nets import Policy, make_policy
from trustrl.normalization import ObsNormalizer
from trustrl.versions import note_differences

#: A function that makes a new env each time it is called (``render_mode`` is passed when filming).
EnvFactory = Callable[..., gym.Env]
#: An env id (``CartPole-v1``, ``mypkg.envs:Line-v0``) or a function that makes the env.
EnvSpec = Union[str, EnvFactory]

_log = logging.getLogger("trustrl")


@dataclass
class Agent:
    """A trained policy with its frozen observation normaliser, ready to act in an env.

    :meth:`act` takes the env's raw observation: normalising it is done here, with the statistics saved in
    the checkpoint, and Box actions come back clipped to the action bounds -- what the env was sent in
    training. (Log-probabilities in training are of the unclipped Gaussian draw.) For an env whose
    observations trustrl flattens (Dicts, images: :mod:`trustrl.envs.observations`) it takes them raw, as
    the env gives them, or flat, as the env made by :func:`trustrl.envs.make_env` gives them.
    """

    policy: Policy
    obs_norm: ObsNormalizer
    checkpoint: ckpt.Checkpoint | None  # None for a policy still in training
    config: Config
    action_space: gym.Space | None = None  # Box bounds to clip to; None: the env clips
    observation_space: gym.Space | None = None  # a FlatBox: raw observations are flattened into it

    def act_batch(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """Actions for a batch of raw observations (first axis: the batch; a list of dicts for Dict
        observations): the mean (Box) or most likely (Discrete, MultiDiscrete, MultiBinary) action, or a draw from
        the policy with ``deterministic=False``. MultiDiscrete and MultiBinary actions come in the space's own
        dtype. Observations of another shape, of no numbers, or not finite are refused (one
        :class:`~trustrl.errors.TrustrlError`): a NaN would come back as a NaN action, outside any bounds."""
        return self._act(self._observations(obs, single=False), deterministic)

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """The action for one raw observation (see :meth:`act_batch`)."""
        if obs is None or isinstance(obs, (str, bytes)):
            raise TrustrlError(f"act takes one observation (an array), got {type(obs).__name__}")
        return self._act(self._observations([obs], single=True), deterministic)[0]

    @torch.inference_mode()
    def _act(self, obs: np.ndarray, deterministic: bool) -> np.ndarray:
        device = next(self.policy.parameters()).device
        x = torch.from_numpy(self.obs_norm.normalize(obs)).to(device)
        dist = self.policy(x)
        action = (dist.mode() if deterministic else dist.sample()).cpu().numpy()
        if isinstance(self.action_space, gym.spaces.Box):
            action = np.clip(action, self.action_space.low, self.action_space.high)
        elif isinstance(self.action_space, (gym.spaces.MultiDiscrete, gym.spaces.MultiBinary)):
            action = action.astype(self.action_space.dtype)
        return action

    def _observations(self, obs: Any, single: bool) -> np.ndarray:
        """A batch of observations as the policy takes them, checked: shape, numbers, finite (cheap next to the
        network). ``single``: the batch wraps the one observation :meth:`act` was given (errors say so)."""
        shape = self._observation_shape()
        what = "observation" if single else "observations"
        try:
            batch = np.asarray(flatten_observations(self.observation_space, obs))
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise TrustrlError(f"{what} do not fit the policy's observation space ({exc})") from None
        if batch.dtype.kind not in "biuf":
            raise TrustrlError(f"{what} must be numbers, got an array of dtype {batch.dtype}")
        if batch.ndim == 0 or (shape is not None and batch.shape[1:] != shape):
            given = batch.shape[1:] if single else batch.shape
            wanted = shape if single else f"(B, {', '.join(map(str, shape))})"
            raise TrustrlError(f"{what} of shape {given}: the policy takes {wanted}")
        if batch.dtype.kind == "f":
            finite = np.isfinite(batch).reshape(len(batch), -1).all(axis=1)
            if not finite.all():
                where = "" if single else f" {int(np.flatnonzero(~finite)[0])} of the batch"
                raise TrustrlError(f"observation{where} is not finite (NaN or infinity): there is no action for it")
        return batch

    def _observation_shape(self) -> tuple[int, ...] | None:
        """The shape of one observation the policy takes: its space's, else (an agent made in training) the
        normaliser's when it is on; None when neither tells."""
        if self.observation_space is not None:
            return tuple(self.observation_space.shape)
        return tuple(self.obs_norm.rms.shape) if self.obs_norm.enabled else None

    def predict(self, observation: np.ndarray, state: Any = None, episode_start: np.ndarray | None = None,
                deterministic: bool = False) -> tuple[np.ndarray, Any]:
        """Stable-Baselines3's ``predict``, for code written against it: ``(action, state)``.

        As in SB3, and unlike :meth:`act`: actions are *sampled* unless ``deterministic=True``; one
        observation gives one action and a batch (first axis) a batch, told apart by the observation shape;
        ``state`` comes back as given and ``episode_start`` is ignored (the policy is not recurrent).
        """
        if isinstance(observation, tuple) and len(observation) == 2 and isinstance(observation[1], dict):
            raise TrustrlError("predict takes an observation, not the (observation, info) pair env.reset() returns")
        if isinstance(observation, dict):  # one raw Dict observation
            return self.act(observation, deterministic), state
        if isinstance(observation, (list, tuple)) and observation and isinstance(observation[0], dict):
            return self.act_batch(observation, deterministic), state
        obs = np.asarray(observation)
        shapes = [self._observation_shape() or self.obs_norm.rms.shape]  # one flat observation
        if isinstance(self.observation_space, FlatBox) and self.observation_space.source.shape:
            shapes.append(tuple(self.observation_space.source.shape))  # a raw image
        if obs.shape in shapes:
            return self.act(obs, deterministic), state
        if obs.shape[1:] in shapes:
            return self.act_batch(obs, deterministic), state
        raise TrustrlError(f"predict takes an observation of shape {' or '.join(map(str, shapes))} or a batch of "
                           f"them (first axis), got shape {obs.shape}")

    def to_torch(self) -> torch.nn.Module:
        """A plain ``torch.nn.Module``, detached from this agent, mapping a batch of raw float32 observations
        ``(B, obs_dim)`` to what ``act_batch(obs, deterministic=True)`` returns -- the normalisation and its
        clip, the mean (Box, clipped to the bounds) or the most likely action -- as tensors; ready for
        ``torch.jit.trace`` or ``torch.onnx.export`` (see :mod:`trustrl.exporting`). Dict and image
        observations go in flat, as the env trustrl makes gives them."""
        shape = self._observation_shape()
        obs_dim = None if shape is None else int(np.prod(shape))
        return DeterministicPolicy(self.policy, self.obs_norm, self.action_space, obs_dim).eval()

    def check_env(self, env: gym.Env) -> None:
        """Refuse an env whose spaces differ from the checkpoint's (a policy still in training has none)."""
        if self.checkpoint is not None:
            check_compatible(self.checkpoint, env)


def load(run: str | Path, checkpoint: str = "last", env: EnvSpec | None = None,
         env_kwargs: dict | None = None) -> Agent:
    """The policy of a run's ``last`` or ``best`` checkpoint, ready to act (see :class:`Agent`).

    ``checkpoint``: ``last``, ``best`` or a copy kept at step N, ``step-<N>`` (:mod:`trustrl.callbacks`).
    ``run`` is a run directory or a ``checkpoints/<tag>.json`` file. ``env``: another env to act in (its
    spaces must match), or -- for a run whose env a function made -- that function again. ``env_kwargs``:
    over the saved ones; a saved kwarg that names a file is used only when given here again (a run
    directory is data, and chooses no file for the env to read; :func:`trustrl.config.accept_env_kwargs`).
    """
    ckpt.check_tag(checkpoint)
    env_kwargs = arguments.mapping("env_kwargs", env_kwargs)
    record = ckpt.load(arguments.path("run", run), checkpoint)
    note_differences(record.versions, record.path)
    if env is not None and not isinstance(env, str):  # the function that made the run's env keeps its id
        env = register_again(env, record.config.get("env", {}).get("id", ""))
    config = _config_of(record, env, env_kwargs or {})
    with gl_failures_explained(NOT_RENDERING):
        probe = make_env(config.env)
    try:
        check_compatible(record, probe)
        policy = _policy_of(record, probe, config)
        obs_norm = _obs_norm_of(record, probe.observation_space)
    finally:
        close_env(probe, "the env")
    return Agent(policy, obs_norm, record, config, probe.action_space, probe.observation_space)


def check_compatible(checkpoint: ckpt.Checkpoint, env: gym.Env) -> None:
    """A checkpoint only runs in an env with the same observation and action spaces."""
    check_compatible_spaces(checkpoint, env.observation_space, env.action_space,
                            env.spec.id if env.spec else "this env")


def check_compatible_spaces(checkpoint: ckpt.Checkpoint, obs_space: gym.Space, act_space: gym.Space,
                            where: str = "this run") -> None:
    actual = describe_spaces(obs_space, act_space)
    if checkpoint.spaces != actual:
        raise CheckpointError(
            f"checkpoint {checkpoint.path} was trained on spaces {checkpoint.spaces}, "
            f"but {where} has {actual}"
        )


def _config_of(record: ckpt.Checkpoint, env_id: str | None, env_kwargs: dict) -> Config:
    """The run's config, with the env ``env_id`` (if given) and the env kwargs the caller allows."""
    data = _on_this_machine(accept_env_kwargs(record.config, env_kwargs, f"checkpoint {record.path}"), record.path)
    if env_id is not None and isinstance(data.get("env", {}), dict):
        data = {**data, "env": {**data.get("env", {}), "id": env_id}}  # the recorded env need not exist here
    try:
        return from_dict(data, source=str(record.path))
    except EnvUnavailableError:  # the config is fine; this process lacks the env's module or function
        raise
    except Exception as exc:  # a record edited by hand
        raise CheckpointError(f"checkpoint {record.path} holds an invalid config: {exc}") from None


def _on_this_machine(data: dict, record_path: Path) -> dict:
    """The run's config with ``run.device = "cpu"`` (and a one-line note) when it trained on a GPU and this
    machine has none: its weights are saved on the CPU, and acting never needs the learner's device."""
    run = data.get("run")
    if not (isinstance(run, dict) and missing_cuda(run.get("device"))):
        return data
    _log.warning(f"note: {record_path} trained with run.device {run['device']!r}; this machine has no CUDA device, "
                 "so its policy runs on the cpu")
    return {**data, "run": {**run, "device": "cpu"}}


def _policy_of(record: ckpt.Checkpoint, env: gym.Env, config: Config) -> Policy:
    try:
        policy = make_policy(env.observation_space, env.action_space, config.policy)
        policy.load_state_dict(record.policy_state)
    except RuntimeError as exc:
        detail = str(exc).strip().splitlines()[-1].strip()  # torch's last line names the keys or shapes
        raise CheckpointError(f"checkpoint {record.path}: weights do not fit the policy ({detail})") from None
    return policy.eval()


def _obs_norm_of(record: ckpt.Checkpoint, obs_space: gym.Space) -> ObsNormalizer:
    """The saved observation statistics, frozen: acting never moves them."""
    obs_norm = ObsNormalizer(obs_space.shape)
    try:
        obs_norm.load_state(record.obs_norm)
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"checkpoint {record.path}: bad normalisation statistics ({exc})") from None
    if obs_norm.enabled and obs_norm.rms.mean.shape != obs_space.shape:
        raise CheckpointError(f"checkpoint {record.path}: normalisation statistics have the wrong shape")
    obs_norm.frozen = True
    return obs_norm

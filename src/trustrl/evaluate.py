"""Replaying a checkpoint: deterministic episodes with frozen normalisation statistics."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import gymnasium as gym
import numpy as np
import torch

from trustrl import checkpoint as ckpt
from trustrl.config import from_dict
from trustrl.envs import describe_spaces, make_env
from trustrl.errors import CheckpointError
from trustrl.nets import Policy, make_policy
from trustrl.normalization import ObsNormalizer


@dataclass
class LoadedPolicy:
    """A policy with its frozen observation normaliser, ready to act in a single env."""

    policy: Policy
    obs_norm: ObsNormalizer
    checkpoint: ckpt.Checkpoint
    config: object  # trustrl.config.Config

    @torch.inference_mode()
    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        x = torch.from_numpy(self.obs_norm(np.asarray(obs)[None], update=False))
        dist = self.policy(x)
        action = dist.mode() if deterministic else dist.sample()
        return action[0].numpy()


@dataclass
class EvalResult:
    mean_return: float
    std_return: float
    min_return: float
    max_return: float
    mean_length: float
    episodes: int
    returns: list[float]
    lengths: list[int]
    deterministic: bool
    checkpoint: str
    step: int
    env: str

    def to_dict(self) -> dict:
        return asdict(self)


def load_policy(path: str | Path, tag: str = "last") -> LoadedPolicy:
    """Rebuild the policy and its normaliser from a run directory (or checkpoint file)."""
    checkpoint = ckpt.load(path, tag)
    try:
        config = from_dict(checkpoint.config, source=str(checkpoint.path))
    except Exception as exc:  # a record edited by hand
        raise CheckpointError(f"checkpoint {checkpoint.path} holds an invalid config: {exc}") from None
    env = make_env(config.env)
    try:
        check_compatible(checkpoint, env)
        policy = make_policy(env.observation_space, env.action_space, config.policy)
        policy.load_state_dict(checkpoint.policy_state)
    except RuntimeError as exc:
        raise CheckpointError(f"checkpoint {checkpoint.path}: weights do not fit the policy ({exc})") from None
    finally:
        env.close()
    policy.eval()
    obs_norm = ObsNormalizer(env.observation_space.shape)
    try:
        obs_norm.load_state(checkpoint.obs_norm)
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"checkpoint {checkpoint.path}: bad normalisation statistics ({exc})") from None
    if obs_norm.enabled and obs_norm.rms.mean.shape != env.observation_space.shape:
        raise CheckpointError(f"checkpoint {checkpoint.path}: normalisation statistics have the wrong shape")
    obs_norm.frozen = True
    return LoadedPolicy(policy, obs_norm, checkpoint, config)


def check_compatible(checkpoint: ckpt.Checkpoint, env: gym.Env) -> None:
    """A checkpoint only runs in an env with the same observation and action spaces."""
    actual = describe_spaces(env.observation_space, env.action_space)
    if checkpoint.spaces != actual:
        env_id = env.spec.id if env.spec else "this env"
        raise CheckpointError(
            f"checkpoint {checkpoint.path} was trained on spaces {checkpoint.spaces}, "
            f"but {env_id} has {actual}"
        )


def run_episodes(
    loaded: LoadedPolicy,
    env: gym.Env,
    episodes: int,
    seed: int,
    deterministic: bool = True,
    on_step: Callable[[gym.Env], None] | None = None,
) -> tuple[list[float], list[int]]:
    """Play ``episodes`` full episodes; ``on_step(env)`` runs after reset and each step (video)."""
    returns, lengths = [], []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        if on_step:
            on_step(env)
        total, length, done = 0.0, 0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(loaded.act(obs, deterministic))
            total += float(reward)
            length += 1
            done = terminated or truncated
            if on_step:
                on_step(env)
        returns.append(total)
        lengths.append(length)
    return returns, lengths


def evaluate(
    path: str | Path,
    episodes: int = 10,
    tag: str = "last",
    seed: int = 1_000_000,
    deterministic: bool = True,
    env_id: str | None = None,
    render: bool = False,
) -> EvalResult:
    """Deterministic (mean / arg-max action) evaluation unless ``deterministic=False``.

    ``env_id`` evaluates in another env (its spaces must match the checkpoint's).
    """
    if episodes <= 0:
        raise CheckpointError(f"--episodes must be > 0, got {episodes}")
    loaded = load_policy(path, tag)
    env_cfg = loaded.config.env
    if env_id is not None:
        env_cfg.id = env_id
    env = make_env(env_cfg, render_mode="human" if render else None)
    try:
        check_compatible(loaded.checkpoint, env)
        returns, lengths = run_episodes(loaded, env, episodes, seed, deterministic)
    finally:
        env.close()
    return EvalResult(
        mean_return=float(np.mean(returns)),
        std_return=float(np.std(returns)),
        min_return=float(np.min(returns)),
        max_return=float(np.max(returns)),
        mean_length=float(np.mean(lengths)),
        episodes=episodes,
        returns=returns,
        lengths=lengths,
        deterministic=deterministic,
        checkpoint=str(loaded.checkpoint.path),
        step=loaded.checkpoint.step,
        env=env_cfg.id,
    )

"""Replaying a checkpoint: deterministic episodes with frozen normalisation statistics, and video.

Videos are mp4 files written through imageio-ffmpeg from ``render_mode="rgb_array"``
frames, so they need no display: classic-control envs render in software, MuJoCo
envs through an OpenGL back end (headless: ``MUJOCO_GL=egl`` with the Mesa EGL
libraries; this module sets ``MUJOCO_GL=egl`` and ``SDL_VIDEODRIVER=dummy`` on a
Linux machine with no display, unless they are already set).
"""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import gymnasium as gym
import numpy as np
import torch

from trustrl import checkpoint as ckpt
from trustrl.config import (
    MAX_EPISODES,
    Config,
    accept_env_kwargs,
    check_count,
    check_seed,
    from_dict,
)
from trustrl.envs import describe_spaces, make_env
from trustrl.errors import CheckpointError, EnvUnavailableError, TrustrlError
from trustrl.nets import Policy, make_policy
from trustrl.normalization import ObsNormalizer

# MuJoCo picks its OpenGL back end when it is first imported. Without a display
# only EGL (or OSMesa) can work, so a headless Linux machine defaults to EGL; and
# pygame (classic control) draws off-screen without complaining about the missing display.
if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")


@dataclass
class Agent:
    """A trained policy with its frozen observation normaliser, ready to act in an env.

    :meth:`act` takes the env's raw observation: normalising it is done here, with the statistics saved in
    the checkpoint, and Box actions come back clipped to the action bounds -- what the env was sent in
    training. (Log-probabilities in training are of the unclipped Gaussian draw.)
    """

    policy: Policy
    obs_norm: ObsNormalizer
    checkpoint: ckpt.Checkpoint | None  # None for a policy still in training
    config: Config
    action_space: gym.Space | None = None  # Box bounds to clip to; None: the env clips

    @torch.inference_mode()
    def act_batch(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """Actions for a batch of raw observations (first axis: the batch): the mean (Box) or arg-max
        (Discrete) action, or a draw from the policy with ``deterministic=False``."""
        device = next(self.policy.parameters()).device
        x = torch.from_numpy(self.obs_norm.normalize(np.asarray(obs))).to(device)
        dist = self.policy(x)
        action = (dist.mode() if deterministic else dist.sample()).cpu().numpy()
        if isinstance(self.action_space, gym.spaces.Box):
            action = np.clip(action, self.action_space.low, self.action_space.high)
        return action

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """The action for one raw observation (see :meth:`act_batch`)."""
        return self.act_batch(np.asarray(obs)[None], deterministic)[0]


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


def load_policy(path: str | Path, tag: str = "last", env_id: str | None = None,
                env_kwargs: dict | None = None) -> Agent:
    """Rebuild the policy and its normaliser from a run directory (or checkpoint file).

    ``env_id``: the env to act in instead of the one the run trained on (its spaces must match).
    ``env_kwargs``: keyword arguments for the env, over the saved ones; a saved one that names a file is used
    only if given here again (:func:`trustrl.config.accept_env_kwargs`).
    """
    checkpoint = ckpt.load(path, tag)
    data = accept_env_kwargs(checkpoint.config, env_kwargs or {}, f"checkpoint {checkpoint.path}")
    if env_id is not None and isinstance(data.get("env", {}), dict):
        data = {**data, "env": {**data.get("env", {}), "id": env_id}}  # the recorded env need not exist here
    try:
        config = from_dict(data, source=str(checkpoint.path))
    except EnvUnavailableError:  # the config is fine; this process lacks the env's module or function
        raise
    except Exception as exc:  # a record edited by hand
        raise CheckpointError(f"checkpoint {checkpoint.path} holds an invalid config: {exc}") from None
    env = make_env(config.env)
    try:
        check_compatible(checkpoint, env)
        policy = make_policy(env.observation_space, env.action_space, config.policy)
        policy.load_state_dict(checkpoint.policy_state)
    except RuntimeError as exc:
        detail = str(exc).strip().splitlines()[-1].strip()  # torch's last line names the keys or shapes
        raise CheckpointError(f"checkpoint {checkpoint.path}: weights do not fit the policy ({detail})") from None
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
    return Agent(policy, obs_norm, checkpoint, config, env.action_space)


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


def run_episodes(
    loaded: Agent,
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
    env_kwargs: dict | None = None,
) -> EvalResult:
    """Deterministic (mean / arg-max action) evaluation unless ``deterministic=False``.

    ``env_id`` evaluates in another env (its spaces must match the checkpoint's).
    """
    check_count("--episodes", episodes, MAX_EPISODES)
    check_seed("--seed", seed, episodes)
    return evaluate_agent(load_policy(path, tag, env_id, env_kwargs), episodes, seed, deterministic, render)


def evaluate_agent(
    agent: Agent, episodes: int = 10, seed: int = 1_000_000, deterministic: bool = True, render: bool = False
) -> EvalResult:
    """Play ``episodes`` episodes of ``agent`` in the env of its config (reset seeds ``seed``, ``seed + 1``, ...)."""
    check_count("episodes", episodes, MAX_EPISODES)
    check_seed("seed", seed, episodes)
    env_cfg = agent.config.env
    if render:
        _check_display()
    env = make_env(env_cfg, render_mode="human" if render else None)
    try:
        if agent.checkpoint is not None:
            check_compatible(agent.checkpoint, env)
        try:
            returns, lengths = run_episodes(agent, env, episodes, seed, deterministic)
        except TrustrlError:
            raise
        except Exception as exc:  # a window system that refuses to open (pygame, glfw)
            if not render:
                raise
            raise TrustrlError(f"--render could not open a window ({type(exc).__name__}: {exc}); "
                               "use `trustrl video` to film episodes without a display") from None
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
        checkpoint=str(agent.checkpoint.path) if agent.checkpoint is not None else "",
        step=agent.checkpoint.step if agent.checkpoint is not None else 0,
        env=env_cfg.id,
    )


def _check_display() -> None:
    """``render_mode="human"`` opens a window: on Linux that needs an X11 or Wayland display."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise TrustrlError(
            "--render needs a display, and none is available (DISPLAY and WAYLAND_DISPLAY are unset); "
            "use `trustrl video RUN --out episodes.mp4` to film episodes headless"
        )


@dataclass
class VideoResult:
    path: Path
    frames: int  # frames written: per filmed episode, one after reset and one per step
    fps: int
    returns: list[float]  # returns of the filmed episodes
    lengths: list[int]
    attempts: int  # episodes played, counting those below ``min_return``
    seeds: list[int] = field(default_factory=list)  # reset seeds of the filmed episodes

    def to_dict(self) -> dict:
        return {**asdict(self), "path": str(self.path)}


def write_video(
    loaded: Agent,
    env_cfg,
    out: str | Path,
    episodes: int = 3,
    seed: int = 1_000_000,
    deterministic: bool = True,
    min_return: float | None = None,
    max_attempts: int | None = None,
    fps: int | None = None,
) -> VideoResult:
    """Film ``episodes`` episodes of ``loaded`` in the env ``env_cfg`` into the mp4 ``out``.

    With ``min_return``, an episode is played first without rendering and
    filmed only if its return reaches ``min_return`` -- by replaying it from
    the same seed (the env is reset with that seed; a stochastic policy
    draws from a generator seeded the same way), so no frames of rejected
    episodes are ever held in memory. At most ``max_attempts`` episodes
    (default ``20 * episodes``) are tried; if too few qualify the error says
    what the returns were and nothing is written. The file appears
    atomically: a failure leaves no half-written mp4.
    """
    check_count("--episodes", episodes, 10_000)
    max_attempts = max_attempts if max_attempts is not None else 20 * episodes
    if max_attempts < episodes:
        raise TrustrlError(f"--max-attempts ({max_attempts}) must be at least --episodes ({episodes})")
    check_count("--max-attempts", max_attempts, MAX_EPISODES)
    check_seed("--seed", seed, max_attempts)
    if fps is not None:
        check_count("--fps", fps, 1_000)
    out = Path(out)
    if out.suffix.lower() != ".mp4":
        raise TrustrlError(f"video output {out} must end in .mp4")
    if not out.parent.is_dir():
        raise TrustrlError(f"directory {out.parent} for the video does not exist")

    seeds: list[int] = []
    tried: list[float] = []
    if min_return is not None:
        env = make_env(env_cfg)
        try:
            if loaded.checkpoint is not None:
                check_compatible(loaded.checkpoint, env)
            for attempt in range(max_attempts):
                (ret,), _ = _seeded_episodes(loaded, env, seed + attempt, deterministic)
                tried.append(ret)
                if ret >= min_return:
                    seeds.append(seed + attempt)
                    if len(seeds) == episodes:
                        break
        finally:
            env.close()
        if len(seeds) < episodes:
            raise TrustrlError(
                f"only {len(seeds)} of {len(tried)} episodes reached --min-return {min_return:g} "
                f"(returns: min {min(tried):.1f}, mean {np.mean(tried):.1f}, max {max(tried):.1f}); "
                f"wanted {episodes}: lower --min-return or raise --max-attempts"
            )
    else:
        seeds = [seed + i for i in range(episodes)]

    import imageio.v2 as imageio

    env = _make_render_env(env_cfg)
    fps = int(fps or env.metadata.get("render_fps") or 30)
    tmp = Path(tempfile.mkstemp(prefix=f".{out.stem}.", suffix=".mp4", dir=out.parent)[1])
    frames = 0
    returns, lengths = [], []
    try:
        if loaded.checkpoint is not None:
            check_compatible(loaded.checkpoint, env)
        # macro_block_size=2: keep the frame size (even sizes suit yuv420p) instead of padding to 16
        with imageio.get_writer(tmp, format="FFMPEG", fps=fps, codec="libx264", macro_block_size=2) as writer:

            def on_step(e: gym.Env) -> None:
                nonlocal frames
                frame = e.render()
                if frame is None:
                    raise TrustrlError(f"{env_cfg.id} returned no frame in rgb_array mode")
                writer.append_data(np.asarray(frame))
                frames += 1

            for s in seeds:
                (ret,), (length,) = _seeded_episodes(loaded, env, s, deterministic, on_step)
                returns.append(ret)
                lengths.append(length)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except TrustrlError:
        raise
    except Exception as exc:
        raise TrustrlError(f"could not film {env_cfg.id}: {type(exc).__name__}: {exc}{_render_hint(env_cfg.id)}") from None
    finally:
        tmp.unlink(missing_ok=True)
        env.close()
    return VideoResult(out, frames, fps, returns, lengths, max(len(tried), len(seeds)), seeds)


def video(
    path: str | Path,
    out: str | Path,
    episodes: int = 3,
    tag: str = "last",
    seed: int = 1_000_000,
    deterministic: bool = True,
    min_return: float | None = None,
    max_attempts: int | None = None,
    fps: int | None = None,
    env_kwargs: dict | None = None,
) -> VideoResult:
    """Film a checkpoint's policy (see :func:`write_video`)."""
    loaded = load_policy(path, tag, env_kwargs=env_kwargs)
    return write_video(loaded, loaded.config.env, out, episodes, seed, deterministic, min_return, max_attempts, fps)


def check_can_render(env_cfg) -> None:
    """Fail now, with the fix in the message, if ``env_cfg`` cannot be rendered to frames here."""
    _make_render_env(env_cfg).close()


def write_training_video(policy: Policy, obs_norm: ObsNormalizer, config, run_dir: Path, step: int) -> VideoResult:
    """The run loop's hook: one deterministic episode of the current policy into ``<run_dir>/videos/step-<N>.mp4``.

    The normaliser is read, never updated, and a deterministic policy draws
    no random numbers, so filming leaves the run's metrics unchanged.
    """
    out = Path(run_dir) / "videos" / f"step-{step}.mp4"
    out.parent.mkdir(parents=True, exist_ok=True)
    return write_video(Agent(policy, obs_norm, None, config), config.env, out, episodes=1)


def _seeded_episodes(loaded, env, seed, deterministic, on_step=None):
    """One episode from ``seed``; a stochastic policy samples from torch's RNG seeded the same way."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return run_episodes(loaded, env, 1, seed, deterministic, on_step)


def _make_render_env(env_cfg) -> gym.Env:
    try:
        env = make_env(env_cfg, render_mode="rgb_array")
        env.reset(seed=0)
        env.render()  # fail here, clearly, if there is no OpenGL back end
        return env
    except TrustrlError:
        raise
    except Exception as exc:
        raise TrustrlError(f"cannot render {env_cfg.id}: {type(exc).__name__}: {exc}{_render_hint(env_cfg.id)}") from None


def _render_hint(env_id: str) -> str:
    if os.environ.get("MUJOCO_GL") != "egl":
        return ("; headless MuJoCo rendering needs MUJOCO_GL=egl and the Mesa EGL libraries "
                "(Debian/Ubuntu: apt-get install libegl1 libegl-mesa0)")
    return ""

"""Filming an agent's episodes into mp4 files, headless, and what rendering needs from the machine.

Videos are mp4 files written through imageio-ffmpeg from ``render_mode="rgb_array"``
frames, so they need no display: classic-control envs render in software, MuJoCo
envs through an OpenGL back end (headless: EGL, with the Mesa EGL libraries). The
back end is chosen while a video is made, and only then
(:func:`trustrl.display.offscreen_rendering`); a GL failure is one error naming the
packages to install.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import gymnasium as gym
import numpy as np
import torch

from trustrl.agent import Agent, load
from trustrl.config import MAX_EPISODES, Config, EnvConfig, check_count, check_seed
from trustrl.display import offscreen_rendering, render_failure
from trustrl.envs import make_env
from trustrl.episodes import DEFAULT_EVAL_SEED, episode_seeds, run_episodes
from trustrl.errors import TrustrlError
from trustrl.nets import Policy
from trustrl.normalization import ObsNormalizer
from trustrl.seeding import EPISODES, reset_seed


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


def video(
    run: str | Path,
    out: str | Path,
    episodes: int = 3,
    checkpoint: str = "last",
    seed: int = DEFAULT_EVAL_SEED,
    deterministic: bool = True,
    min_return: float | None = None,
    max_attempts: int | None = None,
    fps: int | None = None,
    env_kwargs: dict | None = None,
) -> VideoResult:
    """Film the policy of a run's ``checkpoint`` (see :func:`write_video`)."""
    with offscreen_rendering():  # loading makes the env: a GL back end the user chose may fail already there
        agent = load(run, checkpoint, env_kwargs=env_kwargs)
    return write_video(agent, out, episodes, seed, deterministic, min_return, max_attempts, fps)


def write_video(
    agent: Agent,
    out: str | Path,
    episodes: int = 3,
    seed: int = DEFAULT_EVAL_SEED,
    deterministic: bool = True,
    min_return: float | None = None,
    max_attempts: int | None = None,
    fps: int | None = None,
) -> VideoResult:
    """Film ``episodes`` episodes of ``agent`` in the env of its config into the mp4 ``out``.

    With ``min_return``, an episode is played first without rendering and
    filmed only if its return reaches ``min_return`` -- by replaying it from
    the same seed (:func:`seeded_episode`), so no frames of rejected
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
    check_seed("--seed", seed)
    if fps is not None:
        check_count("--fps", fps, 1_000)
    out = Path(out)
    if out.suffix.lower() != ".mp4":
        raise TrustrlError(f"video output {out} must end in .mp4")
    if not out.parent.is_dir():
        raise TrustrlError(f"directory {out.parent} for the video does not exist")
    with offscreen_rendering():
        if min_return is None:
            seeds, tried = episode_seeds(seed, episodes), []
        else:
            seeds, tried = _good_seeds(agent, episodes, seed, deterministic, min_return, max_attempts)
        returns, lengths, frames, fps = _film(agent, seeds, deterministic, out, fps)
    return VideoResult(out, frames, fps, returns, lengths, max(len(tried), len(seeds)), seeds)


def write_training_video(policy: Policy, obs_norm: ObsNormalizer, config: Config, run_dir: Path,
                         step: int) -> VideoResult:
    """The run loop's hook: one deterministic episode of the current policy into ``<run_dir>/videos/step-<N>.mp4``.

    The normaliser is read, never updated, and a deterministic policy draws
    no random numbers, so filming leaves the run's metrics unchanged.
    """
    out = Path(run_dir) / "videos" / f"step-{step}.mp4"
    out.parent.mkdir(parents=True, exist_ok=True)
    return write_video(Agent(policy, obs_norm, None, config), out, episodes=1)


def seeded_episode(
    agent: Agent,
    env: gym.Env,
    seed: int,
    deterministic: bool,
    on_step: Callable[[gym.Env], None] | None = None,
) -> tuple[list[float], list[int]]:
    """One episode from ``seed`` that plays the same again: a stochastic policy samples from torch's RNG
    seeded the same way (and the caller's RNG state is left as it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return run_episodes(agent, env, [seed], deterministic, on_step)


def check_can_render(env_cfg: EnvConfig) -> None:
    """Fail now, with the fix in the message, if ``env_cfg`` cannot be rendered to frames here."""
    with offscreen_rendering():
        _make_render_env(env_cfg).close()


def _good_seeds(agent: Agent, episodes: int, seed: int, deterministic: bool, min_return: float,
                max_attempts: int) -> tuple[list[int], list[float]]:
    """The first ``episodes`` reset seeds of :func:`~trustrl.episodes.episode_seeds` whose episode reaches
    ``min_return``, and every return tried."""
    seeds: list[int] = []
    tried: list[float] = []
    env = make_env(agent.config.env)
    try:
        agent.check_env(env)
        for attempt in range(max_attempts):
            candidate = reset_seed(seed, EPISODES, attempt)  # episode_seeds(seed, max_attempts), one at a time
            (ret,), _ = seeded_episode(agent, env, candidate, deterministic)
            tried.append(ret)
            if ret >= min_return:
                seeds.append(candidate)
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
    return seeds, tried


def _film(agent: Agent, seeds: list[int], deterministic: bool, out: Path,
          fps: int | None) -> tuple[list[float], list[int], int, int]:
    """Play the episodes of ``seeds`` into ``out``, written atomically: returns, lengths, frames, fps."""
    import imageio.v2 as imageio

    env_id = agent.config.env.id
    env = _make_render_env(agent.config.env)
    fps = int(fps or env.metadata.get("render_fps") or 30)
    tmp = Path(tempfile.mkstemp(prefix=f".{out.stem}.", suffix=".mp4", dir=out.parent)[1])
    frames = 0
    returns, lengths = [], []
    try:
        agent.check_env(env)
        # macro_block_size=2: keep the frame size (even sizes suit yuv420p) instead of padding to 16
        with imageio.get_writer(tmp, format="FFMPEG", fps=fps, codec="libx264", macro_block_size=2) as writer:

            def on_step(e: gym.Env) -> None:
                nonlocal frames
                frame = e.render()
                if frame is None:
                    raise TrustrlError(f"{env_id} returned no frame in rgb_array mode")
                writer.append_data(np.asarray(frame))
                frames += 1

            for s in seeds:
                (ret,), (length,) = seeded_episode(agent, env, s, deterministic, on_step)
                returns.append(ret)
                lengths.append(length)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except TrustrlError:
        raise
    except Exception as exc:
        raise render_failure(f"could not film {env_id}", exc) from None
    finally:
        tmp.unlink(missing_ok=True)
        env.close()
    return returns, lengths, frames, fps


def _make_render_env(env_cfg: EnvConfig) -> gym.Env:
    try:
        env = make_env(env_cfg, render_mode="rgb_array")
        env.reset(seed=0)
        env.render()  # fail here, clearly, if there is no OpenGL back end
        return env
    except TrustrlError:
        raise
    except Exception as exc:
        raise render_failure(f"cannot render {env_cfg.id}", exc) from None

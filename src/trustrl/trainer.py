"""The training loop: collect -> advantages -> update -> log -> checkpoint, for every algorithm.

It owns nothing algorithm-specific: an algorithm is an object with
``update(batch) -> metrics`` (see :mod:`trustrl.algos`).
"""

from __future__ import annotations

import math
import shutil
import sys
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from trustrl import checkpoint
from trustrl.algos import make_algorithm
from trustrl.config import Config
from trustrl.envs import describe_spaces, make_vec_env
from trustrl.errors import TrustrlError
from trustrl.evaluate import check_can_render, write_training_video
from trustrl.metrics import MetricsLogger
from trustrl.nets import make_critic, make_policy
from trustrl.normalization import ObsNormalizer, RewardScaler
from trustrl.rollout import Batch, Sampler, attach_values, gae

#: Files and folders a run writes; their presence means "this directory holds a run".
RUN_ARTIFACTS = ("config.toml", "command.txt", "metrics.csv", "timing.csv", "tensorboard", "checkpoints", "videos")


@dataclass
class TrainResult:
    run_dir: Path
    steps: int
    updates: int
    seconds: float
    best_return: float  # best rolling mean of recent episode returns (nan if never measured)
    last_return: float  # rolling mean at the end


def prepare_run_dir(run_dir: Path, overwrite: bool) -> None:
    """Refuse to mix two runs in one directory; with ``overwrite``, clear only what a run writes."""
    present = [name for name in RUN_ARTIFACTS if (run_dir / name).exists()]
    if present and not overwrite:
        raise TrustrlError(
            f"run directory {run_dir} already holds a run ({', '.join(present)}); "
            "pass --overwrite to replace it or choose another --run-dir"
        )
    if run_dir.exists() and not run_dir.is_dir():
        raise TrustrlError(f"run directory {run_dir} exists and is not a directory")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".trustrl-write-test"
        probe.write_text("")  # fail here, before anything is removed, if the directory is not writable
        probe.unlink()
        for name in present:
            target = run_dir / name
            shutil.rmtree(target) if target.is_dir() else target.unlink()
    except OSError as exc:
        raise TrustrlError(f"cannot write the run directory {run_dir}: {exc.strerror or exc}") from None


def compute_advantages(batch: Batch, critic: torch.nn.Module | None, gamma: float, lam: float, normalize: bool) -> None:
    """Fill ``batch.values/next_values/advantages/returns`` with the current critic (None: V = 0)."""
    attach_values(batch, critic)
    advantages, returns = gae(
        batch.rewards, batch.values, batch.next_values, batch.terminated, batch.truncated, gamma, lam
    )
    if normalize and advantages.numel() > 1:
        advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    batch.advantages, batch.returns = advantages, returns


def train(
    cfg: Config,
    run_dir: str | Path,
    *,
    overwrite: bool = False,
    progress: bool = True,
    command: list[str] | None = None,
) -> TrainResult:
    run_dir = Path(run_dir)
    cfg.validate()
    torch.set_num_threads(cfg.run.torch_threads)
    torch.manual_seed(cfg.run.seed)
    generator = torch.Generator().manual_seed(cfg.run.seed)

    envs = make_vec_env(cfg.env)  # fails on a bad env before anything is written
    if cfg.run.video_every:
        check_can_render(cfg.env)
    prepare_run_dir(run_dir, overwrite)
    (run_dir / "config.toml").write_text(cfg.to_toml())
    (run_dir / "command.txt").write_text(" ".join(command if command is not None else sys.argv) + "\n")

    obs_space, act_space = envs.single_observation_space, envs.single_action_space
    policy = make_policy(obs_space, act_space, cfg.policy).to(cfg.run.device)
    critic = make_critic(obs_space, cfg.critic).to(cfg.run.device)
    algo = make_algorithm(cfg, policy, critic, generator)
    uses_critic = getattr(algo, "uses_critic", True)  # False: advantages from V = 0 (see trustrl.algos)
    obs_norm = ObsNormalizer(obs_space.shape, cfg.env.norm_obs, cfg.env.clip_obs)
    reward_scaler = RewardScaler(cfg.env.n_envs, cfg.algo.gamma, cfg.env.norm_reward, cfg.env.clip_reward)
    sampler = Sampler(envs, policy, obs_norm, reward_scaler, cfg.run.seed, cfg.run.device)
    spaces = describe_spaces(obs_space, act_space)

    def save(tag: str, update: int, step: int, obs_state: dict, reward_state: dict) -> None:
        checkpoint.save(
            run_dir / "checkpoints",
            tag,
            policy,
            critic,
            config=cfg.to_dict(),
            spaces=spaces,
            obs_norm=obs_state,
            reward_norm=reward_state,
            step=step,
            update=update,
            extra={"recent_return_mean": _mean(recent)},
        )

    n_updates = max(1, cfg.run.total_steps // cfg.batch_size)  # whole batches, at least one
    recent: deque[float] = deque(maxlen=cfg.run.best_window)
    recent_lengths: deque[int] = deque(maxlen=cfg.run.best_window)
    best = -math.inf
    filmed = 0  # training videos written so far (one per ``run.video_every`` steps)
    logger = MetricsLogger(run_dir, n_updates * cfg.batch_size, progress=progress)
    # With overlap, the critic fit of update k runs in a background thread while batch k+1 is
    # collected; update k is logged (and checkpointed) once it is done, exactly as without.
    overlap = cfg.run.overlap_critic and hasattr(algo, "fit_critic")
    critic_thread = ThreadPoolExecutor(1, thread_name_prefix="trustrl-critic") if overlap else None
    pending: _PendingUpdate | None = None
    start = last_logged = time.perf_counter()

    def finish(done: _PendingUpdate) -> None:
        """Wait for update ``done``'s critic fit, then checkpoint and log it."""
        nonlocal last_logged
        t0 = time.perf_counter()
        stats = {**done.stats, **(done.critic.result() if done.critic is not None else {})}
        waited = time.perf_counter() - t0
        timing = {key: stats.pop(key) for key in list(stats) if key.startswith("time_")}
        t1 = time.perf_counter()
        if done.update % cfg.run.checkpoint_every == 0 or done.update == n_updates:
            save("last", done.update, done.step, done.obs_state, done.reward_state)
        now = time.perf_counter()
        logger.log(
            done.step,
            {**done.metrics, **stats},
            {
                "steps_per_s": cfg.batch_size / (now - last_logged),
                "elapsed_s": now - start,
                **done.timing,
                "critic_wait_s": waited,
                "checkpoint_s": done.timing["checkpoint_s"] + (now - t1),
                **timing,
            },
        )
        last_logged = now

    try:
        for update in range(1, n_updates + 1):
            t0 = time.perf_counter()
            batch = sampler.collect(cfg.run.n_steps)
            t1 = time.perf_counter()
            if pending is not None:  # the critic must be fitted before it is saved or used for GAE
                finish(pending)
                pending = None
            t2 = time.perf_counter()
            recent.extend(batch.episode_returns)
            recent_lengths.extend(batch.episode_lengths)
            # ``best`` holds the policy that just collected the episodes behind the score.
            if len(recent) == recent.maxlen and _mean(recent) > best:
                best = _mean(recent)
                save("best", update - 1, sampler.total_steps, obs_norm.state(), reward_scaler.state())
            t3 = time.perf_counter()
            compute_advantages(batch, critic if uses_critic else None, cfg.algo.gamma, cfg.algo.gae_lambda,
                               cfg.algo.normalize_advantage)
            t4 = time.perf_counter()
            if overlap:
                stats = algo.update_policy(batch)
                fitting = critic_thread.submit(algo.fit_critic, batch)
            else:
                stats, fitting = algo.update(batch), None
            t5 = time.perf_counter()
            if cfg.run.video_every and sampler.total_steps // cfg.run.video_every > filmed:
                filmed = sampler.total_steps // cfg.run.video_every
                write_training_video(policy, obs_norm, cfg, run_dir, sampler.total_steps)
            t6 = time.perf_counter()
            pending = _PendingUpdate(
                update=update,
                step=sampler.total_steps,
                obs_state=obs_norm.state(),  # as the policy was trained: the next batch moves them
                reward_state=reward_scaler.state(),
                metrics={
                    "update": update,
                    "episode_return_mean": _mean(recent),
                    "episode_length_mean": _mean(recent_lengths),
                    "episodes": len(batch.episode_returns),
                },
                stats=stats,
                critic=fitting,
                timing={
                    "sample_s": t1 - t0,
                    "advantage_s": t4 - t3,
                    "update_s": t5 - t4,
                    "checkpoint_s": t3 - t2,
                    "video_s": t6 - t5,
                },
            )
            if fitting is None or update == n_updates:
                finish(pending)
                pending = None
    finally:
        if critic_thread is not None:
            critic_thread.shutdown(wait=True)
        logger.close()
        envs.close()
    best_return = best if math.isfinite(best) else float("nan")
    return TrainResult(run_dir, sampler.total_steps, n_updates, time.perf_counter() - start, best_return, _mean(recent))


@dataclass
class _PendingUpdate:
    """An update whose policy step is done and whose critic fit may still be running."""

    update: int
    step: int
    obs_state: dict
    reward_state: dict
    metrics: dict[str, float]
    stats: dict[str, float]
    critic: Future | None
    timing: dict[str, float]


def _mean(values) -> float:
    return float(np.mean(values)) if len(values) else float("nan")

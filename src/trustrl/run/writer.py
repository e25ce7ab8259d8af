"""What a run leaves behind, written from one place for every mode: metrics, checkpoints, videos.

The recorder hands the writer numbers and models; the writer knows the
run directory's layout (see the guide's "Run directories").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch

from trustrl import checkpoint
from trustrl.config import Config
from trustrl.metrics import MetricsLogger
from trustrl.mirrors import WandbMirror, flat_params
from trustrl.nets import Policy, ValueNet
from trustrl.normalization import ObsNormalizer
from trustrl.video import write_training_video


class RunWriter:
    def __init__(
        self,
        run_dir: Path,
        cfg: Config,
        spaces: dict[str, Any],
        total_steps: int,
        progress: bool | float = True,
        resume_step: int | None = None,
        on_checkpoint: Callable[[], None] | None = None,
    ):
        self.run_dir = run_dir
        self.cfg = cfg
        self.spaces = spaces
        self.on_checkpoint = on_checkpoint  # called after each ``last`` is written (an --overwrite commits then)
        params = flat_params(cfg.to_dict())
        mirror = None
        if cfg.run.wandb:
            mirror = WandbMirror(run_dir, cfg.name, params, cfg.run.wandb_project, cfg.run.wandb_entity,
                                 cfg.run.wandb_group, resumed=resume_step is not None, quiet=progress is False)
        try:
            self.logger = MetricsLogger(run_dir, total_steps, progress=progress, resume_step=resume_step,
                                        mirror=mirror)
        except BaseException:
            if mirror is not None:
                mirror.close()
            raise
        self.logger.hparams(params, cfg.to_toml())

    def log(self, step: int, metrics: dict[str, float], timing: dict[str, float]) -> None:
        self.logger.log(step, metrics, timing)

    def evaluating(self, done: int, total: int) -> None:
        """Progress within an evaluation: ``done`` of its ``total`` episodes played."""
        self.logger.evaluating(done, total)

    def checkpoint(
        self,
        tag: str,
        policy: Policy,
        critic: ValueNet,
        *,
        step: int,
        update: int,
        obs_norm: dict,
        reward_norm: dict,
        extra: dict[str, Any],
        state: dict[str, Any] | None = None,
    ) -> None:
        checkpoint.save(
            self.run_dir / "checkpoints", tag, policy, critic,
            config=self.cfg.to_dict(), spaces=self.spaces, obs_norm=obs_norm, reward_norm=reward_norm,
            step=step, update=update, extra=extra, state=state,
        )  # fmt: skip
        if tag == "last" and self.on_checkpoint is not None:
            self.on_checkpoint()

    def video(self, policy: Policy, obs_norm: ObsNormalizer, step: int) -> None:
        """One deterministic episode of the current policy into ``videos/step-<N>.mp4``."""
        with torch.no_grad():
            write_training_video(policy, obs_norm, self.cfg, self.run_dir, step)

    def close(self) -> None:
        self.logger.close()

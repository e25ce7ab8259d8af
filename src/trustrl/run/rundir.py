"""The run directory: refuse to mix two runs, replace one only when asked, reopen one to resume."""

from __future__ import annotations

import shutil
from pathlib import Path

from trustrl.config import Config
from trustrl.errors import TrustrlError

#: Files and folders a run writes; their presence means "this directory holds a run".
RUN_ARTIFACTS = ("config.toml", "command.txt", "metrics.csv", "timing.csv", "tensorboard", "checkpoints", "videos")


def prepare_run_dir(run_dir: Path, overwrite: bool) -> None:
    """Refuse to mix two runs in one directory; with ``overwrite``, clear only what a run writes."""
    present = [name for name in RUN_ARTIFACTS if (run_dir / name).exists()]
    if present and not overwrite:
        raise TrustrlError(
            f"run directory {run_dir} already holds a run ({', '.join(present)}); "
            "pass --overwrite to replace it, --resume to continue it, or choose another --run-dir"
        )
    if run_dir.exists() and not run_dir.is_dir():
        raise TrustrlError(f"run directory {run_dir} exists and is not a directory")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        check_writable(run_dir)  # fail here, before anything is removed
        for name in present:
            target = run_dir / name
            shutil.rmtree(target) if target.is_dir() else target.unlink()
    except OSError as exc:
        raise TrustrlError(f"cannot write the run directory {run_dir}: {exc.strerror or exc}") from None


def check_writable(run_dir: Path) -> None:
    probe = run_dir / ".trustrl-write-test"
    probe.write_text("")
    probe.unlink()


def write_run_files(run_dir: Path, cfg: Config, command: list[str], resumed: bool = False) -> None:
    """``config.toml`` (the resolved config) and ``command.txt``; a resumed run appends its command line."""
    (run_dir / "config.toml").write_text(cfg.to_toml())
    with open(run_dir / "command.txt", "a" if resumed else "w") as f:
        f.write(" ".join(command) + "\n")

"""Starting ``trustrl train`` in a process of its own and killing it once it has written a checkpoint."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def train_until_first_checkpoint_then_kill(args: list[str], run_dir: Path) -> list[int]:
    """``trustrl train ARGS --run-dir RUN_DIR``, ``kill -9`` shortly after ``last`` first appears.

    Returns the pids of the process's children (its sampling workers) as they were just before the kill.
    """
    exe = Path(sys.executable).parent / "trustrl"
    proc = subprocess.Popen([str(exe), "train", *args, "--run-dir", str(run_dir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (run_dir / "checkpoints" / "last.json").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)
    children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return [int(pid) for pid in children]

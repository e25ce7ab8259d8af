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


def descendants(pid: int) -> list[int]:
    """The pids of ``pid``'s children, their children, and so on (Linux: read from ``/proc``)."""
    tree: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        try:
            stat = Path(f"/proc/{name}/stat").read_text() if name.isdigit() else ""
        except OSError:
            continue
        if stat:
            tree.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(name))
    found, todo = [], list(tree.get(pid, []))
    while todo:
        child = todo.pop()
        found.append(child)
        todo.extend(tree.get(child, []))
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie, dead but not yet reaped by whoever adopted it, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def survivors(pids: list[int], within: float) -> list[int]:
    """The ``pids`` still running after ``within`` seconds (polled: returns as soon as none is)."""
    deadline = time.monotonic() + within
    left = [pid for pid in pids if alive(pid)]
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = [pid for pid in left if alive(pid)]
    return left

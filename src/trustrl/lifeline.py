"""Every process trustrl starts ends when the process that started it dies, however it dies.

A learner killed with ``kill -9`` runs no cleanup, and a worker whose env hangs in ``step`` never reads the
closed socket that would tell it so. So a child ties its life to its parent's itself:

- :func:`die_with_parent` -- on Linux the kernel sends the child SIGKILL when its parent dies
  (``PR_SET_PDEATHSIG``), whatever the child is doing; elsewhere, and as a second line, a daemon thread
  checks every 0.2 s that the parent is still the one it was started by.
- :class:`Reaper` -- processes trustrl starts but does not make itself (a local Ray's gcs, raylet, agents
  and workers, started by ``ray.init``) are watched from a small process of their own, ``python -m
  trustrl.lifeline``, which kills all of them once the learner is gone (Linux: it reads ``/proc``).

Standard library only: worker processes call it before importing anything else.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import threading
import time

PR_SET_PDEATHSIG = 1
POLL_SECONDS = 0.2


def die_with_parent(parent_pid: int) -> None:
    """End this process (SIGKILL) when ``parent_pid``, the process that started it, dies."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):  # no prctl in this libc: the thread below still watches
            pass
    if os.getppid() != parent_pid:  # the parent died before the line above took effect
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent_pid,), name="trustrl-parent-watch", daemon=True).start()


def _watch_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(POLL_SECONDS)
    os.kill(os.getpid(), signal.SIGKILL)


class Reaper:
    """A process that kills ``roots`` and all their descendants once this process has died or :meth:`stop`\\ s.

    It learns the descendants while this process lives (a process whose parent dies is handed to init, and
    then no longer looks like one of them), and tells a pid from a reused one by its start time.
    """

    def __init__(self, roots: list[int]):
        self.proc: subprocess.Popen | None = None
        if not sys.platform.startswith("linux") or not roots:
            return
        read_end, self._write_end = os.pipe()  # ours stays open while this process lives: EOF means it died
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-P", "-m", "trustrl.lifeline", str(read_end), *map(str, roots)],
                pass_fds=(read_end,), stdin=subprocess.DEVNULL, start_new_session=True,
                env={**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.abspath(__file__)))},
            )  # fmt: skip
        finally:
            os.close(read_end)

    def stop(self) -> None:
        """Kill what is left of the processes watched now, and wait for the reaper to finish."""
        if self.proc is None:
            return
        os.close(self._write_end)
        try:
            self.proc.wait(timeout=10.0)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


def _start_time(pid: int) -> str | None:
    """Field 22 of ``/proc/PID/stat``: when the process started (None: it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode(errors="replace")
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _children() -> dict[int, list[int]]:
    """Parent pid -> child pids, for every process visible in ``/proc``."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as f:
                    ppid = int(f.read().decode(errors="replace").rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(name))
    return children


def _descendants(roots: list[int], known: dict[int, str]) -> None:
    """Add ``roots`` and their living descendants to ``known`` (pid -> start time)."""
    tree, todo = _children(), list(roots)
    while todo:
        pid = todo.pop()
        start = _start_time(pid)
        if start is not None and known.setdefault(pid, start) == start:
            todo.extend(tree.get(pid, []))


def reap(fd: int, roots: list[int]) -> None:
    """The reaper's loop: watch ``roots``' tree until ``fd`` reaches EOF, then SIGKILL every process of it."""
    known: dict[int, str] = {}
    while True:
        _descendants(roots, known)
        ready, _, _ = select.select([fd], [], [], POLL_SECONDS)
        if ready and not os.read(fd, 1):
            break
    for pid, start in known.items():
        if _start_time(pid) == start:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the learner's to handle; this ends after it
    reap(int(sys.argv[1]), [int(pid) for pid in sys.argv[2:]])

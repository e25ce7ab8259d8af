"""Where a run's env copies live: this process, worker processes on this machine, or Ray actors.

A pool holds the copies split into contiguous shares, one
:class:`~trustrl.samplers.fragments.FragmentCollector` per share, and forwards a call
to every share at once -- :meth:`WorkerPool.start` sends, :meth:`WorkerPool.finish`
gathers the replies in copy order -- so the workers simulate in parallel and
the learner waits once per batch. All replies are gathered before an error
is raised, so one failing share never leaves another's reply unread.

- :class:`LocalPool`: the copies in this process (``run.workers = 1``).
- :class:`ProcessPool`: ``run.workers`` processes (``python -P -m trustrl.samplers.worker``), one socket each.
- :class:`~trustrl.samplers.ray.RayPool`: ``run.workers`` Ray actors, on this machine or a cluster.

:func:`~trustrl.samplers.placement.make_pool` picks one for a config.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from multiprocessing.connection import Connection
from typing import Any

from trustrl.config.sections import EnvConfig
from trustrl.envs import factory_payload
from trustrl.errors import ConfigError, WorkerError
from trustrl.import_paths import is_run_directory_path
from trustrl.samplers.fragments import FragmentCollector


def split_copies(n_envs: int, workers: int) -> list[range]:
    """Copies ``0 .. n_envs - 1`` in ``workers`` contiguous shares, the first ``n_envs % workers`` one larger."""
    if not 1 <= workers <= n_envs:
        raise ConfigError(f"run.workers must be between 1 and env.n_envs = {n_envs}, got {workers}")
    size, extra = divmod(n_envs, workers)
    bounds = [0]
    for w in range(workers):
        bounds.append(bounds[-1] + size + (w < extra))
    return [range(a, b) for a, b in zip(bounds[:-1], bounds[1:])]


class WorkerPool:
    """Shares of env copies, called together. Subclasses implement ``_send``, ``_receive`` and ``close``."""

    copies: list[range]
    env_id: str  # for messages

    def __init__(self) -> None:
        self._pending: str | None = None  # the method whose replies are outstanding

    @property
    def n_envs(self) -> int:
        return self.copies[-1].stop

    @property
    def workers(self) -> int:
        return len(self.copies)

    def _build_shares(self, env_cfg: EnvConfig) -> None:
        """Each worker builds its share of ``env_cfg``'s copies; the spaces are the first share's."""
        payload = factory_payload(env_cfg.id)
        self.call("build", [(env_cfg, share.start, len(share), payload) for share in self.copies])
        self.observation_space, self.action_space = self.call("spaces")[0]

    def share(self, value: Any) -> Any:
        """``value`` as every share will receive it (Ray: one object in the store instead of a copy per call)."""
        return value

    def start(self, method: str, args: list[tuple] | None = None) -> None:
        """Send ``method(*args[w])`` to every share ``w`` (no args: ``method()``) without waiting."""
        if self._pending is not None:
            raise RuntimeError(f"{method!r} sent while {self._pending!r} is still outstanding")
        for w in range(self.workers):
            self._send(w, method, args[w] if args is not None else ())
        self._pending = method

    def finish(self) -> list:
        """The replies of the outstanding call, in share order; raises the first error after reading them all."""
        method = self._pending
        replies, error = [], None
        for w in range(self.workers):
            try:
                replies.append(self._receive(w, method))
            except (ConfigError, WorkerError) as exc:
                replies.append(None)
                error = error or exc
        # Only now, with every reply read: interrupted half-way (Ctrl-C), the call stays outstanding
        # and close() knows the streams are out of step.
        self._pending = None
        if error is not None:
            raise error
        return replies

    def call(self, method: str, args: list[tuple] | None = None) -> list:
        self.start(method, args)
        return self.finish()

    @property
    def busy(self) -> bool:
        return self._pending is not None

    def _send(self, w: int, method: str, args: tuple) -> None:
        raise NotImplementedError

    def _receive(self, w: int, method: str) -> Any:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class LocalPool(WorkerPool):
    """All copies in this process, as one share: a call runs when its result is asked for."""

    def __init__(self, envs):
        super().__init__()
        self.collector = FragmentCollector(envs, first=0)
        self.copies = [range(envs.num_envs)]
        spec = envs.envs[0].spec if hasattr(envs, "envs") else getattr(envs, "spec", None)
        self.env_id = spec.id if spec is not None else "this env"
        self.observation_space, self.action_space = self.collector.spaces()
        self._call: tuple[str, tuple] | None = None

    def _send(self, w: int, method: str, args: tuple) -> None:
        self._call = (method, args)

    def _receive(self, w: int, method: str) -> Any:
        name, args = self._call
        self._call = None
        return getattr(self.collector, name)(*args)

    def close(self) -> None:
        self._pending = None
        self.collector.close()


class ProcessPool(WorkerPool):
    """``workers`` processes on this machine, each building and stepping its share of ``env_cfg``'s copies."""

    def __init__(self, env_cfg: EnvConfig, workers: int):
        super().__init__()
        self.copies = split_copies(env_cfg.n_envs, workers)
        self.env_id = env_cfg.id
        self.procs: list[subprocess.Popen] = []
        self.conns: list[Connection] = []
        try:
            for _ in self.copies:
                self._spawn()
            self._build_shares(env_cfg)
        except BaseException:
            self.close()
            raise

    def _spawn(self) -> None:
        ours, theirs = socket.socketpair()
        env = {
            **os.environ,
            # what this process can import, the worker can; one BLAS thread: the worker's products are tiny
            "PYTHONPATH": os.pathsep.join(_import_path()),
            "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
        }  # fmt: skip
        try:
            # -P: the working directory is not put first on the worker's import path (a numpy.py there would run)
            proc = subprocess.Popen(
                [sys.executable, "-P", "-m", "trustrl.samplers.worker", str(theirs.fileno()), str(os.getpid())],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, env=env,
            )  # fmt: skip
        finally:
            theirs.close()
        self.procs.append(proc)
        self.conns.append(Connection(ours.detach()))

    def _send(self, w: int, method: str, args: tuple) -> None:
        try:
            self.conns[w].send((method, args))
        except OSError:
            pass  # a dead worker is reported when its reply is read

    def _receive(self, w: int, method: str) -> Any:
        try:
            status, *rest = self.conns[w].recv()
        except (EOFError, OSError):
            raise WorkerError(self._death(w, method)) from None
        if status == "ok":
            return rest[0]
        is_config_error, message = rest
        if is_config_error:
            raise ConfigError(message)
        raise WorkerError(f"sampling worker {w} (copies {copies_label(self.copies[w])}) failed in {method}: {message}")

    def _death(self, w: int, method: str) -> str:
        proc = self.procs[w]
        try:
            code = proc.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            code = None
        how = ("closed its connection" if code is None
               else f"was killed by signal {-code}" if code < 0 else f"exited with code {code}")
        doing = "collecting a batch" if method == "collect" else f"answering {method}"
        return (f"sampling worker {w} (pid {proc.pid}, copies {copies_label(self.copies[w])}) {how} while {doing}; "
                "the run stopped here and its saved checkpoints are as they were")

    def close(self) -> None:
        """Stop the workers; then raise the first worker's failure to close its env copies (an env's close() that
        raised), unless an error is already on its way out."""
        failure = None
        for w, (conn, proc) in enumerate(zip(self.conns, self.procs)):
            if proc.poll() is None and self._pending is None:  # in step: ask it to close its envs and exit
                try:
                    conn.send(("close", ()))
                    if conn.poll(5.0):
                        status, *rest = conn.recv()
                        failure = failure or (None if status == "ok" else (w, *rest))
                except Exception:  # noqa: BLE001 -- it is stopped below either way
                    pass
            conn.close()  # a worker still busy sees the socket close when it next reads, and exits
        for proc in self.procs:
            try:
                proc.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.conns, self.procs, self._pending = [], [], None
        if failure is not None and sys.exc_info()[1] is None:
            w, is_config_error, message = failure
            raise ConfigError(message) if is_config_error else WorkerError(f"sampling worker {w} failed in close: "
                                                                            f"{message}")


def _import_path() -> list[str]:
    """PYTHONPATH for a worker: trustrl however this process found it, PYTHONPATH, then the folders this process
    added to ``sys.path`` (its script's folder, a test's) -- so the modules of ``module:Id`` envs, ``env.imports``
    and env functions import there as they do here. The interpreter's own folders it finds by itself. Nothing
    more: the working directory only if this process searches it too, and no folder of a loaded run
    (:mod:`trustrl.import_paths`). Entries are absolute, as the worker resolves them with no help."""
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(sys.modules["trustrl"].__file__)))
    own = tuple(os.path.abspath(p) for p in {sys.prefix, sys.base_prefix, sys.exec_prefix})
    added = [os.path.abspath(p or os.curdir) for p in sys.path
             if not os.path.abspath(p or os.curdir).startswith(own)]
    given = [os.path.abspath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    paths = [package_root, *given, *added]
    return [p for p in dict.fromkeys(paths) if not is_run_directory_path(p)]


def copies_label(share: range) -> str:
    """``3`` or ``2-5``: a share of copies, for messages."""
    return f"{share.start}" if len(share) == 1 else f"{share.start}-{share.stop - 1}"

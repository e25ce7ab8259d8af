"""Env copies on Ray actors: the same collectors as the worker processes, on this machine or a cluster.

``ray.init()`` is called only when Ray is not already initialised, and then
honours ``RAY_ADDRESS`` (``auto``, or a head node's address): the command that
runs on a laptop runs on a cluster. A Ray instance trustrl started itself is
shut down when the run ends, and its processes are killed by a
:class:`~trustrl.lifeline.Reaper` if the learner dies first (``kill -9``
included). Ray puts the driver's working directory first on every actor's
import path; trustrl starts Ray from the folder it was imported from instead. Each actor imports :mod:`trustrl.samplers.fragments` (no
torch), so every node needs trustrl and the env's packages installed, as on
the machine that trains. The acting policy and the statistics go into the
object store once per batch (:meth:`RayPool.share`) and every actor reads them
from there.
"""

from __future__ import annotations

import os
from typing import Any

from trustrl.config.sections import EnvConfig
from trustrl.errors import ConfigError, TrustrlError, WorkerError
from trustrl.lifeline import Reaper
from trustrl.samplers.fragments import CollectorService
from trustrl.samplers.pools import WorkerPool, copies_label, split_copies


class RayPool(WorkerPool):
    """``workers`` Ray actors, each needing ``cpus_per_worker`` CPUs of the cluster."""

    def __init__(self, env_cfg: EnvConfig, workers: int, cpus_per_worker: float = 1.0):
        super().__init__()
        try:
            import ray
        except ImportError:  # pragma: no cover -- ray is a dependency; a broken install lands here
            raise ConfigError("run.placement = 'ray' needs the ray package (pip install ray)") from None
        self.ray = ray
        self.copies = split_copies(env_cfg.n_envs, workers)
        self.env_id = env_cfg.id
        self.started_ray = False
        self.reaper: Reaper | None = None
        if not ray.is_initialized():
            options: dict[str, Any] = {"logging_level": "ERROR", "log_to_driver": False}
            local = not os.environ.get("RAY_ADDRESS")
            if local:
                options["include_dashboard"] = False  # a local instance: no dashboard server to start
            _init_away_from_working_directory(ray, options)
            self.started_ray = True
            if local:
                self.reaper = Reaper(_ray_processes(ray))
        self.actors: list = []
        self._refs: list = []
        try:
            cpus = ray.cluster_resources().get("CPU", 0.0)
            if workers * cpus_per_worker > cpus:
                raise ConfigError(
                    f"run.workers = {workers} Ray actors with run.worker_cpus = {cpus_per_worker} need "
                    f"{workers * cpus_per_worker:g} CPUs; the Ray cluster has {cpus:g}"
                )
            remote = ray.remote(num_cpus=cpus_per_worker, max_restarts=0)(CollectorService)
            self.actors = [remote.remote() for _ in self.copies]
            self._build_shares(env_cfg)
        except BaseException:
            self.close()
            raise

    def share(self, value: Any) -> Any:
        return self.ray.put(value)

    def _send(self, w: int, method: str, args: tuple) -> None:
        if w == 0:
            self._refs = []
        self._refs.append(self.actors[w].call.remote(method, *args))

    def _receive(self, w: int, method: str) -> Any:
        exceptions = self.ray.exceptions
        try:
            return self.ray.get(self._refs[w])
        except exceptions.RayTaskError as exc:
            cause = exc.cause if getattr(exc, "cause", None) is not None else exc
            if isinstance(cause, TrustrlError):  # bad input, or an env that failed a call: one line as it is
                raise ConfigError(str(cause)) from None
            raise WorkerError(f"Ray sampling worker {w} (copies {copies_label(self.copies[w])}) failed in {method}: "
                              f"{type(cause).__name__}: {cause}") from None
        except (exceptions.RayActorError, exceptions.ObjectLostError) as exc:
            doing = "collecting a batch" if method == "collect" else f"answering {method}"
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise WorkerError(f"Ray sampling worker {w} (copies {copies_label(self.copies[w])}) died while {doing} "
                              f"({reason}); the run stopped here and its saved checkpoints are as they were") from None

    def close(self) -> None:
        for actor in self.actors:
            try:
                self.ray.kill(actor)
            except Exception:  # noqa: BLE001 -- already gone
                pass
        self.actors, self._refs, self._pending = [], [], None
        if self.started_ray:
            self.ray.shutdown()
            self.started_ray = False
        if self.reaper is not None:
            self.reaper.stop()  # whatever a shutdown left running
            self.reaper = None


def _init_away_from_working_directory(ray, options: dict[str, Any]) -> None:
    """``ray.init(**options)`` run from trustrl's own folder: Ray puts the driver's working directory first on
    every actor's import path, and a ``numpy.py`` there (a download, a run directory) would run in each."""
    here = os.getcwd()
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    os.chdir(package_root)  # the folder trustrl was imported from: on the import path already
    try:
        ray.init(**options)
    finally:
        os.chdir(here)


def _ray_processes(ray) -> list[int]:
    """The pids of the processes ``ray.init`` started here (gcs, raylet, monitors); their children follow."""
    node = getattr(ray._private.worker, "_global_node", None)
    processes = getattr(node, "all_processes", {}) or {}
    return [info.process.pid for infos in processes.values() for info in infos if info.process is not None]

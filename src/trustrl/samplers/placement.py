"""Where a run's env copies are simulated: this process, worker processes on this machine, or Ray actors.

The choice changes no number: the same seed gives the same batches wherever the copies run.
"""

from __future__ import annotations

from trustrl.config.sections import EnvConfig
from trustrl.envs import make_vec_env
from trustrl.samplers.pools import LocalPool, ProcessPool, WorkerPool


def make_pool(env_cfg: EnvConfig, workers: int = 1, placement: str = "local", worker_cpus: float = 1.0) -> WorkerPool:
    """``env_cfg``'s copies in this process (one local worker), in ``workers`` processes, or on Ray actors."""
    if placement == "ray":
        from trustrl.samplers.ray import (
            RayPool,  # ray is imported only by runs that use it
        )

        return RayPool(env_cfg, workers, worker_cpus)
    if workers == 1:
        return LocalPool(make_vec_env(env_cfg))
    return ProcessPool(env_cfg, workers)

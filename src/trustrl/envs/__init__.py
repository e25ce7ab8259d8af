"""Environments: which env an id names, making one or ``n_envs`` copies, and capturing an env's state.

- :mod:`trustrl.envs.registry`: gymnasium ids, ``module:Id`` ids and env functions.
- :mod:`trustrl.envs.make`: one env (evaluation, video) or a vector env of copies (sampling).
- :mod:`trustrl.envs.actions`: the action spaces accepted, how a checkpoint records one, how actions are stored.
- :mod:`trustrl.envs.vector`: the synchronous vector env with same-step autoreset.
- :mod:`trustrl.envs.state`: an env's state as JSON and back (vine branches, exact resume).

Nothing here imports torch: worker processes build their env copies with it.
"""

from trustrl.envs.make import check_spaces, describe_spaces, make_env, make_vec_env
from trustrl.envs.registry import (FACTORY_NAMESPACE, check_env_id, factory_payload, import_env_modules,
                                   register_factory, register_payload, registered_id)
from trustrl.envs.state import can_snapshot, restore, snapshot
from trustrl.envs.vector import SyncVecEnv
from trustrl.envs.wrappers import ClipToBounds

__all__ = ["FACTORY_NAMESPACE", "ClipToBounds", "SyncVecEnv", "can_snapshot", "check_env_id", "check_spaces",
           "describe_spaces", "factory_payload", "import_env_modules", "make_env", "make_vec_env",
           "register_factory", "register_payload", "registered_id", "restore", "snapshot"]

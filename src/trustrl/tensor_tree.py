"""A nested training state as JSON plus named tensors: how a checkpoint stores what ``--resume`` needs.

Optimiser states, RNG streams and sampler statistics are dicts and lists holding tensors; the tensors go
to the safetensors file under a path-like name and the rest to the JSON record, so the state comes back
equal, with no pickle.
"""

from __future__ import annotations

from typing import Any

import torch

_TENSOR = "__tensor__"


def split_tensors(tree: Any) -> tuple[Any, dict[str, torch.Tensor]]:
    """Replace every tensor in a nested dict/list structure by a reference; return both parts.

    Dict keys become strings (JSON's rule); integer keys, as in an optimiser's
    ``state_dict``, are restored by :func:`join_tensors` from a marker.
    """
    tensors: dict[str, torch.Tensor] = {}

    def walk(node: Any, path: str) -> Any:
        if isinstance(node, torch.Tensor):
            tensors[path] = node.detach().cpu().contiguous()
            return {_TENSOR: path}
        if isinstance(node, dict):
            int_keys = bool(node) and all(isinstance(k, int) for k in node)
            out = {str(k): walk(v, f"{path}.{k}") for k, v in node.items()}
            return {"__int_keys__": out} if int_keys else out
        if isinstance(node, (list, tuple)):
            return [walk(v, f"{path}.{i}") for i, v in enumerate(node)]
        return node

    return walk(tree, "s"), tensors


def join_tensors(tree: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """The inverse of :func:`split_tensors`."""
    if isinstance(tree, dict):
        if set(tree) == {_TENSOR}:
            return tensors[tree[_TENSOR]]
        if set(tree) == {"__int_keys__"}:
            return {int(k): join_tensors(v, tensors) for k, v in tree["__int_keys__"].items()}
        return {k: join_tensors(v, tensors) for k, v in tree.items()}
    if isinstance(tree, list):
        return [join_tensors(v, tensors) for v in tree]
    return tree

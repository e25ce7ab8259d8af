"""Checkpoints: safetensors weights plus a JSON record, written so a crash never leaves half of one.

Layout inside ``<run_dir>/checkpoints/``::

    last.json                       the record: config, normalisation statistics, step,
                                    library versions, the weights file's name and SHA-256,
                                    and (``last``) the JSON part of the training state
    last-000102400.safetensors      policy.* and critic.* tensors, and state/* tensors

The training state is everything a continuation needs beyond the weights
(optimiser moments, RNG streams, the sampler's statistics and env snapshots,
counters): a nested structure whose tensors go to the safetensors file and
whose other values go to the JSON record, so ``--resume`` rebuilds it exactly.

Writing goes weights first (temp file + rename), then the JSON (temp file +
rename) -- the JSON rename is the commit point -- then the previous weights
file is removed. At any instant ``<tag>.json`` names a complete weights file
whose hash it knows, so a torn write or a tampered file is detected on load.
No pickle anywhere: loading a checkpoint can never run code.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from trustrl.errors import CheckpointError

FORMAT_VERSION = 2  # 2 added the training state; version-1 records still load
TAGS = ("best", "last")


@dataclass
class Checkpoint:
    """What a saved checkpoint holds, ready to rebuild the policy and its normaliser."""

    path: Path  # the JSON record
    config: dict[str, Any]
    spaces: dict[str, Any]
    obs_norm: dict[str, Any]
    reward_norm: dict[str, Any]
    step: int
    update: int
    policy_state: dict[str, torch.Tensor]
    critic_state: dict[str, torch.Tensor]
    extra: dict[str, Any]
    state: dict[str, Any] | None = None  # the training state (``last`` only), tensors restored in place


def save(
    directory: Path,
    tag: str,
    policy: torch.nn.Module,
    critic: torch.nn.Module,
    *,
    config: dict[str, Any],
    spaces: dict[str, Any],
    obs_norm: dict[str, Any],
    reward_norm: dict[str, Any],
    step: int,
    update: int,
    extra: dict[str, Any] | None = None,
    state: dict[str, Any] | None = None,
) -> Path:
    """Atomically write checkpoint ``tag`` in ``directory``; returns the JSON record's path.

    ``state``: a nested structure of dicts, lists, JSON scalars and tensors (see
    :func:`split_tensors`), stored so that :func:`load` returns it equal.
    """
    directory.mkdir(parents=True, exist_ok=True)
    record_path = directory / f"{tag}.json"
    previous = _previous_weights(record_path)

    tensors = {f"policy.{k}": v.detach().cpu().contiguous() for k, v in policy.state_dict().items()}
    tensors.update({f"critic.{k}": v.detach().cpu().contiguous() for k, v in critic.state_dict().items()})
    state_json = None
    if state is not None:
        state_json, state_tensors = split_tensors(state)
        tensors.update({f"state/{k}": v for k, v in state_tensors.items()})
    weights_name = f"{tag}-{step:09d}.safetensors"
    weights_path = directory / weights_name
    tmp = _temp_path(directory, weights_name)
    # One metadata key: safetensors keeps metadata in a hash map, so two keys come out in either
    # order and the same weights would not give the same bytes (and SHA-256) from run to run.
    save_file(tensors, str(tmp), metadata={"format": "trustrl"})
    os.chmod(tmp, _FILE_MODE)  # the file save_file leaves is 0600
    digest = _sha256(tmp)
    os.replace(tmp, weights_path)

    record = {
        "format": "trustrl-checkpoint",
        "format_version": FORMAT_VERSION if state is not None else 1,  # readable by older trustrl when it can be
        "tag": tag,
        "step": int(step),
        "update": int(update),
        "weights": weights_name,
        "weights_sha256": digest,
        "config": config,
        "spaces": spaces,
        "obs_norm": obs_norm,
        "reward_norm": reward_norm,
        "versions": versions(),
        "extra": extra or {},
    }
    if state_json is not None:
        record["state"] = state_json
    _write_atomic(record_path, json.dumps(record, indent=1, allow_nan=True))
    if previous and previous != weights_name and Path(previous).name == previous:  # never outside `directory`
        (directory / previous).unlink(missing_ok=True)
    return record_path


def load(path: str | Path, tag: str = "last") -> Checkpoint:
    """Load a checkpoint from a run directory, a checkpoints directory, or a ``<tag>.json`` path."""
    record_path = resolve(path, tag)
    try:
        record = json.loads(record_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"checkpoint {record_path} is corrupt: not a readable JSON record ({exc})") from None
    required = ("format", "weights", "weights_sha256", "config", "spaces", "obs_norm", "step")
    if not isinstance(record, dict) or record.get("format") != "trustrl-checkpoint" or any(k not in record for k in required):
        raise CheckpointError(f"checkpoint {record_path} is not a trustrl checkpoint record (fields missing)")
    if record.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {record_path} has format version {record['format_version']}; upgrade trustrl")
    weights_path = record_path.parent / str(record["weights"])
    if Path(record["weights"]).name != record["weights"] or not weights_path.is_file():
        raise CheckpointError(f"checkpoint {record_path}: weights file {record['weights']!r} is missing")
    if _sha256(weights_path) != record["weights_sha256"]:
        raise CheckpointError(
            f"checkpoint {record_path}: weights file {weights_path.name} does not match its recorded "
            "SHA-256 (corrupt or modified)"
        )
    try:
        tensors = load_file(str(weights_path))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"checkpoint {weights_path} cannot be read as safetensors ({exc})") from None
    try:
        step, update = int(record["step"]), int(record.get("update", 0))
    except (TypeError, ValueError):
        raise CheckpointError(f"checkpoint {record_path}: step/update are not integers (edited by hand?)") from None
    policy_state = {k[len("policy.") :]: v for k, v in tensors.items() if k.startswith("policy.")}
    critic_state = {k[len("critic.") :]: v for k, v in tensors.items() if k.startswith("critic.")}
    state = None
    if record.get("state") is not None:
        try:
            state = join_tensors(record["state"], {k[len("state/") :]: v for k, v in tensors.items() if k.startswith("state/")})
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"checkpoint {record_path}: the training state is malformed ({exc})") from None
    return Checkpoint(
        path=record_path,
        config=record["config"],
        spaces=record["spaces"],
        obs_norm=record["obs_norm"],
        reward_norm=record.get("reward_norm", {}),
        step=step,
        update=update,
        policy_state=policy_state,
        critic_state=critic_state,
        extra=record.get("extra", {}),
        state=state,
    )


def resolve(path: str | Path, tag: str = "last") -> Path:
    """Find ``<tag>.json`` given a run directory, its ``checkpoints/`` folder, or the file itself."""
    if tag not in TAGS:
        raise CheckpointError(f"unknown checkpoint {tag!r}; choose from {', '.join(TAGS)}")
    path = Path(path)
    if path.suffix == ".json":
        candidates = [path]
    else:
        candidates = [path / "checkpoints" / f"{tag}.json", path / f"{tag}.json"]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    if not path.exists():
        raise CheckpointError(f"no run or checkpoint at {path}")
    raise CheckpointError(f"no {tag!r} checkpoint in {path} (looked for {', '.join(str(c) for c in candidates)})")


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


def versions() -> dict[str, str]:
    import gymnasium
    import numpy

    import trustrl

    return {
        "trustrl": trustrl.__version__,
        "torch": torch.__version__,
        "gymnasium": gymnasium.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
    }


def _previous_weights(record_path: Path) -> str | None:
    try:
        return json.loads(record_path.read_text()).get("weights")
    except (OSError, ValueError, AttributeError):
        return None


def _temp_path(directory: Path, name: str) -> Path:
    """A fresh temporary file beside ``name``, with the mode any file this process creates gets (mkstemp's
    is 0600, which would hide checkpoints from a teammate who can read the rest of the run)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
    try:
        os.fchmod(fd, _FILE_MODE)
    finally:
        os.close(fd)
    return Path(tmp)


def _default_file_mode() -> int:
    """0666 less the process's umask, read once (setting the umask to read it is not thread-safe later)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


_FILE_MODE = _default_file_mode()


def _write_atomic(path: Path, text: str) -> None:
    tmp = _temp_path(path.parent, path.name)
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()

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
whose hash and size it knows, so a torn write or a tampered file is detected on
load, and a file larger than the record says is refused before it is hashed. A
reader that finds the weights its record named already replaced reads the
record again. No pickle anywhere: loading a checkpoint can never run code.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_bytes
from safetensors.torch import save_file

from trustrl import versions as library_versions
from trustrl.checkpoint_files import FORMAT_VERSION, MAX_WEIGHTS_BYTES
from trustrl.checkpoint_files import read_record as _read_record
from trustrl.checkpoint_files import read_weights as _read_weights
from trustrl.errors import CheckpointError
from trustrl.files import FILE_MODE, cause, check_name_length, temp_beside
from trustrl.import_paths import never_import_from
from trustrl.links import inside, refuse_link
from trustrl.tensor_tree import join_tensors, split_tensors

TAGS = ("best", "last")
#: A copy of the policy a run kept at step N (``trustrl.callbacks.SaveEvery``): checkpoint ``step-<N>``.
KEPT = re.compile(r"^step-(0|[1-9][0-9]{0,14})$")


def weights_name(tag: str, step: int) -> str:
    """The weights file of checkpoint ``tag`` at ``step``: a record that names another is not the writer's."""
    return f"{tag}-{step:09d}.safetensors"


def kept_tag(step: int) -> str:
    """The name of the copy kept at ``step``."""
    return f"step-{step}"


def check_tag(tag: object) -> str:
    """``tag`` if it names a checkpoint a run can hold (``last``, ``best``, ``step-<N>``); else one clear error."""
    if isinstance(tag, str) and (tag in TAGS or KEPT.match(tag)):
        return tag
    raise CheckpointError(f"unknown checkpoint {tag!r}; choose from {', '.join(TAGS)} or step-<N> (a copy kept "
                          "at step N)")


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
    versions: dict[str, str] = field(default_factory=dict)  # the libraries it was written with (none: an old one)


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
    problem = check_finite(policy, critic, obs_norm)
    if problem is not None:
        raise CheckpointError(f"refusing to write checkpoint {tag} at step {step}: its {problem} are not finite")
    refuse_link(directory, CheckpointError)  # another run's checkpoints/ must not be written through a link
    weights_file = weights_name(tag, step)
    written: list[Path] = []  # what this call created, removed again if it cannot finish
    try:
        return _save(directory, tag, weights_file, written, policy, critic, config=config, spaces=spaces,
                     obs_norm=obs_norm, reward_norm=reward_norm, step=step, update=update, extra=extra, state=state)
    except OSError as exc:  # a full disk, ulimit -f, a read-only or missing folder: the previous checkpoint stands
        for path in written:
            path.unlink(missing_ok=True)
        raise CheckpointError(f"cannot write checkpoint {tag} at step {step} in {directory}: {cause(exc)}"
                              f"{f' ({exc.filename})' if exc.filename else ''}; the previous {tag} is intact") from None


def _save(directory: Path, tag: str, weights_file: str, written: list[Path], policy: torch.nn.Module,
          critic: torch.nn.Module, *, config: dict[str, Any], spaces: dict[str, Any], obs_norm: dict[str, Any],
          reward_norm: dict[str, Any], step: int, update: int, extra: dict[str, Any] | None,
          state: dict[str, Any] | None) -> Path:
    """:func:`save`'s writes; every file it creates is listed in ``written`` until the record names it."""
    directory.mkdir(parents=True, exist_ok=True)
    record_path = directory / f"{tag}.json"
    previous = _previous_weights(record_path)

    tensors = {f"policy.{k}": v.detach().cpu().contiguous() for k, v in policy.state_dict().items()}
    tensors.update({f"critic.{k}": v.detach().cpu().contiguous() for k, v in critic.state_dict().items()})
    state_json = None
    if state is not None:
        state_json, state_tensors = split_tensors(state)
        tensors.update({f"state/{k}": v for k, v in state_tensors.items()})
    weights_path = directory / weights_file
    tmp = temp_beside(directory, weights_file)
    written.append(tmp)
    # One metadata key: safetensors keeps metadata in a hash map, so two keys come out in either
    # order and the same weights would not give the same bytes (and SHA-256) from run to run.
    try:
        save_file(tensors, str(tmp), metadata={"format": "trustrl"})
    except SafetensorError as exc:  # safetensors wraps the OS's refusal (a full disk, ulimit -f) in its own error
        code = re.search(r"os error (\d+)", str(exc))
        if code is None:
            raise
        raise OSError(int(code[1]), os.strerror(int(code[1])), str(tmp)) from None
    os.chmod(tmp, FILE_MODE)  # the file save_file leaves is 0600
    digest = _sha256(tmp)
    _fsync(tmp)  # on disk before the record that names it can be
    os.replace(tmp, weights_path)
    if previous != weights_file:  # a rewrite of the same step replaces the named file: never delete that one
        written.append(weights_path)
    _fsync(directory)

    record = {
        "format": "trustrl-checkpoint",
        "format_version": FORMAT_VERSION if state is not None else 1,  # readable by older trustrl when it can be
        "tag": tag,
        "step": int(step),
        "update": int(update),
        "weights": weights_file,
        "weights_sha256": digest,
        "weights_bytes": weights_path.stat().st_size,
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
    written.clear()  # committed: the record names the weights
    _fsync(directory)
    if previous and previous != weights_file and _is_weights_of(previous, tag):  # never another tag's (a record
        (directory / previous).unlink(missing_ok=True)  # edited to name best's), never outside ``directory``
    return record_path


_READS = 3  # reads of a record whose weights a writer replaced meanwhile (one writes at most every update)


def load(path: str | Path, tag: str = "last") -> Checkpoint:
    """Load a checkpoint from a run directory, a checkpoints directory, or a ``<tag>.json`` path.

    The record is data from wherever the run came from: every field's type and range is checked, and its
    size and nesting are bounded, before anything is built from it.
    """
    record_path = resolve(path, tag)
    folder = record_path.parent  # the run's folder (a record's own, outside a run): data, not env modules
    never_import_from(folder.parent if folder.name == "checkpoints" else folder)
    for attempt in range(_READS):
        record = _read_record(record_path)
        try:
            data = _read_weights(record_path, record)
            break
        except FileNotFoundError:  # a writer may have replaced them since the record was read: read it again
            if attempt == _READS - 1 or _read_record(record_path)["weights"] == record["weights"]:
                raise CheckpointError(f"checkpoint {record_path}: weights file {record['weights']!r} is missing") \
                    from None
    if hashlib.sha256(data).hexdigest() != record["weights_sha256"]:
        raise CheckpointError(
            f"checkpoint {record_path}: weights file {record['weights']} does not match its recorded "
            "SHA-256 (corrupt or modified)"
        )
    try:
        tensors = load_bytes(data)  # the very bytes that were hashed: no file can be swapped in between
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"checkpoint {record_path.parent / record['weights']} cannot be read as safetensors "
                              f"({exc})") from None
    step, update = record["step"], record.get("update", 0)
    policy_state = {k[len("policy.") :]: v for k, v in tensors.items() if k.startswith("policy.")}
    critic_state = {k[len("critic.") :]: v for k, v in tensors.items() if k.startswith("critic.")}
    for name, weights in (("policy", policy_state), ("critic", critic_state)):
        problem = _nonfinite(weights)
        if problem is not None:  # save() never writes one: the file was made or edited elsewhere, its hash too
            raise CheckpointError(f"checkpoint {record_path}: {name} weight {problem} in {record['weights']} is "
                                  "not finite (NaN or infinity)")
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
        versions=library_versions.recorded(record.get("versions")),
    )


def check_finite(policy: torch.nn.Module, critic: torch.nn.Module, obs_norm: dict[str, Any]) -> str | None:
    """What of a checkpoint to be would not be finite (a weight, a statistic), or None."""
    for name, net in (("policy", policy), ("critic", critic)):
        key = _nonfinite(net.state_dict())
        if key is not None:
            return f"{name} weights {key}"
    for key in ("mean", "var", "count"):
        if key in obs_norm and not all(math.isfinite(float(v)) for v in _flat(obs_norm[key])):
            return f"observation statistics ({key})"
    return None


def _nonfinite(weights: dict[str, torch.Tensor]) -> str | None:
    """The name of the first floating-point tensor of ``weights`` holding a NaN or an infinity, or None."""
    return next((k for k, v in weights.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())), None)


def _flat(value: Any) -> list:
    return [x for item in value for x in _flat(item)] if isinstance(value, (list, tuple)) else [value]


def resolve(path: str | Path, tag: str = "last") -> Path:
    """Find ``<tag>.json`` given a run directory, its ``checkpoints/`` folder, or the file itself."""
    check_tag(tag)
    path = check_name_length(path, "checkpoint path")
    if path.suffix == ".json":
        candidates = [path]
    else:
        candidates = [path / "checkpoints" / f"{tag}.json", path / f"{tag}.json"]
    for candidate in candidates:
        if candidate.is_file():  # read only from inside the run (or folder) asked for, whatever links lie on the way
            return inside(candidate, candidate.parent if path.suffix == ".json" else path, CheckpointError)
    if not path.exists():
        raise CheckpointError(f"no run or checkpoint at {path}")
    raise CheckpointError(f"no {tag!r} checkpoint in {path} (looked for {', '.join(str(c) for c in candidates)})")


def versions() -> dict[str, str]:
    """The library versions a checkpoint records (:mod:`trustrl.versions`)."""
    return library_versions.running()


def _previous_weights(record_path: Path) -> str | None:
    try:
        return json.loads(record_path.read_text()).get("weights")
    except (OSError, ValueError, AttributeError):
        return None


def _is_weights_of(name: str, tag: str) -> bool:
    """Whether ``name`` is a weights file :func:`save` writes for ``tag`` (so a ``last`` never deletes ``best``'s)."""
    return re.fullmatch(rf"{re.escape(tag)}-[0-9]{{9,}}\.safetensors", name) is not None


def has_digest(path: Path, digest: object) -> bool:
    """Whether ``path`` is a weights file (not a link, not oversized) whose SHA-256 is ``digest``."""
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_WEIGHTS_BYTES:
            return False
        return _sha256(path) == digest
    except OSError:
        return False


def _write_atomic(path: Path, text: str) -> None:
    tmp = temp_beside(path.parent, path.name)
    try:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    """Flush a file's (or a directory's entries') writes to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()

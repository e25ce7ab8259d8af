"""Reading a checkpoint's record and weights as data from anywhere: bounded in size and nesting, every field's
type and range checked, and the weights' size checked before a byte of them is hashed.

A run directory may come from another machine or person; nothing here trusts it. Each failure is one
:class:`~trustrl.errors.CheckpointError` naming the file and the field.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from trustrl.errors import CheckpointError
from trustrl.links import inside

FORMAT_VERSION = 2  # 2 added the training state; version-1 records still load
MAX_WEIGHTS_BYTES = 1 << 35  # 32 GiB: the networks, optimiser moments and a policy in flight at the config limits
MAX_RECORD_BYTES = 1 << 28  # a record holds statistics and env snapshots, never weights: 256 MiB is far beyond one
MAX_DEPTH = 64  # nesting of the record's JSON (an optimiser state is about 8 deep)
MAX_COUNT = 10**15  # steps and updates
_WEIGHTS_NAME = re.compile(r"^[A-Za-z0-9_.-]+\.safetensors$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def read_record(record_path: Path) -> dict[str, Any]:
    """The JSON record, each field checked (one CheckpointError naming what is wrong)."""
    def bad(what: str) -> CheckpointError:
        return CheckpointError(f"checkpoint {record_path}: {what}")

    try:
        if record_path.stat().st_size > MAX_RECORD_BYTES:
            raise bad(f"the record is larger than {MAX_RECORD_BYTES >> 20} MiB")
        record = json.loads(record_path.read_bytes())
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:  # ValueError: JSON, oversized ints
        detail = "nested too deeply" if isinstance(exc, RecursionError) else str(exc).splitlines()[0][:200]
        raise CheckpointError(f"checkpoint {record_path} is corrupt: not a readable JSON record ({detail})") from None
    required = ("format", "weights", "weights_sha256", "config", "spaces", "obs_norm", "step")
    if not isinstance(record, dict) or record.get("format") != "trustrl-checkpoint" or any(k not in record for k in required):
        raise CheckpointError(f"checkpoint {record_path} is not a trustrl checkpoint record (fields missing)")
    if _depth(record) > MAX_DEPTH:
        raise bad(f"the record is nested more than {MAX_DEPTH} levels deep")
    version = record.get("format_version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        if isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION:
            raise bad(f"format version {version} is newer than this trustrl reads ({FORMAT_VERSION}); upgrade trustrl")
        raise bad(f"format_version must be an integer from 1 to {FORMAT_VERSION}, got {_short(version)}")
    if not isinstance(record["weights"], str) or not _WEIGHTS_NAME.match(record["weights"]):
        raise bad(f"weights must name a .safetensors file beside the record, got {_short(record['weights'])}")
    if not isinstance(record["weights_sha256"], str) or not _SHA256.match(record["weights_sha256"]):
        raise bad(f"weights_sha256 must be 64 hex digits, got {_short(record['weights_sha256'])}")
    for key in ("step", "update"):
        value = record.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_COUNT:
            raise bad(f"{key} must be an integer from 0 to {MAX_COUNT:.0e}, got {_short(value)} (edited by hand?)")
    size = record.get("weights_bytes", 0)
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_WEIGHTS_BYTES:
        raise bad(f"weights_bytes must be an integer from 0 to {MAX_WEIGHTS_BYTES}, got {_short(size)}")
    for key in ("config", "spaces", "obs_norm", "reward_norm", "extra"):
        if key in record and not isinstance(record[key], dict):
            raise bad(f"{key} must be a table, got {_short(record[key])}")
    if record.get("state") is not None and not isinstance(record["state"], dict):
        raise bad(f"state must be a table, got {_short(record['state'])}")
    return record


def read_weights(record_path: Path, record: dict[str, Any]) -> bytes:
    """The bytes of the weights file a record names, its size checked before a byte of it is hashed: the size
    the record gives (records of older trustrl give none), at most :data:`MAX_WEIGHTS_BYTES`, and the size its
    own safetensors header implies (a sparse file of zeros fails that at once). FileNotFoundError if missing."""
    def bad(what: str) -> CheckpointError:
        return CheckpointError(f"checkpoint {record_path}: weights file {record['weights']} {what}")

    path = inside(record_path.parent / record["weights"], record_path.parent, CheckpointError)
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            expected = record.get("weights_bytes")
            if expected is not None and size != expected:
                raise bad(f"holds {size:,} bytes, its record says {expected:,} (corrupt or modified)")
            if size > MAX_WEIGHTS_BYTES:
                raise bad(f"holds {size:,} bytes, more than a checkpoint can ({MAX_WEIGHTS_BYTES:,})")
            length = int.from_bytes(f.read(8), "little")
            if not 0 < length <= min(size - 8, MAX_RECORD_BYTES) or _data_end(f.read(length)) != size - 8 - length:
                raise bad("is not a safetensors file of the size its header gives (corrupt or modified)")
            f.seek(0)
            return f.read()
    except (FileNotFoundError, CheckpointError):
        raise
    except OSError as exc:  # a directory, a file that cannot be read
        raise bad(f"cannot be read ({exc.strerror or exc})") from None


def _data_end(header: bytes) -> int:
    """Where the tensors a safetensors header describes end (bytes after the header), or -1 if it is not one."""
    try:
        entries = json.loads(header)
        return max((entry["data_offsets"][1] for key, entry in entries.items() if key != "__metadata__"), default=0)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, RecursionError):
        return -1


def _depth(tree: Any) -> int:
    """Nesting depth of a JSON value, without recursion (a hostile record may be deep)."""
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        if deepest > MAX_DEPTH:
            return deepest
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        stack.extend((child, level + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."

"""A trained policy as one self-contained file -- ONNX or TorchScript -- that acts without trustrl.

The exported module maps a batch of *raw* observations to the deterministic action, doing in one graph what
:meth:`trustrl.agent.Agent.act` does around the network: the saved observation statistics and their clip,
the network, the distribution's ``mode()`` (the mean of a Gaussian, the arg-max of a categorical: whatever
distribution the policy returns, as long as its ``mode()`` is tensor arithmetic), and the clip to the Box
action bounds. So a file deployed elsewhere acts as the checkpoint did.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor, nn

from trustrl.errors import TrustrlError
from trustrl.files import temp_beside

if TYPE_CHECKING:
    from trustrl.nets import Policy
    from trustrl.normalization import ObsNormalizer

#: Export format -> the suffix its file must have.
FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
#: Names of the exported graph's input and output (what ``onnxruntime`` takes and returns).
INPUT_NAME, OUTPUT_NAME = "obs", "action"
#: Opset of the ONNX files written: the one torch's ONNX function library is written in (no conversion step).
ONNX_OPSET = 18
_INSTALL_HINT = "pip install 'trustrl[export]'"


class DeterministicPolicy(nn.Module):
    """Raw observations ``(B, obs_dim)`` float32 (flat: Dicts and images flattened as the env made by trustrl
    gives them) -> deterministic actions: ``(B, act_dim)`` float32 (Box), ``(B,)`` int64 (Discrete), ``(B, k)``
    int64 (MultiDiscrete, ``start`` included) or int8 (MultiBinary) -- the values and dtypes :meth:`Agent.act`
    gives.

    A frozen snapshot: the policy is copied to the CPU with gradients off, and the normaliser's mean and
    ``sqrt(var + eps)`` are buffers. Normalising runs in float64, as :meth:`ObsNormalizer.normalize` does in
    numpy, so the network sees the very numbers :meth:`Agent.act` gives it.
    """

    def __init__(self, policy: Policy, obs_norm: ObsNormalizer, action_space: gym.Space | None = None,
                 obs_dim: int | None = None):
        super().__init__()
        self.policy = copy.deepcopy(policy).cpu().eval().requires_grad_(False)
        self.obs_dim = int(obs_dim if obs_dim is not None else obs_norm.rms.shape[0])  # images: no statistics
        self.normalize = bool(obs_norm.enabled)
        self.obs_clip = float(obs_norm.clip)
        self.register_buffer("obs_mean", torch.as_tensor(np.asarray(obs_norm.rms.mean, np.float64)))
        self.register_buffer("obs_scale", torch.as_tensor(np.sqrt(obs_norm.rms.var + obs_norm.eps)))
        self.clip_action = isinstance(action_space, gym.spaces.Box)
        if self.clip_action:
            self.register_buffer("action_low", torch.as_tensor(action_space.low))
            self.register_buffer("action_high", torch.as_tensor(action_space.high))
        self.as_int8 = isinstance(action_space, gym.spaces.MultiBinary)  # the space's dtype, as act gives it

    def forward(self, obs: Tensor) -> Tensor:
        if self.normalize:
            x = ((obs.double() - self.obs_mean) / self.obs_scale).clamp(-self.obs_clip, self.obs_clip).float()
        else:
            x = obs.float()
        action = self.policy(x).mode()
        if self.clip_action:  # minimum/maximum, not clamp: ONNX's Clip takes scalar bounds only
            action = torch.maximum(torch.minimum(action, self.action_high), self.action_low)
        if self.as_int8:
            action = action.to(torch.int8)
        return action


def example_observations(module: DeterministicPolicy, batch: int = 2) -> Tensor:
    """A batch of observations to trace the module with (more than one row, so no size is taken as fixed)."""
    if module.normalize:
        return module.obs_mean.float().expand(batch, module.obs_dim).clone()
    return torch.zeros(batch, module.obs_dim)


def check_output(out: str | Path, format: str, overwrite: bool = False) -> Path:
    """Refuse, before any work, an unknown format, a file name that does not say the format, an existing file
    (unless ``overwrite``), a missing directory, or an ONNX export without the packages it needs."""
    out = Path(out)
    if format not in FORMATS:
        raise TrustrlError(f"export format must be one of {', '.join(FORMATS)}, got {format!r}")
    if out.suffix.lower() != FORMATS[format]:
        raise TrustrlError(f"{format} output {out} must end in {FORMATS[format]}")
    if out.exists() and not overwrite:
        raise TrustrlError(f"{out} already exists; pass --overwrite to replace it")
    if not out.parent.is_dir():
        raise TrustrlError(f"directory {out.parent} for the exported policy does not exist")
    if format == "onnx":
        _require_onnx()
    return out


def export_module(module: DeterministicPolicy, out: str | Path, format: str, overwrite: bool = False) -> Path:
    """Write ``module`` (from :meth:`Agent.to_torch`) to ``out`` as ONNX or TorchScript, with a dynamic batch axis.

    An existing ``out`` is kept unless ``overwrite``; the file appears whole (written beside it, then
    renamed), so a failed export leaves nothing behind.
    """
    out = check_output(out, format, overwrite)
    writer = _write_onnx if format == "onnx" else _write_torchscript
    tmp = temp_beside(out.parent, out.name)  # with the mode of any file this process writes
    try:
        writer(module, tmp)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def _require_onnx() -> None:
    try:
        import onnx  # noqa: F401 -- the exporter needs both; say so before it fails deep inside
        import onnxscript  # noqa: F401
    except ImportError as exc:
        raise TrustrlError(f"ONNX export needs the package {exc.name!r}: {_INSTALL_HINT}") from None


def _write_torchscript(module: DeterministicPolicy, path: Path) -> None:
    """Traced, not scripted: the distribution objects are Python, and tracing sees only their tensor ops."""
    with warnings.catch_warnings():  # torch deprecates TorchScript in favour of torch.export; the format still loads
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.trace(module, example_observations(module)), str(path))


def _write_onnx(module: DeterministicPolicy, path: Path) -> None:
    """Through ``torch.export`` (the exporter torch recommends, which needs ``onnxscript``), weights in the file."""
    with _quiet_exporter():
        program = torch.onnx.export(
            module, (example_observations(module),), dynamo=True, input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME], dynamic_shapes=({0: torch.export.Dim("batch")},), opset_version=ONNX_OPSET,
            external_data=False, verbose=False,
        )
    program.save(str(path), external_data=False)


@contextlib.contextmanager
def _quiet_exporter():
    """The exporter logs about packages a policy does not use (torchvision) and warns about its own internals;
    none of it is news to the user."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)

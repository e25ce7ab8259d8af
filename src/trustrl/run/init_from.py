"""A new run that starts from another run's policy (``run.init_from``, ``--init-from RUN[:TAG]``).

What carries over is what the policy needs to act as it did: its weights and the observation statistics it
was trained with (which go on updating), and the critic where its shape fits. Everything else -- the
optimiser's moments, the reward scaling, the step count, the random streams -- is the new run's own, so the
new run is its own config run from a trained starting point. The source is read once, at the start: the
new run's checkpoints hold everything its ``--resume`` needs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from trustrl import checkpoint
from trustrl.agent import check_compatible_spaces
from trustrl.config import toml_value
from trustrl.errors import CheckpointError

if TYPE_CHECKING:
    from trustrl.run.loop import Parts


def parse_source(text: str) -> tuple[Path, str]:
    """``RUN[:TAG]`` -> (run directory or record, checkpoint tag); the tag defaults to ``last``."""
    path, sep, tag = text.rpartition(":")
    if sep and not Path(text).exists():
        return Path(path), checkpoint.check_tag(tag)
    return Path(text), "last"


def start_from(parts: Parts, source: str) -> str:
    """Load the checkpoint ``source`` names into freshly built ``parts``; returns a note saying what was taken.

    Refused with one error, before anything is written: other spaces, a policy of another shape, or
    observation statistics the new config would not apply (``env.norm_obs`` differs).
    """
    path, tag = parse_source(source)
    record = checkpoint.load(path, tag)
    sampler, cfg = parts.sampler, parts.cfg
    check_compatible_spaces(record, sampler.observation_space, sampler.action_space)
    policy_misfit = _misfit(parts.policy, record.policy_state)
    if policy_misfit:
        raise CheckpointError(f"run.init_from {source}: its policy does not fit this run's "
                              f"({_differences(record.config, cfg.to_dict(), 'policy') or policy_misfit})")
    normalised = bool(record.obs_norm.get("enabled", False))
    if normalised != sampler.obs_norm.enabled:  # the normaliser built (off for images, whatever env.norm_obs says)
        raise CheckpointError(f"run.init_from {source}: env.norm_obs {toml_value(normalised)} vs "
                              f"{toml_value(sampler.obs_norm.enabled)} (the policy acts on observations normalised "
                              "as it was trained)")
    try:
        sampler.obs_norm.load_state(record.obs_norm)
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"checkpoint {record.path}: bad normalisation statistics ({exc})") from None
    sampler.obs_norm.clip = cfg.env.clip_obs
    parts.policy.load_state_dict(record.policy_state)
    critic_misfit = _misfit(parts.critic, record.critic_state)
    if not critic_misfit:
        parts.critic.load_state_dict(record.critic_state)
    taken = "policy, observation statistics and critic" if not critic_misfit else (
        f"policy and observation statistics; the critic starts afresh "
        f"({_differences(record.config, cfg.to_dict(), 'critic') or critic_misfit})")
    return f"started from {record.path} (step {record.step}): {taken}"


def _misfit(net: torch.nn.Module, state: dict[str, torch.Tensor]) -> str:
    """What of ``state`` does not fit ``net`` (a missing, extra or reshaped tensor), or ``""``."""
    own = net.state_dict()
    for key in sorted(set(own) | set(state)):
        if key not in state:
            return f"{key} missing"
        if key not in own:
            return f"{key} not in this network"
        if tuple(own[key].shape) != tuple(state[key].shape):
            return f"{key} {tuple(state[key].shape)} vs {tuple(own[key].shape)}"
    return ""


def _differences(source: dict, new: dict, section: str) -> str:
    """The keys of ``section`` whose values differ, ``section.key SOURCE vs NEW``, comma-separated."""
    old, now = source.get(section, {}), new.get(section, {})
    if not isinstance(old, dict):
        return ""
    return ", ".join(f"{section}.{key} {toml_value(old[key])} vs {toml_value(now[key])}"
                     for key in now if key in old and toml_value(old[key]) != toml_value(now[key]))

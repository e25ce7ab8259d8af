"""Reading Minari datasets: episodes, raw, with what they record about their behaviour policy.

Datasets live under the Minari root (``MINARI_DATASETS_PATH``, default
``~/.minari/datasets``); nothing is ever downloaded. An episode's ``infos``
may carry, aligned with its observations (entry t belongs to s_t; the last,
for the final observation, is NaN):

``behaviour_log_prob``
    log beta(a_t | s_t) of the stored action under the behaviour policy.
``behaviour_logits`` / ``behaviour_mean`` and ``behaviour_log_std``
    the behaviour distribution's parameters (Discrete, MultiDiscrete, MultiBinary / Box).
``behaviour_draw``
    Box actions: the Gaussian's draw before it was clipped to the bounds into the stored (executed) action;
    ``behaviour_log_prob`` is then the draw's log-density. Offline training learns from the draws: the
    draw, unlike the clipped action, has a density under every Gaussian, so pi/beta is an importance weight.

trustrl's own ``collect`` writes them (:mod:`trustrl.datasets.collect`);
another tool's dataset without them is still read. There, a Box action exactly on a bound was (most likely)
clipped there: offline training gives that coordinate the Gaussian's tail mass beyond the bound
(:func:`trustrl.distributions.censored_log_prob`), for pi and beta alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym
import numpy as np

from trustrl.datasets.replace import settle
from trustrl.envs import check_spaces, describe_spaces
from trustrl.errors import ConfigError, TrustrlError

LOG_PROB_KEY = "behaviour_log_prob"
PARAM_PREFIX = "behaviour_"
DRAW_KEY = "behaviour_draw"

@dataclass
class Episode:
    """One episode of a dataset, raw: ``observations`` has T+1 rows (the last is the final observation)."""

    observations: np.ndarray  # (T+1, obs_dim)
    actions: np.ndarray  # (T,) int (Discrete) or (T, act_dim)
    rewards: np.ndarray  # (T,)
    terminated: np.ndarray  # (T,) bool
    truncated: np.ndarray  # (T,) bool; an episode that just stops is marked truncated at its last step
    log_probs: np.ndarray | None  # (T,) behaviour log-probabilities, if recorded
    params: dict[str, np.ndarray] | None  # behaviour distribution parameters, (T, k) each, if recorded
    draws: np.ndarray | None = None  # (T, act_dim) Box actions before clipping, if recorded

    @property
    def length(self) -> int:
        return len(self.rewards)


@dataclass
class OfflineData:
    """A dataset read into memory, with what it knows about its behaviour policy."""

    dataset_id: str
    source: str  # where it was read from
    observation_space: gym.Space
    action_space: gym.Space
    episodes: list[Episode]

    @property
    def has_log_probs(self) -> bool:
        return all(ep.log_probs is not None for ep in self.episodes)

    @property
    def has_params(self) -> bool:
        return all(ep.params is not None for ep in self.episodes)

    @property
    def has_draws(self) -> bool:
        return all(ep.draws is not None for ep in self.episodes)

    @property
    def n_steps(self) -> int:
        return sum(ep.length for ep in self.episodes)

    @property
    def returns(self) -> np.ndarray:
        return np.array([ep.rewards.sum() for ep in self.episodes])


def open_dataset(spec: str | Path):
    """A local Minari dataset, by id under the Minari root or by path; never downloads."""
    import minari
    from minari.storage import get_dataset_path

    spec = str(spec)
    if valid_id(spec):
        settle(get_dataset_path(spec))  # a dataset an interrupted collect --overwrite set aside goes back first
    if valid_id(spec) and (get_dataset_path(spec) / "data" / "metadata.json").is_file():
        return _open(lambda: minari.load_dataset(spec, download=False), spec)
    path = Path(spec).expanduser()
    for data_dir in (path / "data", path):
        if (data_dir / "metadata.json").is_file():
            return _open(lambda: minari.MinariDataset(data_dir), spec)
    try:
        local = sorted(minari.list_local_datasets())
    except Exception:  # a damaged entry elsewhere under the root must not hide this message
        local = []
    listing = f"; local datasets: {', '.join(local)}" if local else "; there are no local datasets"
    raise TrustrlError(
        f"no Minari dataset {spec!r}: neither a dataset id under {get_dataset_path()} "
        f"(MINARI_DATASETS_PATH) nor a dataset directory{listing} (trustrl never downloads datasets)"
    )


def read_dataset(spec: str | Path) -> OfflineData:
    """Read a dataset's episodes and its behaviour log-probabilities / parameters when present; a truncated or
    corrupt file is one error naming the dataset."""
    dataset = open_dataset(spec)
    try:
        return _read(dataset, spec)
    except (OSError, ValueError, KeyError) as exc:  # h5py: OSError, KeyError; numpy: ValueError
        detail = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise TrustrlError(f"cannot read Minari dataset {str(spec)!r}: its data is truncated or corrupt "
                           f"({detail})") from None


def _read(dataset, spec: str | Path) -> OfflineData:
    obs_space, act_space = dataset.observation_space, dataset.action_space
    try:
        check_spaces(obs_space, act_space, f"dataset {dataset.id}")
    except ConfigError as exc:
        raise TrustrlError(str(exc)) from None
    episodes = []
    for ep in dataset.iterate_episodes():
        T = len(ep.rewards)
        obs = np.asarray(ep.observations, np.float64)
        if T == 0:
            continue
        check_episode(f"dataset {dataset.id}, episode {ep.id}", obs, ep, obs_space, act_space)
        terminated = np.asarray(ep.terminations, bool).copy()
        truncated = np.asarray(ep.truncations, bool).copy()
        if not (terminated[-1] or truncated[-1]):
            truncated[-1] = True  # an unfinished episode: bootstrap from its last observation
        infos = ep.infos or {}
        log_probs = _info(infos, LOG_PROB_KEY, T)
        params = {name: _info(infos, PARAM_PREFIX + name, T) for name in _param_names(act_space)}
        params = params if all(v is not None for v in params.values()) else None
        where = f"dataset {dataset.id}, episode {ep.id}"
        draws = _draws(where, infos, np.asarray(ep.actions), act_space) if log_probs is not None else None
        episodes.append(
            Episode(
                observations=obs,
                actions=np.asarray(ep.actions),
                rewards=np.asarray(ep.rewards, np.float64),
                terminated=terminated,
                truncated=truncated,
                log_probs=log_probs,
                params=params,
                draws=draws,
            )
        )
    if not episodes:
        raise TrustrlError(f"dataset {dataset.id} holds no steps")
    return OfflineData(dataset.id, str(spec), obs_space, act_space, episodes)


def check_episode(where: str, obs: np.ndarray, ep: Any, obs_space: gym.Space, act_space: gym.Space) -> None:
    """One TrustrlError, naming ``where`` (the dataset and episode), the field and the step, for an episode that
    would train on nonsense: fields of different lengths, a NaN or infinity, an action outside its space (a
    NaN found later surfaces as a non-finite critic or evaluation, far from its cause)."""
    rewards = np.asarray(ep.rewards)
    T = len(rewards)
    if obs.shape != (T + 1, *obs_space.shape):
        raise TrustrlError(f"{where}: observations has shape {obs.shape}; it needs {T + 1} rows (one more than "
                           f"rewards, {T}) of shape {obs_space.shape}")
    fields = {"actions": np.asarray(ep.actions), "terminations": np.asarray(ep.terminations),
              "truncations": np.asarray(ep.truncations)}
    for name, values in fields.items():
        if values.ndim == 0 or len(values) != T:
            raise TrustrlError(f"{where}: {name} has {values.shape[0] if values.ndim else 0} rows, rewards {T}: "
                               "each step needs one of each")
    for name, values in (("observations", obs), ("rewards", rewards), ("actions", fields["actions"])):
        if values.dtype.kind not in "biuf":
            raise TrustrlError(f"{where}: {name} must be numbers, got dtype {values.dtype}")
        bad = _first_step(~np.isfinite(values)) if values.dtype.kind == "f" else None
        if bad is not None:
            final = " (the final observation)" if name == "observations" and bad == T else ""
            raise TrustrlError(f"{where}: {name} at step {bad}{final} is not finite (NaN or infinity)")
    outside = _outside(act_space, fields["actions"])
    if outside is not None:
        raise TrustrlError(f"{where}: actions at step {outside} lie outside the action space {act_space}")


def _first_step(mask: np.ndarray) -> int | None:
    """The first row of ``mask`` (steps along its first axis) with any True, or None."""
    rows = mask.reshape(len(mask), -1).any(axis=1)
    return int(np.argmax(rows)) if rows.any() else None


def _outside(space: gym.Space, actions: np.ndarray) -> int | None:
    """The first step whose action a discrete space does not hold (Box actions may lie beyond the bounds:
    a Gaussian's draws before clipping), or None."""
    if isinstance(space, gym.spaces.Discrete):
        low, high = int(space.start), int(space.start + space.n) - 1
    elif isinstance(space, gym.spaces.MultiDiscrete):
        low, high = space.start, space.start + space.nvec - 1
    elif isinstance(space, gym.spaces.MultiBinary):
        low, high = 0, 1
    else:
        return None
    return _first_step((actions < low) | (actions > high) | (actions != np.round(actions)))


def _draws(where: str, infos: dict, actions: np.ndarray, space: gym.Space) -> np.ndarray | None:
    """The recorded draws behind Box actions, or None; draws that do not clip to the stored actions are an
    error (their log-probabilities would weigh actions that were never executed)."""
    if not isinstance(space, gym.spaces.Box) or DRAW_KEY not in infos:
        return None
    T = len(actions)
    draws = _info(infos, DRAW_KEY, T)
    if draws is None or draws.shape != (T, *space.shape):
        return None
    clipped = np.clip(draws.astype(np.float32), space.low, space.high)
    bad = _first_step(clipped != actions.reshape(clipped.shape).astype(np.float32))
    if bad is not None:
        raise TrustrlError(f"{where}: infos['{DRAW_KEY}'] at step {bad} does not clip to the stored action "
                           f"(the action space's bounds): the dataset's records disagree")
    return draws


def check_dataset_fits(data: OfflineData, env: gym.Env) -> None:
    """A dataset trains a policy only for an env with the same observation and action spaces."""
    have = describe_spaces(data.observation_space, data.action_space)
    want = describe_spaces(env.observation_space, env.action_space)
    if have != want:
        env_id = env.spec.id if env.spec else "the config's env"
        raise TrustrlError(f"dataset {data.dataset_id} has spaces {have}, but {env_id} has {want}")


def _open(load: Callable[[], Any], spec: str):
    try:
        return load()
    except (ValueError, OSError, KeyError) as exc:
        raise TrustrlError(f"cannot read Minari dataset {spec!r}: {exc}") from None


def _info(infos: dict, key: str, T: int) -> np.ndarray | None:
    if key not in infos:
        return None
    value = np.asarray(infos[key], np.float64)
    if value.shape[0] not in (T, T + 1):
        return None
    value = value[:T]
    return value if np.all(np.isfinite(value)) else None


def _param_names(action_space: gym.Space) -> tuple[str, ...]:
    return ("mean", "log_std") if isinstance(action_space, gym.spaces.Box) else ("logits",)


def valid_id(dataset_id: str) -> bool:
    from minari.dataset.minari_dataset import parse_dataset_id

    try:
        parse_dataset_id(dataset_id)
        return True
    except ValueError:
        return False

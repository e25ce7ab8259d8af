"""Collecting Minari datasets: roll out a checkpoint's policy (or a uniform one) and write what it did.

Observations are stored raw (unnormalised); for Box actions the stored action
is the one the env executed (clipped to the bounds), and ``infos`` keeps the
Gaussian's draw before clipping with the draw's log-probability: a clipped
action has no density, the draw does. Each episode's ``infos`` records the
behaviour policy's log-probability of each action (of each draw, for Box) and
its distribution parameters (see :mod:`trustrl.datasets.read`), so offline
training knows beta exactly. An episode of an env with no time limit is cut at
:data:`trustrl.episodes.EPISODE_STEP_CAP` steps and stored as truncated.
"""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from trustrl import checkpoint
from trustrl.agent import Agent, load
from trustrl.config import EnvConfig, check_count, check_seed
from trustrl.datasets.read import DRAW_KEY, LOG_PROB_KEY, PARAM_PREFIX, valid_id
from trustrl.datasets.replace import settle, staged, swap_in
from trustrl.display import NOT_RENDERING, gl_failures_explained
from trustrl.distributions import Bernoulli, Categorical, Distribution, MultiCategorical
from trustrl.envs import make_env
from trustrl.envs.checks import checked_reset, checked_step, close_env
from trustrl.episodes import step_cap
from trustrl.errors import TrustrlError
from trustrl.files import check_room, write_error
from trustrl.seeding import COLLECTION, reset_seed

#: How messages name the env a dataset is collected in.
COLLECTION_ENV = "collection env"


@dataclass
class CollectResult:
    dataset_id: str
    path: Path  # the dataset's directory under the Minari root
    episodes: int
    steps: int
    mean_return: float
    std_return: float
    behaviour: str  # "policy" or "random"


def collect(
    dataset_id: str,
    run: str | Path | None = None,
    *,
    episodes: int | None = None,
    steps: int | None = None,
    tag: str = "last",
    random: bool = False,
    env_id: str | None = None,
    seed: int = 0,
    overwrite: bool = False,
    env_kwargs: dict | None = None,
) -> CollectResult:
    """Roll out a checkpoint's policy (sampling, not its mode) or a uniform random policy; write a Minari dataset.

    Stops after ``episodes`` episodes, or after the episode during which
    ``steps`` steps were reached (whole episodes only). Episode i is reset
    with the seed of ``(seed, i)`` (:mod:`trustrl.seeding`), so datasets collected
    from neighbouring seeds share no episode. An existing dataset id is refused unless
    ``overwrite``; then the old one is replaced only once the new one is written.
    """
    _check_dataset_id(dataset_id)
    for note in settle(_dataset_dir(dataset_id)):  # what a killed collect left, before the id is looked at
        print(note, file=sys.stderr)
    target = _check_request(dataset_id, episodes, steps, seed, overwrite)
    loaded = None
    if run is not None:
        loaded = load(run, tag, env_id, env_kwargs)
        env_cfg = loaded.config.env
    elif random:
        if env_id is None:
            raise TrustrlError("collect --random needs --env ID (or a run directory whose env to use)")
        env_cfg = EnvConfig(id=env_id)
    else:
        raise TrustrlError("collect needs a run directory (its checkpoint's policy) or --random --env ID")
    with gl_failures_explained(NOT_RENDERING):
        env = make_env(env_cfg)
    try:
        if loaded is not None:
            loaded.check_env(env)
        action_space = env.action_space
        behaviour = _RandomBehaviour(action_space) if random else _PolicyBehaviour(loaded, action_space)
        buffers, returns = _roll_out(env, behaviour, episodes, steps, seed)
        description, extra = _provenance(env_cfg.id, None if random else loaded, tag, seed, len(buffers),
                                         isinstance(action_space, gym.spaces.Box))
        _write_dataset(dataset_id, buffers, env, overwrite, description, extra, random)
    finally:
        close_env(env, COLLECTION_ENV)
    return CollectResult(
        dataset_id=dataset_id,
        path=target,
        episodes=len(buffers),
        steps=int(sum(len(b.rewards) for b in buffers)),
        mean_return=float(np.mean(returns)),
        std_return=float(np.std(returns)),
        behaviour="random" if random else "policy",
    )


def _check_request(dataset_id: str, episodes: int | None, steps: int | None, seed: int, overwrite: bool) -> Path:
    """Where the dataset will be written, once the request is known to be valid (and not to replace one unasked)."""
    _check_dataset_id(dataset_id)
    if (episodes is None) == (steps is None):
        raise TrustrlError("collect needs exactly one of --episodes N or --steps N")
    if episodes is not None:
        check_count("--episodes", episodes, 10**6)
    if steps is not None:
        check_count("--steps", steps, 10**9)
    check_seed("--seed", seed)
    target = _dataset_dir(dataset_id)
    if target.exists() and not overwrite:
        raise TrustrlError(
            f"dataset {dataset_id} already exists at {target}; pass --overwrite to replace it or choose another id"
        )
    return target


def _provenance(env_id: str, loaded: Agent | None, tag: str, seed: int, episodes: int,
                box: bool) -> tuple[str, dict]:
    """The dataset's description and the metadata that say where it came from (``loaded`` None: random actions)."""
    source = "a uniform random policy" if loaded is None else (
        f"the {tag!r} checkpoint of {loaded.checkpoint.path.parent.parent} (step {loaded.checkpoint.step})"
    )
    description = (
        f"{episodes} episodes of {env_id} collected by trustrl from {source}, actions sampled. "
        f"infos['{LOG_PROB_KEY}'][t] = log beta(actions[t] | observations[t]); "
        f"infos['{PARAM_PREFIX}<param>'][t] = the behaviour distribution's parameters at observations[t] "
        "(logits, or mean and log_std); the last entry of each (the final observation) is NaN."
    )
    if loaded is not None and box:
        description += (f" Box actions: actions[t] is what the env executed, clipped to the bounds; "
                        f"infos['{DRAW_KEY}'][t] is the Gaussian draw before clipping, and "
                        f"infos['{LOG_PROB_KEY}'][t] the draw's log-density.")
    extra = {
        "behaviour": "random" if loaded is None else "policy",
        "checkpoint": None if loaded is None else str(loaded.checkpoint.path),
        "checkpoint_step": None if loaded is None else loaded.checkpoint.step,
        "seed": seed,
        "trustrl_version": checkpoint.versions()["trustrl"],
    }
    return description, extra


class _PolicyBehaviour:
    """Samples from a checkpoint's policy. A Box draw is clipped to the bounds for the env (and stored so);
    its log-probability is the draw's, which is recorded too (``params['draw']``)."""

    def __init__(self, loaded: Agent, action_space: gym.Space):
        self.loaded = loaded
        self.box = isinstance(action_space, gym.spaces.Box)
        self.space = action_space

    @torch.no_grad()
    def __call__(self, obs: np.ndarray) -> tuple[Any, float, dict[str, np.ndarray]]:
        x = torch.from_numpy(self.loaded.obs_norm.normalize(np.asarray(obs)[None]))
        dist = self.loaded.policy(x)
        draw = dist.sample()
        log_prob = float(dist.log_prob(draw)[0])
        params = {k: v[0].numpy().astype(np.float32) for k, v in dist.params().items()}
        action = draw
        if self.box:
            low = torch.as_tensor(self.space.low, dtype=draw.dtype)
            high = torch.as_tensor(self.space.high, dtype=draw.dtype)
            action = torch.maximum(torch.minimum(draw, high), low)
            params["draw"] = draw[0].numpy().astype(np.float32)
        return _stored(action[0], self.space), log_prob, params


def _stored(action: torch.Tensor, space: gym.Space) -> Any:
    """One action as the dataset stores it: a float32 vector (Box), an int (Discrete), or the space's dtype."""
    if isinstance(space, gym.spaces.Box):
        return action.numpy().astype(np.float32)
    if isinstance(space, gym.spaces.Discrete):
        return int(action)
    return action.numpy().astype(space.dtype)


def _uniform(space: gym.Space) -> Distribution:
    """Equal logits over a Discrete, MultiDiscrete or MultiBinary space's actions."""
    if isinstance(space, gym.spaces.MultiDiscrete):
        start = tuple(int(s) for s in space.start)
        return MultiCategorical(torch.zeros(1, int(space.nvec.sum())), tuple(int(n) for n in space.nvec), start)
    if isinstance(space, gym.spaces.MultiBinary):
        return Bernoulli(torch.zeros(1, int(space.shape[0])))
    return Categorical(torch.zeros(1, int(space.n)))


class _RandomBehaviour:
    """Uniform over the actions: equal logits for discrete spaces, or uniform on a bounded box."""

    def __init__(self, action_space: gym.Space):
        self.space = action_space
        if not isinstance(action_space, gym.spaces.Box):
            self.dist = _uniform(action_space)
        else:
            low, high = np.asarray(action_space.low, np.float64), np.asarray(action_space.high, np.float64)
            if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
                raise TrustrlError(f"collect --random needs a bounded action space, got {action_space}")
            self.low, self.width = low, high - low
            self.log_prob = float(-np.log(self.width).sum())

    def __call__(self, obs: np.ndarray) -> tuple[Any, float, dict[str, np.ndarray]]:
        if not isinstance(self.space, gym.spaces.Box):
            action = self.dist.sample()
            logits = self.dist.params()["logits"][0].numpy()
            return _stored(action[0], self.space), float(self.dist.log_prob(action)[0]), {"logits": logits}
        u = torch.rand(len(self.low), dtype=torch.float64).numpy()
        # no Gaussian parameters to record: offline training estimates beta's shape by maximum likelihood
        return (self.low + u * self.width).astype(np.float32), self.log_prob, {}


def _roll_out(env: gym.Env, behaviour, episodes: int | None, steps: int | None, seed: int):
    from minari.data_collector import EpisodeBuffer

    buffers, returns, total = [], [], 0
    obs_dtype = env.observation_space.dtype
    cap = step_cap(env)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        i = 0
        while (episodes is not None and i < episodes) or (steps is not None and total < steps):
            obs = checked_reset(env, COLLECTION_ENV, seed=reset_seed(seed, COLLECTION, i))
            observations, actions, rewards, terminations, truncations = [obs], [], [], [], []
            log_probs: list[float] = []
            params: dict[str, list[np.ndarray]] = {}
            done = False
            while not done:
                action, log_prob, dist_params = behaviour(obs)
                obs, reward, terminated, truncated, _ = checked_step(env, action, COLLECTION_ENV)
                truncated = truncated or len(rewards) + 1 == cap  # cut at the cap: truncated, as a time limit does
                done = terminated or truncated
                observations.append(obs)
                actions.append(action)
                rewards.append(float(reward))
                terminations.append(bool(terminated))
                truncations.append(bool(truncated))
                log_probs.append(log_prob)
                for k, v in dist_params.items():
                    params.setdefault(k, []).append(v)
            infos = {LOG_PROB_KEY: np.append(np.asarray(log_probs, np.float32), np.float32(np.nan))}
            for k, values in params.items():
                stacked = np.stack(values).astype(np.float32)
                infos[PARAM_PREFIX + k] = np.concatenate([stacked, np.full_like(stacked[:1], np.nan)])
            buffers.append(
                EpisodeBuffer(
                    id=i,
                    seed=reset_seed(seed, COLLECTION, i),
                    observations=np.asarray(observations, obs_dtype),
                    actions=np.asarray(actions),
                    rewards=np.asarray(rewards, np.float64),
                    terminations=np.asarray(terminations),
                    truncations=np.asarray(truncations),
                    infos=infos,
                )
            )
            returns.append(float(np.sum(rewards)))
            total += len(rewards)
            i += 1
    return buffers, returns


def _write_dataset(dataset_id, buffers, env, overwrite, description, extra, random) -> None:
    """Write a new dataset beside the one it replaces, then swap it in (:mod:`trustrl.datasets.replace`)."""
    import minari

    target = _dataset_dir(dataset_id)
    if target.exists() and not overwrite:
        raise TrustrlError(f"dataset {dataset_id} already exists at {target}; pass --overwrite to replace it")
    check_room(target.parent, _size_on_disk(buffers), f"the dataset {target}")
    with staged(dataset_id) as written:
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=r".*is set to None.*")  # author, permalink: none to give
                dataset = minari.create_dataset_from_buffers(
                    dataset_id,
                    buffers,
                    env=env,
                    eval_env=env,
                    observation_space=env.observation_space,
                    action_space=env.action_space,
                    algorithm_name="random" if random else "trustrl",
                    description=description,
                )
            dataset.storage.update_metadata({"trustrl": extra})
        except OSError as exc:  # a full disk, ulimit -f: nothing of the old dataset was touched
            raise write_error("the dataset", target, exc) from None
        swap_in(written, target)


def _size_on_disk(buffers) -> int:
    """About how many bytes Minari's HDF5 file of these episodes takes: their arrays, and some 24 KiB of
    HDF5 headers per episode (measured: 67 KB for 3 short CartPole episodes)."""
    arrays = sum(np.asarray(a).nbytes for b in buffers for a in (b.observations, b.actions, b.rewards,
                                                                 b.terminations, b.truncations))
    infos = sum(np.asarray(v).nbytes for b in buffers for v in (b.infos or {}).values())
    return int(1.25 * (arrays + infos)) + 24 * 1024 * len(buffers)


def _check_dataset_id(dataset_id: str) -> None:
    if not valid_id(dataset_id):
        raise TrustrlError(
            f"malformed dataset id {dataset_id!r}: Minari ids look like [namespace/]name-v<version>, "
            "e.g. cartpole/trpo-medium-v0"
        )


def _dataset_dir(dataset_id: str) -> Path:
    from minari.storage import get_dataset_path

    return Path(get_dataset_path(dataset_id))

"""Offline RL with Minari datasets: collect them, load them, and train from them with a trust region.

Datasets
--------
Datasets are Minari datasets (``minari[hdf5]``), so what trustrl collects can
be read by other tools and what others publish can be read by trustrl. They
live under the Minari root (``MINARI_DATASETS_PATH``, default
``~/.minari/datasets``); nothing is ever downloaded. Observations are stored
raw (unnormalised); for Box actions the stored action is the one the env
executed (clipped to the bounds). :func:`collect` adds per-step arrays to each
episode's ``infos``, of length T+1 and aligned with the observations as
Minari's own collector aligns infos (entry t belongs to state s_t; the last,
the final observation where no action was taken, is NaN):

``behaviour_log_prob``
    log beta(a_t | s_t) of the stored action under the behaviour policy
    (for Box actions: the Gaussian density at the stored, clipped action).
``behaviour_logits`` / ``behaviour_mean`` and ``behaviour_log_std``
    the behaviour distribution's parameters (Discrete / Box), so the trust
    region on KL(beta || pi) is exact.

Offline trust-region training
-----------------------------
Following reference notebook 000, TRPO's objective written with a behaviour
policy beta (Schulman et al. 2015, eq. 14, with the sampling distribution q = beta):

    maximise  L(pi) = E_{s, a ~ beta}[ w(s, a) * A_beta(s, a) ],  w = pi(a|s) / beta(a|s)
    s.t.      mean KL(beta || pi) <= offline.max_kl_behaviour     (stay where the data says something)
              mean KL(pi_old || pi_new) <= algo.max_kl            (per update, as online TRPO)

- A_beta: GAE over the dataset's episodes with a critic fitted to the
  dataset's lambda-returns (``offline.critic_rounds`` rounds, each
  recomputing its targets); a truncated episode bootstraps from V(its final
  observation). The data never change, so the advantages are computed once.
- beta: the distribution recorded with the data. A dataset without it is
  still usable: beta is estimated by maximum likelihood (behaviour cloning)
  first, and the log says so. The policy always starts from that
  maximum-likelihood fit, so it starts inside the trust region.
- Importance weights: ``self-normalised`` by default -- w / mean(w) over the
  batch (weighted importance sampling: biased by O(1/n), but bounded, and its
  gradient subtracts the surrogate's value as a baseline); or ``clipped`` at
  ``offline.weight_clip`` (a clipped weight passes no gradient). The KL(beta || pi)
  bound keeps weights near 1 either way; ``ess_fraction`` in metrics.csv shows
  how near (the effective sample size (sum w)^2 / sum w^2 over n).
- Each step is TRPO's: natural-gradient direction from conjugate gradient
  with the Fisher matrix of KL(pi_old || pi), full step to the per-update
  radius, and a backtracking line search that accepts the first fraction
  inside *both* trust regions with a positive surrogate improvement.
- Observation (and, with ``env.norm_reward``, reward) statistics are computed
  once from the dataset and frozen; they are saved in every checkpoint.
- Every ``offline.eval_every`` epochs the policy plays deterministic episodes
  in the env; ``best`` is the checkpoint with the best such evaluation.
"""

from __future__ import annotations

import heapq
import math
import os
import shutil
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from trustrl import checkpoint
from trustrl.config import Config, EnvConfig, TRPOConfig
from trustrl.envs import check_spaces, describe_spaces, make_env
from trustrl.errors import ConfigError, TrustrlError
from trustrl.evaluate import LoadedPolicy, check_compatible, load_policy, run_episodes
from trustrl.metrics import MetricsLogger
from trustrl.nets import Categorical, DiagGaussian, Distribution, Policy, make_critic, make_policy
from trustrl.normalization import ObsNormalizer, RewardScaler
from trustrl.rollout import Batch
from trustrl.trainer import compute_advantages, prepare_run_dir
from trustrl.trust_region import flat_grad, line_search, natural_gradient
from trustrl.value_fit import make_fitter

LOG_PROB_KEY = "behaviour_log_prob"
PARAM_PREFIX = "behaviour_"
#: Seeds of the online evaluation episodes during offline training (apart from ``trustrl eval``'s).
EVAL_SEED = 2_000_000


# --------------------------------------------------------------------------- collect


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
) -> CollectResult:
    """Roll out a checkpoint's policy (sampling, not its mode) or a uniform random policy; write a Minari dataset.

    Stops after ``episodes`` episodes, or after the episode during which
    ``steps`` steps were reached (whole episodes only). Episode i is reset
    with seed ``seed + i``. An existing dataset id is refused unless
    ``overwrite``; then the old one is replaced only once the new one is written.
    """
    _check_dataset_id(dataset_id)
    if (episodes is None) == (steps is None):
        raise TrustrlError("collect needs exactly one of --episodes N or --steps N")
    if (episodes is not None and episodes <= 0) or (steps is not None and steps <= 0):
        raise TrustrlError("--episodes / --steps must be > 0")
    target = _dataset_dir(dataset_id)
    if target.exists() and not overwrite:
        raise TrustrlError(
            f"dataset {dataset_id} already exists at {target}; pass --overwrite to replace it or choose another id"
        )

    loaded = None
    if run is not None:
        loaded = load_policy(run, tag)
        env_cfg = loaded.config.env
        if env_id is not None:
            env_cfg.id = env_id
    elif random:
        if env_id is None:
            raise TrustrlError("collect --random needs --env ID (or a run directory whose env to use)")
        env_cfg = EnvConfig(id=env_id)
    else:
        raise TrustrlError("collect needs a run directory (its checkpoint's policy) or --random --env ID")
    env = make_env(env_cfg)
    try:
        if loaded is not None:
            check_compatible(loaded.checkpoint, env)
        action_space = env.action_space
        behaviour = _RandomBehaviour(action_space) if random else _PolicyBehaviour(loaded, action_space)
        buffers, returns = _roll_out(env, behaviour, episodes, steps, seed)
        source = "a uniform random policy" if random else (
            f"the {tag!r} checkpoint of {loaded.checkpoint.path.parent.parent} (step {loaded.checkpoint.step})"
        )
        description = (
            f"{len(buffers)} episodes of {env_cfg.id} collected by trustrl from {source}, actions sampled. "
            f"infos['{LOG_PROB_KEY}'][t] = log beta(actions[t] | observations[t]); "
            f"infos['{PARAM_PREFIX}<param>'][t] = the behaviour distribution's parameters at observations[t] "
            "(logits, or mean and log_std); the last entry of each (the final observation) is NaN."
        )
        extra = {
            "behaviour": "random" if random else "policy",
            "checkpoint": None if random else str(loaded.checkpoint.path),
            "checkpoint_step": None if random else loaded.checkpoint.step,
            "seed": seed,
            "trustrl_version": checkpoint.versions()["trustrl"],
        }
        _write_dataset(dataset_id, buffers, env, overwrite, description, extra, random)
    finally:
        env.close()
    return CollectResult(
        dataset_id=dataset_id,
        path=target,
        episodes=len(buffers),
        steps=int(sum(len(b.rewards) for b in buffers)),
        mean_return=float(np.mean(returns)),
        std_return=float(np.std(returns)),
        behaviour="random" if random else "policy",
    )


class _PolicyBehaviour:
    """Samples from a checkpoint's policy; Box actions are clipped to the bounds before storing."""

    def __init__(self, loaded: LoadedPolicy, action_space: gym.Space):
        self.loaded = loaded
        self.box = isinstance(action_space, gym.spaces.Box)
        self.space = action_space

    @torch.no_grad()
    def __call__(self, obs: np.ndarray) -> tuple[Any, float, dict[str, np.ndarray]]:
        x = torch.from_numpy(self.loaded.obs_norm(np.asarray(obs)[None], update=False))
        dist = self.loaded.policy(x)
        action = dist.sample()
        if self.box:
            low = torch.as_tensor(self.space.low, dtype=action.dtype)
            high = torch.as_tensor(self.space.high, dtype=action.dtype)
            action = torch.maximum(torch.minimum(action, high), low)
        log_prob = float(dist.log_prob(action)[0])
        params = {k: v[0].numpy().astype(np.float32) for k, v in dist.params().items()}
        stored = action[0].numpy().astype(np.float32) if self.box else int(action[0])
        return stored, log_prob, params


class _RandomBehaviour:
    """Uniform over the actions: categorical with equal logits, or uniform on a bounded box."""

    def __init__(self, action_space: gym.Space):
        self.space = action_space
        if isinstance(action_space, gym.spaces.Discrete):
            self.dist = Categorical(torch.zeros(1, int(action_space.n)))
        else:
            low, high = np.asarray(action_space.low, np.float64), np.asarray(action_space.high, np.float64)
            if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
                raise TrustrlError(f"collect --random needs a bounded action space, got {action_space}")
            self.low, self.width = low, high - low
            self.log_prob = float(-np.log(self.width).sum())

    def __call__(self, obs: np.ndarray) -> tuple[Any, float, dict[str, np.ndarray]]:
        if isinstance(self.space, gym.spaces.Discrete):
            action = self.dist.sample()
            return int(action[0]), float(self.dist.log_prob(action)[0]), {"logits": self.dist.logits[0].numpy()}
        u = torch.rand(len(self.low), dtype=torch.float64).numpy()
        # no Gaussian parameters to record: offline training estimates beta's shape by maximum likelihood
        return (self.low + u * self.width).astype(np.float32), self.log_prob, {}


def _roll_out(env: gym.Env, behaviour, episodes: int | None, steps: int | None, seed: int):
    from minari.data_collector import EpisodeBuffer

    buffers, returns, total = [], [], 0
    obs_dtype = env.observation_space.dtype
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        i = 0
        while (episodes is not None and i < episodes) or (steps is not None and total < steps):
            obs, _ = env.reset(seed=seed + i)
            observations, actions, rewards, terminations, truncations = [obs], [], [], [], []
            log_probs: list[float] = []
            params: dict[str, list[np.ndarray]] = {}
            done = False
            while not done:
                action, log_prob, dist_params = behaviour(obs)
                obs, reward, terminated, truncated, _ = env.step(action)
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
                    seed=seed + i,
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
    """Write a new dataset; an existing one is set aside first and restored if writing fails."""
    import minari

    target = _dataset_dir(dataset_id)
    aside = None
    if target.exists():
        if not overwrite:
            raise TrustrlError(f"dataset {dataset_id} already exists at {target}; pass --overwrite to replace it")
        aside = target.with_name(f".{target.name}.replaced-{os.getpid()}")
        os.replace(target, aside)
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
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        if aside is not None:
            os.replace(aside, target)
        raise
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)


# --------------------------------------------------------------------------- load


@dataclass
class Episode:
    """One episode of a dataset, raw: ``observations`` has T+1 rows (the last is the final observation)."""

    observations: np.ndarray  # (T+1, obs_dim)
    actions: np.ndarray  # (T,) int or (T, act_dim) float
    rewards: np.ndarray  # (T,)
    terminated: np.ndarray  # (T,) bool
    truncated: np.ndarray  # (T,) bool; an episode that just stops is marked truncated at its last step
    log_probs: np.ndarray | None  # (T,) behaviour log-probabilities, if recorded
    params: dict[str, np.ndarray] | None  # behaviour distribution parameters, (T, k) each, if recorded

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
    if _valid_id(spec) and (get_dataset_path(spec) / "data" / "metadata.json").is_file():
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
    """Read a dataset's episodes and its behaviour log-probabilities / parameters when present."""
    dataset = open_dataset(spec)
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
        if obs.shape != (T + 1, *obs_space.shape):
            raise TrustrlError(
                f"dataset {dataset.id}, episode {ep.id}: expected {T + 1} observations of shape "
                f"{obs_space.shape}, got {obs.shape}"
            )
        terminated = np.asarray(ep.terminations, bool).copy()
        truncated = np.asarray(ep.truncations, bool).copy()
        if not (terminated[-1] or truncated[-1]):
            truncated[-1] = True  # an unfinished episode: bootstrap from its last observation
        infos = ep.infos or {}
        log_probs = _info(infos, LOG_PROB_KEY, T)
        params = {name: _info(infos, PARAM_PREFIX + name, T) for name in _param_names(act_space)}
        params = params if all(v is not None for v in params.values()) else None
        episodes.append(
            Episode(
                observations=obs,
                actions=np.asarray(ep.actions),
                rewards=np.asarray(ep.rewards, np.float64),
                terminated=terminated,
                truncated=truncated,
                log_probs=log_probs,
                params=params,
            )
        )
    if not episodes:
        raise TrustrlError(f"dataset {dataset.id} holds no steps")
    return OfflineData(dataset.id, str(spec), obs_space, act_space, episodes)


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
    return ("logits",) if isinstance(action_space, gym.spaces.Discrete) else ("mean", "log_std")


def _valid_id(dataset_id: str) -> bool:
    from minari.dataset.minari_dataset import parse_dataset_id

    try:
        parse_dataset_id(dataset_id)
        return True
    except ValueError:
        return False


def _check_dataset_id(dataset_id: str) -> None:
    if not _valid_id(dataset_id):
        raise TrustrlError(
            f"malformed dataset id {dataset_id!r}: Minari ids look like [namespace/]name-v<version>, "
            "e.g. cartpole/trpo-medium-v0"
        )


def _dataset_dir(dataset_id: str) -> Path:
    from minari.storage import get_dataset_path

    return Path(get_dataset_path(dataset_id))


# --------------------------------------------------------------------------- train


@dataclass
class OfflineResult:
    run_dir: Path
    dataset: str
    epochs: int  # epochs run: fewer than asked when it converged early
    transitions: int  # in the dataset
    episodes: int
    seconds: float
    behaviour_return: float  # mean episode return in the dataset
    behaviour_source: str  # "dataset" or "maximum likelihood"
    initial_return: float  # online evaluation of the starting (maximum-likelihood) policy
    best_return: float  # best online evaluation
    last_return: float  # online evaluation at the end
    notes: list[str] = field(default_factory=list)


@dataclass
class _Packed:
    """A dataset laid out as a T x N :class:`Batch` (episodes packed end to end in N columns)."""

    batch: Batch
    valid: Tensor  # (T*N,) bool: real transitions, not padding
    params: dict[str, Tensor]  # behaviour parameters, (T*N, k), when recorded
    log_probs: Tensor | None  # (T*N,) recorded behaviour log-probabilities


def train_offline(
    cfg: Config,
    run_dir: str | Path,
    *,
    dataset: str | None = None,
    overwrite: bool = False,
    progress: bool = True,
    command: list[str] | None = None,
    log: Callable[[str], None] | None = None,
) -> OfflineResult:
    """Train ``cfg``'s policy from a Minari dataset with the trust-region objective above.

    ``dataset`` (default ``cfg.offline.dataset``) is an id or a path. The run
    directory gets the same layout as an online run, so ``trustrl eval``,
    ``video`` and ``plot`` work on it; ``step`` in metrics.csv counts dataset
    transitions processed (epoch x dataset size), and ``episode_return_mean``
    is the online evaluation (empty between evaluations).
    """
    start = time.perf_counter()
    run_dir = Path(run_dir)
    log = log or (lambda msg: print(msg, file=sys.stderr))
    if dataset is not None:
        cfg.offline.dataset = str(dataset)
    cfg.validate()
    ocfg, algo = cfg.offline, cfg.algo
    if not ocfg.dataset:
        raise TrustrlError("offline training needs a dataset: --offline ID (or offline.dataset in the config)")
    if not isinstance(algo, TRPOConfig):
        raise ConfigError(f"offline training takes trust-region steps: algo.name must be trpo, got {algo.name!r}")
    torch.set_num_threads(cfg.run.torch_threads)
    torch.manual_seed(cfg.run.seed)
    generator = torch.Generator().manual_seed(cfg.run.seed)

    # Everything that can be refused is checked before the run directory is touched.
    env = make_env(cfg.env)
    try:
        data = read_dataset(ocfg.dataset)
        check_dataset_fits(data, env)
    except BaseException:
        env.close()
        raise
    prepare_run_dir(run_dir, overwrite)
    (run_dir / "config.toml").write_text(cfg.to_toml())
    (run_dir / "command.txt").write_text(" ".join(command if command is not None else sys.argv) + "\n")
    notes: list[str] = []

    def note(msg: str) -> None:
        notes.append(msg)
        log(msg)

    obs_space, act_space = env.observation_space, env.action_space
    obs_norm = ObsNormalizer(obs_space.shape, cfg.env.norm_obs, cfg.env.clip_obs)
    if obs_norm.enabled:
        obs_norm.rms.update(np.concatenate([ep.observations for ep in data.episodes]))
    obs_norm.frozen = True
    reward_scaler = _reward_scaler(data, cfg)
    packed = _pack(data, obs_norm, reward_scaler, columns=64, device=cfg.run.device)
    valid = packed.valid
    obs = packed.batch.flat("obs")[valid]
    actions = packed.batch.flat("actions")[valid]
    n = len(obs)
    behaviour_return = float(data.returns.mean())
    note(
        f"dataset {data.dataset_id}: {len(data.episodes)} episodes, {n} transitions, "
        f"behaviour return {behaviour_return:.1f} ± {float(data.returns.std()):.1f}"
    )

    policy = make_policy(obs_space, act_space, cfg.policy).to(cfg.run.device)
    critic = make_critic(obs_space, cfg.critic).to(cfg.run.device)
    bc_nll = _fit_max_likelihood(policy, obs, actions, ocfg, generator)
    with torch.no_grad():
        fitted = policy(obs).detach()
    if data.has_log_probs:
        beta_log_probs = packed.log_probs[valid]
        source = "dataset"
    else:
        beta_log_probs = fitted.log_prob(actions)
        source = "maximum likelihood"
        note("the dataset has no behaviour log-probabilities: estimated beta by maximum likelihood "
             f"({ocfg.bc_epochs} epochs, mean negative log-likelihood {bc_nll:.3f})")
    if data.has_params:
        beta = _distribution({k: v[valid] for k, v in packed.params.items()})
    else:
        beta = fitted
        if data.has_log_probs:
            note("the dataset has no behaviour distribution parameters: KL(beta || pi) uses beta's "
                 "maximum-likelihood estimate")

    fitter = make_fitter(critic, cfg.critic, generator)
    critic_stats: dict[str, float] = {}
    for _ in range(ocfg.critic_rounds):
        compute_advantages(packed.batch, critic, algo.gamma, algo.gae_lambda, normalize=False)
        critic_stats = fitter.fit(obs, packed.batch.flat("returns")[valid])
    compute_advantages(packed.batch, critic, algo.gamma, algo.gae_lambda, normalize=False)
    advantages = packed.batch.flat("advantages")[valid]
    if algo.normalize_advantage and n > 1:
        advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)

    eval_env = env
    spaces = describe_spaces(obs_space, act_space)
    actor = LoadedPolicy(policy, obs_norm, None, cfg)
    best = -math.inf

    def evaluate_online() -> tuple[float, float, float]:
        returns, lengths = run_episodes(actor, eval_env, ocfg.eval_episodes, EVAL_SEED, deterministic=True)
        return float(np.mean(returns)), float(np.std(returns)), float(np.mean(lengths))

    def save(tag: str, epoch: int, eval_return: float) -> None:
        checkpoint.save(
            run_dir / "checkpoints",
            tag,
            policy,
            critic,
            config=cfg.to_dict(),
            spaces=spaces,
            obs_norm=obs_norm.state(),
            reward_norm=reward_scaler.state(),
            step=epoch * n,
            update=epoch,
            extra={"eval_return_mean": eval_return, "dataset": data.dataset_id,
                   "behaviour_return_mean": behaviour_return, "behaviour_source": source},
        )

    minibatch = ocfg.minibatch or n
    logger = MetricsLogger(run_dir, ocfg.epochs * n, progress=progress)
    initial = last = math.nan
    epochs_run = 0
    try:
        for epoch in range(ocfg.epochs + 1):
            t0 = time.perf_counter()
            steps = []
            if epoch > 0:  # epoch 0 is the starting (maximum-likelihood) policy, evaluated only
                order = torch.randperm(n, generator=generator) if minibatch < n else torch.arange(n)
                for lo in range(0, n, minibatch):
                    idx = order[lo : lo + minibatch]
                    steps.append(
                        _trust_region_step(policy, obs[idx], actions[idx], advantages[idx],
                                           beta_log_probs[idx], beta[idx], algo, ocfg)
                    )
            t1 = time.perf_counter()
            # A full-batch step that the line search rejects leaves everything as it was, so every
            # later epoch would repeat it: the policy is as good as the trust regions allow.
            converged = bool(steps) and minibatch >= n and steps[-1]["line_search_accepted"] == 0.0
            final = epoch == ocfg.epochs or converged
            evaluated = epoch % ocfg.eval_every == 0 or final
            eval_mean = eval_std = eval_len = math.nan
            if evaluated:
                eval_mean, eval_std, eval_len = evaluate_online()
                last = eval_mean
                initial = eval_mean if epoch == 0 else initial
            t2 = time.perf_counter()
            if evaluated and eval_mean > best:
                best = eval_mean
                save("best", epoch, eval_mean)
            if epoch > 0 and (epoch % cfg.run.checkpoint_every == 0 or final):
                save("last", epoch, last)
            t3 = time.perf_counter()
            with torch.no_grad():
                dist = policy(obs)
                kl_behaviour = float(beta.kl(dist).mean())
                entropy = float(dist.entropy().mean())
            step_stats = {k: float(np.mean([s[k] for s in steps])) if steps else math.nan for k in _STEP_KEYS}
            logger.log(
                epoch * n,
                {
                    "epoch": epoch,
                    "episode_return_mean": eval_mean,
                    "eval_return_std": eval_std,
                    "episode_length_mean": eval_len,
                    "behaviour_return_mean": behaviour_return,
                    "kl_behaviour": kl_behaviour,
                    "entropy": entropy,
                    **step_stats,
                    "value_loss": critic_stats.get("value_loss", math.nan),
                    "explained_variance": critic_stats.get("explained_variance", math.nan),
                },
                {
                    "steps_per_s": (n / (t1 - t0)) if epoch > 0 else 0.0,
                    "elapsed_s": t3 - start,
                    "update_s": t1 - t0,
                    "eval_s": t2 - t1,
                    "checkpoint_s": t3 - t2,
                },
            )
            epochs_run = epoch
            if converged and epoch < ocfg.epochs:
                note(f"converged after {epoch} epochs: no step inside the trust regions improves the surrogate "
                     f"(KL(beta || pi) = {kl_behaviour:.3f} of {ocfg.max_kl_behaviour}); stopped early")
                break
    finally:
        logger.close()
        env.close()
    return OfflineResult(
        run_dir=run_dir,
        dataset=data.dataset_id,
        epochs=epochs_run,
        transitions=n,
        episodes=len(data.episodes),
        seconds=time.perf_counter() - start,
        behaviour_return=behaviour_return,
        behaviour_source=source,
        initial_return=initial,
        best_return=best,
        last_return=last,
        notes=notes,
    )


_STEP_KEYS = (
    "surrogate_improvement", "kl", "line_search_accepted", "line_search_backtracks", "step_fraction",
    "ess_fraction", "weight_max", "grad_norm", "cg_iterations",
)


def importance_weights(log_ratio: Tensor, scheme: str, clip: float) -> Tensor:
    """pi/beta from ``log pi - log beta``: ``self-normalised`` (w / mean w) or ``clipped`` (min(w, clip))."""
    w = log_ratio.clamp(-30.0, 30.0).exp()  # finite even for actions one policy all but excludes
    if scheme == "clipped":
        return w.clamp(max=clip)
    return w / w.mean()


def _trust_region_step(
    policy: Policy,
    obs: Tensor,
    actions: Tensor,
    advantages: Tensor,
    beta_log_probs: Tensor,
    beta: Distribution,
    algo: TRPOConfig,
    ocfg,
) -> dict[str, float]:
    """One TRPO step on the importance-weighted surrogate, inside both trust regions.

    Fisher-vector products use the whole (mini)batch (``algo.fvp_fraction`` is an online setting).
    """
    params = list(policy.parameters())
    with torch.no_grad():
        old = policy(obs).detach()

    def surrogate() -> Tensor:
        dist = policy(obs)
        w = importance_weights(dist.log_prob(actions) - beta_log_probs, ocfg.weights, ocfg.weight_clip)
        return (w * advantages).mean() + algo.entropy_coef * dist.entropy().mean()

    def constraint() -> Tensor:
        """Both trust regions as one number: <= 1 exactly when both KLs are within their radius."""
        dist = policy(obs)
        return torch.maximum(old.kl(dist).mean() / algo.max_kl, beta.kl(dist).mean() / ocfg.max_kl_behaviour)

    loss_grad = flat_grad(surrogate(), params)
    mean_kl = old.kl(policy(obs)).mean()
    direction, curvature, cg = natural_gradient(loss_grad, mean_kl, params, algo.damping, algo.cg_iters, algo.cg_tol)
    result = None
    if curvature > 0 and torch.isfinite(curvature):
        full_step = math.sqrt(2 * algo.max_kl / float(curvature)) * direction
        result = line_search(params, full_step, surrogate, constraint, 1.0, algo.backtrack_shrink, algo.backtrack_iters)
    with torch.no_grad():
        dist = policy(obs)
        w = (dist.log_prob(actions) - beta_log_probs).clamp(-30.0, 30.0).exp()
        kl = float(old.kl(dist).mean())
    return {
        "surrogate_improvement": result.improvement if result else 0.0,
        "kl": kl,
        "line_search_accepted": float(result.accepted) if result else 0.0,
        "line_search_backtracks": float(result.n_backtracks) if result else 0.0,
        "step_fraction": result.step_fraction if result else 0.0,
        "ess_fraction": float(w.sum() ** 2 / (w.pow(2).sum() * len(w))),
        "weight_max": float(w.max()),
        "grad_norm": float(loss_grad.norm()),
        "cg_iterations": float(cg.iterations),
    }


def _fit_max_likelihood(policy: Policy, obs: Tensor, actions: Tensor, ocfg, generator: torch.Generator) -> float:
    """Behaviour cloning: Adam on the mean negative log-likelihood of the dataset's actions."""
    optimizer = torch.optim.Adam(policy.parameters(), lr=ocfg.bc_lr)
    n = len(obs)
    for _ in range(ocfg.bc_epochs):
        order = torch.randperm(n, generator=generator)
        for lo in range(0, n, ocfg.bc_minibatch):
            idx = order[lo : lo + ocfg.bc_minibatch]
            loss = -policy(obs[idx]).log_prob(actions[idx]).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        return float(-policy(obs).log_prob(actions).mean())


def _distribution(params: dict[str, Tensor]) -> Distribution:
    if "logits" in params:
        return Categorical(params["logits"])
    return DiagGaussian(params["mean"], params["log_std"])


def _reward_scaler(data: OfflineData, cfg: Config) -> RewardScaler:
    """With ``env.norm_reward``: the running std of the discounted return over the dataset, then frozen."""
    scaler = RewardScaler(1, cfg.algo.gamma, cfg.env.norm_reward, cfg.env.clip_reward)
    if scaler.enabled:
        for ep in data.episodes:
            discounted = np.zeros(ep.length)
            running = 0.0
            for t, r in enumerate(ep.rewards):
                running = running * cfg.algo.gamma + r
                discounted[t] = running
            scaler.rms.update(discounted)
    scaler.frozen = True
    return scaler


def _pack(data: OfflineData, obs_norm: ObsNormalizer, reward_scaler: RewardScaler, columns: int,
          device: str = "cpu") -> _Packed:
    """Episodes end to end in ``columns`` columns of near-equal length (longest first, to the shortest column).

    Columns are padded at the bottom with terminated zero-reward steps, which
    the ``valid`` mask leaves out; every column's last real step ends an
    episode, so GAE never looks past it. The layout lets :func:`gae` run
    over T ~ n/columns rows instead of n.
    """
    episodes = data.episodes
    N = min(columns, len(episodes))
    heap = [(0, c) for c in range(N)]
    placement: list[list[int]] = [[] for _ in range(N)]
    for i in sorted(range(len(episodes)), key=lambda i: (-episodes[i].length, i)):
        length, c = heapq.heappop(heap)
        placement[c].append(i)
        heapq.heappush(heap, (length + episodes[i].length, c))
    T = max(length for length, _ in heap)
    obs_dim = episodes[0].observations.shape[1]
    discrete = isinstance(data.action_space, gym.spaces.Discrete)
    act_shape = () if discrete else data.action_space.shape

    obs = np.zeros((T, N, obs_dim), np.float32)
    act = np.zeros((T, N, *act_shape), np.int64 if discrete else np.float32)
    rew = np.zeros((T, N), np.float32)
    term = np.ones((T, N), bool)  # padding: terminated, so no value leaks into real steps
    trunc = np.zeros((T, N), bool)
    valid = np.zeros((T, N), bool)
    logp = np.zeros((T, N), np.float32)
    params = {}
    if data.has_params:
        params = {k: np.zeros((T, N, v.shape[1]), np.float32) for k, v in episodes[0].params.items()}
    final_obs, final_index = [], []
    for c, column in enumerate(placement):
        t = 0
        for i in column:
            ep = episodes[i]
            sl = slice(t, t + ep.length)
            obs[sl, c] = obs_norm(ep.observations[:-1], update=False)
            act[sl, c] = ep.actions.reshape(ep.length, *act_shape)
            rew[sl, c] = reward_scaler(ep.rewards, np.zeros(ep.length, bool))
            term[sl, c] = ep.terminated
            trunc[sl, c] = ep.truncated & ~ep.terminated
            valid[sl, c] = True
            if data.has_log_probs:
                logp[sl, c] = ep.log_probs
            for k in params:
                params[k][sl, c] = ep.params[k]
            for s in np.flatnonzero(trunc[sl, c]):
                # A truncated step bootstraps from the next observation, the episode's last one at its end.
                final_obs.append(ep.observations[s + 1])
                final_index.append((t + s, c))
            t += ep.length
    final = obs_norm(np.asarray(final_obs), update=False) if final_obs else np.empty((0, obs_dim), np.float32)
    to = lambda a: torch.from_numpy(a).to(device)  # noqa: E731
    batch = Batch(
        obs=to(obs),
        actions=to(act),
        log_probs=to(logp),
        rewards=to(rew),
        terminated=to(term),
        truncated=to(trunc),
        last_obs=torch.zeros(N, obs_dim, device=device),
        final_obs=to(np.asarray(final, np.float32)),
        final_index=torch.tensor(final_index, dtype=torch.long).reshape(-1, 2),
    )
    return _Packed(
        batch=batch,
        valid=to(valid.reshape(-1)),
        params={k: to(v.reshape(T * N, -1)) for k, v in params.items()},
        log_probs=to(logp.reshape(-1)) if data.has_log_probs else None,
    )

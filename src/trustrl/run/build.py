"""The parts of a run, built from its config: online (env copies, the config's algorithm) or from a dataset.

A builder makes the sampler, the algorithm and the evaluation schedule; anything that cannot be made --
a bad env, a dataset that does not fit -- fails here, before the run directory is touched.
"""

from __future__ import annotations

from typing import Callable

from trustrl.algos import make_algorithm, make_offline_algorithm
from trustrl.algos.offline_trpo import censoring_bounds
from trustrl.config import Config
from trustrl.datasets.read import check_dataset_fits, read_dataset
from trustrl.display import NOT_RENDERING, gl_failures_explained
from trustrl.envs import make_env
from trustrl.envs.checks import close_env
from trustrl.envs.observations import image_layout
from trustrl.errors import ConfigError
from trustrl.normalization import ObsNormalizer, RewardScaler
from trustrl.run.evaluation import Evaluator
from trustrl.run.loop import Parts
from trustrl.samplers.asynchronous import AsyncSampler
from trustrl.samplers.dataset import DatasetSampler
from trustrl.samplers.placement import make_pool
from trustrl.samplers.vector import VectorSampler
from trustrl.samplers.vine import VineSampler
from trustrl.video import check_can_render

#: (cfg, policy_factory, log) -> Parts, where policy_factory(obs_space, act_space) -> (policy, critic, generator).
Builder = Callable[..., Parts]


@gl_failures_explained(NOT_RENDERING)
def online(cfg: Config, policy_factory, log) -> Parts:
    pool = make_pool(cfg.env, cfg.run.workers, cfg.run.placement, cfg.run.worker_cpus)
    try:
        if cfg.run.video_every:
            check_can_render(cfg.env)
        obs_space, act_space = pool.observation_space, pool.action_space
        policy, critic, generator = policy_factory(obs_space, act_space)
        sampler = trunk = VectorSampler(
            pool,
            obs_normalizer(obs_space, cfg),
            RewardScaler(cfg.env.n_envs, cfg.algo.gamma, cfg.env.norm_reward, cfg.env.clip_reward),
            cfg.run.n_steps,
            cfg.run.seed,
            cfg.run.device,
            cfg.env.norm_obs_steps,
        )
        if cfg.run.sampling == "vine":
            check_can_branch(pool)
            sampler = VineSampler(trunk, cfg.vine, cfg.run.seed)
        elif cfg.run.async_sampling:
            sampler = AsyncSampler(trunk)
        algo = make_algorithm(cfg, policy, critic, generator)
        every = cfg.run.eval_every
        vine = cfg.run.sampling == "vine"
        batch = sampler.steps_per_update if vine else cfg.batch_size
        evaluator = Evaluator(cfg, cfg.run.eval_episodes) if every else None
    except BaseException:
        pool.close()
        raise
    rounded = None if vine else rounding_note(cfg.run.total_steps, batch)
    return Parts(
        cfg=cfg, sampler=sampler, policy=policy, critic=critic, algo=algo,
        generator=generator, n_updates=whole_batches(cfg.run.total_steps, batch),
        steps_per_update=batch, budget=cfg.run.total_steps if vine else None, evaluator=evaluator,
        eval_due=lambda update, before, step: every > 0 and step // every > before // every,
        extra={}, start_notes=[rounded] if rounded else [], log=log,
    )  # fmt: skip


def obs_normalizer(obs_space, cfg: Config) -> ObsNormalizer:
    """The running observation normaliser -- off for images, whose encoder scales the pixels to [0, 1]
    instead (:mod:`trustrl.encoders`): it keeps no per-pixel statistics, whatever ``env.norm_obs`` says."""
    if image_layout(obs_space) is not None:
        return ObsNormalizer((), enabled=False, clip=cfg.env.clip_obs)
    return ObsNormalizer(obs_space.shape, cfg.env.norm_obs, cfg.env.clip_obs)


def whole_batches(total_steps: int, batch: int) -> int:
    """Updates of a run: an update learns from a whole batch, so the steps are rounded down to whole batches
    (at least one)."""
    return max(1, total_steps // batch)


def rounding_note(total_steps: int, batch: int) -> str | None:
    """One line saying that ``total_steps`` is not what runs, because it is not a whole number of batches."""
    updates = whole_batches(total_steps, batch)
    if updates * batch == total_steps:
        return None
    return (f"note: run.total_steps {total_steps} is run as {updates} update{'s' if updates > 1 else ''} of "
            f"{batch} steps (run.n_steps x env.n_envs) = {updates * batch} steps")


def check_can_branch(pool) -> None:
    """Vine sampling restores env copies to branch from them: an env whose state cannot be captured is refused
    here, before anything is written."""
    try:
        pool.call("snapshot")
    except ConfigError as exc:
        raise ConfigError(f"run.sampling = 'vine' needs env states it can restore: {exc}") from None


@gl_failures_explained(NOT_RENDERING)
def offline(cfg: Config, policy_factory, log) -> Parts:
    env = make_env(cfg.env)
    try:
        data = read_dataset(cfg.offline.dataset)
        check_dataset_fits(data, env)
        obs_space, act_space = env.observation_space, env.action_space
    finally:
        close_env(env, "the env")
    policy, critic, generator = policy_factory(obs_space, act_space)
    sampler = DatasetSampler(
        data,
        obs_normalizer(obs_space, cfg),
        RewardScaler(1, cfg.algo.gamma, cfg.env.norm_reward, cfg.env.clip_reward),
        columns=64,
        device=cfg.run.device,
    )
    # executed Box actions, without the draws behind them, are censored at the bounds they were clipped to
    censor_at = None if data.has_draws else censoring_bounds(act_space, cfg.run.device)
    algo = make_offline_algorithm(cfg, policy, critic, generator, sampler.behaviour_return, censor_at)
    message = (f"dataset {data.dataset_id}: {len(data.episodes)} episodes, {data.n_steps} transitions, "
               f"behaviour return {sampler.behaviour_return:.1f} ± {float(data.returns.std()):.1f}")
    log(message)
    every = cfg.offline.eval_every
    return Parts(
        cfg=cfg, sampler=sampler, policy=policy, critic=critic, algo=algo, generator=generator,
        n_updates=cfg.offline.epochs, steps_per_update=data.n_steps,
        evaluator=Evaluator(cfg, cfg.offline.eval_episodes),
        eval_due=lambda update, before, step: update % every == 0,
        extra={"dataset": data.dataset_id, "episodes": len(data.episodes), "transitions": data.n_steps,
               "behaviour_return_mean": sampler.behaviour_return},
        notes=[message], log=log,
    )  # fmt: skip

"""The Python API: what the command line does, from your own code (the command line calls these).

    import trustrl

    run = trustrl.train("cartpole-trpo", seed=0, total_steps=50_000, run_dir="runs/c0")
    agent = trustrl.load("runs/c0", checkpoint="best")
    action = agent.act(obs)               # a raw observation in, an action within the bounds out
    print(trustrl.evaluate(agent, episodes=10).mean_return)
    trustrl.export("runs/c0", "policy.onnx", format="onnx")   # the deterministic policy, normaliser inside
    trustrl.train(my_config, env=lambda: MyEnv(level=3))   # an env of your own, made by a function
    trustrl.resume("runs/c0", total_steps=100_000)          # the same run, carried on
    trustrl.train("cartpole-ppo", init_from="runs/c0:best")  # a new run from that run's policy
    trustrl.train("cartpole-trpo", callbacks=[StopAtReturn(475.0), SaveEvery(10_000)])  # trustrl.callbacks

An env is named as the command line names it -- a gymnasium id, ``module:Id``
-- or given as a function that makes one. The run's config records the id a
function was registered under (``trustrl-factory/<name>``), so loading or
resuming that run in another process needs the same function again
(``load(run, env=make)``, ``resume(run, env=make)``).

A callback is called after each update with the step, the metrics row just written and the agent as it is
now; a truthy return stops the run, which is then saved, evaluated and resumable as if it had ended there
(:mod:`trustrl.callbacks`).
"""

from __future__ import annotations

import copy
import sys
import time
from pathlib import Path
from typing import Sequence

from trustrl import arguments
from trustrl import config as config_mod
from trustrl.agent import Agent, EnvFactory, EnvSpec, load
from trustrl.callbacks import Callback
from trustrl.config import Config
from trustrl.envs.registry import check_env_id, register_factory
from trustrl.episodes import DEFAULT_EVAL_SEED, EvalResult, evaluate_agent
from trustrl.errors import ConfigError, TrustrlError
from trustrl.exporting import check_output, export_module
from trustrl.run import TrainResult
from trustrl.run import resume as _resume
from trustrl.run import train as _train


def train(
    config: str | Path | Config | None = None,
    *,
    env: EnvSpec | None = None,
    algo: str | None = None,
    seed: int | None = None,
    total_steps: int | None = None,
    epochs: int | None = None,
    offline: str | Path | None = None,
    init_from: str | Path | None = None,
    overrides: Sequence[str] = (),
    run_dir: str | Path | None = None,
    overwrite: bool = False,
    progress: bool | float = True,
    command: Sequence[str] | None = None,
    callbacks: Sequence[Callback] = (),
) -> TrainResult:
    """Train a policy and write its run directory; returns what ``trustrl train`` prints.

    The config is made by :func:`build_config` from ``config``, ``env``, ``algo``, ``seed``,
    ``total_steps``, ``epochs``, ``offline``, ``init_from`` and ``overrides``. With ``offline.dataset`` set (``offline``
    sets it) the policy learns from that Minari dataset, otherwise in the env. ``run_dir`` defaults to
    ``runs/<name>-s<seed>-<time>``; ``overwrite`` replaces a run already there. ``progress``: a bar on a
    terminal, else a line every 30 s; a number of seconds sets that interval; False: nothing.
    ``command`` is what ``command.txt`` records (default: this process's command line). ``callbacks``: each
    is called after every update and may stop the run (:mod:`trustrl.callbacks`).
    """
    if run_dir is not None:
        run_dir = arguments.path("run_dir", run_dir)
    overwrite, progress = arguments.flag("overwrite", overwrite), arguments.progress(progress)
    command, callbacks = _command(command), _callbacks(callbacks)
    cfg = build_config(config, env=env, algo=algo, seed=seed, total_steps=total_steps, epochs=epochs,
                       offline=offline, init_from=init_from, overrides=overrides)
    if run_dir is None:
        run_dir = Path("runs") / f"{cfg.name}-s{cfg.run.seed}-{time.strftime('%Y%m%d-%H%M%S')}"
    return _train(cfg, run_dir, overwrite=overwrite, progress=progress, command=command, callbacks=callbacks)


def resume(
    run_dir: str | Path,
    *,
    total_steps: int | None = None,
    epochs: int | None = None,
    layout: Sequence[str] = (),
    env_kwargs: dict | None = None,
    env: EnvFactory | None = None,
    callbacks: Sequence[Callback] = (),
    progress: bool | float = True,
    command: Sequence[str] | None = None,
) -> TrainResult:
    """Continue a stopped (or killed) run from its ``last`` checkpoint, in its own directory and config.

    ``total_steps`` (online) or ``epochs`` (offline) extends it. ``layout``: ``"run.workers=4"``,
    ``"run.placement=ray"`` or ``"run.worker_cpus=0.5"`` strings, which move the env copies elsewhere and
    change no number. ``env_kwargs``: a saved env kwarg that names a file is used only when given here
    again, with the same value. ``env``: for a run whose env a function made, that function again (the run
    cannot be resumed without it in a process that has not registered it). ``callbacks``: as for
    :func:`train`. Where the env's state could be saved the continuation is bit-for-bit the run that never
    stopped; otherwise a note says it continues with fresh episodes.
    """
    if env is not None and (isinstance(env, str) or not callable(env)):
        raise TrustrlError(f"resume keeps the run's env: env= takes only the function that made it, not {env!r}")
    return _resume(arguments.path("run_dir", run_dir), total_steps=arguments.integer("total_steps", total_steps),
                   epochs=arguments.integer("epochs", epochs),
                   layout=arguments.strings("layout", layout, "run.workers=4"),
                   env_kwargs=arguments.mapping("env_kwargs", env_kwargs), env=env, callbacks=_callbacks(callbacks),
                   progress=arguments.progress(progress), command=_command(command))


def evaluate(
    agent: Agent | str | Path,
    episodes: int = 10,
    *,
    seed: int = DEFAULT_EVAL_SEED,
    deterministic: bool = True,
    checkpoint: str = "last",
    env: EnvSpec | None = None,
    env_kwargs: dict | None = None,
    render: bool = False,
) -> EvalResult:
    """Play ``episodes`` whole episodes and report their returns (episode ``i`` reset with a seed hashed from
    ``(seed, i)``: the same ``seed`` plays the same episodes, and neighbouring seeds share none).

    ``agent`` is an :class:`Agent` or a run directory (then ``checkpoint`` picks which, and ``env_kwargs``
    go over the saved ones as for :func:`load`). ``env`` evaluates in another env, or names the function
    that made the run's env. ``render`` shows the episodes in a window.
    """
    episodes, seed = arguments.integer("episodes", episodes), arguments.integer("seed", seed)
    deterministic, render = arguments.flag("deterministic", deterministic), arguments.flag("render", render)
    if not isinstance(agent, Agent):
        agent = load(_run_of(agent), checkpoint, env, env_kwargs)
    elif env is not None or env_kwargs:
        agent = _in_env(agent, env, arguments.mapping("env_kwargs", env_kwargs) or {})
    return evaluate_agent(agent, episodes, seed, deterministic, render)


def export(
    agent: Agent | str | Path,
    out: str | Path,
    format: str,
    *,
    checkpoint: str = "last",
    overwrite: bool = False,
    env: EnvSpec | None = None,
    env_kwargs: dict | None = None,
) -> Path:
    """Write an agent's deterministic policy to ``out`` as ``"onnx"`` or ``"torchscript"`` (``.onnx`` / ``.pt``):
    raw observations ``(B, obs_dim)`` in, what ``Agent.act(obs, deterministic=True)`` gives out (see
    :meth:`Agent.to_torch`). ``agent`` is an :class:`Agent` or a run directory (then ``checkpoint``, ``env``
    and ``env_kwargs`` as for :func:`load`). An existing ``out`` is kept unless ``overwrite``. Returns ``out``.
    """
    out, overwrite = arguments.path("out", out), arguments.flag("overwrite", overwrite)
    check_output(out, format, overwrite)  # before the checkpoint is read
    if not isinstance(agent, Agent):
        agent = load(_run_of(agent), checkpoint, env, env_kwargs)
    return export_module(agent.to_torch(), out, format, overwrite)


def build_config(
    config: str | Path | Config | None = None,
    *,
    env: EnvSpec | None = None,
    algo: str | None = None,
    seed: int | None = None,
    total_steps: int | None = None,
    epochs: int | None = None,
    offline: str | Path | None = None,
    init_from: str | Path | None = None,
    overrides: Sequence[str] = (),
) -> Config:
    """The validated config :func:`train` would run.

    ``config`` is a preset name, a .toml file, an env id or a :class:`Config` (None: the defaults for
    ``env``; a Config given is not changed). ``env`` replaces the config's env: an id, or a function that
    makes the env. ``overrides`` are ``"section.key=value"`` strings, as ``--set`` takes them; ``seed``,
    ``total_steps``, ``epochs`` (passes over a dataset) and ``offline`` (a Minari dataset id or path) are
    set over them. ``init_from`` (``"runs/x"``, ``"runs/x:best"``, ``"runs/x:step-N"``) starts the new run from
    that checkpoint's policy (``run.init_from``).
    """
    overrides = arguments.strings("overrides", overrides, "algo.max_kl=0.02")
    if offline is not None:
        offline = arguments.dataset(offline)
    env_id = _register(env) if env is not None else None
    cfg = _resolve(config, env_id, algo, overrides)
    if seed is not None:
        cfg.run.seed = arguments.integer("run.seed", seed)
    if total_steps is not None:
        cfg.run.total_steps = arguments.integer("run.total_steps", total_steps)
    if epochs is not None:
        cfg.offline.epochs = arguments.integer("offline.epochs", epochs)
    if offline is not None:
        cfg.offline.dataset = offline
    if init_from is not None:
        if not isinstance(init_from, (str, Path)):
            raise ConfigError(f"init_from must be a run directory (optionally with :last, :best or :step-N), "
                              f"got {init_from!r}")
        cfg.run.init_from = str(init_from)
    cfg.validate()
    if epochs is not None and not cfg.offline.dataset:
        raise TrustrlError("--epochs counts passes over a dataset: it needs --offline DATASET")
    return cfg


def _resolve(config: str | Path | Config | None, env_id: str | None, algo: str | None,
             overrides: list[str]) -> Config:
    """``config`` as a Config of its own, its env replaced by ``env_id`` before ``overrides`` apply."""
    if isinstance(config, Config):
        data = copy.deepcopy(config.to_dict())
        if algo is not None and data["algo"]["name"] != algo:
            raise TrustrlError(f"the config is a {data['algo']['name']} config; it cannot be switched to {algo}")
        if env_id is not None:
            data["env"]["id"] = env_id
        return config_mod.with_overrides(data, overrides, source="the config")
    if config is None:
        if env_id is None:
            raise TrustrlError("train needs a config (a preset, a .toml file, a Config) or an env")
        return config_mod.load(env_id, overrides, algo=algo)
    if not isinstance(config, (str, Path)):
        raise TrustrlError(f"config must be a preset name, a .toml path or a trustrl.Config, not {type(config).__name__}")
    if env_id is None:
        return config_mod.load(str(config), overrides, algo=algo)
    data = config_mod.load(str(config), (), algo=algo).to_dict()
    data["env"]["id"] = env_id  # the env replaced first, so overrides of env.* apply to it
    return config_mod.with_overrides(data, overrides, source=str(config))


def _in_env(agent: Agent, env: EnvSpec | None, env_kwargs: dict) -> Agent:
    """A copy of ``agent`` that acts in ``env`` (its spaces are checked when the env is made), with ``env_kwargs``."""
    agent = copy.copy(agent)
    agent.config = copy.deepcopy(agent.config)
    if env is not None:
        agent.config.env.id = _register(env)
        check_env_id(agent.config.env.id, agent.config.env.imports)
    agent.config.env.kwargs = {**agent.config.env.kwargs, **env_kwargs}
    return agent


def _register(env: EnvSpec) -> str:
    """The id of ``env``: an id as it is, a function registered with gymnasium."""
    if isinstance(env, str):
        return env
    return register_factory(env)


def _run_of(agent: object) -> Path:
    """The run directory (or checkpoint record) ``agent`` names, when it is not an :class:`Agent`."""
    if isinstance(agent, str | Path) and str(agent).strip():
        return Path(agent)
    raise TrustrlError(f"agent must be an Agent or a run directory, got {type(agent).__name__}")


def _callbacks(callbacks: Sequence[Callback]) -> list[Callback]:
    """The callbacks as a list, each checked to be callable (a bad one fails before the run starts)."""
    if callable(callbacks):
        callbacks = [callbacks]
    if isinstance(callbacks, (str, bytes)) or not isinstance(callbacks, Sequence):
        raise TrustrlError(f"callbacks must be a list of functions, got {type(callbacks).__name__}")
    for callback in callbacks:
        if not callable(callback):
            raise TrustrlError(f"a callback must be a function of (step, metrics, agent), got {callback!r}")
    return list(callbacks)


def _command(command: Sequence[str] | None) -> list[str]:
    """What the run's command.txt records: the command given, or this process's command line."""
    command = arguments.command(command)
    return [sys.executable, *sys.argv] if command is None else command


__all__ = ["Agent", "DEFAULT_EVAL_SEED", "EnvFactory", "EnvSpec", "EvalResult", "TrainResult", "build_config",
           "evaluate", "export", "load", "resume", "train"]

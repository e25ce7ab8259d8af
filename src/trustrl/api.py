"""The Python API: what the command line does, from your own code.

    import trustrl

    run = trustrl.train("cartpole-trpo", seed=0, total_steps=50_000, run_dir="runs/c0")
    agent = trustrl.load("runs/c0", checkpoint="best")
    action = agent.act(obs)               # a raw observation in, an action within the bounds out
    print(trustrl.evaluate(agent, episodes=10).mean_return)
    trustrl.train(my_config, env=lambda: MyEnv(level=3))   # an env of your own, made by a function

An env is named as the command line names it -- a gymnasium id, ``module:Id``
-- or given as a function that makes one. The run's config records the id a
function was registered under (``trustrl-factory/<name>``), so loading that run
in another process needs the same function again (``load(run, env=make)``).
"""

from __future__ import annotations

import copy
import sys
import time
from pathlib import Path
from typing import Sequence

from trustrl import config as config_mod
from trustrl.agent import Agent, EnvFactory, EnvSpec, load
from trustrl.config import Config
from trustrl.envs import register_factory
from trustrl.episodes import DEFAULT_EVAL_SEED, EvalResult, evaluate_agent
from trustrl.errors import TrustrlError
from trustrl.run.train import TrainResult
from trustrl.run.train import train as _train


def train(
    config: str | Path | Config | None = None,
    *,
    env: EnvSpec | None = None,
    algo: str | None = None,
    seed: int | None = None,
    total_steps: int | None = None,
    overrides: Sequence[str] = (),
    run_dir: str | Path | None = None,
    overwrite: bool = False,
    progress: bool | float = True,
) -> TrainResult:
    """Train a policy and write its run directory; returns what ``trustrl train`` prints.

    ``config`` is a preset name, a .toml file, an env id or a :class:`Config` (None: the defaults for
    ``env``). ``env`` replaces the config's env: an id, or a function that makes the env. ``overrides``
    are ``"section.key=value"`` strings, as ``--set`` takes them. ``run_dir`` defaults to
    ``runs/<name>-s<seed>-<time>``.
    """
    env_id = _register(env) if env is not None else None
    overrides = list(overrides)
    if seed is not None:
        overrides.append(f"run.seed={seed}")
    if total_steps is not None:
        overrides.append(f"run.total_steps={total_steps}")
    if isinstance(config, Config):
        data = copy.deepcopy(config.to_dict())
        if algo is not None and data["algo"]["name"] != algo:
            raise TrustrlError(f"the config is a {data['algo']['name']} config; it cannot be switched to {algo}")
        if env_id is not None:
            data["env"]["id"] = env_id
        cfg = config_mod.with_overrides(data, overrides, source="the config")
    elif config is None:
        if env_id is None:
            raise TrustrlError("train needs a config (a preset, a .toml file, a Config) or an env")
        cfg = config_mod.load(env_id, overrides, algo=algo)
    elif isinstance(config, (str, Path)):
        cfg = config_mod.load(str(config), overrides if env_id is None else (), algo=algo)
        if env_id is not None:  # the env replaced first, so overrides of env.* apply to it
            data = cfg.to_dict()
            data["env"]["id"] = env_id
            cfg = config_mod.with_overrides(data, overrides, source=str(config))
    else:
        raise TrustrlError(f"config must be a preset name, a .toml path or a trustrl.Config, not {type(config).__name__}")
    if run_dir is None:
        run_dir = Path("runs") / f"{cfg.name}-s{cfg.run.seed}-{time.strftime('%Y%m%d-%H%M%S')}"
    return _train(cfg, Path(run_dir), overwrite=overwrite, progress=progress, command=[sys.executable, *sys.argv])


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
    """Play ``episodes`` whole episodes (reset seeds ``seed``, ``seed + 1``, ...) and report their returns.

    ``agent`` is an :class:`Agent` or a run directory (then ``checkpoint`` picks which, and ``env_kwargs``
    go over the saved ones as for :func:`load`). ``env`` evaluates in another env, or names the function
    that made the run's env. ``render`` shows the episodes in a window.
    """
    if not isinstance(agent, Agent):
        agent = load(agent, checkpoint, env, env_kwargs)
    elif env is not None or env_kwargs:
        agent = _in_env(agent, env, env_kwargs or {})
    return evaluate_agent(agent, episodes, seed, deterministic, render)


def _in_env(agent: Agent, env: EnvSpec | None, env_kwargs: dict) -> Agent:
    """A copy of ``agent`` that acts in ``env`` (its spaces are checked when the env is made), with ``env_kwargs``."""
    agent = copy.copy(agent)
    agent.config = copy.deepcopy(agent.config)
    if env is not None:
        agent.config.env.id = _register(env)
        config_mod.check_env_id(agent.config.env.id, agent.config.env.imports)
    agent.config.env.kwargs = {**agent.config.env.kwargs, **env_kwargs}
    return agent


def _register(env: EnvSpec) -> str:
    """The id of ``env``: an id as it is, a function registered with gymnasium."""
    if isinstance(env, str):
        return env
    return register_factory(env)


__all__ = ["Agent", "DEFAULT_EVAL_SEED", "EnvFactory", "EnvSpec", "EvalResult", "TrainResult", "evaluate", "load", "train"]

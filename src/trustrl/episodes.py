"""Playing whole episodes with an agent, and evaluating it: deterministic by default, statistics frozen.

Episode ``i`` of an evaluation from ``seed`` is reset with the seed of ``(seed, i)`` in a stream of
its own (:mod:`trustrl.seeding`), so two evaluations from the same seed differ only by the policy,
and evaluations from neighbouring seeds share no episode. :data:`DEFAULT_EVAL_SEED` is what ``trustrl
eval``, ``trustrl video``, :func:`trustrl.evaluate` and ``trustrl compare`` use by default; the
evaluation during training draws from another stream, so a report made afterwards is on episodes the
``best`` checkpoint was not chosen on.

Every episode played here ends: at the env's own time limit, or -- for an env that has none -- after
:data:`EPISODE_STEP_CAP` steps, counted as truncated (its return so far is its return), with one
warning per env id and process saying so.

The command line reads :data:`DEFAULT_EVAL_SEED` from here when it builds its
parser, so this module imports no numpy, gymnasium or torch until it plays.
Filming episodes is :mod:`trustrl.video`.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Callable

from trustrl.config import MAX_EPISODES, check_count, check_seed
from trustrl.errors import TrustrlError

if TYPE_CHECKING:
    import gymnasium as gym

    from trustrl.agent import Agent

#: The seed of an evaluation or a video given none.
DEFAULT_EVAL_SEED = 1_000_000

#: Steps after which an episode of an env with no time limit is cut (as truncated), so that evaluation,
#: ``trustrl eval``, ``video`` and ``collect`` always end; ``env.max_episode_steps`` gives the env a limit.
EPISODE_STEP_CAP = 10_000
#: How messages name the env episodes are played in.
EVALUATION_ENV = "evaluation env"

_log = logging.getLogger("trustrl")
_warned_uncapped: set[str] = set()  # env ids already warned about in this process


@dataclass
class EvalResult:
    mean_return: float
    std_return: float
    min_return: float
    max_return: float
    mean_length: float
    episodes: int
    returns: list[float]
    lengths: list[int]
    deterministic: bool
    checkpoint: str
    step: int
    env: str

    def to_dict(self) -> dict:
        return asdict(self)


def episode_seeds(seed: int, episodes: int) -> list[int]:
    """The reset seeds of an evaluation's (or a video's) ``episodes`` episodes from ``seed``."""
    from trustrl.seeding import EPISODES, reset_seeds

    return reset_seeds(seed, EPISODES, range(episodes))


def time_limit(env: gym.Env) -> int | None:
    """The env's own episode length limit: its ``TimeLimit`` wrapper's, else its spec's (None: it has none)."""
    from gymnasium.wrappers import TimeLimit

    layer = env
    while layer is not None:
        if isinstance(layer, TimeLimit):
            return int(layer._max_episode_steps)
        layer = getattr(layer, "env", None)
    spec = getattr(env, "spec", None)
    return getattr(spec, "max_episode_steps", None)


def step_cap(env: gym.Env) -> int | None:
    """Steps after which trustrl cuts an episode of ``env``: None when the env's own time limit ends it,
    else :data:`EPISODE_STEP_CAP` -- said once per env id and process, as one warning line."""
    if time_limit(env) is not None:
        return None
    spec = getattr(env.unwrapped, "spec", None) or getattr(env, "spec", None)
    name = getattr(spec, "id", None) or type(env.unwrapped).__name__
    if name not in _warned_uncapped:
        _warned_uncapped.add(name)
        _log.warning(f"warning: {name} has no time limit; episodes trustrl plays are cut at {EPISODE_STEP_CAP:,} "
                     "steps (set env.max_episode_steps to choose)")
    return EPISODE_STEP_CAP


def run_episodes(
    agent: Agent,
    env: gym.Env,
    seeds: list[int],
    deterministic: bool = True,
    on_step: Callable[[gym.Env], None] | None = None,
    on_episode: Callable[[int, int], None] | None = None,
) -> tuple[list[float], list[int]]:
    """Play one episode from each reset seed of ``seeds``; ``on_step(env)`` runs after reset and each step
    (video), ``on_episode(done, total)`` after each episode (progress). What the env returns is checked
    (:mod:`trustrl.envs.checks`).

    An episode ends when the env terminates or truncates it, or at :func:`step_cap`'s cap.
    """
    from trustrl.envs.checks import checked_reset, checked_step

    cap = step_cap(env)
    returns, lengths = [], []
    if on_episode:
        on_episode(0, len(seeds))
    for seed in seeds:
        obs = checked_reset(env, EVALUATION_ENV, seed=seed)
        if on_step:
            on_step(env)
        total, length, done = 0.0, 0, False
        while not done:
            obs, reward, terminated, truncated, _ = checked_step(env, agent.act(obs, deterministic), EVALUATION_ENV)
            total += float(reward)
            length += 1
            done = terminated or truncated or length == cap
            if on_step:
                on_step(env)
        returns.append(total)
        lengths.append(length)
        if on_episode:
            on_episode(len(returns), len(seeds))
    return returns, lengths


def evaluate_agent(
    agent: Agent,
    episodes: int = 10,
    seed: int = DEFAULT_EVAL_SEED,
    deterministic: bool = True,
    render: bool = False,
) -> EvalResult:
    """Play ``episodes`` episodes of ``agent`` in the env of its config (reset seeds :func:`episode_seeds`).

    Deterministic (mean / arg-max action) unless ``deterministic=False``; ``render`` shows them in a window.
    """
    import numpy as np

    from trustrl.display import check_display, gl_failures_explained
    from trustrl.envs import make_env
    from trustrl.envs.checks import close_env

    check_count("episodes", episodes, MAX_EPISODES)
    check_seed("seed", seed)
    if render:
        check_display()
    with gl_failures_explained():  # a GL back end chosen in MUJOCO_GL may fail as the env is made
        env = make_env(agent.config.env, render_mode="human" if render else None)
    try:
        agent.check_env(env)
        try:
            with gl_failures_explained():
                returns, lengths = run_episodes(agent, env, episode_seeds(seed, episodes), deterministic)
        except TrustrlError:
            raise
        except Exception as exc:  # a window system that refuses to open (pygame)
            if not render:
                raise
            raise TrustrlError(f"--render could not open a window ({type(exc).__name__}: {exc}); "
                               "use `trustrl video` to film episodes without a display") from None
    finally:
        close_env(env, EVALUATION_ENV)
    return EvalResult(
        mean_return=float(np.mean(returns)),
        std_return=float(np.std(returns)),
        min_return=float(np.min(returns)),
        max_return=float(np.max(returns)),
        mean_length=float(np.mean(lengths)),
        episodes=episodes,
        returns=returns,
        lengths=lengths,
        deterministic=deterministic,
        checkpoint=str(agent.checkpoint.path) if agent.checkpoint is not None else "",
        step=agent.checkpoint.step if agent.checkpoint is not None else 0,
        env=agent.config.env.id,
    )


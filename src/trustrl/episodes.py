"""Playing whole episodes with an agent, and evaluating it: deterministic by default, statistics frozen.

Episode ``i`` of an evaluation from ``seed`` is reset with the seed of ``(seed, i)`` in a stream of
its own (:mod:`trustrl.seeding`), so two evaluations from the same seed differ only by the policy,
and evaluations from neighbouring seeds share no episode. :data:`DEFAULT_EVAL_SEED` is what ``trustrl
eval``, ``trustrl video``, :func:`trustrl.evaluate` and ``trustrl compare`` use by default; the
evaluation during training draws from another stream, so a report made afterwards is on episodes the
``best`` checkpoint was not chosen on.

The command line reads :data:`DEFAULT_EVAL_SEED` from here when it builds its
parser, so this module imports no numpy, gymnasium or torch until it plays.
Filming episodes is :mod:`trustrl.video`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Callable

from trustrl.config import MAX_EPISODES, check_count, check_seed
from trustrl.errors import TrustrlError

if TYPE_CHECKING:
    import gymnasium as gym

    from trustrl.agent import Agent

#: The seed of an evaluation or a video given none.
DEFAULT_EVAL_SEED = 1_000_000

#: How messages name the env episodes are played in.
EVALUATION_ENV = "evaluation env"


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


def run_episodes(
    agent: Agent,
    env: gym.Env,
    seeds: list[int],
    deterministic: bool = True,
    on_step: Callable[[gym.Env], None] | None = None,
) -> tuple[list[float], list[int]]:
    """Play one full episode from each reset seed of ``seeds``; ``on_step(env)`` runs after reset and each step
    (video). What the env returns is checked (:mod:`trustrl.envs.checks`)."""
    from trustrl.envs.checks import checked_reset, checked_step

    returns, lengths = [], []
    for seed in seeds:
        obs = checked_reset(env, EVALUATION_ENV, seed=seed)
        if on_step:
            on_step(env)
        total, length, done = 0.0, 0, False
        while not done:
            obs, reward, terminated, truncated, _ = checked_step(env, agent.act(obs, deterministic), EVALUATION_ENV)
            total += float(reward)
            length += 1
            done = terminated or truncated
            if on_step:
                on_step(env)
        returns.append(total)
        lengths.append(length)
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

    from trustrl.display import check_display  # also sets up the GL back end before MuJoCo is imported
    from trustrl.envs import make_env
    from trustrl.envs.checks import close_env

    check_count("episodes", episodes, MAX_EPISODES)
    check_seed("seed", seed)
    if render:
        check_display()
    env = make_env(agent.config.env, render_mode="human" if render else None)
    try:
        agent.check_env(env)
        try:
            returns, lengths = run_episodes(agent, env, episode_seeds(seed, episodes), deterministic)
        except TrustrlError:
            raise
        except Exception as exc:  # a window system that refuses to open (pygame, glfw)
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


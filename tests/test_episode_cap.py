"""Every episode trustrl plays ends: an env with no time limit is cut at the cap (as truncated), said once;
an env with a time limit plays as it always did; a long evaluation shows in the progress lines."""

import io
import logging

import gymnasium as gym
import numpy as np
import pytest
from line_env import Line  # noqa: E402 -- tests/ is on sys.path

import trustrl
from trustrl import episodes
from trustrl.datasets.collect import collect
from trustrl.episodes import DEFAULT_EVAL_SEED, EPISODE_STEP_CAP, episode_seeds, step_cap
from trustrl.metrics import MetricsLogger, ProgressLines

UNLIMITED = "trustrl-test/LineUnlimited-v0"  # Line with no time limit of its own
if UNLIMITED not in gym.registry:
    gym.register(UNLIMITED, entry_point="line_env:Line")


@pytest.fixture(autouse=True)
def _warnings_afresh(monkeypatch):
    """Each test sees the once-per-process warning as a fresh process would."""
    monkeypatch.setattr(episodes, "_warned_uncapped", set())


def _cap_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "has no time limit" in r.getMessage()]


def _manual_return(agent, env, seed: int, steps: int) -> float:
    """The return of ``steps`` deterministic steps from ``seed``, played here without trustrl's episode code."""
    obs, _ = env.reset(seed=seed)
    total = 0.0
    for _ in range(steps):
        obs, reward, terminated, truncated, _ = env.step(agent.act(obs, True))
        total += float(reward)
        assert not (terminated or truncated)
    return total


@pytest.fixture(scope="module")
def unlimited_run(tmp_path_factory):
    """A run on an env function with no time limit, evaluated at the start and at the end (two episodes each)."""
    run_dir = tmp_path_factory.mktemp("cap") / "run"
    cfg = trustrl.load_config("pendulum-trpo", ["run.n_steps=64", "run.eval_episodes=2", "run.eval_every=512"])
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(episodes, "_warned_uncapped", set())
        handler = _Collect()
        logging.getLogger("trustrl").addHandler(handler)
        try:
            trustrl.train(cfg, env=lambda: Line(start=0.5), total_steps=512, run_dir=run_dir, progress=False)
        finally:
            logging.getLogger("trustrl").removeHandler(handler)
    return run_dir, handler.messages


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_training_on_an_env_with_no_time_limit_finishes_its_evaluations_at_the_cap_and_warns_once(unlimited_run):
    run_dir, messages = unlimited_run
    warned = [m for m in messages if "has no time limit" in m]
    assert len(warned) == 1 and f"cut at {EPISODE_STEP_CAP:,} steps" in warned[0] and "\n" not in warned[0]
    header, *rows = (run_dir / "metrics.csv").read_text().splitlines()
    column = header.split(",").index("eval_length_mean")
    evaluated = [float(r.split(",")[column]) for r in rows if r.split(",")[column] != "nan"]
    assert len(evaluated) >= 2 and all(length == EPISODE_STEP_CAP for length in evaluated)


def test_evaluate_cuts_an_episode_at_the_cap_and_its_return_is_the_return_so_far(unlimited_run, caplog):
    run_dir, _ = unlimited_run
    agent = trustrl.load(run_dir, env=lambda: Line(start=0.5))
    result = trustrl.evaluate(agent, episodes=2)
    assert result.lengths == [EPISODE_STEP_CAP, EPISODE_STEP_CAP]
    env = Line(start=0.5)
    expected = [_manual_return(agent, env, s, EPISODE_STEP_CAP) for s in episode_seeds(DEFAULT_EVAL_SEED, 2)]
    assert result.returns == pytest.approx(expected, rel=1e-12, abs=1e-9)
    trustrl.evaluate(agent, episodes=1)
    assert len(_cap_warnings(caplog)) == 1  # once per env and process, however often it plays


def test_an_env_with_a_time_limit_is_played_as_before_and_not_warned_about(unlimited_run, caplog):
    run_dir, _ = unlimited_run
    agent = trustrl.load(run_dir, env="line_env:Line-v0")  # the same spaces, a 40-step time limit
    result = trustrl.evaluate(agent, episodes=3)
    assert result.lengths == [40, 40, 40]
    expected = [_manual_return(agent, Line(), s, 40) for s in episode_seeds(DEFAULT_EVAL_SEED, 3)]
    assert result.returns == pytest.approx(expected, rel=1e-12, abs=1e-9)
    assert _cap_warnings(caplog) == []
    limited = gym.make("line_env:Line-v0")
    assert step_cap(limited) is None and step_cap(gym.make(UNLIMITED)) == EPISODE_STEP_CAP


def test_collect_from_an_env_with_no_time_limit_stores_episodes_cut_at_the_cap_as_truncated(tmp_path, monkeypatch,
                                                                                            caplog):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    result = collect("line/unlimited-v0", random=True, env_id=UNLIMITED, episodes=2, seed=3)
    assert result.episodes == 2 and result.steps == 2 * EPISODE_STEP_CAP
    import minari

    for episode in minari.load_dataset("line/unlimited-v0").iterate_episodes():  # the flags as stored
        assert len(episode.rewards) == EPISODE_STEP_CAP
        assert episode.truncations[-1] and not episode.truncations[:-1].any() and not episode.terminations.any()
        assert float(np.sum(episode.rewards)) == pytest.approx(
            -float(np.sum(episode.observations[1:, 0].astype(np.float64) ** 2)), rel=1e-5)
    assert len(_cap_warnings(caplog)) == 1


def test_progress_lines_show_a_long_evaluation_as_it_runs():
    stream = io.StringIO()
    lines = ProgressLines(1000, every=0.0, stream=stream)
    lines.log(200, {"episode_return_mean": 1.0}, {"steps_per_s": 10.0})
    for done in range(4):
        lines.evaluating(done, 3)
    printed = stream.getvalue().splitlines()
    assert [p.split(" | ")[:2] for p in printed[1:]] == [
        ["step 200/1000 (20.0%)", f"evaluating {done}/3 episodes"] for done in range(3)
    ]
    quiet = io.StringIO()
    lines = ProgressLines(1000, every=3600.0, stream=quiet)
    lines.evaluating(1, 3)
    assert quiet.getvalue() == ""  # a short evaluation adds no line


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_progress_bar_reads_evaluating_while_an_evaluation_runs(tmp_path, monkeypatch):
    monkeypatch.setattr("sys.stderr", _Terminal())
    logger = MetricsLogger(tmp_path, 1000, progress=True, tensorboard=False)
    try:
        (task,) = logger._progress.tasks
        logger.evaluating(0, 3)
        assert task.description == "evaluating 0/3 episodes"
        logger.evaluating(2, 3)
        assert task.description == "evaluating 2/3 episodes"
        logger.evaluating(3, 3)
        assert task.description == "train"
    finally:
        logger.close()

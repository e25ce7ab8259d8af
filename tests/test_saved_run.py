"""A run directory written by an earlier trustrl still evaluates and resumes.

``fixtures/run-cartpole-trpo`` was written by trustrl 0.1.0 before its modules were rearranged
and its ``run.sampler`` key renamed (``trustrl train cartpole-trpo --total-steps 2048
--set run.eval_every=1024 --set run.eval_episodes=3``), and ``fixtures/run-cartpole-trpo-continued.csv``
holds the rows of the same command with ``--total-steps 4096``, written before reset seeds were hashed.
Code that reads it differently -- another key, another weight layout, another statistic, other
evaluation episodes -- fails here.
"""

import csv
import shutil
from pathlib import Path

import pytest

import trustrl
from trustrl import checkpoint
from trustrl.cli import main
from trustrl.envs import make_env
from trustrl.episodes import run_episodes
from trustrl.run.evaluation import legacy_eval_seeds

FIXTURE = Path(__file__).parent / "fixtures" / "run-cartpole-trpo"


def _rows(run: Path) -> list[dict[str, str]]:
    with open(run if run.suffix == ".csv" else run / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture
def saved_run(tmp_path) -> Path:
    run = tmp_path / "saved"
    shutil.copytree(FIXTURE, run)
    return run


@pytest.mark.parametrize("tag", ["best", "last"])
def test_a_saved_run_evaluates_to_the_returns_it_recorded(saved_run, tag):
    """The training evaluations played 3 deterministic episodes reset with seeds 2_000_000, +1, +2: the
    same episodes, played by the loaded checkpoint now, give the same mean."""
    agent = trustrl.load(saved_run, checkpoint=tag)
    step = checkpoint.load(saved_run, tag).step
    rows = [row for row in _rows(saved_run) if int(row["step"]) == step]
    env = make_env(agent.config.env)
    returns, _ = run_episodes(agent, env, legacy_eval_seeds(3), deterministic=True)
    env.close()
    assert sum(returns) / 3 == pytest.approx(float(rows[-1]["eval_return_mean"]), abs=1e-9)


def test_a_saved_run_resumes_into_the_run_that_never_stopped(saved_run, tmp_path, capsys):
    """``run-cartpole-trpo-continued.csv``: the rows the same command wrote with ``--total-steps 4096`` before
    reset seeds were hashed. The resumed run restores its envs and goes on evaluating on its own episodes."""
    assert main(["train", "--resume", str(saved_run), "--total-steps", "4096", "--quiet"]) == 0
    assert _rows(saved_run) == _rows(FIXTURE.parent / "run-cartpole-trpo-continued.csv")
    assert len(_rows(saved_run)) == 5  # the initial evaluation and four updates


def test_a_renamed_key_is_read_under_its_new_name_with_a_note(saved_run, caplog):
    """The fixture's config says ``run.sampler``, today ``run.placement``; ``--set`` takes the old name too."""
    assert "sampler = " in (saved_run / "config.toml").read_text()
    with caplog.at_level("WARNING", logger="trustrl"):
        cfg = trustrl.load_config(str(saved_run / "config.toml"), ["run.sampler=ray"])
    assert cfg.run.placement == "ray"
    notes = [r.getMessage() for r in caplog.records]
    assert any("run.sampler is now called run.placement" in note for note in notes), notes

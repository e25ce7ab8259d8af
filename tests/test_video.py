"""Evaluation and video: mp4 files with the expected frames, headless, for CartPole and MuJoCo; clear errors."""

import json

import imageio.v2 as imageio
import numpy as np
import pytest

from trustrl import config
from trustrl.api import load as load_policy
from trustrl.cli import main
from trustrl.envs import make_env
from trustrl.episodes import DEFAULT_EVAL_SEED, episode_seeds
from trustrl.run import train
from trustrl.video import seeded_episode, video


def _train(run_dir, preset, overrides):
    cfg = config.load(preset, overrides)
    train(cfg, run_dir, progress=False)
    return run_dir


@pytest.fixture(scope="module")
def cartpole_run(tmp_path_factory):
    # One update: a policy whose episodes are short and of varied length.
    return _train(tmp_path_factory.mktemp("v") / "cp", "cartpole-trpo", ["run.total_steps=1024", "run.seed=2"])


@pytest.fixture(scope="module")
def walker_run(tmp_path_factory):
    overrides = ["run.total_steps=256", "run.n_steps=128", "env.max_episode_steps=12"]
    return _train(tmp_path_factory.mktemp("v") / "wk", "walker2d-trpo-notebook", overrides)


def _decoded_frames(path):
    with imageio.get_reader(path) as reader:
        return [frame for frame in reader]


def test_cartpole_video_has_one_frame_per_step_plus_reset_and_decodes(cartpole_run, tmp_path, capsys):
    out = tmp_path / "cp.mp4"
    assert main(["video", str(cartpole_run), "--episodes", "2", "--out", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    result = video(cartpole_run, tmp_path / "again.mp4", episodes=2)
    assert result.frames == sum(result.lengths) + 2 and result.fps == 50
    frames = _decoded_frames(out)
    assert len(frames) == result.frames
    assert frames[0].shape == (400, 600, 3) and frames[0].std() > 0  # something was drawn
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind


def test_mujoco_video_renders_headless(walker_run, tmp_path):
    out = tmp_path / "walker.mp4"
    result = video(walker_run, out, episodes=1, checkpoint="last")
    assert result.lengths[0] <= 12 and result.frames == result.lengths[0] + 1
    frames = _decoded_frames(out)
    assert len(frames) == result.frames and frames[0].shape == (480, 480, 3)


def test_min_return_keeps_only_episodes_at_or_above_it(cartpole_run, tmp_path):
    loaded = load_policy(cartpole_run)
    env = make_env(loaded.config.env)
    played = [seeded_episode(loaded, env, s, True)[0][0] for s in episode_seeds(DEFAULT_EVAL_SEED, 8)]
    env.close()
    threshold = float(np.median(played))
    wanted = [r for r in played if r >= threshold][:2]
    result = video(cartpole_run, tmp_path / "good.mp4", episodes=2, min_return=threshold, max_attempts=8)
    assert result.returns == wanted and all(r >= threshold for r in result.returns)
    assert result.attempts == played.index(wanted[-1]) + 1
    assert len(_decoded_frames(tmp_path / "good.mp4")) == sum(result.lengths) + 2


def test_min_return_that_no_episode_reaches_fails_clearly_and_writes_nothing(cartpole_run, tmp_path, capsys):
    out = tmp_path / "none.mp4"
    assert main(["video", str(cartpole_run), "--out", str(out), "--min-return", "1e9", "--max-attempts", "3"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: only 0 of 3 episodes reached --min-return") and len(err.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--out", "x.mp4"], "no run or checkpoint"),
        (["--out", "x.gif"], "must end in .mp4"),
        (["--out", "x.mp4", "--episodes", "0"], "--episodes must be an integer from 1 to 10,000, got 0"),
    ],
)
def test_video_bad_input(cartpole_run, tmp_path, capsys, args, message):
    run = tmp_path / "missing" if message == "no run or checkpoint" else cartpole_run
    args = [a if not a.startswith("x.") else str(tmp_path / a) for a in args]
    assert main(["video", str(run), *args]) == 2
    assert message in capsys.readouterr().err


def test_eval_and_video_of_the_best_checkpoint(cartpole_run, tmp_path, capsys):
    assert main(["eval", str(cartpole_run), "--episodes", "2", "--checkpoint", "best", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["episodes"] == 2 and result["checkpoint"].endswith("best.json")
    result = video(cartpole_run, tmp_path / "best.mp4", episodes=1, checkpoint="best")
    assert len(_decoded_frames(tmp_path / "best.mp4")) == result.frames


def test_eval_of_a_mujoco_checkpoint_in_another_env_is_refused(walker_run, capsys):
    assert main(["eval", str(walker_run), "--env", "Hopper-v5"]) == 2
    err = capsys.readouterr().err
    assert "was trained on spaces" in err and "Hopper-v5" in err


def test_render_without_a_display_is_a_clear_error(cartpole_run, monkeypatch, capsys):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert main(["eval", str(cartpole_run), "--render", "--episodes", "1"]) == 2
    err = capsys.readouterr().err
    assert "--render needs a display" in err and "trustrl video" in err


def test_training_records_videos_without_changing_what_is_learned(tmp_path):
    base = ["run.total_steps=2048", "run.seed=4", "env.max_episode_steps=60"]
    filmed = _train(tmp_path / "filmed", "cartpole-trpo", [*base, "run.video_every=1024"])
    plain = _train(tmp_path / "plain", "cartpole-trpo", base)
    videos = sorted(p.name for p in (filmed / "videos").iterdir())
    assert videos == ["step-1024.mp4", "step-2048.mp4"]
    assert 2 <= len(_decoded_frames(filmed / "videos" / "step-2048.mp4")) <= 61
    assert (filmed / "metrics.csv").read_text() == (plain / "metrics.csv").read_text()
    assert not (plain / "videos").exists()

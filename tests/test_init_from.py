"""--init-from: a new run that starts from another run's policy and statistics, checked to fit, resumable on its own."""

import shutil
import tomllib
from pathlib import Path

import numpy as np
import pytest
from continued import assert_extended_is_the_run_in_one_go, rows, weights

import trustrl
from trustrl import checkpoint
from trustrl.cli import main
from trustrl.envs import make_env
from trustrl.episodes import run_episodes
from trustrl.run.evaluation import training_eval_seeds

SHORT = ["--set", "run.n_steps=64", "--set", "run.eval_episodes=3", "--set", "run.eval_every=1024",
         "--set", "algo.max_kl_schedule=constant", "--quiet"]  # batches of 8 x 64 = 512 steps


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("source") / "run"
    assert main(["train", "cartpole-trpo", "--total-steps", "6144", "--seed", "0", "--run-dir", str(run), *SHORT]) == 0
    return run


def _train(args: list[str]) -> int:
    return main(["train", "cartpole-trpo", *args, *SHORT])


@pytest.mark.parametrize("tag", ["best", "last"])
def test_the_first_evaluation_of_a_run_started_from_a_checkpoint_is_that_policy_on_the_run_s_episodes(
        source, tmp_path, tag):
    new = tmp_path / "new"
    assert _train(["--init-from", f"{source}:{tag}", "--seed", "5", "--total-steps", "1024",
                   "--run-dir", str(new)]) == 0
    start = rows(new)[0]
    assert (start["step"], start["update"]) == ("0", "0")
    agent = trustrl.load(source, tag)
    env = make_env(agent.config.env)
    returns, _ = run_episodes(agent, env, training_eval_seeds(5, 3), deterministic=True)  # the new run's episodes
    env.close()
    assert float(start["eval_return_mean"]) == pytest.approx(float(np.mean(returns)))
    assert float(start["eval_return_std"]) == pytest.approx(float(np.std(returns)))
    assert float(start["eval_return_mean"]) > 100  # a trained policy, not a fresh one
    last = checkpoint.load(new)
    assert (last.step, last.update) == (1024, 2)  # the new run counts its own steps
    count = checkpoint.load(source, tag).obs_norm["count"]
    assert last.obs_norm["count"] == pytest.approx(count + 1024)  # the statistics went on from the source's
    assert tomllib.loads((new / "config.toml").read_text())["run"]["init_from"] == f"{source}:{tag}"


def test_a_critic_of_another_shape_starts_afresh_and_says_so(source, tmp_path):
    result = trustrl.train("cartpole-trpo", init_from=source, total_steps=512, run_dir=tmp_path / "n",
                           overrides=["critic.hidden=[32]", "run.n_steps=64"], progress=False)
    assert any("the critic starts afresh (critic.hidden [64, 64] vs [32])" in note for note in result.notes)
    same = trustrl.train("cartpole-trpo", init_from=source, total_steps=512, run_dir=tmp_path / "m",
                         overrides=["run.n_steps=64"], progress=False)
    assert any(note.endswith("policy, observation statistics and critic") for note in same.notes)


def test_a_source_that_does_not_fit_is_one_error_line_and_nothing_is_written(source, tmp_path, capsys):
    new = tmp_path / "new"
    cases = [
        (["--set", "policy.hidden=[256,256]"],
         "its policy does not fit this run's (policy.hidden [64, 64] vs [256, 256])"),
        (["--set", "env.norm_obs=false"], "env.norm_obs true vs false"),
        (["--set", "env.id=Acrobot-v1"], "was trained on spaces"),
        (["--init-from", f"{source}:worst"], "unknown checkpoint 'worst'"),
        (["--init-from", str(tmp_path / "nowhere")], "no run or checkpoint"),
        (["--init-from", f"{source}:step-512"], "no 'step-512' checkpoint"),
        (["--offline", "cartpole/none-v0"], "cannot be combined with an offline dataset"),
    ]
    for args, message in cases:
        given = args if "--init-from" in args else ["--init-from", str(source), *args]
        assert _train([*given, "--total-steps", "1024", "--run-dir", str(new)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and message in err and len(err.splitlines()) == 1, (args, err)
        assert not new.exists()
    assert main(["train", "--resume", str(source), "--init-from", str(source)]) == 2
    assert "cannot be combined with --init-from" in capsys.readouterr().err


def test_resume_of_a_run_started_from_a_checkpoint_is_the_run_in_one_go_without_the_source(source, tmp_path):
    common = ["--init-from", f"{source}:best", "--seed", "1"]
    assert _train([*common, "--total-steps", "3072", "--run-dir", str(tmp_path / "whole")]) == 0
    own = tmp_path / "own-source"
    shutil.copytree(source, own)
    assert _train(["--init-from", f"{own}:best", "--seed", "1", "--total-steps", "1536",
                   "--run-dir", str(tmp_path / "part")]) == 0
    shutil.rmtree(own)  # a resume reads the run's own checkpoint, never the source again
    assert main(["train", "--resume", str(tmp_path / "part"), "--total-steps", "3072", "--quiet"]) == 0
    assert_extended_is_the_run_in_one_go(tmp_path / "part", tmp_path / "whole", 1536)


def test_a_run_killed_before_its_first_checkpoint_starts_again_from_its_config_on_resume(source, tmp_path, capsys):
    assert _train(["--init-from", f"{source}:best", "--seed", "1", "--total-steps", "1536",
                   "--run-dir", str(tmp_path / "whole")]) == 0
    killed = tmp_path / "killed"
    shutil.copytree(tmp_path / "whole", killed)
    for f in (killed / "checkpoints").glob("last*"):  # as a process killed before its first ``last``:
        f.unlink()  # its config, its first rows and the best of its first evaluation are there
    lines = (killed / "metrics.csv").read_text().splitlines(keepends=True)
    (killed / "metrics.csv").write_text("".join(lines[:3]))
    assert main(["train", "--resume", str(killed), "--quiet"]) == 0
    assert "holds no checkpoint yet: the run starts again from its config.toml" in capsys.readouterr().err
    assert (killed / "metrics.csv").read_text() == (tmp_path / "whole" / "metrics.csv").read_text()
    for tag in ("last", "best"):
        assert weights(killed, tag) == weights(tmp_path / "whole", tag)

"""Used from your own code, on your own env, in your own tools: the Python API, module:Id envs, env functions,
progress without a terminal, `trustrl config`, TensorBoard hparams and Weights & Biases."""

import contextlib
import io
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from continued import assert_extended_is_the_run_in_one_go
from line_env import Line  # noqa: E402 -- tests/ is on sys.path, as a user's package would be

import trustrl
from trustrl import config as config_mod
from trustrl.cli import main
from trustrl.config.document import describe, field_docs
from trustrl.envs import registry as envs_mod
from trustrl.metrics import ProgressLines

README = Path(__file__).resolve().parents[1] / "README.md"
SHORT = ["--total-steps", "4096", "--quiet"]


def test_the_readme_python_example_runs_and_learns(tmp_path, monkeypatch):
    code = re.search(r"### From Python.*?```python\n(.*?)```", README.read_text(), re.S).group(1)
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})
    assert float(out.getvalue().strip().splitlines()[-1]) >= 475.0
    assert (tmp_path / "runs" / "c0" / "checkpoints" / "best.json").is_file()


def test_public_names_are_exported_and_typed():
    assert set(trustrl.__all__) == {"__version__", *trustrl._PUBLIC}
    for name in trustrl._PUBLIC:
        assert getattr(trustrl, name) is not None
    assert (Path(trustrl.__file__).parent / "py.typed").is_file()
    assert trustrl.load_config("cartpole-trpo").algo.name == "trpo"


@pytest.fixture(scope="module")
def line_run(tmp_path_factory):
    """A module:Id env trained from the command line, its copies in two worker processes."""
    run = tmp_path_factory.mktemp("line") / "run"
    assert main(["train", "line_env:Line-v0", "--algo", "trpo", "--run-dir", str(run),
                 "--set", "run.workers=2", "--set", "run.n_steps=128", *SHORT]) == 0
    return run


def test_a_module_env_id_trains_and_is_saved_as_given(line_run):
    cfg = tomllib.loads((line_run / "config.toml").read_text())
    assert cfg["env"]["id"] == "line_env:Line-v0"
    assert (line_run / "checkpoints" / "last.json").is_file()


def test_a_module_env_run_evaluates_films_and_resumes_bit_for_bit(line_run, tmp_path, capsys):
    assert main(["eval", str(line_run), "--episodes", "2", "--json"]) == 0
    assert '"env": "line_env:Line-v0"' in capsys.readouterr().out
    assert main(["video", str(line_run), "--out", str(tmp_path / "l.mp4"), "--episodes", "1"]) == 0
    assert (tmp_path / "l.mp4").stat().st_size > 0
    # the same run in one go against: 4096 steps, then --resume to 6144 (a constant trust region, since
    # the default linear one is laid over the run's length and refuses a new one)
    constant = ["--set", "run.n_steps=128", "--set", "algo.max_kl_schedule=constant"]
    whole = tmp_path / "whole"
    assert main(["train", "line_env:Line-v0", "--run-dir", str(whole), *constant, "--total-steps", "6144",
                 "--quiet"]) == 0
    resumed = tmp_path / "resumed"
    assert main(["train", "line_env:Line-v0", "--run-dir", str(resumed), *constant, *SHORT]) == 0
    assert main(["train", "--resume", str(resumed), "--total-steps", "6144", "--quiet"]) == 0
    assert (resumed / "metrics.csv").read_bytes() == (whole / "metrics.csv").read_bytes()


def test_env_imports_register_an_id_before_it_is_looked_up(tmp_path):
    run = tmp_path / "run"
    assert main(["train", "Line-v0", "--set", 'env.imports=["line_env"]', "--run-dir", str(run), *SHORT]) == 0
    cfg = tomllib.loads((run / "config.toml").read_text())
    assert cfg["env"]["imports"] == ["line_env"] and cfg["env"]["id"] == "Line-v0"


@pytest.mark.parametrize("args, message", [
    (["train", "no_such_pkg.envs:Line-v0"], "cannot import module 'no_such_pkg.envs' for the env: ModuleNotFoundError"),
    (["train", "json:NotThere-v0"], "unknown environment id 'NotThere-v0' (module 'json' was imported but did not register it)"),
    (["train", ":Line-v0"], "nothing before ':'"),
    (["train", "CartPole-v1", "--set", 'env.imports=["os;rm"]'], "env.imports: 'os;rm' is not a module name"),
    (["train", "Nope-v0"], "or an env of your own as module:Id"),
])  # fmt: skip
def test_a_custom_env_that_cannot_be_found_is_one_error_line(tmp_path, capsys, args, message):
    assert main([*args, "--run-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def make_line(render_mode=None):
    return Line(render_mode=render_mode, start=0.5)


def test_an_env_function_trains_in_worker_processes_and_its_run_loads_with_it_again(tmp_path):
    cfg = trustrl.load_config("pendulum-trpo", ["env.max_episode_steps=40", "run.workers=2", "run.n_steps=64"])
    run = trustrl.train(cfg, env=lambda: Line(start=0.5), total_steps=2048, run_dir=tmp_path / "f", progress=False)
    assert run.steps == 2048
    recorded = tomllib.loads((tmp_path / "f" / "config.toml").read_text())["env"]["id"]
    assert recorded == "trustrl-factory/lambda"
    first = trustrl.evaluate(trustrl.load(tmp_path / "f"), episodes=3)
    # another process would not have the function: loading needs it again, or another env of the same spaces
    del gym.registry[recorded]
    del envs_mod._FACTORIES[recorded]
    with pytest.raises(trustrl.TrustrlError, match="was made by a Python function"):
        trustrl.load(tmp_path / "f")
    again = trustrl.evaluate(tmp_path / "f", episodes=3, env=make_line)
    assert again.returns == first.returns and again.env == recorded
    other = trustrl.evaluate(tmp_path / "f", episodes=3, env="line_env:Line-v0")
    assert other.env == "line_env:Line-v0" and other.episodes == 3


def test_a_run_of_an_env_function_resumes_from_python_with_the_function_again(tmp_path):
    cfg = trustrl.load_config("pendulum-trpo", ["env.max_episode_steps=40", "run.n_steps=64", "run.eval_every=512",
                                                "run.eval_episodes=2", "algo.max_kl_schedule=constant"])
    trustrl.train(cfg, env=make_line, total_steps=2048, run_dir=tmp_path / "whole", progress=False)
    trustrl.train(cfg, env=make_line, total_steps=1280, run_dir=tmp_path / "part", progress=False)
    recorded = tomllib.loads((tmp_path / "part" / "config.toml").read_text())["env"]["id"]
    assert recorded == "trustrl-factory/make_line"
    del gym.registry[recorded]  # as in another process, which has not registered the function
    del envs_mod._FACTORIES[recorded]
    before = {p: p.read_bytes() for p in (tmp_path / "part").rglob("*") if p.is_file()}
    with pytest.raises(trustrl.TrustrlError, match=r"was made by a Python function.*trustrl.resume\(run, env=make_env\)"):
        trustrl.resume(tmp_path / "part", total_steps=2048, progress=False)
    with pytest.raises(trustrl.TrustrlError, match="takes only the function that made it"):
        trustrl.resume(tmp_path / "part", total_steps=2048, env="line_env:Line-v0", progress=False)
    assert {p: p.read_bytes() for p in (tmp_path / "part").rglob("*") if p.is_file()} == before
    result = trustrl.resume(tmp_path / "part", total_steps=2048, env=make_line, progress=False)
    assert result.steps == 2048 and result.notes == []
    assert_extended_is_the_run_in_one_go(tmp_path / "part", tmp_path / "whole", 1280)


def test_env_for_resume_is_only_for_a_run_whose_env_a_function_made(tmp_path):
    trustrl.train("cartpole-trpo", total_steps=512, run_dir=tmp_path / "c", progress=False)
    with pytest.raises(trustrl.TrustrlError, match="trained on 'CartPole-v1', which it makes by itself"):
        trustrl.resume(tmp_path / "c", total_steps=1024, env=make_line, progress=False)


def test_an_env_instance_is_refused_with_the_fix():
    with pytest.raises(trustrl.TrustrlError, match="a function that makes a new env"):
        trustrl.train("cartpole-trpo", env=gym.make("CartPole-v1"), run_dir="never-written")
    assert not Path("never-written").exists()


def test_act_normalises_the_raw_observation_and_clips_to_the_action_bounds(line_run):
    agent = trustrl.load(line_run)
    obs = np.array([[0.3], [-1.2]], np.float32)
    with torch.no_grad():
        mean = agent.policy(torch.from_numpy(agent.obs_norm.normalize(obs))).mode().numpy()
        np.testing.assert_allclose(agent.act_batch(obs), np.clip(mean, -1.0, 1.0))
        last = agent.policy.mean_net.layers[-1]  # a mean far outside the bounds: the action is the bound
        last.weight.zero_()
        last.bias.fill_(5.0)
    assert agent.act(obs[0]).tolist() == [1.0]
    assert agent.act_batch(obs).tolist() == [[1.0], [1.0]]


def test_train_api_refuses_bad_arguments(tmp_path):
    with pytest.raises(trustrl.TrustrlError, match="needs a config"):
        trustrl.train()
    with pytest.raises(trustrl.TrustrlError, match="cannot be switched to ppo"):
        trustrl.train(trustrl.load_config("cartpole-trpo"), algo="ppo", run_dir=tmp_path / "x")
    with pytest.raises(trustrl.TrustrlError, match="unknown checkpoint .first.; choose from best, last or step-<N>"):
        trustrl.load(tmp_path, checkpoint="first")


def test_progress_lines_when_stderr_is_not_a_terminal(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run(
        [sys.executable, "-m", "trustrl", "train", "cartpole-trpo", "--total-steps", "6144", "--run-dir",
         str(tmp_path / "r"), "--progress-every", "0.000001", "--set", "run.eval_every=4096"],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stderr.splitlines() if line.startswith("step ")]
    evaluating = [line for line in lines if " | evaluating " in line]  # an evaluation, shown as it runs
    assert evaluating and all(re.search(r"^step \d+/6144 \(.*\) \| evaluating \d+/\d+ episodes \| ", line)
                              for line in evaluating)
    lines = [line for line in lines if line not in evaluating]
    assert lines[0].startswith("step 0/6144 (0.0%) | eval ")
    assert lines[-1].startswith("step 6144/6144 (100.0%) | ") and "steps/s | return " in lines[-1]
    assert len(lines) == 1 + 6  # the initial evaluation, then one line per update of 1024 steps
    assert "\x1b" not in out.stderr  # no terminal control codes in a log file


def test_progress_lines_are_throttled_and_the_last_one_is_printed():
    stream = io.StringIO()
    lines = ProgressLines(1000, every=3600.0, stream=stream)
    for step in (100, 200, 300):
        lines.log(step, {"episode_return_mean": 1.5}, {"steps_per_s": 50.0})
    lines.close()
    printed = stream.getvalue().splitlines()
    assert [p.split(" |")[0] for p in printed] == ["step 100/1000 (10.0%)", "step 300/1000 (30.0%)"]
    assert "50 steps/s | return 1.5 | 0:00:00 elapsed, 0:00:00 left" in printed[0]


def test_config_lists_every_key_with_its_value_default_and_doc(capsys):
    assert main(["config", "walker2d-trpo", "--set", "algo.max_kl=0.02"]) == 0
    text = capsys.readouterr().out
    cfg = config_mod.load("walker2d-trpo", ["algo.max_kl=0.02"])
    assert config_mod.from_dict(tomllib.loads(text)) == cfg  # the listing is the config itself
    lines = text.splitlines()
    for section, table in cfg.to_dict().items():
        if not isinstance(table, dict):
            continue
        docs = field_docs(type(getattr(cfg, section)))
        for key in table:
            at = next(i for i, line in enumerate(lines) if line.startswith(f"{key} = ") and i > lines.index(f"[{section}]"))
            assert lines[at - 1].startswith("# ") and docs[key].replace("``", "`")[:40] in lines[at - 1]
    assert "# KL radius delta" in text and "(default: 0.01)" in text  # max_kl differs from its default
    assert describe(config_mod.Config()).count("(default:") == 0


def test_hparams_and_config_text_reach_tensorboard(line_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(line_run / "tensorboard"), size_guidance={"tensors": 0})
    events.Reload()
    assert events.SummaryMetadata("_hparams_/experiment").plugin_data.plugin_name == "hparams"
    assert "config/text_summary" in events.Tags()["tensors"]
    assert "train/episode_return_mean" in events.Tags()["scalars"]


def test_wandb_offline_run_mirrors_the_metrics_and_a_resume_continues_it(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    run = tmp_path / "w"
    args = ["--set", "run.wandb=true", "--set", "run.wandb_group=seeds"]
    assert main(["train", "cartpole-trpo", "--run-dir", str(run), "--total-steps", "2048", "--quiet", *args]) == 0
    run_id = (run / "wandb" / "trustrl-run-id").read_text().strip()
    files = list((run / "wandb").glob(f"offline-run-*-{run_id}/run-{run_id}.wandb"))
    assert len(files) == 1 and files[0].stat().st_size > 0
    assert main(["train", "--resume", str(run), "--total-steps", "4096", "--quiet"]) == 0
    assert len(list((run / "wandb").glob(f"offline-run-*-{run_id}/run-{run_id}.wandb"))) == 2  # the same W&B run
    plain = tmp_path / "plain"
    assert main(["train", "cartpole-trpo", "--run-dir", str(plain), "--total-steps", "2048", "--quiet"]) == 0
    head = (run / "metrics.csv").read_bytes()[: len((plain / "metrics.csv").read_bytes())]
    assert head == (plain / "metrics.csv").read_bytes()  # mirroring changes nothing that is learned


def test_resume_carries_a_run_on_into_the_run_that_never_stopped(tmp_path):
    cfg = trustrl.load_config("cartpole-trpo", ["algo.max_kl_schedule=constant"])
    trustrl.train(cfg, total_steps=3072, run_dir=tmp_path / "whole", progress=False)
    first = trustrl.train(cfg, total_steps=2048, run_dir=tmp_path / "part", progress=False)
    assert first.steps == 2048
    with pytest.raises(trustrl.TrustrlError, match="total_steps must be an integer, got '3072'"):
        trustrl.resume(tmp_path / "part", total_steps="3072", progress=False)
    result = trustrl.resume(tmp_path / "part", total_steps=3072, layout=["run.workers=2"], progress=False)
    assert result.steps == 3072 and Path(result.run_dir).resolve() == (tmp_path / "part").resolve()
    assert_extended_is_the_run_in_one_go(tmp_path / "part", tmp_path / "whole", 2048)
    assert tomllib.loads((tmp_path / "part" / "config.toml").read_text())["run"]["total_steps"] == 3072


def test_train_sets_seed_and_length_on_the_config_it_is_given_a_copy_of(tmp_path):
    from trustrl.api import build_config

    cfg = trustrl.load_config("cartpole-trpo")
    built = build_config(cfg, seed=7, total_steps=2048, overrides=["algo.max_kl=0.02"])
    assert (built.run.seed, built.run.total_steps, built.algo.max_kl) == (7, 2048, 0.02)
    assert (cfg.run.seed, cfg.run.total_steps) == (0, 100_000)  # the caller's config is not changed
    with pytest.raises(trustrl.TrustrlError, match="run.seed must be an integer, got 1.5"):
        trustrl.train(cfg, seed=1.5, run_dir=tmp_path / "never")
    with pytest.raises(trustrl.TrustrlError, match="run.total_steps must be > 0, got 0"):
        trustrl.train(cfg, total_steps=0, run_dir=tmp_path / "never")
    with pytest.raises(trustrl.TrustrlError, match="--epochs counts passes over a dataset"):
        trustrl.train(cfg, epochs=3, run_dir=tmp_path / "never")
    assert build_config(cfg, epochs=3, offline="cartpole/none-v0").offline.epochs == 3
    assert not (tmp_path / "never").exists()


def test_the_default_evaluation_seed_is_one_constant():
    import inspect

    from trustrl import episodes, video
    from trustrl.api import evaluate
    from trustrl.cli import build_parser

    seed = episodes.DEFAULT_EVAL_SEED
    assert seed == 1_000_000
    # `is`: each default is the constant itself, not the number written out again
    for function in (evaluate, episodes.evaluate_agent, video.video, video.write_video):
        assert inspect.signature(function).parameters["seed"].default is seed, function.__qualname__
    parser = build_parser()
    assert parser.parse_args(["eval", "run"]).seed is seed
    assert parser.parse_args(["video", "run", "--out", "v.mp4"]).seed is seed

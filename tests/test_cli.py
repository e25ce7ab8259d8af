"""The command line end to end: train a few updates, eval, and every bad input exits 2."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from trustrl.cli import main

SHORT = ["--total-steps", "2048", "--quiet"]


@pytest.fixture(scope="module")
def cartpole_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "c1"
    assert main(["train", "cartpole-trpo", "--seed", "1", "--run-dir", str(run), *SHORT]) == 0
    return run


def test_train_writes_config_command_metrics_and_checkpoints(cartpole_run):
    names = {p.name for p in cartpole_run.iterdir()}
    assert {"config.toml", "command.txt", "metrics.csv", "timing.csv", "tensorboard", "checkpoints"} <= names
    assert "--seed 1" in (cartpole_run / "command.txt").read_text()
    assert "seed = 1" in (cartpole_run / "config.toml").read_text()
    header = (cartpole_run / "metrics.csv").read_text().splitlines()[0].split(",")
    for column in ("step", "episode_return_mean", "kl", "entropy", "surrogate_improvement",
                   "line_search_accepted", "line_search_backtracks", "value_loss", "explained_variance"):
        assert column in header
    assert "steps_per_s" in (cartpole_run / "timing.csv").read_text().splitlines()[0]
    assert (cartpole_run / "checkpoints" / "last.json").is_file()
    assert list((cartpole_run / "tensorboard").iterdir())


def test_checkpoints_are_as_readable_as_every_other_file_the_run_writes(cartpole_run):
    mode = (cartpole_run / "metrics.csv").stat().st_mode & 0o777
    files = list((cartpole_run / "checkpoints").iterdir())
    assert any(f.suffix == ".safetensors" for f in files) and any(f.suffix == ".json" for f in files)
    assert {f.stat().st_mode & 0o777 for f in files} == {mode}


def test_python_dash_m_trustrl_is_the_command_line_and_says_its_version():
    import trustrl

    out = subprocess.run([sys.executable, "-m", "trustrl", "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == f"trustrl {trustrl.__version__}"


def test_eval_prints_one_json_line(cartpole_run, capsys):
    assert main(["eval", str(cartpole_run), "--episodes", "3", "--json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert result["episodes"] == 3 and len(result["returns"]) == 3
    assert result["mean_return"] == pytest.approx(sum(result["returns"]) / 3)
    assert {"std_return", "min_return", "max_return", "mean_length"} <= set(result)


def test_deterministic_eval_is_repeatable(cartpole_run, capsys):
    main(["eval", str(cartpole_run), "--episodes", "2", "--json"])
    main(["eval", str(cartpole_run), "--episodes", "2", "--json"])
    first, second = capsys.readouterr().out.strip().splitlines()
    assert json.loads(first)["returns"] == json.loads(second)["returns"]


def test_existing_run_dir_is_refused_and_left_untouched(cartpole_run, capsys):
    files = lambda: {p: p.stat().st_mtime_ns for p in cartpole_run.rglob("*") if p.name != ".trustrl.lock"}  # noqa: E731
    before = files()
    assert main(["train", "cartpole-trpo", "--run-dir", str(cartpole_run), *SHORT]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert files() == before


def test_overwrite_replaces_a_run(tmp_path):
    run = tmp_path / "r"
    assert main(["train", "cartpole-trpo", "--run-dir", str(run), *SHORT]) == 0
    assert main(["train", "cartpole-trpo", "--run-dir", str(run), "--overwrite", "--seed", "3", *SHORT]) == 0
    assert "seed = 3" in (run / "config.toml").read_text()


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "no-such-preset"], "unknown preset or env id 'no-such-preset'"),
        (["train", "cartpole-trpo", "--set", "env.id=NoSuchEnv-v0"], "unknown environment id 'NoSuchEnv-v0'"),
        (["train", "cartpole-trpo", "--set", "critic.lr=-1"], "critic.lr must be > 0"),
        (["train", "cartpole-trpo", "--set", "algo.max_kl=0"], "algo.max_kl must be > 0"),
        (["train", "cartpole-trpo", "--set", "algo.gamma=1.01"], "algo.gamma must be in (0, 1]"),
        (["train", "cartpole-trpo", "--set", "algo.nosuch=1"], "unknown key algo.nosuch"),
        (["train", "CartPole-v1", "--algo", "sarsa"], "unknown algorithm 'sarsa'; choose from reinforce, a2c, npg, trpo, ppo"),
        (["train", "cartpole-trpo", "--algo", "ppo"], "preset cartpole-trpo is a trpo config; it cannot be switched to ppo"),
        (["train", "cartpole-trpo", "--set", "algo.name=ppo"], "unknown key algo.max_kl"),
    ],
)
def test_bad_input_exits_2_with_one_message_and_writes_nothing(tmp_path, capsys, args, message):
    run = tmp_path / "never"
    assert main([*args, "--run-dir", str(run), *SHORT]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and len(err.splitlines()) == 1
    assert not run.exists()


def test_eval_of_a_missing_run(tmp_path, capsys):
    assert main(["eval", str(tmp_path / "missing")]) == 2
    assert "no run or checkpoint" in capsys.readouterr().err


def test_every_command_that_takes_an_env_id_suggests_the_registered_one(cartpole_run, tmp_path, capsys):
    for args in (["train", "Cartpole-v1", "--run-dir", str(tmp_path / "never"), *SHORT],
                 ["train", "cartpole-trpo", "--set", "env.id=cartpole-v1", "--run-dir", str(tmp_path / "never"),
                  *SHORT],
                 ["eval", str(cartpole_run), "--env", "cartpole-v1"],
                 ["collect", "--random", "--env", "cartpole-v1", "--dataset", "cartpole/random-v0", "--episodes", "1"],
                 ["collect", str(cartpole_run), "--env", "CARTPOLE-V1", "--dataset", "cartpole/x-v0",
                  "--episodes", "1"],
                 ["compare", "Cartpole-v1", "--algos", "trpo", "--out", str(tmp_path / "never")]):
        assert main(args) == 2, args
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: unknown ") and "; did you mean CartPole-v1?" in err, args
        assert len(err.splitlines()) == 1
    assert not (tmp_path / "never").exists()


def test_eval_in_an_env_with_other_spaces_is_refused(cartpole_run, capsys):
    assert main(["eval", str(cartpole_run), "--env", "Acrobot-v1"]) == 2
    assert "was trained on spaces" in capsys.readouterr().err


def test_eval_of_a_tampered_checkpoint(cartpole_run, tmp_path, capsys):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(cartpole_run, copy)
    weights = next((copy / "checkpoints").glob("last-*.safetensors"))
    data = weights.read_bytes()
    weights.write_bytes(data[:-4] + bytes(b ^ 0xFF for b in data[-4:]))  # flip the last bytes
    assert main(["eval", str(copy)]) == 2
    assert "SHA-256" in capsys.readouterr().err


def test_console_script_entry_point(cartpole_run):
    exe = Path(sys.executable).parent / "trustrl"
    out = subprocess.run([str(exe), "eval", str(cartpole_run), "--episodes", "1", "--json"],
                         capture_output=True, text=True, check=True)
    assert json.loads(out.stdout)["episodes"] == 1


def test_train_an_env_id_with_an_algo_uses_its_preset(tmp_path):
    run = tmp_path / "r"
    assert main(["train", "CartPole-v1", "--algo", "reinforce", "--run-dir", str(run), *SHORT]) == 0
    text = (run / "config.toml").read_text()
    assert 'name = "cartpole-reinforce"' in text and 'name = "reinforce"' in text


@pytest.mark.parametrize(
    "env_id, algo, norm_reward",
    [("Acrobot-v1", "ppo", False), ("MountainCarContinuous-v0", "a2c", True), ("CartPole-v1", None, False)],
)
def test_train_an_env_id_without_a_preset_uses_defaults_for_its_action_space(tmp_path, env_id, algo, norm_reward):
    from trustrl import config

    run = tmp_path / "r"
    args = ["--algo", algo] if algo else []
    assert main(["train", env_id, *args, "--run-dir", str(run), "--total-steps", "1024", "--quiet"]) == 0
    cfg = config.load(str(run / "config.toml"))
    assert cfg.env.id == env_id and cfg.algo.name == (algo or "trpo")
    assert cfg.env.norm_reward is norm_reward
    if algo is None:  # CartPole-v1 with the default algorithm is the cartpole-trpo preset
        assert cfg.name == "cartpole-trpo"
    else:
        assert cfg.name == f"{env_id}-{algo}"
        assert cfg.algo == config.ALGO_CONFIGS[algo]()  # that algorithm's own defaults


@pytest.mark.parametrize("env_id, algo, schedule, log_std_init",
                         [("MountainCarContinuous-v0", "trpo", ("linear", 0.03), -0.5),
                          ("MountainCarContinuous-v0", "npg", ("constant", 0.01), 0.0),
                          ("Acrobot-v1", "trpo", ("constant", 0.01), 0.0)])
def test_trpo_on_a_box_env_without_a_preset_gets_the_walker2d_study_settings(env_id, algo, schedule,
                                                                             log_std_init):
    from trustrl import config

    cfg = config.load(env_id, algo=algo)
    assert (cfg.algo.max_kl_schedule, cfg.algo.max_kl) == schedule and cfg.algo.max_kl_final == 0.0
    assert cfg.policy.log_std_init == log_std_init


def test_algo_matching_the_preset_is_accepted():
    from trustrl import config

    assert config.load("cartpole-ppo", algo="ppo") == config.load("cartpole-ppo")


def test_compare_trains_each_algo_and_seed_and_writes_plot_and_table(tmp_path, capsys):
    import csv

    out = tmp_path / "cmp"
    args = ["compare", "cartpole", "--algos", "trpo,ppo", "--seeds", "2", "--out", str(out),
            "--total-steps", "2048", "--eval-episodes", "2"]
    assert main(args) == 0
    for algo in ("trpo", "ppo"):
        for seed in (0, 1):
            assert (out / algo / f"seed{seed}" / "checkpoints" / "last.json").is_file()
            assert f"seed = {seed}" in (out / algo / f"seed{seed}" / "config.toml").read_text()
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = list(csv.DictReader(open(out / "summary.csv")))
    assert [r["algo"] for r in rows] == ["trpo", "ppo"]
    assert all(r["env"] == "CartPole-v1" and r["seeds"] == "2" and r["steps"] == "2048" for r in rows)
    assert all(len(r["eval_return_per_seed"].split(";")) == 2 for r in rows)
    assert "summary.csv" in capsys.readouterr().out
    assert main(args) == 2  # the runs are there: refused without --overwrite
    assert "already holds a run" in capsys.readouterr().err


def test_compare_takes_an_env_id_a_preset_or_a_file_as_train_does(tmp_path, capsys):
    import csv

    from trustrl import config
    from trustrl.api import build_config

    out = tmp_path / "ids"
    assert main(["compare", "Acrobot-v1", "--algos", "trpo,ppo", "--seeds", "1", "--out", str(out),
                 "--total-steps", "4096", "--eval-episodes", "1"]) == 0  # episodes of 500 steps end in the run
    for algo in ("trpo", "ppo"):  # no preset for Acrobot: the defaults `train Acrobot-v1 --algo ALGO` takes
        assert (config.load(str(out / algo / "seed0" / "config.toml"))
                == build_config("Acrobot-v1", algo=algo, total_steps=4096, seed=0))
    assert [r["env"] for r in csv.DictReader(open(out / "summary.csv"))] == ["Acrobot-v1", "Acrobot-v1"]

    mine = tmp_path / "mine.toml"
    mine.write_text(build_config("cartpole-ppo", overrides=["algo.clip_range=0.1"]).to_toml())
    out = tmp_path / "file"
    assert main(["compare", str(mine), "--seeds", "2", "--out", str(out), "--total-steps", "1024",
                 "--eval-episodes", "1"]) == 0  # --algos: the file's own
    rows = list(csv.DictReader(open(out / "summary.csv")))
    assert [(r["algo"], r["seeds"]) for r in rows] == [("ppo", "2")]
    for seed in (0, 1):
        assert config.load(str(out / "ppo" / f"seed{seed}" / "config.toml")).algo.clip_range == 0.1
    assert "summary.csv" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, message",
    [
        (["compare", "lunar", "--algos", "ppo"], "unknown env or preset 'lunar'; compare takes a short env name"),
        (["compare", "cartpole-trpo", "--algos", "ppo"],
         "preset cartpole-trpo is a trpo config; it cannot be switched to ppo (its settings are tuned for trpo); "
         "use preset cartpole-ppo"),
        (["compare", "Acrobot-v1", "--algos", "trpo-vine"], "no trpo-vine preset for Acrobot-v1"),
        (["compare", "walker2d", "--algos", "a2c"], "no preset walker2d-a2c; walker2d has presets for ppo, trpo"),
        (["compare", "cartpole", "--algos", "sarsa"], "unknown algorithm 'sarsa'"),
        (["compare", "cartpole", "--seeds", "0"], "--seeds must be an integer from 1 to 1,000, got 0"),
    ],
)
def test_compare_bad_input_exits_2(tmp_path, capsys, args, message):
    out = tmp_path / "never"
    assert main([*args, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_more_bad_inputs_exit_2_without_writing(tmp_path, capsys):
    """A bad device, an unwritable run directory, an existing video: one message, nothing touched."""
    assert main(["train", "cartpole-trpo", "--set", "run.device=nodevice", "--run-dir", str(tmp_path / "d"), *SHORT]) == 2
    assert "run.device 'nodevice'" in capsys.readouterr().err and not (tmp_path / "d").exists()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["train", "cartpole-trpo", "--run-dir", str(blocker / "run"), *SHORT]) == 2
    assert "cannot write the run directory" in capsys.readouterr().err and blocker.read_text() == "x"


def test_video_refuses_to_replace_a_file(cartpole_run, tmp_path, capsys):
    out = tmp_path / "v.mp4"
    out.write_bytes(b"keep")
    assert main(["video", str(cartpole_run), "--episodes", "1", "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err and out.read_bytes() == b"keep"


def test_checkpoint_with_a_non_integer_step_is_refused(cartpole_run, tmp_path, capsys):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(cartpole_run, copy)
    record = copy / "checkpoints" / "last.json"
    data = json.loads(record.read_text())
    data["step"] = "abc"
    record.write_text(json.dumps(data))
    assert main(["eval", str(copy)]) == 2
    assert "step must be an integer from 0 to 1e+15, got 'abc'" in capsys.readouterr().err


def _record(calls, result):
    """A stand-in for an API function: records the arguments it was called with, returns ``result``."""
    def fake(*args, **kwargs):
        calls.append((args, kwargs))
        return result
    return fake


def _train_result(run_dir):
    from trustrl.run import TrainResult

    return TrainResult(run_dir=run_dir, steps=2048, updates=2, seconds=3.0, best_return=20.0, last_return=15.0,
                       name="cartpole-trpo")


def test_train_and_resume_call_the_api_with_typed_arguments(tmp_path, monkeypatch, capsys):
    from trustrl import api

    calls = []
    monkeypatch.setattr(api, "train", _record(calls, _train_result(tmp_path / "r")))
    assert main(["train", "cartpole-trpo", "--seed", "7", "--total-steps", "2048", "--set", "algo.max_kl=0.02",
                 "--run-dir", str(tmp_path / "r"), "--quiet"]) == 0
    (args, kwargs), = calls
    assert args == ("cartpole-trpo",)
    assert (kwargs["seed"], kwargs["total_steps"], kwargs["epochs"], kwargs["offline"]) == (7, 2048, None, None)
    assert kwargs["overrides"] == ["algo.max_kl=0.02"] and kwargs["run_dir"] == tmp_path / "r"
    assert kwargs["progress"] is False and kwargs["command"][:2] == ["trustrl", "train"]
    assert "trained cartpole-trpo for 2048 steps (2 updates)" in capsys.readouterr().out

    calls.clear()
    monkeypatch.setattr(api, "resume", _record(calls, _train_result(tmp_path / "r")))
    assert main(["train", "--resume", str(tmp_path / "r"), "--total-steps", "4096", "--set", "run.workers=2",
                 "--env-kwarg", "xml_file=/m.xml", "--progress-every", "5"]) == 0
    (args, kwargs), = calls
    assert args == (tmp_path / "r",)
    assert (kwargs["total_steps"], kwargs["epochs"], kwargs["layout"]) == (4096, None, ["run.workers=2"])
    assert kwargs["env_kwargs"] == {"xml_file": "/m.xml"} and kwargs["progress"] == 5.0


def test_eval_calls_the_api_with_typed_arguments(tmp_path, monkeypatch, capsys):
    from trustrl import api
    from trustrl.episodes import DEFAULT_EVAL_SEED, EvalResult

    calls = []
    result = EvalResult(10.0, 0.0, 10.0, 10.0, 10.0, 2, [10.0, 10.0], [10, 10], False, "c", 5, "CartPole-v1")
    monkeypatch.setattr(api, "evaluate", _record(calls, result))
    assert main(["eval", str(tmp_path), "--episodes", "2", "--checkpoint", "best", "--stochastic",
                 "--env-kwarg", "sutton_barto_reward=true"]) == 0
    (args, kwargs), = calls
    assert args == (tmp_path, 2)
    assert kwargs == {"seed": DEFAULT_EVAL_SEED, "deterministic": False, "checkpoint": "best", "env": None,
                      "env_kwargs": {"sutton_barto_reward": True}, "render": False}
    assert "CartPole-v1 best checkpoint (step 5), 2 stochastic episodes: return 10.0" in capsys.readouterr().out

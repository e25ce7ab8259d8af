"""`trustrl tune`: a tiny CartPole study with pruning, a study that resumes, and bad --param input."""

import csv

import optuna
import pytest

from trustrl.cli import main
from trustrl.errors import ConfigError
from trustrl.search_space import Param, parse_param
from trustrl.tune import tune

SEARCH = ["algo.max_kl=0.02,0.0000001"]  # a step size that learns, and one that barely moves


def test_a_tiny_study_prunes_a_weak_trial_and_every_trial_is_a_run(tmp_path, capsys):
    out = tmp_path / "study"
    assert main(["tune", "cartpole-trpo", "--param", SEARCH[0], "--trials", "3", "--total-steps", "8192",
                 "--out", str(out), "--prune-after", "1", "--sampler-seed", "0"]) == 0
    printed = capsys.readouterr().out
    assert f"study {out}: 2 complete, 1 pruned" in printed
    with open(out / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    by_trial = {int(r["trial"]): r for r in rows}
    assert [by_trial[t]["state"] for t in range(3)] == ["complete", "complete", "pruned"]
    assert by_trial[1]["algo.max_kl"] == "0.02" and float(by_trial[1]["value"]) >= 200  # a random policy: ~20
    assert by_trial[2]["algo.max_kl"] == "1e-07"  # below the median of the finished trials at the same step
    assert rows[0]["trial"] == "1"  # the best first
    # each trial is an ordinary run directory, its score the run's last evaluation: its final policy's
    run = out / "trial-0001" / "seed0"
    with open(run / "metrics.csv") as f:
        metrics = list(csv.DictReader(f))
    evals = [float(r["eval_return_mean"]) for r in metrics if r["eval_return_mean"] != "nan"]
    assert evals[-1] == float(by_trial[1]["value"]) == float(metrics[-1]["eval_return_mean"]) and len(evals) >= 2
    assert main(["eval", str(run), "--episodes", "2"]) == 0


def test_a_study_continues_to_the_trials_asked_and_fails_the_trial_a_stop_cut_off(tmp_path):
    out = tmp_path / "study"
    kwargs = dict(overrides=["run.total_steps=4096"], prune=False, log=lambda message: None)
    first = tune("cartpole-trpo", ["algo.max_kl=log:0.001:0.05"], 2, out, **kwargs)
    assert [t["state"] for t in first.trials] == ["complete", "complete"]
    study = optuna.load_study(study_name="trustrl", storage=f"sqlite:///{out / 'study.db'}")
    study.ask()  # as a study killed mid-trial leaves it: running forever
    again = tune("cartpole-trpo", ["algo.max_kl=log:0.001:0.05"], 4, out, **kwargs)
    assert [t["state"] for t in again.trials] == ["complete", "complete", "fail", "complete"]
    drawn = [t["params"]["algo.max_kl"] for t in again.trials if t["state"] == "complete"]
    assert len(set(drawn)) == 3  # the continued study does not replay the draws it made before
    assert again.best["value"] == max(t["value"] for t in again.trials if t["state"] == "complete")
    with pytest.raises(ConfigError, match="was started with another config"):
        tune("cartpole-trpo", ["algo.max_kl=log:0.001:0.1"], 5, out, **kwargs)


def test_trials_run_in_parallel_processes(tmp_path):
    result = tune("cartpole-trpo", ["algo.gae_lambda=float:0.9:0.99"], 2, tmp_path / "s", jobs=2,
                  overrides=["run.total_steps=2048"], prune=False, log=lambda message: None)
    assert sorted(t["state"] for t in result.trials) == ["complete", "complete"]
    assert all((tmp_path / "s" / f"trial-{t['trial']:04d}" / "seed0" / "checkpoints" / "last.json").is_file()
               for t in result.trials)


@pytest.mark.parametrize("param, message", [
    ("algo.max_kl", "--param expects KEY=SPEC"),
    ("max_kl=log:0.001:0.1", "the key must be section.key (e.g. algo.max_kl); did you mean algo.max_kl?"),
    ("total_steps=int:1000:2000", "the key must be section.key (e.g. algo.max_kl); did you mean run.total_steps?"),
    ("algo.max_kl=log:0.1:0.001", "LOW must be below HIGH"),
    ("algo.max_kl=log:0:0.1", "a log range needs LOW > 0"),
    ("critic.epochs=int:1.5:4", "an integer range needs integer ends"),
    ("algo.max_kl=lgo:0.001:0.1", "unknown range kind 'lgo'"),
    ("algo.max_kl=log:a:b", "a range is log:LOW:HIGH with two numbers"),
    ("env.norm_obs=true", "two or more distinct choices"),
    ("env.norm_obs=true,true", "two or more distinct choices"),
    ("run.seed=int:0:9", "the seeds of a trial are --seeds"),
    ("algo.nosuch=log:0.001:0.1", "--param algo.nosuch=0.001: unknown key algo.nosuch"),
    ("algo.gamma=float:0.5:2", "--param algo.gamma=2.0: algo.gamma must be in (0, 1], got 2.0"),
    ("policy.activation=tanh,sigmoid", "policy.activation must be one of tanh, relu"),
])  # fmt: skip
def test_bad_param_input_is_one_error_before_any_trial(tmp_path, capsys, param, message):
    assert main(["tune", "cartpole-trpo", "--param", param, "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "s").exists()


def test_more_bad_tune_input(tmp_path, capsys):
    for args, message in [([], "at least one --param"), (["--param", SEARCH[0], "--trials", "0"], "--trials must be"),
                          (["--param", SEARCH[0], "--jobs", "1000"], "--jobs must be"),
                          (["--param", SEARCH[0], "--param", SEARCH[0]], "is given twice")]:
        assert main(["tune", "cartpole-trpo", "--out", str(tmp_path / "s"), *args]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_param_forms():
    assert parse_param("algo.max_kl=log:0.005:0.05") == Param("algo.max_kl", "log", 0.005, 0.05)
    assert parse_param("run.n_steps=logint:128:2048") == Param("run.n_steps", "logint", 128, 2048)
    assert parse_param("env.norm_reward=true,false").choices == (True, False)
    assert parse_param("policy.hidden=[64,64]|[256, 256]").choices == ([64, 64], [256, 256])
    assert parse_param("policy.activation=tanh,relu").choices == ("tanh", "relu")
    assert parse_param("policy.hidden=[64,64]|[256,256]").override([64, 64]) == "policy.hidden=[64, 64]"

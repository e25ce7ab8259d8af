"""Resume: a run stopped (or killed) and continued with --resume is the run that never stopped."""

import json
from pathlib import Path

import pytest
from continued import assert_extended_is_the_run_in_one_go
from killing import train_until_first_checkpoint_then_kill

from trustrl import checkpoint, config
from trustrl.cli import main
from trustrl.run import resume, train


def _weights(run: Path, tag: str = "last") -> tuple[str, str]:
    record = json.loads((run / "checkpoints" / f"{tag}.json").read_text())
    return record["weights"], record["weights_sha256"]


def _files(run: Path) -> dict[str, str]:
    return {name: (run / name).read_text() for name in ("metrics.csv",)}


@pytest.mark.parametrize(
    "preset, overrides, batch",
    [
        # evaluations at 1.5k, 3k (cartpole, pendulum) and 768, 1536 (walker): the split is off the schedule, so
        # the first part's final evaluation is the one row the run in one go does not have
        ("cartpole-trpo", ["env.n_envs=4", "run.n_steps=128", "run.eval_every=1536", "run.eval_episodes=2"], 512),
        ("pendulum-ppo", ["env.n_envs=2", "run.n_steps=256", "run.eval_every=1536", "run.eval_episodes=1"], 512),
        ("walker2d-trpo-notebook", ["run.n_steps=128", "critic.epochs=2", "run.eval_every=768", "run.eval_episodes=1"], 256),
        # the Fisher rows' own random stream carries over too
        ("walker2d-trpo", ["env.n_envs=2", "run.n_steps=128", "algo.fvp_samples=64", "algo.max_kl_schedule=constant",
                           "critic.epochs=2", "run.eval_every=768", "run.eval_episodes=1"], 256),
        # the observation statistics stop learning after the split: the resumed part knows when
        ("walker2d-trpo", ["env.n_envs=2", "run.n_steps=128", "env.norm_obs_steps=1280",
                           "algo.max_kl_schedule=constant", "critic.epochs=2",
                           "run.eval_every=768", "run.eval_episodes=1"], 256),
    ],
)
def test_k_updates_then_resume_for_k_more_is_the_run_in_one_go(tmp_path, preset, overrides, batch):
    k = 4
    common = [*overrides, "run.checkpoint_every=3", "run.seed=3"]
    train(config.load(preset, [*common, f"run.total_steps={2 * k * batch}"]), tmp_path / "whole", progress=False)
    train(config.load(preset, [*common, f"run.total_steps={k * batch}"]), tmp_path / "split", progress=False)
    result = resume(tmp_path / "split", total_steps=2 * k * batch, progress=False)
    assert result.updates == 2 * k and result.steps == 2 * k * batch and result.notes == []
    assert_extended_is_the_run_in_one_go(tmp_path / "split", tmp_path / "whole", k * batch)
    whole = checkpoint.load(tmp_path / "whole")
    split = checkpoint.load(tmp_path / "split")
    assert split.obs_norm == whole.obs_norm and split.step == whole.step
    assert f"total_steps = {2 * k * batch}\n" in (tmp_path / "split" / "config.toml").read_text()
    assert len((tmp_path / "split" / "command.txt").read_text().splitlines()) == 2


@pytest.mark.parametrize("schedule", ["constant", "linear"])
def test_resume_of_a_run_killed_mid_training_gives_the_uninterrupted_run(tmp_path, schedule):
    """kill -9 at an arbitrary point, --resume from the last checkpoint: rows written after it are replaced,
    and the finished run is byte for byte the one that was never killed (a shrinking trust region too)."""
    args = ["cartpole-trpo", "--total-steps", "24576", "--seed", "1", "--quiet",
            "--set", f"algo.max_kl_schedule={schedule}", "--set", "run.checkpoint_every=2",
            "--set", "run.eval_every=4096", "--set", "run.eval_episodes=2"]
    assert main(["train", *args, "--run-dir", str(tmp_path / "whole")]) == 0
    killed = tmp_path / "killed"
    train_until_first_checkpoint_then_kill(args, killed)
    stopped_at = checkpoint.load(killed).update
    assert 2 <= stopped_at < 24, "the kill should land mid-run"
    assert main(["train", "--resume", str(killed), "--quiet"]) == 0
    assert (killed / "metrics.csv").read_text() == (tmp_path / "whole" / "metrics.csv").read_text()
    assert _weights(killed) == _weights(tmp_path / "whole")


def test_resume_continues_with_fresh_episodes_where_the_env_cannot_be_captured(tmp_path):
    common = ["env.n_envs=2", "run.n_steps=64", 'env.vectorization="async"', "run.eval_every=0"]
    train(config.load("cartpole-trpo", [*common, "run.total_steps=256"]), tmp_path / "r", progress=False)
    notes = []
    result = resume(tmp_path / "r", total_steps=512, progress=False, log=notes.append)
    assert result.steps == 512 and result.updates == 4
    assert any("resumed with fresh episodes" in n for n in notes)


def test_resume_refusals_are_one_clear_error(tmp_path, capsys):
    run, annealed = tmp_path / "r", tmp_path / "annealed"
    train(config.load("cartpole-trpo", ["run.total_steps=1024", "run.n_steps=128"]), run, progress=False)
    train(config.load("cartpole-trpo", ["run.total_steps=1024", "run.n_steps=128", "algo.max_kl_schedule=linear"]),
          annealed, progress=False)
    before = {p: p.read_bytes() for d in (run, annealed) for p in d.rglob("*") if p.is_file()}
    cases = [
        (["train", "--resume", str(annealed), "--total-steps", "2048"], "resume it without --total-steps"),
        (["train", "--resume", str(run)], "already trained 1024 steps"),
        (["train", "--resume", str(run), "--total-steps", "512"], "already trained 1024 steps"),
        (["train", "cartpole-trpo", "--resume", str(run)], "cannot be combined with a config (cartpole-trpo)"),
        (["train", "--resume", str(run), "--seed", "0"], "cannot be combined with --seed"),
        (["train", "--resume", str(run), "--overwrite"], "cannot be combined with --overwrite"),
        (["train", "--resume", str(run / "checkpoints" / "best.json")], "takes a run directory"),
        (["train", "--resume", str(run), "--epochs", "3"], "this run trained online"),
        (["train", "--resume", str(tmp_path / "nothing")], "no run or checkpoint"),
    ]
    for args, message in cases:
        assert main(args) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and message in err and len(err.splitlines()) == 1, (args, err)
    assert {p: p.read_bytes() for d in (run, annealed) for p in d.rglob("*") if p.is_file()} == before


def test_a_checkpoint_without_training_state_is_refused_for_resume(tmp_path, capsys):
    run = tmp_path / "r"
    train(config.load("cartpole-trpo", ["run.total_steps=1024", "run.n_steps=128"]), run, progress=False)
    record_path = run / "checkpoints" / "last.json"
    record = json.loads(record_path.read_text())
    del record["state"]  # as an earlier trustrl wrote it
    record_path.write_text(json.dumps(record))
    assert main(["train", "--resume", str(run), "--total-steps", "2048"]) == 2
    assert "holds no training state" in capsys.readouterr().err
    assert main(["eval", str(run), "--episodes", "1"]) == 0  # still a good checkpoint to evaluate


def test_resume_refuses_a_checkpoint_whose_state_does_not_fit_and_writes_nothing(tmp_path, capsys):
    run = tmp_path / "r"
    train(config.load("cartpole-trpo", ["run.total_steps=1024", "run.n_steps=128"]), run, progress=False)
    record_path = run / "checkpoints" / "last.json"
    good = record_path.read_text()
    for broken in ({"raw_obs": [[0.0] * 4] * 3}, {"ep_return": [0.0]}, "obs_norm", None):
        record = json.loads(good)
        if broken is None:
            record["state"]["loop"] = [1]
        elif broken == "obs_norm":
            record["state"]["sampler"]["obs_norm"]["mean"] = [0.0] * 3
        else:
            record["state"]["sampler"].update(broken)
        record_path.write_text(json.dumps(record))
        before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
        assert main(["train", "--resume", str(run), "--total-steps", "2048"]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: checkpoint") and len(err.splitlines()) == 1, err
        assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def test_resume_of_a_directory_holding_a_loose_checkpoint_writes_nothing_beside_it(tmp_path, capsys):
    run = tmp_path / "r"
    train(config.load("cartpole-trpo", ["run.total_steps=1024", "run.n_steps=128"]), run, progress=False)
    loose = tmp_path / "parent" / "loose"
    loose.mkdir(parents=True)
    for f in (run / "checkpoints").glob("last*"):
        (loose / f.name).write_bytes(f.read_bytes())
    assert main(["train", "--resume", str(loose), "--total-steps", "2048"]) == 2
    assert "takes a run directory" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "parent").iterdir()) == ["loose"]

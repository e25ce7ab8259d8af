"""Callbacks: called after each update with its row and the acting policy; a stop or an error leaves the run
resumable into the run that never stopped, and a kept copy loads like any checkpoint."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from continued import rows, weights

import trustrl
from trustrl import checkpoint
from trustrl.callbacks import SaveEvery, StopAtReturn
from trustrl.cli import main
from trustrl.envs import make_env
from trustrl.episodes import run_episodes
from trustrl.run.evaluation import training_eval_seeds

SHORT = ["env.n_envs=4", "run.n_steps=128", "run.eval_every=1024", "run.eval_episodes=2", "run.checkpoint_every=3",
         "algo.max_kl_schedule=constant"]  # batches of 512 steps; evaluations at 0, 1024, 2048, ... and the end
OBS = np.random.default_rng(0).normal(size=(16, 4)).astype(np.float32)


def _train(run: Path, total_steps: int = 4096, overrides=(), **kwargs):
    return trustrl.train("cartpole-trpo", seed=2, total_steps=total_steps, overrides=[*SHORT, *overrides],
                         run_dir=run, progress=False, **kwargs)


@pytest.fixture(scope="module")
def whole(tmp_path_factory) -> Path:
    """The run no callback touched."""
    run = tmp_path_factory.mktemp("whole") / "run"
    _train(run)
    return run


def _without(rows_: list[dict], step: int) -> list[dict]:
    """The rows but the evaluation-only row a stop at ``step`` adds."""
    extra = [i for i, r in enumerate(rows_) if r["step"] == str(step) and r["episodes"] == "nan"]
    assert len(extra) == 1
    return rows_[:extra[0]] + rows_[extra[0] + 1:]


def test_a_callback_that_never_stops_changes_no_number(whole, tmp_path):
    calls = []
    result = _train(tmp_path / "r", callbacks=[lambda step, metrics, agent: calls.append((step, dict(metrics)))])
    assert not result.stopped_by_callback and result.steps == 4096
    written = rows(tmp_path / "r")
    assert rows(tmp_path / "r") == rows(whole)
    assert weights(tmp_path / "r", "last") == weights(whole, "last")
    assert weights(tmp_path / "r", "best") == weights(whole, "best")
    # one call per update, after its row, with that row: the starting evaluation at step 0 is not an update
    assert [step for step, _ in calls] == [int(r["step"]) for r in written[1:]] == list(range(512, 4097, 512))
    for (step, metrics), row in zip(calls, written[1:]):
        assert {k: float(v) for k, v in row.items() if k != "step"} == pytest.approx(metrics, nan_ok=True)


@pytest.mark.parametrize("overlap", [True, False])
def test_a_stop_saves_the_policy_the_callback_saw_as_last_evaluates_it_and_resumes_into_the_whole_run(
        whole, tmp_path, overlap):
    run, seen = tmp_path / "r", {}

    def stop_at_1536(step, metrics, agent):
        seen[step] = agent.act_batch(OBS)
        torch.rand(3)  # the global torch stream is not the run's
        return step == 1536  # off the evaluation schedule and the checkpoint cadence (every 3rd update)

    result = _train(run, overrides=[f"run.overlap_critic={str(overlap).lower()}"], callbacks=[stop_at_1536])
    assert result.stopped_by_callback and result.steps == 1536 and result.updates == 3
    last = checkpoint.load(run)
    assert (last.step, last.update) == (1536, 3)
    np.testing.assert_array_equal(trustrl.load(run).act_batch(OBS), seen[1536])
    # evaluated as a final policy: a row of its own at the stop, on the run's evaluation episodes
    stop_row = [r for r in rows(run) if r["step"] == "1536"][-1]
    env = make_env(trustrl.load(run).config.env)
    returns, _ = run_episodes(trustrl.load(run), env, training_eval_seeds(2, 2), deterministic=True)
    env.close()
    assert float(stop_row["eval_return_mean"]) == pytest.approx(float(np.mean(returns)))
    assert result.eval_last == pytest.approx(float(np.mean(returns)))
    # continued past the stop, it is the run that never stopped, but for that one evaluation row
    again = trustrl.resume(run, progress=False)
    assert again.steps == 4096 and not again.stopped_by_callback
    assert _without(rows(run), 1536) == rows(whole)
    assert weights(run, "last") == weights(whole, "last")


def test_stop_at_return_stops_at_the_first_evaluation_reaching_the_threshold(whole, tmp_path):
    evaluated = [(int(r["step"]), float(r["eval_return_mean"])) for r in rows(whole)[1:-1]
                 if r["eval_return_mean"] != "nan"]
    threshold = max(value for _, value in evaluated)
    stop = next(step for step, value in evaluated if value >= threshold)
    result = _train(tmp_path / "r", callbacks=[StopAtReturn(threshold)])
    assert result.stopped_by_callback and result.steps == stop
    assert rows(tmp_path / "r") == [r for r in rows(whole) if int(r["step"]) <= stop]  # evaluated already: no row added
    assert checkpoint.load(tmp_path / "r").step == stop
    assert json.loads((tmp_path / "r" / "checkpoints" / "best.json").read_text())["step"] == stop
    assert result.eval_last == threshold == result.best_return


def test_an_exception_in_a_callback_propagates_and_leaves_the_run_resumable(whole, tmp_path):
    run = tmp_path / "r"

    def fail_at_1024(step, metrics, agent):
        if step == 1024:
            raise RuntimeError("a callback that fails")

    with pytest.raises(RuntimeError, match="a callback that fails"):
        _train(run, callbacks=[fail_at_1024])
    assert checkpoint.load(run).step == 1024  # not on the checkpoint cadence: saved for the error
    trustrl.resume(run, progress=False)
    assert rows(run) == rows(whole) and weights(run, "last") == weights(whole, "last")


def test_stop_at_return_on_a_column_the_run_does_not_record_is_an_error(tmp_path):
    with pytest.raises(trustrl.TrustrlError, match="need run.eval_every > 0"):
        _train(tmp_path / "r", total_steps=1024, overrides=["run.eval_every=0"], callbacks=[StopAtReturn(100.0)])
    result = _train(tmp_path / "t", total_steps=4096, overrides=["run.eval_every=0"],
                    callbacks=[StopAtReturn(0.0, column="episode_return_mean")])
    assert result.stopped_by_callback and result.steps == 512
    agents = []
    _train(tmp_path / "k", total_steps=512, callbacks=[lambda step, metrics, agent: agents.append(agent)])
    with pytest.raises(trustrl.TrustrlError, match="this agent's update is over"):
        agents[0].keep()  # a copy kept later would hold a policy of another update
    assert not list((tmp_path / "k" / "checkpoints").glob("step-*"))
    with pytest.raises(trustrl.TrustrlError, match="a number to stop at"):
        StopAtReturn("high")
    with pytest.raises(trustrl.TrustrlError, match="positive whole number of steps"):
        SaveEvery(0)
    with pytest.raises(trustrl.TrustrlError, match="a function of .step, metrics, agent."):
        trustrl.train("cartpole-trpo", run_dir=tmp_path / "never", callbacks=[3])
    assert not (tmp_path / "never").exists()


def test_save_every_keeps_the_policy_of_each_crossing_loadable_by_name(whole, tmp_path, capsys):
    saver = SaveEvery(1000)
    _train(tmp_path / "r", callbacks=[saver])
    assert saver.kept == ["step-1024", "step-2048", "step-3072", "step-4096"]  # the updates crossing 1000, 2000, ...
    assert rows(tmp_path / "r") == rows(whole)
    kept = checkpoint.load(tmp_path / "r", "step-2048")
    _train(tmp_path / "short", total_steps=2048)  # the same run, ended at 2048
    ended = checkpoint.load(tmp_path / "short")
    assert kept.step == ended.step == 2048 and kept.obs_norm == ended.obs_norm
    assert all(torch.equal(kept.policy_state[k], v) for k, v in ended.policy_state.items())
    np.testing.assert_array_equal(trustrl.load(tmp_path / "r", "step-2048").act_batch(OBS),
                                  trustrl.load(tmp_path / "short").act_batch(OBS))
    assert main(["eval", str(tmp_path / "r"), "--checkpoint", "step-1024", "--episodes", "1"]) == 0
    assert "step-1024 checkpoint (step 1024)" in capsys.readouterr().out
    for bad, message in (("step-5", "no 'step-5' checkpoint"), ("step-x", "unknown checkpoint 'step-x'"),
                         ("../last", "unknown checkpoint '../last'")):
        assert main(["eval", str(tmp_path / "r"), "--checkpoint", bad, "--episodes", "1"]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and message in err and len(err.splitlines()) == 1, err

"""The run loop: evaluation during training, best by evaluation, one trust-region step for TRPO and offline TRPO."""

import csv
import io
import json
import math

import numpy as np
import pytest
import torch

from trustrl import config, trust_region
from trustrl.api import load
from trustrl.envs import make_env
from trustrl.episodes import run_episodes
from trustrl.errors import TrustrlError
from trustrl.run import train
from trustrl.run.evaluation import training_eval_seeds


def _replayed(run, tag, seeds):
    """The checkpoint's policy played from ``seeds``, as the evaluation during training plays it."""
    agent = load(run, tag)
    env = make_env(agent.config.env)
    try:
        return float(np.mean(run_episodes(agent, env, seeds, deterministic=True)[0]))
    finally:
        env.close()


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_periodic_evaluation_is_in_metrics_csv_and_tensorboard_and_picks_best(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "r"
    cfg = config.load("cartpole-trpo", ["run.total_steps=7680", "env.n_envs=4", "run.n_steps=128",
                                        "run.eval_every=1500", "run.eval_episodes=3", "run.seed=2"])
    result = train(cfg, run, progress=False)
    rows = _rows(run / "metrics.csv")
    evaluated = [r for r in rows if math.isfinite(float(r["eval_return_mean"]))]
    # the starting policy (step 0), then the first batch to cross each multiple of 1500 env steps
    assert [int(r["step"]) for r in evaluated] == [0, 1536, 3072, 4608, 6144, 7680]
    assert rows[0]["update"] == "0" and int(rows[-1]["step"]) == 7680 == result.steps  # eval steps are not counted
    timing = _rows(run / "timing.csv")
    assert all(float(r["eval_s"]) > 0 for r in timing if r["step"] in {e["step"] for e in evaluated})

    best = max(evaluated, key=lambda r: float(r["eval_return_mean"]))  # first of equals: strictly better replaces
    record = json.loads((run / "checkpoints" / "best.json").read_text())
    assert record["step"] == int(best["step"]) and record["extra"]["eval_return_mean"] == float(best["eval_return_mean"])
    assert result.best_return == float(best["eval_return_mean"])
    # the evaluation is reproducible from the checkpoint: same episodes, same numbers
    seeds = training_eval_seeds(2, 3)
    assert _replayed(run, "best", seeds) == float(best["eval_return_mean"])
    assert _replayed(run, "last", seeds) == float(rows[-1]["eval_return_mean"])

    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    tags = events.Tags()["scalars"]
    assert {"eval/return_mean", "eval/return_std", "train/episode_return_mean", "time/eval_s"} <= set(tags)
    logged = [(e.step, e.value) for e in events.Scalars("eval/return_mean")]
    assert [s for s, _ in logged] == [int(r["step"]) for r in evaluated]
    np.testing.assert_allclose([v for _, v in logged], [float(r["eval_return_mean"]) for r in evaluated], rtol=1e-6)


def test_without_evaluation_best_follows_the_rolling_training_return(tmp_path):
    run = tmp_path / "r"
    cfg = config.load("cartpole-trpo", ["run.total_steps=8192", "run.eval_every=0", "run.best_window=5"])
    train(cfg, run, progress=False)
    header = (run / "metrics.csv").read_text().splitlines()[0]
    assert "eval_return_mean" not in header
    record = json.loads((run / "checkpoints" / "best.json").read_text())
    assert math.isfinite(record["extra"]["recent_return_mean"])


@pytest.mark.parametrize("skip_last", [False, True])
def test_the_final_policy_is_evaluated_and_counted_for_best_and_the_summary(tmp_path, capsys, monkeypatch, skip_last):
    """15k steps of cartpole-trpo, which evaluates every 20k: the final policy used to go unevaluated, and
    ``best`` stayed the untrained one. A last batch dropped for a NaN still leaves its policy evaluated."""
    from trustrl.cli import main

    if skip_last:  # the last batch is dropped (run.on_nonfinite = "skip"): the policy before it is the final one
        from trustrl.samplers.vector import VectorSampler

        collect = VectorSampler.collect
        calls = []

        def collect_dropping_the_last(self, policy, last=False, snapshot_at=None):
            calls.append(last)
            if last:
                from trustrl.errors import NonFiniteError

                raise NonFiniteError("a non-finite reward (test)")
            return collect(self, policy, last, snapshot_at)

        monkeypatch.setattr(VectorSampler, "collect", collect_dropping_the_last)
    run = tmp_path / "r"
    extra = ["--set", "run.on_nonfinite=skip"] if skip_last else []
    assert main(["train", "cartpole-trpo", "--total-steps", "15000", "--run-dir", str(run), *extra]) == 0
    rows = _rows(run / "metrics.csv")
    evaluated = [r for r in rows if math.isfinite(float(r["eval_return_mean"]))]
    assert [int(r["step"]) for r in evaluated] == [0, 13312 if skip_last else 14336]  # the start, and the end
    assert evaluated[-1] is rows[-1] and int(rows[-1]["update"]) == 14
    start, final = (float(r["eval_return_mean"]) for r in evaluated)
    assert final > start  # what the run learned in 15k steps
    record = json.loads((run / "checkpoints" / "best.json").read_text())
    assert record["step"] == int(rows[-1]["step"]) and record["extra"]["eval_return_mean"] == final
    seeds = training_eval_seeds(0, 10)
    assert _replayed(run, "best", seeds) == final == _replayed(run, "last", seeds)
    printed = capsys.readouterr()
    summary = printed.out + printed.err
    assert f"best {final:.1f}" in summary and f"start {start:.1f}, last {final:.1f}" in summary


def test_without_evaluation_asynchronous_best_holds_the_policy_that_played_its_episodes(tmp_path, monkeypatch):
    """An asynchronous batch was played by the policy one update older than the one about to learn from it."""
    from trustrl.run.learner import Learner

    before = {}  # update k -> the policy's weights going into it (those that came out of update k - 1)
    update = Learner.update

    def recording(self, batch, progress):
        before[len(before) + 1] = {k: v.clone() for k, v in self.policy.state_dict().items()}
        return update(self, batch, progress)

    monkeypatch.setattr(Learner, "update", recording)
    run = tmp_path / "r"
    cfg = config.load("cartpole-trpo", ["run.total_steps=16384", "env.n_envs=4", "run.n_steps=128",
                                        "run.eval_every=0", "run.best_window=10", "run.async_sampling=true"])
    train(cfg, run, progress=False)
    record = json.loads((run / "checkpoints" / "best.json").read_text())
    chosen_by = record["step"] // 512  # the update whose batch's episodes made the best window
    assert chosen_by >= 3, "the test needs a best chosen after the first updates"
    saved = load(run, "best").policy.state_dict()
    played, newer = before[chosen_by - 1], before[chosen_by]  # out of updates chosen_by - 2 and chosen_by - 1
    assert all(torch.equal(saved[k], played[k]) for k in saved)
    assert not all(torch.equal(saved[k], newer[k]) for k in saved)
    assert record["update"] == chosen_by - 2


def test_trpo_and_offline_trpo_take_the_one_trust_region_step(monkeypatch):
    """Both algorithm files call trustrl.trust_region.trust_region_step; neither has a copy of its own."""
    import trustrl.algos.offline_trpo as offline_trpo
    import trustrl.algos.trpo as trpo
    from trustrl.algos import TRPO, OfflineTRPO
    from trustrl.batch import Batch
    from trustrl.config import CriticConfig, OfflineConfig, PolicyConfig, TRPOConfig
    from trustrl.nets import CategoricalPolicy, ValueNet

    assert trpo.trust_region_step is offline_trpo.trust_region_step is trust_region.trust_region_step
    calls = []

    def spy(*args, **kwargs):
        calls.append(kwargs.get("constraint_limit"))
        return trust_region.trust_region_step(*args, **kwargs)

    monkeypatch.setattr(trpo, "trust_region_step", spy)
    monkeypatch.setattr(offline_trpo, "trust_region_step", spy)
    torch.manual_seed(0)
    T, N = 16, 2
    obs = torch.randn(T, N, 3)
    actions = torch.randint(0, 2, (T, N))
    batch = Batch(obs=obs, actions=actions, log_probs=torch.full((T, N), -0.7), rewards=torch.ones(T, N),
                  terminated=torch.zeros(T, N, dtype=torch.bool), truncated=torch.zeros(T, N, dtype=torch.bool),
                  last_obs=torch.zeros(N, 3), final_obs=torch.zeros(0, 3),
                  final_index=torch.zeros(0, 2, dtype=torch.long), behaviour_log_probs=torch.full((T, N), -0.7),
                  behaviour_params={"logits": torch.zeros(T, N, 2)}, valid=torch.ones(T, N, dtype=torch.bool))
    batch.advantages = torch.randn(T, N)
    batch.returns = torch.randn(T, N)
    for algo in (TRPO(CategoricalPolicy(3, 2, PolicyConfig()), ValueNet(3, CriticConfig()), TRPOConfig(),
                      CriticConfig(), torch.Generator()),
                 OfflineTRPO(CategoricalPolicy(3, 2, PolicyConfig()), ValueNet(3, CriticConfig()), TRPOConfig(),
                             CriticConfig(), torch.Generator(), OfflineConfig(bc_epochs=1, critic_rounds=1))):
        algo.prepare(batch)
        algo.update(batch)
    assert calls == [None, 1.0]  # TRPO bounds the KL itself; offline TRPO both regions as a ratio <= 1


@pytest.mark.parametrize("preset", ["cartpole-trpo", "pendulum-ppo"])
def test_evaluation_changes_no_training_number(tmp_path, preset):
    """Evaluating draws no random number of the run's and moves no statistic: training columns are unchanged."""
    base = ["run.total_steps=4096", "env.n_envs=2", "run.n_steps=256"]
    train(config.load(preset, [*base, "run.eval_every=0"]), tmp_path / "off", progress=False)
    train(config.load(preset, [*base, "run.eval_every=1024", "run.eval_episodes=2"]), tmp_path / "on", progress=False)
    off = _rows(tmp_path / "off" / "metrics.csv")
    on = [r for r in _rows(tmp_path / "on" / "metrics.csv") if r["update"] != "0"]
    assert len(on) == len(off) == 8
    for a, b in zip(off, on):
        assert a == {k: v for k, v in b.items() if not k.startswith("eval_")}


def test_linear_max_kl_schedule_bounds_every_update_by_its_radius(tmp_path):
    """Each accepted step's KL is within the radius of its update on the line from max_kl to
    max_kl_final; with max_kl_final = max_kl the run is the constant-radius run byte for byte."""
    common = ["run.total_steps=8192", "run.n_steps=128", "env.n_envs=4", "algo.max_kl=0.02", "run.seed=2"]
    runs = {}
    for name, extra in {"constant": [], "flat": ["algo.max_kl_schedule=linear", "algo.max_kl_final=0.02"],
                        "linear": ["algo.max_kl_schedule=linear", "algo.max_kl_final=0.0"]}.items():
        train(config.load("cartpole-trpo", [*common, *extra]), tmp_path / name, progress=False)
        runs[name] = (tmp_path / name / "metrics.csv").read_text()
    assert runs["flat"] == runs["constant"]
    rows = [r for r in csv.DictReader(io.StringIO(runs["linear"])) if int(r["update"]) >= 1]
    n = len(rows)
    assert n == 16
    for row in rows:
        u = int(row["update"])
        radius = 0.02 * (1 - (u - 1) / n)
        assert float(row["kl"]) <= radius * (1 + 1e-6), (u, row["kl"], radius)
    late = [float(r["kl"]) for r in rows[-4:]]
    constant_late = [float(r["kl"]) for r in list(csv.DictReader(io.StringIO(runs["constant"])))[-4:]]
    assert max(late) <= 0.02 * 4 / n and sum(late) < sum(constant_late) / 4


def test_norm_obs_steps_fixes_the_observation_statistics_and_changes_nothing_before(tmp_path):
    """Batches of 1024 steps: the statistics learn from the two that start before step 1500. The third is
    normalised with them in both runs, so the runs part only at the fourth."""
    base = ["run.total_steps=4096", "env.n_envs=4", "run.n_steps=256", "run.eval_every=0"]
    train(config.load("pendulum-trpo", base), tmp_path / "learning", progress=False)
    train(config.load("pendulum-trpo", [*base, "env.norm_obs_steps=1500"]), tmp_path / "fixed", progress=False)
    assert load(tmp_path / "learning").obs_norm.rms.count == pytest.approx(4096 + 1e-4)
    assert load(tmp_path / "fixed").obs_norm.rms.count == pytest.approx(2048 + 1e-4)
    learning, fixed = _rows(tmp_path / "learning" / "metrics.csv"), _rows(tmp_path / "fixed" / "metrics.csv")
    assert [r["update"] for r in fixed] == ["1", "2", "3", "4"]
    assert learning[:3] == fixed[:3] and learning[3] != fixed[3]


@pytest.mark.parametrize("total, n_steps, n_envs", [(3000, 256, 4), (100, 256, 4), (2048, 256, 4), (2047, 64, 2)])
def test_a_budget_that_is_not_whole_batches_is_said_in_one_line_and_whole_batches_run(tmp_path, capsys, total,
                                                                                      n_steps, n_envs):
    cfg = config.load("cartpole-trpo", [f"run.n_steps={n_steps}", f"env.n_envs={n_envs}", "run.eval_every=0"])
    cfg.run.total_steps = total
    result = train(cfg, tmp_path / "run", progress=False)
    batch = n_steps * n_envs
    ran = max(batch, total - total % batch)  # whole batches, at least one
    assert result.steps == ran and result.updates == ran // batch
    lines = [line for line in capsys.readouterr().err.splitlines() if "run.total_steps" in line]
    if ran == total:
        assert lines == [] and result.notes == []
    else:
        updates = ran // batch
        note = (f"note: run.total_steps {total} is run as {updates} update{'s' if updates > 1 else ''} of {batch} "
                f"steps (run.n_steps x env.n_envs) = {ran} steps")
        assert lines == [note] and result.notes == [note]
    with pytest.raises(TrustrlError, match="already holds a run"):
        train(cfg, tmp_path / "run", progress=False)
    assert "note:" not in capsys.readouterr().err  # a refused start says only its error

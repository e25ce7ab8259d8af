"""Minari datasets (collect, load) and offline trust-region training from them."""

import csv
import json

import gymnasium as gym
import minari
import numpy as np
import pytest
import torch
from continued import assert_extended_is_the_run_in_one_go

from trustrl import config
from trustrl.algos.offline_trpo import importance_weights
from trustrl.api import evaluate
from trustrl.api import load as load_policy
from trustrl.cli import main
from trustrl.datasets.collect import collect
from trustrl.datasets.read import LOG_PROB_KEY, read_dataset
from trustrl.run import train, train_offline
from trustrl.seeding import COLLECTION, reset_seed

BEHAVIOUR = ["run.total_steps=4096", "run.seed=0"]  # CartPole: a mediocre policy (return ~125 sampled)


@pytest.fixture(scope="module", autouse=True)
def minari_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("minari")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINARI_DATASETS_PATH", str(root))
        yield root


@pytest.fixture(scope="module")
def behaviour_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "behaviour"
    train(config.load("cartpole-trpo", BEHAVIOUR), run, progress=False)
    return run


@pytest.fixture(scope="module")
def medium(behaviour_run):
    """40 episodes of the mediocre CartPole policy."""
    assert main(["collect", str(behaviour_run), "--episodes", "40", "--dataset", "cartpole/medium-v0"]) == 0
    return "cartpole/medium-v0"


def test_collected_dataset_loads_with_minari_as_written(behaviour_run, medium):
    dataset = minari.load_dataset(medium)
    assert dataset.total_episodes == 40
    loaded = load_policy(behaviour_run)
    seeds = [int(m["seed"]) for m in dataset.storage.get_episode_metadata(range(2))]
    total = 0
    for i, ep in enumerate(dataset.iterate_episodes()):
        T = len(ep.rewards)
        total += T
        assert ep.observations.shape == (T + 1, 4) and ep.actions.shape == (T,)
        assert ep.terminations[-1] or ep.truncations[-1]
        assert not ep.terminations[:-1].any() and not ep.truncations[:-1].any()
        assert ep.infos[LOG_PROB_KEY].shape == (T + 1,) and np.isnan(ep.infos[LOG_PROB_KEY][-1])
        # the recorded log-probabilities and logits are the behaviour policy's, at the stored (raw) observations
        with torch.no_grad():
            dist = loaded.policy(torch.from_numpy(loaded.obs_norm.normalize(ep.observations[:-1])))
        np.testing.assert_allclose(ep.infos[LOG_PROB_KEY][:-1], dist.log_prob(torch.from_numpy(ep.actions)), atol=1e-5)
        np.testing.assert_allclose(ep.infos["behaviour_logits"][:-1], dist.logits, atol=1e-5)
        if i < 2:  # episode i starts from the reset seed of (--seed, i), recorded with it
            assert seeds[i] == reset_seed(0, COLLECTION, i)
            first, _ = gym.make("CartPole-v1").reset(seed=seeds[i])
            np.testing.assert_array_equal(ep.observations[0], first)
    assert dataset.total_steps == total
    returns = read_dataset(medium).returns
    assert 100 <= returns.mean() <= 250, returns.mean()  # mediocre, as the offline test below needs


def test_collect_by_steps_keeps_whole_episodes_and_box_actions_in_bounds(tmp_path):
    run = tmp_path / "pendulum"
    train(config.load("pendulum-trpo", ["run.total_steps=2048"]), run, progress=False)
    result = collect("pendulum/tiny-v0", run, steps=300)
    assert result.episodes == 2 and result.steps == 400  # 200-step episodes: the one that crossed 300 is whole
    loaded = load_policy(run)
    for ep in minari.load_dataset("pendulum/tiny-v0").iterate_episodes():
        assert np.all(np.abs(ep.actions) <= 2.0)  # stored as executed: clipped to the bounds
        mean, log_std = ep.infos["behaviour_mean"][:-1], ep.infos["behaviour_log_std"][:-1]
        with torch.no_grad():
            dist = loaded.policy(torch.from_numpy(loaded.obs_norm.normalize(ep.observations[:-1])))
        np.testing.assert_allclose(mean, dist.mean, atol=1e-5)
        np.testing.assert_allclose(log_std, dist.log_std, atol=1e-6)
        draws = ep.infos["behaviour_draw"][:-1]  # the log-probability is the draw's, before clipping
        np.testing.assert_array_equal(np.clip(draws, -2.0, 2.0), ep.actions)
        np.testing.assert_allclose(ep.infos[LOG_PROB_KEY][:-1], dist.log_prob(torch.from_numpy(draws)), atol=1e-4)


def test_an_existing_dataset_is_kept_unless_overwrite(behaviour_run, minari_root, capsys):
    args = ["collect", str(behaviour_run), "--episodes", "2", "--dataset", "cartpole/twice-v0"]
    assert main(args) == 0
    files = {p: p.stat().st_mtime_ns for p in (minari_root / "cartpole" / "twice-v0").rglob("*")}
    assert main([*args[:3], "3", *args[4:]]) == 2
    assert "already exists" in capsys.readouterr().err
    assert {p: p.stat().st_mtime_ns for p in (minari_root / "cartpole" / "twice-v0").rglob("*")} == files
    assert main([*args[:3], "3", *args[4:], "--overwrite"]) == 0
    assert minari.load_dataset("cartpole/twice-v0").total_episodes == 3
    assert sorted(p.name for p in (minari_root / "cartpole").iterdir() if p.name.startswith("."))  == []


def test_random_behaviour_records_uniform_log_probabilities():
    assert main(["collect", "--random", "--env", "CartPole-v1", "--episodes", "3", "--dataset", "rand-v0"]) == 0
    for ep in minari.load_dataset("rand-v0").iterate_episodes():
        np.testing.assert_allclose(ep.infos[LOG_PROB_KEY][:-1], np.log(0.5), rtol=1e-6)


@pytest.mark.parametrize(
    "args, message",
    [
        (["collect", "--random", "--env", "CartPole-v1", "--episodes", "1", "--dataset", "no version"],
         "malformed dataset id 'no version'"),
        (["collect", "--random", "--episodes", "1", "--dataset", "x-v0"], "--random needs --env ID"),
        (["collect", "--random", "--env", "CartPole-v1", "--dataset", "x-v0"], "exactly one of --episodes N or --steps N"),
        (["train", "cartpole-trpo", "--offline", "nosuch/data-v0"], "no Minari dataset 'nosuch/data-v0'"),
        (["train", "cartpole-trpo", "--epochs", "3"], "--epochs counts passes over a dataset: it needs --offline"),
        (["train", "cartpole-trpo", "--offline", "x-v0", "--set", "offline.weights=raw"], "offline.weights must be one of"),
    ],
)
def test_bad_input_is_one_clear_error(tmp_path, capsys, args, message):
    assert main([*args, *(["--run-dir", str(tmp_path / "r")] if args[0] == "train" else [])]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_a_dataset_for_other_spaces_is_refused_before_anything_is_written(medium, tmp_path, capsys):
    run = tmp_path / "r"
    assert main(["train", "pendulum-trpo", "--offline", medium, "--run-dir", str(run)]) == 2
    err = capsys.readouterr().err
    assert "dataset cartpole/medium-v0 has spaces" in err and "Pendulum-v1 has" in err
    assert not run.exists()


def test_offline_run_has_the_run_layout_and_is_deterministic(medium, minari_root, tmp_path):
    path = str(minari_root / "cartpole" / "medium-v0")  # a path works as well as an id
    args = ["--epochs", "2", "--quiet", *[f"--set={kv}" for kv in (
        "offline.eval_episodes=1", "offline.bc_epochs=2", "offline.critic_rounds=1", "critic.epochs=2")]]
    assert main(["train", "cartpole-trpo", "--offline", path, "--run-dir", str(tmp_path / "a"), *args]) == 0
    assert main(["train", "cartpole-trpo", "--offline", path, "--run-dir", str(tmp_path / "b"), *args]) == 0
    a = tmp_path / "a"
    assert {"config.toml", "command.txt", "metrics.csv", "timing.csv", "tensorboard", "checkpoints"} <= {
        p.name for p in a.iterdir()}
    assert (a / "metrics.csv").read_text() == (tmp_path / "b" / "metrics.csv").read_text()
    header = (a / "metrics.csv").read_text().splitlines()[0].split(",")
    for column in ("step", "update", "eval_return_mean", "kl", "kl_behaviour", "ess_fraction", "line_search_accepted"):
        assert column in header
    assert f'dataset = "{path}"' in (a / "config.toml").read_text()
    record = json.loads((a / "checkpoints" / "last.json").read_text())
    dataset = minari.load_dataset("cartpole/medium-v0")
    observations = dataset.total_steps + dataset.total_episodes  # T + 1 per episode
    assert record["extra"]["behaviour_source"] == "dataset"
    assert record["obs_norm"]["count"] == pytest.approx(observations, abs=1e-3)  # the statistic is the dataset's
    assert evaluate(a, episodes=1, checkpoint="best").episodes == 1


def test_a_dataset_without_behaviour_log_probabilities_estimates_beta(tmp_path):
    """Another tool's dataset: no infos at all. beta comes from maximum likelihood, and the log says so."""
    from minari.data_collector import EpisodeBuffer

    env = gym.make("CartPole-v1")
    rng = np.random.default_rng(0)
    buffers = []
    for i in range(20):
        obs, _ = env.reset(seed=i)
        observations, actions, rewards, done = [obs], [], [], False
        while not done:
            action = int(obs[2] + 0.5 * obs[3] > 0) if rng.random() < 0.7 else int(rng.integers(2))
            obs, reward, terminated, truncated, _ = env.step(action)
            observations.append(obs)
            actions.append(action)
            rewards.append(reward)
            done = terminated or truncated
        buffers.append(EpisodeBuffer(id=i, observations=np.array(observations), actions=np.array(actions),
                                     rewards=np.array(rewards), terminations=np.r_[np.zeros(len(actions) - 1, bool), terminated],
                                     truncations=np.r_[np.zeros(len(actions) - 1, bool), truncated]))
    with pytest.warns(UserWarning):
        minari.create_dataset_from_buffers("other/heuristic-v0", buffers, env=env)
    notes = []
    cfg = config.load("cartpole-trpo", ["offline.epochs=2", "offline.eval_episodes=1", "offline.critic_rounds=1"])
    result = train_offline(cfg, tmp_path / "r", dataset="other/heuristic-v0", progress=False, log=notes.append)
    assert result.extra["behaviour_source"] == "maximum likelihood"
    assert any("no behaviour log-probabilities: estimated beta by maximum likelihood" in n for n in notes)


def test_importance_weights_self_normalised_or_clipped():
    log_ratio = torch.log(torch.tensor([0.5, 1.0, 2.0, 40.0]))
    w = importance_weights(log_ratio, "self-normalised", 10.0)
    assert torch.isclose(w.mean(), torch.tensor(1.0)) and torch.allclose(w * 43.5 / 4, torch.exp(log_ratio))
    assert importance_weights(log_ratio, "clipped", 10.0).tolist() == pytest.approx([0.5, 1.0, 2.0, 10.0])


@pytest.mark.parametrize("seed", [0, 1])
def test_offline_trpo_beats_the_behaviour_policy(medium, tmp_path, seed):
    """From 40 episodes of a mediocre policy, a deterministic evaluation of the result beats the data."""
    cfg = config.load("cartpole-trpo", [f"run.seed={seed}", "offline.epochs=30"])
    result = train_offline(cfg, tmp_path / "off", dataset=medium, progress=False, log=lambda msg: None)
    behaviour = result.extra["behaviour_return_mean"]
    assert 100 <= behaviour <= 250
    final = evaluate(result.run_dir, episodes=10, checkpoint="last")
    assert final.deterministic and final.mean_return > behaviour, (final.returns, behaviour)


@pytest.mark.parametrize("fisher", [[], ["algo.fvp_samples=256"]], ids=["whole-fisher", "fisher-rows"])
def test_offline_run_resumed_is_the_run_in_one_go(medium, tmp_path, fisher):
    """Also with the Fisher-vector products on random rows: their stream resumes where it was."""
    from trustrl.run import resume

    common = ["offline.eval_episodes=1", "offline.bc_epochs=2", "offline.critic_rounds=1", "critic.epochs=2",
              "offline.minibatch=1024", "offline.eval_every=3", "run.checkpoint_every=1",  # split off the schedule
              *fisher]
    quiet = dict(progress=False, log=lambda msg: None)
    train_offline(config.load("cartpole-trpo", [*common, "offline.epochs=4"]), tmp_path / "whole", dataset=medium, **quiet)
    train_offline(config.load("cartpole-trpo", [*common, "offline.epochs=2"]), tmp_path / "split", dataset=medium, **quiet)
    result = resume(tmp_path / "split", epochs=4, **quiet)
    assert result.updates == 4 and result.extra["behaviour_source"] == "dataset"
    split_at = 2 * read_dataset(medium).n_steps  # two epochs of the dataset's transitions
    assert_extended_is_the_run_in_one_go(tmp_path / "split", tmp_path / "whole", split_at)
    # an offline run plots its online evaluations
    assert main(["plot", str(tmp_path / "whole"), "--out", str(tmp_path / "curve.png")]) == 0


def test_offline_resume_refuses_a_changed_dataset_and_a_run_that_stopped_early(behaviour_run, tmp_path, capsys):
    quiet = ["--quiet", "--set", "offline.eval_episodes=1", "--set", "offline.bc_epochs=1",
             "--set", "offline.critic_rounds=1"]
    assert main(["collect", str(behaviour_run), "--episodes", "5", "--dataset", "cartpole/changing-v0"]) == 0
    run = tmp_path / "r"
    assert main(["train", "cartpole-trpo", "--offline", "cartpole/changing-v0", "--epochs", "1",
                 "--run-dir", str(run), *quiet]) == 0
    assert main(["collect", str(behaviour_run), "--episodes", "9", "--dataset", "cartpole/changing-v0",
                 "--overwrite"]) == 0
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--epochs", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and "has changed since the checkpoint" in err[-1]
    assert main(["train", "--resume", str(run), "--total-steps", "9999"]) == 2
    assert "extend it with --epochs" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before

    # no step fits inside a vanishing trust region around the data: the run stops after one epoch
    stuck = tmp_path / "stuck"
    assert main(["train", "cartpole-trpo", "--offline", "cartpole/changing-v0", "--epochs", "5",
                 "--set", "offline.max_kl_behaviour=1e-12", "--run-dir", str(stuck), *quiet]) == 0
    assert checkpoint_update(stuck) == 1
    assert main(["train", "--resume", str(stuck), "--epochs", "9"]) == 2
    assert "ended after 1 updates with a step its algorithm could not improve on" in capsys.readouterr().err


def test_a_start_outside_the_data_trust_region_is_named(medium, tmp_path):
    """The maximum-likelihood start is never exactly beta: a trust region around the data narrower than the
    start's own KL(beta || pi) lets no step through, and the log says so with the KL to raise it above."""
    notes = []
    cfg = config.load("cartpole-trpo", ["offline.epochs=1", "offline.eval_episodes=1", "offline.critic_rounds=1",
                                        "offline.max_kl_behaviour=1e-12"])
    train_offline(cfg, tmp_path / "r", dataset=medium, progress=False, log=notes.append)
    assert any("the maximum-likelihood start is already at KL(beta || pi)" in n
               and "beyond offline.max_kl_behaviour 1e-12" in n for n in notes), notes


def checkpoint_update(run):
    return json.loads((run / "checkpoints" / "last.json").read_text())["update"]


def test_offline_trpo_follows_the_max_kl_schedule_over_its_epochs(medium, minari_root, tmp_path):
    """Epoch u of E moves at most max_kl * (1 - (u - 1) / E) from the policy before it."""
    args = ["--epochs", "4", "--quiet", *[f"--set={kv}" for kv in (
        "offline.eval_episodes=1", "offline.bc_epochs=2", "offline.critic_rounds=1", "critic.epochs=2",
        "algo.max_kl=0.02", "algo.max_kl_schedule=linear", "algo.max_kl_final=0")]]
    run = tmp_path / "r"
    assert main(["train", "cartpole-trpo", "--offline", "cartpole/medium-v0", "--run-dir", str(run), *args]) == 0
    with open(run / "metrics.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if int(r["update"]) >= 1]
    assert len(rows) == 4
    for row in rows:
        assert float(row["kl"]) <= 0.02 * (1 - (int(row["update"]) - 1) / 4) * (1 + 1e-6), row


def test_an_offline_run_stopped_by_a_callback_resumes_into_the_run_in_one_go(medium, tmp_path):
    from continued import rows, weights

    from trustrl.run import resume

    common = ["offline.eval_episodes=1", "offline.bc_epochs=2", "offline.critic_rounds=1", "critic.epochs=2",
              "offline.minibatch=1024", "offline.eval_every=3", "offline.epochs=4"]
    quiet = dict(progress=False, log=lambda msg: None)
    train_offline(config.load("cartpole-trpo", common), tmp_path / "whole", dataset=medium, **quiet)
    n = read_dataset(medium).n_steps
    result = train_offline(config.load("cartpole-trpo", common), tmp_path / "split", dataset=medium, **quiet,
                           callbacks=[lambda step, metrics, agent: metrics["update"] == 2])
    assert result.stopped_by_callback and result.steps == 2 * n and result.updates == 2
    stop_rows = [r for r in rows(tmp_path / "split") if r["step"] == str(2 * n)]
    assert len(stop_rows) == 2 and stop_rows[1]["eval_return_mean"] != "nan"  # the stopped policy, evaluated
    resume(tmp_path / "split", **quiet)
    assert [r for r in rows(tmp_path / "split") if r != stop_rows[1]] == rows(tmp_path / "whole")
    assert weights(tmp_path / "split", "last") == weights(tmp_path / "whole", "last")

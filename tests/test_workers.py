"""Env copies in worker processes or on Ray actors: the same numbers as in one process, and clear failures."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from killing import train_until_first_checkpoint_then_kill

from trustrl import checkpoint, config
from trustrl.cli import main
from trustrl.errors import ConfigError, WorkerError
from trustrl.nets import make_policy
from trustrl.normalization import ObsNormalizer, RewardScaler
from trustrl.run import resume, train
from trustrl.samplers.placement import make_pool
from trustrl.samplers.pools import LocalPool, ProcessPool, split_copies
from trustrl.samplers.vector import VectorSampler

# Terminations (CartPole falls), truncations (a 40-step limit), reward scaling and 3 copies over 2 workers
# (shares of 2 and 1): every path by which a copy's place could leak into the numbers.
SMALL = ["env.n_envs=3", "run.n_steps=64", "env.max_episode_steps=40", "env.norm_reward=true",
         "run.total_steps=1152", "run.eval_every=384", "run.eval_episodes=2", "run.checkpoint_every=2", "run.seed=4"]


def _run(tmp_path: Path, name: str, *extra: str) -> Path:
    train(config.load("cartpole-trpo", [*SMALL, *extra]), tmp_path / name, progress=False)
    return tmp_path / name


def _same_run(a: Path, b: Path) -> None:
    assert (a / "metrics.csv").read_bytes() == (b / "metrics.csv").read_bytes()
    for tag in ("last", "best"):
        record_a = json.loads((a / "checkpoints" / f"{tag}.json").read_text())
        record_b = json.loads((b / "checkpoints" / f"{tag}.json").read_text())
        assert record_a["weights_sha256"] == record_b["weights_sha256"]


def _wait_gone(pid: int, seconds: float = 10.0) -> None:
    """Until process ``pid`` has exited (gone, or a zombie awaiting its parent); fails after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return
        if state in ("Z", "X"):
            return
        time.sleep(0.05)
    raise AssertionError(f"process {pid} is still running")


def test_split_copies_gives_contiguous_shares_the_first_ones_larger():
    assert split_copies(8, 3) == [range(0, 3), range(3, 6), range(6, 8)]
    assert split_copies(2, 2) == [range(0, 1), range(1, 2)]
    assert split_copies(5, 1) == [range(0, 5)]
    with pytest.raises(ConfigError, match="between 1 and env.n_envs = 2"):
        split_copies(2, 3)


def test_two_worker_processes_give_the_run_of_one_process_byte_for_byte(tmp_path):
    _same_run(_run(tmp_path, "one"), _run(tmp_path, "two", "run.workers=2"))


@pytest.mark.xdist_group("ray")
def test_ray_actors_give_the_run_of_one_process_byte_for_byte(tmp_path, ray_cluster):
    one = _run(tmp_path, "one")
    _same_run(one, _run(tmp_path, "ray2", "run.placement=\"ray\"", "run.workers=2"))
    _same_run(one, _run(tmp_path, "ray1", "run.placement=\"ray\"", "run.workers=1", "run.worker_cpus=0.5"))


def test_mujoco_copies_in_workers_give_the_same_batches():
    """Walker2d's physics in two processes, one copy each: the batch is the one-process batch, bit for bit."""
    cfg = config.load("walker2d-trpo-notebook", ["run.n_steps=200", "env.max_episode_steps=150"])
    batches = []
    for workers in (1, 2):
        sampler, policy = _sampler(cfg, workers)
        batches.append([sampler.collect(policy) for _ in range(2)])
        sampler.close()
    for a, b in zip(*batches):
        for name in ("obs", "actions", "log_probs", "rewards", "terminated", "truncated", "last_obs",
                     "final_obs", "final_index"):
            assert torch.equal(getattr(a, name), getattr(b, name)), name
        assert a.episode_returns == b.episode_returns and len(a.episode_returns) > 0


def _sampler(cfg, workers, sampler="local"):
    pool = make_pool(cfg.env, workers, sampler)
    torch.manual_seed(0)
    policy = make_policy(pool.observation_space, pool.action_space, cfg.policy)
    return VectorSampler(pool, ObsNormalizer(pool.observation_space.shape),
                         RewardScaler(cfg.env.n_envs, 0.99, cfg.env.norm_reward), cfg.run.n_steps, 7), policy


def test_sampler_state_moves_between_layouts():
    """The state a one-process sampler saves (env snapshots included) continues in worker processes, exactly."""
    cfg = config.load("pendulum-ppo", ["env.n_envs=3", "run.n_steps=50"])
    local, policy = _sampler(cfg, 1)
    local.collect(policy)
    state = json.loads(json.dumps(local.state()))
    expected = local.collect(policy)
    local.close()
    workers, _ = _sampler(cfg, 3)
    assert workers.load_state(state) == []
    got = workers.collect(policy)
    workers.close()
    for name in ("obs", "actions", "rewards", "last_obs"):
        assert torch.equal(getattr(got, name), getattr(expected, name)), name


def test_a_resumed_run_may_move_to_workers_and_is_still_the_run_in_one_go(tmp_path):
    whole = _run(tmp_path, "whole")
    # split on the evaluation schedule: the first part's final evaluation is one the run in one go makes too
    train(config.load("cartpole-trpo", [*SMALL, "run.total_steps=768"]), tmp_path / "split", progress=False)
    result = resume(tmp_path / "split", total_steps=1152, layout=["run.workers=3"], progress=False)
    assert result.notes == []
    _same_run(whole, tmp_path / "split")
    assert "workers = 3" in (tmp_path / "split" / "config.toml").read_text()


def test_resume_refuses_to_change_anything_but_the_layout(tmp_path, capsys):
    run = _run(tmp_path, "r")
    before = (run / "metrics.csv").read_bytes()
    assert main(["train", "--resume", str(run), "--total-steps", "2304", "--set", "algo.max_kl=0.1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "may change only where it runs" in err and "'algo.max_kl'" in err
    assert (run / "metrics.csv").read_bytes() == before


def test_a_worker_killed_mid_run_is_one_clear_error():
    cfg = config.load("cartpole-trpo", ["env.n_envs=4", "run.n_steps=32"])
    sampler, policy = _sampler(cfg, 2)
    sampler.collect(policy)
    victim = sampler.pool.procs[1]
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    with pytest.raises(WorkerError, match=rf"sampling worker 1 \(pid {victim.pid}, copies 2-3\) was killed by signal 9 "
                                          r"while collecting a batch"):
        sampler.collect(policy)
    procs = list(sampler.pool.procs)
    sampler.close()
    assert all(proc.poll() is not None for proc in procs)


def test_training_whose_worker_dies_stops_with_one_error_line_and_keeps_its_checkpoints(tmp_path):
    run = tmp_path / "run"
    exe = Path(sys.executable).parent / "trustrl"
    proc = subprocess.Popen([str(exe), "train", "cartpole-trpo", "--run-dir", str(run), "--total-steps", "4096000",
                             "--quiet", "--set", "run.workers=2", "--set", "run.checkpoint_every=1",
                             "--set", "run.eval_every=0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (run / "checkpoints" / "last.json").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
    assert len(children) == 2
    os.kill(int(children[0]), signal.SIGKILL)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert err.count("\n") == 1 and err.startswith("error: sampling worker 0 ") and "killed by signal 9" in err
    last = checkpoint.load(run)  # intact and loadable: written whole, before the worker died
    assert 0 < last.step < 4_096_000
    assert not list((run / "checkpoints").glob("*.tmp"))
    _wait_gone(int(children[1]))  # the surviving worker was closed with the run


@pytest.mark.xdist_group("ray")
def test_a_ray_actor_killed_mid_run_is_one_clear_error(ray_cluster):
    import ray

    cfg = config.load("cartpole-trpo", ["env.n_envs=2", "run.n_steps=32"])
    sampler, policy = _sampler(cfg, 2, "ray")
    sampler.collect(policy)
    victim = sampler.pool.actors[0]
    ray.kill(victim)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # ray.kill returns before the actor is dead
        try:
            ray.get(victim.call.remote("spaces"))
            time.sleep(0.1)
        except ray.exceptions.RayActorError:
            break
    with pytest.raises(WorkerError, match=r"Ray sampling worker 0 \(copies 0\) died while collecting a batch"):
        sampler.collect(policy)
    sampler.close()


@pytest.mark.xdist_group("ray")
def test_an_env_a_ray_actor_cannot_make_is_the_same_config_error(ray_cluster):
    cfg = config.load("pendulum-ppo", ["env.kwargs={no_such_argument=1}"])
    with pytest.raises(ConfigError, match="cannot make environment 'Pendulum-v1'"):
        make_pool(cfg.env, 2, "ray")


@pytest.mark.xdist_group("ray")
def test_ray_refuses_more_actors_than_the_cluster_has_cpus(ray_cluster, tmp_path, capsys):
    argv = ["train", "cartpole-trpo", "--run-dir", str(tmp_path / "r"), "--set", "run.placement=ray",
            "--set", "run.workers=3"]
    assert main(argv) == 2
    assert "need 3 CPUs; the Ray cluster has 2" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_an_env_a_worker_cannot_make_is_one_config_error(tmp_path, capsys):
    argv = ["train", "pendulum-ppo", "--run-dir", str(tmp_path / "r"), "--set", "run.workers=2",
            "--set", "env.kwargs={no_such_argument=1}"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot make environment 'Pendulum-v1'" in err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("overrides, message", [
    (["run.workers=9"], "run.workers = 9 is more than env.n_envs = 8"),
    (["run.workers=0"], "run.workers must be"),
    (["run.workers=2", 'env.vectorization="async"'], "leave it 'sync'"),
    (['run.placement="slurm"'], "run.placement"),
    (["run.worker_cpus=-1"], "run.worker_cpus must be between 0 and 1024"),
])
def test_bad_layouts_are_refused_by_the_config(overrides, message):
    with pytest.raises(ConfigError, match=message):
        config.load("cartpole-trpo", overrides)


def test_the_local_pool_is_the_default_layout():
    cfg = config.load("cartpole-trpo")
    pool = make_pool(cfg.env)
    assert isinstance(pool, LocalPool) and pool.n_envs == 8 and pool.workers == 1
    pool.close()
    pool = make_pool(cfg.env, 3)
    assert isinstance(pool, ProcessPool) and [len(c) for c in pool.copies] == [3, 3, 2]
    procs = list(pool.procs)
    pool.close()
    assert all(proc.returncode == 0 for proc in procs)  # each asked to close, and exited on its own


# --------------------------------------------------------------------------- asynchronous sampling


def test_asynchronous_runs_are_the_same_bits_whatever_the_layout(tmp_path):
    one = _run(tmp_path, "one", "run.async_sampling=true")
    _same_run(one, _run(tmp_path, "two", "run.async_sampling=true", "run.workers=2"))
    sync = _run(tmp_path, "sync")
    assert (sync / "metrics.csv").read_bytes() != (one / "metrics.csv").read_bytes()  # a stale batch is another run


def test_an_asynchronous_run_killed_mid_batch_resumes_into_the_run_that_never_stopped(tmp_path):
    """The checkpoint holds the state from before the batch that was out, and the policy that acted on it."""
    args = ["cartpole-trpo", "--total-steps", "24576", "--seed", "2", "--quiet", "--set", "run.async_sampling=true",
            "--set", "run.workers=2", "--set", "run.checkpoint_every=2", "--set", "run.eval_every=4096",
            "--set", "run.eval_episodes=2"]
    assert main(["train", *args, "--run-dir", str(tmp_path / "whole")]) == 0
    killed = tmp_path / "killed"
    workers = train_until_first_checkpoint_then_kill(args, killed)
    assert len(workers) == 2
    assert 2 <= checkpoint.load(killed).update < 24, "the kill should land mid-run"
    for pid in workers:  # orphaned workers see the learner's socket close and exit
        _wait_gone(pid)
    assert main(["train", "--resume", str(killed), "--quiet", "--set", "run.workers=1"]) == 0
    assert (killed / "metrics.csv").read_bytes() == (tmp_path / "whole" / "metrics.csv").read_bytes()
    _same_run(killed, tmp_path / "whole")


def test_asynchronous_sampling_is_refused_where_nothing_corrects_for_the_stale_policy():
    with pytest.raises(ConfigError, match="run.async_sampling needs online TRPO or NPG"):
        config.load("pendulum-ppo", ["run.async_sampling=true"])
    config.load("cartpole-npg", ["run.async_sampling=true"])


def test_an_asynchronous_checkpoints_batch_in_flight_that_does_not_fit_is_refused_with_nothing_written(tmp_path, capsys):
    args = ["cartpole-trpo", "--total-steps", "1024", "--quiet", "--set", "run.async_sampling=true",
            "--set", "env.n_envs=2", "--set", "run.n_steps=256", "--set", "run.eval_every=0"]
    run = tmp_path / "r"
    assert main(["train", *args, "--run-dir", str(run)]) == 0
    record_path = run / "checkpoints" / "last.json"
    record = json.loads(record_path.read_text())
    assert "in_flight" in record["state"]["sampler"]
    record["state"]["sampler"]["in_flight"] = {"policy": {"logits_net.layers.0.weight": [1.0]}}
    record_path.write_text(json.dumps(record))
    before = {p.name: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert main(["train", "--resume", str(run), "--total-steps", "2048"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "batch in flight does not fit this policy" in err
    assert {p.name: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def test_the_actors_rows_do_not_depend_on_the_number_of_blas_threads():
    """Worker processes run numpy with one BLAS thread, the learner with as many as it likes: wide layers
    (where OpenBLAS may thread a product) must give the same bits either way."""
    script = (
        "import hashlib, numpy as np\n"
        "from trustrl.samplers.actor import NumpyActor\n"
        "rng = np.random.default_rng(0)\n"
        "dims = [376, 512, 512, 17]\n"
        "layers = [(rng.standard_normal((a, b)).astype(np.float32) * 0.05, rng.standard_normal(b).astype(np.float32))"
        " for a, b in zip(dims[:-1], dims[1:])]\n"
        "x = rng.standard_normal((64, 376)).astype(np.float32)\n"
        "print(hashlib.sha256(NumpyActor(layers, False, None).forward(x).tobytes()).hexdigest())\n"
    )
    digests = {subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                              env={**os.environ, "OPENBLAS_NUM_THREADS": str(n), "OMP_NUM_THREADS": str(n)}).stdout
               for n in (1, 2, 4)}
    assert len(digests) == 1

"""No process left behind: every process trustrl starts ends when the learner dies, whatever the signal and
whatever the env is doing. Each case a row: the learner is killed, and its descendants counted after a short grace.

The env of these runs hangs for good in ``step`` once it has taken a few hundred steps in a worker process or a
Ray actor -- never in the learner, whose own evaluation episodes play on -- and says so with a marker file.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from killing import alive, descendants, survivors

SRC = Path(__file__).resolve().parents[1] / "src"
TRUSTRL = Path(sys.executable).parent / "trustrl"
HANG_ENV = '''
import multiprocessing, os, pathlib, sys, time
import gymnasium as gym
import numpy as np


class Hang(gym.Env):
    observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float64)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def __init__(self, at=300, how="sleep"):
        self.at, self.how, self.steps = at, how, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(2), {}

    def step(self, action):
        self.steps += 1
        # a worker, an actor or an async copy; never the learner
        if self.steps >= self.at and ("trustrl.cli" not in sys.modules or multiprocessing.parent_process()):
            pathlib.Path(os.environ["HANG_MARKERS"], f"hung-{os.getpid()}").touch()
            while True:
                if self.how == "sleep":
                    time.sleep(3600)
        return np.zeros(2), 0.0, False, False, {}


gym.register("Hang-v0", entry_point=Hang, max_episode_steps=50)
'''


def _start(tmp_path: Path, args: list[str]) -> tuple[subprocess.Popen, Path]:
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "hang_env.py").write_text(HANG_ENV)
    markers = tmp_path / "markers"
    markers.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), str(tmp_path / "lib")]),
           "HANG_MARKERS": str(markers)}
    proc = subprocess.Popen([str(TRUSTRL), *args], cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=_as_from_a_terminal)
    return proc, markers


def _as_from_a_terminal() -> None:
    """The learner starts with the signals a terminal's command gets: a suite run under ``nohup`` (or in a
    background job) would otherwise hand it SIGHUP (or SIGINT) ignored, and the signal under test would do
    nothing."""
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _wait_for(condition, seconds: float, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"trustrl ended (exit {proc.returncode}) before the moment to kill it")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("the moment to kill trustrl never came")
        time.sleep(0.05)


def _kill_and_count(proc: subprocess.Popen, sig: int, grace: float) -> tuple[list[int], list[int]]:
    """Send ``sig`` to the learner; its descendants just before, and those still running ``grace`` s after it ended."""
    before = descendants(proc.pid)
    os.kill(proc.pid, sig)
    try:
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    left = survivors(before, grace)
    for pid in left:  # a failing case cleans up after itself
        os.kill(pid, signal.SIGKILL)
    return before, left


WORKER_CASES = [
    (signal.SIGKILL, "sleep"),
    (signal.SIGKILL, "busy"),
    (signal.SIGTERM, "sleep"),
    (signal.SIGTERM, "busy"),
    (signal.SIGHUP, "sleep"),
    (signal.SIGINT, "busy"),  # Ctrl-C: the learner closes its workers itself
]  # fmt: skip


@pytest.mark.parametrize("sig, how", WORKER_CASES, ids=lambda v: getattr(v, "name", v))
def test_workers_whose_env_hangs_in_step_end_with_the_learner(tmp_path, sig, how):
    proc, markers = _start(tmp_path, ["train", "hang_env:Hang-v0", "--set", f'env.kwargs={{how="{how}"}}', "--run-dir",
                                      str(tmp_path / "run"), "--quiet", "--total-steps", "100000",
                                      "--set", "run.workers=2", "--set", "env.n_envs=2", "--set", "run.n_steps=256"])
    _wait_for(lambda: len(list(markers.iterdir())) == 2, 60, proc)
    hung = [int(p.name.split("-")[1]) for p in markers.iterdir()]
    before, left = _kill_and_count(proc, sig, grace=10)
    assert set(hung) <= set(before) and all(not alive(pid) for pid in hung)
    assert left == []


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=lambda v: v.name)
def test_async_env_copies_whose_env_hangs_in_step_end_with_the_learner(tmp_path, sig):
    proc, markers = _start(tmp_path, ["train", "hang_env:Hang-v0", "--run-dir", str(tmp_path / "run"), "--quiet",
                                      "--total-steps", "100000", "--set", "env.vectorization='async'",
                                      "--set", "env.n_envs=2", "--set", "run.n_steps=256"])
    _wait_for(lambda: len(list(markers.iterdir())) == 2, 60, proc)
    hung = [int(p.name.split("-")[1]) for p in markers.iterdir()]
    before, left = _kill_and_count(proc, sig, grace=10)
    assert set(hung) <= set(before) and left == []


def test_tune_trials_end_with_the_study(tmp_path):
    out = tmp_path / "study"
    proc, _ = _start(tmp_path, ["tune", "cartpole-trpo", "--param", "algo.gae_lambda=float:0.9:0.99", "--trials", "4",
                                "--jobs", "2", "--no-prune", "--out", str(out), "--total-steps", "200000"])
    # both trial processes are training once each has written its run's config
    _wait_for(lambda: len(list(out.glob("trial-*/seed0/config.toml"))) == 2, 90, proc)
    before, left = _kill_and_count(proc, signal.SIGKILL, grace=10)
    assert len(before) >= 2 and left == []
    rows = {p: p.stat().st_mtime for p in out.glob("trial-*/seed0/metrics.csv")}
    time.sleep(1.0)  # nothing trains on: no run's metrics grow once the study is dead
    assert {p: p.stat().st_mtime for p in out.glob("trial-*/seed0/metrics.csv")} == rows
    assert not list(out.glob("trial-0002"))


def test_a_local_ray_and_its_hung_actors_end_with_the_learner(tmp_path):
    proc, markers = _start(tmp_path, ["train", "hang_env:Hang-v0", "--run-dir", str(tmp_path / "run"), "--quiet",
                                      "--total-steps", "100000", "--set", "run.placement='ray'",
                                      "--set", "run.workers=2", "--set", "env.n_envs=2", "--set", "run.n_steps=256"])
    _wait_for(lambda: len(list(markers.iterdir())) == 2, 120, proc)
    time.sleep(0.5)  # the reaper's view of Ray's processes is at most 0.2 s old
    before, left = _kill_and_count(proc, signal.SIGKILL, grace=20)
    assert len(before) >= 5 and left == []  # gcs, raylet, monitors, agents, the two actors


REAPER_USER = '''
import subprocess, sys, time
from trustrl.lifeline import Reaper

# as ray.init does: a process that starts processes of its own, which outlive it unless someone kills them
root = subprocess.Popen([sys.executable, "-c", "import subprocess, time; subprocess.Popen(['sleep', '600']); "
                         "time.sleep(600)"])
reaper = Reaper([root.pid])
print(root.pid, flush=True)
if sys.argv[1] == "stop":
    time.sleep(1.0)
    reaper.stop()
time.sleep(600)
'''


@pytest.mark.parametrize("end", ["kill", "stop"])
def test_the_reaper_kills_the_tree_it_watches_when_its_owner_dies_or_stops_it(tmp_path, end):
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.Popen([sys.executable, "-c", REAPER_USER, end], env=env, stdout=subprocess.PIPE, text=True)
    root = int(proc.stdout.readline())
    _wait_for(lambda: len(descendants(root)) == 1, 20, proc)  # the root and its child, the one to outlive it
    watched = [root, *descendants(root)]
    if end == "kill":
        time.sleep(0.5)  # the reaper's view is at most 0.2 s old
        os.kill(proc.pid, signal.SIGKILL)
    left = survivors(watched, 10)
    for pid in [*left, *([proc.pid] if proc.poll() is None else [])]:
        os.kill(pid, signal.SIGKILL)
    proc.wait()
    assert left == []

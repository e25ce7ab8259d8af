"""Nothing lost, nothing poisoned: bad input, hostile checkpoints, NaN and infinity, two writers, kill -9.

Each table row is one thing a user (or an attacker) tried; the test says what must happen instead.
"""

import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from trustrl import checkpoint
from trustrl.cli import main
from trustrl.config import CriticConfig, PolicyConfig
from trustrl.errors import CheckpointError
from trustrl.nets import make_critic, make_policy

TESTS = Path(__file__).resolve().parent
SHORT = ["--total-steps", "2048", "--quiet"]


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def files_of(run: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*"))
            if p.is_file() and p.name != ".trustrl.lock"}


@pytest.fixture(scope="module")
def good_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("good") / "run"
    assert main(["train", "cartpole-trpo", "--run-dir", str(run), *SHORT]) == 0
    return run


# --- bad input: one `error:` line, exit 2, nothing written -----------------------------------------------------

BAD_TRAIN = [
    (["--seed", "18446744073709551616"], "run.seed must be an integer between 0 and 4294967295"),
    (["--seed", "-1"], "run.seed must be an integer between 0 and"),
    (["--set", "run.torch_threads=100000000000"], "run.torch_threads must be at most 1,024"),
    (["--set", "policy.hidden=[100000000000]"], "policy.hidden must have at most 64 layers"),
    (["--set", "critic.hidden=[16384, 16384, 16384]"], "weights between them"),
    (["--set", "env.n_envs=1000000000"], "env.n_envs must be at most 1,024"),
    (["--set", "run.best_window=100000000000000000000"], "run.best_window must be at most 1,000,000"),
    (["--set", "run.n_steps=10000000000"], "run.n_steps must be at most 10,000,000"),
    (["--set", "run.n_steps=100000", "--set", "env.n_envs=1000"], "is more than 10,000,000"),
    (["--set", "run.total_steps=100000000000000000"], "run.total_steps must be at most"),
    (["--set", "run.eval_episodes=1000000000"], "run.eval_episodes must be at most 100,000"),
    (["--set", "vine.horizon=1000000000"], "vine.horizon must be at most"),
    (["--set", "run.on_nonfinite=maybe"], "run.on_nonfinite must be one of stop, skip"),
    (["--bogus"], "unrecognized arguments: --bogus"),
    (["--seed", "abc"], "argument --seed: invalid int value: 'abc'"),
    (["--env-kwarg", "x=1"], "--env-kwarg is for --resume"),
]  # fmt: skip


@pytest.mark.parametrize("args, message", BAD_TRAIN)
def test_bad_train_input_is_one_error_line_and_writes_nothing(tmp_path, capsys, args, message):
    run = tmp_path / "run"
    assert main(["train", "cartpole-trpo", "--run-dir", str(run), *args]) == 2
    assert message in one_error_line(capsys)
    assert not run.exists()


def test_a_preset_file_that_is_not_utf8_is_one_error_line(tmp_path, capsys):
    (tmp_path / "bad.toml").write_bytes(b'name = "\xff\xfe"\n')
    assert main(["train", str(tmp_path / "bad.toml"), "--run-dir", str(tmp_path / "run")]) == 2
    assert "not a UTF-8 text file" in one_error_line(capsys)


@pytest.mark.parametrize("args, message", [
    (["eval", "{run}", "--seed", "-1"], "--seed must be an integer between 0 and"),
    (["eval", "{run}", "--seed", "4294967295", "--episodes", "2"], "--seed must be an integer between 0 and 4294967294"),
    (["eval", "{run}", "--episodes", "1000000"], "--episodes must be an integer from 1 to 100,000"),
    (["eval"], "the following arguments are required: run"),
    (["video", "{run}", "--out", "{tmp}/v.mp4", "--episodes", "100000"], "--episodes must be an integer from 1 to 10,000"),
    (["collect", "{run}", "--dataset", "cp/one-v0", "--episodes", "2", "--seed", "-1"], "--seed must be an integer"),
    (["compare", "cartpole", "--seeds", "1180591620717411303424", "--out", "{tmp}/c"], "--seeds must be an integer from 1"),
    (["compare", "cartpole", "--eval-episodes", "0", "--out", "{tmp}/c"], "--eval-episodes must be an integer from 1"),
    (["plot", "{run}", "--out", "{tmp}/p.png", "--x", "minutes"], "argument --x: invalid choice: 'minutes'"),
    (["train", "--resume", "{run}", "--env-kwarg", "xml_file=/etc/passwd"], "a resumed run keeps its env"),
])  # fmt: skip
def test_bad_input_to_every_command_is_one_error_line(good_run, tmp_path, capsys, args, message):
    before = files_of(good_run)
    args = [a.format(run=good_run, tmp=tmp_path) for a in args]
    assert main(args) == 2
    assert message in one_error_line(capsys)
    assert files_of(good_run) == before
    assert not any(p.name != "p.png" for p in tmp_path.iterdir())


def test_plot_of_a_binary_metrics_file_is_one_error_line(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.csv").write_bytes(bytes(range(256)) * 4)
    assert main(["plot", str(tmp_path / "run"), "--out", str(tmp_path / "p.png")]) == 2
    assert "cannot read" in one_error_line(capsys)


def test_plot_keeps_an_existing_file_unless_told(good_run, tmp_path, capsys):
    out = tmp_path / "p.png"
    out.write_bytes(b"mine")
    assert main(["plot", str(good_run), "--out", str(out)]) == 2
    assert "already exists; pass --overwrite" in one_error_line(capsys)
    assert out.read_bytes() == b"mine"
    assert main(["plot", str(good_run), "--out", str(out), "--overwrite"]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert [p.name for p in tmp_path.iterdir()] == ["p.png"]  # no temp file left beside it


# --- hostile checkpoints: every field checked, one line each, no code run, no file read ---------------------


def _tamper(run: Path, dest: Path, edit) -> Path:
    """A copy of ``run`` whose last.json text went through ``edit``."""
    subprocess.run(["cp", "-r", str(run), str(dest)], check=True)
    record = dest / "checkpoints" / "last.json"
    record.write_text(edit(record.read_text()))
    return dest


def _set(key, raw):
    """Replace the JSON value of top-level ``key`` with the raw text ``raw``."""
    def edit(text):
        data = json.loads(text)
        data[key] = "@@@"
        return json.dumps(data).replace('"@@@"', raw)
    return edit


HOSTILE = [
    (_set("step", "1e400"), "step must be an integer from 0 to 1e+15, got inf"),
    (_set("step", "Infinity"), "step must be an integer from 0 to 1e+15, got inf"),
    (_set("step", "9" * 5000), "not a readable JSON record"),
    (_set("step", "-5"), "step must be an integer from 0"),
    (_set("update", "true"), "update must be an integer from 0"),
    (_set("weights", '["x"]'), "weights must name a .safetensors file beside the record"),
    (_set("weights", "5"), "weights must name a .safetensors file beside the record"),
    (_set("weights", '"../../etc/x.safetensors"'), "weights must name a .safetensors file beside the record"),
    (_set("weights_sha256", "null"), "weights_sha256 must be 64 hex digits"),
    (_set("format_version", '"1"'), "format_version must be an integer from 1 to 2"),
    (_set("format_version", "99"), "format version 99 is newer than this trustrl reads"),
    (_set("config", "[1, 2]"), "config must be a table"),
    (_set("extra", "[" * 100_000 + "]" * 100_000), "not a readable JSON record (nested too deeply)"),
    (_set("extra", '{"a":' * 80 + "1" + "}" * 80), "nested more than 64 levels deep"),
    (lambda text: text[: len(text) // 2], "not a readable JSON record"),
]  # fmt: skip


@pytest.mark.parametrize("edit, message", HOSTILE)
def test_a_tampered_checkpoint_is_one_error_line_for_eval_and_resume(good_run, tmp_path, capsys, edit, message):
    run = _tamper(good_run, tmp_path / "copy", edit)
    assert main(["eval", str(run), "--episodes", "1"]) == 2
    assert message in one_error_line(capsys)
    assert main(["train", "--resume", str(run), "--total-steps", "4096", "--quiet"]) == 2
    assert message in one_error_line(capsys)


def test_env_kwargs_that_name_files_are_refused_unless_passed_again(good_run, tmp_path, capsys):
    def edit(text):
        data = json.loads(text)
        data["config"]["env"]["kwargs"] = {"xml_file": "/etc/passwd"}
        return json.dumps(data)

    run = _tamper(good_run, tmp_path / "copy", edit)
    for args in (["eval", str(run)], ["video", str(run), "--out", str(tmp_path / "v.mp4")],
                 ["train", "--resume", str(run), "--total-steps", "4096"],
                 ["collect", str(run), "--dataset", "cp/x-v0", "--episodes", "1"]):
        assert main(args) == 2
        assert "env.kwargs.xml_file names a file ('/etc/passwd')" in one_error_line(capsys)
    # passed again by the user it is theirs: CartPole takes no such keyword, which gymnasium says
    assert main(["eval", str(run), "--env-kwarg", "xml_file=/etc/passwd"]) == 2
    assert "unexpected keyword argument 'xml_file'" in one_error_line(capsys)


def test_the_readme_says_the_hash_catches_corruption_not_tampering():
    readme = (TESTS.parent / "README.md").read_text()
    assert "catches corruption, not tampering" in readme


def test_a_checkpoint_with_non_finite_weights_or_statistics_is_never_written(tmp_path):
    import gymnasium as gym

    obs, act = gym.spaces.Box(-1, 1, (3,)), gym.spaces.Discrete(2)
    policy, critic = make_policy(obs, act, PolicyConfig()), make_critic(obs, CriticConfig())
    good = {"enabled": True, "clip": 10.0, "mean": [0.0] * 3, "var": [1.0] * 3, "count": 4.0}
    args = dict(config={}, spaces={}, reward_norm={}, step=1, update=1)
    checkpoint.save(tmp_path, "last", policy, critic, obs_norm=good, **args)
    with torch.no_grad():
        next(critic.parameters())[0, 0] = math.nan
    with pytest.raises(CheckpointError, match="critic weights .* are not finite"):
        checkpoint.save(tmp_path, "last", policy, critic, obs_norm=good, **args)
    with pytest.raises(CheckpointError, match="observation statistics"):
        checkpoint.save(tmp_path, "best", policy, make_critic(obs, CriticConfig()),
                        obs_norm={**good, "var": [1.0, math.inf, 1.0]}, **args)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last-000000001.safetensors", "last.json"]


# --- NaN and infinity: stopped before they land, or skipped and counted ----------------------------------------

FAULTY = ["faulty_env:Faulty-v0", "--total-steps", "8192", "--quiet", "--set", "run.checkpoint_every=1"]


def _finite_checkpoint(run: Path, tag: str) -> checkpoint.Checkpoint:
    ckpt = checkpoint.load(run, tag)
    for tensor in [*ckpt.policy_state.values(), *ckpt.critic_state.values()]:
        assert torch.isfinite(tensor).all()
    assert all(math.isfinite(v) for v in [*ckpt.obs_norm["mean"], *ckpt.obs_norm["var"]])
    return ckpt


@pytest.mark.parametrize("algo", ["reinforce", "a2c", "npg", "trpo", "ppo"])
@pytest.mark.parametrize("fault", ["nan_obs", "inf_reward"])
def test_a_non_finite_env_stops_every_algorithm_before_anything_is_saved(tmp_path, capsys, algo, fault):
    run = tmp_path / "run"
    args = ["train", *FAULTY, "--algo", algo, "--run-dir", str(run), "--set", f'env.kwargs={{fault="{fault}", at=601}}']
    assert main(args) == 2
    line = one_error_line(capsys)
    what = "observation" if fault == "nan_obs" else "reward (inf)"
    assert f"stopped after env step 6144: env copy 0 returned a non-finite {what} at env step 4801" in line
    last = _finite_checkpoint(run, "last")
    assert last.step == 4096  # the last update before the bad batch, and nothing after it
    best = _finite_checkpoint(run, "best")
    assert math.isfinite(best.extra["recent_return_mean"])


@pytest.mark.parametrize("algo", ["a2c", "trpo"])
def test_skip_drops_the_bad_batch_counts_it_and_trains_on(tmp_path, capsys, algo):
    run = tmp_path / "run"
    args = ["train", *FAULTY, "--algo", algo, "--run-dir", str(run), "--set", "run.on_nonfinite=skip",
            "--set", 'env.kwargs={fault="nan_reward", at=601}']
    assert main(args) == 0
    assert "skipped a batch at env step 6144: env copy 0 returned a non-finite reward (nan)" in capsys.readouterr().err
    rows = (run / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    last = dict(zip(header, rows[-1].split(",")))
    assert last["step"] == "8192" and last["skipped_batches"] == "1"
    assert "nan" not in last["episode_return_mean"]
    assert _finite_checkpoint(run, "last").step == 8192
    _finite_checkpoint(run, "best")


def test_an_update_that_diverges_stops_the_run_and_is_not_saved(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "Pendulum-v1", "--algo", "a2c", "--set", "algo.lr=1e30", "--run-dir", str(run),
                 "--total-steps", "4096", "--quiet", "--set", "run.checkpoint_every=1"]) == 2
    assert "stopped after env step" in one_error_line(capsys)
    if (run / "checkpoints" / "last.json").exists():
        _finite_checkpoint(run, "last")


def test_skip_undoes_an_update_that_diverges(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "Pendulum-v1", "--algo", "a2c", "--set", "algo.lr=1e30", "--set", "run.on_nonfinite=skip",
                 "--run-dir", str(run), "--total-steps", "4096", "--quiet"]) == 0
    assert "skipped a batch" in capsys.readouterr().err
    _finite_checkpoint(run, "last")


# --- the run directory: overwrite that fails, two writers, kill -9 ---------------------------------------------


def test_an_overwrite_that_fails_before_its_first_checkpoint_leaves_the_old_run_as_it_was(good_run, tmp_path, capsys):
    run = tmp_path / "run"
    subprocess.run(["cp", "-r", str(good_run), str(run)], check=True)
    before = files_of(run)
    args = ["train", "faulty_env:Faulty-v0", "--run-dir", str(run), "--overwrite", "--quiet", "--total-steps", "8192",
            "--set", 'env.kwargs={fault="raise", at=300}']
    assert main(args) == 2  # an env that raises: one line naming the copy and the call, and the old run survives
    assert "env copy 0: step() raised RuntimeError: the simulator broke" in one_error_line(capsys)
    assert files_of(run) == before
    assert not (run / ".trustrl-replaced").exists()
    assert main(["train", "cartpole-trpo", "--run-dir", str(run), "--overwrite", "--set", "run.n_steps=10000000000"]) == 2
    one_error_line(capsys)
    assert files_of(run) == before


def test_a_start_that_cannot_open_wandb_leaves_nothing_that_blocks_the_retry(tmp_path):
    fresh, mine = tmp_path / "fresh", tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("the user's own")
    for run in (fresh, mine):  # in a process of its own: W&B keeps settings from a run earlier in this one
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path),
               "WANDB_MODE": "no-such-mode"}  # W&B refuses it at once, after the run's first files exist
        proc = subprocess.run([sys.executable, "-m", "trustrl", "train", "cartpole-trpo", "--run-dir", str(run),
                               "--set", "run.wandb=true", *SHORT], capture_output=True, text=True, env=env, timeout=120)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
        assert proc.stderr.startswith("error: ") and "cannot start the Weights & Biases run" in proc.stderr
    assert not fresh.exists()  # made by the start that failed: taken away with its files
    assert sorted(p.name for p in mine.iterdir()) == [".trustrl.lock", "notes.txt"]
    assert (mine / "notes.txt").read_text() == "the user's own"
    for run in (fresh, mine):  # the same command, corrected: no --overwrite, no --resume needed
        assert main(["train", "cartpole-trpo", "--run-dir", str(run), *SHORT]) == 0
        assert checkpoint.load(run, "last").step == 2048
    assert (mine / "notes.txt").read_text() == "the user's own"


def test_a_start_that_fails_in_its_first_batch_leaves_nothing_that_blocks_the_retry(tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", "faulty_env:Faulty-v0", "--run-dir", str(run), "--quiet", "--total-steps", "8192"]
    assert main([*args, "--set", 'env.kwargs={fault="raise", at=1}']) == 2
    assert "env copy 0: step() raised RuntimeError: the simulator broke" in one_error_line(capsys)
    assert not run.exists()
    assert main(args) == 0


def test_a_start_that_fails_after_a_checkpoint_keeps_it(tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", *FAULTY[:-1], "run.checkpoint_every=100", "--run-dir", str(run),
            "--set", 'env.kwargs={fault="nan_obs", at=601}']
    assert main(args) == 2
    assert "stopped after env step 6144" in one_error_line(capsys)
    assert not (run / "checkpoints" / "last.json").exists()
    best = _finite_checkpoint(run, "best")  # no last to resume from, but a policy that can be evaluated
    before = files_of(run)
    assert main(args) == 2
    assert "already holds a run" in one_error_line(capsys)
    assert files_of(run) == before and checkpoint.load(run, "best").step == best.step


def _start(args: list[str], **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), *sys.path])}
    return subprocess.Popen([sys.executable, "-m", "trustrl", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, **kwargs)


def _wait_for_lock(run: Path, proc: subprocess.Popen) -> None:
    lock = run / ".trustrl.lock"
    for _ in range(600):
        if lock.exists() and lock.read_text().strip() == str(proc.pid):
            return
        time.sleep(0.05)
    raise AssertionError(f"{proc.pid} never took the lock: {proc.stderr.read() if proc.poll() is not None else ''}")


def test_a_second_writer_is_refused_with_the_holders_pid_and_kill_9_frees_the_lock(tmp_path, capsys):
    run = tmp_path / "run"
    proc = _start(["train", "cartpole-trpo", "--run-dir", str(run), "--total-steps", "10000000", "--quiet",
                   "--set", "run.checkpoint_every=1"])
    try:
        _wait_for_lock(run, proc)
        while not (run / "checkpoints" / "last.json").exists():
            time.sleep(0.05)
        for args in (["train", "cartpole-trpo", "--run-dir", str(run), *SHORT],
                     ["train", "cartpole-trpo", "--run-dir", str(run), "--overwrite", *SHORT],
                     ["train", "--resume", str(run), "--quiet"]):
            assert main(args) == 2
            assert f"is being written by another trustrl process (pid {proc.pid})" in one_error_line(capsys)
        assert (run / "config.toml").is_file() and (run / "metrics.csv").is_file()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    step = checkpoint.load(run, "last").step
    assert main(["train", "--resume", str(run), "--total-steps", str(step + 2048), "--quiet"]) == 0


def test_two_writers_started_together_on_a_fresh_directory_one_wins(tmp_path):
    for trial in range(3):
        run = tmp_path / f"run{trial}"
        procs = [_start(["train", "cartpole-trpo", "--run-dir", str(run), "--seed", str(seed), "--total-steps", "4096",
                         "--quiet"]) for seed in (1, 2)]
        results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
        codes = sorted(code for code, _ in results)
        assert codes == [0, 2], results
        loser = next(err for code, err in results if code == 2)
        assert "being written by another trustrl process" in loser or "already holds a run" in loser
        winner_seed = 1 + [code for code, _ in results].index(0)
        assert f"seed = {winner_seed}" in (run / "config.toml").read_text()
        assert checkpoint.load(run, "last").config["run"]["seed"] == winner_seed


def test_kill_9_at_random_moments_leaves_a_run_that_resumes_evaluates_and_has_no_leftovers(tmp_path, capsys):
    run = tmp_path / "run"
    rng = random.Random(7)
    kills = 0
    while kills < 10:
        if (run / "checkpoints" / "last.json").exists():
            args = ["train", "--resume", str(run), "--total-steps", "10000000", "--quiet"]
        else:
            args = ["train", "cartpole-trpo", "--run-dir", str(run), "--overwrite", "--total-steps", "10000000",
                    "--quiet", "--set", "run.checkpoint_every=1"]
        proc = _start(args)
        _wait_for_lock(run, proc)  # running: imports done, envs made
        time.sleep(rng.uniform(0.0, 2.0))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
        if (run / "checkpoints" / "last.json").exists():
            checkpoint.load(run, "last")  # complete and matching its hash at every instant
    step = checkpoint.load(run, "last").step
    assert main(["train", "--resume", str(run), "--total-steps", str(step + 2048), "--quiet"]) == 0
    assert main(["eval", str(run), "--episodes", "2"]) == 0
    leftovers = [p for p in run.rglob("*") if p.name.endswith(".tmp") or ".trustrl-replaced" in str(p)]
    assert leftovers == []
    named = {json.loads((run / "checkpoints" / f"{t}.json").read_text())["weights"] for t in ("last", "best")
             if (run / "checkpoints" / f"{t}.json").exists()}
    assert {p.name for p in (run / "checkpoints").glob("*.safetensors")} == named


# --- an --overwrite cut off at every step: the next writer finishes it without losing the old run -------------


def _old_run(run: Path) -> dict[str, bytes]:
    (run / "checkpoints").mkdir(parents=True)
    for name, text in (("config.toml", "old"), ("command.txt", "old"), ("metrics.csv", "step\n1\n"),
                       ("checkpoints/last.json", "{}"), ("checkpoints/last-000000001.safetensors", "w")):
        (run / name).write_text(text)
    (run / "notes.txt").write_text("the user's own file")
    return files_of(run)


def _new_files(run: Path, with_checkpoint: bool) -> None:
    (run / "checkpoints").mkdir(exist_ok=True)
    (run / "config.toml").write_text("new")
    (run / "metrics.csv").write_text("step\n")
    if with_checkpoint:
        (run / "checkpoints" / "last.json").write_text("{}")


def _cut(run: Path, state: str) -> None:
    from trustrl.run.rundir import ASIDE, DISCARD, RESTORING, Replacement

    if state == "setting aside":
        (run / ASIDE).mkdir()
        for name in ("checkpoints", "config.toml"):  # two of four moved, then killed
            os.replace(run / name, run / ASIDE / name)
        return
    Replacement(run, ["config.toml", "command.txt", "metrics.csv", "checkpoints"])
    if state in ("new run started", "new run has its checkpoint"):
        _new_files(run, with_checkpoint=state == "new run has its checkpoint")
    elif state == "discarding the new run":
        _new_files(run, with_checkpoint=False)
        (run / DISCARD).mkdir()
        os.replace(run / "config.toml", run / DISCARD / "config.toml")
    elif state == "putting the old run back":
        _new_files(run, with_checkpoint=False)
        (run / DISCARD).mkdir()
        for name in ("checkpoints", "config.toml", "metrics.csv"):
            os.replace(run / name, run / DISCARD / name)
        (run / ASIDE / RESTORING).touch()
        os.replace(run / ASIDE / "metrics.csv", run / "metrics.csv")


@pytest.mark.parametrize("state", ["setting aside", "new run started", "discarding the new run",
                                   "putting the old run back", "new run has its checkpoint"])
def test_an_overwrite_cut_off_anywhere_is_settled_by_the_next_writer(tmp_path, state):
    from trustrl.run.rundir import recover

    run = tmp_path / "run"
    old = _old_run(run)
    _cut(run, state)
    recover(run)
    assert not any(p.name.startswith(".trustrl-") for p in run.iterdir())
    if state == "new run has its checkpoint":
        assert (run / "config.toml").read_text() == "new" and (run / "notes.txt").is_file()
    else:
        assert files_of(run) == old


def test_a_directory_that_holds_no_run_is_refused_and_nothing_in_it_is_deleted(tmp_path, capsys):
    folder = tmp_path / "proj"
    (folder / "checkpoints").mkdir(parents=True)
    for name in (".draft.tmp", "checkpoints/last-100.safetensors", "checkpoints/best-5.safetensors",
                 "metrics.csv"):
        (folder / name).write_text("someone else's")
    before = files_of(folder)
    assert main(["train", "cartpole-trpo", "--run-dir", str(folder), *SHORT]) == 2
    assert "already holds a run" in one_error_line(capsys)
    assert files_of(folder) == before


def test_two_env_functions_of_one_name_keep_their_own_ids():
    import gymnasium as gym

    from trustrl.envs import register_factory

    first = register_factory(lambda: gym.make("CartPole-v1"))
    second = register_factory(lambda: gym.make("Acrobot-v1"))
    assert first != second
    assert gym.make(first).unwrapped.__class__.__name__ == "CartPoleEnv"
    assert gym.make(second).unwrapped.__class__.__name__ == "AcrobotEnv"

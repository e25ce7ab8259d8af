"""Envs that misbehave: each case one ``error:`` line naming the env copy (or env) and the call, exit code 2.

The envs are ``faulty_env:Misbehaving-v0`` (a fault on cue) and ``exiting_module`` (sys.exit on import).
"""

import gymnasium as gym
import numpy as np
import pytest
from test_reliability import files_of, one_error_line

from trustrl.cli import main
from trustrl.envs import SyncVecEnv
from trustrl.envs.checks import check_step, checked_reset, checked_step
from trustrl.errors import EnvError
from trustrl.samplers.fragments import FragmentCollector

ENV = "faulty_env:Misbehaving-v0"
SHORT = ["--total-steps", "2048", "--quiet", "--set", "run.n_steps=256", "--set", "env.n_envs=2"]


def fault(name: str, at: int = 5) -> list[str]:
    return ["--set", f'env.kwargs={{fault="{name}", at={at}}}']


# (case, train arguments after the env, the error line's message)
TRAIN_CASES = [
    ("reset raises", fault("reset"), "env copy 0: reset() raised OSError: the simulator did not start"),
    ("step raises", fault("step"), "env copy 0: step() raised RuntimeError: the simulator broke"),
    ("step raises, 2 workers", [*fault("step"), "--set", "run.workers=2"],
     "env copy 0: step() raised RuntimeError: the simulator broke"),
    ("step calls sys.exit", fault("step_exit"), "env copy 0: step() called sys.exit('the simulator gave up')"),
    ("snapshot_state raises", [*fault("snapshot"), "--set", "run.checkpoint_every=1"],
     "env copy 0: snapshot_state() raised RuntimeError: the simulator cannot save"),
    ("restore_state raises in a vine branch", [*fault("restore"), "--algo", "trpo", "--set", "run.sampling=vine"],
     "env copy 0: restore_state() raised KeyError: 'slot'"),
    ("observation of the wrong shape", fault("obs_shape"),
     "env copy 0: step() returned an observation of shape (3,), the space is (2,)"),
    ("observation of the wrong shape, 2 workers", [*fault("obs_shape"), "--set", "run.workers=2"],
     "env copy 0: step() returned an observation of shape (3,), the space is (2,)"),
    ("step raises, async copies", [*fault("step"), "--set", "env.vectorization=async"],
     "an env copy: step() raised RuntimeError: the simulator broke"),
    ("string reward, async copies", [*fault("reward_string"), "--set", "env.vectorization=async"],
     "an env copy: step() returned a reward of str '1.5', not one real number"),
    ("step returns four values", fault("four_values"),  # gymnasium's TimeLimit unpacks them first
     "env copy 0: step() raised ValueError: not enough values to unpack (expected 5, got 4)"),
    ("step returns four values, in a vine branch", [*fault("four_values", at=300), "--algo", "trpo", "--set",
                                                    "run.sampling=vine"],
     "env copy 0: step() raised ValueError: not enough values to unpack (expected 5, got 4)"),
    ("reset observation of the wrong shape", fault("reset_obs_shape"),
     "env copy 0: reset() returned an observation of shape (3,), the space is (2,)"),
    ("observation of strings", fault("obs_string"),
     "env copy 0: step() returned an observation of dtype <U1, not numbers"),
    ("observation as a list", fault("obs_list"),
     "env copy 0: step() returned an observation of type list, not a numpy array of shape (2,)"),
    ("observation of shape () broadcast", fault("obs_scalar"),
     "env copy 0: step() returned an observation of shape (), the space is (2,)"),
    ("vector reward", fault("reward_vector"),
     "env copy 0: step() returned a reward of an array of shape (2,) and dtype float64, not one real number"),
    ("complex reward", fault("reward_complex"), "env copy 0: step() returned a reward of complex (1+2j), not one real"),
    ("string reward", fault("reward_string"), "env copy 0: step() returned a reward of str '1.5', not one real number"),
    ("terminated as an array", fault("terminated_array"),
     "env copy 0: step() returned terminated as an array of shape (2,) and dtype bool, not one bool"),
    ("zero-size observation space", fault("zero_obs"), "observations must have at least one entry"),
    ("zero-size action space", fault("zero_act"), "Box actions must be a non-empty vector"),
    ("Discrete actions from -1", fault("discrete_start"), "Discrete actions must start at 0"),
    ("__init__ raises", fault("init"),
     "cannot make environment 'faulty_env:Misbehaving-v0': it raised RuntimeError: no licence for the simulator"),
    ("__init__ calls sys.exit", fault("init_exit"),
     "cannot make environment 'faulty_env:Misbehaving-v0': it raised sys.exit(3)"),
]


@pytest.mark.parametrize("args, message", [case[1:] for case in TRAIN_CASES], ids=[case[0] for case in TRAIN_CASES])
def test_a_misbehaving_env_stops_training_with_one_line(tmp_path, capsys, args, message):
    assert main(["train", ENV, *SHORT, "--run-dir", str(tmp_path / "run"), *args]) == 2
    assert message in one_error_line(capsys)


TOML_CASES = [
    ("__init__ raises", 'fault = "init"', "it raised RuntimeError: no licence for the simulator"),
    ("__init__ calls sys.exit", 'fault = "init_exit"', "it raised sys.exit(3)"),
]


@pytest.mark.parametrize("kwargs, message", [case[1:] for case in TOML_CASES], ids=[case[0] for case in TOML_CASES])
def test_an_env_from_a_toml_file_that_cannot_be_made_is_one_line(tmp_path, capsys, kwargs, message):
    config = tmp_path / "run.toml"
    config.write_text(f'[env]\nid = "{ENV}"\nkwargs = {{{kwargs}}}\n')
    assert main(["train", str(config), *SHORT, "--run-dir", str(tmp_path / "run")]) == 2
    assert message in one_error_line(capsys)


SETTING_CASES = [
    ("max_episode_steps 0 in env.kwargs", ["CartPole-v1", "--set", "env.kwargs={max_episode_steps=0}"],
     "env.kwargs: max_episode_steps must be a positive integer (or None), got 0"),
    ("max_episode_steps -5 in env.kwargs", ["CartPole-v1", "--set", "env.kwargs={max_episode_steps=-5}"],
     "env.kwargs: max_episode_steps must be a positive integer (or None), got -5"),
    ("a module:Id whose module calls sys.exit", ["exiting_module:X-v0"],
     "cannot import module 'exiting_module' for the env: it called sys.exit(4)"),
    ("env.imports naming a module that calls sys.exit", ["CartPole-v1", "--set", 'env.imports=["exiting_module"]'],
     "cannot import module 'exiting_module' for the env: it called sys.exit(4)"),
]


@pytest.mark.parametrize("args, message", [case[1:] for case in SETTING_CASES], ids=[case[0] for case in SETTING_CASES])
def test_env_settings_and_modules_that_exit_are_one_line(tmp_path, capsys, args, message):
    assert main(["train", *args, *SHORT, "--run-dir", str(tmp_path / "run")]) == 2
    assert one_error_line(capsys) == f"error: {message}"


@pytest.mark.parametrize("workers", [1, 2])
def test_close_that_raises_is_one_line_the_finished_run_is_kept_and_its_lock_released(tmp_path, capsys, workers):
    run = tmp_path / "run"
    args = ["train", ENV, *SHORT, "--run-dir", str(run), "--set", f"run.workers={workers}"]
    assert main([*args, *fault("close")]) == 2
    assert one_error_line(capsys) == "error: env copy 0: close() raised RuntimeError: the simulator would not shut down"
    assert (run / "checkpoints" / "last.json").exists()
    assert (run / "metrics.csv").read_text().splitlines()[-1].startswith("2048,")
    assert main([*args, "--overwrite"]) == 0  # the lock was released although the env did not close


def test_an_env_that_fails_in_step_and_then_in_close_is_reported_for_step(tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", ENV, *SHORT, "--run-dir", str(run)]
    assert main([*args, *fault("step_close")]) == 2
    assert one_error_line(capsys) == "error: env copy 0: step() raised RuntimeError: the simulator broke"
    assert main([*args, "--overwrite"]) == 0


@pytest.fixture(scope="module")
def good_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("good") / "run"
    assert main(["train", ENV, *SHORT, "--run-dir", str(run), "--set", "run.checkpoint_every=1"]) == 0
    return run


def test_restore_state_that_raises_on_resume_is_one_line_and_the_run_is_untouched(tmp_path, capsys):
    run = tmp_path / "run"  # restore_state is first called when the run is resumed
    assert main(["train", ENV, *SHORT, "--run-dir", str(run), "--set", "run.checkpoint_every=1",
                 "--set", "algo.max_kl_schedule=constant", *fault("restore")]) == 0
    before = files_of(run)
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--total-steps", "4096", "--quiet"]) == 2
    assert one_error_line(capsys) == "error: env copy 0: restore_state() raised KeyError: 'slot'"
    assert files_of(run) == before


EVAL_CASES = [
    ("step raises", ['fault="step"', "at=5"], "evaluation env: step() raised RuntimeError: the simulator broke"),
    ("observation of the wrong shape", ['fault="obs_shape"', "at=5"],
     "evaluation env: step() returned an observation of shape (3,), the space is (2,)"),
    ("observation of shape ()", ['fault="obs_scalar"', "at=5"],
     "evaluation env: step() returned an observation of shape (), the space is (2,)"),
    ("string reward", ['fault="reward_string"', "at=5"],
     "evaluation env: step() returned a reward of str '1.5', not one real number"),
    ("reset raises", ['fault="reset"'], "evaluation env: reset() raised OSError: the simulator did not start"),
    ("close raises", ['fault="close"'], "the env: close() raised RuntimeError: the simulator would not shut down"),
]


@pytest.mark.parametrize("kwargs, message", [case[1:] for case in EVAL_CASES], ids=[case[0] for case in EVAL_CASES])
def test_a_misbehaving_env_stops_eval_with_one_line(good_run, capsys, kwargs, message):
    capsys.readouterr()
    args = [arg for kwarg in kwargs for arg in ("--env-kwarg", kwarg)]
    assert main(["eval", str(good_run), "--episodes", "1", *args]) == 2
    assert one_error_line(capsys) == f"error: {message}"


# --- the checks themselves -------------------------------------------------------------------------------------


def test_a_worker_share_names_its_copies_counted_across_the_run():
    envs = SyncVecEnv([gym.make(ENV, fault="obs_shape", at=1) for _ in range(2)])
    collector = FragmentCollector(envs, first=3)
    collector.reset(seed=0)
    with pytest.raises(EnvError, match=r"^env copy 3: step\(\) returned an observation of shape \(3,\)"):
        envs.step(np.zeros((2, 1), np.float32))


@pytest.mark.parametrize("reward, terminated", [
    (1.0, False), (1, True), (np.float32(0.5), np.bool_(True)), (np.array(2.5), np.array(False)), (np.int8(3), 1),
])
def test_what_the_api_allows_passes_unchanged(reward, terminated):
    obs = np.zeros(4, np.float32)
    result = (obs, reward, terminated, False, {})
    assert check_step(result, (4,), 0) is result


@pytest.mark.parametrize("result, message", [
    ((np.zeros(4), 1.0, False, False), r"returned tuple .*, not \(observation, reward"),
    ((np.zeros(4, np.float32), 1.0, False, np.array([True]), {}), r"returned truncated as an array of shape \(1,\)"),
    ((np.zeros(4, np.float32), 1.0, 2, False, {}), r"returned terminated as int 2, not one bool"),
    ((np.zeros(4, object), 1.0, False, False, {}), r"returned an observation of dtype object, not numbers"),
    ((np.zeros((1, 4)), 1.0, False, False, {}), r"returned an observation of shape \(1, 4\), the space is \(4,\)"),
    ((np.zeros(4), None, False, False, {}), r"returned a reward of NoneType None, not one real number"),
])
def test_what_the_api_forbids_is_named(result, message):
    with pytest.raises(EnvError, match=r"^env copy 2: step\(\) " + message):
        check_step(result, (4,), 2)


@pytest.mark.parametrize("branch", [False, True])
def test_a_step_of_four_values_is_named_with_or_without_wrappers_unpacking_it(branch):
    from faulty_env import Misbehaving

    envs = SyncVecEnv([Misbehaving(fault="four_values", at=1)])  # no gymnasium wrapper in between
    envs.reset(seed=0)
    with pytest.raises(EnvError, match=r"^env copy 0: step\(\) (did not return five values|returned tuple)"):
        envs.step_copy(0, np.zeros(1, np.float32)) if branch else envs.step(np.zeros((1, 1), np.float32))


def test_a_single_env_is_checked_by_name():
    env = gym.make(ENV, fault="reset_obs_shape")
    with pytest.raises(EnvError, match=r"^evaluation env: reset\(\) returned an observation of shape \(3,\)"):
        checked_reset(env, "evaluation env", seed=0)
    env = gym.make(ENV, fault="step", at=1)
    checked_reset(env, "evaluation env", seed=0)
    with pytest.raises(EnvError, match=r"^evaluation env: step\(\) raised RuntimeError: the simulator broke$"):
        checked_step(env, np.zeros(1, np.float32), "evaluation env")

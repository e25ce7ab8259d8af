"""No code runs from the working directory or from a run directory: each case a row.

A *planted* module writes a marker file when it is imported. It is put where trustrl must never look -- the folder
trustrl is started from, a run directory -- under the name of a module trustrl imports (``numpy``) or of a module a
run's record lists in ``env.imports``. A case passes when no marker appears and the command ends as it should.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
TRUSTRL = Path(sys.executable).parent / "trustrl"
PLANTED = ("import os, pathlib\n"
           "pathlib.Path(os.environ['PLANTED_MARKERS'], f'{__name__}-{os.getpid()}').touch()\n")
BENIGN = "# an env.imports module that registers nothing\n"
SHORT_TRAIN = ["--total-steps", "1024", "--quiet", "--set", "run.n_steps=256", "--set", "run.eval_episodes=1"]


def _command(how: str) -> list[str]:
    return [str(TRUSTRL)] if how == "script" else [sys.executable, "-m", "trustrl"]


def _run(args: list[str], cwd: Path, markers: Path, extra_path: tuple[Path, ...] = (), timeout: float = 180):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, (SRC, *extra_path))), "PLANTED_MARKERS": str(markers)}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _markers(tmp_path: Path) -> Path:
    markers = tmp_path / "markers"
    markers.mkdir()
    return markers


@pytest.mark.parametrize("how", ["script", "module"])
def test_workers_import_nothing_from_the_folder_trustrl_is_started_from(tmp_path, how):
    hostile = tmp_path / "download"
    hostile.mkdir()
    for name in ("numpy", "gymnasium", "cloudpickle"):
        (hostile / f"{name}.py").write_text(PLANTED)
    markers = _markers(tmp_path)
    result = _run([*_command(how), "train", "CartPole-v1", "--run-dir", str(tmp_path / "run"), *SHORT_TRAIN,
                   "--set", "run.workers=2", "--set", "env.n_envs=2"], hostile, markers)
    assert sorted(p.name for p in markers.iterdir()) == []
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "run" / "checkpoints" / "last.json").is_file()


@pytest.fixture(scope="module")
def shipped_run(tmp_path_factory):
    """A run whose record lists ``env.imports = ["shipped_envs"]``, trained with that module on PYTHONPATH; a
    planted ``shipped_envs.py`` then shipped inside the run directory."""
    root = tmp_path_factory.mktemp("shipped")
    (root / "lib").mkdir()
    (root / "lib" / "shipped_envs.py").write_text(BENIGN)
    run = root / "run"
    result = _run([sys.executable, "-m", "trustrl", "train", "CartPole-v1", "--set", 'env.imports=["shipped_envs"]',
                   "--run-dir", str(run), *SHORT_TRAIN], root, root, (root / "lib",))
    assert result.returncode == 0, result.stderr
    (run / "shipped_envs.py").write_text(PLANTED)
    return root


# (command, extra PYTHONPATH entries relative to the study root, the exit code expected)
SHIPPED_CASES = [
    (["module", "eval", ".", "--episodes", "1"], (), 2),
    (["script", "eval", ".", "--episodes", "1"], ("run",), 2),  # the run directory named on PYTHONPATH
    (["module", "eval", ".", "--episodes", "1"], ("run",), 2),
    (["module", "train", "--resume", "."], (), 2),
    (["module", "eval", ".", "--episodes", "1"], ("lib",), 0),  # the module where the user keeps it: found there
    (["script", "eval", ".", "--episodes", "1"], ("run", "lib"), 0),
]  # fmt: skip


@pytest.mark.parametrize("args, extra, code", SHIPPED_CASES)
def test_no_module_is_imported_from_a_run_directory(shipped_run, tmp_path, args, extra, code):
    run = tmp_path / "run"
    shutil.copytree(shipped_run / "run", run)
    markers = _markers(tmp_path)
    extra_path = tuple(run if e == "run" else shipped_run / e for e in extra)
    result = _run([*_command(args[0]), *args[1:]], run, markers, extra_path)
    assert sorted(p.name for p in markers.iterdir()) == []
    assert result.returncode == code, result.stderr
    if code == 2:
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: cannot import module 'shipped_envs'"), result.stderr
        if extra == ("run",):  # the run on the import path: the message says why its module is not taken
            assert lines[0].endswith(f"the one in {run.resolve()} is inside a run directory, never imported: "
                                     "keep it outside runs"), result.stderr
        assert "Traceback" not in result.stderr


def test_the_python_api_does_not_import_env_modules_from_a_run_it_loads(shipped_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(shipped_run / "run", run)
    markers = _markers(tmp_path)
    code = ("import sys, trustrl\n"
            "sys.path.append(sys.argv[1])  # the run directory searched last\n"
            "try:\n"
            "    trustrl.evaluate(sys.argv[1], episodes=1)\n"
            "except trustrl.TrustrlError as exc:\n"
            "    print('refused:', exc)\n")
    result = _run([sys.executable, "-c", code, str(run)], tmp_path, markers)
    assert sorted(p.name for p in markers.iterdir()) == []
    assert result.returncode == 0 and result.stdout.startswith("refused: cannot import module 'shipped_envs'"), (
        result.stdout + result.stderr)


def test_ray_actors_import_nothing_from_the_folder_trustrl_is_started_from(tmp_path):
    hostile = tmp_path / "download"
    hostile.mkdir()
    (hostile / "numpy.py").write_text(PLANTED)
    (hostile / "gymnasium.py").write_text(PLANTED)
    markers = _markers(tmp_path)
    result = _run([str(TRUSTRL), "train", "CartPole-v1", "--run-dir", str(tmp_path / "run"), *SHORT_TRAIN,
                   "--set", "run.placement='ray'", "--set", "run.workers=2", "--set", "env.n_envs=2"], hostile, markers)
    assert sorted(p.name for p in markers.iterdir()) == []
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("entry, hidden", [
    ("run", True),
    ("run/sub", True),
    ("link-to-run", True),  # a symlink into the run is the run
    ("", True),  # the working directory, here the run
    ("run2", False),  # a sibling whose name starts like the run's
    ("lib", False),
])  # fmt: skip
def test_the_entries_of_a_loaded_run_are_skipped_for_env_modules_and_put_back(tmp_path, monkeypatch, entry, hidden):
    from trustrl import import_paths

    for folder in ("run/sub", "run2", "lib"):
        (tmp_path / folder).mkdir(parents=True)
    (tmp_path / "link-to-run").symlink_to(tmp_path / "run")
    monkeypatch.chdir(tmp_path / "run")
    monkeypatch.setattr(import_paths, "_RUN_DIRECTORIES", set())
    module = f"probe_{abs(hash(entry)) % 10**8}"
    where = tmp_path / ("run" if entry == "" else entry)
    (where / f"{module}.py").write_text("FOUND = True\n")
    path_entry = entry if entry == "" else str(tmp_path / entry)
    monkeypatch.setattr(sys, "path", [path_entry, *sys.path])
    import_paths.never_import_from(tmp_path / "run")
    assert import_paths.is_run_directory_path(path_entry) is hidden
    try:
        if hidden:
            with pytest.raises(ModuleNotFoundError):
                import_paths.import_env_module(module)
        else:
            assert import_paths.import_env_module(module).FOUND
        assert sys.path[0] == path_entry  # put back where it was
    finally:
        sys.modules.pop(module, None)


def test_tune_trial_processes_import_nothing_from_the_folder_tune_is_started_from(tmp_path):
    hostile = tmp_path / "download"
    hostile.mkdir()
    for name in ("numpy", "optuna", "pickle", "socket"):  # pickle and socket: what a spawned process imports first
        (hostile / f"{name}.py").write_text(PLANTED)
    markers = _markers(tmp_path)
    result = _run([str(TRUSTRL), "tune", "cartpole-trpo", "--param", "algo.gae_lambda=float:0.9:0.99", "--trials", "2",
                   "--jobs", "2", "--no-prune", "--out", str(tmp_path / "study"), "--total-steps", "1024"],
                  hostile, markers)
    assert sorted(p.name for p in markers.iterdir()) == []
    assert result.returncode == 0, result.stderr

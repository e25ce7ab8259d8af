"""Rendering only where asked for: importing trustrl sets no GL variable, training a MuJoCo env needs no working
OpenGL, the back end is chosen when a video is made (also after training envs imported ``mujoco``), and a GL
failure of a video is one ``error:`` line naming the packages to install."""

import ctypes.util
import os
import subprocess
import sys
from pathlib import Path

import imageio.v2 as imageio
import pytest

import trustrl
from trustrl.display import EGL_PACKAGES, OSMESA_PACKAGES, headless_defaults, offscreen_rendering
from trustrl.video import video

SRC = str(Path(trustrl.__file__).resolve().parents[1])
GL_VARIABLES = ("MUJOCO_GL", "PYOPENGL_PLATFORM", "SDL_VIDEODRIVER", "DISPLAY", "WAYLAND_DISPLAY")
TINY = ["--total-steps", "1024", "--set", "run.n_steps=256", "--set", "env.n_envs=2", "--set", "env.max_episode_steps=20", "--quiet"]


def _run(args: list[str], cwd: Path, **variables: str) -> subprocess.CompletedProcess:
    """``python args`` in a fresh process on a headless machine: no GL variable but ``variables``."""
    env = {k: v for k, v in os.environ.items() if k not in GL_VARIABLES}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (SRC, env.get("PYTHONPATH")) if p)
    env.update(variables)
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def broken_egl(tmp_path_factory) -> str:
    """A library folder whose libEGL files are empty: PyOpenGL's EGL platform loads none of them, as on a machine
    with a broken libEGL."""
    folder = tmp_path_factory.mktemp("broken-egl")
    for name in ["libEGL.so", *(f"libEGL.so.{i}" for i in range(10))]:
        (folder / name).write_bytes(b"")
    return str(folder)


@pytest.fixture(scope="module")
def pendulum_run(tmp_path_factory) -> Path:
    cwd = tmp_path_factory.mktemp("gl")
    out = _run(["-m", "trustrl", "train", "InvertedPendulum-v5", "--run-dir", "run", *TINY], cwd)
    assert out.returncode == 0, out.stderr
    return cwd / "run"


def test_the_broken_folder_breaks_mujoco_once_egl_is_chosen(broken_egl, tmp_path):
    """What importing trustrl used to do (MUJOCO_GL=egl) fails with this folder as it did for users."""
    out = _run(["-c", "import mujoco"], tmp_path, MUJOCO_GL="egl", LD_LIBRARY_PATH=broken_egl)
    assert out.returncode != 0 and "eglQueryString" in out.stderr


def test_importing_trustrl_sets_no_gl_variable(tmp_path):
    code = ("import os, trustrl.cli, trustrl.api, trustrl.video, trustrl.run, trustrl.episodes, trustrl.display; "
            "print([os.environ.get(name) for name in ('MUJOCO_GL', 'SDL_VIDEODRIVER', 'PYOPENGL_PLATFORM')])")
    out = _run(["-c", code], tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[None, None, None]"


def test_training_a_mujoco_env_in_worker_processes_needs_no_working_opengl(broken_egl, tmp_path):
    args = ["-m", "trustrl", "train", "InvertedPendulum-v5", "--run-dir", "run", "--set", "run.workers=2", *TINY]
    out = _run(args, tmp_path, LD_LIBRARY_PATH=broken_egl)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "run" / "checkpoints" / "last.json").is_file()


def test_a_training_video_chooses_egl_after_the_training_envs_imported_mujoco(tmp_path):
    out = _run(["-m", "trustrl", "train", "InvertedPendulum-v5", "--run-dir", "run", "--set", "run.video_every=512",
                *TINY], tmp_path)
    assert out.returncode == 0, out.stderr
    videos = sorted(p.name for p in (tmp_path / "run" / "videos").iterdir())
    assert videos == ["step-1024.mp4", "step-512.mp4"]
    with imageio.get_reader(tmp_path / "run" / "videos" / "step-1024.mp4") as reader:
        frames = [frame for frame in reader]  # list() would size itself by len(): inf for ffmpeg
    assert 2 <= len(frames) <= 21 and frames[0].shape == (480, 480, 3) and frames[0].std() > 0


def _one_error_line(out: subprocess.CompletedProcess) -> str:
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    return lines[0]


@pytest.mark.parametrize("backend", ["broken-egl", "osmesa"])
def test_a_video_whose_gl_back_end_fails_is_one_error_line_naming_the_packages(pendulum_run, broken_egl, tmp_path,
                                                                               backend):
    if backend == "osmesa":
        if ctypes.util.find_library("OSMesa"):
            pytest.skip("OSMesa is installed here")
        variables, packages = {"MUJOCO_GL": "osmesa"}, [OSMESA_PACKAGES, EGL_PACKAGES]
    else:
        variables, packages = {"LD_LIBRARY_PATH": broken_egl}, [EGL_PACKAGES]
    out = _run(["-m", "trustrl", "video", str(pendulum_run), "--out", "v.mp4", "--episodes", "1"], tmp_path,
               **variables)
    line = _one_error_line(out)
    assert "the OpenGL back end failed" in line and all(f"apt-get install {p}" in line for p in packages)
    assert list(tmp_path.iterdir()) == []  # no video, no temporary file


def test_training_with_videos_and_a_broken_egl_stops_before_writing_anything(broken_egl, tmp_path):
    out = _run(["-m", "trustrl", "train", "InvertedPendulum-v5", "--run-dir", "run", "--set", "run.video_every=512",
                *TINY], tmp_path, LD_LIBRARY_PATH=broken_egl)
    line = _one_error_line(out)
    assert "cannot render InvertedPendulum-v5" in line and f"apt-get install {EGL_PACKAGES}" in line
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("command", ["train", "train-in-workers", "eval"])
def test_a_failing_mujoco_gl_the_user_set_is_one_error_line_where_nothing_renders(pendulum_run, tmp_path, command):
    if ctypes.util.find_library("OSMesa"):
        pytest.skip("OSMesa is installed here")
    train = ["train", "walker2d-trpo-notebook", "--run-dir", "run", *TINY]  # a preset: the workers make the first env
    args = {"train": ["train", "InvertedPendulum-v5", "--run-dir", "run", *TINY],
            "train-in-workers": [*train, "--set", "run.workers=2"],
            "eval": ["eval", str(pendulum_run), "--episodes", "1"]}[command]
    line = _one_error_line(_run(["-m", "trustrl", *args], tmp_path, MUJOCO_GL="osmesa"))
    assert f"apt-get install {OSMESA_PACKAGES}" in line and line.endswith("unset MUJOCO_GL to go on without OpenGL")
    assert list(tmp_path.iterdir()) == []


def test_filming_sets_the_headless_defaults_only_while_it_renders(pendulum_run, tmp_path, monkeypatch):
    for name in GL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert headless_defaults() == {"MUJOCO_GL": "egl", "SDL_VIDEODRIVER": "dummy"}
    monkeypatch.setenv("MUJOCO_GL", "osmesa")
    assert headless_defaults() == {"SDL_VIDEODRIVER": "dummy"}  # what the user set is theirs
    monkeypatch.setenv("DISPLAY", ":0")
    assert headless_defaults() == {}
    monkeypatch.delenv("MUJOCO_GL")
    monkeypatch.delenv("DISPLAY")
    seen = []
    with offscreen_rendering():
        seen.append(os.environ.get("MUJOCO_GL"))
    result = video(pendulum_run, tmp_path / "p.mp4", episodes=1)
    assert seen == ["egl"] and result.frames == result.lengths[0] + 1
    assert "MUJOCO_GL" not in os.environ and "SDL_VIDEODRIVER" not in os.environ

"""What rendering needs from the machine: a display for a window, an OpenGL back end for MuJoCo frames.

Nothing here runs at import, and nothing else in trustrl sets a GL variable: training never renders,
so a machine whose OpenGL libraries are missing or broken trains MuJoCo envs like any other. The
back end is chosen only while a video or a window is made (:func:`offscreen_rendering`). That is
late enough: ``import mujoco`` reads ``MUJOCO_GL`` only for its own ``mujoco.Renderer``, while
gymnasium's MuJoCo envs read it when their renderer is created, at an env's first ``render()`` --
so filming works in a process whose training envs imported ``mujoco`` long before.
"""

from __future__ import annotations

import gc
import os
import sys
import traceback
from contextlib import contextmanager
from typing import Iterator

from trustrl.errors import TrustrlError

#: Debian/Ubuntu packages of the Mesa EGL libraries: headless MuJoCo rendering (``MUJOCO_GL=egl``).
EGL_PACKAGES = "libegl1 libegl-mesa0"
#: Debian/Ubuntu package of software OpenGL (``MUJOCO_GL=osmesa``).
OSMESA_PACKAGES = "libosmesa6"

_filming = 0  # how many offscreen_rendering blocks are open
# Where a failure comes from when OpenGL is what failed: PyOpenGL, MuJoCo's GL contexts, gymnasium's renderer.
_GL_SOURCES = ("/OpenGL/", "/mujoco/egl/", "/mujoco/osmesa/", "/mujoco/glfw/", "/mujoco/rendering/", "/glfw/",
               "/gymnasium/envs/mujoco/mujoco_rendering.py")


def has_display() -> bool:
    """Whether a window can open here: anything but Linux, or Linux with an X11 or Wayland display."""
    return not sys.platform.startswith("linux") or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def check_display() -> None:
    """``render_mode="human"`` opens a window: on Linux that needs an X11 or Wayland display."""
    if not has_display():
        raise TrustrlError(
            "--render needs a display, and none is available (DISPLAY and WAYLAND_DISPLAY are unset); "
            "use `trustrl video RUN --out episodes.mp4` to film episodes headless"
        )


def headless_defaults() -> dict[str, str]:
    """The variables :func:`offscreen_rendering` sets: on Linux without a display, MuJoCo through EGL and
    pygame's dummy video driver (classic control draws off-screen), each only if the user set none."""
    if has_display():
        return {}
    wanted = {"MUJOCO_GL": "egl", "SDL_VIDEODRIVER": "dummy"}
    return {name: value for name, value in wanted.items() if name not in os.environ}


@contextmanager
def offscreen_rendering() -> Iterator[None]:
    """Render frames without a window inside this block; any OpenGL failure becomes one :class:`TrustrlError`.

    The headless defaults (:func:`headless_defaults`) hold only inside the block, so processes started
    afterwards (sampling workers) inherit none of them.
    """
    global _filming
    chosen = headless_defaults()
    os.environ.update(chosen)
    _filming += 1
    try:
        with gl_failures_explained():
            yield
    finally:
        _filming -= 1
        for name in chosen:
            os.environ.pop(name, None)


@contextmanager
def gl_failures_explained(note: str = "", error: type[TrustrlError] = TrustrlError) -> Iterator[None]:
    """An exception raised by OpenGL (a missing or broken libEGL, no OSMesa, a GL window that cannot open)
    becomes one ``error`` line naming the packages to install (and ``note``); others pass through."""
    try:
        yield
    except TrustrlError:
        raise
    except Exception as exc:
        if not is_gl_failure(exc):
            raise
        message = str(render_failure("", exc))
        raise error(f"{message}; {note}" if note and not _filming else message) from None


#: What :func:`gl_failures_explained` adds where nothing is rendered (unless inside :func:`offscreen_rendering`):
#: a ``MUJOCO_GL`` the user set fails as ``mujoco`` is first imported, though only filming needs OpenGL.
NOT_RENDERING = "nothing is rendered here: unset MUJOCO_GL to go on without OpenGL"


def render_failure(what: str, exc: Exception) -> TrustrlError:
    """The one-line error for ``exc`` raised while rendering (``what``: what was being done): an OpenGL
    failure names the packages that fix it, any other says what it was."""
    detail = (str(exc).strip().splitlines() or [""])[0]
    message = gl_failure_message(exc) if is_gl_failure(exc) else f"{type(exc).__name__}: {detail}"
    _release_quietly(exc)
    return TrustrlError(f"{what}: {message}" if what else message)


def _release_quietly(exc: BaseException) -> None:
    """Let go of what the failure's frames hold now: a half-made GL context (gymnasium's renderer) fails again
    in its ``__del__`` when collected, which would print a traceback after the one-line error."""
    hook = sys.unraisablehook
    sys.unraisablehook = lambda unraisable: None
    try:
        while exc is not None:
            traceback.clear_frames(exc.__traceback__)
            exc = exc.__cause__ or exc.__context__
        gc.collect()
    finally:
        sys.unraisablehook = hook


def is_gl_failure(exc: BaseException) -> bool:
    """Whether ``exc`` (or an exception it came from) was raised inside PyOpenGL, MuJoCo's GL contexts or
    gymnasium's MuJoCo renderer."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        files = [frame.filename.replace("\\", "/") for frame in traceback.extract_tb(exc.__traceback__)]
        if any(source in name for name in files for source in _GL_SOURCES) or "OpenGL" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def gl_failure_message(exc: BaseException) -> str:
    """One line: what failed, and the packages that fix it for the back end ``MUJOCO_GL`` names."""
    detail = (str(exc).strip().splitlines() or [""])[0]
    backend = os.environ.get("MUJOCO_GL", "").strip().lower()
    what = f"the OpenGL back end failed (MUJOCO_GL={backend or 'unset'}; {type(exc).__name__}: {detail})"
    egl = f"headless MuJoCo rendering uses EGL (Debian/Ubuntu: apt-get install {EGL_PACKAGES})"
    if backend == "osmesa":
        return f"{what}; OSMesa needs {OSMESA_PACKAGES} (apt-get install {OSMESA_PACKAGES}), or set MUJOCO_GL=egl: {egl}"
    if backend in ("", "egl"):
        return f"{what}; {egl}"
    return f"{what}; MUJOCO_GL={backend} needs a display with OpenGL, or set MUJOCO_GL=egl: {egl}"

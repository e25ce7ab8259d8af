"""Whether a window can open here, and the headless GL set-up MuJoCo needs before it is first imported."""

from __future__ import annotations

import os
import sys

from trustrl.errors import TrustrlError


def has_display() -> bool:
    """Whether a window can open here: anything but Linux, or Linux with an X11 or Wayland display."""
    return not sys.platform.startswith("linux") or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


# MuJoCo picks its OpenGL back end when it is first imported. Without a display
# only EGL (or OSMesa) can work, so a headless Linux machine defaults to EGL; and
# pygame (classic control) draws off-screen without complaining about the missing display.
if not has_display():
    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")


def check_display() -> None:
    """``render_mode="human"`` opens a window: on Linux that needs an X11 or Wayland display."""
    if not has_display():
        raise TrustrlError(
            "--render needs a display, and none is available (DISPLAY and WAYLAND_DISPLAY are unset); "
            "use `trustrl video RUN --out episodes.mp4` to film episodes headless"
        )

"""Pick MuJoCo's OpenGL backend before `mujoco` is imported (it reads MUJOCO_GL once, at import).

With a display, MuJoCo's default (GLFW) works. Without one, GLFW fails ("DISPLAY environment
variable is missing", then mujoco.FatalError), so headless rendering uses EGL (Mesa on a CPU
machine, the NVIDIA driver on a GPU one) or, failing that, OSMesa. A user's own MUJOCO_GL wins.
"""

from __future__ import annotations

import ctypes.util
import os
from collections.abc import Callable, MutableMapping

from isaacgymenvs.errors import UserError

# (MUJOCO_GL value, the library it loads), in order of preference for headless rendering.
HEADLESS_BACKENDS = (("egl", "EGL"), ("osmesa", "OSMesa"))
INSTALL_HINT = "install EGL (Debian/Ubuntu: apt-get install libegl1 libegl-mesa0 libgl1-mesa-dri)"


def has_display(environ: MutableMapping[str, str]) -> bool:
    return bool(environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY"))


def choose_gl_backend(
    environ: MutableMapping[str, str] = os.environ, find_library: Callable[[str], str | None] = ctypes.util.find_library
) -> str | None:
    """Set MUJOCO_GL (and PyOpenGL's platform) for rendering without a display; returns the backend.

    None means MuJoCo's default (a display is present) or that no headless backend exists, which
    only matters once something renders (see `require_headless_gl`).
    """
    chosen = environ.get("MUJOCO_GL")
    if chosen:
        library = dict(HEADLESS_BACKENDS).get(chosen.lower())
        if library is not None and find_library(library) is None:
            # mujoco would fail at import with an ImportError deep inside PyOpenGL.
            raise UserError(f"MUJOCO_GL={chosen} but lib{library} is not installed; {INSTALL_HINT} or unset MUJOCO_GL.")
        return chosen
    if has_display(environ):
        return None
    for backend, library in HEADLESS_BACKENDS:
        if find_library(library) is not None:
            environ["MUJOCO_GL"] = backend
            environ.setdefault("PYOPENGL_PLATFORM", backend)
            return backend
    return None


def require_headless_gl(environ: MutableMapping[str, str] = os.environ) -> None:
    """Before rendering without a window: a one-sentence error when no backend can work."""
    if not environ.get("MUJOCO_GL") and not has_display(environ):
        raise UserError(f"Rendering without a display needs EGL or OSMesa and neither is installed; {INSTALL_HINT}.")

"""Pick MuJoCo's OpenGL backend before `mujoco` is imported (it reads MUJOCO_GL once, at import).

With a display, MuJoCo's default (GLFW) works. Without one, GLFW fails ("DISPLAY environment
variable is missing", then mujoco.FatalError), so headless rendering uses EGL (Mesa on a CPU
machine, the NVIDIA driver on a GPU one) or, failing that, OSMesa. A user's own MUJOCO_GL wins.
"""

from __future__ import annotations

import ctypes.util
import json
import os
from collections.abc import Callable, Iterable, MutableMapping
from pathlib import Path

from isaacgymenvs.errors import UserError

# (MUJOCO_GL value, the library it loads), in order of preference for headless rendering.
HEADLESS_BACKENDS = (("egl", "EGL"), ("osmesa", "OSMesa"))
INSTALL_HINT = "install EGL (Debian/Ubuntu: apt-get install libegl1 libegl-mesa0 libgl1-mesa-dri)"
# Where libglvnd looks for EGL vendor files (system first, then the distribution's).
EGL_VENDOR_DIRS = ("/etc/glvnd/egl_vendor.d", "/usr/share/glvnd/egl_vendor.d", "/usr/local/share/glvnd/egl_vendor.d")


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


def mesa_egl_vendor(dirs: Iterable[str] = EGL_VENDOR_DIRS) -> Path | None:
    """libglvnd's vendor file for Mesa's EGL (Debian/Ubuntu: 50_mesa.json), if Mesa is installed."""
    for directory in dirs:
        for path in sorted(Path(directory).glob("*.json")):
            try:
                library = json.loads(path.read_text())["ICD"]["library_path"]
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if "mesa" in str(library).lower():
                return path
    return None


def draw_on_cpu(environ: MutableMapping[str, str] = os.environ, vendor: Path | None = None) -> None:
    """Make MuJoCo's GL draw with Mesa's software rasteriser (llvmpipe), not on a GPU.

    Why: frames drawn on the GPU a trainer is using take time slices from it (a headless video
    player drawing 30 frames/s with EGL on the trainer's H200 cost it 7%; benchmarks/watch_cost.py).
    For EGL, libglvnd is told to load only Mesa's vendor; for GLX (a display), Mesa's too. Both are
    read at the first GL call, so this must run before the first frame. A user's own settings win.
    """
    vendor = vendor or mesa_egl_vendor()
    if vendor is not None:
        environ.setdefault("__EGL_VENDOR_LIBRARY_FILENAMES", str(vendor))
    environ.setdefault("__GLX_VENDOR_LIBRARY_NAME", "mesa")
    environ.setdefault("LIBGL_ALWAYS_SOFTWARE", "1")

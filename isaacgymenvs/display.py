"""Can a Qt window open here? Checked before Qt is imported, because Qt aborts the process
(exit 134, with a message about xcb-cursor that names the wrong library) when its platform
plugin cannot load, and a UserError can say in one sentence what to install instead.

GUI-free: nothing here imports Qt.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path

from isaacgymenvs.errors import UserError

# Shared libraries Qt's platform plugins load, and the Debian/Ubuntu package of each (README lists them).
DEBIAN_PACKAGES = {
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxcb-xinerama.so.0": "libxcb-xinerama0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb.so.1": "libxcb1",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libX11.so.6": "libx11-6",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libfontconfig.so.1": "libfontconfig1",
    "libfreetype.so.6": "libfreetype6",
    "libdbus-1.so.3": "libdbus-1-3",
    "libglib-2.0.so.0": "libglib2.0-0",
    "libEGL.so.1": "libegl1",
    "libGL.so.1": "libgl1",
    "libOpenGL.so.0": "libopengl0",
    "libwayland-client.so.0": "libwayland-client0",
    "libwayland-cursor.so.0": "libwayland-cursor0",
}
HEADLESS_PLATFORMS = ("offscreen", "minimal", "vnc")
_NOT_FOUND = re.compile(r"^\s*(\S+) => not found", re.M)


def qt_platform(environ: Mapping[str, str]) -> str | None:
    """The platform plugin Qt will load: QT_QPA_PLATFORM, else xcb with DISPLAY, wayland with WAYLAND_DISPLAY."""
    chosen = environ.get("QT_QPA_PLATFORM", "").split(":")[0]
    if chosen:
        return chosen
    if environ.get("DISPLAY"):
        return "xcb"
    return "wayland" if environ.get("WAYLAND_DISPLAY") else None


def platform_plugin(platform: str) -> Path | None:
    """PySide6's plugin file for `platform`, found without importing Qt."""
    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]) / "Qt" / "plugins" / "platforms" / f"libq{platform}.so"
    return path if path.is_file() else None


def missing_libraries(plugin: Path) -> list[str]:
    """Shared libraries the plugin needs that the dynamic loader cannot find (ldd), in order, once each."""
    if shutil.which("ldd") is None:
        return []
    try:
        out = subprocess.run(["ldd", str(plugin)], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return list(dict.fromkeys(_NOT_FOUND.findall(out)))


def x_server_missing(display: str) -> bool:
    """True when DISPLAY is a local ':N' whose X server socket does not exist."""
    match = re.fullmatch(r"(?:unix)?:(\d+)(?:\.\d+)?", display)
    return match is not None and not Path(f"/tmp/.X11-unix/X{match[1]}").exists()


def require_display(
    what: str,
    instead: str,
    environ: Mapping[str, str] = os.environ,
    find_missing: Callable[[Path], list[str]] = missing_libraries,
) -> None:
    """A one-sentence UserError when Qt could not open `what` here; `instead` ends it (the alternative)."""
    platform = qt_platform(environ)
    if platform is None:
        raise UserError(f"No display for the {what}; {instead}, or run under Xvfb / with QT_QPA_PLATFORM=offscreen.")
    if platform == "xcb" and x_server_missing(environ.get("DISPLAY", "")):
        display = environ["DISPLAY"]
        raise UserError(f"DISPLAY={display} but no X server runs there, so the {what} cannot open; {instead}.")
    plugin = platform_plugin(platform)
    missing = find_missing(plugin) if plugin is not None else []
    if missing:
        packages = " ".join(dict.fromkeys(DEBIAN_PACKAGES.get(lib, lib) for lib in missing))
        raise UserError(
            f"The {what} needs Qt's {platform} libraries {', '.join(missing)}, which are not installed; "
            f"install them (Debian/Ubuntu: apt-get install {packages}; see the README) or {instead}."
        )

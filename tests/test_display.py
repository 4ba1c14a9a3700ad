"""Before Qt is imported: a missing display, X server or Qt platform library is one sentence."""

from __future__ import annotations

import sys

import pytest

from isaacgymenvs import display
from isaacgymenvs.errors import UserError
from tests.conftest import REPO, cli_env, run_command

INSTEAD = "use headless=True (with video=True to record)"


def test_missing_xcb_libraries_name_the_debian_packages(monkeypatch):
    # What a minimal Debian lacks (seen: exit 134 and a message blaming xcb-cursor).
    missing = ["libxcb-icccm.so.4", "libxcb-keysyms.so.1"]
    monkeypatch.setattr(display, "x_server_missing", lambda d: False)
    with pytest.raises(UserError) as err:
        display.require_display("player window", INSTEAD, {"DISPLAY": ":0"}, find_missing=lambda plugin: missing)
    assert str(err.value) == (
        "The player window needs Qt's xcb libraries libxcb-icccm.so.4, libxcb-keysyms.so.1, which are not "
        "installed; install them (Debian/Ubuntu: apt-get install libxcb-icccm4 libxcb-keysyms1; see the README) "
        "or use headless=True (with video=True to record)."
    )


def test_no_display_or_no_x_server_is_one_sentence():
    with pytest.raises(UserError, match=r"^No display for the player window; use headless=True"):
        display.require_display("player window", INSTEAD, {}, find_missing=lambda plugin: [])
    with pytest.raises(UserError, match=r"^DISPLAY=:93 but no X server runs there"):
        display.require_display("player window", INSTEAD, {"DISPLAY": ":93"}, find_missing=lambda plugin: [])
    # Offscreen and a complete install pass.
    display.require_display("player window", INSTEAD, {"QT_QPA_PLATFORM": "offscreen"}, find_missing=lambda p: [])


def test_platform_follows_qt_rules():
    assert display.qt_platform({"QT_QPA_PLATFORM": "offscreen", "DISPLAY": ":0"}) == "offscreen"
    assert display.qt_platform({"DISPLAY": ":0", "WAYLAND_DISPLAY": "wayland-0"}) == "xcb"
    assert display.qt_platform({"WAYLAND_DISPLAY": "wayland-0"}) == "wayland"
    assert display.qt_platform({}) is None
    assert display.platform_plugin("xcb").name == "libqxcb.so"  # found without importing Qt


def test_every_library_ldd_reports_for_the_xcb_plugin_has_a_package():
    # Whatever this machine lacks, the message can name a package for it.
    assert all(lib in display.DEBIAN_PACKAGES for lib in display.missing_libraries(display.platform_plugin("xcb")))


def test_panel_without_a_display_is_one_sentence(tmp_path):
    run = tmp_path / "runs" / "Ant_2026-01-01_00-00-00"
    (run / "nn").mkdir(parents=True)
    env = cli_env(DISPLAY=None, WAYLAND_DISPLAY=None, QT_QPA_PLATFORM=None)
    result = run_command([sys.executable, str(REPO / "isaacgymenvs" / "checkpoint_control_panel.py"),
                          "--experiment=Ant"], cwd=tmp_path, env=env, timeout=60)  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().startswith("Error: No display for the checkpoint control panel; run the panel on")
    assert len(result.stderr.strip().splitlines()) == 1

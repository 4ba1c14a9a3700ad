"""Shared helpers: configs composed exactly as the command line does, on the CPU."""

from __future__ import annotations

import ctypes.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

# Headless machines (CI): MuJoCo renders through EGL where libEGL exists (on a machine without it,
# MUJOCO_GL=egl would break `import mujoco` itself), Qt draws offscreen.
if ctypes.util.find_library("EGL"):
    os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO = Path(__file__).resolve().parent.parent
ENTRY = REPO / "isaacgymenvs" / "train_play.py"


@pytest.fixture
def make_cfg():
    from isaacgymenvs.config import load_config

    def make(task: str, *overrides: str):
        return load_config([f"task={task}", "sim_device=cpu", "rl_device=cpu", *overrides])

    return make


def run_cli(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run train_play.py as a user would, in `cwd`."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run(
        [sys.executable, str(ENTRY), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )

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


def _cli_env() -> dict[str, str]:
    return dict(os.environ, PYTHONUNBUFFERED="1")  # lines arrive as printed, for tests that read them


def run_cli(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run train_play.py as a user would, in `cwd`."""
    return subprocess.run(
        [sys.executable, str(ENTRY), *args], cwd=cwd, env=_cli_env(), capture_output=True, text=True, timeout=timeout
    )


def start_cli(
    *args: str, cwd: Path, stdout: int = subprocess.PIPE, stderr: int = subprocess.STDOUT
) -> subprocess.Popen:
    """Start train_play.py as a user would, in `cwd`, without waiting; output as text."""
    return subprocess.Popen(
        [sys.executable, str(ENTRY), *args], cwd=cwd, env=_cli_env(), stdout=stdout, stderr=stderr, text=True
    )

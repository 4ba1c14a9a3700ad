"""Shared helpers: configs composed exactly as the command line does, on the CPU, and CLI processes
that never outlive their test."""

from __future__ import annotations

import ctypes.util
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

# Headless machines (CI): MuJoCo renders through EGL where libEGL exists (on a machine without it,
# MUJOCO_GL=egl would break `import mujoco` itself), Qt draws offscreen.
if ctypes.util.find_library("EGL"):
    os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from isaacgymenvs import protocol

REPO = Path(__file__).resolve().parent.parent
ENTRY = REPO / "isaacgymenvs" / "train_play.py"
CARTPOLE = protocol.CheckpointFit("Cartpole", 4, 1)  # what a Cartpole run's checkpoints must fit

# Every process a test starts, so that the test's teardown can kill it (and its children: a player's
# panel, ffmpeg) whether the test passed, failed or timed out. A survivor once kept a core busy and
# pytest from exiting.
_started: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def kill_started_processes():
    """Kill, at the end of each test, the process group of every process it started."""
    yield
    while _started:
        kill_group(_started.pop())


def outlive_the_test(proc: subprocess.Popen) -> subprocess.Popen:
    """For a process a module-scoped fixture starts: not killed at the end of the test that first
    used the fixture; the fixture's own teardown must kill it (kill_group)."""
    _started.remove(proc)
    return proc


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL a process started in its own session, with everything it started, and reap it."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pass
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


@pytest.fixture
def make_cfg():
    from isaacgymenvs.config import load_config

    def make(task: str, *overrides: str):
        return load_config([f"task={task}", "sim_device=cpu", "rl_device=cpu", *overrides])

    return make


def cli_env(**changes: str | None) -> dict[str, str]:
    """The test process's environment with `changes` applied (None removes a variable)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")  # lines arrive as printed, for tests that read them
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def spawn(command: list[str], cwd: Path, env: dict[str, str] | None = None, **popen) -> subprocess.Popen:
    """Popen in a new session (so its children can be killed with it), killed at the test's end."""
    popen.setdefault("text", True)
    proc = subprocess.Popen(command, cwd=cwd, env=env or cli_env(), start_new_session=True, **popen)
    _started.append(proc)
    return proc


def run_cli(
    *args: str, cwd: Path, timeout: float = 300, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run train_play.py as a user would, in `cwd`; on timeout its whole process group is killed."""
    return run_command([sys.executable, str(ENTRY), *args], cwd=cwd, timeout=timeout, env=env)


def run_command(
    command: list[str], cwd: Path, timeout: float = 300, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run a command to completion with captured text output, killed with its children on timeout."""
    proc = spawn(command, cwd, env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        raise
    return subprocess.CompletedProcess(command, proc.returncode, out, err)


def start_cli(
    *args: str,
    cwd: Path,
    stdout: int = subprocess.PIPE,
    stderr: int = subprocess.STDOUT,
    env: dict[str, str] | None = None,
) -> subprocess.Popen:
    """Start train_play.py as a user would, in `cwd`, without waiting; output as text."""
    return spawn([sys.executable, str(ENTRY), *args], cwd, env, stdout=stdout, stderr=stderr)


class Lines:
    """A process's output lines, read by a thread, so a test can wait for one with a deadline."""

    def __init__(self, proc: subprocess.Popen) -> None:
        import queue
        import threading

        self.seen: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, args=(proc.stdout,), daemon=True).start()

    def _pump(self, stream) -> None:
        for line in stream:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def rest(self, timeout: float = 10) -> str:
        """Everything (seen and still to come) once the process has closed its output."""
        try:
            self.wait_for("\0never printed\0", timeout)
        except AssertionError:
            pass
        return "\n".join(self.seen)

    def wait_for(self, text: str, timeout: float) -> str:
        """The first new line containing `text`; AssertionError with the output so far on timeout."""
        import queue
        import time

        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                break
            self.seen.append(line)
            if text in line:
                return line
        raise AssertionError(f"no line with {text!r} within {timeout} s; output:\n" + "\n".join(self.seen[-30:]))


# --- builders shared by the protocol, player and panel tests ------------------------------------


def call_with_timeout(fn, timeout: float = 5.0):
    """fn() in a daemon thread; fails the test if it blocks (a FIFO opened for reading would)."""
    result: dict = {}

    def target() -> None:
        try:
            result["value"] = fn()
        except BaseException as err:
            result["error"] = err

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"{fn} blocked for more than {timeout} s"
    if "error" in result:
        raise result["error"]
    return result["value"]


def good_model() -> dict:
    """The smallest rl_games model state dict that fits Cartpole (4 observations, 1 action)."""
    import torch

    return {
        "running_mean_std.running_mean": torch.zeros(4),
        "running_mean_std.running_var": torch.ones(4),
        "a2c_network.mu.weight": torch.zeros(1, 8),
    }


@pytest.fixture
def run(tmp_path):
    """A fresh Cartpole run directory with one (non-checkpoint) file, nn/a.pth."""
    from isaacgymenvs import protocol

    run = protocol.create_run_dir(tmp_path / "runs", "Cartpole")
    (run.nn / "a.pth").write_bytes(b"x")
    return run

"""The suite's own guarantees: a process a test starts dies with the test, children included."""

from __future__ import annotations

import os
import subprocess
import time

from tests.conftest import _started, kill_group, spawn


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie still answers kill(0)
        return f.read().split(") ")[1][0] != "Z"


def test_kill_group_takes_the_children_too(tmp_path):
    # A shell that starts a grandchild, like a player that starts its panel or ffmpeg.
    proc = spawn(["sh", "-c", "sleep 120 & echo $!; wait"], cwd=tmp_path, stdout=subprocess.PIPE)
    grandchild = int(proc.stdout.readline())
    assert proc in _started and alive(grandchild)
    kill_group(proc)
    deadline = time.monotonic() + 5
    while alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.returncode is not None and not alive(grandchild)


def test_a_hung_test_fails_by_timeout(request):
    # pytest-timeout is loaded and pytest.ini gives every test a limit.
    assert request.config.pluginmanager.hasplugin("timeout")
    assert 0 < float(request.config.getini("timeout")) <= 600

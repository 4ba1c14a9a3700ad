"""A stopped process ends: the stop exception lands wherever the main thread was, and a library's
exit handler must not keep the process alive afterwards (CI once saw a trainer hang for ever after
'Stopped by SIGTERM.')."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from tests.conftest import Lines, run_command, spawn

# The stop lands inside tensorboardX's queue put, after its lock was taken: what rl_games' writer
# does ~20 times an epoch. Its atexit close then waits on that lock.
STOPPED_INSIDE_TENSORBOARD = """
import signal, sys, tempfile
import isaacgymenvs.config as config
from isaacgymenvs import cli, signals
from tensorboardX import SummaryWriter

signals.EXIT_GRACE_SECONDS = {grace}
writer = SummaryWriter(tempfile.mkdtemp())
writer.add_scalar("rewards/step", 1.0, 0)

def stopped_mid_put(argv):
    writer.file_writer.event_writer._event_queue._notempty.acquire()  # held, as a stop can leave it
    print("stopping", flush=True)
    raise signals.StopRequested(signal.SIGTERM)

config.load_config = stopped_mid_put
sys.exit(cli.main(["task=Cartpole"]))
"""


def test_a_stop_ends_the_process_even_when_a_library_exit_handler_hangs(tmp_path):
    start = time.monotonic()
    done = run_command([sys.executable, "-c", STOPPED_INSIDE_TENSORBOARD.format(grace=1.0)], cwd=tmp_path, timeout=60)
    assert done.returncode == 128 + signal.SIGTERM and done.stderr.strip() == "Stopped by SIGTERM.", done.stderr
    assert time.monotonic() - start < 30


def test_a_second_stop_signal_ends_a_stuck_exit_at_once(tmp_path):
    proc = spawn([sys.executable, "-c", STOPPED_INSIDE_TENSORBOARD.format(grace=600.0)], tmp_path,
                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    Lines(proc).wait_for("stopping", timeout=60)
    time.sleep(1.0)  # in the exit handler by now
    assert proc.poll() is None  # stuck, as without the forced exit
    proc.send_signal(signal.SIGINT)  # a second Ctrl+C
    assert proc.wait(timeout=15) == 128 + signal.SIGTERM  # the first stop's exit code


# After the stop is handled, a library's daemon thread fails as the process tears down under it
# (CI saw tensorboardX's writer print 'Exception in thread Thread-1' after the stop message).
DAEMON_FAILS_AFTER_STOP = """
import signal, sys, threading
import isaacgymenvs.config as config
from isaacgymenvs import cli, signals

def stopped(argv):
    raise signals.StopRequested(signal.SIGTERM)

def fails():
    raise RuntimeError("torn down")

config.load_config = stopped
code = cli.main(["task=Cartpole"])
for daemon in (True, False):
    thread = threading.Thread(target=fails, daemon=daemon, name="library-daemon" if daemon else "our-worker")
    thread.start()
    thread.join()
sys.exit(code)
"""


def test_a_library_daemon_thread_failing_after_a_stop_prints_nothing_but_ours_still_reports(tmp_path):
    done = run_command([sys.executable, "-c", DAEMON_FAILS_AFTER_STOP], cwd=tmp_path, timeout=60)
    assert done.returncode == 128 + signal.SIGTERM
    assert done.stderr.startswith("Stopped by SIGTERM.\n"), done.stderr
    assert "library-daemon" not in done.stderr and "Exception in thread our-worker" in done.stderr, done.stderr

"""What stalled clients cost a tab of the web player: its message rate alone and beside N stalled ones.

    python benchmarks/web_stalled.py [--stalled 15 200] [--seconds 10]

A web player (this tree) follows a finished Ant run (the GPU-trained one in tests/data). One client
takes every websocket message, as a tab on a laptop does, and counts them per second. Then N
clients connect and never read (their queues and TCP windows fill). The player refuses tabs beyond
its limit (player/web_guard.py MAX_TABS) with 503; the figure is the reading client's rate beside
the stalled ones over its rate alone (target >= 0.90).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "data" / "ant_gpu_trained"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def connect(port: int, **kwargs):
    import viser
    from websockets.sync.client import connect as ws_connect

    return ws_connect(f"ws://127.0.0.1:{port}", subprotocols=[f"viser-v{viser.__version__}"], **kwargs)


class Reader(threading.Thread):
    """A tab that reads every message; `rate(a, b)` = messages/s between two times."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.ws = connect(port, max_size=None)
        self.times: list[float] = []

    def run(self) -> None:
        try:
            while True:
                self.ws.recv()
                self.times.append(time.monotonic())
        except Exception:
            return

    def rate(self, start: float, end: float) -> float:
        return sum(start <= t < end for t in self.times) / (end - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stalled", type=int, nargs="+", default=[15, 200])
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    logging.getLogger("websockets").setLevel(logging.CRITICAL)  # the stalled clients' own closing noise
    work = Path(tempfile.mkdtemp(prefix="web_stalled_"))
    run = work / "runs" / "parity_2026-12-03_12-52-51"
    (run / "nn").mkdir(parents=True)
    (run / "params").mkdir()
    shutil.copy(DATA / "latest.pth", run / "nn" / "latest.pth")
    shutil.copy(DATA / "config.yaml", run / "params" / "config.yaml")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["PYTHONPATH"] = str(REPO)
    player = subprocess.Popen(
        [sys.executable, str(REPO / "isaacgymenvs" / "train_play.py"), "mode=play", "experiment=parity",
         "viewer=web", f"web_port={port}"], cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True,
    )  # fmt: skip
    try:
        for line in player.stdout:
            if "Loaded latest.pth" in line:
                break
        threading.Thread(target=lambda: [None for _ in player.stdout], daemon=True).start()
        reader = Reader(port)
        reader.start()
        time.sleep(3)
        t0 = time.monotonic()
        time.sleep(args.seconds)
        alone = reader.rate(t0, time.monotonic())
        print(f"reading tab alone: {alone:.1f} messages/s")
        for count in args.stalled:
            stalled, refused = [], 0
            for _ in range(count):
                try:
                    stalled.append(connect(port, max_queue=1, open_timeout=5, ping_interval=None, close_timeout=0.1))
                except Exception:
                    refused += 1
            time.sleep(3)
            t0 = time.monotonic()
            time.sleep(args.seconds)
            beside = reader.rate(t0, time.monotonic())
            print(
                f"beside {count} stalled clients ({len(stalled)} connected, {refused} refused): "
                f"{beside:.1f} messages/s, {beside / alone:.3f} of alone"
            )
            for ws in stalled:
                with contextlib.suppress(Exception):
                    ws.close()
            time.sleep(2)
    finally:
        os.killpg(player.pid, 15)
        player.wait(10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

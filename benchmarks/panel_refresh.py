"""Control-panel responsiveness with many checkpoints.

    python benchmarks/panel_refresh.py [--checkpoints 1000] [--refreshes 20]

Fills a real Cartpole run with N checkpoint files (copies named like rl_games' periodic saves),
opens the panel offscreen, lets the worker validate them once, then times refreshes: the
GUI-thread time spent applying a refresh (target < 100 ms with 1000 checkpoints on the 2-core
machine) and the worker's scan time (off the GUI thread).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from isaacgymenvs import protocol  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoints", type=int, default=1000)
    parser.add_argument("--refreshes", type=int, default=20)
    args = parser.parse_args()
    from PySide6.QtCore import Slot
    from PySide6.QtWidgets import QApplication

    from isaacgymenvs.panel.catalog import run_info
    from isaacgymenvs.panel.window import PanelWindow

    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, str(REPO / "isaacgymenvs" / "train_play.py"), "task=Cartpole", "num_envs=32",
                        "max_iterations=2", "sim_device=cpu", "rl_device=cpu"], cwd=tmp, check=True,
                       capture_output=True)  # fmt: skip
        run = protocol.RunDir(next((Path(tmp) / "runs").iterdir()))
        for i in range(args.checkpoints):
            shutil.copy(run.latest_checkpoint, run.nn / f"last_Cartpole_ep_{i}_rew_{i * 0.5:.1f}.pth")
        app = QApplication.instance() or QApplication([])
        gui_ms: list[float] = []

        class TimedPanel(PanelWindow):
            """Times the GUI-thread slot that applies a refresh; the repaint is timed by the caller."""

            @Slot(object, object)
            def show_entries(self, entries, metrics):
                start = time.perf_counter()
                super().show_entries(entries, metrics)
                gui_ms.append(1e3 * (time.perf_counter() - start))

        window = TimedPanel(run, run_info(run))
        window.show()
        start = time.perf_counter()
        while not gui_ms:
            app.processEvents()
        first = time.perf_counter() - start
        scan_ms = []
        for _ in range(args.refreshes):
            n = len(gui_ms)
            t0 = time.perf_counter()
            window.refresh()
            while len(gui_ms) == n:
                app.processEvents()
            scan_ms.append(1e3 * (time.perf_counter() - t0))
            t1 = time.perf_counter()
            window.repaint()  # the redraw the new rows cause, on the GUI thread too
            gui_ms[-1] += 1e3 * (time.perf_counter() - t1)
        window.close()
        steady = gui_ms[1:]
        total = args.checkpoints + 2
        print(
            f"{total} checkpoints: first scan + validation {first:.1f} s (worker thread); "
            f"refresh GUI-thread time p50 {statistics.median(steady):.1f} ms, max {max(steady):.1f} ms; "
            f"refresh round trip p50 {statistics.median(scan_ms):.0f} ms (target GUI-thread < 100 ms)"
        )


if __name__ == "__main__":
    main()

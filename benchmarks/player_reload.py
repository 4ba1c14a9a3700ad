"""Player benchmark: reload latency, memory across reloads, and viewer frame rate.

    python benchmarks/player_reload.py [--reloads 200] [--memory-reloads 1000]

1. Publish-to-new-weights-active latency: a real checkpoint is re-published atomically (as the
   trainer does) while the player core steps at 60 Hz; latency = time from os.replace until the
   render loop has swapped the new weights in. With filesystem events (default) and with polling
   only (events off, checkpoint_reload_interval=1 s). Targets: p95 <= 200 ms with events.
2. Memory (RSS) after 1000 reloads against after 10: target within 10%.
3. Viewer frame rate: 4 Ant envs stepped in real time and rendered at 960x540 by the player's
   renderer (MUJOCO_GL=egl), then the same through the Qt window (offscreen). Target >= 60 fps.
A short Ant training run (3 epochs) provides the checkpoint.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from isaacgymenvs import protocol  # noqa: E402


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith("VmRSS"))
    return int(line.split()[1]) / 1024


def train_ant(parent: Path) -> protocol.RunDir:
    subprocess.run([sys.executable, str(REPO / "isaacgymenvs" / "train_play.py"), "task=Ant", "num_envs=16",
                    "max_iterations=3", "sim_device=cpu", "rl_device=cpu"], cwd=parent, check=True,
                   capture_output=True)  # fmt: skip
    return protocol.RunDir(next((parent / "runs").iterdir()))


def build_core(run: protocol.RunDir, use_events: bool, reload_interval: float, num_envs: int = 4):
    """The player's own core, on the CPU."""
    from isaacgymenvs.config import load_config
    from isaacgymenvs.player.play import build_core as build_player_core
    from isaacgymenvs.player.play import with_run_config

    overrides = ["mode=play", f"num_envs={num_envs}", "sim_device=cpu", "rl_device=cpu",
                 f"checkpoint_reload_interval={reload_interval}"]  # fmt: skip
    cfg = with_run_config(load_config(overrides), run, task_given=False)
    return build_player_core(cfg, run, use_events=use_events, log=lambda msg: None), cfg


def wait_applied(core, timeout: float = 10.0) -> float:
    """Step at 60 Hz until new weights are active; returns the time they became active."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if core.apply_ready_weights():
            return time.perf_counter()
        core.step()
        time.sleep(max(0.0, core.task.dt - 0.002))
    raise TimeoutError("no reload")


def latencies(run: protocol.RunDir, data: bytes, n: int, use_events: bool) -> list[float]:
    core, _ = build_core(run, use_events, reload_interval=1.0)
    core.follower.start()
    wait_applied(core)
    out = []
    for _ in range(n):
        time.sleep(0.05)
        start = time.perf_counter()
        protocol.atomic_write_bytes(run.latest_checkpoint, data)
        out.append(wait_applied(core) - start)
    core.follower.stop()
    return out


def memory(run: protocol.RunDir, data: bytes, reloads: int) -> tuple[float, float]:
    core, _ = build_core(run, True, reload_interval=1.0)
    core.follower.start()
    wait_applied(core)
    after_10 = 0.0
    for i in range(1, reloads + 1):
        protocol.atomic_write_bytes(run.latest_checkpoint, data)
        wait_applied(core)
        if i == 10:
            after_10 = rss_mb()
    core.follower.stop()
    return after_10, rss_mb()


def frame_rate(run: protocol.RunDir, seconds: float = 5.0) -> tuple[float, float, str]:
    from PySide6.QtWidgets import QApplication

    from isaacgymenvs.player.render import MultiEnvRenderer
    from isaacgymenvs.player.window import PlayerWindow

    core, cfg = build_core(run, True, 30.0)
    renderer = MultiEnvRenderer(core.task.model, 4, float(cfg.task.env.envSpacing))
    frames, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:  # renderer alone, one control step per frame
        core.step()
        renderer.render(core.task.physics.state().qpos.cpu().numpy())
        frames += 1
    bare = frames / (time.perf_counter() - start)
    app = QApplication.instance() or QApplication([])
    window = PlayerWindow(core, renderer, "benchmark")
    window.show()
    start = time.perf_counter()
    shown = 0
    while time.perf_counter() - start < seconds:
        app.processEvents()
        shown = window.pacer.fps
    window.close()
    return bare, shown, f"{renderer.quality} quality, {renderer.width}x{renderer.height}"


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reloads", type=int, default=200)
    parser.add_argument("--memory-reloads", type=int, default=1000)
    parser.add_argument("--fps-only", action="store_true", help="only the viewer frame rate")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = train_ant(Path(tmp))
        data = run.latest_checkpoint.read_bytes()
        for events in () if args.fps_only else (True, False):
            lat = [1e3 * x for x in latencies(run, data, args.reloads, events)]
            label = "events + polling" if events else "polling only (1 s)"
            print(
                f"reload latency, {label}: p50 {pct(lat, 50):.0f} ms, p95 {pct(lat, 95):.0f} ms, "
                f"max {max(lat):.0f} ms over {len(lat)} publishes",
                flush=True,
            )
        if not args.fps_only:
            after_10, after_n = memory(run, data, args.memory_reloads)
            print(
                f"RSS after 10 reloads {after_10:.0f} MB, after {args.memory_reloads} reloads {after_n:.0f} MB "
                f"({after_n / after_10 - 1:+.1%})",
                flush=True,
            )
        bare, window, quality = frame_rate(run)
        print(
            f"viewer, 4 Ant envs, {quality}: renderer + real-time stepping {bare:.0f} fps; "
            f"Qt window (offscreen) {window:.0f} fps",
            flush=True,
        )


if __name__ == "__main__":
    main()

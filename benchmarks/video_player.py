"""How fast the headless video player plays, alone: simulated seconds per wall-clock second.

    python benchmarks/video_player.py runs/Ant_2026-... --checkouts /tmp/before . --repeat 3

For each checkout (a copy of the repository: the code before and after a change), alternately
`--repeat` times, a player `mode=play headless=True video=True` follows the run (its newest
checkpoint) for `--seconds` after `--warmup`. Its status file pairs `sim_seconds` with a `heartbeat`
time in every write, so the pace is their slope: 1.00 is real time (the pacer never goes faster),
less means each step plus its share of drawing and encoding a frame takes longer than a step's dt.
Also: the player's CPU use (its process and its ffmpeg), in cores. `--uncapped` plays as an
evaluation does (games_num, as fast as it can, still recording): the player's own steps/s, above
real time where the machine allows.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from isaacgymenvs import protocol  # noqa: E402


def cpu_seconds(pid: int) -> float:
    """CPU seconds of a process, its reaped children (finished clips' ffmpeg) and its live ones."""
    proc = psutil.Process(pid)
    times = proc.cpu_times()
    total = times.user + times.system + times.children_user + times.children_system
    for child in proc.children(recursive=True):
        try:
            child_times = child.cpu_times()
        except psutil.Error:
            continue
        total += child_times.user + child_times.system
    return total


def main_thread_cpu_seconds(pid: int) -> float:
    """CPU seconds of the process's main thread (its thread id is the pid): the player's own work,
    without the recorder thread, llvmpipe's and ffmpeg's."""
    return next(t.user_time + t.system_time for t in psutil.Process(pid).threads() if t.id == pid)


def player_status(run: protocol.RunDir, pid: int) -> dict:
    return next((s for s in protocol.read_statuses(run) if s.get("pid") == pid), {})


def sample(run: protocol.RunDir, pid: int) -> tuple[dict, float, float]:
    """The player's status, its CPU seconds (with ffmpeg) and its main thread's."""
    return player_status(run, pid), cpu_seconds(pid), main_thread_cpu_seconds(pid)


def measure(checkout: Path, run: protocol.RunDir, args: argparse.Namespace) -> dict:
    """One player from `checkout` on `run`: pace (x real time), steps/s and cores over `seconds`."""
    # the checkout first; what PYTHONPATH held (libraries installed with --target) stays after it
    path = os.pathsep.join(p for p in (str(checkout), os.environ.get("PYTHONPATH", "")) if p)
    env = dict(os.environ, PYTHONPATH=path, PYTHONUNBUFFERED="1")
    env.setdefault("MUJOCO_GL", "egl")
    cmd = [sys.executable, str(checkout / "isaacgymenvs" / "train_play.py"), "mode=play", "headless=True",
           "video=True", f"experiment={run.name}", f"train_dir={run.root.parent}", *args.player_args]  # fmt: skip
    player = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                              start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while player_status(run, player.pid).get("epoch") is None:  # a policy is playing
            if player.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the player from {checkout} did not load a checkpoint")
            time.sleep(0.2)
        time.sleep(args.warmup)
        first, cpu0, main0 = sample(run, player.pid)
        time.sleep(args.seconds)
        last, cpu1, main1 = sample(run, player.pid)
    finally:
        os.killpg(player.pid, signal.SIGTERM)  # closes the clip in progress, as Ctrl+C does
        try:
            player.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(player.pid, signal.SIGKILL)
            player.wait()
    wall = last["heartbeat"] - first["heartbeat"]
    sim = last["sim_seconds"] - first["sim_seconds"]
    steps = sim / args.dt
    return {"real_time": sim / wall, "steps_per_s": steps / wall, "cores": (cpu1 - cpu0) / wall, "wall": wall,
            "main_ms_per_step": 1000 * (main1 - main0) / steps}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a run directory with a checkpoint")
    parser.add_argument("--checkouts", nargs="+", type=Path, default=[REPO])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--dt", type=float, default=1 / 60, help="the task's control step (Ant: 1/60 s)")
    parser.add_argument("--uncapped", action="store_true", help="not paced to real time (an endless evaluation)")
    parser.add_argument("--player-args", nargs="*", default=[])
    args = parser.parse_args()
    if args.uncapped:
        args.player_args.append("games_num=1000000")
    run = protocol.RunDir(args.run.resolve())
    rows: dict[Path, list[dict]] = {c: [] for c in args.checkouts}
    for i in range(args.repeat):
        for checkout in args.checkouts:  # alternated, so that a busier minute of the machine hits both
            row = measure(checkout.resolve(), run, args)
            rows[checkout].append(row)
            load = os.getloadavg()[0]
            print(f"{i + 1}/{args.repeat} {checkout}: real time x{row['real_time']:.3f}, "
                  f"{row['steps_per_s']:.1f} steps/s, {row['cores']:.2f} cores, main thread "
                  f"{row['main_ms_per_step']:.1f} CPU ms/step over {row['wall']:.0f} s "
                  f"(load average {load:.2f})", flush=True)  # fmt: skip
    for checkout, found in rows.items():
        pace = statistics.median(r["real_time"] for r in found)
        cores = statistics.median(r["cores"] for r in found)
        main_ms = statistics.median(r["main_ms_per_step"] for r in found)
        print(f"median {checkout}: real time x{pace:.3f} ({pace / args.dt:.1f} steps/s), {cores:.2f} cores, "
              f"main thread {main_ms:.1f} CPU ms/step")  # fmt: skip


if __name__ == "__main__":
    main()

"""What a watching player costs the trainer beside it, and whether it still keeps up.

    python benchmarks/watch_cost.py                                   # this machine: a CPU trainer
    python benchmarks/watch_cost.py --tasks Ant Humanoid --num-envs 4096 --players video web window
    python benchmarks/watch_cost.py --player-args sim_device=cuda:0 rl_device=cuda:0   # the old GPU player

For each task and player kind, one training run (`checkpoint_save_freq=10`, `--trainer-args`) with
a player following it. Once the player has its first policy, `benchmarks/interleave.py` freezes and
thaws it in alternating blocks of epochs: the trainer's rate thawed / frozen is the player's cost,
with the run's drift cancelled. Then the player stays thawed for a tail of epochs, in which it must
load every publish (its 'Loaded latest.pth (epoch N' lines against the epochs published) and play in
real time (`sim_seconds` of its status file over wall-clock seconds; 1.00 is real time).

Players: `video` (headless, MP4 clips), `web` (the page, with a client that takes every frame, as
a tab on a laptop through an SSH tunnel does), `window` (the Qt window; Qt's offscreen platform
unless a DISPLAY is set). `--player-args` go to every player (e.g. devices); the default is what a
user gets with no arguments.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from benchmarks.interleave import run_interleaved  # noqa: E402
from benchmarks.rates import mean_rate  # noqa: E402
from isaacgymenvs import protocol  # noqa: E402

ENTRY = str(REPO / "isaacgymenvs" / "train_play.py")
PLAYER_KINDS = {
    "video": ["headless=True", "video=True"],
    "web": ["viewer=web"],
    "window": ["viewer=window"],
}
# A tab on another machine: takes every websocket message and draws nothing; prints messages/s.
CLIENT = """
import sys, time, viser
from websockets.sync.client import connect
deadline = time.time() + 180
while True:
    try:
        ws = connect(sys.argv[1], subprotocols=[f"viser-v{viser.__version__}"], max_size=None)
        break
    except OSError:
        if time.time() > deadline:
            raise
        time.sleep(0.5)
count, mark = 0, time.time()
while True:
    ws.recv()
    count += 1
    if time.time() - mark >= 1.0:
        print(count, flush=True)
        count, mark = 0, time.time()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def group_cpu_seconds(pid: int) -> float:
    """CPU seconds used so far by a process, its finished children (ffmpeg of closed clips) and live ones."""
    try:
        proc = psutil.Process(pid)
        times = proc.cpu_times()
        total = times.user + times.system + times.children_user + times.children_system
        for child in proc.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                child_times = child.cpu_times()
                total += child_times.user + child_times.system
    except psutil.Error:
        return float("nan")
    return total


def measure(task: str, kind: str, args: argparse.Namespace, tmp: Path) -> dict:
    """One training run with one player: cost ratio, publishes loaded in the tail, real-time factor."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    player_env = dict(env)
    if kind == "window" and not env.get("DISPLAY"):
        player_env["QT_QPA_PLATFORM"] = "offscreen"
    port = free_port()
    extra = [f"web_port={port}"] if kind == "web" else []
    started: dict = {}

    def start_player(run_dir: Path) -> subprocess.Popen:
        cmd = [sys.executable, ENTRY, "mode=play", f"experiment={run_dir.name}", f"train_dir={run_dir.parent}",
               "checkpoint_reload_interval=5", *PLAYER_KINDS[kind], *extra, *args.player_args]  # fmt: skip
        started["run"] = run_dir
        player = subprocess.Popen(cmd, cwd=tmp, env=player_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True, start_new_session=True)  # fmt: skip
        started["player"] = player
        if kind == "web":
            started["client"] = subprocess.Popen([sys.executable, "-c", CLIENT, f"ws://127.0.0.1:{port}"], cwd=tmp,
                                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                                 start_new_session=True)  # fmt: skip
        return player

    marks: dict = {}

    def on_tail(moment: str) -> None:
        pid = started["player"].pid  # one status file per player (.player_status.<pid>.<host>.json)
        status = next((s for s in protocol.read_statuses(protocol.RunDir(started["run"])) if s.get("pid") == pid), {})
        marks[moment] = (time.time(), float(status.get("sim_seconds", "nan")), group_cpu_seconds(started["player"].pid))

    trainer = [sys.executable, ENTRY, f"task={task}", "mode=train", "headless=True", "max_iterations=1000000",
               f"checkpoint_save_freq={args.save_freq}", f"train_dir={tmp / 'runs'}", f"experiment={task}_{kind}",
               *([f"num_envs={args.num_envs}"] if args.num_envs else []), *args.trainer_args]  # fmt: skip
    try:
        result = run_interleaved(trainer, tmp, env, start_player, args.block, args.blocks, args.tail, on_tail)
    finally:
        client = started.get("client")
        client_lines = []
        if client is not None:
            os.killpg(client.pid, signal.SIGKILL)
            client_lines = client.stdout.read().split()
            client.wait()
    first, last = result.tail_epochs
    published = [e for e in range(first + 1, last - args.save_freq + 1) if e % args.save_freq == 0]
    loaded = {int(m[1]) for line in result.player_output if (m := re.search(r"Loaded latest\.pth \(epoch (\d+)", line))}
    (t0, sim0, cpu0), (t1, sim1, cpu1) = marks["start"], marks["end"]
    rates = [int(x) for x in client_lines if x.isdigit()]
    row = {
        "task": task, "player": kind, "ratio": result.ratio, "on": mean_rate(result.on), "off": mean_rate(result.off),
        "epochs_on": len(result.on), "epochs_off": len(result.off), "published": len(published),
        "loaded": len([e for e in published if e in loaded]), "real_time": (sim1 - sim0) / (t1 - t0),
        "player_cores": (cpu1 - cpu0) / (t1 - t0), "tail_seconds": t1 - t0,
        "client_msgs_per_s": sum(rates[-5:]) / len(rates[-5:]) if rates else None,
        "player_console": [line.rstrip() for line in result.player_output if not line.startswith("Loaded ")][:6],
    }  # fmt: skip
    return row


def line(row: dict) -> str:
    client = f" | client {row['client_msgs_per_s']:.0f} msg/s" if row["client_msgs_per_s"] is not None else ""
    return (
        f"{row['task']:<9} {row['player']:<7} trainer with/without player {row['ratio']:.4f} "
        f"({row['on']:,.0f} vs {row['off']:,.0f} env steps/s, {row['epochs_on']}+{row['epochs_off']} epochs) | "
        f"tail {row['tail_seconds']:.0f} s: loaded {row['loaded']}/{row['published']} publishes, "
        f"real time x{row['real_time']:.2f}, player {row['player_cores']:.2f} cores{client}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=["Ant"])
    parser.add_argument("--players", nargs="+", default=list(PLAYER_KINDS), choices=list(PLAYER_KINDS))
    parser.add_argument("--num-envs", type=int, help="trainer envs (default: the task's for the device)")
    parser.add_argument("--save-freq", type=int, default=10)
    parser.add_argument("--block", type=int, default=10, help="epochs per frozen/thawed block")
    parser.add_argument("--blocks", type=int, default=16)
    parser.add_argument("--tail", type=int, default=60, help="thawed epochs at the end")
    parser.add_argument("--trainer-args", nargs="*", default=[])
    parser.add_argument("--player-args", nargs="*", default=[])
    parser.add_argument("--out", type=Path, help="also write the rows (JSON lines) here")
    args = parser.parse_args()
    trainer, player = " ".join(args.trainer_args) or "(defaults)", " ".join(args.player_args) or "(defaults)"
    print(f"watch cost: trainer {trainer}; player {player}", flush=True)
    for task in args.tasks:
        for kind in args.players:
            with tempfile.TemporaryDirectory() as tmp:
                try:
                    row = measure(task, kind, args, Path(tmp))
                except Exception as err:  # one broken case must not lose the others' figures
                    print(f"{task:<9} {kind:<7} FAILED: {err}", flush=True)
                    continue
            print(line(row), flush=True)
            for text in row["player_console"][:3]:
                print(f"    player: {text}")
            if args.out:
                with open(args.out, "a") as f:
                    f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()

"""Multi-GPU checks for a machine with 2+ GPUs (issue 7).

    python benchmarks/multi_gpu.py [--epochs 100] [--scaling-pairs 3] [--num-envs 8192] [--agents ...]
                                   [--interleaved-epochs 300] [--pairs 0] [--video]

1. Scaling: Ant training on one GPU and `torchrun --standalone --nnodes=1 --nproc_per_node=2 ...
   multi_gpu=True` with the same num_envs per GPU, alternated `--scaling-pairs` times; the ratio of
   the median total env steps/s (target >= 1.8) and each pair's ratio. `--concurrent` adds two
   independent one-GPU trainings at once (GPU 0 and GPU 1): their summed rate, divided by the
   one-GPU rate, is what two GPUs give without rl_games' gradient all-reduce and per-minibatch
   syncs, so it tells the cost of those apart from what the host shares.
2. Side by side, interleaved (`--interleaved-epochs`): the trainer on cuda:0 with a headless player
   (recording video with --video) on cuda:1 (sim_device/rl_device cuda:1, graphics_device_id=1)
   following the run, frozen and thawed in alternating blocks of 10 epochs
   (benchmarks/interleave.py), which cancels the +/-12% run-to-run spread that separate runs suffer
   from (target >= 0.98), and the policy reloads the player made.
3. Side by side, `--pairs N`: alternating trainings alone and with the player; the ratio of the
   median rates.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ENTRY = str(REPO / "isaacgymenvs" / "train_play.py")
sys.path.insert(0, str(REPO))

from benchmarks.interleave import Interleaved, run_interleaved  # noqa: E402
from benchmarks.rates import alternate, steady_rate  # noqa: E402
from isaacgymenvs.trainer.progress import parse_output  # noqa: E402

ENV = dict(os.environ, PYTHONUNBUFFERED="1", NCCL_NVLS_ENABLE="0")


def output_rate(out: str, skip: float = 0.2) -> float:
    """Env steps/s of a trainer's output after the first `skip` fraction of epochs (warm-up, player start-up)."""
    return steady_rate([p.env_steps_per_s for p in parse_output(out)], skip)


def train(cmd: list[str], cwd: Path, player=None) -> tuple[str, str]:
    proc = subprocess.Popen(cmd, cwd=cwd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines, watcher = [], None
    for line in proc.stdout:
        lines.append(line)
        if player is not None and watcher is None and line.startswith("Training will save to: "):
            watcher = player(Path(line.split(": ", 1)[1].strip()))
    proc.wait()
    player_out = ""
    if watcher is not None:
        watcher.send_signal(signal.SIGINT)
        player_out = watcher.communicate(timeout=120)[0]
    out = "".join(lines)
    if proc.returncode:
        print(out[-3000:])
        raise SystemExit(f"training failed: {' '.join(cmd)}")
    return out, player_out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=100, help="per scaling run")
    parser.add_argument("--scaling-pairs", type=int, default=3, help="alternating 1-GPU/2-GPU runs; 0 skips")
    parser.add_argument("--concurrent", action="store_true", help="also two independent 1-GPU runs at once")
    parser.add_argument("--torchrun-args", default="", help="extra torchrun options, e.g. --numa-binding=node")
    parser.add_argument("--num-envs", type=int, default=8192)
    parser.add_argument("--agents", nargs="+", default=["graphed_a2c_continuous", "a2c_continuous"],
                        help="scaling pairs for each rl_games agent, in this order")  # fmt: skip
    parser.add_argument("--side-epochs", type=int, default=150, help="per run of --pairs")
    parser.add_argument("--pairs", type=int, default=0, help="alternating alone/with-player trainings")
    parser.add_argument("--interleaved-epochs", type=int, default=300, help="0: skip the interleaved measurement")
    parser.add_argument("--interleaved-runs", type=int, default=1, help="interleaved trainings, pooled")
    parser.add_argument("--video", action="store_true", help="the player records MP4 clips (needs imageio-ffmpeg)")
    parser.add_argument("--video-fps", type=float, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        if args.scaling_pairs:
            scaling(args, cwd)
        if args.concurrent:
            concurrent_singles(args, cwd)

        video = ["video=True", "video_length=300", f"video_fps={args.video_fps}"] if args.video else []

        def player(run: Path) -> subprocess.Popen:
            return subprocess.Popen(
                [sys.executable, ENTRY, "mode=play", f"experiment={run.name}", f"train_dir={run.parent}",
                 "headless=True", *video, "sim_device=cuda:1", "rl_device=cuda:1", "graphics_device_id=1",
                 "checkpoint_reload_interval=2"],
                cwd=cwd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                start_new_session=True,  # its own process group: the interleaved run freezes all of it
            )  # fmt: skip

        if args.interleaved_epochs:
            side_by_side_interleaved(args, cwd, player)
        if args.pairs:
            side_by_side_pairs(args, cwd, player)
        videos = sorted(cwd.glob("runs/*/videos/*.mp4"))
        print(f"{len(videos)} MP4 clips from the player ({sum(v.stat().st_size for v in videos) / 1e6:.1f} MB)")
        if videos and os.environ.get("OUT"):
            shutil.copy(videos[-1], Path(os.environ["OUT"]) / videos[-1].name)


def side_by_side_interleaved(args: argparse.Namespace, cwd: Path, player) -> None:
    """The player frozen and thawed in 10-epoch blocks beside each training; blocks pooled over runs."""
    pooled = Interleaved()
    for run in range(1, args.interleaved_runs + 1):
        result = run_interleaved(side_cmd(args.num_envs, args.interleaved_epochs), cwd, ENV, player)
        pooled.on += result.on
        pooled.off += result.off
        reloads = sum(line.startswith("Loaded ") for line in result.player_output)
        print(f"side by side, interleaved run {run} ({args.interleaved_epochs} epochs, blocks of 10): "
              f"{result.summary()}; the player loaded {reloads} policies", flush=True)  # fmt: skip
    print(f"side by side, interleaved, {args.interleaved_runs} run(s) pooled: {pooled.summary()} (target >= 0.98)")


def side_cmd(num_envs: int, epochs: int) -> list[str]:
    """The trainer of the side-by-side runs: Ant on cuda:0, publishing every 5 epochs."""
    return [sys.executable, ENTRY, "task=Ant", "mode=train", f"num_envs={num_envs}", f"max_iterations={epochs}",
            "sim_device=cuda:0", "rl_device=cuda:0", "checkpoint_save_freq=5"]  # fmt: skip


def side_by_side_pairs(args: argparse.Namespace, cwd: Path, player) -> None:
    """Alternating trainings alone and with the player; the ratio of the median rates."""
    watched_cmd = side_cmd(args.num_envs, args.side_epochs)

    def watched() -> float:
        out, player_out = train(watched_cmd, cwd, player)
        reloads = re.findall(r"^Loaded latest\.pth \(epoch (\d+)", player_out, re.M)
        print(f"player reloads at epochs {reloads}", flush=True)
        if "Traceback" in player_out or not reloads:
            print(player_out[-3000:])
        return output_rate(out, 1 / 3)

    def report(pair: int, alone: float, with_player: float) -> None:
        print(f"pair {pair}: alone {alone:,.0f}, with the player {with_player:,.0f} env steps/s "
              f"(ratio {with_player / alone:.4f})", flush=True)  # fmt: skip

    result = alternate(args.pairs, lambda: output_rate(train(watched_cmd, cwd)[0], 1 / 3), watched, report)
    print(
        f"side by side (last 2/3 of {args.side_epochs} epochs, {args.pairs} pairs): "
        f"{result.summary('alone', 'with the player on GPU 1')} (target >= 0.98); "
        f"per pair {[round(r, 4) for r in result.pair_ratios]}",
        flush=True,
    )


def scaling_common(args: argparse.Namespace, agent: str | None = None) -> list[str]:
    common = ["task=Ant", "mode=train", f"num_envs={args.num_envs}", f"max_iterations={args.epochs}"]
    return [*common, f"train.params.algo.name={agent}"] if agent else common


def scaling(args: argparse.Namespace, cwd: Path) -> None:
    """The scaling pairs for each agent of --agents, one agent after the other."""
    for agent in args.agents:
        print(f"scaling with train.params.algo.name={agent}", flush=True)
        scaling_pairs(args, cwd, agent)


def scaling_pairs(args: argparse.Namespace, cwd: Path, agent: str) -> None:
    """Alternating one-GPU and two-GPU trainings; the ratio of the median rates."""
    common = scaling_common(args, agent)
    single = [sys.executable, ENTRY, *common, "sim_device=cuda:0", "rl_device=cuda:0"]
    double = ["torchrun", "--standalone", "--nnodes=1", "--nproc_per_node=2", *args.torchrun_args.split(), ENTRY,
              *common, "multi_gpu=True"]  # fmt: skip
    before = count_runs(cwd)

    def report(pair: int, one: float, two: float) -> None:
        print(f"scaling pair {pair}: 1 GPU {one:,.0f}, 2 GPUs {two:,.0f} env steps/s (ratio {two / one:.3f})",
              flush=True)  # fmt: skip

    result = alternate(
        args.scaling_pairs,
        lambda: output_rate(train(single, cwd)[0]),
        lambda: output_rate(train(double, cwd)[0]),
        report,
    )
    print(
        f"scaling ({args.epochs} epochs per run, {args.scaling_pairs} pairs): {result.summary('1 GPU', '2 GPUs')} "
        f"(target >= 1.8); run directories written: {count_runs(cwd) - before} for {2 * args.scaling_pairs} trainings",
        flush=True,
    )


def count_runs(cwd: Path) -> int:
    """Run directories the trainings have written under cwd."""
    return len(list((cwd / "runs").iterdir())) if (cwd / "runs").is_dir() else 0


def concurrent_singles(args: argparse.Namespace, cwd: Path) -> None:
    """Two independent one-GPU trainings at once, on GPU 0 and GPU 1: their summed rate."""
    procs = []
    for gpu in (0, 1):
        cmd = [sys.executable, ENTRY, *scaling_common(args), f"sim_device=cuda:{gpu}", f"rl_device=cuda:{gpu}",
               f"experiment=Ant_gpu{gpu}"]  # fmt: skip
        log = open(cwd / f"concurrent_{gpu}.log", "w+")
        procs.append((subprocess.Popen(cmd, cwd=cwd, env=ENV, stdout=log, stderr=subprocess.STDOUT), log))
    rates = []
    for proc, log in procs:
        proc.wait()
        log.seek(0)
        out = log.read()
        log.close()
        if proc.returncode:
            print(out[-3000:])
            raise SystemExit("a concurrent training failed")
        rates.append(output_rate(out))
    print(f"two independent 1-GPU trainings at once: GPU 0 {rates[0]:,.0f} + GPU 1 {rates[1]:,.0f} = "
          f"{sum(rates):,.0f} env steps/s (no all-reduce, no cross-rank syncs)", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()

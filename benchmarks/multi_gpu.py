"""Multi-GPU checks for a machine with 2+ GPUs (issue 7).

    python benchmarks/multi_gpu.py [--epochs 150] [--num-envs 8192] [--interleaved-epochs 300] [--pairs 0] [--video]

1. Scaling: Ant training on one GPU, then `torchrun --standalone --nnodes=1 --nproc_per_node=2
   ... multi_gpu=True` with the same num_envs per GPU; ratio of total env steps/s (target >= 1.8).
2. Side by side: the trainer on cuda:0 alone, then again with a headless player (recording video
   with --video) on cuda:1 (sim_device/rl_device cuda:1, graphics_device_id=1) following the run;
   `--pairs` alternating pairs, the ratio of the median rates (target >= 0.98), each pair's ratio,
   and the policy reloads the player made.
3. Side by side, interleaved (`--interleaved-epochs`): one training with the player beside it,
   frozen and thawed in alternating blocks of 10 epochs (benchmarks/interleave.py), which cancels
   the +/-12% run-to-run spread that separate pairs suffer from.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ENTRY = str(REPO / "isaacgymenvs" / "train_play.py")
sys.path.insert(0, str(REPO))

from benchmarks.interleave import run_interleaved  # noqa: E402
from isaacgymenvs.trainer.progress import parse_output  # noqa: E402

ENV = dict(os.environ, PYTHONUNBUFFERED="1", NCCL_NVLS_ENABLE="0")


def steady_rate(out: str, skip: float = 0.2) -> float:
    """Env steps/s over the epochs after the first `skip` fraction (warm-up, player start-up)."""
    rates = [p.env_steps_per_s for p in parse_output(out)]
    tail = rates[max(1, int(len(rates) * skip)) :]
    return len(tail) / sum(1.0 / r for r in tail)


def train(cmd: list[str], cwd: Path, player=None) -> tuple[str, str]:  # noqa: ANN001
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
    parser.add_argument("--epochs", type=int, default=150, help="per scaling run; short runs spread widely")
    parser.add_argument("--num-envs", type=int, default=8192)
    parser.add_argument("--side-epochs", type=int, default=300, help="long enough for the player to start")
    parser.add_argument("--skip-scaling", action="store_true")
    parser.add_argument("--pairs", type=int, default=0, help="alternating alone/with-player trainings")
    parser.add_argument("--interleaved-epochs", type=int, default=300, help="0: skip the interleaved measurement")
    parser.add_argument("--video", action="store_true", help="the player records MP4 clips (needs imageio-ffmpeg)")
    args = parser.parse_args()
    common = ["task=Ant", "mode=train", f"num_envs={args.num_envs}", f"max_iterations={args.epochs}"]
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        if not args.skip_scaling:
            one, _ = train([sys.executable, ENTRY, *common, "sim_device=cuda:0", "rl_device=cuda:0"], cwd)
            two, _ = train(["torchrun", "--standalone", "--nnodes=1", "--nproc_per_node=2", ENTRY, *common,
                            "multi_gpu=True"], cwd)  # fmt: skip
            r1, r2 = steady_rate(one), steady_rate(two)
            runs = sorted(p.name for p in (cwd / "runs").iterdir())
            print(
                f"scaling: 1 GPU {r1:,.0f} env steps/s, 2 GPUs {r2:,.0f} env steps/s, ratio {r2 / r1:.2f} "
                f"(target >= 1.8); run directories written: {len(runs)} for 2 trainings",
                flush=True,
            )

        video = ["video=True", "video_length=300"] if args.video else []

        def player(run: Path) -> subprocess.Popen:
            return subprocess.Popen(
                [sys.executable, ENTRY, "mode=play", f"experiment={run.name}", f"train_dir={run.parent}",
                 "headless=True", *video, "sim_device=cuda:1", "rl_device=cuda:1", "graphics_device_id=1",
                 "checkpoint_reload_interval=2"],
                cwd=cwd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                start_new_session=True,  # its own process group: the interleaved run freezes all of it
            )  # fmt: skip

        if args.interleaved_epochs:
            result = run_interleaved(side_cmd(args.num_envs, args.interleaved_epochs), cwd, ENV, player)
            reloads = sum(line.startswith("Loaded ") for line in result.player_output)
            print(f"side by side, interleaved ({args.interleaved_epochs} epochs, blocks of 10): {result.summary()} "
                  f"(target >= 0.98); the player loaded {reloads} policies", flush=True)  # fmt: skip
        if args.pairs:
            side_by_side_pairs(args, cwd, player)
        videos = sorted(cwd.glob("runs/*/videos/*.mp4"))
        print(f"{len(videos)} MP4 clips from the player ({sum(v.stat().st_size for v in videos) / 1e6:.1f} MB)")
        if videos and os.environ.get("OUT"):
            shutil.copy(videos[-1], Path(os.environ["OUT"]) / videos[-1].name)


def side_cmd(num_envs: int, epochs: int) -> list[str]:
    """The trainer of the side-by-side runs: Ant on cuda:0, publishing every 5 epochs."""
    return [sys.executable, ENTRY, "task=Ant", "mode=train", f"num_envs={num_envs}", f"max_iterations={epochs}",
            "sim_device=cuda:0", "rl_device=cuda:0", "checkpoint_save_freq=5"]  # fmt: skip


def side_by_side_pairs(args: argparse.Namespace, cwd: Path, player) -> None:  # noqa: ANN001
    """Alternating trainings alone and with the player; the ratio of the median rates."""
    watched_cmd = side_cmd(args.num_envs, args.side_epochs)
    alone, watched, ratios = [], [], []
    for _ in range(args.pairs):
        alone.append(steady_rate(train(watched_cmd, cwd)[0], 1 / 3))
        out, player_out = train(watched_cmd, cwd, player)
        watched.append(steady_rate(out, 1 / 3))
        ratios.append(watched[-1] / alone[-1])
        reloads = re.findall(r"^Loaded latest\.pth \(epoch (\d+)", player_out, re.M)
        print(f"pair {len(ratios)}: alone {alone[-1]:,.0f}, with the player {watched[-1]:,.0f} env steps/s "
              f"(ratio {ratios[-1]:.4f}); player reloads at epochs {reloads}", flush=True)  # fmt: skip
        if "Traceback" in player_out or not reloads:
            print(player_out[-3000:])
    ratio = statistics.median(watched) / statistics.median(alone)
    print(
        f"side by side (last 2/3 of {args.side_epochs} epochs, {args.pairs} pairs): median alone "
        f"{statistics.median(alone):,.0f}, with the player on GPU 1 {statistics.median(watched):,.0f} env steps/s; "
        f"ratio {ratio:.4f} (target >= 0.98); per pair {[round(r, 4) for r in ratios]}",
        flush=True,
    )


if __name__ == "__main__":
    main()

"""One command for the GPU machine: the issue-6 table for Ant and Humanoid.

    python benchmarks/gpu_training.py [--tasks Ant Humanoid] [--device cuda:0]

Per task, in one run:
  physics-only    WarpBackend alone, graph-captured, random controls (the simulator's limit)
  task            VecTask.step with random actions (physics + compiled observation/reward math)
  end-to-end      real `train_play.py mode=train` (rollout + PPO update), steady-state env steps/s
  to threshold    training seconds (from the first epoch; launch time reported apart) until the mean
                  episode reward reaches the threshold (Ant 3000, Humanoid 5000)
  live-watch      throughput with checkpoint_save_freq=1 and a headless player following the run,
                  divided by training alone: by default the product of two measurements interleaved
                  within one run each (publishing switched on/off, the player frozen/thawed every 10
                  epochs), which cancels the +/-12% spread between separate GPU runs; with
                  `--pairs N`, N alternating alone/watched runs and the ratio of the medians
  profile         `benchmarks/gpu_profile.py` for the task: where an epoch's time goes
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
ENTRY = str(REPO / "isaacgymenvs" / "train_play.py")

from benchmarks.rates import alternate, steady_rate  # noqa: E402
from isaacgymenvs.trainer.progress import parse_progress  # noqa: E402

SETTINGS = {  # num_envs, reward threshold, training budget (s), epochs for the overhead pair
    "Ant": (8192, 3000.0, 150, 120),
    "Humanoid": (4096, 5000.0, 300, 80),
}


def run_training(args: list[str], cwd: Path, budget: float, threshold: float | None = None, player=None):
    """Run the trainer; returns (rows, launch_to_first_epoch_s). Stops at budget or threshold."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, ENTRY, "mode=train", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    launched, rows, first, watcher = time.perf_counter(), [], None, None
    for line in proc.stdout:
        if player is not None and watcher is None and line.startswith("Training will save to: "):
            watcher = player(line.split(": ", 1)[1].strip())
        match = parse_progress(line)
        if not match:
            continue
        now = time.perf_counter()
        first = first or now
        rows.append((match.epoch, match.env_steps_per_s, match.mean_reward, now - first))
        if (threshold is not None and match.mean_reward >= threshold) or now - launched > budget:
            proc.send_signal(signal.SIGINT)
            break
    proc.wait()
    if watcher is not None:
        watcher.send_signal(signal.SIGINT)
        watcher.wait(timeout=60)
    return rows, (first - launched) if first else float("nan")


def rows_rate(rows) -> float:
    """Env steps/s of run_training's rows after the first 10% of epochs."""
    return steady_rate([row[1] for row in rows])


def start_player(run_dir: str, cwd: Path, pipe: bool = False):
    """A headless player following the run (its own process group; physics and policy on the CPU)."""
    out = subprocess.PIPE if pipe else subprocess.DEVNULL
    return subprocess.Popen([sys.executable, ENTRY, "mode=play", f"experiment={Path(run_dir).name}",
                             f"train_dir={Path(run_dir).parent}", "headless=True", "sim_device=cpu", "rl_device=cpu",
                             "checkpoint_reload_interval=5"], cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)  # fmt: skip


def live_watch_interleaved(task: str, common: list[str], epochs: int, cwd: Path) -> float:
    """Publishing cost x player cost, each interleaved within one run (run-to-run drift cancels).

    Publishing every epoch: `benchmarks/publish_overhead.py` switches it on and off every 10
    epochs in one training. The player: `benchmarks/interleave.py` freezes and thaws it every 10
    epochs beside one training that publishes every epoch.
    """
    from benchmarks.interleave import run_interleaved

    settings = [a for a in common if not a.startswith("task=")]
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "publish_overhead.py"), "--task", task,
                          "--epochs", str(epochs), "--pairs", "0", *settings], cwd=cwd, capture_output=True,
                         text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))  # fmt: skip
    found = re.search(r"throughput ratio ([\d.]+)", out.stdout)
    if found is None:
        raise RuntimeError("publish_overhead.py failed:\n" + (out.stdout + out.stderr)[-3000:])
    publishing = float(found[1])
    player = run_interleaved([sys.executable, ENTRY, "mode=train", *common, f"max_iterations={2 * epochs}",
                              "checkpoint_save_freq=1"], cwd, dict(os.environ, PYTHONUNBUFFERED="1"),
                             lambda run: start_player(str(run), cwd, pipe=True))  # fmt: skip
    print(f"live-watch, interleaved: publishing every epoch {publishing:.4f}; the {player.summary()}; "
          f"product {publishing * player.ratio:.4f}", flush=True)  # fmt: skip
    return publishing * player.ratio


def live_watch_ratio(common: list[str], epochs: int, pairs: int, cwd: Path) -> float:
    """Median watched rate over median alone rate, from alternating runs (machine drift cancels)."""

    def rate(save_freq: int, player=None) -> float:
        args = [*common, f"max_iterations={epochs}", f"checkpoint_save_freq={save_freq}"]
        return rows_rate(run_training(args, cwd, 600, player=player)[0])

    result = alternate(pairs, lambda: rate(1000000), lambda: rate(1, lambda run: start_player(run, cwd)))
    per_pair = ", ".join(f"{r:.4f}" for r in result.pair_ratios)
    print(f"live-watch: alone {[round(a) for a in result.first]}, watched {[round(w) for w in result.second]}, "
          f"per-pair ratios {per_pair}", flush=True)  # fmt: skip
    return result.ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=list(SETTINGS))
    parser.add_argument("--device", default="cuda:0")
    parser.add_argument("--skip-overhead", action="store_true")
    parser.add_argument("--pairs", type=int, default=0, help="live-watch from N alone/watched run pairs instead")
    parser.add_argument("--skip-profile", action="store_true")
    parser.add_argument("--skip-threshold", action="store_true", help="no time-to-threshold run")
    args = parser.parse_args()
    from benchmarks.gpu_physics import bench_case

    table = []
    for task in args.tasks:
        num_envs, threshold, budget, epochs = SETTINGS[task]
        rates = bench_case(task, num_envs, 200, args.device)
        common = [f"task={task}", f"num_envs={num_envs}", f"sim_device={args.device}", f"rl_device={args.device}"]
        with tempfile.TemporaryDirectory() as tmp:
            rows, launch = [], float("nan")
            if not args.skip_threshold:
                rows, launch = run_training([*common, "max_iterations=100000", "checkpoint_save_freq=1000000"],
                                            Path(tmp), budget, threshold)  # fmt: skip
            hit = next((r for r in rows if r[2] >= threshold), None)
            ratio = float("nan")
            if not args.skip_overhead:
                ratio = (live_watch_ratio(common, epochs, args.pairs, Path(tmp)) if args.pairs
                         else live_watch_interleaved(task, common, epochs, Path(tmp)))  # fmt: skip
        table.append((task, num_envs, rates, rows_rate(rows), hit, threshold, launch, rows, ratio))
        print(f"{task}: done", flush=True)
        if not args.skip_profile:
            subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_profile.py"), "--task", task,
                            "--num-envs", str(num_envs), "--device", args.device], check=False)  # fmt: skip

    print(
        "\n| task | envs | physics-only env steps/s | task env steps/s | end-to-end env steps/s | "
        "time to threshold (training s) | best reward | live-watch throughput ratio |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for task, n, rates, e2e, hit, threshold, launch, rows, ratio in table:
        reached = (
            f"{threshold:.0f} at {hit[3]:.1f} s, epoch {hit[0]} (+{launch:.0f} s launch)"
            if hit
            else f"{threshold:.0f} not reached in {rows[-1][3]:.0f} s"
            if rows
            else "no epochs"
        )
        best = max((r[2] for r in rows if r[2] == r[2]), default=float("nan"))  # skip NaN (no episode yet)
        print(
            f"| {task} | {n} | {rates['physics_env_steps_per_s']:,.0f} | {rates['task_env_steps_per_s']:,.0f} | "
            f"{e2e:,.0f} | {reached} | {best:.0f} | {ratio:.4f} |"
        )


if __name__ == "__main__":
    main()

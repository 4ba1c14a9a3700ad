"""rl_games' stock PPO agent and the CUDA-graph agent, side by side in one run (issue 12).

    python benchmarks/agent_compare.py --part startup speed curves [--tasks Ant Humanoid] [--device cuda:0]

startup  the command to the first progress line and to the first published `latest.pth`
         (checkpoint_save_freq=1), twice with the graphed agent: the first run on a fresh machine
         has cold caches (MuJoCo Warp kernels, torch.compile), the second warm ones.
speed    per setting (Ant 4096, Ant 8192, Humanoid 4096) one training of each agent, same seed, run
         one after the other: steady end-to-end env steps/s and the training time (from the
         first progress line) to the reward threshold (Ant 3000, Humanoid 5000).
curves   learning per sample: `--seeds` trainings of each agent for a fixed number of epochs, run
         concurrently on the GPU (throughput does not matter here, only reward against frames);
         the curves go to `--out` as CSV and PNG, and the reward at equal frames is compared
         with the stock agent's seed-to-seed spread.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.gpu_training import ENTRY, rows_rate, run_training  # noqa: E402

AGENTS = {"stock": "a2c_continuous", "graphed": "graphed_a2c_continuous"}
SPEED = [("Ant", 4096, 3000.0, 90), ("Ant", 8192, 3000.0, 90), ("Humanoid", 4096, 5000.0, 240)]
CURVE_EPOCHS = {"Ant": 200, "Humanoid": 250}


def common_args(task: str, num_envs: int, device: str, agent: str) -> list[str]:
    return [f"task={task}", f"num_envs={num_envs}", f"sim_device={device}", f"rl_device={device}",
            f"train.params.algo.name={AGENTS[agent]}"]  # fmt: skip


def startup(device: str, cwd: Path) -> None:
    """Seconds from the command to the first progress line and to the first latest.pth."""
    for label in ("cold caches (first run on this machine)", "warm caches"):
        args = [*common_args("Ant", 4096, device, "graphed"), "max_iterations=5", "checkpoint_save_freq=1"]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        proc = subprocess.Popen([sys.executable, ENTRY, "mode=train", *args], cwd=cwd, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, env=env)  # fmt: skip
        launched, first_line, published, run = time.perf_counter(), None, None, None
        for line in proc.stdout:
            if line.startswith("Training will save to: "):
                run = cwd / line.split(": ", 1)[1].strip()
            if first_line is None and line.startswith("epoch "):
                first_line = time.perf_counter() - launched
            if published is None and run is not None and (run / "nn" / "latest.pth").exists():
                published = time.perf_counter() - launched
        proc.wait()
        if published is None and run is not None and (run / "nn" / "latest.pth").exists():
            published = time.perf_counter() - launched  # appeared after the last line was read
        print(f"startup, {label}: first progress line {first_line:.1f} s, first latest.pth "
              f"{published if published is None else round(published, 1)} s", flush=True)  # fmt: skip


def speed(device: str, cwd: Path, tasks: list[str]) -> None:
    table = []
    for task, num_envs, threshold, budget in (s for s in SPEED if s[0] in tasks):
        for agent in AGENTS:
            args = [*common_args(task, num_envs, device, agent), "max_iterations=100000", "checkpoint_save_freq=100"]
            rows, launch = run_training(args, cwd, budget, threshold)
            hit = next((r for r in rows if r[2] >= threshold), None)
            reached = f"{hit[3]:.1f} s (epoch {hit[0]})" if hit else f"not in {rows[-1][3]:.0f} s" if rows else "-"
            table.append((task, num_envs, agent, rows_rate(rows), reached, launch))
            print(f"speed {task} {num_envs} {agent}: {rows_rate(rows):,.0f} env steps/s, {threshold:.0f} at {reached}, "
                  f"first line {launch:.1f} s after launch", flush=True)  # fmt: skip
    print("\n| task | envs | agent | end-to-end env steps/s | to threshold (training s) | launch to first line (s) |")
    print("|---|---|---|---:|---|---:|")
    for task, n, agent, rate, reached, launch in table:
        print(f"| {task} | {n} | {agent} | {rate:,.0f} | {reached} | {launch:.1f} |")


def read_curve(run: Path) -> list[tuple[int, float]]:
    """(frame, mean reward) per epoch from the run's metrics.csv (epochs before any episode ended skipped)."""
    with open(run / "metrics.csv") as f:
        return [(int(r["frame"]), float(r["mean_reward"])) for r in csv.DictReader(f) if r["mean_reward"]]


def reward_at(curve: list[tuple[int, float]], frame: int) -> float:
    """Mean reward of the last 10 epochs at or before `frame`."""
    before = [r for f, r in curve if f <= frame][-10:]
    return statistics.fmean(before) if before else float("nan")


def curves(device: str, cwd: Path, tasks: list[str], seeds: list[int], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for task in tasks:
        procs, runs = [], {}
        for agent in AGENTS:
            for seed in seeds:
                prefix = f"{task}_{agent}_s{seed}"
                args = [*common_args(task, 4096, device, agent), f"seed={seed}", f"experiment={prefix}",
                        f"max_iterations={CURVE_EPOCHS[task]}", "checkpoint_save_freq=1000"]  # fmt: skip
                procs.append(subprocess.Popen([sys.executable, ENTRY, "mode=train", *args], cwd=cwd,
                                              stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT))  # fmt: skip
                runs[(agent, seed)] = prefix
        for proc in procs:
            proc.wait()
        data = {}
        for (agent, seed), prefix in runs.items():
            (run,) = (cwd / "runs").glob(f"{prefix}_*")
            data[(agent, seed)] = read_curve(run)
        report_curves(task, data, seeds, out)


def report_curves(task: str, data: dict, seeds: list[int], out: Path) -> None:
    with open(out / f"{task}_agent_curves.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["agent", "seed", "frame", "mean_reward"])
        for (agent, seed), curve in data.items():
            writer.writerows((agent, seed, frame, reward) for frame, reward in curve)
    common = min(curve[-1][0] for curve in data.values() if curve)
    for frame in (common // 2, common):
        at = {agent: [reward_at(data[(agent, s)], frame) for s in seeds] for agent in AGENTS}
        lo, hi = min(at["stock"]), max(at["stock"])
        mean_new = statistics.fmean(at["graphed"])
        print(f"curves {task} at {frame:,} frames: stock {[round(r) for r in at['stock']]} ({lo:.0f}-{hi:.0f}), "
              f"graphed {[round(r) for r in at['graphed']]} (mean {mean_new:.0f}: "
              f"{'within' if lo <= mean_new <= hi else 'OUTSIDE'} the stock spread)", flush=True)  # fmt: skip
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(7, 4))
    for (agent, seed), curve in data.items():
        ax.plot([f / 1e6 for f, _ in curve], [r for _, r in curve], color="C0" if agent == "stock" else "C1",
                alpha=0.8, label=f"{agent} (rl_games {AGENTS[agent]})" if seed == seeds[0] else None)  # fmt: skip
    ax.set(xlabel="env steps (millions)", ylabel="mean episode reward", title=f"{task}, 4096 envs, {len(seeds)} seeds")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / f"{task}_agent_curves.png", dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", nargs="+", default=["startup", "speed", "curves"])
    parser.add_argument("--tasks", nargs="+", default=["Ant", "Humanoid"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--device", default="cuda:0")
    parser.add_argument("--epochs", type=int, default=0, help="curves: epochs per training (0: Ant 200, Humanoid 250)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results_gpu")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        if "startup" in args.part:
            startup(args.device, cwd)
        if "speed" in args.part:
            speed(args.device, cwd, args.tasks)
        if "curves" in args.part:
            if args.epochs:
                CURVE_EPOCHS.update(dict.fromkeys(CURVE_EPOCHS, args.epochs))
            curves(args.device, cwd, args.tasks, args.seeds, args.out)


if __name__ == "__main__":
    main()

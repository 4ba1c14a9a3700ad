"""CPU benchmark: physics-only steps/s, task steps/s, end-to-end training rate and learning curve.

    python benchmarks/cpu_training.py                       # all tasks, default budgets
    python benchmarks/cpu_training.py --tasks Cartpole --budget Cartpole=60

For each task at its CPU default num_envs: (1) physics-only rate of the CPU backend (mujoco.batch,
2 substeps per env step, random controls), (2) the task's env steps/s (physics + observations +
rewards + resets), (3) a real `train_play.py mode=train` run for a wall-clock budget, whose
per-epoch progress lines give the end-to-end rate and the learning curve (written as CSV to
benchmarks/results/<task>_curve.csv). Targets (issue 2): end-to-end >= 50% of physics-only;
Cartpole reward >= 450 within 60 s; Ant >= 2000 within 15 min.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from isaacgymenvs.config import load_config  # noqa: E402
from isaacgymenvs.physics import load_model  # noqa: E402
from isaacgymenvs.physics.cpu_batch import CpuBatchBackend  # noqa: E402
from isaacgymenvs.tasks import make_task  # noqa: E402
from isaacgymenvs.trainer.progress import parse_progress  # noqa: E402

BUDGETS = {"Cartpole": 60, "Ant": 900, "Humanoid": 600}
THRESHOLDS = {"Cartpole": 450.0, "Ant": 2000.0, "Humanoid": 5000.0}


def timed_loop(step, seconds: float) -> tuple[int, float]:
    step()  # warm-up
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step()
        n += 1
    return n, time.perf_counter() - start


def physics_only(cfg, seconds: float) -> float:
    """Env steps/s of the bare backend (each env step = sim.substeps physics steps)."""
    model = load_model(cfg.task.env.asset, cfg.task.sim.dt / cfg.task.sim.substeps)
    backend = CpuBatchBackend(model, cfg.num_envs)
    ctrl = torch.rand(cfg.num_envs, model.nu) * 2 - 1
    n, dt = timed_loop(lambda: backend.step(ctrl, int(cfg.task.sim.substeps)), seconds)
    return n * cfg.num_envs / dt


def task_rate(cfg, seconds: float) -> float:
    task = make_task(cfg)
    task.reset()
    actions = torch.rand(cfg.num_envs, task.num_actions) * 2 - 1
    n, dt = timed_loop(lambda: task.step(actions), seconds)
    return n * cfg.num_envs / dt


def train_curve(task: str, budget: float, extra: list[str]) -> list[dict]:
    """Run the real trainer for `budget` seconds of wall clock; parse its progress lines."""
    cmd = [
        sys.executable,
        str(REPO / "isaacgymenvs" / "train_play.py"),
        f"task={task}",
        "mode=train",
        "sim_device=cpu",
        "rl_device=cpu",
        "max_iterations=100000",
        "experiment=bench_" + task,
        *extra,
    ]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    launched = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    rows = []
    for line in proc.stdout:
        match = parse_progress(line)
        if match:
            rows.append(
                {
                    "epoch": match.epoch,
                    "rate": match.env_steps_per_s,
                    "reward": match.mean_reward,
                    "elapsed": match.elapsed_s,
                    "wall": round(time.perf_counter() - launched, 1),
                }
            )
        if time.perf_counter() - launched > budget:
            break
    proc.terminate()
    proc.wait()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=list(BUDGETS))
    parser.add_argument("--budget", nargs="*", default=[], help="TASK=SECONDS wall-clock training budgets")
    parser.add_argument("--num-envs", type=int, default=None, help="override every task's CPU default")
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each rate measurement")
    args = parser.parse_args()
    budgets = dict(BUDGETS, **{k: float(v) for k, v in (b.split("=") for b in args.budget)})
    out = REPO / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    print(f"cores: {os.cpu_count()}, torch threads: {torch.get_num_threads()}")
    summary = []
    for task in args.tasks:
        overrides = [f"task={task}", "sim_device=cpu", "rl_device=cpu"]
        if args.num_envs:
            overrides.append(f"num_envs={args.num_envs}")
        cfg = load_config(overrides)
        phys = physics_only(cfg, args.seconds)
        env_rate = task_rate(cfg, args.seconds)
        rows = train_curve(task, budgets[task], [f"num_envs={cfg.num_envs}"])
        with open(out / f"{task}_curve.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["epoch", "elapsed", "wall", "rate", "reward"])
            writer.writeheader()
            writer.writerows(rows)
        steady = rows[len(rows) // 5 :] or rows
        e2e = sum(r["rate"] for r in steady) / max(len(steady), 1)
        hit = next((r for r in rows if r["reward"] >= THRESHOLDS[task]), None)
        finished = [r["reward"] for r in rows if not math.isnan(r["reward"])]  # nan before any episode ends
        best = max(finished, default=float("nan"))
        summary.append((task, cfg.num_envs, phys, env_rate, e2e, hit, best, rows[-1] if rows else None))
        print(f"{task}: done ({len(rows)} epochs)", flush=True)

    print(
        "\n| task | num_envs | physics-only env steps/s | task env steps/s | end-to-end env steps/s | "
        "e2e / physics | reward threshold reached | best mean reward | epochs in budget |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for task, n, phys, env_rate, e2e, hit, best, last in summary:
        reached = (
            f"{THRESHOLDS[task]:.0f} at {hit['elapsed']} s train / {hit['wall']} s wall (epoch {hit['epoch']})"
            if hit
            else f"{THRESHOLDS[task]:.0f} not reached"
        )
        epochs = f"{last['epoch']} in {last['elapsed']} s" if last else "0"
        print(
            f"| {task} | {n} | {phys:,.0f} | {env_rate:,.0f} | {e2e:,.0f} | {e2e / phys:.0%} | {reached} | "
            f"{best:.1f} | {epochs} |"
        )


if __name__ == "__main__":
    main()

"""GPU benchmark of the MuJoCo Warp backend: physics-only and task-level env steps/s.

    python benchmarks/gpu_physics.py                                   # the default cases
    python benchmarks/gpu_physics.py --cases Ant:4096 Humanoid:4096 --steps 300
    python benchmarks/gpu_physics.py --train-envs 8192 --train-epochs 300   # + end-to-end Ant training

Per case (task:num_envs, the task's own sim config):
  physics: WarpBackend.step alone (graph-captured, sim.substeps=2 physics steps per env step,
      random controls made on the GPU), no resets; env steps/s = num_envs * steps / seconds.
  reset: one WarpBackend.reset of 1% of the worlds (graph: per-world reset + forward on all worlds).
  task: VecTask.step with random actions (physics + observations + rewards + resets), env steps/s.
  setup: seconds to build the task and capture its graphs (kernel compilation included when the
      Warp kernel cache is cold).
With --train-epochs, runs `train_play.py task=Ant mode=train` and writes the per-epoch rate and mean
episode reward to <out>/Ant_gpu_curve.csv. Prints markdown tables; also writes <out>/gpu_physics.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from isaacgymenvs.config import load_config  # noqa: E402
from isaacgymenvs.tasks import make_task  # noqa: E402
from isaacgymenvs.trainer.progress import parse_progress  # noqa: E402

DEFAULT_CASES = ["Ant:4096", "Ant:8192", "Ant:16384", "Humanoid:4096"]


def cuda_time(fn, iters: int) -> float:
    """Seconds per call of `fn`, timed between two device synchronisations."""
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(iters):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / iters


def bench_case(task_name: str, num_envs: int, steps: int, device: str) -> dict:
    t0 = time.perf_counter()
    cfg = load_config([f"task={task_name}", f"sim_device={device}", f"rl_device={device}", f"num_envs={num_envs}"])
    task = make_task(cfg)
    task.reset()
    backend, nsub = task.physics, task.substeps
    nu = task.model.nu
    # Warm-up: captures the step and reset graphs.
    for _ in range(3):
        task.step(torch.rand(num_envs, task.num_actions, device=device) * 2 - 1)
    torch.cuda.synchronize()
    setup = time.perf_counter() - t0

    # Physics only (fresh states: reset every world first so no world starts diverged).
    task.reset()
    ctrl = torch.rand(num_envs, nu, device=device) * 2 - 1

    def physics_step() -> None:
        ctrl.uniform_(-1.0, 1.0)
        backend.step(ctrl, nsub)

    for _ in range(10):
        physics_step()
    physics_s = cuda_time(physics_step, steps)

    mask = torch.zeros(num_envs, dtype=torch.bool, device=device)
    mask[torch.randperm(num_envs, device=device)[: max(1, num_envs // 100)]] = True
    state = backend.state()
    qpos, qvel = state.qpos.clone(), state.qvel.clone()
    reset_s = cuda_time(lambda: backend.reset(mask, qpos, qvel), 20)

    # Task level: VecTask.step with random actions, resets included.
    task.reset()
    actions = torch.empty(num_envs, task.num_actions, device=device)

    def task_step() -> None:
        task.step(actions.uniform_(-1.0, 1.0))

    for _ in range(10):
        task_step()
    task_s = cuda_time(task_step, steps)
    backend.check_overflow()
    result = {
        "task": task_name,
        "num_envs": num_envs,
        "substeps": nsub,
        "nconmax": int(cfg.task.sim.nconmax),
        "njmax": int(cfg.task.sim.njmax),
        "physics_env_steps_per_s": num_envs / physics_s,
        "physics_steps_per_s": num_envs * nsub / physics_s,
        "physics_ms_per_env_step": physics_s * 1e3,
        "reset_1pct_ms": reset_s * 1e3,
        "task_env_steps_per_s": num_envs / task_s,
        "task_ms_per_env_step": task_s * 1e3,
        "setup_s": setup,
    }
    return result


def profile(task_name: str, num_envs: int, device: str, out: Path) -> str:
    """torch.profiler table of VecTask.step (where the time beyond physics goes)."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    cfg = load_config([f"task={task_name}", f"sim_device={device}", f"rl_device={device}", f"num_envs={num_envs}"])
    task = make_task(cfg)
    task.reset()
    actions = torch.empty(num_envs, task.num_actions, device=device)
    for _ in range(20):
        task.step(actions.uniform_(-1.0, 1.0))
    torch.cuda.synchronize()
    with torch_profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(20):
            task.step(actions.uniform_(-1.0, 1.0))
        torch.cuda.synchronize()
    table = prof.key_averages().table(sort_by="cpu_time_total", row_limit=40)
    (out / f"profile_{task_name}_{num_envs}.txt").write_text(table)
    return table


def train(out: Path, num_envs: int, epochs: int, extra: list[str]) -> list[dict]:
    """A real training run; returns its per-epoch progress rows."""
    cmd = [
        sys.executable,
        str(REPO / "isaacgymenvs" / "train_play.py"),
        "task=Ant",
        "mode=train",
        f"num_envs={num_envs}",
        f"max_iterations={epochs}",
        f"train_dir={out / 'runs'}",
        *extra,
    ]
    print("$", " ".join(cmd), flush=True)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    rows, start = [], time.perf_counter()
    with subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            print(line, end="", flush=True)
            match = parse_progress(line)
            if match:
                rows.append(
                    {
                        "epoch": match.epoch,
                        "wall_s": round(time.perf_counter() - start, 2),
                        "env_steps_per_s": int(match.env_steps_per_s),
                        "mean_reward": match.mean_reward,
                    }
                )
    if proc.returncode:
        print(f"training exited with {proc.returncode}", flush=True)
    if rows:
        with open(out / "Ant_gpu_curve.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="*", default=DEFAULT_CASES, help="task:num_envs pairs")
    parser.add_argument("--steps", type=int, default=200, help="timed env steps per measurement")
    parser.add_argument("--device", default="cuda:0")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results_gpu")
    parser.add_argument("--profile", default="", help="task:num_envs to profile VecTask.step (torch.profiler)")
    parser.add_argument("--train-envs", type=int, default=8192)
    parser.add_argument("--train-epochs", type=int, default=0, help="0: no training run")
    parser.add_argument("--train-args", nargs="*", default=[], help="extra overrides for train_play.py")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    lines = [f"Device: {torch.cuda.get_device_name(args.device)}", ""]
    results = []
    if args.cases:
        for case in args.cases:
            name, n = case.split(":")
            result = bench_case(name, int(n), args.steps, args.device)
            results.append(result)
            print(json.dumps(result), flush=True)
            torch.cuda.empty_cache()
        lines += [
            "| task | worlds | physics env steps/s | physics steps/s | reset 1% (ms) | task env steps/s "
            "| task / physics | setup (s) |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for r in results:
            lines.append(
                f"| {r['task']} | {r['num_envs']} | {r['physics_env_steps_per_s']:,.0f} | "
                f"{r['physics_steps_per_s']:,.0f} | {r['reset_1pct_ms']:.2f} | {r['task_env_steps_per_s']:,.0f} | "
                f"{r['task_env_steps_per_s'] / r['physics_env_steps_per_s']:.0%} | {r['setup_s']:.1f} |"
            )
        (args.out / "gpu_physics.json").write_text(json.dumps(results, indent=1))
    if args.profile:
        name, n = args.profile.split(":")
        print(profile(name, int(n), args.device, args.out), flush=True)
    if args.train_epochs:
        rows = train(args.out, args.train_envs, args.train_epochs, args.train_args)
        lines += ["", f"Training: Ant, {args.train_envs} envs, {args.train_epochs} epochs", ""]
        lines += ["| epoch | wall (s) | env steps/s | mean episode reward |", "| ---: | ---: | ---: | ---: |"]
        for row in rows:
            if row["epoch"] % 20 == 0 or row is rows[-1]:
                lines.append(
                    f"| {row['epoch']} | {row['wall_s']} | {row['env_steps_per_s']:,} | {row['mean_reward']:.1f} |"
                )
        reached = next((row for row in rows if row["mean_reward"] >= 3000), None)
        lines.append("")
        lines.append(
            f"Reward 3000 first reached at epoch {reached['epoch']}, {reached['wall_s']} s after launch."
            if reached
            else "Reward 3000 not reached."
        )
    text = "\n".join(lines)
    print(text, flush=True)
    (args.out / ("gpu_physics.md" if not args.train_epochs else "gpu_training.md")).write_text(text + "\n")


if __name__ == "__main__":
    main()

"""Where an epoch of GPU training goes: physics, task math and resets, policy + rollout bookkeeping,
PPO update, and everything else.

    python benchmarks/gpu_profile.py --task Ant --num-envs 8192 --epochs 40 [config overrides ...]

The agent is the config's (`train.params.algo.name`; pass
`train.params.algo.name=a2c_continuous` for rl_games' stock one). Trains in this process for
`--epochs` epochs with a host synchronisation around every env step (so that the env step's GPU
time is charged to it, not to whatever waits next), and reads the agent's own per-epoch timers
(rollout and update; the stock update ends with a host read of the KL, the graphed one with a
read of the learning rate, so the update's GPU work is inside it). Physics-only time comes from
`benchmarks.gpu_physics.bench_case` at the same
number of worlds. The first quarter of the epochs (compilation, graph capture) is left out.
The synchronisation costs the overlap of CPU launches with GPU work that an unprofiled run has,
so the epoch here is somewhat longer than in `benchmarks/gpu_training.py`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def profile(task: str, num_envs: int, epochs: int, device: str, overrides: list[str]) -> dict[str, float]:
    """Mean milliseconds per epoch of each part, plus env steps per epoch and the physics rate."""
    from rl_games.algos_torch.a2c_continuous import A2CAgent

    from benchmarks.gpu_physics import bench_case
    from isaacgymenvs.config import load_config
    from isaacgymenvs.trainer import graphed, rlgames_env
    from isaacgymenvs.trainer.graphed.agent import GraphedA2CAgent
    from isaacgymenvs.trainer.train import train

    tmp = tempfile.TemporaryDirectory()
    cfg = load_config([f"task={task}", "mode=train", f"num_envs={num_envs}", f"sim_device={device}",
                       f"rl_device={device}", f"max_iterations={epochs}", "checkpoint_save_freq=1000000",
                       f"train_dir={tmp.name}", *overrides])  # fmt: skip
    agent = GraphedA2CAgent if cfg.train.params.algo.name == graphed.ALGO_NAME else A2CAgent
    env_step = rlgames_env.RlGamesVecEnv.step
    train_epoch = agent.train_epoch
    step_s: list[float] = []
    epochs_seen: list[tuple[float, float, float, float]] = []  # start, play, update, step

    def synced_step(self, actions):
        torch.cuda.synchronize(device)
        start = time.perf_counter()
        out = env_step(self, actions)
        torch.cuda.synchronize(device)
        step_s.append(time.perf_counter() - start)
        return out

    def timed_epoch(self):
        start, before = time.perf_counter(), len(step_s)
        result = train_epoch(self)
        epochs_seen.append((start, result[1], result[2], sum(step_s[before:])))
        return result

    rlgames_env.RlGamesVecEnv.step = synced_step
    agent.train_epoch = timed_epoch
    try:
        horizon = int(cfg.train.params.config.horizon_length)
        train(cfg)
    finally:
        rlgames_env.RlGamesVecEnv.step = env_step
        agent.train_epoch = train_epoch
        tmp.cleanup()

    steady = epochs_seen[len(epochs_seen) // 4 :]
    walls = [b[0] - a[0] for a, b in zip(steady, steady[1:], strict=False)]
    steady = steady[: len(walls)]
    mean = lambda xs: 1e3 * statistics.fmean(xs)  # noqa: E731
    physics_rate = bench_case(task, num_envs, 200, device)["physics_env_steps_per_s"]
    steps = num_envs * horizon
    physics_ms = 1e3 * steps / physics_rate
    step_ms, play_ms, update_ms, wall_ms = (mean([e[3] for e in steady]), mean([e[1] for e in steady]),
                                            mean([e[2] for e in steady]), mean(walls))  # fmt: skip
    return {
        "env_steps_per_epoch": steps,
        "physics": physics_ms,
        "task math and resets": step_ms - physics_ms,
        "policy inference and rollout bookkeeping": play_ms - step_ms,
        "PPO update": update_ms,
        "other (logging, observers, checkpoints)": wall_ms - play_ms - update_ms,
        "epoch": wall_ms,
    }


def print_table(title: str, parts: dict[str, float]) -> None:
    epoch = parts["epoch"]
    print(f"\n{title}: {parts['env_steps_per_epoch']:,} env steps per epoch, {epoch:.1f} ms per epoch "
          f"({1e3 * parts['env_steps_per_epoch'] / epoch:,.0f} env steps/s with synchronised steps)")  # fmt: skip
    print("\n| part | ms per epoch | share |\n|---|---:|---:|")
    for name, ms in parts.items():
        if name not in ("env_steps_per_epoch", "epoch"):
            print(f"| {name} | {ms:.1f} | {100 * ms / epoch:.0f}% |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="Ant")
    parser.add_argument("--num-envs", type=int, default=8192)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--device", default="cuda:0")
    parser.add_argument("overrides", nargs="*", help="extra config overrides, e.g. compile_task=False")
    args = parser.parse_args()
    parts = profile(args.task, args.num_envs, args.epochs, args.device, args.overrides)
    print_table(f"{args.task}, {args.num_envs} envs {' '.join(args.overrides)}".strip(), parts)


if __name__ == "__main__":
    main()

"""Training throughput with live publishing every epoch against the same run without it.

    python benchmarks/publish_overhead.py [--task Ant] [--epochs 150] [--pairs 3] [extra overrides ...]

Two measurements (target, issue 3: overhead <= 1% with checkpoint_save_freq=1):
1. Interleaved, in one training run: publishing switches on and off every 10 epochs; the ratio
   of mean epoch times (off / on) cancels the machine drift that separate runs suffer from.
2. A/B subprocess pairs: the real trainer with checkpoint_save_freq=1 against publishing
   effectively off (only the final publish), same seed; throughput from its progress lines.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.rates import steady_rate  # noqa: E402
from isaacgymenvs.trainer.progress import parse_output  # noqa: E402

COST = re.compile(r"per publish: ([\d.]+) ms snapshot on the training thread, ([\d.]+) ms CPU in the writer thread")


def throughput(task: str, epochs: int, freq: int, extra: list[str]) -> tuple[float, float, float]:
    """(env steps/s after the first 10% of epochs, snapshot ms, writer CPU ms per publish)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            [
                sys.executable,
                str(REPO / "isaacgymenvs" / "train_play.py"),
                f"task={task}",
                f"max_iterations={epochs}",
                f"checkpoint_save_freq={freq}",
                *extra,
            ],
            cwd=tmp,
            capture_output=True,
            text=True,
            check=True,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        ).stdout
    cost = COST.search(out)
    return steady_rate([p.env_steps_per_s for p in parse_output(out)]), float(cost[1]), float(cost[2])


def interleaved_ratio(
    task: str, epochs: int, extra: list[str], block: int = 10, publish: bool = True
) -> tuple[float, int]:
    """Median over adjacent block pairs of (mean epoch time off / on); blocks alternate in one run.

    publish=False runs the same schedule without publishing: the measurement's noise floor.
    """
    sys.path.insert(0, str(REPO))
    from rl_games.common.algo_observer import AlgoObserver

    from isaacgymenvs.config import load_config
    from isaacgymenvs.trainer import publisher, train

    class AlternatingObserver(publisher.CheckpointObserver):
        def after_print_stats(self, frame, epoch_num, total_time):
            if publish and self.is_publisher and (epoch_num // block) % 2 == 1:
                self.publish()

    times: dict[int, list[float]] = {}

    class EpochClock(AlgoObserver):
        last = None

        def after_print_stats(self, frame, epoch_num, total_time):
            now = time.perf_counter()
            if self.last is not None and epoch_num >= 2 * block:  # the first pair is warm-up
                times.setdefault(epoch_num // block, []).append(now - self.last)
            self.last = now

    real_logging, real_observer = train.logging_observers, train.CheckpointObserver
    train.logging_observers = lambda cfg: [*real_logging(cfg), EpochClock()]
    train.CheckpointObserver = AlternatingObserver
    try:
        with tempfile.TemporaryDirectory() as tmp:
            train.train(load_config([f"task={task}", f"max_iterations={epochs}", f"train_dir={tmp}", *extra]))
    finally:
        train.logging_observers, train.CheckpointObserver = real_logging, real_observer
    means = {b: statistics.mean(t) for b, t in times.items()}
    ratios = [means[b] / means[b + 1] for b in means if b % 2 == 0 and b + 1 in means]
    return statistics.median(ratios), len(ratios)


def epoch_env_steps(task: str, extra: list[str]) -> int:
    sys.path.insert(0, str(REPO))
    from isaacgymenvs.config import load_config

    cfg = load_config([f"task={task}", *extra])
    return cfg.num_envs * int(cfg.train.params.config.horizon_length)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="Ant")
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--pairs", type=int, default=3, help="A/B subprocess pairs (0: interleaved only)")
    parser.add_argument("--noise-floor", action="store_true", help="also run the schedule without publishing")
    parser.add_argument("extra", nargs="*", help="more train_play.py overrides, e.g. sim_device=cpu")
    args = parser.parse_args()
    ratio, n = interleaved_ratio(args.task, 2 * args.epochs, args.extra)
    print(f"interleaved, one run, median of {n} block pairs: throughput ratio {ratio:.4f} (overhead {1 - ratio:+.2%})")
    if args.noise_floor:
        floor, _ = interleaved_ratio(args.task, 2 * args.epochs, args.extra, publish=False)
        print(f"same schedule without publishing (noise floor): ratio {floor:.4f} ({1 - floor:+.2%})")
    steps = epoch_env_steps(args.task, args.extra)
    for pair in range(args.pairs):
        with_pub, snap_ms, write_ms = throughput(args.task, args.epochs, 1, args.extra)
        without = throughput(args.task, args.epochs, 10 * args.epochs, args.extra)[0]
        epoch_ms = 1e3 * steps / without
        print(
            f"A/B pair {pair + 1}: publishing every epoch {with_pub:,.0f} env steps/s, without {without:,.0f}, "
            f"ratio {with_pub / without:.4f}; per publish {snap_ms:.2f} ms blocking snapshot "
            f"({snap_ms / epoch_ms:.2%} of a {epoch_ms:.0f} ms epoch) + {write_ms:.2f} ms writer-thread CPU",
            flush=True,
        )


if __name__ == "__main__":
    main()

"""PPO libraries and agents side by side in one run: env steps/s and time to a reward (issues 27, 28).

    python benchmarks/library_compare.py                                   # Ant 4096 to 3000, Humanoid 4096 to 5000
    python benchmarks/library_compare.py --tasks Anymal:52.5 Ant:3000 --variants graphed
    python benchmarks/library_compare.py --tasks Cartpole:450 --num-envs 256 --device cpu --budget 300

Each (task, variant) is one training, run one after the other on the same machine with the same
seed, stopped when the progress line's mean episode reward reaches the task's threshold or the
budget runs out. Variants: `graphed` (rl_games with this project's CUDA-graph agent, the default),
`stock` (rl_games' own a2c_continuous), `rsl_rl` and `skrl` (their own PPO, `library=`), each with
its default config for the task. Reported per training: steady end-to-end env steps/s (after the
first 10% of epochs), the training clock (from the first progress line) and the command's clock
when the reward was reached, and the last reward.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.gpu_training import rows_rate, run_training  # noqa: E402

VARIANTS = {
    "graphed": ["train.params.algo.name=graphed_a2c_continuous"],
    "stock": ["train.params.algo.name=a2c_continuous"],
    "rsl_rl": ["library=rsl_rl"],
    "skrl": ["library=skrl"],
}
DEFAULT_TASKS = ["Ant:3000", "Humanoid:5000"]


def one(task: str, threshold: float, variant: str, opts: argparse.Namespace, cwd: Path) -> str:
    """One training; its row of the table."""
    args = [f"task={task}", f"num_envs={opts.num_envs}", f"sim_device={opts.device}", f"rl_device={opts.device}",
            "headless=True", f"seed={opts.seed}", f"experiment=cmp_{task}_{variant}", *VARIANTS[variant]]  # fmt: skip
    rows, to_first = run_training(args, cwd, opts.budget, threshold)
    if not rows:
        return f"| {task} | {variant} | no progress line (see the trainer's output) | | | |"
    reached = next((row for row in rows if row[2] >= threshold), None)
    when = f"{reached[3]:.1f} s (epoch {reached[0]})" if reached else f"not in {opts.budget:.0f} s"
    command = f"{reached[3] + to_first:.1f} s" if reached else "-"
    return f"| {task} | {variant} | {rows_rate(rows):,.0f} | {when} | {command} | {rows[-1][2]:.1f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=DEFAULT_TASKS, help="Task:reward pairs")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--num-envs", type=int, default=4096)
    parser.add_argument("--device", default="cuda:0")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--budget", type=float, default=120.0, help="seconds per training, from the command")
    opts = parser.parse_args()
    cwd = Path(tempfile.mkdtemp(prefix="library_compare_"))
    print(f"{opts.num_envs} envs on {opts.device}, seed {opts.seed}, at most {opts.budget:.0f} s a training")
    print("| task | variant | env steps/s | training clock at the reward | command clock | last reward |")
    print("|---|---|---:|---|---|---:|")
    for pair in opts.tasks:
        task, _, reward = pair.partition(":")
        for variant in opts.variants:
            print(one(task, float(reward), variant, opts, cwd), flush=True)


if __name__ == "__main__":
    main()

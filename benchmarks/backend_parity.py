"""CPU/GPU parity: a policy trained on one physics backend, evaluated on both.

    python benchmarks/backend_parity.py [--train-device cuda:0] [--epochs 150] [--games 128]
    python benchmarks/backend_parity.py --run runs/Ant_2026-11-22_03-00-00   # an existing run

Trains Ant on --train-device (or takes the run given by --run, e.g. one trained on the CPU
elsewhere), then evaluates its latest.pth with the player (`mode=play games_num=N`, deterministic
actions) on the MuJoCo Warp backend (cuda:0) and on the CPU backend (mujoco.batch), and compares
mean episode returns (target: within 10%).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ENTRY = str(REPO / "isaacgymenvs" / "train_play.py")
ENV = dict(os.environ, PYTHONUNBUFFERED="1")


def run(args: list[str], cwd: Path) -> str:
    out = subprocess.run([sys.executable, ENTRY, *args], cwd=cwd, env=ENV, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"failed: {' '.join(args)}\n{(out.stdout + out.stderr)[-3000:]}")
    return out.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-device", default="cuda:0")
    parser.add_argument("--num-envs", type=int, default=8192)
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--games", type=int, default=128)
    parser.add_argument("--run", type=Path, help="evaluate this run directory instead of training one")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        if args.run:
            where = [f"experiment={args.run.resolve().name}", f"train_dir={args.run.resolve().parent}"]
            origin = f"run {args.run.name}"
        else:
            device = [f"sim_device={args.train_device}", f"rl_device={args.train_device}"]
            run(["task=Ant", "mode=train", f"num_envs={args.num_envs}", f"max_iterations={args.epochs}", *device,
                 "experiment=parity"], cwd)  # fmt: skip
            where, origin = ["experiment=parity"], f"trained on {args.train_device} ({args.epochs} epochs)"
        returns = {}
        for device in ("cuda:0", "cpu"):
            out = run(["mode=play", *where, f"games_num={args.games}", "num_envs=64",
                       f"sim_device={device}", f"rl_device={device}"], cwd)  # fmt: skip
            returns[device] = float(re.search(r"episodes, mean return (-?[\d.]+)", out)[1])
        gap = abs(returns["cuda:0"] - returns["cpu"]) / max(abs(returns["cuda:0"]), abs(returns["cpu"]))
        print(
            f"Ant {origin}: mean return over {args.games} episodes {returns['cuda:0']:.1f} on MuJoCo Warp, "
            f"{returns['cpu']:.1f} on CPU MuJoCo; gap {gap:.1%} (target <= 10%)"
        )


if __name__ == "__main__":
    main()

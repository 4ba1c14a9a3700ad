"""CPU/GPU parity: a policy trained on one physics backend, evaluated on both.

    python benchmarks/backend_parity.py [--train-device cuda:0] [--epochs 150] [--games 128]

Trains Ant on --train-device, then evaluates its final latest.pth with the player
(`mode=play games_num=N`, deterministic actions) on the MuJoCo Warp backend (cuda:0) and on the
CPU backend (mujoco.batch), and compares mean episode returns (target: within 10%).
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
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        device = [f"sim_device={args.train_device}", f"rl_device={args.train_device}"]
        run(["task=Ant", "mode=train", f"num_envs={args.num_envs}", f"max_iterations={args.epochs}", *device,
             "experiment=parity"], cwd)  # fmt: skip
        returns = {}
        for device in ("cuda:0", "cpu"):
            out = run(["mode=play", "experiment=parity", f"games_num={args.games}", "num_envs=64",
                       f"sim_device={device}", f"rl_device={device}"], cwd)  # fmt: skip
            returns[device] = float(re.search(r"episodes, mean return (-?[\d.]+)", out)[1])
        gap = abs(returns["cuda:0"] - returns["cpu"]) / max(abs(returns["cuda:0"]), abs(returns["cpu"]))
        print(
            f"Ant trained on {args.train_device} ({args.epochs} epochs): mean return over {args.games} episodes "
            f"{returns['cuda:0']:.1f} on MuJoCo Warp, {returns['cpu']:.1f} on CPU MuJoCo; gap {gap:.1%} (target <= 10%)"
        )


if __name__ == "__main__":
    main()

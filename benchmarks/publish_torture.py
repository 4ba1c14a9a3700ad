"""SIGKILL torture of live checkpoint publishing.

    python benchmarks/publish_torture.py --kills 500 [--parallel 2]

Each trial starts a real trainer (`train_play.py task=Cartpole checkpoint_save_freq=1`), waits for
its first publication, kills it with SIGKILL at a random moment, then checks that
`nn/latest.pth` is complete, loadable with torch.load(weights_only=True), and that its metadata
agrees with its weights (and the manifest with the file, when they describe the same epoch).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from isaacgymenvs.protocol import LATEST_CHECKPOINT, LATEST_MANIFEST, read_manifest  # noqa: E402


def check_published(nn: Path) -> str | None:
    """None when latest.pth is absent or complete and self-consistent; else what is wrong."""
    path = nn / LATEST_CHECKPOINT
    if not path.exists():
        return None
    data = path.read_bytes()
    try:
        ckpt = torch.load(path, weights_only=True)
    except Exception as err:  # any load failure is the finding
        return f"latest.pth does not load: {err}"
    meta = ckpt.get("metadata", {})
    model = ckpt["model"]
    if meta.get("epoch") != ckpt["epoch"] or meta.get("frame") != ckpt["frame"]:
        return f"metadata epoch/frame {meta.get('epoch')}/{meta.get('frame')} != {ckpt['epoch']}/{ckpt['frame']}"
    if model["running_mean_std.running_mean"].shape[0] != meta["num_obs"]:
        return "num_obs disagrees with the observation normaliser"
    if model["a2c_network.mu.weight"].shape[0] != meta["num_actions"]:
        return "num_actions disagrees with the policy head"
    if not all(torch.isfinite(v).all() for v in model.values() if v.is_floating_point()):
        return "non-finite weights"
    manifest = read_manifest(nn / LATEST_MANIFEST)
    if manifest is not None:
        if manifest["epoch"] > ckpt["epoch"]:
            return "manifest is newer than the checkpoint it describes"
        if manifest["epoch"] == ckpt["epoch"] and manifest["sha256"] != hashlib.sha256(data).hexdigest():
            return "manifest checksum does not match latest.pth"
    return None


def kill_trial(workdir: Path, rng: random.Random, max_delay: float = 1.0, startup_timeout: float = 120.0) -> str | None:
    """Start a trainer, SIGKILL it at a random moment after its first publish, check the files."""
    workdir.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        str(REPO / "isaacgymenvs" / "train_play.py"),
        "task=Cartpole",
        "num_envs=16",
        "sim_device=cpu",
        "rl_device=cpu",
        "checkpoint_save_freq=1",
        "max_iterations=1000000",
    ]
    proc = subprocess.Popen(cmd, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + startup_timeout
        while not list(workdir.glob(f"runs/*/nn/{LATEST_MANIFEST}")):
            if proc.poll() is not None or time.monotonic() > deadline:
                return f"trainer exited or never published (rc={proc.poll()})"
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, max_delay))
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    (nn,) = [p.parent for p in workdir.glob(f"runs/*/nn/{LATEST_MANIFEST}")]
    return check_published(nn)


def run_trials(kills: int, parallel: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    delays = [random.Random(rng.random()) for _ in range(kills)]
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(parallel) as pool:
        results = pool.map(lambda i: kill_trial(Path(tmp) / f"trial{i}", delays[i]), range(kills))
        return [f"trial {i}: {r}" for i, r in enumerate(results) if r]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=500)
    parser.add_argument("--parallel", type=int, default=max(1, (os.cpu_count() or 2) // 2))
    args = parser.parse_args()
    start = time.perf_counter()
    failures = run_trials(args.kills, args.parallel)
    print(f"{args.kills} SIGKILLs in {time.perf_counter() - start:.0f} s: {len(failures)} bad latest.pth")
    for failure in failures:
        print(failure)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()

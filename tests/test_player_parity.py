"""The player's default path (CPU physics and policy for a few envs) plays a GPU-trained policy as well
as the GPU player does: same MJCF, same task code, only the engine differs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.conftest import cli_env, run_cli

DATA = Path(__file__).parent / "data" / "ant_gpu_trained"


def test_the_default_cpu_player_scores_a_gpu_trained_ant_within_10_percent_of_the_gpu_player(tmp_path):
    run = tmp_path / "runs" / "parity_2026-12-03_12-52-51"
    (run / "nn").mkdir(parents=True)
    (run / "params").mkdir()
    shutil.copy(DATA / "latest.pth", run / "nn" / "latest.pth")
    shutil.copy(DATA / "config.yaml", run / "params" / "config.yaml")
    gpu = json.loads((DATA / "gpu_player.json").read_text())

    # No sim_device/rl_device: the run's config says cuda:0, the player's default (auto) must still pick the CPU.
    result = run_cli("mode=play", "experiment=parity", "games_num=16", "num_envs=16", cwd=tmp_path,
                     env=cli_env(CUDA_VISIBLE_DEVICES=""), timeout=240)  # fmt: skip
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "Player physics and policy on the CPU (16 envs" in result.stdout, result.stdout
    (csv_path,) = (run / "eval").glob("returns_epoch150_*.csv")
    returns = [float(row.split(",")[1]) for row in csv_path.read_text().splitlines()[1:]]
    assert len(returns) == gpu["episodes"]
    mean = sum(returns) / len(returns)
    assert abs(mean - gpu["mean_return"]) <= 0.10 * gpu["mean_return"], (mean, gpu["mean_return"])

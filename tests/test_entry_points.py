"""Every way to start a process gives the same command line: the README's scripts, the console
scripts pip installs, and `python -m`."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO, Lines, cli_env, kill_group, run_command, spawn

TRAINER = {
    "script": [sys.executable, str(REPO / "isaacgymenvs" / "train_play.py")],
    "console script": ["isaacgymenvs-train"],
    "module": [sys.executable, "-m", "isaacgymenvs"],
}
PANEL = {
    "script": [sys.executable, str(REPO / "isaacgymenvs" / "checkpoint_control_panel.py")],
    "console script": ["isaacgymenvs-panel"],
    "module": [sys.executable, "-m", "isaacgymenvs.panel"],
}


def command(prefix: list[str]) -> list[str]:
    if shutil.which(prefix[0]) is None:
        pytest.fail(f"{prefix[0]} is not installed: pip install -e . installs the console scripts")
    return prefix


@pytest.mark.parametrize("way", list(TRAINER))
def test_trainer_entry_points_show_the_usage_and_refuse_an_unknown_task(way, tmp_path):
    usage = run_command([*command(TRAINER[way]), "--help"], cwd=tmp_path, timeout=60)
    assert usage.returncode == 0 and usage.stdout.startswith("usage: python isaacgymenvs/train_play.py")
    bad = run_command([*command(TRAINER[way]), "task=Dog", "mode=train"], cwd=tmp_path, timeout=120)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().startswith("Error: Unknown task 'Dog'; known tasks: Ant, Anymal, Cartpole, Humanoid.")
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("way", list(PANEL))
def test_panel_entry_points_show_the_usage_and_wait_for_a_run_like_the_player(way, tmp_path):
    usage = run_command([*command(PANEL[way]), "--help"], cwd=tmp_path, timeout=60)
    assert usage.returncode == 0 and "--experiment" in usage.stdout and "--train_dir" in usage.stdout
    panel = spawn([*command(PANEL[way]), "--experiment=Cartpole", f"--train_dir={tmp_path / 'runs'}"], tmp_path,
                  cli_env(QT_QPA_PLATFORM="offscreen"), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    lines = Lines(panel)
    lines.wait_for(f"Waiting for a run matching 'Cartpole' in {tmp_path / 'runs'}/", 60)  # it used to exit
    from isaacgymenvs import protocol
    from isaacgymenvs.config import load_config

    run = protocol.create_run_dir(tmp_path / "runs", "Cartpole")  # the trainer starts
    protocol.write_params(run, load_config(["task=Cartpole", "sim_device=cpu", "rl_device=cpu"]))
    lines.wait_for(f"Control panel for run {run.name}", 60)
    kill_group(panel)

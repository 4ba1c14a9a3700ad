"""Every way to start a process gives the same command line: the README's scripts, the console
scripts pip installs, and `python -m`."""

from __future__ import annotations

import shutil
import sys

import pytest

from tests.conftest import REPO, run_command

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
    assert bad.stderr.strip().startswith("Error: Unknown task 'Dog'; known tasks: Ant, Cartpole, Humanoid.")
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("way", list(PANEL))
def test_panel_entry_points_show_the_usage_and_refuse_a_missing_experiment(way, tmp_path):
    usage = run_command([*command(PANEL[way]), "--help"], cwd=tmp_path, timeout=60)
    assert usage.returncode == 0 and "--experiment" in usage.stdout and "--train_dir" in usage.stdout
    bad = run_command([*command(PANEL[way]), "--experiment=Dog", f"--train_dir={tmp_path}"], cwd=tmp_path, timeout=60)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().startswith(f"Error: No run in {tmp_path}/ matches experiment=Dog")

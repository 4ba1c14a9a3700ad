"""End-to-end: train_play.py mode=train in a subprocess writes a complete run directory."""

from __future__ import annotations

import re

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from isaacgymenvs.trainer.progress import parse_progress
from tests.conftest import cli_env, run_cli

pytestmark = pytest.mark.slow


def only_run(parent):
    runs = list((parent / "runs").iterdir())
    assert len(runs) == 1
    return runs[0]


def test_cartpole_training_writes_run_directory_and_resumes(tmp_path):
    # Deprecation warnings on (as in a development setup): torch.jit's, raised inside rl_games, stay quiet.
    result = run_cli(
        "task=Cartpole",
        "num_envs=64",
        "max_iterations=6",
        "train.params.config.save_frequency=2",
        cwd=tmp_path,
        env=cli_env(PYTHONWARNINGS="default"),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    run = only_run(tmp_path)
    assert re.fullmatch(r"Cartpole_\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}", run.name)
    assert f"Training will save to: runs/{run.name}" in result.stdout
    progress = re.findall(
        r"^epoch (\d+)/6 \| ([\d,]+) env steps/s \| mean episode reward (\S+) \| elapsed \S+ \| ETA \S+$",
        result.stdout,
        re.M,
    )
    assert [int(p[0]) for p in progress] == [1, 2, 3, 4, 5, 6]
    # A quiet console: our lines only (no rl_games debug prints), nothing on stderr.
    summary = result.stdout.splitlines()[-4:]  # what was trained, where, and how to go on with it
    allowed = ("Training will save to: ", "epoch ", "Published latest.pth ")
    assert [line for line in result.stdout.splitlines()[:-4] if not line.startswith(allowed)] == []
    assert result.stderr == ""
    assert re.fullmatch(rf"Trained Cartpole for 6 epochs in 0:\d\d, last mean reward \S+: runs/{run.name}", summary[0])
    assert summary[1:] == [
        f"  watch:  python isaacgymenvs/train_play.py mode=play experiment={run.name}",
        f"  resume: python isaacgymenvs/train_play.py task=Cartpole checkpoint=runs/{run.name}/nn/latest.pth "
        "max_iterations=<more than 6>",
        f"  export: python isaacgymenvs/train_play.py mode=export experiment={run.name}",
    ]

    params = (run / "params" / "config.yaml").read_text()
    assert "name: Cartpole" in params and "num_envs: 64" in params
    checkpoints = sorted(p.name for p in (run / "nn").glob("*.pth"))
    assert any(name.startswith("last_Cartpole_ep_2_") for name in checkpoints), checkpoints
    assert any(name.startswith("last_Cartpole_ep_6_") for name in checkpoints), checkpoints

    events = EventAccumulator(str(run / "summaries"))
    events.Reload()
    tags = events.Tags()["scalars"]
    assert "rewards/iter" in tags and "reward_terms/alive" in tags
    assert len(events.Scalars("rewards/iter")) >= 5

    # Resume: training continues from the checkpoint's epoch in a new run directory.
    last = next((run / "nn").glob("last_Cartpole_ep_6_*.pth"))
    resumed = run_cli("task=Cartpole", "num_envs=64", "max_iterations=8", f"checkpoint={last}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert re.findall(r"^epoch (\d+)/8", resumed.stdout, re.M) == ["7", "8"]
    # Every env restarts its episode on resume: until 500 steps (32 epochs of 16) have passed only
    # episodes that ended early finish, and the line says so rather than reading as a regression.
    note = " | resumed at epoch 6: until epoch 38 only episodes that ended early count"
    assert [line.endswith(note) for line in resumed.stdout.splitlines() if line.startswith("epoch ")] == [True, True]
    assert all(parse_progress(line) for line in resumed.stdout.splitlines() if line.startswith("epoch "))
    # The first rate after a resume counts this epoch's steps, not the 6 restored epochs' too.
    rates = [int(p[1].replace(",", "")) for p in progress]
    first = int(re.search(r"^epoch 7/8 \| ([\d,]+) env steps/s", resumed.stdout, re.M)[1].replace(",", ""))
    assert first < 4 * max(rates), (first, rates)
    # Nothing left to train (max_iterations counts from epoch 0, as in IsaacGymEnvs): one sentence, no run.
    latest = run / "nn" / "latest.pth"
    refused = run_cli("task=Cartpole", "num_envs=64", "max_iterations=6", f"checkpoint={latest}", cwd=tmp_path)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert refused.stderr.strip() == (
        f"Error: {latest} is at epoch 6 and max_iterations=6 counts all epochs from the start, so nothing is "
        "left to train; pass a larger max_iterations, e.g. max_iterations=12."
    )
    assert len(list((tmp_path / "runs").iterdir())) == 2


def final_weights(parent, seed):
    parent.mkdir()
    result = run_cli("task=Cartpole", "num_envs=32", "max_iterations=3", f"seed={seed}", cwd=parent)
    assert result.returncode == 0, result.stderr[-2000:]
    run = sorted((parent / "runs").iterdir())[-1]
    ckpt = next((run / "nn").glob("last_Cartpole_ep_3_*.pth"))
    return torch.load(ckpt, weights_only=False)["model"]


def test_seeded_cpu_training_is_reproducible(tmp_path):
    a = final_weights(tmp_path / "a", 7)
    b = final_weights(tmp_path / "b", 7)
    c = final_weights(tmp_path / "c", 8)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())


@pytest.mark.parametrize("first, second", [("graphed_a2c_continuous", "a2c_continuous"),
                                           ("a2c_continuous", "graphed_a2c_continuous")])  # fmt: skip
def test_resume_across_the_stock_and_the_graphed_agent(tmp_path, first, second):
    agent = f"train.params.algo.name={first}"
    trained = run_cli("task=Cartpole", "num_envs=32", "max_iterations=2", agent, cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr[-2000:]
    latest = only_run(tmp_path) / "nn" / "latest.pth"
    resumed = run_cli("task=Cartpole", "num_envs=32", "max_iterations=4", f"checkpoint={latest}",
                      f"train.params.algo.name={second}", cwd=tmp_path)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert re.findall(r"^epoch (\d+)/4", resumed.stdout, re.M) == ["3", "4"]

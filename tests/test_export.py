"""Exported policies (mode=export, the panel's Export button) act exactly as the player does."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from isaacgymenvs import protocol
from tests.conftest import REPO, run_cli

ort = pytest.importorskip("onnxruntime")
TOLERANCE = 1e-5
# torch 2.13 deprecates torch.jit; loading TorchScript is what these tests check, on purpose.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.*is deprecated:DeprecationWarning")


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, dict[str, protocol.RunDir]]:
    """Short CPU runs of every task; Ant with the default graphed agent, Cartpole with the stock one."""
    parent = tmp_path_factory.mktemp("export")
    setups = {
        "Ant": ["num_envs=64", "max_iterations=10", "checkpoint_save_freq=5", "train.params.config.save_frequency=5"],
        "Humanoid": ["num_envs=16", "max_iterations=2"],
        "Cartpole": ["num_envs=32", "max_iterations=4", "train.params.algo.name=a2c_continuous"],
    }
    found = {}
    for task, extra in setups.items():
        result = run_cli(f"task={task}", *extra, "sim_device=cpu", "rl_device=cpu", cwd=parent)
        assert result.returncode == 0, result.stderr[-2000:]
        found[task] = protocol.RunDir(next((parent / "runs").glob(f"{task}_*")))
    return parent, found


def player_policy(run: protocol.RunDir, checkpoint: Path):
    """The player's own objects for `checkpoint`: its Policy, loaded through the protocol module."""
    from omegaconf import OmegaConf

    from isaacgymenvs.policy import Policy
    from isaacgymenvs.tasks import task_class

    saved = OmegaConf.load(run.config_file)
    cls = task_class(saved.task.name)
    info = protocol.load_checkpoint(checkpoint, protocol.CheckpointFit(saved.task.name, cls.num_obs, cls.num_actions))
    policy = Policy(OmegaConf.to_container(saved.train, resolve=True), cls.num_obs, cls.num_actions, "cpu", False)
    policy.load(info.model)
    return policy, float(saved.task.env.clipObservations)


def random_observations(policy, n: int = 1000, seed: int = 0) -> torch.Tensor:
    """Around the normaliser's mean, wide enough that both observation clips and the action clip act."""
    stats = policy.model.running_mean_std
    generator = torch.Generator().manual_seed(seed)
    mean, std = stats.running_mean.float(), stats.running_var.float().sqrt()
    obs = mean + std * 3.0 * torch.randn(n, mean.shape[0], generator=generator)
    wild = torch.rand(obs.shape, generator=generator) < 0.05
    return torch.where(wild, 20.0 * torch.randn(obs.shape, generator=generator), obs)


def player_actions(policy, clip_obs: float, obs: torch.Tensor) -> torch.Tensor:
    """What the player does with an observation: the task clips it, the policy acts (mean, clamped)."""
    return policy.act(torch.clamp(obs, -clip_obs, clip_obs))


@pytest.mark.slow
@pytest.mark.parametrize("task", ["Ant", "Humanoid", "Cartpole"])
def test_onnx_and_torchscript_actions_equal_the_players(runs, task):
    from isaacgymenvs.export import export_checkpoint

    _, found = runs
    run = found[task]
    files = export_checkpoint(run, run.latest_checkpoint)
    policy, clip_obs = player_policy(run, run.latest_checkpoint)
    obs = random_observations(policy)
    expected = player_actions(policy, clip_obs, obs)
    normalised = (obs.clamp(-clip_obs, clip_obs) - policy.model.running_mean_std.running_mean.float()) / (
        policy.model.running_mean_std.running_var.float() + 1e-5
    ).sqrt()
    assert (normalised.abs() > 5).any() and (obs.abs() > clip_obs).any(), "the test inputs must reach both clips"

    session = ort.InferenceSession(str(files.onnx), providers=["CPUExecutionProvider"])
    from_onnx = torch.from_numpy(session.run(["actions"], {"obs": obs.numpy()})[0])
    from_script = torch.jit.load(str(files.torchscript))(obs)
    assert from_onnx.shape == from_script.shape == expected.shape == (1000, policy.num_actions)
    assert (from_onnx - expected).abs().max() <= TOLERANCE
    assert (from_script - expected).abs().max() <= TOLERANCE
    one = session.run(["actions"], {"obs": obs[:1].numpy()})[0]  # the batch dimension is dynamic
    assert one.shape == (1, policy.num_actions) and np.abs(one - expected[:1].numpy()).max() <= TOLERANCE

    description = json.loads(files.description.read_text())
    assert description["task"] == task and description["observations"]["size"] == obs.shape[1]
    assert len(description["observations"]["names"]) == description["observations"]["size"]
    assert len(description["actions"]["names"]) == description["actions"]["size"] == policy.num_actions
    assert description["source_checkpoint"]["sha256"] == hashlib.sha256(run.latest_checkpoint.read_bytes()).hexdigest()
    assert description["files"]["onnx"]["sha256"] == hashlib.sha256(files.onnx.read_bytes()).hexdigest()
    assert description["control_dt"] == pytest.approx(1 / 60) and description["actions"]["clip"] == [-1.0, 1.0]
    assert not list(files.onnx.parent.glob(protocol.TEMP_GLOB))


@pytest.mark.slow
def test_values_output_is_the_players_denormalised_value(runs):
    from isaacgymenvs.export import export_checkpoint

    _, found = runs
    run = found["Cartpole"]
    files = export_checkpoint(run, run.latest_checkpoint, with_values=True)
    policy, clip_obs = player_policy(run, run.latest_checkpoint)
    obs = random_observations(policy, n=200)
    with torch.no_grad():
        out = policy.model({"is_train": False, "prev_actions": None, "obs": obs.clamp(-clip_obs, clip_obs)})
    actions, values = ort.InferenceSession(str(files.onnx)).run(["actions", "values"], {"obs": obs.numpy()})
    assert np.abs(values - out["values"].numpy()).max() <= TOLERANCE * max(1.0, float(out["values"].abs().max()))
    assert np.abs(actions - out["mus"].clamp(-1, 1).numpy()).max() <= TOLERANCE


FRESH_PROCESS = """
import importlib.abc, json, sys
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("isaacgymenvs", "panel", "rl_games"):
            raise ImportError(name + " is not installed here")
sys.meta_path.insert(0, Refuse())
import numpy as np, onnxruntime, torch
obs = np.load(sys.argv[3])
onnx_actions = onnxruntime.InferenceSession(sys.argv[1]).run(["actions"], {"obs": obs})[0]
script_actions = torch.jit.load(sys.argv[2])(torch.from_numpy(obs)).numpy()
np.save(sys.argv[4], np.stack([onnx_actions, script_actions]))
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules} & {"isaacgymenvs", "panel", "rl_games"})))
"""


@pytest.mark.slow
def test_exported_files_run_in_a_process_without_this_project(runs, tmp_path):
    from isaacgymenvs.export import export_checkpoint

    _, found = runs
    run = found["Ant"]
    files = export_checkpoint(run, run.latest_checkpoint)
    policy, clip_obs = player_policy(run, run.latest_checkpoint)
    obs = random_observations(policy, n=50, seed=1)
    np.save(tmp_path / "obs.npy", obs.numpy())
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS, str(files.onnx), str(files.torchscript), "obs.npy", "out.npy"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
    onnx_actions, script_actions = np.load(tmp_path / "out.npy")
    expected = player_actions(policy, clip_obs, obs).numpy()
    assert np.abs(onnx_actions - expected).max() <= TOLERANCE and np.abs(script_actions - expected).max() <= TOLERANCE


@pytest.mark.slow
def test_exported_ant_in_a_plain_mujoco_loop_scores_as_play_games_num(runs):
    """Same checkpoint, seed and env count: the plain loop starts its envs from the player's states.

    The player waits for its checkpoint before the first step when evaluating, so both score the
    same policy from the first step; what remains is onnxruntime's last-bit differences growing in
    chaotic contact dynamics. Measured here: the returns agree to about 1e-5 (relative).
    """
    from isaacgymenvs.export import export_checkpoint

    parent, found = runs
    run = found["Ant"]
    files = export_checkpoint(run, run.latest_checkpoint)
    games, envs, seed = 8, 8, 7
    play = run_cli("mode=play", f"experiment={run.name}", f"checkpoint={run.latest_checkpoint}", f"games_num={games}",
                   f"num_envs={envs}", f"seed={seed}", "sim_device=cpu", "rl_device=cpu", cwd=parent)  # fmt: skip
    assert play.returncode == 0, play.stderr[-2000:]
    csv_path = Path(play.stdout.strip().splitlines()[-1].split("returns written to ")[1])
    played = [float(line.split(",")[1]) for line in (parent / csv_path).read_text().splitlines()[1:]]

    loop = subprocess.run(
        [sys.executable, str(REPO / "tests" / "plain_mujoco_loop.py"), str(run.root), str(files.onnx), str(envs),
         str(games), str(seed)], capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert loop.returncode == 0, loop.stderr[-2000:]
    report = json.loads(loop.stdout.strip().splitlines()[-1])
    assert report["blocked_modules_loaded"] == []
    plain = report["returns"]
    assert len(plain) == len(played) == games
    print(f"play mean {np.mean(played):.3f}, plain MuJoCo loop mean {np.mean(plain):.3f}")
    assert abs(np.mean(plain) - np.mean(played)) <= 0.05 * abs(np.mean(played))


@pytest.mark.slow
def test_cli_exports_latest_and_an_rl_games_file(runs):
    parent, found = runs
    run = found["Ant"]
    result = run_cli("mode=export", f"experiment={run.name}", cwd=parent)
    assert result.returncode == 0, result.stderr[-2000:]
    printed = [line.strip() for line in result.stdout.splitlines()[-3:]]
    assert [Path(p).name for p in printed] == ["latest.onnx", "latest.pt", "latest.json"]
    assert all((parent / p).is_file() for p in printed)

    periodic = next(run.nn.glob("last_Ant_ep_5_*.pth"))  # rl_games' own file: no metadata inside
    result = run_cli("mode=export", f"checkpoint={periodic}", cwd=parent)
    assert result.returncode == 0, result.stderr[-2000:]
    # named by an absolute checkpoint= path too, the files are shown as with experiment=: relative
    assert [line.strip() for line in result.stdout.splitlines()[-3:]] == [
        f"runs/{run.name}/exported/{periodic.stem}{suffix}" for suffix in (".onnx", ".pt", ".json")
    ]
    for suffix in (".onnx", ".pt", ".json"):
        assert (run.root / "exported" / (periodic.stem + suffix)).is_file()
    assert json.loads((run.root / "exported" / f"{periodic.stem}.json").read_text())["source_checkpoint"]["epoch"] == 5


@pytest.fixture
def ant_copy(runs, tmp_path):
    """A copy of the Ant run to damage, with the Cartpole run beside it."""
    _, found = runs
    shutil.copytree(found["Ant"].root, tmp_path / "runs" / found["Ant"].name, ignore=shutil.ignore_patterns("exported"))
    return tmp_path, protocol.RunDir(tmp_path / "runs" / found["Ant"].name), found["Cartpole"]


def nothing_exported(run: protocol.RunDir, stem: str) -> bool:
    out = run.root / "exported"
    return not any(out.glob(f"{stem}.*")) and not any(out.glob(protocol.TEMP_GLOB))


@pytest.mark.slow
@pytest.mark.parametrize(
    "case",
    ["torn", "foreign", "unknown experiment", "unwritable", "no run", "linked latest", "linked nn", "linked exported",
     "oversized"],
)  # fmt: skip
def test_cli_refuses_bad_input_with_one_sentence(ant_copy, case, monkeypatch, capsys, tmp_path_factory):
    from isaacgymenvs.cli import main

    parent, run, cartpole = ant_copy
    outside = tmp_path_factory.mktemp("outside")
    monkeypatch.chdir(parent)
    good = run.latest_checkpoint.read_bytes()
    args, stem, expect = [f"checkpoint={run.nn / 'bad.pth'}"], "bad", ""
    if case == "torn":
        (run.nn / "bad.pth").write_bytes(good[: len(good) // 2])
        expect = "bad.pth is torn or not a checkpoint"
    elif case == "foreign":
        shutil.copy(cartpole.latest_checkpoint, run.nn / "bad.pth")
        expect = "bad.pth belongs to task Cartpole, not Ant"
    elif case == "unknown experiment":
        args, stem, expect = ["experiment=Walker"], "latest", "No run in runs/ matches experiment=Walker"
    elif case == "unwritable":
        (run.root / "exported").write_text("a file where the exported folder should be")
        args, stem, expect = [f"experiment={run.name}"], "latest", "exported is a symbolic link or not a folder"
    elif case == "linked latest":  # a good Ant checkpoint, but outside the run
        shutil.move(run.latest_checkpoint, outside / "latest.pth")
        run.latest_checkpoint.symlink_to(outside / "latest.pth")
        args, stem, expect = (
            [f"experiment={run.name}"],
            "latest",
            "latest.pth is a symbolic link, which is not followed",
        )
    elif case == "linked nn":
        shutil.move(run.nn, outside / "nn")
        run.nn.symlink_to(outside / "nn")
        args, stem, expect = [f"experiment={run.name}"], "latest", "latest.pth: nn/ is a symbolic link"
    elif case == "oversized":  # sized memory-mapped before its bytes are read, as the player does
        import torch

        ckpt = torch.load(run.latest_checkpoint, weights_only=True)
        torch.save({**ckpt, "extra": torch.zeros(70_000_000)}, run.latest_checkpoint)
        args, stem = [f"experiment={run.name}"], "latest"
        expect = "latest.pth holds 268 MB of tensors, more than the 256 MB a policy checkpoint may"
    elif case == "linked exported":
        (run.root / "exported").symlink_to(outside)
        args, stem, expect = [f"experiment={run.name}"], "latest", "exported is a symbolic link or not a folder"
    else:
        shutil.copy(run.latest_checkpoint, parent / "loose.pth")
        args, stem, expect = ["checkpoint=loose.pth"], "loose", "is not in a run's nn/ folder"
    assert main(["mode=export", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("Error: ") and expect in err and len(err.splitlines()) == 1, err
    if case == "unwritable":
        assert (run.root / "exported").is_file()
    elif case != "linked nn":
        assert nothing_exported(run, stem)
    exported = (".onnx", ".pt", ".json") if case == "linked exported" else (".onnx", ".pt")  # nn/ has latest.json
    assert not any(p.name.endswith(exported) or ".tmp-" in p.name for p in outside.rglob("*"))


@pytest.mark.slow
def test_a_failed_write_leaves_no_file_behind(ant_copy, monkeypatch):
    from isaacgymenvs import export
    from isaacgymenvs.errors import UserError

    _, run, _ = ant_copy
    real_fsync, calls = os.fsync, []

    def fsync_fails_on_the_second_file(fd: int) -> None:
        calls.append(fd)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(export.os, "fsync", fsync_fails_on_the_second_file)
    with pytest.raises(UserError, match="No space left on device"):
        export.export_checkpoint(run, run.latest_checkpoint)
    assert (run.root / "exported").is_dir() and nothing_exported(run, "latest")


@pytest.mark.slow
def test_latest_replaced_while_exporting_is_described_by_the_bytes_that_were_exported(ant_copy, monkeypatch):
    from isaacgymenvs import export

    _, run, _ = ant_copy
    older = run.nn / ".older.pth"
    shutil.copy(next(run.nn.glob("last_Ant_ep_5_*.pth")), older)
    exported = run.latest_checkpoint.read_bytes()
    real_read = export.read_source

    def read_then_trainer_publishes(path, run_):
        data = real_read(path, run_)
        os.replace(older, run.latest_checkpoint)  # as the publisher's atomic replace, right after the read
        return data

    monkeypatch.setattr(export, "read_source", read_then_trainer_publishes)
    files = export.export_checkpoint(run, run.latest_checkpoint)
    source = json.loads(files.description.read_text())["source_checkpoint"]
    assert source["epoch"] == 10 and source["sha256"] == hashlib.sha256(exported).hexdigest()


@pytest.mark.slow
def test_a_checkpoint_saved_on_a_gpu_exports_the_same_policy(ant_copy, monkeypatch):
    """A GPU run's file differs only in its storages' location tag ('cuda:0'); it must load here."""
    from isaacgymenvs.export import export_checkpoint

    _, run, _ = ant_copy
    ckpt = torch.load(run.latest_checkpoint, map_location="cpu", weights_only=True)
    with monkeypatch.context() as patch:
        patch.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
        torch.save(ckpt, run.nn / "from_gpu.pth")
    assert b"cuda:0" in (run.nn / "from_gpu.pth").read_bytes()
    cpu_files = export_checkpoint(run, run.latest_checkpoint)
    gpu_files = export_checkpoint(run, run.nn / "from_gpu.pth")
    obs = torch.randn(100, 60)
    assert torch.equal(torch.jit.load(str(cpu_files.torchscript))(obs), torch.jit.load(str(gpu_files.torchscript))(obs))


@pytest.mark.slow
def test_panel_export_button_writes_the_files_of_the_selected_checkpoint(qtbot, ant_copy):
    pytest.importorskip("pytestqt")
    from isaacgymenvs.panel.catalog import run_info
    from isaacgymenvs.panel.window import PanelWindow

    _, run, _ = ant_copy
    window = PanelWindow(run, run_info(run))
    qtbot.addWidget(window)

    def listed() -> list[str]:  # rl_games saved epoch 10 twice: the panel lists one of the twins
        return [e.name for e in window.table_model.entries if e.name.startswith("last_Ant_ep_10_")]

    qtbot.waitUntil(lambda: bool(listed()), timeout=20000)
    periodic = run.nn / listed()[0]
    window.export_button.click()
    assert "Select a checkpoint first" in window.message.text()
    window.select_checkpoint(periodic.name)
    window.export_button.click()
    assert not window.export_button.isEnabled() and "Exporting" in window.message.text()
    qtbot.waitUntil(lambda: window.export_button.isEnabled(), timeout=60000)
    assert window.message.text().startswith(f"Exported {periodic.name} to "), window.message.text()
    for suffix in (".onnx", ".pt", ".json"):
        assert (run.root / "exported" / (periodic.stem + suffix)).is_file()
    source = json.loads((run.root / "exported" / f"{periodic.stem}.json").read_text())["source_checkpoint"]
    assert source["path"] == str(periodic.resolve())
    window.close()

"""The player: experiment resolution, state-file fuzzing, bad checkpoints, live reload, screenshot."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from isaacgymenvs import protocol
from isaacgymenvs.errors import UserError
from isaacgymenvs.protocol import CheckpointRejected
from tests.conftest import ENTRY, run_cli, start_cli

# --- experiment resolution ---------------------------------------------------------------------


def make_runs(tmp_path, *names):
    for name in names:
        (tmp_path / name / "nn").mkdir(parents=True)
    return tmp_path


def test_exact_and_newest_partial_match_by_timestamp_not_by_name(tmp_path):
    runs = make_runs(tmp_path, "Ant_b_2026-01-01_00-00-00", "Ant_a_2026-06-01_00-00-00", "Cartpole_2026-07-01_00-00-00")
    assert protocol.resolve_experiment(runs, "Ant").name == "Ant_a_2026-06-01_00-00-00"
    assert protocol.resolve_experiment(runs, "Ant_b_2026-01-01_00-00-00").name == "Ant_b_2026-01-01_00-00-00"
    assert protocol.resolve_experiment(runs, "Cart").name == "Cartpole_2026-07-01_00-00-00"


def test_experiment_missing_or_unmatched_is_one_sentence(tmp_path):
    runs = make_runs(tmp_path, "Ant_2026-01-01_00-00-00")
    with pytest.raises(UserError, match=r"needs experiment=.*most recent runs: Ant_2026-01-01_00-00-00"):
        protocol.resolve_experiment(runs, "")
    with pytest.raises(UserError, match=r"No run .* matches experiment=Dog; candidates: Ant_2026"):
        protocol.resolve_experiment(runs, "Dog")


# --- state file ----------------------------------------------------------------------------------


@pytest.fixture
def run(tmp_path):
    run = protocol.create_run_dir(tmp_path / "runs", "Cartpole")
    (run.nn / "a.pth").write_bytes(b"x")
    return run


def test_state_file_round_trip_and_seq(run):
    assert protocol.read_state(run) == (None, None)
    first = protocol.write_state(run, "manual", "nn/a.pth")
    assert protocol.read_state(run) == (first, None) and first.seq == 1
    second = protocol.write_state(run, "auto")
    assert second.seq == 2 and protocol.read_state(run)[0].checkpoint is None


def hostile_state_files(rng: random.Random, outside: Path) -> list[bytes]:
    """>= 200 malformed, hand-edited or hostile state files."""
    bad_paths = [
        "../x.pth",
        "/etc/passwd",
        str(outside),
        "nn/../../secret.pth",
        "nn/a.txt",
        "nn/\x00.pth",
        "",
        "../../../../root/.bashrc",
        "nn/link_out.pth",
        5,
        None,
        ["nn/a.pth"],
        {"p": 1},
        True,
        "nn/" + "a" * 5000,
    ]
    files = [b"", b"{", b"[]", b"null", b"42", b'"auto"', b"\xff\xfe\x00", b'{"mode": "auto"', b"{}" * 3]
    for path in bad_paths:
        files.append(json.dumps({"mode": "manual", "checkpoint": path, "seq": 1}).encode())
    for mode in ["AUTO", "Manual", "", None, 1, ["auto"], "follow", "latest"]:
        files.append(json.dumps({"mode": mode, "seq": 1}).encode())
    for seq in ["1", 1.5, None, [1], True]:
        files.append(json.dumps({"mode": "auto", "seq": seq}).encode())
    good = json.dumps({"mode": "manual", "checkpoint": "nn/a.pth", "seq": 3}).encode()
    while len(files) < 220:
        raw = bytearray(good)
        for _ in range(rng.randint(1, 6)):  # random corruption: flips, truncation, insertions
            op = rng.random()
            pos = rng.randrange(len(raw)) if raw else 0
            if op < 0.4 and raw:
                raw[pos] = rng.randrange(256)
            elif op < 0.7:
                raw = raw[:pos]
            else:
                raw[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        files.append(bytes(raw))
    return files


def test_state_file_fuzzing_never_crashes_and_never_leaves_the_run(run, tmp_path):
    outside = tmp_path / "outside.pth"
    outside.write_bytes(b"x")
    (run.nn / "link_out.pth").symlink_to(outside)
    from isaacgymenvs.player.follower import CheckpointFollower

    follower = CheckpointFollower(run, "Cartpole", 4, 1, 30.0, use_events=False, log=lambda msg: None)
    files = hostile_state_files(random.Random(0), outside)
    assert len(files) >= 200
    root = run.root.resolve()
    for raw in files:
        protocol.state_file(run).write_bytes(raw)
        state, warning = protocol.read_state(run)
        assert state is not None or warning is not None or raw == b""
        follower._read_state()
        target = follower.target().path.resolve()
        assert target.is_relative_to(root), (raw, target)
        assert target != outside.resolve()


# --- checkpoints the player must refuse -----------------------------------------------------------


@pytest.fixture(scope="module")
def trained_runs(tmp_path_factory):
    """A Cartpole and an Ant run, a few epochs each, trained by the real CLI."""
    parent = tmp_path_factory.mktemp("trained")
    for task, envs in (("Cartpole", 32), ("Ant", 16)):
        result = run_cli(f"task={task}", f"num_envs={envs}", "max_iterations=3", "sim_device=cpu", "rl_device=cpu",
                         cwd=parent)  # fmt: skip
        assert result.returncode == 0, result.stderr[-2000:]
    runs = {r.name.split("_")[0]: protocol.RunDir(r) for r in (parent / "runs").iterdir()}
    return parent, runs


@pytest.mark.slow
def test_bad_checkpoints_are_refused_with_a_reason(trained_runs, tmp_path):
    _, runs = trained_runs
    good = runs["Cartpole"].latest_checkpoint
    data = good.read_bytes()
    cases = {
        "torn.pth": data[: len(data) // 2],
        "empty.pth": b"",
        "garbage.pth": os.urandom(4096),
    }
    for name, raw in cases.items():
        (tmp_path / name).write_bytes(raw)
        with pytest.raises(CheckpointRejected, match="torn or not a checkpoint"):
            protocol.load_checkpoint(tmp_path / name, "Cartpole", 4, 1)

    class Evil:
        def __reduce__(self):
            return (os.system, ("touch pwned",))

    torch.save({"model": {}, "x": Evil()}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointRejected, match="torn or not a checkpoint"):
        protocol.load_checkpoint(tmp_path / "evil.pth", "Cartpole", 4, 1)
    assert not Path("pwned").exists()

    with pytest.raises(CheckpointRejected, match="belongs to task Ant, not Cartpole"):
        protocol.load_checkpoint(runs["Ant"].latest_checkpoint, "Cartpole", 4, 1)
    ant = torch.load(runs["Ant"].latest_checkpoint, weights_only=True)
    del ant["metadata"]  # an rl_games checkpoint without our metadata: shapes decide
    torch.save(ant, tmp_path / "ant_plain.pth")
    with pytest.raises(CheckpointRejected, match="60 observations and 8 actions; Cartpole needs 4 and 1"):
        protocol.load_checkpoint(tmp_path / "ant_plain.pth", "Cartpole", 4, 1)
    info = protocol.load_checkpoint(good, "Cartpole", 4, 1)
    assert info.epoch == 3 and info.task == "Cartpole"
    assert not any(k.startswith("_orig_mod.") for k in torch.load(good, weights_only=True)["model"])

    # rl_games' own save of a torch_compile'd model prefixes every key: still the same weights.
    compiled = torch.load(good, weights_only=True)
    compiled["model"] = {f"_orig_mod.{k}": v for k, v in compiled["model"].items()}
    torch.save(compiled, tmp_path / "compiled.pth")
    info_compiled = protocol.load_checkpoint(tmp_path / "compiled.pth", "Cartpole", 4, 1)
    assert info_compiled.model.keys() == info.model.keys()


def build_core(run, reload_interval=30.0, num_envs=2):
    """The player's own core for `run`, on the CPU, with its log captured."""
    from isaacgymenvs.config import load_config
    from isaacgymenvs.player.play import build_core as build_player_core
    from isaacgymenvs.player.play import with_run_config

    overrides = ["mode=play", f"num_envs={num_envs}", "sim_device=cpu", "rl_device=cpu",
                 f"checkpoint_reload_interval={reload_interval}"]  # fmt: skip
    cfg = with_run_config(load_config(overrides), run, task_given=False)
    messages: list[str] = []
    return build_player_core(cfg, run, log=messages.append), messages, cfg


def step_until(core, condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        core.step()
        time.sleep(0.01)


@pytest.mark.slow
def test_a_broken_new_checkpoint_keeps_the_current_policy(trained_runs):
    _, runs = trained_runs
    run = runs["Cartpole"]
    core, messages, _ = build_core(run)
    core.follower.start()
    try:
        step_until(core, lambda: core.policy.loaded)
        before = {k: v.clone() for k, v in core.policy.model.state_dict().items()}
        good = run.latest_checkpoint.read_bytes()
        protocol.atomic_write_bytes(run.latest_checkpoint, good[: len(good) // 3])  # a torn publish
        step_until(core, lambda: core.follower.error is not None)
        after = core.policy.model.state_dict()
        assert all(torch.equal(before[k], after[k]) for k in before)
        assert "torn or not a checkpoint" in core.follower.error
        assert any("last load failed" in line for line in core.hud_lines())
        step_until(core, lambda: (protocol.read_status(run) or {}).get("phase") == "failed")
        assert protocol.read_status(run)["checkpoint"] == "latest.pth"  # the policy still shown
        protocol.atomic_write_bytes(run.latest_checkpoint, good)  # a good publish recovers
        step_until(core, lambda: core.follower.error is None and core.follower.loads == 2)
    finally:
        core.follower.stop()


@pytest.mark.slow
def test_state_file_switches_manual_and_back_to_auto_within_a_second(trained_runs):
    _, runs = trained_runs
    run = runs["Cartpole"]
    periodic = sorted(run.nn.glob("last_Cartpole_ep_*.pth"))[0]
    core, _, _ = build_core(run)
    core.follower.start()
    try:
        step_until(core, lambda: core.follower.loaded is not None)
        start = time.monotonic()
        protocol.write_state(run, "manual", f"nn/{periodic.name}")
        step_until(core, lambda: core.follower.loaded.path.name == periodic.name, timeout=5)
        assert time.monotonic() - start < 1.0
        step_until(core, lambda: (protocol.read_status(run) or {}).get("mode") == "manual")  # written by the follower
        protocol.write_state(run, "auto")
        step_until(core, lambda: core.follower.loaded.path.name == "latest.pth", timeout=5)
    finally:
        core.follower.stop()


# --- live: a real trainer and a real player --------------------------------------------------------


@pytest.mark.slow
def test_player_reloads_while_the_trainer_publishes(tmp_path):
    trainer = start_cli("task=Cartpole", "num_envs=64", "max_iterations=150", "checkpoint_save_freq=25",
                        "sim_device=cpu", "rl_device=cpu", "experiment=live", cwd=tmp_path,
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    while not list(tmp_path.glob("runs/live_*/params/config.yaml")):
        assert trainer.poll() is None
        time.sleep(0.05)
    player = start_cli("mode=play", "experiment=live", "headless=True", "num_envs=2", "checkpoint_reload_interval=1",
                       "sim_device=cpu", "rl_device=cpu", cwd=tmp_path)  # fmt: skip
    assert trainer.wait(timeout=300) == 0
    time.sleep(2.0)
    player.send_signal(signal.SIGINT)
    out, _ = player.communicate(timeout=60)
    assert player.returncode == 0, out[-2000:]
    assert "Traceback" not in out
    epochs = [int(e) for e in re.findall(r"^Loaded latest\.pth \(epoch (\d+)", out, re.M)]
    assert len(epochs) >= 2 and epochs == sorted(epochs) and len(set(epochs)) == len(epochs), out[-3000:]
    assert epochs[-1] == 150


# --- what a person sees ----------------------------------------------------------------------------


@pytest.mark.slow
def test_window_screenshot_shows_the_robots(trained_runs, tmp_path):
    pytest.importorskip("PySide6")
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ.setdefault("MUJOCO_GL", "egl")
    import numpy as np
    from PIL import Image
    from PySide6.QtWidgets import QApplication

    from isaacgymenvs.player.render import MultiEnvRenderer
    from isaacgymenvs.player.viewer import PlayerWindow

    _, runs = trained_runs
    core, _, cfg = build_core(runs["Ant"], num_envs=4)
    core.follower.start()
    app = QApplication.instance() or QApplication([])
    window = PlayerWindow(core, MultiEnvRenderer(core.task.model, 4, float(cfg.task.env.envSpacing)), "test")
    window.show()
    try:
        deadline = time.monotonic() + 20
        while (core.steps < 30 or not core.policy.loaded) and time.monotonic() < deadline:
            app.processEvents()
        shot = tmp_path / "player.png"
        window.save_screenshot(shot)
    finally:
        window.close()
        core.follower.stop()
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    r, g, b = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    robot = (r > g + 25) & (g > b + 15)  # the ants' tan/orange against the blue floor and sky
    assert robot.mean() > 0.01, f"robot pixels {robot.mean():.4f}"
    assert pixels.std() > 20  # not a blank frame
    assert any("epoch 3" in line for line in window.hud_lines())


def test_window_without_a_display_is_one_sentence(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    result = subprocess.run([sys.executable, str(ENTRY), "mode=play", "experiment=Ant"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == (
        "Error: No display for the player window; use headless=True (with video=True to record), "
        "or run under Xvfb / with QT_QPA_PLATFORM=offscreen."
    )


@pytest.mark.slow
def test_evaluation_writes_the_returns_of_games_num_episodes(trained_runs):
    parent, runs = trained_runs
    run = runs["Cartpole"]
    result = run_cli("mode=play", f"experiment={run.name}", "games_num=5", "num_envs=2", "sim_device=cpu",
                     "rl_device=cpu", cwd=parent)  # fmt: skip
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-2000:]
    (csv_path,) = (run.root / "eval").glob("returns_epoch3_*.csv")
    rows = csv_path.read_text().splitlines()
    assert rows[0] == "episode,return" and [r.split(",")[0] for r in rows[1:]] == ["1", "2", "3", "4", "5"]
    mean = sum(float(r.split(",")[1]) for r in rows[1:]) / 5
    assert f"5 episodes, mean return {mean:.2f}; returns written to " in result.stdout


@pytest.mark.slow
def test_headless_video_records_mp4_clips(trained_runs):
    parent, runs = trained_runs
    run = runs["Cartpole"]
    player = start_cli("mode=play", f"experiment={run.name}", "headless=True", "video=True", "video_length=30",
                       "num_envs=2", "sim_device=cpu", "rl_device=cpu", cwd=parent)  # fmt: skip
    deadline = time.monotonic() + 60
    while len(list((run.root / "videos").glob("*.mp4"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)  # 30 frames at 60 fps: let the next clip start so the first one is closed
    player.send_signal(signal.SIGINT)
    out, _ = player.communicate(timeout=60)
    assert player.returncode == 0 and "Traceback" not in out, out[-2000:]
    clips = sorted((run.root / "videos").glob("*.mp4"))
    assert len(clips) >= 2 and all("_epoch3" in c.name for c in clips)
    first = clips[0].read_bytes()
    assert first[4:8] == b"ftyp" and len(first) > 1000  # a complete MP4 container
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(clips[0]))
    meta = next(reader)
    frames = sum(1 for _ in reader)
    # Cartpole steps at 60 Hz: video_fps=30 (the default) takes every other step and plays in real time.
    assert meta["fps"] == 30 and frames == 30, (meta, frames)
    # Ctrl+C ended the last clip mid-recording: it is still a finished, readable MP4.
    last = imageio_ffmpeg.read_frames(str(clips[-1]))
    assert next(last)["fps"] == 30 and 0 < sum(1 for _ in last) <= 30


@pytest.mark.slow
def test_evaluation_scores_the_checkpoint_from_the_first_step(trained_runs, make_cfg, monkeypatch):
    """games_num waits for the checkpoint: before, the envs stepped with zero actions while it loaded."""
    from isaacgymenvs.player import follower
    from isaacgymenvs.player.headless import run_headless
    from isaacgymenvs.player.play import build_core, with_run_config

    _, runs = trained_runs
    run = runs["Ant"]
    real_load = protocol.load_checkpoint

    def slow_load(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        time.sleep(0.3)  # a large checkpoint, a slow disk
        return real_load(*args, **kwargs)

    monkeypatch.setattr(follower.protocol, "load_checkpoint", slow_load)
    cfg = with_run_config(make_cfg("Ant", "mode=play", "num_envs=2"), run, task_given=True)
    core = build_core(cfg, run, use_events=False, log=lambda _: None)
    loaded_at_step = []
    act = core.policy.act
    monkeypatch.setattr(core.policy, "act", lambda obs: (loaded_at_step.append(core.policy.loaded), act(obs))[1])
    core.follower.start()
    try:
        run_headless(core, games_num=1, eval_dir=run.root / "eval")
    finally:
        core.follower.stop()
    assert loaded_at_step and all(loaded_at_step)

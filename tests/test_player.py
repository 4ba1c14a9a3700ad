"""The player: following runs, state-file fuzzing through the follower, bad checkpoints, live reload, screenshot."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from isaacgymenvs import protocol
from isaacgymenvs.protocol import CheckpointRejected
from tests.conftest import CARTPOLE, Lines, cli_env, run_cli, spawn, start_cli


def test_a_partial_name_switches_to_a_newer_run_and_an_exact_name_never_does(tmp_path):
    from isaacgymenvs.player import runs as player_runs

    def new_run(name):
        (tmp_path / name / "nn").mkdir(parents=True)
        (tmp_path / name / "params").mkdir()
        (tmp_path / name / "params" / "config.yaml").write_text("{}")

    new_run("Cartpole_2026-01-01_00-00-00")
    (tmp_path / "Cartpole_2026-03-01_00-00-00" / "nn").mkdir(parents=True)  # newer, but no config yet
    logs = []
    partial, exact = (
        player_runs.RunFinder(tmp_path, "Cart", logs.append),
        player_runs.RunFinder(tmp_path, "Cartpole_2026-01-01_00-00-00", logs.append),
    )
    assert partial.find().run.name == exact.find().run.name == "Cartpole_2026-01-01_00-00-00"
    partial.watch(partial.find())
    exact.watch(exact.find())
    try:
        new_run("Cartpole_2026-02-01_00-00-00")
        deadline = time.monotonic() + 10
        while partial.newer is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert partial.newer.run.name == "Cartpole_2026-02-01_00-00-00"
        assert logs == ["A newer run matching 'Cart' started: switching to Cartpole_2026-02-01_00-00-00"]
        time.sleep(2.5 * player_runs.POLL_SECONDS)
        assert exact.newer is None
    finally:
        partial.stop()
        exact.stop()


# --- state file ----------------------------------------------------------------------------------


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

    follower = CheckpointFollower(run, CARTPOLE, 30.0, use_events=False, log=lambda msg: None)
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
            protocol.load_checkpoint(tmp_path / name, CARTPOLE)

    class Evil:
        def __reduce__(self):
            return (os.system, ("touch pwned",))

    torch.save({"model": {}, "x": Evil()}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointRejected, match="torn or not a checkpoint"):
        protocol.load_checkpoint(tmp_path / "evil.pth", CARTPOLE)
    assert not Path("pwned").exists()

    with pytest.raises(CheckpointRejected, match="belongs to task Ant, not Cartpole"):
        protocol.load_checkpoint(runs["Ant"].latest_checkpoint, CARTPOLE)
    ant = torch.load(runs["Ant"].latest_checkpoint, weights_only=True)
    del ant["metadata"]  # an rl_games checkpoint without our metadata: shapes decide
    torch.save(ant, tmp_path / "ant_plain.pth")
    with pytest.raises(CheckpointRejected, match="60 observations and 8 actions; Cartpole needs 4 and 1"):
        protocol.load_checkpoint(tmp_path / "ant_plain.pth", CARTPOLE)
    info = protocol.load_checkpoint(good, CARTPOLE)
    assert info.epoch == 3 and info.task == "Cartpole"
    assert not any(k.startswith("_orig_mod.") for k in torch.load(good, weights_only=True)["model"])

    # rl_games' own save of a torch_compile'd model prefixes every key: still the same weights.
    compiled = torch.load(good, weights_only=True)
    compiled["model"] = {f"_orig_mod.{k}": v for k, v in compiled["model"].items()}
    torch.save(compiled, tmp_path / "compiled.pth")
    info_compiled = protocol.load_checkpoint(tmp_path / "compiled.pth", CARTPOLE)
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
        # rl_games' own file: its reward (only in the name) reaches the HUD and the status the panel shows.
        reward = float(periodic.name.split("_rew_")[1].strip("_.pth"))
        assert f"training reward {reward:.1f}" in core.hud_lines()[1]
        step_until(core, lambda: (protocol.read_status(run) or {}).get("mode") == "manual")  # written by the follower
        assert protocol.read_status(run)["reward"] == pytest.approx(reward)
        protocol.write_state(run, "auto")
        step_until(core, lambda: core.follower.loaded.path.name == "latest.pth", timeout=5)
    finally:
        core.follower.stop()


# --- live: a real trainer and a real player --------------------------------------------------------


@pytest.mark.slow
def test_player_reloads_while_the_trainer_publishes(tmp_path):
    # Trains only until the player has swapped in three policies, then stops the trainer (SIGTERM
    # publishes its last epoch) and checks the player ends on exactly that one.
    player = start_cli("mode=play", "experiment=live", "headless=True", "num_envs=2", "checkpoint_reload_interval=1",
                       "sim_device=cpu", "rl_device=cpu", cwd=tmp_path)  # fmt: skip
    lines = Lines(player)
    lines.wait_for("Waiting for a run matching 'live'", 60)
    trainer = start_cli("task=Cartpole", "num_envs=32", "max_iterations=100000", "checkpoint_save_freq=5",
                        "sim_device=cpu", "rl_device=cpu", "experiment=live", cwd=tmp_path,
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip

    def next_loaded_epoch() -> int:
        return int(re.search(r"\(epoch (\d+)", lines.wait_for("Loaded latest.pth (epoch", 120))[1])

    epochs = [next_loaded_epoch() for _ in range(3)]
    trainer.send_signal(signal.SIGTERM)
    assert trainer.wait(timeout=60) == 128 + signal.SIGTERM
    (manifest,) = tmp_path.glob("runs/live_*/nn/latest.json")
    final = json.loads(manifest.read_text())["epoch"]
    while epochs[-1] != final:
        epochs.append(next_loaded_epoch())
    assert epochs == sorted(set(epochs)), epochs  # each policy once, never an older one after a newer
    player.send_signal(signal.SIGINT)
    assert player.wait(timeout=30) == 0
    assert "Traceback" not in lines.rest()


# --- what a person sees ----------------------------------------------------------------------------


@pytest.mark.slow
def test_player_started_first_waits_then_follows_and_moves_to_a_newer_run(tmp_path):
    # Two terminals opened in the natural order: the player first, then the trainer; later a rerun.
    player = start_cli("mode=play", "experiment=Cart", "headless=True", "num_envs=2", "checkpoint_reload_interval=1",
                       "sim_device=cpu", "rl_device=cpu", cwd=tmp_path)  # fmt: skip
    lines = Lines(player)
    assert lines.wait_for("Waiting", 60) == "Waiting for a run matching 'Cart' in runs/ ..."
    train = ("task=Cartpole", "num_envs=32", "max_iterations=6", "checkpoint_save_freq=2", "sim_device=cpu",
             "rl_device=cpu")  # fmt: skip
    assert run_cli(*train, cwd=tmp_path, timeout=120).returncode == 0
    (first,) = (tmp_path / "runs").iterdir()
    playing = lines.wait_for("Playing run", 60)
    assert playing.startswith(f"Playing run {first.name} (newest run whose name starts with 'Cart'; 0 other runs")
    lines.wait_for("Loaded latest.pth (epoch 6", 60)
    assert run_cli(*train, cwd=tmp_path, timeout=120).returncode == 0
    (second,) = {p.name for p in (tmp_path / "runs").iterdir()} - {first.name}
    assert lines.wait_for("A newer run", 30) == f"A newer run matching 'Cart' started: switching to {second}"
    assert lines.wait_for("Playing run", 60).startswith(f"Playing run {second} (newest run whose name starts with "
                                                        f"'Cart'; 1 other run matched: {first.name})")  # fmt: skip
    lines.wait_for("Loaded latest.pth (epoch 6", 60)
    status = lambda: protocol.read_status(protocol.RunDir(tmp_path / "runs" / second)) or {}  # noqa: E731
    deadline = time.monotonic() + 10
    while status().get("phase") != "loaded" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert status().get("phase") == "loaded"
    player.send_signal(signal.SIGTERM)
    assert player.wait(timeout=30) == 0


def test_window_screenshot_shows_the_robots(trained_runs, tmp_path):
    pytest.importorskip("PySide6")
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ.setdefault("MUJOCO_GL", "egl")
    import numpy as np
    from PIL import Image
    from PySide6.QtWidgets import QApplication

    from isaacgymenvs.player.render import MultiEnvRenderer
    from isaacgymenvs.player.window import PlayerWindow

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
    env = cli_env(DISPLAY=None, WAYLAND_DISPLAY=None, QT_QPA_PLATFORM=None)
    result = run_cli("mode=play", "experiment=Ant", "viewer=window", cwd=tmp_path, env=env, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == (  # a newcomer on a server: the page is the way to watch there
        "Error: No display for the player window; use viewer=web (the page, from a laptop through ssh -L) or "
        "headless=True (video=True records), or run under Xvfb / with QT_QPA_PLATFORM=offscreen."
    )


def test_the_waiting_hint_names_the_task_that_was_given(tmp_path):
    from isaacgymenvs.player.runs import RunFinder

    assert RunFinder(tmp_path, "my_ant", task="Ant").trainer_command == (
        "python isaacgymenvs/train_play.py task=Ant experiment=my_ant"
    )
    assert "task=<Task> experiment=my_ant" in RunFinder(tmp_path, "my_ant").trainer_command


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
    # As on a fresh headless machine: no display and no MUJOCO_GL; the player picks EGL by itself.
    env = cli_env(MUJOCO_GL=None, PYOPENGL_PLATFORM=None, DISPLAY=None, WAYLAND_DISPLAY=None)
    player = start_cli("mode=play", f"experiment={run.name}", "headless=True", "video=True", "video_length=30",
                       "num_envs=2", "sim_device=cpu", "rl_device=cpu", cwd=parent, env=env)  # fmt: skip
    deadline = time.monotonic() + 60
    while len(list((run.root / "videos").glob("*.mp4"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)  # 30 frames at 60 fps: let the next clip start so the first one is closed
    player.send_signal(signal.SIGTERM)  # what `kill` sends: as clean as Ctrl+C
    out, _ = player.communicate(timeout=60)
    assert player.returncode == 0 and "Traceback" not in out and "Player stopped." in out, out[-2000:]
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
    # SIGTERM ended the last clip mid-recording: it is still a finished, readable MP4.
    last = imageio_ffmpeg.read_frames(str(clips[-1]))
    assert next(last)["fps"] == 30 and 0 < sum(1 for _ in last) <= 30


@pytest.mark.slow
def test_the_window_player_says_it_stopped_like_the_others(trained_runs):
    parent, runs = trained_runs
    env = cli_env(QT_QPA_PLATFORM="offscreen", DISPLAY=None, WAYLAND_DISPLAY=None)
    player = start_cli("mode=play", f"experiment={runs['Cartpole'].name}", "viewer=window", "num_envs=2",
                       "sim_device=cpu", "rl_device=cpu", cwd=parent, env=env)  # fmt: skip
    lines = Lines(player)
    lines.wait_for("Loaded ", 120)
    player.send_signal(signal.SIGTERM)
    out = lines.rest(60)
    assert player.wait(30) == 0 and out.splitlines()[-1] == "Player stopped.", out[-2000:]


@pytest.mark.slow
def test_task_alone_plays_that_tasks_newest_run(trained_runs):
    """The README's table says an empty experiment means the task's name; play refused that before."""
    parent, runs = trained_runs
    result = run_cli("mode=play", "task=Cartpole", "games_num=1", "num_envs=2", "sim_device=cpu", "rl_device=cpu",
                     cwd=parent, timeout=180)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"Playing run {runs['Cartpole'].name}" in result.stdout


@pytest.mark.slow
def test_video_clips_are_announced_and_only_the_newest_are_kept(trained_runs):
    """video=True wrote a ~1 MB clip every ~20 s until stopped, and said nothing."""
    parent, runs = trained_runs
    run = runs["Cartpole"]
    for old in (run.root / "videos").glob("*.mp4"):
        old.unlink()
    player = start_cli("mode=play", f"experiment={run.name}", "headless=True", "video=True", "video_length=30",
                       "video_max_clips=2", "num_envs=2", "sim_device=cpu", "rl_device=cpu", cwd=parent,
                       env=cli_env(DISPLAY=None, WAYLAND_DISPLAY=None))  # fmt: skip
    lines = Lines(player)
    for _ in range(4):  # each clip is announced when it is written
        lines.wait_for("Wrote ", 60)
    player.send_signal(signal.SIGTERM)
    lines.rest(60)
    clips = sorted((run.root / "videos").glob("*.mp4"))
    assert 1 <= len(clips) <= 2, [c.name for c in clips]  # the older ones were deleted


def test_waiting_window_says_what_it_waits_for_in_a_box_as_wide_as_its_text(qtbot, tmp_path):
    import numpy as np

    from isaacgymenvs.player.runs import RunFinder
    from isaacgymenvs.player.window import WaitingWindow

    experiment = "Ant_with_a_rather_long_experiment_name_that_makes_the_line_wider_than_the_old_box"
    window = WaitingWindow(RunFinder("runs", experiment))
    qtbot.addWidget(window)
    window.resize(1400, 300)
    window.show()
    assert window.hud_lines()[0] == f"Waiting for a run matching '{experiment}' in runs/ ..."
    image = window.grab().toImage()
    image.save(str(tmp_path / "waiting.png"))
    pixels = np.array([[image.pixelColor(x, y).red() for x in range(image.width())] for y in range(0, 60)])
    text_right = max(x for x in range(pixels.shape[1]) if (pixels[:, x] > 200).any())
    box_right = max(x for x in range(pixels.shape[1]) if pixels[10, x] < 20)  # the darkened box, background is 30
    assert text_right > 760 and box_right > text_right  # the old fixed 760-pixel box cut this line
    # The run appears: the window closes and hands it over.
    run = protocol.create_run_dir(tmp_path / "runs", experiment)
    run.config_file.write_text("{}")
    window.finder.train_dir = tmp_path / "runs"
    qtbot.waitUntil(lambda: window.found is not None, timeout=5000)
    assert window.found.run == run and not window.isVisible()


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("Xvfb") is None, reason="needs Xvfb (README: system packages)")
def test_window_opens_on_a_real_x_server_and_sigterm_closes_it(trained_runs):
    # Qt's real xcb platform, not offscreen: proves the README's system packages are enough.
    parent, runs = trained_runs
    number = 90 + os.getpid() % 100
    xvfb = spawn(["Xvfb", f":{number}", "-screen", "0", "1280x800x24", "-nolisten", "tcp"], cwd=parent,
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 20
    while not Path(f"/tmp/.X11-unix/X{number}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    env = cli_env(DISPLAY=f":{number}", QT_QPA_PLATFORM=None, MUJOCO_GL=None, PYOPENGL_PLATFORM=None)
    player = start_cli("mode=play", f"experiment={runs['Cartpole'].name}", "num_envs=2", "sim_device=cpu",
                       "rl_device=cpu", cwd=parent, env=env)  # fmt: skip
    lines = Lines(player)
    lines.wait_for("Loaded latest.pth (epoch 3", 60)
    time.sleep(1.0)  # some frames on screen
    player.send_signal(signal.SIGTERM)
    assert player.wait(timeout=30) == 0
    out = lines.rest()
    assert "Traceback" not in out and "could not load the Qt platform plugin" not in out
    xvfb.terminate()


@pytest.mark.slow
def test_a_restarted_player_says_it_keeps_an_earlier_manual_choice(trained_runs, tmp_path):
    parent, runs = trained_runs
    root = tmp_path / "runs" / runs["Cartpole"].name
    shutil.copytree(runs["Cartpole"].root, root)  # the module's runs stay in auto for other tests
    run = protocol.RunDir(root)
    periodic = next(run.nn.glob("last_Cartpole_ep_3_*.pth"))
    protocol.write_state(run, "manual", f"nn/{periodic.name}")
    result = run_cli("mode=play", f"experiment={run.name}", "games_num=2", "num_envs=2", "sim_device=cpu",
                     "rl_device=cpu", cwd=tmp_path, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert (
        f"Starting in manual mode: showing nn/{periodic.name}, chosen earlier in runs/{run.name}/"
        ".checkpoint_state.json; to follow latest.pth again press Auto in the control panel" in result.stdout
    )
    loaded = [line for line in result.stdout.splitlines() if line.startswith("Loaded ")]
    assert loaded and all(periodic.name in line for line in loaded)  # never latest.pth first


def test_q_moves_the_camera_up_and_e_down_as_in_the_seed():
    pytest.importorskip("PySide6")
    from PySide6.QtCore import Qt

    from isaacgymenvs.player.window import MOVE_KEYS

    assert MOVE_KEYS[Qt.Key_Q] == (0, 0, 1) and MOVE_KEYS[Qt.Key_E] == (0, 0, -1)


@pytest.mark.slow
def test_evaluation_scores_the_checkpoint_from_the_first_step(trained_runs, make_cfg, monkeypatch):
    """games_num waits for the checkpoint: before, the envs stepped with zero actions while it loaded."""
    from isaacgymenvs.player import follower
    from isaacgymenvs.player.headless import run_headless
    from isaacgymenvs.player.play import build_core, with_run_config

    _, runs = trained_runs
    run = runs["Ant"]
    real_load, slow_loads = protocol.load_checkpoint, []

    def slow_load(*args, **kwargs):
        slow_loads.append(args[0])
        time.sleep(0.3)  # a large checkpoint, a slow disk
        return real_load(*args, **kwargs)

    # where the follower's loads look it up: the package, and the checkpoints module (load_checkpoint_in_run)
    monkeypatch.setattr(follower.protocol, "load_checkpoint", slow_load)
    monkeypatch.setattr(follower.protocol.checkpoints, "load_checkpoint", slow_load)
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
    assert slow_loads and loaded_at_step and all(loaded_at_step)


def test_an_idle_follower_with_a_state_file_does_not_spin(run, monkeypatch):
    """Reading the state file raises inotify open/close events; reacting to those made the follower
    read it ~4,500 times a second (a whole core) once any panel had written it."""
    import resource

    from isaacgymenvs.player import follower as follower_module

    protocol.write_state(run, "auto")
    reads, real_read = [], protocol.read_state
    monkeypatch.setattr(follower_module.protocol, "read_state", lambda r: (reads.append(1), real_read(r))[1])
    follower = follower_module.CheckpointFollower(run, CARTPOLE, 30.0, use_events=True, log=lambda m: None)
    follower.start()
    try:
        time.sleep(1.0)
        before, count, start = resource.getrusage(resource.RUSAGE_SELF), len(reads), time.monotonic()
        time.sleep(3.0)
        after, seconds = resource.getrusage(resource.RUSAGE_SELF), time.monotonic() - start
        cores = (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / seconds
        reads_per_s = (len(reads) - count) / seconds
    finally:
        follower.stop()
    assert reads_per_s < 5, f"{reads_per_s:.0f} state-file reads per second (the poll is 2)"
    assert cores < 0.05, f"an idle follower used {cores:.2f} cores"


def test_only_events_that_change_a_file_wake_a_watcher():
    assert all(protocol.is_change_event(t) for t in ("created", "modified", "moved", "deleted", "closed"))
    assert not any(protocol.is_change_event(t) for t in ("opened", "closed_no_write", "attrib"))


def test_a_player_with_defaults_says_where_its_physics_and_policy_run(tmp_path):
    player = start_cli("mode=play", "experiment=nothing_yet", "headless=True", cwd=tmp_path)
    lines = Lines(player)
    line = lines.wait_for("Player physics", 60)
    assert line.startswith("Player physics and policy on the CPU (4 envs")
    lines.wait_for("Waiting for a run matching 'nothing_yet'", 30)
    player.send_signal(signal.SIGINT)
    assert player.wait(timeout=30) == 0

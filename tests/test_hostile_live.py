"""Hostile inputs against running processes: the follower thread, a real trainer publishing while a
headless player and the panel's catalogue are fed hostile files, a full disk (tmpfs), resuming
from untrusted checkpoints, and command-line values that must be refused in one sentence.

Every process a test starts is killed in a finally block, pass or fail.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import math
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from isaacgymenvs import protocol
from tests.conftest import CARTPOLE, REPO, run_cli, start_cli
from tests.test_hostile_inputs import GOOD_MODEL

CPU = ("sim_device=cpu", "rl_device=cpu")


def stop(proc: subprocess.Popen | None, timeout: float = 30) -> str:
    """End a process we started (SIGINT, then SIGKILL); returns what it printed."""
    if proc is None:
        return ""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate(timeout=30)
    return out or ""


def wait_for(condition, timeout: float, what: str, proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process ended (rc {proc.returncode}) while waiting for {what}")
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


# --- the follower thread, in process -------------------------------------------------------------


def synthetic_run(tmp_path: Path, epoch: int = 1) -> protocol.RunDir:
    run = protocol.create_run_dir(tmp_path / "runs", "Cartpole")
    torch.save({"model": GOOD_MODEL, "metadata": {"task": "Cartpole", "epoch": epoch}}, run.latest_checkpoint)
    return run


def make_follower(run: protocol.RunDir, messages: list[str]):
    from isaacgymenvs.player.follower import CheckpointFollower

    return CheckpointFollower(run, CARTPOLE, 0.2, use_events=False, log=messages.append)


def test_latest_link_out_of_the_run_is_refused_and_the_policy_kept(tmp_path):
    run = synthetic_run(tmp_path)
    messages: list[str] = []
    follower = make_follower(run, messages)
    follower.start()
    try:
        wait_for(follower.take_ready, 5, "the first load")
        outside = tmp_path / "outside.pth"
        torch.save({"model": GOOD_MODEL, "metadata": {"task": "Cartpole", "epoch": 99}}, outside)
        run.latest_checkpoint.unlink()
        run.latest_checkpoint.symlink_to(outside)
        wait_for(lambda: follower.error, 5, "a refusal")
        assert follower.error == "latest.pth is a symbolic link, which is not followed"
        assert follower.take_ready() is None
        wait_for(lambda: (protocol.read_status(run) or {}).get("phase") == "failed", 5, "the status")
    finally:
        follower.stop()


def test_auto_pressed_while_latest_is_refused_says_so_and_what_is_still_shown(tmp_path):
    run = synthetic_run(tmp_path)
    torch.save({"model": GOOD_MODEL, "metadata": {"task": "Cartpole", "epoch": 2}}, run.nn / "m2.pth")
    run.latest_checkpoint.write_bytes(b"PK\x03\x04 torn")
    messages: list[str] = []
    follower = make_follower(run, messages)
    follower.start()
    try:
        wait_for(lambda: follower.error, 5, "latest.pth refused in auto")
        protocol.write_state(run, "manual", "nn/m2.pth")
        follower.applied(wait_for(follower.take_ready, 5, "m2.pth"))
        wait_for(lambda: (protocol.read_status(run) or {}).get("phase") == "loaded", 5, "m2.pth shown")
        protocol.write_state(run, "auto")  # the panel's Auto while latest.pth is still the refused file
        error = wait_for(lambda: (protocol.read_status(run) or {}).get("error"), 5, "the refusal in the status")
        assert error.startswith("auto: latest.pth refused: latest.pth is torn or not a checkpoint"), error
        assert error.endswith("; still showing m2.pth"), error
        status = protocol.read_status(run)
        assert (status["phase"], status["mode"], status["checkpoint"]) == ("failed", "auto", "m2.pth")
    finally:
        follower.stop()


def test_manual_choice_of_a_missing_checkpoint_is_a_warning(tmp_path):
    run = synthetic_run(tmp_path)
    messages: list[str] = []
    follower = make_follower(run, messages)
    follower.start()
    try:
        protocol.state_file(run).write_text('{"mode": "manual", "checkpoint": "nn/gone.pth", "seq": 3}')
        status = wait_for(lambda: (protocol.read_status(run) or {}).get("state_file_warning"), 5, "a warning")
        assert status == ".checkpoint_state.json names 'nn/gone.pth', which does not exist"
        assert any("Ignoring the state file" in m for m in messages)
    finally:
        follower.stop()


def test_an_unforeseen_error_does_not_stop_the_follower(tmp_path, monkeypatch):
    run = synthetic_run(tmp_path)
    messages: list[str] = []

    def broken(*args, **kwargs):
        raise MemoryError("a hostile file asked for too much")

    monkeypatch.setattr(protocol, "load_checkpoint_in_run", broken)
    follower = make_follower(run, messages)
    follower.start()
    try:
        first = wait_for(lambda: (protocol.read_status(run) or {}).get("heartbeat"), 5, "a status")
        wait_for(lambda: (protocol.read_status(run) or {}).get("heartbeat", 0) > first, 5, "the next heartbeat")
        status = protocol.read_status(run)
        assert status["follower_alive"] is True and status["phase"] == "failed"
        assert "internal error while following (MemoryError: a hostile file asked for too much)" in status["error"]
        monkeypatch.undo()
        os.utime(run.latest_checkpoint)  # a new version of the file: loaded as usual
        wait_for(follower.take_ready, 5, "a load once the error is gone")
    finally:
        follower.stop()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the death is on purpose
def test_a_dead_follower_thread_is_reported_not_hidden(tmp_path, monkeypatch):
    run = synthetic_run(tmp_path)
    messages: list[str] = []
    follower = make_follower(run, messages)

    def die() -> None:
        raise SystemExit("killed from outside")  # not an Exception: escapes the per-step guard

    monkeypatch.setattr(follower, "_follow", die)
    follower.start()
    try:
        wait_for(lambda: not follower.alive, 5, "the thread to die")
        assert follower.check_alive() is False
        status = protocol.read_status(run)
        assert status["follower_alive"] is False and status["phase"] == "failed"
        assert (
            status["error"] == "the checkpoint follower stopped (SystemExit: killed from outside); restart the player"
        )
        assert any(m.startswith("Error: the checkpoint follower stopped") for m in messages)
        time.sleep(1.1)
        follower.check_alive()  # the render loop keeps the heartbeat going in its place
        assert protocol.read_status(run)["heartbeat"] > status["heartbeat"]
    finally:
        follower.stop()


def cartpole_policy():
    from omegaconf import OmegaConf

    from isaacgymenvs.config import load_config
    from isaacgymenvs.policy import Policy

    cfg = load_config(["task=Cartpole", *CPU])
    return Policy(OmegaConf.to_container(cfg.train, resolve=True), 4, 1, "cpu", stochastic=True)


def test_a_refused_state_dict_leaves_the_policy_whole_and_actions_stay_finite():
    policy = cartpole_policy()
    good = {k: torch.full_like(v, 0.5) for k, v in policy.model.state_dict().items()}
    policy.load(good)
    bad = {k: (torch.zeros(3) if k.endswith("mu.weight") else torch.full_like(v, 9.0)) for k, v in good.items()}
    with pytest.raises(RuntimeError):
        policy.load(bad)  # load_state_dict copies what fits before it raises: those copies are undone
    assert all(torch.equal(v, good[k]) for k, v in policy.model.state_dict().items())
    huge = {k: torch.full_like(v, 3e38) if v.is_floating_point() else v for k, v in good.items()}
    with pytest.raises(RuntimeError, match="not finite"):  # finite weights, but the std overflows
        policy.load(huge, probe_obs=torch.ones(5, 4))
    assert all(torch.equal(v, good[k]) for k, v in policy.model.state_dict().items())
    policy.load(huge)  # without a probe it loads: acting must still neither raise nor return NaN
    actions = policy.act(torch.ones(5, 4))
    assert bool(torch.isfinite(actions).all()) and actions.shape == (5, 1)


@pytest.mark.parametrize("make", ["fifo", "huge", "not yaml"])
def test_a_hostile_params_file_is_one_sentence_for_player_and_panel(tmp_path, make):
    run = protocol.create_run_dir(tmp_path / "runs", "Cartpole")
    if make == "fifo":
        os.mkfifo(run.config_file)
    elif make == "huge":
        run.config_file.write_bytes(b"#" * (protocol.CONFIG_MAX_BYTES + 1))
    else:
        run.config_file.write_text("- just\n- a list\n")
    player = run_cli("mode=play", f"experiment={run.name}", "headless=True", *CPU, cwd=tmp_path, timeout=120)
    script = REPO / "isaacgymenvs" / "checkpoint_control_panel.py"
    args = [sys.executable, str(script), f"--experiment={run.name}", f"--train_dir={tmp_path / 'runs'}"]
    panel = subprocess.run(args, capture_output=True, text=True, timeout=120)
    for result in (player, panel):
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
        assert result.stderr.strip().startswith("Error: Run ") and "params/config.yaml" in result.stderr


# --- live: trainer + headless player + catalogue, fed hostile files ------------------------------


def hostile_states(run: protocol.RunDir, outside: Path, trained: Path) -> list[tuple[str, object, str]]:
    """(name, how to plant it, what the player's status must say)."""
    nan = run.nn / "nan_weights.pth"
    model = protocol.model_weights(protocol.read_checkpoint_dict(trained), trained.name)  # fits the network
    model["a2c_network.mu.weight"] = torch.full_like(model["a2c_network.mu.weight"], math.nan)
    torch.save({"model": model}, nan)
    (run.nn / "link_out.pth").symlink_to(outside)
    state = protocol.state_file(run)

    def text(raw: str):
        return lambda: protocol.atomic_write_bytes(state, raw.encode())

    def fifo() -> None:
        state.unlink(missing_ok=True)
        os.mkfifo(state)

    return [
        ("deep nesting", text("[" * 20_000 + "]" * 20_000), "nested deeper than 16 levels"),
        ("fifo", fifo, "is not a regular file"),
        ("huge", text(" " * 5_000_000), "more than the 65536 allowed"),
        ("missing", text('{"mode": "manual", "checkpoint": "nn/gone.pth", "seq": 90}'), "does not exist"),
        ("long", text('{"mode": "manual", "checkpoint": "nn/' + "x" * 5000 + '.pth", "seq": 91}'), "at most 1024"),
        ("link out", text('{"mode": "manual", "checkpoint": "nn/link_out.pth", "seq": 92}'), "symbolic link"),
        ("nan", text('{"mode": "manual", "checkpoint": "nn/nan_weights.pth", "seq": 93}'), "non-finite values"),
    ]


@pytest.mark.slow
def test_player_and_panel_stay_alive_while_fed_hostile_files(tmp_path):
    from isaacgymenvs.panel.catalog import CheckpointCatalog

    outside = tmp_path / "outside.pth"
    torch.save({"model": GOOD_MODEL}, outside)
    trainer = player = None
    log = open(tmp_path / "player.log", "w+")  # a file, not a pipe: a full pipe would block it
    try:
        trainer = start_cli("task=Cartpole", "num_envs=32", "max_iterations=100000", "checkpoint_save_freq=10",
                            "train.params.config.save_frequency=20", "experiment=hostile", *CPU, cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        periodic = wait_for(lambda: next(tmp_path.glob("runs/hostile_*/nn/last_*_ep_20_*.pth"), None), 180,
                            "a periodic checkpoint", trainer)  # fmt: skip
        run = protocol.RunDir(periodic.parent.parent)
        protocol.write_state(run, "manual", f"nn/{periodic.name}")  # a fixed epoch while hostile files come
        player = start_cli("mode=play", "experiment=hostile", "headless=True", "num_envs=2",
                           "checkpoint_reload_interval=1", *CPU, cwd=tmp_path, stdout=log)  # fmt: skip
        wait_for(lambda: (protocol.read_status(run) or {}).get("checkpoint") == periodic.name, 120, "a load", player)
        catalog = CheckpointCatalog(run, CARTPOLE)
        for name, plant, expected in hostile_states(run, outside, periodic):
            heartbeat = (protocol.read_status(run) or {}).get("heartbeat", 0)
            plant()

            def said(expected=expected):
                status = protocol.read_status(run) or {}
                return expected in f"{status.get('state_file_warning')} {status.get('error')}" and status

            status = wait_for(said, 20, f"the player to report {name}", player)
            wait_for(lambda h=heartbeat: (protocol.read_status(run) or {}).get("heartbeat", 0) > h + 1.5, 20,
                     f"the heartbeat to tick with {name}", player)  # fmt: skip
            assert status["follower_alive"] is True and status["checkpoint"] == periodic.name, (name, status)
            assert status["epoch"] == 20, (name, status)  # the last good policy stays
            entries = {e.name: e for e in catalog.scan()}
            assert entries[periodic.name].problem is None and entries["latest.pth"].problem is None
        assert "non-finite" in entries["nan_weights.pth"].problem
        assert "link_out.pth is a symbolic link, which is not followed" in entries["link_out.pth"].problem
        protocol.write_state(run, "auto")  # a good file returns: the player follows the trainer again
        wait_for(lambda: (protocol.read_status(run) or {}).get("epoch", 0) > 20, 60, "a newer epoch", player)
        first = protocol.read_status(run)["epoch"]
        wait_for(lambda: (protocol.read_status(run) or {}).get("epoch", 0) > first, 60, "epochs advancing", player)
        status = protocol.read_status(run)
        assert status["error"] is None and status["state_file_warning"] is None and status["mode"] == "auto"
    finally:
        stop(player)
        stop(trainer)
        log.seek(0)
        out = log.read()
        log.close()
    assert "Traceback" not in out, out[-3000:]
    assert "Ignoring the state file: .checkpoint_state.json is nested deeper than 16 levels" in out


# --- disk full ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str = "16m"):
    path.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                            capture_output=True, text=True)  # fmt: skip
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({result.stderr.strip() or result.returncode}): needs root")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill_disk(directory: Path) -> None:
    """Fill the file system to the last byte; one the trainer's own files already filled is fine."""
    try:
        f = open(directory / "filler", "wb")
    except OSError as err:
        if err.errno != errno.ENOSPC:
            raise
        return
    with f:
        with contextlib.suppress(OSError):
            while True:
                f.write(b"\0" * 65536)
                f.flush()


NO_RLGAMES_SAVES = ("train.params.config.save_frequency=0", "train.params.config.save_best_after=1000000")


@pytest.mark.slow
@pytest.mark.parametrize("rlgames_saves", [True, False], ids=["rl_games_saves", "only_publish_tensorboard_metrics"])
def test_disk_full_while_training_warns_keeps_latest_and_never_hangs(tmp_path, rlgames_saves):
    """With rl_games' own saves on, one of them meets the full disk and stops training clearly; with
    them off, publishing, TensorBoard and metrics.csv fail for dozens of epochs and training goes on."""
    extra = () if rlgames_saves else NO_RLGAMES_SAVES
    with small_tmpfs(tmp_path / "disk") as disk:
        trainer = None
        try:
            trainer = start_cli("task=Cartpole", "num_envs=32", "max_iterations=60", "checkpoint_save_freq=2",
                                f"train_dir={disk / 'runs'}", *extra, *CPU, cwd=tmp_path, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)  # fmt: skip
            latest = wait_for(lambda: next(disk.glob("runs/*/nn/latest.pth"), None), 120, "a publish", trainer)
            time.sleep(0.5)
            fill_disk(disk)
            before = latest.read_bytes()
            out, err = trainer.communicate(timeout=240)  # a hang would end here
        finally:
            if trainer is not None and trainer.poll() is None:
                trainer.kill()
                trainer.communicate(timeout=30)
        assert "Traceback" not in err + out, err[-3000:]
        assert f"Warning: could not publish {latest} (" in err and "training goes on" in err
        assert latest.read_bytes() == before and torch.load(latest, weights_only=True)["model"]
        assert not list(latest.parent.glob(protocol.TEMP_GLOB))
        if not rlgames_saves:
            assert "epoch 60/60" in out, out[-2000:]  # every epoch trained on the full disk
        if trainer.returncode == 1:  # an rl_games save (periodic, best or final) hit the full disk: a clear stop
            assert err.strip().splitlines()[-1].startswith("Error: Training stopped: could not save"), err[-2000:]
        else:
            assert trainer.returncode == 0 and "epoch 60/60" in out


# --- resuming from untrusted files -----------------------------------------------------------------


@pytest.fixture(scope="module")
def periodic_checkpoint(tmp_path_factory) -> Path:
    parent = tmp_path_factory.mktemp("resume")
    result = run_cli("task=Cartpole", "num_envs=32", "max_iterations=2", "train.params.config.save_frequency=1", *CPU,
                     cwd=parent)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    return next(parent.glob("runs/*/nn/last_Cartpole_ep_2_*.pth"))


class Pwn:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.slow
def test_resume_refuses_a_file_that_needs_full_unpickling(periodic_checkpoint, tmp_path):
    marker = tmp_path / "pwned"
    state = torch.load(periodic_checkpoint, weights_only=True)
    torch.save({**state, "env_state": Pwn(marker)}, tmp_path / "evil.pth")
    result = run_cli("task=Cartpole", "num_envs=32", "max_iterations=3", f"checkpoint={tmp_path / 'evil.pth'}", *CPU,
                     cwd=tmp_path)  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == (
        f"Error: checkpoint={tmp_path / 'evil.pth'} needs full unpickling, which can run code from the file; "
        "if you trust it, add trust_checkpoint=True."
    )
    assert not marker.exists() and not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_resume_with_trust_checkpoint_unpickles_a_trusted_file(periodic_checkpoint, tmp_path):
    state = torch.load(periodic_checkpoint, weights_only=True)
    torch.save({**state, "env_state": None, "args": argparse.Namespace(note="trusted")}, tmp_path / "trusted.pth")
    args = ("task=Cartpole", "num_envs=32", "max_iterations=3", f"checkpoint={tmp_path / 'trusted.pth'}", *CPU)
    refused = run_cli(*args, cwd=tmp_path)
    assert refused.returncode == 2 and "add trust_checkpoint=True" in refused.stderr
    resumed = run_cli(*args, "trust_checkpoint=True", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "epoch 3/3" in resumed.stdout


def test_rlgames_loader_is_weights_only_even_if_the_file_changes_after_the_check(tmp_path):
    """The config check and rl_games' load are separate reads: the load itself must be safe too."""
    from isaacgymenvs.errors import UserError
    from isaacgymenvs.trainer.rlgames_io import weights_only_loader

    marker = tmp_path / "pwned"
    torch.save({"model": GOOD_MODEL, "x": Pwn(marker)}, tmp_path / "swapped.pth")
    with pytest.raises(UserError, match="needs full unpickling.*trust_checkpoint=True"):
        weights_only_loader(trust=False)(str(tmp_path / "swapped.pth"))
    assert not marker.exists()
    (tmp_path / "torn.pth").write_bytes(b"PK\x03\x04 torn")
    for trust in (False, True):  # even a trusted file that is torn is one sentence, not a traceback
        with pytest.raises(UserError, match="torn.pth is torn or not a checkpoint"):
            weights_only_loader(trust=trust)(str(tmp_path / "torn.pth"))


# --- the command line ---------------------------------------------------------------------------------


def cli_cases(tmp_path: Path) -> list[tuple[list[str], str]]:
    (tmp_path / "afile").write_text("x")
    (tmp_path / "garbage.pth").write_bytes(os.urandom(2000))
    return [
        (["checkpoint_save_freq=abc"], "checkpoint_save_freq=abc must be a positive number of epochs."),
        (["checkpoint_save_freq=0"], "checkpoint_save_freq=0 must be a positive number of epochs."),
        (["max_iterations=abc"], "max_iterations=abc must be a positive number of epochs"),
        (
            ["checkpoint_reload_interval=abc"],
            "checkpoint_reload_interval=abc must be a number of seconds, at least 0.1.",
        ),
        (["checkpoint_reload_interval=0"], "checkpoint_reload_interval=0 must be a number of seconds, at least 0.1."),
        (["checkpoint_reload_interval=-1"], "checkpoint_reload_interval=-1 must be a number of seconds, at least 0.1."),
        (["checkpoint_reload_interval=1e-9"], "checkpoint_reload_interval=1e-09 must be a number of seconds"),
        (["games_num=-1"], "games_num=-1 must be a number of episodes (0: no evaluation)."),
        (["headless=maybe"], "headless=maybe must be True or False."),
        (["experiment=../x"], "experiment='../x' must be a name, not a path"),
        ([f"train_dir={tmp_path / 'afile' / 'runs'}"], "is not a directory"),
        (["mode=play", f"checkpoint={tmp_path / 'garbage.pth'}", "games_num=1"], "is not a usable checkpoint"),
    ]


# One case of each kind of check the command line goes through (a number, a name that is a path, a
# directory that is a file, a play-mode checkpoint), as a user runs it; every case of cli_cases is
# also checked in process below, where it costs milliseconds instead of a process start.
CLI_KINDS = ("checkpoint_save_freq=abc", "experiment=../x", "train_dir=", "mode=play")


@pytest.mark.slow
def test_cli_refuses_bad_values_in_one_sentence(tmp_path):
    cases = [case for case in cli_cases(tmp_path) if case[0][0].startswith(CLI_KINDS)]
    assert len(cases) == len(CLI_KINDS)
    with ThreadPoolExecutor(max_workers=2) as pool:  # two process starts at once: this machine's cores
        results = list(pool.map(lambda c: run_cli("task=Cartpole", *CPU, *c[0], cwd=tmp_path, timeout=120), cases))
    for (args, expected), result in zip(cases, results, strict=True):
        assert result.returncode == 2, (args, result.stderr[-2000:])
        assert "Traceback" not in result.stderr + result.stdout, args
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("Error: ") and expected in lines[0], (args, lines)
    assert not (tmp_path / "runs").exists() and not (tmp_path.parent / "x").exists()


def test_in_process_config_refusals_match_the_cli(tmp_path):
    """The same values through load_config (fast), so a regression shows without subprocesses."""
    from isaacgymenvs.config import load_config
    from isaacgymenvs.errors import UserError

    for args, expected in cli_cases(tmp_path):
        with pytest.raises(UserError) as err:
            load_config(["task=Cartpole", *CPU, *args])
        assert expected in str(err.value) and "\n" not in str(err.value), args


def test_panel_refuses_an_experiment_that_is_a_path(tmp_path):
    (tmp_path / "elsewhere_2026-01-01_00-00-00" / "nn").mkdir(parents=True)  # a run outside train_dir
    (tmp_path / "runs").mkdir()
    script = REPO / "isaacgymenvs" / "checkpoint_control_panel.py"
    args = [sys.executable, str(script), "--experiment=../elsewhere_2026-01-01_00-00-00", "--train_dir=runs"]
    result = subprocess.run(args, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().startswith("Error: experiment='../elsewhere_2026-01-01_00-00-00' must be a name")


def test_a_name_too_long_in_bytes_is_one_sentence_in_every_mode_and_the_panel(tmp_path):
    """64 emoji are 64 characters but 256 bytes: the run directory's name would not fit (ENAMETOOLONG)."""
    name = "\U0001f916" * 64
    commands = [[sys.executable, str(REPO / "isaacgymenvs" / "train_play.py"), "task=Cartpole", *CPU, f"mode={mode}",
                 f"experiment='{name}'"] for mode in ("train", "play", "export")]  # fmt: skip
    panel = REPO / "isaacgymenvs" / "checkpoint_control_panel.py"
    commands.append([sys.executable, str(panel), f"--experiment={name}"])
    for command in commands:
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp_path)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.returncode == 2 and "Traceback" not in result.stderr + result.stdout, result.stderr[-2000:]
        assert len(lines) == 1 and "is 256 bytes in UTF-8; a run name must fit the file system" in lines[0], lines
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_read_only_train_dir_is_one_sentence(tmp_path):
    with small_tmpfs(tmp_path / "ro", size="1m") as disk:
        remount = subprocess.run(["mount", "-o", "remount,ro", str(disk)], capture_output=True, text=True)
        if remount.returncode != 0:
            pytest.skip(f"cannot remount read-only here ({remount.stderr.strip()})")
        result = run_cli("task=Cartpole", *CPU, f"train_dir={disk / 'runs'}", cwd=tmp_path, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    expected = f"Error: train_dir={disk / 'runs'} is not writable ({disk} is read-only or not yours)."
    assert result.stderr.strip() == expected

"""Live checkpoint publishing: atomicity, SIGKILL torture, concurrent readers, write failures."""

from __future__ import annotations

import errno
import hashlib
import json
import re
import signal
import subprocess
import sys
import threading
import time

import pytest
import torch

from benchmarks.publish_torture import check_published, run_trials
from isaacgymenvs import protocol
from isaacgymenvs.errors import UserError
from isaacgymenvs.trainer.publisher import CheckpointObserver, CheckpointPublisher, to_plain_cpu
from tests.conftest import spawn, start_cli


@pytest.fixture
def run(tmp_path):
    return protocol.create_run_dir(tmp_path / "runs", "Cartpole")


def snapshot(value: float) -> tuple[dict, dict]:
    state = {"model": {"w": torch.full((64, 64), value)}, "epoch": int(value), "frame": 10 * int(value)}
    return state, {"format_version": 1, "epoch": int(value), "frame": 10 * int(value)}


def test_publish_writes_checkpoint_then_manifest(run):
    publisher = CheckpointPublisher(run)
    publisher.submit(*snapshot(3))
    publisher.close()
    data = run.latest_checkpoint.read_bytes()
    ckpt = torch.load(run.latest_checkpoint, weights_only=True)
    assert ckpt["metadata"]["epoch"] == 3 and torch.equal(ckpt["model"]["w"], torch.full((64, 64), 3.0))
    manifest = json.loads(run.latest_manifest.read_text())
    assert manifest["sha256"] == hashlib.sha256(data).hexdigest() and manifest["size"] == len(data)
    assert manifest["epoch"] == 3 and manifest["file"] == "latest.pth"
    assert not list(run.nn.glob(protocol.TEMP_GLOB))


def test_stale_temp_files_are_removed_by_the_next_publish(run):
    stale = run.nn / ".latest.pth.tmp-99999-1"
    stale.write_bytes(b"half a checkpoint")
    assert not any(p == stale for p in run.nn.glob("*.pth"))  # readers' pattern never matches it
    publisher = CheckpointPublisher(run)
    publisher.submit(*snapshot(1))
    publisher.close()
    assert not stale.exists()


def test_write_failure_keeps_previous_and_warns(run, monkeypatch, capsys):
    publisher = CheckpointPublisher(run)
    publisher.submit(*snapshot(1))
    publisher.flush()
    before = run.latest_checkpoint.read_bytes()

    def disk_full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(protocol.files.os, "fsync", disk_full)
    publisher.submit(*snapshot(2))
    publisher.flush()
    monkeypatch.undo()
    publisher.close()
    assert publisher.failures == 1 and publisher.published == 1
    assert run.latest_checkpoint.read_bytes() == before
    assert not list(run.nn.glob(protocol.TEMP_GLOB))
    err = capsys.readouterr().err
    assert f"could not publish {run.latest_checkpoint}" in err and "No space left on device" in err


def test_newest_submission_wins_while_writing(run):
    publisher = CheckpointPublisher(run)
    for value in range(1, 40):
        publisher.submit(*snapshot(value))
    publisher.close()
    assert torch.load(run.latest_checkpoint, weights_only=True)["epoch"] == 39
    assert 1 <= publisher.published <= 39


def test_snapshot_is_decoupled_and_plain():
    import numpy as np

    live = torch.zeros(3)
    copy = to_plain_cpu({"p": live, "r": np.float32(1.5), "a": np.arange(2)})
    live += 1
    assert copy["p"].tolist() == [0, 0, 0] and type(copy["r"]) is float and isinstance(copy["a"], torch.Tensor)


class FakeRewards:
    current_size = 1

    def get_mean(self):
        return torch.tensor([12.5])


class FakeAlgo:
    def __init__(self, rank: int) -> None:
        from gymnasium import spaces

        self.global_rank, self.epoch_num, self.frame = rank, 0, 0
        self.game_rewards = FakeRewards()
        self.env_info = {"observation_space": spaces.Box(-1, 1, (4,)), "action_space": spaces.Box(-1, 1, (1,))}

    def get_full_state_weights(self):
        return {"model": {"w": torch.ones(2)}, "epoch": self.epoch_num, "frame": self.frame}


class RecordingPublisher:
    failures = 0
    write_cpu_seconds = 0.0

    def __init__(self) -> None:
        self.epochs: list[int] = []
        self.closed = False

    @property
    def published(self) -> int:
        return len(self.epochs)

    def submit(self, state, metadata):
        self.epochs.append(metadata["epoch"])
        self.metadata, self.state = metadata, state.state()

    def close(self):
        self.closed = True


@pytest.mark.parametrize("rank, expected", [(0, [3, 6, 7]), (1, [])])
def test_observer_publishes_every_n_epochs_and_at_the_end_on_rank_0(make_cfg, run, rank, expected):
    cfg = make_cfg("Cartpole", "checkpoint_save_freq=3")
    publisher = RecordingPublisher()
    observer = CheckpointObserver(cfg, run, publisher)
    algo = FakeAlgo(rank)
    observer.after_init(algo)
    for epoch in range(1, 8):
        algo.epoch_num, algo.frame = epoch, epoch * 100
        observer.after_print_stats(algo.frame, epoch, 0.0)
    observer.finish()
    assert publisher.epochs == expected and publisher.closed
    if expected:
        meta = publisher.metadata
        assert (meta["task"], meta["num_obs"], meta["num_actions"], meta["frame"]) == ("Cartpole", 4, 1, 700)
        assert meta["mean_reward"] == 12.5 and meta["network"]["units"] == [32, 32]
        assert meta["run"] == run.name and len(meta["config_hash"]) == 64 and meta["format_version"] == 1


@pytest.mark.parametrize("stopped_in, expected", [("rollout", 6), ("update", 7)])
def test_a_stop_mid_epoch_publishes_the_epoch_the_weights_belong_to(make_cfg, run, stopped_in, expected):
    # rl_games has counted epoch 7 from the start of its rollout; until its update runs, the
    # weights are still epoch 6's, and rl_games would resume from the epoch stored in the file.
    publisher = RecordingPublisher()
    observer = CheckpointObserver(make_cfg("Cartpole", "checkpoint_save_freq=100"), run, publisher)
    algo = FakeAlgo(0)
    observer.after_init(algo)
    for epoch in range(1, 7):
        algo.epoch_num = epoch
        observer.after_steps()
        observer.after_print_stats(0, epoch, 0.0)
    algo.epoch_num = 7  # the signal arrives during epoch 7
    if stopped_in == "update":
        observer.after_steps()
    observer.finish()
    assert publisher.epochs == [expected] and publisher.state["epoch"] == expected


def test_second_trainer_on_one_run_directory_is_refused(run):
    holder = spawn(
        [
            sys.executable,
            "-c",
            f"from filelock import FileLock; l = FileLock({str(run.trainer_lock)!r}); "
            "l.acquire(); print('held', flush=True); import time; time.sleep(60)",
        ],
        cwd=run.root,
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(UserError, match="already being written by another trainer"):
            protocol.acquire_trainer_lock(run)
    finally:
        holder.kill()
        holder.wait()
    protocol.acquire_trainer_lock(run).release()  # free again once the holder is gone


@pytest.mark.slow
def test_sigkill_torture_10_kills():
    # Each kill pays a trainer's start (~5 s here); 500 kills run in benchmarks/publish_torture.py.
    failures = run_trials(kills=10, parallel=2, seed=1)
    assert failures == []


@pytest.mark.slow
def test_reader_never_sees_a_partial_checkpoint(tmp_path):
    proc = start_cli("task=Cartpole", "num_envs=64", "checkpoint_save_freq=1", "max_iterations=120", "sim_device=cpu",
                     "rl_device=cpu", cwd=tmp_path)  # fmt: skip
    loads, failures, epochs = 0, [], set()
    stop = threading.Event()

    def read_loop():
        nonlocal loads
        while not stop.is_set():
            paths = list(tmp_path.glob("runs/*/nn/latest.pth"))
            if not paths:
                time.sleep(0.001)
                continue
            try:
                epochs.add(torch.load(paths[0], weights_only=True)["epoch"])
                loads += 1
                time.sleep(0.02)  # read often, but leave the 2-core machine to the trainer
            except Exception as err:
                failures.append(repr(err))

    reader = threading.Thread(target=read_loop, daemon=True)
    reader.start()
    try:
        out, _ = proc.communicate(timeout=240)
    finally:  # a timed-out trainer must not leave the reader running (pytest would never exit)
        stop.set()
        reader.join(timeout=10)
    assert proc.returncode == 0, out[-2000:]
    published = int(out.split("Published latest.pth ")[1].split(" times")[0])
    assert published >= 50
    assert failures == [] and loads > 50 and len(epochs) > 25
    (nn,) = [p.parent for p in tmp_path.glob("runs/*/nn/latest.pth")]
    assert check_published(nn) is None
    assert json.loads((nn / "latest.json").read_text())["epoch"] == 120


def train_in_process(make_cfg, tmp_path, *overrides):
    from isaacgymenvs.trainer.train import train

    cfg = make_cfg("Cartpole", "num_envs=32", f"train_dir={tmp_path / 'runs'}", *overrides)
    return cfg, train(cfg)


@pytest.mark.slow
def test_stock_rl_games_player_restores_latest(make_cfg, tmp_path):
    from rl_games.torch_runner import Runner

    from isaacgymenvs.trainer.rlgames_config import rlgames_params

    cfg, run = train_in_process(make_cfg, tmp_path, "max_iterations=4", "checkpoint_save_freq=2")
    assert cfg.train.params.algo.name == "graphed_a2c_continuous"  # written by the graphed agent
    params = rlgames_params(cfg, run)
    params["params"]["algo"]["name"] = "a2c_continuous"  # read by rl_games alone, nothing of ours registered
    runner = Runner()
    runner.load(params)
    player = runner.create_player()
    player.restore(str(run.latest_checkpoint))
    saved = torch.load(run.latest_checkpoint, weights_only=True)
    assert saved["epoch"] == 4
    restored = player.model.state_dict()
    assert saved["model"].keys() == restored.keys()
    assert all(torch.equal(saved["model"][k], restored[k]) for k in restored)


@pytest.mark.slow
def test_training_goes_on_when_publishing_fails(make_cfg, tmp_path, monkeypatch, capsys):
    # Only the published files fail: rl_games' own saves now go through atomic_write too (a full
    # disk for those stops training with one sentence, tested in test_hostile_live.py).
    atomic_write = protocol.atomic_write

    def disk_full_for_latest(path, write, **kwargs):
        def write_then_fail(f):
            write(f)
            raise OSError(errno.ENOSPC, "No space left on device")

        return atomic_write(path, write_then_fail if path.name.startswith("latest.") else write, **kwargs)

    monkeypatch.setattr(protocol.publishing, "atomic_write", disk_full_for_latest)  # publish_latest's own
    _, run = train_in_process(make_cfg, tmp_path, "max_iterations=5", "checkpoint_save_freq=1")
    out = capsys.readouterr()
    assert "epoch 5/5" in out.out  # every epoch trained
    assert out.err.count("could not publish") >= 1
    assert not run.latest_checkpoint.exists() and not list(run.nn.glob(protocol.TEMP_GLOB))
    assert list(run.nn.glob("last_Cartpole_ep_5_*.pth"))  # rl_games' own history is unaffected


@pytest.mark.slow
@pytest.mark.parametrize(
    "signum, message", [(signal.SIGINT, "Interrupted."), (signal.SIGTERM, "Stopped by SIGTERM."),
                        (signal.SIGHUP, "Stopped by SIGHUP.")],
)  # fmt: skip
def test_stop_signals_publish_the_final_policy(tmp_path, signum, message):
    # Ctrl+C, kill / SLURM preemption / container stop, closed terminal: all publish the last epoch.
    proc = start_cli("task=Cartpole", "num_envs=16", "checkpoint_save_freq=100000", "max_iterations=1000000",
                     "sim_device=cpu", "rl_device=cpu", cwd=tmp_path, stderr=subprocess.PIPE)  # fmt: skip
    last = 0
    for line in proc.stdout:
        if line.startswith("epoch "):
            last = int(line.split()[1].split("/")[0])
            if last >= 5:
                break
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum and "Traceback" not in err and err.strip() == message, err
    (path,) = tmp_path.glob("runs/*/nn/latest.pth")
    final = torch.load(path, weights_only=True)["epoch"]
    printed = [int(m) for m in re.findall(r"^epoch (\d+)/", out, re.M)]
    # The epoch last reported, or the one whose update the signal interrupted.
    assert final >= 5 and max([last, *printed]) <= final <= max([last, *printed]) + 1
    assert check_published(path.parent) is None

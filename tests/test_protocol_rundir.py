"""protocol.rundir: run-directory names and layout, the trainer's lock, paths that must stay inside
the run, stale temp files."""

from __future__ import annotations

import os
import time
from datetime import datetime

import pytest

from isaacgymenvs import protocol
from isaacgymenvs.errors import UserError
from tests.conftest import CARTPOLE


def test_run_dir_layout_and_name(tmp_path):
    when = datetime(2026, 11, 21, 10, 30, 45)
    run = protocol.create_run_dir(tmp_path / "runs", "Ant", when)
    assert run.root == tmp_path / "runs" / "Ant_2026-11-21_10-30-45"
    assert run.nn.is_dir() and run.summaries.is_dir() and run.params.is_dir()
    assert protocol.run_timestamp(run.name) == when


def test_runs_started_in_the_same_second_get_distinct_dirs(tmp_path):
    when = datetime(2026, 11, 21, 10, 30, 45)
    a = protocol.create_run_dir(tmp_path, "Ant", when)
    b = protocol.create_run_dir(tmp_path, "Ant", when)
    assert a.root != b.root and b.name == "Ant_2026-11-21_10-30-46"


def test_foreign_names_have_no_timestamp():
    assert protocol.run_timestamp("Ant") is None
    assert protocol.run_timestamp("my_run_2026-11-21") is None
    assert protocol.run_timestamp("my_run_2026-11-21_10-30-45").year == 2026


def test_stale_temps_of_dead_writers_are_removed_when_a_run_is_opened(run):
    import subprocess
    import sys

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = [run.nn / f".latest.pth.tmp-{dead.pid}-1", run.root / f".{protocol.STATE_FILE}.tmp-{dead.pid}-2"]
    live = run.nn / f".latest.pth.tmp-{os.getpid()}-3"
    old_live = run.nn / f".latest.json.tmp-{os.getpid()}-4"
    for path in (*stale, live, old_live):
        path.write_bytes(b"half")
    os.utime(old_live, (time.time() - 3600, time.time() - 3600))
    from isaacgymenvs.panel.catalog import CheckpointCatalog

    CheckpointCatalog(run, CARTPOLE)  # the panel opening the run cleans up
    assert not any(p.exists() for p in stale) and not old_live.exists()
    assert live.exists()  # a writer of this machine that still runs keeps its temp


def test_nothing_is_written_through_a_link_out_of_the_run(run, tmp_path):
    from isaacgymenvs.errors import UserError

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "metrics.csv").write_text("mine\n")
    run.metrics_file.symlink_to(outside / "metrics.csv")
    with pytest.raises(OSError):
        protocol.append_metrics(run, 1, 10, 1.0, 0.0)
    assert (outside / "metrics.csv").read_text() == "mine\n"
    (run.root / "videos").symlink_to(outside)
    with pytest.raises(UserError, match="videos is a symbolic link or not a directory; remove it"):
        protocol.output_dir_in_run(run, "videos")
    assert protocol.output_dir_in_run(run, "eval") == run.root / "eval"


@pytest.mark.parametrize(
    "relative", [None, 5, "", "/etc/passwd.pth", "../x.pth", "nn/../../x.pth", "nn/a.txt", "nn/\x00.pth", "n" * 2000]
)
def test_checkpoint_names_outside_the_run_are_refused(run, relative):
    assert protocol.checkpoint_in_run(run, relative) is None


def test_checkpoint_names_inside_the_run_stay_there_and_links_are_refused_when_opened(run, tmp_path):
    assert protocol.checkpoint_in_run(run, "nn/a.pth") == run.nn / "a.pth"
    assert protocol.checkpoint_in_run(run, "nn/../nn/./a.pth") == run.nn / "a.pth"  # lexical
    outside = tmp_path / "outside.pth"
    outside.write_bytes(b"x")
    (run.nn / "link.pth").symlink_to(outside)
    path = protocol.checkpoint_in_run(run, "nn/link.pth")  # a name inside; links are refused on open
    with pytest.raises(protocol.CheckpointRejected, match="link.pth is a symbolic link, which is not followed"):
        protocol.load_checkpoint_in_run(run, path, CARTPOLE)


@pytest.mark.parametrize("name", ["../x", "a/b", "a\\b", ".hidden", "x" * 101, 5])
def test_experiment_names_are_names_not_paths(name):
    with pytest.raises(UserError, match="must be a name"):
        protocol.check_experiment_name(name)


def test_a_second_lock_on_one_run_is_refused(run):
    lock = protocol.acquire_trainer_lock(run)
    try:
        with pytest.raises(UserError, match="already being written by another trainer"):
            protocol.acquire_trainer_lock(run)
    finally:
        lock.release()


def test_params_that_are_not_a_mapping_are_a_value_error(run):
    run.config_file.write_text("- just\n- a list\n")
    with pytest.raises(ValueError, match="is not a YAML mapping"):
        protocol.read_params(run)


def test_temps_of_a_writer_killed_after_the_run_was_opened_are_removed_by_panel_and_player(run, monkeypatch):
    import subprocess
    import sys

    from isaacgymenvs.panel.catalog import CheckpointCatalog
    from isaacgymenvs.player import follower as follower_module

    catalog = CheckpointCatalog(run, CARTPOLE)
    monkeypatch.setattr(follower_module, "CLEAN_SECONDS", 0.2)
    player = follower_module.CheckpointFollower(run, CARTPOLE, 30.0, use_events=False, log=lambda m: None)
    player.start()
    try:
        for who in ("panel", "player"):
            dead = subprocess.Popen([sys.executable, "-c", "pass"])
            dead.wait()
            temp = run.nn / f".latest.pth.tmp-{dead.pid}-1"  # a trainer killed mid-publish, after opening
            temp.write_bytes(b"half")
            if who == "panel":
                catalog.scan()
            else:
                deadline = time.monotonic() + 5
                while temp.exists() and time.monotonic() < deadline:
                    time.sleep(0.05)
            assert not temp.exists(), who
    finally:
        player.stop()

"""The checkpoint control panel: catalogue, window behaviour, state file, and a real player."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sys
import time

import pytest

from isaacgymenvs import protocol
from tests.conftest import CARTPOLE, REPO, run_cli, run_command, start_cli

pytest.importorskip("pytestqt")


@pytest.fixture(scope="module")
def cartpole_run(tmp_path_factory):
    """A real Cartpole run with periodic checkpoints, a latest.pth and metrics, plus two bad files."""
    parent = tmp_path_factory.mktemp("panel")
    result = run_cli("task=Cartpole", "num_envs=32", "max_iterations=6", "checkpoint_save_freq=3",
                     "train.params.config.save_frequency=2", "sim_device=cpu", "rl_device=cpu", cwd=parent)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    run = protocol.RunDir(next((parent / "runs").iterdir()))
    good = run.latest_checkpoint.read_bytes()
    (run.nn / "torn.pth").write_bytes(good[: len(good) // 2])
    ant = run_cli("task=Ant", "num_envs=16", "max_iterations=1", "sim_device=cpu", "rl_device=cpu",
                  "experiment=other", cwd=parent)  # fmt: skip
    assert ant.returncode == 0, ant.stderr[-2000:]
    shutil.copy(next(parent.glob("runs/other_*/nn/latest.pth")), run.nn / "foreign.pth")
    return parent, run


def test_catalog_lists_newest_first_with_labels_and_marks_bad_files(cartpole_run):
    from isaacgymenvs.panel.catalog import CheckpointCatalog, run_info

    _, run = cartpole_run
    # mtimes decide the order, not names (ep_99 vs ep_1000 would sort wrongly as strings)
    names = sorted(p.name for p in run.nn.glob("*.pth"))
    for age, name in enumerate(reversed(names)):
        os.utime(run.nn / name, (time.time() - 100 + age, time.time() - 100 + age))
    entries = CheckpointCatalog(run, run_info(run)).scan()
    twins = [n for n in names if n.startswith("last_Cartpole_ep_6_")]  # rl_games saves the last epoch twice
    assert len(twins) == 2
    assert [e.name for e in entries] == [n for n in names if n != twins[1]]  # one row for both
    by_name = {e.name: e for e in entries}
    assert re.fullmatch(
        r"latest\.pth \(\d+\.\d KB\) - \d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", by_name["latest.pth"].label
    )
    assert by_name["latest.pth"].epoch == 6 and by_name["latest.pth"].problem is None
    periodic = next(e for e in entries if e.name.startswith("last_Cartpole_ep_2_"))
    assert periodic.epoch == 2 and periodic.reward is not None
    assert "torn or not a checkpoint" in by_name["torn.pth"].problem
    assert "belongs to task Ant" in by_name["foreign.pth"].problem


def test_player_liveness_comes_from_the_pid_not_the_players_clock(cartpole_run):
    """Held-out check: a player whose clock was 1 h ahead showed 'loaded' 30 s after it was killed;
    one 1 h behind showed 'player not running' while it ran."""
    import subprocess
    import sys

    from isaacgymenvs.panel.catalog import player_summary

    _, run = cartpole_run
    protocol.write_status(run, {"phase": "loaded", "checkpoint": "latest.pth", "epoch": 6})
    assert player_summary(run)[0] == "loaded"
    assert player_summary(run, now=time.time() + 3600)[0] == "loaded"  # its clock 1 h behind: still running
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    status = json.loads(protocol.status_file(run).read_text())
    protocol.status_file(run).unlink()
    ahead = {**status, "pid": dead.pid, "started": None, "heartbeat": time.time() + 3600}  # killed, clock ahead
    protocol.status_file(run, dead.pid).write_text(json.dumps(ahead))
    assert player_summary(run)[0] == "player not running"
    protocol.status_file(run, dead.pid).write_text("{half")
    assert player_summary(run)[0] == "player not running"


def test_the_panel_lists_each_player_on_the_run(cartpole_run):
    from isaacgymenvs.panel.catalog import player_summary, status_html

    _, run = cartpole_run
    protocol.write_status(run, {"phase": "loaded", "checkpoint": "latest.pth", "epoch": 6})
    status = json.loads(protocol.status_file(run).read_text())
    other = {**status, "pid": os.getppid(), "started": None, "phase": "failed", "checkpoint": "m2.pth"}
    second = protocol.status_file(run, os.getppid())
    second.write_text(json.dumps({**other, "heartbeat": status["heartbeat"] - 1}))
    try:
        summary, shown = player_summary(run)
        assert summary == "loaded" and [o["checkpoint"] for o in shown["other_players"]] == ["m2.pth"]
        assert f"2 players follow this run; also pid {os.getppid()} on " in status_html(summary, shown)
        assert "failed m2.pth" in status_html(summary, shown)
    finally:
        second.unlink()  # the run is shared with the next tests


def wait_for_entries(qtbot, window, n):
    qtbot.waitUntil(lambda: len(window.table_model.entries) >= n, timeout=20000)


def test_window_lists_loads_selected_and_follows_status(qtbot, cartpole_run, tmp_path):
    from isaacgymenvs.panel.catalog import run_info
    from isaacgymenvs.panel.window import PanelWindow

    _, run = cartpole_run
    protocol.state_file(run).unlink(missing_ok=True)
    window = PanelWindow(run, run_info(run))
    qtbot.addWidget(window)
    window.show()
    total = len(list(run.nn.glob("*.pth"))) - 1  # rl_games' twin files of the last epoch are one row
    wait_for_entries(qtbot, window, total)
    entries = window.table_model.entries
    assert [e.mtime for e in entries] == sorted((e.mtime for e in entries), reverse=True)
    bad_row = next(i for i, e in enumerate(entries) if e.name == "torn.pth")
    from PySide6.QtCore import Qt

    assert not window.table_model.flags(window.table_model.index(bad_row, 0)) & Qt.ItemIsSelectable
    model = window.table_model  # every column is named (the fourth had an empty header)
    assert [model.headerData(i, Qt.Horizontal) for i in range(model.columnCount())][3] == "Status"
    assert model.data(model.index(bad_row, 3)) == "cannot load"

    target = next(e for e in entries if e.name.startswith("last_Cartpole_ep_4_"))
    window.select_checkpoint(target.name)
    qtbot.mouseClick(window.load_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: (protocol.read_state(run)[0] or protocol.CheckpointState()).mode == "manual", timeout=5000)
    state, _ = protocol.read_state(run)
    assert state.checkpoint == f"nn/{target.name}" and state.seq == 1
    qtbot.waitUntil(lambda: window.manual_button.isChecked(), timeout=3000)

    assert window.selected_entry() == target
    window.auto_button.click()  # a stretched radio button only reacts to clicks on its label
    qtbot.waitUntil(lambda: protocol.read_state(run)[0].mode == "auto", timeout=5000)
    assert protocol.read_state(run)[0].seq == 2
    assert window.selected_entry() is None and window.curve.selected is None  # no stale highlight after Auto

    assert "player not running" in window.current_label.text() or "loaded" in window.current_label.text()
    protocol.write_status(run, {"phase": "failed", "mode": "auto", "checkpoint": "latest.pth", "epoch": 6,
                                "reward": 12.5, "loaded_at": time.time(), "error": "torn.pth is torn"})  # fmt: skip
    qtbot.waitUntil(lambda: "failed" in window.current_label.text(), timeout=3000)
    assert "epoch 6" in window.current_label.text() and "torn.pth is torn" in window.current_label.text()

    # Manual with nothing selected keeps what the player shows: latest.pth moves on with training, so
    # the saved file of its epoch (it did nothing but hint before).
    window.table.clearSelection()
    window.manual_button.click()
    qtbot.waitUntil(lambda: protocol.read_state(run)[0].mode == "manual", timeout=5000)
    kept = protocol.read_state(run)[0].checkpoint
    assert re.fullmatch(r"nn/last_Cartpole_ep_6_rew_?\S+\.pth", kept), kept
    assert window.selected_entry().relative == kept

    # The reward curve has a marker per usable checkpoint with an epoch; clicking one selects it.
    assert window.curve.rows and len(window.curve.markers) >= 3
    window.select_checkpoint("latest.pth")
    assert window.selected_entry().name == "latest.pth"

    shot = tmp_path / "panel.png"
    window.grab().save(str(shot))
    from PIL import Image

    pixels = Image.open(shot).convert("L")
    assert pixels.size[0] > 400 and len(set(pixels.getdata())) > 20  # not blank


def test_run_deleted_while_open_shows_a_message(qtbot, tmp_path):
    from isaacgymenvs.panel.window import PanelWindow

    run = protocol.create_run_dir(tmp_path / "runs", "Cartpole")
    window = PanelWindow(run, CARTPOLE)
    qtbot.addWidget(window)
    shutil.rmtree(run.root)
    window.refresh()
    qtbot.waitUntil(lambda: "no longer exists" in window.message.text(), timeout=5000)
    assert window.current_label.text() == "player not running"


@pytest.mark.parametrize("args, fragment", [([], "needs experiment="), (["--experiment=../x"], "must be a name")])
def test_panel_cli_errors_are_one_sentence(args, fragment, tmp_path):
    result = run_command([sys.executable, str(REPO / "isaacgymenvs" / "checkpoint_control_panel.py"), *args],
                         cwd=tmp_path, timeout=60)  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert fragment in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_manual_and_auto_with_a_real_player(cartpole_run):
    parent, run = cartpole_run
    protocol.state_file(run).unlink(missing_ok=True)
    player = start_cli("mode=play", f"experiment={run.name}", "headless=True", "num_envs=2", "sim_device=cpu",
                       "rl_device=cpu", cwd=parent)  # fmt: skip

    def status_is(**expected):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            status = protocol.read_status(run) or {}
            if all(status.get(k) == v for k, v in expected.items()):
                return status
            time.sleep(0.1)
        raise AssertionError(f"player status {protocol.read_status(run)} never matched {expected}")

    try:
        status_is(phase="loaded", checkpoint="latest.pth", epoch=6)
        chosen = next(run.nn.glob("last_Cartpole_ep_2_*.pth")).name
        protocol.write_state(run, "manual", f"nn/{chosen}")
        status_is(phase="loaded", checkpoint=chosen, epoch=2, mode="manual")
        protocol.write_state(run, "auto")
        status_is(phase="loaded", checkpoint="latest.pth", epoch=6, mode="auto")
    finally:
        player.send_signal(signal.SIGINT)
        out, _ = player.communicate(timeout=60)
    assert player.returncode == 0 and "Traceback" not in out


HOLOVIZ_BESIDE = """
import pathlib, sys, time
import panel as holoviz
assert hasattr(holoviz, "extension"), f"`import panel` found {holoviz.__file__}, not HoloViz Panel"
from PySide6.QtWidgets import QApplication
from isaacgymenvs import protocol
from isaacgymenvs.panel.catalog import run_info
from isaacgymenvs.panel.window import PanelWindow
app = QApplication([])
run = protocol.RunDir(pathlib.Path(sys.argv[1]))
window = PanelWindow(run, run_info(run))
window.show()
deadline = time.monotonic() + 30
while len(window.table_model.entries) < 4 and time.monotonic() < deadline:
    app.processEvents()
    time.sleep(0.01)
entries = len(window.table_model.entries)
window.close()  # stops the panel's worker threads
print(holoviz.__version__, entries)
"""


def test_holoviz_panel_installed_beside_us_imports_and_our_panel_works(cartpole_run, tmp_path):
    """`panel` is HoloViz's import name; ours is isaacgymenvs.panel, so both live in one environment
    (run from a neutral folder: only what is installed is importable)."""
    _, run = cartpole_run
    result = run_command([sys.executable, "-c", HOLOVIZ_BESIDE, str(run.root)], cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    version, entries = result.stdout.split()[-2:]
    assert int(entries) >= 4 and version[0].isdigit()


def test_the_list_summary_names_what_cannot_be_loaded():
    """'7 checkpoints, 1 cannot be loaded' named no file."""
    from isaacgymenvs.panel.catalog import UNCHECKED, CheckpointEntry, list_summary

    def entry(name: str, problem: str | None) -> CheckpointEntry:
        return CheckpointEntry(name, f"nn/{name}", 10, 0.0, None, None, problem)

    torn = entry("torn.pth", "torn.pth is torn or not a checkpoint")
    summary = list_summary([entry("a.pth", None), torn, entry("b.pth", UNCHECKED)])
    assert summary.startswith("3 checkpoints, 1 cannot be loaded (torn.pth is torn or not a checkpoint), 1 being")
    assert list_summary([entry("a.pth", None)]).startswith("1 checkpoint; refreshed")


def test_rl_games_twin_files_of_the_last_epoch_are_one_row(tmp_path):
    """Four rows for one final checkpoint: rl_games' two names for the last epoch, Ant.pth, latest.pth."""
    import torch

    from isaacgymenvs.panel.catalog import CheckpointCatalog
    from tests.conftest import good_model

    run = protocol.create_run_dir(tmp_path / "runs", "Cartpole")
    names = ["last_Cartpole_ep_500_rew_2377.7107.pth", "last_Cartpole_ep_500_rew__2377.7107_.pth",
             "last_Cartpole_ep_400_rew_2000.0.pth", "Cartpole.pth", "latest.pth"]  # fmt: skip
    for age, name in enumerate(names):
        torch.save({"model": good_model(), "metadata": {"task": "Cartpole"}}, run.nn / name)
        os.utime(run.nn / name, (1_000_000 - age, 1_000_000 - age))
    shown = [e.name for e in CheckpointCatalog(run, CARTPOLE).scan()]
    assert shown == ["last_Cartpole_ep_500_rew_2377.7107.pth", "last_Cartpole_ep_400_rew_2000.0.pth",
                     "Cartpole.pth", "latest.pth"]  # fmt: skip


def test_manual_with_nothing_chosen_keeps_what_the_player_shows():
    """Manual alone did nothing visible but a hint; it now keeps the policy on screen."""
    from isaacgymenvs.panel.catalog import CheckpointEntry, checkpoint_to_keep

    def entry(name: str, epoch: int | None, mtime: float = 0.0, problem: str | None = None) -> CheckpointEntry:
        return CheckpointEntry(name, f"nn/{name}", 10, mtime, epoch, None, problem)

    entries = [entry("latest.pth", 9, 5.0), entry("chosen.pth", 7, 4.0), entry("last_A_ep_8_rew_1.0.pth", 8, 3.0),
               entry("torn.pth", 9, 6.0, "torn"), entry("A.pth", 8, 1.0), entry("old.pth", 2, 0.5)]  # fmt: skip
    names = {e.name: e for e in entries}

    def kept(**status) -> str | None:
        return (checkpoint_to_keep(entries, status or None)[0] or CheckpointEntry("-", "", 0, 0, None, None, None)).name

    assert kept(checkpoint="chosen.pth", epoch=7) == "chosen.pth"  # a named file: itself
    assert kept(checkpoint="latest.pth", epoch=9) == "last_A_ep_8_rew_1.0.pth"  # the newest saved, never the torn one
    assert kept(checkpoint="latest.pth", epoch=2) == "old.pth"
    assert kept() == "-" and "no player shows one yet" in checkpoint_to_keep(entries, None)[1]
    entry_, text = checkpoint_to_keep([names["latest.pth"]], {"checkpoint": "latest.pth", "epoch": 9})
    assert entry_ is None and text.startswith("The player shows latest.pth, which no saved file holds yet")
    hostile = {"checkpoint": "x" * 10_000, "epoch": True}
    assert checkpoint_to_keep(entries, hostile)[0] is None and len(checkpoint_to_keep(entries, hostile)[1]) < 300

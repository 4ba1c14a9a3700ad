"""Run-directory naming and layout."""

from __future__ import annotations

from datetime import datetime

from isaacgymenvs import protocol


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

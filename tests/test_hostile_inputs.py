"""Hostile and broken inputs against the processes' users of the protocol: property-based fuzzing
of the panel's catalogue and status line, and write errors in the trainer. Nothing here may raise
anything but the documented refusal, block, or read outside the run directory. The protocol's own
readers are fuzzed in tests/test_protocol_*.py.
"""

from __future__ import annotations

import errno
import io
import math
import os
import time
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from isaacgymenvs import protocol
from tests.conftest import CARTPOLE, call_with_timeout, good_model
from tests.test_protocol_state import json_value

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
FUZZ_FILES = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
GOOD_MODEL = good_model()


# --- the panel's catalogue -----------------------------------------------------------------------

hostile_entry = st.sampled_from(["fifo", "dir", "link_out", "link_loop", "garbage", "nan", "scalar_mean", "good",
                                 "empty", "link_dangling"])  # fmt: skip


def make_hostile(run, name: str, kind: str, outside: Path) -> None:
    path = run.nn / f"{name}.pth"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dir":
        path.mkdir()
    elif kind == "link_out":
        path.symlink_to(outside)
    elif kind == "link_loop":
        path.symlink_to(path)
    elif kind == "link_dangling":
        path.symlink_to(run.nn / "nowhere.pth")
    elif kind == "garbage":
        path.write_bytes(os.urandom(100))
    elif kind == "empty":
        path.write_bytes(b"")
    else:
        model = dict(GOOD_MODEL)
        if kind == "nan":
            model["a2c_network.mu.weight"] = torch.full((1, 8), math.nan)
        elif kind == "scalar_mean":
            model["running_mean_std.running_mean"] = torch.tensor(1.0)
        torch.save({"model": model, "metadata": {"task": "Cartpole", "epoch": 1}}, path)


@FUZZ_FILES
@given(kinds=st.lists(hostile_entry, min_size=1, max_size=8))
def test_fuzz_catalog_scan_never_raises_or_blocks(tmp_path_factory, kinds):
    from isaacgymenvs.panel.catalog import CheckpointCatalog

    parent = tmp_path_factory.mktemp("cat")
    run = protocol.create_run_dir(parent / "runs", "Cartpole")
    outside = parent / "outside.pth"
    torch.save({"model": GOOD_MODEL}, outside)
    for i, kind in enumerate(kinds):
        make_hostile(run, f"{kind}{i}", kind, outside)
    catalog = CheckpointCatalog(run, CARTPOLE)
    entries = call_with_timeout(catalog.scan)
    for _ in kinds:  # a busy machine checks within a scan's budget only some; the next scans check the rest
        if not catalog.unchecked:
            break
        entries = call_with_timeout(catalog.scan)
    assert not catalog.unchecked, "each scan checks at least its newest unchecked file"
    by_name = {e.name: e for e in entries}
    for i, kind in enumerate(kinds):
        entry = by_name.get(f"{kind}{i}.pth")
        assert entry is not None, (kind, by_name)
        assert (entry.problem is None) == (kind == "good"), (kind, entry.problem)
        if kind.startswith("link"):  # listed with the reason; never followed, wherever it points
            assert f"{kind}{i}.pth is a symbolic link, which is not followed" in entry.problem


# --- writing: disk full as torch reports it ----------------------------------------------------------


def test_torch_save_runtime_error_is_the_documented_warning(run, monkeypatch, capsys):
    from isaacgymenvs.trainer.publisher import CheckpointPublisher

    publisher = CheckpointPublisher(run)
    publisher.submit({"model": {"w": torch.ones(3)}}, {"epoch": 1})
    publisher.flush()
    before = run.latest_checkpoint.read_bytes()

    def full(*args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 64 vs 0")

    monkeypatch.setattr(torch, "save", full)
    publisher.submit({"model": {"w": torch.ones(3) * 2}}, {"epoch": 2})
    publisher.flush()
    monkeypatch.undo()
    publisher.submit({"model": {"w": torch.ones(3) * 3}}, {"epoch": 3})  # the writer thread lives on
    publisher.close()
    assert publisher.failures == 1 and publisher.published == 2
    err = capsys.readouterr().err
    assert f"Warning: could not publish {run.latest_checkpoint} (" in err and "training goes on" in err
    assert torch.load(run.latest_checkpoint, weights_only=True)["metadata"]["epoch"] == 3
    assert before != run.latest_checkpoint.read_bytes()


def test_tensorboard_write_errors_neither_kill_nor_hang_training(tmp_path, capsys):
    from tensorboardX import SummaryWriter

    from isaacgymenvs.trainer.rlgames_io import guard_summary_writer

    writer = SummaryWriter(str(tmp_path / "summaries"), max_queue=2)
    assert guard_summary_writer(writer)
    records = writer.file_writer.event_writer._ev_writer._py_recordio_writer

    def disk_full(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    records.write = records.flush = disk_full
    start = time.monotonic()
    call_with_timeout(lambda: [writer.add_scalar("x", i, i) for i in range(200)], timeout=30)
    assert time.monotonic() - start < 30
    assert writer.file_writer.event_writer._worker.is_alive()
    err = capsys.readouterr().err
    assert err.count("TensorBoard cannot write to") == 1 and "training goes on" in err


@FUZZ
@given(
    status=st.dictionaries(
        st.sampled_from(["mode", "checkpoint", "epoch", "reward", "loaded_at", "error", "phase"]),
        st.one_of(json_value, st.just("<b>x</b><img src=y>"), st.just(1e308), st.floats()),
    )
)
def test_panel_status_line_renders_any_status(status):
    pytest.importorskip("PySide6")
    from isaacgymenvs.panel.catalog import status_html

    text = status_html("loaded", status)
    assert isinstance(text, str) and "<img" not in text  # the player's values are escaped, never markup


@pytest.mark.slow
def test_10000_files_are_listed_at_once_and_checked_batch_by_batch(tmp_path):
    """Held-out check: with 10,000 files in nn/ the page's list stayed empty for 50-57 s."""
    from isaacgymenvs.panel.catalog import UNCHECKED, CheckpointCatalog

    run = protocol.create_run_dir(tmp_path / "runs", "Cartpole")
    buffer = io.BytesIO()
    torch.save({"model": GOOD_MODEL, "metadata": {"task": "Cartpole", "epoch": 1}}, buffer)
    for i in range(10_000):
        (run.nn / f"last_Cartpole_ep_{i}_rew_{i}.0.pth").write_bytes(buffer.getvalue())
    catalog = CheckpointCatalog(run, CARTPOLE)
    started = time.monotonic()
    entries = catalog.scan()
    first = time.monotonic() - started
    assert len(entries) == 10_000 and first < 5.0, first  # every file listed, within seconds
    assert 0 < catalog.unchecked < 10_000 and entries[0].problem is None  # the newest are checked first
    assert {e.problem for e in entries[-10:]} == {UNCHECKED} and entries[-1].epoch is not None  # named epochs
    left = [catalog.unchecked]
    for _ in range(3):  # each scan checks the next batch (all of them would take ~35 s here)
        entries = catalog.scan()
        left.append(catalog.unchecked)
    assert left == sorted(left, reverse=True) and left[-1] < left[0] - 100, left
    checked = [e for e in entries if e.problem != UNCHECKED]
    assert all(e.problem is None for e in checked) and len(checked) == 10_000 - left[-1]


def test_a_scan_checks_at_least_one_file_however_short_its_budget(tmp_path):
    """On a machine too busy to check one file within the budget, every scan still checks one, so the
    panel's list gets there instead of showing 'not checked yet' for ever."""
    from isaacgymenvs.panel.catalog import CheckpointCatalog

    run = protocol.create_run_dir(tmp_path / "runs", "Cartpole")
    for i in range(3):
        make_hostile(run, f"good{i}", "good", tmp_path / "outside.pth")
    catalog = CheckpointCatalog(run, CARTPOLE)
    left = []
    for _ in range(3):
        catalog.scan(budget=0.0)
        left.append(catalog.unchecked)
    assert left == [2, 1, 0]

"""protocol.runfs: nothing below a run is reached through a link, even one swapped in mid-call."""

from __future__ import annotations

import ctypes
import errno
import os
import threading
import time
from pathlib import Path

import pytest
import torch

from isaacgymenvs import protocol
from tests.conftest import CARTPOLE, good_model

OUTSIDE_EPOCH = 9999


def save_checkpoint(path: Path, epoch: int) -> None:
    torch.save({"model": good_model(), "metadata": {"task": "Cartpole", "epoch": epoch}}, path)


def exchange(a: Path, b: Path) -> None:
    """renameat2(RENAME_EXCHANGE): swap two names atomically, as the held-out race check does."""
    libc = ctypes.CDLL(None, use_errno=True)
    at_fdcwd, rename_exchange = -100, 2
    if libc.renameat2(at_fdcwd, bytes(a), at_fdcwd, bytes(b), rename_exchange) != 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))


@pytest.fixture
def swapping_nn(run, tmp_path):
    """nn/ exchanged with a link to an outside folder every ~0.2 ms while the test runs."""
    outside = tmp_path / "outside"
    outside.mkdir()
    save_checkpoint(outside / "latest.pth", OUTSIDE_EPOCH)
    save_checkpoint(outside / "last_Cartpole_ep_9999_rew_1.0.pth", OUTSIDE_EPOCH)
    save_checkpoint(run.latest_checkpoint, 1)
    save_checkpoint(run.nn / "last_Cartpole_ep_1_rew_1.0.pth", 1)
    link = run.root / "nn_link"
    link.symlink_to(outside)
    try:
        exchange(run.nn, link)
        exchange(run.nn, link)
    except OSError as err:
        if err.errno in (errno.ENOSYS, errno.EINVAL):
            pytest.skip("this filesystem has no renameat2(RENAME_EXCHANGE)")
        raise
    stop = threading.Event()

    def swap() -> None:
        while not stop.is_set():
            exchange(run.nn, link)
            time.sleep(0.0002)

    thread = threading.Thread(target=swap, daemon=True)
    thread.start()
    yield run
    stop.set()
    thread.join(5)
    if run.nn.is_symlink():
        exchange(run.nn, link)


def test_a_swapped_in_link_never_leads_a_load_or_the_catalogue_outside_the_run(swapping_nn):
    from isaacgymenvs.panel.catalog import CheckpointCatalog

    run = swapping_nn
    catalog = CheckpointCatalog(run, CARTPOLE)
    loads = refusals = scans = 0
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        try:
            info = protocol.load_checkpoint_in_run(run, run.latest_checkpoint, CARTPOLE)
            assert info.epoch == 1, "a file outside the run was loaded"
            loads += 1
        except protocol.CheckpointRejected:
            refusals += 1  # a load that fails with a reason is allowed; one from outside is not
        try:
            entries = catalog.scan()
        except FileNotFoundError:
            continue  # nn/ was the link at that moment: refused, not listed
        scans += 1
        assert all(e.epoch != OUTSIDE_EPOCH for e in entries), [(e.name, e.epoch) for e in entries]
    assert loads > 20 and refusals > 20 and scans > 20, (loads, refusals, scans)  # both sides of the race ran


def test_links_below_the_run_are_refused_for_reads_writes_and_locks(run, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.pth").write_bytes(b"secret")
    (run.root / "linked").symlink_to(outside)
    with pytest.raises(protocol.LinkRefused, match="linked/ is a symbolic link"):
        protocol.open_in(run.root, "linked/x.pth")
    with pytest.raises(protocol.LinkRefused):
        protocol.atomic_write_bytes(run.root / "linked" / "y.json", b"{}", root=run.root)
    assert sorted(p.name for p in outside.iterdir()) == ["x.pth"]
    (run.root / ".lock").symlink_to(outside / "x.pth")
    with pytest.raises(protocol.LinkRefused):
        protocol.RunLock(run.root, ".lock").acquire()
    assert (outside / "x.pth").read_bytes() == b"secret"  # filelock's O_TRUNC would have emptied it
    with pytest.raises(ValueError):
        protocol.open_in(run.root, "../outside/x.pth")


def test_a_temp_name_planted_as_a_link_is_never_written_through(run, tmp_path, monkeypatch):
    victim = tmp_path / "victim"
    victim.write_bytes(b"mine")
    monkeypatch.setattr(protocol.files, "_temp_counter", 41)
    (run.root / f".{protocol.status_file(run).name}.tmp-{os.getpid()}-42").symlink_to(victim)
    with pytest.raises(FileExistsError):
        protocol.write_status(run, {"phase": "playing"})
    assert victim.read_bytes() == b"mine"

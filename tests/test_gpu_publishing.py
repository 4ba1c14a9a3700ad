"""Publishing from a CUDA trainer: the snapshot never waits for the GPU and is never torn.

Skipped without CUDA (CI has none); run on the GPU machine.
"""

from __future__ import annotations

import pytest
import torch

from isaacgymenvs.trainer.publisher import HostSnapshot

if not torch.cuda.is_available():
    pytest.skip("needs a CUDA GPU", allow_module_level=True)


def test_snapshot_is_taken_before_later_updates_and_without_a_host_sync():
    weights = torch.zeros(1 << 20, device="cuda")
    state = {"model": {"w": weights}, "epoch": 3, "optimizer": {"state": {0: {"step": torch.tensor(7.0)}}}}
    for value in range(1, 6):
        weights.fill_(float(value))
        torch.cuda._sleep(10_000_000)  # keep the GPU busy so that a copy would lag behind
        torch.cuda.set_sync_debug_mode("error")
        try:
            snapshot = HostSnapshot(state)
            weights.add_(100.0)  # the next optimizer step, queued right after the snapshot
        finally:
            torch.cuda.set_sync_debug_mode("default")
        copied = snapshot.state()
        assert copied["model"]["w"].device.type == "cpu"
        assert (copied["model"]["w"] == value).all()
        assert copied["epoch"] == 3 and copied["optimizer"]["state"][0]["step"].item() == 7.0

"""protocol.publishing: nn/latest.pth with its manifest, and metrics.csv (trainer -> everyone)."""

from __future__ import annotations

import hashlib
import json

import torch

from isaacgymenvs import protocol


def test_publish_latest_writes_the_checkpoint_then_a_manifest_with_its_digest(run):
    protocol.publish_latest(run, lambda tmp: torch.save({"w": torch.ones(3)}, tmp), {"epoch": 4, "task": "Cartpole"})
    manifest = protocol.read_manifest(run.latest_manifest)
    data = run.latest_checkpoint.read_bytes()
    assert manifest["epoch"] == 4 and manifest["file"] == protocol.LATEST_CHECKPOINT
    assert manifest["size"] == len(data) and manifest["sha256"] == hashlib.sha256(data).hexdigest()
    assert not list(run.nn.glob(protocol.TEMP_GLOB))


def test_a_torn_or_hostile_manifest_reads_as_none(run):
    for raw in (b"", b'{"epoch": 1', b"[]", b"\xff", b"[" * 100):
        run.latest_manifest.write_bytes(raw)
        assert protocol.read_manifest(run.latest_manifest) is None
    run.latest_manifest.write_text(json.dumps({"epoch": 2}))
    assert protocol.read_manifest(run.latest_manifest) == {"epoch": 2}


def test_metrics_round_trip_skips_partial_and_odd_lines(run):
    assert protocol.read_metrics(run) == []
    protocol.append_metrics(run, 1, 100, None, 0.5)  # no episode finished yet: no reward to plot
    protocol.append_metrics(run, 2, 200, 12.5, 1.0)
    with open(run.metrics_file, "a") as f:
        f.write("3,300,inf,1.5\nx,y,1,2\n4,400,7")  # a hand-edited inf, garbage, a line being written
    assert run.metrics_file.read_text().startswith(protocol.METRICS_HEADER)
    assert protocol.read_metrics(run) == [(2, 200, 12.5)]

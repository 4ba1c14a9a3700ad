"""What the trainer publishes: nn/latest.pth with its manifest nn/latest.json, and metrics.csv."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import isaacgymenvs.protocol.runfs as runfs
from isaacgymenvs.protocol.files import UnreadableFile, atomic_write, atomic_write_bytes, read_bounded, read_json_object
from isaacgymenvs.protocol.rundir import (
    LATEST_CHECKPOINT,
    METRICS_FILE,
    METRICS_HEADER,
    RunDir,
    clean_stale_temp_files,
)

METRICS_MAX_BYTES = 64 * 1024 * 1024  # ~1M epochs of metrics.csv


def publish_latest(run: RunDir, save: Callable[[BinaryIO], None], metadata: dict[str, Any]) -> None:
    """Atomically publish latest.pth (written by `save(file)`), then latest.json, then clean temps.

    The manifest carries the metadata plus the checkpoint's size and sha256, so that watchers
    learn what changed without loading weights.
    """
    size, sha256 = atomic_write(run.latest_checkpoint, save, root=run.root, digest=True)
    manifest = {**metadata, "file": LATEST_CHECKPOINT, "size": size, "sha256": sha256}
    atomic_write_bytes(run.latest_manifest, json.dumps(manifest, indent=1).encode(), root=run.root)
    # Only dead writers' temps: this process's other writer (rl_games' own saves) may be mid-write.
    clean_stale_temp_files(run)


def read_manifest(path: Path, root: Path | None = None) -> dict[str, Any] | None:
    """The manifest at `path`, or None when it is missing, torn, hand-edited, hostile or not an object."""
    return read_json_object(path, root)[0]


def append_metrics(run: RunDir, epoch: int, frame: int, mean_reward: float | None, wall_time: float) -> None:
    """Append one epoch; a line is written whole, so readers see complete lines plus maybe a tail."""
    reward = "" if mean_reward is None else f"{mean_reward:.6g}"
    fd = runfs.open_in(run.root, METRICS_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT)  # never through a link
    with os.fdopen(fd, "a") as f:
        new = os.fstat(fd).st_size == 0
        f.write((METRICS_HEADER if new else "") + f"{epoch},{frame},{reward},{wall_time:.3f}\n")


def read_metrics(run: RunDir) -> list[tuple[int, int, float]]:
    """(epoch, frame, mean_reward) rows with a reward; malformed or partial lines are skipped."""
    try:
        lines = read_bounded(run.metrics_file, METRICS_MAX_BYTES, run.root).decode("utf-8", "replace").splitlines()
    except (OSError, UnreadableFile):
        return []
    rows = []
    for line in lines[1:]:
        parts = line.split(",")
        if len(parts) != 4 or not parts[2]:
            continue
        try:
            row = (int(parts[0]), int(parts[1]), float(parts[2]))
        except ValueError:
            continue
        if math.isfinite(row[2]):  # a hand-edited 'inf' would break the curve's scale
            rows.append(row)
    return rows

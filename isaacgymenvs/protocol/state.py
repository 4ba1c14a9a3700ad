"""The state file (what the player should show, written by the panels) and the status file (what
the player shows, written by the player)."""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from isaacgymenvs.protocol.files import atomic_write_bytes, open_regular_file, read_json_object
from isaacgymenvs.protocol.rundir import MAX_NAME_BYTES, RunDir, checkpoint_in_run
from isaacgymenvs.protocol.runfs import RunLock

STATE_FILE = ".checkpoint_state.json"
STATUS_FILE = ".player_status.json"
MODE_AUTO, MODE_MANUAL = "auto", "manual"


@dataclass(frozen=True)
class CheckpointState:
    """`auto`: follow nn/latest.pth; `manual`: the checkpoint at `checkpoint` (relative to the run)."""

    mode: str = MODE_AUTO
    checkpoint: str | None = None
    seq: int = 0


def state_file(run: RunDir) -> Path:
    return run.root / STATE_FILE


def status_file(run: RunDir) -> Path:
    return run.root / STATUS_FILE


def describe_bad_checkpoint_name(run: RunDir, relative: object) -> str:
    """Why `relative` cannot be shown: outside the run, too long, missing or not a regular file."""
    shown = repr(relative)[:80]
    if isinstance(relative, str) and len(relative.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        return f"names a checkpoint path of {len(relative)} characters (at most {MAX_NAME_BYTES} bytes)"
    path = checkpoint_in_run(run, relative)
    if path is None:
        return f"names {shown}, which is not a .pth file inside the run directory"
    try:
        os.close(open_regular_file(path, sys.maxsize, root=run.root))  # reached without following a link
    except FileNotFoundError:
        return f"names {shown}, which does not exist"
    except OSError as err:  # UnreadableFile: a link, a FIFO, a directory...
        return f"names {shown}, which {str(err).removeprefix(path.name + ' ')}"
    return ""


def _state_from_object(run: RunDir, value: dict[str, Any], name: str) -> tuple[CheckpointState | None, str | None]:
    mode, seq, checkpoint = value.get("mode"), value.get("seq", 0), value.get("checkpoint")
    if mode not in (MODE_AUTO, MODE_MANUAL):
        return None, f"{name} has unknown mode {str(mode)[:40]!r} (expected 'auto' or 'manual')"
    if not isinstance(seq, int) or isinstance(seq, bool):
        return None, f"{name} has a non-integer seq"
    if mode == MODE_MANUAL:
        problem = describe_bad_checkpoint_name(run, checkpoint)
        if problem:
            return None, f"{name} {problem}"
    return CheckpointState(mode, checkpoint if mode == MODE_MANUAL else None, seq), None


def read_state(run: RunDir) -> tuple[CheckpointState | None, str | None]:
    """(state, None) for a valid state file; (None, None) when absent; (None, why) when unusable.

    A missing file means auto. Anything malformed (empty, torn, wrong types, unknown mode, a path
    outside the run, a checkpoint that does not exist, a FIFO, a huge or deeply nested file) is
    reported and ignored by the caller: never a crash, never a block, never a foreign load.
    """
    path = state_file(run)
    value, problem = read_json_object(path, run.root)
    if value is None:
        return None, problem
    return _state_from_object(run, value, path.name)


def _previous_seq(run: RunDir) -> int:
    """The seq in the state file even when the rest of it is unusable, so seq never goes back."""
    value, _ = read_json_object(state_file(run), run.root)
    seq = value.get("seq") if value else None
    return seq if isinstance(seq, int) and not isinstance(seq, bool) and seq >= 0 else 0


def write_state(run: RunDir, mode: str, checkpoint: str | None = None) -> CheckpointState:
    """Write the state file atomically under a lock; seq increases with every write."""
    if mode not in (MODE_AUTO, MODE_MANUAL):
        raise ValueError(f"unknown mode {mode!r}")
    if mode == MODE_MANUAL and checkpoint_in_run(run, checkpoint) is None:
        raise ValueError(f"{checkpoint!r} is not a .pth file inside {run.root}")
    with RunLock(run.root, f"{STATE_FILE}.lock"):
        state = CheckpointState(mode, checkpoint if mode == MODE_MANUAL else None, _previous_seq(run) + 1)
        payload = {"mode": state.mode, "checkpoint": state.checkpoint, "seq": state.seq, "written": time.time()}
        atomic_write_bytes(state_file(run), json.dumps(payload, indent=1).encode(), root=run.root)
    return state


def write_status(run: RunDir, status: dict[str, Any]) -> None:
    """The player's report of what it shows (panel reads it); includes a heartbeat time."""
    data = json.dumps({**status, "heartbeat": time.time()}, indent=1).encode()
    atomic_write_bytes(status_file(run), data, root=run.root)


def read_status(run: RunDir) -> dict[str, Any] | None:
    return read_json_object(status_file(run), run.root)[0]

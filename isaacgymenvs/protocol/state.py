"""The state file (what the player should show, written by the panels) and the status files (what
each player shows, written by that player: one file per player, so two players on one run are two
entries, and liveness comes from the writer's pid on this machine, not from its clock)."""

from __future__ import annotations

import itertools
import json
import os
import re
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from isaacgymenvs.protocol.files import (
    atomic_write_bytes,
    open_regular_file,
    read_json_object,
    writer_alive,
)
from isaacgymenvs.protocol.rundir import CHECKPOINT_FILES, MAX_NAME_BYTES, RunDir, checkpoint_in_run
from isaacgymenvs.protocol.runfs import RunLock, scandir_in, unlink_in

STATE_FILE = ".checkpoint_state.json"
STATUS_FILE = ".player_status.json"  # before per-player files; still read
STATUS_RE = re.compile(r"^\.player_status(\.[A-Za-z0-9_.-]{1,80})?\.json$")
STATUSES_MAX = 64  # players listed per run; more files than this are ignored
HOST = socket.gethostname()[:60]
_status_seq = itertools.count(1)
MODE_AUTO, MODE_MANUAL = "auto", "manual"


@dataclass(frozen=True)
class CheckpointState:
    """`auto`: follow nn/latest.pth; `manual`: the checkpoint at `checkpoint` (relative to the run)."""

    mode: str = MODE_AUTO
    checkpoint: str | None = None
    seq: int = 0


def state_file(run: RunDir) -> Path:
    return run.root / STATE_FILE


def status_file(run: RunDir, pid: int | None = None) -> Path:
    """This process's (or `pid`'s on this machine) status file: `.player_status.<pid>.<host>.json`."""
    host = re.sub(r"[^A-Za-z0-9_.-]", "_", HOST) or "host"
    return run.root / f".player_status.{os.getpid() if pid is None else pid}.{host}.json"


def process_start(pid: int) -> int | None:
    """When a process started (clock ticks since boot, Linux), to tell a pid reused by another."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return int(f.read().rsplit(b")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def describe_bad_checkpoint_name(run: RunDir, relative: object) -> str:
    """Why `relative` cannot be shown: outside the run, too long, missing or not a regular file."""
    shown = repr(relative)[:80]
    if isinstance(relative, str) and len(relative.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        return f"names a checkpoint path of {len(relative)} characters (at most {MAX_NAME_BYTES} bytes)"
    path = checkpoint_in_run(run, relative)
    if path is None:
        return f"names {shown}, which is not {CHECKPOINT_FILES} inside the run directory"
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
        raise ValueError(f"{checkpoint!r} is not {CHECKPOINT_FILES} inside {run.root}")
    with RunLock(run.root, f"{STATE_FILE}.lock"):
        state = CheckpointState(mode, checkpoint if mode == MODE_MANUAL else None, _previous_seq(run) + 1)
        payload = {"mode": state.mode, "checkpoint": state.checkpoint, "seq": state.seq, "written": time.time()}
        atomic_write_bytes(state_file(run), json.dumps(payload, indent=1).encode(), root=run.root)
    return state


def write_status(run: RunDir, status: dict[str, Any]) -> None:
    """The player's report of what it shows (panels read it).

    With its pid, host and process start (a panel on this machine checks the process is alive),
    a sequence number that grows with every write (a panel elsewhere sees it move or stop), and a
    heartbeat time (shown, and the last resort for a player on another machine).
    """
    pid = os.getpid()
    liveness = {"pid": pid, "host": HOST, "started": process_start(pid), "beat": next(_status_seq)}
    data = json.dumps({**status, **liveness, "heartbeat": time.time()}, indent=1).encode()
    atomic_write_bytes(status_file(run), data, root=run.root)


def read_statuses(run: RunDir) -> list[dict[str, Any]]:
    """Every player's status on this run (unreadable or hostile files are skipped), newest first."""
    found = []
    for name in status_names(run)[:STATUSES_MAX]:
        value = read_json_object(run.root / name, run.root)[0]
        if value is not None:
            found.append(value)

    def heartbeat(status: dict[str, Any]) -> float:
        value = status.get("heartbeat")
        return value if isinstance(value, (int, float)) else 0.0

    return sorted(found, key=heartbeat, reverse=True)


def read_status(run: RunDir) -> dict[str, Any] | None:
    """The most recently written player status on this run, or None."""
    statuses = read_statuses(run)
    return statuses[0] if statuses else None


def same_host_player_alive(status: dict[str, Any]) -> bool | None:
    """For a status written on this machine: whether its process still runs (a reused pid is not
    it: the process start differs); None for a status from another machine, or without a pid."""
    pid, started = status.get("pid"), status.get("started")
    if status.get("host") != HOST or not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return None
    if not writer_alive(pid):
        return False
    return not (isinstance(started, int) and process_start(pid) not in (None, started))


def remove_dead_statuses(run: RunDir) -> int:
    """Delete the status files of players of this machine that no longer run; returns how many."""
    removed = 0
    for name in status_names(run):
        value = read_json_object(run.root / name, run.root)[0]
        if value is not None and same_host_player_alive(value) is False:
            try:
                unlink_in(run.root, name)
                removed += 1
            except OSError:
                continue
    return removed


def status_names(run: RunDir) -> list[str]:
    """The run's player status files (listed without following links), by name."""
    try:
        return sorted(name for name, _ in scandir_in(run.root, run.root) if STATUS_RE.match(name))
    except (OSError, ValueError):
        return []

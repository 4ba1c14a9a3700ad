"""Decide which checkpoint the player shows, notice when it changes, and load it off the render loop.

Sources of change: filesystem events on the run (watchdog; an atomic rename onto latest.pth
arrives as a *moved* event, so moves count), a poll of the checkpoint every
`checkpoint_reload_interval` seconds (for filesystems where events never arrive), and a poll of
the state file every 0.5 s (so a panel's choice applies within a second). A checkpoint is
reloaded only when its identity (inode, size, mtime) changed; a load that fails keeps the current
policy and is reported, and the same bytes are not retried.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from isaacgymenvs import protocol
from isaacgymenvs.protocol import CheckpointFit, CheckpointInfo, CheckpointRejected, CheckpointState, RunDir

STATE_POLL_SECONDS = 0.5
CLEAN_SECONDS = 60.0  # stale temp files of dead writers are removed this often, not only at start
HEARTBEAT_SECONDS = 1.0


@dataclass(frozen=True)
class Target:
    """The file to show and why (mode/seq of the state file that chose it)."""

    path: Path
    mode: str
    seq: int


def file_identity(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


class _Events(FileSystemEventHandler):
    """Wake the follower for changes to checkpoints or the state file (not temp files, not reads)."""

    def __init__(self, wake: threading.Event, dirty: threading.Event) -> None:
        self.wake, self.dirty = wake, dirty

    def on_any_event(self, event: FileSystemEvent) -> None:
        if not protocol.is_change_event(event.event_type):
            return
        for path in (event.src_path, getattr(event, "dest_path", "")):
            name = os.path.basename(os.fsdecode(path)) if path else ""
            if name == protocol.STATE_FILE or protocol.is_checkpoint_name(name):
                self.dirty.set()
                self.wake.set()


class CheckpointFollower:
    """Background thread: watch, choose, load; the render loop takes ready weights between frames."""

    def __init__(
        self,
        run: RunDir,
        fit: CheckpointFit,
        reload_interval: float,
        initial_checkpoint: Path | None = None,
        use_events: bool = True,
        log=print,
    ) -> None:
        self.run = run
        self.fit = fit  # task, sizes, network and library: a file that does not fit is refused on load
        self.reload_interval = reload_interval
        self.log = log
        self.state = CheckpointState()
        self.initial_checkpoint = initial_checkpoint
        self.state_warning: str | None = None
        self.loaded: CheckpointInfo | None = None
        self.loaded_identity: tuple | None = None
        self.loaded_at: float | None = None
        self.phase = "waiting"
        self.error: str | None = None
        self.loads = 0
        self._failed_identity: tuple | None = None
        self._failed_reason: str | None = None  # said again when the user returns to that file
        self._ready: tuple[CheckpointInfo, tuple] | None = None
        self._lock = threading.Lock()
        self._wake, self._dirty, self._force = threading.Event(), threading.Event(), threading.Event()
        self._status_due = threading.Event()  # the render loop asks; this thread writes the file
        self._stop = threading.Event()
        self._observer = None
        if use_events:
            self._observer = Observer()
            handler = _Events(self._wake, self._dirty)
            self._observer.schedule(handler, str(run.root), recursive=False)
            self._observer.schedule(handler, str(run.nn), recursive=False)
            self._observer.daemon = True
        self._thread = threading.Thread(target=self._loop, name="checkpoint-follower", daemon=True)
        self._waiting_said = False
        self._death: str | None = None
        self._dead_status_at = 0.0
        self._death_reported = False
        self._iteration_error: str | None = None
        self.status_extra: Callable[[], dict[str, Any]] = dict  # more status fields (the core's progress)
        self.shown = self.target()  # what the follower last decided to show (read by the HUD)

    # --- called from the render loop -------------------------------------------------------

    def start(self) -> None:
        protocol.clean_stale_temp_files(self.run)  # opened for following: a killed writer's leftovers go
        if self._observer is not None:
            self._observer.start()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._observer is not None:
            self._observer.stop()
        self._thread.join(timeout=5)
        self._write_status()

    def force_reload(self) -> None:
        """Reload the current target even if unchanged (viewer key)."""
        self._force.set()
        self._wake.set()

    def take_ready(self) -> CheckpointInfo | None:
        """The newest successfully loaded checkpoint not yet applied, if any."""
        with self._lock:
            ready, self._ready = self._ready, None
        return ready[0] if ready else None

    def applied(self, info: CheckpointInfo) -> None:
        """The render loop swapped these weights in."""
        with self._lock:
            self.loaded, self.loaded_at, self.phase, self.error = info, time.time(), "loaded", None
            self.loads += 1
        self.log(f"Loaded {self.describe(info)}")
        self._request_status()

    def apply_failed(self, info: CheckpointInfo, reason: str) -> None:
        """The weights did not fit the network (e.g. other hidden sizes): keep the current policy."""
        with self._lock:
            self._failed_identity, self.loaded_identity = self.loaded_identity, None
            self.phase, self.error = "failed", f"{info.path.name}: {reason}"
            self._failed_reason = self.error
        self.log(f"Keeping the current policy: {self.error}")
        self._request_status()

    @property
    def alive(self) -> bool:
        """Whether the follower thread runs (False before start and after stop or death)."""
        return self._thread.is_alive()

    def check_alive(self) -> bool:
        """Called by the render loop: report a follower thread that died, instead of pretending to follow.

        The thread survives any exception of one iteration, so this only fires for what escaped
        that (or a thread killed from outside). The status file then says so, written from here,
        at most once a second, since the thread that normally writes it is gone.
        """
        if self._stop.is_set() or self._thread.ident is None or self._thread.is_alive():
            return True  # stopped on purpose, not started yet, or running
        if not self._death_reported:
            self._death_reported = True
            with self._lock:
                self.phase = "failed"
                self.error = f"the checkpoint follower stopped ({self._death or 'unknown reason'}); restart the player"
            self.log(f"Error: {self.error}")
        now = time.monotonic()
        if now - self._dead_status_at >= HEARTBEAT_SECONDS:
            self._dead_status_at = now
            self._write_status()
        return False

    def _request_status(self) -> None:
        """Have the follower thread rewrite the status file (no disk I/O on the render loop)."""
        self._status_due.set()
        self._wake.set()

    def describe(self, info: CheckpointInfo) -> str:
        reward = f", training reward {info.mean_reward:.1f}" if info.mean_reward is not None else ""
        epoch = f" (epoch {info.epoch}{reward})" if info.epoch is not None else ""
        return f"{info.path.name}{epoch}"

    # --- background thread -------------------------------------------------------------------

    def target(self) -> Target:
        if self.state.mode == protocol.MODE_MANUAL and self.state.checkpoint:
            path = protocol.checkpoint_in_run(self.run, self.state.checkpoint)
            if path is not None:
                return Target(path, protocol.MODE_MANUAL, self.state.seq)
        if self.initial_checkpoint is not None and self.state.seq == 0:
            return Target(self.initial_checkpoint, protocol.MODE_MANUAL, 0)
        return Target(self.run.latest_checkpoint, protocol.MODE_AUTO, self.state.seq)

    def _loop(self) -> None:
        try:
            self._guarded(self._first_load)
            self._follow()
        except BaseException as err:  # recorded for check_alive(); the render loop reports it
            self._death = f"{type(err).__name__}: {protocol.first_line(err)}"
            raise

    def _follow(self) -> None:
        last_poll = last_state = last_status = last_clean = 0.0
        while not self._stop.is_set():
            self._wake.wait(timeout=min(STATE_POLL_SECONDS, self.reload_interval))
            self._wake.clear()
            now = time.monotonic()
            dirty = self._dirty.is_set()
            self._dirty.clear()
            if dirty or now - last_state >= STATE_POLL_SECONDS:
                self._guarded(self._read_state)
                last_state = now
            if dirty or self._force.is_set() or now - last_poll >= self.reload_interval:
                self._guarded(lambda: self._check(force=self._force.is_set()))
                self._force.clear()
                last_poll = now
            if self._status_due.is_set() or now - last_status >= HEARTBEAT_SECONDS:
                self._status_due.clear()
                self._write_status()
                last_status = now
            if now - last_clean >= CLEAN_SECONDS:  # a trainer killed mid-publish leaves temps behind
                self._guarded(lambda: protocol.clean_stale_temp_files(self.run))
                self._guarded(lambda: protocol.remove_dead_statuses(self.run))
                last_clean = now

    def _first_load(self) -> None:
        self._read_state()  # a choice saved by an earlier session applies from the first load
        self._announce_manual_start()
        if self.loaded_identity is None and self._failed_identity is None:  # not already tried for the state
            self._check(force=True)

    def _announce_manual_start(self) -> None:
        """A restarted player that keeps showing an old manual choice says so, and how to leave it."""
        if self.state.mode == protocol.MODE_MANUAL and self.shown.mode == protocol.MODE_MANUAL:
            self.log(
                f"Starting in manual mode: showing {self.state.checkpoint}, chosen earlier in "
                f"{protocol.state_file(self.run)}; to follow latest.pth again press Auto in the control panel "
                "(enable_control_panel=True) or delete that file."
            )

    def _guarded(self, step) -> None:
        """Run one step of the loop; an unforeseen exception is reported, never the end of the thread.

        The protocol functions refuse bad input with a reason, so this is the last line: a bug or
        a resource error (MemoryError from a hostile file) must not leave the player deaf.
        """
        try:
            step()
        except Exception as err:
            reason = f"internal error while following ({type(err).__name__}: {protocol.first_line(err)})"
            with self._lock:
                self.phase, self.error = "failed", reason
            if reason != self._iteration_error:
                self._iteration_error = reason
                self.log(f"Keeping the current policy: {reason}")

    def _read_state(self) -> None:
        state, warning = protocol.read_state(self.run)
        if warning != self.state_warning:
            self.state_warning = warning
            if warning:
                self.log(f"Ignoring the state file: {warning}")
        if state is not None and state != self.state:
            self.state = state
            self._check(force=False)

    def _check(self, force: bool) -> None:
        target = self.shown = self.target()
        identity = file_identity(target.path)
        if identity is None:
            if target.mode == protocol.MODE_MANUAL and self.loaded is not None:
                self._refuse(None, f"{target.path.name} does not exist")
            elif not self._waiting_said and self.loaded is None:
                self.log(f"Waiting for checkpoint {target.path} ...")
                self._waiting_said = True
            return
        key = (target.path, *identity)
        with self._lock:
            pending = self._ready[1] if self._ready else None
        if not force and key == self._failed_identity and self.error is None and self._failed_reason:
            self._refuse(None, self._failed_reason)  # e.g. Auto pressed while latest.pth is still refused
            return
        if not force and key in (self.loaded_identity, self._failed_identity, pending):
            return
        self.phase = "loading"
        try:
            info = self._load(target)
        except CheckpointRejected as err:
            self._refuse(key, str(err))
            return
        with self._lock:
            self._ready = (info, key)
            self.loaded_identity = key

    def _load(self, target: Target) -> CheckpointInfo:
        """Files of the run must resolve inside it (a latest.pth link out is refused like any
        other); an initial checkpoint the user named on the command line may live anywhere."""
        if target.seq == 0 and target.path == self.initial_checkpoint:
            return protocol.load_checkpoint(target.path, self.fit)
        return protocol.load_checkpoint_in_run(self.run, target.path, self.fit)

    def _refuse(self, key: tuple | None, reason: str) -> None:
        """Keep the current policy, say why once per file version, and report it in the status.

        The status names the mode, the refused file and what is still shown, e.g. "auto: latest.pth
        refused: <reason>; still showing m2.pth", not a bare 'loaded m2.pth' after pressing Auto.
        """
        if key is not None:
            self._failed_identity, self._failed_reason = key, reason
        target, shown = self.shown, self.loaded
        if shown is not None and shown.path != target.path:
            reason = f"{target.mode}: {target.path.name} refused: {reason}; still showing {shown.path.name}"
        if key is None and self.error == reason:
            return
        self.phase, self.error = "failed", reason
        self.log(f"Keeping the current policy: {reason}")
        self._write_status()

    def status(self) -> dict[str, Any]:
        info = self.loaded
        return {
            "pid": os.getpid(),
            "run": self.run.name,
            "mode": self.shown.mode,
            "seq": self.state.seq,
            "phase": self.phase,
            "checkpoint": info.path.name if info else None,
            "epoch": info.epoch if info else None,
            "reward": info.mean_reward if info else None,
            "loaded_at": self.loaded_at,
            "error": self.error,
            "state_file_warning": self.state_warning,
            "follower_alive": self._thread.is_alive() and not self._stop.is_set(),
            **self.status_extra(),
        }

    def _write_status(self) -> None:
        try:
            protocol.write_status(self.run, self.status())
        except (OSError, ValueError, TypeError) as err:
            self.log(f"Warning: could not write the player status file ({err})")

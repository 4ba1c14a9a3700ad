"""rl_games' own file I/O, made safe: loads without running code, saves that fail loudly, a
TensorBoard writer that cannot hang training.

rl_games 1.6.5 loads checkpoints with torch.load(weights_only=False) (a crafted file runs code on
resume), retries a failed save five times over ~31 s and then raises, and tensorboardX's writer
thread dies on a write error, after which its bounded queue fills and `add_scalar` blocks the
training thread for ever. We use rl_games as a library, so these are replaced at the seams it
calls through (`torch_ext.load_checkpoint`, `torch_ext.save_checkpoint`, the event writer).
"""

from __future__ import annotations

import contextlib
import queue
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from isaacgymenvs import protocol
from isaacgymenvs.errors import RunFailed, UserError


def weights_only_loader(trust: bool) -> Callable[[str], Any]:
    """rl_games' load_checkpoint, loading with weights_only=True unless the user trusts the file."""
    from rl_games.algos_torch import torch_ext

    full_unpickle = torch_ext.load_checkpoint

    def load_checkpoint(filename: str) -> Any:
        if trust:
            try:
                return full_unpickle(filename)
            except Exception as err:  # torn or not a checkpoint: one sentence, not a traceback
                reason = protocol.first_line(err)
                raise UserError(f"checkpoint={filename} is torn or not a checkpoint ({reason}).") from None
        print(f"=> loading checkpoint '{filename}' (weights only)", flush=True)
        try:
            state = protocol.torch_load_weights(filename)
        except Exception as err:
            if protocol.needs_full_unpickling(err):
                raise UserError(
                    f"checkpoint={filename} needs full unpickling, which can run code from the file; "
                    "if you trust it, add trust_checkpoint=True."
                ) from None
            reason = protocol.first_line(err)
            raise UserError(f"checkpoint={filename} is torn or not a checkpoint ({reason}).") from None
        if isinstance(state, dict) and isinstance(state.get("model"), dict):
            state["model"] = protocol.plain_model_keys(state["model"])
        return state

    return load_checkpoint


def atomic_saver(fn: str, state: Any) -> None:
    """rl_games' save_checkpoint: atomic (temp + rename) and failing at once with a clear message.

    rl_games would retry for ~31 s and then raise a bare RuntimeError; a full disk does not
    empty itself in that time, so training stops with one sentence instead (the run keeps its
    previous files intact, since nothing is written in place).
    """
    import torch

    path = Path(fn + ".pth")
    print(f"=> saving checkpoint '{path}'", flush=True)
    try:
        protocol.atomic_write(path, lambda f: torch.save(state, f))
    except Exception as err:  # torch.save reports a full disk as RuntimeError
        raise RunFailed(
            f"Training stopped: could not save {path} ({protocol.first_line(err)}); "
            "free some space and resume with checkpoint=<a .pth file of this run>."
        ) from None


@contextlib.contextmanager
def safe_rlgames_io(trust_checkpoint: bool) -> Iterator[None]:
    """Within this block rl_games loads weights only and saves atomically (see the module doc)."""
    from rl_games.algos_torch import torch_ext

    saved = torch_ext.load_checkpoint, torch_ext.save_checkpoint
    torch_ext.load_checkpoint = weights_only_loader(trust_checkpoint)
    torch_ext.save_checkpoint = atomic_saver
    try:
        yield
    finally:
        torch_ext.load_checkpoint, torch_ext.save_checkpoint = saved


# --- TensorBoard -------------------------------------------------------------------------------

PUT_TIMEOUT_SECONDS = 10.0


class _Once:
    """Print a warning the first time only (a full disk would otherwise warn every epoch)."""

    def __init__(self) -> None:
        self.said = False
        self._lock = threading.Lock()

    def warn(self, message: str) -> None:
        with self._lock:
            if self.said:
                return
            self.said = True
        print(f"Warning: {message}", file=sys.stderr, flush=True)


def guard_event_writer(event_file_writer: Any, logdir: str) -> None:
    """Make a tensorboardX EventFileWriter drop events instead of dying or blocking on write errors.

    Its worker thread writes and flushes the events file; an OSError there (disk full) ends the
    thread, and then the training thread's `put` on the full queue waits for ever. Here write,
    flush and close errors are caught (the thread lives and keeps draining the queue; the atexit
    close prints no traceback), and a `put` that still cannot proceed gives up after a timeout.
    """
    once = _Once()
    records = event_file_writer._ev_writer
    write_event, flush, close = records.write_event, records.flush, records.close

    def guarded(call: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any) -> Any:
            try:
                return call(*args)
            except (OSError, ValueError) as err:
                once.warn(f"TensorBoard cannot write to {logdir} ({err}); summaries are dropped, training goes on.")
                return None

        return run

    records.write_event, records.flush, records.close = guarded(write_event), guarded(flush), guarded(close)

    def add_event(event: Any) -> None:
        if event_file_writer._closed:
            return
        worker = event_file_writer._worker
        if worker is None or not worker.is_alive():
            once.warn(f"TensorBoard's writer for {logdir} stopped; summaries are dropped, training goes on.")
            return
        try:
            event_file_writer._event_queue.put(event, timeout=PUT_TIMEOUT_SECONDS)
        except queue.Full:
            once.warn(f"TensorBoard's writer for {logdir} is stuck; summaries are dropped, training goes on.")

    event_file_writer.add_event = add_event


def guard_summary_writer(writer: Any) -> bool:
    """Guard the event writer behind rl_games' writer (plain or IntervalSummaryWriter); False if none."""
    inner = getattr(writer, "writer", writer)  # IntervalSummaryWriter wraps the SummaryWriter
    file_writer = getattr(inner, "file_writer", None)
    event_writer = getattr(file_writer, "event_writer", None)
    if event_writer is None or not hasattr(event_writer, "_ev_writer"):
        return False
    guard_event_writer(event_writer, str(getattr(inner, "logdir", "summaries")))
    return True

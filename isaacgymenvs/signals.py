"""Stop signals: Ctrl+C (SIGINT), `kill`/SLURM preemption/container stop (SIGTERM) and a closed
terminal (SIGHUP) all end a process the same clean way, so the trainer publishes its final policy
whichever one arrives."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

# Seconds a stopped process may spend in library exit handlers before it ends regardless (Docker
# sends SIGKILL 10 s after SIGTERM, SLURM 30 s).
EXIT_GRACE_SECONDS = 10.0


class StopRequested(KeyboardInterrupt):
    """A stop signal arrived; raised like Ctrl+C's KeyboardInterrupt so `finally` blocks run."""

    def __init__(self, signum: int = signal.SIGINT) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def raise_on_stop_signals() -> None:
    """Make SIGTERM and SIGHUP raise StopRequested in the main thread, as SIGINT raises KeyboardInterrupt."""

    def stop(signum: int, frame: object) -> None:
        raise StopRequested(signum)

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, stop)


def exit_code(err: KeyboardInterrupt) -> int:
    """128 + the signal number, the shell's convention for a process ended by a signal."""
    return 128 + int(getattr(err, "signum", signal.SIGINT))


def describe(err: KeyboardInterrupt) -> str:
    """'Interrupted.' for Ctrl+C, 'Stopped by SIGTERM.' for the others."""
    signum = getattr(err, "signum", signal.SIGINT)
    return "Interrupted." if signum == signal.SIGINT else f"Stopped by {signal.Signals(signum).name}."


def exit_within(code: int, grace_s: float | None = None) -> None:
    """After a stop has been handled, make sure the process ends with `code`, and soon.

    The stop exception is raised wherever the main thread was, so it can leave a library's lock
    held (TensorBoard's event queue, for one); that library's exit handler then waits on the lock
    for ever, after the final policy is already published. A daemon thread ends the process after
    `grace_s`, and a second stop signal ends it at once. Flush stdout/stderr before calling: the
    forced exit does not, as the stuck thread may hold their locks.
    """
    grace_s = EXIT_GRACE_SECONDS if grace_s is None else grace_s

    def force(*_: object) -> None:
        os._exit(code)

    for signum in STOP_SIGNALS:
        signal.signal(signum, force)
    threading.excepthook = _quiet_daemon_threads(threading.excepthook)
    timer = threading.Timer(grace_s, force)
    timer.daemon = True
    timer.start()


def _quiet_daemon_threads(
    previous: Callable[[threading.ExceptHookArgs], object],
) -> Callable[[threading.ExceptHookArgs], None]:
    """An excepthook that drops what a library's daemon thread raises while the stopped process ends.

    Once the final policy is published the process tears down under such threads (tensorboardX's
    event writer, on a busy CI machine), and one that fails half-way prints 'Exception in thread
    Thread-1' after our one-line stop message. Non-daemon threads still report as before.
    """

    def hook(args: threading.ExceptHookArgs) -> None:
        if args.thread is not None and args.thread.daemon:
            return
        previous(args)

    return hook


class StopOnSignal:
    """Ctrl+C, SIGTERM or SIGHUP end the loop between steps instead of raising wherever the process is.

    A KeyboardInterrupt raised inside a frame write makes imageio-ffmpeg kill ffmpeg, which leaves
    the clip being recorded without its index and unreadable.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def __enter__(self) -> StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._request) for s in STOP_SIGNALS}
        return self

    def _request(self, signum, frame) -> None:
        self.signum = signum

    def __exit__(self, *exc: object) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)

"""Stop signals: Ctrl+C (SIGINT), `kill`/SLURM preemption/container stop (SIGTERM) and a closed
terminal (SIGHUP) all end a process the same clean way, so the trainer publishes its final policy
whichever one arrives."""

from __future__ import annotations

import signal

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


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

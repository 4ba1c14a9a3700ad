"""One player loop for every front end: the Qt window, the web page and headless play.

As in mjlab's viewer base: `PlayerLoop` owns the order of one iteration (leave for a newer run,
the front end's pending requests, the control steps that are due, one frame, the HUD), and a front
end overrides only the hooks that show things. The window calls `tick()` from its Qt timer; the
page and headless play call `run()`, which sleeps until the next step is due and ends on a stop
signal.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from isaacgymenvs.player.core import PlayerCore
from isaacgymenvs.signals import StopOnSignal, StopRequested

MAX_STEPS_PER_FRAME = 4


class RealTimePacer:
    """Keeps a core at wall-clock time, or steps it as fast as it can (`real_time=False`, evaluation).

    Each `advance()` runs the control steps that are due, at most MAX_STEPS_PER_FRAME; a front end
    too slow for real time drops the rest of the backlog instead of spiralling, and says so
    (`behind`). `frame_shown()` counts the frames the front end drew or sent in the last second.
    """

    def __init__(self, core: PlayerCore, real_time: bool = True) -> None:
        self.core, self.real_time = core, real_time
        self.start = time.perf_counter() - core.steps * core.task.dt  # pace from where the core is
        self.behind = 0
        self.frame_times: list[float] = []

    def advance(self, after_step: Callable[[], None] = lambda: None) -> bool:
        """Step to now (one step when not real time); True when a step ran (a new frame to show)."""
        core, dt = self.core, self.core.task.dt
        due = int((time.perf_counter() - self.start) / dt) - core.steps if self.real_time else 1
        for _ in range(min(max(due, 0), MAX_STEPS_PER_FRAME)):
            core.step()
            after_step()
        self.behind = max(due - MAX_STEPS_PER_FRAME, 0)
        if self.behind:
            self.start += self.behind * dt
        return due > 0

    def seconds_to_next_step(self) -> float:
        if not self.real_time:
            return 0.0
        return self.start + (self.core.steps + 1) * self.core.task.dt - time.perf_counter()

    def frame_shown(self) -> None:
        now = time.perf_counter()
        self.frame_times = [t for t in self.frame_times if now - t < 1.0] + [now]

    @property
    def fps(self) -> int:
        return len(self.frame_times)

    @property
    def slow_note(self) -> str:
        return "  (slower than real time)" if self.behind else ""


class PlayerLoop:
    """The template loop; front ends override the hooks below and nothing else of the order.

    `hud_seconds` is how often the HUD text is rebuilt (None: the front end has no HUD); a newly
    applied policy is shown at once whatever it says.
    """

    hud_seconds: float | None = 0.25

    def __init__(self, core: PlayerCore, switch: Callable[[], bool] = lambda: False, real_time: bool = True) -> None:
        self.core, self.switch = core, switch
        self.pacer = RealTimePacer(core, real_time)
        self._next_hud = 0.0
        self._hud_policy: object = None

    # --- hooks ------------------------------------------------------------------------------
    def before_steps(self) -> None:
        """Requests the front end queued from another thread (the page's Reset button)."""

    def after_step(self) -> None:
        """After every control step (a recorder that takes every n-th step)."""

    def show_frame(self) -> None:
        """Once per iteration in which a step ran: draw, send or record the current poses."""

    def show_hud(self, lines: list[str]) -> None:
        """Show the HUD text."""

    def finished(self) -> bool:
        """True ends the loop after this iteration's steps (an evaluation has its episodes)."""
        return False

    def status_line(self) -> str:
        """The front end's own HUD line (its frame rate, camera)."""
        return f"{self.pacer.fps} fps{self.pacer.slow_note}"

    # --- the order --------------------------------------------------------------------------
    def hud_lines(self) -> list[str]:
        return [*self.core.hud_lines(), self.status_line()]

    def tick(self) -> bool:
        """One iteration; False when the loop should end (a newer run to show, or finished)."""
        if self.switch():
            return False
        self.before_steps()
        if self.pacer.advance(self.after_step):
            self.show_frame()
            self.pacer.frame_shown()
        if self.finished():
            return False
        self._refresh_hud()
        return True

    def run(self) -> None:
        """tick() at the pace of the simulation until it ends (returns) or a stop signal arrives
        (raises StopRequested after the current iteration, never inside a frame write)."""
        with StopOnSignal() as stop:
            while not stop.requested:
                if not self.tick():
                    return
                wait = self.pacer.seconds_to_next_step()
                if wait > 0:
                    time.sleep(wait)
        raise StopRequested(stop.signum)

    def _refresh_hud(self) -> None:
        if self.hud_seconds is None:
            return
        now = time.perf_counter()
        loaded = self.core.follower.loaded
        if now >= self._next_hud or loaded is not self._hud_policy:  # a new policy: say so at once
            self._hud_policy = loaded
            self._next_hud = now + self.hud_seconds
            self.show_hud(self.hud_lines())

"""Play without a window: follow the run in real time, record MP4 clips, or evaluate N episodes."""

from __future__ import annotations

import contextlib
import csv
import io
import queue
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from isaacgymenvs import protocol
from isaacgymenvs.errors import UserError
from isaacgymenvs.player.core import PlayerCore
from isaacgymenvs.player.loop import PlayerLoop
from isaacgymenvs.player.render import MultiEnvRenderer
from isaacgymenvs.signals import StopOnSignal, StopRequested


def policy_tag(core: PlayerCore) -> str:
    """'epoch<N>' of the loaded policy ('untrained' before one is loaded), for output file names."""
    info = core.follower.loaded
    return f"epoch{info.epoch}" if info and info.epoch is not None else "untrained"


QUEUED_FRAMES = 2
"""Frames the player may be ahead of the recorder thread.

Bounded, so that memory and the delay from a step to its frame in the clip stay small. And
backpressure: when the recorder falls behind, the player blocks on the full queue (then, if late,
its real-time pacer drops the backlog as for any slow front end) rather than frames being dropped
silently or piling up in memory. One would let a frame be drawn while the player steps on; the
second absorbs an uneven frame or step without stalling the player.
"""

WAIT_SECONDS = 30.0
"""The longest the player waits for the recorder thread to make its renderer, or at close() to draw
the queued frames and finish its clip (each takes well under a second), before it raises instead of
hanging."""


@dataclass(frozen=True)
class Frame:
    """One recorded step, copied at submission: the player's later steps cannot change a queued frame.

    `tag` (policy_tag() at this step) and `time` (when it was taken) name a clip that starts with it.
    """

    qpos: np.ndarray  # [num_envs, nq]
    arrows: np.ndarray | None  # [num_envs, k, 3] velocities drawn above the robots (drivable tasks), or None
    tag: str
    time: datetime


_STOP = object()  # queued by close(): finish the clip in progress, close the renderer and end


class RecorderThread(threading.Thread):
    """Draws and encodes the queued frames into consecutive clips, off the player's thread.

    Drawing a frame (llvmpipe: ~25 ms for 4 Ant envs at 640x360) mostly releases the GIL, so the
    player steps on meanwhile. The renderer is made, used and closed on this thread only: a GL
    context is bound to the thread that made it current. An exception ends the thread and is kept in
    `error` for the player's side to raise; a clip cut short by it is not copied into the run.
    """

    def __init__(
        self,
        make_renderer: Callable[[], MultiEnvRenderer],
        directory: Path,
        root: Path,
        length: int,
        fps: float,
        max_clips: int,
    ) -> None:
        super().__init__(name="clip-recorder", daemon=True)  # daemon: never keeps a failing process alive
        self.make_renderer, self.directory, self.root = make_renderer, directory, root
        self.length, self.fps, self.max_clips = length, fps, max_clips
        self.queue: queue.Queue[Frame | object] = queue.Queue(maxsize=QUEUED_FRAMES)
        self.ready = threading.Event()  # set once the renderer exists, or failed to
        self.error: BaseException | None = None
        self.scratch = tempfile.TemporaryDirectory(prefix="isaacgymenvs-clip-")
        self.writer = None
        self.pending: Path | None = None
        self.frames = 0  # in the clip in progress
        self.clips: list[Path] = []  # written into the run and still kept, oldest first

    def run(self) -> None:
        try:
            renderer = self.make_renderer()
        except BaseException as err:
            self.error = err
            return
        finally:
            self.ready.set()
        try:
            while (item := self.queue.get()) is not _STOP:
                self.record(renderer, item)
            self.finish_clip()
        except BaseException as err:
            self.error = err
            self.abandon_clip()
        finally:
            try:
                renderer.close()
            except BaseException as err:  # said on the player's side too, unless an earlier error was
                self.error = self.error or err

    def record(self, renderer: MultiEnvRenderer, frame: Frame) -> None:
        """Draw and encode one frame; the first starts a clip and the `length`-th finishes it."""
        import imageio_ffmpeg

        if self.writer is None:
            self.pending = self.directory / f"{frame.time:%Y-%m-%d_%H-%M-%S}_{frame.tag}.mp4"
            # x264 would start 1.5 threads per core; two keep up with real time at this size and leave
            # the other cores (and their turbo headroom) to a trainer on the same machine. 'veryfast'
            # halves x264's CPU time against its default 'medium' (0.16 vs 0.30 core-seconds per second
            # of 640x360 clip on this project's 2-core CI machine) for clips ~20% larger.
            self.writer = imageio_ffmpeg.write_frames(
                str(Path(self.scratch.name) / "clip.mp4"), (renderer.width, renderer.height), fps=self.fps,
                quality=7, macro_block_size=8, output_params=["-threads", "2", "-preset", "veryfast"],
            )  # fmt: skip
            self.writer.send(None)
        self.writer.send(renderer.render(frame.qpos, frame.arrows).tobytes())
        self.frames += 1
        if self.frames == self.length:
            self.finish_clip()

    def finish_clip(self) -> None:
        """Finish the clip in progress and move it into the run (kept in the temp dir on failure)."""
        if self.writer is None:
            return
        writer, self.writer = self.writer, None
        writer.close()
        clip, self.pending = self.pending, None
        frames, self.frames = self.frames, 0
        with open(Path(self.scratch.name) / "clip.mp4", "rb") as source:
            protocol.atomic_write(clip, lambda f: shutil.copyfileobj(source, f), root=self.root)
        self.clips.append(clip)
        print(f"Wrote {clip} ({frames} frames, {frames / self.fps:.1f} s)", flush=True)
        while self.max_clips and len(self.clips) > self.max_clips:
            old = self.clips.pop(0)
            with contextlib.suppress(OSError):
                protocol.unlink_in(self.root, old)

    def abandon_clip(self) -> None:
        """After a failure: end ffmpeg, so that no process outlives the recorder, and copy nothing."""
        writer, self.writer = self.writer, None
        if writer is not None:
            with contextlib.suppress(Exception):
                writer.close()


class ClipRecorder:
    """Consecutive MP4 clips of `length` frames into `<run>/videos/`, playing in real time.

    A frame is taken every `stride` = round(1 / (dt * fps)) steps and the clip is written at
    1 / (dt * stride) fps, so a 60 Hz task recorded at fps=30 renders every other step.
    The player only copies each frame's poses into a short queue (QUEUED_FRAMES); a RecorderThread
    draws and encodes them, with a renderer it gets from `make_renderer` on that thread. ffmpeg
    writes each clip into a private temp directory; a finished clip is then copied into the run below
    `root` without following links (protocol.atomic_write), so a `videos/` swapped for a link
    mid-clip cannot make the player write outside the run. A failure of the recorder is raised by
    the next add() or close() as a RuntimeError.
    """

    def __init__(
        self,
        make_renderer: Callable[[], MultiEnvRenderer],
        directory: Path,
        length: int,
        dt: float,
        fps: float = 30,
        root: Path | None = None,
        max_clips: int = 0,
    ) -> None:
        root = root if root is not None else directory.parent
        self.stride = max(1, round(1.0 / (dt * fps)))
        self.fps = 1.0 / (dt * self.stride)
        self.steps = 0
        self.closed = False
        self.reported = False  # the recorder's error was raised once; close() does not repeat it
        # max_clips: the newest this many are kept (0: all): clips come every ~10 s
        self.thread = RecorderThread(make_renderer, directory, root, length, self.fps, max_clips)
        self.thread.start()
        if not self.thread.ready.wait(WAIT_SECONDS):
            raise RuntimeError(f"The clip recorder could not make its renderer within {WAIT_SECONDS:.0f} s.")
        if isinstance(self.thread.error, UserError):
            raise self.thread.error  # a sentence for the user, not a traceback
        self.raise_failure()  # a renderer that cannot be made fails here, before any step

    @property
    def clips(self) -> list[Path]:
        """The clips written into the run and still kept, oldest first (complete after close())."""
        return self.thread.clips

    def add(self, core: PlayerCore) -> None:
        """Called once per player step; queues every `stride`-th one to be drawn and encoded."""
        self.steps += 1
        if (self.steps - 1) % self.stride:
            return
        arrows = core.velocity_arrows()
        # np.array copies: on the CPU, .cpu().numpy() shares the physics state's memory.
        frame = Frame(
            qpos=np.array(core.task.physics.state().qpos.cpu().numpy()),
            arrows=None if arrows is None else np.array(arrows),
            tag=policy_tag(core),
            time=datetime.now(),
        )
        self.submit(frame)

    def submit(self, frame: Frame) -> None:
        """Queue a frame; blocks while QUEUED_FRAMES are waiting (backpressure, see there)."""
        if self.closed:
            raise RuntimeError("The clip recorder is closed.")
        while True:
            self.raise_failure()
            if not self.thread.is_alive():
                raise RuntimeError("The clip recorder's thread has ended.")
            try:
                self.thread.queue.put(frame, timeout=0.1)  # woken now and then to notice a failure
                return
            except queue.Full:
                pass

    def close(self) -> None:
        """Draw the queued frames, finish the clip in progress, move it into the run and end the thread."""
        if self.closed:
            return
        self.closed = True
        deadline = time.monotonic() + WAIT_SECONDS
        while self.thread.is_alive() and time.monotonic() < deadline:
            try:
                self.thread.queue.put(_STOP, timeout=0.1)
                break
            except queue.Full:
                pass
        self.thread.join(max(0.0, deadline - time.monotonic()))
        if self.thread.is_alive():
            raise RuntimeError(f"The clip recorder did not finish its clip within {WAIT_SECONDS:.0f} s.")
        self.raise_failure()

    def raise_failure(self) -> None:
        """The recorder thread's exception, once, as a RuntimeError on the caller's (player's) thread."""
        error = self.thread.error
        if error is not None and not self.reported:
            self.reported = True
            raise RuntimeError(f"The clip recorder failed: {type(error).__name__}: {error}") from error


def write_returns(path: Path, returns: list[float], root: Path | None = None) -> None:
    """The evaluation's returns as CSV, written below the run's `root` without following links."""
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(["episode", "return"])
    writer.writerows(enumerate(returns, 1))
    root = root if root is not None else path.parent
    if path.parent != root:
        protocol.make_dirs_in(root, path.parent)  # created below the run, never through a link
    protocol.atomic_write_bytes(path, text.getvalue().encode(), root=root)


def wait_for_policy(core: PlayerCore, stop: StopOnSignal) -> None:
    """Evaluation scores the checkpoint, not the zero actions a player takes while it loads.

    Without this wait the first steps of every env ran untrained (as many as the load took, a
    varying number), so evaluations of one checkpoint with one seed differed from run to run.
    """
    while not stop.requested and not core.apply_ready_weights():
        follower = core.follower
        if follower.phase == "failed" and follower.loaded is None:
            raise UserError(f"Cannot evaluate: {follower.error}.")
        time.sleep(0.005)


PROGRESS_SECONDS = 5.0  # an evaluation says how far it is this often (100 Ant episodes: ~70 s here)


class HeadlessLoop(PlayerLoop):
    """No window: records clips when given a recorder, and ends an evaluation once `games_num`
    episodes have finished (stepping as fast as it can instead of in real time)."""

    hud_seconds = None

    def __init__(
        self, core: PlayerCore, games_num: int, recorder: ClipRecorder | None, switch: Callable[[], bool]
    ) -> None:
        super().__init__(core, switch, real_time=games_num <= 0)
        self.games_num, self.recorder = games_num, recorder
        self.next_progress = time.monotonic() + PROGRESS_SECONDS

    def after_step(self) -> None:
        if self.recorder is not None:
            self.recorder.add(self.core)
        if self.games_num > 0 and time.monotonic() >= self.next_progress:
            self.next_progress = time.monotonic() + PROGRESS_SECONDS
            done = list(self.core.finished_returns)[: self.games_num]
            mean = f", mean return so far {sum(done) / len(done):.2f}" if done else ""
            print(f"Evaluating: {len(done)}/{self.games_num} episodes{mean}", flush=True)

    def finished(self) -> bool:
        return 0 < self.games_num <= len(self.core.finished_returns)


def run_headless(
    core: PlayerCore,
    games_num: int = 0,
    recorder: ClipRecorder | None = None,
    eval_dir: Path | None = None,
    switch: Callable[[], bool] = lambda: False,
) -> Path | None:
    """Real-time paced unless evaluating (`games_num` > 0, as fast as possible); returns early when
    `switch()` turns true (a newer run to show).

    Returns the CSV of episode returns when evaluating. A stop signal ends the loop after the
    current step, closes the clip being recorded, and raises StopRequested (a KeyboardInterrupt).
    """
    loop = HeadlessLoop(core, games_num, recorder, switch)
    try:
        if games_num > 0:
            with StopOnSignal() as stop:
                wait_for_policy(core, stop)
            if stop.requested:
                raise StopRequested(stop.signum)
        loop.run()
    finally:
        if recorder is not None:
            recorder.close()
    if not loop.finished():
        return None  # a newer run to show
    path = eval_dir / f"returns_{policy_tag(core)}_{datetime.now():%Y-%m-%d_%H-%M-%S}.csv"
    write_returns(path, list(core.finished_returns)[:games_num], root=eval_dir.parent)
    return path

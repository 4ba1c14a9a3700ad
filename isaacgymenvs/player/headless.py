"""Play without a window: follow the run in real time, record MP4 clips, or evaluate N episodes."""

from __future__ import annotations

import contextlib
import csv
import io
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

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


class ClipRecorder:
    """Consecutive MP4 clips of `length` frames into `<run>/videos/`, playing in real time.

    A frame is taken every `stride` = round(1 / (dt * fps)) steps and the clip is written at
    1 / (dt * stride) fps, so a 60 Hz task recorded at fps=30 renders every other step.
    ffmpeg writes each clip into a private temp directory; a finished clip is then copied into the
    run below `root` without following links (protocol.atomic_write), so a `videos/` swapped for a
    link mid-clip cannot make the player write outside the run.
    """

    def __init__(
        self,
        renderer: MultiEnvRenderer,
        directory: Path,
        length: int,
        dt: float,
        fps: float = 30,
        root: Path | None = None,
        max_clips: int = 0,
    ) -> None:
        self.renderer, self.directory, self.length = renderer, directory, length
        self.root = root if root is not None else directory.parent
        self.max_clips = max_clips  # the newest this many are kept (0: all): clips come every ~10 s
        self.stride = max(1, round(1.0 / (dt * fps)))
        self.fps = 1.0 / (dt * self.stride)
        self.scratch = tempfile.TemporaryDirectory(prefix="isaacgymenvs-clip-")
        self.writer = None
        self.pending: Path | None = None
        self.steps = 0
        self.frames = 0
        self.clips: list[Path] = []

    def add(self, core: PlayerCore) -> None:
        """Called once per player step; renders and encodes every `stride`-th one."""
        import imageio_ffmpeg

        self.steps += 1
        if (self.steps - 1) % self.stride:
            return
        if self.writer is None:
            self.pending = self.directory / f"{datetime.now():%Y-%m-%d_%H-%M-%S}_{policy_tag(core)}.mp4"
            size = (self.renderer.width, self.renderer.height)
            # x264 would start 1.5 threads per core; two keep up with real time at this size and leave
            # the other cores (and their turbo headroom) to a trainer on the same machine. 'veryfast'
            # halves x264's CPU time against its default 'medium' (0.16 vs 0.30 core-seconds per second
            # of 640x360 clip on this project's 2-core CI machine) for clips ~20% larger.
            self.writer = imageio_ffmpeg.write_frames(
                str(Path(self.scratch.name) / "clip.mp4"), size, fps=self.fps, quality=7, macro_block_size=8,
                output_params=["-threads", "2", "-preset", "veryfast"],
            )  # fmt: skip
            self.writer.send(None)
        qpos = core.task.physics.state().qpos.cpu().numpy()
        self.writer.send(self.renderer.render(qpos, core.velocity_arrows()).tobytes())
        self.frames += 1
        if self.frames % self.length == 0:
            self.close()

    def close(self) -> None:
        """Finish the clip in progress and move it into the run (kept in the temp dir on failure)."""
        if self.writer is None:
            return
        self.writer.close()
        self.writer = None
        clip, self.pending = self.pending, None
        frames = (self.frames - 1) % self.length + 1
        with open(Path(self.scratch.name) / "clip.mp4", "rb") as source:
            protocol.atomic_write(clip, lambda f: shutil.copyfileobj(source, f), root=self.root)
        self.clips.append(clip)
        print(f"Wrote {clip} ({frames} frames, {frames / self.fps:.1f} s)", flush=True)
        while self.max_clips and len(self.clips) > self.max_clips:
            old = self.clips.pop(0)
            with contextlib.suppress(OSError):
                protocol.unlink_in(self.root, old)


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

"""The clip recorder draws and encodes on its own thread: frame order, copies, backpressure, failures.

A shading renderer stands in for MuJoCo: each frame is one grey level taken from qpos, so the
decoded clip says which pose was drawn, and it notes the thread that made, used and closed it.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from isaacgymenvs.player.headless import QUEUED_FRAMES, ClipRecorder

imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")


class ShadingRenderer:
    """A MultiEnvRenderer's interface: render() returns a frame of the grey level qpos[0, 0]."""

    width, height = 16, 16

    def __init__(self, gate: threading.Event | None = None, fail_at: int = 0) -> None:
        self.gate, self.fail_at = gate, fail_at
        self.made_on = threading.current_thread().name
        self.drawn: list[int] = []
        self.drawn_on: set[str] = set()
        self.closed_on: str | None = None

    def render(self, qpos: np.ndarray, arrows: np.ndarray | None = None) -> np.ndarray:
        if self.gate is not None:
            assert self.gate.wait(10)
        if len(self.drawn) + 1 == self.fail_at:
            raise ValueError("no GL context")
        self.drawn.append(int(qpos[0, 0]))
        self.drawn_on.add(threading.current_thread().name)
        return np.full((self.height, self.width, 3), int(qpos[0, 0]), np.uint8)

    def close(self) -> None:
        self.closed_on = threading.current_thread().name


class FakeCore:
    """What the recorder reads of a PlayerCore. qpos is a CPU tensor stepped in place, so
    `.cpu().numpy()` shares its memory, as the MuJoCo backend's state does."""

    def __init__(self) -> None:
        self.qpos = torch.zeros(2, 3)
        self.task = SimpleNamespace(physics=SimpleNamespace(state=lambda: SimpleNamespace(qpos=self.qpos)))
        self.follower = SimpleNamespace(loaded=SimpleNamespace(epoch=1))

    def velocity_arrows(self) -> None:
        return None

    def step_to(self, shade: int, epoch: int | None = None) -> None:
        self.qpos.fill_(shade)
        if epoch is not None:
            self.follower.loaded.epoch = epoch


def make_recorder(tmp_path: Path, renderer: ShadingRenderer, length: int = 100, max_clips: int = 0) -> ClipRecorder:
    """A recorder into tmp_path/videos that takes every add() as a frame (dt * fps = 1)."""
    (tmp_path / "videos").mkdir(exist_ok=True)

    def make() -> ShadingRenderer:
        renderer.made_on = threading.current_thread().name
        return renderer

    return ClipRecorder(make, tmp_path / "videos", length, dt=1 / 30, fps=30, root=tmp_path, max_clips=max_clips)


def shades(clip: Path) -> list[int]:
    reader = imageio_ffmpeg.read_frames(str(clip))
    meta = next(reader)
    return [int(round(np.frombuffer(f, np.uint8).mean())) for f in reader] if meta else []


def ffmpeg_children() -> list[int]:
    """Live ffmpeg processes this test process started (none may outlive a recorder)."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
        except (OSError, ValueError):
            continue
        name, rest = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :].split()
        if "ffmpeg" in name and int(rest[1]) == os.getpid() and rest[0] != "Z":
            pids.append(int(entry.name))
    return pids


def recorder_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "clip-recorder"]


@pytest.mark.timeout(60)
def test_frames_are_drawn_in_order_on_the_recorder_thread_from_copies_taken_at_submission(tmp_path):
    gate = threading.Event()
    renderer = ShadingRenderer(gate)
    core = FakeCore()
    recorder = make_recorder(tmp_path, renderer)
    for shade in (40, 80, 120):  # one being drawn (held at the gate), QUEUED_FRAMES waiting
        core.step_to(shade)
        recorder.add(core)
    core.step_to(250, epoch=2)  # the player steps on before any of them is drawn
    gate.set()
    for shade in (160, 200):
        core.step_to(shade)
        recorder.add(core)
    recorder.close()
    assert renderer.drawn == [40, 80, 120, 160, 200]
    assert renderer.made_on == "clip-recorder" and renderer.drawn_on == {"clip-recorder"}
    assert renderer.closed_on == "clip-recorder"
    (clip,) = recorder.clips
    assert clip.parent == tmp_path / "videos" and clip.name.endswith("_epoch1.mp4")  # the first frame's policy
    got = shades(clip)
    assert len(got) == 5 and all(abs(g - w) <= 6 for g, w in zip(got, [40, 80, 120, 160, 200], strict=True)), got
    assert not recorder_threads() and not ffmpeg_children()


@pytest.mark.timeout(60)
def test_the_player_blocks_while_the_queue_is_full_and_goes_on_once_a_frame_is_drawn(tmp_path):
    gate = threading.Event()
    recorder = make_recorder(tmp_path, ShadingRenderer(gate))
    core = FakeCore()
    for _ in range(1 + QUEUED_FRAMES):  # one held at the gate, the queue full
        recorder.add(core)
    blocked = threading.Thread(target=recorder.add, args=(core,), daemon=True)
    blocked.start()
    blocked.join(0.5)
    assert blocked.is_alive()  # backpressure: neither dropped nor queued without bound
    gate.set()
    blocked.join(10)
    assert not blocked.is_alive()
    recorder.close()
    assert len(shades(recorder.clips[0])) == 2 + QUEUED_FRAMES


@pytest.mark.timeout(60)
def test_clips_rotate_every_length_frames_and_only_the_newest_are_kept(tmp_path, capsys):
    core = FakeCore()
    recorder = make_recorder(tmp_path, ShadingRenderer(), length=2, max_clips=2)
    for i in range(1, 8):
        core.step_to(30 * i, epoch=i)  # a clip is named after its first frame's policy
        recorder.add(core)
    recorder.close()
    wrote = [line for line in capsys.readouterr().out.splitlines() if line.startswith("Wrote ")]
    assert len(wrote) == 4 and wrote[-1].endswith("(1 frames, 0.0 s)"), wrote
    kept = sorted((tmp_path / "videos").iterdir())
    assert [c.name.split("_")[-1] for c in kept] == ["epoch5.mp4", "epoch7.mp4"] and kept == sorted(recorder.clips)
    assert len(shades(kept[0])) == 2 and len(shades(kept[1])) == 1


@pytest.mark.timeout(30)
def test_a_renderer_failing_on_the_recorder_thread_raises_on_the_player_side_without_hanging(tmp_path):
    gate = threading.Event()
    renderer = ShadingRenderer(gate, fail_at=1)
    recorder = make_recorder(tmp_path, renderer)
    core = FakeCore()
    start = time.monotonic()
    threading.Timer(0.3, gate.set).start()  # fails once the player waits on a full queue
    with pytest.raises(RuntimeError, match="clip recorder failed: ValueError: no GL context"):
        for _ in range(100):  # the dead thread never takes a frame again: the player must not wait forever
            recorder.add(core)
    recorder.close()  # said once: closing after the failure neither raises again nor hangs
    assert time.monotonic() - start < 10
    assert renderer.closed_on == "clip-recorder" and not recorder_threads() and not ffmpeg_children()
    assert not list((tmp_path / "videos").iterdir())  # the clip cut short is not copied into the run


@pytest.mark.timeout(30)
def test_a_renderer_that_cannot_be_made_fails_the_recorder_at_once(tmp_path):
    def make() -> ShadingRenderer:
        raise OSError("EGL: no display")

    with pytest.raises(RuntimeError, match="clip recorder failed: OSError: EGL: no display"):
        ClipRecorder(make, tmp_path / "videos", length=10, dt=1 / 30, root=tmp_path)
    assert not recorder_threads()

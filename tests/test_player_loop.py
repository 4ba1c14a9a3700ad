"""The one player loop every front end runs: its order, real-time pacing, evaluation pace and stops."""

from __future__ import annotations

import os
import signal
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

from isaacgymenvs.player.loop import MAX_STEPS_PER_FRAME, PlayerLoop
from isaacgymenvs.signals import StopRequested


class FakeCore:
    """What the loop uses of PlayerCore: steps, the task's dt, the follower's loaded policy, HUD lines."""

    def __init__(self, dt: float = 0.01) -> None:
        self.task = SimpleNamespace(dt=dt)
        self.follower = SimpleNamespace(loaded=None)
        self.steps = 0

    def step(self) -> None:
        self.steps += 1

    def hud_lines(self) -> list[str]:
        return [f"step {self.steps}"]


class Recording(PlayerLoop):
    def __init__(self, core, **kwargs) -> None:
        super().__init__(core, **kwargs)
        self.calls: list[str] = []

    def before_steps(self) -> None:
        self.calls.append("before")

    def after_step(self) -> None:
        self.calls.append("step")

    def show_frame(self) -> None:
        self.calls.append("frame")

    def show_hud(self, lines: list[str]) -> None:
        self.calls.append("hud")


def test_one_tick_runs_the_due_steps_then_one_frame_then_the_hud():
    core = FakeCore(dt=0.01)
    loop = Recording(core)
    loop.pacer.start -= 0.025  # two steps due
    assert loop.tick()
    assert loop.calls == ["before", "step", "step", "frame", "hud"] and core.steps == 2
    loop.calls.clear()
    assert loop.tick() and loop.calls == ["before"]  # nothing due: no frame, HUD not yet due again


def test_a_new_policy_is_shown_in_the_hud_at_once():
    core = FakeCore(dt=10.0)
    loop = Recording(core)
    loop.tick()
    loop.calls.clear()
    core.follower.loaded = object()
    loop.tick()
    assert loop.calls == ["before", "hud"]


def test_a_slow_front_end_drops_the_backlog_instead_of_spiralling():
    core = FakeCore(dt=0.001)
    loop = Recording(core)
    loop.pacer.start -= 1.0  # a second behind: 1000 steps due
    loop.tick()
    assert core.steps == MAX_STEPS_PER_FRAME and loop.pacer.behind > 900
    assert "slower than real time" in loop.status_line()
    assert 0 < loop.pacer.seconds_to_next_step() <= 0.001  # paced from now on, not from the backlog


def test_evaluation_steps_once_per_tick_without_waiting_and_ends_when_finished():
    core = FakeCore(dt=100.0)  # real time would wait 100 s per step
    loop = Recording(core, real_time=False)
    loop.finished = lambda: core.steps >= 5
    start = time.perf_counter()
    loop.run()
    assert core.steps == 5 and time.perf_counter() - start < 5


def test_switch_ends_the_loop_before_any_step():
    core = FakeCore()
    loop = Recording(core, switch=lambda: True)
    loop.run()
    assert core.steps == 0 and loop.calls == []


def test_a_stop_signal_ends_run_between_iterations():
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers need the main thread")
    core = FakeCore(dt=0.001)
    loop = Recording(core)
    before = signal.getsignal(signal.SIGTERM)
    timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    with pytest.raises(StopRequested) as stop:
        loop.run()
    timer.join()
    assert stop.value.signum == signal.SIGTERM and core.steps > 0
    assert signal.getsignal(signal.SIGTERM) is before  # the caller's handler is back


def test_an_evaluation_says_how_far_it_is(monkeypatch, capsys):
    """games_num=100 printed nothing for 72 s, then one line."""
    import types

    from isaacgymenvs.player import headless

    monkeypatch.setattr(headless, "PROGRESS_SECONDS", 0.0)
    core = types.SimpleNamespace(steps=0, task=types.SimpleNamespace(dt=0.01), finished_returns=[])
    loop = headless.HeadlessLoop(core, games_num=10, recorder=None, switch=lambda: False)
    loop.after_step()
    core.finished_returns.extend([1.0, 3.0])
    loop.after_step()
    assert capsys.readouterr().out.splitlines() == [
        "Evaluating: 0/10 episodes",
        "Evaluating: 2/10 episodes, mean return so far 2.00",
    ]


def test_the_all_robots_camera_keeps_every_robot_in_view_as_they_spread(make_cfg):
    """Trained Ants run apart: with a fixed distance only 2-3 of 4 stayed in the picture."""
    import math

    import numpy as np

    from isaacgymenvs.player.render import MultiEnvRenderer
    from isaacgymenvs.tasks import make_task

    task = make_task(make_cfg("Ant", "num_envs=4"))
    renderer = MultiEnvRenderer(task.model, 4, 5.0, "fast")
    try:
        qpos = task.physics.state().qpos.cpu().numpy().copy()
        qpos[:, 0] += np.array([40.0, -35.0, 10.0, 0.0])  # the robots ran off in different directions
        qpos[:, 1] += np.array([5.0, 30.0, -45.0, 0.0])
        renderer.follow_position(qpos)
        cam = renderer.camera
        az, el = math.radians(cam.azimuth), math.radians(cam.elevation)
        forward = np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])
        eye = np.asarray(cam.lookat) - cam.distance * forward
        right = np.cross(forward, [0.0, 0.0, 1.0])
        right /= np.linalg.norm(right)
        up = np.cross(right, forward)
        tan_v = math.tan(math.radians(task.model.vis.global_.fovy) / 2)
        tan_h = tan_v * renderer.width / renderer.height
        for i in range(4):
            d = qpos[i, :3] + renderer.offsets[i] - eye
            depth = float(d @ forward)
            x, y = float(d @ right) / depth, float(d @ up) / depth
            assert depth > 0 and abs(x) < tan_h and abs(y) < tan_v, f"robot {i} is outside the view ({x:.2f}, {y:.2f})"
    finally:
        renderer.close()


def test_a_frame_of_many_envs_draws_one_floor_and_every_envs_other_geoms(make_cfg):
    """Every env's copy of the infinite floor cost llvmpipe ~4 ms a frame even when transparent;
    the copies are typed NONE (not drawn), and each env's own world geoms (Cartpole's rail) stay."""
    import mujoco

    from isaacgymenvs.player.render import MultiEnvRenderer
    from isaacgymenvs.tasks import make_task

    def drawn_types(task, num_envs: int) -> list:
        renderer = MultiEnvRenderer(task.model, num_envs, 5.0, "fast")
        try:
            renderer.render(task.physics.state().qpos.cpu().numpy()[:num_envs])
            scene = renderer.renderer.scene
            return [t for j in range(scene.ngeom) if (t := scene.geoms[j].type) != mujoco.mjtGeom.mjGEOM_NONE]
        finally:
            renderer.close()

    for name in ("Ant", "Cartpole"):
        task = make_task(make_cfg(name, "num_envs=3"))
        one, three = drawn_types(task, 1), drawn_types(task, 3)
        assert one.count(mujoco.mjtGeom.mjGEOM_PLANE) == three.count(mujoco.mjtGeom.mjGEOM_PLANE) == 1, name
        assert len(three) == 1 + 3 * (len(one) - 1), (name, len(one), len(three))


def test_fast_quality_draws_the_floor_finite_under_robots_far_from_the_origin(make_cfg):
    """Software GL spent more on MuJoCo's infinite plane than on the robots, and that plane ends
    ~90 m from the origin: Ants that had run 150 m stood on nothing. Fast quality draws a finite
    floor that moves with the camera, its edge faded by fog; the task's own model is unchanged."""
    import mujoco

    from isaacgymenvs.player.render import MultiEnvRenderer
    from isaacgymenvs.tasks import make_task

    task = make_task(make_cfg("Ant", "num_envs=4"))
    size_before = task.model.geom_size.copy()
    renderer = MultiEnvRenderer(task.model, 4, 5.0, "fast")
    try:
        qpos = task.physics.state().qpos.cpu().numpy()[:4].copy()
        qpos[:, 0] += 150.0
        image = renderer.render(qpos).astype(np.float32)
        scene = renderer.renderer.scene
        floors = [scene.geoms[j] for j in range(scene.ngeom) if scene.geoms[j].type == mujoco.mjtGeom.mjGEOM_PLANE]
        assert len(floors) == 1 and floors[0].size[0] > 0 and abs(floors[0].pos[0] - 150.0) <= 10.0
        assert scene.flags[mujoco.mjtRndFlag.mjRND_FOG]
        # the checks of the floor in the picture's lower quarter, not an even haze
        assert image[-image.shape[0] // 4 :].std(axis=(0, 1)).mean() > 5.0
    finally:
        renderer.close()
    assert np.array_equal(task.model.geom_size, size_before)


def test_high_quality_draws_its_infinite_floor_under_robots_far_from_the_origin(make_cfg):
    """MuJoCo draws an infinite plane only so far around its own position: at 150 m from the origin
    the Ants of a GPU player's window stood on nothing. High quality keeps the infinite plane (its
    reflections and horizon haze) and centres it under the camera, as fast quality does its finite one."""
    import mujoco

    from isaacgymenvs.player.render import MultiEnvRenderer
    from isaacgymenvs.tasks import make_task

    task = make_task(make_cfg("Ant", "num_envs=4"))
    qpos = task.physics.state().qpos.cpu().numpy()[:4].copy()
    renderer = MultiEnvRenderer(task.model, 4, 5.0, "high")
    try:
        at_origin = renderer.render(qpos)
        qpos[:, 0] += 150.0
        far = renderer.render(qpos).astype(np.float32)
        scene = renderer.renderer.scene
        floors = [scene.geoms[j] for j in range(scene.ngeom) if scene.geoms[j].type == mujoco.mjtGeom.mjGEOM_PLANE]
        assert len(floors) == 1 and floors[0].size[0] <= 0 and abs(floors[0].pos[0] - 150.0) <= 10.0
        # the checks of the floor in the picture's lower quarter, not the empty haze below the horizon
        assert far[-far.shape[0] // 4 :].std(axis=(0, 1)).mean() > 5.0
        lower = at_origin[-at_origin.shape[0] // 4 :].astype(np.float32)
        assert abs(far[-far.shape[0] // 4 :].mean() - lower.mean()) < 10.0  # the same floor as at the origin
    finally:
        renderer.close()

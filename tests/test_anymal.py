"""Anymal (IsaacGymEnvs semantics): model facts, observation layout, reward terms, contact
termination, commands drawn per episode or held from outside, and a short training that learns."""

from __future__ import annotations

import math

import pytest
import torch

from isaacgymenvs.physics import PhysicsState
from isaacgymenvs.tasks import make_task
from isaacgymenvs.tasks.anymal import JOINTS

DEFAULT = torch.tensor([0.03, 0.4, -0.8, 0.03, -0.4, 0.8, -0.03, 0.4, -0.8, -0.03, -0.4, 0.8])


@pytest.fixture
def anymal(make_cfg):
    return make_task(make_cfg("Anymal", "num_envs=2"))


def state_of(task, qpos: torch.Tensor, qvel: torch.Tensor, sensordata=None, qfrc=None) -> PhysicsState:
    n, model = qpos.shape[0], task.model
    return PhysicsState(
        qpos=qpos,
        qvel=qvel,
        sensordata=torch.zeros(n, model.nsensordata) if sensordata is None else sensordata,
        qfrc_actuator=torch.zeros(n, model.nv) if qfrc is None else qfrc,
    )


def standing(task, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    qpos = task.start_qpos.expand(n, -1).clone()
    return qpos, torch.zeros(n, task.model.nv)


def test_model_is_anymal_c_like(anymal):
    model = anymal.model
    assert model.nq == 19 and model.nv == 18 and model.nu == 12
    assert [model.joint(i).name for i in range(1, model.njnt)] == list(JOINTS)
    assert model.body_subtreemass[1] == pytest.approx(52.13, abs=0.05)  # the URDF's 52.13 kg
    assert model.opt.timestep == pytest.approx(0.005) and anymal.substeps == 4 and anymal.dt == pytest.approx(0.02)
    # HAA limited as the URDF (left -0.72..0.49, right mirrored); HFE/KFE free.
    assert model.jnt_range[1].tolist() == pytest.approx([-0.72, 0.49])
    assert model.jnt_range[7].tolist() == pytest.approx([-0.49, 0.72])
    assert not model.jnt_limited[2] and not model.jnt_limited[3]
    # The PD drive's gains come from the config: force = 85 (ctrl - q) - 2 dq, at most 80 N m.
    assert (model.actuator_gainprm[:, 0] == 85.0).all() and (model.actuator_biasprm[:, 1] == -85.0).all()
    assert (model.actuator_biasprm[:, 2] == -2.0).all() and (model.actuator_forcerange[:, 1] == 80.0).all()
    assert anymal.max_episode_length == 2500  # 50 s


def test_actions_are_pd_targets_around_the_default_pose(anymal):
    actions = torch.zeros(2, 12)
    actions[:, 1] = 1.0
    ctrl = anymal._actions_to_ctrl(actions)
    expected = DEFAULT.expand(2, -1).clone()
    expected[:, 1] += 0.5  # actionScale
    torch.testing.assert_close(ctrl, expected)


def test_observation_layout(anymal):
    """48 = lin vel * 2 | ang vel * 0.25 | gravity in the base frame | commands scaled |
    (q - default) * 1 | dq * 0.05 | previous actions."""
    assert anymal.num_obs == 48 and len(anymal.observation_names()) == 48
    qpos, qvel = standing(anymal, 2)
    half = math.sqrt(0.5)
    qpos[0, 3:7] = torch.tensor([half, 0.0, 0.0, half])  # yawed +90 degrees
    qvel[0, 0:3] = torch.tensor([1.0, 0.0, 0.0])  # world +x = base -y
    qvel[0, 3:6] = torch.tensor([0.0, 0.0, 0.8])  # body frame
    qpos[0, 7 + 2] += 0.1
    qvel[0, 6 + 4] = 2.0
    anymal.commands[0] = torch.tensor([1.5, -0.5, 0.4])
    anymal.actions[0] = torch.linspace(-1, 1, 12)
    obs = anymal._observe(anymal._features(state_of(anymal, qpos, qvel)))[0]
    torch.testing.assert_close(obs[0:3], torch.tensor([0.0, -2.0, 0.0]), atol=1e-6, rtol=0)
    torch.testing.assert_close(obs[3:6], torch.tensor([0.0, 0.0, 0.2]))
    torch.testing.assert_close(obs[6:9], torch.tensor([0.0, 0.0, -1.0]), atol=1e-6, rtol=0)
    torch.testing.assert_close(obs[9:12], torch.tensor([3.0, -1.0, 0.1]))
    expected_pos = torch.zeros(12)
    expected_pos[2] = 0.1
    torch.testing.assert_close(obs[12:24], expected_pos, atol=1e-6, rtol=0)
    expected_vel = torch.zeros(12)
    expected_vel[4] = 0.1
    torch.testing.assert_close(obs[24:36], expected_vel)
    torch.testing.assert_close(obs[36:48], torch.linspace(-1, 1, 12))
    names = anymal.observation_names()
    assert names[9:12] == ["command_lin_vel_x", "command_lin_vel_y", "command_yaw_rate"]
    assert names[12] == "dof_pos_LF_HAA" and names[47] == "prev_action_RH_KFE"


def test_projected_gravity_is_in_the_base_frame(anymal):
    qpos, qvel = standing(anymal, 2)
    pitch = 0.3  # nose down: rotation about +y
    qpos[0, 3:7] = torch.tensor([math.cos(pitch / 2), 0.0, math.sin(pitch / 2), 0.0])
    gravity = anymal._features(state_of(anymal, qpos, qvel)).projected_gravity[0]
    torch.testing.assert_close(gravity, torch.tensor([math.sin(pitch), 0.0, -math.cos(pitch)]))


def test_reward_terms_are_named_and_weighted_as_the_config(make_cfg, anymal):
    cfg = make_cfg("Anymal")
    assert anymal.term_names == ("lin_vel_xy", "ang_vel_z", "torque")
    for name in anymal.term_names:  # IsaacGymEnvs scales the weights by the policy dt
        assert anymal.reward_weights[name] == pytest.approx(float(cfg.task.env.reward[name]) * 0.02)
    qpos, qvel = standing(anymal, 2)
    qvel[0, 0:2] = torch.tensor([1.0, -0.5])  # env 0 tracks its command exactly, env 1 stands still
    qvel[:, 5] = 0.3
    anymal.commands[:] = torch.tensor([1.0, -0.5, 0.3])
    qfrc = torch.zeros(2, anymal.model.nv)
    qfrc[:, 6:] = 10.0
    terms = anymal._reward_terms(anymal._features(state_of(anymal, qpos, qvel, qfrc=qfrc)))
    torch.testing.assert_close(terms["lin_vel_xy"], torch.tensor([1.0, math.exp(-1.25 / 0.25)]))
    torch.testing.assert_close(terms["ang_vel_z"], torch.tensor([1.0, 1.0]))
    torch.testing.assert_close(terms["torque"], torch.tensor([1200.0, 1200.0]))


def test_reward_is_clipped_at_zero(anymal):
    qpos, qvel = standing(anymal, 2)
    qvel[:, 0] = 5.0  # far from any command: tracking terms ~0
    qfrc = torch.zeros(2, anymal.model.nv)
    qfrc[:, 6:] = 80.0  # torque penalty 12 * 6400 * 2.5e-5 * 0.02 = 0.038
    anymal.progress_buf.zero_()
    features = anymal._features(state_of(anymal, qpos, qvel, qfrc=qfrc))
    weighted, reward, terminated, timeout = anymal._score(features, torch.zeros(2, dtype=torch.bool))
    assert (weighted.sum(0) < 0).all() and (reward == 0).all() and not terminated.any() and not timeout.any()


def test_base_contact_ends_the_episode_without_penalty_and_draws_new_commands(make_cfg):
    task = make_task(make_cfg("Anymal", "num_envs=2"))
    task.reset()
    task.commands[:] = 9.0  # outside every range: a redraw is visible
    qpos, qvel = standing(task, 2)
    qpos[0, 2], qpos[0, 3:7] = 0.085, torch.tensor([0.0, 1.0, 0.0, 0.0])  # env 0: upside down on its back
    task.physics.reset(torch.ones(2, dtype=torch.bool), qpos, qvel)
    _, rew, done, extras = task.step(torch.zeros(2, 12))
    assert done.tolist() == [True, False] and not extras["time_outs"].any()
    assert rew[0] >= 0  # no terminal penalty (termination weight 0)
    assert (task.commands[0].abs() <= torch.tensor([2.0, 1.0, 1.0])).all()
    assert (task.commands[1] == 9.0).all()  # env 1 continues its episode with its command
    assert task.progress_buf.tolist() == [0, 1]


def test_knee_contact_ends_the_episode(make_cfg):
    """Thighs upright, shanks folded up: only the knee drives (on the thigh bodies) touch the floor."""
    task = make_task(make_cfg("Anymal", "num_envs=1"))
    task.reset()
    qpos, qvel = standing(task, 1)
    qpos[0, 2] = 0.325
    qpos[0, 7:] = torch.tensor([0.0, 0.0, -2.8, 0.0, 0.0, 2.8] * 2)
    held = (qpos[:, 7:] - task.default_dof_pos) / task.action_scale
    task.physics.reset(torch.ones(1, dtype=torch.bool), qpos, qvel)
    task.physics.step(task._actions_to_ctrl(held), task.substeps)
    contact = task.physics.state().sensordata[0]
    assert contact[0] == 0 and (contact[1:] > 1.0).all()  # base free, every thigh touching
    assert task._terminated(task._features(task.physics.state())).all()
    task.physics.reset(torch.ones(1, dtype=torch.bool), qpos, qvel)
    _, _, done, extras = task.step(held)
    assert done.all() and not extras["time_outs"].any()


def test_commands_are_drawn_within_the_ranges_per_env(make_cfg):
    task = make_task(make_cfg("Anymal", "num_envs=512"))
    task.reset()
    low, high = torch.tensor([-2.0, -1.0, -1.0]), torch.tensor([2.0, 1.0, 1.0])
    commands = task.commands.clone()
    assert ((commands >= low) & (commands <= high)).all()
    # Spread over the ranges, independently per env and component.
    assert (commands.min(0).values < low + 0.1).all() and (commands.max(0).values > high - 0.1).all()
    assert commands.std(0).tolist() == pytest.approx(((high - low) / math.sqrt(12)).tolist(), rel=0.15)
    # A step without resets keeps them; the observation carries them, scaled.
    obs = task.step(torch.zeros(512, 12))[0]["obs"]
    kept = ~task.reset_buf
    assert torch.equal(task.commands[kept], commands[kept])
    torch.testing.assert_close(obs[kept, 9:12], commands[kept] * torch.tensor([2.0, 2.0, 0.25]))


def test_a_held_command_survives_resets_until_released(make_cfg):
    task = make_task(make_cfg("Anymal", "num_envs=3", "task.env.episodeLength=3"))
    task.reset()
    task.set_command(1, (1.0, 0.0, -0.5))
    obs = task.step(torch.zeros(3, 12))[0]["obs"]
    torch.testing.assert_close(obs[1, 9:12], torch.tensor([2.0, 0.0, -0.125]))
    _, _, done, _ = task.step(torch.zeros(3, 12))
    assert done.all()  # time-out: every env was reset
    assert task.commands[1].tolist() == [1.0, 0.0, -0.5]
    task.set_command(1, None)
    task.step(torch.zeros(3, 12))
    task.step(torch.zeros(3, 12))
    assert task.commands[1].tolist() != [1.0, 0.0, -0.5]  # drawn again at the next reset
    with pytest.raises(ValueError, match="lin_vel_x, lin_vel_y, yaw_rate"):
        task.set_command(0, (1.0, 2.0))


@pytest.mark.slow
def test_a_short_training_improves_velocity_tracking(tmp_path):
    """30 PPO epochs of 128 envs (fixed seed, ~15 s on 2 cores): the episode return of the
    lin_vel_xy tracking term grows several-fold over the first epochs (the robots stop falling
    and start following their commands)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from tests.conftest import run_cli

    result = run_cli("task=Anymal", "num_envs=128", "max_iterations=30", "seed=5", cwd=tmp_path, timeout=240)
    assert result.returncode == 0, result.stderr[-2000:]
    (run,) = list((tmp_path / "runs").iterdir())
    events = EventAccumulator(str(run / "summaries"))
    events.Reload()
    assert {"reward_terms/lin_vel_xy", "reward_terms/ang_vel_z", "reward_terms/torque"} <= set(events.Tags()["scalars"])
    tracking = [s.value for s in events.Scalars("reward_terms/lin_vel_xy")]
    assert len(tracking) >= 20
    first, last = sum(tracking[:3]) / 3, sum(tracking[-3:]) / 3
    assert last > 3 * first, tracking


class ZeroPolicy:
    def __init__(self, num_actions: int) -> None:
        self.num_actions = num_actions

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.zeros(obs.shape[0], self.num_actions)


def player_core(task):
    from pathlib import Path
    from types import SimpleNamespace

    from isaacgymenvs.player.core import PlayerCore

    follower = SimpleNamespace(
        check_alive=lambda: None,
        take_ready=lambda: None,
        loaded=None,
        shown=SimpleNamespace(path=Path("latest.pth")),
        error=None,
        state_warning=None,
    )
    return PlayerCore(task, ZeroPolicy(task.num_actions), follower)


def test_the_player_drives_a_robot_by_its_command(make_cfg):
    """What the window's keys and the page's sliders do, without a GUI: a command requested from any
    thread is applied between two steps, clipped to the task's ranges, reaches the driven robot's
    observation, shows in the HUD beside the measured velocity, and can be given back."""
    import threading

    core = player_core(make_task(make_cfg("Anymal", "num_envs=2")))
    assert core.drivable
    core.driven_env = 1
    slider = threading.Thread(target=core.request_command, args=(1, (3.0, -0.5, 0.5)))  # 3 m/s: above the range
    slider.start()
    slider.join()
    assert core.task.commands[1].tolist() != [2.0, -0.5, 0.5]  # not before the next step
    core.step()
    assert core.task.commands[1].tolist() == [2.0, -0.5, 0.5]
    torch.testing.assert_close(core.obs[1, 9:12], torch.tensor([4.0, -1.0, 0.125]))
    core.nudge_command(1, 0, -0.25)  # the Down key
    core.nudge_command(1, 2, 0.25)  # the Left key, on top of the pending request
    core.step()
    assert core.task.commands[1].tolist() == [1.75, -0.5, 0.75]
    assert core.task.command_held.tolist() == [False, True]
    line = core.hud_lines()[-1]
    assert line.startswith("robot 1 command (held) vx +1.75 vy -0.50 yaw +0.75 | measured vx ")
    core.request_command(1, None)  # the C key / "Random commands again"
    core.step()
    assert core.task.command_held.tolist() == [False, False]
    assert "command (random)" in core.hud_lines()[-1]


def test_a_task_without_commands_is_not_drivable(make_cfg):
    core = player_core(make_task(make_cfg("Cartpole", "num_envs=2")))
    assert not core.drivable and core.command_line() is None
    core.request_command(0, (1.0, 0.0, 0.0))
    core.nudge_command(0, 0, 0.25)
    core.step()  # nothing to apply, nothing raised


def test_the_window_keys_drive_the_followed_robot(make_cfg, qtbot):
    from PySide6.QtCore import Qt

    from isaacgymenvs.player.render import MultiEnvRenderer
    from isaacgymenvs.player.window import PlayerWindow

    core = player_core(make_task(make_cfg("Anymal", "num_envs=2")))
    renderer = MultiEnvRenderer(core.task.model, 2, 4.0, quality="fast")
    window = PlayerWindow(core, renderer, "Anymal")
    qtbot.addWidget(window)
    window.show()
    window.renderer.follow = 1  # the F key's "robot 1"
    qtbot.waitUntil(lambda: core.driven_env == 1, timeout=5000)
    start = core.task.commands[1].tolist()
    for key in (Qt.Key_Up, Qt.Key_Up, Qt.Key_Left, Qt.Key_Comma):
        qtbot.keyClick(window, key)
    expected = [min(start[0] + 0.5, 2.0), min(start[1] + 0.25, 1.0), min(start[2] + 0.25, 1.0)]
    qtbot.waitUntil(lambda: bool(core.task.command_held[1]), timeout=5000)
    assert core.task.commands[1].tolist() == pytest.approx(expected)
    assert not core.task.command_held[0]
    qtbot.waitUntil(lambda: any(line.startswith("robot 1 command (held)") for line in window.hud), timeout=5000)
    qtbot.keyClick(window, Qt.Key_C)
    qtbot.waitUntil(lambda: not core.task.command_held[1], timeout=5000)
    window.timer.stop()
    window.close()
    renderer.close()


def test_the_page_sliders_drive_the_followed_robot(make_cfg):
    import socket
    from types import SimpleNamespace

    import viser

    from isaacgymenvs.player.web import CommandSliders

    core = player_core(make_task(make_cfg("Anymal", "num_envs=2")))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = viser.ViserServer(host="127.0.0.1", port=port, verbose=False)
    try:
        sliders = CommandSliders(server, core, SimpleNamespace(follow="robot 1"))
        sliders.sliders[0].value = 1.25  # what a client's slider move sets
        sliders.sliders[2].value = -0.5
        core.step()
        assert core.task.commands[1].tolist() == [1.25, 0.0, -0.5]
        assert core.task.command_held.tolist() == [False, True]
    finally:
        server.stop()


def test_velocity_arrows_show_the_command_turned_by_the_heading_and_the_measured_velocity(make_cfg):
    """Green (command) and blue (measured) arrows above each robot in the window and the clips: the
    command is in the base frame, so a robot facing +y commanded forward gets an arrow along +y."""
    import mujoco
    import numpy as np

    from isaacgymenvs.player.render import ARROW_COLOURS, MultiEnvRenderer

    task = make_task(make_cfg("Anymal", "num_envs=2"))
    qpos, qvel = standing(task, 2)
    qpos[0, 3:7] = torch.tensor([math.cos(math.pi / 4), 0.0, 0.0, math.sin(math.pi / 4)])  # yaw +90 degrees
    qvel[0, 0:3] = torch.tensor([0.0, 0.8, 0.3])  # walking along +y (and bobbing up)
    task.physics.state = lambda: state_of(task, qpos, qvel)
    task.set_command(0, (1.0, 0.0, 0.0))
    task.set_command(1, (0.0, 0.0, 0.5))  # turning on the spot: no arrows, standing still
    vectors = task.velocity_vectors()
    torch.testing.assert_close(vectors[0], torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.8, 0.0]]), atol=1e-6, rtol=0)
    assert vectors[1].abs().max() == 0

    renderer = MultiEnvRenderer(task.model, 2, 5.0, "fast")
    try:
        renderer.render(qpos.numpy(), vectors.numpy())
        scene = renderer.renderer.scene
        arrows = [scene.geoms[j] for j in range(scene.ngeom) if scene.geoms[j].type == mujoco.mjtGeom.mjGEOM_ARROW]
        assert len(arrows) == 2  # robot 0's two; robot 1 stands still
        for geom, rgba in zip(arrows, ARROW_COLOURS, strict=True):
            np.testing.assert_allclose(geom.rgba, rgba)
            direction = np.asarray(geom.mat).reshape(3, 3)[:, 2]  # an arrow points along its z axis
            np.testing.assert_allclose(direction, [0.0, 1.0, 0.0], atol=1e-6)
    finally:
        renderer.close()


def test_the_page_draws_the_same_velocity_arrows_as_the_window(make_cfg):
    """In the page, each arrow is an instance of a unit arrow turned from +z onto the velocity and
    stretched to 0.6 m per m/s; a robot standing still gets a zero-scaled (hidden) one."""
    import socket

    import numpy as np
    import viser

    from isaacgymenvs.player.render import ARROW_METRES_PER_MPS
    from isaacgymenvs.player.web_scene import WebScene, arrow_poses

    def rotate_z(q: np.ndarray) -> np.ndarray:  # where a wxyz quaternion takes +z
        w, x, y, z = q
        return np.array([2 * (x * z + w * y), 2 * (y * z - w * x), 1 - 2 * (x * x + y * y)])

    vectors = np.array([[0.0, 1.0, 0.0], [-2.0, 0.0, 0.0], [0.3, -0.4, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, -1.0]])
    quats, scales = arrow_poses(vectors)
    for v, q, s in zip(vectors[[0, 1, 2, 4]], quats[[0, 1, 2, 4]], scales[[0, 1, 2, 4]], strict=True):
        np.testing.assert_allclose(rotate_z(q), v / np.linalg.norm(v), atol=1e-9)
        np.testing.assert_allclose(s, [1.0, 1.0, ARROW_METRES_PER_MPS * np.linalg.norm(v)])
    np.testing.assert_allclose(scales[3], 0.0)

    task = make_task(make_cfg("Anymal", "num_envs=2"))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = viser.ViserServer(host="127.0.0.1", port=port, verbose=False)
    try:
        scene = WebScene(server, task.model, 2, 4.0, False)
        scene.add_velocity_arrows()
        arrows = np.array([[[1.0, 0.0, 0.0], [0.5, 0.0, 0.0]], [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]])
        scene.update(task.physics.state().qpos.numpy(), arrows)
        commanded, measured = scene.arrow_handles
        np.testing.assert_allclose(commanded.batched_scales[:, 2], [ARROW_METRES_PER_MPS, 0.0])
        np.testing.assert_allclose(measured.batched_scales[:, 2], [0.5 * ARROW_METRES_PER_MPS, 0.0])
        np.testing.assert_allclose(rotate_z(commanded.batched_wxyzs[0]), [1.0, 0.0, 0.0], atol=1e-6)
    finally:
        server.stop()

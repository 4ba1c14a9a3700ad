"""Reward terms and terminations against hand-computed values for constructed states."""

from __future__ import annotations

import math

import pytest
import torch

from isaacgymenvs.physics import PhysicsState
from isaacgymenvs.tasks import make_task


def quat_z(angle: float) -> list[float]:
    return [math.cos(angle / 2), 0.0, 0.0, math.sin(angle / 2)]


def locomotion_state(task, xyz, quat, dof_pos=None, dof_vel=None, lin_vel=(0, 0, 0), ang_vel=(0, 0, 0)):
    """A one-env PhysicsState with the given torso pose/velocities and joints."""
    j = task.num_actions
    qpos = torch.tensor([*xyz, *quat] + (dof_pos if dof_pos is not None else task.start_qpos[7:].tolist()))
    qvel = torch.tensor([*lin_vel, *ang_vel] + (dof_vel if dof_vel is not None else [0.0] * j))
    return PhysicsState(
        qpos=qpos[None].float(),
        qvel=qvel[None].float(),
        sensordata=torch.zeros(1, task.num_sensors),
        qfrc_actuator=torch.zeros(1, task.model.nv),
    )


@pytest.fixture
def ant(make_cfg):
    return make_task(make_cfg("Ant", "num_envs=1"))


def test_ant_upright_facing_target(ant):
    f = ant._features(locomotion_state(ant, (0, 0, 0.55), quat_z(0.0)))
    ant.prev_potentials[:] = -1001.0 / ant.dt  # one metre further from the target a step ago
    terms = ant._reward_terms(f)
    assert terms["up"].item() == 1.0 and terms["heading"].item() == pytest.approx(1.0)
    assert terms["alive"].item() == 1.0
    assert terms["progress"].item() == pytest.approx(1.0 / ant.dt, rel=1e-4)
    assert terms["actions"].item() == 0.0 and terms["energy"].item() == 0.0
    assert not ant._terminated(f).item()


def test_ant_heading_and_angle_to_target(ant):
    f = ant._features(locomotion_state(ant, (0, 0, 0.55), quat_z(math.pi / 2)))  # facing +y
    assert f.heading_proj.item() == pytest.approx(0.0, abs=1e-6)
    assert ant._reward_terms(f)["heading"].item() == pytest.approx(0.0, abs=1e-6)
    assert f.angle_to_target.item() == pytest.approx(-math.pi / 2, abs=1e-5)
    assert f.yaw.item() == pytest.approx(math.pi / 2, abs=1e-5)
    f = ant._features(locomotion_state(ant, (0, 0, 0.55), quat_z(math.acos(0.4))))
    assert ant._reward_terms(f)["heading"].item() == pytest.approx(0.4 / 0.8, rel=1e-4)


def test_ant_upside_down_and_low(ant):
    upside_down = [0.0, 1.0, 0.0, 0.0]  # 180 degrees about x
    f = ant._features(locomotion_state(ant, (0, 0, 0.2), upside_down))
    assert f.up_proj.item() == pytest.approx(-1.0)
    assert ant._reward_terms(f)["up"].item() == 0.0
    assert ant._terminated(f).item()


def test_ant_velocity_in_local_frame(ant):
    # Facing +y and moving along +y in the world: forward (+x) in the torso frame.
    f = ant._features(locomotion_state(ant, (0, 0, 0.55), quat_z(math.pi / 2), lin_vel=(0, 2.0, 0)))
    assert f.vel_loc[0].tolist() == pytest.approx([2.0, 0.0, 0.0], abs=1e-5)


def test_ant_joint_limits_and_energy(ant):
    upper = ant.dof_upper.tolist()
    dof_pos = [upper[0], upper[1]] + ant.start_qpos[9:].tolist()
    dof_vel = [1.0] * 8
    f = ant._features(locomotion_state(ant, (0, 0, 0.55), quat_z(0.0), dof_pos=dof_pos, dof_vel=dof_vel))
    ant.actions[:] = torch.tensor([1.0, -0.5, 0, 0, 0, 0, 0, 0])
    terms = ant._reward_terms(f)
    at_limit_elsewhere = int((f.dof_pos_scaled[0, 2:].abs() > 0.99).sum())
    assert terms["jointsAtLimit"].item() == 2 + at_limit_elsewhere
    assert terms["actions"].item() == pytest.approx(1.25)
    # energy = sum |a * dof_vel * dofVelocityScale| (all Ant gears equal)
    assert terms["energy"].item() == pytest.approx((1.0 + 0.5) * 0.2, rel=1e-5)


def test_humanoid_graded_limit_cost(make_cfg):
    hum = make_task(make_cfg("Humanoid", "num_envs=1"))
    lower, upper = hum.dof_lower, hum.dof_upper
    dof_pos = ((lower + upper) / 2).tolist()
    # joint 6 (right knee, gear 90) at scaled 0.99: cost (0.99 - 0.98) / 0.02 * 90 / 135 = 1/3
    dof_pos[6] = float(lower[6] + (upper[6] - lower[6]) * (0.99 + 1) / 2)
    f = hum._features(locomotion_state(hum, (0, 0, 1.3), quat_z(0.0), dof_pos=dof_pos))
    assert hum._reward_terms(f)["jointsAtLimit"].item() == pytest.approx(0.5 * 90 / 135, rel=1e-3)
    assert hum.effort_ratio.max().item() == 1.0


def test_cartpole_terms_and_termination(make_cfg):
    cp = make_task(make_cfg("Cartpole", "num_envs=2"))
    state = PhysicsState(
        qpos=torch.tensor([[0.5, 0.3], [0.0, 1.6]]),
        qvel=torch.tensor([[2.0, -1.0], [0.0, 0.0]]),
        sensordata=torch.zeros(2, 0),
        qfrc_actuator=torch.zeros(2, 2),
    )
    f = cp._features(state)
    terms = cp._reward_terms(f)
    total = sum(cp.reward_weights[k] * terms[k] for k in terms)
    assert total[0].item() == pytest.approx(1 - 0.09 - 0.01 * 2.0 - 0.005 * 1.0, rel=1e-5)
    assert cp._terminated(f).tolist() == [False, True]
    assert cp._observe(f)[0].tolist() == pytest.approx([0.5, 2.0, 0.3, -1.0])

"""Ant and Humanoid: run towards a far target (IsaacGymEnvs locomotion semantics).

Reward = progress + alive + up + heading - actions - energy - joints-at-limit, each a named term
weighted by `cfg.env.reward`; a torso below `terminationHeight` ends the episode with the
termination reward (deathCost). Observation layout (Ant 60, Humanoid 108):
torso z (1) | local linear velocity (3) | local angular velocity * angularVelocityScale (3) |
yaw, roll, angle to target (3) | up_proj (1) | heading_proj (1) | joint positions scaled to
[-1, 1] (J) | joint velocities * dofVelocityScale (J) | [joint forces * contactForceScale (J),
Humanoid only] | foot force/torque sensors * contactForceScale (6 per foot) | previous actions (J).
Angles are wrapped to [-pi, pi] (IsaacGymEnvs left yaw/roll in [0, 2pi)).
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import torch
from omegaconf import DictConfig

from isaacgymenvs.physics import PhysicsState
from isaacgymenvs.tasks.rotations import quat_rotate, quat_rotate_inverse, roll_yaw, wrap_angle
from isaacgymenvs.tasks.vec_task import VecTask

FREE_JOINT_QPOS = 7
FREE_JOINT_QVEL = 6


@dataclass
class LocomotionFeatures:
    """Per-step quantities of the torso and joints, [N, ...] tensors."""

    torso_z: torch.Tensor
    vel_loc: torch.Tensor
    angvel_loc: torch.Tensor
    yaw: torch.Tensor
    roll: torch.Tensor
    angle_to_target: torch.Tensor
    up_proj: torch.Tensor
    heading_proj: torch.Tensor
    potentials: torch.Tensor
    dof_pos_scaled: torch.Tensor
    dof_vel_scaled: torch.Tensor
    dof_force_scaled: torch.Tensor
    sensors_scaled: torch.Tensor


class LocomotionTask(VecTask):
    """Shared body of Ant and Humanoid; subclasses set sizes and the joints-at-limit rule."""

    num_sensors: int
    include_dof_forces: bool
    limit_threshold: float
    graded_limit_cost: bool

    def __init__(
        self, cfg: DictConfig, num_envs: int, sim_device: str, rl_device: str, seed: int, compile_math: bool = False
    ) -> None:
        super().__init__(cfg, num_envs, sim_device, rl_device, seed, compile_math)
        env, dev = cfg.env, self.device
        self.dof_vel_scale = float(env.dofVelocityScale)
        self.angvel_scale = float(env.angularVelocityScale)
        self.contact_force_scale = float(env.contactForceScale)
        self.termination_height = float(env.terminationHeight)
        self.dof_position_noise = float(env.dofPositionNoise)
        self.dof_velocity_noise = float(env.dofVelocityNoise)
        self.target = torch.tensor(list(env.target), dtype=torch.float32, device=dev)
        self.forward_axis = torch.tensor([[1.0, 0.0, 0.0]], device=dev)  # built once: no host copy per step
        self.up_axis = torch.tensor([[0.0, 0.0, 1.0]], device=dev)

        model = self.model
        ranges = torch.tensor(model.jnt_range[1:], dtype=torch.float32, device=dev)
        self.dof_lower, self.dof_upper = ranges[:, 0], ranges[:, 1]
        gears = torch.tensor(model.actuator_gear[:, 0], dtype=torch.float32, device=dev)
        self.effort_ratio = gears / gears.max()
        qpos0 = torch.tensor(model.qpos0, dtype=torch.float32, device=dev)
        self.start_qpos = qpos0.clone()
        self.start_qpos[FREE_JOINT_QPOS:] = torch.clamp(qpos0[FREE_JOINT_QPOS:], self.dof_lower, self.dof_upper)
        start_to_target = self.target[:2] - self.start_qpos[:2]
        self.start_potential = float(-torch.linalg.norm(start_to_target) / self.dt)  # host float: no sync per reset
        self.prev_potentials = torch.full((num_envs,), self.start_potential, device=dev)

    def _configure_model(self, model: mujoco.MjModel) -> None:
        # Torque = action * gear * powerScale: fold powerScale into the gears once.
        model.actuator_gear[:, 0] *= float(self.cfg.env.powerScale)

    def _check_model(self, model: mujoco.MjModel) -> None:
        expect = (self.num_actions + FREE_JOINT_QPOS, self.num_actions, self.num_sensors)
        got = (model.nq, model.nu, model.nsensordata)
        if got != expect or model.jnt_type[0] != mujoco.mjtJoint.mjJNT_FREE:
            raise ValueError(
                f"{type(self).__name__} MJCF has (nq, nu, nsensordata)={got}, expected {expect} with a free root joint"
            )

    def _features(self, state: PhysicsState) -> LocomotionFeatures:
        qpos, qvel = state.qpos, state.qvel
        torso_pos, quat = qpos[:, 0:3], qpos[:, 3:7]
        to_target = self.target - torso_pos
        to_target[:, 2] = 0.0
        n = qpos.shape[0]
        ex, ez = self.forward_axis.expand(n, 3), self.up_axis.expand(n, 3)
        heading_vec = quat_rotate(quat, ex)
        target_dir = torch.nn.functional.normalize(to_target, dim=-1)
        roll, yaw = roll_yaw(quat)
        dofs = slice(FREE_JOINT_QVEL, None)
        return LocomotionFeatures(
            torso_z=torso_pos[:, 2],
            vel_loc=quat_rotate_inverse(quat, qvel[:, 0:3]),
            angvel_loc=qvel[:, 3:6] * self.angvel_scale,  # MuJoCo gives it in the body frame
            yaw=yaw,
            roll=roll,
            angle_to_target=wrap_angle(torch.atan2(to_target[:, 1], to_target[:, 0]) - yaw),
            up_proj=quat_rotate(quat, ez)[:, 2],
            heading_proj=(heading_vec * target_dir).sum(-1),
            potentials=-torch.linalg.norm(to_target, dim=-1) / self.dt,
            dof_pos_scaled=2.0 * (qpos[:, FREE_JOINT_QPOS:] - self.dof_lower) / (self.dof_upper - self.dof_lower) - 1.0,
            dof_vel_scaled=qvel[:, dofs] * self.dof_vel_scale,
            dof_force_scaled=state.qfrc_actuator[:, dofs] * self.contact_force_scale,
            sensors_scaled=state.sensordata * self.contact_force_scale,
        )

    def _reward_terms(self, f: LocomotionFeatures) -> dict[str, torch.Tensor]:
        abs_pos = f.dof_pos_scaled.abs()
        at_limit = abs_pos > self.limit_threshold
        if self.graded_limit_cost:
            limit = (
                (abs_pos - self.limit_threshold) / (1.0 - self.limit_threshold) * at_limit * self.effort_ratio
            ).sum(-1)
        else:
            limit = at_limit.float().sum(-1)
        return {
            "progress": f.potentials - self.prev_potentials,
            "alive": torch.ones_like(f.torso_z),
            "up": (f.up_proj > 0.93).float(),
            "heading": torch.where(f.heading_proj > 0.8, torch.ones_like(f.heading_proj), f.heading_proj / 0.8),
            "actions": (self.actions**2).sum(-1),
            "energy": (self.actions * f.dof_vel_scaled).abs().mul(self.effort_ratio).sum(-1),
            "jointsAtLimit": limit,
        }

    def _terminated(self, f: LocomotionFeatures) -> torch.Tensor:
        return f.torso_z < self.termination_height

    def _after_reward(self, f: LocomotionFeatures) -> None:
        self.prev_potentials[:] = f.potentials

    def _sample_reset_state(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        qpos = self.start_qpos.expand(n, -1).clone()
        noise = self._uniform((n, self.num_actions), self.dof_position_noise)
        qpos[:, FREE_JOINT_QPOS:] = torch.clamp(qpos[:, FREE_JOINT_QPOS:] + noise, self.dof_lower, self.dof_upper)
        qvel = torch.zeros(n, self.model.nv, device=self.device)
        qvel[:, FREE_JOINT_QVEL:] = self._uniform((n, self.num_actions), self.dof_velocity_noise)
        return qpos, qvel

    def _on_reset(self, mask: torch.Tensor) -> None:
        self.prev_potentials.masked_fill_(mask, self.start_potential)

    def _observe(self, f: LocomotionFeatures) -> torch.Tensor:
        parts = [
            f.torso_z[:, None],
            f.vel_loc,
            f.angvel_loc,
            f.yaw[:, None],
            f.roll[:, None],
            f.angle_to_target[:, None],
            f.up_proj[:, None],
            f.heading_proj[:, None],
            f.dof_pos_scaled,
            f.dof_vel_scaled,
        ]
        if self.include_dof_forces:
            parts.append(f.dof_force_scaled)
        parts += [f.sensors_scaled, self.actions]
        return torch.cat(parts, dim=-1)

    def observation_names(self) -> list[str]:
        model = self.model
        joints = [model.joint(i).name for i in range(1, model.njnt)]
        sensors = [
            f"{model.sensor(i).name}_{axis}" for i in range(model.nsensor) for axis in "xyz"[: model.sensor_dim[i]]
        ]
        names = ["torso_z", "vel_x", "vel_y", "vel_z", "angvel_x", "angvel_y", "angvel_z", "yaw", "roll"]
        names += ["angle_to_target", "up_proj", "heading_proj"]
        names += [f"dof_pos_{j}" for j in joints] + [f"dof_vel_{j}" for j in joints]
        if self.include_dof_forces:
            names += [f"dof_force_{j}" for j in joints]
        return names + sensors + [f"prev_action_{a}" for a in self.action_names()]


class Ant(LocomotionTask):
    """Four-legged ant, 8 joints (gear 15), 4 foot force/torque sensors."""

    num_obs = 60
    num_actions = 8
    num_sensors = 24
    include_dof_forces = False
    limit_threshold = 0.99
    graded_limit_cost = False


class Humanoid(LocomotionTask):
    """21-joint humanoid; energy and joint-limit costs weighted by each motor's gear."""

    num_obs = 108
    num_actions = 21
    num_sensors = 12
    include_dof_forces = True
    limit_threshold = 0.98
    graded_limit_cost = True

"""Anymal: a quadruped tracks a commanded base velocity on flat ground (IsaacGymEnvs Anymal semantics).

Each episode draws a command (base x velocity, base y velocity, yaw rate) uniformly from
`env.randomCommandVelocityRanges`. The 12 joints (LF, LH, RF, RH legs x HAA, HFE, KFE) are PD
position-controlled: target = actionScale * action + default angle, through MuJoCo `<position>`
actuators whose stiffness and damping come from `env.control` (PhysX's position drive in Isaac Gym).

Observations (48), as IsaacGymEnvs: base linear velocity in the base frame * linearVelocityScale (3) |
base angular velocity * angularVelocityScale (3) | gravity direction in the base frame (3) |
commands * (linearVelocityScale, linearVelocityScale, angularVelocityScale) (3) |
(joint positions - default) * dofPositionScale (12) | joint velocities * dofVelocityScale (12) |
previous actions (12).

Reward terms (weights in `env.reward`, multiplied by the policy dt as IsaacGymEnvs does):
lin_vel_xy = exp(-|command_xy - v_xy|^2 / 0.25), ang_vel_z = exp(-(command_yaw - w_z)^2 / 0.25),
torque = sum of squared joint torques; the reward is their sum clipped at 0. An episode ends
(without a penalty: `termination` is added, 0 by default) when the base or a thigh touches the
ground with more than `contactForceThreshold` N, read from MuJoCo touch sensors (the same sensor on
the CPU and on MuJoCo Warp), as IsaacGymEnvs ends it on base or knee (thigh body) contact forces.

One deliberate difference: IsaacGymEnvs' Anymal observes `quat_rotate(q, gravity)`, which mixes in
the yaw; we observe the gravity direction in the base frame (`quat_rotate_inverse`), as its
AnymalTerrain task and legged_gym do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import mujoco
import torch
from omegaconf import DictConfig

from isaacgymenvs.physics import PhysicsState
from isaacgymenvs.tasks.rotations import quat_rotate_inverse
from isaacgymenvs.tasks.vec_task import VecTask

FREE_JOINT_QPOS = 7
FREE_JOINT_QVEL = 6
LEGS = ("LF", "LH", "RF", "RH")
JOINTS = tuple(f"{leg}_{joint}" for leg in LEGS for joint in ("HAA", "HFE", "KFE"))
CONTACT_SENSORS = ("base_contact", *(f"{leg}_thigh_contact" for leg in LEGS))
COMMAND_NAMES = ("lin_vel_x", "lin_vel_y", "yaw_rate")
TRACKING_SIGMA = 0.25


@dataclass
class AnymalFeatures:
    """Per-step quantities of the base and joints, [N, ...] tensors (unscaled, SI units)."""

    lin_vel: torch.Tensor  # base linear velocity in the base frame [N, 3]
    ang_vel: torch.Tensor  # base angular velocity in the base frame [N, 3]
    projected_gravity: torch.Tensor  # unit gravity direction in the base frame [N, 3]
    dof_pos: torch.Tensor  # [N, 12]
    dof_vel: torch.Tensor  # [N, 12]
    torques: torch.Tensor  # actuator torques of the last physics step [N, 12]
    contact_forces: torch.Tensor  # touch sensors: base, then the 4 thighs [N, 5]


class Anymal(VecTask):
    """ANYmal-C-like quadruped, 12 PD-driven joints, random velocity commands per episode."""

    num_obs = 48
    num_actions = 12
    action_meaning = (
        "the mean of the policy's Gaussian; joint position target = actionScale * action + default angle, "
        "tracked by a PD drive (env.control)"
    )

    def __init__(
        self, cfg: DictConfig, num_envs: int, sim_device: str, rl_device: str, seed: int, compile_math: bool = False
    ) -> None:
        super().__init__(cfg, num_envs, sim_device, rl_device, seed, compile_math)
        env, dev = cfg.env, self.device
        # IsaacGymEnvs multiplies the reward scales by the policy dt.
        self.reward_weights = {name: weight * self.dt for name, weight in self.reward_weights.items()}
        self.action_scale = float(env.control.actionScale)
        self.lin_vel_scale = float(env.linearVelocityScale)
        self.ang_vel_scale = float(env.angularVelocityScale)
        self.dof_pos_scale = float(env.dofPositionScale)
        self.dof_vel_scale = float(env.dofVelocityScale)
        self.contact_threshold = float(env.contactForceThreshold)
        self.dof_position_noise = float(env.dofPositionNoise)
        self.dof_velocity_noise = float(env.dofVelocityNoise)
        ranges = env.randomCommandVelocityRanges
        bounds = torch.tensor([list(ranges.linear_x), list(ranges.linear_y), list(ranges.yaw)], device=dev)
        self.command_low, self.command_high = bounds[:, 0], bounds[:, 1]
        self.command_scale = torch.tensor([self.lin_vel_scale, self.lin_vel_scale, self.ang_vel_scale], device=dev)
        self.default_dof_pos = torch.tensor([float(env.defaultJointAngles[j]) for j in JOINTS], device=dev)
        self.gravity_dir = torch.tensor([[0.0, 0.0, -1.0]], device=dev)

        self.start_qpos = torch.zeros(self.model.nq, device=dev)
        self.start_qpos[2] = float(env.baseInitHeight)
        self.start_qpos[3] = 1.0  # upright: identity quaternion (w, x, y, z)
        self.start_qpos[FREE_JOINT_QPOS:] = self.default_dof_pos
        self.commands = torch.zeros(num_envs, 3, device=dev)
        # Commands set from outside (the player driving a robot): kept through resets until released.
        self.command_held = torch.zeros(num_envs, dtype=torch.bool, device=dev)

    # --- commands ----------------------------------------------------------------------------

    def set_command(self, env: int, command: Sequence[float] | None) -> None:
        """Hold env `env`'s command at (x velocity m/s, y velocity m/s, yaw rate rad/s), also through
        its resets; None releases it (the next reset draws a random one again). The observation
        shows it from the next step on."""
        if command is None:
            self.command_held[env] = False
            return
        if len(command) != 3:
            raise ValueError(f"a command is (lin_vel_x, lin_vel_y, yaw_rate), got {tuple(command)}")
        self.commands[env] = torch.tensor([float(c) for c in command], device=self.device)
        self.command_held[env] = True

    def velocity_status(self, env: int) -> tuple[list[float], list[float], bool]:
        """Env `env`'s command and measured base velocity, both (x m/s, y m/s, yaw rate rad/s) in the
        base frame, and whether the command is held from outside (for the player's HUD)."""
        f = self._features(self.physics.state())
        measured = torch.cat([f.lin_vel[env, :2], f.ang_vel[env, 2:3]])
        return self.commands[env].tolist(), measured.tolist(), bool(self.command_held[env])

    def velocity_vectors(self) -> torch.Tensor:
        """[N, 2, 3]: every env's commanded and measured base velocity in the world frame, level (z 0),
        for the player's arrows; the command's x/y are turned by the base's heading (yaw)."""
        state = self.physics.state()
        w, x, y, z = state.qpos[:, 3:7].unbind(-1)
        yaw = torch.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))
        cos, sin = torch.cos(yaw), torch.sin(yaw)
        cx, cy = self.commands[:, 0], self.commands[:, 1]
        commanded = torch.stack([cx * cos - cy * sin, cx * sin + cy * cos, torch.zeros_like(cx)], -1)
        measured = state.qvel[:, 0:3].clone()  # a free joint's linear velocity is in the world frame
        measured[:, 2] = 0.0
        return torch.stack([commanded, measured], 1)

    # --- VecTask hooks -----------------------------------------------------------------------

    def _check_model(self, model: mujoco.MjModel) -> None:
        joints = tuple(model.joint(i).name for i in range(1, model.njnt))
        actuated = tuple(model.joint(model.actuator_trnid[i, 0]).name for i in range(model.nu))
        sensors = tuple(model.sensor(i).name for i in range(model.nsensor))
        if (
            model.nq != FREE_JOINT_QPOS + self.num_actions
            or model.jnt_type[0] != mujoco.mjtJoint.mjJNT_FREE
            or joints != JOINTS
            or actuated != JOINTS
            or sensors != CONTACT_SENSORS
            or model.nsensordata != len(CONTACT_SENSORS)
        ):
            raise ValueError(
                f"Anymal MJCF must have a free root joint, then hinges and actuators {JOINTS} in this order, "
                f"and touch sensors {CONTACT_SENSORS}; it has joints {joints}, actuators on {actuated}, "
                f"sensors {sensors}"
            )

    def _configure_model(self, model: mujoco.MjModel) -> None:
        # <position> actuators: force = kp * (ctrl - q) - kv * dq (MuJoCo's gain/bias parameters).
        kp, kd = float(self.cfg.env.control.stiffness), float(self.cfg.env.control.damping)
        model.actuator_gainprm[:, 0] = kp
        model.actuator_biasprm[:, 1] = -kp
        model.actuator_biasprm[:, 2] = -kd

    def _actions_to_ctrl(self, actions: torch.Tensor) -> torch.Tensor:
        return self.action_scale * actions + self.default_dof_pos

    def _features(self, state: PhysicsState) -> AnymalFeatures:
        qpos, qvel = state.qpos, state.qvel
        quat = qpos[:, 3:7]
        return AnymalFeatures(
            lin_vel=quat_rotate_inverse(quat, qvel[:, 0:3]),  # MuJoCo gives it in the world frame
            ang_vel=qvel[:, 3:6],  # MuJoCo gives it in the body frame
            projected_gravity=quat_rotate_inverse(quat, self.gravity_dir.expand(qpos.shape[0], 3)),
            dof_pos=qpos[:, FREE_JOINT_QPOS:],
            dof_vel=qvel[:, FREE_JOINT_QVEL:],
            torques=state.qfrc_actuator[:, FREE_JOINT_QVEL:],
            contact_forces=state.sensordata,
        )

    def _reward_terms(self, f: AnymalFeatures) -> dict[str, torch.Tensor]:
        lin_vel_error = ((self.commands[:, :2] - f.lin_vel[:, :2]) ** 2).sum(-1)
        ang_vel_error = (self.commands[:, 2] - f.ang_vel[:, 2]) ** 2
        return {
            "lin_vel_xy": torch.exp(-lin_vel_error / TRACKING_SIGMA),
            "ang_vel_z": torch.exp(-ang_vel_error / TRACKING_SIGMA),
            "torque": (f.torques**2).sum(-1),
        }

    def _terminated(self, f: AnymalFeatures) -> torch.Tensor:
        return (f.contact_forces > self.contact_threshold).any(-1)

    def _score(
        self, features: Any, failed: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """As VecTask's, but the reward is the weighted sum clipped at 0 (IsaacGymEnvs' Anymal), and a
        failed episode keeps it, with `termination` added, instead of being replaced by it."""
        terms = self._reward_terms(features)
        terminated = self._terminated(features) | failed
        weighted = torch.stack([weight * terms[name] for name, weight in self.reward_weights.items()])
        reward = torch.clamp(weighted.sum(0), min=0.0) + terminated.float() * self.termination_reward
        timeout = (self.progress_buf >= self.max_episode_length - 1) & ~terminated
        return weighted, reward, terminated, timeout

    def _sample_reset_state(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        qpos = self.start_qpos.expand(n, -1).clone()
        scale = 1.0 + self._uniform((n, self.num_actions), self.dof_position_noise)
        qpos[:, FREE_JOINT_QPOS:] = self.default_dof_pos * scale
        qvel = torch.zeros(n, self.model.nv, device=self.device)
        qvel[:, FREE_JOINT_QVEL:] = self._uniform((n, self.num_actions), self.dof_velocity_noise)
        return qpos, qvel

    def _on_reset(self, mask: torch.Tensor) -> None:
        unit = torch.rand((self.num_envs, 3), generator=self.generator, device=self.device)
        drawn = self.command_low + unit * (self.command_high - self.command_low)
        redraw = mask & ~self.command_held
        self.commands[:] = torch.where(redraw[:, None], drawn, self.commands)

    def _observe(self, f: AnymalFeatures) -> torch.Tensor:
        return torch.cat(
            [
                f.lin_vel * self.lin_vel_scale,
                f.ang_vel * self.ang_vel_scale,
                f.projected_gravity,
                self.commands * self.command_scale,
                (f.dof_pos - self.default_dof_pos) * self.dof_pos_scale,
                f.dof_vel * self.dof_vel_scale,
                self.actions,
            ],
            dim=-1,
        )

    def observation_names(self) -> list[str]:
        names = [f"base_lin_vel_{a}" for a in "xyz"] + [f"base_ang_vel_{a}" for a in "xyz"]
        names += [f"projected_gravity_{a}" for a in "xyz"] + [f"command_{c}" for c in COMMAND_NAMES]
        names += [f"dof_pos_{j}" for j in JOINTS] + [f"dof_vel_{j}" for j in JOINTS]
        return names + [f"prev_action_{a}" for a in self.action_names()]

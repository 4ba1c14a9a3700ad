"""The seam between tasks and physics engines.

Tasks compute observations and rewards in torch from a `PhysicsState`; they never touch MuJoCo
data structures directly, so a GPU backend (MuJoCo Warp) plugs in without touching any task.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import mujoco
import torch


@dataclass(frozen=True)
class PhysicsState:
    """Current state of every world, float32 tensors on the backend's device.

    qpos: [num_envs, nq] generalized positions (a free joint: x y z qw qx qy qz).
    qvel: [num_envs, nv] generalized velocities (a free joint: world linear velocity, then
        angular velocity in the body frame, MuJoCo's convention).
    sensordata: [num_envs, nsensordata] sensor readings of the last physics step (zero in a
        world reset since: nothing has been simulated there yet).
    qfrc_actuator: [num_envs, nv] actuator forces in joint space of the last physics step (zero
        in a world reset since, like its controls).
    """

    qpos: torch.Tensor
    qvel: torch.Tensor
    sensordata: torch.Tensor
    qfrc_actuator: torch.Tensor


class PhysicsBackend(ABC):
    """`num_envs` copies of one MuJoCo model stepped together on one device."""

    def __init__(self, model: mujoco.MjModel, num_envs: int, device: torch.device) -> None:
        self.model = model
        self.num_envs = num_envs
        self.device = device

    @abstractmethod
    def step(self, ctrl: torch.Tensor, nsubsteps: int) -> torch.Tensor:
        """Apply `ctrl` [num_envs, nu] and advance every world by `nsubsteps` physics steps.

        Returns a bool tensor [num_envs]: worlds whose physics failed this step (engine error or
        non-finite state). Their state is not meaningful until they are reset.
        """

    @abstractmethod
    def reset(self, mask: torch.Tensor, qpos: torch.Tensor, qvel: torch.Tensor) -> None:
        """Put the worlds where `mask` [num_envs] is set into rows of (qpos [num_envs, nq], qvel).

        Controls, warm starts, sensors and actuator forces of those worlds become zero. Derived
        quantities are not recomputed here (on a GPU that would be a forward pass of every world
        at every step): the next `step` starts with one. A mask rather than indices lets a GPU
        backend reset without waiting for the device.
        """

    @abstractmethod
    def state(self) -> PhysicsState:
        """The current state of all worlds (views or fresh float32 tensors)."""

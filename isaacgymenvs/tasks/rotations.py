"""Batched quaternion helpers in MuJoCo's (w, x, y, z) convention."""

from __future__ import annotations

import math

import torch


def quat_rotate(q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Rotate vectors v [N, 3] by unit quaternions q [N, 4] (body frame -> world frame)."""
    w, u = q[:, :1], q[:, 1:]
    return v * (2.0 * w * w - 1.0) + 2.0 * w * torch.cross(u, v, dim=-1) + 2.0 * u * (u * v).sum(-1, keepdim=True)


def quat_rotate_inverse(q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Rotate vectors v [N, 3] by the inverse of q [N, 4] (world frame -> body frame)."""
    w, u = q[:, :1], q[:, 1:]
    return v * (2.0 * w * w - 1.0) - 2.0 * w * torch.cross(u, v, dim=-1) + 2.0 * u * (u * v).sum(-1, keepdim=True)


def roll_yaw(q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Roll and yaw (XYZ Euler angles, radians in [-pi, pi]) of quaternions q [N, 4]."""
    w, x, y, z = q.unbind(-1)
    roll = torch.atan2(2.0 * (w * x + y * z), 1.0 - 2.0 * (x * x + y * y))
    yaw = torch.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))
    return roll, yaw


def wrap_angle(a: torch.Tensor) -> torch.Tensor:
    """Map angles to [-pi, pi)."""
    return torch.remainder(a + math.pi, 2.0 * math.pi) - math.pi

"""Physics backends behind one seam (`PhysicsBackend`), chosen by the simulation device."""

from __future__ import annotations

from importlib import resources

import mujoco
import torch

from isaacgymenvs.physics.backend import PhysicsBackend, PhysicsState

__all__ = ["PhysicsBackend", "PhysicsState", "load_model", "make_backend"]


def load_model(asset: str, timestep: float) -> mujoco.MjModel:
    """Compile an MJCF file from `isaacgymenvs/assets/` with the task's physics timestep."""
    path = resources.files("isaacgymenvs") / "assets" / asset
    model = mujoco.MjModel.from_xml_path(str(path))
    model.opt.timestep = timestep
    return model


def make_backend(model: mujoco.MjModel, num_envs: int, device: torch.device) -> PhysicsBackend:
    """The CPU backend for 'cpu'; the MuJoCo Warp backend for CUDA devices."""
    if device.type == "cpu":
        from isaacgymenvs.physics.cpu_batch import CpuBatchBackend

        return CpuBatchBackend(model, num_envs)
    from isaacgymenvs.errors import UserError

    raise UserError(
        f"sim_device={device} needs the MuJoCo Warp GPU backend, which is not built yet; use sim_device=cpu."
    )

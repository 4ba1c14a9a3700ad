"""Physics backends behind one seam (`PhysicsBackend`), chosen by the simulation device."""

from __future__ import annotations

from importlib import resources

import mujoco
import torch
from omegaconf import DictConfig

from isaacgymenvs.physics.backend import PhysicsBackend, PhysicsState

__all__ = ["PhysicsBackend", "PhysicsState", "load_model", "make_backend"]


def load_model(asset: str, timestep: float) -> mujoco.MjModel:
    """Compile an MJCF file from `isaacgymenvs/assets/` with the task's physics timestep."""
    path = resources.files("isaacgymenvs") / "assets" / asset
    model = mujoco.MjModel.from_xml_path(str(path))
    model.opt.timestep = timestep
    return model


def make_backend(model: mujoco.MjModel, num_envs: int, device: torch.device, sim_cfg: DictConfig) -> PhysicsBackend:
    """The CPU backend (mujoco.batch) for 'cpu'; the MuJoCo Warp backend for CUDA devices.

    `sim_cfg` is the task's `sim` section (per-world contact/constraint buffer sizes for the GPU).
    """
    if device.type == "cpu":
        from isaacgymenvs.physics.cpu_batch import CpuBatchBackend

        return CpuBatchBackend(model, num_envs)
    try:
        from isaacgymenvs.physics.warp_backend import WarpBackend
    except ImportError as err:
        from isaacgymenvs.errors import UserError

        raise UserError(
            f"sim_device={device} needs the MuJoCo Warp backend ({err}); "
            "install it with pip install -e '.[gpu]' or use sim_device=cpu."
        ) from None
    return WarpBackend(model, num_envs, device, nconmax=int(sim_cfg.nconmax), njmax=int(sim_cfg.njmax))

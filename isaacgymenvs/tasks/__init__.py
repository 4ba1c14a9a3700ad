"""The task registry and factory: one name -> one VecTask class; `make_task` builds one from a config.

The one place a task is constructed (trainer, player, export, benchmarks), like IsaacGymEnvs'
`isaacgymenvs.make`. An unknown name lists the known ones.

Task modules (and with them mujoco) are imported only when a class is asked for: checking a
config must not load MuJoCo, whose import fixes the GL vendor a player later draws with
(player/devices.py chooses it first).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig

from isaacgymenvs.errors import UserError

if TYPE_CHECKING:
    from isaacgymenvs.tasks.vec_task import VecTask

# name -> (module, class), imported on first use
TASKS: dict[str, tuple[str, str]] = {
    "Ant": ("isaacgymenvs.tasks.locomotion", "Ant"),
    "Anymal": ("isaacgymenvs.tasks.anymal", "Anymal"),
    "Cartpole": ("isaacgymenvs.tasks.cartpole", "Cartpole"),
    "Humanoid": ("isaacgymenvs.tasks.locomotion", "Humanoid"),
}


def check_task_name(name: str) -> None:
    """One sentence listing the known tasks for an unknown name; imports nothing."""
    if name not in TASKS:
        raise UserError(f"Unknown task '{name}'; known tasks: {', '.join(sorted(TASKS))}.")


def task_class(name: str) -> type[VecTask]:
    """The VecTask class registered as `name`."""
    check_task_name(name)
    module, cls = TASKS[name]
    return getattr(importlib.import_module(module), cls)


TASK_KEYS = ("num_envs", "sim_device", "rl_device", "seed", "compile_task")


def make_task(cfg: DictConfig, rank: int = 0, **overrides: Any) -> VecTask:
    """The task of `cfg.task`, with cfg's num_envs, sim_device, rl_device, seed and compile_task.

    Keywords replace those keys (export builds one CPU env of a saved run: `num_envs=1,
    sim_device="cpu", ...`), and a key given as a keyword is never read from `cfg`. Seeds are
    offset by `rank` so that GPUs under torchrun explore differently.
    """
    unknown = sorted(set(overrides) - set(TASK_KEYS))
    if unknown:
        raise TypeError(f"make_task() got unexpected keys {unknown}; it takes {TASK_KEYS}")
    keys = {key: overrides[key] if key in overrides else cfg[key] for key in TASK_KEYS}
    return task_class(str(cfg.task.name))(
        cfg.task,
        num_envs=int(keys["num_envs"]),
        sim_device=str(keys["sim_device"]),
        rl_device=str(keys["rl_device"]),
        seed=int(keys["seed"]) + rank,
        compile_math=bool(keys["compile_task"]),
    )

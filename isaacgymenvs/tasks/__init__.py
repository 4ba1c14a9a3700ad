"""The task registry: one name -> one VecTask class. An unknown name lists the known ones."""

from __future__ import annotations

from isaacgymenvs.errors import UserError
from isaacgymenvs.tasks.cartpole import Cartpole
from isaacgymenvs.tasks.locomotion import Ant, Humanoid
from isaacgymenvs.tasks.vec_task import VecTask

TASKS: dict[str, type[VecTask]] = {"Ant": Ant, "Cartpole": Cartpole, "Humanoid": Humanoid}


def task_class(name: str) -> type[VecTask]:
    """The VecTask class registered as `name`."""
    try:
        return TASKS[name]
    except KeyError:
        raise UserError(f"Unknown task '{name}'; known tasks: {', '.join(sorted(TASKS))}.") from None

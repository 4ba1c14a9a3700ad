"""Expose a VecTask to rl_games through its env and vecenv registries (IsaacGymEnvs' 'rlgpu')."""

from __future__ import annotations

from collections.abc import Callable

from rl_games.common import env_configurations, vecenv
from rl_games.common.ivecenv import IVecEnv

from isaacgymenvs.tasks.vec_task import VecTask

ENV_NAME = "rlgpu"
VECENV_TYPE = "RLGPU"


class RlGamesVecEnv(IVecEnv):
    """Pass-through adapter: rl_games already speaks the VecTask tensor contract."""

    def __init__(self, task: VecTask) -> None:
        self.task = task

    def step(self, actions):  # rl_games' signature
        return self.task.step(actions)

    def reset(self):
        return self.task.reset()

    def get_number_of_agents(self) -> int:
        return self.task.get_number_of_agents()

    def get_env_info(self) -> dict:
        return {
            "action_space": self.task.action_space,
            "observation_space": self.task.observation_space,
            "agents": 1,
            "value_size": 1,
        }


def register_task(make_task: Callable[[], VecTask]) -> None:
    """Make rl_games build our task when a config names env_name 'rlgpu'."""
    vecenv.register(VECENV_TYPE, lambda config_name, num_actors, **kwargs: RlGamesVecEnv(make_task()))
    env_configurations.register(ENV_NAME, {"vecenv_type": VECENV_TYPE, "env_creator": lambda **kwargs: make_task()})

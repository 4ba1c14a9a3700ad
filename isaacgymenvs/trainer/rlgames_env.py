"""Expose a VecTask to rl_games through its env and vecenv registries (IsaacGymEnvs' 'rlgpu')."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator

import torch


@contextlib.contextmanager
def deferred_torch_compile() -> Iterator[None]:
    """While importing: `torch.compile` returns a stand-in that compiles on the first call.

    Why: rl_games' env registry imports its test networks, one decorated with @torch.compile, and
    the decorator alone imports torch._dynamo and inductor: 1.8 s of a CPU trainer's 3.8 s start
    (benchmarks/startup.py), for a network no task uses. A function decorated meanwhile is compiled
    exactly as before, on its first call.
    """
    real = torch.compile

    def stand_in(model=None, **options):
        if model is None:  # @torch.compile(mode=...)
            return lambda fn: stand_in(fn, **options)
        compiled = None

        @functools.wraps(model)
        def call(*args, **kwargs):
            nonlocal compiled
            if compiled is None:
                compiled = real(model, **options)
            return compiled(*args, **kwargs)

        return call

    torch.compile = stand_in
    try:
        yield
    finally:
        torch.compile = real


with deferred_torch_compile():
    from rl_games.common import env_configurations, vecenv
from rl_games.common.ivecenv import IVecEnv  # noqa: E402

from isaacgymenvs.tasks.vec_task import VecTask  # noqa: E402

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

"""Expose a VecTask to skrl (2.x) as its torch environment `Wrapper`.

skrl's trainers call reset() once, then step(actions) -> (observations [N, num_obs], rewards [N, 1],
terminated [N, 1], truncated [N, 1], infos) and state() (None: actor and critic see the same
observations). The task resets finished envs itself, so observations after a done are the new
episode's, as in Isaac Lab's skrl wrapper. An episode that hit the time limit is `truncated`, one
that failed `terminated`, so `time_limit_bootstrap` bootstraps only the former. The task's reward
terms are summed on the device (observers.EpisodeTermSums, as for rl_games and rsl_rl) and read
once per iteration (`take_reward_terms`); `infos` stays empty, or skrl's trainer would read a value
off the device on every step.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import torch
from skrl.envs.wrappers.torch import Wrapper

from isaacgymenvs.tasks.vec_task import VecTask
from isaacgymenvs.trainer.observers import EpisodeTermSums


class SkrlVecEnv(Wrapper):
    """A VecTask seen by skrl's agents and trainers."""

    def __init__(self, task: VecTask) -> None:
        super().__init__(task)
        self.task = task
        self._obs: torch.Tensor | None = None
        self._terms = EpisodeTermSums()

    @property
    def device(self) -> torch.device:
        return self.task.rl_device  # where observations, rewards and the agent live (not the physics)

    @property
    def num_envs(self) -> int:
        return self.task.num_envs

    @property
    def num_agents(self) -> int:
        return 1

    @property
    def observation_space(self) -> gymnasium.Space:
        return self.task.observation_space

    @property
    def action_space(self) -> gymnasium.Space:
        return self.task.action_space

    @property
    def state_space(self) -> gymnasium.Space | None:
        return None

    def reset(self) -> tuple[torch.Tensor, dict[str, Any]]:
        """All envs start a new episode on the first call; later calls (skrl's evaluation) keep them."""
        if self._obs is None:
            self._obs = self.task.reset()["obs"]
        return self._obs, {}

    def step(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, Any]:
        obs, rewards, dones, extras = self.task.step(actions)
        self._obs = obs["obs"]
        self._terms.add(extras.get("episode_terms"))
        truncated = extras["time_outs"].bool() & dones
        terminated = dones & ~truncated
        return self._obs, rewards.view(-1, 1), terminated.view(-1, 1), truncated.view(-1, 1), {}

    def state(self) -> torch.Tensor | None:
        return None

    def render(self, *args, **kwargs) -> None:
        """The trainer never renders (the player does, in its own process)."""
        return None

    def close(self) -> None:
        return None

    def take_reward_terms(self) -> dict[str, float]:
        """Each reward term's mean return over the episodes that finished since the last call."""
        return self._terms.take()

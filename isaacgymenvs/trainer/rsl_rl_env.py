"""Expose a VecTask to RSL-RL (rsl-rl-lib 5.x) as its `VecEnv`.

RSL-RL reads observations as a TensorDict of named groups; the task's observation vector is the
"policy" group, which the runner's `obs_groups` maps to both actor and critic (as Isaac Lab does).
Dones are the task's resets; `extras["time_outs"]` lets PPO bootstrap the value of timed-out
episodes. rsl_rl's logger sums episode returns itself from rewards and dones; the task's reward
terms are summed on the device (observers.EpisodeTermSums, as for rl_games) and read once per
iteration (`take_reward_terms`), so logging costs no host sync per step.
"""

from __future__ import annotations

import torch
from rsl_rl.env import VecEnv
from tensordict import TensorDict

from isaacgymenvs.tasks.vec_task import VecTask
from isaacgymenvs.trainer.observers import EpisodeTermSums


class RslRlVecEnv(VecEnv):
    """A VecTask seen by rsl_rl's OnPolicyRunner."""

    def __init__(self, task: VecTask, cfg: dict) -> None:
        self.task, self.cfg = task, cfg
        self.num_envs, self.num_actions = task.num_envs, task.num_actions
        self.max_episode_length = task.max_episode_length
        self.device = task.rl_device
        self._obs = task.reset()["obs"]
        self._terms = EpisodeTermSums()

    @property
    def episode_length_buf(self) -> torch.Tensor:
        return self.task.progress_buf

    @episode_length_buf.setter
    def episode_length_buf(self, value: torch.Tensor) -> None:  # init_at_random_ep_len
        self.task.progress_buf[:] = value.to(self.task.progress_buf.device)

    def get_observations(self) -> TensorDict:
        return TensorDict({"policy": self._obs}, batch_size=[self.num_envs])

    def step(self, actions: torch.Tensor) -> tuple[TensorDict, torch.Tensor, torch.Tensor, dict]:
        obs, rewards, dones, extras = self.task.step(actions)
        self._obs = obs["obs"]
        self._terms.add(extras.get("episode_terms"))
        return self.get_observations(), rewards, dones, {"time_outs": extras["time_outs"]}

    def take_reward_terms(self) -> dict[str, float]:
        """Each reward term's mean return over the episodes that finished since the last call."""
        return self._terms.take()

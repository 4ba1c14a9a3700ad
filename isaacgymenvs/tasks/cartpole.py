"""Cartpole: keep a pole upright by pushing its cart (IsaacGymEnvs Cartpole semantics).

Observations (4): cart position, cart velocity, pole angle, pole angular velocity.
Action (1): force on the cart = action * maxEffort N (the slider motor's gear).
Reward terms: alive 1, poleAngle angle^2, cartVelocity |cart_vel|, poleVelocity |pole_vel|
(weights in `cfg.env.reward`); the episode fails with the termination reward when
|cart position| > resetDist or |pole angle| > pi/2.
"""

from __future__ import annotations

import math

import mujoco
import torch
from omegaconf import DictConfig

from isaacgymenvs.physics import PhysicsState
from isaacgymenvs.tasks.vec_task import VecTask


class Cartpole(VecTask):
    """Cart on a rail with a passive pole hinge."""

    num_obs = 4
    num_actions = 1

    def __init__(
        self, cfg: DictConfig, num_envs: int, sim_device: str, rl_device: str, seed: int, compile_math: bool = False
    ) -> None:
        super().__init__(cfg, num_envs, sim_device, rl_device, seed, compile_math)
        self.reset_dist = float(cfg.env.resetDist)
        self.position_noise = float(cfg.env.positionNoise)
        self.velocity_noise = float(cfg.env.velocityNoise)

    def _check_model(self, model: mujoco.MjModel) -> None:
        if (model.nq, model.nv, model.nu) != (2, 2, 1):
            raise ValueError(f"Cartpole MJCF has (nq, nv, nu)={(model.nq, model.nv, model.nu)}, expected (2, 2, 1)")

    def _configure_model(self, model: mujoco.MjModel) -> None:
        model.actuator_gear[0, 0] = float(self.cfg.env.maxEffort)

    def _features(self, state: PhysicsState) -> torch.Tensor:
        return torch.cat([state.qpos[:, 0:1], state.qvel[:, 0:1], state.qpos[:, 1:2], state.qvel[:, 1:2]], dim=-1)

    def _reward_terms(self, obs: torch.Tensor) -> dict[str, torch.Tensor]:
        return {
            "alive": torch.ones_like(obs[:, 0]),
            "poleAngle": obs[:, 2] ** 2,
            "cartVelocity": obs[:, 1].abs(),
            "poleVelocity": obs[:, 3].abs(),
        }

    def _terminated(self, obs: torch.Tensor) -> torch.Tensor:
        return (obs[:, 0].abs() > self.reset_dist) | (obs[:, 2].abs() > math.pi / 2)

    def _sample_reset_state(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self._uniform((n, 2), self.position_noise), self._uniform((n, 2), self.velocity_noise)

    def _observe(self, obs: torch.Tensor) -> torch.Tensor:
        return obs

    def observation_names(self) -> list[str]:
        return ["cart_pos", "cart_vel", "pole_angle", "pole_vel"]

"""VecTask: the batched environment contract rl_games trains on (IsaacGymEnvs semantics).

Shapes: N = num_envs. `reset()` -> {'obs': [N, num_obs]}; `step(actions [N, num_actions])` ->
({'obs': [N, num_obs]}, rewards [N], dones [N] bool, extras). `extras['time_outs']` [N] bool marks
episodes cut by the time limit (not by failure), so PPO bootstraps their value;
`extras['episode']` holds, for the episodes that ended this step, the mean return of each named
reward term. Done environments are reset inside `step`, and the observation returned for them is
the first of their new episode.

A subclass supplies the model-specific parts: features of the physics state, named reward terms
(unweighted; weights come from `cfg.env.reward`), termination, reset sampling and observations.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import mujoco
import numpy as np
import torch
from gymnasium import spaces
from omegaconf import DictConfig

from isaacgymenvs.physics import PhysicsBackend, PhysicsState, load_model, make_backend


class VecTask(ABC):
    """Base of every task: buffers, the step loop, episode bookkeeping and resets."""

    num_obs: int
    num_actions: int

    def __init__(
        self, cfg: DictConfig, num_envs: int, sim_device: str, rl_device: str, seed: int, compile_math: bool = False
    ) -> None:
        self.cfg = cfg
        self.num_envs = num_envs
        self.device = torch.device(sim_device)
        self.rl_device = torch.device(rl_device)
        self.dt = float(cfg.sim.dt)
        self.substeps = int(cfg.sim.substeps)
        self.max_episode_length = int(cfg.env.episodeLength)
        self.clip_obs = float(cfg.env.clipObservations)
        self.clip_actions = float(cfg.env.clipActions)
        weights = dict(cfg.env.reward)
        self.termination_reward = float(weights.pop("termination"))
        self.reward_weights: dict[str, float] = {k: float(v) for k, v in weights.items()}

        self.model = load_model(cfg.env.asset, self.dt / self.substeps)
        self._check_model(self.model)
        self._configure_model(self.model)
        self.physics: PhysicsBackend = make_backend(self.model, num_envs, self.device, cfg.sim)
        self.generator = torch.Generator(device=self.device).manual_seed(seed)

        n, dev = num_envs, self.device
        self.obs_buf = torch.zeros(n, self.num_obs, device=dev)
        self.rew_buf = torch.zeros(n, device=dev)
        self.reset_buf = torch.zeros(n, dtype=torch.bool, device=dev)
        self.timeout_buf = torch.zeros(n, dtype=torch.bool, device=dev)
        self.progress_buf = torch.zeros(n, dtype=torch.long, device=dev)
        self.actions = torch.zeros(n, self.num_actions, device=dev)
        self.episode_sums = {k: torch.zeros(n, device=dev) for k in self.reward_weights}
        self.extras: dict[str, Any] = {}

        self.observation_space = spaces.Box(-np.inf, np.inf, (self.num_obs,), dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (self.num_actions,), dtype=np.float32)
        if compile_math:
            self._compile_math()

    def _compile_math(self) -> None:
        """Fuse the per-step tensor math (features, reward terms, termination, observations).

        On a GPU, thousands of envs make each op cheap, so an eager step is bound by ~150 kernel
        launches; torch.compile turns them into a few fused kernels. Resets (variable sizes) stay
        eager.
        """
        for name in ("_features", "_reward_terms", "_terminated", "_observe"):
            setattr(self, name, torch.compile(getattr(self, name), dynamic=False))

    # --- the contract ---------------------------------------------------------------------

    def reset(self) -> dict[str, torch.Tensor]:
        """Reset every environment and return the first observations."""
        self._reset_envs(torch.arange(self.num_envs, device=self.device))
        self.obs_buf[:] = self._observe(self._features(self.physics.state()))
        return self._obs_dict()

    def step(self, actions: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor, dict]:
        """Apply actions for one control period (`sim.substeps` physics steps)."""
        self.actions = torch.clamp(actions.to(self.device, torch.float32), -self.clip_actions, self.clip_actions)
        failed = self.physics.step(self._actions_to_ctrl(self.actions), self.substeps).to(self.device)
        self.progress_buf += 1

        features = self._features(self.physics.state())
        terms = self._reward_terms(features)
        terminated = self._terminated(features) | failed
        reward = torch.zeros_like(self.rew_buf)
        for name, weight in self.reward_weights.items():
            weighted = weight * terms[name]
            reward += weighted
            self.episode_sums[name] += weighted
        self.rew_buf[:] = torch.where(terminated, self.termination_reward, reward)
        self.timeout_buf[:] = (self.progress_buf >= self.max_episode_length - 1) & ~terminated
        self.reset_buf[:] = terminated | self.timeout_buf
        self._after_reward(features)

        self.extras = {"time_outs": self.timeout_buf.to(self.rl_device)}
        done_ids = self.reset_buf.nonzero(as_tuple=False).flatten()
        if len(done_ids) > 0:
            # One device sync for all terms (a .item() per term would sync once each on the GPU).
            means = torch.stack([s[done_ids].mean() for s in self.episode_sums.values()]).tolist()
            self.extras["episode"] = {f"reward_terms/{k}": m for k, m in zip(self.episode_sums, means, strict=True)}
            self._reset_envs(done_ids)
            features = self._features(self.physics.state())
        self.obs_buf[:] = self._observe(features)
        return self._obs_dict(), self.rew_buf.to(self.rl_device), self.reset_buf.to(self.rl_device), self.extras

    def get_number_of_agents(self) -> int:
        return 1

    # --- internals ------------------------------------------------------------------------

    def _obs_dict(self) -> dict[str, torch.Tensor]:
        return {"obs": torch.clamp(self.obs_buf, -self.clip_obs, self.clip_obs).to(self.rl_device)}

    def _reset_envs(self, env_ids: torch.Tensor) -> None:
        qpos, qvel = self._sample_reset_state(env_ids)
        self.physics.reset(env_ids, qpos, qvel)
        self.progress_buf[env_ids] = 0
        self.actions[env_ids] = 0.0
        for s in self.episode_sums.values():
            s[env_ids] = 0.0
        self._on_reset(env_ids)

    def _uniform(self, shape: tuple[int, ...], bound: float) -> torch.Tensor:
        """U(-bound, bound) from the task's own seeded generator."""
        return (torch.rand(shape, generator=self.generator, device=self.device) * 2.0 - 1.0) * bound

    def _configure_model(self, model: mujoco.MjModel) -> None:
        """Hook to adjust the compiled model from the task config before the worlds are built."""

    def _actions_to_ctrl(self, actions: torch.Tensor) -> torch.Tensor:
        """Actuator controls; the MJCF gears turn them into forces."""
        return actions

    def _after_reward(self, features: Any) -> None:
        """Hook after rewards are computed (e.g. to roll potentials forward)."""

    def _on_reset(self, env_ids: torch.Tensor) -> None:
        """Hook after worlds `env_ids` were reset."""

    @abstractmethod
    def _check_model(self, model: mujoco.MjModel) -> None:
        """Refuse an MJCF whose joints/actuators/sensors do not match the observation layout."""

    @abstractmethod
    def _features(self, state: PhysicsState) -> Any:
        """Derived quantities shared by reward, termination and observation."""

    @abstractmethod
    def _reward_terms(self, features: Any) -> dict[str, torch.Tensor]:
        """Unweighted reward terms [N] by name (the names of `cfg.env.reward`)."""

    @abstractmethod
    def _terminated(self, features: Any) -> torch.Tensor:
        """Bool [N]: the episode failed (the termination reward replaces the sum)."""

    @abstractmethod
    def _sample_reset_state(self, env_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Randomised (qpos [n, nq], qvel [n, nv]) for the worlds being reset."""

    @abstractmethod
    def _observe(self, features: Any) -> torch.Tensor:
        """Observations [N, num_obs]."""

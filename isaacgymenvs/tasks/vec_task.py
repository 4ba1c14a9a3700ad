"""VecTask: the batched environment contract rl_games trains on (IsaacGymEnvs semantics).

Shapes: N = num_envs. `reset()` -> {'obs': [N, num_obs]}; `step(actions [N, num_actions])` ->
({'obs': [N, num_obs]}, rewards [N], dones [N] bool, extras). `extras['time_outs']` [N] bool marks
episodes cut by the time limit (not by failure), so PPO bootstraps their value;
`extras['episode_terms']` (a `FinishedEpisodes`) holds, summed over the episodes that ended this
step, the return of each named reward term, as device tensors. Done environments are reset inside
`step`, and the observation returned for them is the first of their new episode.

The step never waits for the device: resets are masked over all environments (a reset state is
sampled for every env, used where the mask is set), and the per-term returns stay on the device
until a logger asks for them once per epoch. On a GPU with thousands of envs a host sync per step
(`nonzero`, `.item()`, `len()` of a data-dependent index) would stall the launch queue.

A subclass supplies the model-specific parts: features of the physics state, named reward terms
(unweighted; weights come from `cfg.env.reward`), termination, reset sampling and observations.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import mujoco
import numpy as np
import torch
from gymnasium import spaces
from omegaconf import DictConfig

from isaacgymenvs.physics import PhysicsBackend, PhysicsState, load_model, make_backend
from isaacgymenvs.tasks.compile_math import MATH_FUNCTIONS, BackgroundCompile


@dataclass(frozen=True)
class FinishedEpisodes:
    """Reward-term returns summed over the episodes that ended in one step (device tensors).

    names: the reward terms, in the order of `term_sums`; term_sums: [T] weighted returns summed
    over the finished episodes; count: how many episodes finished (0-d tensor).
    """

    names: tuple[str, ...]
    term_sums: torch.Tensor
    count: torch.Tensor


class VecTask(ABC):
    """Base of every task: buffers, the step loop, episode bookkeeping and resets."""

    num_obs: int
    num_actions: int
    # What an action is (an exported policy's metadata says it).
    action_meaning = "MuJoCo actuator control, the mean of the policy's Gaussian; force or torque = action * gear"

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
        self.term_names = tuple(self.reward_weights)
        self.episode_sums = torch.zeros(len(self.term_names), n, device=dev)  # [T, N] weighted returns
        self.extras: dict[str, Any] = {}

        self.observation_space = spaces.Box(-np.inf, np.inf, (self.num_obs,), dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (self.num_actions,), dtype=np.float32)
        self.math_compiler: BackgroundCompile | None = None
        if compile_math:
            self._compile_math()

    def _compile_math(self) -> None:
        """Fuse the per-step tensor math (features, reward terms, termination, observations).

        On a GPU, thousands of envs make each op cheap, so an eager step is bound by ~150 kernel
        launches; torch.compile turns them into a few fused kernels. Resets (random sampling from
        the task's generator) stay eager. Compiling takes seconds even with warm caches (7-11 s for
        Ant on an H200, and much longer on a fresh machine), so it runs in a background thread from
        the first reset on (with the graphed agent on a GPU: once its CUDA graphs are captured)
        while training runs eagerly (same math, slower); the compiled functions replace the eager
        ones between two steps.
        """
        self.math_compiler = BackgroundCompile(self, MATH_FUNCTIONS)

    # --- the contract ---------------------------------------------------------------------

    def reset(self) -> dict[str, torch.Tensor]:
        """Reset every environment and return the first observations."""
        self._reset_envs(torch.ones(self.num_envs, dtype=torch.bool, device=self.device))
        self.obs_buf[:] = self._observe(self._features(self.physics.state()))
        if self.math_compiler is not None:
            self.math_compiler.start()  # the task is whole now: its attributes exist
        return self._obs_dict()

    def step(self, actions: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor, dict]:
        """Apply actions for one control period (`sim.substeps` physics steps)."""
        if self.math_compiler is not None and self.math_compiler.swap_in():
            self.math_compiler = None
        self.actions = torch.clamp(actions.to(self.device, torch.float32), -self.clip_actions, self.clip_actions)
        failed = self.physics.step(self._actions_to_ctrl(self.actions), self.substeps).to(self.device)
        self.progress_buf += 1

        features = self._features(self.physics.state())
        weighted, reward, terminated, timeout = self._score(features, failed)
        self.episode_sums += weighted
        self.rew_buf[:] = reward
        self.timeout_buf[:] = timeout
        self.reset_buf[:] = terminated | timeout
        self._after_reward(features)

        done = self.reset_buf
        finished = FinishedEpisodes(self.term_names, self.episode_sums @ done.float(), done.sum())
        self.extras = {"time_outs": self.timeout_buf.to(self.rl_device), "episode_terms": finished}
        self._reset_envs(done)
        self.obs_buf[:] = self._observe(self._observed_features(features, done))
        return self._obs_dict(), self.rew_buf.to(self.rl_device), self.reset_buf.to(self.rl_device), self.extras

    def _observed_features(self, scored: Any, done: torch.Tensor) -> Any:
        """The features to observe after the resets: those just scored when no env was reset (the
        state is unchanged and features are a function of it), else recomputed. Only on the CPU,
        where asking costs nothing; on a GPU the question would stall the stream (and a CUDA graph).
        That halves the task math of a step where no env resets (a 4-env CPU player's main thread
        spent ~24% of its busy time computing features, twice a step)."""
        if self.device.type == "cpu" and not bool(done.any()):
            return scored
        return self._features(self.physics.state())

    def _score(
        self, features: Any, failed: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(weighted terms [T, N], reward [N], terminated [N], timed out [N]) after a step."""
        terms = self._reward_terms(features)
        terminated = self._terminated(features) | failed
        weighted = torch.stack([weight * terms[name] for name, weight in self.reward_weights.items()])
        reward = torch.where(terminated, self.termination_reward, weighted.sum(0))
        timeout = (self.progress_buf >= self.max_episode_length - 1) & ~terminated
        return weighted, reward, terminated, timeout

    def get_number_of_agents(self) -> int:
        return 1

    def action_names(self) -> list[str]:
        """One name per action: the MJCF actuator it drives (control = action, force = action * gear)."""
        return [self.model.actuator(i).name for i in range(self.model.nu)]

    @abstractmethod
    def observation_names(self) -> list[str]:
        """One name per observation entry, in order (what an exported policy's input means)."""

    # --- internals ------------------------------------------------------------------------

    def _obs_dict(self) -> dict[str, torch.Tensor]:
        return {"obs": torch.clamp(self.obs_buf, -self.clip_obs, self.clip_obs).to(self.rl_device)}

    def _reset_envs(self, mask: torch.Tensor) -> None:
        """Reset the envs where `mask` [N] is set; a no-op (but the same launches) where none is."""
        qpos, qvel = self._sample_reset_state(self.num_envs)
        self.physics.reset(mask, qpos, qvel)
        self.progress_buf.masked_fill_(mask, 0)
        self.actions.masked_fill_(mask[:, None], 0.0)
        self.episode_sums.masked_fill_(mask, 0.0)
        self._on_reset(mask)

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

    def _on_reset(self, mask: torch.Tensor) -> None:
        """Hook after the worlds where `mask` [N] is set were reset."""

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
    def _sample_reset_state(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """`n` randomised start states (qpos [n, nq], qvel [n, nv]) on the task's device."""

    @abstractmethod
    def _observe(self, features: Any) -> torch.Tensor:
        """Observations [N, num_obs]."""

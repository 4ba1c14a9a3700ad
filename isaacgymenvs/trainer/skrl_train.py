"""`mode=train library=skrl`: skrl's own PPO agent and SequentialTrainer on our VecTask, in our run directory.

skrl's trainer calls the agent's post_interaction after every env step, and PPO runs its update
there once `rollouts` steps are stored: a PPO subclass uses that seam. After the step whose update
finished it prints our progress line, logs the reward terms, appends metrics.csv and publishes
nn/latest.pth (every checkpoint_save_freq iterations) through the same background publisher as the
rl_games path. skrl's own checkpoints (agent_<timestep>.pt, best_agent.pt) are written atomically
into nn/ rather than skrl's <experiment>/checkpoints/, and its TensorBoard scalars go to
<run>/summaries once per iteration. Timesteps count from the start of training, also after a
resume, so agent_<timestep>.pt names never repeat.
"""

from __future__ import annotations

import collections
import contextlib
import io
import logging
import math
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from skrl.agents.torch.ppo import PPO
from skrl.memories.torch import RandomMemory
from skrl.trainers.torch import SequentialTrainer

from isaacgymenvs import protocol, skrl_config
from isaacgymenvs.errors import RunFailed, UserError
from isaacgymenvs.protocol import RunDir
from isaacgymenvs.tasks import make_task
from isaacgymenvs.trainer.progress import format_progress
from isaacgymenvs.trainer.publisher import CheckpointPublisher, HostSnapshot
from isaacgymenvs.trainer.rlgames_io import guard_summary_writer
from isaacgymenvs.trainer.run_setup import max_iterations as total_iterations
from isaacgymenvs.trainer.run_setup import open_library_run, read_resume_checkpoint, record_iteration, refuse_finished
from isaacgymenvs.trainer.skrl_env import SkrlVecEnv
from isaacgymenvs.trainer.train import summary_lines

LIBRARY = "skrl"
GAMES_TO_TRACK = 100  # the mean reward is over the last 100 finished episodes, as rl_games' games_to_track


class RunSummaryWriter:
    """skrl's writer interface (add_scalar with keywords) on tensorboardX's writer in <run>/summaries,
    guarded as rl_games' is so that a full disk drops summaries instead of stalling training."""

    def __init__(self, summaries: Path) -> None:
        from tensorboardX import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(summaries), flush_secs=10)
        if not guard_summary_writer(self.writer):
            print("Warning: TensorBoard writer not recognised; a full disk could stall training.", flush=True)

    def add_scalar(self, *, tag: str, value: float, timestep: int) -> None:
        self.writer.add_scalar(tag, float(value), timestep)

    def close(self) -> None:
        self.writer.close()


@contextlib.contextmanager
def quiet_skrl():
    """skrl's INFO lines and its model instantiators' prints stay out of our console."""
    from skrl import logger

    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)


class PublishingPPO(PPO):
    """skrl's PPO whose iterations report progress and publish latest.pth every `checkpoint_save_freq`.

    Iterations are counted as rl_games counts epochs, from the start of training (`start_epoch`
    after a resume), and max_iterations counts them all.
    """

    def __init__(self, *, run: RunDir, config: DictConfig, env: SkrlVecEnv, max_iterations: int, **ppo) -> None:
        super().__init__(**ppo)  # skrl's own arguments (models, memory, spaces, device, cfg: its PPO_CFG)
        self.run, self.env, self.max_iterations = run, env, max_iterations
        self.freq = int(config.checkpoint_save_freq)
        self.publisher = CheckpointPublisher(run)
        self.steps_per_iteration = env.num_envs * int(self.cfg.rollouts)
        self.start_epoch = 0
        self.completed: int | None = None  # the last iteration whose update finished in this process
        self.last_published: int | None = None
        self.returns: collections.deque[float] = collections.deque(maxlen=GAMES_TO_TRACK)
        self.started = self.iteration_started = time.monotonic()
        self.static_metadata = {
            "format_version": protocol.FORMAT_VERSION,
            "library": LIBRARY,
            "task": config.task.name,
            "network": skrl_config.network_description(OmegaConf.to_container(config.train.models, resolve=True)),
            "run": run.name,
            "config_hash": protocol.config_hash(config),
            "num_obs": int(env.task.num_obs),
            "num_actions": int(env.task.num_actions),
        }

    # --- skrl's hooks ---------------------------------------------------------------------------

    def init(self, *, trainer_cfg: Any = None) -> None:
        """skrl's init without its own TensorBoard writer and <experiment>/checkpoints/ folder: ours
        are <run>/summaries, written once per iteration, and nn/."""
        checkpoint_interval = self.checkpoint_interval
        self.write_interval = self.checkpoint_interval = 0
        super().init(trainer_cfg=trainer_cfg)
        self.write_interval, self.checkpoint_interval = int(self.cfg.rollouts), checkpoint_interval
        self.writer = RunSummaryWriter(self.run.summaries)

    def post_interaction(self, *, timestep: int, timesteps: int) -> None:
        offset = self.start_epoch * int(self.cfg.rollouts)  # timesteps from the start of training
        super().post_interaction(timestep=timestep + offset, timesteps=timesteps + offset)
        if self.training and not self._rollout % self.cfg.rollouts:  # this step ran the update
            self.after_iteration()

    def write_tracking_data(self, *, timestep: int, timesteps: int) -> None:
        # skrl clears them below and the progress line needs the last 100; each is [return] (rewards are [N, 1])
        self.returns.extend(float(value[0] if isinstance(value, list) else value) for value in self._track_rewards)
        super().write_tracking_data(timestep=timestep, timesteps=timesteps)

    def write_checkpoint(self, *, timestep: int, timesteps: int) -> None:
        """skrl's agent_<timestep>.pt and best_agent.pt, written atomically into nn/ with our metadata."""
        rollouts = int(self.cfg.rollouts)
        self.save_atomically(f"agent_{timestep}.pt", self.modules_state(), timestep // rollouts, self.mean_reward())
        best = self.checkpoint_best_modules
        if best["modules"] and not best["saved"]:
            reward = protocol.plain_number(float(best["reward"]), float)
            self.save_atomically("best_agent.pt", best["modules"], int(best["timestep"]) // rollouts, reward)
            best["saved"] = True

    # --- ours -------------------------------------------------------------------------------------

    def modules_state(self) -> dict[str, Any]:
        """What skrl's Agent.save writes: each checkpoint module's state (policy, value, optimizer,
        preprocessors)."""
        return {name: self._get_internal_value(module) for name, module in self.checkpoint_modules.items()}

    def metadata(self, epoch: int, reward: float | None) -> dict[str, Any]:
        return {
            **self.static_metadata,
            "epoch": epoch,
            "frame": epoch * self.steps_per_iteration,
            "mean_reward": reward,
            "wall_time": time.time(),
        }

    def mean_reward(self) -> float | None:
        """Mean return of the last 100 finished episodes, None before the first."""
        return statistics.mean(self.returns) if self.returns else None

    def save_atomically(self, name: str, modules: dict[str, Any], epoch: int, reward: float | None) -> None:
        """One of skrl's own files in nn/; a full disk stops training with one sentence."""
        path = self.run.nn / name
        state = {**modules, "metadata": self.metadata(epoch, reward)}
        try:
            protocol.atomic_write(path, lambda f: torch.save(state, f), root=self.run.root)
        except Exception as err:  # torch.save reports a full disk as RuntimeError
            raise RunFailed(
                f"Training stopped: could not save {path} ({protocol.first_line(err)}); "
                f"free some space and resume with checkpoint={self.run.latest_checkpoint}."
            ) from None

    def resume_from(self, ckpt: dict, name: str) -> None:
        """Weights, preprocessors, optimizer and iteration count of a checkpoint of this library."""
        missing = [key for key in self.checkpoint_modules if key not in ckpt]
        if missing:
            raise UserError(f"checkpoint={name} holds no {missing[0]} for skrl's PPO agent.")
        try:
            for key, module in self.checkpoint_modules.items():
                module.load_state_dict(ckpt[key])
        except (KeyError, RuntimeError, ValueError, TypeError) as err:
            raise UserError(
                f"checkpoint={name} does not fit this train config's networks ({protocol.first_line(err)[:200]})."
            ) from None
        self.start_epoch = resume_epoch(ckpt)

    def after_iteration(self) -> None:
        epoch = self.completed = (self.completed if self.completed is not None else self.start_epoch) + 1
        now = time.monotonic()
        rate = self.steps_per_iteration / max(now - self.iteration_started, 1e-9)
        self.iteration_started = now
        elapsed, done = now - self.started, epoch - self.start_epoch
        eta = elapsed / done * (self.max_iterations - epoch)
        reward = self.mean_reward()
        shown = math.nan if reward is None else reward
        print(format_progress(epoch, self.max_iterations, rate, shown, elapsed, eta), flush=True)
        frame = epoch * self.steps_per_iteration
        record_iteration(self.run, self.writer.writer, epoch, frame, reward, self.env.take_reward_terms())
        if epoch % self.freq == 0:
            self.publish(epoch)

    def publish(self, epoch: int) -> None:
        metadata = self.metadata(epoch, self.mean_reward())
        self.publisher.submit(HostSnapshot(self.modules_state()), metadata)
        self.last_published = epoch

    def finish(self) -> None:
        """Publish the newest weights (end of training, a stop signal or an error) and wait for the writes."""
        if self.completed is not None and self.last_published != self.completed:
            self.publish(self.completed)
        self.publisher.close()
        if isinstance(getattr(self, "writer", None), RunSummaryWriter):  # made by init(), once the trainer started
            self.writer.close()
        print(f"Published {protocol.LATEST_CHECKPOINT} {self.publisher.published} times", flush=True)


def resume_epoch(ckpt: dict) -> int:
    """Finished iterations of a checkpoint: our metadata's epoch (skrl's own files carry none: 0)."""
    meta = ckpt.get("metadata") if isinstance(ckpt.get("metadata"), dict) else {}
    epoch = protocol.plain_number(meta.get("epoch"), int)
    return 0 if epoch is None else epoch


def make_agent(cfg: DictConfig, env: SkrlVecEnv, run: RunDir, max_iterations: int) -> PublishingPPO:
    """skrl's models, rollout memory and PPO agent from the run's train config."""
    models = OmegaConf.to_container(cfg.train.models, resolve=True)
    agent = OmegaConf.to_container(cfg.train.agent, resolve=True)
    device = cfg.rl_device
    observation_space, action_space = env.observation_space, env.action_space
    ppo_cfg = skrl_config.ppo_config(agent, observation_space, device)
    with quiet_skrl():
        networks = skrl_config.agent_models(models, observation_space, action_space, device)
        memory = RandomMemory(memory_size=int(ppo_cfg.rollouts), num_envs=env.num_envs, device=device)
        return PublishingPPO(
            run=run, config=cfg, env=env, max_iterations=max_iterations, models=networks, memory=memory,
            observation_space=observation_space, action_space=action_space, device=device, cfg=ppo_cfg,
        )  # fmt: skip


def train_skrl(cfg: DictConfig) -> RunDir:
    """Train until max_iterations; returns the run directory."""
    max_iterations = total_iterations(cfg)
    ckpt = read_resume_checkpoint(cfg) if cfg.checkpoint else None
    start = resume_epoch(ckpt) if ckpt is not None else 0
    refuse_finished(cfg, start, max_iterations)
    with quiet_skrl():
        skrl_config.check(OmegaConf.to_container(cfg.train, resolve=True), cfg.rl_device)
    run, lock = open_library_run(cfg)
    started = time.monotonic()
    agent = None
    try:
        env = SkrlVecEnv(make_task(cfg))
        agent = make_agent(cfg, env, run, max_iterations)
        if ckpt is not None:
            agent.resume_from(ckpt, cfg.checkpoint)
        timesteps = (max_iterations - agent.start_epoch) * int(agent.cfg.rollouts)
        trainer_cfg = {"timesteps": timesteps, "headless": True, "disable_progressbar": True,
                       "close_environment_at_exit": False}  # fmt: skip
        with quiet_skrl():
            trainer = SequentialTrainer(env=env, agents=agent, cfg=trainer_cfg)
        trainer.train()
    finally:
        if agent is not None:
            agent.finish()  # also on Ctrl+C/SIGTERM: the newest policy stays watchable
        lock.release()
    print("\n".join(summary_lines(run, cfg.task.name, time.monotonic() - started, LIBRARY)), flush=True)
    return run

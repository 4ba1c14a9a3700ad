"""`mode=train`: build the task and rl_games' PPO Runner, write the run directory, train."""

from __future__ import annotations

import os

import torch
from omegaconf import DictConfig

from isaacgymenvs import protocol
from isaacgymenvs.errors import UserError
from isaacgymenvs.protocol import RunDir
from isaacgymenvs.tasks import VecTask, task_class
from isaacgymenvs.trainer.observers import (
    MetricsObserver,
    MultiObserver,
    ProgressObserver,
    RewardTermsObserver,
    WandbObserver,
)
from isaacgymenvs.trainer.publisher import CheckpointObserver, CheckpointPublisher
from isaacgymenvs.trainer.rlgames_config import rlgames_params
from isaacgymenvs.trainer.rlgames_env import register_task


def make_task(cfg: DictConfig, rank: int = 0) -> VecTask:
    """The configured task; seeds are offset by rank so that GPUs explore differently."""
    return task_class(cfg.task.name)(
        cfg.task, num_envs=cfg.num_envs, sim_device=cfg.sim_device, rl_device=cfg.rl_device, seed=int(cfg.seed) + rank
    )


def logging_observers(cfg: DictConfig) -> list:
    """Console progress, reward-term summaries and (optionally) W&B; checked before any file is written."""
    observers = [ProgressObserver(), RewardTermsObserver()]
    if cfg.wandb_activate:
        try:
            import wandb  # noqa: F401
        except ImportError:
            raise UserError(
                "wandb_activate=True needs the wandb package; install it with pip install -e '.[wandb]'."
            ) from None
        observers.append(WandbObserver(cfg))
    return observers


def train(cfg: DictConfig) -> RunDir:
    """Train until max_epochs; returns the run directory."""
    from rl_games.torch_runner import Runner  # heavy import, after the config is known good

    if cfg.torch_deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
    observers = logging_observers(cfg)
    run = protocol.create_run_dir(cfg.train_dir, cfg.experiment or cfg.task.name)
    lock = protocol.acquire_trainer_lock(run)
    protocol.write_params(run, cfg)
    print(f"Training will save to: {run.root}", flush=True)

    checkpoints = CheckpointObserver(cfg, run, CheckpointPublisher(run))
    register_task(lambda: make_task(cfg))
    runner = Runner(algo_observer=MultiObserver([*observers, MetricsObserver(run), checkpoints]))
    runner.load(rlgames_params(cfg, run))
    runner.reset()
    try:
        runner.run({"train": True, "play": False, "checkpoint": cfg.checkpoint or None, "sigma": None})
    finally:
        checkpoints.finish()  # also on Ctrl+C: the newest policy stays watchable
        lock.release()
    return run

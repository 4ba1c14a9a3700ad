"""What each PPO library's own trainer (rsl_rl, skrl) does as the rl_games path does, in one place:
before its first step, seed the generators, read the `checkpoint=` to resume, refuse a resume with
nothing left to train and open the run directory; after each iteration, record it."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from isaacgymenvs import protocol
from isaacgymenvs.errors import UserError
from isaacgymenvs.protocol import RunDir
from isaacgymenvs.trainer.observers import WandbObserver
from isaacgymenvs.trainer.train import logging_observers, open_run_for_writing


def seed_everything(seed: int) -> None:
    """The libraries draw their initial weights and action noise from torch's global generator."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def read_resume_checkpoint(cfg: DictConfig) -> dict:
    """The checkpoint= dict, loaded without running code unless trust_checkpoint=True."""
    path = Path(cfg.checkpoint)
    if cfg.trust_checkpoint:
        return torch.load(path, map_location="cpu", weights_only=False)
    try:
        return protocol.read_checkpoint_dict(path)
    except protocol.CheckpointRejected as err:
        raise UserError(f"checkpoint={cfg.checkpoint} is not a usable checkpoint: {err}.") from None


def max_iterations(cfg: DictConfig) -> int:
    """max_iterations=, else the train config's: PPO iterations counted from the start of training."""
    return int(cfg.max_iterations if cfg.max_iterations is not None else cfg.train.max_iterations)


def refuse_finished(cfg: DictConfig, start: int, total: int) -> None:
    """A resume at or past max_iterations has nothing to train (it counts all iterations, as rl_games' epochs)."""
    if start >= total:
        raise UserError(
            f"{cfg.checkpoint} is at iteration {start} and max_iterations={total} counts all iterations "
            "from the start, so nothing is left to train; pass a larger one, "
            f"e.g. max_iterations={start + total}."
        )


def open_library_run(cfg: DictConfig) -> tuple[RunDir, Any]:
    """Seed, then write the run directory and take its lock; returns (run, lock), the lock to release.

    W&B's settings are checked before any file is written (a wrong one costs no run directory); its
    run starts once the directory exists, and mirrors the library's TensorBoard scalars.
    """
    wandb = [o for o in logging_observers(cfg) if isinstance(o, WandbObserver)]
    seed_everything(int(cfg.seed))
    run, lock = open_run_for_writing(cfg)
    print(f"Training will save to: {run.root}", flush=True)
    for observer in wandb:
        observer.before_init(cfg.task.name, None, run.name)
    return run, lock


def record_iteration(run: RunDir, writer: Any, epoch: int, frame: int, reward: float | None, terms: dict) -> None:
    """After a PPO iteration: the reward terms to TensorBoard (tensorboardX's `writer`, under the tags the
    rl_games observer uses) and one line of metrics.csv; a full disk is a warning, not a crash."""
    for name, value in terms.items():
        writer.add_scalar(f"reward_terms/{name}", value, frame)
    try:
        protocol.append_metrics(run, epoch, frame, reward, time.time())
    except OSError as err:
        print(f"Warning: could not append to {run.metrics_file} ({err})", flush=True)

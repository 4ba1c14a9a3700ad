"""`mode=train`: build the task and rl_games' PPO Runner, write the run directory, train."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import torch
from omegaconf import DictConfig
from rl_games.common.algo_observer import AlgoObserver

from isaacgymenvs import protocol
from isaacgymenvs.errors import UserError
from isaacgymenvs.protocol import RunDir
from isaacgymenvs.tasks import make_task
from isaacgymenvs.trainer import graphed
from isaacgymenvs.trainer.observers import (
    CompileAfterCapture,
    MetricsObserver,
    MultiObserver,
    ProgressObserver,
    RewardTermsObserver,
    WandbObserver,
)
from isaacgymenvs.trainer.publisher import CheckpointObserver, CheckpointPublisher
from isaacgymenvs.trainer.rlgames_config import rlgames_params
from isaacgymenvs.trainer.rlgames_env import register_task
from isaacgymenvs.trainer.rlgames_io import guard_summary_writer, safe_rlgames_io


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


def global_rank(cfg: DictConfig) -> int:
    """This process's rank under torchrun (0 without multi_gpu)."""
    return int(os.environ.get("RANK", "0")) if cfg.multi_gpu else 0


def check_resume_epochs(cfg: DictConfig) -> None:
    """Refuse a resume that has nothing left to train: max_epochs counts from epoch 0 (IsaacGymEnvs'
    max_iterations), and rl_games would train one epoch past it and print 'epoch 7/3'."""
    if not cfg.checkpoint:
        return
    epoch = protocol.checkpoint_epoch_hint(Path(cfg.checkpoint))
    max_epochs = int(cfg.max_iterations if cfg.max_iterations is not None else cfg.train.params.config.max_epochs)
    if epoch is not None and epoch >= max_epochs > 0:
        raise UserError(
            f"{cfg.checkpoint} is at epoch {epoch} and max_iterations={max_epochs} counts all epochs from the start, "
            f"so nothing is left to train; pass a larger max_iterations, e.g. max_iterations={epoch + max_epochs}."
        )


def open_run_for_writing(cfg: DictConfig) -> tuple[RunDir, object]:
    """A new run directory, its writer lock and params/config.yaml; a write error is one sentence."""
    try:
        run = protocol.create_run_dir(cfg.train_dir, cfg.experiment or cfg.task.name)
        lock = protocol.acquire_trainer_lock(run)
        protocol.clean_stale_temp_files(run)  # opened for writing: no killed writer's leftovers stay
        protocol.write_params(run, cfg)
    except OSError as err:
        raise UserError(f"Cannot write the run directory under train_dir={cfg.train_dir} ({err}).") from None
    return run, lock


class SummaryWriterGuard(AlgoObserver):
    """After rl_games made its TensorBoard writer, make it drop summaries instead of hanging training."""

    def after_init(self, algo) -> None:
        writer = getattr(algo, "writer", None)
        if writer is not None and not guard_summary_writer(writer):
            print("Warning: TensorBoard writer not recognised; a full disk could stall training.", flush=True)


def train(cfg: DictConfig) -> RunDir | None:
    """Train until max_epochs; returns the run directory (None on ranks other than 0)."""
    from rl_games.torch_runner import Runner  # heavy import, after the config is known good

    check_resume_epochs(cfg)
    if cfg.torch_deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
    if cfg.multi_gpu:
        os.environ.setdefault("NCCL_NVLS_ENABLE", "0")  # NVLink multicast can take shared GPUs down
    rank = global_rank(cfg)
    observers = logging_observers(cfg) if rank == 0 else []  # console, TensorBoard and W&B on rank 0
    if rank == 0:
        run, lock = open_run_for_writing(cfg)
        print(f"Training will save to: {run.root}", flush=True)
    else:
        # rl_games makes its directories on every rank but only rank 0 writes into them.
        scratch = tempfile.TemporaryDirectory(prefix=f"rank{rank}_")
        run, lock = RunDir(Path(scratch.name) / "run"), None

    checkpoints = CheckpointObserver(cfg, run, CheckpointPublisher(run))
    extra = [MetricsObserver(run), checkpoints] if rank == 0 else [checkpoints]
    extra.append(CompileAfterCapture())  # every rank
    register_task(lambda: make_task(cfg, rank))
    runner = Runner(algo_observer=MultiObserver([*observers, *extra, SummaryWriterGuard()]))
    graphed.register(runner)
    runner.load(rlgames_params(cfg, run))
    runner.reset()
    started = time.monotonic()
    try:
        with safe_rlgames_io(bool(cfg.trust_checkpoint)):
            runner.run({"train": True, "play": False, "checkpoint": cfg.checkpoint or None, "sigma": None})
    finally:
        checkpoints.finish()  # also on Ctrl+C: the newest policy stays watchable (rank 0 only)
        if lock is not None:
            lock.release()
    if rank == 0:
        print("\n".join(summary_lines(run, cfg.task.name, time.monotonic() - started)), flush=True)
    return run if rank == 0 else None


def summary_lines(run: RunDir, task: str, seconds: float, library: str = "rl_games") -> list[str]:
    """What was trained, where it is, and the commands that watch, resume and export it."""
    manifest = protocol.read_manifest(run.latest_manifest, run.root) or {}
    epoch, reward = manifest.get("epoch"), manifest.get("mean_reward")
    reward_text = f", last mean reward {reward:.1f}" if isinstance(reward, (int, float)) else ""
    entry = "python isaacgymenvs/train_play.py"
    chosen = "" if library == "rl_games" else f" library={library}"
    return [
        f"Trained {task} for {epoch if isinstance(epoch, int) else '?'} epochs in "
        f"{int(seconds) // 60}:{int(seconds) % 60:02d}{reward_text}: {run.root}",
        f"  watch:  {entry} mode=play experiment={run.name}",
        f"  resume: {entry} task={task}{chosen} checkpoint={run.latest_checkpoint} max_iterations=<more than {epoch}>",
        f"  export: {entry} mode=export experiment={run.name}",
    ]

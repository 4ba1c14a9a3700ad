"""`mode=train library=rsl_rl`: rsl_rl's OnPolicyRunner on our VecTask, in our run directory.

OnPolicyRunner.learn() has no per-iteration hook, but its Logger.log runs exactly once per
iteration, after the PPO update and before the runner's own periodic save: a Logger subclass is
the seam. It keeps rsl_rl's TensorBoard scalars (written into <run>/summaries), prints our one
progress line instead of rsl_rl's 30-line block, logs the reward terms, appends metrics.csv and
publishes nn/latest.pth through the same background publisher as the rl_games path. rsl_rl's own
nn/model_<it>.pt files are written atomically too (temp + rename), so a panel never reads half of one.
"""

from __future__ import annotations

import contextlib
import io
import math
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from rsl_rl.runners import OnPolicyRunner
from rsl_rl.utils.logger import Logger

from isaacgymenvs import protocol
from isaacgymenvs.errors import RunFailed, UserError
from isaacgymenvs.protocol import RunDir
from isaacgymenvs.tasks import make_task
from isaacgymenvs.trainer.progress import format_progress
from isaacgymenvs.trainer.publisher import CheckpointPublisher, HostSnapshot
from isaacgymenvs.trainer.rlgames_io import guard_summary_writer
from isaacgymenvs.trainer.rsl_rl_env import RslRlVecEnv
from isaacgymenvs.trainer.run_setup import max_iterations as total_iterations
from isaacgymenvs.trainer.run_setup import open_library_run, read_resume_checkpoint, record_iteration, refuse_finished
from isaacgymenvs.trainer.train import summary_lines

LIBRARY = "rsl_rl"


class RunLogger(Logger):
    """rsl_rl's Logger, writing TensorBoard into <run>/summaries and calling `after_iteration(it, seconds)`."""

    def __init__(self, summaries: Path, after_iteration: Callable[[int, float], None], **logger_args) -> None:
        super().__init__(**logger_args)
        self.summaries, self.after_iteration = summaries, after_iteration

    def init_logging_writer(self) -> None:
        """TensorBoard only, guarded so that a full disk drops summaries instead of stalling training;
        no git diff (params/config.yaml records the run). tensorboardX's writer (rl_games' too), which
        rlgames_io knows how to guard; rsl_rl only calls add_scalar on it."""
        from tensorboardX import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(self.summaries), flush_secs=10)
        if not guard_summary_writer(self.writer):
            print("Warning: TensorBoard writer not recognised; a full disk could stall training.", flush=True)

    def log(self, **kwargs) -> None:
        with contextlib.redirect_stdout(io.StringIO()):  # rsl_rl's block; our progress line replaces it
            super().log(**kwargs)
        self.after_iteration(int(kwargs["it"]), float(kwargs["collect_time"]) + float(kwargs["learn_time"]))

    def mean_reward(self) -> float | None:
        """Mean return of the last 100 finished episodes (rl_games' games_to_track), None before the first."""
        return statistics.mean(self.rewbuffer) if self.rewbuffer else None


class PublishingRunner(OnPolicyRunner):
    """OnPolicyRunner whose iterations report progress and publish latest.pth every `checkpoint_save_freq`.

    Iterations are counted as rl_games counts epochs: the one whose update finished as `it` is
    iteration it + 1, and max_iterations counts them all from the start of training.
    """

    def __init__(self, env: RslRlVecEnv, cfg: DictConfig, run: RunDir, max_iterations: int) -> None:
        train_cfg = OmegaConf.to_container(cfg.train.runner, resolve=True)
        train_cfg["run_name"] = run.name
        with contextlib.redirect_stdout(io.StringIO()):  # rsl_rl prints every model and observation set
            super().__init__(env, train_cfg, log_dir=str(run.nn), device=cfg.rl_device)
        self.logger = RunLogger(
            run.summaries, self.after_iteration, log_dir=str(run.nn), cfg=self.cfg, env_cfg=env.cfg,
            num_envs=env.num_envs, is_distributed=False, gpu_world_size=1, gpu_global_rank=0, device=self.device,
        )  # fmt: skip
        self.run, self.max_iterations = run, max_iterations
        self.freq = int(cfg.checkpoint_save_freq)
        self.publisher = CheckpointPublisher(run)
        self.steps_per_iteration = env.num_envs * int(train_cfg["num_steps_per_env"])
        self.start_epoch = 0
        self.completed: int | None = None  # the last iteration whose update finished in this process
        self.last_published: int | None = None
        self.started = time.monotonic()
        actor = train_cfg["actor"]
        self.static_metadata = {
            "format_version": protocol.FORMAT_VERSION,
            "library": LIBRARY,
            "task": cfg.task.name,
            "network": {"units": list(actor["hidden_dims"]), "activation": str(actor["activation"])},
            "run": run.name,
            "config_hash": protocol.config_hash(cfg),
            "num_obs": int(env.task.num_obs),
            "num_actions": int(env.num_actions),
        }

    def resume_from(self, ckpt: dict, name: str) -> None:
        """Weights, normaliser, optimizer and iteration count of a checkpoint of this library."""
        try:
            self.alg.load(ckpt, None, strict=True)
        except (KeyError, RuntimeError, ValueError) as err:
            raise UserError(
                f"checkpoint={name} does not fit this train config's networks ({protocol.first_line(err)[:200]})."
            ) from None
        self.start_epoch = self.current_learning_iteration = resume_epoch(ckpt)

    def after_iteration(self, it: int, seconds: float) -> None:
        epoch = self.completed = it + 1
        reward = self.logger.mean_reward()
        elapsed = time.monotonic() - self.started
        done = epoch - self.start_epoch
        eta = elapsed / done * (self.max_iterations - epoch) if done > 0 else math.nan
        rate = self.steps_per_iteration / max(seconds, 1e-9)
        shown = math.nan if reward is None else reward
        print(format_progress(epoch, self.max_iterations, rate, shown, elapsed, eta), flush=True)
        frame = epoch * self.steps_per_iteration
        record_iteration(self.run, self.logger.writer, epoch, frame, reward, self.env.take_reward_terms())
        if epoch % self.freq == 0:
            self.publish(epoch)

    def publish(self, epoch: int) -> None:
        metadata = {
            **self.static_metadata,
            "epoch": epoch,
            "frame": epoch * self.steps_per_iteration,
            "mean_reward": self.logger.mean_reward(),
            "wall_time": time.time(),
        }
        # 'iter' is the count of finished iterations, so rsl_rl's own runner.load() continues from it too
        state = {**self.alg.save(), "iter": epoch, "infos": None}
        self.publisher.submit(HostSnapshot(state), metadata)
        self.last_published = epoch

    def save(self, path: str, infos: dict | None = None) -> None:
        """rsl_rl's model_<it>.pt, written atomically; a full disk stops training with one sentence."""
        state = {**self.alg.save(), "iter": self.current_learning_iteration, "infos": infos}
        try:
            protocol.atomic_write(Path(path), lambda f: torch.save(state, f), root=self.run.root)
        except Exception as err:  # torch.save reports a full disk as RuntimeError
            raise RunFailed(
                f"Training stopped: could not save {path} ({protocol.first_line(err)}); "
                f"free some space and resume with checkpoint={self.run.latest_checkpoint}."
            ) from None

    def finish(self) -> None:
        """Publish the newest weights (end of training, a stop signal or an error) and wait for the writes."""
        if self.completed is not None and self.last_published != self.completed:
            self.publish(self.completed)
        self.publisher.close()
        print(f"Published {protocol.LATEST_CHECKPOINT} {self.publisher.published} times", flush=True)


def resume_epoch(ckpt: dict) -> int:
    """Finished iterations of a checkpoint: our metadata's epoch, else rsl_rl's 'iter' (an index) + 1."""
    meta = ckpt.get("metadata") if isinstance(ckpt.get("metadata"), dict) else {}
    epoch = protocol.plain_number(meta.get("epoch"), int)
    if epoch is None:
        epoch = protocol.rsl_rl_iter_epoch(ckpt)
    return 0 if epoch is None else epoch


def train_rsl_rl(cfg: DictConfig) -> RunDir:
    """Train until max_iterations; returns the run directory."""
    max_iterations = total_iterations(cfg)
    ckpt = read_resume_checkpoint(cfg) if cfg.checkpoint else None
    start = resume_epoch(ckpt) if ckpt is not None else 0
    refuse_finished(cfg, start, max_iterations)
    run, lock = open_library_run(cfg)
    started = time.monotonic()
    runner = None
    try:
        env = RslRlVecEnv(make_task(cfg), {})
        runner = PublishingRunner(env, cfg, run, max_iterations)
        if ckpt is not None:
            runner.resume_from(ckpt, cfg.checkpoint)
        runner.learn(max_iterations - start)
    finally:
        if runner is not None:
            runner.finish()  # also on Ctrl+C/SIGTERM: the newest policy stays watchable
        lock.release()
    print("\n".join(summary_lines(run, cfg.task.name, time.monotonic() - started, LIBRARY)), flush=True)
    return run

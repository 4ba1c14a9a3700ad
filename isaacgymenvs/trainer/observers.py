"""rl_games algorithm observers, each with one job, composed by `MultiObserver`.

Hook order per epoch (rl_games 1.6.5): process_infos during the rollout, after_steps after it,
after_print_stats on global rank 0 after the PPO update and before rl_games' own checkpoint save.
"""

from __future__ import annotations

import math
import time

import torch
from rl_games.common.algo_observer import AlgoObserver

from isaacgymenvs.tasks.compile_math import compiler_of
from isaacgymenvs.trainer.progress import format_progress


class MultiObserver(AlgoObserver):
    """Forward every hook to each observer in order."""

    def __init__(self, observers: list[AlgoObserver]) -> None:
        super().__init__()
        self.observers = observers

    def _each(self, hook: str, *args) -> None:
        for observer in self.observers:
            getattr(observer, hook)(*args)

    def before_init(self, base_name, config, experiment_name) -> None:
        self._each("before_init", base_name, config, experiment_name)

    def after_init(self, algo) -> None:
        self._each("after_init", algo)

    def process_infos(self, infos, done_indices) -> None:
        self._each("process_infos", infos, done_indices)

    def after_steps(self) -> None:
        self._each("after_steps")

    def after_clear_stats(self) -> None:
        self._each("after_clear_stats")

    def after_print_stats(self, frame, epoch_num, total_time) -> None:
        self._each("after_print_stats", frame, epoch_num, total_time)


def full_episodes_epoch(algo, start_epoch: int) -> int:
    """The first epoch whose rollout can finish an episode that ran its full length after a start.

    Every env starts a new episode when training starts or resumes, so until max_episode_length
    steps have passed only episodes that ended early (falls, terminations) finish: their mean
    reward is far below a trained policy's, which after a resume reads as a regression.
    """
    task = getattr(algo.vec_env, "task", None)
    length = getattr(task, "max_episode_length", 0)
    return start_epoch + math.ceil(length / max(algo.horizon_length, 1)) if length else start_epoch


def resume_note(epoch: int, start_epoch: int, full_epoch: int) -> str:
    """After a resume, until full-length episodes finish: why the mean reward is low (else '')."""
    if start_epoch <= 0 or epoch >= full_epoch:
        return ""
    return f" | resumed at epoch {start_epoch}: until epoch {full_epoch} only episodes that ended early count"


class ProgressObserver(AlgoObserver):
    """One console line per epoch: epoch/max, env steps/s, mean episode reward, elapsed, ETA; after a
    resume, until full-length episodes finish, a note that the mean counts only early endings."""

    def __init__(self) -> None:
        super().__init__()
        self.algo = None

    def after_init(self, algo) -> None:
        self.algo = algo
        self.start = self.last_time = time.perf_counter()
        self.start_frame = self.last_frame = self.start_epoch = None

    def after_steps(self) -> None:
        # The first rollout is the earliest hook after a resume restored epoch and frame (after_init
        # runs before it); counting from there keeps the first rate and the ETA right.
        if self.start_epoch is None:
            self.start_frame = self.last_frame = self.algo.frame
            self.start_epoch = self.algo.epoch_num - 1
            self.full_epoch = full_episodes_epoch(self.algo, self.start_epoch)

    def after_print_stats(self, frame, epoch_num, total_time) -> None:
        if self.start_epoch is None:  # an agent that never calls after_steps: count from here
            self.after_steps()
        now, algo = time.perf_counter(), self.algo
        frames = algo.frame  # rl_games passes the frame count of the previous epoch
        rate = (frames - self.last_frame) / max(now - self.last_time, 1e-9)
        self.last_time, self.last_frame = now, frames
        elapsed = now - self.start
        done = epoch_num - self.start_epoch
        max_epochs = algo.max_epochs
        eta = elapsed / done * (max_epochs - epoch_num) if done > 0 and max_epochs > 0 else math.nan
        reward = algo.game_rewards.get_mean()[0] if algo.game_rewards.current_size > 0 else math.nan
        note = resume_note(epoch_num, self.start_epoch, self.full_epoch)
        print(format_progress(epoch_num, max_epochs, rate, reward, elapsed, eta) + note, flush=True)


class CompileAfterCapture(AlgoObserver):
    """The task's math compiles (tasks/compile_math.py) only once the graphed agent has captured its
    CUDA graphs, by epoch 4: inductor may synchronize the device while it compiles, which
    invalidates a capture in progress (seen on an H200). Meanwhile training runs captured, with the
    task's math eager; the compiled math replaces it between two steps when ready."""

    def after_init(self, algo) -> None:
        from isaacgymenvs.trainer.graphed.agent import GraphedA2CAgent  # after rlgames_env's deferred import

        self.algo, self.compiler = algo, compiler_of(algo.vec_env)
        captures = isinstance(algo, GraphedA2CAgent) and str(algo.ppo_device).startswith("cuda")
        if self.compiler is not None and captures:
            self.compiler.defer()
        else:
            self.compiler = None

    def after_steps(self) -> None:  # every rank, every epoch
        if self.compiler is not None and self.algo.capture_seconds:
            self.compiler.release()
            self.compiler = None


class EpisodeTermSums:
    """Each named reward term's return summed over the episodes that finished, kept on the device.

    The task reports per-step sums as device tensors (`extras['episode_terms']`); they are added up
    on the device and read back once per epoch (`take`), so logging costs no host sync per step.
    Used by the rl_games observer below and by rsl_rl's env wrapper.
    """

    def __init__(self) -> None:
        self.names: tuple[str, ...] = ()
        self.sums: torch.Tensor | None = None  # [T + 1]: the terms' sums, then the episode count

    def add(self, finished) -> None:
        """Add one step's `extras['episode_terms']` (None when no episode finished)."""
        if finished is None:
            return
        sums = torch.cat([finished.term_sums.float(), finished.count.reshape(1).float()])
        self.names = finished.names
        self.sums = sums if self.sums is None else self.sums + sums

    def take(self) -> dict[str, float]:
        """Each term's mean return over the episodes finished since the last call (empty if none)."""
        if self.sums is None:
            return {}
        *sums, count = self.sums.tolist()
        self.sums = None
        if count <= 0:
            return {}
        return {name: total / count for name, total in zip(self.names, sums, strict=True)}


class RewardTermsObserver(AlgoObserver):
    """Log each named reward term's mean episode return to TensorBoard (reward_terms/<name>)."""

    def __init__(self) -> None:
        super().__init__()
        self.terms = EpisodeTermSums()

    def after_init(self, algo) -> None:
        self.algo = algo

    def process_infos(self, infos, done_indices) -> None:
        self.terms.add(infos.get("episode_terms") if isinstance(infos, dict) else None)

    def after_print_stats(self, frame, epoch_num, total_time) -> None:
        means = self.terms.take()
        writer = getattr(self.algo, "writer", None)
        if writer is not None:
            for name, mean in means.items():
                writer.add_scalar(f"reward_terms/{name}", mean, self.algo.frame)


class WandbObserver(AlgoObserver):
    """Start a Weights & Biases run that mirrors the TensorBoard scalars."""

    def __init__(self, cfg) -> None:
        super().__init__()
        self.cfg = cfg

    def before_init(self, base_name, config, experiment_name) -> None:
        import wandb
        from omegaconf import OmegaConf

        cfg = self.cfg
        wandb.init(
            project=cfg.wandb_project,
            entity=cfg.wandb_entity or None,
            group=cfg.wandb_group or None,
            name=f"{cfg.wandb_name}_{experiment_name}",
            config=OmegaConf.to_container(cfg, resolve=True),
            sync_tensorboard=True,
        )


class MetricsObserver(AlgoObserver):
    """Append epoch, frame and mean episode reward to <run>/metrics.csv (the panel's reward curve)."""

    def __init__(self, run) -> None:
        super().__init__()
        self.run = run

    def after_init(self, algo) -> None:
        self.algo = algo

    def after_print_stats(self, frame, epoch_num, total_time) -> None:
        from isaacgymenvs import protocol

        rewards = self.algo.game_rewards
        reward = float(rewards.get_mean()[0]) if rewards.current_size > 0 else None
        try:
            protocol.append_metrics(self.run, int(epoch_num), int(self.algo.frame), reward, time.time())
        except OSError as err:
            print(f"Warning: could not append to {self.run.metrics_file} ({err})", flush=True)

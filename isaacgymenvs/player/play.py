"""`mode=play`: resolve the run, rebuild its task and policy, then show it (window or headless)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from isaacgymenvs import protocol
from isaacgymenvs.errors import UserError
from isaacgymenvs.player.core import PlayerCore
from isaacgymenvs.protocol import RunDir


def with_run_config(cfg: DictConfig, run: RunDir, task_given: bool) -> DictConfig:
    """The run's own task and train sections (so observations and network match what trained).

    num_envs, devices and play keys stay as given for this player.
    """
    try:
        saved = protocol.read_params(run)
        saved_task = str(saved.task.name)
    except (OSError, ValueError, AttributeError, OmegaConfBaseException) as err:
        raise UserError(f"Run {run.name} has no readable params/config.yaml ({err}); is it a training run?") from None
    if task_given and saved_task != cfg.task.name:
        raise UserError(
            f"Run {run.name} trained task {saved.task.name}, not {cfg.task.name}; drop task= or pick a run."
        )
    OmegaConf.set_struct(cfg, False)
    cfg.task, cfg.train = saved.task, saved.train
    cfg.task.env.numEnvs = cfg.num_envs
    OmegaConf.set_struct(cfg, True)
    return cfg


def build_core(cfg: DictConfig, run: RunDir, use_events: bool = True, log=print) -> PlayerCore:  # noqa: ANN001
    """Task, policy and checkpoint follower of a player for `run` (cfg already has the run's config)."""
    from isaacgymenvs.player.follower import CheckpointFollower
    from isaacgymenvs.player.policy import Policy
    from isaacgymenvs.trainer.train import make_task

    task = make_task(cfg)
    train_params = OmegaConf.to_container(cfg.train, resolve=True)
    policy = Policy(train_params, task.num_obs, task.num_actions, cfg.rl_device, bool(cfg.stochastic))
    follower = CheckpointFollower(
        run,
        cfg.task.name,
        task.num_obs,
        task.num_actions,
        float(cfg.checkpoint_reload_interval),
        initial_checkpoint=Path(cfg.checkpoint) if cfg.checkpoint else None,
        use_events=use_events,
        log=log,
    )
    return PlayerCore(task, policy, follower)


def play(cfg: DictConfig, task_given: bool) -> None:
    windowed = not (cfg.headless or cfg.games_num > 0)
    if windowed:
        require_display()  # before anything is built
    run = protocol.resolve_experiment(cfg.train_dir, cfg.experiment)
    cfg = with_run_config(cfg, run, task_given)
    print(f"Playing run {run.root}", flush=True)
    os.environ.setdefault("MUJOCO_EGL_DEVICE_ID", str(cfg.graphics_device_id))
    # A few envs' policy is latency-bound: one thread, leaving the cores to a trainer beside us.
    torch.set_num_threads(1)
    core = build_core(cfg, run)
    if cfg.checkpoint:
        check_initial_checkpoint(Path(cfg.checkpoint), cfg.task.name, core)
    follower = core.follower
    panel = start_control_panel(run, cfg.train_dir) if cfg.enable_control_panel else None
    follower.start()
    try:
        if not windowed:
            _play_headless(cfg, run, core)
        else:
            from isaacgymenvs.player.viewer import run_window

            run_window(core, cfg, run)
    except KeyboardInterrupt:
        print("Player stopped.", flush=True)
    finally:
        follower.stop()
        if panel is not None:
            panel.terminate()  # closing the player closes its panel
            panel.wait(timeout=10)


def check_initial_checkpoint(path: Path, task: str, core: PlayerCore) -> None:
    """checkpoint= named on the command line must fit the run's task, or playing it would show (or
    evaluate) an untrained policy and still succeed."""
    try:
        protocol.load_checkpoint(path, task, core.task.num_obs, core.task.num_actions)
    except protocol.CheckpointRejected as err:
        raise UserError(f"checkpoint={path} cannot be played on this run: {err}.") from None


def require_display() -> None:
    """A window needs a display; without one Qt would abort the process."""
    has_display = os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    if not has_display and os.environ.get("QT_QPA_PLATFORM", "") not in ("offscreen", "minimal", "vnc", "eglfs"):
        raise UserError(
            "No display for the player window; use headless=True (with video=True to record), "
            "or run under Xvfb / with QT_QPA_PLATFORM=offscreen."
        )


def start_control_panel(run: RunDir, train_dir: str) -> subprocess.Popen:
    """The checkpoint control panel for the same run, as a child process."""
    script = Path(__file__).resolve().parent.parent / "checkpoint_control_panel.py"
    print(f"Starting the checkpoint control panel for {run.name}", flush=True)
    return subprocess.Popen([sys.executable, str(script), f"--experiment={run.name}", f"--train_dir={train_dir}"])


def _play_headless(cfg: DictConfig, run: RunDir, core) -> None:  # noqa: ANN001
    from isaacgymenvs.player.headless import ClipRecorder, run_headless
    from isaacgymenvs.player.render import MultiEnvRenderer

    recorder = None
    if cfg.video:
        try:
            import imageio_ffmpeg  # noqa: F401
        except ImportError:
            raise UserError(
                "video=True needs the imageio-ffmpeg package; install it with pip install imageio-ffmpeg."
            ) from None
        renderer = MultiEnvRenderer(
            core.task.model, core.task.num_envs, float(cfg.task.env.envSpacing), cfg.render_quality
        )
        recorder = ClipRecorder(
            renderer,
            protocol.output_dir_in_run(run, "videos"),
            int(cfg.video_length),
            core.task.dt,
            float(cfg.video_fps),
        )
    eval_dir = protocol.output_dir_in_run(run, "eval") if cfg.games_num > 0 else None
    csv_path = run_headless(core, int(cfg.games_num), recorder, eval_dir)
    if csv_path is not None:
        returns = list(core.finished_returns)[: int(cfg.games_num)]
        print(f"{len(returns)} episodes, mean return {sum(returns) / len(returns):.2f}; returns written to {csv_path}")

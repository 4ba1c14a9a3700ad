"""`mode=play`: resolve the run, rebuild its task and policy, then show it (window or headless)."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from isaacgymenvs import display, protocol
from isaacgymenvs.errors import UserError
from isaacgymenvs.gl import require_headless_gl
from isaacgymenvs.libraries import run_library
from isaacgymenvs.player.core import PlayerCore
from isaacgymenvs.player.devices import choose_render_device, describe_devices, renders, yield_to_trainer
from isaacgymenvs.player.runs import RunFinder
from isaacgymenvs.protocol import RunDir, RunMatch

if TYPE_CHECKING:  # viser is imported only when the page is served
    from isaacgymenvs.player.web import WebViewer


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
    cfg.library = run_library(saved)  # the player builds the policy of the library that trained the run
    cfg.task.env.numEnvs = cfg.num_envs
    OmegaConf.set_struct(cfg, True)
    return cfg


def build_core(cfg: DictConfig, run: RunDir, use_events: bool = True, log=print) -> PlayerCore:
    """Task, policy and checkpoint follower of a player for `run` (cfg already has the run's config)."""
    from isaacgymenvs.player.follower import CheckpointFollower
    from isaacgymenvs.policy import make_policy
    from isaacgymenvs.tasks import make_task

    task = make_task(cfg)
    train_params = OmegaConf.to_container(cfg.train, resolve=True)
    policy = make_policy(cfg.library, train_params, task.num_obs, task.num_actions, cfg.rl_device, bool(cfg.stochastic))
    follower = CheckpointFollower(
        run,
        protocol.CheckpointFit(cfg.task.name, task.num_obs, task.num_actions, policy.shapes(), policy.library),
        float(cfg.checkpoint_reload_interval),
        initial_checkpoint=Path(cfg.checkpoint) if cfg.checkpoint else None,
        use_events=use_events,
        log=log,
    )
    return PlayerCore(task, policy, follower)


def choose_viewer(cfg: DictConfig) -> str:
    """'headless', 'window' or 'web', decided before anything is built.

    viewer=auto opens the window where Qt can, and otherwise serves the page instead of failing:
    a training server reached over SSH has no display, and that is where users watch from.
    """
    if cfg.headless or cfg.games_num > 0:
        return "headless"
    if cfg.viewer == "window":
        require_display()
        return "window"
    if cfg.viewer == "web":
        return "web"
    try:
        require_display()
    except UserError as err:
        reason = str(err).split(";")[0].rstrip(".")
        print(f"{reason}: showing the player in a web page instead (viewer=web; viewer=window insists).", flush=True)
        return "web"
    return "window"


def play(cfg: DictConfig, task_given: bool) -> None:
    """Watch the run `experiment=` names: wait for it if needed, move to a newer match when one starts."""
    viewer = choose_viewer(cfg)
    windowed = viewer == "window"
    if not cfg.experiment and task_given:  # as for training: an empty experiment means the task's name
        OmegaConf.set_struct(cfg, False)
        cfg.experiment = cfg.task.name
        OmegaConf.set_struct(cfg, True)
    if not cfg.experiment:
        protocol.resolve_experiment(cfg.train_dir, "")  # the one-sentence error listing recent runs
    os.environ.setdefault("MUJOCO_EGL_DEVICE_ID", str(cfg.graphics_device_id))
    yield_to_trainer(int(cfg.player_nice))
    drawing = choose_render_device(cfg) if renders(cfg, viewer) else None  # before the first frame
    print(describe_devices(cfg, drawing), flush=True)
    finder = RunFinder(cfg.train_dir, cfg.experiment, task=cfg.task.name if task_given else None)
    web = None
    try:
        if viewer == "web":
            from isaacgymenvs.player.web import WebViewer

            web = WebViewer(cfg.web_host, int(cfg.web_port))  # a busy port: one sentence, nothing built
        match = finder.find() or wait_for_run(finder, windowed, web)
        notice = None
        while match is not None:
            previous = match
            match = play_run(cfg, match, finder, task_given, windowed, notice, web)
            if match is not None:
                notice = f"switched to newer run {match.run.name} (was {previous.run.name})"
        if windowed:  # closed (Esc, the window's close button, or a stop signal): said as the page does
            print("Player stopped.", flush=True)
    except KeyboardInterrupt:
        print("Player stopped.", flush=True)
    finally:
        finder.stop()
        if web is not None:
            web.close()


def wait_for_run(finder: RunFinder, windowed: bool, web: WebViewer | None = None) -> RunMatch | None:
    """Started before the trainer: say so, then wait (in the window's HUD or the page when there is one)."""
    print(finder.waiting_message, flush=True)
    if web is not None:
        web.announce("Waiting in the page")
        return web.wait_for_run(finder)
    if windowed:
        from isaacgymenvs.player.window import wait_in_window

        return wait_in_window(finder)
    return finder.wait()


def play_run(
    cfg: DictConfig,
    match: RunMatch,
    finder: RunFinder,
    task_given: bool,
    windowed: bool,
    notice: str | None,
    web: WebViewer | None = None,
) -> RunMatch | None:
    """Show one run until the player is closed (None) or a newer matching run starts (that match)."""
    run = match.run
    cfg = with_run_config(cfg, run, task_given)
    print(f"Playing {match.describe(cfg.experiment)}", flush=True)
    core = build_core(cfg, run)
    if cfg.checkpoint:
        check_initial_checkpoint(Path(cfg.checkpoint), cfg.task.name, core)
    core.notice = notice
    if cfg.games_num <= 0:  # an evaluation reports on the run it started with
        finder.watch(match)
    panel = None
    if cfg.enable_control_panel and web is None:
        panel = start_control_panel(run, cfg.train_dir)
    elif cfg.enable_control_panel:
        print("The checkpoint control panel is part of the page.", flush=True)
    core.follower.start()
    switch = lambda: finder.newer is not None  # noqa: E731 - a newer matching run started
    try:
        if web is not None:
            web.announce(f"Watching {run.name}")
            web.show(core, cfg, run, switch)
        elif windowed:
            from isaacgymenvs.player.window import run_window

            run_window(core, cfg, run, switch)
        else:
            _play_headless(cfg, run, core, switch)
    finally:
        core.follower.stop()
        finder.stop()
        if panel is not None:
            panel.terminate()  # closing the player closes its panel
            panel.wait(timeout=10)
    return finder.newer


PLAYER_WINDOW_INSTEAD = "use viewer=web (the page, from a laptop through ssh -L) or headless=True (video=True records)"


def check_initial_checkpoint(path: Path, task: str, core: PlayerCore) -> None:
    """checkpoint= named on the command line must fit the run's task, or playing it would show (or
    evaluate) an untrained policy and still succeed."""
    try:
        protocol.load_checkpoint(
            path, protocol.CheckpointFit(task, core.task.num_obs, core.task.num_actions, library=core.policy.library)
        )
    except protocol.CheckpointRejected as err:
        raise UserError(f"checkpoint={path} cannot be played on this run: {err}.") from None


def require_display() -> None:
    """A window needs a display and Qt's platform libraries; without them Qt would abort the process."""
    display.require_display("player window", PLAYER_WINDOW_INSTEAD)


def start_control_panel(run: RunDir, train_dir: str) -> subprocess.Popen:
    """The checkpoint control panel for the same run, as a child process."""
    script = Path(__file__).resolve().parent.parent / "checkpoint_control_panel.py"
    print(f"Starting the checkpoint control panel for {run.name}", flush=True)
    return subprocess.Popen([sys.executable, str(script), f"--experiment={run.name}", f"--train_dir={train_dir}"])


def _play_headless(cfg: DictConfig, run: RunDir, core, switch: Callable[[], bool]) -> None:
    from isaacgymenvs.player.headless import ClipRecorder, run_headless
    from isaacgymenvs.player.render import MultiEnvRenderer

    recorder = None
    if cfg.video:
        require_headless_gl()
        try:
            import imageio_ffmpeg  # noqa: F401
        except ImportError:
            raise UserError(
                "video=True needs the imageio-ffmpeg package; install it with pip install imageio-ffmpeg."
            ) from None
        make_renderer = functools.partial(  # called on the recorder's thread, which owns the GL context
            MultiEnvRenderer, core.task.model, core.task.num_envs, float(cfg.task.env.envSpacing), cfg.render_quality
        )
        recorder = ClipRecorder(
            make_renderer,
            protocol.output_dir_in_run(run, "videos"),
            int(cfg.video_length),
            core.task.dt,
            float(cfg.video_fps),
            max_clips=int(cfg.video_max_clips),
        )
    eval_dir = protocol.output_dir_in_run(run, "eval") if cfg.games_num > 0 else None
    csv_path = run_headless(core, int(cfg.games_num), recorder, eval_dir, switch)
    if csv_path is not None:
        returns = list(core.finished_returns)[: int(cfg.games_num)]
        print(f"{len(returns)} episodes, mean return {sum(returns) / len(returns):.2f}; returns written to {csv_path}")

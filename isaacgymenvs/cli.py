"""Command line of train_play.py: parse Hydra overrides, dispatch on `mode`, report user errors."""

from __future__ import annotations

import os
import sys

from isaacgymenvs import signals
from isaacgymenvs.console import quiet_rl_games, silence_library_warnings
from isaacgymenvs.errors import RunFailed, UserError

USAGE = """usage: python isaacgymenvs/train_play.py [key=value ...]

  task=Ant|Humanoid|Cartpole   mode=train|play|export   library=rl_games|rsl_rl|skrl
  num_envs=N   max_iterations=N   seed=N
  sim_device=cpu|cuda:N   rl_device=cpu|cuda:N   experiment=NAME   checkpoint=PATH   trust_checkpoint=True
  checkpoint_save_freq=N   checkpoint_reload_interval=S   enable_control_panel=True
  play: experiment=RUN_OR_PREFIX headless=True stochastic=True video=True video_length=N games_num=N
  export: experiment=RUN_OR_PREFIX (its nn/latest.pth) or checkpoint=PATH; export_values=True

Every key and its default is in cfg/config.yaml (tasks: cfg/task, PPO: cfg/train)."""


def prefer_passive_openmp() -> None:
    """OMP_WAIT_POLICY=PASSIVE unless the user set it; must run before torch loads libgomp.

    libgomp's threads spin while they wait by default, which made a CPU trainer about 20x slower
    beside any busy process (a watching player, a browser); passive waiting costs 7-20% when the
    trainer has the machine to itself. Figures: benchmarks/results_cpu/README.md (OpenMP waiting).
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def main(argv: list[str] | None = None) -> int:
    """Run one process of the train-and-watch system; returns the exit code."""
    argv = sys.argv[1:] if argv is None else argv
    prefer_passive_openmp()
    if any(a in ("-h", "--help") for a in argv):
        print(USAGE)
        return 0
    signals.raise_on_stop_signals()  # SIGTERM/SIGHUP end a run as cleanly as Ctrl+C
    silence_library_warnings()
    try:
        from isaacgymenvs.gl import choose_gl_backend

        choose_gl_backend()  # before anything imports mujoco
        from isaacgymenvs.config import load_config, make_device_current

        cfg = load_config(argv)
        make_device_current(cfg)
        with quiet_rl_games():
            if cfg.mode == "train" and cfg.library == "rsl_rl":
                from isaacgymenvs.trainer.rsl_rl_train import train_rsl_rl

                train_rsl_rl(cfg)
            elif cfg.mode == "train" and cfg.library == "skrl":
                from isaacgymenvs.trainer.skrl_train import train_skrl

                train_skrl(cfg)
            elif cfg.mode == "train":
                from isaacgymenvs.trainer.train import train

                train(cfg)
            elif cfg.mode == "export":
                from isaacgymenvs.export import export

                export(cfg)
            else:
                from isaacgymenvs.player.play import play

                play(cfg, task_given=any(a.startswith("task=") for a in argv))
    except UserError as err:
        print(f"Error: {err}", file=sys.stderr)
        return 2
    except RunFailed as err:
        print(f"Error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as err:
        print(signals.describe(err), file=sys.stderr, flush=True)
        sys.stdout.flush()
        signals.exit_within(signals.exit_code(err))  # a library's exit handler cannot keep us alive
        return signals.exit_code(err)
    return 0

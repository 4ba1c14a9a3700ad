"""`python isaacgymenvs/checkpoint_control_panel.py --experiment=Ant [--train_dir=runs]`."""

from __future__ import annotations

import argparse
import signal
import sys
import time

from isaacgymenvs import display, protocol
from isaacgymenvs.errors import UserError
from isaacgymenvs.signals import STOP_SIGNALS


def wait_for_run(train_dir: str, experiment: str) -> protocol.RunDir | None:
    """The run `experiment` names; started before the trainer, the panel waits for it, as the
    player does (None: stopped with Ctrl+C meanwhile). No experiment: the one-sentence error."""
    if not experiment:
        return protocol.resolve_experiment(train_dir, experiment)
    match = protocol.match_experiment(train_dir, experiment, lambda run: run.config_file.exists())
    if match is None:
        print(f"Waiting for a run matching '{experiment}' in {train_dir}/ (start the trainer) ...", flush=True)
    try:
        while match is None:
            time.sleep(0.5)
            match = protocol.match_experiment(train_dir, experiment, lambda run: run.config_file.exists())
    except KeyboardInterrupt:
        return None
    return match.run


def main(argv: list[str] | None = None) -> int:
    prog = "python -m isaacgymenvs.panel" if sys.argv[0].endswith("__main__.py") else None
    parser = argparse.ArgumentParser(prog=prog, description="Choose which checkpoint the player shows.")
    parser.add_argument("--experiment", default="", help="run directory name, or part of it (newest match)")
    parser.add_argument("--train_dir", default="runs", help="parent directory of run directories")
    args = parser.parse_args(argv)
    try:
        protocol.check_experiment_name(args.experiment)  # a name, not a path out of train_dir
        display.require_display(
            "checkpoint control panel",
            "run the panel on a machine with a display (it needs only the run directory), "
            "or use the panel in the player's page (mode=play viewer=web)",
        )
        run = wait_for_run(args.train_dir, args.experiment)
        if run is None:
            print("Panel stopped.", flush=True)
            return 0
        from isaacgymenvs.panel.catalog import run_info

        try:
            info = run_info(run)
        except (OSError, ValueError, KeyError, AttributeError) as err:
            raise UserError(f"Run {run.name} has no usable params/config.yaml ({err}).") from None
    except UserError as err:
        print(f"Error: {err}", file=sys.stderr)
        return 2
    from PySide6.QtWidgets import QApplication

    from isaacgymenvs.panel.window import PanelWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    window = PanelWindow(run, info)
    window.show()
    print(f"Control panel for run {run.name}", flush=True)
    for signum in STOP_SIGNALS:  # Ctrl+C, kill (the player closing its panel) or a closed terminal
        signal.signal(signum, lambda *_: window.close())
    return app.exec()

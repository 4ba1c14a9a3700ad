"""`python isaacgymenvs/checkpoint_control_panel.py --experiment=Ant [--train_dir=runs]`."""

from __future__ import annotations

import argparse
import signal
import sys

from isaacgymenvs import display, protocol
from isaacgymenvs.errors import UserError
from isaacgymenvs.signals import STOP_SIGNALS


def main(argv: list[str] | None = None) -> int:
    prog = "python -m isaacgymenvs.panel" if sys.argv[0].endswith("__main__.py") else None
    parser = argparse.ArgumentParser(prog=prog, description="Choose which checkpoint the player shows.")
    parser.add_argument("--experiment", default="", help="run directory name, or part of it (newest match)")
    parser.add_argument("--train_dir", default="runs", help="parent directory of run directories")
    args = parser.parse_args(argv)
    try:
        protocol.check_experiment_name(args.experiment)  # a name, not a path out of train_dir
        run = protocol.resolve_experiment(args.train_dir, args.experiment)
        display.require_display(
            "checkpoint control panel",
            "run the panel on a machine with a display (it needs only the run directory), "
            "or use the panel in the player's page (mode=play viewer=web)",
        )
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
    for signum in STOP_SIGNALS:  # Ctrl+C, kill (the player closing its panel) or a closed terminal
        signal.signal(signum, lambda *_: window.close())
    return app.exec()

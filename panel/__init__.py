"""Checkpoint control panel (PySide6): follow the latest checkpoint or pin any chosen one.

`catalog.py` is GUI-free (scanning and validating checkpoints, reading the player's status);
`window.py` is the Qt layer; `app.py` is the entry point behind
`python isaacgymenvs/checkpoint_control_panel.py --experiment=Ant`.
"""

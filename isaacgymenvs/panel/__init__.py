"""Checkpoint control panel: follow the latest checkpoint or pin any chosen one.

`catalog.py` is GUI-free (scanning and validating checkpoints, reading the player's status, the
panels' one state-file request); `window.py` is the Qt panel; `web.py` is the same panel inside
the player's page; `app.py` is the entry point behind
`python isaacgymenvs/checkpoint_control_panel.py --experiment=Ant` (`isaacgymenvs-panel`).
"""

"""The player: follows a training run and shows its newest (or a chosen) policy.

`core.py`, `follower.py`, `policy.py` and `render.py` are GUI-free, so the player also runs
headless (`headless.py`); `viewer.py` is the thin PySide6 window on top.
"""

"""The player: follows a training run and shows its newest (or a chosen) policy.

`play.py` opens the run and picks a front end. GUI-free: `core.py` (one control step with hot
reload), `follower.py` (which checkpoint to show, loaded in the background), `runs.py` (which run),
`loop.py` (the one loop every front end runs), `render.py` (offscreen MuJoCo frames). Front ends,
thin layers over the loop: `headless.py` (clips, evaluation), `window.py` (Qt), `web.py` with
`web_scene.py` (a page served with viser).
"""

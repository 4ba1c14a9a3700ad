"""Where a player's physics, policy and drawing run, and how it makes room for a trainer beside it.

A watching player must not slow the training it watches. Its few envs step faster than real time on
one core, so with `sim_device`/`rl_device`/`render_device` left at auto it keeps the GPU for the
trainer: physics and policy on the CPU (config.resolve_player_device), frames drawn by Mesa's
software renderer where it is installed (render_device), one torch thread and a lower CPU priority.
Figures: benchmarks/results_gpu/s7_watch_cost.txt, benchmarks/results_cpu/watch_cost.txt.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, MutableMapping

import torch
from omegaconf import DictConfig

from isaacgymenvs.errors import UserError
from isaacgymenvs.gl import EGL_VENDOR_DIRS, draw_on_cpu, has_display, mesa_egl_vendor

MESA_HINT = "apt-get install libegl-mesa0 libgl1-mesa-dri"


def renders(cfg: DictConfig, viewer: str) -> bool:
    """Whether this player draws frames with MuJoCo's GL (the page's browser draws its own)."""
    return viewer == "window" or (viewer == "headless" and bool(cfg.video) and int(cfg.games_num) == 0)


def choose_render_device(
    cfg: DictConfig,
    environ: MutableMapping[str, str] = os.environ,
    gpu_present: bool | None = None,
    vendor_dirs: Iterable[str] = EGL_VENDOR_DIRS,
) -> str:
    """'cpu' or 'gpu': where frames are drawn; for 'cpu', GL is pointed at Mesa before the first frame.

    auto draws on the CPU when the player left the GPU to a trainer (its physics on the CPU) and there
    is no display: headless EGL would otherwise draw on the trainer's GPU. With a display, the
    window's GL is the desktop's; on a machine without a GPU every frame is drawn on the CPU anyway.
    """
    gpu_present = torch.cuda.is_available() if gpu_present is None else gpu_present
    vendor = mesa_egl_vendor(vendor_dirs)
    headless_egl = environ.get("MUJOCO_GL", "").lower() == "egl" and not has_display(environ)
    if not gpu_present or environ.get("MUJOCO_GL", "").lower() == "osmesa":
        return "cpu"
    if cfg.render_device == "gpu":
        return "gpu"
    if cfg.render_device == "cpu":
        if headless_egl and vendor is None:
            raise UserError(f"render_device=cpu draws with Mesa's EGL, which is not installed; {MESA_HINT}.")
        draw_on_cpu(environ, vendor)
        return "cpu"
    if cfg.sim_device == "cpu" and headless_egl and vendor is not None:
        draw_on_cpu(environ, vendor)
        return "cpu"
    return "gpu"


def yield_to_trainer(nice: int) -> None:
    """Leave the cores to a trainer beside the player: it must not slow training to watch it.

    The player's work is small but latency-bound: one torch thread, one software-GL (llvmpipe)
    thread where frames are drawn on the CPU, and a lower CPU priority, so the trainer (and the
    thread that feeds its GPU) is scheduled first.
    """
    torch.set_num_threads(1)
    os.environ.setdefault("LP_NUM_THREADS", "1")  # read when Mesa's llvmpipe creates its context
    if nice > 0 and hasattr(os, "nice"):
        try:
            os.nice(nice)
        except OSError:
            pass  # not allowed here: the default priority is still correct, only less polite


def describe_devices(cfg: DictConfig, render_device: str | None = None) -> str:
    """One console line: where the player's physics, policy (and drawing) run, and how to move them.

    render_device: where frames are drawn, or None for a player that draws none (the page, evaluation).
    """
    gpu = torch.cuda.is_available()
    drawing_on_cpu = render_device == "cpu" and gpu
    if cfg.sim_device == cfg.rl_device == "cpu":
        what = "physics, policy and drawing" if drawing_on_cpu else "physics and policy"
        where = f"Player {what} on the CPU ({cfg.num_envs} envs"
        if not gpu:
            return f"{where})."
        move = "sim_device=cuda:0 rl_device=cuda:0" + (" render_device=gpu" if drawing_on_cpu else "")
        tail = f"; the GPU stays the trainer's; {move} moves them there"
        if render_device == "gpu" and cfg.render_device == "auto" and not has_display(os.environ):
            tail += f"; frames are drawn on the GPU ({MESA_HINT} draws them on the CPU)"
        return f"{where}{tail})."
    line = f"Player physics on {cfg.sim_device}, policy on {cfg.rl_device} ({cfg.num_envs} envs"
    return f"{line}{'; frames drawn on the CPU' if drawing_on_cpu else ''})."

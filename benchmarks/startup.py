"""Where the seconds before a trainer's first progress line go (and a player's first frame).

    python benchmarks/startup.py                       # Ant, defaults, this machine: 3 runs
    python benchmarks/startup.py --task Humanoid --runs 5 -- num_envs=4096
    python benchmarks/startup.py --player               # a headless player's first loaded policy
    python benchmarks/startup.py --player --viewer web  # ... and the page's first frame sent (video, window)

Each run starts `train_play.py` as a user does, in a fresh process, through a thin shim that stamps
the moments between phases on stderr (`[startup] <phase> <seconds since the command>`); the shim
only wraps functions, it changes nothing they do. Phases:

  python    interpreter up, before our first import
  imports   cli, config and what they import (torch, hydra)
  config    Hydra compose + checks
  trainer   the trainer's modules imported
  task      rl_games' Runner imported (torch._dynamo with it, ~0.9 s on the CPU: torch.optim would
            import it anyway) and the task with its
            physics backend built (kernels loaded, or compiled on a fresh GPU machine)
  agent     the PPO agent built (network, optimizer; CUDA-graph capture on a GPU)
  epoch 1   the first progress line (a player: `policy`, its first loaded policy)
  frame     a player's first frame drawn (video, window) or sent to the page (web), with --viewer

The table is the median over --runs (caches warm after the first); `first` is the first run.
`--reward R` keeps each run going until the progress line's mean episode reward reaches R (phase
`reward R`, and the steady env steps/s after epoch 5); `--fresh` gives every run empty Warp,
inductor and Triton caches (a fresh machine, as far as this process can tell).

Python's bytecode caches are part of an installation (pip writes them when it installs), so every
run, `--fresh` ones too, has them. Where the environment forbids writing them
(PYTHONDONTWRITEBYTECODE, as on the GPU machine this project is measured on, whose read-only venv
has none), the runs get a private bytecode cache (PYTHONPYCACHEPREFIX) that is filled, untimed,
before the first run, as pip's install does: without it every run compiled ~2,700 modules from
source (11 s of a 3-epoch H200 run's profile), a cost no installed copy pays.

    python benchmarks/startup.py --reward 3000 -- num_envs=4096     # H200: command -> Ant reward 3000
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from isaacgymenvs.trainer.progress import parse_progress

REPO = Path(__file__).resolve().parent.parent
PHASES = ("python", "imports", "config", "trainer", "task", "agent", "epoch 1", "frame")

SHIM = r"""
import sys, time, os
t0 = float(os.environ["STARTUP_T0"])
def stamp(phase):
    print(f"[startup] {phase} {time.time() - t0:.3f}", file=sys.stderr, flush=True)
stamp("python")
sys.path.insert(0, os.environ["STARTUP_REPO"])
import isaacgymenvs.cli as cli, isaacgymenvs.config as config
stamp("imports")
def stamped(fn, phase):
    def call(*a, **k):
        result = fn(*a, **k)
        stamp(phase)
        return result
    return call
config.load_config = stamped(config.load_config, "config")
import isaacgymenvs.tasks as tasks
make_task = tasks.make_task = stamped(tasks.make_task, "task")
if os.environ.get("STARTUP_MODE") == "train":
    import builtins
    real_builtin_import = builtins.__import__
    seen = set()
    def hooked(name, *a, **k):
        module = real_builtin_import(name, *a, **k)
        if name == "isaacgymenvs.trainer.train" and "train" not in seen:
            seen.add("train")
            stamp("trainer")
            module.make_task = make_task
            from isaacgymenvs.trainer.graphed import agent as graphed_agent
            cls = graphed_agent.GraphedA2CAgent
            real_init = cls.__init__
            def init(self, *a, **k):
                real_init(self, *a, **k)
                stamp("agent")
            cls.__init__ = init
        return module
    builtins.__import__ = hooked
elif os.environ.get("STARTUP_VIEWER"):  # a player's first frame drawn (video, window) or sent (web)
    import builtins
    real_builtin_import = builtins.__import__
    drawing = {"isaacgymenvs.player.render": "MultiEnvRenderer", "isaacgymenvs.player.web_scene": "WebScene"}
    def stamped_frames(cls):  # patched when the CLI imports it: importing mujoco earlier would fix the GL vendor
        real = cls.render if hasattr(cls, "render") else cls.update
        def call(self, *a, **k):
            result = real(self, *a, **k)
            stamp("frame")
            return result
        setattr(cls, "render" if hasattr(cls, "render") else "update", call)
    def hooked(name, *a, **k):
        module = real_builtin_import(name, *a, **k)
        for module_name, cls_name in list(drawing.items()):
            found = sys.modules.get(module_name)
            if found is not None and hasattr(found, cls_name):
                stamped_frames(getattr(found, cls_name))
                del drawing[module_name]
        return module
    builtins.__import__ = hooked
sys.argv = ["train_play.py", *sys.argv[1:]]
sys.exit(cli.main(sys.argv[1:]))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fresh_caches() -> dict[str, str]:
    """Environment pointing Warp's kernel cache and inductor's/Triton's caches at new empty folders."""
    root = Path(tempfile.mkdtemp(prefix="startup_caches_"))
    names = {"WARP_CACHE_PATH": "warp", "TORCHINDUCTOR_CACHE_DIR": "inductor", "TRITON_CACHE_DIR": "triton"}
    return {key: str(root / name) for key, name in names.items()}


def with_installed_bytecode(env: dict[str, str]) -> dict[str, str]:
    """`env` for a child with an installed copy's bytecode caches (see the module docstring): unchanged
    unless it turns writing them off; then without that, with a private cache filled once, untimed."""
    if not env.get("PYTHONDONTWRITEBYTECODE"):
        return env
    prefix = Path(env.get("PYTHONPYCACHEPREFIX") or Path.home() / ".cache" / "isaacgymenvs-startup-pycache")
    env = {key: value for key, value in env.items() if key != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(prefix)
    stamp = prefix / ".compiled"
    if not stamp.exists():
        import site
        import sysconfig

        roots = {*site.getsitepackages(), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["stdlib"]}
        roots |= {str(REPO), *(p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p)}
        print(f"bytecode writing is off here: compiling {len(roots)} library folders into {prefix}, once, as pip does"
              " at install (untimed)", flush=True)  # fmt: skip
        subprocess.run([sys.executable, "-m", "compileall", "-q", "-j0", *sorted(r for r in roots if Path(r).is_dir())],
                       env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)  # fmt: skip
        prefix.mkdir(parents=True, exist_ok=True)
        stamp.touch()
    return env


def one_run(args: list[str], mode: str, cwd: Path, reward: float | None = None, fresh: bool = False,
            limit_s: float = 180.0, viewer: str | None = None) -> dict[str, float]:  # fmt: skip
    """Phase stamps of one run (seconds since the command); with `reward`, also `reward` and `rate`;
    with a player's `viewer`, also `frame` (the run ends once it has both a policy and a frame)."""
    extra = fresh_caches() if fresh else {}
    if viewer:
        extra["STARTUP_VIEWER"] = viewer
        extra.update({"QT_QPA_PLATFORM": "offscreen"} if viewer == "window" else {})
    env = dict(os.environ, STARTUP_REPO=str(REPO), STARTUP_MODE=mode, PYTHONUNBUFFERED="1", **extra)
    env = with_installed_bytecode(env)
    env["STARTUP_T0"] = f"{time.time():.6f}"
    proc = subprocess.Popen([sys.executable, "-c", SHIM, *args], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    t0 = float(env["STARTUP_T0"])
    stamps: dict[str, float] = {}
    rates: list[float] = []
    target = "epoch 1/" if mode == "train" else "Loaded "
    for line in proc.stdout:
        progress = parse_progress(line)
        if line.startswith("[startup] "):
            phase, seconds = line[len("[startup] ") :].rsplit(" ", 1)
            stamps.setdefault(phase, float(seconds))
        elif target in line and "epoch 1" not in stamps:
            stamps["epoch 1"] = time.time() - t0
        if "epoch 1" in stamps and reward is None and (not viewer or "frame" in stamps) and proc.poll() is None:
            proc.terminate()
        if progress is not None and progress.epoch > 5:
            rates.append(progress.env_steps_per_s)
        if reward is not None and progress is not None and progress.mean_reward >= reward:
            stamps["reward"] = time.time() - t0
            proc.terminate()
        if time.time() - t0 > limit_s and proc.poll() is None:
            proc.terminate()
    proc.wait(60)
    if rates:
        stamps["rate"] = statistics.median(rates)
    return stamps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="Ant")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--player", action="store_true", help="a headless player on a finished run instead")
    parser.add_argument("--viewer", choices=("video", "web", "window"),
                        help="with --player: this front end instead, to its first frame drawn or sent")  # fmt: skip
    parser.add_argument("--reward", type=float, help="run on until the mean episode reward reaches this")
    parser.add_argument("--fresh", action="store_true", help="empty Warp/inductor/Triton caches for every run")
    parser.add_argument("overrides", nargs="*", help="more key=value overrides for train_play.py")
    opts = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="startup_"))
    if opts.player:
        import shutil

        run = work / "runs" / "parity_2026-12-03_12-52-51"
        (run / "nn").mkdir(parents=True)
        (run / "params").mkdir()
        data = REPO / "tests" / "data" / "ant_gpu_trained"
        shutil.copy(data / "latest.pth", run / "nn" / "latest.pth")
        shutil.copy(data / "config.yaml", run / "params" / "config.yaml")
        front_ends = {None: ["headless=True"], "video": ["headless=True", "video=True"],
                      "web": ["viewer=web", f"web_port={free_port()}"], "window": ["viewer=window"]}  # fmt: skip
        shown = front_ends[opts.viewer]
        args, mode = ["mode=play", "experiment=parity", *shown, *opts.overrides], "play"
    else:
        args = [f"task={opts.task}", "headless=True", "max_iterations=1000", *opts.overrides]
        mode = "train"
    results = [one_run(args, mode, work, opts.reward, opts.fresh, viewer=opts.viewer) for _ in range(opts.runs)]
    phases = sorted({p for r in results for p in r if p in PHASES}, key=lambda p: statistics.median(
        [r[p] for r in results if p in r]))  # fmt: skip
    last = "epoch 1" if mode == "train" else "policy"  # a player's first loaded policy
    print(f"startup: train_play.py {' '.join(args)}  ({opts.runs} runs; seconds since the command)")
    print(f"{'phase':<10}{'first':>8}{'median':>8}{'step':>8}")
    previous = 0.0
    for phase in phases:
        values = [r[phase] for r in results if phase in r]
        median = statistics.median(values)
        label = last if phase == "epoch 1" else phase
        print(f"{label:<10}{results[0].get(phase, float('nan')):>8.2f}{median:>8.2f}{median - previous:>8.2f}")
        previous = median
    if opts.reward is not None:
        reached = [r["reward"] for r in results if "reward" in r]
        rates = [r["rate"] for r in results if "rate" in r]
        first = results[0].get("reward", float("nan"))
        median = statistics.median(reached) if reached else float("nan")
        label = f"reward {opts.reward:g}"
        print(f"{label:<10}{first:>8.2f}{median:>8.2f}   ({len(reached)}/{len(results)} runs reached it)")
        if rates:
            print(f"steady env steps/s (epochs > 5, median per run): {', '.join(f'{r:,.0f}' for r in rates)}")


if __name__ == "__main__":
    main()

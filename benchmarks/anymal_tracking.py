"""How well a trained Anymal tracks its commands, and a picture of it walking (CPU).

    python isaacgymenvs/train_play.py task=Anymal mode=train sim_device=cpu rl_device=cpu max_iterations=1000 \\
        experiment=anymal_cpu
    MUJOCO_GL=egl python benchmarks/anymal_tracking.py runs/anymal_cpu_<date> --png benchmarks/results_cpu/anymal.png

Rolls out the run's nn/latest.pth (the mean action) in `--envs` envs for `--seconds` of simulated
time with commands drawn from the task's ranges, and reports each tracking term per step as a
fraction of its maximum (exp(0) = 1), the fall rate, and the speed reached for a few fixed commands.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
from pathlib import Path

import torch
from omegaconf import OmegaConf

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from isaacgymenvs.policy import Policy  # noqa: E402
from isaacgymenvs.protocol import CheckpointFit, RunDir, load_checkpoint, read_params  # noqa: E402
from isaacgymenvs.tasks import make_task  # noqa: E402


def load(run: Path, num_envs: int):
    saved = read_params(RunDir(run))
    task = make_task(saved, num_envs=num_envs, sim_device="cpu", rl_device="cpu", seed=7, compile_task=False)
    info = load_checkpoint(run / "nn" / "latest.pth", CheckpointFit("Anymal", task.num_obs, task.num_actions))
    with contextlib.redirect_stdout(io.StringIO()):
        policy = Policy(OmegaConf.to_container(saved.train, resolve=True), task.num_obs, task.num_actions, "cpu", False)
    policy.load(info.model)
    return task, policy, info


def tracking(task, policy, steps: int) -> dict[str, float]:
    """Mean per-step tracking terms (fraction of 1) over all envs and steps, and falls per env-minute."""
    obs = task.reset()["obs"]
    sums = {"lin_vel_xy": 0.0, "ang_vel_z": 0.0}
    falls = 0
    for _ in range(steps):
        obs_dict, _, done, extras = task.step(policy.act(obs))
        obs = obs_dict["obs"]
        # Envs reset in this step already show their next episode: they count as 0 for this step.
        terms = task._reward_terms(task._features(task.physics.state()))
        live = ~done
        for name in sums:
            sums[name] += float(terms[name][live].sum()) / task.num_envs
        falls += int((done & ~extras["time_outs"]).sum())
    minutes = steps * task.dt / 60.0 * task.num_envs
    return {**{name: value / steps for name, value in sums.items()}, "falls_per_env_minute": falls / minutes}


def fixed_commands(task, policy, commands: list[tuple[float, float, float]], steps: int) -> list[str]:
    """Measured base velocity (mean over the last half) for each held command."""
    lines = []
    for command in commands:
        for env in range(task.num_envs):
            task.set_command(env, command)
        obs = task.reset()["obs"]
        measured = []
        for i in range(steps):
            obs = task.step(policy.act(obs))[0]["obs"]
            if i >= steps // 2:
                f = task._features(task.physics.state())
                measured.append(torch.cat([f.lin_vel[:, :2], f.ang_vel[:, 2:3]], dim=-1).mean(0))
        got = torch.stack(measured).mean(0).tolist()
        lines.append(f"command (vx, vy, yaw) = {command}: measured ({got[0]:+.2f}, {got[1]:+.2f}, {got[2]:+.2f})")
    for env in range(task.num_envs):
        task.set_command(env, None)
    return lines


def screenshot(task, policy, path: Path, steps: int) -> None:
    import imageio.v3 as iio

    from isaacgymenvs.player.render import MultiEnvRenderer

    for env in range(task.num_envs):  # walk forward at 1 m/s, so that the picture shows a gait
        task.set_command(env, (1.0, 0.0, 0.0))
    obs = task.reset()["obs"]
    for _ in range(steps):
        obs = task.step(policy.act(obs))[0]["obs"]
    renderer = MultiEnvRenderer(task.model, task.num_envs, spacing=1.5, quality="high")
    renderer.camera.azimuth, renderer.camera.elevation = 125.0, -18.0
    renderer.camera.distance = 3.2
    renderer.follow = 1
    image = renderer.render(task.physics.state().qpos.numpy())
    renderer.close()
    iio.imwrite(path, image)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--envs", type=int, default=128)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--png", type=Path)
    args = parser.parse_args()
    task, policy, info = load(args.run, args.envs)
    steps = round(args.seconds / task.dt)
    print(f"{args.run.name}: checkpoint epoch {info.epoch}, training reward {info.mean_reward}")
    result = tracking(task, policy, steps)
    print(
        f"per-step tracking over {args.envs} envs x {args.seconds:.0f} s, random commands: "
        f"lin_vel_xy {result['lin_vel_xy']:.3f} of 1, ang_vel_z {result['ang_vel_z']:.3f} of 1, "
        f"falls {result['falls_per_env_minute']:.3f} per env-minute"
    )
    commands = [(1.0, 0.0, 0.0), (-1.0, 0.0, 0.0), (0.0, 0.5, 0.0), (0.0, 0.0, 0.8)]
    for line in fixed_commands(task, policy, commands, 250):
        print(line)
    if args.png:
        small, _, _ = load(args.run, 8)
        screenshot(small, policy, args.png, 150)
        print(f"wrote {args.png}")


if __name__ == "__main__":
    main()

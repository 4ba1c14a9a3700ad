"""The GUI-free simulate/reload step shared by every front end (player/loop.py drives it)."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from isaacgymenvs.player.follower import CheckpointFollower
from isaacgymenvs.policy import Policy

if TYPE_CHECKING:  # the task's module imports mujoco: not before the player chose its GL
    from isaacgymenvs.tasks.vec_task import VecTask


class PlayerCore:
    """Step all envs with the current policy; swap in new weights only between steps."""

    def __init__(self, task: VecTask, policy: Policy, follower: CheckpointFollower) -> None:
        self.task, self.policy, self.follower = task, policy, follower
        self.obs = task.reset()["obs"]
        self.returns = torch.zeros(task.num_envs)
        self.last_returns = [math.nan] * task.num_envs
        self.finished_returns: deque[float] = deque(maxlen=100_000)
        self.steps = 0
        self.notice: str | None = None  # e.g. "switched to newer run ...", shown in the HUD
        # The status file says how far the player has simulated: real time is a checkable claim.
        follower.status_extra = lambda: {"sim_seconds": round(self.steps * task.dt, 3)}
        # Velocity commands from the keys/sliders (tasks with `set_command`: Anymal): requested from
        # any thread (the page's sliders), applied between two steps.
        self.driven_env = 0  # the robot the keys/sliders drive and the HUD describes (front ends set it)
        self._command_lock = threading.Lock()
        self._pending_commands: list[tuple[int, tuple[float, float, float] | None]] = []

    # --- driving a robot by its velocity command --------------------------------------------

    @property
    def drivable(self) -> bool:
        """Whether the task takes velocity commands from outside."""
        return hasattr(self.task, "set_command")

    def request_command(self, env: int, command: Sequence[float] | None) -> None:
        """Hold env `env`'s command at (x m/s, y m/s, yaw rate rad/s), clipped to the task's ranges,
        from the next step on; None gives it back to the task's random draws. Any thread."""
        if not self.drivable or not 0 <= env < self.task.num_envs:
            return
        if command is not None:
            low, high = self.task.command_low.tolist(), self.task.command_high.tolist()
            command = tuple(min(max(float(c), lo), hi) for c, lo, hi in zip(command, low, high, strict=True))
        with self._command_lock:
            self._pending_commands.append((env, command))

    def nudge_command(self, env: int, axis: int, delta: float) -> None:
        """Change one component of env `env`'s command by `delta` (a key press), holding it."""
        if not self.drivable:
            return
        with self._command_lock:  # on top of a request not applied yet
            pending = [c for e, c in self._pending_commands if e == env]
        current = list(pending[-1]) if pending and pending[-1] is not None else self.task.commands[env].tolist()
        current[axis] += delta
        self.request_command(env, current)

    def _apply_commands(self) -> None:
        with self._command_lock:
            pending, self._pending_commands = self._pending_commands, []
        for env, command in pending:
            self.task.set_command(env, command)

    def velocity_arrows(self):
        """[N, 2, 3] commanded and measured base velocities (world frame) to draw, or None."""
        return self.task.velocity_vectors().cpu().numpy() if self.drivable else None

    def command_line(self) -> str | None:
        """Commanded vs measured base velocity of the driven robot (None for tasks without commands)."""
        if not self.drivable:
            return None
        command, measured, held = self.task.velocity_status(self.driven_env)
        source = "held" if held else "random"
        return (
            f"robot {self.driven_env} command ({source}) vx {command[0]:+.2f} vy {command[1]:+.2f} "
            f"yaw {command[2]:+.2f} | measured vx {measured[0]:+.2f} vy {measured[1]:+.2f} yaw {measured[2]:+.2f}"
        )

    def apply_ready_weights(self) -> bool:
        """Swap in a checkpoint the follower finished loading; True if the policy changed."""
        info = self.follower.take_ready()
        if info is None:
            return False
        try:
            self.policy.load({k: v.to(self.policy.device) for k, v in info.model.items()}, probe_obs=self.obs)
        except Exception as err:  # any refusal keeps the current policy, with a reason
            self.follower.apply_failed(info, str(err).strip().splitlines()[0][:200] or type(err).__name__)
            return False
        self.follower.applied(info)
        return True

    def step(self) -> None:
        """One control step (1/60 s of simulated time) for every env."""
        self.follower.check_alive()
        self.apply_ready_weights()
        self._apply_commands()
        actions = self.policy.act(self.obs)
        obs_dict, rewards, dones, _ = self.task.step(actions)
        self.obs = obs_dict["obs"]
        self.returns += rewards.detach().cpu()
        done = dones.detach().cpu()
        for i in done.nonzero().flatten().tolist():
            self.last_returns[i] = float(self.returns[i])
            self.finished_returns.append(float(self.returns[i]))
        self.returns[done] = 0.0
        self.steps += 1

    def reset_envs(self) -> None:
        self.obs = self.task.reset()["obs"]
        self.returns.zero_()

    def hud_lines(self) -> list[str]:
        """What a person watching should know, as short lines."""
        f = self.follower
        info = f.loaded
        head = [self.notice] if self.notice else []
        if info is None:
            head.append(f"Waiting for checkpoint {f.shown.path.name} ...")
        else:
            since = time.time() - (f.loaded_at or time.time())
            reward = f"{info.mean_reward:.1f}" if info.mean_reward is not None else "-"  # no episode finished yet
            head += [
                f"{f.shown.mode}: {info.path.name}  epoch {info.epoch if info.epoch is not None else '-'}",
                f"training reward {reward}  reloaded {since:.0f} s ago",
            ]
        if f.error:
            head.append(f"last load failed: {f.error}")
        if f.state_warning:
            head.append(f"state file ignored: {f.state_warning}")
        live = "  ".join(f"{r:.0f}" for r in self.returns.tolist()[:8])
        last = "  ".join("-" if math.isnan(r) else f"{r:.0f}" for r in self.last_returns[:8])
        command = self.command_line()
        return [*head, f"episode returns now: {live}", f"last episode returns: {last}", *([command] if command else [])]

"""Score an exported policy in a plain MuJoCo loop, the way a deployment would run it.

    python tests/plain_mujoco_loop.py RUN_DIR POLICY.onnx NUM_ENVS GAMES SEED   -> JSON of episode returns

One `mujoco.MjData` per env stepped with `mujoco.mj_step`, actions from onnxruntime. rl_games and
this package's player, trainer and exporter cannot be imported (an import hook refuses them). From
the task it uses the code that defines the problem: observations (`_features`, `_observe`), reward
terms and termination, and its seeded reset sampler, drawn exactly as VecTask draws it (a full
batch every step), so that with the same seed the envs start from the same states as the player's.
"""

from __future__ import annotations

import importlib.abc
import json
import sys

BLOCKED = ("rl_games", "isaacgymenvs.player", "isaacgymenvs.trainer", "isaacgymenvs.export")


class RefuseImports(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if any(name == b or name.startswith(b + ".") for b in BLOCKED):
            raise ImportError(f"{name} may not be imported by the plain loop")
        return None


sys.meta_path.insert(0, RefuseImports())

import mujoco  # noqa: E402
import numpy as np  # noqa: E402
import onnxruntime  # noqa: E402
import torch  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from isaacgymenvs.physics import PhysicsState  # noqa: E402
from isaacgymenvs.tasks import task_class  # noqa: E402


def episode_returns(run_dir: str, onnx_path: str, num_envs: int, games: int, seed: int) -> list[float]:
    saved = OmegaConf.load(f"{run_dir}/params/config.yaml")
    task = task_class(saved.task.name)(saved.task, num_envs, "cpu", "cpu", seed)
    model = task.model
    envs = [mujoco.MjData(model) for _ in range(num_envs)]
    session = onnxruntime.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])

    def state() -> PhysicsState:
        def stack(field: str) -> torch.Tensor:
            return torch.from_numpy(np.stack([getattr(d, field) for d in envs])).float()

        return PhysicsState(stack("qpos"), stack("qvel"), stack("sensordata"), stack("qfrc_actuator"))

    def reset(mask: np.ndarray) -> None:
        qpos, qvel = task._sample_reset_state(num_envs)
        for i in np.flatnonzero(mask):
            mujoco.mj_resetData(model, envs[i])
            envs[i].qpos[:], envs[i].qvel[:] = qpos[i].numpy(), qvel[i].numpy()
        task.actions[torch.from_numpy(mask)] = 0.0  # the previous actions the observation shows
        task._on_reset(torch.from_numpy(mask))

    reset(np.ones(num_envs, dtype=bool))
    steps = np.zeros(num_envs, dtype=np.int64)
    running = torch.zeros(num_envs)
    finished: list[float] = []
    while len(finished) < games:
        obs = task._observe(task._features(state()))  # raw: the exported graph clips and normalises
        actions = session.run(["actions"], {"obs": obs.numpy()})[0]
        for d, action in zip(envs, actions, strict=True):
            d.ctrl[:] = action
            mujoco.mj_step(model, d, nstep=task.substeps)
        steps += 1
        task.actions = torch.from_numpy(actions)
        features = task._features(state())
        terms = task._reward_terms(features)
        weighted = torch.stack([w * terms[name] for name, w in task.reward_weights.items()])
        failed = torch.from_numpy(np.array([not np.isfinite(d.qpos).all() for d in envs]))
        terminated = task._terminated(features) | failed
        reward = torch.where(terminated, task.termination_reward, weighted.sum(0))
        timeout = torch.from_numpy(steps >= task.max_episode_length - 1) & ~terminated
        task._after_reward(features)
        running += reward
        done = (terminated | timeout).numpy()
        finished += [float(running[i]) for i in np.flatnonzero(done)]
        running[torch.from_numpy(done)] = 0.0
        steps[done] = 0
        reset(done)
    return finished[:games]


if __name__ == "__main__":
    run_dir, onnx_path, num_envs, games, seed = sys.argv[1:6]
    returns = episode_returns(run_dir, onnx_path, int(num_envs), int(games), int(seed))
    blocked = sorted(m for m in sys.modules if any(m == b or m.startswith(b + ".") for b in BLOCKED))
    print(json.dumps({"returns": returns, "blocked_modules_loaded": blocked}))

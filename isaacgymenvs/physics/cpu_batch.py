"""CPU physics on `mujoco.batch`: all worlds stepped by native threads, one call per action."""

from __future__ import annotations

import os
import warnings

import mujoco
import mujoco.batch
import numpy as np
import torch

from isaacgymenvs.physics.backend import PhysicsBackend, PhysicsState


def _readonly_tensor(array: np.ndarray) -> torch.Tensor:
    """Share a read-only NumPy output with torch; we only ever read it."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(array)


class CpuBatchBackend(PhysicsBackend):
    """`mujoco.batch.Batch` on all cores; state shared with torch through NumPy views.

    MuJoCo on the CPU is float64; tasks get float32 copies, made once per `state()` call.
    """

    def __init__(self, model: mujoco.MjModel, num_envs: int, nthread: int | None = None) -> None:
        super().__init__(model, num_envs, torch.device("cpu"))
        # No more threads than worlds: a player's 4 envs must not wake every core beside a trainer.
        self._batch = mujoco.batch.Batch(model, num_envs, nthread or min(num_envs, os.cpu_count() or 1))
        self._batch.reset()
        self._qpos = self._batch.bind("qpos")
        self._qvel = self._batch.bind("qvel")
        self._ctrl = self._batch.bind("ctrl")
        # Outputs are rewritten in place after every call; the tensors keep sharing them.
        self._sensordata = _readonly_tensor(self._batch.bind("sensordata"))
        self._qfrc_actuator = _readonly_tensor(self._batch.bind("qfrc_actuator"))

    @property
    def nthread(self) -> int:
        return self._batch.nthread

    def step(self, ctrl: torch.Tensor, nsubsteps: int) -> torch.Tensor:
        self._ctrl[...] = ctrl.detach().cpu().numpy()
        failed = np.zeros(self.num_envs, dtype=bool)
        try:
            self._batch.step(nstep=nsubsteps)
        except mujoco.batch.SimulationError as err:
            # The failed worlds kept their previous state; the task resets them.
            failed[np.asarray(err.ids)] = True
        failed |= ~np.isfinite(self._qpos).all(axis=1)
        failed |= ~np.isfinite(self._qvel).all(axis=1)
        return torch.from_numpy(failed)

    def reset(self, mask: torch.Tensor, qpos: torch.Tensor, qvel: torch.Tensor) -> None:
        ids = np.flatnonzero(mask.detach().cpu().numpy())
        if ids.size == 0:
            return
        # mj_resetData zeroes controls, activations, warm starts, sensors and actuator forces;
        # no forward pass, as on the GPU backend (the next step begins with one).
        self._batch.reset(ids, stage=mujoco.mjtStage.mjSTAGE_NONE)
        self._qpos[ids] = qpos.detach().cpu().numpy()[ids]
        self._qvel[ids] = qvel.detach().cpu().numpy()[ids]

    def state(self) -> PhysicsState:
        return PhysicsState(
            qpos=torch.from_numpy(self._qpos).float(),
            qvel=torch.from_numpy(self._qvel).float(),
            sensordata=self._sensordata.float(),
            qfrc_actuator=self._qfrc_actuator.float(),
        )

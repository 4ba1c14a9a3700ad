"""GPU physics on MuJoCo Warp: every world on one CUDA device, stepped by captured CUDA graphs.

State is shared with torch without copies: `state()` returns `wp.to_torch` views of the Warp
arrays (float32, [num_envs, ...]), which the captured graphs rewrite in place. The arrays are
allocated once and never rebound, so the views and the graphs stay valid for the backend's life.

Streams: the graphs run on a dedicated (non-default) CUDA stream. Before a launch that stream waits
for torch's current stream (so the controls/reset states written by torch are visible); after it,
torch's current stream waits for ours (so tasks reading `state()` see the new values). No host
synchronisation is needed for either.

Buffer overflow: MuJoCo Warp keeps contacts in one pool of `nconmax * num_envs` entries and at most
`njmax` constraint rows per world; beyond that it drops contacts/constraints (wrong physics, no NaN)
and sets bits in the per-world `d.overflow` mask. A small kernel at the end of every step graph ORs
the bits that mean "buffer too small" into a one-element device flag, and an asynchronous copy sends
that flag to pinned host memory after each step. `step()` reads the host copy of the previous
step's flag, so an overflow raises a RuntimeError (naming `sim.nconmax` / `sim.njmax`) at the
next step without a per-step host-device synchronisation; `check_overflow()` checks synchronously.

Resets: one captured graph per call, with a per-world mask: `mjw.reset_data`, then the given
qpos/qvel rows, then zero sensors and actuator forces in the reset worlds (as `mj_resetData` leaves
them on the CPU). No forward pass: MuJoCo Warp has no per-world forward, and a forward of every
world at every env step (some world resets at nearly every step with thousands of them) cost
about 0.6 of an env step; the next step begins with a forward anyway. The mask is copied on
the device, so a reset never waits for the host.

Model: MuJoCo Warp has no PGS solver; a PGS model is run with Newton (on a copy). All float32.
The first backend on a machine compiles MuJoCo Warp's kernels (cached under ~/.cache/warp afterwards).
Most of that time goes to a few large modules, which Warp can compile side by side
(`compile_core_modules`); the many small per-model kernels still compile one by one on first use.

On a warp "cpu" device (debugging without a GPU) the same code runs eagerly, without graphs.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Hashable
from pathlib import Path

import mujoco
import mujoco_warp as mjw
import torch
import warp as wp

from isaacgymenvs.physics.backend import PhysicsBackend, PhysicsState

_Overflow = mjw.OverflowType
# Overflow bits caused by too small per-world buffers (the solver's ITERATIONS / LS_ITERATIONS bits
# only say that the iteration limit was reached, which is not an error here).
CONTACT_OVERFLOW = int(_Overflow.BROADPHASE | _Overflow.NARROWPHASE | _Overflow.CCD)
CONSTRAINT_OVERFLOW = int(_Overflow.NEFC | _Overflow.NJMAX_NNZ)
BUFFER_OVERFLOW = CONTACT_OVERFLOW | CONSTRAINT_OVERFLOW

# MuJoCo's mjMAXVAL: larger state values are treated as a diverged simulation, as on the CPU.
MAX_STATE_VALUE = wp.constant(1.0e10)


# MuJoCo Warp's modules whose kernels every step launches, whatever the model: measured as the modules
# that Ant, Humanoid and Anymal load (forward, step, reset). On a Warp "cpu" device they are 44 of the
# 67 s a cold Ant backend spends compiling. A module missing here only compiles on first use, as before.
CORE_MODULES = ("smooth", "forward", "sensor", "passive", "derivative", "solver", "support", "constraint")


def compile_core_modules(device: wp.Device, workers: int | None = None) -> None:
    """Compile (or load from the kernel cache) MuJoCo Warp's core modules in parallel threads.

    Warp runs each module's Python code generation under one lock but its native compile (NVRTC or
    LLVM, the dominant cost) outside it, so N threads cut a cold start by up to the N largest modules
    compiling at once. Warm, it only loads the cached binaries, as the first forward would.
    """
    workers = workers if workers is not None else min(len(CORE_MODULES), os.cpu_count() or 1)
    modules = [wp.get_module(f"mujoco_warp._src.{name}") for name in CORE_MODULES]
    wp.force_load(device=device, modules=modules, max_workers=workers)


def kernel_cache_is_cold(cache_dir: str | None = None) -> bool:
    """Whether Warp's kernel cache holds no compiled module yet (a fresh machine or a new Warp)."""
    directory = cache_dir if cache_dir is not None else wp.config.kernel_cache_dir
    if not directory:
        return False  # Warp not initialised: say nothing rather than something wrong
    try:
        return not any(Path(directory).iterdir())
    except OSError:
        return True


@wp.kernel
def _check_worlds(
    qpos: wp.array2d(dtype=wp.float32),
    qvel: wp.array2d(dtype=wp.float32),
    overflow: wp.array(dtype=wp.int32),
    overflow_bits: wp.int32,
    failed: wp.array(dtype=wp.bool),
    overflow_seen: wp.array(dtype=wp.int32),
):
    """failed[w] = non-finite (or huge) qpos/qvel; OR world w's buffer-overflow bits into the flag."""
    w = wp.tid()
    bad = bool(False)  # Warp needs a constructor for a variable reassigned in loops
    for i in range(qpos.shape[1]):
        x = qpos[w, i]
        if not wp.isfinite(x) or wp.abs(x) > MAX_STATE_VALUE:
            bad = True
    for i in range(qvel.shape[1]):
        x = qvel[w, i]
        if not wp.isfinite(x) or wp.abs(x) > MAX_STATE_VALUE:
            bad = True
    failed[w] = bad
    bits = overflow[w] & overflow_bits
    if bits != 0:
        wp.atomic_or(overflow_seen, 0, bits)


@wp.kernel
def _copy_rows_where(
    mask: wp.array(dtype=wp.bool),
    src: wp.array2d(dtype=wp.float32),
    dst: wp.array2d(dtype=wp.float32),
):
    """dst[w, i] = src[w, i] for the worlds whose mask is set."""
    w, i = wp.tid()
    if mask[w]:
        dst[w, i] = src[w, i]


@wp.kernel
def _zero_rows_where(mask: wp.array(dtype=wp.bool), dst: wp.array2d(dtype=wp.float32)):
    """dst[w, i] = 0 for the worlds whose mask is set."""
    w, i = wp.tid()
    if mask[w]:
        dst[w, i] = 0.0


def _gpu_model(model: mujoco.MjModel) -> mujoco.MjModel:
    """The model as MuJoCo Warp runs it: PGS (unsupported there) becomes Newton, on a copy."""
    if model.opt.solver != mujoco.mjtSolver.mjSOL_PGS:
        return model
    gpu_model = copy.deepcopy(model)
    # MuJoCo Warp implements only the CG and Newton solvers; Newton converges to the same solution.
    gpu_model.opt.solver = mujoco.mjtSolver.mjSOL_NEWTON
    return gpu_model


class WarpBackend(PhysicsBackend):
    """`num_envs` worlds of one model in MuJoCo Warp (float32) on `device`.

    `nconmax`: contacts per world (pooled over worlds); `njmax`: constraint rows per world. Both
    come from the task's `sim` config; an overflow raises instead of silently dropping contacts.
    """

    def __init__(self, model: mujoco.MjModel, num_envs: int, device: torch.device, nconmax: int, njmax: int) -> None:
        device = torch.device(device)
        if device.type == "cuda":
            index = device.index if device.index is not None else torch.cuda.current_device()
            device = torch.device("cuda", index)
            wp_device = wp.get_device(f"cuda:{index}")
        elif device.type == "cpu":
            wp_device = wp.get_device("cpu")  # eager, no graphs: for debugging without a GPU
        else:
            raise ValueError(f"WarpBackend needs a CUDA device, got {device}")
        super().__init__(model, num_envs, device)
        self.nconmax = int(nconmax)
        self.njmax = int(njmax)
        self._wp_device = wp_device
        self._cuda = device.type == "cuda"
        n = num_envs
        if wp.config.log_level == wp.LOG_INFO:
            # Warp's default logs one line per kernel module loaded (hundreds for MuJoCo Warp).
            wp.config.log_level = wp.LOG_WARNING

        if self._cuda and kernel_cache_is_cold():
            # The first forward pass compiles MuJoCo Warp's kernels: ~60 s of silence on a fresh machine.
            print(
                "Compiling MuJoCo Warp's GPU kernels (first run on this machine only, about half a minute; "
                f"later runs load them from {wp.config.kernel_cache_dir}) ...",
                flush=True,
            )
        with wp.ScopedDevice(wp_device):
            compile_core_modules(wp_device)
            gpu_model = _gpu_model(model)
            self._m = mjw.put_model(gpu_model)
            # Overflows are reported by this backend (RuntimeError); the engine's device-side printf
            # would print once per world per step.
            self._m.opt.warn_overflow = 0
            self._d = mjw.make_data(gpu_model, nworld=n, nconmax=self.nconmax, njmax=self.njmax)
            self._failed = wp.zeros(n, dtype=wp.bool)
            self._overflow_seen = wp.zeros(1, dtype=wp.int32)
            self._reset_mask = wp.zeros(n, dtype=wp.bool)
            self._stage_qpos = wp.zeros((n, model.nq), dtype=wp.float32)
            self._stage_qvel = wp.zeros((n, model.nv), dtype=wp.float32)
            # Valid derived quantities (sensors, actuator forces) for the initial state; this eager
            # call also loads most kernels before the first graph capture.
            mjw.forward(self._m, self._d)
            wp.synchronize_device(wp_device)

        d = self._d
        self._qpos = self._view(d.qpos)
        self._qvel = self._view(d.qvel)
        self._ctrl = self._view(d.ctrl)
        self._state = PhysicsState(
            qpos=self._qpos,
            qvel=self._qvel,
            sensordata=self._view(d.sensordata),
            qfrc_actuator=self._view(d.qfrc_actuator),
        )
        self._failed_t = self._view(self._failed)
        self._overflow_seen_t = self._view(self._overflow_seen)
        self._reset_mask_t = self._view(self._reset_mask)
        self._stage_qpos_t = self._view(self._stage_qpos)
        self._stage_qvel_t = self._view(self._stage_qvel)
        # Host copy of the overflow flag, refreshed asynchronously after every step.
        self._overflow_host = torch.zeros(1, dtype=torch.int32, pin_memory=self._cuda)

        self._graphs: dict[Hashable, wp.Graph] = {}
        if self._cuda:
            self._stream = torch.cuda.Stream(device)
            self._wp_stream = wp.stream_from_torch(self._stream)

    # --- the PhysicsBackend contract ---------------------------------------------------------

    def step(self, ctrl: torch.Tensor, nsubsteps: int) -> torch.Tensor:
        self._raise_if_overflowed(int(self._overflow_host.item()))
        if self.model.nu:
            self._ctrl.copy_(ctrl.detach().reshape(self.num_envs, self.model.nu))
        self._run(("step", int(nsubsteps)), lambda: self._step_graph_body(int(nsubsteps)))
        self._overflow_host.copy_(self._overflow_seen_t, non_blocking=self._cuda)
        return self._failed_t.clone()

    def reset(self, mask: torch.Tensor, qpos: torch.Tensor, qvel: torch.Tensor) -> None:
        # copy_ converts dtype and device (CPU inputs are accepted) without a host sync on CUDA.
        self._reset_mask_t.copy_(mask.detach().reshape(self.num_envs))
        self._stage_qpos_t.copy_(qpos.detach())
        self._stage_qvel_t.copy_(qvel.detach())
        self._run("reset", self._reset_graph_body)

    def state(self) -> PhysicsState:
        return self._state

    # --- overflow ------------------------------------------------------------------------------

    def check_overflow(self) -> None:
        """Synchronously raise RuntimeError if any step so far overflowed a contact/constraint buffer."""
        self._raise_if_overflowed(int(self._overflow_seen_t.item()))

    def _raise_if_overflowed(self, bits: int) -> None:
        if not bits & BUFFER_OVERFLOW:
            return
        worlds = int(((self._view(self._d.overflow) & BUFFER_OVERFLOW) != 0).sum().item())
        nacon = int(self._view(self._d.nacon).item())
        nefc_max = int(self._view(self._d.nefc).max().item())
        needs = []
        if bits & CONTACT_OVERFLOW:
            needs.append(
                f"contacts overflowed the pool of sim.nconmax={self.nconmax} per world "
                f"({self.nconmax * self.num_envs} for {self.num_envs} worlds; last step found {nacon}): "
                f"increase the task's sim.nconmax (e.g. task.sim.nconmax={2 * max(self.nconmax, 1)})"
            )
        if bits & CONSTRAINT_OVERFLOW:
            needs.append(
                f"constraint rows overflowed sim.njmax={self.njmax} per world (last step's largest: "
                f"{nefc_max}): increase the task's sim.njmax (e.g. task.sim.njmax={2 * max(self.njmax, 1)})"
            )
        raise RuntimeError(
            f"MuJoCo Warp buffer overflow in {worlds} of {self.num_envs} worlds, so contacts or "
            f"constraints were dropped and the physics is wrong: " + "; ".join(needs) + "."
        )

    # --- graphs ----------------------------------------------------------------------------------

    def _step_graph_body(self, nsubsteps: int) -> None:
        for _ in range(nsubsteps):
            mjw.step(self._m, self._d)
        d = self._d
        wp.launch(
            _check_worlds,
            dim=self.num_envs,
            inputs=[d.qpos, d.qvel, d.overflow, BUFFER_OVERFLOW],
            outputs=[self._failed, self._overflow_seen],
        )

    def _reset_graph_body(self) -> None:
        """Reset the masked worlds and place their staged state; the other worlds are untouched."""
        m, d, mask = self._m, self._d, self._reset_mask
        mjw.reset_data(m, d, reset=mask)  # qpos0, zero qvel/ctrl/act/qacc_warmstart, per world
        self._copy_rows_where(mask, self._stage_qpos, d.qpos)
        self._copy_rows_where(mask, self._stage_qvel, d.qvel)
        for derived in (d.sensordata, d.qfrc_actuator):
            if derived.shape[1]:
                wp.launch(_zero_rows_where, dim=derived.shape, inputs=[mask], outputs=[derived])

    def _copy_rows_where(self, mask: wp.array, src: wp.array, dst: wp.array) -> None:
        if src.shape[1] == 0:
            return
        wp.launch(_copy_rows_where, dim=src.shape, inputs=[mask, src], outputs=[dst])

    def _run(self, key: Hashable, body: Callable[[], None]) -> None:
        """Run `body` as a CUDA graph (captured on first use for `key`) on the backend's stream."""
        if not self._cuda:
            with wp.ScopedDevice(self._wp_device):
                body()
            return
        current = torch.cuda.current_stream(self.device)
        self._stream.wait_stream(current)  # torch's writes (ctrl, staged states) come first
        with wp.ScopedDevice(self._wp_device), wp.ScopedStream(self._wp_stream, sync_enter=False):
            graph = self._graphs.get(key)
            if graph is None:
                with wp.ScopedCapture() as capture:
                    body()
                graph = self._graphs[key] = capture.graph
            wp.capture_launch(graph)
        current.wait_stream(self._stream)  # tasks read the new state on torch's stream

    def _view(self, array: wp.array) -> torch.Tensor:
        """Zero-copy torch view of a Warp array (an empty tensor for zero-sized arrays)."""
        if array.size == 0:
            return torch.zeros(array.shape, dtype=wp.dtype_to_torch(array.dtype), device=self.device)
        return wp.to_torch(array)

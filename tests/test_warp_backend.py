"""MuJoCo Warp backend (GPU): shapes, zero-copy state, resets, failures, overflow, CPU agreement.

Skipped without mujoco_warp or without CUDA (CI has neither). WARP_BACKEND_TEST_DEVICE=cpu runs the
backend-level tests on Warp's CPU device (eager, slow kernel compilation) for debugging.
"""

from __future__ import annotations

import os

import mujoco
import pytest
import torch

mjw = pytest.importorskip("mujoco_warp")

from isaacgymenvs.physics import load_model  # noqa: E402
from isaacgymenvs.physics.cpu_batch import CpuBatchBackend  # noqa: E402
from isaacgymenvs.physics.warp_backend import WarpBackend  # noqa: E402

DEVICE = os.environ.get("WARP_BACKEND_TEST_DEVICE", "cuda:0")
if DEVICE.startswith("cuda") and not torch.cuda.is_available():
    pytest.skip("MuJoCo Warp backend tests need a CUDA GPU", allow_module_level=True)
on_gpu = pytest.mark.skipif(not DEVICE.startswith("cuda"), reason="needs the CUDA device")

TIMESTEP = 1.0 / 120.0
# asset, nconmax, njmax: the tasks' sim config (cfg/task/*.yaml).
MODELS = {
    "Ant": ("mjcf/ant.xml", 32, 128),
    "Anymal": ("mjcf/anymal.xml", 32, 128),
    "Humanoid": ("mjcf/humanoid.xml", 48, 256),
    "Cartpole": ("mjcf/cartpole.xml", 4, 16),
}


def make(name: str, num_envs: int, nconmax: int | None = None, njmax: int | None = None) -> WarpBackend:
    asset, default_nconmax, default_njmax = MODELS[name]
    model = load_model(asset, TIMESTEP)
    return WarpBackend(
        model, num_envs, torch.device(DEVICE), nconmax=nconmax or default_nconmax, njmax=njmax or default_njmax
    )


def random_state(model, num_envs: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """qpos0 with joint noise (free-joint root untouched) and small random velocities."""
    qpos = torch.tensor(model.qpos0, dtype=torch.float32).repeat(num_envs, 1)
    qvel = (torch.rand(num_envs, model.nv, generator=generator) * 2 - 1) * 0.1
    free = 7 if model.njnt and model.jnt_type[0] == 0 else 0
    qpos[:, free:] += (torch.rand(num_envs, model.nq - free, generator=generator) * 2 - 1) * 0.1
    return qpos, qvel


@pytest.mark.parametrize("name", sorted(MODELS))
def test_steps_with_random_ctrl(name):
    n = 64
    backend = make(name, n)
    model = backend.model
    state = backend.state()
    dev = torch.device(DEVICE)
    for tensor, width in [
        (state.qpos, model.nq),
        (state.qvel, model.nv),
        (state.sensordata, model.nsensordata),
        (state.qfrc_actuator, model.nv),
    ]:
        assert tensor.shape == (n, width) and tensor.dtype == torch.float32 and tensor.device == dev
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        ctrl = (torch.rand(n, model.nu, generator=g) * 2 - 1).to(dev)
        failed = backend.step(ctrl, 2)
        assert failed.shape == (n,) and failed.dtype == torch.bool and failed.device == dev
        assert not failed.any()
    state = backend.state()
    for tensor in (state.qpos, state.qvel, state.sensordata, state.qfrc_actuator):
        assert torch.isfinite(tensor).all()
    assert state.qfrc_actuator.abs().sum() > 0
    if model.nsensordata:
        assert state.sensordata.abs().sum() > 0
    backend.check_overflow()


def test_state_is_zero_copy():
    backend = make("Ant", 16)
    before = backend.state()
    ptrs = [t.data_ptr() for t in (before.qpos, before.qvel, before.sensordata, before.qfrc_actuator)]
    qpos_before = before.qpos.clone()
    backend.step(torch.ones(16, 8, device=DEVICE), 2)
    after = backend.state()
    assert [t.data_ptr() for t in (after.qpos, after.qvel, after.sensordata, after.qfrc_actuator)] == ptrs
    # The tensors read before the step now hold the new values.
    assert not torch.equal(before.qpos, qpos_before)
    assert torch.equal(before.qpos, after.qpos)


def test_reset_places_state_and_keeps_other_worlds():
    n = 8
    backend = make("Ant", n)
    model = backend.model
    g = torch.Generator().manual_seed(1)
    for _ in range(10):
        backend.step((torch.rand(n, 8, generator=g) * 2 - 1).to(DEVICE), 2)
    state = backend.state()
    others = torch.tensor([0, 2, 3, 5, 6, 7])
    kept = [t[others.to(DEVICE)].clone() for t in (state.qpos, state.qvel, state.sensordata, state.qfrc_actuator)]
    ids = torch.tensor([1, 4])
    mask = torch.zeros(n, dtype=torch.bool)
    mask[ids] = True
    qpos, qvel = random_state(model, n, g)
    backend.reset(mask, qpos, qvel)  # CPU masks/states are accepted, as from the CPU tests
    state = backend.state()
    torch.testing.assert_close(state.qpos[ids.to(DEVICE)].cpu(), qpos[ids])
    torch.testing.assert_close(state.qvel[ids.to(DEVICE)].cpu(), qvel[ids])
    # The other worlds are untouched (their sensors still describe their last step).
    for tensor, old in zip((state.qpos, state.qvel, state.sensordata, state.qfrc_actuator), kept, strict=True):
        torch.testing.assert_close(tensor[others.to(DEVICE)], old, rtol=0, atol=0)
    # Nothing simulated yet in the reset worlds: sensors and actuator forces read zero, as on the CPU.
    assert state.sensordata[ids.to(DEVICE)].abs().max() == 0
    assert state.qfrc_actuator[ids.to(DEVICE)].abs().max() == 0
    assert not backend.step(torch.zeros(n, 8, device=DEVICE), 2).any()


def test_failed_world_mask():
    n = 8
    backend = make("Ant", n)
    model = backend.model
    qpos = torch.tensor(model.qpos0, dtype=torch.float32).repeat(n, 1)
    qvel = torch.zeros(n, model.nv)
    qvel[3, 6] = float("nan")
    world3 = torch.arange(n) == 3
    backend.reset(world3, qpos, qvel)
    failed = backend.step(torch.zeros(n, 8, device=DEVICE), 2)
    assert failed.cpu().tolist() == [i == 3 for i in range(n)]
    # A reset brings the world back; the others never noticed.
    backend.reset(world3, qpos, torch.zeros(n, model.nv))
    assert not backend.step(torch.zeros(n, 8, device=DEVICE), 2).any()
    assert torch.isfinite(backend.state().qpos).all()


@pytest.mark.parametrize(("nconmax", "njmax", "key"), [(1, 128, "sim.nconmax"), (32, 4, "sim.njmax")])
def test_overflow_raises(nconmax, njmax, key):
    n = 16
    backend = make("Ant", n, nconmax=nconmax, njmax=njmax)
    with pytest.raises(RuntimeError, match=key.replace(".", r"\.")):
        # The ant lands on its feet within half a second: 4+ contacts, 16+ constraint rows.
        for _ in range(60):
            backend.step(torch.zeros(n, 8, device=DEVICE), 2)
        backend.check_overflow()


@pytest.mark.parametrize(
    ("name", "elliptic"), [("Cartpole", False), ("Ant", True), ("Humanoid", True), ("Anymal", False)]
)
def test_agrees_with_cpu_backend(name, elliptic):
    """Same initial state and controls for 0.1 s: float32 GPU vs float64 CPU stay close.

    Ant and Humanoid run with elliptic friction cones here: with the models' default pyramidal
    cones the two engines orient the friction pyramid of a capsule-plane contact differently
    (MuJoCo along the capsule axis, MuJoCo Warp along a fixed tangent), so trajectories part
    (~0.07 in qpos within 0.1 s) as soon as a foot lands; with elliptic cones the friction is
    isotropic about the normal and they agree to ~1e-5. anymal.xml has elliptic cones itself.
    """
    n = 16
    asset, nconmax, njmax = MODELS[name]
    model = load_model(asset, TIMESTEP)
    if elliptic:
        model.opt.cone = mujoco.mjtCone.mjCONE_ELLIPTIC
    gpu = WarpBackend(model, n, torch.device(DEVICE), nconmax=nconmax, njmax=njmax)
    cpu = CpuBatchBackend(model, n, nthread=2)
    g = torch.Generator().manual_seed(2)
    qpos, qvel = random_state(model, n, g)
    every = torch.ones(n, dtype=torch.bool)
    cpu.reset(every, qpos, qvel)
    gpu.reset(every, qpos, qvel)
    assert (gpu.state().sensordata == 0).all() and (cpu.state().sensordata == 0).all()
    for _ in range(6):  # 6 control periods of 2 physics steps at 1/120 s
        ctrl = torch.rand(n, model.nu, generator=g) * 2 - 1
        assert not cpu.step(ctrl, 2).any()
        assert not gpu.step(ctrl.to(DEVICE), 2).any()
    c, w = cpu.state(), gpu.state()
    torch.testing.assert_close(w.qpos.cpu(), c.qpos, rtol=0, atol=1e-2)
    torch.testing.assert_close(w.qvel.cpu(), c.qvel, rtol=0, atol=5e-2)
    torch.testing.assert_close(w.qfrc_actuator.cpu(), c.qfrc_actuator, rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(w.sensordata.cpu(), c.sensordata, rtol=1e-2, atol=0.1)


def test_anymal_contact_sensors_agree_with_cpu_backend():
    """The touch sensors that end an Anymal episode read the same on both engines: 0.5 s of PD
    control from a standing pose (feet only on the floor), then knees pressed onto the floor."""
    n = 4
    asset, nconmax, njmax = MODELS["Anymal"]
    model = load_model(asset, 0.005)
    gpu = WarpBackend(model, n, torch.device(DEVICE), nconmax=nconmax, njmax=njmax)
    cpu = CpuBatchBackend(model, n, nthread=2)
    g = torch.Generator().manual_seed(3)
    default = torch.tensor([0.03, 0.4, -0.8, 0.03, -0.4, 0.8, -0.03, 0.4, -0.8, -0.03, -0.4, 0.8])
    qpos = torch.tensor(model.qpos0, dtype=torch.float32).repeat(n, 1)
    qpos[:, 2], qpos[:, 7:] = 0.5, default
    every = torch.ones(n, dtype=torch.bool)
    cpu.reset(every, qpos, torch.zeros(n, model.nv))
    gpu.reset(every, qpos, torch.zeros(n, model.nv))
    for _ in range(25):  # 25 control periods of 4 physics steps at 5 ms
        ctrl = default + 0.3 * (torch.rand(n, model.nu, generator=g) * 2 - 1)
        assert not cpu.step(ctrl, 4).any() and not gpu.step(ctrl.to(DEVICE), 4).any()
    c, w = cpu.state(), gpu.state()
    torch.testing.assert_close(w.qpos.cpu(), c.qpos, rtol=0, atol=1e-3)
    assert (c.sensordata == 0).all() and (w.sensordata == 0).all()  # standing: no base/thigh contact
    kneel = torch.tensor([0.0, 0.0, -2.8, 0.0, 0.0, 2.8] * 2)
    qpos[:, 2], qpos[:, 7:] = 0.325, kneel
    cpu.reset(every, qpos, torch.zeros(n, model.nv))
    gpu.reset(every, qpos, torch.zeros(n, model.nv))
    assert not cpu.step(kneel.expand(n, -1), 4).any() and not gpu.step(kneel.expand(n, -1).to(DEVICE), 4).any()
    c, w = cpu.state(), gpu.state()
    assert (c.sensordata[:, 0] == 0).all() and (c.sensordata[:, 1:] > 1.0).all()
    torch.testing.assert_close(w.sensordata.cpu(), c.sensordata, rtol=1e-2, atol=0.5)


@on_gpu
@pytest.mark.parametrize(("name", "num_obs", "num_actions"), [("Ant", 60, 8), ("Anymal", 48, 12)])
def test_task_on_gpu(name, num_obs, num_actions):
    from isaacgymenvs.config import load_config
    from isaacgymenvs.tasks import make_task

    task = make_task(load_config([f"task={name}", "sim_device=cuda:0", "rl_device=cuda:0", "num_envs=64"]))
    assert isinstance(task.physics, WarpBackend)
    obs = task.reset()["obs"]
    assert obs.shape == (64, num_obs) and obs.device.type == "cuda"
    g = torch.Generator(device="cuda:0").manual_seed(0)
    steps = []
    for i in range(100):
        actions = torch.rand(64, num_actions, generator=g, device="cuda:0") * 2 - 1
        # After warm-up (graph capture), a step must never wait for the GPU: any synchronising
        # op (nonzero, .item(), a data-dependent index) raises in this mode.
        torch.cuda.set_sync_debug_mode("error" if i >= 3 else "default")
        try:
            steps.append(task.step(actions))
        finally:
            torch.cuda.set_sync_debug_mode("default")
    for obs_dict, rew, done, extras in steps[-5:]:
        assert torch.isfinite(obs_dict["obs"]).all() and torch.isfinite(rew).all()
        assert done.shape == (64,) and extras["time_outs"].shape == (64,)
    task.physics.check_overflow()


def test_a_cold_kernel_cache_is_recognised_so_the_first_compile_is_announced(tmp_path):
    from isaacgymenvs.physics.warp_backend import kernel_cache_is_cold

    assert kernel_cache_is_cold(str(tmp_path / "missing"))
    (tmp_path / "cache").mkdir()
    assert kernel_cache_is_cold(str(tmp_path / "cache"))
    (tmp_path / "cache" / "wp_mujoco_warp_0123abc").mkdir()
    assert not kernel_cache_is_cold(str(tmp_path / "cache"))


def test_the_modules_compiled_side_by_side_are_mujoco_warps_and_hold_kernels():
    """compile_core_modules names modules by their Python path; a rename in MuJoCo Warp would turn
    one into an empty Warp module (compiling nothing), so each must hold kernels once imported."""
    import warp as wp

    from isaacgymenvs.physics.warp_backend import CORE_MODULES

    for name in CORE_MODULES:
        module = wp.get_module(f"mujoco_warp._src.{name}")
        assert module.kernels, f"mujoco_warp._src.{name} has no Warp kernels"

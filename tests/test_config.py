"""Hydra composition of every task, machine-dependent defaults, and bad-input errors."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch

from isaacgymenvs.config import load_config
from isaacgymenvs.errors import UserError
from isaacgymenvs.tasks import TASKS
from isaacgymenvs.trainer.rlgames_config import rlgames_params
from tests.conftest import run_cli


@pytest.mark.parametrize("name", sorted(TASKS))
def test_compose_every_task(name, tmp_path):
    cfg = load_config([f"task={name}", "sim_device=cpu", "rl_device=cpu"])
    assert cfg.task.name == name and cfg.task_name == name
    assert cfg.train.params.config.name == name
    assert cfg.num_envs == cfg.task.env.numEnvsCpu == cfg.task.env.numEnvs
    assert (cfg.mode, cfg.checkpoint_save_freq, cfg.checkpoint_reload_interval) == ("train", 10, 30)  # CPU
    assert cfg.enable_control_panel is False
    from isaacgymenvs.protocol import RunDir

    params = rlgames_params(cfg, RunDir(tmp_path / f"{name}_2026-01-01_00-00-00"))
    config = params["params"]["config"]
    assert config["num_actors"] == cfg.num_envs and config["device"] == "cpu"
    assert config["mixed_precision"] is False  # CPU
    assert (cfg.num_envs * config["horizon_length"]) % config["minibatch_size"] == 0
    assert params["params"]["seed"] == 42


def test_auto_devices_follow_the_machine():
    cfg = load_config(["task=Cartpole"])
    expected = "cuda:0" if torch.cuda.is_available() else "cpu"
    assert cfg.sim_device == cfg.rl_device == expected


def test_a_player_defaults_to_the_cpu_for_a_few_envs_and_explicit_devices_win(monkeypatch):
    """A watching player's few envs on the GPU took time slices from the trainer beside it."""
    from isaacgymenvs.player.devices import describe_devices

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)

    def devices(*overrides: str) -> tuple[str, str, int]:
        cfg = load_config(["task=Ant", *overrides])
        return cfg.sim_device, cfg.rl_device, cfg.num_envs

    assert devices("mode=play") == ("cpu", "cpu", 4)
    assert devices("mode=play", "num_envs=63") == ("cpu", "cpu", 63)
    assert devices("mode=play", "num_envs=64") == ("cuda:0", "cuda:0", 64)  # many envs: the GPU engine
    assert devices("mode=play", "player_gpu_min_envs=2") == ("cuda:0", "cuda:0", 4)
    assert devices("mode=play", "sim_device=cuda:0") == ("cuda:0", "cpu", 4)  # what the user names wins
    assert devices("mode=play", "sim_device=cuda:0", "rl_device=cuda:0") == ("cuda:0", "cuda:0", 4)
    assert devices("mode=train")[:2] == ("cuda:0", "cuda:0")  # training is unchanged
    line = describe_devices(load_config(["task=Ant", "mode=play"]))
    assert line == (
        "Player physics and policy on the CPU (4 envs; the GPU stays the trainer's; "
        "sim_device=cuda:0 rl_device=cuda:0 moves them there)."
    )
    assert describe_devices(load_config(["task=Ant", "mode=play", "num_envs=64"])) == (
        "Player physics on cuda:0, policy on cuda:0 (64 envs)."
    )
    assert describe_devices(load_config(["task=Ant", "mode=play"]), "cpu") == (
        "Player physics, policy and drawing on the CPU (4 envs; the GPU stays the trainer's; "
        "sim_device=cuda:0 rl_device=cuda:0 render_device=gpu moves them there)."
    )


def test_a_player_beside_a_gpu_trainer_draws_on_the_cpu_where_mesa_is_and_explicit_choices_win(tmp_path, monkeypatch):
    """Frames drawn with EGL on the trainer's GPU cost it 7% (video player, H200); Mesa draws them on a core."""
    from isaacgymenvs.gl import mesa_egl_vendor
    from isaacgymenvs.player.devices import choose_render_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)

    vendors = tmp_path / "egl_vendor.d"
    vendors.mkdir()
    (vendors / "10_nvidia.json").write_text('{"ICD": {"library_path": "libEGL_nvidia.so.0"}}')
    (vendors / "20_torn.json").write_text('{"ICD": ')
    (vendors / "50_mesa.json").write_text('{"ICD": {"library_path": "libEGL_mesa.so.0"}}')
    mesa = mesa_egl_vendor([str(tmp_path / "missing"), str(vendors)])
    assert mesa == vendors / "50_mesa.json"
    assert mesa_egl_vendor([str(tmp_path / "missing")]) is None

    def choose(*overrides: str, env: dict | None = None, gpu: bool = True, mesa_installed=True) -> tuple[str, dict]:
        cfg = load_config(["task=Ant", "mode=play", "sim_device=cpu", "rl_device=cpu", *overrides])
        environ = {"MUJOCO_GL": "egl"} if env is None else dict(env)
        dirs = [str(vendors)] if mesa_installed else [str(tmp_path / "missing")]
        return choose_render_device(cfg, environ, gpu_present=gpu, vendor_dirs=dirs), environ

    device, environ = choose()
    assert device == "cpu" and environ["__EGL_VENDOR_LIBRARY_FILENAMES"] == str(mesa)
    assert environ["LIBGL_ALWAYS_SOFTWARE"] == "1"
    assert choose("sim_device=cuda:0") == ("gpu", {"MUJOCO_GL": "egl"})  # a GPU player draws there too
    assert choose("render_device=gpu") == ("gpu", {"MUJOCO_GL": "egl"})
    assert choose(mesa_installed=False) == ("gpu", {"MUJOCO_GL": "egl"})  # no Mesa: the GPU, as before
    assert choose(env={"DISPLAY": ":0"}) == ("gpu", {"DISPLAY": ":0"})  # the desktop's GL draws the window
    assert choose(gpu=False)[0] == "cpu"  # no GPU: everything is drawn on the CPU already
    own = {"MUJOCO_GL": "egl", "__EGL_VENDOR_LIBRARY_FILENAMES": "/mine.json"}
    assert choose(env=own)[1]["__EGL_VENDOR_LIBRARY_FILENAMES"] == "/mine.json"  # the user's own wins
    assert choose("sim_device=cuda:0", "render_device=cpu")[0] == "cpu"
    with pytest.raises(UserError, match=r"^render_device=cpu draws with Mesa's EGL, which is not installed; "):
        choose("render_device=cpu", mesa_installed=False)
    with pytest.raises(UserError, match="render_device=fast must be auto, cpu or gpu"):
        load_config(["task=Ant", "mode=play", "render_device=fast"])


def test_overrides_apply():
    cfg = load_config(["task=Ant", "num_envs=32", "max_iterations=7", "experiment=mine", "sim_device=cpu"])
    assert (cfg.num_envs, cfg.task.env.numEnvs, cfg.max_iterations, cfg.experiment) == (32, 32, 7, "mine")


def test_test_true_is_play_mode():
    assert load_config(["task=Ant", "test=True", "sim_device=cpu"]).mode == "play"


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        (["task=Dog"], "Unknown task 'Dog'; known tasks: Ant, Anymal, Cartpole, Humanoid."),
        (["mode=fly"], "Unknown mode 'fly'"),
        (["num_envs=0"], "num_envs=0 must be a positive integer"),
        (["num_envs=-5"], "must be a positive integer"),
        (["num_envs=many"], "not a number"),
        (["checkpoint=/nonexistent/x.pth"], "does not exist"),
        (["sim_device=gpu0"], "is not a device"),
        (["nonsense_key=1"], "Bad configuration override"),
        (["max_iterations=0"], "max_iterations=0"),
        (["capture_video=True"], "the trainer never renders"),
        (["render_quality=ultra"], "render_quality=ultra must be auto, high or fast"),
        (["video_fps=0"], "video_fps=0 must be a positive number"),
        (["video_fps=fast"], "video_fps=fast must be a positive number"),
        (["train.params.config.torch_compile=fast"], "torch_compile=fast must be auto"),
        (["mode=play", "headless=True", "enable_control_panel=True"], "headless=True has none; start the panel"),
    ],
)
def test_bad_input_is_one_sentence(overrides, fragment):
    with pytest.raises(UserError) as err:
        load_config(["sim_device=cpu", "rl_device=cpu", *overrides] if "sim_device" not in overrides[0] else overrides)
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)


def test_torch_compile_auto_is_off_on_the_cpu_and_explicit_values_pass():
    assert (
        load_config(
            ["sim_device=cpu", "rl_device=cpu", "train.params.config.torch_compile=auto"]
        ).train.params.config.torch_compile
        is False
    )
    stock = ["sim_device=cpu", "rl_device=cpu", "train.params.algo.name=a2c_continuous"]
    explicit = "train.params.config.torch_compile=reduce-overhead"
    assert load_config([*stock, explicit]).train.params.config.torch_compile == "reduce-overhead"


def test_graphed_agent_ignores_torch_compile_and_says_so(capsys):
    cfg = load_config(["sim_device=cpu", "rl_device=cpu", "train.params.config.torch_compile=reduce-overhead"])
    assert cfg.train.params.algo.name == "graphed_a2c_continuous"
    assert cfg.train.params.config.torch_compile is False
    assert "torch_compile is ignored by graphed_a2c_continuous" in capsys.readouterr().out


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without a GPU")
def test_cuda_without_gpu_is_refused():
    with pytest.raises(UserError, match="asks for a GPU but this machine has none"):
        load_config(["sim_device=cuda:0"])


@pytest.mark.parametrize(
    "args",
    [["task=Dog"], ["mode=fly"], ["task=Ant", "num_envs=0"], ["checkpoint=missing.pth"],
     ["mode=play", "experiment=Ant", "headless=True", "enable_control_panel=True"]],
)  # fmt: skip
def test_cli_bad_input_exits_cleanly(args, tmp_path):
    result = run_cli(*args, cwd=tmp_path, timeout=120)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: ")
    assert not (tmp_path / "runs").exists()  # nothing written for a refused run


def test_multi_gpu_without_torchrun_is_refused(monkeypatch):
    for var in ("LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "RANK"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(UserError, match="multi_gpu=True needs one process per GPU started by torchrun"):
        load_config(["task=Ant", "multi_gpu=True"])


def test_more_ranks_than_gpus_is_refused(monkeypatch):
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", str(count + 1))
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(count + 1))
    with pytest.raises(UserError, match=rf"starts {count + 1} processes on this machine but it has {count} GPU"):
        load_config(["task=Ant", "multi_gpu=True"])


def test_wandb_without_the_package_is_one_sentence(tmp_path):
    pytest.importorskip("rl_games")
    try:
        import wandb  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("wandb is installed here")
    result = run_cli("task=Cartpole", "wandb_activate=True", "sim_device=cpu", "rl_device=cpu", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == (
        "Error: wandb_activate=True needs the wandb package; install it with pip install -e '.[wandb]'."
    )
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "sim, rl, expected",
    [("cuda:1", "cuda:1", "cuda:1"), ("cpu", "cuda:2", "cuda:2"), ("cuda:3", "cpu", "cuda:3"), ("cpu", "cpu", None)],
)
def test_the_process_gpu_becomes_torchs_current_device(monkeypatch, sim, rl, expected):
    """A player on cuda:1 must not open a context on cuda:0 through torch's current device."""
    from omegaconf import OmegaConf

    from isaacgymenvs import config

    chosen = []
    monkeypatch.setattr(config.torch.cuda, "set_device", lambda device: chosen.append(str(device)))
    config.make_device_current(OmegaConf.create({"sim_device": sim, "rl_device": rl}))
    assert chosen == ([expected] if expected else [])


def fake_libraries(*present: str):
    return lambda name: f"lib{name}.so.1" if name in present else None


@pytest.mark.parametrize(
    "environ, present, backend",
    [
        ({}, ("EGL", "OSMesa"), "egl"),  # no display: EGL (Mesa on a CPU, NVIDIA's on a GPU)
        ({}, ("OSMesa",), "osmesa"),
        ({"DISPLAY": ":0"}, ("EGL",), None),  # a display: MuJoCo's default GLFW
        ({"MUJOCO_GL": "glfw"}, ("EGL",), "glfw"),  # the user's choice wins
        ({}, (), None),
    ],
)
def test_gl_backend_is_chosen_before_mujoco_is_imported(environ, present, backend):
    from isaacgymenvs.gl import choose_gl_backend

    assert choose_gl_backend(environ, fake_libraries(*present)) == backend
    assert environ.get("MUJOCO_GL") == backend


def test_impossible_gl_backend_is_one_sentence():
    from isaacgymenvs.gl import choose_gl_backend, require_headless_gl

    with pytest.raises(UserError, match="MUJOCO_GL=egl but libEGL is not installed; install EGL"):
        choose_gl_backend({"MUJOCO_GL": "egl"}, fake_libraries())
    environ: dict[str, str] = {}
    choose_gl_backend(environ, fake_libraries())
    with pytest.raises(UserError, match="^Rendering without a display needs EGL or OSMesa"):
        require_headless_gl(environ)


def test_checkpoint_save_freq_defaults_per_device(monkeypatch):
    # The CPU default shows a first policy within ~30 s; a GPU keeps IsaacGymEnvs' 100.
    assert load_config(["sim_device=cpu", "rl_device=cpu"]).checkpoint_save_freq == 10
    assert load_config(["sim_device=cpu", "checkpoint_save_freq_cpu=7"]).checkpoint_save_freq == 7
    assert load_config(["sim_device=cpu", "checkpoint_save_freq=3"]).checkpoint_save_freq == 3
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert load_config(["sim_device=cuda:0", "rl_device=cuda:0"]).checkpoint_save_freq == 100


def test_progress_shows_a_dash_before_the_first_episode_and_parses_back():
    from isaacgymenvs.trainer.progress import format_progress, parse_progress

    line = format_progress(3, 10, 1234.0, math.nan, 5.0, math.nan)
    assert line == "epoch 3/10 | 1,234 env steps/s | mean episode reward - | elapsed 0:00:05 | ETA ?"
    assert math.isnan(parse_progress(line).mean_reward)
    assert parse_progress(format_progress(4, 10, 1.0, -12.345, 6.0, 9.0)).mean_reward == -12.35


def test_rl_games_debug_prints_are_dropped_line_by_line(capsys):
    from isaacgymenvs.console import quiet_rl_games

    with quiet_rl_games():
        print("build mlp:", 60)
        print("RunningMeanStd: ", (60,))
        print("epoch 1/2 | ", end="")
        print("ours")
        print("WARNING: Max epochs reached before any env terminated at least once")
    assert capsys.readouterr().out == (
        "epoch 1/2 | ours\nWARNING: Max epochs reached before any env terminated at least once\n"
    )


def test_mujoco_is_not_imported_before_the_player_chooses_where_it_draws():
    """libglvnd picks the EGL vendor when mujoco's EGL module loads: later, render_device could not
    move drawing off the GPU (measured on the H200: __EGL_VENDOR_LIBRARY_FILENAMES set after the
    import still drew on the NVIDIA GPU)."""
    code = (
        "import sys\n"
        "from isaacgymenvs.config import load_config\n"
        "load_config(['task=Ant', 'mode=play', 'video=True', 'headless=True'])\n"
        "import isaacgymenvs.cli, isaacgymenvs.player.play, isaacgymenvs.player.devices\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('mujoco', 'OpenGL')))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"

"""Compose the Hydra configuration and resolve what depends on the machine.

All defaults live in `cfg/`; this module only validates the user's choices and fills in the
values that depend on the machine ('auto' devices, per-device num_envs), so that the rest of the
code reads a complete, checked config.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from isaacgymenvs import protocol
from isaacgymenvs.errors import UserError
from isaacgymenvs.libraries import check_library, require
from isaacgymenvs.tasks import check_task_name

CFG_DIR = Path(__file__).resolve().parent.parent / "cfg"
MODES = ("train", "play", "export")


def load_config(overrides: list[str]) -> DictConfig:
    """Compose cfg/config.yaml with command-line overrides (`key=value`) and resolve it."""
    for item in overrides:
        if item.startswith("task="):
            check_task_name(item.split("=", 1)[1])  # an unknown task fails here with the known list
    try:
        with initialize_config_dir(config_dir=str(CFG_DIR), version_base="1.3"):
            cfg = compose(config_name="config", overrides=overrides)
    except (HydraException, OmegaConfBaseException) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(
            f"Bad configuration override ({first_line}); overrides look like key=value, e.g. task=Ant num_envs=512."
        ) from None
    return resolve(cfg)


def resolve_torch_compile(value: object, cfg: DictConfig) -> bool | str | DictConfig:
    """rl_games' torch_compile; `auto` compiles the policy when training on CUDA.

    Measured on an H200 (benchmarks/gpu_profile.py), compiling the policy made Ant epochs ~8%
    slower, so the shipped configs say False; `auto` is kept for other networks and GPUs.
    """
    if value is None or value == "auto":
        return value == "auto" and cfg.rl_device.startswith("cuda") and cfg.mode == "train"
    if isinstance(value, (bool, DictConfig)) or value in ("default", "reduce-overhead", "max-autotune"):
        return value
    raise UserError(
        f"train.params.config.torch_compile={value} must be auto, True, False, "
        "default, reduce-overhead or max-autotune."
    )


AGENTS = ("graphed_a2c_continuous", "a2c_continuous")


# rl_games `train.params.config` keys graphed_a2c_continuous runs exactly as stock a2c_continuous does
# (tests/test_graphed_agent.py compares them epoch by epoch), or that only name, place or save the run.
GRAPHED_ACCEPTED = frozenset({
    "bound_loss_type", "bounds_loss_coef", "clip_actions", "clip_value", "critic_coef", "device", "device_name",
    "e_clip", "entropy_coef", "env_config", "env_name", "features", "full_experiment_name", "games_to_track",
    "gamma", "grad_norm", "horizon_length", "kl_threshold", "learning_rate", "log_path", "lr_schedule",
    "max_epochs", "max_frames", "mini_epochs", "minibatch_size", "minibatch_size_per_env", "mixed_precision",
    "multi_gpu", "name", "normalize_advantage", "normalize_input", "normalize_value", "num_actors", "player",
    "ppo", "print_stats", "reward_shaper", "save_best_after", "save_frequency", "schedule_entropy",
    "schedule_type", "score_to_win", "seq_length", "tau", "torch_compile", "train_dir", "truncate_grads",
    "value_bootstrap", "weight_decay",
})  # fmt: skip
# rl_games options it does not implement (or not with stock semantics): what each is, for the refusal
GRAPHED_REFUSED = {
    "central_value_config": "an asymmetric critic", "use_action_masks": "action masks",
    "use_diagnostics": "PPO diagnostics", "normalize_rms_advantage": "RMS advantage normalisation",
    "adv_rms_momentum": "RMS advantage normalisation", "use_smooth_clamp": "the smoothed clip",
    "freeze_critic": "a frozen critic (its value normaliser would go on learning)",
    "epochs_between_resets": "periodic env resets (the captured graphs would keep the old episode tensors)",
    "self_play": "self-play", "self_play_config": "self-play", "population_based_training": "PBT",
    "pbt_idx": "PBT", "use_experimental_cv": "the experimental central value",
}  # fmt: skip


def check_graphed_options(config: DictConfig) -> None:
    """Refuse, before any training, an rl_games option the graphed agent would run differently."""
    for key in config:
        if key in GRAPHED_ACCEPTED:
            continue
        value = config[key]
        if key in GRAPHED_REFUSED and value in (None, False, 0, "", {}):
            continue  # off: nothing to run differently
        if key in GRAPHED_REFUSED:
            why = f": {GRAPHED_REFUSED[key]}, not implemented by graphed_a2c_continuous"
        else:
            why = " is not an option graphed_a2c_continuous knows (a typo?)"
        raise UserError(f"train.params.config.{key}={value}{why}; train.params.algo.name=a2c_continuous runs it.")


def resolve_algo(params: DictConfig) -> None:
    """Refuse an unknown `train.params.algo.name`; the graphed agent replaces torch_compile with CUDA graphs."""
    name = params.algo.name
    if name not in AGENTS:
        raise UserError(f"train.params.algo.name={name} is not an agent here; use {' or '.join(AGENTS)}.")
    if name == AGENTS[0]:
        check_graphed_options(params.config)
    if name == AGENTS[0] and params.config.get("torch_compile"):
        print("Note: torch_compile is ignored by graphed_a2c_continuous (its CUDA graphs replace it).")
        params.config.torch_compile = False


BOOL_KEYS = (
    "test", "headless", "multi_gpu", "torch_deterministic", "capture_video", "wandb_activate",
    "enable_control_panel", "stochastic", "video", "trust_checkpoint",
)  # fmt: skip
# key -> smallest allowed value (None: any integer)
INT_KEYS = {
    "checkpoint_save_freq": 1, "games_num": 0, "video_length": 1, "play_num_envs": 1,
    "graphics_device_id": 0, "seed": None, "checkpoint_save_freq_gpu": 1, "checkpoint_save_freq_cpu": 1,
    "player_gpu_min_envs": 1, "player_nice": 0, "video_max_clips": 0,
}  # fmt: skip
# null means "resolve for this machine" (checkpoint_save_freq: per simulation device)
NULLABLE_KEYS = ("checkpoint_save_freq",)
# key -> smallest allowed value (exclusive for 0): a reload poll of 1e-9 s would busy-loop a core.
MIN_NUMBER_KEYS = {"checkpoint_reload_interval": 0.1, "video_fps": 0.0}
UNITS = {
    "checkpoint_save_freq": "a positive number of epochs", "games_num": "a number of episodes (0: no evaluation)",
    "video_length": "a positive number of frames", "play_num_envs": "a positive number of environments",
    "graphics_device_id": "a GPU index (0, 1, ...)", "seed": "an integer",
    "checkpoint_save_freq_gpu": "a positive number of epochs",
    "checkpoint_save_freq_cpu": "a positive number of epochs",
    "checkpoint_reload_interval": "a number of seconds, at least 0.1",
    "video_fps": "a positive number of frames per second",
    "player_gpu_min_envs": "a positive number of environments",
    "player_nice": "a niceness from 0 to 19",
    "video_max_clips": "a number of clips (0: keep all)",
}  # fmt: skip


def check_types(cfg: DictConfig) -> None:
    """Every plain value has the type and range it needs, or one sentence says which key is wrong.

    Run once at load, before anything reads the values: later code may then trust them (a
    reload interval of 0 would busy-loop a core on stat calls; 'abc' would be a traceback).
    """
    for key in BOOL_KEYS:
        if not isinstance(cfg[key], bool):
            raise UserError(f"{key}={cfg[key]} must be True or False.")
    for key, low in INT_KEYS.items():
        value = cfg[key]
        if value is None and key in NULLABLE_KEYS:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or (low is not None and value < low):
            raise UserError(f"{key}={value} must be {UNITS[key]}.")
    if cfg.player_nice > 19:
        raise UserError(f"player_nice={cfg.player_nice} must be {UNITS['player_nice']}.")
    for key, low in MIN_NUMBER_KEYS.items():
        value = cfg[key]
        number = not isinstance(value, bool) and isinstance(value, (int, float))
        if not number or not (value >= low if low else value > 0) or not value < math.inf:
            raise UserError(f"{key}={value} must be {UNITS[key]}.")
    value = cfg.max_iterations
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
        raise UserError(f"max_iterations={value} must be a positive number of epochs (or null: the train config's).")
    if isinstance(cfg.experiment, int) and not isinstance(cfg.experiment, bool):
        cfg.experiment = str(cfg.experiment)  # experiment=2024 is a name, parsed by Hydra as a number
    protocol.check_experiment_name(cfg.experiment)
    if not isinstance(cfg.train_dir, str) or not cfg.train_dir.strip() or "\x00" in cfg.train_dir:
        raise UserError(f"train_dir={cfg.train_dir} must be a directory path.")
    if not isinstance(cfg.checkpoint, str):
        raise UserError(f"checkpoint={cfg.checkpoint} must be a path to a .pth file.")


def check_viewer(cfg: DictConfig) -> None:
    """viewer, web_host and web_port of a player, in one sentence each when wrong."""
    if cfg.viewer not in ("auto", "window", "web"):
        raise UserError(f"viewer={cfg.viewer} must be auto, window or web.")
    port = cfg.web_port
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise UserError(f"web_port={port} must be a TCP port number (1-65535).")
    if not isinstance(cfg.web_host, str) or not cfg.web_host.strip():
        raise UserError(f"web_host={cfg.web_host} must be an address, e.g. 127.0.0.1 or 0.0.0.0.")
    if cfg.mode == "play" and cfg.viewer != "auto" and cfg.headless:
        raise UserError(f"viewer={cfg.viewer} shows the player and headless=True shows nothing; drop one of them.")


def check_train_dir_writable(train_dir: str) -> None:
    """Training writes under train_dir: refuse, in one sentence, a place it cannot write."""
    path = Path(train_dir).absolute()
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    if existing is None or not existing.is_dir():
        raise UserError(f"train_dir={train_dir} cannot be created: {existing} is not a directory.")
    writable = os.access(existing, os.W_OK | os.X_OK)
    try:
        writable = writable and not os.statvfs(existing).f_flag & os.ST_RDONLY
    except OSError:
        pass
    if not writable:
        raise UserError(f"train_dir={train_dir} is not writable ({existing} is read-only or not yours).")


def check_checkpoint_file(cfg: DictConfig) -> None:
    """checkpoint= must be a checkpoint that loads without running code, unless the user trusts it.

    Training resumes through rl_games' loader; ours makes it load with weights_only=True, so a
    file that needs full unpickling is refused here with the key that allows it.
    """
    path = Path(cfg.checkpoint)
    if not path.is_file():
        raise UserError(f"Checkpoint '{cfg.checkpoint}' does not exist; pass checkpoint=<path to a .pth file>.")
    try:
        ckpt = protocol.read_checkpoint_dict(path)
        # training resumes with library=; a player or export follows the file's own library
        library = cfg.library if cfg.mode == "train" else protocol.checkpoint_library(ckpt)
        protocol.model_weights(ckpt, path.name, library)
    except protocol.CheckpointRejected as err:
        if cfg.mode == "train" and cfg.trust_checkpoint:
            return  # the user vouches for it; rl_games unpickles it fully
        if cfg.mode == "train" and _needs_full_unpickling(path):
            raise UserError(
                f"checkpoint={cfg.checkpoint} needs full unpickling, which can run code from the file; "
                "if you trust it, add trust_checkpoint=True."
            ) from None
        raise UserError(f"checkpoint={cfg.checkpoint} is not a usable checkpoint: {err}.") from None


def _needs_full_unpickling(path: Path) -> bool:
    try:
        protocol.torch_load_weights(path)
    except Exception as err:
        return protocol.needs_full_unpickling(err)
    return False


def resolve(cfg: DictConfig) -> DictConfig:
    """Validate the user's choices and replace 'auto'/null with concrete values."""
    OmegaConf.set_struct(cfg, False)
    check_types(cfg)
    if cfg.test:
        cfg.mode = "play"
    if cfg.mode not in MODES:
        raise UserError(f"Unknown mode '{cfg.mode}'; use mode=train, mode=play or mode=export.")
    if cfg.multi_gpu:
        cfg.sim_device = cfg.rl_device = multi_gpu_device()
    if cfg.mode == "play":
        cfg.num_envs = resolve_num_envs(cfg)  # before the devices: a player's 'auto' depends on it
        cfg.sim_device = resolve_player_device(cfg.sim_device, cfg)
        cfg.rl_device = resolve_player_device(cfg.rl_device, cfg)
    cfg.sim_device = resolve_device(cfg.sim_device, "sim_device")
    cfg.rl_device = resolve_device(cfg.rl_device, "rl_device")
    cfg.num_envs = resolve_num_envs(cfg)
    if cfg.compile_task == "auto":
        # Worth it for thousands of envs; a player's few envs would only pay the compile time.
        cfg.compile_task = cfg.sim_device.startswith("cuda") and cfg.mode == "train"
    elif not isinstance(cfg.compile_task, bool):
        raise UserError(f"compile_task={cfg.compile_task} must be auto, True or False.")
    cfg.task.env.numEnvs = cfg.num_envs
    check_library(cfg)
    if cfg.library != "rl_games" and cfg.mode == "train":
        require(cfg.library)  # before any directory is written
        if cfg.multi_gpu:
            raise UserError(f"multi_gpu=True trains with rl_games only; drop library={cfg.library} or multi_gpu.")
    if "train" in cfg and cfg.library == "rl_games":
        cfg.train.params.config.torch_compile = resolve_torch_compile(cfg.train.params.config.get("torch_compile"), cfg)
        resolve_algo(cfg.train.params)
    if cfg.checkpoint:
        check_checkpoint_file(cfg)
    if cfg.mode == "train":
        check_train_dir_writable(cfg.train_dir)
    if cfg.capture_video and cfg.mode == "train":
        raise UserError(
            "capture_video=True: the trainer never renders (that would slow it severalfold); "
            "record the policy with mode=play headless=True video=True instead."
        )
    if cfg.enable_control_panel and cfg.headless and cfg.mode == "play":
        raise UserError(
            "enable_control_panel=True opens a window beside the player's and headless=True has none; "
            "start the panel on a machine with a display: "
            "python isaacgymenvs/checkpoint_control_panel.py --experiment=<run>."
        )
    if cfg.render_quality not in ("auto", "high", "fast"):
        raise UserError(f"render_quality={cfg.render_quality} must be auto, high or fast.")
    if cfg.render_device not in ("auto", "cpu", "gpu"):
        raise UserError(f"render_device={cfg.render_device} must be auto, cpu or gpu.")
    check_viewer(cfg)
    if cfg.checkpoint_save_freq is None:
        cfg.checkpoint_save_freq = resolve_checkpoint_save_freq(cfg)
    OmegaConf.set_struct(cfg, True)
    return cfg


def resolve_checkpoint_save_freq(cfg: DictConfig) -> int:
    """The publish period for the simulation device: small on the CPU, where epochs are slow, so the
    player shows a first policy within ~30 s; IsaacGymEnvs' 100 on a GPU."""
    return int(cfg.checkpoint_save_freq_cpu if cfg.sim_device == "cpu" else cfg.checkpoint_save_freq_gpu)


def multi_gpu_device() -> str:
    """cuda:LOCAL_RANK for this torchrun rank; refuses a launch that cannot work."""
    if "LOCAL_RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        raise UserError(
            "multi_gpu=True needs one process per GPU started by torchrun, e.g. torchrun --standalone "
            "--nnodes=1 --nproc_per_node=2 isaacgymenvs/train_play.py task=Ant multi_gpu=True."
        )
    local_rank, local_world = int(os.environ["LOCAL_RANK"]), int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if local_world > count:
        raise UserError(
            f"torchrun starts {local_world} processes on this machine but it has {count} GPU(s); "
            f"use --nproc_per_node={count} or fewer."
        )
    return f"cuda:{local_rank}"


def make_device_current(cfg: DictConfig) -> None:
    """Make the process's GPU (sim_device, else rl_device) torch's current CUDA device.

    Anything in torch that uses "the current device" (pinned host memory, for one) would otherwise
    open a context on cuda:0: ~0.5 GB of the GPU a trainer beside us may be using, and a share of
    its time for any work that lands there. nvidia-smi showed such a context on GPU 0 for a player
    on cuda:1.
    """
    device = next((d for d in (cfg.sim_device, cfg.rl_device) if str(d).startswith("cuda")), None)
    if device is not None:
        torch.cuda.set_device(torch.device(device))


def resolve_player_device(name: str, cfg: DictConfig) -> str:
    """A player's 'auto' device: the CPU for fewer than player_gpu_min_envs envs, else as for training.

    A player's few envs step far faster than real time on one core, and on the GPU they would take
    time slices from a trainer beside them (a watching player cost the graphed trainer 23-25% there,
    benchmarks/results_gpu/s7_watch_cost.txt). An explicit device always wins.
    """
    if name != "auto" or int(cfg.num_envs) >= int(cfg.player_gpu_min_envs):
        return name
    return "cpu"


def resolve_device(name: str, key: str) -> str:
    """'auto' -> 'cuda:0' with a GPU else 'cpu'; check that a requested CUDA device exists."""
    if name == "auto":
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return name
    if name == "cuda":
        name = "cuda:0"
    if not name.startswith("cuda:") or not name[5:].isdigit():
        raise UserError(f"{key}={name} is not a device; use cpu, cuda or cuda:N.")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        raise UserError(f"{key}={name} asks for a GPU but this machine has none visible to torch; use {key}=cpu.")
    if int(name[5:]) >= count:
        raise UserError(f"{key}={name} does not exist: this machine has {count} GPU(s), cuda:0 to cuda:{count - 1}.")
    return name


def resolve_num_envs(cfg: DictConfig) -> int:
    """The requested num_envs, or the task's default for the simulation device."""
    if cfg.num_envs is None:
        if cfg.mode == "play":
            return int(cfg.play_num_envs)
        return int(cfg.task.env.numEnvsCpu if cfg.sim_device == "cpu" else cfg.task.env.numEnvs)
    try:
        num_envs = int(cfg.num_envs)
    except (TypeError, ValueError):
        raise UserError(f"num_envs={cfg.num_envs} is not a number; pass a positive integer.") from None
    if num_envs <= 0:
        raise UserError(f"num_envs={num_envs} must be a positive integer.")
    return num_envs

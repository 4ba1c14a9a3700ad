"""Turn the top-level config into the params dict rl_games' Runner loads."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from isaacgymenvs.errors import UserError
from isaacgymenvs.protocol import RunDir


def rlgames_params(cfg: DictConfig, run: RunDir) -> dict:
    """cfg.train with the run-specific fields filled in (name, sizes, devices, seed, paths)."""
    params = OmegaConf.to_container(cfg.train, resolve=True)
    config = params["params"]["config"]
    config["name"] = cfg.task.name
    config["full_experiment_name"] = run.name
    config["train_dir"] = str(run.root.parent)
    config["num_actors"] = cfg.num_envs
    config["device"] = cfg.rl_device
    config["device_name"] = cfg.rl_device
    config["multi_gpu"] = cfg.multi_gpu
    # Mixed precision needs CUDA; on the CPU it would only warn and slow down.
    config["mixed_precision"] = bool(config["mixed_precision"]) and cfg.rl_device.startswith("cuda")
    if cfg.max_iterations is not None:
        config["max_epochs"] = int(cfg.max_iterations)
    config["minibatch_size"] = _minibatch_size(config, cfg.num_envs)
    params["params"]["seed"] = int(cfg.seed)
    return params


def _minibatch_size(config: dict, num_envs: int) -> int:
    """The configured minibatch (or rl_games' num_envs * minibatch_size_per_env when only that is
    given), capped at one whole batch for small (CPU) runs."""
    batch = num_envs * int(config["horizon_length"])
    requested = config.get("minibatch_size")
    if requested is None:
        per_env = config.get("minibatch_size_per_env")
        if per_env is None:
            raise UserError("train.params.config needs minibatch_size or minibatch_size_per_env.")
        requested = num_envs * int(per_env)
    minibatch = min(int(requested), batch)
    if batch % minibatch:
        raise UserError(
            f"num_envs * horizon_length = {batch} is not a multiple of minibatch_size={minibatch}; "
            "choose num_envs so that it is (powers of two always work)."
        )
    return minibatch

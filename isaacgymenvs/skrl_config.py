"""skrl's PPO pieces from a run's train config (cfg/train/<Task>PPO_skrl.yaml), built one way for
the trainer, the player and export, so that a checkpoint's entries always fit the player's modules.

The YAML holds skrl's own keys as skrl's Runner reads them: `models` (`separate`, and per role the
`class` and the arguments of skrl's model instantiators) and `agent`, skrl's PPO_CFG with class names
as strings (KLAdaptiveLR, RunningStandardScaler), Isaac Lab's `rewards_shaper_scale` and our
`mini_batches_cpu` (the mini-batches when training on the CPU, see the YAML). What the
YAML cannot hold (the spaces, the device, classes, a callable) is filled in here.
"""

from __future__ import annotations

import copy
from typing import Any

import gymnasium
import torch

from isaacgymenvs.errors import UserError

PREPROCESSOR_KEYS = ("observation_preprocessor", "state_preprocessor", "value_preprocessor")


def skrl_class(name: object, key: str) -> type | None:
    """An skrl class named in the YAML (a preprocessor or a learning-rate scheduler); None for null."""
    import skrl.resources.preprocessors.torch as preprocessors
    import skrl.resources.schedulers.torch as schedulers

    if name is None:
        return None
    module, kind = (schedulers, "schedulers") if key == "learning_rate_scheduler" else (preprocessors, "preprocessors")
    found = getattr(module, str(name), None)
    if not isinstance(found, type):
        raise UserError(f"train.agent.{key}={name} is not one of skrl's {kind}.")
    return found


class RewardScale:
    """skrl's `rewards_shaper` for Isaac Lab's `rewards_shaper_scale`: rewards times a constant.

    A class rather than a lambda so that the agent's config stays picklable.
    """

    def __init__(self, scale: float) -> None:
        self.scale = float(scale)

    def __call__(self, rewards: torch.Tensor, timestep: int, timesteps: int) -> torch.Tensor:
        return rewards * self.scale


def ppo_config(agent: dict[str, Any], observation_space: gymnasium.Space, device: str) -> Any:
    """skrl's PPO_CFG from the YAML's `agent` section; an unknown key is one sentence."""
    from skrl.agents.torch.ppo import PPO_CFG

    values = copy.deepcopy(agent)
    cpu_mini_batches = values.pop("mini_batches_cpu", None)
    if cpu_mini_batches is not None and torch.device(device).type == "cpu":
        values["mini_batches"] = cpu_mini_batches
    scheduler = values.get("learning_rate_scheduler")
    values["learning_rate_scheduler"] = skrl_class(scheduler, "learning_rate_scheduler")
    values["learning_rate_scheduler_kwargs"] = values.get("learning_rate_scheduler_kwargs") or {}
    for key in PREPROCESSOR_KEYS:
        values[key] = skrl_class(values.get(key), key)
        size = 1 if key == "value_preprocessor" else observation_space
        values[f"{key}_kwargs"] = {**(values.get(f"{key}_kwargs") or {}), "size": size, "device": device}
    scale = values.pop("rewards_shaper_scale", None)
    values["rewards_shaper"] = None if scale is None or float(scale) == 1.0 else RewardScale(scale)
    try:
        return PPO_CFG(**values)
    except TypeError as err:
        raise UserError(f"train.agent is not skrl's PPO config ({err}).") from None


def observation_preprocessor(
    agent: dict[str, Any], observation_space: gymnasium.Space, device: str
) -> torch.nn.Module | None:
    """The agent's observation preprocessor (RunningStandardScaler), None when the run has none."""
    cls = skrl_class(agent.get("observation_preprocessor"), "observation_preprocessor")
    if cls is None:
        return None
    kwargs = {**(agent.get("observation_preprocessor_kwargs") or {}), "size": observation_space, "device": device}
    return cls(**kwargs)


# The roles a PPO agent needs and the skrl model class each must be (`models.<role>.class`).
ROLES = {"policy": "GaussianMixin", "value": "DeterministicMixin"}


def agent_models(
    models: dict[str, Any], observation_space: gymnasium.Space, action_space: gymnasium.Space, device: str
) -> dict[str, Any]:
    """skrl's policy and value models as skrl's own Runner builds them from the same YAML.

    `models.separate: false` (rl_games' actor_critic with `separate: False`): one network with a
    policy and a value head (skrl's shared_model; both roles are the same module, so a checkpoint's
    `policy` entry holds the value head too). `true`: gaussian_model and deterministic_model.
    """
    from skrl.utils.model_instantiators.torch import deterministic_model, gaussian_model, shared_model

    roles = {}
    for role, expected in ROLES.items():
        section = dict(models[role])
        given = section.pop("class", None)
        if given != expected:
            raise UserError(f"train.models.{role}.class={given} is not offered; skrl's PPO here needs {expected}.")
        roles[role] = section
    spaces = {"observation_space": observation_space, "action_space": action_space, "device": device}
    try:
        if models.get("separate", True):
            built = {"policy": gaussian_model(**spaces, **roles["policy"]),
                     "value": deterministic_model(**spaces, **roles["value"])}  # fmt: skip
        else:
            structure, parameters = list(ROLES.values()), list(roles.values())
            shared = shared_model(**spaces, structure=structure, roles=list(ROLES), parameters=parameters)
            built = {"policy": shared, "value": shared}
        for role, model in built.items():
            materialized(model, observation_space, role)
    except (KeyError, ValueError, TypeError, SyntaxError, NameError, RuntimeError) as err:
        # the instantiators turn the YAML into Python source: a wrong key or layer fails in there
        raise UserError(f"train.models is not a model config skrl can build ({type(err).__name__}: {err}).") from None
    return built


def check(train: dict[str, Any], device: str) -> None:
    """The train config's `models` and `agent` build in skrl (on stand-in spaces), so that a mistake in
    them is one sentence before the run directory is written."""
    observation_space, action_space = spaces(2, 1)
    agent = ppo_config(train["agent"], observation_space, device)
    agent_models(train["models"], observation_space, action_space, device)
    from skrl.agents.torch.base import ExperimentCfg

    try:
        experiment = ExperimentCfg(**agent.experiment) if isinstance(agent.experiment, dict) else agent.experiment
    except TypeError as err:
        raise UserError(f"train.agent.experiment is not skrl's experiment config ({err}).") from None
    interval = experiment.checkpoint_interval
    if isinstance(interval, bool) or not isinstance(interval, int):
        raise UserError(
            f"train.agent.experiment.checkpoint_interval={interval} must be a number of env steps per env "
            f"(a multiple of rollouts={agent.rollouts}; 0: no agent_<timestep>.pt files)."
        )


def policy_model(
    models: dict[str, Any], observation_space: gymnasium.Space, action_space: gymnasium.Space, device: str
) -> Any:
    """The policy role of `agent_models` (the whole network when it is shared with the value)."""
    return agent_models(models, observation_space, action_space, device)["policy"]


def materialized(model: Any, observation_space: gymnasium.Space, role: str) -> None:
    """The model with its layers' shapes fixed, as skrl's own Runner does before building an agent.

    skrl's instantiators build lazy layers (nn.LazyLinear), whose weights have no shape until a first
    forward pass: the optimizer, a state dict and a checkpoint check all need them. One pass on zeros
    (not skrl's random samples) leaves torch's generator, and so the seeded run, as it was.
    """
    zeros = torch.zeros(1, *observation_space.shape, device=model.device)
    with torch.no_grad():
        model.init_state_dict({"observations": zeros}, role=role)
    if hasattr(model, "_shared_output"):  # a shared model keeps a policy pass's trunk output for the value's
        model._shared_output = None


def network_description(models: dict[str, Any]) -> dict[str, Any]:
    """`units` and `activation` of the policy's first network, for checkpoint metadata."""
    first = models["policy"]["network"][0]
    return {"units": [int(u) for u in first["layers"]], "activation": str(first["activations"])}


def spaces(num_obs: int, num_actions: int) -> tuple[gymnasium.spaces.Box, gymnasium.spaces.Box]:
    """The task's observation and action spaces as a VecTask declares them."""
    import numpy as np

    observation = gymnasium.spaces.Box(-np.inf, np.inf, (num_obs,), dtype=np.float32)
    return observation, gymnasium.spaces.Box(-1.0, 1.0, (num_actions,), dtype=np.float32)

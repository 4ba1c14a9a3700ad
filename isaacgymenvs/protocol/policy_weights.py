"""Where each PPO library's checkpoint keeps the policy: which library wrote a file, the policy's
state dict (observation normaliser included) and the observation/action sizes it was built for.

The one place that knows the three libraries' save formats, so that checkpoints.py stays about
loading and checking files:

- rl_games: `model` (the whole actor-critic, normalisers inside; keys may carry `_orig_mod.`).
- rsl_rl: `actor_state_dict` (the actor, its EmpiricalNormalization inside).
- skrl: one entry per agent module, as skrl's `Agent.save` writes them: `policy` (the Gaussian model)
  and, when the run normalises observations, `observation_preprocessor` (RunningStandardScaler).
  The policy's weights are both, keyed `policy.<key>` and `observation_preprocessor.<key>`: the
  names of the player's module (policy.SkrlPolicy) that holds the two.
"""

from __future__ import annotations

from typing import Any


class CheckpointRejected(Exception):
    """A checkpoint that cannot be used; the message says why in one sentence."""


COMPILED_PREFIX = "_orig_mod."
POLICY_WEIGHTS = {"rl_games": "model", "rsl_rl": "actor_state_dict", "skrl": "policy"}
SKRL_PREPROCESSOR = "observation_preprocessor"
OBS_MEAN_KEY = "running_mean_std.running_mean"  # rl_games
POLICY_HEAD_KEY = "a2c_network.mu.weight"
RSL_RL_OBS_KEY, RSL_RL_STD_KEY = "mlp.0.weight", "distribution.std_param"
SKRL_OBS_KEY, SKRL_STD_KEY = f"{SKRL_PREPROCESSOR}.running_mean", "policy.log_std_parameter"
# Normaliser variances, which must not be negative: rl_games', rsl_rl's, skrl's.
VARIANCE_KEYS = ("running_var", "obs_normalizer._var", f"{SKRL_PREPROCESSOR}.running_variance")


def plain_model_keys(model: dict[str, Any]) -> dict[str, Any]:
    """The model's state dict with the keys of the uncompiled module.

    rl_games' `torch_compile` wraps the model, so its state dict (and rl_games' own .pth saves)
    prefix every key with `_orig_mod.`; checkpoints we publish never carry it, and readers accept
    both.
    """
    return {k.removeprefix(COMPILED_PREFIX): v for k, v in model.items()}


def checkpoint_library(ckpt: dict[str, Any]) -> str:
    """The library that wrote a checkpoint: our metadata's 'library', else told by its keys
    (rl_games saves model, rsl_rl actor_state_dict, skrl policy); files from before library= are
    rl_games'."""
    meta = ckpt.get("metadata")
    named = meta.get("library") if isinstance(meta, dict) else None
    if isinstance(named, str) and named in POLICY_WEIGHTS:
        return named
    if "model" in ckpt:
        return "rl_games"
    if "actor_state_dict" in ckpt:
        return "rsl_rl"
    return "skrl" if "policy" in ckpt else "rl_games"


def _tensor_dict(value: Any) -> bool:
    import torch

    return isinstance(value, dict) and bool(value) and all(isinstance(v, torch.Tensor) for v in value.values())


def model_weights(ckpt: dict[str, Any], name: str, library: str = "rl_games") -> dict[str, Any]:
    """The policy's state dict (string keys, uncompiled names, tensors) of a checkpoint `library` wrote;
    a checkpoint of another library is refused in one sentence."""
    written_by = checkpoint_library(ckpt)
    if written_by != library:
        raise CheckpointRejected(f"{name} is an {written_by} checkpoint and this run's policy is an {library} one")
    model = ckpt.get(POLICY_WEIGHTS[library])
    if not _tensor_dict(model):
        raise CheckpointRejected(f"{name} holds no {library} model weights")
    if library == "skrl":
        model = {f"policy.{k}" if isinstance(k, str) else k: v for k, v in model.items()}
        preprocessor = ckpt.get(SKRL_PREPROCESSOR)
        if preprocessor is not None:
            if not _tensor_dict(preprocessor):
                raise CheckpointRejected(f"{name} has an {SKRL_PREPROCESSOR} that holds no tensors")
            model.update({f"{SKRL_PREPROCESSOR}.{k}" if isinstance(k, str) else k: v for k, v in preprocessor.items()})
    if not all(isinstance(k, str) for k in model):
        raise CheckpointRejected(f"{name} has a model entry whose name is not a string")
    return plain_model_keys(model)


def _expect_dim(name: str, key: str, value: Any, dim: int) -> None:
    if value is not None and value.dim() != dim:
        raise CheckpointRejected(f"{name} has a {value.dim()}-dimensional {key} (expected {dim})")


def model_sizes(model: dict[str, Any], name: str, library: str = "rl_games") -> tuple[int | None, int | None]:
    """(observations, actions) from the normaliser and policy-head shapes (None where absent).

    rl_games: its normaliser's mean and the mean head's rows; rsl_rl: the first layer's inputs and
    the action std's length; skrl: the preprocessor's mean (else the first layer's inputs) and the
    log-std parameter's length.
    """
    if library == "rsl_rl":
        obs, std = model.get(RSL_RL_OBS_KEY), model.get(RSL_RL_STD_KEY)
        _expect_dim(name, RSL_RL_OBS_KEY, obs, 2)
        _expect_dim(name, RSL_RL_STD_KEY, std, 1)
        return (obs.shape[1] if obs is not None else None, std.shape[0] if std is not None else None)
    if library == "skrl":
        mean, std = model.get(SKRL_OBS_KEY), model.get(SKRL_STD_KEY)
        _expect_dim(name, SKRL_OBS_KEY, mean, 1)
        _expect_dim(name, SKRL_STD_KEY, std, 1)
        first = next((v for k, v in model.items() if k.startswith("policy.") and k.endswith(".weight")), None)
        _expect_dim(name, "first policy layer", first, 2)
        obs = mean.shape[0] if mean is not None else (first.shape[1] if first is not None else None)
        return (obs, std.shape[0] if std is not None else None)
    obs, mu = model.get(OBS_MEAN_KEY), model.get(POLICY_HEAD_KEY)
    _expect_dim(name, OBS_MEAN_KEY, obs, 1)
    _expect_dim(name, POLICY_HEAD_KEY, mu, 2)
    return (obs.shape[0] if obs is not None else None, mu.shape[0] if mu is not None else None)

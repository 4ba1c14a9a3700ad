"""A checkpoint's policy as one traceable module, raw observations -> actions, for `mode=export`.

The player's pipeline written out so that the ONNX and TorchScript exporters can trace it: the
task's observation clip, the library's observation normaliser, the policy network, the mean action
and the action clip. One class per PPO library (rl_games, rsl_rl); isaacgymenvs/export.py checks
and writes them.
"""

from __future__ import annotations

import torch

from isaacgymenvs.errors import UserError
from isaacgymenvs.policy import Policy, RslRlPolicy, SkrlPolicy

# rl_games' RunningMeanStd clamps normalised observations (and values before denormalising) to +-5.
NORMALIZED_CLIP = 5.0


class DeployedPolicy(torch.nn.Module):
    """Raw observations [B, num_obs] -> actions [B, num_actions] (and values [B, 1] if asked).

    The player's pipeline in one module: the task's observation clip (`clipObservations`, which
    the task applies before the policy sees an observation), the observation normaliser
    (running mean/std from the checkpoint, normalised values clipped to +-5), the policy MLP, the
    mean action (deterministic), and the action clip the player and task apply. The normaliser is
    written out here with rl_games' own arithmetic because rl_games keeps it as a
    torch.jit.script module, which the ONNX exporters cannot trace through; the MLP is the
    player's module itself. Values, when asked for, are denormalised as rl_games' player does.
    """

    def __init__(self, policy: Policy, obs_clip: float, action_clip: float, with_values: bool = False) -> None:
        super().__init__()
        model = policy.model
        if model.is_rnn():
            raise UserError("Export supports feed-forward policies only; this network has an RNN.")
        self.network = model.a2c_network
        self.obs_clip, self.action_clip, self.with_values = float(obs_clip), float(action_clip), with_values
        self.normalize_input, self.normalize_value = bool(model.normalize_input), bool(model.normalize_value)
        for prefix, on, attr in (("obs", self.normalize_input, "running_mean_std"),
                                 ("value", self.normalize_value, "value_mean_std")):  # fmt: skip
            stats = getattr(model, attr) if on else None
            self.register_buffer(f"{prefix}_mean", stats.running_mean.float().clone() if stats else torch.zeros(1))
            self.register_buffer(f"{prefix}_var", stats.running_var.float().clone() if stats else torch.ones(1))
            setattr(self, f"{prefix}_epsilon", float(stats.epsilon) if stats else 0.0)
        self.eval().requires_grad_(False)  # inference only: outputs of the exported graphs carry no autograd

    def forward(self, obs: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        x = torch.clamp(obs, -self.obs_clip, self.obs_clip)
        if self.normalize_input:
            x = (x - self.obs_mean) / torch.sqrt(self.obs_var + self.obs_epsilon)
            x = torch.clamp(x, -NORMALIZED_CLIP, NORMALIZED_CLIP)
        mu, _, value, _ = self.network({"obs": x})
        actions = torch.clamp(mu, -self.action_clip, self.action_clip)
        if not self.with_values:
            return actions
        if self.normalize_value:
            value = torch.clamp(value, -NORMALIZED_CLIP, NORMALIZED_CLIP)
            value = torch.sqrt(self.value_var + self.value_epsilon) * value + self.value_mean
        return actions, value

    def normalizer_text(self) -> str:
        if not self.normalize_input:
            return "none (the run trained without normalize_input)"
        return (
            "running mean/std of the checkpoint, inside the graph: clip(obs), (obs - mean) / sqrt(var + "
            f"{self.obs_epsilon:g}), clipped to [-{NORMALIZED_CLIP:g}, {NORMALIZED_CLIP:g}]"
        )


class DeployedRslRlPolicy(torch.nn.Module):
    """rsl_rl's actor as the player runs it: raw observations [B, num_obs] -> actions [B, num_actions].

    The task's observation clip, then rsl_rl's own exportable pieces of the actor (what its
    `as_onnx`/`as_jit` copy: the EmpiricalNormalization, (obs - mean) / (std + eps) without a clip,
    the MLP and the distribution's deterministic output, i.e. the mean action), then the action
    clip the player and task apply. Values are not offered: rsl_rl's critic is a separate network.
    """

    with_values = False

    def __init__(self, policy: RslRlPolicy, obs_clip: float, action_clip: float) -> None:
        import copy

        super().__init__()
        model = policy.model
        if getattr(model, "is_recurrent", False):
            raise UserError("Export supports feed-forward policies only; this network has an RNN.")
        self.obs_clip, self.action_clip = float(obs_clip), float(action_clip)
        self.normalize_input = bool(model.obs_normalization)
        self.normalizer = copy.deepcopy(model.obs_normalizer)
        self.mlp = copy.deepcopy(model.mlp)
        dist = model.distribution
        self.deterministic = dist.as_deterministic_output_module() if dist is not None else torch.nn.Identity()
        self.eval().requires_grad_(False)

    @property
    def obs_mean(self) -> torch.Tensor:
        return self.normalizer._mean.squeeze(0).float() if self.normalize_input else torch.zeros(1)

    @property
    def obs_var(self) -> torch.Tensor:
        return self.normalizer._var.squeeze(0).float() if self.normalize_input else torch.ones(1)

    @property
    def obs_epsilon(self) -> float:
        return float(self.normalizer.eps) if self.normalize_input else 0.0

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = self.normalizer(torch.clamp(obs, -self.obs_clip, self.obs_clip))
        return torch.clamp(self.deterministic(self.mlp(x)), -self.action_clip, self.action_clip)

    def normalizer_text(self) -> str:
        if not self.normalize_input:
            return "none (the run trained without obs_normalization)"
        return (
            "rsl_rl's EmpiricalNormalization of the checkpoint, inside the graph: clip(obs), "
            f"(obs - mean) / (std + {self.obs_epsilon:g})"
        )


class DeployedSkrlPolicy(torch.nn.Module):
    """skrl's policy as the player runs it: raw observations [B, num_obs] -> actions [B, num_actions].

    The task's observation clip, skrl's RunningStandardScaler written out with its own arithmetic
    ((obs - mean) / (sqrt(var) + eps), clipped to +-clip_threshold; skrl keeps mean and variance in
    float64 and computes in float32, as here), the Gaussian model's `compute` (its network up to the
    mean action, skrl's `mean_actions`), then the action clip the player and task apply. Values are
    not offered: skrl's value model is a separate network.
    """

    with_values = False

    def __init__(self, policy: SkrlPolicy, obs_clip: float, action_clip: float) -> None:
        import copy

        super().__init__()
        self.network = copy.deepcopy(policy.model.policy)
        pre = policy.model.observation_preprocessor
        self.obs_clip, self.action_clip = float(obs_clip), float(action_clip)
        self.normalize_input = pre is not None
        self.register_buffer("obs_mean", pre.running_mean.float().clone() if pre is not None else torch.zeros(1))
        self.register_buffer("obs_var", pre.running_variance.float().clone() if pre is not None else torch.ones(1))
        self.obs_epsilon = float(pre.epsilon) if pre is not None else 0.0
        self.normalized_clip = float(pre.clip_threshold) if pre is not None else 0.0
        self.eval().requires_grad_(False)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = torch.clamp(obs, -self.obs_clip, self.obs_clip)
        if self.normalize_input:
            x = (x - self.obs_mean) / (torch.sqrt(self.obs_var) + self.obs_epsilon)
            x = torch.clamp(x, -self.normalized_clip, self.normalized_clip)
        mean, _ = self.network.compute({"observations": x}, role="policy")
        if hasattr(self.network, "_shared_output"):  # a shared model keeps its trunk's output for a value pass
            self.network._shared_output = None  # there is none here, and torch.export refuses a stored tensor
        return torch.clamp(mean, -self.action_clip, self.action_clip)

    def normalizer_text(self) -> str:
        if not self.normalize_input:
            return "none (the run trained without an observation_preprocessor)"
        return (
            "skrl's RunningStandardScaler of the checkpoint, inside the graph: clip(obs), "
            f"(obs - mean) / (sqrt(var) + {self.obs_epsilon:g}), clipped to "
            f"[-{self.normalized_clip:g}, {self.normalized_clip:g}]"
        )


Deployed = DeployedPolicy | DeployedRslRlPolicy | DeployedSkrlPolicy

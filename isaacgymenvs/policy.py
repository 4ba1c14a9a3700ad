"""The trained policy of a run, rebuilt from its train config for inference only: rl_games' actor-critic
(`Policy`), rsl_rl's actor (`RslRlPolicy`, observation normaliser inside) or skrl's Gaussian policy with
its observation preprocessor (`SkrlPolicy`); `make_policy` picks one."""

from __future__ import annotations

import torch
from rl_games.algos_torch import model_builder

from isaacgymenvs.libraries import require
from isaacgymenvs.protocol.checkpoints import network_mismatch


def make_policy(
    library: str, train_params: dict, num_obs: int, num_actions: int, device: str, stochastic: bool
) -> Policy:
    """The policy network of a run trained with `library` (a missing extra: one sentence, exit 2)."""
    cls = {"rsl_rl": RslRlPolicy, "skrl": SkrlPolicy}.get(library, Policy)
    if cls is not Policy:  # rl_games is always installed; the others come with an extra
        require(library)
    return cls(train_params, num_obs, num_actions, device, stochastic)


class Policy:
    """rl_games' network. Deterministic (the mean action) unless `stochastic`; weights swapped in place."""

    library = "rl_games"

    def __init__(self, train_params: dict, num_obs: int, num_actions: int, device: str, stochastic: bool) -> None:
        params = train_params["params"]
        config = params["config"]
        network = model_builder.ModelBuilder().load(params)
        self.model = network.build(
            {
                "actions_num": num_actions,
                "input_shape": (num_obs,),
                "num_seqs": 1,
                "value_size": 1,
                "normalize_value": bool(config["normalize_value"]),
                "normalize_input": bool(config["normalize_input"]),
            }
        )
        self._adopt(device, stochastic, num_actions)

    def _adopt(self, device: str, stochastic: bool, num_actions: int) -> None:
        """Move the freshly built `self.model` to `device` for inference; no weights yet (zeros until load)."""
        self.model.to(device).eval()
        self.device = torch.device(device)
        self.stochastic = stochastic
        self.num_actions = num_actions
        self.loaded = False

    def load(self, state_dict: dict[str, torch.Tensor], probe_obs: torch.Tensor | None = None) -> None:
        """Replace all weights and normalisers (strict: a different network shape raises).

        load_state_dict copies tensor by tensor and raises only at the end, so a refused state
        dict would leave a mix of old and new weights: the previous ones are put back instead.
        With `probe_obs`, the new policy must also act finitely on them (finite weights can still
        overflow to an infinite std, and rl_games samples on every forward pass), else it is refused.
        """
        mismatch = network_mismatch(state_dict, self.shapes())
        if mismatch:  # torch would say only "Error(s) in loading state_dict for Network"
            raise RuntimeError(f"its weights do not fit the network: it {mismatch}")
        previous = {k: v.clone() for k, v in self.model.state_dict().items()}
        try:
            self.model.load_state_dict(state_dict, strict=True)
            if probe_obs is not None:
                self._probe(probe_obs)
        except BaseException:
            self.model.load_state_dict(previous, strict=True)
            raise
        self.loaded = True

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """The network's state-dict entries and shapes: what a checkpoint must hold to be loaded."""
        return {key: tuple(value.shape) for key, value in self.model.state_dict().items()}

    @torch.inference_mode()
    def _probe(self, obs: torch.Tensor) -> None:
        try:
            out = self._forward(obs)
        except RuntimeError as err:  # e.g. "normal expects all elements of std >= 0.0"
            raise RuntimeError(f"its actions on the current observations are not finite ({err})") from None
        if not all(bool(torch.isfinite(value).all()) for value in out.values()):
            raise RuntimeError("its actions on the current observations are not finite")

    def _forward(self, obs: torch.Tensor) -> dict[str, torch.Tensor]:
        """'mus' (the mean action) and 'actions' (sampled); rl_games samples on every forward pass."""
        out = self.model({"is_train": False, "prev_actions": None, "obs": obs.to(self.device), "rnn_states": None})
        return {key: out[key] for key in ("mus", "sigmas", "actions") if key in out}

    @torch.inference_mode()
    def act(self, obs: torch.Tensor) -> torch.Tensor:
        """Actions in [-1, 1]; zeros until a checkpoint is loaded, or if the network fails on these
        observations (never an exception in the render loop, never a NaN into the physics)."""
        zeros = torch.zeros(obs.shape[0], self.num_actions, device=self.device)
        if not self.loaded:
            return zeros
        try:
            out = self._forward(obs)
        except RuntimeError:  # sampling with an infinite/NaN std: the probe at load makes this rare
            return zeros
        actions = out["actions"] if self.stochastic else out["mus"]
        return torch.clamp(torch.nan_to_num(actions, nan=0.0), -1.0, 1.0)


class RslRlPolicy(Policy):
    """rsl_rl's actor (MLPModel, its observation normaliser inside), built from the run's `runner`
    config exactly as rsl_rl's PPO builds it; acts with the mean unless `stochastic`."""

    library = "rsl_rl"

    def __init__(self, train_params: dict, num_obs: int, num_actions: int, device: str, stochastic: bool) -> None:
        import copy

        from rsl_rl.utils import resolve_class
        from tensordict import TensorDict

        runner = copy.deepcopy(train_params["runner"])
        actor_class, actor_cfg = resolve_class(runner["actor"])
        obs = TensorDict({"policy": torch.zeros(1, num_obs)}, batch_size=[1])
        self.model = actor_class(obs, runner["obs_groups"], "actor", num_actions, **actor_cfg)
        self._adopt(device, stochastic, num_actions)

    def _forward(self, obs: torch.Tensor) -> dict[str, torch.Tensor]:
        from tensordict import TensorDict

        groups = TensorDict({"policy": obs.to(self.device)}, batch_size=[obs.shape[0]])
        mean = self.model(groups)
        out = {"mus": mean}
        if self.stochastic:
            out["actions"] = self.model(groups, stochastic_output=True)
        return out


class SkrlActor(torch.nn.Module):
    """skrl's policy model and observation preprocessor as one module, so that one state dict
    (`policy.<key>`, `observation_preprocessor.<key>`: protocol.policy_weights' skrl layout) loads both."""

    def __init__(self, policy: torch.nn.Module, observation_preprocessor: torch.nn.Module | None) -> None:
        super().__init__()
        self.policy = policy
        self.observation_preprocessor = observation_preprocessor

    def inputs(self, obs: torch.Tensor) -> dict[str, torch.Tensor]:
        """What skrl's PPO.act passes its policy: the preprocessed observations (no states)."""
        pre = self.observation_preprocessor
        return {"observations": pre(obs) if pre is not None else obs}


class SkrlPolicy(Policy):
    """skrl's Gaussian policy and its observation preprocessor (RunningStandardScaler), built from
    the run's `models` and `agent` config exactly as the trainer builds them; acts with the mean
    (skrl's `mean_actions`) unless `stochastic`."""

    library = "skrl"

    def __init__(self, train_params: dict, num_obs: int, num_actions: int, device: str, stochastic: bool) -> None:
        from isaacgymenvs import skrl_config

        observation_space, action_space = skrl_config.spaces(num_obs, num_actions)
        policy = skrl_config.policy_model(train_params["models"], observation_space, action_space, device)
        preprocessor = skrl_config.observation_preprocessor(train_params["agent"], observation_space, device)
        self.model = SkrlActor(policy, preprocessor)
        self._adopt(device, stochastic, num_actions)

    def _forward(self, obs: torch.Tensor) -> dict[str, torch.Tensor]:
        actions, outputs = self.model.policy.act(self.model.inputs(obs.to(self.device)), role="policy")
        return {"mus": outputs["mean_actions"], "actions": actions}

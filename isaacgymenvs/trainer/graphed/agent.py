"""`graphed_a2c_continuous`: rl_games' continuous PPO with no host synchronisation inside an epoch.

Same algorithm, config keys and checkpoints as rl_games' `a2c_continuous` (this class *is* an
`A2CAgent`: construction, saving, restoring, logging and the epoch loop are rl_games' own). What
changes is how an epoch runs on the device:

- rollout: preallocated [horizon, N, ...] buffers; per env step the policy (normalise, MLP, sample,
  log-prob, value, action rescale, buffer writes) is one replayed CUDA graph and the bookkeeping
  after the env step (reward shaping, time-out bootstrap, episode meters, resets) another; episode
  statistics are masked and fixed-shape (no `nonzero`). The env step itself is the task's
  (MuJoCo Warp's captured physics graph plus compiled task math, already sync-free).
- update: GAE, value normalisation and advantage normalisation are one graph; each minibatch
  (forward, clipped losses, backward, grad clipping, fused capturable Adam with the learning rate
  as a device tensor, the adaptive-KL learning rate, the new mu/sigma written back) is one graph
  that picks its rows from a device-side counter, so there is no `.item()` per minibatch.
- values leave the device once per epoch (losses, KL, learning rate, episode means).

On the CPU the same steps run eagerly (the tests compare them with the stock agent). Multi-GPU: gradients and
the minibatch KL travel in one all-reduce between two graphs; every rank computes the rate from the averaged KL.
"""

from __future__ import annotations

import time

import torch
import torch.distributed as dist
from rl_games.algos_torch import torch_ext
from rl_games.algos_torch.a2c_continuous import A2CAgent
from rl_games.common import common_losses
from rl_games.common.a2c_common import swap_and_flatten01

from isaacgymenvs.tasks.compile_math import compiler_of
from isaacgymenvs.trainer.graphed.capture import GRAPH_TENSORS, CapturedStep, tensor_attributes
from isaacgymenvs.trainer.graphed.schedule import restore_schedule
from isaacgymenvs.trainer.graphed.stats import (
    DeviceAverageMeter,
    adaptive_lr,
    denormalize,
    normalize,
    update_running_stats,
)


class GraphedA2CAgent(A2CAgent):
    """rl_games `A2CAgent` whose rollout and update run as CUDA graphs (eagerly on the CPU)."""

    def __init__(self, base_name: str, params: dict) -> None:
        lr_schedule = params["config"].get("lr_schedule")  # rl_games clears it on ranks > 0
        super().__init__(base_name, params)
        self._check_supported()
        self.device_ = torch.device(self.ppo_device)
        restore_schedule(self, lr_schedule)  # on every rank (rl_games clears it on ranks > 0)
        self.game_rewards = DeviceAverageMeter(self.value_size, self.games_to_track).to(self.device_)
        self.game_shaped_rewards = DeviceAverageMeter(self.value_size, self.games_to_track).to(self.device_)
        self.game_lengths = DeviceAverageMeter(1, self.games_to_track, scalar=True).to(self.device_)
        # float32 is what the fused CUDA Adam reads; on the CPU the rate stays float64 like rl_games'.
        lr_dtype = torch.float32 if self.device_.type == "cuda" else torch.float64
        self._lr = torch.tensor(float(self.last_lr), dtype=lr_dtype, device=self.device_)
        self._entropy_coef = torch.tensor(float(self.entropy_coef), device=self.device_)  # read by the graphs
        self.optimizer = self._make_optimizer()
        self.capture_seconds = 0.0

    # --- construction ---------------------------------------------------------------------

    def _check_supported(self) -> None:
        """What the network and env imply; config options are refused earlier (config.GRAPHED_REFUSED)."""
        if self.is_rnn or self.num_agents != 1 or self.value_size != 1 or isinstance(self.obs_shape, dict):
            raise ValueError(
                "graphed_a2c_continuous supports one agent, an MLP policy and one value; use a2c_continuous."
            )
        if self.schedule_type not in ("legacy", "standard"):
            raise ValueError(f"schedule_type={self.schedule_type} is unknown to graphed_a2c_continuous.")

    def _make_optimizer(self) -> torch.optim.Adam:
        """rl_games' fused Adam; on CUDA capturable, the learning rate read from a device tensor."""
        cuda = self.device_.type == "cuda"
        return torch.optim.Adam(
            self.model.parameters(),
            lr=self._lr if cuda else float(self.last_lr),
            eps=1e-08,
            weight_decay=self.weight_decay,
            fused=True,
            capturable=cuda,
        )

    def init_tensors(self) -> None:
        super().init_tensors()
        n, h, dev = self.num_actors, self.horizon_length, self.device_
        obs_dim, act = self.obs_shape[0], self.actions_num
        self.buffers = {
            "obses": torch.zeros(h, n, obs_dim, device=dev),
            "dones": torch.zeros(h, n, device=dev),
            "actions": torch.zeros(h, n, act, device=dev),
            "neglogpacs": torch.zeros(h, n, device=dev),
            "values": torch.zeros(h, n, 1, device=dev),
            "mus": torch.zeros(h, n, act, device=dev),
            "sigmas": torch.zeros(h, n, act, device=dev),
            "rewards": torch.zeros(h, n, 1, device=dev),
        }
        self.experience_buffer = None  # rl_games' buffer: replaced by the one above
        self._slot = torch.zeros(1, dtype=torch.long, device=dev)
        self._obs = torch.zeros(n, obs_dim, device=dev)
        self._dones = torch.ones(n, device=dev)
        self._step_in = {
            "rewards": torch.zeros(n, device=dev),
            "dones": torch.zeros(n, dtype=torch.bool, device=dev),
            "time_outs": torch.zeros(n, dtype=torch.bool, device=dev),
        }
        self._env_actions = torch.zeros(n, act, device=dev)
        self._init_dataset(n * h, obs_dim, act)
        bound = lambda: tensor_attributes(self, GRAPH_TENSORS)  # noqa: E731 - checked once per epoch
        self._policy_step = CapturedStep(self._policy_fn, dev, bound=bound, hold=self._task_compiling)
        self._after_env_step = CapturedStep(self._after_env_step_fn, dev, bound=bound, hold=self._task_compiling)
        self._prepare = CapturedStep(self._prepare_fn, dev, bound=bound, hold=self._task_compiling)
        self._minibatch_steps = self._make_minibatch_steps()

    def _init_dataset(self, batch: int, obs_dim: int, act: int) -> None:
        dev, mb = self.device_, self.minibatch_size
        self.ds = {
            "obs": torch.zeros(batch, obs_dim, device=dev),
            "actions": torch.zeros(batch, act, device=dev),
            "old_logp_actions": torch.zeros(batch, device=dev),
            "old_values": torch.zeros(batch, 1, device=dev),
            "returns": torch.zeros(batch, 1, device=dev),
            "advantages": torch.zeros(batch, device=dev),
            "mu": torch.zeros(batch, act, device=dev),
            "sigma": torch.zeros(batch, act, device=dev),
        }
        # rl_games takes minibatches as consecutive slices of the (env-major) batch, no shuffle.
        self._mb_rows = torch.arange(batch, device=dev).reshape(self.num_minibatches, mb)
        self._mb_counter = torch.zeros(1, dtype=torch.long, device=dev)
        total = self.mini_epochs_num * self.num_minibatches
        self._mb_stats = torch.zeros(5, total, device=dev)  # a_loss, c_loss, entropy, b_loss, kl
        if self.multi_gpu:
            self._reduce_buf = torch.zeros(sum(p.numel() for p in self.model.parameters()) + 1, device=dev)

    def _make_minibatch_steps(self) -> list[CapturedStep]:
        """One graph per minibatch step; with multi_gpu two, around the all-reduce."""
        steps = [self._minibatch_fn] if not self.multi_gpu else [self._gradients_fn, self._apply_fn]
        return [CapturedStep(fn, self.device_, hold=self._task_compiling) for fn in steps]

    def _task_compiling(self) -> bool:  # its math compiling in a thread (tasks/compile_math.py): no capture yet
        return (compiler := compiler_of(self.vec_env)) is not None and compiler.running

    # --- rollout ----------------------------------------------------------------------------

    def _evaluate(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(mu, log std, value in return units) of the policy in evaluation mode, as rl_games' rollout."""
        model = self.model
        x = normalize(model.running_mean_std, obs) if self.normalize_input else obs
        mu, logstd, value, _ = model.a2c_network({"obs": x, "is_train": False, "rnn_states": None})
        if self.normalize_value:
            value = denormalize(model.value_mean_std, value)
        return mu, logstd, value

    def _policy_fn(self) -> None:
        """Act on `_obs`; record obs, previous dones and the policy's outputs at `_slot`."""
        with torch.no_grad():
            mu, logstd, value = self._evaluate(self._obs)
            sigma = torch.exp(logstd)
            # = Normal(mu, sigma).sample(), draw for draw; torch.normal(mu, sigma) itself checks
            # sigma >= 0 on the host, which a capture cannot do.
            actions = torch.randn_like(mu) * sigma + mu
            neglogp = self.model.neglogp(actions, mu, sigma, logstd)
            slot = self._slot
            outputs = {"obses": self._obs, "dones": self._dones, "actions": actions, "neglogpacs": neglogp,
                       "values": value, "mus": mu, "sigmas": sigma}  # fmt: skip
            for name, tensor in outputs.items():
                self.buffers[name].index_copy_(0, slot, tensor.unsqueeze(0).to(self.buffers[name].dtype))
            self._env_actions.copy_(self.preprocess_actions(actions))

    def _after_env_step_fn(self) -> None:
        """Shaped reward (+ bootstrap on time-outs) at `_slot`, episode meters, then `_slot += 1`."""
        with torch.no_grad():
            rewards = self._step_in["rewards"].unsqueeze(1)
            shaped = self.rewards_shaper(rewards)
            if self.value_bootstrap:
                values = self.buffers["values"].index_select(0, self._slot).squeeze(0)
                shaped = shaped + self.gamma * values * self._step_in["time_outs"].unsqueeze(1).float()
            self.buffers["rewards"].index_copy_(0, self._slot, shaped.unsqueeze(0))
            self.current_rewards.add_(rewards)
            self.current_shaped_rewards.add_(shaped)
            self.current_lengths.add_(1)
            done = self._step_in["dones"]
            self.game_rewards.update_masked(self.current_rewards, done)
            self.game_shaped_rewards.update_masked(self.current_shaped_rewards, done)
            self.game_lengths.update_masked(self.current_lengths.unsqueeze(1), done)
            not_done = (1.0 - done.float()).unsqueeze(1)
            self.current_rewards.mul_(not_done)
            self.current_shaped_rewards.mul_(not_done)
            self.current_lengths.mul_(not_done.squeeze(1))
            self._dones.copy_(done)
            self._slot.add_(1)

    def play_steps(self) -> dict:
        """One horizon of env steps: two graph replays and the task's own step per env step."""
        step_time = 0.0
        self._slot.zero_()
        self._obs.copy_(self.obs["obs"])
        for _ in range(self.horizon_length):
            self._policy_step()
            start = time.perf_counter()
            obs, rewards, dones, infos = self.vec_env.step(self._env_actions)
            step_time += time.perf_counter() - start
            self._obs.copy_(obs["obs"])
            self._step_in["rewards"].copy_(rewards)
            self._step_in["dones"].copy_(dones)
            self._step_in["time_outs"].copy_(infos["time_outs"])
            self._after_env_step()
            self.algo_observer.process_infos(infos, self._step_in["dones"])  # a mask, not indices
        self.obs = obs
        return {"played_frames": self.batch_size, "step_time": step_time}

    # --- update -----------------------------------------------------------------------------

    def _prepare_fn(self) -> None:
        """GAE over the horizon, then rl_games' `prepare_dataset` into the flat dataset tensors."""
        model, buf = self.model, self.buffers
        with torch.no_grad():
            _, _, last_values = self._evaluate(self._obs)
            advs = self.discount_values(self._dones, last_values, buf["dones"], buf["values"], buf["rewards"])
            returns = advs + buf["values"]
            flat = {
                k: swap_and_flatten01(buf[k]) for k in ("obses", "actions", "neglogpacs", "values", "mus", "sigmas")
            }
            values, returns = flat["values"], swap_and_flatten01(returns)
            advantages = (returns - values).sum(dim=1)
            if self.normalize_value:
                vms = model.value_mean_std
                update_running_stats(vms, values)
                values = normalize(vms, values)
                update_running_stats(vms, returns)
                returns = normalize(vms, returns)
            if self.normalize_advantage:
                advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
            ds = self.ds
            for name, tensor in (("obs", flat["obses"]), ("actions", flat["actions"]),
                                 ("old_logp_actions", flat["neglogpacs"]), ("old_values", values),
                                 ("returns", returns), ("advantages", advantages), ("mu", flat["mus"]),
                                 ("sigma", flat["sigmas"])):  # fmt: skip
                ds[name].copy_(tensor)

    def _minibatch(self) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        rows = self._mb_rows.index_select(0, self._mb_counter % self.num_minibatches).squeeze(0)
        return rows, {k: v.index_select(0, rows) for k, v in self.ds.items()}

    def _losses(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """rl_games' `calc_gradients` forward and losses (same functions, same autocast).

        The input normaliser learns from every minibatch of every mini-epoch: rl_games 1.6.5 sets
        it to eval() after the first mini-epoch, but `train_actor_critic` calls set_train() before
        each minibatch, which switches it back; this agent does what the stock one does.
        """
        model = self.model
        obs = batch["obs"]
        with torch.autocast("cuda", enabled=self.mixed_precision, dtype=torch.bfloat16, cache_enabled=False):
            if self.normalize_input:
                with torch.no_grad():
                    update_running_stats(model.running_mean_std, obs)
                    obs = normalize(model.running_mean_std, obs)
            mu, logstd, values, _ = model.a2c_network({"obs": obs, "is_train": True, "prev_actions": batch["actions"]})
            sigma = torch.exp(logstd)
            entropy = torch.distributions.Normal(mu, sigma, validate_args=False).entropy().sum(dim=-1)
            neglogp = torch.squeeze(model.neglogp(batch["actions"], mu, sigma, logstd))
            a_loss = common_losses.actor_loss(
                batch["old_logp_actions"], neglogp, batch["advantages"], self.ppo, self.e_clip
            )
            c_loss = common_losses.critic_loss(
                model, batch["old_values"], values, self.e_clip, batch["returns"], self.clip_value
            )
            b_loss = self._bounds_loss(mu)
            losses, _ = torch_ext.apply_masks(
                [a_loss.unsqueeze(1), c_loss, entropy.unsqueeze(1), b_loss.unsqueeze(1)], None
            )
            a_loss, c_loss, entropy, b_loss = losses
            loss = (
                a_loss + 0.5 * c_loss * self.critic_coef - entropy * self._entropy_coef + b_loss * self.bounds_loss_coef
            )
        kl = torch_ext.policy_kl(mu.detach(), sigma.detach(), batch["mu"], batch["sigma"], True)
        return loss, a_loss, c_loss, entropy, b_loss, kl, mu.detach(), sigma.detach()

    def _bounds_loss(self, mu: torch.Tensor) -> torch.Tensor:
        if self.bound_loss_type == "regularisation":
            return self.reg_loss(mu)
        if self.bound_loss_type == "bound":
            return self.bound_loss(mu)
        return torch.zeros(mu.shape[0], device=mu.device)

    def _backward(self) -> tuple[torch.Tensor, ...]:
        rows, batch = self._minibatch()
        loss, *stats, mu, sigma = self._losses(batch)
        for param in self.model.parameters():
            param.grad = None
        self.scaler.scale(loss).backward()
        return rows, mu, sigma, stats

    def _step_and_record(self, rows: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor, stats: list) -> None:
        """Clip, step, new learning rate, mu/sigma written back for the next mini-epoch's KL."""
        if self.truncate_grads:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        with torch.no_grad():
            kl = stats[4]
            if self.is_adaptive_lr and self.schedule_type == "legacy":
                self._adapt_lr(kl)
            self.ds["mu"].index_copy_(0, rows, mu.to(self.ds["mu"].dtype))
            self.ds["sigma"].index_copy_(0, rows, sigma.to(self.ds["sigma"].dtype))
            self._mb_stats.index_copy_(
                1, self._mb_counter, torch.stack([s.detach().float().reshape(()) for s in stats]).unsqueeze(1)
            )
            self._mb_counter.add_(1)

    def _minibatch_fn(self) -> None:
        rows, mu, sigma, stats = self._backward()
        self._step_and_record(rows, mu, sigma, stats)

    def _gradients_fn(self) -> None:
        """multi_gpu, before the all-reduce: gradients and the KL packed into one flat tensor."""
        rows, mu, sigma, stats = self._backward()
        self._pending = (rows, mu, sigma, stats)
        flat = [p.grad.reshape(-1) for p in self.model.parameters()] + [stats[4].float().reshape(1)]
        self._reduce_buf.copy_(torch.cat(flat))

    def _apply_fn(self) -> None:
        """multi_gpu, after the all-reduce: averaged gradients and KL back in place, then step."""
        rows, mu, sigma, stats = self._pending
        averaged = self._reduce_buf / self.world_size
        offset = 0
        for param in self.model.parameters():
            param.grad.copy_(averaged[offset : offset + param.numel()].view_as(param.grad))
            offset += param.numel()
        stats = [*stats[:4], averaged[-1]]
        self._step_and_record(rows, mu, sigma, stats)

    def _run_minibatch(self) -> None:
        steps = self._minibatch_steps
        steps[0]()
        if self.multi_gpu:
            dist.all_reduce(self._reduce_buf, op=dist.ReduceOp.SUM)
            steps[1]()

    def _adapt_lr(self, kl: torch.Tensor) -> None:
        """rl_games' adaptive schedule, on the device, from a (rank-averaged) KL."""
        sched = self.scheduler
        self._set_lr(adaptive_lr(self._lr, kl, sched.kl_threshold, sched.min_lr, sched.max_lr))

    def _set_lr(self, lr: torch.Tensor | float) -> None:
        if self.device_.type == "cuda":
            self._lr.copy_(lr) if isinstance(lr, torch.Tensor) else self._lr.fill_(lr)
        else:  # multi_gpu: rl_games' ranks step with rank 0's rate broadcast as a float32 tensor
            self._lr.fill_(float(lr))
            step_lr = float(torch.tensor(float(lr), dtype=torch.float32)) if self.multi_gpu else float(lr)
            for group in self.optimizer.param_groups:
                group["lr"] = step_lr

    def _epoch_schedule(self) -> None:
        """Linear/constant schedules, from the epoch alone. rl_games updates them after every minibatch
        (legacy) or mini-epoch (standard), so the epoch's first one still trains at the previous rate;
        rate and entropy coefficient are device tensors the graphs read (a float would be baked in)."""
        lr, self.entropy_coef = self.scheduler.update(self.last_lr, self.entropy_coef, self.epoch_num, 0, None)
        self._entropy_coef.fill_(float(self.entropy_coef))
        if lr != self.last_lr:
            self.last_lr = lr
            self._set_lr(lr)

    def train_epoch(self) -> tuple:
        for step in self._all_steps():
            step.verify()  # a tensor rebound since capture would leave a graph on the old memory
        self.vec_env.set_train_info(self.frame, self)
        self.set_eval()
        play_start = time.perf_counter()
        batch = self.play_steps()
        play_end = time.perf_counter()
        self.set_train()
        self.curr_frames = batch.pop("played_frames")
        self._prepare()
        self.algo_observer.after_steps()
        self._mb_counter.zero_()
        legacy, by_epoch = self.schedule_type == "legacy", not self.is_adaptive_lr
        for mini_epoch in range(self.mini_epochs_num):
            for i in range(self.num_minibatches):
                self._run_minibatch()
                if by_epoch and legacy and mini_epoch == i == 0:
                    self._epoch_schedule()
            if by_epoch and not legacy and mini_epoch == 0:
                self._epoch_schedule()
            if self.is_adaptive_lr and self.schedule_type == "standard":
                # The recorded KLs are already averaged over ranks (they travel with the gradients).
                self._adapt_lr(self._mb_stats[4].view(self.mini_epochs_num, -1)[mini_epoch].mean())
            self.diagnostics.mini_epoch(self, mini_epoch)
        self.last_lr = float(self._lr)  # the one read of the learning rate per epoch
        update_end = time.perf_counter()
        a, c, ent, b, kl = self._mb_stats.clone()
        kls = [kl.view(self.mini_epochs_num, -1).mean(1)]
        b_losses = [b] if self.bounds_loss_coef is not None else []
        self._report_captures()
        return (batch["step_time"], play_end - play_start, update_end - play_end, update_end - play_start,
                [a], [c], b_losses, [ent], kls, self.last_lr, 1.0)  # fmt: skip

    def _report_captures(self) -> None:
        """One console line once every step is a graph (start-up cost, for whoever times it)."""
        steps = self._all_steps()
        if self.capture_seconds or not all(step.graph is not None for step in steps):
            return
        self.capture_seconds = sum(step.capture_seconds for step in steps)
        print(f"CUDA graphs: {len(steps)} steps captured in {self.capture_seconds:.2f} s", flush=True)

    def _all_steps(self) -> list[CapturedStep]:
        steps = [self._policy_step, self._after_env_step, self._prepare]
        return steps + self._minibatch_steps

    def set_train(self) -> None:
        """Normalisers stay in evaluation mode: their statistics are updated explicitly, in place."""
        self.model.train()
        for name in ("running_mean_std", "value_mean_std"):
            if hasattr(self.model, name):
                getattr(self.model, name).eval()

    # --- checkpoints ------------------------------------------------------------------------

    def get_full_state_weights(self) -> dict:
        """rl_games' checkpoint dict; the optimizer's state as the stock Adam would save it."""
        state = super().get_full_state_weights()
        for group in state["optimizer"]["param_groups"]:
            group["lr"] = float(self.last_lr)  # the device rate as of the last epoch, without a sync
            group["capturable"] = False
        return state

    def set_full_state_weights(self, weights: dict, set_epoch: bool = True) -> None:
        """Load any rl_games checkpoint, then put the device learning rate back into Adam.

        Like the stock agent, training goes on from the configured learning rate (rl_games keeps
        `last_lr` and overwrites the loaded rate after the first minibatch).
        """
        if any(step.graph is not None for step in getattr(self, "_minibatch_steps", [])):
            raise RuntimeError(
                "set_full_state_weights after the graphs were captured would swap Adam's state under them"
            )
        super().set_full_state_weights(weights, set_epoch=set_epoch)
        self._set_lr(float(self.last_lr))
        if self.device_.type == "cuda":
            for group in self.optimizer.param_groups:
                group["lr"] = self._lr
                group["capturable"] = True
            for state in self.optimizer.state.values():
                if "step" in state:
                    state["step"] = state["step"].to(self.device_, torch.float32)

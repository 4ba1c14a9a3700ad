"""One rank of the two-rank CPU check in tests/test_graphed_agent.py (not a test module itself).

rl_games' multi-GPU code asks for NCCL and a `cuda:<local rank>` device; this worker lets the same
code run on CPU ranks: the process group is created with gloo, and the config keeps `device=cpu`
where rl_games would write the CUDA device. Everything else (gradient all-reduce, rank 0's learning
rate broadcast, the schedule cleared on ranks > 0) is rl_games' own and the graphed agent's own.

    RANK=0 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=... python -m tests.two_rank_worker OUT VARIANT...

For each variant it writes OUT/<variant>.rank<R>.pt: both agents' weights and learning rates after
three epochs from the same start.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from isaacgymenvs.config import load_config
from isaacgymenvs.protocol import RunDir
from isaacgymenvs.trainer import graphed
from tests.test_graphed_agent import build_agent

C = "train.params.config."
VARIANTS = {"adaptive": [], "linear": [f"{C}lr_schedule=linear"], "standard": [f"+{C}schedule_type=standard"]}
EPOCHS = 3


class CpuConfig(dict):
    """rl_games' agent config, except that the `cuda:<rank>` device rl_games writes for multi_gpu stays cpu."""

    def __setitem__(self, key, value) -> None:
        super().__setitem__(key, "cpu" if key == "device" and str(value).startswith("cuda") else value)


def init_gloo(backend=None, *args, **kwargs) -> None:
    """rl_games calls init_process_group('nccl', ...) in every agent's constructor."""
    if not dist.is_initialized():
        real_init("gloo", *args, **kwargs)


real_init = dist.init_process_group
dist.init_process_group = init_gloo


def build(cfg, run: RunDir, algo: str):
    return build_agent(cfg, run, algo, wrap_config=lambda config: CpuConfig(config, multi_gpu=True))


def run_variant(name: str, out: Path, rank: int) -> None:
    cfg = load_config(["task=Cartpole", "sim_device=cpu", "rl_device=cpu", "num_envs=32", f"seed={3 + rank}",
                       f"{C}minibatch_size=128", "max_iterations=20", *VARIANTS[name]])  # fmt: skip
    stock = build(cfg, RunDir(out / f"{name}_stock{rank}"), "a2c_continuous")
    new = build(cfg, RunDir(out / f"{name}_new{rank}"), graphed.ALGO_NAME)
    for tensor in stock.model.state_dict().values():  # rank 0's start everywhere (rl_games' train() does this)
        dist.broadcast(tensor, 0)
    new.model.load_state_dict(stock.model.state_dict())
    for agent in (stock, new):
        agent.init_tensors()
        agent.obs = agent.env_reset()
    for epoch in range(EPOCHS):
        for agent in (stock, new):
            torch.manual_seed(100 + epoch + 1000 * rank)  # each rank samples its own actions
            agent.epoch_num += 1
            agent.train_epoch()
    torch.save(
        {
            "stock": stock.model.state_dict(),
            "new": new.model.state_dict(),
            "stock_lr": stock.optimizer.param_groups[0]["lr"],  # rank 0's rate, broadcast
            "new_lr": float(new.last_lr),
            "new_optimizer_lr": float(new.optimizer.param_groups[0]["lr"]),
        },
        out / f"{name}.rank{rank}.pt",
    )


def main() -> None:
    out, names = Path(sys.argv[1]), sys.argv[2:]
    rank = int(os.environ["RANK"])
    for name in names:
        run_variant(name, out, rank)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()

"""The learning-rate schedule of every rank, as rank 0 runs it.

rl_games clears `lr_schedule` on ranks > 0 and broadcasts rank 0's rate after each update. The
graphed agent broadcasts nothing: every rank computes the same rate instead (the adaptive one from
the rank-averaged KL, the linear one from the epoch), so each rank needs the schedule itself. Before,
rank 0 decayed a linear rate while the other ranks kept the initial one and the replicas drifted.
"""

from __future__ import annotations

from rl_games.common import schedulers


def restore_schedule(agent, lr_schedule: str | None) -> None:
    """Give `agent` (built by rl_games, maybe with lr_schedule cleared) the configured scheduler."""
    config = agent.config
    agent.is_adaptive_lr = lr_schedule == "adaptive"
    if agent.is_adaptive_lr and not isinstance(agent.scheduler, schedulers.AdaptiveScheduler):
        agent.scheduler = schedulers.AdaptiveScheduler(config["kl_threshold"])
    elif lr_schedule == "linear" and not isinstance(agent.scheduler, schedulers.LinearScheduler):
        if agent.max_epochs == -1 and agent.max_frames == -1:
            return  # rl_games' own fallback: a constant rate
        by_epochs = agent.max_epochs != -1
        agent.scheduler = schedulers.LinearScheduler(
            float(config["learning_rate"]),
            max_steps=agent.max_epochs if by_epochs else agent.max_frames,
            use_epochs=by_epochs,
            apply_to_entropy=config.get("schedule_entropy", False),
            start_entropy_coef=config.get("entropy_coef"),
        )

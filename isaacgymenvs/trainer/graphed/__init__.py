"""The CUDA-graph PPO agent, registered in rl_games' factories under `graphed_a2c_continuous`.

Select it with `train.params.algo.name` (the default in cfg/train/*PPO.yaml); the stock agent is
`train.params.algo.name=a2c_continuous`. Checkpoints are the same, so either resumes the other's.
"""

from __future__ import annotations

ALGO_NAME = "graphed_a2c_continuous"


def register(runner) -> None:  # rl_games' Runner
    """Add the agent (and rl_games' own continuous player for it) to a Runner, as IsaacGymEnvs adds AMP."""
    from rl_games.algos_torch.players import PpoPlayerContinuous

    from isaacgymenvs.trainer.graphed.agent import GraphedA2CAgent

    runner.algo_factory.register_builder(ALGO_NAME, lambda **kwargs: GraphedA2CAgent(**kwargs))
    runner.player_factory.register_builder(ALGO_NAME, lambda **kwargs: PpoPlayerContinuous(**kwargs))

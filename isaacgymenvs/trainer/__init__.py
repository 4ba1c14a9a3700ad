"""The headless trainer: rl_games PPO on a VecTask. Imports no GUI toolkit."""

"""IsaacGymEnvs-style GPU-parallel robot RL on MuJoCo: train headless, watch live."""

__version__ = "0.1.0"

"""The PPO libraries a run can train with, and what a missing one tells the user.

rl_games is the default and always installed; rsl_rl comes with the extra `.[rsl_rl]`. A run's
library is chosen by `library=` (cfg/library/), named in its train config and in every checkpoint
it publishes, so that the player builds the matching policy.
"""

from __future__ import annotations

from omegaconf import DictConfig

from isaacgymenvs.errors import UserError

LIBRARIES = ("rl_games", "rsl_rl")
DEFAULT_LIBRARY = "rl_games"
EXTRAS = {"rsl_rl": "pip install -e '.[rsl_rl]'"}


def check_library(cfg: DictConfig) -> None:
    """`library=` is known and the train config (train=) is one written for it."""
    if cfg.library not in LIBRARIES:
        raise UserError(f"library={cfg.library} is not offered; use {' or '.join(LIBRARIES)}.")
    train_library = cfg.train.get("library", DEFAULT_LIBRARY) if "train" in cfg else cfg.library
    if train_library != cfg.library:
        raise UserError(
            f"library={cfg.library} but the train config is for {train_library}; drop train= "
            f"(library={cfg.library} picks cfg/train/<Task>PPO{'_rsl_rl' if cfg.library == 'rsl_rl' else ''}.yaml)."
        )


def require(library: str) -> None:
    """One sentence naming the pip command when the library's extra is not installed."""
    if library == DEFAULT_LIBRARY:
        return
    try:
        import rsl_rl  # noqa: F401
        import tensordict  # noqa: F401
    except ImportError:
        raise UserError(f"library={library} needs rsl-rl-lib, which is not installed; {EXTRAS[library]}.") from None


def run_library(saved: DictConfig) -> str:
    """The library of a run from its params/config.yaml (runs from before library= are rl_games')."""
    library = saved.get("library", DEFAULT_LIBRARY)
    return library if library in LIBRARIES else DEFAULT_LIBRARY

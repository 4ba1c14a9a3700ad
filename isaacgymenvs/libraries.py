"""The PPO libraries a run can train with, and what a missing one tells the user.

rl_games is the default and always installed; rsl_rl and skrl come with the extras `.[rsl_rl]` and
`.[skrl]`. A run's
library is chosen by `library=` (cfg/library/), named in its train config and in every checkpoint
it publishes, so that the player builds the matching policy.
"""

from __future__ import annotations

from omegaconf import DictConfig

from isaacgymenvs.errors import UserError

LIBRARIES = ("rl_games", "rsl_rl", "skrl")
DEFAULT_LIBRARY = "rl_games"
EXTRAS = {"rsl_rl": "pip install -e '.[rsl_rl]'", "skrl": "pip install -e '.[skrl]'"}
# What each extra installs (the package pip knows), and the modules a run imports from it.
PACKAGES = {"rsl_rl": "rsl-rl-lib", "skrl": "skrl"}
MODULES = {"rsl_rl": ("rsl_rl", "tensordict"), "skrl": ("skrl", "tqdm")}


def train_file(library: str) -> str:
    """The train config `library=` picks for a task (cfg/library/<library>.yaml)."""
    return "cfg/train/<Task>PPO.yaml" if library == DEFAULT_LIBRARY else f"cfg/train/<Task>PPO_{library}.yaml"


def check_library(cfg: DictConfig) -> None:
    """`library=` is known and the train config (train=) is one written for it."""
    if cfg.library not in LIBRARIES:
        raise UserError(f"library={cfg.library} is not offered; use {', '.join(LIBRARIES[:-1])} or {LIBRARIES[-1]}.")
    train_library = cfg.train.get("library", DEFAULT_LIBRARY) if "train" in cfg else cfg.library
    if train_library != cfg.library:
        raise UserError(
            f"library={cfg.library} but the train config is for {train_library}; drop train= "
            f"(library={cfg.library} picks {train_file(cfg.library)})."
        )


def require(library: str) -> None:
    """One sentence naming the pip command when the library's extra is not installed."""
    import importlib

    if library == DEFAULT_LIBRARY:
        return
    try:
        for module in MODULES[library]:
            importlib.import_module(module)
    except ImportError:
        raise UserError(
            f"library={library} needs {PACKAGES[library]}, which is not installed; {EXTRAS[library]}."
        ) from None


def run_library(saved: DictConfig) -> str:
    """The library of a run from its params/config.yaml (runs from before library= are rl_games')."""
    library = saved.get("library", DEFAULT_LIBRARY)
    return library if library in LIBRARIES else DEFAULT_LIBRARY

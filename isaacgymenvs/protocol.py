"""The files shared by the trainer, the player and the control panel (see docs/protocol.md).

A run directory is `<train_dir>/<prefix>_<YYYY-MM-DD_HH-MM-SS>/` holding `nn/` (checkpoints),
`summaries/` (TensorBoard events) and `params/config.yaml` (the resolved configuration, written
before the first training step). Every process derives paths from this module only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

TIMESTAMP_FORMAT = "%Y-%m-%d_%H-%M-%S"
RUN_NAME_RE = re.compile(r"^(?P<prefix>.+)_(?P<stamp>\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2})$")


@dataclass(frozen=True)
class RunDir:
    """Paths of one run directory."""

    root: Path

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def nn(self) -> Path:
        return self.root / "nn"

    @property
    def summaries(self) -> Path:
        return self.root / "summaries"

    @property
    def params(self) -> Path:
        return self.root / "params"

    @property
    def config_file(self) -> Path:
        return self.params / "config.yaml"


def run_name(prefix: str, when: datetime) -> str:
    """`<prefix>_<YYYY-MM-DD_HH-MM-SS>`."""
    return f"{prefix}_{when.strftime(TIMESTAMP_FORMAT)}"


def run_timestamp(name: str) -> datetime | None:
    """The creation time encoded in a run directory name, or None for a foreign name."""
    match = RUN_NAME_RE.match(name)
    return datetime.strptime(match["stamp"], TIMESTAMP_FORMAT) if match else None


def create_run_dir(train_dir: str | Path, prefix: str, when: datetime | None = None) -> RunDir:
    """Create a new run directory with its sub-directories; never reuses an existing one.

    Two runs started within the same second get consecutive timestamps rather than sharing a
    directory.
    """
    when = (when or datetime.now()).replace(microsecond=0)
    parent = Path(train_dir)
    parent.mkdir(parents=True, exist_ok=True)
    while True:
        root = parent / run_name(prefix, when)
        try:
            root.mkdir()
            break
        except FileExistsError:
            when += timedelta(seconds=1)
    run = RunDir(root)
    for sub in (run.nn, run.summaries, run.params):
        sub.mkdir()
    return run


def write_params(run: RunDir, cfg: DictConfig) -> None:
    """Save the resolved configuration, so a run can be reproduced and played back."""
    OmegaConf.save(cfg, run.config_file, resolve=True)

"""The files shared by the trainer, the player and the control panel (see docs/protocol.md).

A run directory is `<train_dir>/<prefix>_<YYYY-MM-DD_HH-MM-SS>/` holding `nn/` (checkpoints),
`summaries/` (TensorBoard events) and `params/config.yaml` (the resolved configuration, written
before the first training step). The trainer publishes `nn/latest.pth` (an rl_games checkpoint
plus a plain `metadata` dict) and then `nn/latest.json` (the same metadata with the file's size
and sha256), each by atomic replace: readers never see a partial file and need no lock. Every
process derives paths and file formats from this module only.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout
from omegaconf import DictConfig, OmegaConf

from isaacgymenvs.errors import UserError

FORMAT_VERSION = 1
LATEST_CHECKPOINT = "latest.pth"
LATEST_MANIFEST = "latest.json"
TRAINER_LOCK = ".trainer.lock"
# Temp files are hidden and end in .tmp-<pid>-<n>: no reader's *.pth / *.json pattern matches them.
TEMP_GLOB = ".*.tmp-*"

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

    @property
    def latest_checkpoint(self) -> Path:
        return self.nn / LATEST_CHECKPOINT

    @property
    def latest_manifest(self) -> Path:
        return self.nn / LATEST_MANIFEST

    @property
    def trainer_lock(self) -> Path:
        return self.nn / TRAINER_LOCK


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


def config_hash(cfg: DictConfig) -> str:
    """sha256 of the resolved configuration: tells whether two checkpoints come from one setup."""
    return hashlib.sha256(OmegaConf.to_yaml(cfg, resolve=True).encode()).hexdigest()


def acquire_trainer_lock(run: RunDir) -> FileLock:
    """Hold the run's writer lock for the trainer's lifetime; a second trainer is refused."""
    lock = FileLock(run.trainer_lock)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise UserError(
            f"Run directory {run.root} is already being written by another trainer; stop it first."
        ) from None
    return lock


_temp_counter = 0


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Replace `path` with what `write(temp_path)` produces; a reader sees old or new, never a part.

    Temp file in the same directory (so the rename stays on one filesystem), fsync, os.replace,
    then fsync the directory so that the rename itself survives a crash.
    """
    global _temp_counter
    _temp_counter += 1
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{_temp_counter}")
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """`atomic_write` of a bytes object."""
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_stale_temp_files(directory: Path) -> None:
    """Delete temp files a killed writer left behind (called after a successful publish)."""
    for stale in directory.glob(TEMP_GLOB):
        stale.unlink(missing_ok=True)


def file_digest(path: Path) -> tuple[int, str]:
    """(size, sha256 hex) of a file."""
    with open(path, "rb") as f:
        return os.fstat(f.fileno()).st_size, hashlib.file_digest(f, "sha256").hexdigest()


def publish_latest(run: RunDir, save: Callable[[Path], None], metadata: dict[str, Any]) -> None:
    """Atomically publish latest.pth (written by `save(path)`), then latest.json, then clean temps.

    The manifest carries the metadata plus the checkpoint's size and sha256, so that watchers
    learn what changed without loading weights.
    """
    digest: dict[str, Any] = {}

    def save_and_digest(tmp: Path) -> None:
        save(tmp)
        digest["size"], digest["sha256"] = file_digest(tmp)

    atomic_write(run.latest_checkpoint, save_and_digest)
    manifest = {**metadata, "file": LATEST_CHECKPOINT, **digest}
    atomic_write_bytes(run.latest_manifest, json.dumps(manifest, indent=1).encode())
    remove_stale_temp_files(run.nn)


def read_manifest(path: Path) -> dict[str, Any] | None:
    """The manifest at `path`, or None when it is missing, torn, hand-edited or not an object."""
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None

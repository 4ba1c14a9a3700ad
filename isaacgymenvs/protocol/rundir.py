"""Run directories: their layout, names, configuration, writer lock and the paths inside them."""

from __future__ import annotations

import fnmatch
import hashlib
import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

import isaacgymenvs.protocol.runfs as runfs
from isaacgymenvs.errors import UserError
from isaacgymenvs.protocol.files import (
    STALE_TEMP_SECONDS,
    TEMP_GLOB,
    TEMP_PID_RE,
    atomic_write_bytes,
    first_line,
    read_bounded,
    writer_alive,
)

FORMAT_VERSION = 1
LATEST_CHECKPOINT = "latest.pth"
LATEST_MANIFEST = "latest.json"
TRAINER_LOCK = ".trainer.lock"
METRICS_FILE = "metrics.csv"
METRICS_HEADER = "epoch,frame,mean_reward,wall_time\n"
# rsl_rl's own periodic saves: nn/model_<it>.pt, <it> the index of the iteration just finished.
RSL_RL_NAME = re.compile(r"^model_(?P<it>\d{1,12})\.pt$")
# skrl's own saves: nn/agent_<timestep>.pt (<timestep>: env steps per env since training started)
# and nn/best_agent.pt; their epoch is in their metadata (a timestep is rollouts * epoch).
SKRL_NAME = re.compile(r"^(agent_\d{1,15}|best_agent)\.pt$")
CHECKPOINT_FILES = "a .pth file, rsl_rl's model_<it>.pt or skrl's agent_<timestep>.pt or best_agent.pt"


def is_checkpoint_name(name: str) -> bool:
    """A file name the panel lists and the player may show: ours and rl_games' *.pth, rsl_rl's
    model_<it>.pt, skrl's agent_<timestep>.pt and best_agent.pt (hidden temp files never)."""
    if name.startswith("."):
        return False
    return name.endswith(".pth") or RSL_RL_NAME.match(name) is not None or SKRL_NAME.match(name) is not None


def rsl_rl_name_epoch(name: str) -> int | None:
    """The epoch (finished iterations, counted as our epochs are) of rsl_rl's model_<it>.pt: it + 1."""
    named = RSL_RL_NAME.match(name)
    return None if named is None else int(named["it"]) + 1


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

    @property
    def metrics_file(self) -> Path:
        return self.root / METRICS_FILE


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
    text = OmegaConf.to_yaml(cfg, resolve=True)
    atomic_write_bytes(run.config_file, text.encode(), root=run.root)


CONFIG_MAX_BYTES = 1024 * 1024  # the resolved config is ~10 KB


def read_params(run: RunDir) -> DictConfig:
    """The run's params/config.yaml, read like any file another process wrote: a FIFO or a huge
    file raises UnreadableFile (never blocks); a missing one FileNotFoundError; bad YAML ValueError."""
    text = read_bounded(run.config_file, CONFIG_MAX_BYTES, run.root).decode("utf-8", "replace")
    try:
        cfg = OmegaConf.create(text)
    except Exception as err:  # yaml and omegaconf raise their own types
        raise ValueError(f"{run.config_file.name} is not a YAML mapping ({first_line(err)})") from None
    if not isinstance(cfg, DictConfig):
        raise ValueError(f"{run.config_file.name} is not a YAML mapping")
    return cfg


def config_hash(cfg: DictConfig) -> str:
    """sha256 of the resolved configuration: tells whether two checkpoints come from one setup."""
    return hashlib.sha256(OmegaConf.to_yaml(cfg, resolve=True).encode()).hexdigest()


def acquire_trainer_lock(run: RunDir) -> runfs.RunLock:
    """Hold the run's writer lock for the trainer's lifetime; a second trainer is refused."""
    lock = runfs.RunLock(run.root, run.trainer_lock)
    if not lock.acquire(blocking=False):
        raise UserError(
            f"Run directory {run.root} is already being written by another trainer; stop it first."
        ) from None
    return lock


def clean_stale_temp_files(run: RunDir, now: float | None = None) -> int:
    """Remove temp files of dead writers in the run directory and nn/; returns how many.

    Called whenever a run is opened for writing (trainer) or following (player, panel): a killed
    publisher's temps would otherwise stay forever, since a restarted trainer makes a new run. A
    temp whose writer still runs on this machine is left alone unless it is hours old. Listed and
    removed below the run without following links (runfs).
    """
    now = time.time() if now is None else now
    removed = 0
    for directory in (run.root, run.nn):
        try:
            listed = runfs.scandir_in(run.root, directory)
        except (OSError, ValueError):
            continue
        for name, st in listed:
            if not fnmatch.fnmatch(name, TEMP_GLOB):
                continue
            match = TEMP_PID_RE.search(name)
            try:
                age = now - st.st_mtime
                if (match and not writer_alive(int(match["pid"]))) or age > STALE_TEMP_SECONDS:
                    runfs.unlink_in(run.root, Path(directory) / name)
                    removed += 1
            except OSError:
                continue  # gone already, or not ours to remove
    return removed


EXPERIMENT_MAX_CHARS = 100
# A run directory is '<experiment>_<YYYY-MM-DD_hh-mm-ss>' (20 bytes more) and file systems allow 255
# bytes a name: 64 emoji (256 bytes, within 100 characters) failed with 'File name too long'.
EXPERIMENT_MAX_BYTES = 200


def check_experiment_name(name: object) -> None:
    """An experiment is a name (a run-directory prefix or part of a run name), never a path.

    'experiment=../x' would otherwise make or follow a run directory outside train_dir; one too
    long in bytes would make a directory name the file system refuses.
    """
    if not isinstance(name, str):
        raise UserError(f"experiment={name} must be a name, e.g. experiment=ant_flat.")
    size = len(name.encode("utf-8", "surrogatepass"))
    if size > EXPERIMENT_MAX_BYTES and len(name) <= EXPERIMENT_MAX_CHARS:
        raise UserError(
            f"experiment={name[:20]}... is {size} bytes in UTF-8; a run name must fit the file system's "
            f"255-byte limit, so at most {EXPERIMENT_MAX_BYTES} bytes (e.g. 100 ASCII characters or 50 emoji)."
        )
    bad = "/" in name or "\\" in name or "\x00" in name or name.startswith(".") or len(name) > EXPERIMENT_MAX_CHARS
    if bad:
        raise UserError(
            f"experiment={name[:EXPERIMENT_MAX_CHARS]!r} must be a name, not a path: at most "
            f"{EXPERIMENT_MAX_CHARS} characters, no '/' or '\\', not starting with '.'."
        )


MAX_NAME_BYTES = 1024  # a checkpoint path relative to the run; real ones are < 100


def checkpoint_in_run(run: RunDir, relative: object) -> Path | None:
    """The checkpoint file (`is_checkpoint_name`) `relative` names inside the run directory, or None
    if it names no such path.

    Lexical: rejects non-strings, over-long names, absolute paths and '..' escapes. Links are not
    resolved here (a check that resolves can be raced); every open below the run refuses them
    (runfs), so the returned path can only be read inside the run.
    """
    if not isinstance(relative, str) or not relative or Path(relative).is_absolute():
        return None
    if len(relative.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        return None
    try:
        parts = runfs.parts_below(run.root, relative)
    except ValueError:
        return None
    path = run.root.joinpath(*parts)
    return path if is_checkpoint_name(path.name) else None


def output_dir_in_run(run: RunDir, name: str) -> Path:
    """`<run>/<name>` for the player's outputs (videos/, eval/), created if needed; UserError if it
    is, or leads through, a link (the player writes nothing outside the run; its writes there
    pass `root=run.root`, so a link put there later is refused too)."""
    path = run.root / name
    try:
        runfs.make_dirs_in(run.root, path)
    except runfs.LinkRefused:
        why = "is a symbolic link or not a directory; remove it (nothing is written through it)"
        raise UserError(f"{path} {why}.") from None
    return path

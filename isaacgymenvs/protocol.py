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
import time
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
METRICS_FILE = "metrics.csv"
METRICS_HEADER = "epoch,frame,mean_reward,wall_time\n"
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


# --- experiments: which run directory a player or panel follows ------------------------------


def list_runs(train_dir: str | Path) -> list[RunDir]:
    """Run directories under `train_dir`, newest first (timestamp in the name, else ctime).

    Never sorted by plain name: 'Ant_ep_99' after 'Ant_ep_1000' is the classic trap.
    """
    parent = Path(train_dir)
    if not parent.is_dir():
        return []

    def created(path: Path) -> float:
        stamp = run_timestamp(path.name)
        return stamp.timestamp() if stamp else path.stat().st_ctime

    runs = [p for p in parent.iterdir() if p.is_dir() and (p / "nn").is_dir()]
    return [RunDir(p) for p in sorted(runs, key=created, reverse=True)]


@dataclass(frozen=True)
class RunMatch:
    """The run `experiment=` chose, how it matched, and every other run that matched too."""

    run: RunDir
    how: str  # "exact", "prefix", "starts with", "starts with (any case)" or "contains (any case)"
    others: tuple[RunDir, ...]

    @property
    def exact(self) -> bool:
        """An exact run name never switches to another run; a partial one follows the newest."""
        return self.how == "exact"

    def describe(self, experiment: str) -> str:
        """One line for the console: the run chosen, why, and how many others matched."""
        if self.exact:
            return f"run {self.run.name}"
        why = {
            "prefix": f"newest run named {experiment}_<time>",
            "starts with": f"newest run whose name starts with '{experiment}'",
            "starts with (any case)": f"newest run whose name starts with '{experiment}' in any case",
            "contains (any case)": f"newest run whose name contains '{experiment}' (no name starts with it)",
        }[self.how]
        others = f"{len(self.others)} other run{'s' if len(self.others) != 1 else ''} matched"
        shown = ", ".join(r.name for r in self.others[:3]) + (", ..." if len(self.others) > 3 else "")
        return f"run {self.run.name} ({why}; {others}{': ' + shown if shown else ''})"


def _match_tiers(experiment: str) -> list[tuple[str, Callable[[str], bool]]]:
    """The matching rules, best first (see docs/protocol.md)."""
    low = experiment.lower()

    def prefix(name: str) -> bool:
        match = RUN_NAME_RE.match(name)
        return match is not None and match["prefix"] == experiment

    return [
        ("prefix", prefix),
        ("starts with", lambda name: name.startswith(experiment)),
        ("starts with (any case)", lambda name: name.lower().startswith(low)),
        ("contains (any case)", lambda name: low in name.lower()),
    ]


def match_experiment(
    train_dir: str | Path, experiment: str, usable: Callable[[RunDir], bool] = lambda run: True
) -> RunMatch | None:
    """The run `experiment` names: an exact run name, else the newest run of the best matching rule.

    Rules, best first: the name is `<experiment>_<timestamp>` (what `experiment=X` in training
    creates); the name starts with `experiment`; starts with it in any case; contains it in any
    case. Newest means the timestamp in the name, never string order. `usable` filters runs that
    are not ready (a player needs params/config.yaml).
    """
    exact = RunDir(Path(train_dir) / experiment)
    if experiment and "/" not in experiment and exact.nn.is_dir() and usable(exact):
        return RunMatch(exact, "exact", ())
    runs = [r for r in list_runs(train_dir) if usable(r)]
    matched = [r for r in runs if experiment.lower() in r.name.lower()]
    for how, rule in _match_tiers(experiment):
        chosen = next((r for r in runs if rule(r.name)), None)
        if chosen is not None:
            return RunMatch(chosen, how, tuple(r for r in matched if r != chosen))
    return None


def resolve_experiment(train_dir: str | Path, experiment: str) -> RunDir:
    """The run `experiment` names (see `match_experiment`); a one-sentence UserError if none."""
    runs = list_runs(train_dir)
    recent = ", ".join(r.name for r in runs[:5]) or f"none in {train_dir}/"
    if not experiment:
        raise UserError(f"Play mode needs experiment=<run name or part of it>; most recent runs: {recent}.")
    match = match_experiment(train_dir, experiment)
    if match is None:
        raise UserError(f"No run in {train_dir}/ matches experiment={experiment}; candidates: {recent}.")
    return match.run


# --- the state file: what the player should show (written by the panel) ----------------------

STATE_FILE = ".checkpoint_state.json"
STATUS_FILE = ".player_status.json"
MODE_AUTO, MODE_MANUAL = "auto", "manual"


@dataclass(frozen=True)
class CheckpointState:
    """`auto`: follow nn/latest.pth; `manual`: the checkpoint at `checkpoint` (relative to the run)."""

    mode: str = MODE_AUTO
    checkpoint: str | None = None
    seq: int = 0


def state_file(run: RunDir) -> Path:
    return run.root / STATE_FILE


def status_file(run: RunDir) -> Path:
    return run.root / STATUS_FILE


def checkpoint_in_run(run: RunDir, relative: object) -> Path | None:
    """The .pth file `relative` names inside the run directory, or None if it points elsewhere.

    Rejects non-strings, absolute paths, '..' escapes and symlinks leading out of the run.
    """
    if not isinstance(relative, str) or not relative or "\x00" in relative or Path(relative).is_absolute():
        return None
    root = run.root.resolve()
    try:
        path = (root / relative).resolve()
    except (OSError, RuntimeError, ValueError):
        return None
    if path.suffix != ".pth" or not path.is_relative_to(root):
        return None
    return path


def read_state(run: RunDir) -> tuple[CheckpointState | None, str | None]:
    """(state, None) for a valid state file; (None, None) when absent; (None, why) when unusable.

    A missing file means auto. Anything malformed (empty, torn, wrong types, unknown mode, a path
    outside the run) is reported and ignored by the caller: never a crash, never a foreign load.
    """
    path = state_file(run)
    try:
        raw = path.read_text()
    except FileNotFoundError:
        return None, None
    except (OSError, UnicodeDecodeError) as err:
        return None, f"cannot read {path.name}: {err}"
    try:
        value = json.loads(raw)
    except ValueError:
        return None, f"{path.name} is not valid JSON"
    if not isinstance(value, dict):
        return None, f"{path.name} is not a JSON object"
    mode, seq, checkpoint = value.get("mode"), value.get("seq", 0), value.get("checkpoint")
    if mode not in (MODE_AUTO, MODE_MANUAL):
        return None, f"{path.name} has unknown mode {str(mode)[:40]!r} (expected 'auto' or 'manual')"
    if not isinstance(seq, int) or isinstance(seq, bool):
        return None, f"{path.name} has a non-integer seq"
    if mode == MODE_MANUAL and checkpoint_in_run(run, checkpoint) is None:
        return None, f"{path.name} names {str(checkpoint)[:80]!r}, which is not a .pth file inside the run directory"
    return CheckpointState(mode, checkpoint if mode == MODE_MANUAL else None, seq), None


def write_state(run: RunDir, mode: str, checkpoint: str | None = None) -> CheckpointState:
    """Write the state file atomically under a lock; seq increases with every write."""
    if mode not in (MODE_AUTO, MODE_MANUAL):
        raise ValueError(f"unknown mode {mode!r}")
    if mode == MODE_MANUAL and checkpoint_in_run(run, checkpoint) is None:
        raise ValueError(f"{checkpoint!r} is not a .pth file inside {run.root}")
    with FileLock(run.root / f"{STATE_FILE}.lock"):
        previous, _ = read_state(run)
        state = CheckpointState(
            mode, checkpoint if mode == MODE_MANUAL else None, (previous.seq if previous else 0) + 1
        )
        payload = {"mode": state.mode, "checkpoint": state.checkpoint, "seq": state.seq, "written": time.time()}
        atomic_write_bytes(state_file(run), json.dumps(payload, indent=1).encode())
    return state


def write_status(run: RunDir, status: dict[str, Any]) -> None:
    """The player's report of what it shows (panel reads it); includes a heartbeat time."""
    atomic_write_bytes(status_file(run), json.dumps({**status, "heartbeat": time.time()}, indent=1).encode())


def read_status(run: RunDir) -> dict[str, Any] | None:
    return read_manifest(status_file(run))


# --- checkpoints: what a file holds, checked before any weight is used ----------------------


@dataclass(frozen=True)
class CheckpointInfo:
    """A checkpoint that loaded safely and fits the expected task and shapes."""

    path: Path
    model: dict[str, Any]
    epoch: int | None
    frame: int | None
    mean_reward: float | None
    task: str | None


class CheckpointRejected(Exception):
    """A checkpoint that cannot be used; the message says why in one sentence."""


COMPILED_PREFIX = "_orig_mod."
# rl_games' periodic files: last_<Task>_ep_<N>_rew_<R>.pth, where R is printed from a float or a
# one-element array (`rew__-10.04_`); the reward of that epoch is only in the name.
RL_GAMES_NAME = re.compile(r"_ep_(?P<epoch>\d+)_rew_+(?P<reward>-?[\d.]+(?:e[-+]?\d+)?)_*\.pth$")
# rl_games' "best so far" value before any episode finished.
RL_GAMES_NO_REWARD = -1e9


def checkpoint_epoch_hint(path: Path) -> int | None:
    """A checkpoint's epoch without loading it: from rl_games' file name or, for latest.pth, latest.json."""
    if path.name == LATEST_CHECKPOINT:
        epoch = (read_manifest(path.with_name(LATEST_MANIFEST)) or {}).get("epoch")
        return epoch if isinstance(epoch, int) and not isinstance(epoch, bool) else None
    return rl_games_name_fields(path.name)[0]


def rl_games_name_fields(name: str) -> tuple[int | None, float | None]:
    """(epoch, mean reward) from an rl_games periodic checkpoint's file name; Nones for other names."""
    named = RL_GAMES_NAME.search(name)
    if named is None:
        return None, None
    try:
        return int(named["epoch"]), float(named["reward"])
    except ValueError:
        return int(named["epoch"]), None


def plain_model_keys(model: dict[str, Any]) -> dict[str, Any]:
    """The model's state dict with the keys of the uncompiled module.

    rl_games' `torch_compile` wraps the model, so its state dict (and rl_games' own .pth saves)
    prefix every key with `_orig_mod.`; checkpoints we publish never carry it, and readers accept
    both.
    """
    return {k.removeprefix(COMPILED_PREFIX): v for k, v in model.items()}


def load_checkpoint(path: Path, task: str, num_obs: int, num_actions: int) -> CheckpointInfo:
    """Load with torch.load(weights_only=True) (no code from the file runs) and check it fits.

    Accepts our latest.pth (with metadata) and rl_games' own checkpoints (shapes inferred).
    """
    import torch

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointRejected(f"{path.name} does not exist") from None
    except Exception as err:  # noqa: BLE001 - torn zip, EOF, pickle refusal: all one message
        first = str(err).strip().splitlines()[0][:120] if str(err).strip() else type(err).__name__
        raise CheckpointRejected(f"{path.name} is torn or not a checkpoint ({first})") from None
    model = ckpt.get("model") if isinstance(ckpt, dict) else None
    if not isinstance(model, dict) or not all(isinstance(v, torch.Tensor) for v in model.values()):
        raise CheckpointRejected(f"{path.name} holds no rl_games model weights")
    model = plain_model_keys(model)
    meta = ckpt.get("metadata") if isinstance(ckpt.get("metadata"), dict) else {}
    if meta.get("task") not in (None, task):
        raise CheckpointRejected(f"{path.name} belongs to task {meta['task']}, not {task}")
    obs = model.get("running_mean_std.running_mean")
    mu = model.get("a2c_network.mu.weight")
    shape = (obs.shape[0] if obs is not None else None, mu.shape[0] if mu is not None else None)
    if shape != (num_obs, num_actions):
        raise CheckpointRejected(
            f"{path.name} has {shape[0]} observations and {shape[1]} actions; {task} needs {num_obs} and {num_actions}"
        )

    def number(key: str, cast: type) -> Any:
        value = meta.get(key, ckpt.get(key))
        return cast(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    reward = _reward(path, meta, ckpt)
    return CheckpointInfo(path, model, number("epoch", int), number("frame", int), reward, meta.get("task"))


def _reward(path: Path, meta: dict[str, Any], ckpt: dict[str, Any]) -> float | None:
    """The training reward a checkpoint stands for: our metadata, else the one in rl_games' file name,
    else rl_games' best-so-far (which is the reward of its best file, nn/<Task>.pth)."""
    for value in (meta.get("mean_reward"), rl_games_name_fields(path.name)[1], ckpt.get("last_mean_rewards")):
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > RL_GAMES_NO_REWARD:
            return float(value)
    return None


# --- metrics.csv: one line per epoch, appended by the trainer (reward curve for the panel) ----


def append_metrics(run: RunDir, epoch: int, frame: int, mean_reward: float | None, wall_time: float) -> None:
    """Append one epoch; a line is written whole, so readers see complete lines plus maybe a tail."""
    new = not run.metrics_file.exists()
    reward = "" if mean_reward is None else f"{mean_reward:.6g}"
    with open(run.metrics_file, "a") as f:
        f.write((METRICS_HEADER if new else "") + f"{epoch},{frame},{reward},{wall_time:.3f}\n")


def read_metrics(run: RunDir) -> list[tuple[int, int, float]]:
    """(epoch, frame, mean_reward) rows with a reward; malformed or partial lines are skipped."""
    try:
        lines = run.metrics_file.read_text().splitlines()
    except (OSError, UnicodeDecodeError):
        return []
    rows = []
    for line in lines[1:]:
        parts = line.split(",")
        if len(parts) != 4 or not parts[2]:
            continue
        try:
            rows.append((int(parts[0]), int(parts[1]), float(parts[2])))
        except ValueError:
            continue
    return rows

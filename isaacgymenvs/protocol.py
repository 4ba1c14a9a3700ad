"""The files shared by the trainer, the player and the control panel (see docs/protocol.md).

A run directory is `<train_dir>/<prefix>_<YYYY-MM-DD_HH-MM-SS>/` holding `nn/` (checkpoints),
`summaries/` (TensorBoard events) and `params/config.yaml` (the resolved configuration, written
before the first training step). The trainer publishes `nn/latest.pth` (an rl_games checkpoint
plus a plain `metadata` dict) and then `nn/latest.json` (the same metadata with the file's size
and sha256), each by atomic replace: readers never see a partial file and need no lock. Every
process derives paths and file formats from this module only.
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import re
import stat
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


CONFIG_MAX_BYTES = 1024 * 1024  # the resolved config is ~10 KB


def read_params(run: RunDir) -> DictConfig:
    """The run's params/config.yaml, read like any file another process wrote: a FIFO or a huge
    file raises UnreadableFile (never blocks); a missing one FileNotFoundError; bad YAML ValueError."""
    text = read_bounded(run.config_file, CONFIG_MAX_BYTES).decode("utf-8", "replace")
    try:
        cfg = OmegaConf.create(text)
    except Exception as err:  # noqa: BLE001 - yaml and omegaconf raise their own types
        raise ValueError(f"{run.config_file.name} is not a YAML mapping ({first_line(err)})") from None
    if not isinstance(cfg, DictConfig):
        raise ValueError(f"{run.config_file.name} is not a YAML mapping")
    return cfg


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


TEMP_PID_RE = re.compile(r"\.tmp-(?P<pid>\d+)-\d+$")
# A temp file lives for the milliseconds of one write; one this old has no writer any more, even
# if its pid (maybe of another host on a shared filesystem) happens to be alive here.
STALE_TEMP_SECONDS = 600.0


def _writer_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return pid > 0  # exists but belongs to someone else (or an absurd pid: treat as foreign)
    return True


def clean_stale_temp_files(run: RunDir, now: float | None = None) -> int:
    """Remove temp files of dead writers in the run directory and nn/; returns how many.

    Called whenever a run is opened for writing (trainer) or following (player, panel): a killed
    publisher's temps would otherwise stay forever, since a restarted trainer makes a new run. A
    temp whose writer still runs on this machine is left alone unless it is hours old.
    """
    now = time.time() if now is None else now
    removed = 0
    for directory in (run.root, run.nn):
        try:
            candidates = list(directory.glob(TEMP_GLOB))
        except OSError:
            continue
        for path in candidates:
            match = TEMP_PID_RE.search(path.name)
            try:
                age = now - path.lstat().st_mtime
                if (match and not _writer_alive(int(match["pid"]))) or age > STALE_TEMP_SECONDS:
                    path.unlink()
                    removed += 1
            except OSError:
                continue  # gone already, or not ours to remove
    return removed


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
    # Only dead writers' temps: this process's other writer (rl_games' own saves) may be mid-write.
    clean_stale_temp_files(run)


# --- reading files another process (or a hostile user) wrote --------------------------------

JSON_MAX_BYTES = 64 * 1024  # state/status/manifest files are a few hundred bytes
JSON_MAX_DEPTH = 16  # ours are 2 deep; json's recursion would die at ~1000 levels
METRICS_MAX_BYTES = 64 * 1024 * 1024  # ~1M epochs of metrics.csv
CHECKPOINT_MAX_BYTES = 2 * 1024**3  # task MLPs are a few MB; refuse before torch maps a monster


class UnreadableFile(OSError):
    """A file that is not a regular file, too large or unreadable; the message says which."""


def open_regular_file(path: Path, max_bytes: int, follow_links: bool = True) -> int:
    """A read-only fd of `path` if it is a regular file of at most `max_bytes`, else UnreadableFile.

    O_NONBLOCK: opening a FIFO (or a device) that someone put under a watched name must not block
    the reader until a writer appears; the fstat afterwards refuses it. Without `follow_links` a
    symlink in the last component is refused (O_NOFOLLOW): the run's own small files are replaced
    by rename, never linked, so a link there can only lead somewhere we must not read.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    if not follow_links:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise
    except OSError as err:
        if err.errno == errno.ELOOP and not follow_links:
            raise UnreadableFile(f"{path.name} is a symbolic link, which is not followed") from None
        raise UnreadableFile(f"cannot open {path.name} ({err.strerror or err})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnreadableFile(f"{path.name} is not a regular file")
        if st.st_size > max_bytes:
            raise UnreadableFile(f"{path.name} is {st.st_size} bytes, more than the {max_bytes} allowed")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_bounded(path: Path, max_bytes: int) -> bytes:
    """The bytes of a regular, non-symlink file of at most `max_bytes` (FileNotFoundError if absent).

    Never blocks on special files, never follows a link out of the run, and never reads more than
    `max_bytes` + 1, even if the file grows while it is read.
    """
    fd = open_regular_file(path, max_bytes, follow_links=False)
    with os.fdopen(fd, "rb") as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise UnreadableFile(f"{path.name} grew beyond the {max_bytes} bytes allowed")
    return data


def json_depth(text: str) -> int:
    """Deepest nesting of [ and { outside strings: lets a reader refuse deep JSON before parsing."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def parse_json_object(raw: bytes, name: str) -> tuple[dict[str, Any] | None, str | None]:
    """(object, None) or (None, why): bytes from disk to a JSON object, refusing deep nesting first."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None, f"{name} is not UTF-8 text"
    if json_depth(text) > JSON_MAX_DEPTH:
        return None, f"{name} is nested deeper than {JSON_MAX_DEPTH} levels"
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None, f"{name} is not valid JSON"
    if not isinstance(value, dict):
        return None, f"{name} is not a JSON object"
    return value, None


def read_json_object(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """(object, None); (None, None) when absent; (None, why) when unusable. Never blocks or raises."""
    try:
        raw = read_bounded(path, JSON_MAX_BYTES)
    except FileNotFoundError:
        return None, None
    except UnreadableFile as err:
        return None, str(err)
    except OSError as err:
        return None, f"cannot read {path.name} ({err.strerror or err})"
    return parse_json_object(raw, path.name)


def read_manifest(path: Path) -> dict[str, Any] | None:
    """The manifest at `path`, or None when it is missing, torn, hand-edited, hostile or not an object."""
    return read_json_object(path)[0]


# --- experiments: which run directory a player or panel follows ------------------------------


EXPERIMENT_MAX_CHARS = 100


def check_experiment_name(name: object) -> None:
    """An experiment is a name (a run-directory prefix or part of a run name), never a path.

    'experiment=../x' would otherwise make or follow a run directory outside train_dir.
    """
    if not isinstance(name, str):
        raise UserError(f"experiment={name} must be a name, e.g. experiment=ant_flat.")
    bad = "/" in name or "\\" in name or "\x00" in name or name.startswith(".") or len(name) > EXPERIMENT_MAX_CHARS
    if bad:
        raise UserError(
            f"experiment={name[:EXPERIMENT_MAX_CHARS]!r} must be a name, not a path: at most "
            f"{EXPERIMENT_MAX_CHARS} characters, no '/' or '\\', not starting with '.'."
        )


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


MAX_NAME_BYTES = 1024  # a checkpoint path relative to the run; real ones are < 100


def checkpoint_in_run(run: RunDir, relative: object) -> Path | None:
    """The .pth file `relative` names inside the run directory, or None if it points elsewhere.

    Rejects non-strings, over-long names, absolute paths, '..' escapes and symlinks leading out of
    the run. The result is fully resolved, so opening it follows no link.
    """
    if not isinstance(relative, str) or not relative or "\x00" in relative or Path(relative).is_absolute():
        return None
    if len(relative.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        return None
    root = run.root.resolve()
    try:
        path = (root / relative).resolve()
    except (OSError, RuntimeError, ValueError):
        return None
    if path.suffix != ".pth" or not path.is_relative_to(root):
        return None
    return path


def describe_bad_checkpoint_name(run: RunDir, relative: object) -> str:
    """Why `relative` cannot be shown: outside the run, too long, missing or not a regular file."""
    shown = repr(relative)[:80]
    if isinstance(relative, str) and len(relative.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        return f"names a checkpoint path of {len(relative)} characters (at most {MAX_NAME_BYTES} bytes)"
    path = checkpoint_in_run(run, relative)
    if path is None:
        return f"names {shown}, which is not a .pth file inside the run directory"
    try:
        st = os.stat(path)
    except OSError:
        return f"names {shown}, which does not exist"
    if not stat.S_ISREG(st.st_mode):
        return f"names {shown}, which is not a regular file"
    return ""


def _state_from_object(run: RunDir, value: dict[str, Any], name: str) -> tuple[CheckpointState | None, str | None]:
    mode, seq, checkpoint = value.get("mode"), value.get("seq", 0), value.get("checkpoint")
    if mode not in (MODE_AUTO, MODE_MANUAL):
        return None, f"{name} has unknown mode {str(mode)[:40]!r} (expected 'auto' or 'manual')"
    if not isinstance(seq, int) or isinstance(seq, bool):
        return None, f"{name} has a non-integer seq"
    if mode == MODE_MANUAL:
        problem = describe_bad_checkpoint_name(run, checkpoint)
        if problem:
            return None, f"{name} {problem}"
    return CheckpointState(mode, checkpoint if mode == MODE_MANUAL else None, seq), None


def read_state(run: RunDir) -> tuple[CheckpointState | None, str | None]:
    """(state, None) for a valid state file; (None, None) when absent; (None, why) when unusable.

    A missing file means auto. Anything malformed (empty, torn, wrong types, unknown mode, a path
    outside the run, a checkpoint that does not exist, a FIFO, a huge or deeply nested file) is
    reported and ignored by the caller: never a crash, never a block, never a foreign load.
    """
    path = state_file(run)
    value, problem = read_json_object(path)
    if value is None:
        return None, problem
    return _state_from_object(run, value, path.name)


def _previous_seq(run: RunDir) -> int:
    """The seq in the state file even when the rest of it is unusable, so seq never goes back."""
    value, _ = read_json_object(state_file(run))
    seq = value.get("seq") if value else None
    return seq if isinstance(seq, int) and not isinstance(seq, bool) and seq >= 0 else 0


def write_state(run: RunDir, mode: str, checkpoint: str | None = None) -> CheckpointState:
    """Write the state file atomically under a lock; seq increases with every write."""
    if mode not in (MODE_AUTO, MODE_MANUAL):
        raise ValueError(f"unknown mode {mode!r}")
    if mode == MODE_MANUAL and checkpoint_in_run(run, checkpoint) is None:
        raise ValueError(f"{checkpoint!r} is not a .pth file inside {run.root}")
    with FileLock(run.root / f"{STATE_FILE}.lock"):
        state = CheckpointState(mode, checkpoint if mode == MODE_MANUAL else None, _previous_seq(run) + 1)
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


OBS_MEAN_KEY = "running_mean_std.running_mean"
POLICY_HEAD_KEY = "a2c_network.mu.weight"


def _numeric_numpy_scalar(dtype: object, data: object = None) -> int | float | complex:
    """Stand-in for numpy's scalar unpickler: numbers only, returned as plain Python numbers.

    rl_games stores `last_mean_rewards` as a numpy float32, which weights_only loading refuses;
    allowing numpy's own constructor would also allow object-dtype scalars built from raw bytes.
    """
    import pickle

    import numpy as np

    if not isinstance(dtype, np.dtype) or dtype.kind not in "biufc" or not isinstance(data, bytes):
        raise pickle.UnpicklingError(f"a numpy scalar of dtype {str(dtype)[:40]} is not allowed")
    if len(data) != dtype.itemsize:
        raise pickle.UnpicklingError("a numpy scalar with the wrong number of bytes")
    return np.frombuffer(data, dtype=dtype, count=1)[0].item()


def _numeric_numpy_globals() -> list[Any]:
    import numpy as np

    dtypes = [
        getattr(np.dtypes, name)
        for name in dir(getattr(np, "dtypes", None))
        if name.endswith("DType") and name not in ("ObjectDType", "VoidDType", "StrDType", "BytesDType")
    ]
    scalar = [(_numeric_numpy_scalar, f"{m}.multiarray.scalar") for m in ("numpy.core", "numpy._core")]
    return [*scalar, np.dtype, *dtypes]


def torch_load_weights(source: Any) -> Any:
    """torch.load(weights_only=True) that also accepts numpy number scalars; no code can run."""
    import torch

    with torch.serialization.safe_globals(_numeric_numpy_globals()):
        return torch.load(source, map_location="cpu", weights_only=True)


def needs_full_unpickling(err: BaseException) -> bool:
    """Whether a load failed because the file holds objects weights_only loading refuses."""
    import pickle

    return isinstance(err, pickle.UnpicklingError) and "weights only load failed" in str(err).lower()


def read_checkpoint_dict(path: Path) -> dict[str, Any]:
    """torch.load(weights_only=True) of a regular file of bounded size; CheckpointRejected otherwise.

    No code from the file runs; a FIFO, a device or a monster file is refused before torch sees it.
    """
    try:
        fd = open_regular_file(path, CHECKPOINT_MAX_BYTES)
    except FileNotFoundError:
        raise CheckpointRejected(f"{path.name} does not exist") from None
    except UnreadableFile as err:
        raise CheckpointRejected(str(err)) from None
    try:
        with os.fdopen(fd, "rb") as f:
            ckpt = torch_load_weights(f)
    except Exception as err:  # noqa: BLE001 - torn zip, EOF, pickle refusal: all one message
        raise CheckpointRejected(f"{path.name} is torn or not a checkpoint ({first_line(err)})") from None
    if not isinstance(ckpt, dict):
        raise CheckpointRejected(f"{path.name} holds no rl_games model weights")
    return ckpt


def first_line(err: BaseException) -> str:
    """The first line of an exception's message (its type when empty), at most 120 characters."""
    text = str(err).strip()
    return text.splitlines()[0][:120] if text else type(err).__name__


def model_weights(ckpt: dict[str, Any], name: str) -> dict[str, Any]:
    """The checkpoint's model state dict: string keys (uncompiled names) to tensors."""
    import torch

    model = ckpt.get("model")
    if not isinstance(model, dict) or not model or not all(isinstance(v, torch.Tensor) for v in model.values()):
        raise CheckpointRejected(f"{name} holds no rl_games model weights")
    if not all(isinstance(k, str) for k in model):
        raise CheckpointRejected(f"{name} has a model entry whose name is not a string")
    return plain_model_keys(model)


def all_finite(value: Any) -> bool:
    """No NaN or inf in a float tensor. max(|x|) < inf is false for both (NaN propagates through
    amax) and measured ~9x faster than isfinite().all() on a Humanoid-sized model (0.14 vs 1.35 ms)."""
    return value.numel() == 0 or bool(value.detach().abs().amax() < math.inf)


def check_finite(model: dict[str, Any], name: str) -> None:
    """Refuse NaN/inf weights or normalisers (and a negative variance): they would crash sampling."""
    for key, value in model.items():
        if (value.is_floating_point() or value.is_complex()) and not all_finite(value):
            raise CheckpointRejected(f"{name} has non-finite values (NaN or inf) in {key[:80]!r}")
        if key.endswith("running_var") and value.is_floating_point() and bool((value < 0).any()):
            raise CheckpointRejected(f"{name} has a negative normaliser variance in {key[:80]!r}")


def model_sizes(model: dict[str, Any], name: str) -> tuple[int | None, int | None]:
    """(observations, actions) from the normaliser and policy-head shapes (None where absent)."""
    obs, mu = model.get(OBS_MEAN_KEY), model.get(POLICY_HEAD_KEY)
    if obs is not None and obs.dim() != 1:
        raise CheckpointRejected(f"{name} has a {obs.dim()}-dimensional {OBS_MEAN_KEY} (expected 1)")
    if mu is not None and mu.dim() != 2:
        raise CheckpointRejected(f"{name} has a {mu.dim()}-dimensional {POLICY_HEAD_KEY} (expected 2)")
    return (obs.shape[0] if obs is not None else None, mu.shape[0] if mu is not None else None)


def plain_number(value: object, cast: type) -> Any:
    """`cast(value)` for a finite int/float (not bool); None for anything else."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    try:
        return cast(value)
    except (OverflowError, ValueError):
        return None


def _check_fits(ckpt: dict[str, Any], path: Path, task: str, num_obs: int, num_actions: int) -> CheckpointInfo:
    """Check a loaded checkpoint dict fits the task (may raise anything on an odd dict)."""
    name = path.name
    model = model_weights(ckpt, name)
    meta = ckpt.get("metadata") if isinstance(ckpt.get("metadata"), dict) else {}
    meta_task = meta.get("task")
    if meta_task is not None and meta_task != task:
        raise CheckpointRejected(f"{name} belongs to task {str(meta_task)[:40]}, not {task}")
    shape = model_sizes(model, name)
    if shape != (num_obs, num_actions):
        raise CheckpointRejected(
            f"{name} has {shape[0]} observations and {shape[1]} actions; {task} needs {num_obs} and {num_actions}"
        )
    check_finite(model, name)

    def number(key: str, cast: type) -> Any:
        return plain_number(meta.get(key, ckpt.get(key)), cast)

    return CheckpointInfo(
        path, model, number("epoch", int), number("frame", int), _reward(path, meta, ckpt),
        meta_task if isinstance(meta_task, str) else None,
    )  # fmt: skip


def load_checkpoint(path: Path, task: str, num_obs: int, num_actions: int) -> CheckpointInfo:
    """Load with torch.load(weights_only=True) (no code from the file runs) and check it fits.

    Accepts our latest.pth (with metadata) and rl_games' own checkpoints (shapes inferred). Raises
    only CheckpointRejected, whatever the file holds: a validator that raised anything else would
    kill the thread calling it (the player's follower, the panel's scan).
    """
    return validate_checkpoint(read_checkpoint_dict(path), path, task, num_obs, num_actions)


def validate_checkpoint(ckpt: object, path: Path, task: str, num_obs: int, num_actions: int) -> CheckpointInfo:
    """Check a loaded checkpoint fits the task; raises only CheckpointRejected (one sentence)."""
    if not isinstance(ckpt, dict):
        raise CheckpointRejected(f"{path.name} holds no rl_games model weights")
    try:
        return _check_fits(ckpt, path, task, num_obs, num_actions)
    except CheckpointRejected:
        raise
    except Exception as err:  # noqa: BLE001 - a malformed dict we did not foresee: still one sentence
        raise CheckpointRejected(f"{path.name} is malformed ({type(err).__name__}: {first_line(err)})") from None


def _reward(path: Path, meta: dict[str, Any], ckpt: dict[str, Any]) -> float | None:
    """The training reward a checkpoint stands for: our metadata, else the one in rl_games' file name,
    else rl_games' best-so-far (which is the reward of its best file, nn/<Task>.pth)."""
    for value in (meta.get("mean_reward"), rl_games_name_fields(path.name)[1], ckpt.get("last_mean_rewards")):
        reward = plain_number(value, float)  # finite numbers only: a hostile file may hold anything
        if reward is not None and reward > RL_GAMES_NO_REWARD:
            return reward
    return None


def load_checkpoint_in_run(run: RunDir, path: Path, task: str, num_obs: int, num_actions: int) -> CheckpointInfo:
    """`load_checkpoint` of a file that must resolve (symlinks included) inside the run directory."""
    try:
        relative = os.path.relpath(path, run.root)
    except ValueError:
        relative = str(path)
    resolved = checkpoint_in_run(run, relative)
    if resolved is None:
        raise CheckpointRejected(f"{path.name} leads outside the run directory; it is not read")
    info = load_checkpoint(resolved, task, num_obs, num_actions)
    return CheckpointInfo(path, info.model, info.epoch, info.frame, info.mean_reward, info.task)


# --- metrics.csv: one line per epoch, appended by the trainer (reward curve for the panel) ----


def append_metrics(run: RunDir, epoch: int, frame: int, mean_reward: float | None, wall_time: float) -> None:
    """Append one epoch; a line is written whole, so readers see complete lines plus maybe a tail."""
    new = not run.metrics_file.exists()
    reward = "" if mean_reward is None else f"{mean_reward:.6g}"
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)  # never append through a link
    with os.fdopen(os.open(run.metrics_file, flags, 0o644), "a") as f:
        f.write((METRICS_HEADER if new else "") + f"{epoch},{frame},{reward},{wall_time:.3f}\n")


def output_dir_in_run(run: RunDir, name: str) -> Path:
    """`<run>/<name>` for the player's outputs (videos/, eval/), created if needed; UserError if it
    is, or leads through, a link out of the run (the player writes nothing outside the run)."""
    path = run.root / name
    path.mkdir(exist_ok=True)
    if not path.resolve().is_relative_to(run.root.resolve()) or not path.is_dir():
        raise UserError(f"{path} leads outside the run directory; remove it or the link.")
    return path


def read_metrics(run: RunDir) -> list[tuple[int, int, float]]:
    """(epoch, frame, mean_reward) rows with a reward; malformed or partial lines are skipped."""
    try:
        lines = read_bounded(run.metrics_file, METRICS_MAX_BYTES).decode("utf-8", "replace").splitlines()
    except (OSError, UnreadableFile):
        return []
    rows = []
    for line in lines[1:]:
        parts = line.split(",")
        if len(parts) != 4 or not parts[2]:
            continue
        try:
            row = (int(parts[0]), int(parts[1]), float(parts[2]))
        except ValueError:
            continue
        if math.isfinite(row[2]):  # a hand-edited 'inf' would break the curve's scale
            rows.append(row)
    return rows

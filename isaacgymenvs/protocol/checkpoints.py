"""Checkpoints: what a file holds, loaded without running its code and checked before any weight
is used. Every refusal is one CheckpointRejected sentence."""

from __future__ import annotations

import math
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from isaacgymenvs.protocol.files import UnreadableFile, first_line, open_regular_file
from isaacgymenvs.protocol.policy_weights import VARIANCE_KEYS, CheckpointRejected, model_sizes, model_weights
from isaacgymenvs.protocol.publishing import read_manifest
from isaacgymenvs.protocol.rundir import (
    CHECKPOINT_FILES,
    LATEST_CHECKPOINT,
    LATEST_MANIFEST,
    RunDir,
    checkpoint_in_run,
    rsl_rl_name_epoch,
)

CHECKPOINT_MAX_BYTES = 2 * 1024**3  # task MLPs are a few MB; refuse before torch maps a monster
# Read into memory only below this (weights + optimizer state of the largest task nets are ~10 MB).
TENSORS_MAX_BYTES = 256 * 1024**2


@dataclass(frozen=True)
class CheckpointInfo:
    """A checkpoint that loaded safely and fits the expected task and shapes."""

    path: Path
    model: dict[str, Any]
    epoch: int | None
    frame: int | None
    mean_reward: float | None
    task: str | None


# rl_games' periodic files: last_<Task>_ep_<N>_rew_<R>.pth, where R is printed from a float or a
# one-element array (`rew__-10.04_`); the reward of that epoch is only in the name.
RL_GAMES_NAME = re.compile(r"_ep_(?P<epoch>\d+)_rew_+(?P<reward>-?[\d.]+(?:e[-+]?\d+)?)_*\.pth$")
# rl_games' "best so far" value before any episode finished.
RL_GAMES_NO_REWARD = -1e9


def checkpoint_epoch_hint(path: Path) -> int | None:
    """A checkpoint's epoch without loading it: from rl_games' or rsl_rl's file name or, for latest.pth,
    latest.json."""
    if path.name == LATEST_CHECKPOINT:
        epoch = (read_manifest(path.with_name(LATEST_MANIFEST)) or {}).get("epoch")
        return epoch if isinstance(epoch, int) and not isinstance(epoch, bool) else None
    named = rl_games_name_fields(path.name)[0]
    return named if named is not None else rsl_rl_name_epoch(path.name)


def rl_games_name_fields(name: str) -> tuple[int | None, float | None]:
    """(epoch, mean reward) from an rl_games periodic checkpoint's file name; Nones for other names."""
    named = RL_GAMES_NAME.search(name)
    if named is None:
        return None, None
    try:
        return int(named["epoch"]), float(named["reward"])
    except ValueError:
        return int(named["epoch"]), None


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


def torch_load_weights(source: Any, mmap: bool = False) -> Any:
    """torch.load(weights_only=True) that also accepts numpy number scalars; no code can run.

    mmap (a file name only): tensors stay in the file's pages until used, so a file with a huge
    extra tensor is refused on its shapes without being read (a 1.9 GB one took a player from
    783 MB to 4.6 GB before).
    """
    import torch

    # A file that is not a checkpoint gets a reason from us; torch's own warnings (e.g. about an old
    # pickle protocol) would be a second, confusing message on the console.
    with torch.serialization.safe_globals(_numeric_numpy_globals()), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.load(source, map_location="cpu", weights_only=True, mmap=mmap)


def tensor_bytes(value: Any, seen: set | None = None, depth: int = 0) -> int:
    """Bytes of all tensor storages in a loaded checkpoint (each storage counted once)."""
    import torch

    seen = set() if seen is None else seen
    if isinstance(value, torch.Tensor):
        storage = value.untyped_storage()
        if storage.data_ptr() in seen:
            return 0
        seen.add(storage.data_ptr())
        return storage.nbytes()
    if depth > 32:
        return 0
    if isinstance(value, dict):
        return sum(tensor_bytes(v, seen, depth + 1) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(tensor_bytes(v, seen, depth + 1) for v in value)
    return 0


def _load_fd(fd: int, name: str) -> Any:
    """Load from an open descriptor, first memory-mapped to size its tensors without reading them
    (refuse_oversized_tensors); only then read into memory."""
    refuse_oversized_tensors(fd, name)
    os.lseek(fd, 0, os.SEEK_SET)
    with os.fdopen(os.dup(fd), "rb") as f:
        return torch_load_weights(f)


def refuse_oversized_tensors(fd: int, name: str) -> None:
    """CheckpointRejected when the open file's tensors exceed TENSORS_MAX_BYTES, found without reading them.

    Through /proc/self/fd the very file opened is mapped, whatever its name points to now. Only a
    file whose tensors fit is then read into memory (a mapping could fault if the file were
    truncated in place later); a legacy (non-zip) file cannot be mapped and is let through.
    """
    proc_path = f"/proc/self/fd/{fd}"
    if os.path.exists(proc_path):
        try:
            size = tensor_bytes(torch_load_weights(proc_path, mmap=True))
        except RuntimeError as err:
            if "mmap" not in str(err):
                raise
        else:
            if size > TENSORS_MAX_BYTES:
                raise CheckpointRejected(
                    f"{name} holds {size / 1024**2:.0f} MB of tensors, more than the "
                    f"{TENSORS_MAX_BYTES // 1024**2} MB a policy checkpoint may (task networks are a few MB)"
                )


def needs_full_unpickling(err: BaseException) -> bool:
    """Whether a load failed because the file holds objects weights_only loading refuses."""
    import pickle

    return isinstance(err, pickle.UnpicklingError) and "weights only load failed" in str(err).lower()


def read_checkpoint_dict(path: Path, root: Path | None = None) -> dict[str, Any]:
    """torch.load(weights_only=True) of a regular file of bounded size; CheckpointRejected otherwise.

    No code from the file runs; a FIFO, a device or a monster file is refused before torch sees it.
    With `root` (the run directory), the file is reached without following any link below it.
    """
    try:
        fd = open_regular_file(path, CHECKPOINT_MAX_BYTES, root=root)
    except FileNotFoundError:
        raise CheckpointRejected(f"{path.name} does not exist") from None
    except UnreadableFile as err:
        raise CheckpointRejected(str(err)) from None
    try:
        ckpt = _load_fd(fd, path.name)
    except CheckpointRejected:
        raise
    except Exception as err:  # torn zip, EOF, pickle refusal: all one message
        raise CheckpointRejected(f"{path.name} is torn or not a checkpoint ({first_line(err)})") from None
    finally:
        os.close(fd)
    if not isinstance(ckpt, dict):
        raise CheckpointRejected(f"{path.name} holds no model weights (not a checkpoint dictionary)")
    return ckpt


def all_finite(value: Any) -> bool:
    """No NaN or inf in a float tensor. max(|x|) < inf is false for both (NaN propagates through
    amax) and measured ~9x faster than isfinite().all() on a Humanoid-sized model (0.14 vs 1.35 ms)."""
    return value.numel() == 0 or bool(value.detach().abs().amax() < math.inf)


def check_finite(model: dict[str, Any], name: str) -> None:
    """Refuse NaN/inf weights or normalisers (and a negative variance): they would crash sampling."""
    for key, value in model.items():
        if (value.is_floating_point() or value.is_complex()) and not all_finite(value):
            raise CheckpointRejected(f"{name} has non-finite values (NaN or inf) in {key[:80]!r}")
        variance = key.endswith(VARIANCE_KEYS)
        if variance and value.is_floating_point() and bool((value < 0).any()):
            raise CheckpointRejected(f"{name} has a negative normaliser variance in {key[:80]!r}")


Shapes = dict[str, tuple[int, ...]]  # a network's state-dict entries and their shapes


def network_mismatch(model: dict[str, Any], expected: Shapes) -> str | None:
    """The first difference between a checkpoint's weights and the network's entries, in words.

    Names the entry and both shapes ("a2c_network.mu.weight is [8, 256] here; the network's is
    [8, 400]"), where torch's load_state_dict only said "Error(s) in loading state_dict for Network".
    """
    for key, shape in expected.items():
        if key not in model:
            return f"has no {key[:80]!r} (the network's is {list(shape)})"
        if tuple(model[key].shape) != tuple(shape):
            return f"has {key[:80]!r} of shape {list(model[key].shape)}; the network's is {list(shape)}"
    extra = next((key for key in model if key not in expected), None)
    return None if extra is None else f"has {extra[:80]!r}, which the network does not have"


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


@dataclass(frozen=True)
class CheckpointFit:
    """What a run's checkpoints must fit: its task, observation and action sizes, the network its
    config builds (None: the sizes only) and its PPO library. The player's follower, the panels'
    catalogue, the CLI's checkpoint= check and export each hold one."""

    task: str
    num_obs: int
    num_actions: int
    shapes: Shapes | None = None
    library: str = "rl_games"


def _check_fits(ckpt: dict[str, Any], path: Path, fit: CheckpointFit) -> CheckpointInfo:
    """Check a loaded checkpoint dict fits the task (may raise anything on an odd dict)."""
    name, task, library = path.name, fit.task, fit.library
    model = model_weights(ckpt, name, library)
    meta = ckpt.get("metadata") if isinstance(ckpt.get("metadata"), dict) else {}
    meta_task = meta.get("task")
    if meta_task is not None and meta_task != task:
        raise CheckpointRejected(f"{name} belongs to task {str(meta_task)[:40]}, not {task}")
    shape = model_sizes(model, name, library)
    if shape != (fit.num_obs, fit.num_actions):
        raise CheckpointRejected(
            f"{name} has {shape[0]} observations and {shape[1]} actions; "
            f"{task} needs {fit.num_obs} and {fit.num_actions}"
        )
    mismatch = network_mismatch(model, fit.shapes) if fit.shapes is not None else None
    if mismatch:
        raise CheckpointRejected(f"{name} {mismatch}")
    check_finite(model, name)

    def number(key: str, cast: type) -> Any:
        return plain_number(meta.get(key, ckpt.get(key)), cast)

    epoch = number("epoch", int)
    if epoch is None and library == "rsl_rl":  # rsl_rl's own model_<it>.pt
        epoch = rsl_rl_iter_epoch(ckpt)
    return CheckpointInfo(
        path, model, epoch, number("frame", int), _reward(path, meta, ckpt),
        meta_task if isinstance(meta_task, str) else None,
    )  # fmt: skip


def rsl_rl_iter_epoch(ckpt: dict[str, Any]) -> int | None:
    """Finished iterations of rsl_rl's own save: its 'iter' is the last iteration's index, so + 1
    (as rundir.rsl_rl_name_epoch reads model_<it>.pt's name)."""
    index = plain_number(ckpt.get("iter"), int)
    return None if index is None else index + 1


def load_checkpoint(path: Path, fit: CheckpointFit, root: Path | None = None) -> CheckpointInfo:
    """Load with torch.load(weights_only=True) (no code from the file runs) and check it fits.

    Accepts our latest.pth (with metadata) and rl_games' own checkpoints (shapes inferred). Raises
    only CheckpointRejected, whatever the file holds: a validator that raised anything else would
    kill the thread calling it (the player's follower, the panel's scan).
    """
    return validate_checkpoint(read_checkpoint_dict(path, root), path, fit)


def validate_checkpoint(ckpt: object, path: Path, fit: CheckpointFit) -> CheckpointInfo:
    """Check a loaded checkpoint fits `fit` (its task, sizes and, given shapes, network); raises only
    CheckpointRejected (one sentence)."""
    if not isinstance(ckpt, dict):
        raise CheckpointRejected(f"{path.name} holds no {fit.library} model weights")
    try:
        return _check_fits(ckpt, path, fit)
    except CheckpointRejected:
        raise
    except Exception as err:  # a malformed dict we did not foresee: still one sentence
        raise CheckpointRejected(f"{path.name} is malformed ({type(err).__name__}: {first_line(err)})") from None


def _reward(path: Path, meta: dict[str, Any], ckpt: dict[str, Any]) -> float | None:
    """The training reward a checkpoint stands for: our metadata, else the one in rl_games' file name,
    else rl_games' best-so-far (which is the reward of its best file, nn/<Task>.pth)."""
    for value in (meta.get("mean_reward"), rl_games_name_fields(path.name)[1], ckpt.get("last_mean_rewards")):
        reward = plain_number(value, float)  # finite numbers only: a hostile file may hold anything
        if reward is not None and reward > RL_GAMES_NO_REWARD:
            return reward
    return None


def load_checkpoint_in_run(run: RunDir, path: Path, fit: CheckpointFit) -> CheckpointInfo:
    """`load_checkpoint` of a checkpoint file inside the run directory, reached without following any link."""
    try:
        relative = os.path.relpath(path, run.root)
    except ValueError:
        relative = str(path)
    inside = checkpoint_in_run(run, relative)
    if inside is None:
        raise CheckpointRejected(f"{path.name} is not {CHECKPOINT_FILES} inside the run directory; it is not read")
    info = load_checkpoint(inside, fit, root=run.root)
    return CheckpointInfo(path, info.model, info.epoch, info.frame, info.mean_reward, info.task)

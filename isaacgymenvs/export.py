"""`mode=export`: a checkpoint's policy as ONNX and TorchScript files for deployment.

For `<run>/nn/<stem>.pth` this writes `<run>/exported/<stem>.onnx`, `<stem>.pt` (TorchScript) and
`<stem>.json` (what the input and outputs mean, clip ranges, control dt, the source checkpoint and
its sha256). The graph maps raw observations [B, num_obs] (B dynamic) to actions [B, num_actions]
exactly as the player does; neither file needs this project or rl_games to run:

    session = onnxruntime.InferenceSession("exported/latest.onnx")
    actions = session.run(["actions"], {"obs": obs.astype(np.float32)})[0]
    actions = torch.jit.load("exported/latest.pt")(torch.from_numpy(obs))

The checkpoint is read through the player's path (protocol.load_checkpoint with weights_only, the
player's policy of the run's library: rl_games' network, rsl_rl's actor or skrl's policy), and all three files
appear together or not at all. The JSON names the library that trained the policy.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import platform
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from isaacgymenvs import protocol
from isaacgymenvs.deployed import Deployed, DeployedPolicy, DeployedRslRlPolicy, DeployedSkrlPolicy
from isaacgymenvs.errors import UserError
from isaacgymenvs.libraries import run_library
from isaacgymenvs.policy import RslRlPolicy, SkrlPolicy, make_policy
from isaacgymenvs.protocol import CheckpointInfo, CheckpointRejected, RunDir
from isaacgymenvs.tasks import make_task
from isaacgymenvs.tasks.vec_task import VecTask

EXPORT_DIR = "exported"
# The train config's section that describes each library's networks (a run's config must have it).
NETWORK_SECTION = {"rl_games": "params", "rsl_rl": "runner", "skrl": "models"}
FORMAT_VERSION = 1
# Exported and eager outputs must agree this closely on a check batch before any file is written.
CHECK_TOLERANCE = 1e-5


@dataclass(frozen=True)
class ExportedFiles:
    """The files one export wrote."""

    onnx: Path
    torchscript: Path
    description: Path

    def __iter__(self):
        return iter((self.onnx, self.torchscript, self.description))


# --- which checkpoint -------------------------------------------------------------------------


def resolve_source(train_dir: str, experiment: str, checkpoint: str) -> tuple[RunDir, Path]:
    """(run, checkpoint file): `checkpoint=` if given (its run is the folder above its nn/), else
    the newest run matching `experiment=` and its nn/latest.pth."""
    if checkpoint:
        path = Path(checkpoint).resolve()
        owner = RunDir(path.parent.parent)
        if path.parent.name == "nn" and owner.config_file.is_file():
            return owner, path
        if not experiment:
            raise UserError(
                f"Checkpoint {path} is not in a run's nn/ folder (beside params/config.yaml), so its task and "
                "network are unknown; add experiment=<the run it belongs to>."
            )
        return protocol.resolve_experiment(train_dir, experiment), path
    if not experiment:
        raise UserError(
            "mode=export needs experiment=<run name or part of it> (exports its nn/latest.pth) "
            "or checkpoint=<path to a .pth in a run's nn/ folder>."
        )
    run = protocol.resolve_experiment(train_dir, experiment)
    if not run.latest_checkpoint.is_file():
        raise UserError(f"Run {run.name} has no nn/latest.pth yet; pass checkpoint=<one of its nn/*.pth files>.")
    return run, run.latest_checkpoint


def run_config(run: RunDir) -> DictConfig:
    try:
        saved = protocol.read_params(run)  # bounded, and never through a link below the run
        network = NETWORK_SECTION[run_library(saved)]
        saved.task.name, saved.train[network]  # both sections must be there
    except Exception as err:  # missing, unreadable, not YAML, not ours: one message
        raise UserError(f"Run {run.name} has no usable params/config.yaml ({err}); is it a training run?") from None
    return saved


def read_source(path: Path, run: RunDir) -> bytes:
    """The checkpoint's bytes, read once; a file of the run is reached without following links.

    One read gives the weights and the digest of the same bytes, even while a trainer replaces
    latest.pth. A `checkpoint=` outside the run is the user's own choice and is opened as named.
    """
    root = run.root if protocol.runfs.is_below(run.root, path) else None
    try:
        fd = protocol.open_regular_file(path, protocol.CHECKPOINT_MAX_BYTES, root=root)
    except FileNotFoundError:
        raise UserError(f"Cannot export {path}: it does not exist.") from None
    except OSError as err:
        raise UserError(f"Cannot export {path}: {err}.") from None
    with os.fdopen(fd, "rb") as f:
        try:
            protocol.refuse_oversized_tensors(fd, path.name)  # sized memory-mapped before anything is read
        except CheckpointRejected as err:
            raise UserError(f"Cannot export {path}: {err}.") from None
        except Exception:  # torn or not a zip: the load of these bytes says so in its own words
            pass
        return f.read()


def load_source(path: Path, task: VecTask, run: RunDir, library: str) -> tuple[CheckpointInfo, int, str]:
    """(checkpoint, size, sha256) of the same bytes; a checkpoint of another library is refused."""
    data = read_source(path, run)
    try:
        ckpt = protocol.torch_load_weights(io.BytesIO(data))
    except Exception as err:  # torn zip, EOF, pickle refusal: all one message
        why = f"{path.name} is torn or not a checkpoint ({protocol.first_line(err)})"
        raise UserError(f"Cannot export {path}: {why}.") from None
    try:
        fit = protocol.CheckpointFit(task.cfg.name, task.num_obs, task.num_actions, library=library)
        info = protocol.validate_checkpoint(ckpt, path, fit)
    except CheckpointRejected as err:
        raise UserError(f"Cannot export {path}: {err}.") from None
    return info, len(data), hashlib.sha256(data).hexdigest()


# --- building and writing the files ----------------------------------------------------------


def to_onnx(module: Deployed, sample: torch.Tensor) -> tuple[bytes, int]:
    """(serialised ONNX model, opset) with a dynamic batch dimension.

    Both of torch's exporters give the same outputs for these MLPs (checked with torch 2.13 at batch
    1 and 1000). The torch.export-based one (`dynamo=True`, torch's default since 2.9) is used
    because it treats the batch as a symbol and fails the export if any code specialises it; the
    legacy TorchScript-based one (`dynamo=False`, deprecated with a removal warning) traces with
    concrete sizes and only renames the axes listed in `dynamic_axes`, so a size that became a
    Python number while tracing would be baked in without an error. The price: about 2 s per
    export (6 s the first time in a process) against 0.2 s, and the onnxscript package. `sample`
    has a batch of 2 because torch.export specialises dimensions of size 0 and 1.
    """
    import logging

    outputs = ["actions", "values"] if module.with_values else ["actions"]
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)  # it warns about torchvision ops it cannot find; we use none
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch's own pytree deprecations
            program = torch.onnx.export(
                module,
                (sample,),
                dynamo=True,
                input_names=["obs"],
                output_names=outputs,
                dynamic_shapes={"obs": {0: torch.export.Dim("batch")}},
                external_data=False,
                verbose=False,
            )
    finally:
        exporter_log.setLevel(level)
    proto = program.model_proto
    opset = next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
    return proto.SerializeToString(), int(opset)


def to_torchscript(module: Deployed, sample: torch.Tensor) -> bytes:
    """Traced (the graph has no data-dependent control flow), checked on two other batch sizes.

    torch 2.13 marks torch.jit deprecated in favour of torch.export, but TorchScript is what
    deployment code (Isaac Lab's `policy.pt`, libtorch in C++) loads today, and it still works.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        traced = torch.jit.trace(module, sample, check_inputs=[(sample[:1],), (sample.repeat(3, 1),)])
        buffer = io.BytesIO()
        torch.jit.save(traced, buffer)
    return buffer.getvalue()


def check_outputs(module: Deployed, onnx_bytes: bytes, script_bytes: bytes, obs: torch.Tensor) -> None:
    """Both serialised graphs reproduce the eager module on `obs` (a bug guard, before writing)."""
    import numpy as np
    import onnxruntime

    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        expected = module(obs)
        scripted = torch.jit.load(io.BytesIO(script_bytes))(obs)
    expected = expected if isinstance(expected, tuple) else (expected,)
    scripted = scripted if isinstance(scripted, tuple) else (scripted,)
    session = onnxruntime.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    from_onnx = session.run(None, {"obs": obs.numpy().astype(np.float32)})
    for want, got_script, got_onnx in zip(expected, scripted, from_onnx, strict=True):
        error = max(float((want - got_script).abs().max()), float(np.abs(want.numpy() - got_onnx).max()))
        if error > CHECK_TOLERANCE:
            raise RuntimeError(f"exported policy differs from the eager one by {error:g}")


def check_inputs(module: Deployed, num_obs: int) -> torch.Tensor:
    """Observations around the normaliser's mean, some beyond both clips, for `check_outputs`."""
    generator = torch.Generator().manual_seed(0)
    spread = torch.sqrt(module.obs_var) if module.normalize_input else torch.ones(num_obs)
    centre = module.obs_mean if module.normalize_input else torch.zeros(num_obs)
    return centre + spread * 4.0 * torch.randn(64, num_obs, generator=generator)


def describe(
    task: VecTask,
    run: RunDir,
    info: CheckpointInfo,
    size: int,
    sha256: str,
    module: Deployed,
    files: dict[str, tuple[str, bytes]],
    opset: int,
    library: str = "rl_games",
) -> dict[str, Any]:
    """The JSON beside the exported files: enough to feed the graph and use its outputs."""
    outputs = {"actions": ["batch", task.num_actions]}
    if module.with_values:
        outputs["values"] = ["batch", 1]
    return {
        "format_version": FORMAT_VERSION,
        "library": library,
        "task": task.cfg.name,
        "run": run.name,
        "source_checkpoint": {
            "path": str(info.path.resolve()),
            "size": size,
            "sha256": sha256,
            "epoch": info.epoch,
            "frame": info.frame,
            "mean_reward": info.mean_reward,
        },
        "inputs": {"obs": ["batch", task.num_obs]},
        "outputs": outputs,
        "observations": {
            "size": task.num_obs,
            "names": task.observation_names(),
            "clip": [-module.obs_clip, module.obs_clip],
            "normalizer": module.normalizer_text(),
        },
        "actions": {
            "size": task.num_actions,
            "names": task.action_names(),
            "clip": [-module.action_clip, module.action_clip],
            "meaning": task.action_meaning,
            "actuator_gear": [float(g) for g in task.model.actuator_gear[:, 0]],
        },
        "values": "denormalised value estimate" if module.with_values else None,
        "control_dt": task.dt,
        "physics_substeps": task.substeps,
        "files": {
            kind: {"file": name, "sha256": hashlib.sha256(data).hexdigest()} for kind, (name, data) in files.items()
        },
        "onnx_opset": opset,
        "exported_with": {"torch": torch.__version__, "python": platform.python_version()},
        "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def write_together(root: Path, directory: str, files: dict[str, bytes]) -> None:
    """Write every file to a temp file in `<root>/<directory>` first, then rename them all into place.

    The directory is created and reached without following a link (an `exported/` link out of the
    run is refused, never written through). A failure while writing (full disk, no permission)
    leaves none of them and no temp files; a reader of any one final name sees it whole.
    """
    with protocol.runfs.open_dir(root, [directory], create=True) as dir_fd:
        temps: dict[str, str] = {}
        try:
            for name, data in files.items():
                temps[name] = f".{name}.tmp-{os.getpid()}"
                flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
                with os.fdopen(os.open(temps[name], flags, 0o644, dir_fd=dir_fd), "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
            for name, tmp in temps.items():
                os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        finally:
            for tmp in temps.values():
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp, dir_fd=dir_fd)
        os.fsync(dir_fd)


def require_exporter() -> None:
    """The optional packages export needs, refused with the install command rather than a traceback."""
    import importlib.util

    missing = [name for name in ("onnx", "onnxscript", "onnxruntime") if importlib.util.find_spec(name) is None]
    if missing:
        raise UserError(f"Export needs {', '.join(missing)}; install with pip install -e '.[export]'.")


def export_checkpoint(run: RunDir, checkpoint: Path, with_values: bool = False) -> ExportedFiles:
    """Export `checkpoint` (a .pth of `run`) into `<run>/exported/`; UserError on bad input."""
    require_exporter()
    saved = run_config(run)
    library = run_library(saved)
    if library != "rl_games" and with_values:
        raise UserError(
            f"export_values=True is offered for rl_games runs only; run {run.name} was trained with {library}."
        )
    task = make_task(saved, num_envs=1, sim_device="cpu", rl_device="cpu", seed=0, compile_task=False)
    info, size, sha256 = load_source(checkpoint, task, run, library)
    train_params = OmegaConf.to_container(saved.train, resolve=True)
    with contextlib.redirect_stdout(io.StringIO()):  # rl_games' builders print every layer they make
        policy = make_policy(library, train_params, task.num_obs, task.num_actions, "cpu", stochastic=False)
    try:
        policy.load(info.model)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0][:160]
        raise UserError(f"Cannot export {checkpoint}: its weights do not fit the run's network ({first}).") from None
    # The player clamps to [-1, 1] and the task then to +-clipActions: together, the narrower.
    action_clip = min(1.0, task.clip_actions)
    if isinstance(policy, RslRlPolicy):
        module: Deployed = DeployedRslRlPolicy(policy, task.clip_obs, action_clip)
    elif isinstance(policy, SkrlPolicy):
        module = DeployedSkrlPolicy(policy, task.clip_obs, action_clip)
    else:
        module = DeployedPolicy(policy, task.clip_obs, action_clip, with_values)

    sample = torch.zeros(2, task.num_obs)
    onnx_bytes, opset = to_onnx(module, sample)
    script_bytes = to_torchscript(module, sample)
    check_outputs(module, onnx_bytes, script_bytes, check_inputs(module, task.num_obs))

    out = run.root / EXPORT_DIR
    stem = checkpoint.stem
    files = ExportedFiles(out / f"{stem}.onnx", out / f"{stem}.pt", out / f"{stem}.json")
    blobs = {"onnx": (files.onnx.name, onnx_bytes), "torchscript": (files.torchscript.name, script_bytes)}
    description = describe(task, run, info, size, sha256, module, blobs, opset, library)
    try:
        write_together(
            run.root,
            EXPORT_DIR,
            {
                files.onnx.name: onnx_bytes,
                files.torchscript.name: script_bytes,
                files.description.name: json.dumps(description, indent=1).encode(),
            },
        )
    except protocol.LinkRefused:
        raise UserError(f"Cannot write the exported files: {out} is a symbolic link or not a folder.") from None
    except OSError as err:
        raise UserError(f"Cannot write the exported files into {out} ({err.strerror or err}).") from None
    return files


def export(cfg: DictConfig) -> ExportedFiles:
    """`mode=export`: export the chosen checkpoint and print where the files are."""
    run, checkpoint = resolve_source(cfg.train_dir, cfg.experiment, cfg.checkpoint)
    files = export_checkpoint(run, checkpoint, bool(cfg.export_values))
    print(f"Exported {shown_path(checkpoint)} (run {run.name}):")
    for path in files:
        print(f"  {shown_path(path)}")
    return files


def shown_path(path: Path) -> str:
    """Relative to the working directory when below it, whichever way the checkpoint was named
    (experiment= gave relative paths and checkpoint= absolute ones)."""
    relative = os.path.relpath(os.path.abspath(path))
    return relative if not relative.startswith(os.pardir) else os.path.abspath(path)

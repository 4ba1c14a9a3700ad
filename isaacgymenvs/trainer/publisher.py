"""Live checkpoint publishing: `nn/latest.pth` every N epochs, written off the training thread.

The training thread only copies the state off the training device (a few hundred KB for the
task MLPs); serialisation, checksum, fsync and rename happen in one background thread. If a
publish is still being written when the next one arrives, the newer state replaces the waiting
one: the player wants the newest policy, not every policy.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig
from rl_games.common.algo_observer import AlgoObserver

from isaacgymenvs import protocol
from isaacgymenvs.protocol import RunDir


def to_plain_cpu(value: Any, pinned: bool = False) -> Any:
    """Deep copy with tensors cloned to the CPU and NumPy values turned into plain Python/torch.

    The copy decouples the snapshot from parameters that training keeps updating, and plain types
    keep the file loadable with torch.load(weights_only=True). With `pinned`, CUDA tensors go to
    pinned host memory without waiting (the caller orders the copies and waits for them).
    """
    if isinstance(value, torch.Tensor):
        if pinned and value.is_cuda:
            host = torch.empty(value.shape, dtype=value.dtype, pin_memory=True)
            return host.copy_(value.detach(), non_blocking=True)
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {k: to_plain_cpu(v, pinned) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_plain_cpu(v, pinned) for v in value)
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value.copy())
    if isinstance(value, np.generic):
        return value.item()
    return value


class HostSnapshot:
    """A copy of a training state in host memory, taken without waiting for the GPU.

    CUDA tensors are copied into pinned host buffers on a side stream; the training stream then
    waits (on the device, not the host) for those copies before it runs anything else, so later
    optimizer steps cannot change a tensor before it is copied. The training thread only enqueues
    the copies (a synchronous `.cpu()` per tensor cost ~2 ms per publish on an H200, over 1% of an
    Ant epoch); the writer thread waits for them in `state()`.
    """

    _streams: dict[torch.device, torch.cuda.Stream] = {}

    def __init__(self, state: Any) -> None:
        devices = {t.device for t in _tensors(state) if t.is_cuda}
        if len(devices) != 1:  # CPU training (or an unusual mix): a plain synchronous copy
            self._state, self._ready = to_plain_cpu(state), None
            return
        (device,) = devices
        current = torch.cuda.current_stream(device)
        stream = self._streams.setdefault(device, torch.cuda.Stream(device))
        stream.wait_stream(current)
        with torch.cuda.stream(stream):
            self._state = to_plain_cpu(state, pinned=True)
            self._ready = torch.cuda.Event()
            self._ready.record(stream)
        current.wait_stream(stream)

    def state(self) -> Any:
        """The host copy, once the device has finished writing it."""
        if self._ready is not None:
            self._ready.synchronize()
        return self._state


def _tensors(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _tensors(v)]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _tensors(v)]
    return []


def _yield_cpu_to_training() -> None:
    """Give the calling (writer) thread the lowest CPU priority (nice 19, Linux: per thread).

    Physics steps all worlds on every core and waits for the slowest thread, so a writer that
    takes a core for a few milliseconds delays the whole step. Nice 19 lets training threads win
    every contest yet still guarantees the writer a small share (SCHED_IDLE could starve it, and
    then the player would never see a new policy).
    """
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    except (AttributeError, OSError):
        pass


class CheckpointPublisher:
    """One background writer thread; `submit` never blocks on disk."""

    def __init__(self, run: RunDir) -> None:
        self.run = run
        self.published = 0
        self.failures = 0
        self.write_cpu_seconds = 0.0  # CPU time of the writer thread, for the overhead report
        self._pending: tuple[dict | HostSnapshot, dict] | None = None
        self._busy = False
        self._closed = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._loop, name="checkpoint-publisher", daemon=True)
        self._thread.start()

    def submit(self, state: dict | HostSnapshot, metadata: dict) -> None:
        """Queue a snapshot for publication (replacing one not yet started)."""
        with self._cond:
            self._pending = (state, metadata)
            self._cond.notify_all()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything submitted is written; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._pending is None and not self._busy, timeout)

    def close(self, timeout: float | None = 60.0) -> None:
        self.flush(timeout)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout)

    def _loop(self) -> None:
        _yield_cpu_to_training()
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending is not None or self._closed)
                if self._pending is None:
                    return
                state, metadata = self._pending
                self._pending, self._busy = None, True
            try:
                self._write(state, metadata)
            except BaseException as err:  # the writer thread must outlive any one publish
                self.failures += 1
                print(f"Warning: publishing failed unexpectedly ({protocol.first_line(err)}).", file=sys.stderr)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _write(self, state: dict | HostSnapshot, metadata: dict) -> None:
        start = time.thread_time()
        try:
            self._serialise_and_publish(state, metadata)
        finally:
            self.write_cpu_seconds += time.thread_time() - start

    def _serialise_and_publish(self, state: dict | HostSnapshot, metadata: dict) -> None:
        if isinstance(state, HostSnapshot):
            state = state.state()
        if isinstance(state.get("model"), dict):
            state["model"] = protocol.plain_model_keys(state["model"])
        checkpoint = {**state, "metadata": metadata}
        try:
            # torch.save onto a path uses torch's C++ file writer, not Python-level write calls.
            protocol.publish_latest(self.run, lambda f: torch.save(checkpoint, f), metadata)
            self.published += 1
        except Exception as err:  # torch.save reports a full disk as RuntimeError, not OSError
            self.failures += 1
            print(
                f"Warning: could not publish {self.run.latest_checkpoint} ({protocol.first_line(err)}); "
                "training goes on and the previous latest.pth is kept.",
                file=sys.stderr,
                flush=True,
            )


class CheckpointObserver(AlgoObserver):
    """Publish after the PPO update of every `checkpoint_save_freq`-th epoch and at the end.

    rl_games has no after-save hook; after_print_stats runs after the epoch's update (on global
    rank 0 only), which is exactly the state to publish.
    """

    def __init__(self, cfg: DictConfig, run: RunDir, publisher: CheckpointPublisher) -> None:
        super().__init__()
        self.freq = int(cfg.checkpoint_save_freq)
        self.publisher = publisher
        self.algo = None
        self.last_epoch: int | None = None
        self.completed_epoch: int | None = None  # the last epoch whose update finished
        self.updating = False  # inside an epoch's PPO update (the weights are changing)
        self.snapshots = 0
        self.snapshot_seconds = 0.0  # training-thread time spent taking snapshots
        network = cfg.train.params.network.mlp
        self.static_metadata = {
            "format_version": protocol.FORMAT_VERSION,
            "library": "rl_games",
            "task": cfg.task.name,
            "network": {"units": list(network.units), "activation": str(network.activation)},
            "run": run.name,
            "config_hash": protocol.config_hash(cfg),
        }

    def after_init(self, algo) -> None:
        self.algo = algo
        info = algo.env_info
        self.static_metadata["num_obs"] = int(info["observation_space"].shape[0])
        self.static_metadata["num_actions"] = int(info["action_space"].shape[0])

    @property
    def is_publisher(self) -> bool:
        return self.algo is not None and self.algo.global_rank == 0

    def after_steps(self) -> None:
        self.updating = True  # the rollout is done; this epoch's PPO update starts changing the weights

    def after_print_stats(self, frame, epoch_num, total_time) -> None:
        self.updating, self.completed_epoch = False, int(epoch_num)
        if self.is_publisher and epoch_num % self.freq == 0:
            self.publish()

    def final_epoch(self) -> int:
        """The epoch the current weights belong to.

        rl_games counts an epoch from the start of its rollout, so a stop signal during a rollout
        finds epoch_num one ahead of the weights, which are still the last completed epoch's.
        """
        if not self.updating and self.completed_epoch is not None:
            return self.completed_epoch
        return int(self.algo.epoch_num)

    def publish(self, epoch: int | None = None) -> None:
        algo = self.algo
        epoch = int(algo.epoch_num) if epoch is None else epoch
        rewards = algo.game_rewards
        metadata = {
            **self.static_metadata,
            "epoch": epoch,
            "frame": int(algo.frame),
            "mean_reward": float(rewards.get_mean()[0]) if rewards.current_size > 0 else None,
            "wall_time": time.time(),
        }
        start = time.perf_counter()
        full_state = algo.get_full_state_weights()
        full_state["epoch"] = epoch  # what rl_games resumes from
        state = HostSnapshot(full_state)
        self.snapshot_seconds += time.perf_counter() - start
        self.snapshots += 1
        self.publisher.submit(state, metadata)
        self.last_epoch = epoch

    def finish(self) -> None:
        """Publish the final state (end of training, a stop signal or an error) and wait for the writes."""
        if self.is_publisher and self.last_epoch != self.final_epoch():
            self.publish(self.final_epoch())
        self.publisher.close()
        if self.is_publisher:
            n, pub = max(self.snapshots, 1), self.publisher
            writes = max(pub.published + pub.failures, 1)
            print(
                f"Published {protocol.LATEST_CHECKPOINT} {pub.published} times "
                f"(per publish: {1e3 * self.snapshot_seconds / n:.2f} ms snapshot on the training thread, "
                f"{1e3 * pub.write_cpu_seconds / writes:.2f} ms CPU in the writer thread)",
                flush=True,
            )

"""Run a step function as a replayed CUDA graph on CUDA, and as plain eager code elsewhere.

A captured graph replays the recorded kernels with no Python and no per-op launch cost, but it
only sees memory, never Python objects: every input must be copied into a tensor that the step
reads at a fixed address, and every result must be written in place into a tensor allocated
before the capture. The step functions of the graphed agent are written that way, so the same
function runs eagerly on the CPU (and in the CPU tests) and as a graph on a GPU.

Capture records kernels without running them, and the first calls of a step must run eagerly
anyway (cuBLAS workspaces, the optimizer's lazily created state, TorchScript's profiling runs).
So the first `warmup` calls do real work eagerly on a side stream, the next call is captured and
then replayed once, and every later call is a replay: no call is run twice or skipped.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

import torch

# The graphed agent's attributes whose tensors its captured graphs read or write (rl_games' episode
# meters among them): rebinding one after capture leaves a graph on the old memory.
GRAPH_TENSORS = ("buffers", "ds", "_step_in", "_obs", "_dones", "_slot", "_env_actions", "_lr", "_entropy_coef",
                 "current_rewards", "current_shaped_rewards", "current_lengths", "_mb_counter", "_mb_rows")  # fmt: skip


def tensor_attributes(obj: object, names: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """The tensors `obj` holds under `names`, directly or in a dict (the memory its graphs use)."""
    found = {}
    for name in names:
        value = getattr(obj, name, None)
        if isinstance(value, torch.Tensor):
            found[name] = value
        elif isinstance(value, dict):
            found.update({f"{name}[{k}]": v for k, v in value.items() if isinstance(v, torch.Tensor)})
    return found


class CapturedStep:
    """`fn()` (no arguments, results in place), graphed on CUDA after `warmup` eager calls and once
    `hold()` is false (the task's math compiling in another thread may synchronize the device, which
    invalidates a capture in progress: training goes on eagerly until it is done).

    `bound()` names the tensors the step may read or write. Their storage is recorded at capture
    and `verify()` (once per epoch: cheap) refuses a replay after one was rebound: the graph would
    go on using the old memory (rl_games' reset path reassigns its episode tensors, for one).
    """

    def __init__(
        self, fn: Callable[[], None], device: torch.device | str, warmup: int = 3,
        bound: Callable[[], dict[str, torch.Tensor]] | None = None, hold: Callable[[], bool] = lambda: False,
    ) -> None:  # fmt: skip
        self.fn = fn
        self.hold = hold  # True: keep running eagerly, capture later
        self.device = torch.device(device)
        self.warmup = warmup
        self.calls = 0
        self.graph: torch.cuda.CUDAGraph | None = None
        self.capture_seconds = 0.0
        self.bound = bound
        self.storage: dict[str, int] = {}

    def record(self) -> None:
        """Remember where each bound tensor's memory is (done at capture)."""
        if self.bound is not None:
            self.storage = {name: t.untyped_storage().data_ptr() for name, t in self.bound().items()}

    def verify(self) -> None:
        """RuntimeError naming a bound tensor that no longer is the one captured."""
        if not self.storage:
            return
        now = {name: t.untyped_storage().data_ptr() for name, t in self.bound().items()}
        moved = sorted(name for name, ptr in self.storage.items() if now.get(name) != ptr)
        if moved:
            name = getattr(self.fn, "__name__", self.fn)
            raise RuntimeError(f"{name}: {', '.join(moved[:5])} rebound after the CUDA graph was captured")

    @property
    def graphed(self) -> bool:
        return self.device.type == "cuda"

    def __call__(self) -> None:
        if self.graph is not None:
            self.graph.replay()
            return
        if not self.graphed:
            self.fn()
            return
        self.calls += 1
        if self.calls <= self.warmup or self.hold():
            self._run_on_side_stream()
        else:
            self._capture()
            self.graph.replay()

    def _run_on_side_stream(self) -> None:
        """Eager call on a side stream: what torch asks for before a capture (state created off the default stream)."""
        current = torch.cuda.current_stream(self.device)
        side = torch.cuda.Stream(self.device)
        side.wait_stream(current)
        with torch.cuda.stream(side):
            self.fn()
        current.wait_stream(side)

    def _capture(self) -> None:
        """Record `fn` into a graph.

        The garbage collector is off meanwhile: a collection during the capture can free a Warp
        array, whose synchronous cudaFree would invalidate it. No collection is forced before it
        either: with the trainer's ~0.5M Python objects a full one takes 0.2-0.3 s, and torch stopped
        forcing one per capture for that reason (torch.compiler.config.force_cudagraph_gc). Other
        threads (the checkpoint publisher waits on CUDA events) may go on using CUDA: "thread_local"
        capture allows that.
        """
        start = time.perf_counter()
        torch.cuda.synchronize(self.device)
        graph = torch.cuda.CUDAGraph()
        gc.disable()
        try:
            with torch.cuda.graph(graph, capture_error_mode="thread_local"):
                self.fn()
        except RuntimeError as err:
            raise RuntimeError(f"CUDA graph capture of {getattr(self.fn, '__name__', self.fn)} failed: {err}") from err
        finally:
            gc.enable()
        self.graph = graph
        self.record()
        self.capture_seconds = time.perf_counter() - start

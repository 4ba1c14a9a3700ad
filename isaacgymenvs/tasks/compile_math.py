"""torch.compile of a task's per-step math in a background thread, swapped in between two steps.

Why a thread: compiling Ant's three math functions took ~7 s of an H200 trainer's 23 s start-up
with warm caches (benchmarks/startup.py: 12.9 s to the task without compiling, 18.9 s with), and
far longer on a fresh machine, before the first epoch could run. The eager functions compute the
same values, only with more kernel launches, so training starts with them and the compiled ones
take over when ready.

Why it is safe:
- the three functions are pure: they read the task's tensors and return new ones;
- the warm-up call that triggers the compilation runs on clones of the physics state, on its own
  CUDA stream, so it writes nothing the trainer reads;
- the swap happens in the stepping thread, between two steps, so no step mixes the two;
- a compile may synchronize the device, which invalidates a CUDA-graph capture in progress: with the
  graphed agent on a GPU the compile starts only after every graph is captured
  (trainer/observers.CompileAfterCapture), and a capture waits while a compile runs (`running`).
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import threading
import time
from typing import Any

import torch

MATH_FUNCTIONS = ("_features", "_score", "_observe")


def compiler_of(env: Any) -> BackgroundCompile | None:
    """The pending math compile of the task behind an RL library's env wrapper (its `.task`), if any."""
    return getattr(getattr(env, "task", None), "math_compiler", None)


class BackgroundCompile:
    """Compiles `task`'s math in a daemon thread from `start()`; `swap_in()` installs the result."""

    def __init__(self, task: Any, names: tuple[str, ...] = MATH_FUNCTIONS) -> None:
        self.task, self.names = task, names
        self.compiled: dict[str, Any] | None = None
        self.error: str | None = None
        self.seconds = 0.0
        self._thread: threading.Thread | None = None
        self._done = threading.Event()
        self.deferred = False

    def defer(self) -> None:
        """Start only at `release()`: the graphed agent captures its CUDA graphs first (inductor may
        synchronize the device while it compiles, which invalidates a capture in progress)."""
        self.deferred = True

    def release(self) -> None:
        self.deferred = False
        self.start()

    @property
    def running(self) -> bool:
        return self._thread is not None and not self._done.is_set()

    def start(self) -> None:
        """Begin compiling (once, and not while deferred; later calls do nothing)."""
        if self._thread is None and not self.deferred:
            self._thread = threading.Thread(target=self._run, name="compile-task-math", daemon=True)
            self._thread.start()
            atexit.register(self._finish_before_exit)

    def _finish_before_exit(self) -> None:
        """A process that exits while inductor compiles aborts in C++ ('terminate called without an
        active exception'): a short run waits for the compile to end first."""
        if self._thread is not None and self._thread.is_alive():
            print("Waiting for the task-math compile to finish before exiting ...", flush=True)
            self._thread.join(timeout=300)

    def wait(self, timeout: float | None = None) -> bool:
        """True once compiling has finished, successfully or not."""
        return self._done.wait(timeout)

    def swap_in(self) -> bool:
        """In the stepping thread: install the compiled functions once ready. True when finished
        (the caller drops this object); the eager math stays if compiling failed."""
        if not self._done.is_set():
            return False
        if self.compiled is not None:
            for name, fn in self.compiled.items():
                setattr(self.task, name, fn)
            print(f"Task math compiled in {self.seconds:.1f} s (training ran it eagerly meanwhile).", flush=True)
        else:
            print(f"Warning: compiling the task math failed ({self.error}); it stays eager: same results, slower.",
                  flush=True)  # fmt: skip
        return True

    def _run(self) -> None:
        start = time.perf_counter()
        try:
            self.compiled = self._compile()
        except Exception as err:
            self.error = f"{type(err).__name__}: {(str(err).splitlines() or [''])[0][:200]}"
        self.seconds = time.perf_counter() - start
        self._done.set()

    def _compile(self) -> dict[str, Any]:
        """Compile each function and call it once, as VecTask.step does, to trigger the compilation."""
        task = self.task
        compiled = {name: torch.compile(getattr(task, name), dynamic=False) for name in self.names}
        cuda = task.device.type == "cuda"
        stream = torch.cuda.Stream(task.device) if cuda else None
        with torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext():
            if stream is not None:
                stream.wait_stream(torch.cuda.default_stream(task.device))
            live = task.physics.state()
            copies = {f.name: getattr(live, f.name).clone() for f in dataclasses.fields(live)}
            state = dataclasses.replace(live, **copies)
            features = compiled["_features"](state)
            compiled["_score"](features, torch.zeros(task.num_envs, dtype=torch.bool, device=task.device))
            compiled["_observe"](features)
            if stream is not None:
                stream.synchronize()
        return compiled

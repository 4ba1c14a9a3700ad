"""What a watching player costs a trainer, measured inside one training run.

Separate runs of the same GPU training differ by +/-12% in throughput (training is not
deterministic on a GPU: each run learns a different gait, meets different contacts and resets), far
more than the 1-2% a player may cost. So the player runs beside one trainer, and once it has
loaded its first policy it is frozen (SIGSTOP to its process group) and thawed (SIGCONT) in
alternating blocks of epochs. The ratio of the trainer's mean epoch rates in thawed and frozen
blocks is the player's cost with the run's drift cancelled; the first epoch of each block (the
transition) is left out. Publishing stays on throughout, so its own cost is not in this ratio
(`benchmarks/publish_overhead.py` interleaves that one).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.rates import mean_rate
from isaacgymenvs.trainer.progress import parse_progress

PLAYER_LOAD_SECONDS = 120


@dataclass
class Interleaved:
    """Per-epoch rates with the player running (on) and frozen (off), and the player's output."""

    on: list[float] = field(default_factory=list)
    off: list[float] = field(default_factory=list)
    player_output: list[str] = field(default_factory=list)
    trainer_output: list[str] = field(default_factory=list)
    tail_epochs: tuple[int, int] | None = None  # first and last epoch of the thawed tail, if any
    tail_seconds: tuple[float, float] | None = None  # wall clock (time.time) at those epochs

    @property
    def ratio(self) -> float:
        return mean_rate(self.on) / mean_rate(self.off)

    def summary(self) -> str:
        return (
            f"player running: {mean_rate(self.on):,.0f} env steps/s over {len(self.on)} epochs, frozen "
            f"{mean_rate(self.off):,.0f} over {len(self.off)}; ratio {self.ratio:.4f}"
        )


def run_interleaved(
    trainer_cmd: list[str],
    cwd: Path,
    env: dict[str, str],
    start_player: Callable[[Path], subprocess.Popen],
    block: int = 10,
    blocks: int | None = None,
    tail: int = 0,
    on_tail: Callable[[str], None] = lambda moment: None,
) -> Interleaved:
    """Train with `trainer_cmd`; the player (started in its own session) is toggled every `block` epochs.

    Without `blocks` the toggling lasts the whole training. With it, after `blocks` blocks the
    player stays thawed for `tail` more epochs (`on_tail("start")`, `on_tail("end")` mark them: the
    player must then follow every publish in real time) and the trainer is stopped (SIGINT).
    """
    result = Interleaved()
    loaded = threading.Event()
    proc = subprocess.Popen(trainer_cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    player, running, block_start, tail_start, tail_clock, done = None, True, None, None, 0.0, False

    def read_player(stream) -> None:
        for line in stream:
            result.player_output.append(line)
            if line.startswith("Loaded "):
                loaded.set()

    try:
        for line in proc.stdout:
            result.trainer_output.append(line)
            if player is None and line.startswith("Training will save to: "):
                player = start_player(Path(line.split(": ", 1)[1].strip()))
                player_started = time.time()
                threading.Thread(target=read_player, args=(player.stdout,), daemon=True).start()
            if (
                player is not None
                and not loaded.is_set()
                and (player.poll() is not None or time.time() - player_started > PLAYER_LOAD_SECONDS)
            ):  # a player that died or never loads would leave the run waiting for the whole training
                proc.send_signal(signal.SIGINT)
                why = "exited" if player.poll() is not None else f"loaded nothing in {PLAYER_LOAD_SECONDS} s"
                raise RuntimeError(f"the player {why}; its last output:\n" + "".join(result.player_output[-30:]))
            progress = parse_progress(line)
            if progress is None or not loaded.is_set():
                continue
            if block_start is None:
                block_start = progress.epoch  # the player has its first policy: blocks start here
                continue
            into_block = progress.epoch - block_start
            if done:
                continue
            if tail_start is not None:
                if progress.epoch - tail_start >= tail:
                    result.tail_epochs, result.tail_seconds = (tail_start, progress.epoch), (tail_clock, time.time())
                    on_tail("end")
                    proc.send_signal(signal.SIGINT)
                    done = True  # read the rest of the output
                continue
            if into_block % block:  # the block's first epoch is the transition: left out
                (result.on if running else result.off).append(progress.env_steps_per_s)
            if into_block % block == block - 1:
                if blocks is not None and (into_block + 1) // block >= blocks:
                    if not running:
                        os.killpg(player.pid, signal.SIGCONT)
                    tail_start, tail_clock = progress.epoch, time.time()
                    on_tail("start")
                    continue
                running = not running
                os.killpg(player.pid, signal.SIGCONT if running else signal.SIGSTOP)
    finally:
        if proc.poll() is None and not done:  # an error above: stop the trainer (max_iterations is huge)
            proc.send_signal(signal.SIGINT)
        proc.wait()
        if player is not None:
            with contextlib.suppress(ProcessLookupError):  # it may have died already
                os.killpg(player.pid, signal.SIGCONT)
            player.send_signal(signal.SIGINT)
            try:
                player.wait(timeout=120)
            except subprocess.TimeoutExpired:
                player.kill()
    if proc.returncode and result.tail_epochs is None:
        raise RuntimeError("training failed:\n" + "".join(result.trainer_output[-40:]))
    return result

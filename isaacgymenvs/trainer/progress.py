"""The trainer's one-line-per-epoch progress report: its format and its parser, in one place.

`epoch 12/500 | 28,974 env steps/s | mean episode reward 812.40 | elapsed 0:00:07 | ETA 0:04:31`
Benchmarks read training runs through `parse_progress`, so the format has one owner.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import timedelta

_LINE = re.compile(
    r"^epoch (\d+)(?:/\d+)? \| ([\d,]+) env steps/s \| mean episode reward (\S+) \| elapsed (\d+):(\d\d):(\d\d)"
)


@dataclass(frozen=True)
class Progress:
    """One parsed progress line (mean_reward is nan before the first finished episode, printed '-')."""

    epoch: int
    env_steps_per_s: float
    mean_reward: float
    elapsed_s: int


def format_duration(seconds: float) -> str:
    return str(timedelta(seconds=int(seconds))) if math.isfinite(seconds) else "?"


def format_reward(reward: float) -> str:
    """'-' until the first episode has finished (nan), else two decimals."""
    return f"{reward:.2f}" if math.isfinite(reward) else "-"


def format_progress(epoch: int, max_epochs: int, rate: float, reward: float, elapsed: float, eta: float) -> str:
    total = f"/{max_epochs}" if max_epochs > 0 else ""
    return (
        f"epoch {epoch}{total} | {rate:,.0f} env steps/s | mean episode reward {format_reward(reward)} | "
        f"elapsed {format_duration(elapsed)} | ETA {format_duration(eta)}"
    )


def parse_progress(line: str) -> Progress | None:
    """The Progress in a line of trainer output, or None for any other line."""
    m = _LINE.match(line.strip())
    if m is None:
        return None
    h, mi, s = int(m[4]), int(m[5]), int(m[6])
    reward = math.nan if m[3] == "-" else float(m[3])
    return Progress(int(m[1]), float(m[2].replace(",", "")), reward, 3600 * h + 60 * mi + s)


def parse_output(text: str) -> list[Progress]:
    """Every progress line of a trainer's output, in order."""
    return [p for p in map(parse_progress, text.splitlines()) if p is not None]

"""A quiet console: rl_games prints debug lines (`build mlp: 60`, `RunningMeanStd:  (60,)`,
`seq_length: 4`, ...) with plain print(); they are dropped here, by line, so that what remains is
our progress lines and the warnings that matter."""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Iterator
from typing import TextIO

# Line prefixes of rl_games 1.6.5 prints that tell a user nothing (each checked in its source).
RL_GAMES_NOISE = (
    "self.seed = ",
    "Started to train",
    "Started to play",
    "Exact experiment name requested from command line",
    "seq_length:",
    "current training device:",
    "build mlp:",
    "RunningMeanStd: ",
    "torch.compile: Disabled",
    "=> saving checkpoint",
    "saving next best rewards",
    "MAX EPOCHS NUM!",
    "MAX FRAMES NUM!",
    "fps step:",
    "global_rank = ",
    "====================broadcast",
    "Building Actor",
    "Building Critic",
)


class LineFilter:
    """A text stream that forwards whole lines except those starting with a noise prefix."""

    def __init__(self, target: TextIO, noise: tuple[str, ...] = RL_GAMES_NOISE) -> None:
        self.target, self.noise = target, noise
        self._partial = ""

    def write(self, text: str) -> int:
        *lines, self._partial = (self._partial + text).split("\n")
        for line in lines:
            if not line.startswith(self.noise):
                self.target.write(line + "\n")
        return len(text)

    def flush(self) -> None:
        self.target.flush()

    def close_line(self) -> None:
        if self._partial:
            self.target.write(self._partial)
            self._partial = ""
        self.flush()

    def __getattr__(self, name: str):  # isatty, encoding, fileno of the real stream
        return getattr(self.target, name)


@contextlib.contextmanager
def quiet_rl_games() -> Iterator[None]:
    """Drop rl_games' debug prints from stdout while the block runs."""
    stream = LineFilter(sys.stdout)
    with contextlib.redirect_stdout(stream):
        try:
            yield
        finally:
            stream.close_line()


def silence_library_warnings() -> None:
    """rl_games wraps its normalisers in torch.jit.script, which torch now deprecates on every run;
    that is rl_games' business, not the user's."""
    warnings.filterwarnings("ignore", message=r"`?torch\.jit\.\w+`? is deprecated")

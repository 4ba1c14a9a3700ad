"""Which run the player shows: wait for one to appear, and move to a newer one when it starts.

`experiment=` is an exact run name (never switches) or part of one: then the player follows the
newest matching run, like a person who reruns training and expects the watcher to keep up.
Matching itself is the protocol's (`protocol.match_experiment`); this module only polls it.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from isaacgymenvs import protocol
from isaacgymenvs.protocol import RunDir, RunMatch

POLL_SECONDS = 1.0


def playable(run: RunDir) -> bool:
    """A run the player can open: the trainer has written its resolved configuration.

    Anything at that name counts (lexists, not is_file): a FIFO or a link there is the run's, and
    opening it gives the one-sentence refusal instead of waiting for a file that never comes.
    """
    return os.path.lexists(run.config_file)


class RunFinder:
    """Find the run `experiment` matches; watch in the background for a newer match."""

    def __init__(
        self, train_dir: str | Path, experiment: str, log: Callable[[str], None] = print, task: str | None = None
    ) -> None:
        self.train_dir, self.experiment, self.log = train_dir, experiment, log
        self.task = task  # the task= the user gave, for the hint on how to start the trainer
        self.newer: RunMatch | None = None  # set by the watcher thread when a newer run matches
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def waiting_message(self) -> str:
        return f"Waiting for a run matching '{self.experiment}' in {self.train_dir}/ ..."

    @property
    def trainer_command(self) -> str:
        """The command that starts the run waited for (the task given, or a placeholder)."""
        return f"python isaacgymenvs/train_play.py task={self.task or '<Task>'} experiment={self.experiment}"

    def find(self) -> RunMatch | None:
        return protocol.match_experiment(self.train_dir, self.experiment, playable)

    def wait(self, stop: Callable[[], bool] = lambda: False) -> RunMatch | None:
        """Poll until a run matches (None if `stop()` turns true first)."""
        while not stop():
            match = self.find()
            if match is not None:
                return match
            time.sleep(POLL_SECONDS)
        return None

    def watch(self, current: RunMatch) -> None:
        """Start watching for a newer run than `current` (nothing to watch for an exact name)."""
        self.stop()
        self.newer = None
        if current.exact:
            return
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, args=(current, self._stop), name="run-finder", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _watch(self, current: RunMatch, stop: threading.Event) -> None:
        while not stop.wait(POLL_SECONDS):
            match = self.find()
            if match is not None and match.run != current.run and is_newer(match.run, current.run):
                self.log(f"A newer run matching '{self.experiment}' started: switching to {match.run.name}")
                self.newer = match
                return


def is_newer(candidate: RunDir, current: RunDir) -> bool:
    """By the timestamp in the names (the order `list_runs` uses), never by string order."""
    runs = [r.root for r in protocol.list_runs(candidate.root.parent)]
    try:
        return runs.index(candidate.root) < runs.index(current.root)
    except ValueError:  # the current run was deleted: anything matching is better
        return candidate.root in runs

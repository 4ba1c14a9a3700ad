"""What the panel lists: every checkpoint of a run (*.pth, rsl_rl's own model_<it>.pt, skrl's own
agent_<timestep>.pt and best_agent.pt), newest first, validated once per file version.

Validation loads each file with torch.load(weights_only=True) and checks task and shapes, so torn
or foreign files are marked and cannot be chosen. Results are cached by file identity (inode,
size, mtime): a refresh of 1000 unchanged checkpoints costs 1000 stat calls, not 1000 loads.
"""

from __future__ import annotations

import contextlib
import html
import io
import math
import os
import time
from bisect import bisect_left
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from omegaconf import OmegaConf

from isaacgymenvs import protocol
from isaacgymenvs.libraries import run_library
from isaacgymenvs.protocol import CheckpointFit, CheckpointRejected, RunDir
from isaacgymenvs.tasks import task_class

STALE_HEARTBEAT_SECONDS = 3.0
SCAN_BUDGET_SECONDS = 0.5  # checking (loading) files per scan; the rest are listed and checked next
UNCHECKED = "not checked yet"


@dataclass(frozen=True)
class CheckpointEntry:
    """One checkpoint file as the panel shows it."""

    name: str
    relative: str
    size: int
    mtime: float
    epoch: int | None
    reward: float | None
    problem: str | None  # why it cannot be loaded, or None

    @property
    def label(self) -> str:
        return f"{self.name} ({human_size(self.size)}) - {datetime.fromtimestamp(self.mtime):%Y-%m-%d %H:%M:%S}"


def human_size(size: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size} B"


def network_shapes(
    train: dict, num_obs: int, num_actions: int, library: str = "rl_games"
) -> dict[str, tuple[int, ...]] | None:
    """The state-dict shapes of the network the run's config builds (None if it cannot be built).

    The catalogue then marks as unloadable what the player would refuse at swap time (a wider hidden
    layer, a value head of another size, a missing sigma), instead of listing it as loadable.
    """
    from isaacgymenvs.policy import make_policy

    try:
        with contextlib.redirect_stdout(io.StringIO()):  # rl_games' builders print every layer
            return make_policy(library, train, num_obs, num_actions, "cpu", stochastic=False).shapes()
    except Exception:  # an odd or foreign train section: fall back to the observation/action check
        return None


def run_info(run: RunDir) -> CheckpointFit:
    """What the run's checkpoints must fit, from its params/config.yaml (raises OSError/ValueError/KeyError
    if unusable); a file of another library or network is listed as unusable."""
    params = protocol.read_params(run)
    task = str(params.task.name)
    cls = task_class(task)
    train = OmegaConf.to_container(params.train, resolve=True) if "train" in params else None
    library = run_library(params)
    shapes = network_shapes(train, cls.num_obs, cls.num_actions, library) if isinstance(train, dict) else None
    return CheckpointFit(task, cls.num_obs, cls.num_actions, shapes, library)


def without_twins(entries: list[CheckpointEntry]) -> list[CheckpointEntry]:
    """One row per epoch of rl_games' `last_*` history (entries newest first).

    At the last epoch rl_games saves the same weights twice, as `last_Ant_ep_500_rew_2377.71.pth`
    (periodic) and `last_Ant_ep_500_rew__2377.71_.pth` (max epochs reached): with latest.pth and
    Ant.pth that made four rows for one checkpoint. The newest of such twins is listed;
    `latest.pth` (what the trainer publishes) and `<Task>.pth` (rl_games' best) keep their rows,
    since they mean something else even when they hold the same weights.
    """
    seen: set[int] = set()
    kept = []
    for entry in entries:
        epoch = protocol.rl_games_name_fields(entry.name)[0] if entry.name.startswith("last_") else None
        if epoch is not None and epoch in seen:
            continue
        if epoch is not None:
            seen.add(epoch)
        kept.append(entry)
    return kept


class CheckpointCatalog:
    """Scan and validate a run's checkpoints (call from a worker thread, not the GUI thread)."""

    def __init__(self, run: RunDir, info: CheckpointFit) -> None:
        self.run, self.info = run, info
        protocol.clean_stale_temp_files(run)  # opened for following: a killed writer's leftovers go
        self._cache: dict[str, tuple[tuple[int, int, int], CheckpointEntry]] = {}
        self.unchecked = 0  # files listed by the last scan but not checked yet

    def scan(self, budget: float = SCAN_BUDGET_SECONDS) -> list[CheckpointEntry]:
        """All checkpoints in nn/ (*.pth, rsl_rl's model_<it>.pt, skrl's agent files), newest first (by
        modification time, never by name).

        Listing is cheap; checking a file means loading it. Files are checked newest first for at
        most `budget` seconds a scan (and at least one); the others are listed at once as UNCHECKED
        (their epoch and reward from the file name) and checked by the next scans (`unchecked` says how many are
        left): with 10,000 files the list stayed empty for 50-57 s while every file was loaded.
        """
        if not self.unchecked:  # once per full scan, not again for each batch of a large folder
            protocol.clean_stale_temp_files(self.run)  # a trainer killed since the last scan left temps
            protocol.remove_dead_statuses(self.run)  # and players of this machine that ended, their status
        try:  # nn/ reached without following a link (a link swapped in is refused, not listed)
            listed = protocol.scandir_in(self.run.root, "nn")
        except OSError as err:
            raise FileNotFoundError(f"cannot list {self.run.nn} ({err})") from None
        listed = sorted(
            ((name, st) for name, st in listed if protocol.is_checkpoint_name(name)),
            key=lambda item: item[1].st_mtime,
            reverse=True,
        )
        deadline = time.monotonic() + budget
        entries, self.unchecked, checked = [], 0, 0
        for name, st in listed:
            path = self.run.nn / name
            identity = (st.st_ino, st.st_size, st.st_mtime_ns)
            cached = self._cache.get(name)
            if cached is None or cached[0] != identity:
                if checked and time.monotonic() > deadline:  # at least one a scan: a slow machine gets there
                    self.unchecked += 1
                    entries.append(self._entry(path, st, None, None, UNCHECKED))
                    continue
                checked += 1
                cached = (identity, self._validate(path, st))
                self._cache[name] = cached
            entries.append(cached[1])
        live = {e.name for e in entries}
        for gone in set(self._cache) - live:
            del self._cache[gone]
        return without_twins(entries)

    def _validate(self, path: Path, st: os.stat_result) -> CheckpointEntry:
        """One entry; a file that cannot be used is listed with its reason, never an exception.

        A single hostile file must not make the whole list disappear, so anything the protocol's
        validator did not turn into a reason becomes one here.
        """
        epoch = reward = problem = None
        try:
            loaded = protocol.load_checkpoint_in_run(self.run, path, self.info)
            epoch, reward = loaded.epoch, loaded.mean_reward
        except CheckpointRejected as err:
            problem = str(err)
        except Exception as err:
            problem = f"{path.name} cannot be checked ({type(err).__name__}: {protocol.first_line(err)})"
        return self._entry(path, st, epoch, reward, problem)

    @staticmethod
    def _entry(path: Path, st: os.stat_result, epoch: int | None, reward: float | None, problem: str | None):
        named_epoch, named_reward = protocol.rl_games_name_fields(path.name)  # also for files that fail to load
        if named_epoch is None:  # rsl_rl's model_<it>.pt: iteration <it> finished, epoch it + 1
            named_epoch = protocol.rsl_rl_name_epoch(path.name)
        epoch = named_epoch if named_epoch is not None else epoch  # skrl's files: from their metadata
        reward = named_reward if named_reward is not None else reward
        return CheckpointEntry(path.name, f"nn/{path.name}", st.st_size, st.st_mtime, epoch, reward, problem)


_beats: dict[tuple[str, object], tuple[object, float]] = {}  # (host, pid) -> (beat, when it last moved)


def player_running(status: dict, now: float | None = None) -> bool:
    """On this machine: the player's process runs (its clock does not matter: one 1 h ahead was
    shown 'loaded' 30 s after it died). Elsewhere (a shared file system): its write count moved
    within STALE_HEARTBEAT_SECONDS of this panel's own clock; its heartbeat only for a first look."""
    alive = protocol.same_host_player_alive(status)
    if alive is not None:
        return alive
    key, beat, mono = (str(status.get("host")), status.get("pid")), status.get("beat"), time.monotonic()
    seen = _beats.get(key)
    if seen is not None and seen[0] == beat:
        return mono - seen[1] <= STALE_HEARTBEAT_SECONDS
    _beats[key] = (beat, mono)
    if seen is not None:
        return True  # it wrote since the last look
    heartbeat, now = status.get("heartbeat"), time.time() if now is None else now
    return (
        isinstance(heartbeat, (int, float)) and math.isfinite(heartbeat) and now - heartbeat <= STALE_HEARTBEAT_SECONDS
    )


def phase_of(status: dict) -> str:
    phase = status.get("phase")
    return phase if phase in ("loaded", "loading", "waiting", "failed") else "unknown"


def player_summaries(run: RunDir, now: float | None = None) -> list[tuple[str, dict]]:
    """(phase, status) of each player running on the run, most recently written first."""
    return [(phase_of(s), s) for s in protocol.read_statuses(run) if player_running(s, now)]


def player_summary(run: RunDir, now: float | None = None) -> tuple[str, dict | None]:
    """('loaded' | 'loading' | 'waiting' | 'failed' | 'player not running', status dict) of the most
    recent running player; with more than one, the status carries the others under 'other_players'."""
    running = player_summaries(run, now)
    if not running:
        return "player not running", protocol.read_status(run)
    summary, status = running[0]
    if len(running) > 1:
        status = {**status, "other_players": [{**s, "summary": p} for p, s in running[1:]]}
    return summary, status


def _shown(value: object, limit: int = 120) -> str:
    """A status value as escaped text: the status file is written by another process and may be hostile."""
    return html.escape(str(value)[:limit]) if value is not None and value != "" else "-"


def status_html(summary: str, status: dict) -> str:
    """The player-status line; any value of any type renders (never raises in the GUI thread)."""
    when = status.get("loaded_at")
    finite = isinstance(when, (int, float)) and not isinstance(when, bool) and math.isfinite(when)
    try:
        when_text = time.strftime("%H:%M:%S", time.localtime(when)) if finite else "-"
    except (OverflowError, OSError, ValueError):
        when_text = "-"
    reward = status.get("reward")
    reward_text = f"{reward:.1f}" if isinstance(reward, (int, float)) and not isinstance(reward, bool) else "-"
    text = (
        f"<b>{_shown(summary)}</b> ({_shown(status.get('mode'))}): {_shown(status.get('checkpoint'))} &nbsp; "
        f"epoch {_shown(status.get('epoch'))} &nbsp; training reward {reward_text} &nbsp; loaded at {when_text}"
    )
    if status.get("error"):
        text += f"<br><span style='color:#a33'>last load failed: {_shown(status['error'], 300)}</span>"
    others = status.get("other_players")
    if isinstance(others, list) and others:
        shown = ", ".join(
            f"pid {_shown(o.get('pid'))} on {_shown(o.get('host'))}: {_shown(o.get('summary'))} "
            f"{_shown(o.get('checkpoint'))}"
            for o in others[:8]
            if isinstance(o, dict)
        )
        text += f"<br>{len(others) + 1} players follow this run; also {shown}"
    return text


def curve_markers(rows: list[tuple[int, int, float]], entries: list[CheckpointEntry]) -> list[tuple[int, float, str]]:
    """(epoch, reward, name) of each loadable checkpoint on the reward curve.

    A checkpoint without its own reward (and latest.pth, whose reward is older than its epoch's)
    sits on the curve at its epoch.
    """
    epochs = [r[0] for r in rows]
    markers = []
    for e in entries:
        if e.epoch is None or e.problem:
            continue
        reward = e.reward
        if rows and (reward is None or e.name == protocol.LATEST_CHECKPOINT):
            i = min(bisect_left(epochs, e.epoch), len(rows) - 1)
            reward = rows[i][2] if reward is None else reward
        if reward is not None:
            markers.append((e.epoch, reward, e.name))
    return markers


def checkpoint_to_keep(entries: list[CheckpointEntry], status: dict | None) -> tuple[CheckpointEntry | None, str]:
    """What Manual keeps when nothing is chosen in the list: the policy the player shows now.

    A named file is kept as it is. latest.pth is replaced by every publish, so pinning it would go on
    following training; the newest saved file at or before its epoch (rl_games writes one beside it)
    is kept instead. Returns (entry, why) or (None, what the user should do).
    """
    shown = status.get("checkpoint") if isinstance(status, dict) else None
    if not isinstance(shown, str) or not shown:
        return None, "Choose a checkpoint in the list first, then Manual (no player shows one yet)."
    shown = shown[:120]  # from another process's file: shown in a message, so bounded
    files = [e for e in entries if not e.problem and e.name != protocol.LATEST_CHECKPOINT]  # loadable, kept on disk
    same = next((e for e in files if e.name == shown), None)
    if same is not None:
        return same, f"Manual: keeping {same.name}, the checkpoint the player shows."
    epoch = status.get("epoch")
    if isinstance(epoch, int) and not isinstance(epoch, bool):
        saved = [e for e in files if e.epoch is not None and e.epoch <= epoch]
        if saved:
            kept = max(saved, key=lambda e: (e.epoch, e.mtime))
            return kept, (f"Manual: keeping {kept.name} (epoch {kept.epoch}), the newest saved checkpoint of what "
                          f"the player shows ({shown} moves on with training).")  # fmt: skip
    return None, f"The player shows {shown}, which no saved file holds yet; choose one in the list, then Manual."


def request_checkpoint(run: RunDir, mode: str, relative: str | None) -> tuple[bool, str]:
    """Write the state file for a panel's Auto or Load Selected: (ok, the message line)."""
    try:
        state = protocol.write_state(run, mode, relative)
    except (OSError, ValueError) as err:
        return False, f"Could not write the state file: {err}"
    return True, f"Asked the player for {state.mode}" + (f": {state.checkpoint}" if state.checkpoint else "")


def list_summary(entries: list[CheckpointEntry]) -> str:
    """The line under both panels' lists, naming what cannot be loaded (a count alone sent the user
    looking): `12 checkpoints, 1 cannot be loaded (torn.pth: ...), 30 being checked; refreshed 14:02:11`."""
    bad = [e for e in entries if e.problem and e.problem != UNCHECKED]
    checking = sum(1 for e in entries if e.problem == UNCHECKED)
    note = ""
    if bad:
        named = "; ".join(f"{e.problem[:100]}" for e in bad[:2]) + ("; ..." if len(bad) > 2 else "")
        note += f", {len(bad)} cannot be loaded ({named})"
    if checking:
        note += f", {checking} being checked"
    plural = "" if len(entries) == 1 else "s"
    return f"{len(entries)} checkpoint{plural}{note}; refreshed {time.strftime('%H:%M:%S')}"


def export_selected(run: RunDir, relative: str) -> tuple[bool, str]:
    """Export one checkpoint of the run for a panel's Export button: (ok, the message line).

    Both panels call this from a worker thread (an export takes seconds); it never raises, so a
    failed export is a message and the panel stays up.
    """
    from isaacgymenvs.errors import UserError
    from isaacgymenvs.export import export_checkpoint

    path = protocol.checkpoint_in_run(run, relative)
    try:
        if path is None:
            raise UserError(f"{relative} is not a checkpoint inside {run.root}.")
        files = export_checkpoint(run, path)
    except UserError as err:
        return False, str(err)
    except Exception as err:
        return False, f"Export of {relative} failed: {protocol.first_line(err)}"
    return True, f"Exported {path.name} to {files.onnx.parent}: {', '.join(p.name for p in files)}"

"""A live session per library: a player follows a training run and reloads every publish, and the
page's checkpoint panel switches it to one of the library's own saved checkpoints and back to auto.

    python benchmarks/live_session.py                                     # rl_games rsl_rl skrl, Cartpole, CPU
    python benchmarks/live_session.py --libraries rsl_rl --task Ant --num-envs 32
    python benchmarks/live_session.py --save-freq 5 --library-save-every 10 --auto-reloads 5

For each library of `--libraries` (a library this checkout does not offer, or whose extra is not
installed, is skipped with one line), on the CPU and in a fresh train_dir:
1. Training as a user starts it (`train_play.py mode=train library=<lib> experiment=live_<lib>`),
   publishing `nn/latest.pth` every `--save-freq` epochs and writing the library's own periodic
   checkpoints every `--library-save-every` epochs (rl_games' `save_frequency`, rsl_rl's
   `runner.save_interval`, skrl's `agent.experiment.checkpoint_interval` in env steps).
2. A headless player following it (`mode=play experiment=live_<lib> headless=True`), started at
   the same time (it waits for the run). Publishes are counted as they happen (every atomic
   replace of `nn/latest.json` in nn/, seen through filesystem events, with its epoch); reloads
   are the player's `Loaded latest.pth (epoch N` console lines. A publish is missed when the player
   never loaded its epoch although it followed latest.pth then: publishes before the player's
   first load and those superseded while a manual choice was shown are not expected.
3. The checkpoint panel of the player's web page (`isaacgymenvs/panel/web.py`), built in-process on
   the run with its own viser server and driven as clicks would (choose a line, Load Selected;
   then Auto): the oldest of the library's own files in the list (not latest.pth) is loaded, the
   player's status file must name that file and its epoch, and must keep it through a publish;
   after Auto it must show latest.pth again and then load a newer publish.
4. Training is stopped with Ctrl+C (SIGINT to its process group, as a terminal sends it), which
   publishes once more; the player must load that too, then gets Ctrl+C itself.
One summary line per library; the exit code is 1 if any library failed. Every process started
runs in its own session and its whole group is killed at the end, also on failure or Ctrl+C.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("MUJOCO_GL", "egl")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from isaacgymenvs import protocol  # noqa: E402

ENTRY = str(REPO / "isaacgymenvs" / "train_play.py")
LOADED = re.compile(r"Loaded (?P<name>\S+) \(epoch (?P<epoch>\d+)")
TRAINER_PUBLISHED = re.compile(r"Published latest\.pth (?P<n>\d+) times")


@dataclass(frozen=True)
class Library:
    """What the benchmark needs to know of one PPO library: how to make it save its own periodic
    checkpoints during a short run, and which of the run's files are those."""

    name: str
    own_files: re.Pattern[str]  # the library's own periodic saves in nn/ (never latest.pth)
    save_override: Callable[[str, int], str]  # (task, every N epochs) -> the train_play.py override


def skrl_interval(task: str, every: int) -> str:
    """skrl counts its checkpoint interval in env steps per env: N iterations of `agent.rollouts` steps."""
    from omegaconf import OmegaConf

    rollouts = int(OmegaConf.load(REPO / "cfg" / "train" / f"{task}PPO_skrl.yaml").agent.rollouts)
    return f"train.agent.experiment.checkpoint_interval={every * rollouts}"


LIBRARIES = {
    lib.name: lib
    for lib in (
        # rl_games: nn/last_<Task>_ep_<N>_rew_<R>.pth (its best, nn/<Task>.pth, is saved only later)
        Library("rl_games", re.compile(r"^last_.+_ep_\d+_rew_.+\.pth$"),
                lambda task, every: f"train.params.config.save_frequency={every}"),
        Library("rsl_rl", protocol.RSL_RL_NAME, lambda task, every: f"train.runner.save_interval={every}"),
        Library("skrl", re.compile(r"^agent_\d+\.pt$"), skrl_interval),  # and best_agent.pt
    )
}  # fmt: skip


def unavailable(library: str) -> str | None:
    """Why this checkout cannot train `library` here, or None."""
    from isaacgymenvs.errors import UserError
    from isaacgymenvs.libraries import LIBRARIES as OFFERED
    from isaacgymenvs.libraries import require

    if library not in OFFERED or library not in LIBRARIES:
        return f"this checkout does not offer library={library} (it offers {', '.join(OFFERED)})"
    try:
        require(library)
    except UserError as err:
        return str(err)
    return None


# --- processes and what they print ---------------------------------------------------------------


class Process:
    """A train_play.py process in its own session, its output lines read by a thread (and kept with
    their times), so the benchmark can wait for a line and the group can be killed as a whole."""

    def __init__(self, label: str, args: list[str], cwd: Path, log: Path) -> None:
        self.label = label
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.log = open(log, "w")  # closed in stop()
        self.proc = subprocess.Popen([sys.executable, ENTRY, *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, start_new_session=True)  # fmt: skip
        self.lines: list[tuple[float, str]] = []
        self._reader = threading.Thread(target=self._read, name=f"{label}-output", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append((time.time(), line.rstrip("\n")))
            self.log.write(line)
            self.log.flush()

    def interrupt(self) -> None:
        """Ctrl+C as a terminal sends it: SIGINT to the whole foreground group."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGINT)

    def wait(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        """SIGKILL the group (whatever is left of it), reap, close."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(30)
        self._reader.join(timeout=5)
        self.proc.stdout.close()
        self.log.close()

    def tail(self, n: int = 6) -> str:
        return "\n".join(f"    {self.label}: {line}" for _, line in self.lines[-n:])


class PublishWatcher:
    """Every publish in the train_dir as it happens: the time of each atomic replace onto
    nn/latest.pth, and the epoch named by the nn/latest.json written right after it.

    Timed by latest.pth, not by its manifest: the player may load a checkpoint before the trainer
    has checksummed and written the manifest. Filesystem events, not polling: a poll slower than two
    publishes would merge them.
    """

    def __init__(self, train_dir: Path) -> None:
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer

        self.publishes: list[tuple[float, int | None]] = []  # (time latest.pth was replaced, its epoch)
        self._manifests = 0  # latest.json replaces seen: the n-th names the n-th publish's epoch
        watcher = self

        class Handler(FileSystemEventHandler):
            def on_moved(self, event: Any) -> None:
                dest = Path(os.fsdecode(event.dest_path))
                if dest.parent.name != "nn":
                    return
                if dest.name == protocol.LATEST_CHECKPOINT:
                    watcher.publishes.append((time.time(), None))
                elif dest.name == protocol.LATEST_MANIFEST and watcher._manifests < len(watcher.publishes):
                    epoch = (protocol.read_manifest(dest) or {}).get("epoch")
                    when = watcher.publishes[watcher._manifests][0]
                    watcher.publishes[watcher._manifests] = (when, epoch if isinstance(epoch, int) else None)
                    watcher._manifests += 1

        self._observer = Observer()
        self._observer.schedule(Handler(), str(train_dir), recursive=True)
        self._observer.daemon = True
        self._observer.start()

    def last_epoch(self) -> int | None:
        """The newest publish's epoch, once its manifest is in (None before)."""
        return self.publishes[-1][1] if self.publishes else None

    def stop(self) -> None:
        self._observer.stop()
        self._observer.join(timeout=5)


def wait_for(what: str, check: Callable[[], Any], timeout: float, alive: list[Process]) -> Any:
    """Poll `check` until it returns something truthy; a dead process or the timeout fails with `what`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        for proc in alive:
            if proc.proc.poll() is not None:
                raise SessionFailed(f"{proc.label} exited ({proc.proc.returncode}) while waiting for {what}")
        time.sleep(0.1)
    raise SessionFailed(f"timed out after {timeout:.0f} s waiting for {what}")


class SessionFailed(Exception):
    """One library's session failed; the message says at which step."""


# --- one library's session ------------------------------------------------------------------------


@dataclass
class Session:
    """What one library's session saw."""

    library: str
    publishes: list[tuple[float, int | None]] = field(default_factory=list)
    loads: list[tuple[float, str, int]] = field(default_factory=list)  # (time, file, epoch) from the player
    manual: tuple[float, float] | None = None  # (Load clicked, Auto clicked)
    chosen: str = ""
    chosen_epoch: int | None = None
    manual_seconds: float = float("nan")  # Load Selected -> the player's status names the file
    held_publishes: int = 0  # publishes while the manual choice was shown (none may be loaded)
    auto_epoch: int | None = None  # latest.pth's epoch the player showed right after Auto
    auto_seconds: float = float("nan")
    newer_epoch: int | None = None  # the first publish after that which the player loaded
    trainer_published: int | None = None  # the trainer's own count ('Published latest.pth N times')
    error: str | None = None
    tails: str = ""  # the processes' last lines, shown when the session failed

    def latest_loads(self) -> list[tuple[float, int]]:
        return [(t, e) for t, name, e in self.loads if name == protocol.LATEST_CHECKPOINT]

    def expected(self) -> tuple[list[int], int, int]:
        """(epochs the player should have loaded, publishes before it followed, superseded while manual).

        Before the player's first load it was not following yet (it starts on the newest); while a
        manual choice is shown only the publish current at Auto must be loaded (Auto shows it).
        """
        latest = self.latest_loads()
        known = [(when, epoch) for when, epoch in self.publishes if epoch is not None]
        if not latest:
            return [e for _, e in known], 0, 0
        first_epoch = latest[0][1]
        # the manual choice ends when the player shows latest.pth again (the newest publish by then)
        back = next((t for t, _ in latest if self.manual and t >= self.manual[1]), float("inf"))
        expected, before, superseded = [], 0, 0
        for i, (when, epoch) in enumerate(known):
            if epoch < first_epoch:
                before += 1
                continue
            if self.manual and self.manual[0] <= when < back:
                later = known[i + 1][0] if i + 1 < len(known) else float("inf")
                if later < back:  # a newer publish came before the player showed latest.pth again
                    superseded += 1
                    continue
            if epoch not in expected:  # a stop right after a publish republishes the same epoch
                expected.append(epoch)
        return expected, before, superseded

    def missed(self) -> list[int]:
        loaded = {e for _, e in self.latest_loads()}
        return [e for e in self.expected()[0] if e not in loaded]

    def line(self) -> str:
        expected, before, superseded = self.expected()
        missed = self.missed()
        trainer = f" (trainer says {self.trainer_published})" if self.trainer_published is not None else ""
        epochs = [e for _, e in self.publishes if e is not None]
        span = f", epochs {epochs[0]}..{epochs[-1]}" if epochs else ""
        if len(epochs) < len(self.publishes):
            span += f", {len(self.publishes) - len(epochs)} without a readable latest.json (not counted)"
        text = (
            f"{self.library:<9} publishes {len(self.publishes)}{trainer}{span} | player reloads of latest.pth "
            f"{len(self.latest_loads())}, {len(expected) - len(missed)}/{len(expected)} expected publishes loaded, "
            f"missed {len(missed)}{' ' + str(missed) if missed else ''} ({before} before it followed, "
            f"{superseded} superseded while manual)"
        )
        if self.chosen_epoch is not None or self.chosen:
            text += (
                f" | manual {self.chosen} (epoch {self.chosen_epoch}) shown in {self.manual_seconds:.1f} s, "
                f"held through {self.held_publishes} publishes"
            )
        if self.auto_epoch is not None:
            text += f" | auto: latest.pth epoch {self.auto_epoch} in {self.auto_seconds:.1f} s"
        if self.newer_epoch is not None:
            text += f", then epoch {self.newer_epoch}"
        ok = self.error is None and not missed
        text += " | OK" if ok else f" | FAILED: {self.error or 'missed publishes'}"
        shown = [f"{e}" if name == protocol.LATEST_CHECKPOINT else f"{name}:{e}" for _, name, e in self.loads]
        text += f"\n    published epochs {[e for _, e in self.publishes]}\n    player loaded {shown}"
        return text + (f"\n{self.tails}" if self.tails else "")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def player_status(run: protocol.RunDir, pid: int) -> dict[str, Any]:
    """This player's own status file (one per player: .player_status.<pid>.<host>.json)."""
    return next((s for s in protocol.read_statuses(run) if s.get("pid") == pid), {})


def run_session(library: Library, args: argparse.Namespace, parent: Path) -> Session:
    """One library's live session in `parent` (a fresh directory); processes are killed on return."""
    session = Session(library.name)
    train_dir = parent / "runs"
    train_dir.mkdir()
    experiment = f"live_{library.name}"
    watcher = PublishWatcher(train_dir)  # before the trainer: no publish can be missed
    procs: list[Process] = []
    panels: list = []  # (web panel, its viser server) once built
    try:
        trainer = Process("trainer", [
            f"task={args.task}", "mode=train", f"library={library.name}", "sim_device=cpu", "rl_device=cpu",
            f"num_envs={args.num_envs}", f"checkpoint_save_freq={args.save_freq}",
            f"max_iterations={args.max_iterations}",
            library.save_override(args.task, args.library_save_every), f"experiment={experiment}",
            f"train_dir={train_dir}", f"seed={args.seed}",
        ], parent, parent / "trainer.log")  # fmt: skip
        procs.append(trainer)
        player = Process("player", ["mode=play", f"experiment={experiment}", "headless=True",
                                    f"train_dir={train_dir}", "sim_device=cpu", "rl_device=cpu"],
                         parent, parent / "player.log")  # fmt: skip
        procs.append(player)
        drive(session, library, args, train_dir, trainer, player, watcher, panels)
    except SessionFailed as err:
        session.error = str(err)
    except KeyboardInterrupt:
        session.error = "interrupted (Ctrl+C)"
        raise
    except Exception as err:  # a bug here or in the panel: this library failed, the others still run
        session.error = f"{type(err).__name__}: {protocol.first_line(err)}"
    finally:
        for panel, server in panels:
            panel.stop()
            with contextlib.redirect_stdout(io.StringIO()):
                server.stop()
        for proc in procs:
            proc.stop()
        watcher.stop()
        session.publishes = list(watcher.publishes)
        session.loads = [(t, m["name"], int(m["epoch"])) for p in procs if p.label == "player"
                         for t, line in p.lines if (m := LOADED.search(line))]  # fmt: skip
        for proc in procs:
            counted = [int(m["n"]) for _, line in proc.lines if (m := TRAINER_PUBLISHED.search(line))]
            if proc.label == "trainer" and counted:
                session.trainer_published = counted[-1]
        if session.error is not None:
            session.tails = "\n".join(tail for p in procs if (tail := p.tail()))
    return session


def drive(
    session: Session,
    library: Library,
    args: argparse.Namespace,
    train_dir: Path,
    trainer: Process,
    player: Process,
    watcher: PublishWatcher,
    panels: list,
) -> None:
    """Steps 2-4 of the docstring; raises SessionFailed naming the step that did not happen."""
    import viser

    from isaacgymenvs.panel.catalog import run_info
    from isaacgymenvs.panel.web import NO_SELECTION, WebPanel

    both = [trainer, player]
    run_root = wait_for("the run's params/config.yaml", lambda: next(
        (p for p in train_dir.glob(f"live_{library.name}_*") if (p / "params" / "config.yaml").is_file()), None
    ), args.timeout, both)  # fmt: skip
    run = protocol.RunDir(run_root)
    pid = player.proc.pid

    def loads_of_latest() -> list[int]:
        return [int(m["epoch"]) for _, line in player.lines if (m := LOADED.search(line)) and m["name"] == "latest.pth"]

    # The player follows: a few publishes loaded before any click.
    wait_for(f"the player's first {args.auto_reloads} reloads of latest.pth",
             lambda: len(loads_of_latest()) >= args.auto_reloads, args.timeout, both)  # fmt: skip

    # The page's panel on the run, as the player's own page builds it (its own server here).
    with contextlib.redirect_stdout(io.StringIO()):
        server = viser.ViserServer(host="127.0.0.1", port=free_port(), verbose=False)
    panel = WebPanel(server, run, run_info(run))
    panels.append((panel, server))

    def own_entries() -> list:
        return [e for e in panel.entries.values() if library.own_files.match(e.name) and e.problem is None
                and e.epoch is not None]  # fmt: skip

    wait_for(f"one of {library.name}'s own checkpoints in the panel's list", own_entries, args.timeout, both)
    # Click right after the player loaded a publish, so no publish is in flight across the switch.
    loaded_before = len(loads_of_latest())
    wait_for("the player's next reload", lambda: len(loads_of_latest()) > loaded_before, args.timeout, both)
    entry = min(own_entries(), key=lambda e: e.epoch)
    label = next(label for label, e in panel.entries.items() if e.name == entry.name)
    session.chosen, session.chosen_epoch = entry.name, entry.epoch
    panel.choice.value = label  # what choosing the line in the page's dropdown sends
    clicked = time.time()
    session.manual = (clicked, float("inf"))
    panel.load_selected()
    state, _ = protocol.read_state(run)
    if state is None or (state.mode, state.checkpoint) != (protocol.MODE_MANUAL, entry.relative):
        raise SessionFailed(f"Load Selected wrote {state} to the state file, not manual {entry.relative}: "
                            f"{panel.message.content}")  # fmt: skip

    def shows_chosen() -> dict | None:
        status = player_status(run, pid)
        wanted = {"mode": "manual", "phase": "loaded", "checkpoint": entry.name, "epoch": entry.epoch}
        return status if all(status.get(k) == v for k, v in wanted.items()) else None

    wait_for(f"the player's status to show {entry.name} (epoch {entry.epoch})", shows_chosen, args.timeout, both)
    session.manual_seconds = time.time() - clicked
    # Kept through a publish: the player must not go back to latest.pth by itself.
    published = len(watcher.publishes)
    wait_for("a publish while the manual choice is shown", lambda: len(watcher.publishes) > published,
             args.timeout, both)  # fmt: skip
    time.sleep(2.0)  # time enough for a (wrong) reload of that publish
    if not shows_chosen():
        raise SessionFailed(f"the player left {entry.name} by itself: {player_status(run, pid)}")
    if "Manual" not in panel.mode_text.content or entry.name not in panel.current.content:
        raise SessionFailed(f"the page does not show the manual choice: {panel.mode_text.content!r}, "
                            f"{panel.current.content!r}")  # fmt: skip

    clicked = time.time()
    session.manual = (session.manual[0], clicked)
    panel.choose_auto()
    session.held_publishes = sum(1 for t, _ in watcher.publishes if session.manual[0] <= t < clicked)
    if panel.choice.value != NO_SELECTION:
        raise SessionFailed("Auto left a checkpoint chosen in the page's list")

    def follows_latest() -> dict | None:
        status = player_status(run, pid)
        fresh = isinstance(status.get("loaded_at"), (int, float)) and status["loaded_at"] >= clicked
        wanted = {"mode": "auto", "phase": "loaded", "checkpoint": protocol.LATEST_CHECKPOINT}
        return status if fresh and all(status.get(k) == v for k, v in wanted.items()) else None

    status = wait_for("the player's status to show latest.pth after Auto", follows_latest, args.timeout, both)
    session.auto_seconds = time.time() - clicked
    session.auto_epoch = status.get("epoch")
    at_auto = max((e for t, e in watcher.publishes if t < clicked and e is not None), default=None)
    if at_auto is not None and isinstance(session.auto_epoch, int) and session.auto_epoch < at_auto:
        raise SessionFailed(
            f"after Auto the player shows epoch {session.auto_epoch}, older than latest.pth's {at_auto}"
        )

    def newer() -> int | None:
        epoch = player_status(run, pid).get("epoch")
        return epoch if isinstance(epoch, int) and epoch > session.auto_epoch else None

    session.newer_epoch = wait_for(f"a publish newer than epoch {session.auto_epoch} loaded after Auto", newer,
                                   args.timeout, both)  # fmt: skip
    loaded_after = len(loads_of_latest())
    wait_for(f"{args.auto_reloads} more reloads", lambda: len(loads_of_latest()) >= loaded_after + args.auto_reloads,
             args.timeout, both)  # fmt: skip

    # Ctrl+C: the trainer publishes once more and exits 130; the player must load that publish.
    trainer.interrupt()
    code = trainer.wait(60)
    if code is None:
        raise SessionFailed("the trainer did not exit within 60 s of Ctrl+C")
    final = wait_for("the final publish's latest.json", watcher.last_epoch, 10, [])
    wait_for(f"the player to load the final publish (epoch {final})",
             lambda: player_status(run, pid).get("epoch") == final, args.timeout, [player])  # fmt: skip
    time.sleep(0.5)  # its console line
    player.interrupt()
    if player.wait(60) != 0:
        raise SessionFailed(f"the player did not exit cleanly on Ctrl+C ({player.proc.returncode})")
    if code != 128 + signal.SIGINT:
        raise SessionFailed(f"the trainer exited {code} on Ctrl+C, not {128 + signal.SIGINT}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--libraries", nargs="+", default=["rl_games", "rsl_rl", "skrl"])
    parser.add_argument("--task", default="Cartpole")
    parser.add_argument("--num-envs", type=int, default=64, help="trainer envs")
    parser.add_argument("--save-freq", type=int, default=10, help="checkpoint_save_freq: latest.pth every N epochs")
    parser.add_argument("--library-save-every", type=int, default=20, help="the library's own saves every N epochs")
    parser.add_argument("--auto-reloads", type=int, default=3, help="reloads before the switch and after Auto")
    parser.add_argument("--max-iterations", type=int, default=5000, help="a cap: Ctrl+C ends training earlier")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds each step may take")
    args = parser.parse_args()
    # Ctrl+C and a kill end the sessions; also when started as `... &` from a script, which ignores
    # SIGINT, an ignore its processes would inherit (then their Ctrl+C stop, step 4, would not come).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    failed = False
    for name in args.libraries:
        reason = unavailable(name)
        if reason is not None:
            print(f"{name:<9} skipped: {reason}", flush=True)
            continue
        try:
            with tempfile.TemporaryDirectory(prefix=f"live_{name}_") as tmp:
                session = run_session(LIBRARIES[name], args, Path(tmp))
        except KeyboardInterrupt:  # its processes are gone already (run_session's finally)
            print(f"{name:<9} interrupted; every process it started has been killed", flush=True)
            sys.exit(128 + signal.SIGINT)
        print(session.line(), flush=True)
        failed |= session.error is not None or bool(session.missed())
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()

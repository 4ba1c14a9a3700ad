"""Web viewer (viewer=web) on a CPU machine: page frame rate, publish-to-page latency, player CPU, trainer cost.

    python benchmarks/web_viewer.py [--part fps latency cpu throughput] [--out benchmarks/results_cpu]

Real processes throughout: `train_play.py` trainers and players (this tree, via PYTHONPATH), and a
headless Debian chromium driven by Playwright, whose page renders with SwiftShader (software WebGL)
on the same cores as everything else. Parts (all by default, ~8 minutes):

1. fps: 4 Ant envs, tab at 1280x720 then 800x450, first on a finished run, then while a CPU trainer
   trains the run the player follows. Received = websocket frames/s that carry scene updates
   (decoded: SceneNodeUpdate of /envs/* or the follow shift); drawn = requestAnimationFrame
   callbacks/s and, stricter, rAF ticks in which WebGL draw calls were made (the page renders on
   demand, so it only draws while the player streams). Target >= 30.
2. latency: trainer with checkpoint_save_freq=1; publish time = when this script's 5 ms poller sees
   nn/latest.pth replaced, its epoch = the one nn/latest.json (written right after) names; also
   reported from latest.json's change and from latest.pth's mtime. Shown time = when a
   MutationObserver in the page sees the HUD's `epoch N` reach that epoch. Same machine, same clock
   (Date.now() vs time.time()); the player's 'Loaded' line splits the path in two. Target p95 <= 0.5 s.
3. cpu: the player's CPU seconds per wall second on a finished run (no trainer), web with a tab,
   web without one, and the Qt window (offscreen, MuJoCo's renderer on EGL); the browser's own CPU
   (all chromium processes) beside the web figure.
4. throughput: one trainer; phases alone / web player + tab / alone / web player + tab; the ratio of
   the trainer's env steps/s attached/alone, read from its progress lines (player start-up and the
   first seconds after each switch left out). A last phase beside a plain busy-loop process (one
   core, no viewer) is the reference: what any process using a core costs this trainer here.
   `--trainer-env OMP_WAIT_POLICY=PASSIVE` reruns it with another trainer environment.

Every window also records how busy the whole machine was and how much of that was not ours: other
work on a 2-core machine moves all of these numbers.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.rates import mean_rate  # noqa: E402
from isaacgymenvs.trainer.progress import parse_progress  # noqa: E402

TRAIN_PLAY = REPO / "isaacgymenvs" / "train_play.py"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run"]  # fmt: skip
VIEWPORTS = ((1280, 720), (800, 450))
EPOCH = re.compile(r"epoch (\d+)")
STREAMED = re.compile(r"(\d+) fps streamed")

# Installed before the page's own scripts: rAF ticks, and ticks in which WebGL drew something (the
# draw-call hook proves a frame was rendered, not just that the browser ticked).
PAGE_COUNTERS = """
(() => {
  window.__raf = 0; window.__drawn = 0; window.__drew = false;
  for (const C of [window.WebGL2RenderingContext, window.WebGLRenderingContext]) {
    if (!C) continue;
    for (const n of ["drawElements", "drawArrays", "drawElementsInstanced", "drawArraysInstanced"]) {
      const orig = C.prototype[n];
      if (!orig) continue;
      C.prototype[n] = function (...args) { window.__drew = true; return orig.apply(this, args); };
    }
  }
  const tick = () => {
    window.__raf++;
    if (window.__drew) { window.__drawn++; window.__drew = false; }
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
})();
"""
# Latency part only: every change of the HUD's text with its wall-clock time.
HUD_OBSERVER = """() => {
  window.__hud = []; let last = null;
  const record = () => {
    const hud = document.querySelector('#hud');
    const text = hud ? hud.textContent : null;
    if (text !== null && text !== last) { last = text; window.__hud.push([Date.now(), text]); }
  };
  new MutationObserver(record).observe(document.body, {subtree: true, childList: true, characterData: true});
  record();
}"""


# --- child processes ----------------------------------------------------------------------------


class Output:
    """A child's output lines with arrival times, read by a thread so that its pipe never fills."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.lines: list[tuple[float, str]] = []
        self.closed = False
        self._cond = threading.Condition()
        threading.Thread(target=self._read, args=(proc.stdout,), daemon=True).start()

    def _read(self, stream) -> None:
        for line in stream:
            with self._cond:
                self.lines.append((time.time(), line.rstrip("\n")))
                self._cond.notify_all()
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def wait_for(self, match: Callable[[str], bool], timeout: float, what: str, start: int = 0) -> tuple[float, str]:
        """(arrival time, line) of the first line from index `start` on that `match`es."""
        deadline = time.time() + timeout
        with self._cond:
            while True:
                for t, line in self.lines[start:]:
                    if match(line):
                        return t, line
                start = len(self.lines)
                if self.closed or time.time() > deadline:
                    tail = "\n".join(line for _, line in self.lines[-15:])
                    state = "exited" if self.closed else f"gave no such line in {timeout:.0f} s"
                    raise RuntimeError(f"waiting for {what}: the process {state}; its last lines:\n{tail}")
                self._cond.wait(0.2)

    def rates(self, t0: float, t1: float) -> list[float]:
        """Env steps/s of the trainer's progress lines printed between t0 and t1."""
        with self._cond:
            lines = list(self.lines)
        return [p.env_steps_per_s for t, line in lines if t0 <= t < t1 and (p := parse_progress(line)) is not None]


@dataclass
class Child:
    name: str
    proc: subprocess.Popen
    out: Output

    @property
    def pid(self) -> int:
        return self.proc.pid


class Children:
    """Every process this benchmark starts, each in its own session so that its group can be ended."""

    def __init__(self) -> None:
        self.live: list[Child] = []

    def start(
        self, name: str, args: list[str], cwd: Path, env: dict[str, str] | None = None, script: Path | None = TRAIN_PLAY
    ) -> Child:
        """`python <script> <args>` (train_play.py unless told), this tree first on the import path."""
        full_env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
        full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
        argv = [sys.executable, *([str(script)] if script else []), *args]
        proc = subprocess.Popen(argv, cwd=cwd, env=full_env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)  # fmt: skip
        child = Child(name, proc, Output(proc))
        self.live.append(child)
        return child

    def stop(self, child: Child, grace: float = 10.0) -> None:
        """SIGTERM to the child's group (trainer and player stop cleanly on it), SIGKILL after `grace`."""
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            if child.proc.poll() is not None:
                break
            try:
                os.killpg(child.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                child.proc.wait(wait)
            except subprocess.TimeoutExpired:
                continue
        if child in self.live:
            self.live.remove(child)

    def stop_all(self) -> None:
        for child in list(self.live):
            self.stop(child, grace=5.0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def trainer_args(train_dir: Path, envs: int, iterations: int, save_freq: int | None) -> list[str]:
    freq = [] if save_freq is None else [f"checkpoint_save_freq={save_freq}"]
    return ["task=Ant", "mode=train", f"num_envs={envs}", f"max_iterations={iterations}", f"train_dir={train_dir}",
            *freq]  # fmt: skip


def start_trainer(
    children: Children, train_dir: Path, envs: int, save_freq: int | None, env: dict[str, str] | None = None
) -> tuple[Child, Path]:
    """A long CPU training run; returns it and its run directory once it has one."""
    trainer = children.start("trainer", trainer_args(train_dir, envs, 100000, save_freq), train_dir, env)
    _, line = trainer.out.wait_for(lambda s: s.startswith("Training will save to: "), 120, "the trainer's run")
    return trainer, Path(line.split(": ", 1)[1].strip())


def start_player(children: Children, train_dir: Path, viewer: str, port: int = 0) -> Child:
    """A player following the newest Ant run in train_dir; returns once it serves the page (web) or
    has loaded a policy (window)."""
    args = ["task=Ant", "mode=play", "experiment=Ant", f"viewer={viewer}", f"train_dir={train_dir}"]
    env = {}
    if viewer == "web":
        args.append(f"web_port={port}")
    else:
        env = {"QT_QPA_PLATFORM": "offscreen", "MUJOCO_GL": "egl"}
    player = children.start(f"player ({viewer})", args, train_dir, env)
    ready = (lambda s: s.startswith("Watching ")) if viewer == "web" else (lambda s: s.startswith("Loaded "))
    player.out.wait_for(ready, 180, f"the {viewer} player")
    return player


# --- CPU accounting -----------------------------------------------------------------------------


def process_tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def cpu_of(procs: list[psutil.Process]) -> dict[tuple[int, float], float]:
    """CPU seconds (user + system) per process, keyed by (pid, start time) so a reused pid is a new one."""
    out = {}
    for p in procs:
        try:
            t = p.cpu_times()
            out[(p.pid, p.create_time())] = t.user + t.system
        except psutil.NoSuchProcess:
            continue
    return out


def chromium_procs() -> list[psutil.Process]:
    """Our browser's processes (descendants of this script named chromium/chrome)."""
    procs = []
    for p in psutil.Process().children(recursive=True):
        try:
            if p.name().startswith(("chrom", "headless")):
                procs.append(p)
        except psutil.NoSuchProcess:
            continue
    return procs


def machine_busy() -> float:
    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0)


class CpuWindow:
    """CPU seconds used by named process groups and by the whole machine between start and stop."""

    def __init__(self, groups: dict[str, Callable[[], list[psutil.Process]]]) -> None:
        self.groups = groups
        self.before = {name: cpu_of(get()) for name, get in groups.items()}
        self.ours_before = cpu_of(process_tree(os.getpid()))
        self.machine_before, self.t0 = machine_busy(), time.time()

    def stop(self) -> dict[str, float]:
        """Per group, the machine, ours (this script's tree) and the rest: cores used (CPU s per wall s)."""
        wall = time.time() - self.t0
        out = {}
        for name, get in self.groups.items():
            after = cpu_of(get())
            out[name] = sum(v - self.before[name].get(k, 0.0) for k, v in after.items()) / wall
        ours_after = cpu_of(process_tree(os.getpid()))
        ours = sum(v - self.ours_before.get(k, 0.0) for k, v in ours_after.items()) / wall
        out["machine"] = (machine_busy() - self.machine_before) / wall
        out["not ours"] = max(0.0, out["machine"] - ours)
        out["wall_s"] = wall
        return out


# --- the browser --------------------------------------------------------------------------------


def carries_scene(payload: bytes | str, decompress: Callable[..., bytes], decode: Callable[[bytes], Any]) -> bool:
    """Whether one viser websocket frame updates the scene: its header is the msgpack's raw and
    zstd-compressed sizes (8 bytes each), then the compressed msgpack {messages: [...], ...}."""
    if isinstance(payload, str) or len(payload) < 16:
        return False
    raw, packed = int.from_bytes(payload[:8], "little"), int.from_bytes(payload[8:16], "little")
    try:
        messages = decode(decompress(payload[16 : 16 + packed], max_output_size=raw))["messages"]
    except Exception:  # an unknown frame is simply not counted as a scene update
        return False
    return any(
        (m.get("type") == "SceneNodeUpdateMessage" and str(m.get("name", "")).startswith("/envs/"))
        or (m.get("type") == "SetPositionMessage" and m.get("name") == "/world")
        for m in messages
    )


class Tab:
    """One page of the player; optionally timestamps every websocket frame that carries a scene update."""

    def __init__(self, browser, url: str, viewport: tuple[int, int], count_frames: bool) -> None:
        self.scene_frames: list[float] = []
        self.frames: list[float] = []
        self.page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
        self.page.add_init_script(PAGE_COUNTERS)
        if count_frames:
            import msgspec
            import zstandard

            decompress, decode = zstandard.ZstdDecompressor().decompress, msgspec.msgpack.decode

            def on_frame(payload: bytes | str) -> None:
                now = time.time()
                self.frames.append(now)
                if carries_scene(payload, decompress, decode):
                    self.scene_frames.append(now)

            self.page.on("websocket", lambda ws: ws.on("framereceived", on_frame))
        self.page.goto(url)

    def hud(self) -> str:
        return self.page.evaluate("() => document.querySelector('#hud')?.textContent ?? ''")

    def wait_hud(self, pattern: str, timeout: float = 120.0) -> str:
        """Until the HUD matches the regex `pattern` (e.g. a policy loaded: `epoch \\d+`); its text."""
        self.page.wait_for_function(
            "p => new RegExp(p).test(document.querySelector('#hud')?.textContent ?? '')",
            arg=pattern,
            timeout=timeout * 1e3,
            polling=200,
        )
        return self.hud()

    def pump(self, seconds: float) -> None:
        """Wait while Playwright delivers the page's events (a plain sleep would hold them back)."""
        self.page.wait_for_timeout(seconds * 1e3)

    def counters(self) -> tuple[float, int, int]:
        return tuple(self.page.evaluate("() => [performance.now(), window.__raf, window.__drawn]"))

    def close(self) -> None:
        self.page.close()


@contextmanager
def chromium() -> Iterator[Any]:
    """Playwright's chromium (Debian's binary); closed, and any process of it left over killed, at the end."""
    from playwright.sync_api import sync_playwright

    leftovers: list[psutil.Process] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            leftovers = chromium_procs()  # while they are still this script's descendants
            browser.close()
    for p in leftovers:
        try:
            if p.is_running():  # psutil compares start times: never another process that got the pid
                p.kill()
        except psutil.NoSuchProcess:
            pass


def measure_tab(tab: Tab, seconds: float, player: Child, trainer: Child | None = None) -> dict[str, Any]:
    """Received and drawn frame rates, the player's own streamed fps (HUD), CPU, trainer rate, over `seconds`."""
    groups = {"player": lambda: process_tree(player.pid), "browser": chromium_procs}
    if trainer is not None:
        groups["trainer"] = lambda: process_tree(trainer.pid)
    cpu = CpuWindow(groups)
    ms0, raf0, drawn0 = tab.counters()
    t0 = time.time()
    streamed = []
    while time.time() - t0 < seconds:
        tab.pump(1.0)
        m = STREAMED.search(tab.hud())
        if m:
            streamed.append(int(m[1]))
    ms1, raf1, drawn1 = tab.counters()
    t1 = time.time()
    page_s = (ms1 - ms0) / 1e3
    result = {
        "received_fps": sum(t0 <= t < t1 for t in tab.scene_frames) / (t1 - t0),
        "ws_frames_per_s": sum(t0 <= t < t1 for t in tab.frames) / (t1 - t0),
        "raf_per_s": (raf1 - raf0) / page_s,
        "drawn_fps": (drawn1 - drawn0) / page_s,
        "streamed_fps_hud": statistics.mean(streamed) if streamed else float("nan"),
        "cpu": cpu.stop(),
    }
    if trainer is not None:
        result["trainer_env_steps_per_s"] = mean_rate(trainer.out.rates(t0, t1))
    return result


# --- parts --------------------------------------------------------------------------------------


def pretrain(children: Children, train_dir: Path, envs: int, epochs: int) -> Path:
    """A short finished Ant run (its latest.pth) for the parts without a trainer."""
    trainer = children.start("pretrain", trainer_args(train_dir, envs, epochs, 10), train_dir)
    trainer.proc.wait()
    children.stop(trainer)
    runs = sorted(train_dir.glob("Ant_*/nn/latest.pth"))
    if trainer.proc.returncode != 0 or not runs:
        tail = "\n".join(line for _, line in trainer.out.lines[-15:])
        raise RuntimeError(f"pretraining failed (exit {trainer.proc.returncode}):\n{tail}")
    return runs[-1].parent.parent


def fps_line(label: str, r: dict[str, Any]) -> str:
    c = r["cpu"]
    trainer = f", trainer {r['trainer_env_steps_per_s']:,.0f} env steps/s" if "trainer_env_steps_per_s" in r else ""
    return (
        f"  {label:<28} received {r['received_fps']:5.1f} fps ({r['ws_frames_per_s']:.0f} ws frames/s), "
        f"drawn {r['drawn_fps']:5.1f} fps (rAF {r['raf_per_s']:.1f}/s), player streams {r['streamed_fps_hud']:.0f}; "
        f"CPU cores: player {c['player']:.2f}, browser {c['browser']:.2f}"
        + (f", trainer {c['trainer']:.2f}" if "trainer" in c else "")
        + f", machine {c['machine']:.2f}/2 (not ours {c['not ours']:.2f}){trainer}"
    )


def part_fps(children: Children, browser, train_dir: Path, args: argparse.Namespace, say: Callable) -> dict:
    """Frame rates at both viewports on the finished run, then while a trainer trains a newer run."""
    port = free_port()
    player = start_player(children, train_dir, "web", port)
    tab = Tab(browser, f"http://127.0.0.1:{port}", VIEWPORTS[0], count_frames=True)
    results: dict[str, Any] = {}
    trainer = None
    try:
        tab.wait_hud(r"epoch \d+")
        tab.pump(args.warmup)  # a freshly loaded page draws slower for its first seconds
        for with_trainer in (False, True):
            if with_trainer:
                trainer, _ = start_trainer(children, train_dir, args.trainer_envs, args.save_freq, args.trainer_env)
                tab.wait_hud(r"switched to newer run[\s\S]*epoch \d+", timeout=180)  # the player follows it
            for w, h in VIEWPORTS:
                tab.page.set_viewport_size({"width": w, "height": h})
                tab.pump(args.settle)
                key = f"{'trainer' if with_trainer else 'alone'} {w}x{h}"
                results[key] = measure_tab(tab, args.seconds, player, trainer)
                say(fps_line(("with trainer, " if with_trainer else "no trainer, ") + f"{w}x{h}:", results[key]))
    finally:
        tab.close()
        if trainer is not None:
            children.stop(trainer)
        children.stop(player)
    return results


@dataclass
class Publish:
    epoch: int
    replaced: float  # when the poller saw latest.pth replaced (the publish itself)
    seen: float  # when it saw latest.json, written right after, name this epoch
    pth_mtime: float  # latest.pth's mtime: its bytes written, before the digest and the rename


@dataclass
class PublishPoller:
    """Polls nn/latest.pth and nn/latest.json every 5 ms: each replace of the checkpoint, with the
    epoch that the manifest written after it names."""

    run_dir: Path
    publishes: list[Publish] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self) -> None:
        pth, manifest = self.run_dir / "nn" / "latest.pth", self.run_dir / "nn" / "latest.json"
        last_pth = last_json = None
        replaced, mtime = math.nan, math.nan
        while not self.stop.is_set():
            now = time.time()
            try:
                st = os.stat(pth)
                if (st.st_ino, st.st_mtime_ns) != last_pth:
                    last_pth, replaced, mtime = (st.st_ino, st.st_mtime_ns), now, st.st_mtime
                st = os.stat(manifest)
                if (st.st_ino, st.st_mtime_ns, st.st_size) != last_json:
                    epoch = int(json.loads(manifest.read_text())["epoch"])
                    last_json = (st.st_ino, st.st_mtime_ns, st.st_size)
                    self.publishes.append(Publish(epoch, replaced, now, mtime))
            except (OSError, ValueError, KeyError, TypeError):
                pass  # not there yet, or replaced between stat and read: next poll
            time.sleep(0.005)


def pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def part_latency(children: Children, browser, tmp: Path, args: argparse.Namespace, say: Callable) -> dict:
    """Publish-to-page latency with checkpoint_save_freq=1 and one tab open."""
    train_dir = tmp / "latency"
    train_dir.mkdir()
    trainer, run_dir = start_trainer(children, train_dir, args.trainer_envs, 1, args.trainer_env)
    port = free_port()
    player = tab = None
    poller = PublishPoller(run_dir)
    try:
        player = start_player(children, train_dir, "web", port)
        tab = Tab(browser, f"http://127.0.0.1:{port}", VIEWPORTS[0], count_frames=False)
        tab.wait_hud(r"epoch \d+")
        tab.page.evaluate(HUD_OBSERVER)
        poller.start()
        deadline = time.time() + args.latency_timeout
        while len(poller.publishes) < args.publishes + 1 and time.time() < deadline:
            tab.pump(0.5)
        tab.pump(2.0)  # the last publishes reach the page
        hud = [(t / 1e3, text) for t, text in tab.page.evaluate("() => window.__hud")]
    finally:
        poller.stop.set()
        if tab is not None:
            tab.close()
        if player is not None:
            children.stop(player)
        children.stop(trainer)
    shown = [(t, int(m[1])) for t, text in hud if (m := EPOCH.search(text))]
    loaded = re.compile(r"Loaded latest\.pth \(epoch (\d+)")
    applied = [(t, int(m[1])) for t, line in player.out.lines if (m := loaded.match(line))]
    rows, skipped, missing = [], 0, 0
    for p in poller.publishes[1:]:  # the first one may predate the observer
        first = next(((t, e) for t, e in shown if e >= p.epoch), None)
        if first is None:
            missing += 1
            continue
        skipped += first[1] != p.epoch
        rows.append({**vars(p), "shown": first[0], "shown_epoch": first[1],
                     "applied": next((t for t, e in applied if e >= p.epoch), math.nan)})  # fmt: skip
    if not rows:
        raise RuntimeError(f"no publish reached the page ({len(poller.publishes)} publishes, {len(shown)} HUD epochs)")

    def stats(start: str, end: str = "shown") -> dict[str, float]:
        values = [r[end] - r[start] for r in rows if not math.isnan(r[end] - r[start])]
        if not values:
            return {"p50": math.nan, "p95": math.nan, "max": math.nan}
        return {"p50": pct(values, 50), "p95": pct(values, 95), "max": max(values)}

    intervals = [b.replaced - a.replaced for a, b in zip(poller.publishes, poller.publishes[1:], strict=False)]
    result = {
        "publishes": len(rows),
        "shown_only_as_later_epoch": skipped,
        "never_shown": missing,
        "publish_interval_median_s": statistics.median(intervals) if intervals else math.nan,
        "latency_s": stats("replaced"),
        "latency_from_manifest_seen_s": stats("seen"),
        "latency_from_pth_mtime_s": stats("pth_mtime"),
        "replaced_to_applied_s": stats("replaced", "applied"),
        "applied_to_shown_s": stats("applied"),
        "rows": rows,
    }

    def show(label: str, key: str) -> None:
        r = result[key]
        say(f"  {label:<46} p50 {r['p50']:.3f} s, p95 {r['p95']:.3f} s, max {r['max']:.3f} s")

    show("latest.pth replaced -> HUD shows its epoch:", "latency_s")
    say(
        f"    over {len(rows)} publishes, one every {result['publish_interval_median_s']:.2f} s (median); "
        f"{skipped} reached the page only as a later epoch, {missing} not by the end"
    )
    show("from latest.json seen (written after it):", "latency_from_manifest_seen_s")
    show("from latest.pth's mtime (before digest+rename):", "latency_from_pth_mtime_s")
    show("replaced -> player applied ('Loaded' line):", "replaced_to_applied_s")
    show("applied -> HUD in the page (refresh 0.25 s):", "applied_to_shown_s")
    return result


def cpu_window(seconds: float, groups: dict[str, Callable[[], list[psutil.Process]]], tab: Tab | None = None) -> dict:
    cpu = CpuWindow(groups)
    if tab is None:
        time.sleep(seconds)
        return cpu.stop()
    ms0, raf0, drawn0 = tab.counters()
    tab.pump(seconds)
    ms1, raf1, drawn1 = tab.counters()
    out = cpu.stop()
    out["drawn_fps"] = (drawn1 - drawn0) / ((ms1 - ms0) / 1e3)
    return out


def part_cpu(children: Children, browser, train_dir: Path, args: argparse.Namespace, say: Callable) -> dict:
    """The player's CPU per wall second (no trainer): web without a tab, web with one, the Qt window."""
    results: dict[str, Any] = {}

    def line(label: str, r: dict) -> str:
        extra = f", browser {r['browser']:.2f} cores (page draws {r['drawn_fps']:.1f} fps)" if "browser" in r else ""
        return (
            f"  {label:<34} player {r['player']:.2f} cores{extra}; machine {r['machine']:.2f}/2 "
            f"(not ours {r['not ours']:.2f}) over {r['wall_s']:.0f} s"
        )

    port = free_port()
    player = start_player(children, train_dir, "web", port)
    try:
        time.sleep(args.settle)
        results["web, no tab"] = cpu_window(args.cpu_seconds, {"player": lambda: process_tree(player.pid)})
        say(line("viewer=web, no tab:", results["web, no tab"]))
        tab = Tab(browser, f"http://127.0.0.1:{port}", VIEWPORTS[0], count_frames=False)
        try:
            tab.wait_hud(r"epoch \d+")
            tab.pump(args.settle)
            groups = {"player": lambda: process_tree(player.pid), "browser": chromium_procs}
            results["web, one tab"] = cpu_window(args.cpu_seconds, groups, tab)
            say(line("viewer=web, one tab 1280x720:", results["web, one tab"]))
        finally:
            tab.close()
    finally:
        children.stop(player)
    window = start_player(children, train_dir, "window")
    try:
        time.sleep(args.settle)
        results["window"] = cpu_window(args.cpu_seconds, {"player": lambda: process_tree(window.pid)})
        say(line("viewer=window (Qt offscreen, EGL):", results["window"]))
    finally:
        children.stop(window)
    return results


PHASE_LABELS = {
    "alone": "alone", "remote": "web player + remote tab", "web": "web player + local tab", "busy": "busy-loop process",
}  # fmt: skip
# A tab on another machine (the usual case: the page is watched through an SSH tunnel from a laptop)
# costs this machine the player and the stream, not the drawing: a websocket client that takes every
# frame and draws nothing stands in for it.
REMOTE_TAB = """
import sys, viser
from websockets.sync.client import connect
with connect(sys.argv[1], subprotocols=[f"viser-v{viser.__version__}"], max_size=None) as ws:
    while True:
        ws.recv()
"""


def part_throughput(children: Children, browser, tmp: Path, args: argparse.Namespace, say: Callable) -> dict:
    """One trainer; phases alone / web player with a remote tab / with a local chromium tab alternate;
    steps/s per phase and the ratios.

    A last phase beside a plain busy-loop process (one core, nothing else) tells the viewer's own
    cost apart from what any process using a core does to the trainer on this machine."""
    train_dir = tmp / "throughput"
    train_dir.mkdir()
    trainer, _ = start_trainer(children, train_dir, args.trainer_envs, args.save_freq, args.trainer_env)
    phases: list[dict[str, Any]] = []
    kinds = ["alone", "remote", "web", "alone", "remote", "web"] + ([] if args.no_reference else ["busy"])
    try:
        trainer.out.wait_for(lambda s: (p := parse_progress(s)) is not None and p.epoch >= 3, 120, "epoch 3")
        for kind in kinds:
            player = tab = other = None
            try:
                if kind == "web":
                    port = free_port()
                    player = start_player(children, train_dir, "web", port)
                    tab = Tab(browser, f"http://127.0.0.1:{port}", VIEWPORTS[0], count_frames=False)
                    tab.wait_hud(r"epoch \d+")
                elif kind == "remote":
                    port = free_port()
                    player = start_player(children, train_dir, "web", port)
                    player.out.wait_for(lambda s: "Loaded " in s, 120, "the player's first policy")
                    other = children.start("remote tab", ["-c", REMOTE_TAB, f"ws://127.0.0.1:{port}"], tmp, script=None)
                elif kind == "busy":
                    other = children.start("busy loop", ["-c", "while True: pass"], tmp, script=None)
                wait = tab.pump if tab is not None else time.sleep
                wait(args.settle)
                t0 = time.time()
                cpu = CpuWindow({"trainer": lambda: process_tree(trainer.pid)})
                wait(args.phase_seconds)
                rates = trainer.out.rates(t0, time.time())
                used = cpu.stop()
            finally:
                if tab is not None:
                    tab.close()
                for child in (player, other):
                    if child is not None:
                        children.stop(child)
            phase = {"kind": kind, "epochs": len(rates), "env_steps_per_s": mean_rate(rates), "cpu": used}
            phases.append(phase)
            say(
                f"  phase {len(phases)} {PHASE_LABELS[kind]:<18} {phase['env_steps_per_s']:7,.0f} env steps/s over "
                f"{len(rates):3d} epochs; trainer {used['trainer']:.2f} cores, machine {used['machine']:.2f}/2 "
                f"(not ours {used['not ours']:.2f})"
            )
    finally:
        children.stop(trainer)

    def rate(kind: str) -> float:
        return mean_rate([p["env_steps_per_s"] for p in phases if p["kind"] == kind])

    alone, on, remote = rate("alone"), rate("web"), rate("remote")
    result = {"phases": phases, "alone": alone, "attached": on, "ratio": on / alone, "remote": remote,
              "remote_ratio": remote / alone}  # fmt: skip
    say(f"  trainer throughput, web player + remote tab / alone: {remote / alone:.3f} ({remote:,.0f} vs {alone:,.0f})")
    say(f"  trainer throughput, web player + local chromium tab / alone: {on / alone:.3f} ({on:,.0f} env steps/s)")
    if not args.no_reference:
        result["busy_ratio"] = rate("busy") / alone
        say(f"  beside a busy-loop process instead (reference): {result['busy_ratio']:.3f}")
    return result


def summary(results: dict[str, Any]) -> list[str]:
    """The headline figures against the issue's targets, one row each."""
    rows: list[tuple[str, str, str]] = []

    def check(ok: bool) -> str:
        return "met" if ok else "MISSED"

    for key, r in results.get("fps", {}).items():
        setting, size = key.rsplit(" ", 1)
        label = f"page fps {size}, {'no trainer' if setting == 'alone' else 'trainer running'}"
        value = f"drawn {r['drawn_fps']:.1f}, received {r['received_fps']:.1f}"
        rows.append((label, value, f">= 30: {check(r['drawn_fps'] >= 30)}"))
    if "latency" in results:
        lat = results["latency"]["latency_s"]
        rows.append(("publish-to-page latency", f"p50 {lat['p50']:.2f} s, p95 {lat['p95']:.2f} s",
                     f"p95 <= 0.5 s: {check(lat['p95'] <= 0.5)}"))  # fmt: skip
    for key, r in results.get("cpu", {}).items():
        browser = f" + browser {r['browser']:.2f}" if "browser" in r else ""
        rows.append((f"player CPU, {key}", f"{r['player']:.2f} cores{browser}", ""))
    if "throughput" in results:
        t = results["throughput"]
        rows.append(("trainer with web player + remote tab / alone", f"{t['remote_ratio']:.3f}", ""))
        rows.append(("trainer with web player + local chromium / alone", f"{t['ratio']:.3f}", ""))
        if "busy_ratio" in t:
            rows.append(("trainer beside a busy loop / alone", f"{t['busy_ratio']:.3f}", "(reference)"))
    if not rows:
        return []
    width = max(len(r[0]) for r in rows)
    vwidth = max(len(r[1]) for r in rows)
    return ["summary:", *(f"  {a:<{width}}  {b:<{vwidth}}  {c}".rstrip() for a, b, c in rows)]


# --- main ---------------------------------------------------------------------------------------

PARTS = ("fps", "latency", "cpu", "throughput")
ORDER = ("cpu", "fps", "latency", "throughput")  # the finished run first, while nothing trains


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--seconds", type=float, default=10.0, help="fps: measuring window per viewport")
    parser.add_argument("--cpu-seconds", type=float, default=20.0, help="cpu: measuring window per viewer")
    parser.add_argument("--phase-seconds", type=float, default=30.0, help="throughput: length of each phase")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds left out after each change")
    parser.add_argument("--publishes", type=int, default=20, help="latency: publishes to time")
    parser.add_argument("--latency-timeout", type=float, default=90.0)
    parser.add_argument("--pretrain-epochs", type=int, default=30, help="the finished run for fps and cpu")
    parser.add_argument("--trainer-envs", type=int, default=64, help="num_envs of every trainer")
    parser.add_argument(
        "--save-freq",
        type=int,
        default=None,
        help="checkpoint_save_freq of the fps/throughput trainers (default: the CPU default)",
    )
    parser.add_argument("--warmup", type=float, default=6.0, help="fps: seconds after the page loads, first")
    parser.add_argument("--no-reference", action="store_true", help="throughput: skip the busy-loop phase")
    parser.add_argument(
        "--trainer-env",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="environment of every trainer, e.g. OMP_WAIT_POLICY=PASSIVE",
    )
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results_cpu")
    args = parser.parse_args()
    args.trainer_env = dict(item.split("=", 1) for item in args.trainer_env)

    lines: list[str] = []

    def say(text: str) -> None:
        print(text, flush=True)
        lines.append(text)

    start = time.time()
    say(f"web viewer benchmark, {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPU cores, 4 Ant envs in the "
        f"player, trainers num_envs={args.trainer_envs}, chromium (SwiftShader) via Playwright"
        + (f", trainer environment {args.trainer_env}" if args.trainer_env else ""))  # fmt: skip
    say(f"machine load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    results: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}}
    children = Children()
    try:
        with tempfile.TemporaryDirectory(prefix="web_viewer_") as tmp_name, chromium() as browser:
            tmp = Path(tmp_name)
            finished = tmp / "finished"
            finished.mkdir()
            if {"cpu", "fps"} & set(args.part):
                t = time.time()
                run = pretrain(children, finished, args.trainer_envs, args.pretrain_epochs)
                say(f"finished run: {args.pretrain_epochs} epochs of Ant in {time.time() - t:.0f} s ({run.name})")
            parts = {"cpu": (part_cpu, finished), "fps": (part_fps, finished), "latency": (part_latency, tmp),
                     "throughput": (part_throughput, tmp)}  # fmt: skip
            titles = {
                "cpu": "3. CPU of the player, finished run, no trainer (cores = CPU s per wall s)",
                "fps": "1. page frame rate, 4 Ant envs (target >= 30)",
                "latency": "2. publish-to-page latency, checkpoint_save_freq=1 (target p95 <= 0.5 s)",
                "throughput": "4. trainer throughput with a web player + tab attached vs alone, one run",
            }
            for name in ORDER:
                if name in args.part:
                    say(titles[name])
                    t = time.time()
                    func, where = parts[name]
                    results[name] = func(children, browser, where, args, say)
                    results[name + "_wall_s"] = time.time() - t
    finally:
        children.stop_all()
    for line in summary(results):
        say(line)
    say(f"machine load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
        f"total {time.time() - start:.0f} s")  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "web_viewer.txt"
    path.write_text("\n".join(lines) + "\n\nraw results (JSON):\n" + json.dumps(results, indent=1, default=str) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

"""The checkpoint control panel inside the player's web page (viser GUI), beside the Qt panel.

Same catalog, status summary and protocol writes as panel/window.py, so both panels (and any number
of tabs) can be open on one run and agree: the state file is the only thing either writes, through
protocol.write_state (filelock + atomic rename). viser's GUI state is shared by every connected tab.

Disk work (scans, status reads) runs in one daemon thread; viser runs button callbacks in its own
thread pool, and an export (seconds) in a thread of its own, so no click waits for the disk and
none of it touches the player's simulation loop.
"""

from __future__ import annotations

import html
import threading
import time

import numpy as np

from isaacgymenvs import protocol
from isaacgymenvs.panel.catalog import (
    CheckpointCatalog,
    CheckpointEntry,
    checkpoint_to_keep,
    curve_markers,
    export_selected,
    list_summary,
    player_summary,
    request_checkpoint,
    status_html,
)
from isaacgymenvs.protocol import RunDir

REFRESH_SECONDS = 5.0  # full rescan; Refresh and every write rescan at once
STATUS_SECONDS = 0.5
NO_SELECTION = "(choose a checkpoint)"
MODE_LABELS = {protocol.MODE_AUTO: "Auto: follow latest.pth", protocol.MODE_MANUAL: "Manual: keep one checkpoint"}
MODE_COLORS = {protocol.MODE_AUTO: "green", protocol.MODE_MANUAL: "orange"}  # the active mode's button


def option_label(entry: CheckpointEntry) -> str:
    """One dropdown line: `name (size) - time`, epoch and reward; unloadable files say so."""
    epoch = "-" if entry.epoch is None else str(entry.epoch)
    reward = "-" if entry.reward is None else f"{entry.reward:.1f}"
    if entry.problem:
        return f"✗ {entry.label}  (cannot load)"
    return f"{entry.label}  epoch {epoch}  reward {reward}"


def mode_of(state: protocol.CheckpointState | None) -> str:
    return protocol.MODE_MANUAL if state is not None and state.mode == protocol.MODE_MANUAL else protocol.MODE_AUTO


def mode_html(state: protocol.CheckpointState | None) -> str:
    """The mode line, coloured like the active mode's button."""
    if mode_of(state) == protocol.MODE_MANUAL:
        return f"Mode: <b style='color:#d9480f'>Manual</b>, showing {html.escape(str(state.checkpoint))}"
    return "Mode: <b style='color:#2b8a3e'>Auto</b>, following latest.pth"


class WebPanel:
    """Mode, the run's checkpoints (newest first), Load/Refresh/Export, the player's current
    checkpoint and the training-reward curve, as viser GUI elements in a folder of the page."""

    def __init__(self, server, run: RunDir, info: protocol.CheckpointFit) -> None:
        self.server, self.run = server, run
        self.catalog = CheckpointCatalog(run, info)
        self.entries: dict[str, CheckpointEntry] = {}  # option label -> entry
        self._metrics_key: tuple | None = None
        self._wake = threading.Event()
        self._choice_lock = threading.Lock()
        self._stopped = threading.Event()
        self._build()
        self._thread = threading.Thread(target=self._loop, name="web-panel", daemon=True)
        self._thread.start()

    # --- layout ------------------------------------------------------------------------------------

    def _build(self) -> None:
        gui = self.server.gui
        with gui.add_folder("Checkpoints"):
            self.mode_text = gui.add_html(mode_html(None))
            # Two buttons, the active one coloured and the other grey: a button group has no pressed
            # state, so Auto and Manual looked the same and only the text above told them apart.
            self.mode_buttons = {mode: gui.add_button(label) for mode, label in MODE_LABELS.items()}
            self._shown_mode: str | None = None
            self._show_mode(None)
            self.choice = gui.add_dropdown("Checkpoint", (NO_SELECTION,), initial_value=NO_SELECTION)
            self.load_button = gui.add_button("Load Selected")
            self.refresh_button = gui.add_button("Refresh List")
            self.export_button = gui.add_button("Export", hint="ONNX + TorchScript + JSON into the run's exported/")
            self.list_text = gui.add_html("")
            self.message = gui.add_html("")
        with gui.add_folder("Current checkpoint (what the player shows)"):
            self.current = gui.add_html("player not running")
        with gui.add_folder("Training reward"):
            self.curve = gui.add_uplot(
                (np.zeros(1), np.full(1, np.nan), np.full(1, np.nan)),
                (
                    {"label": "epoch"},
                    {"label": "mean reward", "stroke": "#2870c8", "width": 2, "spanGaps": True},
                    {"label": "checkpoint", "stroke": "#e07820", "width": 0, "points": {"show": True, "size": 8}},
                ),
                scales={"x": {"time": False}},
                axes=({"label": "epoch"}, {"label": "reward"}),
                aspect=1.6,
            )
        self.mode_buttons[protocol.MODE_AUTO].on_click(lambda _: self.choose_auto())
        self.mode_buttons[protocol.MODE_MANUAL].on_click(lambda _: self.choose_manual())
        self.load_button.on_click(lambda _: self.load_selected())
        self.refresh_button.on_click(lambda _: self._wake.set())
        self.export_button.on_click(lambda _: self.export_selected())

    # --- actions (viser's callback threads) ----------------------------------------------------

    def choose_manual(self) -> None:
        """The chosen checkpoint; with none chosen, keep what the player shows now (never a no-op)."""
        if self.selected() is not None:
            self.load_selected()
            return
        summary, status = player_summary(self.run)
        shown = status if summary != "player not running" else None
        entry, text = checkpoint_to_keep(list(self.entries.values()), shown)
        if entry is None:
            self.show_problem(text)
            return
        if self._write(protocol.MODE_MANUAL, entry.relative):
            with self._choice_lock:  # by name: a scan may have replaced the entries meanwhile
                labels = (label for label, e in self.entries.items() if e.name == entry.name)
                self.choice.value = next(labels, NO_SELECTION)
            self.show_message(text)

    def selected(self) -> CheckpointEntry | None:
        value = self.choice.value  # a client can send any JSON value, not only an offered name
        return self.entries.get(value) if isinstance(value, str) else None

    def choose_auto(self) -> None:
        """Follow latest.pth; the selection goes too, since no chosen checkpoint is shown any more."""
        if self._write(protocol.MODE_AUTO, None):
            with self._choice_lock:
                self.choice.value = NO_SELECTION

    def load_selected(self) -> None:
        entry = self.selected()
        if entry is None:
            self.show_problem("Choose a checkpoint in the list first, then Load Selected.")
            return
        if entry.problem:
            self.show_problem(f"{entry.name} cannot be loaded: {entry.problem}")
            return
        self._write(protocol.MODE_MANUAL, entry.relative)

    def _write(self, mode: str, relative: str | None) -> bool:
        ok, text = request_checkpoint(self.run, mode, relative)
        (self.show_message if ok else self.show_problem)(text)
        if ok:
            self._wake.set()
        return ok

    def export_selected(self) -> None:
        entry = self.selected()
        if entry is None:
            self.show_problem("Choose a checkpoint in the list first, then Export.")
            return
        self.export_button.disabled = True
        self.show_message(f"Exporting {entry.name} ...")
        threading.Thread(target=self._export, args=(entry.relative,), name="web-export", daemon=True).start()

    def _export(self, relative: str) -> None:
        try:
            ok, text = export_selected(self.run, relative)
            (self.show_message if ok else self.show_problem)(text)
        finally:
            self.export_button.disabled = False

    def show_problem(self, text: str) -> None:
        self.message.content = f"<span style='color:#b33'>{html.escape(text)}</span>"

    def show_message(self, text: str) -> None:
        self.message.content = html.escape(text)

    # --- the disk thread ----------------------------------------------------------------------------

    def _loop(self) -> None:
        next_scan = 0.0
        while not self._stopped.is_set():
            woken = self._wake.is_set()
            self._wake.clear()
            try:
                if woken or time.monotonic() >= next_scan:
                    self.scan()
                    # files still unchecked (a folder of thousands): the next batch at once
                    next_scan = time.monotonic() + (0.0 if self.catalog.unchecked else REFRESH_SECONDS)
                self.poll_status()
            except Exception as err:  # one bad read must not end the panel's updates
                self.show_problem(f"Panel update failed: {protocol.first_line(err)}")
            self._wake.wait(STATUS_SECONDS)

    def scan(self) -> None:
        if not self.run.root.is_dir():
            self.show_problem(f"Run directory {self.run.root} no longer exists.")
            return
        try:
            entries = self.catalog.scan()
        except OSError as err:
            self.show_problem(f"Cannot list checkpoints: {err}")
            return
        state, _ = protocol.read_state(self.run)
        with self._choice_lock:  # a click (Auto clears the choice) must not land between read and rewrite
            chosen = self.selected()
            if chosen is None and not self.entries and state is not None and state.mode == protocol.MODE_MANUAL:
                # the first scan: show a manual choice the player keeps
                chosen = next((e for e in entries if e.relative == state.checkpoint), None)
            self.entries = {option_label(e): e for e in entries}
            self.choice.options = (NO_SELECTION, *self.entries)
            if chosen is not None:  # keep the choice when its line changed (latest.pth's size and time)
                again = next((label for label, e in self.entries.items() if e.name == chosen.name), NO_SELECTION)
                self.choice.value = again
        self.list_text.content = list_summary(entries)
        self._show_curve(protocol.read_metrics(self.run), entries)

    def _show_curve(self, rows: list[tuple[int, int, float]], entries: list[CheckpointEntry]) -> None:
        markers = curve_markers(rows, entries)
        key = (len(rows), rows[-1] if rows else None, tuple(markers))
        if key == self._metrics_key:
            return  # unchanged: resend nothing to the tabs
        self._metrics_key = key
        curve = {r[0]: r[2] for r in rows}
        points = {m[0]: m[1] for m in markers}
        epochs = sorted(set(curve) | set(points)) or [0]
        values = [*curve.values(), *points.values()] or [0.0]
        low, high = min(values), max(values)
        pad = max(high - low, 1.0) * 0.05
        with self.server.atomic():
            # Explicit ranges: the gaps (NaN: the data travels as Float64Array, which has no null) would
            # otherwise make uPlot's automatic range NaN and draw nothing.
            self.curve.scales = {
                "x": {"time": False, "range": (float(epochs[0]), float(max(epochs[-1], epochs[0] + 1)))},
                "y": {"range": (low - pad, high + pad)},
            }
            self.curve.data = (
                np.array(epochs, dtype=float),
                np.array([curve.get(e, np.nan) for e in epochs]),
                np.array([points.get(e, np.nan) for e in epochs]),
            )

    def poll_status(self) -> None:
        summary, status = player_summary(self.run)
        state, warning = protocol.read_state(self.run)
        self.mode_text.content = mode_html(state)
        self._show_mode(state)
        self.current.content = "player not running" if not status else status_html(summary, status)
        if warning:
            self.show_problem(f"State file ignored by the player: {warning}")

    def _show_mode(self, state: protocol.CheckpointState | None) -> None:
        mode = mode_of(state)
        if mode == self._shown_mode:
            return  # unchanged: resend nothing to the tabs
        self._shown_mode = mode
        for each, button in self.mode_buttons.items():
            button.color = MODE_COLORS[each] if each == mode else "gray"
            button.icon = "check" if each == mode else None  # viser.Icon.CHECK

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()
        self._thread.join(timeout=5)

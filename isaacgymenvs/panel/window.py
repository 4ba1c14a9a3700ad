"""The control panel window: a thin PySide6 layer over catalog.py and the protocol module.

All disk access (scans, status reads, state writes) runs in one worker thread; the GUI thread only
swaps in results, so a refresh of a thousand checkpoints stays responsive. Exports (seconds each)
run in a second worker thread, so the list and the player's status keep updating meanwhile.
"""

from __future__ import annotations

import html

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, QPointF, Qt, QThread, QTimer, Signal, Slot
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QRadioButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from isaacgymenvs import protocol
from isaacgymenvs.panel.catalog import (
    UNCHECKED,
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

REFRESH_MS = 5000
STATUS_MS = 500


class Worker(QObject):
    """Runs in its own QThread: scans, reads the player status, writes the state file."""

    scanned = Signal(object, object)  # entries, metrics rows (plain Python objects, no QVariant conversion)
    status = Signal(str, object, object)  # summary, status dict, state
    problem = Signal(str)
    wrote = Signal(str)

    def __init__(self, run: RunDir, info: protocol.CheckpointFit) -> None:
        super().__init__()
        self.run = run
        self.catalog = CheckpointCatalog(run, info)

    @Slot()
    def scan(self) -> None:
        if not self.run.root.is_dir():
            self.problem.emit(f"Run directory {self.run.root} no longer exists.")
            return
        try:
            entries = self.catalog.scan()
        except Exception as err:  # a worker slot that raised would stop all later scans
            self.problem.emit(f"Cannot list checkpoints: {err}")
            return
        self.scanned.emit(entries, protocol.read_metrics(self.run))
        if self.catalog.unchecked:  # a folder of thousands: list now, check the rest batch by batch
            QTimer.singleShot(0, self.scan)

    @Slot()
    def poll_status(self) -> None:
        summary, status = player_summary(self.run)
        state, warning = protocol.read_state(self.run)
        self.status.emit(summary, status, state)
        if warning:
            self.problem.emit(f"State file ignored by the player: {warning}")

    @Slot(str, str)
    def write_state(self, mode: str, relative: str) -> None:
        ok, text = request_checkpoint(self.run, mode, relative or None)
        if not ok:
            self.problem.emit(text)
            return
        self.wrote.emit(text)
        self.poll_status()


class Exporter(QObject):
    """Runs in its own QThread: an export takes seconds (torch.export), and scans go on meanwhile."""

    finished = Signal(bool, str)  # ok, the message line

    def __init__(self, run: RunDir) -> None:
        super().__init__()
        self.run = run

    @Slot(str)
    def export(self, relative: str) -> None:
        self.finished.emit(*export_selected(self.run, relative))


class CheckpointTable(QAbstractTableModel):
    """Rows of CheckpointEntry; unusable files are shown greyed out and cannot be selected."""

    HEADERS = ("Checkpoint", "Epoch", "Training reward", "Status")

    def __init__(self) -> None:
        super().__init__()
        self.entries: list[CheckpointEntry] = []

    def set_entries(self, entries: list[CheckpointEntry]) -> None:
        self.beginResetModel()
        self.entries = entries
        self.endResetModel()

    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.entries)

    def columnCount(self, parent=QModelIndex()) -> int:  # noqa: B008
        return len(self.HEADERS)

    def headerData(self, section, orientation, role=Qt.DisplayRole):
        if orientation == Qt.Horizontal and role == Qt.DisplayRole:
            return self.HEADERS[section]
        return None

    def data(self, index, role=Qt.DisplayRole):
        e = self.entries[index.row()]
        if role == Qt.DisplayRole:
            col = index.column()
            if col == 0:
                return e.label
            if col == 1:
                return "" if e.epoch is None else str(e.epoch)
            if col == 2:
                return "" if e.reward is None else f"{e.reward:.1f}"
            if e.problem:
                return "checking" if e.problem == UNCHECKED else "cannot load"
            return "loadable"
        if role == Qt.ToolTipRole and e.problem:
            return e.problem
        if role == Qt.ForegroundRole and e.problem:
            return QColor(170, 60, 60)
        return None

    def flags(self, index):
        if self.entries[index.row()].problem:
            return Qt.ItemIsEnabled  # visible, not selectable
        return Qt.ItemIsEnabled | Qt.ItemIsSelectable


class RewardCurve(QWidget):
    """Mean training reward per epoch, with a marker per checkpoint; click a marker to select it."""

    marker_clicked = Signal(str)

    def __init__(self) -> None:
        super().__init__()
        self.setMinimumHeight(160)
        self.rows: list[tuple[int, int, float]] = []
        self.markers: list[tuple[int, float, str]] = []  # epoch, reward, checkpoint name
        self.selected: str | None = None

    def set_data(self, rows: list[tuple[int, int, float]], entries: list[CheckpointEntry]) -> None:
        self.rows = rows
        self.markers = curve_markers(rows, entries)
        self.update()

    def _scale(self):
        xs = [r[0] for r in self.rows] + [m[0] for m in self.markers]
        ys = [r[2] for r in self.rows] + [m[1] for m in self.markers]
        x0, x1 = min(xs), max(xs)
        y0, y1 = min(ys), max(ys)
        x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1)
        w, h, pad = self.width(), self.height(), 28

        def to_px(x: float, y: float) -> QPointF:
            return QPointF(pad + (x - x0) / (x1 - x0) * (w - 2 * pad), h - pad - (y - y0) / (y1 - y0) * (h - 2 * pad))

        return to_px, (x0, x1, y0, y1)

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        try:  # every path must end the painter (an active one at the end of a paint crashes Qt)
            self._paint(painter)
        finally:
            painter.end()

    def _paint(self, painter: QPainter) -> None:
        painter.setRenderHint(QPainter.Antialiasing)
        painter.fillRect(self.rect(), QColor(250, 250, 252))
        if not self.rows and not self.markers:
            painter.drawText(self.rect(), Qt.AlignCenter, "No training metrics yet")
            return
        to_px, (x0, x1, y0, y1) = self._scale()
        painter.setPen(QColor(90, 90, 90))
        painter.drawText(4, 14, f"mean episode reward {y0:.0f} .. {y1:.0f}")
        painter.drawText(self.width() - 140, self.height() - 6, f"epoch {x0} .. {x1}")
        painter.setPen(QPen(QColor(40, 110, 200), 2))
        painter.drawPolyline([to_px(r[0], r[2]) for r in self.rows])
        for epoch, reward, name in self.markers:
            selected = name == self.selected
            painter.setPen(QPen(QColor(20, 20, 20), 1))
            painter.setBrush(QColor(230, 120, 30) if selected else QColor(250, 190, 60))
            painter.drawEllipse(to_px(epoch, reward), 7 if selected else 5, 7 if selected else 5)

    def mousePressEvent(self, event) -> None:
        if not self.markers:
            return
        to_px, _ = self._scale()
        pos = event.position()
        nearest = min(self.markers, key=lambda m: (to_px(m[0], m[1]) - pos).manhattanLength())
        if (to_px(nearest[0], nearest[1]) - pos).manhattanLength() < 16:
            self.marker_clicked.emit(nearest[2])


class PanelWindow(QWidget):
    """Mode, available checkpoints, the player's current checkpoint and the reward curve."""

    request_scan = Signal()
    request_status = Signal()
    request_write = Signal(str, str)
    request_export = Signal(str)
    request_debounced_refresh = Signal()  # emitted from watchdog's thread, delivered queued
    last_mode = protocol.MODE_AUTO
    shown_status: dict | None = None  # the running player's last status (what Manual keeps)

    def __init__(self, run: RunDir, info: protocol.CheckpointFit) -> None:
        super().__init__()
        self.run = run
        self.setWindowTitle(f"Checkpoints - {run.name}")
        self.resize(900, 720)
        self._build()
        self.thread = QThread(self)
        self.worker = Worker(run, info)
        self.worker.moveToThread(self.thread)
        self.request_scan.connect(self.worker.scan)
        self.request_status.connect(self.worker.poll_status)
        self.request_write.connect(self.worker.write_state)
        self.worker.scanned.connect(self.show_entries)
        self.worker.status.connect(self.show_status)
        self.worker.problem.connect(self.show_problem)
        self.worker.wrote.connect(self.show_message)
        self.thread.start()
        self.export_thread = QThread(self)
        self.exporter = Exporter(run)
        self.exporter.moveToThread(self.export_thread)
        self.request_export.connect(self.exporter.export)
        self.exporter.finished.connect(self.show_export)
        self.export_thread.start()
        self.scan_timer = QTimer(self, interval=REFRESH_MS, timeout=self.refresh)
        self.status_timer = QTimer(self, interval=STATUS_MS, timeout=self.request_status.emit)
        self.scan_timer.start()
        self.status_timer.start()
        self.debounce = QTimer(self, singleShot=True, interval=200, timeout=self.refresh)
        self._watch()
        self.refresh()
        self.request_status.emit()

    def _build(self) -> None:
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel(f"<b>{self.run.name}</b> &nbsp; {self.run.root.resolve()}"))
        mode_box = QGroupBox("Mode")
        row = QHBoxLayout(mode_box)
        self.auto_button = QRadioButton("Auto: follow latest.pth")
        self.manual_button = QRadioButton("Manual: the chosen checkpoint")
        self.modes = QButtonGroup(self)
        for button in (self.auto_button, self.manual_button):
            self.modes.addButton(button)
            row.addWidget(button)
        self.auto_button.setChecked(True)
        self.auto_button.clicked.connect(self.choose_auto)
        self.manual_button.clicked.connect(self.choose_manual)
        layout.addWidget(mode_box)

        list_box = QGroupBox("Available checkpoints")
        col = QVBoxLayout(list_box)
        self.table_model = CheckpointTable()
        self.table = QTableView()
        self.table.setModel(self.table_model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.Stretch)
        self.table.verticalHeader().setVisible(False)
        self.table.doubleClicked.connect(lambda _: self.load_selected())
        col.addWidget(self.table)
        buttons = QHBoxLayout()
        self.refresh_button = QPushButton("Refresh List")
        self.load_button = QPushButton("Load Selected")
        self.export_button = QPushButton("Export")
        self.export_button.setToolTip("Write the selected checkpoint's policy as ONNX + TorchScript into exported/")
        self.refresh_button.clicked.connect(self.refresh)
        self.load_button.clicked.connect(self.load_selected)
        self.export_button.clicked.connect(self.export_selected)
        buttons.addWidget(self.refresh_button)
        buttons.addWidget(self.load_button)
        buttons.addWidget(self.export_button)
        buttons.addStretch()
        col.addLayout(buttons)
        layout.addWidget(list_box, stretch=3)

        current = QGroupBox("Current checkpoint (what the player shows)")
        cur = QVBoxLayout(current)
        self.current_label = QLabel("player not running")
        self.current_label.setWordWrap(True)
        cur.addWidget(self.current_label)
        layout.addWidget(current)

        curve_box = QGroupBox("Training reward (click a marker to select that checkpoint)")
        cb = QVBoxLayout(curve_box)
        self.curve = RewardCurve()
        self.curve.marker_clicked.connect(self.select_checkpoint)
        cb.addWidget(self.curve)
        layout.addWidget(curve_box, stretch=2)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        layout.addWidget(self.message)

    def _watch(self) -> None:
        """Filesystem events on nn/ refresh the list soon (polling every 5 s covers the rest)."""
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer

        window = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event) -> None:
                if protocol.is_change_event(event.event_type):  # not the scan's own reads
                    window.request_debounced_refresh.emit()

        self.request_debounced_refresh.connect(self.debounce.start)
        self.observer = Observer()
        try:
            self.observer.schedule(Handler(), str(self.run.nn), recursive=False)
            self.observer.daemon = True
            self.observer.start()
        except OSError as err:
            self.show_problem(f"No filesystem events ({err}); the list refreshes every 5 s.")

    # --- slots -------------------------------------------------------------------------------------

    def refresh(self) -> None:
        self.request_scan.emit()

    def selected_entry(self) -> CheckpointEntry | None:
        rows = self.table.selectionModel().selectedRows()
        return self.table_model.entries[rows[0].row()] if rows else None

    def choose_auto(self) -> None:
        """Follow latest.pth; the list's highlight goes too, since no chosen checkpoint is shown any more."""
        self.request_write.emit(protocol.MODE_AUTO, "")
        self.table.clearSelection()
        self.curve.selected = None
        self.curve.update()

    def load_selected(self) -> None:
        entry = self.selected_entry()
        if entry is None:
            self.show_problem("Select a checkpoint first, then Load Selected.")
            self._show_last_mode()
            return
        self.request_write.emit(protocol.MODE_MANUAL, entry.relative)

    def choose_manual(self) -> None:
        """The selected checkpoint; with none selected, keep what the player shows now (as the page does)."""
        if self.selected_entry() is not None:
            self.load_selected()
            return
        entry, text = checkpoint_to_keep(self.table_model.entries, self.shown_status)
        if entry is None:
            self.show_problem(text)
            self._show_last_mode()  # the click wrote nothing: the radio goes back
            return
        self.select_checkpoint(entry.name)
        self.request_write.emit(protocol.MODE_MANUAL, entry.relative)
        self.show_message(text)

    def _show_last_mode(self) -> None:
        self.manual_button.setChecked(self.last_mode == protocol.MODE_MANUAL)
        self.auto_button.setChecked(self.last_mode != protocol.MODE_MANUAL)

    def export_selected(self) -> None:
        entry = self.selected_entry()
        if entry is None:
            self.show_problem("Select a checkpoint first, then Export.")
            return
        self.export_button.setEnabled(False)
        self.show_message(f"Exporting {entry.name} ...")
        self.request_export.emit(entry.relative)

    @Slot(bool, str)
    def show_export(self, ok: bool, text: str) -> None:
        self.export_button.setEnabled(True)
        (self.show_message if ok else self.show_problem)(text)

    def select_checkpoint(self, name: str) -> None:
        for row, entry in enumerate(self.table_model.entries):
            if entry.name == name:
                self.table.selectRow(row)
                self.table.scrollTo(self.table_model.index(row, 0))
                self.curve.selected = name
                self.curve.update()
                return

    @Slot(object, object)
    def show_entries(self, entries: list, metrics: list) -> None:
        chosen = self.selected_entry()
        self.table_model.set_entries(entries)
        if chosen is not None:
            self.select_checkpoint(chosen.name)
        self.curve.set_data(metrics, entries)
        self.list_summary = list_summary(entries)
        self.setWindowTitle(f"Checkpoints - {self.run.name} ({self.list_summary})")

    @Slot(str, object, object)
    def show_status(self, summary: str, status: dict | None, state) -> None:
        mode = state.mode if state else protocol.MODE_AUTO
        self.last_mode = mode
        (self.manual_button if mode == protocol.MODE_MANUAL else self.auto_button).setChecked(True)
        self.shown_status = None if summary == "player not running" else status
        if summary == "player not running" or not status:
            self.current_label.setText("player not running")
            return
        self.current_label.setText(status_html(summary, status))

    @Slot(str)
    def show_problem(self, text: str) -> None:
        self.message.setText(f"<span style='color:#a33'>{html.escape(text)}</span>")

    @Slot(str)
    def show_message(self, text: str) -> None:
        self.message.setText(text)

    def closeEvent(self, event) -> None:
        self.scan_timer.stop()
        self.status_timer.stop()
        self.observer.stop()
        self.thread.quit()
        self.export_thread.quit()
        self.thread.wait(3000)
        self.export_thread.wait(60000)  # an export in flight finishes its files (seconds)
        super().closeEvent(event)

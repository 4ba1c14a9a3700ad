"""The player's window (PySide6): a thin layer over PlayerCore and MultiEnvRenderer.

Mouse: left-drag rotate, middle-drag pan, wheel zoom. Keys: W/S forward/back, A/D left/right,
Q/E down/up, F cycle the camera (all robots, each robot, free), R reload the checkpoint now,
Backspace reset the envs, Esc quit. Simulation is paced to real time (60 Hz control); when
rendering cannot keep up, several control steps run per frame (up to 4) and the HUD says so.
"""

from __future__ import annotations

import time
from pathlib import Path

from omegaconf import DictConfig
from PySide6.QtCore import QPoint, Qt, QTimer
from PySide6.QtGui import QColor, QFont, QImage, QKeyEvent, QMouseEvent, QPainter, QWheelEvent
from PySide6.QtWidgets import QApplication, QWidget

from isaacgymenvs.player.core import PlayerCore
from isaacgymenvs.player.render import MultiEnvRenderer
from isaacgymenvs.protocol import RunDir
from isaacgymenvs.signals import STOP_SIGNALS

MAX_STEPS_PER_FRAME = 4
MOVE_KEYS = {
    Qt.Key_W: (1, 0, 0), Qt.Key_S: (-1, 0, 0), Qt.Key_D: (0, 1, 0),
    Qt.Key_A: (0, -1, 0), Qt.Key_E: (0, 0, 1), Qt.Key_Q: (0, 0, -1),
}  # fmt: skip


class PlayerWindow(QWidget):
    """Shows the envs and a HUD; drives the core from a Qt timer."""

    def __init__(self, core: PlayerCore, renderer: MultiEnvRenderer, title: str) -> None:
        super().__init__()
        self.core, self.renderer = core, renderer
        self.setWindowTitle(title)
        self.resize(960, 540)  # the rendered image is scaled to the window
        self.setFocusPolicy(Qt.StrongFocus)
        self.image: QImage | None = None
        self.frame_times: list[float] = []
        self.start = time.perf_counter() - core.steps * core.task.dt  # pace from where the core is
        self.behind = 0
        self.last_mouse: QPoint | None = None
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.tick)
        self.timer.start(1)

    def tick(self) -> None:
        """Advance the simulation to wall-clock time, then draw one frame."""
        due = int((time.perf_counter() - self.start) / self.core.task.dt) - self.core.steps
        for _ in range(min(max(due, 0), MAX_STEPS_PER_FRAME)):
            self.core.step()
        self.behind = max(due - MAX_STEPS_PER_FRAME, 0)
        if self.behind:  # too slow for real time: drop the backlog instead of spiralling
            self.start += self.behind * self.core.task.dt
        if due <= 0:
            return
        qpos = self.core.task.physics.state().qpos.cpu().numpy()
        rgb = self.renderer.render(qpos)
        # From bytes, then detached: QImage over a borrowed buffer has had refcount bugs in PySide6.
        self.image = QImage(rgb.tobytes(), rgb.shape[1], rgb.shape[0], rgb.strides[0], QImage.Format_RGB888).copy()
        now = time.perf_counter()
        self.frame_times = [t for t in self.frame_times if now - t < 1.0] + [now]
        self.update()

    def hud_lines(self) -> list[str]:
        fps = len(self.frame_times)
        slow = "  (slower than real time)" if self.behind else ""
        follow = self.renderer.describe_follow()
        return [
            *self.core.hud_lines(),
            f"{fps} fps{slow}  {follow}",
            "drag: rotate / middle: pan / wheel: zoom  WASDQE move  F camera  R reload  Backspace reset  Esc quit",
        ]

    def paintEvent(self, event) -> None:  # noqa: ANN001, N802 - Qt override
        painter = QPainter(self)
        try:  # every path must end the painter
            if self.image is not None:
                painter.drawImage(self.rect(), self.image)
            else:
                painter.fillRect(self.rect(), QColor(30, 40, 55))
            painter.setFont(QFont("Monospace", 10))
            lines = self.hud_lines()
            painter.fillRect(6, 6, 760, 18 * len(lines) + 10, QColor(0, 0, 0, 140))
            painter.setPen(QColor(235, 235, 235))
            for i, line in enumerate(lines):
                painter.drawText(14, 24 + 18 * i, line)
        finally:
            painter.end()

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        key = event.key()
        if key == Qt.Key_Escape:
            self.close()
        elif key in MOVE_KEYS:
            self.renderer.move(*MOVE_KEYS[key])
        elif key == Qt.Key_F:
            self.renderer.cycle_follow()
        elif key == Qt.Key_R:
            self.core.follower.force_reload()
        elif key == Qt.Key_Backspace:
            self.core.reset_envs()

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        self.last_mouse = event.position().toPoint()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        pos = event.position().toPoint()
        if self.last_mouse is None:
            self.last_mouse = pos
        dx, dy = pos.x() - self.last_mouse.x(), pos.y() - self.last_mouse.y()
        self.last_mouse = pos
        if event.buttons() & Qt.LeftButton:
            self.renderer.rotate(dx, dy)
        elif event.buttons() & Qt.MiddleButton:
            self.renderer.pan(dx, dy)

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802
        self.renderer.zoom(event.angleDelta().y() / 120.0)

    def save_screenshot(self, path: Path) -> None:
        self.grab().save(str(path))


def run_window(core: PlayerCore, cfg: DictConfig, run: RunDir) -> None:
    """Open the window and run until it is closed (Esc, window close or Ctrl+C)."""
    import signal

    app = QApplication.instance() or QApplication([])
    renderer = MultiEnvRenderer(core.task.model, core.task.num_envs, float(cfg.task.env.envSpacing), cfg.render_quality)
    window = PlayerWindow(core, renderer, f"{cfg.task.name} - {run.name}")
    window.show()
    for signum in STOP_SIGNALS:  # Ctrl+C in the terminal, kill or a closed terminal: close cleanly
        signal.signal(signum, lambda *_: window.close())
    app.exec()
    renderer.close()

"""The player's Qt window (PySide6): a thin front end of the player loop (loop.py) with MultiEnvRenderer.

Mouse: left-drag rotate, middle-drag pan, wheel zoom. Keys: W/S forward/back, A/D left/right,
Q up, E down, F cycle the camera (all robots, each robot, free), R reload the checkpoint now,
Backspace reset the envs, Esc quit. Tasks with velocity commands (Anymal): Up/Down change the
followed robot's (else robot 0's) forward velocity command, comma/period its sideways velocity,
Left/Right its yaw rate, C gives it back to random commands. Simulation is paced to real time (60 Hz control); when
rendering cannot keep up, several control steps run per frame (up to 4) and the HUD says so.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from omegaconf import DictConfig
from PySide6.QtCore import QPoint, Qt, QTimer
from PySide6.QtGui import QColor, QFont, QFontMetrics, QImage, QKeyEvent, QMouseEvent, QPainter, QWheelEvent
from PySide6.QtWidgets import QApplication, QWidget

from isaacgymenvs.player.core import PlayerCore
from isaacgymenvs.player.loop import PlayerLoop, RealTimePacer
from isaacgymenvs.player.render import MultiEnvRenderer
from isaacgymenvs.player.runs import RunFinder
from isaacgymenvs.protocol import RunDir, RunMatch
from isaacgymenvs.signals import STOP_SIGNALS

MOVE_KEYS = {
    Qt.Key_W: (1, 0, 0), Qt.Key_S: (-1, 0, 0), Qt.Key_D: (0, 1, 0),
    Qt.Key_A: (0, -1, 0), Qt.Key_Q: (0, 0, 1), Qt.Key_E: (0, 0, -1),
}  # fmt: skip
# Velocity command keys: (command component, change per press): x, y (m/s), yaw rate (rad/s).
COMMAND_KEYS = {
    Qt.Key_Up: (0, 0.25), Qt.Key_Down: (0, -0.25), Qt.Key_Comma: (1, 0.25),
    Qt.Key_Period: (1, -0.25), Qt.Key_Left: (2, 0.25), Qt.Key_Right: (2, -0.25),
}  # fmt: skip
COMMAND_HELP = "arrows: forward speed / yaw rate  , .: sideways  C: random commands  (green: command, blue: measured)"


CONTROLS_HELP = (
    "drag: rotate / middle: pan / wheel: zoom  WASD move  Q up  E down  F camera  R reload  Backspace reset  Esc quit"
)


class WindowLoop(PlayerLoop):
    """The window's front end of the player loop: renders a frame and hands it and the HUD to Qt."""

    def __init__(
        self, core: PlayerCore, renderer: MultiEnvRenderer, window: PlayerWindow, switch: Callable[[], bool]
    ) -> None:
        super().__init__(core, switch)
        self.renderer, self.window = renderer, window

    def show_frame(self) -> None:
        rgb = self.renderer.render(self.core.task.physics.state().qpos.cpu().numpy(), self.core.velocity_arrows())
        # From bytes, then detached: QImage over a borrowed buffer has had refcount bugs in PySide6.
        image = QImage(rgb.tobytes(), rgb.shape[1], rgb.shape[0], rgb.strides[0], QImage.Format_RGB888).copy()
        self.window.show_image(image)

    def show_hud(self, lines: list[str]) -> None:
        self.window.hud = lines
        self.window.update()

    def before_steps(self) -> None:
        follow = self.renderer.follow
        self.core.driven_env = follow if isinstance(follow, int) else 0

    def status_line(self) -> str:
        return f"{super().status_line()}  {self.renderer.describe_follow()}"

    def hud_lines(self) -> list[str]:
        return [*super().hud_lines(), CONTROLS_HELP, *([COMMAND_HELP] if self.core.drivable else [])]


class PlayerWindow(QWidget):
    """Shows the envs and a HUD; a Qt timer drives the player loop (WindowLoop)."""

    def __init__(
        self, core: PlayerCore, renderer: MultiEnvRenderer, title: str, switch: Callable[[], bool] = lambda: False
    ) -> None:
        super().__init__()
        self.core, self.renderer = core, renderer
        self.setWindowTitle(title)
        self.resize(960, 540)  # the rendered image is scaled to the window
        self.setFocusPolicy(Qt.StrongFocus)
        self.image: QImage | None = None
        self.loop = WindowLoop(core, renderer, self, switch)
        self.hud: list[str] = self.loop.hud_lines()
        self.last_mouse: QPoint | None = None
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.tick)
        self.timer.start(1)

    @property
    def pacer(self) -> RealTimePacer:
        return self.loop.pacer

    def tick(self) -> None:
        """One turn of the player loop; a newer matching run closes the window (the caller reopens on it)."""
        if not self.loop.tick():
            self.close()

    def show_image(self, image: QImage) -> None:
        self.image = image
        self.update()

    def hud_lines(self) -> list[str]:
        return self.loop.hud_lines()

    def paintEvent(self, event) -> None:  # Qt override
        painter = QPainter(self)
        try:  # every path must end the painter
            if self.image is not None:
                painter.drawImage(self.rect(), self.image)
            else:
                painter.fillRect(self.rect(), QColor(30, 40, 55))
            paint_hud(painter, self.hud)
        finally:
            painter.end()

    def keyPressEvent(self, event: QKeyEvent) -> None:
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
        elif key in COMMAND_KEYS:
            self.core.nudge_command(self.core.driven_env, *COMMAND_KEYS[key])
        elif key == Qt.Key_C:
            self.core.request_command(self.core.driven_env, None)

    def mousePressEvent(self, event: QMouseEvent) -> None:
        self.last_mouse = event.position().toPoint()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        pos = event.position().toPoint()
        if self.last_mouse is None:
            self.last_mouse = pos
        dx, dy = pos.x() - self.last_mouse.x(), pos.y() - self.last_mouse.y()
        self.last_mouse = pos
        if event.buttons() & Qt.LeftButton:
            self.renderer.rotate(dx, dy)
        elif event.buttons() & Qt.MiddleButton:
            self.renderer.pan(dx, dy)

    def wheelEvent(self, event: QWheelEvent) -> None:
        self.renderer.zoom(event.angleDelta().y() / 120.0)

    def save_screenshot(self, path: Path) -> None:
        self.grab().save(str(path))


def paint_hud(painter: QPainter, lines: list[str]) -> None:
    """Text lines on a translucent box as wide as the longest line (long warnings included)."""
    font = QFont("Monospace", 10)
    font.setStyleHint(QFont.TypeWriter)
    painter.setFont(font)
    metrics = QFontMetrics(font)
    width = max((metrics.horizontalAdvance(line) for line in lines), default=0)
    painter.fillRect(6, 6, width + 16, 18 * len(lines) + 10, QColor(0, 0, 0, 140))
    painter.setPen(QColor(235, 235, 235))
    for i, line in enumerate(lines):
        painter.drawText(14, 24 + 18 * i, line)


class WaitingWindow(QWidget):
    """Shown until a run matching `experiment=` appears (the player was started before the trainer)."""

    def __init__(self, finder: RunFinder) -> None:
        super().__init__()
        self.finder = finder
        self.found: RunMatch | None = None
        self.setWindowTitle(f"Waiting for {finder.experiment}")
        self.resize(960, 540)
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.poll)
        self.timer.start(500)

    def hud_lines(self) -> list[str]:
        return [self.finder.waiting_message, f"Start the trainer in another terminal: {self.finder.trainer_command}",
                "Esc quit"]  # fmt: skip

    def poll(self) -> None:
        self.found = self.finder.find()
        if self.found is not None:
            self.close()

    def paintEvent(self, event) -> None:  # Qt override
        painter = QPainter(self)
        try:
            painter.fillRect(self.rect(), QColor(30, 40, 55))
            paint_hud(painter, self.hud_lines())
        finally:
            painter.end()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key_Escape:
            self.close()


def close_on_stop_signals(window: QWidget) -> None:
    """Ctrl+C in the terminal, kill or a closed terminal close the window cleanly."""
    import signal

    for signum in STOP_SIGNALS:
        signal.signal(signum, lambda *_: window.close())


def wait_in_window(finder: RunFinder) -> RunMatch | None:
    """Show the waiting message until a run matches; None if the window was closed first."""
    app = QApplication.instance() or QApplication([])
    window = WaitingWindow(finder)
    window.show()
    close_on_stop_signals(window)
    app.exec()
    return window.found


def run_window(core: PlayerCore, cfg: DictConfig, run: RunDir, switch: Callable[[], bool] = lambda: False) -> None:
    """Open the window and run until it is closed (Esc, window close, a stop signal, or `switch()`)."""
    app = QApplication.instance() or QApplication([])
    renderer = MultiEnvRenderer(core.task.model, core.task.num_envs, float(cfg.task.env.envSpacing), cfg.render_quality)
    window = PlayerWindow(core, renderer, f"{cfg.task.name} - {run.name}", switch)
    window.show()
    close_on_stop_signals(window)
    app.exec()
    renderer.close()

"""viewer=web: the player in a browser tab, for training servers without a display.

One more thin front end over the GUI-free PlayerCore (follower, hot reload, state and status
files), like the Qt window and the headless loop. This process serves the page itself with viser
(three.js client shipped inside its wheel, nothing fetched from the internet) on web_host:web_port;
from a laptop: ssh -L 8080:localhost:8080 server, then http://localhost:8080.

The simulation loop only sets pose arrays and HUD text; viser queues them per tab and drops
superseded updates for a tab that reads slowly, so no tab (closed, slow or many) holds up a step.
"""

from __future__ import annotations

import contextlib
import errno
import html
import io
import math
import socket
import threading
from collections.abc import Callable

from omegaconf import DictConfig

from isaacgymenvs.errors import UserError
from isaacgymenvs.player.core import PlayerCore
from isaacgymenvs.player.loop import PlayerLoop
from isaacgymenvs.player.runs import RunFinder
from isaacgymenvs.player.web_guard import Guard
from isaacgymenvs.player.web_scene import FOLLOW_ALL, WebScene, follow_choices, robot_index
from isaacgymenvs.protocol import RunDir, RunMatch
from isaacgymenvs.signals import StopOnSignal, StopRequested

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def check_port_free(host: str, port: int) -> None:
    """Bind the address once, as the server will, so a busy port is one sentence instead of viser
    silently serving on the next free port (which the printed URL and an SSH tunnel would miss)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as err:
        raise UserError(f"web_host={host} is not an address of this machine ({err.strerror}).") from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio's server does
        try:
            probe.bind(address)
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                raise UserError(
                    f"Port {port} on {host} is already in use (another player?); choose a free one with web_port=."
                ) from None
            if err.errno == errno.EACCES:
                raise UserError(f"Port {port} needs root here; choose one above 1023 with web_port=.") from None
            raise UserError(f"Cannot serve on {host}:{port} ({err.strerror}); change web_host= or web_port=.") from None


def access_lines(host: str, port: int) -> list[str]:
    """How to open the page: the local URL and the SSH tunnel from a laptop (or the open-port warning)."""
    server = socket.gethostname()
    if host in LOCAL_HOSTS:
        return [f"open http://localhost:{port}  (from your laptop: ssh -L {port}:localhost:{port} {server})"]
    shown = server if host in ("0.0.0.0", "::", "") else host
    return [
        f"open http://{shown}:{port}",
        f"Warning: web_host={host} serves the page to every machine that can reach port {port}: anyone there "
        "can watch this run and switch the player's checkpoint (there is no login). "
        "The default web_host=127.0.0.1 with ssh -L keeps it to you.",
    ]


def hud_html(lines: list[str]) -> str:
    """The window's HUD lines as preformatted text (escaped: file names come from the run directory)."""
    body = "\n".join(html.escape(line) for line in lines)
    return f"<pre style='margin:0;font-size:12px;line-height:1.45;white-space:pre-wrap' id='hud'>{body}</pre>"


class WebViewer:
    """The page for the player's whole life; the scene, HUD and panel are rebuilt for each run it shows."""

    def __init__(self, host: str, port: int) -> None:
        check_port_free(host, port)
        import viser

        self.host, self.port = host, port
        self.guard = Guard(host, lambda line: print(line, flush=True))
        self.guard.install()  # Host/Origin checks and a tab limit in front of viser (web_guard.py)
        with contextlib.redirect_stdout(io.StringIO()):  # viser's banner names 127.0.0.1, not the tunnel
            self.server = viser.ViserServer(host=host, port=port, label="train-and-watch player", verbose=False)
        if self.server.get_port() != port:  # taken between the probe and the bind
            self.server.stop()
            raise UserError(f"Port {port} on {host} is already in use; choose a free one with web_port=.")
        # No share button: it would tunnel the page to a public relay; the page stays on this machine.
        # A fixed sidebar, not a panel floating over the view: it covered part of the robots.
        self.server.gui.configure_theme(
            show_share_button=False, show_logo=False, control_width="large", control_layout="fixed"
        )
        self.server.gui.set_panel_label("train-and-watch player")
        self.hud = self.server.gui.add_html(hud_html(["Starting ..."]))

    def announce(self, what: str) -> None:
        print(f"{what}: " + "\n".join(access_lines(self.host, self.port)), flush=True)

    def show_lines(self, lines: list[str]) -> None:
        self.hud.content = hud_html(lines)  # viser sends nothing when the text is unchanged

    def wait_for_run(self, finder: RunFinder) -> RunMatch | None:
        """Started before the trainer: the page says what it waits for (a stop signal raises StopRequested)."""
        self.show_lines([finder.waiting_message, f"Start the trainer: {finder.trainer_command}"])
        with StopOnSignal() as stop:
            match = finder.wait(lambda: stop.requested)
        if match is None:
            raise StopRequested(stop.signum)
        return match

    def show(self, core: PlayerCore, cfg: DictConfig, run: RunDir, switch: Callable[[], bool]) -> None:
        """Serve `run` until a stop signal (raises StopRequested) or `switch()` (returns)."""
        from isaacgymenvs.panel.web import WebPanel

        model, spacing = core.task.model, float(cfg.task.env.envSpacing)
        scene = WebScene(self.server, model, core.task.num_envs, spacing, cfg.render_quality == "high")
        if core.drivable:
            scene.add_velocity_arrows()
        controls = PlayerControls(self.server, core, scene)
        panel = WebPanel(self.server, run, core.follower.fit)  # what the player itself loads
        try:
            StreamLoop(core, scene, controls, self, switch).run()
        finally:
            panel.stop()
            self.server.scene.reset()
            self.server.gui.reset()
            self.hud = self.server.gui.add_html(hud_html(["Switching run ..."]))

    def close(self) -> None:
        with contextlib.redirect_stdout(io.StringIO()):
            self.server.stop()


_ignored: set[str] = set()


def ignored(what: str) -> None:
    """A value a client sent that no widget offers: said once on the console, never used."""
    if what not in _ignored and len(_ignored) < 100:
        _ignored.add(what)
        print(f"Web page: ignored {what} from a client (not one of the offered values).", flush=True)


class PlayerControls:
    """Camera follow mode, reload now, reset envs: the window's F, R and Backspace keys as widgets."""

    def __init__(self, server, core: PlayerCore, scene: WebScene) -> None:
        self.reset_requested = threading.Event()
        gui = server.gui
        self.folder = gui.add_folder("Camera and player", order=1000)  # below the panel
        with self.folder:
            self.follow = gui.add_dropdown("Camera", follow_choices(core.task.num_envs), initial_value=FOLLOW_ALL)
            self.quality = gui.add_checkbox(
                "Shadows", scene.high_quality, hint="Shadows and reflections: easy for a GPU, slow in a browser without"
            )
            self.reload = gui.add_button("Reload checkpoint now")
            self.reset = gui.add_button("Reset envs")
            gui.add_markdown("Drag: rotate. Right-drag: pan. Wheel: zoom. WASD: move, Q/E: down/up, arrows: turn.")

        choices = follow_choices(core.task.num_envs)

        @self.follow.on_update
        def _(_) -> None:
            value = self.follow.value
            if value in choices:  # a client can send anything: a name not offered is ignored
                scene.follow = value
            else:
                ignored(f"Camera={str(value)[:40]!r}")
                self.follow.value = scene.follow

        @self.quality.on_update
        def _(_) -> None:
            if isinstance(self.quality.value, bool):
                scene.set_high_quality(self.quality.value)
            else:
                ignored(f"Shadows={str(self.quality.value)[:40]!r}")

        self.reload.on_click(lambda _: core.follower.force_reload())
        self.reset.on_click(lambda _: self.reset_requested.set())  # done by the loop, between steps
        if core.drivable:
            CommandSliders(server, core, scene)


class CommandSliders:
    """Velocity command of the followed robot (robot 0 when following all or none): three sliders
    and a button that gives it back to the task's random commands (tasks with `set_command`)."""

    def __init__(self, server, core: PlayerCore, scene: WebScene) -> None:
        gui, task = server.gui, core.task
        low, high = task.command_low.tolist(), task.command_high.tolist()
        labels = ("Forward m/s", "Sideways m/s", "Yaw rate rad/s")
        with gui.add_folder("Drive the followed robot", order=900):
            self.sliders = [
                gui.add_slider(label, min=lo, max=hi, step=0.05, initial_value=0.0)
                for label, lo, hi in zip(labels, low, high, strict=True)
            ]
            self.release = gui.add_button("Random commands again")

        def robot() -> int:
            return robot_index(scene.follow, task.num_envs) or 0

        def send(_) -> None:
            values = [slider.value for slider in self.sliders]
            if all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
                core.request_command(robot(), values)  # clipped to the task's ranges there
            else:
                ignored(f"command={str(values)[:60]!r}")

        for slider in self.sliders:
            slider.on_update(send)
        self.release.on_click(lambda _: core.request_command(robot(), None))


class StreamLoop(PlayerLoop):
    """The page's front end: one scene update per frame (real-time paced, up to 4 control steps per
    frame when behind), the HUD every 0.25 s and at once for a new policy, and the Reset button's
    request done between steps."""

    def __init__(
        self, core: PlayerCore, scene: WebScene, controls: PlayerControls, viewer: WebViewer, switch: Callable[[], bool]
    ) -> None:
        super().__init__(core, switch)
        self.scene, self.controls, self.viewer = scene, controls, viewer

    def before_steps(self) -> None:
        self.core.driven_env = robot_index(self.scene.follow, self.core.task.num_envs) or 0
        if self.controls.reset_requested.is_set():
            self.controls.reset_requested.clear()
            self.core.reset_envs()

    def show_frame(self) -> None:
        self.scene.update(self.core.task.physics.state().qpos.cpu().numpy(), self.core.velocity_arrows())

    def show_hud(self, lines: list[str]) -> None:
        self.viewer.show_lines(lines)

    def status_line(self) -> str:
        return f"{self.pacer.fps} fps streamed{self.pacer.slow_note}  {self.scene.follow}"

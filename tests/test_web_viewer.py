"""The web viewer (viewer=web): its scene, panel and server in-process, then the real page in
Debian's chromium (Playwright) against a real player and trainer, with the network otherwise unused."""

from __future__ import annotations

import io
import os
import re
import shutil
import socket
import time
from pathlib import Path
from urllib.parse import urlparse

import mujoco
import numpy as np
import pytest

from isaacgymenvs import protocol
from isaacgymenvs.errors import UserError
from tests.conftest import Lines, cli_env, kill_group, outlive_the_test, run_cli, start_cli

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ANT_XML = Path(__file__).resolve().parent.parent / "isaacgymenvs" / "assets" / "mjcf" / "ant.xml"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server():
    """A real viser server on a free port, stopped at the end."""
    import contextlib

    import viser

    with contextlib.redirect_stdout(io.StringIO()):
        srv = viser.ViserServer(host="127.0.0.1", port=free_port(), verbose=False)
    yield srv
    with contextlib.redirect_stdout(io.StringIO()):
        srv.stop()


# --- in-process: configuration, port, scene, panel ------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["viewer=browser"], "viewer=browser must be auto, window or web."),
        (["web_port=0"], "web_port=0 must be a TCP port number (1-65535)."),
        (["web_port=http"], "web_port=http must be a TCP port number (1-65535)."),
        (["viewer=web", "headless=True"], "viewer=web shows the player and headless=True shows nothing; drop one"),
    ],
)
def test_viewer_keys_are_checked_in_one_sentence(make_cfg, overrides, message):
    from isaacgymenvs.config import resolve

    with pytest.raises(UserError) as err:
        resolve(make_cfg("Ant", "mode=play", *overrides))
    assert str(err.value).startswith(message)


def test_auto_viewer_without_a_display_serves_the_page_and_window_refuses(make_cfg, monkeypatch, capsys):
    from isaacgymenvs.player.play import choose_viewer

    for key in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(key, raising=False)
    assert choose_viewer(make_cfg("Ant", "mode=play")) == "web"
    assert "No display for the player window: showing the player in a web page instead" in capsys.readouterr().out
    with pytest.raises(UserError, match="No display for the player window"):
        choose_viewer(make_cfg("Ant", "mode=play", "viewer=window"))
    assert choose_viewer(make_cfg("Ant", "mode=play", "headless=True")) == "headless"


def test_a_busy_port_is_one_sentence_naming_web_port():
    from isaacgymenvs.player.web import check_port_free

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(UserError) as err:
            check_port_free("127.0.0.1", port)
    assert str(err.value) == (
        f"Port {port} on 127.0.0.1 is already in use (another player?); choose a free one with web_port=."
    )
    check_port_free("127.0.0.1", port)  # free again: no error


def test_access_lines_give_the_tunnel_and_warn_when_serving_every_machine():
    from isaacgymenvs.player.web import access_lines

    local = access_lines("127.0.0.1", 8080)
    assert local == [
        f"open http://localhost:8080  (from your laptop: ssh -L 8080:localhost:8080 {socket.gethostname()})"
    ]
    public = " ".join(access_lines("0.0.0.0", 9000))
    assert "Warning: web_host=0.0.0.0" in public and "anyone there can watch this run and switch" in public


def test_scene_lays_envs_on_the_grid_in_the_mjcf_colours_and_follows_a_robot(server):
    from isaacgymenvs.player.render import grid_offsets
    from isaacgymenvs.player.web_scene import FOLLOW_ALL, FOLLOW_FREE, WebScene, body_mesh, floor_colours, visible_geoms

    model = mujoco.MjModel.from_xml_path(str(ANT_XML))
    scene = WebScene(server, model, 3, 2.0)
    assert len(scene.bodies) == 13 and all(h.batched_positions.shape == (3, 3) for h in scene.handles)
    floor = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, "floor")
    assert floor_colours(model, floor) == ((25, 38, 51), (51, 76, 102))  # the checker's rgb2, rgb1
    torso = scene.handles[0]
    mesh = body_mesh(model, visible_geoms(model, scene.bodies[0]))
    assert tuple(mesh.visual.vertex_colors[0][:3]) == (204, 153, 102)  # material "body" (0.8 0.6 0.4)
    assert len(mesh.vertices) < 1000  # coarse (mjviser: 8,048): a software-rendered page pays per vertex
    qpos = np.tile(model.qpos0, (3, 1))
    qpos[:, 0] = [0.5, 1.0, 1.5]
    scene.follow = FOLLOW_FREE
    scene.update(qpos)
    expected = qpos[:, :3] + grid_offsets(3, 2.0)
    assert np.allclose(torso.batched_positions, expected, atol=1e-6)
    scene.follow = "robot 1"
    scene.update(qpos)
    assert np.allclose(torso.batched_positions[1, :2], 0.0, atol=1e-6)  # the followed robot at the origin
    assert np.allclose(scene.world.position[:2], -expected[1, :2], atol=1e-6)  # the floor moved with it
    scene.follow = FOLLOW_ALL
    scene.update(qpos)
    assert np.allclose(torso.batched_positions[:, :2].mean(axis=0), 0.0, atol=1e-6)


def test_mesh_geoms_are_converted_through_mjviser():
    from isaacgymenvs.player.web_scene import geom_mesh

    xml = """<mujoco><asset><mesh name="tet" vertex="0 0 0  1 0 0  0 1 0  0 0 1"/></asset>
      <worldbody><body><freejoint/><geom type="mesh" mesh="tet" rgba="1 0 0 1"/></body></worldbody></mujoco>"""
    model = mujoco.MjModel.from_xml_string(xml)
    mesh = geom_mesh(model, 0)
    assert len(mesh.faces) == 4 and len(mesh.vertices) >= 4


@pytest.fixture
def ant_run(tmp_path):
    """A run directory with the Ant's params and two checkpoints (one torn)."""
    result = run_cli("task=Ant", "num_envs=16", "max_iterations=2", "checkpoint_save_freq=1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    run = protocol.RunDir(next((tmp_path / "runs").iterdir()))
    (run.nn / "torn.pth").write_bytes(b"PK\x03\x04 not a whole checkpoint")
    return run


def test_panel_lists_newest_first_marks_unloadable_and_writes_through_the_protocol(server, ant_run):
    from isaacgymenvs.panel.catalog import run_info
    from isaacgymenvs.panel.web import NO_SELECTION, WebPanel

    protocol.write_state(ant_run, protocol.MODE_MANUAL, "nn/latest.pth")  # left by an earlier session
    panel = WebPanel(server, ant_run, run_info(ant_run))
    try:
        deadline = time.monotonic() + 20
        while len(panel.choice.options) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        options = list(panel.choice.options)
        assert options[0] == NO_SELECTION
        assert any(o.startswith("✗ torn.pth (") and o.endswith("(cannot load)") for o in options)
        mtimes = [panel.entries[o].mtime for o in options[1:]]
        assert mtimes == sorted(mtimes, reverse=True)
        latest = next(o for o in options if o.startswith("latest.pth ("))
        assert re.search(r"latest\.pth \(\d+\.\d KB\) - \d{4}-\d\d-\d\d \d\d:\d\d:\d\d  epoch 2  reward ", latest)
        assert panel.choice.value == latest  # the manual choice the player keeps is shown as chosen

        panel.choice.value = NO_SELECTION
        panel.load_selected()  # nothing chosen
        assert "Choose a checkpoint in the list first" in panel.message.content
        panel.choice.value = next(o for o in options if o.startswith("✗ torn.pth"))
        panel.load_selected()
        assert "torn.pth cannot be loaded" in panel.message.content
        assert protocol.read_state(ant_run)[0].seq == 1  # nothing written for a refused choice

        panel.choice.value = latest
        panel.load_selected()
        state, _ = protocol.read_state(ant_run)
        assert (state.mode, state.checkpoint, state.seq) == (protocol.MODE_MANUAL, "nn/latest.pth", 2)
        panel.choose_auto()
        state, _ = protocol.read_state(ant_run)
        assert state.mode == protocol.MODE_AUTO and panel.choice.value == NO_SELECTION
        time.sleep(0.7)  # one status poll
        assert "following latest.pth" in panel.mode_text.content
        assert panel.current.content == "player not running"
        modes = panel.mode_buttons  # the active mode's button is coloured, the other grey
        assert (modes[protocol.MODE_AUTO].color, modes[protocol.MODE_MANUAL].color) == ("green", "gray")

        # Manual with nothing chosen keeps what the player shows (latest.pth's epoch, as a saved file).
        protocol.write_status(ant_run, {"phase": "loaded", "mode": "auto", "checkpoint": "latest.pth", "epoch": 2})
        panel.choose_manual()
        state, _ = protocol.read_state(ant_run)
        assert state.mode == protocol.MODE_MANUAL and re.fullmatch(r"nn/last_Ant_ep_2_rew_?\S+\.pth", state.checkpoint)
        assert panel.selected().relative == state.checkpoint
        assert "Manual: keeping last_Ant_ep_2" in panel.message.content
        time.sleep(0.7)  # one status poll
        assert (modes[protocol.MODE_AUTO].color, modes[protocol.MODE_MANUAL].color) == ("gray", "orange")
        assert "Manual</b>, showing nn/last_Ant_ep_2" in panel.mode_text.content
    finally:
        panel.stop()


# --- the real page in a real browser ---------------------------------------------------------------

pytestmark_browser = pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"), reason="needs Debian's chromium (.ci/run installs it)"
)


@pytest.fixture(scope="module")
def browser():
    """Headless chromium driven by Playwright; the project installs chromium, CI must have it."""
    assert CHROMIUM is not None, "chromium is not installed (.ci/run installs it)"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run", "--disable-sync"],
        )  # fmt: skip
        yield chromium
        chromium.close()


class Page:
    """A tab on the player's page; every request that is not to this machine is refused and recorded."""

    def __init__(self, browser, url: str) -> None:
        self.context = browser.new_context(viewport={"width": 1100, "height": 800})
        self.page = self.context.new_page()
        self.external: list[str] = []
        self.page.route("**/*", self._route)
        self.page.goto(url)

    def _route(self, route) -> None:
        url = route.request.url
        if url.startswith(("data:", "blob:")) or urlparse(url).hostname in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            self.external.append(url)
            route.abort()

    def hud(self) -> str:
        return self.page.locator("#hud").inner_text(timeout=20_000)

    def wait_hud(self, pattern: str, timeout: float = 60) -> re.Match:
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            text = self.hud()
            match = re.search(pattern, text)
            if match:
                return match
            time.sleep(0.25)
        raise AssertionError(f"the HUD never matched {pattern!r}; it shows:\n{text}")

    def robot_pixels(self) -> float:
        """Fraction of the 3D canvas in the ants' tan (the floor is blue, the sky grey)."""
        from PIL import Image

        canvases = self.page.locator("canvas").all()
        largest = max(canvases, key=lambda c: (lambda b: b["width"] * b["height"] if b else 0)(c.bounding_box()))
        pixels = np.asarray(Image.open(io.BytesIO(largest.screenshot())).convert("RGB")).astype(int)
        r, g, b = pixels[..., 0], pixels[..., 1], pixels[..., 2]
        return float(((r > g + 25) & (g > b + 15)).mean())

    def close(self) -> None:
        self.context.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """A web player started first (no display, no viewer=: it picks the page), then a CPU trainer."""
    cwd = tmp_path_factory.mktemp("web")
    port = free_port()
    env = cli_env(DISPLAY=None, WAYLAND_DISPLAY=None, QT_QPA_PLATFORM=None)
    player = outlive_the_test(start_cli("mode=play", "experiment=Ant", f"web_port={port}", cwd=cwd, env=env))
    trainer = None
    try:
        lines = Lines(player)
        lines.wait_for("showing the player in a web page instead", 60)
        lines.wait_for("Waiting in the page: open http://localhost:", 60)
        args = ("task=Ant", "num_envs=16", "max_iterations=400", "checkpoint_save_freq=2")
        trainer = outlive_the_test(start_cli(*args, cwd=cwd))
        lines.wait_for(f"open http://localhost:{port}  (from your laptop: ssh -L {port}:localhost:{port} ", 120)
        yield {"url": f"http://127.0.0.1:{port}", "player": player, "lines": lines, "trainer": trainer, "cwd": cwd}
    finally:
        for proc in (trainer, player):
            if proc is not None:
                kill_group(proc)


@pytestmark_browser
@pytest.mark.slow
def test_page_shows_the_robots_and_the_epochs_the_trainer_publishes(browser, live):
    page = Page(browser, live["url"])
    try:
        first = int(page.wait_hud(r"auto: latest\.pth  epoch (\d+)", 120)[1])
        deadline = time.monotonic() + 30
        while page.robot_pixels() < 0.002 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert page.robot_pixels() >= 0.002, "no robot-coloured pixels in the 3D canvas"
        later = page.wait_hud(rf"epoch (?!{first}\b)(\d+)", 90)
        assert int(later[1]) > first
        assert "Traceback" not in "\n".join(live["lines"].seen)
        assert page.external == [], f"the page asked the internet for {page.external[:3]}"
    finally:
        page.close()
        live["trainer"].send_signal(2)  # the remaining tests need no live trainer: leave them the cores
        live["trainer"].wait(timeout=60)


def pick_option(page, pattern: str) -> str:
    """Open the checkpoint dropdown and choose the first option matching `pattern`; its text."""
    page.get_by_role("combobox", name="Checkpoint").click()
    option = page.get_by_role("option").filter(has_text=re.compile(pattern)).first
    text = option.inner_text()
    option.click()
    return text


@pytestmark_browser
@pytest.mark.slow
def test_manual_choice_in_the_page_reaches_the_player_and_auto_follows_latest_again(browser, live):
    run = protocol.RunDir(next((live["cwd"] / "runs").iterdir()))
    # A checkpoint of the user's own, beside rl_games' and latest.pth (copied whole, then renamed in).
    shutil.copyfile(run.nn / "latest.pth", run.nn / ".chosen.tmp")
    os.replace(run.nn / ".chosen.tmp", run.nn / "chosen.pth")
    tab = Page(browser, live["url"])
    page = tab.page
    try:
        tab.wait_hud(r"epoch \d+", 60)
        page.get_by_role("button", name="Manual").click()  # nothing chosen: keeps what is shown, or says why not
        page.get_by_text(re.compile("Manual: keeping|which no saved file holds yet")).wait_for(timeout=10_000)
        page.get_by_role("button", name="Refresh List").click()
        chosen = pick_option(page, r"^chosen\.pth \(")
        page.get_by_role("button", name="Load Selected").click()
        deadline = time.monotonic() + 20
        while protocol.read_state(run)[0] is None and time.monotonic() < deadline:
            time.sleep(0.1)
        state, _ = protocol.read_state(run)
        assert (state.mode, state.checkpoint) == (protocol.MODE_MANUAL, "nn/chosen.pth"), chosen
        tab.wait_hud(r"manual: chosen\.pth  epoch \d+", 30)
        assert protocol.read_status(run)["checkpoint"] == "chosen.pth"
        page.get_by_text("Mode: Manual, showing nn/chosen.pth").wait_for(timeout=10_000)

        page.get_by_role("button", name="Auto").click()
        tab.wait_hud(r"auto: latest\.pth  epoch \d+", 30)
        assert protocol.read_state(run)[0].mode == protocol.MODE_AUTO
        assert protocol.read_status(run)["checkpoint"] == "latest.pth"
        assert tab.external == []
    finally:
        tab.close()


def player_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@pytestmark_browser
@pytest.mark.slow
def test_two_tabs_a_closed_tab_and_a_stalled_client_never_stall_the_player(browser, live):
    import viser
    from websockets.sync.client import connect

    first, second = Page(browser, live["url"]), Page(browser, live["url"])
    stalled = None
    try:
        first.wait_hud(r"epoch \d+", 60)
        second.wait_hud(r"epoch \d+", 60)
        # A client that connects and then never reads: its queue fills, then its TCP window.
        stalled = connect(live["url"].replace("http", "ws"), subprotocols=[f"viser-v{viser.__version__}"], max_queue=1)
        rss_before = player_rss_mb(live["player"].pid)
        time.sleep(2)
        first.close()  # mid-stream
        texts = set()
        fps = []
        for _ in range(12):
            text = second.hud()
            texts.add(text)
            fps.append(int(re.search(r"(\d+) fps streamed", text)[1]))
            time.sleep(0.5)
        assert len(texts) >= 6, "the remaining tab's HUD stopped changing"
        # Real time is 60 frames/s; two cores shared with chromium's software WebGL cost some, a stall all.
        assert min(fps[2:]) >= 10 and sorted(fps)[len(fps) // 2] >= 25, f"the player streamed {fps} frames/s"
        assert player_rss_mb(live["player"].pid) - rss_before < 150  # the stalled client's queue is bounded
        assert live["player"].poll() is None
        assert "Traceback" not in "\n".join(live["lines"].seen)
    finally:
        if stalled is not None:
            stalled.close()
        second.close()
        if not first.page.is_closed():
            first.close()


def test_a_busy_port_stops_the_player_with_one_sentence(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli("mode=play", "experiment=Ant", "viewer=web", f"web_port={port}", cwd=tmp_path, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == (
        f"Error: Port {port} on 127.0.0.1 is already in use (another player?); choose a free one with web_port=."
    )


def test_panel_export_button_writes_the_selected_checkpoints_files(server, ant_run):
    pytest.importorskip("onnxruntime")
    from isaacgymenvs.panel.catalog import run_info
    from isaacgymenvs.panel.web import WebPanel

    panel = WebPanel(server, ant_run, run_info(ant_run))
    try:
        deadline = time.monotonic() + 20
        while not any(o.startswith("latest.pth (") for o in panel.choice.options) and time.monotonic() < deadline:
            time.sleep(0.1)
        panel.choice.value = next(o for o in panel.choice.options if o.startswith("latest.pth ("))
        panel.export_selected()
        assert panel.export_button.disabled  # one export at a time
        deadline = time.monotonic() + 120
        while panel.export_button.disabled and time.monotonic() < deadline:
            time.sleep(0.2)
        assert panel.message.content.startswith("Exported latest.pth to "), panel.message.content
        assert {p.name for p in (ant_run.root / "exported").iterdir()} >= {"latest.onnx", "latest.pt", "latest.json"}
    finally:
        panel.stop()


def test_qt_panel_and_page_panel_open_together_agree(qtbot, server, ant_run):
    """Each writes the state file through the protocol; each shows what the other chose."""
    from PySide6.QtCore import Qt

    from isaacgymenvs.panel.catalog import run_info
    from isaacgymenvs.panel.web import WebPanel
    from isaacgymenvs.panel.window import PanelWindow

    info = run_info(ant_run)
    window = PanelWindow(ant_run, info)
    qtbot.addWidget(window)
    window.show()
    page = WebPanel(server, ant_run, info)
    try:
        qtbot.waitUntil(lambda: len(window.table_model.entries) >= 2, timeout=20_000)
        window.select_checkpoint("latest.pth")
        qtbot.mouseClick(window.load_button, Qt.LeftButton)  # the Qt panel asks for latest.pth, by name
        qtbot.waitUntil(lambda: "Manual</b>, showing nn/latest.pth" in page.mode_text.content, timeout=5000)
        qtbot.waitUntil(lambda: window.manual_button.isChecked(), timeout=5000)

        page.choose_auto()  # the page's Auto: the Qt panel's radio follows
        qtbot.waitUntil(lambda: window.auto_button.isChecked(), timeout=5000)
        state, _ = protocol.read_state(ant_run)
        assert (state.mode, state.seq) == (protocol.MODE_AUTO, 2)
    finally:
        page.stop()
        window.close()


class FakeCamera:
    """viser's CameraHandle as frame_all uses it: assigning position moves look_at along with it."""

    def __init__(self, position, look_at, fov: float, aspect: float) -> None:
        self._position, self.look_at = np.array(position, float), np.array(look_at, float)
        self.fov, self.aspect, self.moves = fov, aspect, 0

    @property
    def position(self):
        return self._position

    @position.setter
    def position(self, value) -> None:
        self.look_at = self.look_at + (np.asarray(value) - self._position)
        self._position, self.moves = np.array(value, float), self.moves + 1


def test_the_pages_all_robots_view_zooms_out_until_every_robot_is_in_the_tabs_canvas():
    """Trained Ants run apart and left the page's picture; the sidebar makes the canvas narrow."""
    import math

    from isaacgymenvs.player.web_scene import frame_all

    roots = np.array([[40.0, 5.0, 0.5], [-35.0, 30.0, 0.5], [10.0, -45.0, 0.5], [0.0, 0.0, 0.5]])
    roots[:, :2] -= roots[:, :2].mean(axis=0)  # "all robots" brings their centroid to the origin
    look = np.array([0.0, 0.0, 0.4])
    camera = FakeCamera(look + np.array([-8.0, -3.0, 4.0]), look, fov=math.radians(50), aspect=0.9)
    direction = (camera.position - look) / np.linalg.norm(camera.position - look)
    assert frame_all(camera, roots)
    assert np.allclose(camera.look_at, look)  # the tab's orbit point and direction are kept
    assert np.allclose((camera.position - look) / np.linalg.norm(camera.position - look), direction)
    forward = (look - camera.position) / np.linalg.norm(look - camera.position)
    right = np.cross(forward, [0, 0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    tan_v = math.tan(camera.fov / 2)
    for i, root in enumerate(roots):
        d = root - camera.position
        depth = d @ forward
        x, y = d @ right / depth, d @ up / depth
        assert depth > 0 and abs(x) < tan_v * camera.aspect and abs(y) < tan_v, f"robot {i} is outside ({x}, {y})"
    far = camera.position.copy()
    assert not frame_all(camera, roots) and np.allclose(camera.position, far)  # framed: left alone
    assert not frame_all(camera, roots * 0.1)  # never zooms in: closer is the user's choice

    class Unreported:  # a tab that has not sent its camera yet (viser asserts)
        @property
        def position(self):
            raise AssertionError

    assert not frame_all(Unreported(), roots)

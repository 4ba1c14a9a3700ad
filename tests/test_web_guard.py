"""The page answers only its own origin, refuses extra tabs, and ignores values no widget offers."""

from __future__ import annotations

import contextlib
import socket
import time
import types
import urllib.error
import urllib.request

import msgspec
import pytest

from isaacgymenvs.player.web_guard import host_name, own_names, refusal


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_only_own_names_and_ip_literals_pass_and_origins_must_be_the_page_itself():
    names = own_names("127.0.0.1")
    assert host_name("LocalHost:8080") == "localhost" and host_name("[::1]:80") == "::1"
    assert refusal({"Host": "localhost:8080"}, names) is None
    assert refusal({"Host": "10.1.2.3:8080"}, names) is None  # an address, never a rebound name
    assert refusal({"Host": "localhost:9000", "Origin": "http://localhost:9000"}, names) is None  # an ssh tunnel
    assert "Host 'evil.example:8080'" in refusal({"Host": "evil.example:8080"}, names)
    assert "Origin 'http://evil.example'" in refusal({"Host": "localhost:8080", "Origin": "http://evil.example"}, names)
    assert "Origin" in refusal({"Host": "localhost:8080", "Origin": "http://localhost:8081"}, names)
    assert refusal({}, names) == "a request without a Host header"


@pytest.fixture
def page(capsys):
    """The player's page server (guard installed) with the player's camera controls on it."""
    from isaacgymenvs.player.web import PlayerControls, WebViewer

    port = free_port()
    viewer = WebViewer("127.0.0.1", port)
    scene = types.SimpleNamespace(follow="all robots", high_quality=False, set_high_quality=lambda on: None)
    task, follower = types.SimpleNamespace(num_envs=4), types.SimpleNamespace()
    core = types.SimpleNamespace(task=task, follower=follower, drivable=False)
    controls = PlayerControls(viewer.server, core, scene)
    yield viewer, port, scene, controls
    viewer.close()


def get(port: int, host: str) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/", headers={"Host": host})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


def connect(port: int, origin: str | None = None):
    import viser
    from websockets.sync.client import connect as ws_connect

    headers = {"Origin": origin} if origin else None
    return ws_connect(
        f"ws://127.0.0.1:{port}", subprotocols=[f"viser-v{viser.__version__}"], additional_headers=headers,
        open_timeout=10, max_size=None,
    )  # fmt: skip


def test_a_foreign_host_or_origin_is_refused_with_403_and_one_console_line(page, capsys):
    from websockets.exceptions import InvalidStatus

    viewer, port, _, _ = page
    assert get(port, f"127.0.0.1:{port}") == 200
    assert get(port, "evil.example") == 403  # DNS rebinding: the attacker's name points at 127.0.0.1
    assert get(port, "evil.example") == 403
    with pytest.raises(InvalidStatus) as refused:
        connect(port, origin="http://evil.example")
    assert refused.value.response.status_code == 403
    with connect(port, origin=f"http://127.0.0.1:{port}") as ws:  # the page's own origin
        assert ws.recv(timeout=10)
    out = capsys.readouterr().out
    assert out.count("Web page: refused a request for Host 'evil.example'.") == 1
    assert "Web page: refused a request from Origin 'http://evil.example'" in out


def test_tabs_beyond_the_limit_are_refused(page):
    from websockets.exceptions import InvalidStatus

    viewer, port, _, _ = page
    viewer.guard.max_tabs = 2
    with connect(port) as a, connect(port) as b:
        a.recv(timeout=10), b.recv(timeout=10)
        with pytest.raises(InvalidStatus) as refused:
            connect(port)
        assert refused.value.response.status_code == 503
    time.sleep(0.5)
    with connect(port) as c:  # closed tabs free their places
        assert c.recv(timeout=10)


def test_values_no_widget_offers_are_ignored_and_the_player_keeps_running(page, capsys):
    _, port, scene, controls = page
    uuid = controls.follow._impl.uuid

    def send(ws, value) -> None:
        ws.send(msgspec.msgpack.encode({"type": "GuiUpdateMessage", "uuid": uuid, "updates": {"value": value}}))

    camera = {
        "type": "ViewerCameraMessage", "wxyz": [1.0, 0.0, 0.0, 0.0], "position": [3.0, 3.0, 3.0], "fov": 1.0,
        "near": 0.01, "far": 100.0, "image_height": 480, "image_width": 640, "look_at": [0.0, 0.0, 0.0],
        "up_direction": [0.0, 0.0, 1.0],
    }  # fmt: skip
    with connect(port) as ws:
        ws.recv(timeout=10)
        ws.send(msgspec.msgpack.encode(camera))  # what a tab sends first; viser counts it as connected then
        for value in ("robot 99", "x", "", "robot -1", "robot 1e9"):
            send(ws, value)
        time.sleep(1.0)
        assert scene.follow == "all robots"
        send(ws, "robot 2")
        deadline = time.time() + 5
        while scene.follow != "robot 2" and time.time() < deadline:
            time.sleep(0.05)
        assert scene.follow == "robot 2"
    out = capsys.readouterr().out
    assert "Web page: ignored Camera='robot 99' from a client (not one of the offered values)." in out


def test_the_scene_never_raises_on_a_follow_value_it_does_not_know():
    from isaacgymenvs.player.web_scene import robot_index

    assert robot_index("robot 2", 4) == 2
    for value in ("robot 4", "robot 99", "robot x", "", None, 5, "robot -1", "all robots"):
        with contextlib.nullcontext():
            assert robot_index(value, 4) is None

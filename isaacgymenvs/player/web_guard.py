"""The page answers only its own origin, and only so many tabs.

Binding 127.0.0.1 does not keep other web sites out: a page the user visits can reach the player
through the browser. With DNS rebinding, evil.example resolves to 127.0.0.1 and its requests carry
`Host: evil.example`; a websocket opened by any page carries that page's `Origin`. Both were
answered before (the page, the HUD, the run name, and a switch of the player to manual). So every
HTTP request and websocket handshake is checked before viser sees it:

- Host must be a name of this server: localhost, the bound address, web_host, this machine's
  host names, or an IP literal (a rebinding attack always carries the attacker's *name*);
- a request with an Origin (browsers always send one on websockets) must come from the very
  host:port it is addressed to (same origin: the page itself, or its SSH tunnel);
- at most MAX_TABS websockets at once: each tab costs the loop a send per frame, and hundreds of
  stalled connections slowed the other tabs fourfold.

Anything else is a 403 (503 for too many tabs) with one console line per distinct offender.
A per-session token in the URL (as Jupyter prints) was not added: viser's client opens its
websocket without it, and the origin checks already refuse what a token would (another site in
the user's browser); on a shared machine, web_host=127.0.0.1 is still reachable by local users.
viser has no request hook, so the check wraps websockets' `process_request`, which viser passes.
"""

from __future__ import annotations

import http
import ipaddress
import socket
import threading
import weakref
from collections.abc import Callable
from urllib.parse import urlsplit

MAX_TABS = 16
LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")


def host_name(header: str) -> str:
    """The host of a Host header value, without port or IPv6 brackets, lower case."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def own_names(web_host: str) -> frozenset[str]:
    """Host names this server answers to: localhost, web_host and this machine's names."""
    names = {*LOCAL_NAMES, web_host.lower(), socket.gethostname().lower(), socket.getfqdn().lower()}
    return frozenset(n for n in names if n)


def refusal(headers, names: frozenset[str]) -> str | None:
    """Why a request is refused (None: allowed): a foreign Host, or an Origin other than the page's own."""
    host = headers.get("Host")
    if not host:
        return "a request without a Host header"
    name = host_name(host)
    if name not in names and not is_ip_literal(name):
        return f"a request for Host {host[:80]!r}"
    origin = headers.get("Origin")
    if origin is not None and urlsplit(origin).netloc.lower() != host.strip().lower():
        return f"a request from Origin {origin[:80]!r} (the page is {host[:80]!r})"
    return None


class Guard:
    """The checks in front of viser's request handler; `install()` before the server starts."""

    def __init__(self, web_host: str, log: Callable[[str], None] = print, max_tabs: int = MAX_TABS) -> None:
        self.names, self.log, self.max_tabs = own_names(web_host), log, max_tabs
        self.tabs: weakref.WeakSet = weakref.WeakSet()
        self.reported: set[str] = set()
        self.lock = threading.Lock()

    def note(self, why: str) -> None:
        with self.lock:
            if why in self.reported or len(self.reported) > 100:
                return
            self.reported.add(why)
        self.log(f"Web page: refused {why}.")

    def open_tabs(self) -> int:
        from websockets.protocol import State

        return sum(1 for connection in list(self.tabs) if connection.state is State.OPEN)

    def check(self, connection, request):
        """websockets' process_request: a Response refuses; None lets the request through."""
        why = refusal(request.headers, self.names)
        if why is not None:
            self.note(why)
            return connection.respond(http.HTTPStatus.FORBIDDEN, "Forbidden: this page answers only its own origin.\n")
        if request.headers.get("Upgrade", "").lower() == "websocket":
            if self.open_tabs() >= self.max_tabs:
                self.note(f"a tab beyond the {self.max_tabs} open at once")
                return connection.respond(http.HTTPStatus.SERVICE_UNAVAILABLE, "Too many open tabs.\n")
            self.tabs.add(connection)
        return None

    def install(self) -> None:
        """Make the next websockets server (viser's) run `check` before its own handler."""
        import websockets.asyncio.server as server

        original = getattr(server.serve, "_unguarded", server.serve)
        guard = self

        def serve(*args, process_request=None, **kwargs):
            def checked(connection, request):
                refused = guard.check(connection, request)
                if refused is not None or process_request is None:
                    return refused
                return process_request(connection, request)

            return original(*args, process_request=checked, **kwargs)

        serve._unguarded = original
        server.serve = serve

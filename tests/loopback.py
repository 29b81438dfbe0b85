"""A small threaded HTTP/1.1 server on a loopback address, for tests that need real sockets.

Usage::

    with LoopbackServer() as server:                 # 127.0.0.1, a free port
        server.reply("/feed", body=b"<rss/>", headers={"ETag": '"v1"'})
        server.route("/slow", lambda exchange: ...)  # full control over the reply
        ... fetch server.url("/feed") ...
        assert server.requests[0].headers["user-agent"].startswith("feedwatch")

Routes are matched on the path without the query string; unknown paths get a
404. Every request is recorded (method, target, lower-case headers) before its
handler runs, so a test can assert that a server received *nothing*. Handler
threads are joined on exit; ``stopping`` is set first so that a handler that
streams forever (a drip feed) can end promptly.

Only binds loopback addresses (127.0.0.0/8); it is refused otherwise.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self

__all__ = ["Exchange", "Handler", "LoopbackServer", "RecordedRequest", "send"]

#: What a route does with one request.
Handler = Callable[["Exchange"], None]


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as the server received it."""

    method: str
    #: Request target as sent (path and query).
    target: str
    #: Header names lower-cased; for repeats the last value wins.
    headers: dict[str, str]
    #: ``time.monotonic()`` when it arrived.
    at: float = 0.0


class Exchange(BaseHTTPRequestHandler):
    """The request handler; route handlers get it and write the reply themselves."""

    protocol_version = "HTTP/1.1"  # keep-alive, like real feed servers
    timeout = 10  # seconds an idle kept-alive connection may block a thread
    server: _Server

    @property
    def owner(self) -> LoopbackServer:
        return self.server.owner

    def do_GET(self) -> None:
        self.owner._dispatch(self)

    do_HEAD = do_GET
    do_POST = do_GET

    def log_message(self, format: str, *args: object) -> None:  # keep test output clean
        pass


def send(
    exchange: Exchange,
    status: int = 200,
    body: bytes = b"",
    headers: Mapping[str, str] | None = None,
) -> None:
    """Write a complete response; Content-Length is added unless given (or 304/204)."""
    exchange.send_response(status)
    names = {name.lower() for name in (headers or {})}
    for name, value in (headers or {}).items():
        exchange.send_header(name, value)
    if "content-length" not in names and status not in (204, 304):
        exchange.send_header("Content-Length", str(len(body)))
    exchange.end_headers()
    if body and exchange.command != "HEAD":
        exchange.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # joined in server_close(), so nothing outlives the test
    block_on_close = True

    def __init__(self, owner: LoopbackServer, address: tuple[str, int]) -> None:
        self.owner = owner
        super().__init__(address, Exchange)


class LoopbackServer:
    """A threaded HTTP server on ``host`` (a loopback address) and ``port`` (0: a free one)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"LoopbackServer binds loopback addresses only, not {host}")
        self.host = host
        self.requests: list[RecordedRequest] = []
        #: Set when the server is stopping; long-running handlers should check it.
        self.stopping = threading.Event()
        self._routes: dict[str, Handler] = {}
        self._lock = threading.Lock()
        self._server = _Server(self, (host, port))
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def url(self, path: str = "/") -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{path}"

    def route(self, path: str, handler: Handler) -> None:
        """Serve ``path`` (without query) with ``handler``."""
        with self._lock:
            self._routes[path] = handler

    def reply(
        self,
        path: str,
        status: int = 200,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Serve ``path`` with a fixed response."""
        fixed = dict(headers or {})
        self.route(path, lambda exchange: send(exchange, status, body, fixed))

    def redirect(self, path: str, location: str, status: int = 302) -> None:
        """Serve ``path`` with a redirect to ``location``."""
        self.reply(path, status, headers={"Location": location})

    def requests_to(self, path: str) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.target.split("?", 1)[0] == path]

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()  # joins the handler threads
        self._thread.join()

    def _dispatch(self, exchange: Exchange) -> None:
        headers = {name.lower(): value for name, value in exchange.headers.items()}
        with self._lock:
            self.requests.append(
                RecordedRequest(exchange.command, exchange.path, headers, time.monotonic())
            )
            handler = self._routes.get(exchange.path.split("?", 1)[0])
        try:
            if handler is None:
                send(exchange, 404, b"not found")
            else:
                handler(exchange)
            exchange.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            # The client went away (a cut-off body, a deadline): expected here.
            exchange.close_connection = True

"""A raw-socket loopback server, for replies an HTTP server library cannot produce.

``LoopbackServer`` (tests/loopback.py) always writes a well-formed status line and
header block. The hostile-input suite also needs servers that break HTTP itself:
header lines that never end, malformed chunked encoding, a connection reset in
the middle of the body, a server that accepts and never says anything. Here a
handler gets the bare socket (:class:`RawConnection`) once the request head has
been read, and writes whatever bytes it likes::

    with RawServer() as raw:
        raw.reply(b"<rss .../>")                         # a well-formed reply
        raw.serve(lambda conn: conn.send(b"HTTP/1.1 200 OK\\r\\n" + b"X: y\\r\\n" * 9))
        ... fetch raw.url("/victim") ...

Every request is recorded (method, target, arrival time) before its handler
runs. After the handler returns the connection is closed gracefully (FIN)
unless the handler reset it (:meth:`RawConnection.reset`: RST). On exit
``stopping`` is set, the listening socket is closed and every connection
thread is joined, so a handler that streams or waits must check
:meth:`RawConnection.wait` (or ``stopping``) and end promptly.

Only binds loopback addresses (127.0.0.0/8); it is refused otherwise.
"""

from __future__ import annotations

import contextlib
import ipaddress
import select
import socket
import struct
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Self

__all__ = ["RawConnection", "RawHandler", "RawRequest", "RawServer", "respond"]

#: Longest request head read before the handler runs.
_MAX_HEAD = 64 * 1024
#: Seconds a thread is given to end on exit before the server gives up on it.
_JOIN_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class RawRequest:
    """One request head as the server received it."""

    method: str
    target: str
    #: ``time.monotonic()`` when its head had arrived.
    at: float


class RawConnection:
    """One accepted connection, handed to a handler after its request head was read."""

    def __init__(self, sock: socket.socket, stopping: threading.Event) -> None:
        self.sock = sock
        self.stopping = stopping
        #: Bytes written so far.
        self.sent = 0
        #: Whether the client went away (a write failed, or :meth:`wait` saw it close).
        self.gone = False
        self._reset = False

    def send(self, data: bytes) -> bool:
        """Write ``data``; False (and nothing raised) once the client has gone away."""
        if self.gone or self._reset:
            return False
        try:
            self.sock.sendall(data)
        except OSError:  # EPIPE, ECONNRESET: the client closed its end
            self.gone = True
            return False
        self.sent += len(data)
        return True

    def wait(self, seconds: float) -> bool:
        """Sleep ``seconds``; True (at once) when the server is stopping or the client has
        closed its end (a handler then has no one left to write to)."""
        deadline = time.monotonic() + seconds
        while not self.stopping.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                readable, _, _ = select.select([self.sock], [], [], min(left, 0.05))
                if readable and not self.sock.recv(1, socket.MSG_PEEK):
                    self.gone = True  # end of its stream: the client closed
            except (OSError, ValueError):  # reset by the client, or closed here
                self.gone = True
            if self.gone:
                return True
            if readable:  # the client sent more (unread here): do not spin on it
                self.stopping.wait(min(left, 0.05))
        return True

    def reset(self) -> None:
        """Close with a TCP reset (SO_LINGER 0) instead of a graceful FIN."""
        if self._reset:
            return
        self._reset = True
        with contextlib.suppress(OSError):
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    def close(self) -> None:
        """A graceful close (FIN), unless reset already."""
        if self._reset:
            return
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)
        self.sock.close()


#: What the server does with one connection once its request head is read.
RawHandler = Callable[[RawConnection], None]


class RawServer:
    """A TCP server on ``host`` (a loopback address), a free port, one thread per connection."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"RawServer binds loopback addresses only, not {host}")
        self.host = host
        self.requests: list[RawRequest] = []
        #: Set when the server is stopping; handlers that stream or wait must end then.
        self.stopping = threading.Event()
        self._handler: RawHandler = respond(200, b"", {})
        self._lock = threading.Lock()
        self._listener = socket.create_server((host, 0), backlog=128)
        self._listener.settimeout(0.05)
        self._threads: list[threading.Thread] = []
        self._accepting = threading.Thread(target=self._accept, daemon=True)

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1])

    def url(self, path: str = "/") -> str:
        return f"http://{self.host}:{self.port}{path}"

    def serve(self, handler: RawHandler) -> None:
        """Answer every request from now on with ``handler`` (whatever the path)."""
        with self._lock:
            self._handler = handler

    def reply(
        self, body: bytes, headers: Mapping[str, str] | None = None, status: int = 200
    ) -> None:
        """Answer every request with this well-formed response (and close the connection)."""
        self.serve(respond(status, body, headers or {}))

    def __enter__(self) -> Self:
        self._accepting.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stopping.set()
        self._accepting.join()
        self._listener.close()
        for thread in self._threads:
            thread.join(_JOIN_TIMEOUT)

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._connection, args=(sock,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _connection(self, sock: socket.socket) -> None:
        conn = RawConnection(sock, self.stopping)
        try:
            sock.settimeout(5.0)
            head = _read_head(sock)
            if head is None:
                return
            method, _, rest = head.partition(" ")
            target = rest.partition(" ")[0]
            with self._lock:
                self.requests.append(RawRequest(method, target, time.monotonic()))
                handler = self._handler
            sock.settimeout(None)
            handler(conn)
        except OSError:
            pass  # the client went away while we read or wrote: expected here
        finally:
            conn.close()


def _read_head(sock: socket.socket) -> str | None:
    """The request line of a request head (read up to its blank line), or None."""
    data = b""
    while b"\r\n\r\n" not in data:
        if len(data) > _MAX_HEAD:
            return None
        chunk = sock.recv(4096)
        if not chunk:
            return None
        data += chunk
    return data.split(b"\r\n", 1)[0].decode("latin-1")


def respond(status: int, body: bytes, headers: Mapping[str, str]) -> RawHandler:
    """A well-formed response (Content-Length added unless given), then the close."""

    def handler(conn: RawConnection) -> None:
        lines = [f"HTTP/1.1 {status} Whatever"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if not any(name.lower() == "content-length" for name in headers):
            lines.append(f"Content-Length: {len(body)}")
        lines.append("Connection: close")
        conn.send(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)

    return handler

"""Real SMTP servers on loopback addresses, for tests of the email channel.

Usage::

    tls = make_tls(tmp_path)                      # a trustme CA, server cert, CA PEM on disk
    with SmtpServer(tls_context=tls.server_context(), require_starttls=True) as server:
        ... send to server.host:server.port with ca_file=tls.ca_file ...
        assert server.handler.messages[0].tls

:class:`SmtpServer` runs aiosmtpd's threaded :class:`~aiosmtpd.controller.Controller`
on 127.0.0.1 and a free port (the port is read back from the bound socket, so
there is no race for it). Its :class:`RecordingHandler` keeps every MAIL FROM
and every accepted message (envelope, raw bytes, whether TLS and AUTH were on),
and can be told to refuse recipients, senders or the data with a given reply.

:func:`refusing_port` gives a port that refuses connections and
:func:`silent_port` one that accepts them but never says a word. Everything
binds loopback addresses only (127.0.0.0/8); anything else is refused.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

__all__ = [
    "Received",
    "RecordingHandler",
    "SmtpServer",
    "Tls",
    "make_tls",
    "password_authenticator",
    "refusing_port",
    "silent_port",
]


def _check_loopback(host: str) -> None:
    if not ipaddress.ip_address(host).is_loopback:
        raise ValueError(f"test servers bind loopback addresses only, not {host}")


# --------------------------------------------------------------------------- TLS


@dataclass(frozen=True)
class Tls:
    """A private CA, a server certificate for 127.0.0.1 and localhost, and the CA PEM file."""

    ca: trustme.CA
    server_cert: trustme.LeafCert
    #: The CA certificate as a PEM file: what a client passes as ``ca_file``.
    ca_file: str

    def server_context(self) -> ssl.SSLContext:
        """A server-side context presenting the server certificate."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.server_cert.configure_cert(context)
        return context


def make_tls(directory: Path) -> Tls:
    """A fresh CA and server certificate; the CA PEM is written to ``directory/ca.pem``."""
    ca = trustme.CA()
    server_cert = ca.issue_cert("127.0.0.1", "localhost")
    ca_file = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return Tls(ca, server_cert, str(ca_file))


# --------------------------------------------------------------------------- handler


@dataclass(frozen=True)
class Received:
    """One message the server accepted."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    #: The message as received (bytes, CRLF line ends).
    content: bytes
    #: True when the session was encrypted (implicit TLS or after STARTTLS).
    tls: bool
    #: True when the client authenticated.
    authenticated: bool


@dataclass
class RecordingHandler:
    """An aiosmtpd handler that records what it gets and refuses what it is told to.

    ``rcpt_replies`` maps a recipient address (or ``"*"`` for all) to the reply
    that refuses it, e.g. ``"550 5.1.1 no such user"``. ``mail_reply`` and
    ``data_reply``, when set, refuse MAIL FROM and the message data.
    """

    rcpt_replies: dict[str, str] = field(default_factory=dict)
    mail_reply: str | None = None
    data_reply: str | None = None
    #: Every MAIL FROM address seen, accepted or not.
    mail_from: list[str] = field(default_factory=list)
    #: Every message accepted.
    messages: list[Received] = field(default_factory=list)

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        self.mail_from.append(address)
        if self.mail_reply is not None:
            return self.mail_reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        reply = self.rcpt_replies.get(address, self.rcpt_replies.get("*"))
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.data_reply is not None:
            return self.data_reply
        content = envelope.content
        assert isinstance(content, bytes)
        assert server.transport is not None
        self.messages.append(
            Received(
                mail_from=envelope.mail_from or "",
                rcpt_tos=tuple(envelope.rcpt_tos),
                content=content,
                tls=server.transport.get_extra_info("ssl_object") is not None,
                authenticated=bool(session.authenticated),
            )
        )
        return "250 Message accepted for delivery"


def password_authenticator(username: str, password: str) -> Any:
    """An aiosmtpd ``authenticator`` accepting one username and password (PLAIN or LOGIN)."""

    def authenticate(
        server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == username.encode()
            and auth_data.password == password.encode()
        )
        # handled=False: let aiosmtpd send the 235 or 535 reply itself.
        return AuthResult(success=ok, handled=False)

    return authenticate


# --------------------------------------------------------------------------- server


class _LoopbackController(Controller):
    """A Controller that may listen on port 0: the real port is read from the socket."""

    def _trigger_server(self) -> None:
        assert isinstance(self.server, asyncio.Server)
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()  # type: ignore[no-untyped-call]


class SmtpServer:
    """An aiosmtpd server on ``host`` (loopback) and a free port, for a ``with`` block.

    Args:
        handler: the handler; a new :class:`RecordingHandler` by default.
        port: the port (0, the default: a free one).
        ssl_context: serve implicit TLS with this server context.
        **smtp_kwargs: passed to :class:`aiosmtpd.smtp.SMTP` (``tls_context``,
            ``require_starttls``, ``authenticator``, ``auth_require_tls``...).
    """

    def __init__(
        self,
        handler: RecordingHandler | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
        **smtp_kwargs: Any,
    ) -> None:
        _check_loopback(host)
        self.host = host
        self.handler = handler if handler is not None else RecordingHandler()
        self._controller = _LoopbackController(
            self.handler,
            hostname=host,
            port=port,
            ssl_context=ssl_context,
            # Named here so aiosmtpd does not look the machine's name up.
            server_hostname="smtp.test.localhost",
            **smtp_kwargs,
        )

    @property
    def port(self) -> int:
        return int(self._controller.port)

    def __enter__(self) -> Self:
        self._controller.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._controller.stop()


@contextmanager
def refusing_port(host: str = "127.0.0.1") -> Iterator[int]:
    """A port on ``host`` that refuses connections: bound (nobody else takes it), not listening."""
    _check_loopback(host)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        yield int(sock.getsockname()[1])


@contextmanager
def silent_port(host: str = "127.0.0.1") -> Iterator[int]:
    """A port on ``host`` that accepts connections (in the backlog) and never sends a byte."""
    _check_loopback(host)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        sock.listen(8)
        yield int(sock.getsockname()[1])

"""HttpFetcher against real HTTP servers on loopback addresses (see tests/loopback.py).

No traffic leaves 127.0.0.0/8: forbidden targets are servers on 127.0.0.2 or
addresses the guard refuses before connecting, and host names are resolved by
a fake resolver, never by DNS.
"""

from __future__ import annotations

import asyncio
import gc
import gzip
import socket
import ssl
import struct
import threading
import tracemalloc
import warnings
import zlib
from collections.abc import Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from functools import cache
from typing import Any, TypeVar

import brotli  # type: ignore[import-untyped]
import pytest
import trustme
from loopback import Exchange, LoopbackServer, send

import feedwatch.fetch as fetch_module
from feedwatch._model import FetchOptions, FetchResult
from feedwatch.exceptions import ErrorKind, FetchError
from feedwatch.fetch import (
    ACCEPT_ENCODING,
    MAX_URL_LENGTH,
    HttpFetcher,
    Resolver,
    WebhookClient,
    resolve_host,
)

FEED = b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title></channel></rss>'
LAST_MODIFIED = "Wed, 21 Oct 2015 07:28:00 GMT"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
#: Loopback only, as a test needs; everything else stays forbidden.
LOCAL = FetchOptions(allow_networks=("127.0.0.1/32",), timeout=5.0, connect_timeout=2.0)


T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


async def fetch(
    url: str,
    options: FetchOptions = LOCAL,
    *,
    resolver: Resolver | None = None,
    etag: str | None = None,
    last_modified: str | None = None,
) -> FetchResult:
    async with HttpFetcher(options, clock=lambda: NOW, resolver=resolver) as fetcher:
        return await fetcher.fetch(url, etag=etag, last_modified=last_modified)


def fetch_error(url: str, options: FetchOptions = LOCAL, **kwargs: Any) -> FetchError:
    with pytest.raises(FetchError) as info:
        run(fetch(url, options, **kwargs))
    assert info.value.url == url
    return info.value


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer() as srv:
        yield srv


@pytest.fixture
def forbidden() -> Iterator[LoopbackServer]:
    """A server on 127.0.0.2, which LOCAL does not allow: it must never see a request."""
    with LoopbackServer("127.0.0.2") as srv:
        srv.reply("/feed", body=FEED)
        yield srv


# --------------------------------------------------------------------------- conditional GET


def conditional_feed(exchange: Exchange) -> None:
    if exchange.headers.get("If-None-Match") == '"v1"':
        send(exchange, 304, headers={"ETag": '"v1"'})  # no Last-Modified on purpose
    else:
        headers = {"ETag": '"v1"', "Last-Modified": LAST_MODIFIED, "X-Feed": "yes"}
        send(exchange, 200, FEED, headers)


def test_first_fetch_returns_body_headers_and_validators(server: LoopbackServer) -> None:
    server.route("/feed", conditional_feed)
    result = run(fetch(server.url("/feed")))
    assert result.status == 200
    assert result.content == FEED
    assert result.final_url == server.url("/feed")
    assert result.etag == '"v1"'
    assert result.last_modified == LAST_MODIFIED
    assert result.headers["x-feed"] == "yes"
    assert all(name == name.lower() for name in result.headers)
    (request,) = server.requests
    assert "if-none-match" not in request.headers
    assert "if-modified-since" not in request.headers


def test_conditional_get_sends_validators_and_returns_304(server: LoopbackServer) -> None:
    server.route("/feed", conditional_feed)
    result = run(fetch(server.url("/feed"), etag='"v1"', last_modified=LAST_MODIFIED))
    assert result.status == 304
    assert result.not_modified
    assert result.content == b""
    assert result.etag == '"v1"'  # from the 304
    assert result.last_modified == LAST_MODIFIED  # the 304 had none: the one sent
    (request,) = server.requests
    assert request.headers["if-none-match"] == '"v1"'
    assert request.headers["if-modified-since"] == LAST_MODIFIED
    assert request.headers["user-agent"] == LOCAL.user_agent
    assert request.headers["accept-encoding"] == ACCEPT_ENCODING == "gzip, deflate, br"
    assert request.headers["accept"].startswith("application/atom+xml, application/rss+xml")


def test_304_to_a_request_without_validators_is_an_error(server: LoopbackServer) -> None:
    # RFC 9110 §15.4.5: a 304 answers a conditional request; to an unconditional
    # one it says "unchanged" about nothing.
    server.reply("/feed", 304, headers={"ETag": '"v1"'})
    error = fetch_error(server.url("/feed"))
    assert (error.kind, error.status) == (ErrorKind.HTTP_STATUS, 304)
    assert error.message == (
        "HTTP 304 Not Modified to a request without validators (no ETag or date sent)"
    )
    # Either validator makes the request conditional, and the 304 a "not modified".
    assert run(fetch(server.url("/feed"), etag='"v0"')).not_modified
    assert run(fetch(server.url("/feed"), last_modified=LAST_MODIFIED)).not_modified


# --------------------------------------------------------------------------- redirects


def test_redirect_chain_301_302_307_is_followed(server: LoopbackServer) -> None:
    server.redirect("/r1", "/r2", 301)
    server.redirect("/r2", "r3", 302)  # relative to /r2
    server.redirect("/r3", server.url("/feed"), 307)
    server.reply("/feed", body=FEED)
    result = run(fetch(server.url("/r1")))
    assert result.content == FEED
    assert result.final_url == server.url("/feed")
    assert [r.target for r in server.requests] == ["/r1", "/r2", "/r3", "/feed"]


def hops(server: LoopbackServer) -> None:
    for i in range(6):
        server.redirect(f"/hop{i}", f"/hop{i + 1}")
    server.reply("/hop6", body=FEED)


def test_five_redirects_are_followed(server: LoopbackServer) -> None:
    hops(server)
    assert run(fetch(server.url("/hop1"))).final_url == server.url("/hop6")


def test_six_redirects_are_too_many(server: LoopbackServer) -> None:
    hops(server)
    error = fetch_error(server.url("/hop0"))
    assert error.kind is ErrorKind.REDIRECT
    assert "more than 5 redirects" in error.message
    assert server.requests_to("/hop6") == []


def test_redirect_loop_is_reported(server: LoopbackServer) -> None:
    server.redirect("/a", "/b")
    server.redirect("/b", "/a")
    error = fetch_error(server.url("/a"))
    assert error.kind is ErrorKind.REDIRECT
    assert "loop" in error.message
    assert len(server.requests) == 2


@pytest.mark.parametrize("location", ["file:///etc/passwd", "ftp://127.0.0.1/feed"])
def test_redirect_to_other_scheme_is_blocked(server: LoopbackServer, location: str) -> None:
    server.redirect("/feed", location)
    error = fetch_error(server.url("/feed"))
    assert error.kind is ErrorKind.BLOCKED
    assert "only http and https" in error.message


# --------------------------------------------------------------------------- statuses


@pytest.mark.parametrize(
    ("status", "retry_after", "expected"),
    [
        (429, "120", 120.0),
        (429, format_datetime(NOW + timedelta(seconds=90), usegmt=True), 90.0),
        (503, format_datetime(NOW + timedelta(minutes=5), usegmt=True), 300.0),
        (503, "soon", None),
    ],
)
def test_retry_after(
    server: LoopbackServer, status: int, retry_after: str, expected: float | None
) -> None:
    server.reply("/feed", status, b"busy", {"Retry-After": retry_after})
    error = fetch_error(server.url("/feed"))
    assert error.kind is ErrorKind.HTTP_STATUS
    assert error.status == status
    assert error.retry_after == expected


@pytest.mark.parametrize(
    ("status", "message"), [(410, "HTTP 410 Gone"), (500, "HTTP 500 Internal Server Error")]
)
def test_error_status(server: LoopbackServer, status: int, message: str) -> None:
    server.reply("/feed", status, b"no", {"Retry-After": "60"})
    error = fetch_error(server.url("/feed"))
    assert (error.kind, error.status, error.message) == (ErrorKind.HTTP_STATUS, status, message)
    assert error.retry_after is None  # only 429 and 503 carry it


# --------------------------------------------------------------------------- bodies


def deflate(data: bytes) -> bytes:
    return zlib.compress(data)


ENCODERS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress,
    "deflate": deflate,
    "br": brotli.compress,
}


@pytest.mark.parametrize("coding", sorted(ENCODERS))
def test_compressed_bodies_are_decoded(server: LoopbackServer, coding: str) -> None:
    body = FEED * 500
    server.reply("/feed", body=ENCODERS[coding](body), headers={"Content-Encoding": coding})
    result = run(fetch(server.url("/feed")))
    assert result.content == body
    assert result.headers["content-encoding"] == coding


def test_declared_length_over_the_cap_is_refused(server: LoopbackServer) -> None:
    server.reply("/feed", body=b"x" * 4096)
    error = fetch_error(server.url("/feed"), replace(LOCAL, max_body=1024))
    assert (error.kind, error.message) == (ErrorKind.TOO_LARGE, "body larger than 1 KiB")


def test_undeclared_length_over_the_cap_is_cut_off(server: LoopbackServer) -> None:
    def close_delimited(exchange: Exchange) -> None:
        # No Content-Length: the body runs until the connection closes.
        exchange.send_response(200)
        exchange.send_header("Connection", "close")
        exchange.end_headers()
        exchange.wfile.write(b"x" * 100_000)
        exchange.close_connection = True

    server.route("/feed", close_delimited)
    error = fetch_error(server.url("/feed"), replace(LOCAL, max_body=1024))
    assert error.kind is ErrorKind.TOO_LARGE


@cache
def bomb(coding: str) -> bytes:
    """50 MiB of zeros, compressed (about 50 KiB as gzip, under 100 bytes as br)."""
    zeros = bytes(1 << 20)
    if coding == "gzip":
        gz = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        return b"".join(gz.compress(zeros) for _ in range(50)) + gz.flush()
    br = brotli.Compressor(quality=5)
    data: bytes = b"".join(br.process(zeros) for _ in range(50)) + br.finish()
    return data


@pytest.mark.parametrize("coding", ["gzip", "br"])
def test_compression_bomb_is_cut_off_without_inflating_it(
    server: LoopbackServer, coding: str
) -> None:
    server.reply("/feed", body=bomb(coding), headers={"Content-Encoding": coding})
    options = replace(LOCAL, max_body=1 << 20)
    tracemalloc.start()
    try:
        error = fetch_error(server.url("/feed"), options)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (error.kind, error.message) == (ErrorKind.TOO_LARGE, "body larger than 1 MiB")
    # Inflating the whole bomb would take 50 MiB; the cap plus a few pieces is all we hold.
    assert peak < 12 << 20


def test_total_deadline_cuts_off_a_drip_feed(server: LoopbackServer) -> None:
    def drip(exchange: Exchange) -> None:
        # 1 byte every 0.2 s: each read is quick, the body would take 20 s.
        exchange.send_response(200)
        exchange.send_header("Content-Length", "100")
        exchange.end_headers()
        for _ in range(100):
            exchange.wfile.write(b"x")
            exchange.wfile.flush()
            if server.stopping.wait(0.2):
                return

    server.route("/feed", drip)
    error = fetch_error(server.url("/feed"), replace(LOCAL, timeout=1.0))
    assert (error.kind, error.message) == (ErrorKind.TIMEOUT, "timed out after 1s")


# --------------------------------------------------------------------------- SSRF guard


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.2:{port}/feed",
        "http://2130706434:{port}/feed",  # 127.0.0.2 as one decimal number
        "http://0x7f.0.0.2:{port}/feed",  # hexadecimal first octet
        "http://[::ffff:127.0.0.2]:{port}/feed",  # IPv4-mapped IPv6
    ],
)
def test_redirect_to_a_forbidden_address_is_blocked(
    server: LoopbackServer, forbidden: LoopbackServer, target: str
) -> None:
    server.redirect("/go", target.format(port=forbidden.port))
    error = fetch_error(server.url("/go"))
    assert error.kind is ErrorKind.BLOCKED
    assert "127.0.0.2" in error.message
    assert "is a loopback address not in fetch.allow_networks" in error.message
    assert len(server.requests) == 1
    assert forbidden.requests == []


def test_forbidden_start_url_is_blocked(forbidden: LoopbackServer) -> None:
    error = fetch_error(forbidden.url("/feed"))
    assert error.message == "blocked: 127.0.0.2 is a loopback address not in fetch.allow_networks"
    assert forbidden.requests == []


def test_ipv6_loopback_is_blocked_before_connecting() -> None:
    # Nothing listens there; the guard refuses the address before any connect.
    error = fetch_error("http://[::1]:9/feed")
    assert error.kind is ErrorKind.BLOCKED
    assert error.message == "blocked: ::1 is a loopback address not in fetch.allow_networks"


def test_empty_allow_list_blocks_loopback(server: LoopbackServer) -> None:
    server.reply("/feed", body=FEED)
    error = fetch_error(server.url("/feed"), FetchOptions())
    assert error.kind is ErrorKind.BLOCKED
    assert server.requests == []


def fake_dns(answers: dict[str, Sequence[Sequence[str]]]) -> Resolver:
    """A resolver that gives each name its answers in turn (the last one repeats)."""
    calls: dict[str, int] = {}

    async def resolve(host: str, port: int) -> Sequence[str]:
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        n = calls[host] = calls.get(host, -1) + 1
        return answers[host][min(n, len(answers[host]) - 1)]

    return resolve


def test_host_name_connects_to_the_checked_address(server: LoopbackServer) -> None:
    server.reply("/feed", body=FEED)
    url = f"http://feeds.example.test:{server.port}/feed"
    result = run(fetch(url, resolver=fake_dns({"feeds.example.test": [["127.0.0.1"]]})))
    assert result.content == FEED
    assert server.requests[0].headers["host"] == f"feeds.example.test:{server.port}"


@pytest.fixture
def twins() -> Iterator[tuple[LoopbackServer, LoopbackServer]]:
    """An allowed server on 127.0.0.1 and a forbidden one on 127.0.0.2, on the same port.

    A host name resolving to either reaches one or the other depending only on
    the address chosen, which is what the guard must control.
    """
    with LoopbackServer() as allowed, LoopbackServer("127.0.0.2", allowed.port) as forbidden:
        allowed.reply("/feed", body=FEED, headers={"Connection": "close"})
        forbidden.reply("/feed", body=FEED)
        yield allowed, forbidden


@pytest.mark.parametrize("answer", [["127.0.0.2"], ["127.0.0.1", "127.0.0.2"]])
def test_host_name_resolving_to_a_forbidden_address_is_blocked(
    twins: tuple[LoopbackServer, LoopbackServer], answer: list[str]
) -> None:
    # One forbidden answer refuses the name, whatever else it resolves to.
    allowed, forbidden = twins
    url = f"http://evil.example.test:{allowed.port}/feed"
    error = fetch_error(url, resolver=fake_dns({"evil.example.test": [answer]}))
    assert error.kind is ErrorKind.BLOCKED
    assert "evil.example.test resolves to 127.0.0.2, which is a loopback address" in error.message
    assert allowed.requests == []
    assert forbidden.requests == []


def test_name_with_an_ipv6_loopback_answer_is_blocked(
    twins: tuple[LoopbackServer, LoopbackServer],
) -> None:
    # Like "localhost" on most systems: 127.0.0.1 is allowed, ::1 is not.
    allowed, _ = twins
    url = f"http://local.example.test:{allowed.port}/feed"
    error = fetch_error(url, resolver=fake_dns({"local.example.test": [["127.0.0.1", "::1"]]}))
    assert error.message == (
        "blocked: local.example.test resolves to ::1, which is a loopback address"
        " not in fetch.allow_networks"
    )
    assert allowed.requests == []


def test_dns_rebinding_is_checked_on_every_connection(
    twins: tuple[LoopbackServer, LoopbackServer],
) -> None:
    # The name answers an allowed address, then a forbidden one. The allowed
    # server closes every connection, so the second fetch connects afresh: it
    # must resolve and check again, not trust the first answer.
    allowed, forbidden = twins
    url = f"http://rebind.example.test:{allowed.port}/feed"
    resolver = fake_dns({"rebind.example.test": [["127.0.0.1"], ["127.0.0.2"]]})

    async def fetch_twice() -> tuple[FetchResult, FetchError]:
        async with HttpFetcher(LOCAL, resolver=resolver) as fetcher:
            first = await fetcher.fetch(url)
            with pytest.raises(FetchError) as info:
                await fetcher.fetch(url)
            return first, info.value

    first, error = run(fetch_twice())
    assert first.content == FEED
    assert error.kind is ErrorKind.BLOCKED
    assert len(allowed.requests) == 1
    assert forbidden.requests == []


def test_unresolvable_host_is_a_connection_error() -> None:
    url = "http://nowhere.example.test/feed"
    error = fetch_error(url, resolver=fake_dns({}))
    assert error.kind is ErrorKind.CONNECTION
    assert error.message.startswith("cannot resolve host nowhere.example.test")


def test_slow_resolution_is_a_connect_timeout() -> None:
    async def stalled(host: str, port: int) -> Sequence[str]:
        await asyncio.sleep(60)  # cancelled by the connect timeout long before
        return ["127.0.0.1"]

    options = replace(LOCAL, connect_timeout=0.1)
    error = fetch_error("http://slow.example.test/feed", options, resolver=stalled)
    assert (error.kind, error.message) == (ErrorKind.TIMEOUT, "connect timed out after 0.1s")


# --------------------------------------------------------------------------- connection errors


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_connection_refused() -> None:
    error = fetch_error(f"http://127.0.0.1:{free_port()}/feed")
    assert (error.kind, error.message) == (ErrorKind.CONNECTION, "connection refused")


def test_tls_against_a_plain_http_server_is_a_tls_error(server: LoopbackServer) -> None:
    error = fetch_error(f"https://127.0.0.1:{server.port}/feed")
    assert error.kind is ErrorKind.TLS
    assert error.message.startswith("TLS handshake failed")


# --------------------------------------------------------------------------- connection reuse


def clients(
    server: LoopbackServer,
    path: str,
    handler: Callable[[Exchange], None],
    ports: list[int] | None = None,
) -> list[int]:
    """Serve ``path`` with ``handler``; ``ports`` (returned) gets each request's client port."""
    ports = [] if ports is None else ports

    def record(exchange: Exchange) -> None:
        ports.append(exchange.client_address[1])
        handler(exchange)

    server.route(path, record)
    return ports


def fetch_many(
    urls: Sequence[str], options: FetchOptions = LOCAL, *, etag: str | None = None
) -> list[FetchResult]:
    async def many() -> list[FetchResult]:
        async with HttpFetcher(options, clock=lambda: NOW) as fetcher:
            return list(await asyncio.gather(*(fetcher.fetch(u, etag=etag) for u in urls)))

    return run(many())


def test_conditional_gets_answered_304_reuse_connections(server: LoopbackServer) -> None:
    ports = clients(server, "/feed", conditional_feed)
    options = replace(LOCAL, concurrency=16, per_host=4)
    results = fetch_many([server.url("/feed")] * 60, options, etag='"v1"')
    assert {r.status for r in results} == {304}
    assert len(ports) == 60
    # One connection per fetch in flight to the host, reused for every later 304.
    assert len(set(ports)) <= options.per_host


def test_sequential_fetches_and_redirects_share_one_connection(server: LoopbackServer) -> None:
    def moved(exchange: Exchange) -> None:
        # A redirect with a short body, as many servers send.
        send(exchange, 301, b"<a href='/feed'>moved</a>", {"Location": "/feed"})

    ports = clients(server, "/old", moved)
    clients(server, "/feed", conditional_feed, ports)

    async def poll() -> list[FetchResult]:
        async with HttpFetcher(LOCAL) as fetcher:
            first = await fetcher.fetch(server.url("/old"))
            rest = [await fetcher.fetch(server.url("/old"), etag='"v1"') for _ in range(4)]
            return [first, *rest]

    results = run(poll())
    assert [r.status for r in results] == [200, 304, 304, 304, 304]
    assert all(r.permanent_redirect == server.url("/feed") for r in results)
    assert [r.target for r in server.requests] == ["/old", "/feed"] * 5
    assert len(set(ports)) == 1


def test_a_server_that_closes_every_connection_still_works(server: LoopbackServer) -> None:
    def closing(exchange: Exchange) -> None:
        if exchange.headers.get("If-None-Match") == '"v1"':
            send(exchange, 304, headers={"ETag": '"v1"', "Connection": "close"})
        else:
            send(exchange, 200, FEED, {"ETag": '"v1"', "Connection": "close"})

    ports = clients(server, "/feed", closing)

    async def poll() -> list[FetchResult]:
        async with HttpFetcher(LOCAL) as fetcher:
            first = await fetcher.fetch(server.url("/feed"))
            rest = [await fetcher.fetch(server.url("/feed"), etag=first.etag) for _ in range(3)]
            together = await asyncio.gather(
                *(fetcher.fetch(server.url("/feed"), etag='"v1"') for _ in range(6))
            )
            return [first, *rest, *together]

    results = run(poll())
    assert results[0].content == FEED
    assert [r.status for r in results[1:]] == [304] * 9
    assert len(set(ports)) == 10  # a new connection for every request, as the server wants


# --------------------------------------------------------------------------- SSRF guard, more


def spy(resolver: Resolver, seen: list[str]) -> Resolver:
    async def resolve(host: str, port: int) -> Sequence[str]:
        seen.append(host)
        return await resolver(host, port)

    return resolve


NUMERIC_LOOPBACK = ["2130706433", "0x7f.1", "127.1", "017700000001"]


@pytest.mark.parametrize("host", NUMERIC_LOOPBACK)
def test_numeric_host_forms_are_resolved_and_checked(server: LoopbackServer, host: str) -> None:
    # Each is 127.0.0.1 to the system resolver; the guard must judge that address.
    server.reply("/feed", body=FEED)
    url = f"http://{host}:{server.port}/feed"
    seen: list[str] = []
    options = replace(LOCAL, allow_networks=())
    error = fetch_error(url, options, resolver=spy(resolve_host, seen))
    assert error.message == (
        f"blocked: {host} resolves to 127.0.0.1, which is a loopback address"
        " not in fetch.allow_networks"
    )
    assert seen == [host]
    assert server.requests == []


@pytest.mark.parametrize("host", NUMERIC_LOOPBACK)
def test_allowed_numeric_host_forms_reach_the_resolved_address(
    server: LoopbackServer, host: str
) -> None:
    server.reply("/feed", body=FEED)
    url = f"http://{host}:{server.port}/feed"
    assert run(fetch(url)).content == FEED
    assert server.requests[0].headers["host"] == f"{host}:{server.port}"


def test_redirect_to_a_name_resolving_to_a_forbidden_address_is_blocked(
    server: LoopbackServer, forbidden: LoopbackServer
) -> None:
    # The first hop is a pooled connection to an allowed IP literal; the second
    # goes to a new name, which is resolved and checked before any connect.
    server.redirect("/go", f"http://internal.example.test:{forbidden.port}/feed")
    seen: list[str] = []
    resolver = spy(fake_dns({"internal.example.test": [["127.0.0.2"]]}), seen)
    error = fetch_error(server.url("/go"), resolver=resolver)
    assert error.message == (
        "blocked: internal.example.test resolves to 127.0.0.2, which is a loopback address"
        " not in fetch.allow_networks"
    )
    assert seen == ["internal.example.test"]
    assert forbidden.requests == []


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A bare listening socket on 127.0.0.2: whether anything connected is checked directly."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.2", 0))
        sock.listen(8)
        sock.setblocking(False)
        yield sock


def assert_nothing_connected(sock: socket.socket) -> None:
    with pytest.raises(BlockingIOError):
        sock.accept()[0].close()


@pytest.mark.parametrize("allow", [(), ("127.0.0.1/32",), ("10.0.0.0/8", "::1/128")])
def test_ip_literal_outside_the_allow_list_is_refused_before_connecting(
    listener: socket.socket, allow: tuple[str, ...]
) -> None:
    port = listener.getsockname()[1]
    for url in (f"http://127.0.0.2:{port}/feed", f"https://127.0.0.2:{port}/feed"):
        error = fetch_error(url, replace(LOCAL, allow_networks=allow))
        assert error.kind is ErrorKind.BLOCKED
        assert error.message.startswith("blocked: 127.0.0.2 is a loopback address")
    assert_nothing_connected(listener)


def test_name_refused_by_the_guard_makes_no_connection(listener: socket.socket) -> None:
    url = f"http://sneaky.example.test:{listener.getsockname()[1]}/feed"
    error = fetch_error(url, resolver=fake_dns({"sneaky.example.test": [["127.0.0.2"]]}))
    assert error.kind is ErrorKind.BLOCKED
    assert_nothing_connected(listener)


# --------------------------------------------------------------------------- allow-list ports


@pytest.fixture
def internal() -> Iterator[LoopbackServer]:
    """Another service on 127.0.0.1 (another port): allowed by address, not by port."""
    with LoopbackServer() as srv:
        srv.reply("/feed", body=FEED)
        yield srv


def only_port(port: int) -> FetchOptions:
    return replace(LOCAL, allow_networks=(f"127.0.0.1/32:{port}",))


def test_allowed_port_is_fetched(server: LoopbackServer) -> None:
    server.reply("/feed", body=FEED)
    assert run(fetch(server.url("/feed"), only_port(server.port))).content == FEED


@pytest.mark.parametrize(
    ("host", "resolver"),
    [
        ("127.0.0.1", None),
        ("2130706433", None),  # 127.0.0.1 as one decimal number, resolved
        ("internal.example.test", fake_dns({"internal.example.test": [["127.0.0.1"]]})),
    ],
)
def test_redirect_to_another_port_of_an_allowed_address_is_blocked(
    server: LoopbackServer, internal: LoopbackServer, host: str, resolver: Resolver | None
) -> None:
    server.redirect("/go", f"http://{host}:{internal.port}/feed")
    error = fetch_error(server.url("/go"), only_port(server.port), resolver=resolver)
    subject = "127.0.0.1" if host == "127.0.0.1" else f"{host} resolves to 127.0.0.1, which"
    assert error.kind is ErrorKind.BLOCKED
    assert error.message == (
        f"blocked: {subject} is a loopback address allowed by fetch.allow_networks"
        f" only on port {server.port}, not on port {internal.port}"
    )
    assert len(server.requests) == 1
    assert internal.requests == []


def test_port_range_allows_the_ports_in_it(
    server: LoopbackServer, internal: LoopbackServer
) -> None:
    server.redirect("/go", internal.url("/feed"))
    low, high = sorted((server.port, internal.port))
    inside = replace(LOCAL, allow_networks=(f"127.0.0.1/32:{low}-{high}",))
    assert run(fetch(server.url("/go"), inside)).content == FEED
    assert len(internal.requests) == 1
    # A range from the first hop's port up to just short of the target's.
    first, last = sorted((server.port, internal.port + (-1 if internal.port == high else 1)))
    outside = replace(LOCAL, allow_networks=(f"127.0.0.1/32:{first}-{last}",))
    error = fetch_error(server.url("/go"), outside)
    assert error.kind is ErrorKind.BLOCKED
    ports = f"port {first}" if first == last else f"ports {first}-{last}"  # adjacent ports
    assert f"only on {ports}, not on port {internal.port}" in error.message
    assert len(internal.requests) == 1


def test_remembered_literal_is_per_port(server: LoopbackServer, internal: LoopbackServer) -> None:
    # The transport remembers IP literals it let through: that must not carry over
    # from an allowed port of 127.0.0.1 to another one.
    server.reply("/feed", body=FEED)

    async def fetch_both() -> tuple[FetchResult, FetchError]:
        async with HttpFetcher(only_port(server.port)) as fetcher:
            first = await fetcher.fetch(server.url("/feed"))
            with pytest.raises(FetchError) as info:
                await fetcher.fetch(internal.url("/feed"))
            return first, info.value

    first, error = run(fetch_both())
    assert first.content == FEED
    assert error.kind is ErrorKind.BLOCKED
    assert internal.requests == []


def test_port_entries_of_other_addresses_do_not_apply(internal: LoopbackServer) -> None:
    # 127.0.0.1 on any port is refused: the only entry with that port is for 10/8.
    options = replace(LOCAL, allow_networks=(f"10.0.0.0/8:{internal.port}",))
    error = fetch_error(internal.url("/feed"), options)
    assert error.message == "blocked: 127.0.0.1 is a loopback address not in fetch.allow_networks"
    assert internal.requests == []


def test_ipv6_entry_with_a_port_is_checked_before_connecting() -> None:
    # Nothing listens there, and nothing is connected to: the guard refuses first.
    options = replace(LOCAL, allow_networks=("[::1/128]:8000-8099", "127.0.0.1/32:9"))
    error = fetch_error("http://[::1]:9/feed", options)
    assert error.message == (
        "blocked: ::1 is a loopback address allowed by fetch.allow_networks"
        " only on ports 8000-8099, not on port 9"
    )


@pytest.mark.parametrize(
    "location", ["http://[oops/feed", "http://exa mple.test/feed", "http://%00evil/feed"]
)
def test_redirect_to_a_garbage_host_is_refused_without_resolving(
    server: LoopbackServer, location: str
) -> None:
    # httpx percent-encodes such hosts (%5boops) rather than refusing them.
    server.redirect("/go", location)
    seen: list[str] = []
    error = fetch_error(server.url("/go"), resolver=spy(fake_dns({}), seen))
    assert (error.kind, error.message) == (
        ErrorKind.REDIRECT,
        f"redirect to an invalid URL: {location!r}",
    )
    assert seen == []


def test_start_url_with_a_garbage_host_is_refused_without_resolving() -> None:
    seen: list[str] = []
    error = fetch_error("http://%zz/feed", resolver=spy(fake_dns({}), seen))
    assert (error.kind, error.message) == (
        ErrorKind.INVALID_URL,
        "invalid URL: '%zz' is not a host name",
    )
    assert seen == []


def test_webhook_client_checks_the_port_too(
    server: LoopbackServer, internal: LoopbackServer
) -> None:
    server.reply("/hook", body=b"ok")
    internal.reply("/hook", body=b"ok")

    async def post(url: str) -> int:
        async with WebhookClient(only_port(server.port)) as client:
            return (await client.post(url, b"{}", {}, timeout=5)).status

    assert run(post(server.url("/hook"))) == 200
    with pytest.raises(FetchError) as info:
        run(post(internal.url("/hook")))
    assert info.value.kind is ErrorKind.BLOCKED
    assert f"only on port {server.port}, not on port {internal.port}" in info.value.message
    assert internal.requests == []


# --------------------------------------------------------------------------- broken servers


def test_body_cut_mid_stream_is_a_connection_error(server: LoopbackServer) -> None:
    def cut(exchange: Exchange) -> None:
        exchange.send_response(200)
        exchange.send_header("Content-Length", "1000")
        exchange.end_headers()
        exchange.wfile.write(b"x" * 100)
        exchange.close_connection = True

    server.route("/feed", cut)
    error = fetch_error(server.url("/feed"))
    assert (error.kind, error.message) == (
        ErrorKind.CONNECTION,
        "server broke the HTTP protocol: peer closed connection without sending complete"
        " message body (received 100 bytes, expected 1000)",
    )


def test_chunked_body_cut_mid_stream_is_a_connection_error(server: LoopbackServer) -> None:
    def cut(exchange: Exchange) -> None:
        exchange.send_response(200)
        exchange.send_header("Transfer-Encoding", "chunked")
        exchange.end_headers()
        exchange.wfile.write(b"64\r\n" + b"x" * 50)
        exchange.close_connection = True

    server.route("/feed", cut)
    error = fetch_error(server.url("/feed"))
    assert (error.kind, error.message) == (
        ErrorKind.CONNECTION,
        "server broke the HTTP protocol: peer closed connection without sending complete"
        " message body (incomplete chunked read)",
    )


def test_endless_header_is_a_protocol_error(server: LoopbackServer) -> None:
    def endless(exchange: Exchange) -> None:
        exchange.wfile.write(b"HTTP/1.1 200 OK\r\n")
        try:
            for i in range(1_000_000):
                exchange.wfile.write(b"X-Endless-%d: more\r\n" % i)
                if server.stopping.is_set():
                    break
        except OSError:  # the client hung up, as it should
            pass
        exchange.close_connection = True

    server.route("/feed", endless)
    error = fetch_error(server.url("/feed"))
    assert error.kind is ErrorKind.CONNECTION
    assert error.message.startswith("server broke the HTTP protocol: ")


@contextmanager
def raw_server(
    reply: bytes, *, reset: bool = False, tls: ssl.SSLContext | None = None
) -> Iterator[int]:
    """A one-connection-at-a-time server on 127.0.0.1 sending ``reply`` to each request.

    With ``reset``, the connection is then aborted (RST) instead of closed;
    with ``tls``, connections are TLS with that server context. Yields the port.
    """
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    stop = threading.Event()

    def answer(conn: socket.socket) -> None:
        conn.settimeout(5)
        head = b""
        while b"\r\n\r\n" not in head and (data := conn.recv(65536)):
            head += data
        conn.sendall(reply)
        if reset:
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            try:
                if tls is not None:
                    conn = tls.wrap_socket(conn, server_side=True)
                answer(conn)
            except OSError:  # a client that gave up (a rejected certificate)
                pass
            finally:
                conn.close()

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        yield sock.getsockname()[1]
    finally:
        stop.set()
        sock.shutdown(socket.SHUT_RDWR)
        sock.close()
        thread.join(5)


def test_connection_reset_mid_body() -> None:
    reply = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 100
    with raw_server(reply, reset=True) as port:
        error = fetch_error(f"http://127.0.0.1:{port}/feed")
    assert (error.kind, error.message) == (ErrorKind.CONNECTION, "connection reset by peer")


def test_connection_reset_before_the_response() -> None:
    with raw_server(b"", reset=True) as port:
        error = fetch_error(f"http://127.0.0.1:{port}/feed")
    assert (error.kind, error.message) == (ErrorKind.CONNECTION, "connection reset by peer")


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(b"", id="nothing"),
        pytest.param(b"HTTX/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", id="status-line"),
        pytest.param(b"HTTP/1.1 200 OK\r\nNo colon\r\nContent-Length: 2\r\n\r\nok", id="header"),
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\nok", id="content-length"),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nxx\r\n0\r\n\r\n",
            id="chunk-size",
        ),
        pytest.param(b"HTTP/1.1 200 OK\r\nX-Long: " + b"a" * 200_000 + b"\r\n\r\n", id="long"),
    ],
)
def test_malformed_responses_are_protocol_errors(reply: bytes) -> None:
    with raw_server(reply) as port:
        error = fetch_error(f"http://127.0.0.1:{port}/feed")
    assert error.kind is ErrorKind.CONNECTION
    assert error.message.startswith("server broke the HTTP protocol: ")
    assert "\n" not in error.message


def test_a_long_header_line_is_accepted() -> None:
    # A large Content-Security-Policy or Link header is not an attack.
    policy = "default-src 'self'; " + "img-src https://cdn.example.test; " * 600
    reply = f"HTTP/1.1 200 OK\r\nContent-Security-Policy: {policy}\r\n"
    reply += f"Content-Length: {len(FEED)}\r\n\r\n"
    with raw_server(reply.encode("ascii") + FEED) as port:
        result = run(fetch(f"http://127.0.0.1:{port}/feed"))
    assert len(policy) > 20_000
    assert result.headers["content-security-policy"] == policy.strip()
    assert result.content == FEED


def test_repeated_headers_arrive_in_order_and_the_last_one_wins() -> None:
    reply = (
        b'HTTP/1.1 200 Fine Thanks\r\nETag: "old"\r\nX-Seen: one\r\nETag: "new"\r\n'
        b"x-seen: two\r\nContent-Length: %d\r\n\r\n" % len(FEED)
    )
    with raw_server(reply + FEED) as port:
        result = run(fetch(f"http://127.0.0.1:{port}/feed"))
    assert result.etag == '"new"'
    assert result.headers["x-seen"] == "two"
    assert result.content == FEED


def test_http_1_0_response_without_length_is_read_to_the_end() -> None:
    with raw_server(b"HTTP/1.0 200 OK\r\n\r\n" + FEED) as port:
        result = run(fetch(f"http://127.0.0.1:{port}/feed"))
    assert result.content == FEED


# --------------------------------------------------------------------------- TLS


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@contextmanager
def tls_server(ca: trustme.CA, name: str, sni: list[str | None]) -> Iterator[int]:
    """An HTTPS server on 127.0.0.1 with a certificate for ``name``; SNI names go to ``sni``."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(name).configure_cert(context)

    def record(sock: ssl.SSLObject | ssl.SSLSocket, server_name: str | None, _: Any) -> None:
        sni.append(server_name)

    context.sni_callback = record
    reply = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(FEED)
    with raw_server(reply + FEED, tls=context) as port:
        yield port


@pytest.fixture
def trust_ca(ca: trustme.CA, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fetchers made in the test trust ``ca`` (on top of the usual verification settings)."""
    made = fetch_module._ssl_context

    def with_ca() -> ssl.SSLContext:
        context = made()
        ca.configure_trust(context)
        return context

    monkeypatch.setattr(fetch_module, "_ssl_context", with_ca)


@pytest.mark.usefixtures("trust_ca")
def test_tls_checks_the_name_while_connecting_to_the_checked_address(ca: trustme.CA) -> None:
    sni: list[str | None] = []
    resolver = fake_dns({"feeds.example.test": [["127.0.0.1"]]})
    with tls_server(ca, "feeds.example.test", sni) as port:
        result = run(fetch(f"https://feeds.example.test:{port}/feed", resolver=resolver))
    assert result.content == FEED
    assert sni == ["feeds.example.test"]


@pytest.mark.usefixtures("trust_ca")
def test_tls_certificate_for_another_name_is_rejected(ca: trustme.CA) -> None:
    sni: list[str | None] = []
    resolver = fake_dns({"feeds.example.test": [["127.0.0.1"]]})
    with tls_server(ca, "other.example.test", sni) as port:
        error = fetch_error(f"https://feeds.example.test:{port}/feed", resolver=resolver)
    assert error.kind is ErrorKind.TLS
    assert error.message.startswith("TLS certificate rejected: Hostname mismatch")


def test_tls_certificate_from_an_unknown_ca_is_rejected(ca: trustme.CA) -> None:
    sni: list[str | None] = []
    with tls_server(ca, "127.0.0.1", sni) as port:
        error = fetch_error(f"https://127.0.0.1:{port}/feed")
    assert (error.kind, error.message) == (
        ErrorKind.TLS,
        "TLS certificate rejected: unable to get local issuer certificate",
    )


# --------------------------------------------------------------------------- lifecycle


def test_fetcher_made_outside_a_loop_is_used_and_closed_inside_one(
    server: LoopbackServer,
) -> None:
    server.reply("/feed", body=FEED)
    fetcher = HttpFetcher(LOCAL)  # no running loop here: nothing is opened yet

    async def use() -> FetchResult:
        try:
            return await fetcher.fetch(server.url("/feed"))
        finally:
            await fetcher.aclose()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert run(use()).content == FEED
        gc.collect()  # an unclosed aiohttp session or connector warns when collected
    assert [str(w.message) for w in caught] == []


def test_closing_a_fetcher_closes_its_connections(server: LoopbackServer) -> None:
    closed = threading.Event()

    def watch(exchange: Exchange) -> None:
        send(exchange, 200, FEED)
        exchange.wfile.flush()
        # The kept-alive connection ends when the client closes it.
        if exchange.rfile.read(1) == b"":
            closed.set()
        exchange.close_connection = True

    server.route("/watch", watch)

    async def use() -> None:
        async with HttpFetcher(LOCAL) as fetcher:
            await fetcher.fetch(server.url("/watch"))
            assert not closed.is_set()

    run(use())
    assert closed.wait(5)


# --------------------------------------------------------------------------- server text

#: C1 controls (CSI: httpx reads header bytes as Latin-1, so 0x9B arrives as U+009B;
#: NEL, a line break to str.splitlines), C0 ones (SOH, ESC) and DEL; no CR, LF or NUL.
JUNK = "\x9b[31m\x85\x01\x1b\x7f"
LONG = 20_000
#: Long, but under the longest Location followed (fetch.MAX_URL_LENGTH).
LONG_URL = 6_000


def assert_one_clean_line(message: str) -> None:
    """Printable (no control, line break or tab), and a bounded excerpt of the server's text."""
    assert all(ch.isprintable() for ch in message), repr(message[:300])
    assert len(message) <= 300, len(message)


def junk_reply(location: str, status: int = 302, reason: str | None = None) -> Callable[..., None]:
    def handle(exchange: Exchange) -> None:
        exchange.send_response(status, reason)
        exchange.send_header("Location", location)
        exchange.send_header("Content-Length", "0")
        exchange.end_headers()

    return handle


@pytest.mark.parametrize(
    ("location", "max_redirects", "kind", "start"),
    [
        pytest.param(
            f"/last{JUNK}" + "x" * LONG_URL,
            1,  # /feed to /hop is followed; /hop's redirect is one too many
            ErrorKind.REDIRECT,
            "more than 1 redirects (last to /last[31m x",  # NEL is a line break: a space
            id="too-many",
        ),
        pytest.param(
            f"/{JUNK}" + "x" * LONG_URL,
            5,
            ErrorKind.REDIRECT,
            "redirect to an invalid URL: '/[31m x",
            id="invalid",
        ),
        pytest.param(
            "/hop?\x9b\x85" + "x" * LONG_URL,  # a valid URL (percent-encoded): the loop's is quoted
            5,
            ErrorKind.REDIRECT,
            "redirect loop: http://127.0.0.1:",
            id="loop",
        ),
        pytest.param(
            "z" * LONG_URL + ":feed",
            5,
            ErrorKind.BLOCKED,
            "blocked: redirect to a zzz",
            id="scheme",
        ),
        pytest.param(
            "http://" + "a" * LONG_URL + "/feed",
            5,
            ErrorKind.CONNECTION,
            "cannot resolve host aaa",
            id="host",
        ),
    ],
)
def test_a_hostile_location_is_quoted_as_one_short_printable_line(
    server: LoopbackServer, location: str, max_redirects: int, kind: ErrorKind, start: str
) -> None:
    server.redirect("/feed", "/hop")
    server.route("/hop", junk_reply(location))
    options = replace(LOCAL, max_redirects=max_redirects)
    error = fetch_error(server.url("/feed"), options, resolver=fake_dns({}))
    assert (error.kind, error.message[: len(start)]) == (kind, start)
    assert_one_clean_line(error.message)
    assert error.message.count("…") == 1  # cut


def test_a_location_longer_than_the_limit_is_not_followed(server: LoopbackServer) -> None:
    server.redirect("/feed", "/" + "x" * MAX_URL_LENGTH)
    error = fetch_error(server.url("/feed"), LOCAL, resolver=fake_dns({}))
    assert error.kind is ErrorKind.REDIRECT
    assert error.message == "redirect to a URL of 8,193 characters (at most 8,192)"
    assert len(server.requests) == 1


def test_a_hostile_reason_phrase_is_never_quoted(server: LoopbackServer) -> None:
    # The message names the status with its standard phrase; the server's is ignored.
    server.route("/feed", junk_reply("", 500, f"Oops{JUNK}" + "r" * 4000))
    error = fetch_error(server.url("/feed"))
    assert (error.kind, error.message) == (ErrorKind.HTTP_STATUS, "HTTP 500 Internal Server Error")


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(
            b"HTTP/1.1 500 Oops" + JUNK.encode("latin-1") + b"r" * LONG + b"\r\n\r\n",
            id="long-reason",
        ),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nX-Junk: "
            + JUNK.encode("latin-1")
            + b"\x00"
            + b"h" * LONG
            + b"\r\nContent-Length: 0\r\n\r\n",
            id="header-value",
        ),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            + JUNK.encode("latin-1")
            + b"c" * LONG
            + b"\r\nxx\r\n0\r\n\r\n",
            id="chunk-size",
        ),
    ],
)
def test_what_the_http_parser_refused_is_quoted_as_one_short_printable_line(
    reply: bytes,
) -> None:
    # aiohttp's parser messages quote the bytes they refused (and span lines).
    with raw_server(reply) as port:
        error = fetch_error(f"http://127.0.0.1:{port}/feed")
    assert error.kind is ErrorKind.CONNECTION
    assert error.message.startswith("server broke the HTTP protocol: ")
    assert_one_clean_line(error.message)


def test_an_absurd_retry_after_is_quoted_readably(server: LoopbackServer) -> None:
    server.reply("/feed", 429, b"busy", {"Retry-After": "1" + "0" * 20})
    error = fetch_error(server.url("/feed"))
    assert error.retry_after == 1e20  # as asked: the polling policy caps it (at a day)
    assert error.message == "HTTP 429 Too Many Requests, retry after more than a day"

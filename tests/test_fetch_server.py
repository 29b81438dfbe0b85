"""HttpFetcher against real HTTP servers on loopback addresses (see tests/loopback.py).

No traffic leaves 127.0.0.0/8: forbidden targets are servers on 127.0.0.2 or
addresses the guard refuses before connecting, and host names are resolved by
a fake resolver, never by DNS.
"""

from __future__ import annotations

import asyncio
import gzip
import socket
import tracemalloc
import zlib
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from functools import cache
from typing import Any, TypeVar

import brotli  # type: ignore[import-untyped]
import pytest
from loopback import Exchange, LoopbackServer, send

from feedwatch._model import FetchOptions, FetchResult
from feedwatch.exceptions import ErrorKind, FetchError
from feedwatch.fetch import ACCEPT_ENCODING, HttpFetcher, Resolver

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

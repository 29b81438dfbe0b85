"""HttpFetcher behaviour through httpx.MockTransport (no sockets), and its pure parts.

Real-socket behaviour (the SSRF guard at connect time, TLS, deadlines against a
slow server) is in test_fetch_server.py.
"""

from __future__ import annotations

import asyncio
import errno
import gzip
import ipaddress
import ssl
import zlib
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any, TypeVar

import brotli  # type: ignore[import-untyped]
import httpx
import pytest

from feedwatch._model import FetchOptions, FetchResult
from feedwatch.exceptions import ConfigError, ErrorKind, FetchError
from feedwatch.fetch import (
    ACCEPT_ENCODING,
    HttpFetcher,
    _address_problem,
    parse_retry_after,
)

T = TypeVar("T")
URL = "http://feeds.example.test/feed.xml"
FEED = b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title></channel></rss>'
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
OPTIONS = FetchOptions(timeout=5.0, connect_timeout=2.0)
Handler = Callable[[httpx.Request], httpx.Response]


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


class Recorder:
    """A MockTransport handler that records requests and answers from a table of paths."""

    def __init__(self, routes: dict[str, Callable[[], httpx.Response]] | None = None) -> None:
        self.routes = routes or {}
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        make = self.routes.get(request.url.path)
        return make() if make else httpx.Response(200, content=FEED)


async def fetch_with(
    handler: Handler,
    url: str = URL,
    options: FetchOptions = OPTIONS,
    *,
    etag: str | None = None,
    last_modified: str | None = None,
) -> FetchResult:
    transport = httpx.MockTransport(handler)
    async with HttpFetcher(options, transport=transport, clock=lambda: NOW) as fetcher:
        return await fetcher.fetch(url, etag=etag, last_modified=last_modified)


def error_with(handler: Handler, url: str = URL, options: FetchOptions = OPTIONS) -> FetchError:
    with pytest.raises(FetchError) as info:
        run(fetch_with(handler, url, options))
    assert info.value.url == url
    return info.value


def respond(status: int = 200, content: bytes = b"", **headers: str) -> Handler:
    """Answer with a streamed body, as a real transport does (``_`` in names become ``-``)."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, headers=_headers(headers), stream=Chunks(content))

    return handler


def _headers(values: dict[str, str]) -> dict[str, str]:
    return {name.replace("_", "-"): value for name, value in values.items()}


# --------------------------------------------------------------------------- requests


def test_request_headers_without_validators() -> None:
    recorder = Recorder()
    run(fetch_with(recorder))
    (request,) = recorder.requests
    assert request.method == "GET"
    assert request.headers["user-agent"] == OPTIONS.user_agent
    assert "feedwatch" in OPTIONS.user_agent
    assert request.headers["accept-encoding"] == ACCEPT_ENCODING
    accept = request.headers["accept"]
    assert accept.index("application/atom+xml") < accept.index("*/*")
    assert "if-none-match" not in request.headers
    assert "if-modified-since" not in request.headers
    assert "cookie" not in request.headers


def test_request_headers_with_validators() -> None:
    recorder = Recorder()
    run(fetch_with(recorder, etag='W/"abc"', last_modified="Sun, 01 Mar 2026 10:00:00 GMT"))
    (request,) = recorder.requests
    assert request.headers["if-none-match"] == 'W/"abc"'
    assert request.headers["if-modified-since"] == "Sun, 01 Mar 2026 10:00:00 GMT"


@pytest.mark.parametrize("bad", ['"a"\r\nX-Injected: 1', '"a"\x00', "", "\x7f"])
def test_unsendable_validators_are_left_out(bad: str) -> None:
    recorder = Recorder()
    run(fetch_with(recorder, etag=bad, last_modified=bad))
    (request,) = recorder.requests
    assert "if-none-match" not in request.headers
    assert "if-modified-since" not in request.headers
    assert "x-injected" not in request.headers


def test_cookies_are_not_kept_between_requests() -> None:
    recorder = Recorder(
        {"/a": lambda: httpx.Response(200, content=FEED, headers={"Set-Cookie": "s=1; Path=/"})}
    )

    async def twice() -> None:
        transport = httpx.MockTransport(recorder)
        async with HttpFetcher(OPTIONS, transport=transport) as fetcher:
            await fetcher.fetch("http://feeds.example.test/a")
            await fetcher.fetch("http://feeds.example.test/b")

    run(twice())
    assert "cookie" not in recorder.requests[1].headers


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://127.0.0.1/feed",
        "javascript:alert(1)",
        "data:text/xml,<rss/>",
        "mailto:someone@example.test",
        "feed.xml",
        "//feeds.example.test/feed",
        "http:///feed",
        "http://[::1/feed",
        "http://feeds.example.test:99999/feed",
    ],
)
def test_non_http_or_malformed_urls_are_rejected_without_a_request(url: str) -> None:
    recorder = Recorder()
    error = error_with(recorder, url)
    assert error.kind is ErrorKind.INVALID_URL
    assert recorder.requests == []


def test_closed_fetcher_refuses_to_fetch() -> None:
    async def after_close() -> None:
        fetcher = HttpFetcher(OPTIONS, transport=httpx.MockTransport(Recorder()))
        await fetcher.aclose()
        await fetcher.aclose()  # idempotent
        with pytest.raises(RuntimeError):
            await fetcher.fetch(URL)

    run(after_close())


# --------------------------------------------------------------------------- results


def test_200_result() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        headers = [
            ("ETag", '"v2"'),
            ("Last-Modified", "Sun, 01 Mar 2026 10:00:00 GMT"),
            ("X-Repeated", "first"),
            ("X-Repeated", "last"),
            ("Content-Type", "application/rss+xml; charset=utf-8"),
        ]
        return httpx.Response(200, content=FEED, headers=headers)

    result = run(fetch_with(handler, etag='"v1"'))
    assert result.status == 200
    assert not result.not_modified
    assert result.final_url == URL
    assert result.content == FEED
    assert result.etag == '"v2"'
    assert result.last_modified == "Sun, 01 Mar 2026 10:00:00 GMT"
    assert result.headers["content-type"] == "application/rss+xml; charset=utf-8"
    assert result.headers["x-repeated"] == "last"
    assert all(name == name.lower() for name in result.headers)
    assert result.elapsed >= 0


def test_200_without_validators_drops_the_old_ones() -> None:
    result = run(fetch_with(respond(200, FEED), etag='"v1"', last_modified="x"))
    assert (result.etag, result.last_modified) == (None, None)


def test_other_2xx_statuses_are_results() -> None:
    assert run(fetch_with(respond(203, FEED))).status == 203


@pytest.mark.parametrize(
    ("response_headers", "expected"),
    [
        ({"ETag": '"new"', "Last-Modified": "new date"}, ('"new"', "new date")),
        ({}, ('"sent"', "sent date")),
        ({"ETag": '"new"'}, ('"new"', "sent date")),
        ({"Last-Modified": "new date"}, ('"sent"', "new date")),
    ],
)
def test_304_carries_validators(
    response_headers: dict[str, str], expected: tuple[str, str]
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(304, headers=response_headers)

    result = run(fetch_with(handler, etag='"sent"', last_modified="sent date"))
    assert result.not_modified
    assert result.content == b""
    assert (result.etag, result.last_modified) == expected


# --------------------------------------------------------------------------- Retry-After

RFC_850 = "Sunday, 01-Mar-26 12:02:00 GMT"
ASCTIME = "Sun Mar  1 12:03:00 2026"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("120", 120.0),
        (" 30 ", 30.0),
        ("0", 0.0),
        ("-5", None),
        ("1.5", None),
        ("soon", None),
        ("9" * 400, None),  # not a float; nonsense anyway
        (format_datetime(NOW + timedelta(seconds=90), usegmt=True), 90.0),
        (format_datetime(NOW - timedelta(hours=1), usegmt=True), 0.0),  # past: now
        (RFC_850, 120.0),  # obsolete forms must be accepted (RFC 9110 §5.6.7)
        (ASCTIME, 180.0),
        ("Sun, 01 Mar 2026 12:01:00 -0000", 60.0),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, NOW) == expected


def test_parse_retry_after_takes_a_naive_clock_as_utc() -> None:
    later = format_datetime(NOW + timedelta(seconds=10), usegmt=True)
    assert parse_retry_after(later, NOW.replace(tzinfo=None)) == 10.0


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_date_uses_the_injected_clock(status: int) -> None:
    when = format_datetime(NOW + timedelta(minutes=10), usegmt=True)
    error = error_with(respond(status, b"later", retry_after=when))
    assert (error.kind, error.status, error.retry_after) == (ErrorKind.HTTP_STATUS, status, 600.0)
    assert error.message.endswith("retry after 600s")


@pytest.mark.parametrize(
    ("value", "seconds", "quoted"),
    [
        ("86400", 86400.0, "86400s"),
        ("86401", 86401.0, "more than a day"),
        ("1" + "0" * 20, 1e20, "more than a day"),
        (
            format_datetime(NOW + timedelta(days=3650), usegmt=True),
            3650 * 86400.0,
            "more than a day",
        ),
    ],
)
def test_a_long_retry_after_is_quoted_readably(value: str, seconds: float, quoted: str) -> None:
    # Not "retry after 1e+20s". The value is kept as asked: the polling policy caps it.
    error = error_with(respond(429, b"later", retry_after=value))
    assert error.retry_after == seconds
    assert error.message == f"HTTP 429 Too Many Requests, retry after {quoted}"


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (404, "HTTP 404 Not Found"),
        (410, "HTTP 410 Gone"),
        (429, "HTTP 429 Too Many Requests"),
        (500, "HTTP 500 Internal Server Error"),
        (599, "HTTP 599"),
    ],
)
def test_error_statuses(status: int, message: str) -> None:
    error = error_with(respond(status, b"nope"))
    assert (error.kind, error.status, error.message) == (ErrorKind.HTTP_STATUS, status, message)
    assert error.retry_after is None


# --------------------------------------------------------------------------- redirects


def test_relative_redirect_is_resolved_against_the_current_url() -> None:
    recorder = Recorder(
        {"/feed.xml": lambda: httpx.Response(302, headers={"Location": "v2/feed?x=1"})}
    )
    result = run(fetch_with(recorder))
    assert result.final_url == "http://feeds.example.test/v2/feed?x=1"
    assert [str(r.url) for r in recorder.requests] == [URL, result.final_url]


def test_redirect_keeps_the_conditional_headers() -> None:
    recorder = Recorder({"/feed.xml": lambda: httpx.Response(301, headers={"Location": "/new"})})
    run(fetch_with(recorder, etag='"v1"'))
    assert recorder.requests[1].headers["if-none-match"] == '"v1"'


def test_max_redirects_is_configurable() -> None:
    recorder = Recorder({"/feed.xml": lambda: httpx.Response(302, headers={"Location": "/b"})})
    error = error_with(recorder, options=replace(OPTIONS, max_redirects=0))
    assert error.kind is ErrorKind.REDIRECT
    assert len(recorder.requests) == 1


def test_redirect_without_location_is_a_status_error() -> None:
    error = error_with(respond(302))
    assert (error.kind, error.status) == (ErrorKind.HTTP_STATUS, 302)


@pytest.mark.parametrize("location", ["http://[::1", "https://", "http://h:99999/"])
def test_redirect_to_an_invalid_url(location: str) -> None:
    recorder = Recorder({"/feed.xml": lambda: httpx.Response(302, headers={"Location": location})})
    error = error_with(recorder)
    assert error.kind is ErrorKind.REDIRECT
    assert "invalid URL" in error.message
    assert len(recorder.requests) == 1


@pytest.mark.parametrize("location", ["file:///etc/passwd", "gopher://x/", "javascript:alert(1)"])
def test_redirect_to_another_scheme_is_blocked_without_a_request(location: str) -> None:
    recorder = Recorder({"/feed.xml": lambda: httpx.Response(302, headers={"Location": location})})
    error = error_with(recorder)
    assert error.kind is ErrorKind.BLOCKED
    assert len(recorder.requests) == 1


# --------------------------------------------------------------------------- bodies


class Chunks(httpx.AsyncByteStream):
    """A response body delivered in pieces of ``size`` bytes (0: all at once)."""

    def __init__(self, data: bytes, size: int = 0) -> None:
        self.data, self.size = data, size or max(len(data), 1)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for start in range(0, len(self.data), self.size):
            yield self.data[start : start + self.size]


class Untouchable(httpx.AsyncByteStream):
    async def __aiter__(self) -> AsyncIterator[bytes]:
        raise AssertionError("the body must not be read")
        yield b""  # pragma: no cover


def gzip_members(data: bytes) -> bytes:
    half = len(data) // 2
    return gzip.compress(data[:half]) + gzip.compress(data[half:])


def raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


CODINGS: dict[str, tuple[str, Callable[[bytes], bytes]]] = {
    "gzip": ("gzip", gzip.compress),
    "x-gzip": ("x-gzip", gzip.compress),
    "gzip members": ("gzip", gzip_members),
    "gzip, trailing junk": ("gzip", lambda data: gzip.compress(data) + b"\0\0junk"),
    "deflate (zlib)": ("deflate", zlib.compress),
    "deflate, trailing junk": ("deflate", lambda data: zlib.compress(data) + b"junk"),
    "deflate (raw)": ("deflate", raw_deflate),
    "br": ("br", brotli.compress),
    "gzip then br": ("gzip, br", lambda data: brotli.compress(gzip.compress(data))),
    "upper case": ("GZIP", gzip.compress),
    "identity": ("identity", lambda data: data),
    "unrequested coding": ("utf-8", lambda data: data),  # a common misconfiguration
}


@pytest.mark.parametrize("chunk", [0, 1, 7])
@pytest.mark.parametrize("case", sorted(CODINGS))
def test_bodies_are_decoded(case: str, chunk: int) -> None:
    coding, encode = CODINGS[case]
    body = FEED * 300

    def handler(request: httpx.Request) -> httpx.Response:
        headers = {"Content-Encoding": coding}
        return httpx.Response(200, headers=headers, stream=Chunks(encode(body), chunk))

    assert run(fetch_with(handler)).content == body


@pytest.mark.parametrize(
    ("coding", "data"),
    [("gzip", b"not gzip at all"), ("br", b"\xff" * 20), ("deflate", b"\x78\x9c garbage")],
)
@pytest.mark.parametrize("streamed", [True, False], ids=["streamed", "preloaded"])
def test_corrupt_encoding_is_reported(coding: str, data: bytes, streamed: bool) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        headers = {"Content-Encoding": coding}
        if streamed:
            return httpx.Response(200, headers=headers, stream=Chunks(data))
        return httpx.Response(200, headers=headers, content=data)  # httpx decodes it

    error = error_with(handler)
    assert error.kind is ErrorKind.PARSE
    assert error.message.startswith("cannot decode the ")
    if streamed:
        assert error.message.startswith(f"cannot decode the {coding} body")


def test_truncated_gzip_yields_what_arrived() -> None:
    data = gzip.compress(FEED * 100)[:-20]  # trailer and some data missing
    content = run(fetch_with(respond(200, data, content_encoding="gzip"))).content
    assert (FEED * 100).startswith(content)
    assert content


@pytest.mark.parametrize("case", ["identity", "gzip", "deflate (zlib)", "br"])
def test_body_cap_counts_decoded_bytes(case: str) -> None:
    coding, encode = CODINGS[case]
    options = replace(OPTIONS, max_body=1000)
    at_cap = respond(200, encode(b"a" * 1000), content_encoding=coding)
    assert run(fetch_with(at_cap, options=options)).content == b"a" * 1000
    over = respond(200, encode(b"a" * 1001), content_encoding=coding)
    error = error_with(over, options=options)
    assert (error.kind, error.message) == (ErrorKind.TOO_LARGE, "body larger than 1000 bytes")


def test_preloaded_body_is_capped_too() -> None:
    # httpx.Response(content=...) arrives already read (tests of other modules do this).
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, content=gzip.compress(b"a" * 2000), headers={"Content-Encoding": "gzip"}
        )

    assert run(fetch_with(handler)).content == b"a" * 2000
    error = error_with(handler, options=replace(OPTIONS, max_body=1999))
    assert error.kind is ErrorKind.TOO_LARGE


def test_declared_length_over_the_cap_is_refused_unread() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Length": "2000000"}, stream=Untouchable())

    error = error_with(handler, options=replace(OPTIONS, max_body=1 << 20))
    assert (error.kind, error.message) == (ErrorKind.TOO_LARGE, "body larger than 1 MiB")


# --------------------------------------------------------------------------- errors


def caused(exc: BaseException, cause: BaseException) -> BaseException:
    exc.__cause__ = cause
    return exc


def cert_error() -> ssl.SSLCertVerificationError:
    exc = ssl.SSLCertVerificationError(1, "certificate verify failed")
    exc.verify_message = "self-signed certificate"
    return exc


@pytest.mark.parametrize(
    ("make", "kind", "message"),
    [
        (lambda: httpx.ConnectTimeout("x"), ErrorKind.TIMEOUT, "connect timed out after 2s"),
        (lambda: httpx.ReadTimeout("x"), ErrorKind.TIMEOUT, "timed out after 5s"),
        (lambda: httpx.PoolTimeout("x"), ErrorKind.TIMEOUT, "timed out after 5s"),
        (
            lambda: caused(
                httpx.ConnectError("All connection attempts failed"),
                caused(
                    OSError("All connection attempts failed"),
                    ConnectionRefusedError(errno.ECONNREFUSED, "refused"),
                ),
            ),
            ErrorKind.CONNECTION,
            "connection refused",
        ),
        (
            lambda: caused(httpx.ReadError(""), ConnectionResetError(errno.ECONNRESET, "reset")),
            ErrorKind.CONNECTION,
            "connection reset by peer",
        ),
        (
            lambda: OSError(errno.EHOSTUNREACH, "No route to host"),
            ErrorKind.CONNECTION,
            "host unreachable",
        ),
        (
            lambda: caused(httpx.ConnectError("x"), ssl.SSLError(1, "[SSL] wrong version number")),
            ErrorKind.TLS,
            "TLS handshake failed: [ssl] wrong version number",
        ),
        (
            lambda: caused(httpx.ConnectError("x"), cert_error()),
            ErrorKind.TLS,
            "TLS certificate rejected: self-signed certificate",
        ),
        (
            lambda: httpx.RemoteProtocolError("Server disconnected without sending a response."),
            ErrorKind.CONNECTION,
            "server broke the HTTP protocol: Server disconnected without sending a response.",
        ),
        (lambda: httpx.ReadError(""), ErrorKind.CONNECTION, "connection failed: ReadError"),
        (
            lambda: httpx.UnsupportedProtocol("Request URL has an unsupported protocol"),
            ErrorKind.INVALID_URL,
            "invalid URL: Request URL has an unsupported protocol",
        ),
    ],
)
def test_transport_errors_are_classified(
    make: Callable[[], BaseException], kind: ErrorKind, message: str
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise make()

    error = error_with(handler)
    assert (error.kind, error.message) == (kind, message)
    assert error.__cause__ is not None  # chained for the log


def test_cancellation_is_not_swallowed() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    async def cancel_midway() -> None:
        transport = httpx.MockTransport(handler)
        async with HttpFetcher(OPTIONS, transport=transport) as fetcher:
            task = asyncio.create_task(fetcher.fetch(URL))
            await asyncio.sleep(0)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    run(cancel_midway())


# --------------------------------------------------------------------------- concurrency


def measure_concurrency(options: FetchOptions, urls: Sequence[str]) -> int:
    """Run all fetches at once; return the most requests ever in flight together."""
    in_flight = peak = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        for _ in range(5):  # let every other task run as far as it can
            await asyncio.sleep(0)
        in_flight -= 1
        return httpx.Response(200, content=FEED)

    async def all_at_once() -> None:
        transport = httpx.MockTransport(handler)
        async with HttpFetcher(options, transport=transport) as fetcher:
            await asyncio.gather(*(fetcher.fetch(url) for url in urls))

    run(all_at_once())
    return peak


def test_per_host_concurrency_is_bounded() -> None:
    urls = [f"http://one.example.test/{i}" for i in range(6)]
    assert measure_concurrency(replace(OPTIONS, per_host=2), urls) == 2


def test_global_concurrency_is_bounded() -> None:
    urls = [f"http://host{i}.example.test/" for i in range(8)]
    assert measure_concurrency(replace(OPTIONS, concurrency=3, per_host=2), urls) == 3


def test_a_redirect_to_another_host_moves_the_host_slot() -> None:
    # Two fetches redirect into each other's host while each host allows one
    # fetch: holding the old slot while waiting for the new one would deadlock.
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/start":
            other = "b" if request.url.host.startswith("a") else "a"
            return httpx.Response(302, headers={"Location": f"http://{other}.example.test/feed"})
        return httpx.Response(200, content=FEED)

    async def crossing() -> list[FetchResult]:
        transport = httpx.MockTransport(handler)
        async with HttpFetcher(replace(OPTIONS, per_host=1), transport=transport) as fetcher:
            starts = ("http://a.example.test/start", "http://b.example.test/start")
            return await asyncio.wait_for(asyncio.gather(*map(fetcher.fetch, starts)), 5)

    results = run(crossing())
    assert [r.final_url for r in results] == [
        "http://b.example.test/feed",
        "http://a.example.test/feed",
    ]


# --------------------------------------------------------------------------- options


@pytest.mark.parametrize(
    ("changes", "path"),
    [
        ({"allow_networks": ("10.0.0.0/8", "not-a-network")}, "fetch.allow_networks[1]"),
        ({"concurrency": 0}, "fetch.concurrency"),
        ({"per_host": 0}, "fetch.per_host"),
        ({"timeout": 0.0}, "fetch.timeout"),
        ({"max_redirects": -1}, "fetch.max_redirects"),
    ],
)
def test_invalid_options_are_config_errors(changes: dict[str, Any], path: str) -> None:
    with pytest.raises(ConfigError) as info:
        HttpFetcher(replace(OPTIONS, **changes))
    assert [p.path for p in info.value.problems] == [path]


# --------------------------------------------------------------------------- address table
# Pure classification of address *strings*: nothing here connects anywhere.


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("127.0.0.1", "a loopback"),
        ("127.255.255.254", "a loopback"),
        ("10.1.2.3", "a private"),
        ("172.16.0.1", "a private"),
        ("172.31.255.255", "a private"),
        ("192.168.1.1", "a private"),
        ("100.64.0.1", "a shared (CGNAT)"),
        ("100.127.255.255", "a shared (CGNAT)"),
        ("169.254.169.254", "a link-local"),
        ("0.0.0.0", "an unspecified"),
        ("0.1.2.3", "an unspecified"),
        ("224.0.0.1", "a multicast"),
        ("239.255.255.250", "a multicast"),
        ("240.0.0.1", "a reserved"),
        ("255.255.255.255", "a reserved"),
        ("192.0.2.1", "a reserved"),
        ("198.18.0.1", "a reserved"),
        ("::1", "a loopback"),
        ("::", "an unspecified"),
        ("fc00::1", "a private"),
        ("fd12:3456::1", "a private"),
        ("fe80::1", "a link-local"),
        ("ff02::1", "a multicast"),
        ("2001:db8::1", "a reserved"),
        ("::ffff:127.0.0.1", "a loopback"),  # IPv4-mapped
        ("::ffff:10.0.0.1", "a private"),
        ("::ffff:169.254.169.254", "a link-local"),
        ("64:ff9b::a00:1", "a private"),  # NAT64 of 10.0.0.1
        ("2002:7f00:1::1", "a loopback"),  # 6to4 of 127.0.0.1
        ("::127.0.0.1", "a reserved"),  # deprecated IPv4-compatible
        ("172.32.0.1", None),  # just outside 172.16/12
        ("100.128.0.1", None),  # just outside 100.64/10
        ("2606:4700::1", None),
        ("64:ff9b::808:808", None),  # NAT64 of a public address
    ],
)
def test_address_problem(address: str, problem: str | None) -> None:
    assert _address_problem(ipaddress.ip_address(address), ()) == problem


@pytest.mark.parametrize(
    ("address", "allowed", "problem"),
    [
        ("10.1.2.3", ["10.0.0.0/8"], None),
        ("10.1.2.3", ["10.9.0.0/16"], "a private"),
        ("127.0.0.1", ["127.0.0.1/32"], None),
        ("127.0.0.2", ["127.0.0.1/32"], "a loopback"),
        ("::ffff:127.0.0.1", ["127.0.0.1/32"], None),  # the same host, mapped
        ("::1", ["127.0.0.0/8"], "a loopback"),
        ("fd00::5", ["fd00::/8"], None),
    ],
)
def test_allow_list_overrides(address: str, allowed: list[str], problem: str | None) -> None:
    networks = [ipaddress.ip_network(n) for n in allowed]
    assert _address_problem(ipaddress.ip_address(address), networks) == problem

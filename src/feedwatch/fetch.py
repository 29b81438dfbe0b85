"""Fetch feed documents over HTTP(S), safely: the only module that uses httpx and aiohttp.

``WebhookClient`` (end of the module) POSTs webhook payloads through the same
SSRF guard; ``feedwatch.webhook`` builds, signs and judges them.

What it does:

* ``HttpFetcher.fetch(url, etag=, last_modified=)`` performs one conditional GET
  (RFC 9110 §13) and returns a :class:`~feedwatch._model.FetchResult` for a 2xx
  or a 304, or raises :class:`~feedwatch.exceptions.FetchError` whose ``kind``
  says what went wrong. No httpx, aiohttp, ssl or OS exception escapes.
* One shared ``httpx.AsyncClient`` on our own transport over an aiohttp
  keep-alive pool (``_GuardedTransport``: httpx's API, aiohttp's connections,
  which cost far less CPU per request than httpcore's; see
  ``benchmarks/fetch_bench.py``), no proxies or netrc from the environment
  (``trust_env=False``), no cookies kept between requests.
* Bounded concurrency: ``options.concurrency`` fetches at once overall and
  ``options.per_host`` at once per host name.
* Limits: a connect timeout, a *total* deadline per fetch (connection,
  redirects, headers and the whole body: a server dripping one byte a second
  is still cut off), a body cap counted after decompression and enforced while
  decompressing (a gzip or brotli bomb is never inflated beyond the cap), at
  most ``options.max_redirects`` redirects, followed by hand, http and https only.
* SSRF guard: every connection, on every hop, resolves the host itself and
  checks *each* resolved address against loopback, private, link-local, CGNAT,
  multicast, unspecified and reserved ranges (IPv4-mapped and NAT64/6to4
  embeddings included) before connecting to exactly that address, so DNS
  rebinding between a check and the connect is impossible; an IP-literal host
  is checked before every request. Networks listed in
  ``options.allow_networks`` are let through, on every port or only on the
  ports an entry names (``127.0.0.1/32:8080``, ``[::1/128]:8000-8099``): the
  guard judges the (address, port) of every connection.

What it does NOT do: parse or sniff the document (``parse.py``), decide when to
poll next or how to back off (``decide.py``; this module only reports
``retry_after``), log (the pipeline logs the result), retry, or store anything.
It needs an asyncio event loop, and one ``HttpFetcher`` must stay on one loop.

When a ``transport`` is injected (tests, ``httpx.MockTransport``) the SSRF
guard, which lives in the default transport's connection layer, is bypassed.

Errors (``FetchError.kind``)::

    INVALID_URL   the URL is not http(s) or is malformed (no request made)
    BLOCKED       the SSRF guard refused an address, or a redirect left http(s)
    TIMEOUT       connect timeout or the total deadline
    TLS           handshake or certificate failure
    CONNECTION    refused, reset, closed early, DNS failure
    REDIRECT      too many redirects, a loop, an unusable Location
    HTTP_STATUS   a final status other than 2xx/304, or a 304 to a request without
                  validators (``status``, ``retry_after``)
    TOO_LARGE     the body exceeds ``max_body`` (declared or after decoding)
    PARSE         the body's Content-Encoding is corrupt
"""

from __future__ import annotations

import asyncio
import email.utils
import errno
import http
import http.cookiejar
import ipaddress
import re
import socket
import ssl
import sys
import time
import zlib
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from types import TracebackType
from typing import Protocol, Self, TypeAlias, TypeVar

import aiohttp
import aiohttp.abc
import aiohttp.http_exceptions
import brotli  # type: ignore[import-untyped]
import yarl

from ._allow import AllowedNetwork, parse_allow_entry
from ._model import FetchOptions, FetchResult
from ._utils import one_line
from .exceptions import ConfigError, ConfigProblem, ErrorKind, FetchError

# httpx's __init__ imports its command-line client (httpx._main, with rich and pygments:
# about 50 ms of every `feedwatch poll`'s start-up) whenever rich and click are
# installed. feedwatch never runs it: a None entry makes that import fail softly (httpx
# then defines a stub ``main``), and it is removed right after, so that anything else
# can still import httpx._main.
_SKIP_HTTPX_CLI = "httpx" not in sys.modules and "httpx._main" not in sys.modules
if _SKIP_HTTPX_CLI:
    sys.modules["httpx._main"] = None  # type: ignore[assignment]
try:
    import httpx
finally:
    if _SKIP_HTTPX_CLI:
        del sys.modules["httpx._main"]

__all__ = [
    "ACCEPT",
    "ACCEPT_ENCODING",
    "Fetcher",
    "HttpFetcher",
    "Resolver",
    "WebhookClient",
    "WebhookResponse",
    "parse_retry_after",
    "resolve_host",
]

_E = TypeVar("_E", bound=BaseException)

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Resolve ``(host, port)`` to IP address strings; raise ``OSError`` when it cannot.
Resolver: TypeAlias = Callable[[str, int], Awaitable[Sequence[str]]]

#: Feed types first; anything else is still accepted (many servers say text/html).
ACCEPT = (
    "application/atom+xml, application/rss+xml, application/feed+json, "
    "application/rdf+xml;q=0.9, application/xml;q=0.8, text/xml;q=0.8, "
    "application/json;q=0.7, */*;q=0.1"
)
#: Exactly the codings ``_make_decoder`` handles (RFC 9110 §12.5.3).
ACCEPT_ENCODING = "gzip, deflate, br"

_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_RETRY_AFTER_STATUSES = frozenset({429, 503})
_GZIP_MAGIC = b"\x1f\x8b"
#: Largest piece a decoder emits at once: bounds memory whatever the compression ratio.
_PIECE = 64 * 1024


class Fetcher(Protocol):
    """Fetch one feed document.

    Contract: ``fetch`` returns a ``FetchResult`` whose ``status`` is 2xx (body
    decoded) or 304 (empty body, validators carried), and raises only
    ``FetchError`` (with ``url`` set to the URL asked for). Header names in the
    result are lower-case. Implementations may be called concurrently from one
    event loop. ``aclose`` releases connections; fetching afterwards is an error.
    """

    async def fetch(
        self, url: str, *, etag: str | None = None, last_modified: str | None = None
    ) -> FetchResult: ...

    async def aclose(self) -> None: ...


# --------------------------------------------------------------------------- fetcher


def _guarded_transport(
    options: FetchOptions, resolver: Resolver | None, *, limit: int = 0, limit_per_host: int = 0
) -> _GuardedTransport:
    """The connection pool whose every connection passes the address guard.

    ``limit`` connections in use at once, ``limit_per_host`` to one host (0: no
    limit); idle ones are kept alive for reuse.
    """
    guard = _AddressGuard(_parse_networks(options.allow_networks))
    return _GuardedTransport(
        guard, resolver or resolve_host, limit=limit, limit_per_host=limit_per_host
    )


class _ClientOwner:
    """Owns an ``httpx.AsyncClient``: ``aclose()`` and ``async with`` close its pool."""

    _client: httpx.AsyncClient
    _closed: bool

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool. Idempotent."""
        self._closed = True
        await self._client.aclose()


class HttpFetcher(_ClientOwner):
    """The real :class:`Fetcher`: httpx over a guarded connection pool.

    Args:
        options: limits and policy (``config.fetch``).
        transport: replaces the guarded default transport (tests only: this
            also removes the SSRF guard).
        clock: returns the current UTC time; used for ``Retry-After`` dates.
        resolver: resolves host names for the SSRF guard (default
            :func:`resolve_host`, the system resolver).

    Raises:
        ConfigError: ``options`` holds an invalid network or a limit below 1.
    """

    def __init__(
        self,
        options: FetchOptions,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], datetime] | None = None,
        resolver: Resolver | None = None,
    ) -> None:
        _check_limits(options)
        self._options = options
        self._clock = clock or _utc_now
        if transport is None:
            # The pool's limits are the fetcher's own (its semaphores below), so
            # a fetch never waits for a connection slot.
            transport = _guarded_transport(
                options, resolver, limit=options.concurrency, limit_per_host=options.per_host
            )
        # The client owns the transport (closing it closes the pool); requests go
        # straight to the transport (_send).
        self._client = httpx.AsyncClient(
            transport=transport, trust_env=False, follow_redirects=False, cookies=_no_cookies()
        )
        self._transport = transport
        # Per-operation timeouts; the total deadline is enforced in fetch().
        self._timeouts = httpx.Timeout(options.timeout, connect=options.connect_timeout).as_dict()
        self._all_hosts = asyncio.Semaphore(options.concurrency)
        # One semaphore per host name, made on first use; as many as hosts seen,
        # which is bounded by the feeds configured and their redirect targets.
        self._per_host: dict[str, asyncio.Semaphore] = {}
        self._closed = False

    async def fetch(
        self, url: str, *, etag: str | None = None, last_modified: str | None = None
    ) -> FetchResult:
        """GET ``url``, conditionally when validators are given.

        Raises:
            FetchError: for every failure; see the module docstring for kinds.
            RuntimeError: the fetcher is closed (a programming error).
        """
        if self._closed:
            raise RuntimeError("HttpFetcher is closed")
        target = _check_start_url(url)
        request = _Request.build(self._options.user_agent, etag, last_modified)
        async with self._all_hosts:
            slot = _HostSlot(self._host_semaphore)
            try:
                # Waiting for a slot is queueing, not the server's slowness: the
                # deadline starts once the first host's slot is held.
                await slot.hold(target.host)
                return await self._fetch_within_deadline(url, target, request, slot)
            finally:
                slot.release()

    # ----------------------------------------------------------------- internals

    def _host_semaphore(self, host: str) -> asyncio.Semaphore:
        sem = self._per_host.get(host)
        if sem is None:
            sem = self._per_host[host] = asyncio.Semaphore(self._options.per_host)
        return sem

    async def _fetch_within_deadline(
        self, url: str, target: httpx.URL, request: _Request, slot: _HostSlot
    ) -> FetchResult:
        started = time.monotonic()
        try:
            # httpx timeouts are per operation (each read may take `read`
            # seconds), so one deadline around everything is what bounds a
            # drip-feeding server.
            async with asyncio.timeout(self._options.timeout):
                return await self._follow(target, request, slot, started)
        except TimeoutError as exc:
            msg = f"timed out after {_seconds(self._options.timeout)}"
            raise FetchError(ErrorKind.TIMEOUT, msg, url=url) from exc
        except FetchError as exc:
            if exc.url is None:  # raised below the client, which knows no feed URL
                exc.url = url
            raise
        except _TRANSLATED as exc:
            kind, msg = _classify(exc, self._options)
            raise FetchError(kind, msg, url=url) from exc

    async def _follow(
        self,
        url: httpx.URL,
        request: _Request,
        slot: _HostSlot,
        started: float,
    ) -> FetchResult:
        """Send the request, following redirects by hand; return the final result."""
        seen: set[httpx.URL] = set()  # filled at the first redirect (most fetches have none)
        redirects = 0
        # Whether every hop so far was a permanent redirect (301, 308).
        permanent = True
        while True:
            await slot.hold(url.host)
            response = await self._send(url, request)
            try:
                location = _redirect_location(response)
                if location is None:
                    result = await self._result(response, request, started)
                    if redirects and permanent:
                        result = replace(result, permanent_redirect=result.final_url)
                    return result
                permanent = permanent and response.status_code in (301, 308)
                await _discard_body(response)  # so that the connection can be reused
            finally:
                await response.aclose()
            if redirects >= self._options.max_redirects:
                limit = self._options.max_redirects
                msg = f"more than {limit} redirects (last to {_quote(location)})"
                raise FetchError(ErrorKind.REDIRECT, msg)
            if not seen:
                seen.add(url.copy_with(fragment=None))
            url = _next_hop(response.url, location)
            hop = url.copy_with(fragment=None)
            if hop in seen:
                msg = f"redirect loop: {_quote(str(url))} was already visited"
                raise FetchError(ErrorKind.REDIRECT, msg)
            seen.add(hop)
            redirects += 1

    async def _send(self, url: httpx.URL, request: _Request) -> httpx.Response:
        """One GET, streamed, straight through the transport.

        ``AsyncClient.send`` would add only what a fetch does not want, at about a
        third of the CPU of a 304: default headers (ours are complete), cookie
        handling (none are kept), redirect bookkeeping (we follow redirects
        ourselves) and a log line per request.
        """
        sent = httpx.Request("GET", url, headers=request.headers, extensions=self._extensions)
        response = await self._transport.handle_async_request(sent)
        response.request = sent
        await _hide_location(response)
        return response

    @property
    def _extensions(self) -> dict[str, object]:
        return {"timeout": self._timeouts}

    async def _result(
        self, response: httpx.Response, sent: _Request, started: float
    ) -> FetchResult:
        status = response.status_code
        if status == 304 and sent.etag is None and sent.last_modified is None:
            # RFC 9110 §15.4.5: a 304 answers a conditional request. To one without
            # validators it says "unchanged" about nothing: a broken server (or cache).
            msg = "HTTP 304 Not Modified to a request without validators (no ETag or date sent)"
            raise FetchError(ErrorKind.HTTP_STATUS, msg, status=304)
        if status == 304:
            await _discard_body(response)  # none: ends the response, keeps the connection
            # RFC 9110 §15.4.5: a 304 carries the validators the 200 would have;
            # if it omits them, the ones we hold are still current.
            return FetchResult(
                final_url=str(response.url),
                status=304,
                content=b"",
                headers=_header_dict(response.headers),
                etag=_last(response.headers, "etag") or sent.etag,
                last_modified=_last(response.headers, "last-modified") or sent.last_modified,
                elapsed=time.monotonic() - started,
            )
        if not 200 <= status < 300:
            raise self._status_error(response)
        content = await _read_body(response, self._options.max_body)
        return FetchResult(
            final_url=str(response.url),
            status=status,
            content=content,
            headers=_header_dict(response.headers),
            etag=_last(response.headers, "etag"),
            last_modified=_last(response.headers, "last-modified"),
            elapsed=time.monotonic() - started,
        )

    def _status_error(self, response: httpx.Response) -> FetchError:
        status = response.status_code
        retry_after = None
        if status in _RETRY_AFTER_STATUSES:
            retry_after = parse_retry_after(_last(response.headers, "retry-after"), self._clock())
        msg = f"HTTP {status}"
        phrase = _reason(status)
        if phrase:
            msg += f" {phrase}"
        if retry_after is not None:
            msg += f", retry after {_wait(retry_after)}"
        return FetchError(ErrorKind.HTTP_STATUS, msg, status=status, retry_after=retry_after)


class _HostSlot:
    """The per-host semaphore one fetch holds; moves with redirects to other hosts.

    A fetch holds at most one host's slot at a time (it releases the old one
    before waiting for the new), so two fetches redirecting across each other's
    hosts cannot deadlock.
    """

    def __init__(self, semaphore_for: Callable[[str], asyncio.Semaphore]) -> None:
        self._semaphore_for = semaphore_for
        self._host: str | None = None
        self._sem: asyncio.Semaphore | None = None

    async def hold(self, host: str) -> None:
        if host == self._host:
            return
        self.release()
        sem = self._semaphore_for(host)
        await sem.acquire()
        self._host, self._sem = host, sem

    def release(self) -> None:
        if self._sem is not None:
            self._sem.release()
        self._host, self._sem = None, None


# --------------------------------------------------------------------------- requests


def _check_start_url(url: str) -> httpx.URL:
    """Parse the feed URL; only absolute http(s) URLs with a host are fetched."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        msg = f"invalid URL: {_quote(str(exc))}"
        raise FetchError(ErrorKind.INVALID_URL, msg, url=url) from exc
    if parsed.scheme not in ("http", "https"):
        scheme = f"{_quote(parsed.scheme)}:" if parsed.scheme else "a relative"
        msg = f"{scheme} URL is not fetched; only http and https are"
        raise FetchError(ErrorKind.INVALID_URL, msg, url=url)
    if not parsed.host:
        raise FetchError(ErrorKind.INVALID_URL, "invalid URL: no host", url=url)
    if not _host_ok(parsed):
        msg = f"invalid URL: {_quote(parsed.raw_host.decode('ascii'))!r} is not a host name"
        raise FetchError(ErrorKind.INVALID_URL, msg, url=url)
    if not _port_ok(parsed):
        raise FetchError(ErrorKind.INVALID_URL, f"invalid URL: port {parsed.port}", url=url)
    return parsed


def _port_ok(url: httpx.URL) -> bool:
    # httpx accepts any number; the resolver would fail with OverflowError.
    return url.port is None or 0 < url.port < 65536


#: A host name as httpx leaves it (IDNA-encoded): dot-separated labels.
_HOST_NAME = re.compile(rb"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*\.?")


def _host_ok(url: httpx.URL) -> bool:
    """Whether the host is a name or an IP literal.

    httpx percent-encodes what it cannot parse (``http://[oops/`` has the host
    ``%5boops``); such a host would go to the resolver, and to DNS, for nothing.
    """
    host = url.raw_host
    if _HOST_NAME.fullmatch(host):
        return True
    try:
        ipaddress.ip_address(host.decode("ascii"))
    except ValueError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class _Request:
    """The headers of one fetch (the same on every hop) and the validators in them."""

    headers: list[tuple[bytes, bytes]]
    #: The validators actually sent (None when absent or unfit to send).
    etag: str | None
    last_modified: str | None

    @classmethod
    def build(cls, user_agent: str, etag: str | None, last_modified: str | None) -> _Request:
        etag, last_modified = _sendable(etag), _sendable(last_modified)
        headers = [
            (b"User-Agent", _encode(user_agent)),
            (b"Accept", ACCEPT.encode("ascii")),
            (b"Accept-Encoding", ACCEPT_ENCODING.encode("ascii")),
        ]
        # RFC 9110 §13.1.3: a server evaluates If-None-Match and ignores
        # If-Modified-Since when both are present, so sending both is safe and
        # helps servers that implement only one of them.
        if etag is not None:
            headers.append((b"If-None-Match", _encode(etag)))
        if last_modified is not None:
            headers.append((b"If-Modified-Since", _encode(last_modified)))
        return cls(headers, etag, last_modified)


def _sendable(value: str | None) -> str | None:
    """Return a stored validator if it is fit to send back as received, else None.

    One holding control characters (CR, LF, NUL: RFC 9110 §5.5 forbids them)
    would corrupt the request, so it is left out rather than "repaired".
    """
    if not value or any((ord(ch) < 0x20 and ch != "\t") or ord(ch) == 0x7F for ch in value):
        return None
    return value


def _encode(value: str) -> bytes:
    # Non-ASCII (obs-text) goes back as UTF-8, the first charset httpx tries
    # when it decodes response headers, so a received value round-trips.
    return value.encode("ascii") if value.isascii() else value.encode("utf-8")


def _last(headers: httpx.Headers, name: str) -> str | None:
    """The last value of a header (``Headers.get`` would join repeats with commas)."""
    values = headers.get_list(name)
    return values[-1] if values else None


#: Where _hide_location puts a redirect's Location, out of httpx's sight.
_LOCATION = "x-feedwatch-redirect-location"


async def _hide_location(response: httpx.Response) -> None:
    """Move a redirect's Location where httpx will not look (a response hook of the
    webhook client; ``HttpFetcher._send`` calls it on every response).

    Even with ``follow_redirects=False`` httpx builds the next request for
    every 3xx with a Location, and raises (as a protocol error) on a Location
    it cannot use. We follow redirects ourselves and judge the Location
    ourselves, so httpx must not see it.
    """
    if _LOCATION in response.headers:
        del response.headers[_LOCATION]
    if response.status_code in _REDIRECT_STATUSES and "location" in response.headers:
        response.headers[_LOCATION] = _last(response.headers, "location") or ""
        del response.headers["location"]


def _redirect_location(response: httpx.Response) -> str | None:
    if response.status_code in _REDIRECT_STATUSES:
        # A 3xx without Location is not a redirect we can follow: it falls
        # through as a final status and becomes an HTTP_STATUS error.
        return _last(response.headers, _LOCATION)
    return None


#: Longest Location followed (characters).
MAX_URL_LENGTH = 8192


def _next_hop(current: httpx.URL, location: str) -> httpx.URL:
    """Resolve a Location (RFC 9110 §10.2.2: may be relative) and vet its scheme."""
    if len(location) > MAX_URL_LENGTH:
        # It would become the feed's stored URL after a permanent redirect.
        msg = f"redirect to a URL of {len(location):,} characters (at most {MAX_URL_LENGTH:,})"
        raise FetchError(ErrorKind.REDIRECT, msg)
    try:
        url = current.join(location.strip())
    except httpx.InvalidURL as exc:
        raise _invalid_redirect(location) from exc
    if url.scheme not in ("http", "https"):
        # Not an http(s) resource: following it could read local files or run
        # other protocols, so it is refused like an unsafe address.
        msg = f"blocked: redirect to a {_quote(url.scheme)}: URL; only http and https are followed"
        raise FetchError(ErrorKind.BLOCKED, msg)
    if not url.host or not _port_ok(url) or not _host_ok(url):
        raise _invalid_redirect(location)
    return url


def _invalid_redirect(location: str) -> FetchError:
    return FetchError(ErrorKind.REDIRECT, f"redirect to an invalid URL: {_quote(location)!r}")


def _header_dict(headers: httpx.Headers) -> dict[str, str]:
    # multi_items() yields lower-case names; for repeats the last value wins.
    return dict(headers.multi_items())


def _reason(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""


def _no_cookies() -> http.cookiejar.CookieJar:
    """A jar that refuses every cookie.

    A shared client would otherwise keep every feed server's cookies for the
    life of the daemon and send them back: unbounded state, and tracking.
    """
    return http.cookiejar.CookieJar(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))


# --------------------------------------------------------------------------- bodies


async def _read_body(response: httpx.Response, max_body: int) -> bytes:
    """Read and decode the body, never holding more than ``max_body`` decoded bytes."""
    declared = response.headers.get("content-length", "")
    # Content-Length counts the encoded bytes; a compressed body that large
    # would only grow when decoded, so refusing it early is still right.
    if declared.isascii() and declared.isdigit() and int(declared) > max_body:
        raise _too_large(max_body)
    if response.is_stream_consumed:
        # Built with `content=` (httpx.MockTransport in tests): httpx has read
        # and decoded it already; there is no raw stream left to bound.
        if len(response.content) > max_body:
            raise _too_large(max_body)
        return response.content
    decoder = _make_decoder(response.headers.get_list("content-encoding", split_commas=True))
    body = bytearray()
    received = 0
    # aiter_raw, not aiter_bytes: httpx would inflate each network chunk in one
    # call (a 64 KiB brotli chunk can expand to gigabytes); our decoders emit
    # bounded pieces and we stop as soon as the cap is crossed.
    async for chunk in response.aiter_raw():
        received += len(chunk)
        if received > max_body:
            raise _too_large(max_body)
        for piece in decoder.feed(chunk):
            body += piece
            if len(body) > max_body:
                raise _too_large(max_body)
    for piece in decoder.finish():
        body += piece
        if len(body) > max_body:
            raise _too_large(max_body)
    return bytes(body)


#: The most of a body read only to keep its connection (a redirect's, a 304's).
_DISCARD_BYTES = 64 * 1024
_DISCARD_SECONDS = 1.0


async def _discard_body(response: httpx.Response) -> None:
    """Read and drop a short body (a redirect's, a 304's) so its connection can be reused.

    Only up to :data:`_DISCARD_BYTES` and :data:`_DISCARD_SECONDS`: a longer or
    slower body, or one that fails, is left for ``aclose`` to cut off with its
    connection, as if it had not been read at all.
    """
    if response.is_stream_consumed:  # built with content= (httpx.MockTransport)
        return
    declared = response.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > _DISCARD_BYTES:
        return
    received = 0
    try:
        async with asyncio.timeout(_DISCARD_SECONDS):
            async for chunk in response.aiter_raw():
                received += len(chunk)
                if received > _DISCARD_BYTES:
                    return
    except TimeoutError:
        return
    except _TRANSLATED:
        return


def _too_large(max_body: int) -> FetchError:
    return FetchError(ErrorKind.TOO_LARGE, f"body larger than {_size(max_body)}")


class _Decoder(Protocol):
    def feed(self, data: bytes) -> Iterator[bytes]: ...

    def finish(self) -> Iterator[bytes]: ...


class _Identity:
    def feed(self, data: bytes) -> Iterator[bytes]:
        if data:
            yield data

    def finish(self) -> Iterator[bytes]:
        return iter(())


class _Zlib:
    """gzip (RFC 1952, several members allowed) or deflate (RFC 1950, or raw RFC 1951)."""

    def __init__(self, coding: str) -> None:
        self._coding = coding
        self._obj: zlib._Decompress | None = None
        self._head = b""  # deflate only: bytes held until the format is known
        self._done = False  # the stream has ended; later bytes are ignored
        if coding == "gzip":
            self._obj = zlib.decompressobj(16 + zlib.MAX_WBITS)

    def feed(self, data: bytes) -> Iterator[bytes]:
        if self._obj is None:
            # RFC 9110 §8.4.1.2 says "deflate" is the zlib format, but some
            # servers send raw deflate; tell them apart by the zlib header.
            data = self._head + data
            if len(data) < 2:
                self._head = data
                return
            self._head = b""
            zlib_header = data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
            self._obj = zlib.decompressobj(zlib.MAX_WBITS if zlib_header else -zlib.MAX_WBITS)
        yield from self._inflate(data)

    def _inflate(self, data: bytes) -> Iterator[bytes]:
        assert self._obj is not None
        try:
            while data and not self._done:
                if self._obj.eof:
                    # RFC 1952 §2.2: a gzip body may hold several members.
                    # Anything else after the end of the stream is ignored, as
                    # browsers do.
                    if self._coding == "gzip" and _GZIP_MAGIC.startswith(data[:2]):
                        self._obj = zlib.decompressobj(16 + zlib.MAX_WBITS)
                    else:
                        self._done = True
                        return
                out = self._obj.decompress(data, _PIECE)
                if out:
                    yield out
                # Input not consumed: after the end of a stream, or because
                # `out` reached its limit.
                data = self._obj.unused_data if self._obj.eof else self._obj.unconsumed_tail
        except zlib.error as exc:
            raise _undecodable(self._coding, exc) from exc

    def finish(self) -> Iterator[bytes]:
        # Bytes still held in _head (a one-byte deflate body) cannot decode to
        # anything. A stream cut short is not an error: browsers show what
        # arrived, and the parser judges whether it is usable.
        if self._obj is not None and not self._done:
            try:
                out = self._obj.flush()
            except zlib.error as exc:
                raise _undecodable(self._coding, exc) from exc
            if out:
                yield out


class _Brotli:
    """br (RFC 7932), with a bounded output per call (brotli >= 1.2)."""

    def __init__(self) -> None:
        self._obj = brotli.Decompressor()

    def feed(self, data: bytes) -> Iterator[bytes]:
        if not data:
            return
        try:
            out: bytes = self._obj.process(data, output_buffer_limit=_PIECE)
            while True:
                if out:
                    yield out
                if self._obj.can_accept_more_data():
                    return
                out = self._obj.process(b"", output_buffer_limit=_PIECE)
        except brotli.error as exc:
            raise _undecodable("br", exc) from exc

    def finish(self) -> Iterator[bytes]:
        return iter(())


class _Chain:
    """Several codings, decoded in the reverse of the order they were applied."""

    def __init__(self, decoders: list[_Decoder]) -> None:
        self._decoders = decoders

    def feed(self, data: bytes) -> Iterator[bytes]:
        return self._push(0, data)

    def _push(self, index: int, data: bytes) -> Iterator[bytes]:
        if index == len(self._decoders):
            yield data
            return
        for piece in self._decoders[index].feed(data):
            yield from self._push(index + 1, piece)

    def finish(self) -> Iterator[bytes]:
        for index, decoder in enumerate(self._decoders):
            for piece in decoder.finish():
                yield from self._push(index + 1, piece)


def _make_decoder(codings: list[str]) -> _Decoder:
    decoders: list[_Decoder] = []
    for raw in reversed(codings):
        coding = raw.strip().lower()
        if coding in ("gzip", "x-gzip"):  # RFC 9110 §8.4.1.3: x-gzip is gzip
            decoders.append(_Zlib("gzip"))
        elif coding == "deflate":
            decoders.append(_Zlib("deflate"))
        elif coding == "br":
            decoders.append(_Brotli())
        # "identity" and codings we never asked for (misconfigured servers send
        # "utf-8" or "none") pass through untouched, as browsers and httpx do.
    if not decoders:
        return _Identity()
    return decoders[0] if len(decoders) == 1 else _Chain(decoders)


def _undecodable(coding: str, exc: Exception) -> FetchError:
    return FetchError(ErrorKind.PARSE, f"cannot decode the {coding} body: {_quote(str(exc))}")


# --------------------------------------------------------------------------- Retry-After


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Return the seconds a ``Retry-After`` value asks to wait, or None if unusable.

    RFC 9110 §10.2.3: either delay-seconds (``1*DIGIT``) or an HTTP-date
    (IMF-fixdate, and the obsolete RFC 850 and asctime forms, which recipients
    must accept, §5.6.7). A date in the past means 0. ``now`` should be aware;
    a naive one is taken as UTC. No clamping here: the polling policy decides
    how long is too long.
    """
    if value is None:
        return None
    value = value.strip()
    if re.fullmatch(r"[0-9]+", value):
        try:
            return float(int(value))
        except (OverflowError, ValueError):  # absurdly long digit strings
            return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    # HTTP-dates are always UTC (§5.6.7); asctime and "-0000" forms parse naive.
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    now = now if now.tzinfo else now.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


# --------------------------------------------------------------------------- errors

_TRANSLATED: tuple[type[Exception], ...] = (
    httpx.HTTPError,
    httpx.InvalidURL,
    httpx.StreamError,
    # The transport turns aiohttp's errors into httpx's; any it missed are
    # still classified rather than escaping.
    aiohttp.ClientError,
    OSError,  # includes ssl.SSLError
)

_ERRNO_MESSAGES = {
    errno.ECONNREFUSED: "connection refused",
    errno.ECONNRESET: "connection reset by peer",
    errno.ECONNABORTED: "connection aborted",
    errno.EPIPE: "connection closed by peer",
    errno.EHOSTUNREACH: "host unreachable",
    errno.ENETUNREACH: "network unreachable",
    errno.EADDRNOTAVAIL: "address not available",
}


def _classify(exc: BaseException, options: FetchOptions) -> tuple[ErrorKind, str]:
    """Map an httpx/aiohttp/OS exception to a kind and a short human message."""
    if isinstance(exc, httpx.ConnectTimeout | aiohttp.ConnectionTimeoutError):
        return ErrorKind.TIMEOUT, f"connect timed out after {_seconds(options.connect_timeout)}"
    if isinstance(exc, httpx.TimeoutException | aiohttp.ServerTimeoutError):
        return ErrorKind.TIMEOUT, f"timed out after {_seconds(options.timeout)}"
    if isinstance(exc, httpx.InvalidURL | httpx.UnsupportedProtocol | aiohttp.InvalidURL):
        return ErrorKind.INVALID_URL, f"invalid URL: {_said(exc)}"
    tls = _find_cause(exc, ssl.SSLError)
    if tls is not None:
        return ErrorKind.TLS, _tls_message(tls)
    # A failure to connect to several addresses may carry no errno itself; the
    # errno that says what happened is further down the chain.
    os_error = _find_cause(exc, OSError, lambda e: e.errno is not None)
    if os_error is not None and os_error.errno is not None:
        if os_error.errno == errno.ETIMEDOUT:
            return ErrorKind.TIMEOUT, "connect timed out"
        known = _ERRNO_MESSAGES.get(os_error.errno)
        return ErrorKind.CONNECTION, known or f"connection failed: {os_error.strerror}"
    if isinstance(exc, httpx.RemoteProtocolError):
        return ErrorKind.CONNECTION, f"server broke the HTTP protocol: {_said(exc)}"
    if isinstance(exc, httpx.DecodingError):  # only from bodies httpx decoded itself
        return ErrorKind.PARSE, f"cannot decode the body: {_said(exc)}"
    if isinstance(exc, httpx.StreamError):
        return ErrorKind.INTERNAL, f"{type(exc).__name__}: {_said(exc)}"
    return ErrorKind.CONNECTION, f"connection failed: {_said(exc)}"


def _find_cause(
    exc: BaseException, kind: type[_E], accept: Callable[[_E], bool] = lambda _: True
) -> _E | None:
    """The first ``kind`` exception that ``accept``s in ``exc``'s causes, contexts and groups."""
    todo: list[BaseException | None] = [exc]
    seen: set[int] = set()
    while todo:
        current = todo.pop(0)
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, kind) and accept(current):
            return current
        todo += [current.__cause__, current.__context__]
        if isinstance(current, BaseExceptionGroup):
            todo += current.exceptions
    return None


def _tls_message(exc: ssl.SSLError) -> str:
    # `reason` and `verify_message` are set by the ssl module's C code only.
    reason = _quote(str(getattr(exc, "reason", None) or exc))
    if isinstance(exc, ssl.SSLCertVerificationError):
        verdict = getattr(exc, "verify_message", None)
        return f"TLS certificate rejected: {_quote(str(verdict)) if verdict else reason}"
    reason = reason.replace("_", " ").lower()
    if reason == "wrong version number":
        reason += " (is it a plain-HTTP port?)"
    return f"TLS handshake failed: {reason}"


def _text(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


#: The most characters of a server's (or a library's) text quoted in a message.
_QUOTE_LIMIT = 200


def _quote(text: str, limit: int = _QUOTE_LIMIT) -> str:
    """``text`` fit to quote in an error message (:func:`feedwatch._utils.one_line`):
    much of what fetch quotes comes from servers (a Location, a host name, bytes
    aiohttp's parser refused; httpx reads header bytes as Latin-1, so 0x80-0x9F
    arrive as C1 controls)."""
    return one_line(text, limit)


def _said(exc: BaseException) -> str:
    """An exception's text, quoted (see :func:`_quote`)."""
    return _quote(_text(exc))


def _seconds(value: float) -> str:
    return f"{value:g}s"


#: A day, in seconds: the longest wait a Retry-After is honoured for (decide.py).
_A_DAY = 86_400.0


def _wait(seconds: float) -> str:
    """How long a Retry-After asks to wait, for a message (``600s``).

    Whole seconds (an HTTP date counted from our clock has a fraction). Beyond a
    day, the most decide.py honours, only ``more than a day``: a server may ask
    for 10**20 seconds, which ``retry_after`` still carries as asked.
    """
    return _seconds(round(seconds)) if seconds <= _A_DAY else "more than a day"


def _size(n: int) -> str:
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= factor:
            return f"{n / factor:g} {unit}"
    return f"{n} bytes"


def _utc_now() -> datetime:
    return datetime.now(UTC)


# --------------------------------------------------------------------------- SSRF guard

# Checked in order; the first match names the problem. Python's is_private /
# is_global differ between versions (and miss multicast), so the ranges are
# spelled out (IANA special-purpose registries, RFC 6890), with `not
# is_global` as a catch-all below.
_FORBIDDEN: tuple[tuple[IPNetwork, str], ...] = tuple(
    (ipaddress.ip_network(net), label)
    for net, label in (
        ("0.0.0.0/8", "an unspecified"),  # RFC 1122 "this network"
        ("127.0.0.0/8", "a loopback"),
        ("10.0.0.0/8", "a private"),  # RFC 1918
        ("172.16.0.0/12", "a private"),
        ("192.168.0.0/16", "a private"),
        ("100.64.0.0/10", "a shared (CGNAT)"),  # RFC 6598
        ("169.254.0.0/16", "a link-local"),  # RFC 3927; cloud metadata lives here
        ("192.0.0.0/24", "a reserved"),  # RFC 6890 protocol assignments
        ("192.0.2.0/24", "a reserved"),  # RFC 5737 documentation
        ("198.51.100.0/24", "a reserved"),
        ("203.0.113.0/24", "a reserved"),
        ("198.18.0.0/15", "a reserved"),  # RFC 2544 benchmarking
        ("192.88.99.0/24", "a reserved"),  # RFC 7526 deprecated 6to4 relays
        ("224.0.0.0/4", "a multicast"),
        ("240.0.0.0/4", "a reserved"),  # includes 255.255.255.255
        ("::/128", "an unspecified"),
        ("::1/128", "a loopback"),
        ("::/96", "a reserved"),  # RFC 4291 deprecated IPv4-compatible
        ("64:ff9b:1::/48", "a private"),  # RFC 8215 local-use NAT64
        ("100::/64", "a reserved"),  # RFC 6666 discard
        ("2001::/32", "a reserved"),  # RFC 4380 Teredo: tunnels to any IPv4
        ("2001:db8::/32", "a reserved"),  # RFC 3849 documentation
        ("fc00::/7", "a private"),  # RFC 4193 unique local
        ("fe80::/10", "a link-local"),
        ("fec0::/10", "a private"),  # RFC 3879 deprecated site-local
        ("ff00::/8", "a multicast"),
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: last 32 bits are IPv4


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, NAT64, 6to4), if any."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:  # ::ffff:a.b.c.d reaches a.b.c.d on dual-stack hosts
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.sixtofour  # 2002:AABB:CCDD::/48


def _address_problem(ip: IPAddress, allowed: Sequence[IPNetwork]) -> str | None:
    """Why connecting to ``ip`` is refused (e.g. "a loopback"), or None if it is fine."""
    embedded = _embedded_ipv4(ip)
    candidates = [ip] if embedded is None else [ip, embedded]
    if any(c in net for c in candidates for net in allowed):
        return None
    for candidate in candidates:
        for net, label in _FORBIDDEN:
            if candidate in net:
                return label
    if any(not c.is_global for c in candidates):
        return "a reserved"
    return None


class _AddressGuard:
    """Decides whether a resolved address may be connected to on a port."""

    def __init__(self, allowed: Sequence[AllowedNetwork]) -> None:
        self._allowed = tuple(allowed)
        self._networks = tuple(entry.network for entry in self._allowed)

    def check(self, host: str, address: str, port: int) -> None:
        """Raise FetchError(BLOCKED) unless ``address`` (resolved from ``host``) is
        allowed on ``port``."""
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
        on_port = [entry.network for entry in self._allowed if entry.admits(port)]
        problem = _address_problem(ip, on_port)
        if problem is None:
            return
        embedded = _embedded_ipv4(ip)
        what = f"{ip} (IPv4 {embedded})" if embedded is not None else str(ip)
        subject = what if _same_address(host, ip) else f"{_quote(host)} resolves to {what}, which"
        if _address_problem(ip, self._networks) is not None:
            msg = f"blocked: {subject} is {problem} address not in fetch.allow_networks"
        else:  # an entry covers the address, but only on other ports
            ports = [
                entry.port_text
                for entry in self._allowed
                if entry.ports is not None and _address_problem(ip, [entry.network]) is None
            ]
            one = len(ports) == 1 and "-" not in ports[0]
            which = f"port {ports[0]}" if one else "ports " + ", ".join(ports)
            msg = (
                f"blocked: {subject} is {problem} address allowed by fetch.allow_networks"
                f" only on {which}, not on port {port}"
            )
        raise FetchError(ErrorKind.BLOCKED, msg)


def _same_address(host: str, ip: IPAddress) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")) == ip
    except ValueError:
        return False


def _parse_networks(values: Iterable[str]) -> list[AllowedNetwork]:
    entries: list[AllowedNetwork] = []
    problems: list[ConfigProblem] = []
    for index, value in enumerate(values):
        try:
            entries.append(parse_allow_entry(value))
        except ValueError as exc:
            problems.append(ConfigProblem(f"fetch.allow_networks[{index}]", str(exc)))
    if problems:
        raise ConfigError(problems)
    return entries


def _check_limits(options: FetchOptions) -> None:
    problems = [
        ConfigProblem(f"fetch.{name}", "must be at least 1")
        for name, value in (
            ("concurrency", options.concurrency),
            ("per_host", options.per_host),
            ("max_body", options.max_body),
        )
        if value < 1
    ]
    problems += [
        ConfigProblem(f"fetch.{name}", "must be positive")
        for name, value in (
            ("timeout", options.timeout),
            ("connect_timeout", options.connect_timeout),
        )
        if not value > 0
    ]
    if options.max_redirects < 0:
        problems.append(ConfigProblem("fetch.max_redirects", "must not be negative"))
    if problems:
        raise ConfigError(problems)


async def resolve_host(host: str, port: int) -> list[str]:
    """Resolve ``host`` with the system resolver; return unique addresses in order.

    Numeric forms (``2130706433``, ``0x7f.1``, ``::ffff:127.0.0.1``) come back
    as the real address, which is what the guard must see.
    """
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


# --------------------------------------------------------------------------- transport


class _GuardedResolver(aiohttp.abc.AbstractResolver):
    """aiohttp's resolver: resolve with ``Resolver``, then check every address.

    aiohttp calls it once per new connection to a host *name* (pooled
    connections are reused; ``use_dns_cache=False``, so every new connection
    resolves afresh, on every hop) and connects only to the addresses it
    returns, with TLS (SNI, certificate check) still on the name. IP-literal
    hosts never reach it: :meth:`_GuardedTransport._target` checks those.
    """

    def __init__(self, guard: _AddressGuard, resolver: Resolver) -> None:
        self._guard = guard
        self._resolve = resolver

    async def checked(self, host: str, port: int) -> list[str]:
        """Resolve ``host`` and return its addresses if every one passes the guard
        on ``port`` (the one aiohttp then connects to: it is in each result)."""
        try:
            addresses = list(await self._resolve(host, port))
        except OSError as exc:
            detail = f" ({exc.strerror})" if exc.strerror else ""
            msg = f"cannot resolve host {_quote(host)}{detail}"
            raise FetchError(ErrorKind.CONNECTION, msg) from exc
        if not addresses:
            raise FetchError(ErrorKind.CONNECTION, f"cannot resolve host {_quote(host)}")
        # All or nothing: if a name answers with any forbidden address, refuse
        # it, rather than trying the good ones and leaving the choice to DNS.
        for address in addresses:
            self._guard.check(host, address, port)
        return addresses

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[aiohttp.abc.ResolveResult]:
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": socket.AF_INET6 if ":" in address else socket.AF_INET,
                "proto": 0,
                "flags": 0,
            }
            for address in await self.checked(host, port)
        ]

    async def close(self) -> None:
        pass


class _GuardedTransport(httpx.AsyncBaseTransport):
    """An httpx transport over an aiohttp connection pool whose connections pass the guard.

    httpx (the ``AsyncClient`` API, requests, responses, exceptions) stays the
    interface; aiohttp sends and receives (HTTP/1.1, keep-alive). The
    ``aiohttp.ClientSession`` is made on the first request, inside the running
    loop, and closed by :meth:`aclose` (``AsyncClient.aclose`` calls it).

    * Every new connection to a name goes through :class:`_GuardedResolver`;
      an IP-literal host (which aiohttp connects to without resolving) is
      checked here, on every request, so on every redirect hop.
    * No proxies or netrc (``trust_env=False``), no cookies, no redirects, no
      decompression (the fetcher decodes within its own limits), no Unix
      sockets (a ``TCPConnector`` only).
    * The response body is streamed (:class:`_ResponseBody`); aiohttp's
      exceptions become the httpx ones :func:`_classify` knows.
    """

    def __init__(
        self, guard: _AddressGuard, resolver: Resolver, *, limit: int, limit_per_host: int
    ) -> None:
        self._guard = guard
        self._resolver = _GuardedResolver(guard, resolver)
        # Made on the first https request (loading the CA bundle costs ~30 ms).
        self._ssl: ssl.SSLContext | None = None
        self._limit = limit
        self._limit_per_host = limit_per_host
        self._session: aiohttp.ClientSession | None = None
        self._closed = False
        # IP-literal hosts and ports the guard let through (its verdict never changes).
        self._allowed_literals: set[tuple[str, int]] = set()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = _timeouts(request.extensions.get("timeout"))
        url, server_hostname = await self._target(request.url, timeouts.connect)
        body = await request.aread()
        session = self._open_session()
        try:
            response = await session.request(
                request.method,
                url,
                headers=_aiohttp_headers(request.headers),
                data=body or None,
                allow_redirects=False,
                timeout=timeouts,
                server_hostname=server_hostname,
                ssl=self._tls() if url.scheme == "https" else True,
            )
        except _AIOHTTP_ERRORS as exc:
            translated, cause = _translate(exc)
            raise translated from cause
        stream = _ResponseBody(response)
        return httpx.Response(
            status_code=response.status,
            headers=response.raw_headers,
            stream=stream,
            extensions={
                "http_version": _http_version(response.version),
                "reason_phrase": _latin1(response.reason or ""),
                # The client wraps the stream; this is the way back to it (_arrived).
                _BODY: stream,
            },
        )

    async def aclose(self) -> None:
        self._closed = True
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def _tls(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = _ssl_context()
        return self._ssl

    def _open_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            if self._closed:
                raise RuntimeError("the transport is closed")
            connector = aiohttp.TCPConnector(
                # Every https request passes its own context (``_tls``).
                resolver=self._resolver,
                # Resolve (and check) for every new connection, as DNS may change.
                use_dns_cache=False,
                limit=self._limit,
                limit_per_host=self._limit_per_host,
                keepalive_timeout=_KEEPALIVE,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                trust_env=False,
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,
                # aiohttp's 8 KiB would refuse the odd long header (a large
                # Content-Security-Policy or Link) that httpcore took, up to its
                # 100 KiB for the whole head; the number of headers stays bounded.
                max_field_size=_MAX_HEADER_FIELD,
                # The request carries httpx's headers as they are.
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
                timeout=aiohttp.ClientTimeout(total=None),
            )
        return self._session

    async def _target(self, url: httpx.URL, connect: float | None) -> tuple[yarl.URL, str | None]:
        """The URL aiohttp is given, and a TLS server name when the host was rewritten.

        aiohttp connects to an IP-literal host without asking the resolver, so
        the guard checks it here. It refuses the legacy numeric forms of IPv4
        (``2130706433``, ``127.1``) outright; those are resolved like a name
        (the system resolver returns the real address, which the guard checks)
        and the request goes to that address, its Host header unchanged.
        """
        target = yarl.URL(str(url), encoded=True)
        host = url.raw_host.decode("ascii")
        port = url.port or _default_port(url)
        if (host, port) in self._allowed_literals:
            return target, None
        try:
            ipaddress.ip_address(host)
        except ValueError:
            pass
        else:
            self._guard.check(host, host, port)
            if len(self._allowed_literals) < _MAX_REMEMBERED:
                self._allowed_literals.add((host, port))
            return target, None
        if ":" not in host and not host.replace(".", "").isdigit():
            return target, None  # a name: the resolver checks it on connect
        try:
            async with asyncio.timeout(connect):
                addresses = await self._resolver.checked(host, port)
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(f"resolving {_quote(host)} timed out") from exc
        return target.with_host(addresses[0]), host


#: The response extension that holds the transport's own body stream.
_BODY = "feedwatch.body"
#: Seconds an idle pooled connection is kept (servers often close after 5 s).
_KEEPALIVE = 5.0
#: Longest response header line accepted (bytes).
_MAX_HEADER_FIELD = 32 * 1024
#: (IP-literal host, port) pairs whose check is remembered, at most.
_MAX_REMEMBERED = 4096


def _ssl_context() -> ssl.SSLContext:
    """httpx's default verification: certifi's CA bundle, hostname checks; HTTP/1.1 ALPN."""
    context = httpx.create_ssl_context(trust_env=False)
    context.set_alpn_protocols(["http/1.1"])
    return context


def _default_port(url: httpx.URL) -> int:
    return 443 if url.scheme == "https" else 80


def _timeouts(value: object) -> aiohttp.ClientTimeout:
    """httpx's per-request ``timeout`` extension as aiohttp timeouts.

    ``connect`` bounds getting a connection: a pool wait, resolving (and the
    guard), the TCP connect and the TLS handshake; ``read`` bounds each wait for
    data. aiohttp has no write timeout: the caller's total deadline covers it.
    """
    connect = read = None
    if isinstance(value, Mapping):
        connect, read = value.get("connect"), value.get("read")
    return aiohttp.ClientTimeout(total=None, connect=connect, sock_connect=connect, sock_read=read)


def _aiohttp_headers(headers: httpx.Headers) -> list[tuple[str, str]]:
    """httpx's request headers (order, case and repeats kept) as aiohttp takes them."""
    # aiohttp encodes header text as UTF-8, the encoding _encode uses for non-ASCII.
    return [
        (name.decode("ascii"), _text_of(value))
        for name, value in headers.raw
        if name.lower() != b"transfer-encoding"  # the body is sent whole
    ]


def _text_of(value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


def _http_version(version: aiohttp.HttpVersion | None) -> bytes:
    major, minor = version if version is not None else (1, 1)
    return f"HTTP/{major}.{minor}".encode("ascii")


def _latin1(text: str) -> bytes:
    return text.encode("latin-1", errors="replace")


class _ResponseBody(httpx.AsyncByteStream):
    """An aiohttp response body as httpx's stream, read as it arrives.

    ``aclose`` puts the connection back in the pool when the body was read to
    its end, and closes it otherwise (unread bytes would spoil the next response).
    """

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        content = self._response.content
        stop_watching = _watch_body_parser(self._response)
        try:
            while chunk := await content.readany():
                yield chunk
        except aiohttp.ClientPayloadError as exc:
            translated, cause = _body_error(exc, self._response)
            raise translated from cause
        except aiohttp.http_exceptions.HttpProcessingError as exc:
            # aiohttp's pure-Python parser hands a bad chunk's own error to the reader.
            raise httpx.RemoteProtocolError(_one_line(exc.message or _text(exc))) from exc
        except _AIOHTTP_ERRORS as exc:
            translated, cause = _translate(exc, reading=True)
            raise translated from cause
        finally:
            stop_watching()

    def arrived(self, limit: int) -> bytes:
        """At most ``limit`` bytes of the body that have arrived, taken without waiting."""
        content = self._response.content
        if content.exception() is not None:
            return b""
        try:
            return content.read_nowait(limit)
        except (RuntimeError, *_AIOHTTP_ERRORS):  # another reader waits; a read timeout passed
            return b""

    async def aclose(self) -> None:
        response = self._response
        if response.content.at_eof() and response.content.exception() is None:
            response.release()
        else:
            response.close()


def _watch_body_parser(response: aiohttp.ClientResponse) -> Callable[[], object]:
    """Fail the body's reader if aiohttp's parser fails on the body; returns the undo.

    aiohttp's C parser, failing on a later part of the body (a bad chunk size, a
    chunk longer than declared), closes the connection but never tells the body's
    reader, which would wait for the total deadline. Once the connection is lost,
    the reader is given the parser's error.
    """
    connection = response.connection
    protocol = connection.protocol if connection is not None else None
    closed = protocol.closed if protocol is not None else None
    if protocol is None or closed is None:
        return lambda: None
    content = response.content

    def tell_reader(_: object) -> None:
        broken = protocol.exception()
        if isinstance(broken, aiohttp.http_exceptions.HttpProcessingError) and not (
            content.is_eof() or content.exception()
        ):
            error = aiohttp.ClientPayloadError("the response body broke HTTP")
            error.__cause__ = broken
            content.set_exception(error)

    # The future is made on first access: the error of a connection lost later
    # must be retrieved, or asyncio logs it as never retrieved (once per connection).
    closed.remove_done_callback(_retrieve)
    closed.add_done_callback(_retrieve)
    closed.add_done_callback(tell_reader)
    return lambda: closed.remove_done_callback(tell_reader)


def _retrieve(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


#: What aiohttp raises from a request or a body read (timeouts included).
_AIOHTTP_ERRORS = (aiohttp.ClientError, TimeoutError)


def _translate(exc: BaseException, *, reading: bool = False) -> tuple[Exception, BaseException]:
    """aiohttp's exception as the httpx one ``_classify`` expects, and the cause to chain.

    The cause is the most telling underlying error, e.g. the OSError or ssl
    error of a failed connect, whose errno or TLS reason ``_classify`` reads.
    """
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(_text(exc)), exc
    if isinstance(exc, TimeoutError):  # SocketTimeoutError: the sock_read timeout
        return httpx.ReadTimeout(_text(exc)), exc
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return httpx.ConnectError(_text(exc.certificate_error)), exc.certificate_error
    if isinstance(exc, aiohttp.ClientConnectorError):  # ssl errors too (ClientConnectorSSLError)
        return httpx.ConnectError(_text(exc.os_error)), exc.os_error
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return httpx.RemoteProtocolError("Server disconnected without sending a response."), exc
    if isinstance(exc, aiohttp.ClientResponseError):
        # A response aiohttp's parser refused: a malformed status or header
        # line, a header too long or too many of them, bad chunking.
        too_long = _find_cause(exc, aiohttp.http_exceptions.LineTooLong)
        limit = re.search(r"more than (\d+) bytes", too_long.message) if too_long else None
        if limit:
            return httpx.RemoteProtocolError(f"header line longer than {limit[1]} bytes"), exc
        return httpx.RemoteProtocolError(_one_line(exc.message or _text(exc))), exc
    if isinstance(exc, aiohttp.InvalidURL):
        return httpx.InvalidURL(_text(exc)), exc
    if isinstance(exc, OSError):  # ClientOSError, ClientConnectionResetError: errno kept
        return (httpx.ReadError if reading else httpx.WriteError)(_text(exc)), exc
    return httpx.NetworkError(_text(exc)), exc


def _body_error(
    exc: aiohttp.ClientPayloadError, response: aiohttp.ClientResponse
) -> tuple[Exception, BaseException]:
    """The httpx exception for a body that ended badly, and the cause to chain."""
    # aiohttp keeps why the connection was lost (a reset) on its protocol only.
    protocol = response.connection.protocol if response.connection is not None else None
    lost = protocol.exception() if protocol is not None else None
    if isinstance(lost, OSError) and lost.errno is not None:
        return httpx.ReadError(_text(lost)), lost
    cause = exc.__cause__
    detail = cause.message if isinstance(cause, aiohttp.http_exceptions.HttpProcessingError) else ""
    incomplete = "peer closed connection without sending complete message body"
    if isinstance(cause, aiohttp.http_exceptions.ContentLengthError):
        counts = re.search(r"received (\d+) of (\d+) bytes", detail)
        if counts:
            detail = f"received {counts[1]} bytes, expected {counts[2]}"
        return httpx.RemoteProtocolError(f"{incomplete} ({detail})"), exc
    if isinstance(cause, aiohttp.http_exceptions.TransferEncodingError) and "enough" in detail:
        return httpx.RemoteProtocolError(f"{incomplete} (incomplete chunked read)"), exc
    return httpx.RemoteProtocolError(_one_line(detail or _text(exc))), exc


def _one_line(message: str) -> str:
    """aiohttp's parser messages span lines (the bad input, a caret under it): one
    quoted line (see :func:`_quote`) without the caret."""
    lines = (line.strip() for line in message.splitlines())
    return _quote(" ".join(line for line in lines if line.strip("^ ")))


# --------------------------------------------------------------------------- webhooks

#: The most of a webhook receiver's response body that is read (the rest is dropped).
WEBHOOK_MAX_BODY = 64 * 1024


@dataclass(frozen=True, slots=True)
class WebhookResponse:
    """What a webhook receiver answered to one POST."""

    #: HTTP status.
    status: int
    #: Response headers, lower-case names (the last value wins for repeats);
    #: a redirect's ``location`` is kept (it is never followed).
    headers: dict[str, str]
    #: At most :data:`WEBHOOK_MAX_BODY` bytes of the body, as sent (not decoded);
    #: for a 2xx only what had arrived with the headers (possibly nothing).
    body: bytes


class WebhookClient(_ClientOwner):
    """POST webhook payloads through the same SSRF guard as feed fetches.

    One ``httpx.AsyncClient`` on the guarded transport (every resolved address
    checked against the forbidden ranges, ``options.allow_networks`` let
    through), no proxies or netrc (``trust_env=False``), no cookies, and no
    redirects followed: a 3xx is returned to the caller as it came.

    What it does NOT do: build payloads, sign them, classify statuses or retry
    (``feedwatch.webhook``). Like :class:`HttpFetcher` it needs an asyncio event
    loop and must stay on one loop.

    Args:
        options: the fetch policy (``allow_networks``, ``user_agent``, ``concurrency``).
        transport: replaces the guarded default transport (tests only: this
            also removes the SSRF guard).
        resolver: resolves host names for the SSRF guard (default
            :func:`resolve_host`, the system resolver).

    Raises:
        ConfigError: ``options`` holds an invalid network or a limit below 1.
    """

    def __init__(
        self,
        options: FetchOptions,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        resolver: Resolver | None = None,
    ) -> None:
        _check_limits(options)
        self._options = options
        if transport is None:
            # No pool limits: the dispatcher bounds its deliveries, and a wait
            # for a slot here would count against the connect timeout.
            transport = _guarded_transport(options, resolver)
        self._client = httpx.AsyncClient(
            transport=transport,
            trust_env=False,
            follow_redirects=False,
            cookies=_no_cookies(),
            headers={
                "User-Agent": options.user_agent,
                # The body is only read for a short excerpt: no decoding wanted.
                "Accept-Encoding": "identity",
            },
            # Keeps httpx from judging (and raising on) a Location we never follow.
            event_hooks={"response": [_hide_location]},
        )
        self._closed = False

    async def post(
        self,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        *,
        timeout: float,  # noqa: ASYNC109 (a total deadline, enforced with asyncio.timeout)
    ) -> WebhookResponse:
        """POST ``body`` to ``url`` and return the answer, whatever its status.

        ``timeout`` bounds the whole exchange: resolving, connecting, sending
        and reading the response. A 2xx is returned as soon as its status and
        headers are in: its body is not waited for (see ``WebhookResponse.body``);
        the body of any other status is read up to :data:`WEBHOOK_MAX_BODY`.

        Raises:
            FetchError: the URL is not http(s) (INVALID_URL), a header value
                holds control characters (INTERNAL), the guard refused the
                address (BLOCKED), the deadline passed (TIMEOUT), or the
                connection failed (CONNECTION, TLS); ``url`` is set.
            ValueError: ``timeout`` is not positive.
            RuntimeError: the client is closed (a programming error).
        """
        if self._closed:
            raise RuntimeError("WebhookClient is closed")
        if not timeout > 0:
            raise ValueError(f"timeout must be positive, not {timeout!r}")
        target = _check_start_url(url)
        encoded = _webhook_headers(url, headers)
        # This attempt's limits (also what _classify's messages quote).
        limits = replace(
            self._options,
            timeout=timeout,
            connect_timeout=min(timeout, self._options.connect_timeout),
        )
        try:
            async with asyncio.timeout(timeout):
                request = self._client.build_request(
                    "POST",
                    target,
                    content=body,
                    headers=encoded,
                    timeout=httpx.Timeout(timeout, connect=limits.connect_timeout),
                )
                response = await self._client.send(request, stream=True)
                try:
                    if 200 <= response.status_code < 300:
                        # Delivered: the body says nothing more, and waiting for a
                        # slow one would turn a delivery into a timeout, and a resend.
                        content = _arrived(response, WEBHOOK_MAX_BODY)
                    else:
                        content = await _read_some(response, WEBHOOK_MAX_BODY)
                finally:
                    await response.aclose()
        except TimeoutError as exc:
            msg = f"timed out after {_seconds(timeout)}"
            raise FetchError(ErrorKind.TIMEOUT, msg, url=url) from exc
        except FetchError as exc:
            if exc.url is None:  # raised below the client, which knows no URL
                exc.url = url
            raise
        except _TRANSLATED as exc:
            kind, msg = _classify(exc, limits)
            raise FetchError(kind, msg, url=url) from exc
        found = _header_dict(response.headers)
        location = found.pop(_LOCATION, None)
        if location is not None:
            found["location"] = location
        return WebhookResponse(status=response.status_code, headers=found, body=content)


def _webhook_headers(url: str, headers: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
    """Encode request headers; CR, LF or NUL in a value would corrupt the request."""
    encoded: list[tuple[bytes, bytes]] = []
    for name, value in headers.items():
        if _sendable(value) is None and value:
            msg = f"header {name!r}: value holds control characters"
            raise FetchError(ErrorKind.INTERNAL, msg, url=url)
        encoded.append((_encode(name), _encode(value)))
    return encoded


def _arrived(response: httpx.Response, limit: int) -> bytes:
    """At most ``limit`` bytes of the raw body that have arrived, without waiting for more.

    ``aclose`` then keeps the connection if that was the whole body, and closes it otherwise.
    """
    if response.is_stream_consumed:  # built with content= (httpx.MockTransport)
        return response.content[:limit]
    stream = response.extensions.get(_BODY)
    return stream.arrived(limit) if isinstance(stream, _ResponseBody) else b""


async def _read_some(response: httpx.Response, limit: int) -> bytes:
    """Read at most ``limit`` bytes of the raw body, then stop reading."""
    if response.is_stream_consumed:  # built with content= (httpx.MockTransport)
        return response.content[:limit]
    body = bytearray()
    async for chunk in response.aiter_raw():
        body += chunk
        if len(body) >= limit:
            break
    return bytes(body[:limit])

"""HTTP: redirects, forbidden targets, statuses, content-type lies and TLS confusion.

Every case is served to a real feedwatch (see ``harness``). Where the case is a
redirect to somewhere feedwatch must not go, that somewhere is a second loopback
server (another port of 127.0.0.1, or 127.0.0.2) that must receive no request at
all; the scene then allows only the feed server's own port
(``allow_networks: [127.0.0.1/32:PORT]``), so a redirect to another service on
the same host is what the guard has to stop.

Host names in redirects are resolved by the system resolver only when it can
answer without DNS (numeric forms, localhost); any other name fails in the
resolver, so that not even a regression can send a query off this machine.
"""

from __future__ import annotations

import itertools
import json
import re
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
import trustme
from harness import XML, Outcome, Scene, assert_failed, good_rss
from loopback import LoopbackServer

from feedwatch.config import load_config
from feedwatch.core import Feedwatch, make_app
from feedwatch.fetch import HttpFetcher, resolve_host

CATEGORY = "HTTP"

#: The scene's feed interval (feedwatch's default): a rate-limited feed waits at least this.
INTERVAL = timedelta(minutes=15)
#: ``scheduler.jitter`` (default 10%) stretches a delay by up to this factor.
JITTER = 1.1


def victim_status(outcome: Outcome) -> str:
    return outcome.feeds["victim"].status or ""


def one_more_item(outcome: Outcome) -> None:
    """The victim's fourth item was stored beside the first three."""
    victim = outcome.victim
    assert victim.status == "ok", victim
    assert victim.new == 1, victim
    assert len(outcome.after["victim"]) == 4


# --------------------------------------------------------------------------- scenes

#: Host names the system resolver answers without asking DNS: numeric IPv4 forms
#: (decimal, octal, hex parts: inet_aton's) and localhost (the hosts file).
_NO_DNS = re.compile(
    r"localhost|(?:0[xX][0-9a-fA-F]+|[0-9]+)(?:\.(?:0[xX][0-9a-fA-F]+|[0-9]+)){0,3}"
)


async def resolve_without_dns(host: str, port: int) -> list[str]:
    """The fetcher's resolver in this module: the system one, for names it answers
    locally; any other name fails here, so that no case can make feedwatch ask DNS."""
    if not _NO_DNS.fullmatch(host):
        raise socket.gaierror(socket.EAI_NONAME, "not resolved in the hostile suite")
    return await resolve_host(host, port)


class HttpScene(Scene):
    """The harness's scene, its real fetcher on :func:`resolve_without_dns`."""

    def app(self) -> Feedwatch:
        config = load_config(self.config_path)
        return make_app(
            config, fetcher_factory=lambda: HttpFetcher(config.fetch, resolver=resolve_without_dns)
        )


@contextmanager
def scene(tmp_path: Path, **kwargs: Any) -> Iterator[HttpScene]:
    """A primed :class:`HttpScene` on a fresh loopback server (``harness.scene``'s twin)."""
    with LoopbackServer() as server:
        s = HttpScene(tmp_path, server, **kwargs)
        s.prime()
        yield s


@contextmanager
def port_scene(tmp_path: Path) -> Iterator[tuple[Scene, LoopbackServer]]:
    """A primed scene allowed on its feed server's port only, and another service on
    127.0.0.1 (another port) that must never be reached."""
    with LoopbackServer() as server, LoopbackServer() as internal:
        s = HttpScene(tmp_path, server, fetch={"allow_networks": [f"127.0.0.1/32:{server.port}"]})
        s.prime()
        yield s, internal
        assert internal.requests == [], "the internal service was reached"


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    """One primed scene (any port of 127.0.0.1, at most 3 redirects) for the cases that
    only fail: none of them stores anything, so each starts from the same three items."""
    with scene(tmp_path_factory.mktemp("http"), fetch={"max_redirects": 3}) as s:
        yield s


@pytest.fixture(scope="module")
def port_only(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Scene, LoopbackServer]]:
    """One :func:`port_scene` for the cases that only fail."""
    with port_scene(tmp_path_factory.mktemp("http-port")) as pair:
        yield pair


def victim_requests(s: Scene) -> int:
    return len(s.server.requests_to(s.victim_path))


# --------------------------------------------------------------------------- redirect chains


def chain(server: LoopbackServer, first: str, hops: int, last: str) -> None:
    """``first`` -> /r1 -> ... -> /r{hops-1} -> ``last``: ``hops`` redirects in all."""
    paths = [first, *(f"/r{i}" for i in range(1, hops)), last]
    for here, there in itertools.pairwise(paths):
        server.redirect(here, there)


def test_redirect_loop_between_two_urls(shared: Scene, figures: Callable[..., None]) -> None:
    s = shared
    s.server.redirect("/victim", "/loop-b")
    s.server.redirect("/loop-b", s.server.url("/victim"))
    before = victim_requests(s)
    outcome = s.attack()
    figures(outcome)
    assert_failed(outcome, "redirect", "redirect loop", "/victim")
    # /victim, /loop-b, and no second visit to /victim.
    assert len(s.server.requests_to("/loop-b")) == 1
    assert victim_requests(s) == before + 1


def test_redirect_to_itself(shared: Scene, figures: Callable[..., None]) -> None:
    s = shared
    s.server.redirect("/victim", "/victim")
    before = victim_requests(s)
    outcome = s.attack()
    figures(outcome)
    assert_failed(outcome, "redirect", "redirect loop")
    assert victim_requests(s) == before + 1


def test_redirect_chain_longer_than_max_redirects(
    shared: Scene, figures: Callable[..., None]
) -> None:
    s = shared
    chain(s.server, "/victim", 4, "/long-end")
    s.server.reply("/long-end", body=good_rss(items=4), headers=XML)
    outcome = s.attack()
    figures(outcome)
    assert_failed(outcome, "redirect", "more than 3 redirects", "/long-end")
    assert s.server.requests_to("/long-end") == [], "the fourth redirect was followed"
    assert len(outcome.after["victim"]) == 3


def test_redirect_chain_within_max_redirects_is_followed(
    tmp_path: Path, figures: Callable[..., None]
) -> None:
    with scene(tmp_path, fetch={"max_redirects": 3}) as s:
        chain(s.server, "/victim", 3, "/feed")
        s.server.reply("/feed", body=good_rss(items=4), headers=XML)
        outcome = s.attack()
        figures(outcome)
    one_more_item(outcome)
    assert len(s.server.requests_to("/feed")) == 1
    # 302s: temporary, so the feed's URL is not moved.
    assert outcome.feeds["victim"].moved_to is None


# --------------------------------------------------------------------------- forbidden targets

#: Where the victim redirects (``{port}``: the internal service's port), and the words
#: the error must name. Every one is 127.0.0.1 on a port the allow-list does not name.
OTHER_PORT = {
    "127.0.0.1, another port": ("http://127.0.0.1:{port}/admin", "127.0.0.1 is a loopback"),
    "localhost by name": ("http://localhost:{port}/admin", "localhost resolves to"),
    "decimal 2130706433": (
        "http://2130706433:{port}/admin",
        "2130706433 resolves to 127.0.0.1",
    ),
    "octal 017700000001": (
        "http://017700000001:{port}/admin",
        "017700000001 resolves to 127.0.0.1",
    ),
    "hex 0x7f000001": ("http://0x7f000001:{port}/admin", "0x7f000001 resolves to 127.0.0.1"),
    "dotted hex 0x7f.0.0.1": ("http://0x7f.0.0.1:{port}/admin", "0x7f.0.0.1 resolves to"),
    "short 127.1": ("http://127.1:{port}/admin", "127.1 resolves to 127.0.0.1"),
    "IPv4-mapped IPv6": (
        "http://[::ffff:127.0.0.1]:{port}/admin",
        "(IPv4 127.0.0.1) is a loopback",
    ),
}


@pytest.mark.parametrize("name", OTHER_PORT)
def test_redirect_to_a_port_not_in_the_allow_list_is_blocked(
    name: str, port_only: tuple[Scene, LoopbackServer], figures: Callable[..., None]
) -> None:
    target, words = OTHER_PORT[name]
    s, internal = port_only
    internal.reply("/admin", body=b"SECRET")
    s.server.redirect("/victim", target.format(port=internal.port))
    outcome = s.attack()
    figures(outcome)
    assert_failed(outcome, "blocked", words)
    if name != "localhost by name":  # it may also answer ::1, refused as not allowed at all
        assert_failed(
            outcome, "blocked", f"only on port {s.server.port}", f"not on port {internal.port}"
        )
    assert internal.requests == []


def test_redirect_to_127_0_0_2_on_the_allowed_port_is_blocked(
    port_only: tuple[Scene, LoopbackServer], figures: Callable[..., None]
) -> None:
    # The same port number on another loopback address: the port matches, the address not.
    s, _ = port_only
    with LoopbackServer("127.0.0.2", s.server.port) as twin:
        twin.reply("/victim", body=good_rss(items=4), headers=XML)
        s.server.redirect("/victim", twin.url("/victim"))
        outcome = s.attack()
        figures(outcome)
        assert twin.requests == []
    assert_failed(outcome, "blocked", "127.0.0.2 is a loopback address not in fetch.allow_networks")


@pytest.mark.parametrize(
    ("location", "words"),
    [
        ("file:///etc/passwd", "redirect to a file: URL"),
        ("javascript:alert(document.domain)", "redirect to a javascript: URL"),
        ("data:application/rss+xml,<rss><channel><item><title>x", "redirect to a data: URL"),
        ("gopher://127.0.0.1:70/1", "redirect to a gopher: URL"),
    ],
)
def test_redirect_out_of_http_is_blocked(
    location: str, words: str, shared: Scene, figures: Callable[..., None]
) -> None:
    shared.server.redirect("/victim", location)
    outcome = shared.attack()
    figures(outcome)
    assert_failed(outcome, "blocked", words, "only http and https are followed")


@pytest.mark.parametrize(
    "location",
    [
        "http://[oops/feed",  # an unclosed IPv6 bracket: no host at all
        "http://exa mple.org/feed",  # a space in the host
        "http://%00evil/feed",  # a percent-encoded NUL in the host
        "http://127.0.0.1:99999/feed",  # no such port
        ":::",
    ],
)
def test_garbage_location_is_a_redirect_error(
    location: str, shared: Scene, figures: Callable[..., None]
) -> None:
    s = shared
    s.server.redirect("/victim", location)
    before = len(s.server.requests)
    outcome = s.attack()
    figures(outcome)
    assert_failed(outcome, "redirect", "redirect to an invalid URL", repr(location))
    # Nothing else was asked of the server (nor of a resolver: see test_fetch_server):
    # the victim's request and the canary's.
    assert len(s.server.requests) == before + 2


# --------------------------------------------------------------------------- 304


def test_304_to_a_request_without_validators_is_an_error(
    shared: Scene, figures: Callable[..., None]
) -> None:
    # The victim was primed without ETag or Last-Modified, so this poll is unconditional:
    # a 304 to it says "unchanged" about nothing (RFC 9110 §15.4.5), a broken server.
    s = shared
    s.serve_victim(b"", {"ETag": '"whatever"'}, status=304)
    outcome = s.attack()
    figures(outcome)
    request = s.server.requests_to("/victim")[-1]
    assert "if-none-match" not in request.headers
    assert "if-modified-since" not in request.headers
    assert_failed(outcome, "http_status", "HTTP 304", "without validators")
    assert len(outcome.after["victim"]) == 3


def test_304_to_a_conditional_request_keeps_the_stored_items(
    tmp_path: Path, figures: Callable[..., None]
) -> None:
    # feedwatch sent the ETag it holds; the server answers 304 with another one. The
    # server vouches that nothing changed: not modified, items kept, its new ETag taken.
    with LoopbackServer() as server:
        s = HttpScene(tmp_path, server)
        s.serve_victim(good_rss(), {**XML, "ETag": '"v1"'})
        assert s.poll().victim.status == "ok"
        s.serve_victim(b"", {"ETag": '"v2"'}, status=304)
        outcome = s.attack()
        figures(outcome)
        s.serve_victim(good_rss(), {**XML, "ETag": '"v2"'})
        s.serve_canary()
        s.poll()
    sent = [r.headers.get("if-none-match") for r in server.requests_to("/victim")]
    assert sent == [None, '"v1"', '"v2"']
    assert outcome.victim.status == "not_modified", outcome.victim
    assert victim_status(outcome) == "not_modified"
    assert len(outcome.after["victim"]) == 3


# --------------------------------------------------------------------------- statuses


def push_back(outcome: Outcome) -> float:
    """Seconds from the victim's poll to its next one."""
    feed = outcome.feeds["victim"]
    assert feed.last_poll_at is not None, feed
    assert feed.next_poll_at is not None, feed
    return (feed.next_poll_at - feed.last_poll_at).total_seconds()


def in_an_hour_and_a_half() -> str:
    return format_datetime(datetime.now(UTC) + timedelta(minutes=90), usegmt=True)


@pytest.mark.parametrize(
    ("status", "retry_after", "seconds"),
    [
        pytest.param(429, "3600", 3600.0, id="429-seconds"),
        pytest.param(429, in_an_hour_and_a_half, 5400.0, id="429-http-date"),
        pytest.param(503, "7200", 7200.0, id="503-seconds"),
        pytest.param(503, None, INTERVAL.total_seconds(), id="503-without"),
        pytest.param(429, "soon", INTERVAL.total_seconds(), id="429-unparseable"),
        pytest.param(429, "99999999999999999999", 86400.0, id="429-absurd"),
    ],
)
def test_rate_limited_feed_waits_as_told(
    status: int,
    retry_after: str | Callable[[], str] | None,
    seconds: float,
    tmp_path: Path,
    figures: Callable[..., None],
) -> None:
    with scene(tmp_path) as s:
        headers = {"Content-Type": "text/plain"}
        if retry_after is not None:
            headers["Retry-After"] = retry_after() if callable(retry_after) else retry_after
        s.serve_victim(b"slow down", headers, status)
        outcome = s.attack()
        figures(outcome)
    victim = outcome.victim
    # Not an error: the server asked us to wait. The kind still says why.
    assert (victim.status, victim.error_kind, victim.http_status) == (
        "rate_limited",
        "http_status",
        status,
    ), victim
    assert f"HTTP {status}" in (victim.error or "")
    feed = outcome.feeds["victim"]
    assert feed.status == "rate_limited"
    assert feed.last_error_kind == "http_status"
    assert feed.consecutive_errors == 0, "a rate limit is not counted as an error"
    # Retry-After is honoured (never sooner than the interval, at most a day), jittered;
    # an HTTP date is counted from when it was read, a second or so before the poll time.
    assert seconds - 5 <= push_back(outcome) <= seconds * JITTER + 5
    if retry_after is not None and seconds > INTERVAL.total_seconds():
        assert "retry after" in (victim.error or "")
    assert len(outcome.after["victim"]) == 3


def test_410_disables_the_feed_and_says_so(tmp_path: Path, figures: Callable[..., None]) -> None:
    with scene(tmp_path) as s:
        s.serve_victim(b"gone", {"Content-Type": "text/plain"}, 410)
        outcome = s.attack()
        figures(outcome)
        s.serve_canary()
        later = s.poll()
    assert_failed(outcome, "http_status", "HTTP 410 Gone")
    feed = outcome.feeds["victim"]
    assert feed.disabled_at is not None, feed
    assert feed.disabled_reason is not None, feed
    assert "410" in feed.disabled_reason, feed
    assert "disabled" in feed.disabled_reason
    # Disabled: the next poll leaves it alone, and keeps what it stored.
    assert "victim" not in later.results
    assert len(s.server.requests_to("/victim")) == 2
    assert len(later.after["victim"]) == 3


@pytest.mark.parametrize(
    ("status", "words"),
    [(404, "HTTP 404 Not Found"), (500, "HTTP 500 Internal Server Error"), (599, "HTTP 599")],
)
def test_error_status_is_recorded_and_retried_later(
    status: int, words: str, shared: Scene, figures: Callable[..., None]
) -> None:
    shared.serve_victim(b"<html><body>oops</body></html>", {"Content-Type": "text/html"}, status)
    outcome = shared.attack()
    figures(outcome)
    assert_failed(outcome, "http_status", words)
    feed = outcome.feeds["victim"]
    assert (feed.status, feed.disabled_at) == ("error", None)
    assert feed.consecutive_errors >= 1  # an error, backed off from (unlike a rate limit)
    assert push_back(outcome) >= INTERVAL.total_seconds()
    assert len(outcome.after["victim"]) == 3


# --------------------------------------------------------------------------- content-type lies


def json_feed() -> bytes:
    """The victim's feed with one more item, as JSON Feed (same ids, links and titles)."""
    items = []
    for i in range(4):
        topic = "artificial intelligence" if i == 0 else f"weather report {i}"
        items.append(
            {
                "id": f"v-{i}",
                "url": f"https://example.org/v/{i}",
                "title": f"v{i}: on {topic}",
                "content_text": f"Item {i} of Victim, about {topic}.",
            }
        )
    doc = {"version": "https://jsonfeed.org/version/1.1", "title": "Victim", "items": items}
    return json.dumps(doc).encode()


#: The start of a PNG image (signature and IHDR chunk), and some noise.
PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489") + bytes(
    range(256)
)

HTML_PAGE = (
    b"<!DOCTYPE html><html><head><title>Welcome</title></head>"
    b"<body><h1>Our news</h1><p>Subscribe to our feed!</p></body></html>"
)


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        pytest.param("image/png", good_rss(items=4), id="feed-as-image/png"),
        pytest.param("text/html; charset=utf-8", good_rss(items=4), id="feed-as-text/html"),
        pytest.param("application/json", good_rss(items=4), id="feed-as-application/json"),
        pytest.param("application/rss+xml", json_feed(), id="json-feed-as-rss"),
    ],
)
def test_mislabelled_feed_is_parsed(
    content_type: str, body: bytes, tmp_path: Path, figures: Callable[..., None]
) -> None:
    # The body decides, not the label: a feed is a feed whatever it is called.
    with scene(tmp_path) as s:
        s.serve_victim(body, {"Content-Type": content_type})
        outcome = s.attack()
        figures(outcome)
    one_more_item(outcome)


@pytest.mark.parametrize(
    ("content_type", "body", "words"),
    [
        pytest.param(
            "application/rss+xml",
            b'{"error": "rate limit", "code": 42}',
            "not a feed: JSON without a JSON Feed version",
            id="json-error-as-rss",
        ),
        pytest.param(
            "application/rss+xml", HTML_PAGE, "not a feed: got an HTML page", id="html-page-as-rss"
        ),
        pytest.param("application/atom+xml", PNG, "not a feed", id="png-as-atom"),
    ],
)
def test_mislabelled_non_feed_is_a_parse_error(
    content_type: str, body: bytes, words: str, shared: Scene, figures: Callable[..., None]
) -> None:
    shared.serve_victim(body, {"Content-Type": content_type})
    outcome = shared.attack()
    figures(outcome)
    assert_failed(outcome, "parse", words)
    assert len(outcome.after["victim"]) == 3


# --------------------------------------------------------------------------- TLS confusion


def test_https_url_at_a_plain_http_port(tmp_path: Path, figures: Callable[..., None]) -> None:
    with scene(tmp_path) as s:
        plain = s.victim_url
        https = plain.replace("http://", "https://", 1)
        text = s.config_path.read_text(encoding="utf-8")
        s.config_path.write_text(text.replace(f'"{plain}"', f'"{https}"'), encoding="utf-8")
        s.serve_victim(good_rss(items=4))
        outcome = s.attack()
        figures(outcome)
    assert outcome.feeds["victim"].url == https
    assert_failed(outcome, "tls", "TLS handshake failed", "plain-HTTP port")
    assert len(s.server.requests_to("/victim")) == 1  # only the priming poll's
    assert len(outcome.after["victim"]) == 3


@contextmanager
def tls_port() -> Iterator[tuple[int, list[str]]]:
    """A port on 127.0.0.1 that speaks only TLS; what each connection did goes to the list."""
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    seen: list[str] = []
    stop = threading.Event()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.settimeout(0.05)

        def serve() -> None:
            while not stop.is_set():
                try:
                    conn, _ = listener.accept()
                except TimeoutError:
                    continue
                with conn:
                    conn.settimeout(5)
                    try:
                        with context.wrap_socket(conn, server_side=True):
                            seen.append("handshake")
                    except (ssl.SSLError, OSError) as exc:
                        seen.append(type(exc).__name__)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        try:
            yield listener.getsockname()[1], seen
        finally:
            stop.set()
            thread.join()


def test_plain_http_url_at_a_tls_port(tmp_path: Path, figures: Callable[..., None]) -> None:
    with tls_port() as (port, seen), scene(tmp_path) as s:
        s.server.redirect("/victim", f"http://127.0.0.1:{port}/feed")
        outcome = s.attack()
        figures(outcome)
    assert seen, "nothing connected to the TLS port"
    assert "handshake" not in seen, seen
    victim = outcome.victim
    assert victim.status == "error", victim
    assert victim.error_kind == "connection", victim
    assert victim.error, victim
    assert len(outcome.after["victim"]) == 3


# --------------------------------------------------------------------------- stored addresses


@pytest.mark.parametrize("status", [301, 308])
def test_permanent_redirect_into_a_forbidden_port_is_never_stored(
    status: int, tmp_path: Path, figures: Callable[..., None]
) -> None:
    """A reader that followed a redirect into the internal network, then stored that
    address, polls it for ever: here the hop is refused and the feed keeps its URL."""
    with port_scene(tmp_path) as (s, internal):
        internal.reply("/admin", body=good_rss(items=4), headers=XML)
        s.server.redirect("/victim", internal.url("/admin"), status=status)
        outcome = s.attack()
        figures(outcome)
        assert_failed(outcome, "blocked", f"not on port {internal.port}")
        assert outcome.feeds["victim"].moved_to is None
        assert outcome.feeds["victim"].url == s.victim_url

        # The next poll asks the configured URL again, which now answers.
        asked = victim_requests(s)
        s.serve_victim(good_rss(items=4))
        one_more_item(s.attack())
        assert victim_requests(s) == asked + 1

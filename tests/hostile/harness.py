"""The hostile-input suite's harness: one loopback server, one real feedwatch, one case.

A *scene* is a SQLite feedwatch with the real adapters (``make_app``: the real
``HttpFetcher`` with its SSRF guard, the real worker processes, the real storage)
and two feeds on one :class:`~loopback.LoopbackServer` on 127.0.0.1:

* ``victim``: first served as a good feed (``good_rss``), polled once, so there is
  stored data to lose; then the case's hostile reply is installed and it is polled
  again;
* ``canary``: a good feed polled beside it every time: it must come through
  whatever the victim does, and, for a victim that holds its connection open, be
  fetched *while* the victim is still in progress.

:meth:`Scene.attack` runs that second poll under a watchdog (a hang fails the
test instead of hanging the suite), samples the memory of this process and its
worker processes, and returns an :class:`Outcome`; :meth:`Outcome.check_invariants`
checks what every case must keep (see its docstring). Each test then asserts its
own case's verdict: the error kind recorded on the feed, or what was stored.

Every address used is on 127.0.0.0/8. A forbidden target is another loopback
port (``forbidden_server``) or 127.0.0.2, never an outside address.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from loopback import Exchange, LoopbackServer

from feedwatch.config import load_config
from feedwatch.core import Feedwatch, make_app
from feedwatch.types import FeedStatus, PollResult, StoredAlert, StoredItem

#: Seconds the watchdog gives one poll beyond its own deadlines (a fetch's total
#: deadline, then a document's parse budget) before calling it a hang.
WATCHDOG_SLACK = 20.0

#: Rules of every scene. ``ai`` matches the good feeds' first item.
RULES = {
    "ai": '"artificial intelligence" OR AI',
    "ct": "terrorism OR терроризм OR terrorisme",
}


def good_rss(title: str = "Victim", items: int = 3, prefix: str = "v") -> bytes:
    """A valid RSS 2.0 document; item 0 mentions artificial intelligence."""
    entries = []
    for i in range(items):
        topic = "artificial intelligence" if i == 0 else f"weather report {i}"
        entries.append(
            f"<item><title>{prefix}{i}: on {topic}</title>"
            f"<link>https://example.org/{prefix}/{i}</link>"
            f'<guid isPermaLink="false">{prefix}-{i}</guid>'
            f"<pubDate>Mon, 0{1 + i % 9} Jun 2026 10:00:00 +0000</pubDate>"
            f"<description>Item {i} of {title}, about {topic}.</description></item>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>'
        f"<title>{title}</title><link>https://example.org/</link>"
        f"<description>test</description>{''.join(entries)}</channel></rss>"
    ).encode()


def rss_items(*items: str, title: str = "Hostile", head: str = "") -> bytes:
    """RSS 2.0 around raw ``<item>...</item>`` strings (UTF-8)."""
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>{head}<rss version="2.0"><channel>'
        f"<title>{title}</title><link>https://example.org/</link>"
        f"<description>test</description>{''.join(items)}</channel></rss>"
    ).encode()


XML = {"Content-Type": "application/rss+xml; charset=utf-8"}


# ------------------------------------------------------------------ memory


def _rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _descendants(pid: int) -> list[int]:
    out: list[int] = []
    stack = [pid]
    while stack:
        current = stack.pop()
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{current}/task/{task}/children", encoding="ascii") as f:
                    children = [int(c) for c in f.read().split()]
            except OSError:
                continue
            out.extend(children)
            stack.extend(children)
    return out


def _cmdline(pid: int) -> bytes | None:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return None


def _workers(pid: int) -> list[int]:
    """The descendants of ``pid`` that run a program of their own.

    A worker process is forked from this one before it execs: in that window its
    RSS is this process's, which would be counted twice (seen about once in 25
    polls, reading up to 290 MiB). Such a child still has this command line.
    """
    mine = _cmdline(pid)
    return [child for child in _descendants(pid) if _cmdline(child) != mine]


class MemorySampler:
    """Peak RSS of this process plus its worker processes, sampled every 20 ms."""

    def __init__(self) -> None:
        self.peak_kib = 0
        self.baseline_kib = _rss_kib(os.getpid())
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        me = os.getpid()
        total = _rss_kib(me) + sum(_rss_kib(p) for p in _workers(me))
        self.peak_kib = max(self.peak_kib, total)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(0.02)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    @property
    def growth_mib(self) -> float:
        """Peak of this process and its workers, less this process before the poll."""
        return max(0, self.peak_kib - self.baseline_kib) / 1024


# ------------------------------------------------------------------ outcome


@dataclass
class Outcome:
    """What one hostile poll did."""

    results: dict[str, PollResult]
    feeds: dict[str, FeedStatus]
    before: dict[str, list[StoredItem]]
    after: dict[str, list[StoredItem]]
    alerts: list[StoredAlert]
    #: Monotonic time each feed's result came back from the pipeline.
    finished_at: dict[str, float]
    wall_s: float
    memory_mib: float
    #: Raw rows of the items table after the poll (every column).
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def victim(self) -> PollResult:
        return self.results["victim"]

    def check_invariants(self) -> None:
        """What every case keeps, whatever the victim served:

        * the canary feed was polled and stored (the other feeds are not stopped);
        * nothing stored before the attack is lost or altered (ids, keys, titles);
        * at most one alert per (rule, item) and per (rule, story: the canonical
          link, across feeds);
        * every failure carries an error kind and a message, on the result and on
          the feed, the message one printable line of at most 500 characters;
        * every stored text column is a str without NUL, lone surrogates or C0/C1
          controls other than tab, line feed and carriage return; stored links are
          http(s) or absent.
        """
        canary = self.results["canary"]
        assert canary.status in ("ok", "not_modified"), canary
        assert self.after["canary"], "the canary's items are missing"
        for name, items in self.before.items():
            kept = {(i.id, i.entry_key, i.title) for i in self.after[name]}
            lost = [
                (i.id, i.entry_key, i.title)
                for i in items
                if (i.id, i.entry_key, i.title) not in kept
            ]
            assert not lost, f"{name}: stored items lost or altered: {lost[:3]}"
        per_item = Counter((a.rule, a.item_id) for a in self.alerts)
        assert max(per_item.values(), default=1) == 1, per_item
        # A story is the canonical link, across feeds (storage's unique story key).
        canonical = {row["id"]: row.get("canonical_url") for row in self.rows}
        per_story = Counter(
            (a.rule, canonical[a.item_id]) for a in self.alerts if canonical.get(a.item_id)
        )
        assert max(per_story.values(), default=1) == 1, per_story
        for result in self.results.values():
            if result.status == "error":
                assert result.error_kind, result
                assert result.error, result
                status = self.feeds[result.feed]
                assert status.last_error_kind == result.error_kind, status
                assert status.last_error, status
                for message in (result.error, status.last_error):
                    assert message.isprintable(), f"not one printable line: {message!r}"
                    assert len(message) <= 500, f"{len(message)} characters: {message[:80]!r}"
        for row in self.rows:
            for column, value in row.items():
                if isinstance(value, str):
                    check_text(value, f"items.{column} of item {row['id']}")
            url = row.get("url")
            assert url is None or url.startswith(("http://", "https://")), url


_BAD_CHARS = {chr(c) for c in range(32) if chr(c) not in "\t\n\r"} | {
    chr(c) for c in range(0x7F, 0xA0)
}


def check_text(value: str, where: str) -> None:
    """Stored text is encodable UTF-8, without NUL, lone surrogates or control characters."""
    value.encode("utf-8")  # raises on a lone surrogate
    bad = _BAD_CHARS.intersection(value)
    assert not bad, f"{where}: control characters {sorted(bad)!r} in {value[:80]!r}"


# ------------------------------------------------------------------ scene


class Scene:
    """A feedwatch, a loopback server and the two feeds; see the module docstring."""

    def __init__(
        self,
        tmp_path: Path,
        server: LoopbackServer,
        *,
        fetch: dict[str, Any] | None = None,
        scheduler: dict[str, Any] | None = None,
        victim_url: str | None = None,
        extra_yaml: str = "",
    ) -> None:
        self.tmp_path = tmp_path
        self.server = server
        self.db = tmp_path / "feedwatch.db"
        self.victim_path = "/victim"
        self.victim_url = victim_url or server.url(self.victim_path)
        options: dict[str, Any] = {
            "allow_networks": ["127.0.0.1/32"],
            "timeout": "3s",
            "connect_timeout": "2s",
            "concurrency": 4,
            "per_host": 4,
        }
        options.update(fetch or {})
        sched: dict[str, Any] = {"parse_timeout": "20s"}
        sched.update(scheduler or {})
        self.fetch_timeout = _seconds(options["timeout"])
        self.parse_timeout = _seconds(sched["parse_timeout"])
        lines = [
            f"database: sqlite:///{self.db}",
            "fetch: " + _flow(options),
            "scheduler: " + _flow(sched),
            "feeds:",
            f"  - {{name: victim, url: {_q(self.victim_url)}}}",
            f"  - {{name: canary, url: {_q(server.url('/canary'))}}}",
            "rules:",
            *(f"  - {{name: {name}, query: {_q(q)}}}" for name, q in RULES.items()),
            extra_yaml,
        ]
        self.config_path = tmp_path / "feeds.yaml"
        self.config_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        self._canary_round = 0
        self.serve_canary()

    # -- serving ---------------------------------------------------------
    def serve_canary(self) -> None:
        """The canary feed: a good document, one more item every poll (so it is never 304)."""
        self._canary_round += 1
        self.server.reply(
            "/canary", body=good_rss("Canary", 2 + self._canary_round, "c"), headers=XML
        )

    def serve_victim(
        self, body: bytes, headers: dict[str, str] | None = None, status: int = 200
    ) -> None:
        self.server.reply(self.victim_path, status, body, headers if headers is not None else XML)

    def route_victim(self, handler: Callable[[Exchange], None]) -> None:
        self.server.route(self.victim_path, handler)

    # -- polling ---------------------------------------------------------
    def app(self) -> Feedwatch:
        return make_app(load_config(self.config_path))

    def poll(self) -> Outcome:
        """One poll of both feeds through a fresh app (as ``feedwatch poll`` would)."""
        app = self.app()
        try:
            app.storage.migrate()
            before = _items_by_feed(app)
            finished: dict[str, float] = {}
            results: dict[str, PollResult] = {}

            def on_result(result: PollResult) -> None:
                finished[result.feed] = time.monotonic()
                results[result.feed] = result

            watchdog = self.fetch_timeout + self.parse_timeout + WATCHDOG_SLACK
            started = time.monotonic()
            with MemorySampler() as sampler:
                summary = asyncio.run(asyncio.wait_for(app.poll(on_result=on_result), watchdog))
            wall = time.monotonic() - started
            for result in summary.results:
                results.setdefault(result.feed, result)
            return Outcome(
                results=results,
                feeds={f.name: f for f in app.feeds()},
                before=before,
                after=_items_by_feed(app),
                alerts=app.storage.list_alerts(),
                finished_at=finished,
                wall_s=wall,
                memory_mib=sampler.growth_mib,
                rows=self.item_rows(),
            )
        finally:
            app.close()

    def prime(self) -> Outcome:
        """The first poll: the victim serves ``good_rss()``; both feeds must store items."""
        self.serve_victim(good_rss())
        outcome = self.poll()
        assert outcome.victim.status == "ok", outcome.victim
        assert outcome.results["canary"].status == "ok", outcome.results["canary"]
        assert len(outcome.after["victim"]) == 3
        assert [a.rule for a in outcome.alerts].count("ai") == 2  # victim's and canary's item 0
        return outcome

    def attack(self) -> Outcome:
        """The second poll, with whatever the victim route now serves; invariants checked."""
        self.serve_canary()
        outcome = self.poll()
        outcome.check_invariants()
        return outcome

    def item_rows(self) -> list[dict[str, Any]]:
        engine = sa.create_engine(f"sqlite:///{self.db}")
        try:
            with engine.connect() as conn:
                return [dict(r._mapping) for r in conn.execute(sa.text("SELECT * FROM items"))]
        finally:
            engine.dispose()


def _items_by_feed(app: Feedwatch) -> dict[str, list[StoredItem]]:
    out: dict[str, list[StoredItem]] = {"victim": [], "canary": []}
    for item in app.storage.list_items():
        out.setdefault(item.feed, []).append(item)
    return out


def _seconds(value: Any) -> float:
    text = str(value)
    if text.endswith("ms"):
        return float(text[:-2]) / 1000
    return float(text.rstrip("s"))


def _q(text: str) -> str:
    """A YAML double-quoted scalar."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _flow(options: dict[str, Any]) -> str:
    parts = []
    for key, value in options.items():
        if isinstance(value, list):
            parts.append(f"{key}: [{', '.join(_q(str(v)) for v in value)}]")
        elif isinstance(value, str):
            parts.append(f"{key}: {_q(value)}")
        else:
            parts.append(f"{key}: {value}")
    return "{" + ", ".join(parts) + "}"


@contextmanager
def scene(tmp_path: Path, **kwargs: Any) -> Iterator[Scene]:
    """A primed :class:`Scene` on a fresh loopback server."""
    with LoopbackServer() as server:
        s = Scene(tmp_path, server, **kwargs)
        s.prime()
        yield s


def held_open(seconds_cap: float, stopping: threading.Event) -> Callable[[Exchange], None]:
    """A reply that sends headers and then one byte a second until the client leaves."""

    def handler(exchange: Exchange) -> None:
        exchange.send_response(200)
        exchange.send_header("Content-Type", "application/rss+xml")
        exchange.send_header("Content-Length", "100000")
        exchange.end_headers()
        deadline = time.monotonic() + seconds_cap
        exchange.wfile.write(b"<")
        while time.monotonic() < deadline and not stopping.is_set():
            exchange.wfile.write(b" ")
            exchange.wfile.flush()
            stopping.wait(1.0)
        exchange.close_connection = True

    return handler


def assert_failed(outcome: Outcome, kind: str, *words: str) -> None:
    """The victim failed with ``kind`` and a message containing each of ``words``."""
    victim = outcome.victim
    assert victim.status == "error", victim
    assert victim.error_kind == kind, victim
    for word in words:
        assert word.lower() in (victim.error or "").lower(), victim.error


def canary_during(outcome: Outcome, server: LoopbackServer) -> None:
    """The canary was fetched while the victim was still in progress."""
    canary_requests = server.requests_to("/canary")
    assert canary_requests, "the canary was never fetched"
    assert canary_requests[-1].at < outcome.finished_at["victim"], (
        "the canary was fetched only after the victim had finished"
    )


def texts(items: Sequence[StoredItem]) -> list[str]:
    return [f"{i.title}\n{i.content_text}" for i in items]

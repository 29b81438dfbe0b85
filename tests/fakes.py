"""Test doubles for the edges of a poll: a fetcher, a clock, and feed documents.

* :class:`FakeFetcher` implements :class:`feedwatch.fetch.Fetcher` from a table
  of canned answers per URL (a document, a 304, or an exception to raise) and
  records every call, validators included.
* :class:`FakeClock` is a settable, callable UTC clock.
* :func:`rss` and :func:`atom` build small documents from :class:`Entry` records.

Nothing here touches the network, the database or the real clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import format_datetime
from xml.sax.saxutils import escape, quoteattr

from feedwatch._model import FetchResult
from feedwatch.exceptions import ErrorKind, FetchError

__all__ = [
    "ATOM_HEADERS",
    "RSS_HEADERS",
    "Entry",
    "FakeClock",
    "FakeFetcher",
    "FetchCall",
    "atom",
    "rss",
]


# --------------------------------------------------------------------------- documents


@dataclass(frozen=True, slots=True)
class Entry:
    """One ``<item>`` of an RSS document."""

    guid: str
    title: str
    text: str = ""
    link: str | None = None
    published: datetime | None = None
    #: Atom only (``<updated>``); RSS items have no such date.
    updated: datetime | None = None


def rss(*entries: Entry, title: str = "Test feed") -> bytes:
    """An RSS 2.0 document (UTF-8 bytes) holding ``entries`` in order."""
    parts = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<rss version="2.0"><channel>',
        f"<title>{escape(title)}</title><link>https://example.org/</link>",
        "<description>test</description>",
    ]
    for entry in entries:
        parts.append("<item>")
        parts.append(f'<guid isPermaLink="false">{escape(entry.guid)}</guid>')
        parts.append(f"<title>{escape(entry.title)}</title>")
        if entry.link is not None:
            parts.append(f"<link>{escape(entry.link)}</link>")
        if entry.text:
            parts.append(f"<description>{escape(entry.text)}</description>")
        if entry.published is not None:
            parts.append(f"<pubDate>{format_datetime(entry.published, usegmt=True)}</pubDate>")
        parts.append("</item>")
    parts.append("</channel></rss>")
    return "\n".join(parts).encode("utf-8")


def atom(*entries: Entry, title: str = "Test feed") -> bytes:
    """An Atom 1.0 document (UTF-8 bytes) holding ``entries`` in order."""
    parts = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<feed xmlns="http://www.w3.org/2005/Atom">',
        f"<title>{escape(title)}</title><id>urn:test:feed</id>",
        "<updated>2026-01-01T00:00:00Z</updated>",
    ]
    for entry in entries:
        parts.append("<entry>")
        parts.append(f"<id>{escape(entry.guid)}</id><title>{escape(entry.title)}</title>")
        if entry.link is not None:
            parts.append(f"<link href={quoteattr(entry.link)}/>")
        if entry.text:
            parts.append(f'<content type="text">{escape(entry.text)}</content>')
        if entry.published is not None:
            parts.append(f"<published>{entry.published.isoformat()}</published>")
        if entry.updated is not None:
            parts.append(f"<updated>{entry.updated.isoformat()}</updated>")
        parts.append("</entry>")
    parts.append("</feed>")
    return "\n".join(parts).encode("utf-8")


RSS_HEADERS: Mapping[str, str] = {"content-type": "application/rss+xml; charset=utf-8"}
ATOM_HEADERS: Mapping[str, str] = {"content-type": "application/atom+xml; charset=utf-8"}


# --------------------------------------------------------------------------- clock


class FakeClock:
    """A clock that says ``now`` until told otherwise; call it for the time."""

    def __init__(self, now: datetime) -> None:
        if now.tzinfo is None:
            raise ValueError("FakeClock needs an aware datetime")
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        """Move forward by ``timedelta(**delta)``; return the new time."""
        self.now += timedelta(**delta)
        return self.now


# --------------------------------------------------------------------------- fetcher


@dataclass(frozen=True, slots=True)
class FetchCall:
    """One call of :meth:`FakeFetcher.fetch`, as made."""

    url: str
    etag: str | None
    last_modified: str | None


@dataclass(slots=True)
class _Answer:
    result: FetchResult | None = None
    error: BaseException | None = None
    #: Awaited before answering (lets a test order concurrent fetches).
    wait_for: asyncio.Event | None = None
    #: Set once this URL has been answered.
    done: asyncio.Event | None = None


@dataclass
class FakeFetcher:
    """A :class:`~feedwatch.fetch.Fetcher` answering from a table, per URL.

    Like reader's fake parser: ``.ok()``, ``.not_modified()``, ``.raise_exc()``
    set the next answers for a URL; ``calls`` records every fetch. A URL with
    no answer gets a 404 ``FetchError``, as from a real server.
    """

    calls: list[FetchCall] = field(default_factory=list)
    closed: bool = False
    _answers: dict[str, _Answer] = field(default_factory=dict)

    def ok(
        self,
        url: str,
        content: bytes,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        headers: Mapping[str, str] = RSS_HEADERS,
        status: int = 200,
    ) -> None:
        """Answer ``url`` with ``content`` (a 2xx)."""
        all_headers = dict(headers)
        if etag is not None:
            all_headers["etag"] = etag
        if last_modified is not None:
            all_headers["last-modified"] = last_modified
        self._answers[url] = _Answer(
            result=FetchResult(
                final_url=url,
                status=status,
                content=content,
                headers=all_headers,
                etag=etag,
                last_modified=last_modified,
            )
        )

    def not_modified(
        self, url: str, *, etag: str | None = None, last_modified: str | None = None
    ) -> None:
        """Answer ``url`` with a 304 carrying these validators (None: not repeated)."""
        self._answers[url] = _Answer(
            result=FetchResult(
                final_url=url, status=304, content=b"", etag=etag, last_modified=last_modified
            )
        )

    def raise_exc(self, url: str, exc: BaseException) -> None:
        """Raise ``exc`` when ``url`` is fetched (a FetchError, or a bug like RuntimeError)."""
        self._answers[url] = _Answer(error=exc)

    def hold(self, url: str, until: asyncio.Event) -> None:
        """Delay the answer for ``url`` until ``until`` is set (orders concurrent fetches)."""
        self._answers[url].wait_for = until

    def answered(self, url: str) -> asyncio.Event:
        """An event set once ``url`` has been answered (or has raised)."""
        answer = self._answers[url]
        if answer.done is None:
            answer.done = asyncio.Event()
        return answer.done

    def calls_to(self, url: str) -> list[FetchCall]:
        return [call for call in self.calls if call.url == url]

    async def fetch(
        self, url: str, *, etag: str | None = None, last_modified: str | None = None
    ) -> FetchResult:
        if self.closed:
            raise RuntimeError("FakeFetcher is closed")
        self.calls.append(FetchCall(url, etag, last_modified))
        answer = self._answers.get(url)
        if answer is None:
            raise FetchError(ErrorKind.HTTP_STATUS, "HTTP 404 Not Found", url=url, status=404)
        try:
            if answer.wait_for is not None:
                await answer.wait_for.wait()
            if answer.error is not None:
                raise answer.error
            assert answer.result is not None
            return answer.result
        finally:
            if answer.done is not None:
                answer.done.set()

    async def aclose(self) -> None:
        self.closed = True

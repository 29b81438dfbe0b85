"""The CPU-bound middle of a poll: parse, normalise and match one document.

Pure: bytes, headers and a compiled rule set in, a :class:`Prepared` out; no
I/O, no clock (the poll's time comes with the job). It runs in the worker
processes of :mod:`feedwatch.workers`, one document at a time, so the event
loop only fetches and the main process only writes.

Every item of the document is matched, not only the new ones: what is new is
decided later against the database (``decide``), and the pipeline keeps the
matches of new and updated items only. Documents that did not change are never
sent here at all (a 304, or a 200 repeating the body handled last time, skips this stage).

A document with more than ``max_items`` entries (``fetch.max_items``) keeps the
first ``max_items`` in document order (feeds list the newest first), with a
warning; the rest are dropped right after parsing, so they cost no normalising
and no matching.

It does NOT decide what is new, does not store, and does not know subscribers.
"""

from __future__ import annotations

from dataclasses import replace

from ._model import DEFAULT_MAX_ITEMS, MatchInput, ParsedFeed, Prepared, PrepareJob, RuleMatch
from .normalise import normalise_entries
from .parse import parse_document
from .rules import Matcher

__all__ = ["InlinePrepare", "prepare"]


def prepare(job: PrepareJob, matcher: Matcher, *, max_items: int = DEFAULT_MAX_ITEMS) -> Prepared:
    """Parse ``job.content``, normalise its first ``max_items`` entries and match every item.

    Raises:
        ParseError: nothing usable in the document (from :func:`parse_document`).
    """
    parsed = _first_entries(
        parse_document(job.content, url=job.url, headers=job.headers), max_items
    )
    items, warnings = normalise_entries(parsed, feed_url=job.url, now=job.polled_at)
    matches: dict[str, tuple[RuleMatch, ...]] = {}
    for item in items:
        found = matcher.match(
            MatchInput(
                title=item.title,
                content=item.content_text,
                author=item.author or "",
                feed=job.feed,
                tags=(*job.feed_tags, *item.tags),
                lang=item.language,
            )
        )
        if found:
            matches[item.entry_key] = tuple(found)
    return Prepared(
        title=parsed.title,
        ttl_minutes=parsed.ttl_minutes,
        items=tuple(items),
        warnings=(*parsed.warnings, *warnings),
        matches=matches,
    )


def _first_entries(parsed: ParsedFeed, max_items: int) -> ParsedFeed:
    """``parsed`` with its first ``max_items`` entries only, and a warning if it had more."""
    count = len(parsed.entries)
    if count <= max_items:
        return parsed
    warning = f"document has {count:,} entries; the first {max_items:,} were kept (fetch.max_items)"
    return replace(parsed, entries=parsed.entries[:max_items], warnings=(*parsed.warnings, warning))


class InlinePrepare:
    """A :data:`~feedwatch.pipeline.PrepareRunner` that prepares in the calling thread
    (tests, one-off tools)."""

    def __init__(self, matcher: Matcher, *, max_items: int = DEFAULT_MAX_ITEMS) -> None:
        self._matcher = matcher
        self._max_items = max_items

    async def __call__(self, job: PrepareJob) -> Prepared:
        return prepare(job, self._matcher, max_items=self._max_items)

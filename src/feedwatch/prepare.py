"""The CPU-bound middle of a poll: parse, normalise and match one document.

Pure: bytes, headers and a compiled rule set in, a :class:`Prepared` out; no
I/O, no clock (the poll's time comes with the job). It runs in the worker
processes of :mod:`feedwatch.workers`, one document at a time, so the event
loop only fetches and the main process only writes.

Every item of the document is matched, not only the new ones: what is new is
decided later against the database (``decide``), and the pipeline keeps the
matches of new and updated items only. Documents that did not change are never
sent here at all (a 304, or a 200 repeating the body handled last time, skips this stage).

It does NOT decide what is new, does not store, and does not know subscribers.
"""

from __future__ import annotations

from ._model import MatchInput, Prepared, PrepareJob, RuleMatch
from .normalise import normalise_entries
from .parse import parse_document
from .rules import Matcher

__all__ = ["InlinePrepare", "prepare"]


def prepare(job: PrepareJob, matcher: Matcher) -> Prepared:
    """Parse ``job.content``, normalise its entries and match every item.

    Raises:
        ParseError: nothing usable in the document (from :func:`parse_document`).
    """
    parsed = parse_document(job.content, url=job.url, headers=job.headers)
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


class InlinePrepare:
    """A :data:`~feedwatch.pipeline.PrepareRunner` that prepares in the calling thread
    (tests, one-off tools)."""

    def __init__(self, matcher: Matcher) -> None:
        self._matcher = matcher

    async def __call__(self, job: PrepareJob) -> Prepared:
        return prepare(job, self._matcher)

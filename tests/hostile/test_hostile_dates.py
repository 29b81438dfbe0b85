"""Dates: year 1900 and year 1, the far future, unparseable text, odd offsets.

Every date is served to a real feedwatch (see ``harness``) in an RSS 2.0, an Atom
and a JSON Feed document, one item per case, and a last RSS poll edits some of
them. For every case the stored row holds its dates as UTC (SQLite's naive UTC
text, read back aware), equal to the true instant the text names, or NULL when
the text names none (unparseable, impossible, or outside datetime's range);
``sort_at`` is the date clamped to ``first_seen`` (the poll that first saw the
item), so a far-future date cannot pin an item to the top of "newest first",
and a date in 1900 or year 1 sorts last without breaking the listing.

The polls run once per module (``dated``); each case is a test of its own on
the outcome of the poll that served it.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from harness import Outcome, Scene, scene

from feedwatch.types import StoredItem

CATEGORY = "Dates"

DC = "http://purl.org/dc/elements/1.1/"
ATOM = "http://www.w3.org/2005/Atom"


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


@dataclass(frozen=True)
class Case:
    """One dated item: the date markup inside it and the instants it names."""

    name: str
    #: "rss", "atom" or "json": the document (and poll) that serves it.
    feed: str
    #: XML inside the item/entry; for "json", the item's date fields.
    dates: str | dict[str, str]
    published: datetime | None
    updated: datetime | None = None
    #: Readings this far from ``published`` are accepted (the military zones).
    within: timedelta = timedelta(0)
    why: str = ""


FUTURE = {
    "far future 9999",
    "far future 2999",
    "far future dc:date",
    "atom far future",
    "json far future",
}
ANCIENT = {
    "year 1900",
    "year 1900 dc:date, +01:00",
    "year 1",
    "year 1, RFC 822",
    "atom 1900",
    "json year 1",
}

CASES = [
    # ---------------------------------------------------------------- the distant past
    Case(
        "year 1900",
        "rss",
        "<pubDate>Mon, 01 Jan 1900 10:00:00 +0000</pubDate>",
        utc(1900, 1, 1, 10),
    ),
    Case(
        "year 1900 dc:date, +01:00",
        "rss",
        "<dc:date>1900-01-01T00:00:00+01:00</dc:date>",
        utc(1899, 12, 31, 23),
        why="dc:date is an RSS item's date; the offset crosses into 1899",
    ),
    Case("year 1", "rss", "<dc:date>0001-01-01T00:00:00Z</dc:date>", utc(1, 1, 1)),
    Case(
        "year 1, RFC 822",
        "rss",
        "<pubDate>Mon, 01 Jan 0001 12:00:00 GMT</pubDate>",
        utc(1, 1, 1, 12),
    ),
    Case(
        "year 1, +14:00 (before year 1 in UTC)",
        "rss",
        "<pubDate>0001-01-01T05:00:00+14:00</pubDate>",
        None,
        why="the instant is in year 0, which datetime cannot hold: no date, not a wrong one",
    ),
    # ---------------------------------------------------------------- the far future
    Case(
        "far future 9999",
        "rss",
        "<pubDate>Fri, 31 Dec 9999 23:59:59 +0000</pubDate>",
        utc(9999, 12, 31, 23, 59, 59),
    ),
    Case(
        "far future 2999",
        "rss",
        "<pubDate>Tue, 01 Jan 2999 00:00:00 GMT</pubDate>",
        utc(2999, 1, 1),
    ),
    Case(
        "far future dc:date",
        "rss",
        "<dc:date>2999-06-01T12:00:00-05:00</dc:date>",
        utc(2999, 6, 1, 17),
    ),
    Case(
        "9999, -12:00 (after 9999 in UTC)",
        "rss",
        "<dc:date>9999-12-31T23:59:59-12:00</dc:date>",
        None,
        why="the instant is in year 10000, which datetime cannot hold",
    ),
    # ---------------------------------------------------------------- unparseable
    Case("unparseable words", "rss", "<pubDate>not a date at all</pubDate>", None),
    Case("unparseable 'yesterday'", "rss", "<pubDate>yesterday</pubDate>", None),
    Case("empty pubDate", "rss", "<pubDate></pubDate>", None),
    Case("blank pubDate", "rss", "<pubDate>   </pubDate>", None),
    Case(
        "month 13, day 45",
        "rss",
        "<pubDate>2025-13-45</pubDate>",
        None,
        why="not rolled over into 2026",
    ),
    Case("year 10000", "rss", "<dc:date>10000-01-01T00:00:00Z</dc:date>", None),
    Case("30 February, RFC 822", "rss", "<pubDate>Mon, 30 Feb 2025 10:00:00 +0000</pubDate>", None),
    Case(
        "30 February, W3DTF",
        "rss",
        "<dc:date>2025-02-30T10:00:00Z</dc:date>",
        None,
        why="not 2 March",
    ),
    Case("missing date", "rss", "", None),
    # ---------------------------------------------------------------- offsets
    Case("+14:00", "rss", "<dc:date>2025-03-01T10:00:00+14:00</dc:date>", utc(2025, 2, 28, 20)),
    Case("-12:00", "rss", "<dc:date>2025-03-01T10:00:00-12:00</dc:date>", utc(2025, 3, 1, 22)),
    Case("+05:45", "rss", "<dc:date>2025-03-01T10:00:00+05:45</dc:date>", utc(2025, 3, 1, 4, 15)),
    Case(
        "RFC 822 +0545",
        "rss",
        "<pubDate>Sat, 01 Mar 2025 10:00:00 +0545</pubDate>",
        utc(2025, 3, 1, 4, 15),
    ),
    Case(
        "W3DTF +0530 without a colon",
        "rss",
        "<dc:date>2025-03-01T10:00:00+0530</dc:date>",
        utc(2025, 3, 1, 4, 30),
        why="feedparser reads +0530 as +05:00",
    ),
    Case(
        "RFC 822 +0530",
        "rss",
        "<pubDate>Sat, 01 Mar 2025 10:00:00 +0530</pubDate>",
        utc(2025, 3, 1, 4, 30),
    ),
    Case(
        "RFC 822 +1400",
        "rss",
        "<pubDate>Sat, 01 Mar 2025 10:00:00 +1400</pubDate>",
        utc(2025, 2, 28, 20),
    ),
    Case(
        "RFC 822 -1200",
        "rss",
        "<pubDate>Sat, 01 Mar 2025 10:00:00 -1200</pubDate>",
        utc(2025, 3, 1, 22),
    ),
    Case(
        "GMT+03:00",
        "rss",
        "<pubDate>Sat, 01 Mar 2025 10:00:00 GMT+03:00</pubDate>",
        utc(2025, 3, 1, 7),
    ),
    Case(
        "GMT+3",
        "rss",
        "<pubDate>Sat, 01 Mar 2025 10:00:00 GMT+3</pubDate>",
        None,
        why="ambiguous: UTC+3 as people write it, UTC-3 as POSIX (Etc/GMT+3) means it",
    ),
    Case("EDT", "rss", "<pubDate>Sat, 01 Mar 2025 10:00:00 EDT</pubDate>", utc(2025, 3, 1, 14)),
    Case("MSK", "rss", "<pubDate>Sat, 01 Mar 2025 10:00:00 MSK</pubDate>", utc(2025, 3, 1, 7)),
    Case(
        "military Z", "rss", "<pubDate>Sat, 01 Mar 2025 10:00:00 Z</pubDate>", utc(2025, 3, 1, 10)
    ),
    *(
        Case(
            f"military {zone}",
            "rss",
            f"<pubDate>Sat, 01 Mar 2025 10:00:00 {zone}</pubDate>",
            utc(2025, 3, 1, 10),
            within=timedelta(hours=12),
            why="RFC 822 gave these the wrong signs; RFC 5322 reads them as -0000",
        )
        for zone in ("A", "M", "N", "Y")
    ),
    # ---------------------------------------------------------------- leap seconds
    Case(
        "leap second, RFC 822",
        "rss",
        "<pubDate>Sat, 31 Dec 2016 23:59:60 +0000</pubDate>",
        utc(2016, 12, 31, 23, 59, 59),
        why="feedparser reads nothing from it",
    ),
    Case(
        "leap second, W3DTF with offset",
        "rss",
        "<dc:date>2016-12-31T18:59:60-05:00</dc:date>",
        utc(2016, 12, 31, 23, 59, 59),
    ),
    # ---------------------------------------------------------------- Atom
    Case(
        "atom updated only, +05:45",
        "atom",
        "<updated>2025-03-01T10:00:00+05:45</updated>",
        None,
        updated=utc(2025, 3, 1, 4, 15),
        why="an Atom entry's updated is not its publication, but it dates the entry",
    ),
    Case(
        "atom published -12:00, updated +14:00",
        "atom",
        "<published>2025-03-01T10:00:00-12:00</published><updated>2025-03-02T10:00:00+14:00</updated>",
        utc(2025, 3, 1, 22),
        updated=utc(2025, 3, 1, 20),
    ),
    Case(
        "atom far future",
        "atom",
        "<published>2999-01-01T00:00:00Z</published><updated>2025-03-01T00:00:00Z</updated>",
        utc(2999, 1, 1),
        updated=utc(2025, 3, 1),
    ),
    Case(
        "atom 1900",
        "atom",
        "<updated>1900-01-01T00:00:00Z</updated>",
        None,
        updated=utc(1900, 1, 1),
    ),
    Case(
        "atom leap second in updated",
        "atom",
        "<updated>2016-12-31T23:59:60Z</updated>",
        None,
        updated=utc(2016, 12, 31, 23, 59, 59),
    ),
    Case("atom unparseable updated", "atom", "<updated>soon</updated>", None, updated=None),
    Case("atom without dates", "atom", "", None),
    # ---------------------------------------------------------------- JSON Feed
    Case(
        "json leap second",
        "json",
        {"date_published": "2016-12-31T23:59:60Z"},
        utc(2016, 12, 31, 23, 59, 59),
        why="RFC 3339 allows :60; datetime.fromisoformat does not",
    ),
    Case(
        "json +05:45",
        "json",
        {"date_published": "2025-03-01T10:00:00+05:45"},
        utc(2025, 3, 1, 4, 15),
    ),
    Case(
        "json far future",
        "json",
        {"date_published": "9999-12-31T23:59:59Z"},
        utc(9999, 12, 31, 23, 59, 59),
    ),
    Case("json 9999, -12:00", "json", {"date_published": "9999-12-31T23:59:59-12:00"}, None),
    Case("json year 1", "json", {"date_published": "0001-01-01T00:00:00Z"}, utc(1, 1, 1)),
    Case("json 30 February", "json", {"date_published": "2025-02-30T10:00:00Z"}, None),
    Case("json unparseable", "json", {"date_published": "last Tuesday"}, None),
    Case(
        "json modified only",
        "json",
        {"date_modified": "2025-03-01T10:00:00-12:00"},
        None,
        updated=utc(2025, 3, 1, 22),
    ),
]
BY_NAME = {c.name: c for c in CASES}
assert len(BY_NAME) == len(CASES)


def key(case: Case) -> str:
    """The case's item id (guid, Atom id after ``urn:dates:``, JSON id) and link path."""
    return f"{case.feed}-{re.sub(r'[^a-z0-9]+', '-', case.name.lower()).strip('-')}"


def url(key: str) -> str:
    """The link of the item ``key``: the stored rows are looked up by it."""
    return f"https://example.org/dates/{key}"


def rss(cases: list[Case], edits: dict[str, str] | None = None) -> bytes:
    """RSS 2.0 with one item per case; ``edits`` replaces a case's dates and description."""
    items = []
    for case in cases:
        dates = case.dates
        description = f"Dated case {case.name}."
        if edits and case.name in edits:
            dates, description = edits[case.name], f"Dated case {case.name}, edited."
        items.append(
            f"<item><title>Date case: {case.name}</title>"
            f"<link>{url(key(case))}</link>"
            f'<guid isPermaLink="false">{key(case)}</guid>{dates}'
            f"<description>{description}</description></item>"
        )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><rss version="2.0" xmlns:dc="{DC}"><channel>'
        "<title>Dates</title><link>https://example.org/</link><description>dates</description>"
        f"{''.join(items)}</channel></rss>"
    ).encode()


def atom(cases: list[Case], extra: str = "") -> bytes:
    entries = "".join(
        f"<entry><id>urn:dates:{key(c)}</id><title>Date case: {c.name}</title>"
        f'<link href="{url(key(c))}"/>{c.dates}'
        f"<summary>Dated case {c.name}.</summary></entry>"
        for c in cases
    )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><feed xmlns="{ATOM}"><title>Dates</title>'
        f"<id>urn:dates</id><updated>2025-03-01T00:00:00Z</updated>{entries}{extra}</feed>"
    ).encode()


def json_feed(cases: list[Case]) -> bytes:
    items = [
        {
            "id": key(c),
            "url": url(key(c)),
            "title": f"Date case: {c.name}",
            "content_text": f"Dated case {c.name}.",
            **(c.dates if isinstance(c.dates, dict) else {}),
        }
        for c in cases
    ]
    return json.dumps(
        {"version": "https://jsonfeed.org/version/1.1", "title": "Dates", "items": items}
    ).encode()


# ------------------------------------------------------------------ the polls


@dataclass
class Poll:
    outcome: Outcome
    started: datetime
    finished: datetime


@dataclass
class Dated:
    """The polls of the module: which poll served which case, and when."""

    polls: dict[str, Poll] = field(default_factory=dict)
    #: The published time of the fresh dated Atom entry.
    fresh: datetime | None = None
    scene: Scene | None = None

    def poll_of(self, case: Case) -> Poll:
        return self.polls[case.feed]


#: The last RSS poll: these cases come back edited (new description, maybe a new date).
EDITS = {
    "far future 9999": "<pubDate>Fri, 31 Dec 9999 23:59:59 +0000</pubDate>",
    "far future 2999": "<pubDate>Sat, 01 Mar 2025 10:00:00 +0000</pubDate>",  # clock fixed
    "year 1900": "<pubDate>Mon, 01 Jan 1900 10:00:00 +0000</pubDate>",
}
FRESH_UNDATED = "atom-fresh-undated"
FRESH_DATED = "atom-fresh-dated"


def _attack(s: Scene, body: bytes, content_type: str) -> Poll:
    s.serve_victim(body, {"Content-Type": content_type})
    started = datetime.now(UTC)
    outcome = s.attack()
    return Poll(outcome, started, datetime.now(UTC))


@pytest.fixture(scope="module")
def dated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dated]:
    tmp_path: Path = tmp_path_factory.mktemp("dates")
    out = Dated()
    with scene(tmp_path) as s:
        by_feed = {f: [c for c in CASES if c.feed == f] for f in ("rss", "atom", "json")}
        out.polls["rss"] = _attack(s, rss(by_feed["rss"]), "application/rss+xml; charset=utf-8")
        # A fresh entry dated after the far-future items were first seen, and one undated.
        # (RFC 3339 to the second: wait for the next whole second after that poll.)
        next_second = out.polls["rss"].finished.replace(microsecond=0) + timedelta(seconds=1)
        time.sleep(max(0.0, (next_second - datetime.now(UTC)).total_seconds()) + 0.01)
        fresh = out.fresh = datetime.now(UTC).replace(microsecond=0)
        extra = (
            f"<entry><id>urn:dates:{FRESH_DATED}</id><title>Fresh and dated</title>"
            f'<link href="{url(FRESH_DATED)}"/>'
            f"<published>{fresh.isoformat()}</published><summary>fresh</summary></entry>"
            f"<entry><id>urn:dates:{FRESH_UNDATED}</id><title>Fresh and undated</title>"
            f'<link href="{url(FRESH_UNDATED)}"/><summary>fresh</summary></entry>'
        )
        out.polls["atom"] = _attack(s, atom(by_feed["atom"], extra), "application/atom+xml")
        out.polls["json"] = _attack(s, json_feed(by_feed["json"]), "application/feed+json")
        out.polls["edit"] = _attack(
            s, rss(by_feed["rss"], EDITS), "application/rss+xml; charset=utf-8"
        )
        out.scene = s
        yield out


# ------------------------------------------------------------------ reading back

#: How SQLite holds a UTCDateTime: naive UTC, always with microseconds.
_SQLITE_UTC = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{6}")


def stored(value: Any, column: str) -> datetime | None:
    """A raw row's datetime column, checked to be naive-UTC text, made aware."""
    if value is None:
        return None
    assert isinstance(value, str), (column, value)
    assert _SQLITE_UTC.fullmatch(value), (column, value)
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


def aware_utc(value: datetime | None, what: str) -> None:
    if value is not None:
        assert value.tzinfo is not None, (what, value)
        assert value.utcoffset() == timedelta(0), (what, value)


def row_of(outcome: Outcome, key: str) -> dict[str, Any]:
    rows = [r for r in outcome.rows if r["url"] == url(key)]
    assert len(rows) == 1, (key, [r["entry_key"] for r in outcome.rows])
    return rows[0]


def item_of(outcome: Outcome, key: str) -> StoredItem:
    (item,) = [i for i in outcome.after["victim"] if i.url == url(key)]
    return item


def check_listing(outcome: Outcome) -> None:
    """``list_items`` is newest first by sort_at, then id, and every value is aware UTC."""
    for items in outcome.after.values():
        for item in items:
            for name in ("published", "first_seen", "sort_at"):
                aware_utc(getattr(item, name), f"{item.entry_key}.{name}")
            assert item.sort_at <= item.first_seen, item
        order = [(i.sort_at, i.id) for i in items]
        assert order == sorted(order, reverse=True), "list_items is not newest first"


def expected_sort_at(
    published: datetime | None, updated: datetime | None, first_seen: datetime
) -> datetime:
    dated = published or updated
    return min(dated, first_seen) if dated is not None else first_seen


# ------------------------------------------------------------------ the cases


@pytest.mark.parametrize("name", BY_NAME)
def test_date_is_stored_in_utc_and_sorted_sanely(
    name: str, dated: Dated, figures: Callable[..., None]
) -> None:
    case = BY_NAME[name]
    poll = dated.poll_of(case)
    outcome = poll.outcome
    outcome.check_invariants()
    figures(outcome)
    assert outcome.victim.status == "ok", outcome.victim
    row = row_of(outcome, key(case))
    item = item_of(outcome, key(case))
    published, updated = stored(row["published"], "published"), stored(row["updated"], "updated")
    first_seen, sort_at = stored(row["first_seen"], "first_seen"), stored(row["sort_at"], "sort_at")

    # What the row holds is what the app reads back, aware and in UTC.
    assert (item.published, item.first_seen, item.sort_at) == (published, first_seen, sort_at)
    check_listing(outcome)

    # The true instant, or nothing.
    if case.published is None or published is None:
        assert published == case.published, f"{case.why or name}: published {published}"
    else:
        assert abs(published - case.published) <= case.within, (name, published)
    if case.feed == "rss":
        # feedparser files dc:date under "updated"; for RSS it is the publication too.
        assert updated in (None, published), (name, updated)
    else:
        assert updated == case.updated, f"{case.why or name}: updated {updated}"

    # first_seen is the poll's time; sort_at the date clamped to it.
    assert first_seen is not None
    assert poll.started <= first_seen <= poll.finished
    assert sort_at == expected_sort_at(published, updated, first_seen), (name, sort_at)
    if name in FUTURE:
        assert sort_at == first_seen, "a far-future date must not pin the item to the top"


def test_far_future_items_do_not_stay_on_top(dated: Dated, figures: Callable[..., None]) -> None:
    """Items seen after the far-future ones list above them, dated or not; an edit
    keeps a far-future item's place, a fixed date moves it down to that date."""
    rss_poll, atom_poll, edit = dated.polls["rss"], dated.polls["atom"], dated.polls["edit"]
    figures(edit.outcome)
    future_keys = {key(BY_NAME[n]) for n in FUTURE if BY_NAME[n].feed == "rss"}

    listing = atom_poll.outcome.after["victim"]
    positions = {i.url: n for n, i in enumerate(listing)}
    fresh_dated, fresh_undated = (
        item_of(atom_poll.outcome, FRESH_DATED),
        item_of(atom_poll.outcome, FRESH_UNDATED),
    )
    assert fresh_dated.published == dated.fresh == fresh_dated.sort_at
    assert fresh_undated.sort_at == fresh_undated.first_seen
    for k in future_keys:
        future = item_of(atom_poll.outcome, k)
        assert future.sort_at == future.first_seen <= rss_poll.finished
        assert positions[url(FRESH_DATED)] < positions[url(k)], (
            "a far-future item outranks a newer one"
        )
        assert positions[url(FRESH_UNDATED)] < positions[url(k)]
    top = listing[0]
    assert top.published is None or top.published <= top.first_seen, f"pinned on top: {top}"

    # The edit poll: three items changed.
    assert edit.outcome.victim.status == "ok", edit.outcome.victim
    assert edit.outcome.victim.updated == len(EDITS), edit.outcome.victim
    before = {i.url: i for i in rss_poll.outcome.after["victim"]}
    after = {i.url: i for i in edit.outcome.after["victim"]}
    for name in EDITS:
        k = url(key(BY_NAME[name]))
        assert after[k].content_text.endswith("edited."), after[k]
        assert after[k].first_seen == before[k].first_seen, "an edit changed first_seen"
    far = url(key(BY_NAME["far future 9999"]))
    assert after[far].sort_at == before[far].first_seen, "an edit moved the far-future item up"
    fixed = url(key(BY_NAME["far future 2999"]))
    assert after[fixed].published == after[fixed].sort_at == utc(2025, 3, 1, 10)
    old = url(key(BY_NAME["year 1900"]))
    assert after[old].sort_at == before[old].sort_at == utc(1900, 1, 1, 10)
    check_listing(edit.outcome)
    assert edit.outcome.after["victim"][0].sort_at <= edit.finished


def test_ancient_dates_sort_last_and_since_still_filters(
    dated: Dated, figures: Callable[..., None]
) -> None:
    """1900 and year 1 are kept as they are, listed last, and ``since`` leaves them out."""
    outcome = dated.polls["edit"].outcome
    figures(outcome)
    listing = outcome.after["victim"]
    ancient = {url(key(BY_NAME[n])) for n in ANCIENT}
    assert {i.url for i in listing[-len(ancient) :]} == ancient, [i.sort_at for i in listing[-8:]]
    assert listing[-1].sort_at == utc(1, 1, 1), listing[-1]
    assert dated.scene is not None
    app = dated.scene.app()
    try:
        recent = app.storage.list_items(feed="victim", since=utc(2000, 1, 1))
        everything = app.storage.list_items(feed="victim")
        oldest = app.storage.list_items(feed="victim", since=utc(1, 1, 1))
    finally:
        app.close()
    assert ancient.isdisjoint(i.url for i in recent)
    assert [i.id for i in everything] == [i.id for i in listing] == [i.id for i in oldest]
    assert len(recent) == len(everything) - len(ancient)

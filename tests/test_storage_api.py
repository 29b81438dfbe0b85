"""The storage methods behind the daemon's HTTP face: ping, delivery_stats, search_items.

On SQLite and PostgreSQL (the ``storage`` fixture). Times are fixed values passed in.
``populate`` is also the data set of ``test_server.py``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from test_storage import feed_id, intent, make_item, new, sync

from feedwatch._model import (
    AlertIntent,
    DeliveryIntent,
    FeedSpec,
    Item,
    RuleSpec,
    Span,
    SubscriberSpec,
)
from feedwatch.exceptions import StorageError
from feedwatch.storage.base import StorageType
from feedwatch.storage.sql import open_storage

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)

FEEDS = [
    FeedSpec("un-news", "https://news.example.org/feed.xml", title="UN News"),
    FeedSpec("osce", "https://osce.example.org/rss"),
]
RULES = [RuleSpec("sanctions", "sanctions OR санкции"), RuleSpec("ai", "AI")]
SUBSCRIBERS = [SubscriberSpec("chat", "webhook", '{"url": "https://hooks.example.org"}')]


def populate(storage: StorageType) -> None:
    """Two feeds, five items, four alerts (two per rule) and their four deliveries.

    ===  ========  ===========================================  =========  =========
    key  feed      title                                         sort_at    alerts
    ===  ========  ===========================================  =========  =========
    k1   un-news   Sanctions on shipping                         T0 - 3h    sanctions
    k2   un-news   AI summit opens                               T0 - 2h    ai
    k3   un-news   <script>alert(1)</script> Weather & "AI"      T0 - 1h    ai
    k4   un-news   Budget talks                                  T0 - 1h    -
    o1   osce      САНКЦИИ против сети                           T0 + 30m   sanctions
    ===  ========  ===========================================  =========  =========

    un-news commits at T0, osce at T0 + 1h; k3's URL is a javascript: one.
    """
    sync(storage, FEEDS, RULES, SUBSCRIBERS)
    un = feed_id(storage, "un-news")
    items = (
        make_item(
            "k1",
            title="Sanctions on shipping",
            text="The council discussed new sanctions on shipping, 100% of_them.",
            published=T0 - 3 * HOUR,
        ),
        make_item(
            "k2",
            title="AI summit opens",
            text="Leaders meet to talk about AI safety.",
            published=T0 - 2 * HOUR,
        ),
        make_item(
            "k3",
            title='<script>alert(1)</script> Weather & "AI"',
            text="Storms <b>ahead</b>; AI forecasts help.",
            published=T0 - HOUR,
            url="javascript:alert(1)",
        ),
        make_item("k4", title="Budget talks", text="Nothing to see.", published=T0 - HOUR),
    )
    alerts = (
        AlertIntent(
            "sanctions",
            "k1",
            (span(items[0], "title", "Sanctions"), span(items[0], "content", "sanctions")),
        ),
        AlertIntent("ai", "k2", (span(items[1], "title", "AI"), span(items[1], "content", "AI"))),
        AlertIntent("ai", "k3", (span(items[2], "content", "AI"),)),
    )
    storage.commit_feed(
        intent(
            un,
            items=tuple(new(i) for i in items),
            alerts=alerts,
            deliveries=tuple(DeliveryIntent("chat", a.rule, a.entry_key) for a in alerts),
        )
    )
    osce = feed_id(storage, "osce")
    storage.commit_feed(
        intent(
            osce,
            at=T0 + HOUR,
            items=(
                new(
                    make_item(
                        "o1",
                        title="САНКЦИИ против сети",
                        text="Новые санкции объявлены.",
                        seen=T0 + HOUR,
                        published=T0 + HOUR / 2,
                    )
                ),
            ),
            alerts=(AlertIntent("sanctions", "o1", (Span("content", 6, 13),)),),  # санкции
            deliveries=(DeliveryIntent("chat", "sanctions", "o1"),),
        )
    )


def span(item: Item, field: str, word: str) -> Span:
    """The span of ``word``'s first occurrence in the item's title or content."""
    text = item.title if field == "title" else item.content_text
    start = text.index(word)
    return Span(field, start, start + len(word))


def keys(storage: StorageType, **kw: object) -> list[str]:
    args: dict[str, object] = {
        "feed": None,
        "rule": None,
        "since": None,
        "q": None,
        "limit": 100,
        **kw,
    }
    return [i.entry_key for i in storage.search_items(**args)]  # type: ignore[arg-type]


# ---------------------------------------------------------------------- ping


def test_ping_answers_on_a_working_database(storage: StorageType) -> None:
    storage.ping()  # raises if not

    storage.close()  # a disposed engine reconnects: ping still answers
    storage.ping()

    assert storage.list_feeds() == []


def test_ping_raises_storage_error_when_the_sqlite_file_cannot_be_opened(tmp_path: Path) -> None:
    broken = open_storage(f"sqlite:///{tmp_path / 'missing-dir' / 'feedwatch.db'}")

    with pytest.raises(StorageError, match="database check failed: cannot open"):
        broken.ping()


def test_ping_raises_storage_error_when_postgresql_does_not_answer() -> None:
    # Port 1 on loopback: nothing listens, the connection is refused at once.
    broken = open_storage("postgresql://feedwatch@127.0.0.1:1/none")

    with pytest.raises(StorageError, match="database check failed: cannot connect"):
        broken.ping()
    broken.close()


# ---------------------------------------------------------------------- delivery_stats


def test_delivery_stats_of_an_empty_outbox(storage: StorageType) -> None:
    assert storage.delivery_stats(T0) == (0, None)


def test_delivery_stats_counts_pending_and_ages_the_oldest(storage: StorageType) -> None:
    populate(storage)

    assert storage.delivery_stats(T0 + 3 * HOUR) == (4, 3 * 3600.0)
    # A clock behind the rows' creation time gives age 0, never a negative one.
    assert storage.delivery_stats(T0 - HOUR) == (4, 0.0)


def test_delivery_stats_ignores_sent_and_failed_deliveries(storage: StorageType) -> None:
    populate(storage)
    jobs = storage.claim_due_deliveries(T0 + HOUR, 10, 60.0, "tok")
    first_three = sorted(jobs, key=lambda j: j.id)[:3]
    for job, status in zip(first_three, ["sent", "failed", "sent"], strict=True):
        assert storage.record_delivery(
            job.id,
            "tok",
            status=status,
            now=T0 + HOUR,
            next_attempt_at=None,
            code=200,
            error="",
        )

    # Only osce's delivery (created at T0 + 1h) is left.
    assert storage.delivery_stats(T0 + 2 * HOUR) == (1, 3600.0)


def test_delivery_stats_wants_an_aware_time(storage: StorageType) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        storage.delivery_stats(datetime(2026, 1, 1))


# ---------------------------------------------------------------------- search_items


def test_search_items_newest_first_by_sort_at_then_id(storage: StorageType) -> None:
    populate(storage)

    # k3 and k4 share sort_at: the later id (k4) first.
    assert keys(storage) == ["o1", "k4", "k3", "k2", "k1"]


def test_search_items_by_feed(storage: StorageType) -> None:
    populate(storage)

    assert keys(storage, feed="osce") == ["o1"]
    assert keys(storage, feed="no-such-feed") == []


def test_search_items_by_rule_that_alerted(storage: StorageType) -> None:
    populate(storage)

    assert keys(storage, rule="sanctions") == ["o1", "k1"]
    assert keys(storage, rule="ai") == ["k3", "k2"]
    assert keys(storage, rule="no-such-rule") == []


def test_search_items_since_bounds_sort_at(storage: StorageType) -> None:
    populate(storage)

    assert keys(storage, since=T0 - HOUR) == ["o1", "k4", "k3"]
    assert keys(storage, since=T0 + HOUR) == []


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("SANCTIONS", ["k1"]),  # ASCII, other case, in the title
        ("storms", ["k3"]),  # in the content only
        ("санкции", ["o1"]),  # Cyrillic: title in capitals, content in lower case
        ("СЕТИ", ["o1"]),
        ("<script>", ["k3"]),
        ("100%", ["k1"]),  # % is literal ...
        ("%", ["k1"]),
        ("of_them", ["k1"]),  # ... and so is _
        ("o_t", []),
        ("ai", ["k3", "k2"]),
        ("", ["o1", "k4", "k3", "k2", "k1"]),  # empty: no filter
    ],
)
def test_search_items_text_is_a_case_insensitive_literal_substring(
    storage: StorageType, q: str, expected: list[str]
) -> None:
    populate(storage)

    assert keys(storage, q=q) == expected


def test_search_items_combines_filters(storage: StorageType) -> None:
    populate(storage)

    assert keys(storage, feed="un-news", rule="ai", q="storms", since=T0 - 2 * HOUR) == ["k3"]
    assert keys(storage, feed="osce", rule="ai") == []


def test_search_items_pages_with_limit_and_offset(storage: StorageType) -> None:
    populate(storage)

    pages = [keys(storage, limit=2, offset=offset) for offset in (0, 2, 4, 6)]

    assert pages == [["o1", "k4"], ["k3", "k2"], ["k1"], []]


def test_search_items_returns_whole_records(storage: StorageType) -> None:
    populate(storage)

    (item,) = storage.search_items(feed="osce", rule=None, since=None, q=None, limit=1)

    assert item.feed == "osce"
    assert item.title == "САНКЦИИ против сети"
    assert item.content_text == "Новые санкции объявлены."
    assert item.sort_at == T0 + HOUR / 2
    assert item.published == T0 + HOUR / 2
    assert item.first_seen == T0 + HOUR
    assert item.tags == ("un",)
    assert item.language == "en"
    assert item.url == "https://example.org/o1"

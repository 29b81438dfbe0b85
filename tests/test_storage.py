"""SqlStorage against the contract, on SQLite and PostgreSQL (the ``storage`` fixture).

Times are fixed values passed in, never the clock; no assertion depends on timing.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from feedwatch._model import (
    AlertIntent,
    FeedSpec,
    FeedUpdateIntent,
    Item,
    ItemChange,
    ItemIntent,
    PollStatus,
    RuleSpec,
    Span,
    SubscriberSpec,
)
from feedwatch.exceptions import ErrorKind, StorageError
from feedwatch.storage._tables import metadata
from feedwatch.storage.base import StorageType, SyncReport
from feedwatch.storage.sql import SqlStorage, open_storage
from feedwatch.types import FeedStatus

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


# ---------------------------------------------------------------------- helpers


def sync(
    storage: StorageType,
    feeds: list[FeedSpec] | None = None,
    rules: list[RuleSpec] | None = None,
    subscribers: list[SubscriberSpec] | None = None,
    now: datetime = T0,
) -> dict[str, SyncReport]:
    return storage.sync_config(feeds or [], rules or [], subscribers or [], now)


def feed_id(storage: StorageType, name: str) -> int:
    (feed,) = storage.feeds_for_poll([name])
    return feed.id


def make_item(
    key: str,
    *,
    title: str = "A title",
    text: str = "Some text",
    seen: datetime = T0,
    published: datetime | None = None,
    content_hash: str = "h1",
    url: str | None = None,
) -> Item:
    sort_at = min(published, seen) if published is not None else seen
    return Item(
        entry_key=key,
        guid=key,
        url=url or f"https://example.org/{key}",
        canonical_url=url or f"https://example.org/{key}",
        title=title,
        content_html=f"<p>{text}</p>",
        content_text=text,
        author="Someone",
        published=published,
        updated=None,
        first_seen=seen,
        sort_at=sort_at,
        tags=("un",),
        language="en",
        content_hash=content_hash,
    )


def new(item: Item) -> ItemIntent:
    return ItemIntent(item, ItemChange.NEW)


def intent(
    fid: int,
    *,
    at: datetime = T0,
    status: PollStatus = PollStatus.OK,
    items: tuple[ItemIntent, ...] = (),
    alerts: tuple[AlertIntent, ...] = (),
    token: str | None = None,
    **kwargs: object,
) -> FeedUpdateIntent:
    return FeedUpdateIntent(
        feed_id=fid,
        lease_token=token,
        polled_at=at,
        status=status,
        next_poll_at=at + HOUR,
        items=items,
        alerts=alerts,
        http_status=200 if status is PollStatus.OK else None,
        **kwargs,  # type: ignore[arg-type]
    )


def feed_status(storage: StorageType, name: str) -> FeedStatus:
    (status,) = [f for f in storage.list_feeds(include_inactive=True) if f.name == name]
    return status


# ---------------------------------------------------------------------- migrations


def test_migrate_twice_is_a_noop(storage: SqlStorage) -> None:
    sync(storage, [FeedSpec("a", "https://a.example/feed")])

    storage.migrate()
    storage.migrate()

    with storage.engine.connect() as conn:
        versions = conn.execute(sa.text("SELECT version_num FROM alembic_version")).all()
    assert [tuple(row) for row in versions] == [("0005",)]
    assert [f.name for f in storage.list_feeds()] == ["a"]


def test_models_match_migrations(storage: SqlStorage) -> None:
    """Autogenerate finds nothing to do on a migrated database: models == revisions."""
    with storage.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, metadata)

    assert diff == []


def test_newer_schema_revision_is_refused(storage: SqlStorage) -> None:
    with storage.engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))

    with pytest.raises(StorageError, match=r"revision 9999, newer than this feedwatch"):
        storage.migrate()


def test_in_memory_sqlite_works_across_threads() -> None:
    storage = open_storage("sqlite://")
    storage.migrate()
    storage.migrate()
    sync(storage, [FeedSpec("a", "https://a.example/feed")])
    seen: list[list[str]] = []

    thread = threading.Thread(target=lambda: seen.append([f.name for f in storage.list_feeds()]))
    thread.start()
    thread.join()

    assert seen == [["a"]]
    storage.close()


# ---------------------------------------------------------------------- sync_config


def test_sync_config_adds_then_is_idempotent(storage: StorageType) -> None:
    feeds = [FeedSpec("a", "https://a.example/feed", tags=("un", "ga")), FeedSpec("b", "https://b")]
    rules = [RuleSpec("climate", '"climate change"')]
    subscribers = [SubscriberSpec("desk", "email", '{"to": "desk@example.org"}')]

    first = sync(storage, feeds, rules, subscribers)
    again = sync(storage, feeds, rules, subscribers, now=T0 + HOUR)

    assert SyncReport(added=("a", "b")) == first["feeds"]
    assert SyncReport(added=("climate",)) == first["rules"]
    assert SyncReport(added=("desk",)) == first["subscribers"]
    assert {"feeds": SyncReport(), "rules": SyncReport(), "subscribers": SyncReport()} == again
    polled = storage.feeds_for_poll()
    assert [f.name for f in polled] == ["a", "b"]
    assert polled[0].tags == ("un", "ga")
    assert [f.next_poll_at for f in storage.list_feeds()] == [T0, T0]


def test_sync_config_deactivates_and_reactivates(storage: StorageType) -> None:
    sync(storage, [FeedSpec("a", "https://a"), FeedSpec("b", "https://b")], [RuleSpec("r", "x")])
    fid = feed_id(storage, "b")
    storage.commit_feed(intent(fid, items=(new(make_item("k")),)))

    gone = sync(storage, [FeedSpec("a", "https://a")], now=T0 + HOUR)
    back = sync(
        storage,
        [FeedSpec("a", "https://a"), FeedSpec("b", "https://b")],
        [RuleSpec("r", "x")],
        now=T0 + 2 * HOUR,
    )

    assert SyncReport(deactivated=("b",)) == gone["feeds"]
    assert SyncReport(deactivated=("r",)) == gone["rules"]
    assert SyncReport(reactivated=("b",)) == back["feeds"]
    assert SyncReport(reactivated=("r",)) == back["rules"]
    assert fid == feed_id(storage, "b")
    assert feed_status(storage, "b").next_poll_at == T0 + 2 * HOUR
    assert [i.entry_key for i in storage.list_items(feed="b")] == ["k"]


def test_inactive_feeds_are_listed_only_on_request(storage: StorageType) -> None:
    sync(storage, [FeedSpec("a", "https://a"), FeedSpec("b", "https://b", enabled=False)])

    assert [f.name for f in storage.feeds_for_poll()] == ["a"]
    assert storage.feeds_for_poll(["b", "unknown"]) == []
    assert [f.name for f in storage.list_feeds()] == ["a"]
    assert [(f.name, f.active) for f in storage.list_feeds(include_inactive=True)] == [
        ("a", True),
        ("b", False),
    ]


def test_sync_config_renames_by_url_and_query(storage: StorageType) -> None:
    sync(storage, [FeedSpec("old", "https://a/feed")], [RuleSpec("r-old", "climate")])
    fid = feed_id(storage, "old")
    storage.commit_feed(
        intent(fid, items=(new(make_item("k")),), alerts=(AlertIntent("r-old", "k"),))
    )

    report = sync(
        storage,
        [FeedSpec("new", "https://a/feed", title="Renamed")],
        [RuleSpec("r-new", "climate")],
        now=T0 + HOUR,
    )

    assert SyncReport(renamed=(("old", "new"),), updated=("new",)) == report["feeds"]
    assert SyncReport(renamed=(("r-old", "r-new"),)) == report["rules"]
    assert fid == feed_id(storage, "new")
    assert [f.name for f in storage.list_feeds(include_inactive=True)] == ["new"]
    assert feed_status(storage, "new").title == "Renamed"
    assert [i.feed for i in storage.list_items()] == ["new"]
    assert [(a.rule, a.feed) for a in storage.list_alerts()] == [("r-new", "new")]


def test_sync_config_adds_in_file_order_beside_renames_and_removals(
    storage: StorageType,
) -> None:
    """New names are inserted together (one statement), in configuration order, with
    a rename, a removal and a kept feed in the same sync."""
    sync(storage, [FeedSpec("old", "https://x"), FeedSpec("keep", "https://y")])
    sync(
        storage,
        [
            FeedSpec("old", "https://x"),
            FeedSpec("keep", "https://y"),
            FeedSpec("gone", "https://g"),
        ],
    )
    old_id, keep_id = feed_id(storage, "old"), feed_id(storage, "keep")

    report = sync(
        storage,
        [
            FeedSpec("z-new", "https://z", tags=("t",)),
            FeedSpec("new", "https://x"),
            FeedSpec("keep", "https://y"),
            FeedSpec("a-new", "https://a", title="A"),
        ],
        now=T0 + HOUR,
    )

    assert report["feeds"] == SyncReport(
        added=("z-new", "a-new"), renamed=(("old", "new"),), deactivated=("gone",)
    )
    assert feed_id(storage, "new") == old_id
    assert feed_id(storage, "keep") == keep_id
    assert keep_id < feed_id(storage, "z-new") < feed_id(storage, "a-new")
    polled = {f.name: f for f in storage.feeds_for_poll()}
    assert sorted(polled) == ["a-new", "keep", "new", "z-new"]
    assert polled["z-new"].tags == ("t",)
    assert feed_status(storage, "a-new").title == "A"
    assert feed_status(storage, "a-new").next_poll_at == T0 + HOUR


def test_sync_config_new_name_for_a_kept_url_is_not_a_rename(storage: StorageType) -> None:
    """Only a row leaving the configuration can be taken over."""
    sync(storage, [FeedSpec("a", "https://same")])

    report = sync(storage, [FeedSpec("a", "https://same"), FeedSpec("b", "https://same")])

    assert SyncReport(added=("b",)) == report["feeds"]


def test_sync_config_url_change_clears_validators(storage: StorageType) -> None:
    sync(storage, [FeedSpec("a", "https://old")])
    fid = feed_id(storage, "a")
    storage.commit_feed(intent(fid, etag='"v1"', last_modified="Sun, 01 Mar 2026 11:00:00 GMT"))
    assert storage.feeds_for_poll()[0].etag == '"v1"'

    report = sync(storage, [FeedSpec("a", "https://new", interval=60)], now=T0 + HOUR)

    assert SyncReport(updated=("a",)) == report["feeds"]
    (feed,) = storage.feeds_for_poll()
    assert (fid, "https://new", None, None, 60.0) == (
        feed.id,
        feed.url,
        feed.etag,
        feed.last_modified,
        feed.interval,
    )
    assert feed_status(storage, "a").next_poll_at == T0 + HOUR


def test_sync_config_updates_subscribers(storage: StorageType) -> None:
    sync(
        storage,
        subscribers=[SubscriberSpec("s", "email", "{}"), SubscriberSpec("t", "email", "{}")],
    )

    report = sync(storage, subscribers=[SubscriberSpec("s", "webhook", '{"url": "https://h"}')])

    assert SyncReport(updated=("s",), deactivated=("t",)) == report["subscribers"]


def test_sync_config_rejects_duplicate_names(storage: StorageType) -> None:
    with pytest.raises(ValueError, match="duplicate feed name 'a'"):
        sync(storage, [FeedSpec("a", "https://1"), FeedSpec("a", "https://2")])


# ---------------------------------------------------------------------- commit_feed


def test_items_another_writer_stored_first_are_not_counted_or_alerted(
    storage: StorageType,
) -> None:
    """Some of a poll's new items were stored meanwhile (another process): only the
    others are inserted and counted; every alert links the right item, once."""
    sync(storage, [FeedSpec("a", "https://a"), FeedSpec("b", "https://b")], [RuleSpec("r", "x")])
    fa, fb = feed_id(storage, "a"), feed_id(storage, "b")
    storage.commit_feed(intent(fa, items=(new(make_item("k1")),)))
    storage.commit_feed(intent(fb, items=(new(make_item("k2")),)))  # same key, other feed

    result = storage.commit_feed(
        intent(
            fa,
            items=tuple(new(make_item(k)) for k in ("k0", "k1", "k2", "k3")),
            alerts=tuple(AlertIntent("r", k) for k in ("k0", "k1", "k2", "k3")),
        )
    )

    assert (result.new_items, result.new_alerts) == (3, 4)
    alerted = sorted((a.feed, a.item_id) for a in storage.list_alerts())
    assert alerted == sorted(("a", i.id) for i in storage.list_items("a"))
    assert sorted(i.entry_key for i in storage.list_items("a")) == ["k0", "k1", "k2", "k3"]
    assert [i.entry_key for i in storage.list_items("b")] == ["k2"]


def test_commit_writes_items_and_alerts_once(storage: StorageType) -> None:
    sync(storage, [FeedSpec("a", "https://a")], [RuleSpec("r1", "x"), RuleSpec("r2", "y")])
    fid = feed_id(storage, "a")
    spans = (Span("title", 0, 1), Span("content", 2, 6))
    update = intent(
        fid,
        items=(new(make_item("k1")), new(make_item("k2"))),
        alerts=(AlertIntent("r1", "k1", spans), AlertIntent("r2", "k1"), AlertIntent("r1", "k2")),
        etag='"e"',
    )

    first = storage.commit_feed(update)
    second = storage.commit_feed(update)

    assert (
        first.written,
        first.new_items,
        first.updated_items,
        first.new_alerts,
    ) == (True, 2, 0, 3)
    assert (
        second.written,
        second.new_items,
        second.updated_items,
        second.new_alerts,
    ) == (True, 0, 0, 0)
    assert len(storage.list_items()) == 2
    alerts = storage.list_alerts(rule="r1")
    assert len(alerts) == 2
    (k1,) = [a for a in alerts if a.item_title == "A title" and a.spans]
    assert tuple((s.field, s.start, s.end) for s in k1.spans) == (
        (("title", 0, 1), ("content", 2, 6))
    )
    assert k1.item_text == "Some text"
    status = feed_status(storage, "a")
    assert (
        status.status,
        status.last_success_at,
        status.last_poll_at,
        status.next_poll_at,
        status.item_count,
    ) == ("ok", T0, T0, T0 + HOUR, 2)


def test_alerts_for_unknown_rules_or_keys_are_skipped(storage: StorageType) -> None:
    sync(storage, [FeedSpec("a", "https://a")], [RuleSpec("r", "x"), RuleSpec("off", "y")])
    sync(storage, [FeedSpec("a", "https://a")], [RuleSpec("r", "x")])  # "off" deactivated
    fid = feed_id(storage, "a")
    storage.commit_feed(intent(fid, items=(new(make_item("stored")),)))

    result = storage.commit_feed(
        intent(
            fid,
            at=T0 + HOUR,
            alerts=(
                AlertIntent("r", "stored"),  # an item stored by an earlier poll
                AlertIntent("off", "stored"),
                AlertIntent("nope", "stored"),
                AlertIntent("r", "missing"),
            ),
        )
    )

    assert result.new_alerts == 1
    assert [(a.rule, a.created_at) for a in storage.list_alerts()] == [("r", T0 + HOUR)]


def test_update_keeps_first_seen(storage: StorageType) -> None:
    sync(storage, [FeedSpec("a", "https://a")])
    fid = feed_id(storage, "a")
    storage.commit_feed(intent(fid, items=(new(make_item("k", published=T0 - HOUR)),)))
    (stored,) = storage.entries_for_update(fid, ["k"]).values()
    later = T0 + 5 * HOUR
    # The normaliser does not know first_seen: it says "now" for it.
    changed = make_item("k", title="New title", seen=later, published=T0 + HOUR, content_hash="h2")

    result = storage.commit_feed(
        intent(
            fid,
            at=later,
            items=(ItemIntent(changed, ItemChange.UPDATED, existing_id=stored.id, hash_changes=1),),
        )
    )

    assert (result.updated_items, result.new_items) == (1, 0)
    (item,) = storage.list_items()
    assert (item.title, item.first_seen, item.published) == ("New title", T0, T0 + HOUR)
    # Clamped to the stored first_seen, as for a new item: updates do not jump the queue.
    assert item.sort_at == T0
    assert (
        storage.entries_for_update(fid, ["k"])["k"].content_hash,
        storage.entries_for_update(fid, ["k"])["k"].hash_changes,
    ) == ("h2", 1)


def test_error_keeps_validators_and_items(storage: StorageType) -> None:
    sync(storage, [FeedSpec("a", "https://a")])
    fid = feed_id(storage, "a")
    storage.commit_feed(
        intent(fid, items=(new(make_item("k")),), etag='"e1"', last_modified="Sun", feed_title="F")
    )

    for hours in (1, 2):
        storage.commit_feed(
            intent(
                fid,
                at=T0 + hours * HOUR,
                status=PollStatus.ERROR,
                error_kind=ErrorKind.TIMEOUT,
                error_message="timed out after 30 s",
            )
        )

    (feed,) = storage.feeds_for_poll()
    assert (feed.etag, feed.last_modified, feed.consecutive_errors) == ('"e1"', "Sun", 2)
    status = feed_status(storage, "a")
    assert (
        status.status,
        status.last_error_kind,
        status.last_error,
    ) == ("error", "timeout", "timed out after 30 s")
    assert (
        status.last_success_at,
        status.last_poll_at,
        status.item_count,
        status.title,
    ) == (T0, T0 + 2 * HOUR, 1, "F")

    storage.commit_feed(intent(fid, at=T0 + 3 * HOUR, status=PollStatus.NOT_MODIFIED))

    (feed,) = storage.feeds_for_poll()
    status = feed_status(storage, "a")
    assert (feed.etag, feed.last_modified, feed.consecutive_errors) == ('"e1"', "Sun", 0)
    assert (
        status.last_error_kind,
        status.last_error,
        status.last_success_at,
    ) == (None, None, T0 + 3 * HOUR)


def test_ok_replaces_validators(storage: StorageType) -> None:
    sync(storage, [FeedSpec("a", "https://a")])
    fid = feed_id(storage, "a")
    storage.commit_feed(intent(fid, etag='"e1"', last_modified="Sun"))
    storage.commit_feed(intent(fid, status=PollStatus.NOT_MODIFIED, etag='"e2"'))
    assert (
        storage.feeds_for_poll()[0].etag,
        storage.feeds_for_poll()[0].last_modified,
    ) == ('"e2"', "Sun")

    storage.commit_feed(intent(fid, last_modified="Mon"))

    (feed,) = storage.feeds_for_poll()
    assert (feed.etag, feed.last_modified) == (None, "Mon")


def test_commit_with_a_stale_lease_writes_nothing(storage: StorageType) -> None:
    sync(storage, [FeedSpec("a", "https://a")], [RuleSpec("r", "x")])
    (first,) = storage.claim_due_feeds(T0, 10, 60, "worker-1")
    # worker-1 stalls past its lease; worker-2 takes the feed over.
    (second,) = storage.claim_due_feeds(T0 + HOUR, 10, 60, "worker-2")
    late = intent(
        first.id,
        token="worker-1",
        items=(new(make_item("k")),),
        alerts=(AlertIntent("r", "k"),),
        etag='"stale"',
    )

    result = storage.commit_feed(late)

    assert (
        result.written,
        result.new_items,
        result.updated_items,
        result.new_alerts,
    ) == (False, 0, 0, 0)
    assert (storage.list_items(), storage.list_alerts(), first.etag) == ([], [], None)
    assert (None, T0 + HOUR + timedelta(seconds=60)) == (
        storage.feeds_for_poll()[0].etag,
        feed_status(storage, "a").next_poll_at,
    )
    assert storage.commit_feed(replace(late, lease_token=second.lease_token)).written
    # The commit cleared the lease: the same token cannot write again.
    assert not storage.commit_feed(replace(late, lease_token="worker-2")).written


def test_commit_to_an_unknown_feed_writes_nothing(storage: StorageType) -> None:
    assert not storage.commit_feed(intent(12345, items=(new(make_item("k")),))).written


# ---------------------------------------------------------------------- claims


def test_claims_in_a_row_never_return_the_same_feed(storage: StorageType) -> None:
    feeds = [FeedSpec(f"f{n}", f"https://f{n}") for n in range(5)]
    sync(storage, [*feeds, FeedSpec("off", "https://off", enabled=False)])

    one = storage.claim_due_feeds(T0, 3, 300, "one")
    two = storage.claim_due_feeds(T0, 3, 300, "two")
    three = storage.claim_due_feeds(T0, 3, 300, "three")

    assert (len(one), len(two), len(three)) == (3, 2, 0)
    assert not {f.id for f in one} & {f.id for f in two}
    assert {"one"} == {f.lease_token for f in one}
    assert {"two"} == {f.lease_token for f in two}
    assert "off" not in {f.name for f in one + two}
    # Expired leases are claimable again.
    assert len(storage.claim_due_feeds(T0 + timedelta(seconds=300), 10, 300, "four")) == 5


def test_claim_respects_next_poll_at(storage: StorageType) -> None:
    sync(storage, [FeedSpec("a", "https://a"), FeedSpec("b", "https://b")])
    storage.commit_feed(intent(feed_id(storage, "a")))  # next poll at T0 + 1 h

    assert [f.name for f in storage.claim_due_feeds(T0, 10, 60, "w")] == ["b"]
    assert storage.claim_due_feeds(T0 + timedelta(seconds=59), 10, 60, "w") == []
    assert sorted(f.name for f in storage.claim_due_feeds(T0 + HOUR, 10, 60, "w")) == ["a", "b"]
    assert storage.claim_due_feeds(T0 + HOUR, 0, 60, "w") == []


def test_concurrent_claims_never_overlap(storage: StorageType) -> None:
    """Two threads, each with its own connection, claim in a loop until nothing is due."""
    sync(storage, [FeedSpec(f"f{n:03}", f"https://f{n}") for n in range(120)])
    start = threading.Barrier(2)
    claimed: dict[str, list[int]] = {"a": [], "b": []}
    errors: list[BaseException] = []

    def worker(token: str) -> None:
        try:
            start.wait()
            while batch := storage.claim_due_feeds(T0, 2, 600, token):
                claimed[token].extend(f.id for f in batch)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(token,)) for token in claimed]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert not set(claimed["a"]) & set(claimed["b"])
    assert 120 == len(claimed["a"]) + len(claimed["b"]) == len(set(claimed["a"] + claimed["b"]))


# ---------------------------------------------------------------------- reading


def test_entries_for_update_handles_long_key_lists(storage: StorageType) -> None:
    sync(storage, [FeedSpec("a", "https://a"), FeedSpec("b", "https://b")])
    fid = feed_id(storage, "a")
    keys = [f"k{n}" for n in range(1200)]
    storage.commit_feed(intent(fid, items=tuple(new(make_item(k)) for k in keys)))
    storage.commit_feed(intent(feed_id(storage, "b"), items=(new(make_item("other")),)))

    found = storage.entries_for_update(fid, [*keys, "missing", "other"])

    assert set(keys) == set(found)
    assert {"h1"} == {e.content_hash for e in found.values()}
    assert storage.entries_for_update(fid, []) == {}


def test_list_items_filters_and_order(storage: StorageType) -> None:
    sync(storage, [FeedSpec("a", "https://a"), FeedSpec("b", "https://b")])
    a, b = feed_id(storage, "a"), feed_id(storage, "b")
    storage.commit_feed(
        intent(
            a,
            at=T0 + 3 * HOUR,
            items=(
                new(make_item("a1", seen=T0 + 3 * HOUR, published=T0)),
                new(make_item("a2", seen=T0 + 3 * HOUR, published=T0 + 2 * HOUR)),
                new(make_item("a3", seen=T0 + 3 * HOUR, published=T0 + 2 * HOUR)),
            ),
        )
    )
    storage.commit_feed(intent(b, at=T0 + 3 * HOUR, items=(new(make_item("b1", seen=T0 + HOUR)),)))

    assert [i.entry_key for i in storage.list_items()] == ["a3", "a2", "b1", "a1"]
    assert [i.entry_key for i in storage.list_items(feed="a")] == ["a3", "a2", "a1"]
    assert [i.entry_key for i in storage.list_items(since=T0 + HOUR)] == ["a3", "a2", "b1"]
    assert [i.entry_key for i in storage.list_items(limit=2)] == ["a3", "a2"]
    assert [i.entry_key for i in storage.list_items(feed="b", since=T0, limit=5)] == ["b1"]
    assert storage.list_items(feed="nope") == []
    item = storage.list_items(feed="b")[0]
    assert (
        item.feed,
        item.url,
        item.author,
        item.tags,
        item.language,
    ) == ("b", "https://example.org/b1", "Someone", ("un",), "en")


def test_list_alerts_filters_and_order(storage: StorageType) -> None:
    sync(storage, [FeedSpec("a", "https://a")], [RuleSpec("r1", "x"), RuleSpec("r2", "y")])
    fid = feed_id(storage, "a")
    storage.commit_feed(
        intent(fid, items=(new(make_item("k1")),), alerts=(AlertIntent("r1", "k1"),))
    )
    storage.commit_feed(
        intent(
            fid,
            at=T0 + HOUR,
            items=(new(make_item("k2", title="Second", seen=T0 + HOUR)),),
            alerts=(AlertIntent("r1", "k2"), AlertIntent("r2", "k2")),
        )
    )

    listed = [(a.rule, a.item_title, a.created_at) for a in storage.list_alerts()]
    assert {("r1", "Second", T0 + HOUR), ("r2", "Second", T0 + HOUR)} == set(listed[:2])
    assert listed[2] == ("r1", "A title", T0)
    assert [a.item_title for a in storage.list_alerts(rule="r1")] == ["Second", "A title"]
    assert len(storage.list_alerts(since=T0 + HOUR)) == 2
    assert len(storage.list_alerts(limit=1)) == 1
    assert storage.list_alerts(rule="nope") == []
    alert = storage.list_alerts(rule="r1", limit=1)[0]
    assert (alert.feed, alert.item_url) == ("a", "https://example.org/k2")


# ---------------------------------------------------------------------- rules and backtests


def test_rule_stats_counts_alerts_per_rule(storage: StorageType) -> None:
    rules = [RuleSpec("busy", "x"), RuleSpec("once", "y"), RuleSpec("never", "z")]
    sync(storage, [FeedSpec("a", "https://a")], rules)
    fid = feed_id(storage, "a")
    old, recent = T0 - timedelta(days=10), T0 - HOUR
    storage.commit_feed(
        intent(
            fid,
            at=old,
            items=(new(make_item("k1", seen=old)), new(make_item("k2", seen=old))),
            alerts=(
                AlertIntent("busy", "k1"),
                AlertIntent("busy", "k2"),
                AlertIntent("once", "k1"),
            ),
        )
    )
    storage.commit_feed(
        intent(
            fid,
            at=recent,
            items=(new(make_item("k3", seen=recent)),),
            alerts=(AlertIntent("busy", "k3"),),
        )
    )
    sync(storage, [FeedSpec("a", "https://a")], rules[:2])  # "never" leaves the config

    stats = {s.name: s for s in storage.rule_stats(T0 - timedelta(days=7))}

    assert [s.name for s in storage.rule_stats(T0)] == ["busy", "never", "once"]
    assert {n: (s.alerts, s.alerts_7d, s.last_alert_at, s.active) for n, s in stats.items()} == {
        "busy": (3, 1, recent, True),
        "once": (1, 0, old, True),
        "never": (0, 0, None, False),
    }
    assert stats["busy"].query == "x"
    assert stats["busy"].last_alert_at.tzinfo is not None  # type: ignore[union-attr]
    # The window is the caller's: everything is recent if it says so.
    assert {s.name: s.alerts_7d for s in storage.rule_stats(old)}["busy"] == 3
    # No alert is newer than an hour after the last one.
    assert [s.name for s in storage.rule_stats(T0 + HOUR) if s.alerts_7d] == []


def test_iter_items_for_matching_streams_every_item_once_in_batches(storage: SqlStorage) -> None:
    sync(
        storage,
        [FeedSpec("a", "https://a", tags=("un", "en")), FeedSpec("b", "https://b")],
    )
    a, b = feed_id(storage, "a"), feed_id(storage, "b")
    # Seven items; three share a sort_at, so batches must break ties by id.
    same = T0 + 2 * HOUR
    storage.commit_feed(
        intent(
            a,
            at=T0 + 5 * HOUR,
            items=tuple(
                new(make_item(key, seen=T0 + 5 * HOUR, published=when))
                for key, when in [("a1", T0), ("a2", same), ("a3", same), ("a4", T0 + 4 * HOUR)]
            ),
        )
    )
    russian = replace(
        make_item("b1", title="Совет", text="Санкции", seen=T0 + 3 * HOUR),
        author=None,
        tags=("security",),
        language="ru",
    )
    storage.commit_feed(
        intent(
            b,
            at=T0 + 5 * HOUR,
            items=(
                new(russian),
                new(make_item("b2", seen=T0 + 5 * HOUR, published=same)),
                new(make_item("b3", seen=T0 + 5 * HOUR, published=T0 - HOUR)),
            ),
        )
    )
    expected = [i.id for i in storage.list_items()]  # newest first, ties by id

    batches = []
    for batch in storage.iter_items_for_matching(batch_size=2):
        # The caller holds a batch with no connection (so no transaction) open.
        assert storage.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
        batches.append(batch)

    assert [len(batch) for batch in batches] == [2, 2, 2, 1]
    assert [item.id for batch in batches for item in batch] == expected
    by_title = {item.title: item for batch in batches for item in batch}
    ru = by_title["Совет"]
    assert (ru.feed, ru.content_text, ru.author, ru.tags, ru.feed_tags, ru.language) == (
        "b",
        "Санкции",
        None,
        ("security",),
        (),
        "ru",
    )
    first = batches[0][0]
    assert (first.feed, first.url, first.author, first.tags, first.feed_tags) == (
        "a",
        "https://example.org/a4",
        "Someone",
        ("un",),
        ("un", "en"),
    )
    assert first.sort_at == T0 + 4 * HOUR
    assert first.sort_at.tzinfo is not None

    # since bounds sort_at; an exact multiple of the batch size ends cleanly.
    recent = [i.id for batch in storage.iter_items_for_matching(same, 2) for i in batch]
    assert recent == [i.id for i in storage.list_items(since=same)]
    assert [len(b) for b in storage.iter_items_for_matching(same, 5)] == [5]
    assert [len(b) for b in storage.iter_items_for_matching(same, 500)] == [5]
    whole = [len(b) for b in storage.iter_items_for_matching(None, 1)]
    assert whole == [1] * 7
    assert list(storage.iter_items_for_matching(T0 + 6 * HOUR)) == []


def test_iter_items_for_matching_on_an_empty_database_and_bad_arguments(
    storage: StorageType,
) -> None:
    assert list(storage.iter_items_for_matching()) == []
    with pytest.raises(ValueError, match="batch_size"):
        storage.iter_items_for_matching(batch_size=0)  # raised on the call, not later
    with pytest.raises(ValueError, match="timezone-aware"):
        storage.iter_items_for_matching(datetime(2026, 1, 1))


def test_iter_items_for_matching_pages_through_many_items(storage: StorageType) -> None:
    sync(storage, [FeedSpec("a", "https://a")])
    fid = feed_id(storage, "a")
    count = 1234
    storage.commit_feed(
        intent(
            fid,
            items=tuple(
                new(make_item(f"k{n:04d}", published=T0 - timedelta(minutes=n % 100)))
                for n in range(count)
            ),
        )
    )

    sizes = []
    seen: set[int] = set()
    for batch in storage.iter_items_for_matching(batch_size=500):
        sizes.append(len(batch))
        seen.update(item.id for item in batch)

    assert sizes == [500, 500, 234]
    assert len(seen) == count


# ---------------------------------------------------------------------- values


def test_datetimes_come_back_aware_utc(storage: StorageType) -> None:
    moscow = timezone(timedelta(hours=3))
    at = datetime(2026, 3, 1, 15, 30, 0, 123456, tzinfo=moscow)
    sync(storage, [FeedSpec("a", "https://a")], [RuleSpec("r", "x")], now=at)
    fid = feed_id(storage, "a")
    storage.commit_feed(
        intent(
            fid,
            at=at,
            items=(new(make_item("k", seen=at, published=at - HOUR)),),
            alerts=(AlertIntent("r", "k"),),
        )
    )

    status = feed_status(storage, "a")
    (item,) = storage.list_items()
    (alert,) = storage.list_alerts()
    values = [
        status.last_poll_at,
        status.next_poll_at,
        status.last_success_at,
        item.first_seen,
        item.sort_at,
        item.published,
        alert.created_at,
    ]
    assert all(v is not None and v.tzinfo is UTC for v in values), values
    assert at == status.last_poll_at == item.first_seen == alert.created_at
    assert datetime(2026, 3, 1, 11, 30, 0, 123456, tzinfo=UTC) == item.published


def test_naive_datetimes_are_rejected(storage: StorageType) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        sync(storage, [FeedSpec("a", "https://a")], now=datetime(2026, 3, 1))
    sync(storage, [FeedSpec("a", "https://a")])
    naive = replace(make_item("k"), published=datetime(2026, 1, 1))

    with pytest.raises(ValueError, match="naive datetime"):
        storage.commit_feed(intent(feed_id(storage, "a"), items=(new(naive),)))

    assert storage.list_items() == []


def test_text_round_trips(storage: StorageType) -> None:
    texts = {
        "ru": "Совет Безопасности ООН принял резолюцию «о климате»",
        "emoji": 'Alerts 🚨🌍 — with ‘quotes’ and "double" ones',
        "ar": "مجلس الأمن يعتمد قرارا",
        "zh": "联合国安理会通过决议",
        "controls": "tab\there\nnew line \\ back'slash %s %(x)s ?",
    }
    sync(
        storage,
        [FeedSpec("Лента 📰", "https://пример.рф/лента", title="Заголовок")],
        [RuleSpec("правило", "климат")],
    )
    fid = feed_id(storage, "Лента 📰")
    items = tuple(
        new(make_item(f"ключ-{lang}", title=text, text=text * 3, url=f"https://пример.рф/{lang}"))
        for lang, text in texts.items()
    )
    storage.commit_feed(
        intent(
            fid,
            items=items,
            alerts=(AlertIntent("правило", "ключ-ru", (Span("title", 0, 5),)),),
            etag='W/"ёж🦔"',
            feed_title="Лента новостей 🗞",
        )
    )

    stored = {i.entry_key: i for i in storage.list_items()}
    for lang, text in texts.items():
        item = stored[f"ключ-{lang}"]
        assert (text, text * 3, f"https://пример.рф/{lang}") == (
            item.title,
            item.content_text,
            item.url,
        )
    (alert,) = storage.list_alerts(rule="правило")
    assert ("Лента 📰", texts["ru"]) == (alert.feed, alert.item_title)
    (feed,) = storage.feeds_for_poll(["Лента 📰"])
    assert (feed.etag, feed.url) == ('W/"ёж🦔"', "https://пример.рф/лента")
    assert feed_status(storage, "Лента 📰").title == "Заголовок"


# ---------------------------------------------------------------------- SQLite specifics


def test_sqlite_pragmas_are_in_effect(sqlite_url: str) -> None:
    storage = open_storage(sqlite_url)
    storage.migrate()

    with storage.engine.connect() as conn:
        pragmas = {
            name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
            for name in (
                "journal_mode",
                "busy_timeout",
                "foreign_keys",
                "synchronous",
                "wal_autocheckpoint",
                "journal_size_limit",
            )
        }

    assert pragmas == {
        "journal_mode": "wal",
        "busy_timeout": 10000,
        "foreign_keys": 1,
        "synchronous": 1,
        "wal_autocheckpoint": 16384,
        "journal_size_limit": 64 * 1024 * 1024,
    }
    storage.close()


def test_sqlite_writer_waits_for_the_write_lock_then_says_locked(sqlite_url: str) -> None:
    """Writers BEGIN IMMEDIATE: a held write lock makes them fail up front; readers go on."""
    storage = open_storage(sqlite_url, busy_timeout=0.05)
    storage.migrate()
    sync(storage, [FeedSpec("a", "https://a")])
    other = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StorageError, match="database is locked") as caught:
            storage.claim_due_feeds(T0, 10, 60, "w")
        assert [f.name for f in storage.list_feeds()] == ["a"]
    finally:
        other.execute("ROLLBACK")
        other.close()

    assert isinstance(caught.value.__cause__, sa.exc.OperationalError)
    assert len(storage.claim_due_feeds(T0, 10, 60, "w")) == 1
    storage.close()


def test_open_storage_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    relative = open_storage("sqlite:///relative.db")
    relative.migrate()
    relative.close()

    assert (tmp_path / "relative.db").exists()
    for url in ("postgres://u@h/db", "postgresql://u@h/db", "postgresql+psycopg://u@h/db"):
        assert open_storage(url).engine.url.drivername == "postgresql+psycopg"
    with pytest.raises(StorageError, match="unsupported database URL scheme 'mysql'"):
        open_storage("mysql://u@h/db")
    with pytest.raises(StorageError, match="invalid database URL"):
        open_storage("not a url")


def test_unreachable_postgres_is_a_clear_error() -> None:
    storage = open_storage("postgresql://postgres:secret@127.0.0.1:1/test")

    with pytest.raises(
        StorageError, match=r"cannot connect to PostgreSQL at 127\.0\.0\.1:1/test"
    ) as caught:
        storage.migrate()

    assert "secret" not in str(caught.value)
    storage.close()


def test_schema_head_is_alembics_head() -> None:
    """SCHEMA_HEAD (which lets a database at head skip Alembic) names the newest revision."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from feedwatch.storage.sql import MIGRATIONS_DIR, SCHEMA_HEAD

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    assert ScriptDirectory.from_config(config).get_current_head() == SCHEMA_HEAD


# ---------------------------------------------------------------------- batched commits


def test_commit_feeds_writes_each_poll_fenced_on_its_own_lease(storage: SqlStorage) -> None:
    sync(storage, [FeedSpec("a", "https://a.example/feed"), FeedSpec("b", "https://b.example/f")])
    claimed = {f.name: f for f in storage.claim_due_feeds(T0, 10, 60, "me")}
    results = storage.commit_feeds(
        [
            intent(claimed["a"].id, token="me", items=(new(make_item("a1")), new(make_item("a2")))),
            # b's lease is someone else's: nothing of b is written.
            intent(claimed["b"].id, token="not-me", items=(new(make_item("b1")),)),
        ]
    )
    assert [(r.written, r.new_items) for r in results] == [(True, 2), (False, 0)]
    assert sorted(i.entry_key for i in storage.list_items()) == ["a1", "a2"]
    stored = storage.entries_for_feeds(
        {claimed["a"].id: ["a1", "a2", "zz"], claimed["b"].id: ["b1"]}
    )
    assert set(stored) == {claimed["a"].id}
    assert sorted(stored[claimed["a"].id]) == ["a1", "a2"]


def test_sqlite_fast_insert_stores_what_sqlalchemy_would(tmp_path: Path) -> None:
    """The SQLite item insert bypasses SQLAlchemy; its values must read back the
    same, and be stored as the same text (dates sort as text in SQLite)."""
    storage = open_storage(f"sqlite:///{tmp_path / 'fast.db'}")
    try:
        storage.migrate()
        sync(storage, [FeedSpec("a", "https://a.example/feed")])
        fid = feed_id(storage, "a")
        odd = datetime(1900, 1, 1, 0, 0, 0, tzinfo=timezone(timedelta(hours=3)))
        item = replace(
            make_item("k1", published=odd),
            tags=("ООН", "un"),
            updated=T0 + timedelta(microseconds=7),
        )
        storage.commit_feed(intent(fid, items=(new(item),)))
        (stored,) = storage.list_items()
        assert stored.published == odd.astimezone(UTC)
        assert stored.tags == ("ООН", "un")
        (entry,) = storage.entries_for_update(fid, ["k1"]).values()
        assert entry.updated == T0 + timedelta(microseconds=7)
        # The same row written by SQLAlchemy, under another key.
        with storage.engine.connect() as conn:
            (row,) = conn.execute(sa.select(metadata.tables["items"])).mappings()
        by_sqlalchemy = dict(row) | {"id": None, "entry_key": "k2"}
        with storage.engine.begin() as conn:
            conn.execute(metadata.tables["items"].insert(), by_sqlalchemy)
        with sqlite3.connect(tmp_path / "fast.db") as raw:
            fast, slow = raw.execute(
                "SELECT published, updated, first_seen, last_changed_at, sort_at, tags "
                "FROM items ORDER BY entry_key"
            ).fetchall()
        assert fast == slow
        assert fast[0] == "1899-12-31 21:00:00.000000"
    finally:
        storage.close()


@pytest.mark.parametrize(
    "extra",
    [
        {
            "status": PollStatus.OK,
            "etag": '"v1"',
            "last_modified": "Mon, 02 Jan 2006 15:04:05 GMT",
            "feed_title": "Заголовок",
            "ttl_minutes": 30,
        },
        {"status": PollStatus.NOT_MODIFIED, "etag": '"v2"'},
        {"status": PollStatus.NOT_MODIFIED, "moved_to": "https://moved.example/feed"},
        {"status": PollStatus.OK, "disable_reason": "gone (410)"},
        {
            "status": PollStatus.RATE_LIMITED,
            "error_kind": ErrorKind.HTTP_STATUS,
            "error_message": "429",
        },
    ],
)
def test_sqlite_fast_feed_update_stores_what_sqlalchemy_would(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: dict[str, object]
) -> None:
    """The SQLite feed-row update bypasses SQLAlchemy: the row must be the same text,
    and the lease fence must hold the same way."""
    import feedwatch.storage.sql as sql_module

    storage = open_storage(f"sqlite:///{tmp_path / 'fast.db'}")
    try:
        storage.migrate()
        sync(
            storage, [FeedSpec("a", "https://a.example/feed"), FeedSpec("b", "https://b.example/f")]
        )
        odd = datetime(2026, 3, 1, 12, 0, 0, 5, tzinfo=timezone(timedelta(hours=-5)))
        claimed = {f.name: f for f in storage.claim_due_feeds(T0, 10, 60, "me")}
        # A lost lease writes nothing, on either path.
        for name in ("a", "b"):
            (lost,) = storage.commit_feeds(
                [intent(claimed[name].id, at=odd, token="other", **extra)]
            )
            assert not lost.written
            if name == "a":  # b goes through SQLAlchemy
                monkeypatch.setattr(sql_module, "ClauseElement", object)
        monkeypatch.undo()
        assert storage.commit_feeds([intent(claimed["a"].id, at=odd, token="me", **extra)])[
            0
        ].written
        monkeypatch.setattr(sql_module, "ClauseElement", object)
        assert storage.commit_feeds([intent(claimed["b"].id, at=odd, token="me", **extra)])[
            0
        ].written
        with sqlite3.connect(tmp_path / "fast.db") as raw:
            raw.row_factory = sqlite3.Row
            fast, slow = (
                {k: row[k] for k in row.keys() if k not in ("id", "name", "url")}  # noqa: SIM118
                for row in raw.execute("SELECT * FROM feeds ORDER BY name")
            )
        assert fast == slow
        assert fast["last_poll_at"] == "2026-03-01 17:00:00.000005"
    finally:
        storage.close()

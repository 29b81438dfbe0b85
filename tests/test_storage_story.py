"""At most one alert per (rule, story), on SQLite and PostgreSQL.

A story is the items carrying one canonical URL, in one feed or several: the
first item of a story that a rule matches raises the alert, later ones are
stored without one (and so without deliveries). An item without a link is its
own story. The database enforces it (a unique index on (rule, story key)), so
concurrent commits on PostgreSQL cannot both alert; migration 0005 backfills
existing databases. Times are fixed values; nothing is timed (the waits below
only poll for a state, under a watchdog far beyond it).
"""

from __future__ import annotations

import base64
import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from test_storage import HOUR, T0, feed_id, intent, make_item, new, sync

from feedwatch._model import (
    AlertIntent,
    CommitResult,
    DeliveryIntent,
    FeedSpec,
    Item,
    ItemChange,
    ItemIntent,
    RuleSpec,
    SubscriberSpec,
)
from feedwatch.storage._tables import ALERTS, ITEMS
from feedwatch.storage.sql import SqlStorage, alembic_config, open_storage

STORY = "https://news.example.org/story?id=7"
RULES = [RuleSpec("r", "x"), RuleSpec("s", "y")]
SUBSCRIBERS = [SubscriberSpec("desk", "webhook", "{}")]
#: Well past any wait below; only a real hang (a lost wake-up) gets there.
WATCHDOG_S = 60.0


def sha(url: str) -> str:
    return hashlib.sha256(url.encode("utf-8")).hexdigest()


def story_item(key: str, url: str | None = STORY, **kw: Any) -> Item:
    """An item whose canonical URL is ``url`` (its raw link differs, as feeds' do)."""
    item = make_item(key, **kw)
    raw = None if url is None else url.replace("https://news", "HTTPS://News") + "#top"
    return replace(item, url=raw, canonical_url=url)


def alerted(storage: SqlStorage, **where: Any) -> list[tuple[str, str, str]]:
    """(rule, feed, entry key) of the stored alerts, sorted."""
    keys = {i.id: i.entry_key for i in storage.list_items(limit=None)}
    return sorted((a.rule, a.feed, keys[a.item_id]) for a in storage.list_alerts(**where))


def story_keys(storage: SqlStorage) -> dict[int, str | None]:
    with storage.engine.connect() as conn:
        return dict(conn.execute(sa.select(ALERTS.c.id, ALERTS.c.story_key)).all())


def alert_with_delivery(rule: str, key: str) -> dict[str, Any]:
    return {
        "alerts": (AlertIntent(rule, key),),
        "deliveries": (DeliveryIntent("desk", rule, key),),
    }


@pytest.fixture
def two_feeds(storage: SqlStorage) -> tuple[int, int]:
    sync(storage, [FeedSpec("a", "https://a"), FeedSpec("b", "https://b")], RULES, SUBSCRIBERS)
    return feed_id(storage, "a"), feed_id(storage, "b")


# ---------------------------------------------------------------------- commits


def test_a_story_alerts_each_rule_once_across_items_and_feeds(
    storage: SqlStorage, two_feeds: tuple[int, int]
) -> None:
    fa, fb = two_feeds
    first = storage.commit_feed(
        intent(fa, items=(new(story_item("a1")),), **alert_with_delivery("r", "a1"))
    )
    # The same story re-issued under a new guid, then carried by another feed.
    reissued = storage.commit_feed(
        intent(fa, at=T0 + HOUR, items=(new(story_item("a2")),), **alert_with_delivery("r", "a2"))
    )
    syndicated = storage.commit_feed(
        intent(
            fb,
            at=T0 + 2 * HOUR,
            items=(new(story_item("b1")),),
            alerts=(AlertIntent("r", "b1"), AlertIntent("s", "b1")),
            deliveries=(DeliveryIntent("desk", "r", "b1"), DeliveryIntent("desk", "s", "b1")),
        )
    )

    assert (first.new_items, first.new_alerts, first.new_deliveries) == (1, 1, 1)
    assert (reissued.new_items, reissued.new_alerts, reissued.new_deliveries) == (1, 0, 0)
    # b1 is stored; rule r has alerted this story, rule s has not yet.
    assert (syndicated.new_items, syndicated.new_alerts, syndicated.new_deliveries) == (1, 1, 1)
    assert alerted(storage) == [("r", "a", "a1"), ("s", "b", "b1")]
    assert sorted(d.rules for d in storage.list_deliveries()) == [("r",), ("s",)]
    assert list(story_keys(storage).values()) == [sha(STORY), sha(STORY)]
    assert [i.entry_key for i in storage.list_items("b")] == ["b1"]


def test_within_one_commit_the_first_item_of_a_story_alerts(
    storage: SqlStorage, two_feeds: tuple[int, int]
) -> None:
    """A document repeating a story (same link, edited text) as a second item."""
    fa, _ = two_feeds
    items = (
        new(story_item("a1", title="Story")),
        new(story_item("a2", title="Story, corrected")),
        new(story_item("other", url="https://news.example.org/other")),
    )
    keys = ("a1", "a2", "other")

    result = storage.commit_feed(
        intent(
            fa,
            items=items,
            alerts=tuple(AlertIntent("r", k) for k in keys),
            deliveries=tuple(DeliveryIntent("desk", "r", k) for k in keys),
        )
    )

    assert (result.new_items, result.new_alerts, result.new_deliveries) == (3, 2, 2)
    assert alerted(storage) == [("r", "a", "a1"), ("r", "a", "other")]
    assert {a.item_title for a in storage.list_alerts()} == {"Story", "A title"}


def test_items_without_a_link_are_each_their_own_story(
    storage: SqlStorage, two_feeds: tuple[int, int]
) -> None:
    fa, fb = two_feeds
    storage.commit_feed(
        intent(
            fa,
            items=(new(story_item("a1", url=None)), new(story_item("a2", url=None))),
            alerts=(AlertIntent("r", "a1"), AlertIntent("r", "a2")),
        )
    )
    again = storage.commit_feed(
        intent(fa, at=T0 + HOUR, alerts=(AlertIntent("r", "a1"), AlertIntent("r", "a2")))
    )
    other = storage.commit_feed(
        intent(fb, items=(new(story_item("b1", url=None)),), alerts=(AlertIntent("r", "b1"),))
    )

    assert (again.new_alerts, other.new_alerts) == (0, 1)
    assert alerted(storage) == [("r", "a", "a1"), ("r", "a", "a2"), ("r", "b", "b1")]
    assert set(story_keys(storage).values()) == {None}


def test_an_updated_item_whose_story_already_alerted_raises_nothing(
    storage: SqlStorage, two_feeds: tuple[int, int]
) -> None:
    """b1 did not match at first; edited, it matches a rule that a's item of the same
    story already alerted: no second alert (nor for a later edit of a1 itself)."""
    fa, fb = two_feeds
    storage.commit_feed(
        intent(fa, items=(new(story_item("a1")),), alerts=(AlertIntent("r", "a1"),))
    )
    storage.commit_feed(intent(fb, items=(new(story_item("b1")),)))
    edited = ItemIntent(story_item("b1", text="Now with x", content_hash="h2"), ItemChange.UPDATED)

    result = storage.commit_feed(
        intent(fb, at=T0 + HOUR, items=(edited,), **alert_with_delivery("r", "b1"))
    )

    assert (result.updated_items, result.new_alerts, result.new_deliveries) == (1, 0, 0)
    assert alerted(storage) == [("r", "a", "a1")]


def test_a_link_longer_than_an_index_entry_is_stored_and_deduplicated(
    storage: SqlStorage, two_feeds: tuple[int, int]
) -> None:
    """PostgreSQL refuses a btree entry above about 2.7 kB: the story key is a hash,
    and items.canonical_url is not indexed, so a 20 kB link commits."""
    fa, fb = two_feeds
    noise = base64.urlsafe_b64encode(hashlib.shake_256(b"long").digest(15_000)).decode()
    long_url = f"https://news.example.org/{noise}"

    first = storage.commit_feed(
        intent(fa, items=(new(story_item("a1", url=long_url)),), alerts=(AlertIntent("r", "a1"),))
    )
    second = storage.commit_feed(
        intent(fb, items=(new(story_item("b1", url=long_url)),), alerts=(AlertIntent("r", "b1"),))
    )

    assert (first.new_items, first.new_alerts) == (1, 1)
    assert (second.new_items, second.new_alerts) == (1, 0)
    assert [a.item_url for a in storage.list_alerts()] == [story_item("x", url=long_url).url]


# ---------------------------------------------------------------------- concurrency


def test_storages_racing_on_one_story_alert_once(db_url: str) -> None:
    """Two daemons (two engines) commit the same story from two feeds at once, round
    after round: exactly one alert and one delivery per round, and no error."""
    daemons = (open_storage(db_url), open_storage(db_url))
    try:
        daemons[0].migrate()
        sync(
            daemons[0], [FeedSpec("a", "https://a"), FeedSpec("b", "https://b")], RULES, SUBSCRIBERS
        )
        feeds = (feed_id(daemons[0], "a"), feed_id(daemons[0], "b"))
        rounds = 8
        for n in range(rounds):
            results, errors = race(daemons, feeds, n)
            assert not errors, (n, errors)
            assert sorted((r.new_items, r.new_alerts, r.new_deliveries) for r in results) == [
                (1, 0, 0),
                (1, 1, 1),
            ], n
        assert len(daemons[0].list_alerts()) == rounds
        assert len(daemons[0].list_deliveries()) == rounds
    finally:
        for daemon in daemons:
            daemon.close()


def race(
    daemons: tuple[SqlStorage, SqlStorage], feeds: tuple[int, int], n: int
) -> tuple[list[CommitResult], list[BaseException]]:
    """Round ``n``: each daemon commits, released together, a new item of story ``n``
    in its own feed, with the alert and its delivery."""
    url = f"https://news.example.org/race/{n}"
    barrier = threading.Barrier(2)
    results: list[CommitResult] = []
    errors: list[BaseException] = []

    def commit(i: int) -> None:
        key = f"{n}-{i}"
        update = intent(
            feeds[i],
            at=T0 + n * HOUR,
            items=(new(story_item(key, url=url)),),
            **alert_with_delivery("r", key),
        )
        barrier.wait(WATCHDOG_S)
        try:
            results.append(daemons[i].commit_feed(update))
        except BaseException as exc:  # the test reports it, with the round
            errors.append(exc)

    threads = [threading.Thread(target=commit, args=(i,)) for i in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WATCHDOG_S)
    return results, errors


@pytest.mark.postgres
@pytest.mark.parametrize("other", ["commits", "rolls back"])
def test_a_commit_waiting_on_a_concurrent_alert_of_its_story(pg_url: str, other: str) -> None:
    """Another daemon's transaction holds an uncommitted alert of the story: our
    commit waits for it on the unique index, then, if it committed, skips its alert
    (no error, no delivery); if it rolled back, alerts."""
    storage = open_storage(pg_url)
    try:
        storage.migrate()
        sync(storage, [FeedSpec("a", "https://a"), FeedSpec("b", "https://b")], RULES, SUBSCRIBERS)
        fa, fb = feed_id(storage, "a"), feed_id(storage, "b")
        storage.commit_feed(intent(fb, items=(new(story_item("b1")),)))
        with storage.engine.connect() as conn:
            rule_id = conn.scalar(sa.text("SELECT id FROM rules WHERE name = 'r'"))
            item_id = conn.scalar(sa.select(ITEMS.c.id).where(ITEMS.c.entry_key == "b1"))
        results: list[CommitResult] = []
        errors: list[BaseException] = []

        def ours() -> None:
            update = intent(fa, items=(new(story_item("a1")),), **alert_with_delivery("r", "a1"))
            try:
                results.append(storage.commit_feed(update))
            except BaseException as exc:
                errors.append(exc)

        with storage.engine.connect() as theirs:
            transaction = theirs.begin()
            their_pid = theirs.scalar(sa.text("SELECT pg_backend_pid()"))
            theirs.execute(
                ALERTS.insert().values(
                    rule_id=rule_id, item_id=item_id, story_key=sha(STORY), created_at=T0, spans=[]
                )
            )
            thread = threading.Thread(target=ours)
            thread.start()
            wait_for(lambda: blocked_by(storage, their_pid), "our commit to wait for theirs")
            assert thread.is_alive()
            assert not results
            if other == "commits":
                transaction.commit()
            else:
                transaction.rollback()
            thread.join(WATCHDOG_S)

        assert not errors, errors
        (result,) = results
        if other == "commits":
            assert (result.new_items, result.new_alerts, result.new_deliveries) == (1, 0, 0)
            assert alerted(storage) == [("r", "b", "b1")]
            assert storage.list_deliveries() == []
        else:
            assert (result.new_items, result.new_alerts, result.new_deliveries) == (1, 1, 1)
            assert alerted(storage) == [("r", "a", "a1")]
            assert len(storage.list_deliveries()) == 1
    finally:
        storage.close()


def blocked_by(storage: SqlStorage, pid: int) -> bool:
    """Whether some backend waits on a lock that backend ``pid`` holds."""
    with storage.engine.connect() as conn:
        query = sa.text(
            "SELECT count(*) FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid))"
        )
        return bool(conn.scalar(query, {"pid": pid}))


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WATCHDOG_S
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"waited {WATCHDOG_S:g} s for {what}")
        time.sleep(0.01)


# ---------------------------------------------------------------------- migration


@pytest.fixture
def at_0004(db_url: str) -> Iterator[SqlStorage]:
    """A database migrated to revision 0004 only (before story keys)."""
    storage = open_storage(db_url)
    with storage.engine.begin() as conn:
        command.upgrade(alembic_config(conn), "0004")
    yield storage
    storage.close()


def test_migration_backfills_story_keys_without_breaking_on_duplicates(
    at_0004: SqlStorage,
) -> None:
    """Alerts raised before 0005 hold duplicates per (rule, canonical URL): only the
    earliest of each (by time, then id) gets the story key, the others keep NULL,
    and every alert (and what points at it) is kept."""
    storage = at_0004
    other = "https://news.example.org/other"
    sync(storage, [FeedSpec("a", "https://a"), FeedSpec("b", "https://b")], RULES, SUBSCRIBERS)
    fa, fb = feed_id(storage, "a"), feed_id(storage, "b")
    a_items = [story_item("a1"), story_item("a2", url=other)]
    a_items += [story_item("a3", url=None), story_item("a4", url=None)]
    storage.commit_feed(intent(fa, items=tuple(new(i) for i in a_items)))
    storage.commit_feed(intent(fb, items=(new(story_item("b1")), new(story_item("b2")))))
    old_alerts = sa.table(  # the table as 0004 has it
        "alerts",
        sa.column("id"),
        sa.column("rule_id"),
        sa.column("item_id"),
        sa.column("created_at", ALERTS.c.created_at.type),
        sa.column("spans", sa.JSON()),
    )
    with storage.engine.begin() as conn:
        rules: dict[str, int] = dict(conn.execute(sa.text("SELECT name, id FROM rules")).all())
        items: dict[str, int] = dict(conn.execute(sa.select(ITEMS.c.entry_key, ITEMS.c.id)).all())
        subscriber = conn.scalar(sa.text("SELECT id FROM subscribers"))
        raised = [  # (rule, item, when), inserted in this order (ids ascending)
            ("r", "a1", T0 + 2 * HOUR),
            ("r", "b1", T0),  # the earliest of (r, STORY), though not the lowest id
            ("r", "b2", T0),  # as early, later id
            ("s", "a1", T0 + 5 * HOUR),
            ("r", "a2", T0 + HOUR),
            ("r", "a3", T0),
            ("r", "a4", T0),
        ]
        ids = {}
        for rule, key, when in raised:
            ids[rule, key] = conn.scalar(
                old_alerts.insert()
                .values(rule_id=rules[rule], item_id=items[key], created_at=when, spans=[])
                .returning(old_alerts.c.id)
            )
        conn.execute(
            sa.text(
                "INSERT INTO deliveries (subscriber_id, kind, alert_id, message_id, status,"
                " attempts, next_attempt_at, created_at, updated_at, sealed)"
                " VALUES (:s, 'alert', :a, 'm-1', 'pending', 0, :t, :t, :t, :f)"
            ),
            {"s": subscriber, "a": ids["r", "b2"], "t": T0, "f": False},
        )

    storage.migrate()

    assert story_keys(storage) == {
        ids["r", "a1"]: None,
        ids["r", "b1"]: sha(STORY),
        ids["r", "b2"]: None,
        ids["s", "a1"]: sha(STORY),
        ids["r", "a2"]: sha(other),
        ids["r", "a3"]: None,
        ids["r", "a4"]: None,
    }
    assert [d.alerts for d in storage.list_deliveries()] == [1]
    # From now on the index holds: the story and "other" alerted r already.
    later = storage.commit_feed(
        intent(
            fa,
            at=T0 + 6 * HOUR,
            items=(
                new(story_item("a5")),
                new(story_item("a6", url=other)),
                new(story_item("a7", url="https://news.example.org/new")),
                new(story_item("a8", url=None)),
            ),
            alerts=tuple(AlertIntent("r", k) for k in ("a5", "a6", "a7", "a8")),
        )
    )
    assert (later.new_items, later.new_alerts) == (4, 2)
    assert alerted(storage, since=T0 + 6 * HOUR) == [("r", "a", "a7"), ("r", "a", "a8")]
    with pytest.raises(sa.exc.IntegrityError), storage.engine.begin() as conn:
        conn.execute(
            ALERTS.insert().values(
                rule_id=rules["r"],
                item_id=items["b2"],
                story_key=sha(STORY),
                created_at=T0,
                spans=[],
            )
        )


def test_migration_on_a_database_without_alerts_and_back(at_0004: SqlStorage) -> None:
    at_0004.migrate()
    with at_0004.engine.begin() as conn:
        command.downgrade(alembic_config(conn), "0004")
        columns = {c["name"] for c in sa.inspect(conn).get_columns("alerts")}
        indexes = {i["name"] for i in sa.inspect(conn).get_indexes("items")}
    assert "story_key" not in columns
    assert "ix_items_canonical_url" in indexes
    at_0004.migrate()
    with at_0004.engine.connect() as conn:
        indexes = {i["name"] for i in sa.inspect(conn).get_indexes("alerts")}
    assert "ix_alerts_rule_id_story_key" in indexes

"""Pure decisions: new/updated/unchanged items and the next poll time."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from feedwatch._model import EntryForUpdate, Item, ItemChange
from feedwatch.decide import HASH_CHANGED_LIMIT, decide_items, next_poll_at
from feedwatch.exceptions import ErrorKind

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def item(key: str, content_hash: str = "h1") -> Item:
    return Item(
        entry_key=key,
        guid=key,
        url=None,
        canonical_url=None,
        title=key,
        content_html="",
        content_text="",
        author=None,
        published=None,
        updated=None,
        first_seen=NOW,
        sort_at=NOW,
        tags=(),
        language=None,
        content_hash=content_hash,
    )


def test_new_changed_and_unchanged_items() -> None:
    stored = {
        "same": EntryForUpdate(1, "same", "h1"),
        "changed": EntryForUpdate(2, "changed", "old", hash_changes=3),
    }

    intents = decide_items([item("new"), item("same"), item("changed")], stored)

    assert [(i.item.entry_key, i.change, i.existing_id, i.hash_changes) for i in intents] == [
        ("new", ItemChange.NEW, None, 0),
        ("changed", ItemChange.UPDATED, 2, 4),
    ]


def test_hash_only_updates_are_capped() -> None:
    stored = {"k": EntryForUpdate(1, "k", "old", hash_changes=HASH_CHANGED_LIMIT)}

    assert decide_items([item("k", "new")], stored) == []


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, timedelta(minutes=15)),
        ({"jitter": 0.5}, timedelta(minutes=15) * 1.05),
        ({"consecutive_errors": 1, "error_kind": ErrorKind.CONNECTION}, timedelta(minutes=15)),
        ({"consecutive_errors": 3, "error_kind": ErrorKind.CONNECTION}, timedelta(minutes=60)),
        ({"consecutive_errors": 30, "error_kind": ErrorKind.TIMEOUT}, timedelta(hours=6)),
        (
            {"consecutive_errors": 1, "error_kind": ErrorKind.HTTP_STATUS, "retry_after": 7200},
            timedelta(hours=2),
        ),
        (
            {"consecutive_errors": 1, "error_kind": ErrorKind.HTTP_STATUS, "retry_after": 10},
            timedelta(minutes=15),
        ),
        (
            {"consecutive_errors": 1, "error_kind": ErrorKind.HTTP_STATUS, "retry_after": 1e9},
            timedelta(days=1),
        ),
    ],
)
def test_next_poll_at(kwargs: dict[str, object], expected: timedelta) -> None:
    assert next_poll_at(NOW, 900.0, **kwargs) == NOW + expected  # type: ignore[arg-type]


def test_announced_edits_are_taken_past_the_cap_and_reset_it() -> None:
    later = NOW + timedelta(hours=1)
    edited = replace(item("k", "new"), updated=later)
    stored = {"k": EntryForUpdate(1, "k", "old", hash_changes=HASH_CHANGED_LIMIT, updated=NOW)}

    [intent] = decide_items([edited], stored)

    assert (intent.change, intent.hash_changes) == (ItemChange.UPDATED, 0)

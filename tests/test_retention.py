"""Retention: old history goes, what an undelivered alert needs stays."""

from __future__ import annotations

from datetime import timedelta

from test_delivery import _storage_with_alert
from test_storage import T0 as SEEN

from feedwatch.storage.sql import SqlStorage


def _counts(storage: SqlStorage) -> tuple[int, int, int]:
    items = len(storage.list_items())
    alerts = len(storage.list_alerts())
    deliveries = len(storage.list_deliveries())
    return items, alerts, deliveries


def test_pending_deliveries_keep_their_items(db_url: str) -> None:
    storage, intent = _storage_with_alert(db_url)
    try:
        storage.commit_feed(intent)
        later = SEEN + timedelta(days=400)
        removed = storage.purge(later, later)
        assert removed == {"items": 0, "alerts": 0, "deliveries": 0}
        assert _counts(storage) == (1, 1, 2)
    finally:
        storage.close()


def test_delivered_history_goes_after_its_time(db_url: str) -> None:
    storage, intent = _storage_with_alert(db_url)
    try:
        storage.commit_feed(intent)
        end = intent.deliveries[1].windows[0][1]
        for job in storage.claim_due_deliveries(end, 10, 60, "t"):
            assert storage.record_delivery(
                job.id, "t", status="sent", now=end, next_attempt_at=None, code=200, error=""
            )
        # Too recent for either cut-off: nothing goes.
        assert storage.purge(SEEN - timedelta(days=1), SEEN - timedelta(days=1)) == {
            "items": 0,
            "alerts": 0,
            "deliveries": 0,
        }
        # Deliveries only: the item and its alert stay.
        removed = storage.purge(None, end + timedelta(days=1))
        assert removed["deliveries"] == 2
        assert _counts(storage) == (1, 1, 0)
        # Items: the item and its alert go.
        removed = storage.purge(SEEN + timedelta(days=1), None)
        assert (removed["items"], removed["alerts"]) == (1, 1)
        assert _counts(storage) == (0, 0, 0)
    finally:
        storage.close()


def test_an_old_item_with_a_sent_alert_goes_with_its_deliveries(db_url: str) -> None:
    storage, intent = _storage_with_alert(db_url)
    try:
        storage.commit_feed(intent)
        end = intent.deliveries[1].windows[0][1]
        for job in storage.claim_due_deliveries(end, 10, 60, "t"):
            storage.record_delivery(
                job.id, "t", status="sent", now=end, next_attempt_at=None, code=200, error=""
            )
        removed = storage.purge(SEEN + timedelta(days=1), None)
        assert removed == {"items": 1, "alerts": 1, "deliveries": 1}  # the digest row stays
        assert [d.kind for d in storage.list_deliveries()] == ["digest"]
    finally:
        storage.close()

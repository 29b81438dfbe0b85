"""Storage and restarts: "database is locked" and doubled alerts after a restart.

Users of other readers report both: a poll that dies with "database is locked"
while another process writes, and the same notifications again after a restart.
Here another connection holds SQLite's write lock while feedwatch polls, and every
poll runs in a fresh app, as after a restart (see ``harness``).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from harness import good_rss, scene

CATEGORY = "Storage and restarts"

#: Seconds the other writer holds the lock: well inside feedwatch's busy timeout (10 s).
HOLD_S = 2.0


def test_a_poll_waits_for_another_writer_instead_of_failing(
    tmp_path: Path, figures: Callable[..., None]
) -> None:
    with scene(tmp_path) as s:
        s.serve_victim(good_rss(items=4))
        locked = threading.Event()
        released: list[float] = []

        def hold_the_write_lock() -> None:
            conn = sqlite3.connect(s.db, isolation_level=None)
            try:
                conn.execute("BEGIN IMMEDIATE")
                locked.set()
                time.sleep(HOLD_S)
                released.append(time.monotonic())
                conn.execute("COMMIT")
            finally:
                conn.close()

        holder = threading.Thread(target=hold_the_write_lock)
        holder.start()
        assert locked.wait(10)
        try:
            outcome = s.attack()
        finally:
            holder.join()
        figures(outcome)

    assert outcome.victim.status == "ok", outcome.victim
    assert outcome.victim.new == 1
    assert len(outcome.after["victim"]) == 4
    # Its commit had to wait for the other writer: it finished after the release.
    assert released
    assert outcome.finished_at["victim"] > released[0]


def test_the_same_items_after_a_restart_alert_nobody_again(
    tmp_path: Path, figures: Callable[..., None]
) -> None:
    with scene(tmp_path) as s:
        alerts_before = len(s.poll().alerts)
        # The same document with new validators and a reordered, re-dated channel:
        # parsed again by a fresh process, which must find nothing new.
        body = good_rss().replace(b"<title>Victim</title>", b"<title>Victim (again)</title>")
        s.serve_victim(body, {"Content-Type": "application/rss+xml", "ETag": '"v2"'})
        outcome = s.attack()
        figures(outcome)

    assert outcome.victim.status == "ok", outcome.victim
    assert (outcome.victim.new, outcome.victim.alerts) == (0, 0), outcome.victim
    assert len(outcome.alerts) == alerts_before
    assert len(outcome.after["victim"]) == 3

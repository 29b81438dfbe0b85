"""Alert delivery end to end: the outbox, the dispatcher, real receivers, crashes.

Real parts only: feeds from a loopback HTTP server, a webhook receiver that
verifies every signature with the ``standardwebhooks`` package, an aiosmtpd
server, SQLite and PostgreSQL. Time is an injected clock moved by hand (no
sleeping, nothing timed). The crash tests run the installed ``feedwatch`` in a
subprocess and kill it with SIGKILL at a fail point.
"""

from __future__ import annotations

import asyncio
import dataclasses
import email
import email.policy
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from fakes import Entry, rss
from loopback import Exchange, LoopbackServer, send
from smtp_server import SmtpServer, refusing_port
from test_storage import make_item
from webhook_receiver import Reply, WebhookReceiver

from feedwatch._model import (
    AlertIntent,
    DeliveryIntent,
    DigestSchedule,
    FeedSpec,
    FeedUpdateIntent,
    ItemChange,
    ItemIntent,
    PollStatus,
    RuleSpec,
    SubscriberSpec,
)
from feedwatch.cli import main
from feedwatch.config import load_config
from feedwatch.core import Feedwatch, make_app
from feedwatch.outbox import digest_windows
from feedwatch.storage.sql import SqlStorage, open_storage

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
FEEDWATCH = Path(sys.executable).with_name("feedwatch")
T0 = datetime(2026, 11, 28, 10, 17, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


class Site:
    """One RSS feed on loopback whose items the test changes (ETag per version)."""

    def __init__(self, server: LoopbackServer) -> None:
        self.server = server
        self.entries: list[Entry] = []
        server.route("/feed.xml", self._serve)

    @property
    def url(self) -> str:
        return self.server.url("/feed.xml")

    def add(self, *titles: str) -> None:
        for title in titles:
            n = len(self.entries) + 1
            self.entries.append(
                Entry(f"item-{n}", title, f"{title}. Text {n}.", f"https://example.org/{n}")
            )

    def _serve(self, exchange: Exchange) -> None:
        etag = f'"v{len(self.entries)}"'
        if exchange.headers.get("If-None-Match") == etag:
            send(exchange, 304, headers={"ETag": etag})
        else:
            send(exchange, 200, rss(*self.entries), {"ETag": etag})


@pytest.fixture
def site() -> Iterator[Site]:
    with LoopbackServer() as server:
        yield Site(server)


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(secret=SECRET) as r:
        yield r


def write_config(
    path: Path,
    feed_url: str,
    subscribers: str,
    *,
    database: str | None = None,
) -> Path:
    text = f"""
{f"database: {json.dumps(database)}" if database else ""}
fetch: {{allow_networks: [127.0.0.1/32], timeout: 10s}}
feeds:
  - {{name: news, url: {json.dumps(feed_url)}, tags: [un]}}
rules:
  - {{name: sanctions, query: sanctions}}
  - {{name: ct, query: counter-terrorism}}
subscribers:
{subscribers}
"""
    path.write_text(text, encoding="utf-8")
    return path


def webhook_sub(url: str, name: str = "chat", extra: str = "") -> str:
    return (
        f"  - {{name: {name}, rules: all, {extra}"
        f"webhook: {{url: {json.dumps(url)}, secret: {SECRET}, timeout: 2s}}}}\n"
    )


def app_for(config: Path, db: str, clock: Clock) -> Feedwatch:
    cfg = load_config(config, env={}, database_override=db)
    return make_app(cfg, clock=clock, rand=lambda: 0.5)


def poll(app: Feedwatch) -> Any:
    return asyncio.run(app.poll())


def ok_ids(receiver: WebhookReceiver, failed_first: int = 0) -> list[str]:
    """webhook-ids of the requests answered 2xx (the first ``failed_first`` were not)."""
    return [str(d.webhook_id) for d in receiver.deliveries[failed_first:]]


# --------------------------------------------------------------------------- end to end


def test_each_alert_reaches_each_subscriber_once(
    tmp_path: Path, db_url: str, site: Site, receiver: WebhookReceiver
) -> None:
    site.add("New sanctions on arms trade", "Counter-terrorism week", "Weather report")
    with SmtpServer() as smtp:
        subs = webhook_sub(receiver.url) + (
            "  - {name: desk, rules: [ct], email: {host: 127.0.0.1, "
            f"port: {smtp.port}, security: none, from: fw@example.org, to: [desk@example.org]}}}}\n"
        )
        app = app_for(write_config(tmp_path / "feeds.yaml", site.url, subs), db_url, Clock())
        try:
            summary = poll(app)
            again = poll(app)  # 304: nothing new, nothing sent again
            stored = app.deliveries()
        finally:
            app.close()
        messages = list(smtp.handler.messages)

    assert summary.totals()["alerts"] == 2
    assert summary.deliveries.count("sent") == 3
    assert again.deliveries.results == ()
    assert all(d.verified for d in receiver.deliveries)
    ids = [d.webhook_id for d in receiver.deliveries]
    assert len(ids) == 2
    assert len(set(ids)) == 2
    payloads = sorted(
        (d.json["data"]["alert"]["rule"], d.json["type"]) for d in receiver.deliveries
    )
    assert payloads == [("ct", "alert.created"), ("sanctions", "alert.created")]
    assert {d.json["id"] for d in receiver.deliveries} == set(ids)
    (mail,) = messages
    assert mail.rcpt_tos == ("desk@example.org",)
    parsed = email.message_from_bytes(mail.content, policy=email.policy.default)
    assert "ct" in str(parsed["Subject"])
    assert "Counter-terrorism week" in str(parsed["Subject"])
    assert sorted(d.status for d in stored) == ["sent", "sent", "sent"]
    assert {d.message_id for d in stored if d.subscriber == "chat"} == set(ids)


def test_an_outage_loses_nothing_and_doubles_nothing(
    tmp_path: Path, db_url: str, site: Site, receiver: WebhookReceiver
) -> None:
    clock = Clock()
    receiver.script(*[Reply(500)] * 4)
    site.add("Sanctions one", "Sanctions two")
    app = app_for(
        write_config(tmp_path / "feeds.yaml", site.url, webhook_sub(receiver.url)), db_url, clock
    )
    try:
        first = poll(app)
        assert first.deliveries.count("pending") == 2
        clock.advance(seconds=10)
        site.add("Sanctions three")  # polling goes on during the outage
        second = poll(app)
        assert second.totals()["alerts"] == 1
        # Keep polling and dispatching until the receiver is back and the outbox is empty.
        for _ in range(10):
            if not app.deliveries(status="pending"):
                break
            clock.advance(hours=1)
            poll(app)
        stored = app.deliveries()
    finally:
        app.close()
    assert [d.status for d in stored] == ["sent"] * 3
    sent_ids = ok_ids(receiver, failed_first=4)
    assert len(sent_ids) == 3
    assert len(set(sent_ids)) == 3
    failed_ids = {d.webhook_id for d in receiver.deliveries[:4]}
    assert failed_ids <= set(sent_ids)  # retries reuse the id
    assert all(d.verified for d in receiver.deliveries)
    assert {d.message_id for d in stored} == set(sent_ids)


def test_digest_is_one_message_per_window_grouped_by_rule(
    tmp_path: Path, db_url: str, site: Site, receiver: WebhookReceiver
) -> None:
    clock = Clock()
    subs = webhook_sub(receiver.url, extra="mode: digest, schedule: hourly, ")
    app = app_for(write_config(tmp_path / "feeds.yaml", site.url, subs), db_url, clock)
    try:
        site.add("Sanctions one", "Counter-terrorism two", "Sanctions three")
        poll(app)
        assert receiver.deliveries == []  # the window ends at 11:00
        (pending,) = app.deliveries(status="pending")
        assert (pending.kind, pending.alerts) == ("digest", 3)
        clock.now = datetime(2026, 11, 28, 11, 0, 5, tzinfo=UTC)
        poll(app)
        clock.now = datetime(2026, 11, 28, 12, 30, tzinfo=UTC)
        poll(app)  # an empty window sends nothing
        site.add("Sanctions four")
        poll(app)
        clock.now = datetime(2026, 11, 28, 13, 0, 1, tzinfo=UTC)
        poll(app)
    finally:
        app.close()
    first, second = (d.json for d in receiver.deliveries)
    assert first["type"] == "digest.created"
    assert first["data"]["count"] == 3
    assert [g["rule"] for g in first["data"]["rules"]] == ["ct", "sanctions"]
    assert [len(g["alerts"]) for g in first["data"]["rules"]] == [1, 2]
    assert first["data"]["window"]["end"] == "2026-11-28T11:00:00Z"
    assert second["data"]["count"] == 1
    assert second["data"]["window"]["start"] == "2026-11-28T12:00:00Z"


def test_410_disables_the_subscriber_until_retried(
    tmp_path: Path, sqlite_url: str, site: Site, receiver: WebhookReceiver
) -> None:
    clock = Clock()
    receiver.script(Reply(410))
    config = write_config(
        tmp_path / "feeds.yaml", site.url, webhook_sub(receiver.url), database=sqlite_url
    )
    app = app_for(config, sqlite_url, clock)
    try:
        site.add("Sanctions one")
        poll(app)
        site.add("Sanctions two")
        clock.advance(minutes=1)
        poll(app)  # disabled: stored as failed with the reason, not sent
        (sub,) = app.subscribers()
        failed = app.deliveries(status="failed")
    finally:
        app.close()
    assert len(receiver.deliveries) == 1
    assert sub.disabled_at is not None
    assert "410" in str(sub.disabled_reason)
    assert len(failed) == 2
    assert any("subscriber disabled" in str(d.last_error) for d in failed)

    result = CliRunner().invoke(main, ["--config", str(config), "deliveries", "retry", "--failed"])
    assert result.exit_code == 0, result.output
    assert "subscriber chat enabled again" in result.output
    assert len(receiver.deliveries) == 3
    assert len({d.webhook_id for d in receiver.deliveries}) == 2  # the first one resent, same id


def test_cli_lists_deliveries_and_tests_subscribers(
    tmp_path: Path, sqlite_url: str, site: Site, receiver: WebhookReceiver
) -> None:
    with WebhookReceiver() as missing:
        missing.script(Reply(404), Reply(404))
        subs = webhook_sub(receiver.url) + (
            f"  - {{name: broken, rules: all, webhook: {{url: {json.dumps(missing.url)}}}}}\n"
        )
        config = write_config(tmp_path / "feeds.yaml", site.url, subs, database=sqlite_url)
        site.add("Sanctions one")
        runner = CliRunner()
        polled = runner.invoke(main, ["--config", str(config), "poll"])
        listed = runner.invoke(main, ["--config", str(config), "deliveries", "--status", "pending"])
        as_json = runner.invoke(main, ["--config", str(config), "deliveries", "--json"])
        subscribers = runner.invoke(main, ["--config", str(config), "subscribers"])
        good = runner.invoke(main, ["--config", str(config), "subscribers", "test", "chat"])
        bad = runner.invoke(main, ["--config", str(config), "subscribers", "test", "broken"])
        unknown = runner.invoke(main, ["--config", str(config), "subscribers", "test", "nobody"])
    assert polled.exit_code == 0, polled.output  # a retrying delivery is not a failure yet
    assert "1 sent, 1 to retry, 0 failed" in polled.output
    assert "broken" in listed.output
    assert "[404]" in listed.output
    rows = json.loads(as_json.output)
    assert sorted(r["status"] for r in rows) == ["pending", "sent"]
    assert "chat" in subscribers.output
    assert "broken" in subscribers.output
    assert good.exit_code == 0, good.output
    assert receiver.deliveries[-1].json["type"] == "test"
    assert bad.exit_code == 1
    assert "404" in bad.output
    assert unknown.exit_code == 2


# --------------------------------------------------------------------------- storage


def _storage_with_alert(url: str) -> tuple[SqlStorage, FeedUpdateIntent]:
    storage = open_storage(url)
    storage.migrate()
    subs = [
        SubscriberSpec("now", "webhook", "{}"),
        SubscriberSpec("daily", "webhook", "{}", mode="digest", schedule=DigestSchedule("hourly")),
    ]
    storage.sync_config([FeedSpec("f", "http://127.0.0.1:1/f")], [RuleSpec("r", "x")], subs, T0)
    (feed,) = storage.feeds_for_poll()
    item = make_item("k1")
    windows = digest_windows(DigestSchedule("hourly"), T0)
    intent = FeedUpdateIntent(
        feed_id=feed.id,
        lease_token=None,
        polled_at=T0,
        status=PollStatus.OK,
        next_poll_at=T0 + timedelta(hours=1),
        items=(ItemIntent(item, ItemChange.NEW),),
        alerts=(AlertIntent("r", "k1"),),
        deliveries=(
            DeliveryIntent("now", "r", "k1"),
            DeliveryIntent("daily", "r", "k1", windows),
        ),
    )
    return storage, intent


def test_deliveries_are_written_with_the_alerts_and_never_twice(db_url: str) -> None:
    storage, intent = _storage_with_alert(db_url)
    try:
        first = storage.commit_feed(intent)
        second = storage.commit_feed(intent)  # a re-poll of the same items
        rows = storage.list_deliveries()
    finally:
        storage.close()
    assert (first.new_alerts, first.new_deliveries) == (1, 2)
    assert (second.new_alerts, second.new_deliveries) == (0, 0)
    assert sorted((r.subscriber, r.kind) for r in rows) == [("daily", "digest"), ("now", "alert")]


def test_claims_are_fenced_and_a_sealed_digest_takes_no_more(db_url: str) -> None:
    storage, intent = _storage_with_alert(db_url)
    try:
        storage.commit_feed(intent)
        end = intent.deliveries[1].windows[0][1]
        claimed = storage.claim_due_deliveries(end, 10, 60, "a")
        assert sorted(j.kind for j in claimed) == ["alert", "digest"]
        assert storage.claim_due_deliveries(end, 10, 60, "b") == []  # leased to "a"
        # A late alert of the same window goes to the next one: the digest is sealed.
        late = FeedUpdateIntent(
            feed_id=intent.feed_id,
            lease_token=None,
            polled_at=T0 + timedelta(minutes=1),
            status=PollStatus.OK,
            next_poll_at=T0 + timedelta(hours=1),
            items=(ItemIntent(make_item("k2"), ItemChange.NEW),),
            alerts=(AlertIntent("r", "k2"),),
            deliveries=(DeliveryIntent("daily", "r", "k2", intent.deliveries[1].windows),),
        )
        assert storage.commit_feed(late).new_deliveries == 1
        job = next(j for j in claimed if j.kind == "digest")
        assert [a.rule for a in job.alerts] == ["r"]
        assert len(job.alerts) == 1
        # The lease ran out and "b" took over: "a" can no longer record anything.
        later = end + timedelta(seconds=61)
        taken = storage.claim_due_deliveries(later, 10, 60, "b")
        assert {j.id for j in taken} == {j.id for j in claimed}
        assert {j.message_id for j in taken} == {j.message_id for j in claimed}
        assert not storage.record_delivery(
            job.id, "a", status="sent", now=later, next_attempt_at=None, code=200, error=""
        )
        assert storage.record_delivery(
            job.id, "b", status="sent", now=later, next_attempt_at=None, code=200, error=""
        )
        digests = [r for r in storage.list_deliveries() if r.kind == "digest"]
    finally:
        storage.close()
    assert sorted((r.status, r.alerts) for r in digests) == [("pending", 1), ("sent", 1)]


# --------------------------------------------------------------------------- crashes


def _run(config: Path, failpoint: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDWATCH_")}
    if failpoint:
        env["FEEDWATCH_FAILPOINTS"] = failpoint
    return subprocess.run(
        [str(FEEDWATCH), "--config", str(config), "poll"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_killed_between_commit_and_send_loses_nothing(
    tmp_path: Path, site: Site, receiver: WebhookReceiver
) -> None:
    db = f"sqlite:///{tmp_path / 'fw.db'}"
    config = write_config(tmp_path / "feeds.yaml", site.url, webhook_sub(receiver.url), database=db)
    site.add("Sanctions one", "Counter-terrorism two")
    killed = _run(config, "after-commit")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert receiver.deliveries == []
    restarted = _run(config, None)
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    ids = [d.webhook_id for d in receiver.deliveries]
    assert len(ids) == 2
    assert len(set(ids)) == 2
    assert all(d.verified for d in receiver.deliveries)


def test_killed_between_send_and_record_resends_with_the_same_id(
    tmp_path: Path, site: Site, receiver: WebhookReceiver
) -> None:
    db = f"sqlite:///{tmp_path / 'fw.db'}"
    config = write_config(tmp_path / "feeds.yaml", site.url, webhook_sub(receiver.url), database=db)
    site.add("Sanctions one")
    killed = _run(config, "after-send")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    (first,) = receiver.deliveries
    # Time passes: the dead process's lease on the delivery runs out.
    engine = sa.create_engine(db)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE deliveries SET next_attempt_at = '2000-01-01 00:00:00'"))
    engine.dispose()
    restarted = _run(config, None)
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    assert len(receiver.deliveries) == 2
    assert receiver.deliveries[1].webhook_id == first.webhook_id  # the receiver can drop it
    assert receiver.deliveries[1].body == first.body
    assert all(d.verified for d in receiver.deliveries)


def email_sub(port: int, name: str = "desk") -> str:
    return (
        f"  - {{name: {name}, rules: all, email: {{host: 127.0.0.1, port: {port}, "
        "security: none, from: fw@example.org, to: [desk@example.org], timeout: 5s}}\n"
    )


def test_smtp_down_then_up_delivers_every_alert_once(
    tmp_path: Path, sqlite_url: str, site: Site
) -> None:
    clock = Clock()
    with refusing_port() as port:  # bound, not listening: the SMTP server is down
        config = write_config(tmp_path / "feeds.yaml", site.url, email_sub(port))
        app = app_for(config, sqlite_url, clock)
        site.add("Sanctions one", "Counter-terrorism two")
        down = poll(app)
    try:
        assert down.deliveries.count("pending") == 2
        assert all("refused" in r.detail for r in down.deliveries.results)
        with SmtpServer(port=port) as smtp:  # back up on the same port
            clock.advance(minutes=1)
            site.add("Sanctions three")
            up = poll(app)
            messages = list(smtp.handler.messages)
    finally:
        app.close()
    assert up.deliveries.count("sent") == 3
    parsed = [email.message_from_bytes(m.content, policy=email.policy.default) for m in messages]
    ids = [m["Message-ID"] for m in parsed]
    assert len(ids) == 3
    assert len(set(ids)) == 3


def test_killed_between_send_and_record_resends_the_same_message_id(
    tmp_path: Path, site: Site
) -> None:
    db = f"sqlite:///{tmp_path / 'fw.db'}"
    with SmtpServer() as smtp:
        config = write_config(tmp_path / "feeds.yaml", site.url, email_sub(smtp.port), database=db)
        site.add("Sanctions one")
        killed = _run(config, "after-send")
        assert killed.returncode == -signal.SIGKILL, killed.stderr
        engine = sa.create_engine(db)
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE deliveries SET next_attempt_at = '2000-01-01 00:00:00'"))
        engine.dispose()
        restarted = _run(config, None)
        messages = list(smtp.handler.messages)
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    first, second = (
        email.message_from_bytes(m.content, policy=email.policy.default) for m in messages
    )
    assert first["Message-ID"] == second["Message-ID"]
    assert first["Subject"] == second["Subject"]


def test_retry_by_id_requeues_only_what_is_not_sent(
    tmp_path: Path, sqlite_url: str, site: Site, receiver: WebhookReceiver
) -> None:
    receiver.script(Reply(503), Reply(503))
    config = write_config(
        tmp_path / "feeds.yaml", site.url, webhook_sub(receiver.url), database=sqlite_url
    )
    site.add("Sanctions one", "Sanctions two")
    runner = CliRunner()
    runner.invoke(main, ["--config", str(config), "poll"])
    rows = json.loads(runner.invoke(main, ["--config", str(config), "deliveries", "--json"]).output)
    assert sorted(r["status"] for r in rows) == ["pending", "pending"]
    first = min(r["id"] for r in rows)
    retried = runner.invoke(main, ["--config", str(config), "deliveries", "retry", str(first)])
    assert retried.exit_code == 0, retried.output
    again = runner.invoke(main, ["--config", str(config), "deliveries", "retry", str(first)])
    assert again.exit_code == 1  # already sent: nothing to requeue
    assert "already sent" in again.output
    usage = runner.invoke(main, ["--config", str(config), "deliveries", "retry"])
    assert usage.exit_code == 2
    rows = json.loads(runner.invoke(main, ["--config", str(config), "deliveries", "--json"]).output)
    assert {r["id"]: r["status"] for r in rows} == {first: "sent", first + 1: "pending"}


def test_operators_are_told_when_a_feed_or_a_subscriber_is_disabled(
    tmp_path: Path, sqlite_url: str, site: Site, receiver: WebhookReceiver
) -> None:
    clock = Clock()
    with WebhookReceiver() as gone:
        gone.script(Reply(410))
        subs = (
            webhook_sub(receiver.url, name="ops", extra="notices: true, ").replace(
                "rules: all", "rules: none"
            )
            + f"  - {{name: old-hook, rules: all, webhook: {{url: {json.dumps(gone.url)}}}}}\n"
        )
        config = write_config(tmp_path / "feeds.yaml", site.url, subs, database=sqlite_url)
        app = app_for(config, sqlite_url, clock)
        try:
            site.add("Sanctions one")
            poll(app)  # old-hook answers 410: disabled; ops is told
            site.server.reply("/feed.xml", 410, b"gone")
            clock.advance(hours=1)
            poll(app)  # the feed answers 410: disabled; ops is told
            feeds = app.feeds()
        finally:
            app.close()
    notices = [d.json for d in receiver.deliveries]
    assert [n["type"] for n in notices] == ["notice", "notice"]
    assert all(d.verified for d in receiver.deliveries)
    subjects = [n["data"]["subject"] for n in notices]
    assert subjects == ["subscriber old-hook disabled", "feed news disabled"]
    assert "410" in notices[1]["data"]["text"]
    (feed,) = feeds
    assert feed.disabled_at is not None
    assert "410" in str(feed.disabled_reason)


def test_concurrent_dispatchers_never_claim_the_same_delivery(db_url: str) -> None:
    """Two dispatchers (threads, each with its own token) drain one outbox:
    every delivery is claimed exactly once."""
    import threading

    storage, intent = _storage_with_alert(db_url)
    try:
        keys = [f"k{i}" for i in range(40)]
        storage.commit_feed(
            dataclasses.replace(
                intent,
                items=tuple(ItemIntent(make_item(k), ItemChange.NEW) for k in keys),
                alerts=tuple(AlertIntent("r", k) for k in keys),
                deliveries=tuple(DeliveryIntent("now", "r", k) for k in keys),
            )
        )
        claimed: dict[str, list[int]] = {"a": [], "b": []}
        errors: list[BaseException] = []

        def drain(token: str) -> None:
            try:
                while True:
                    jobs = storage.claim_due_deliveries(T0, 3, 600, token)
                    if not jobs:
                        return
                    claimed[token] += [j.id for j in jobs]
            except BaseException as exc:  # surfaced below
                errors.append(exc)

        threads = [threading.Thread(target=drain, args=(t,)) for t in claimed]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        storage.close()
    assert errors == []
    everything = claimed["a"] + claimed["b"]
    assert len(everything) == len(keys)
    assert len(set(everything)) == len(keys)

"""Delivery side: hostile text cannot add email headers, hostile receivers cannot
hang, mislead or double a delivery.

Every case is a real feedwatch (see ``harness``) whose victim feed raises an
alert on the hostile poll, with subscribers for that feed: an email one whose
messages a real aiosmtpd server on 127.0.0.1 receives (``smtp_server``), or
webhook ones whose receivers (``webhook_receiver``, on 127.0.0.1) answer from a
script. The first delivery goes out with the poll (``Scene.attack``); retries
are sent by ``Feedwatch.dispatch`` of an app whose clock is moved past the
retry time (an injected clock, as tests/test_delivery.py does), and checked
through the deliveries listing (``Feedwatch.deliveries``).

* header injection: an item title, the feed's title and an author carrying
  ``\\r\\nBcc: victim@example.org`` and ``\\nX-Injected: 1``: the email received
  has only feedwatch's headers, one-line Subject, envelope to the subscriber only;
* a receiver that redirects (307, then 308) to another loopback port: not
  followed, retried later, the target gets nothing; a Location full of control
  characters and 20,000 characters long is recorded as one short printable line;
* a receiver that stalls past the webhook timeout: a timeout recorded, a retry
  scheduled, the poll returns; one that answers 200 at once and then sends its
  body a byte a second: delivered once, its body not waited for;
* a receiver that answers 410: the subscriber is disabled, and says so;
* a receiver that answers 500 then 200: delivered once, with the same webhook-id
  on both attempts, and never again.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from click.testing import CliRunner
from harness import Scene, rss_items, scene
from loopback import LoopbackServer
from smtp_server import SmtpServer
from test_webhook import drip_200
from webhook_receiver import Reply, WebhookReceiver

from feedwatch.cli import main
from feedwatch.config import load_config
from feedwatch.core import make_app
from feedwatch.dispatch import DispatchSummary
from feedwatch.types import DeliveryStatus

CATEGORY = "Delivery side"

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#: The webhook timeout of the subscribers (the stalling receiver waits far longer).
HOOK_TIMEOUT = "1s"
STALL_S = 30.0


def hook_yaml(name: str, url: str, *, extra: str = "") -> str:
    return (
        f"  - {{name: {name}, rules: all, feeds: [victim], {extra}"
        f'webhook: {{url: "{url}", secret: {SECRET}, timeout: {HOOK_TIMEOUT}}}}}\n'
    )


def news(guid: str, title: str = "AI breaking news") -> bytes:
    """The victim with one new item that raises an alert (rule ``ai``)."""
    return rss_items(
        f"<item><title>{title}</title><link>https://example.org/{guid}</link>"
        f'<guid isPermaLink="false">{guid}</guid><description>More on AI.</description></item>',
        title="Victim",
    )


def dispatch_later(s: Scene, after: timedelta) -> DispatchSummary:
    """Send what is due ``after`` from now, through a fresh app with that clock."""
    app = make_app(load_config(s.config_path), clock=lambda: datetime.now(UTC) + after)
    try:
        return asyncio.run(app.dispatch())
    finally:
        app.close()


def deliveries(s: Scene, subscriber: str) -> list[DeliveryStatus]:
    app = s.app()
    try:
        return sorted(app.deliveries(subscriber=subscriber), key=lambda d: d.id)
    finally:
        app.close()


@contextmanager
def webhook_scene(tmp_path: Path, extra_yaml: str = "") -> Iterator[tuple[Scene, WebhookReceiver]]:
    """A primed scene with one webhook subscriber ``hook`` to the victim's alerts.

    The first poll's alert was delivered (200); the test scripts what comes next.
    """
    with (
        WebhookReceiver(secret=SECRET) as hook,
        scene(
            tmp_path, extra_yaml="subscribers:\n" + hook_yaml("hook", hook.url) + extra_yaml
        ) as s,
    ):
        (primed,) = hook.deliveries
        assert primed.verified
        yield s, hook


def the_new_delivery(s: Scene) -> DeliveryStatus:
    """The delivery of the hostile poll's alert (the first poll's was sent)."""
    first, new = deliveries(s, "hook")
    assert first.status == "sent"
    return new


# ------------------------------------------------------------------ header injection

#: A title long enough for the Subject to be folded, not ASCII (encoded words).
LONG_TITLE = (
    "AI новости " + "filler " * 9 + "{crlf}Bcc: victim@example.org{crlf}" + "more words " * 20
)

INJECTIONS = {
    "RSS 2.0": (
        "application/rss+xml; charset=utf-8",
        (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/"><channel>'
            "<title>Victim&#13;&#10;Bcc: victim@example.org&#10;X-Injected: 1</title>"
            "<link>https://example.org/</link><description>d</description>"
            "<item><title>AI story&#13;&#10;Bcc: victim@example.org</title>"
            "<link>https://example.org/s1</link><guid>inj-1</guid>"
            "<author>eve@example.org (Eve&#13;&#10;Bcc: victim@example.org)</author>"
            "<description>text&#13;&#10;Bcc: victim@example.org</description></item>"
            "<item><title>AI second&#10;X-Injected: 1&#13;&#10;&#13;&#10;&lt;b&gt;body&lt;/b&gt;"
            "</title><link>https://example.org/s2</link><guid>inj-2</guid>"
            "<dc:creator>Eve&#10;X-Injected: 1</dc:creator><description>t</description></item>"
            "<item><title>AI third&#13;Bcc: victim@example.org&#x85;X-Injected: 1&#x2028;"
            "Cc: victim@example.org</title><link>https://example.org/s3</link><guid>inj-3</guid>"
            "<description>t</description></item>"
            f"<item><title>{LONG_TITLE.format(crlf='&#13;&#10;')}</title>"
            "<link>https://example.org/s4</link><guid>inj-4</guid><description>t</description></item>"
            "</channel></rss>"
        ).encode(),
    ),
    "JSON Feed": (
        "application/feed+json",
        json.dumps(
            {
                "version": "https://jsonfeed.org/version/1.1",
                "title": "Victim\r\nBcc: victim@example.org\nX-Injected: 1",
                "items": [
                    {
                        "id": "inj-1",
                        "title": "AI story\r\nBcc: victim@example.org",
                        "url": "https://example.org/s1",
                        "content_text": "text\r\nBcc: victim@example.org",
                        "authors": [{"name": "Eve\r\nBcc: victim@example.org"}],
                    },
                    {
                        "id": "inj-2",
                        "title": "AI second\nX-Injected: 1\r\n\r\nbody",
                        "url": "https://example.org/s2",
                        "content_text": "t",
                        "authors": [{"name": "Eve\nX-Injected: 1"}],
                    },
                    {
                        "id": "inj-3",
                        "title": (
                            "AI third\rBcc: victim@example.org\x85X-Injected: 1"
                            "\u2028Cc: victim@example.org"
                        ),
                        "url": "https://example.org/s3",
                        "content_text": "t",
                    },
                    {
                        "id": "inj-4",
                        "title": LONG_TITLE.format(crlf="\r\n"),
                        "url": "https://example.org/s4",
                        "content_text": "t",
                    },
                ],
            }
        ).encode(),
    ),
}

#: Every header feedwatch writes (the top level, then each MIME part's).
MESSAGE_HEADERS = {
    "subject",
    "from",
    "to",
    "date",
    "message-id",
    "list-id",
    "list-unsubscribe",
    "auto-submitted",
    "x-feedwatch-delivery",
    "x-feedwatch-rule",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
}
PART_HEADERS = {"content-type", "content-transfer-encoding", "mime-version"}


def header_names(raw: bytes) -> list[str]:
    """The names of the header lines of a raw header block (continuations skipped)."""
    head = raw.split(b"\r\n\r\n", 1)[0]
    names = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t"):
            continue
        name, colon, _ = line.partition(b":")
        assert colon, f"not a header line: {line!r}"
        names.append(name.decode("ascii").lower())
    return names


@pytest.mark.parametrize("fmt", INJECTIONS)
def test_titles_and_authors_cannot_add_email_headers(
    fmt: str, tmp_path: Path, figures: Callable[..., None]
) -> None:
    content_type, body = INJECTIONS[fmt]
    with SmtpServer() as smtp, WebhookReceiver(secret=SECRET) as hook:
        subscribers = (
            "subscribers:\n"
            "  - {name: desk, rules: all, feeds: [victim], email: {host: 127.0.0.1, "
            f"port: {smtp.port}, security: none, from: fw@example.org, "
            "to: [desk@example.org], timeout: 10s}}\n" + hook_yaml("hook", hook.url)
        )
        with scene(tmp_path, extra_yaml=subscribers) as s:
            primed = len(smtp.handler.messages)
            s.serve_victim(body, {"Content-Type": content_type})
            outcome = s.attack()
            figures(outcome)
        received = smtp.handler.messages[primed:]
        posts = hook.deliveries[1:]

    assert outcome.victim.status == "ok", outcome.victim
    assert outcome.victim.alerts == 4, outcome.victim
    assert len(received) == 4
    assert len(smtp.handler.mail_from) == primed + 4
    subjects = []
    folded = 0
    for mail in received:
        # The envelope: the configured sender and recipient, nobody else.
        assert mail.mail_from == "fw@example.org"
        assert mail.rcpt_tos == ("desk@example.org",)
        names = header_names(mail.content)
        folded += mail.content.split(b"\r\n\r\n", 1)[0].count(b"\r\n ")
        assert set(names) <= MESSAGE_HEADERS, names
        assert len(names) == len(set(names)), names  # no header twice
        message = email.message_from_bytes(mail.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        assert message["Bcc"] is None
        assert message["Cc"] is None
        assert message["X-Injected"] is None
        assert message["To"] == "desk@example.org"
        subject = str(message["Subject"])
        assert not set(subject) & set("\r\n\x85\u2028\u2029"), repr(subject)
        subjects.append(subject)
        parts = [p for p in message.walk() if p.get_content_maintype() != "multipart"]
        assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
        for part in parts:
            assert {k.lower() for k in part} <= PART_HEADERS, part.keys()
            text = part.get_content()
            lines = text.splitlines()
            assert not [ln for ln in lines if ln.lower().startswith(("bcc:", "x-injected:"))]
    # The title's text stays, on one line: the would-be headers are words of the Subject.
    second, story, third, long = sorted(subjects)
    assert story == "[feedwatch] ai: AI story Bcc: victim@example.org"
    assert second == "[feedwatch] ai: AI second X-Injected: 1 body"
    assert third.startswith("[feedwatch] ai: AI third Bcc: victim@example.org")
    assert third.endswith("X-Injected: 1 Cc: victim@example.org")
    assert long.startswith("[feedwatch] ai: AI новости filler filler")
    assert " filler Bcc: victim@example.org more words more words" in long
    assert len(long) <= 200
    assert folded, "no Subject was folded: the continuation lines were not tried"
    # The webhook gets the same titles as one line, and no header of theirs.
    assert len(posts) == 4
    for post in posts:
        assert post.verified, post.error
        assert not {"bcc", "x-injected", "cc"} & set(post.headers)
        title = post.json["data"]["item"]["title"]
        assert not set(title) & set("\r\n\x85\u2028\u2029"), repr(title)
        feed_title = post.json["data"]["feed"]["title"]
        assert feed_title == "Victim Bcc: victim@example.org X-Injected: 1"


# ------------------------------------------------------------------ webhook receivers


def test_a_redirecting_receiver_is_not_followed_and_retried_later(
    tmp_path: Path, figures: Callable[..., None]
) -> None:
    with LoopbackServer() as elsewhere, webhook_scene(tmp_path) as (s, hook):
        elsewhere.reply("/stolen", body=b"thanks")
        target = elsewhere.url("/stolen")
        # The second Location is hostile text too: C1 controls (CSI, NEL; httpx reads
        # header bytes as Latin-1) and 20,000 characters, for the error shown to people.
        hostile = f"{target}?\x9b31m\x85next=" + "A" * 20_000
        hook.script(Reply(307, {"Location": target}), Reply(308, {"Location": hostile}))
        s.serve_victim(news("redirect-1"))
        outcome = s.attack()
        figures(outcome)
        first = the_new_delivery(s)
        assert first.status == "pending", first
        assert first.last_code == 307
        assert f"redirect to {target} not followed" in str(first.last_error)
        assert first.next_attempt_at is not None
        assert first.last_attempt_at is not None
        assert first.next_attempt_at > first.last_attempt_at
        # Retried later: 308, still not followed; then the receiver takes it.
        again = dispatch_later(s, timedelta(hours=1))
        assert [(r.status, r.code) for r in again.results] == [("pending", 308)]
        second = the_new_delivery(s)
        done = dispatch_later(s, timedelta(hours=3))
        assert [(r.status, r.code) for r in done.results] == [("sent", 200)]
        final = the_new_delivery(s)
        posts = hook.deliveries[1:]
        stolen = list(elsewhere.requests)
    assert stolen == [], "the redirect target got a request"
    # The error recorded is one short printable line that still says where it pointed.
    error = str(second.last_error)
    assert error.startswith(f"HTTP 308 Permanent Redirect: redirect to {target}?31m next=AAA")
    assert error.endswith("… not followed"), error[-40:]
    assert error.isprintable(), repr(error[:120])
    assert len(error) < 400
    assert (final.status, final.attempts, final.last_code) == ("sent", 3, 200)
    assert len(posts) == 3
    assert {p.webhook_id for p in posts} == {final.message_id}
    assert all(p.verified for p in posts)
    assert len({p.body for p in posts}) == 1


def test_a_stalling_receiver_times_out_and_is_retried(
    tmp_path: Path, figures: Callable[..., None]
) -> None:
    with webhook_scene(tmp_path) as (s, hook):
        hook.script(Reply(200, stall=STALL_S))
        s.serve_victim(news("stall-1"))
        outcome = s.attack()  # under the harness's watchdog: a hang fails here
        figures(outcome)
        first = the_new_delivery(s)
        # The receiver never answered: the poll gave up on it, it did not wait.
        assert first.status == "pending", first
        assert first.last_code is None
        assert f"timed out after {HOOK_TIMEOUT}" in str(first.last_error), first.last_error
        assert first.next_attempt_at is not None
        assert len(hook.deliveries) == 2
        done = dispatch_later(s, timedelta(hours=1))
        final = the_new_delivery(s)
        posts = hook.deliveries[1:]
    assert [(r.status, r.code) for r in done.results] == [("sent", 200)]
    assert (final.status, final.attempts) == ("sent", 2)
    assert [p.webhook_id for p in posts] == [final.message_id] * 2


def test_a_200_with_a_slow_body_is_delivered_once(
    tmp_path: Path, figures: Callable[..., None]
) -> None:
    with webhook_scene(tmp_path) as (s, hook):
        hook.server.route(WebhookReceiver.PATH, drip_200)  # 30 s, a byte a second
        s.serve_victim(news("drip-1"))
        outcome = s.attack()
        figures(outcome)
        first = the_new_delivery(s)
        later = dispatch_later(s, timedelta(hours=1))
        posts = hook.server.requests_to(WebhookReceiver.PATH)[1:]
    assert len(posts) == 1 + len(later.results)
    # The receiver said 200 before the deadline: that is a delivery, never to repeat.
    assert (first.status, first.last_code) == ("sent", 200), first.last_error
    assert len(posts) == 1


def test_a_gone_receiver_disables_its_subscriber_and_says_so(
    tmp_path: Path, figures: Callable[..., None]
) -> None:
    with WebhookReceiver(secret=SECRET) as ops:
        notices = hook_yaml("ops", ops.url, extra="notices: true, ").replace(
            "rules: all", "rules: none"
        )
        with webhook_scene(tmp_path, notices) as (s, hook):
            hook.script(Reply(410, body=b"this hook was removed"))
            s.serve_victim(news("gone-1"))
            outcome = s.attack()
            figures(outcome)
            first = the_new_delivery(s)
            app = s.app()
            try:
                (sub,) = [x for x in app.subscribers() if x.name == "hook"]
            finally:
                app.close()
            # Another alert: stored as failed for the disabled subscriber, not sent.
            s.serve_victim(news("gone-2", "AI more news"))
            later = s.attack()
            rows = deliveries(s, "hook")
            listed = CliRunner().invoke(main, ["--config", str(s.config_path), "subscribers"])
            posts = hook.deliveries[1:]
            told = [d.json for d in ops.deliveries]
    assert later.victim.alerts == 1
    assert (first.status, first.last_code) == ("failed", 410)
    assert "410 Gone" in str(first.last_error)
    assert "this hook was removed" in str(first.last_error)
    assert first.next_attempt_at is None
    assert sub.disabled_at is not None
    assert "410" in str(sub.disabled_reason)
    assert [r.status for r in rows] == ["sent", "failed", "failed"]
    assert "subscriber disabled" in str(rows[2].last_error), rows[2].last_error
    assert len(posts) == 1, "a disabled subscriber was sent to"
    assert [n["type"] for n in told] == ["notice"]
    assert told[0]["data"]["subject"] == "subscriber hook disabled"
    assert "410" in told[0]["data"]["text"]
    assert listed.exit_code == 0, listed.output
    assert "disabled" in listed.output


def test_a_500_then_200_is_delivered_exactly_once(
    tmp_path: Path, figures: Callable[..., None]
) -> None:
    with webhook_scene(tmp_path) as (s, hook):
        hook.script(Reply(500, body=b"internal error"))
        s.serve_victim(news("flaky-1"))
        outcome = s.attack()
        figures(outcome)
        first = the_new_delivery(s)
        assert (first.status, first.last_code) == ("pending", 500)
        assert "internal error" in str(first.last_error)
        assert dispatch_later(s, timedelta(seconds=0)).results == ()  # not due yet
        done = dispatch_later(s, timedelta(hours=1))
        # Nothing is sent again: not later, not on the next poll of the same feed.
        after = dispatch_later(s, timedelta(days=3))
        again = s.attack()
        final = the_new_delivery(s)
        posts = hook.deliveries[1:]
    assert [(r.status, r.code) for r in done.results] == [("sent", 200)]
    assert after.results == ()
    assert again.victim.alerts == 0
    assert (final.status, final.attempts, final.last_code) == ("sent", 2, 200)
    assert final.sent_at is not None
    assert len(posts) == 2
    assert [p.webhook_id for p in posts] == [final.message_id] * 2
    assert posts[0].body == posts[1].body
    # Answered: 200 (first poll), 500, 200: one success per message.
    answered = zip([p.webhook_id for p in hook.deliveries], [200, 500, 200], strict=True)
    successes = Counter(webhook_id for webhook_id, status in answered if status < 300)
    assert max(successes.values()) == 1, successes

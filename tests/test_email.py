"""The email channel: message building (pure) and SMTP sending against real local servers.

Every server here is aiosmtpd on 127.0.0.1 (see ``smtp_server.py``); certificates
come from a trustme CA whose PEM is passed as ``ca_file``.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
from dataclasses import replace
from datetime import UTC, datetime
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from smtp_server import (
    Received,
    RecordingHandler,
    SmtpServer,
    Tls,
    make_tls,
    password_authenticator,
    refusing_port,
    silent_port,
)

from feedwatch._model import (
    AlertContent,
    DeliveryJob,
    EmailSettings,
    SendResult,
    Span,
    SubscriberSpec,
)
from feedwatch.email_out import SmtpSender, build_message, header_text

NOW = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)
SENDER = "Feedwatch <alerts@example.org>"
TO = ("ops@example.org", "desk@example.net")
TITLE = "UN warns on climate finance gap"
CONTENT = "The United Nations said on Tuesday that the climate finance gap keeps growing."
LINK = "https://news.example.org/stories/42?lang=en&src=rss"

# --------------------------------------------------------------------------- builders


def make_alert(**changes: Any) -> AlertContent:
    """An alert of rule ``climate`` with a title span and a content span."""
    title = changes.pop("title", TITLE)
    content = changes.pop("content_text", CONTENT)
    spans = changes.pop("spans", None)
    if spans is None:
        spans = tuple(
            Span(field, text.find("climate"), text.find("climate") + len("climate"))
            for field, text in (("title", title), ("content", content))
            if "climate" in text
        )
    values: dict[str, Any] = {
        "alert_id": 1,
        "rule": "climate",
        "rule_query": "climate AND finance",
        "item_id": 10,
        "title": title,
        "content_text": content,
        "link": LINK,
        "feed": "un-news",
        "feed_title": "UN News",
        "published": datetime(2024, 5, 1, 8, 0, tzinfo=UTC),
        "created_at": datetime(2024, 5, 1, 9, 0, tzinfo=UTC),
        "spans": spans,
    }
    values.update(changes)
    return AlertContent(**values)


def make_job(*alerts: AlertContent, **changes: Any) -> DeliveryJob:
    values: dict[str, Any] = {
        "id": 17,
        "subscriber": "ops",
        "kind": "alert",
        "message_id": "fw-17-a1b2c3",
        "attempts": 0,
        "created_at": datetime(2024, 5, 1, 9, 0, tzinfo=UTC),
        "alerts": alerts or (make_alert(),),
    }
    values.update(changes)
    return DeliveryJob(**values)


def make_subscriber(port: int = 25, **email_changes: Any) -> SubscriberSpec:
    settings: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "security": "none",
        "sender": SENDER,
        "to": TO,
        "timeout": 10.0,
    }
    settings.update(email_changes)
    return SubscriberSpec(
        name="ops", channel="email", spec_json="{}", email=EmailSettings(**settings)
    )


def send(sub: SubscriberSpec, job: DeliveryJob | None = None) -> SendResult:
    sender = SmtpSender(local_hostname="feedwatch.test")
    return asyncio.run(sender.send(job or make_job(), sub, now=NOW))


def parse(received: Received) -> EmailMessage:
    message = email.message_from_bytes(received.content, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def text_part(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def html_part(message: EmailMessage) -> str:
    part = message.get_body(("html",))
    assert part is not None
    return str(part.get_content())


class _Elements(HTMLParser):
    """Every start tag of an HTML document with its attributes."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))

    handle_startendtag = handle_starttag


def elements(html_text: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Elements()
    parser.feed(html_text)
    parser.close()
    return parser.elements


@pytest.fixture
def tls(tmp_path: Path) -> Tls:
    """A trustme CA and a server certificate for 127.0.0.1; ``tls.ca_file`` is the CA PEM."""
    return make_tls(tmp_path)


# --------------------------------------------------------------------------- plain delivery


def test_plain_delivery_headers_parts_and_envelope() -> None:
    with SmtpServer() as server:
        sub = make_subscriber(server.port)
        result = send(sub)
    assert result == SendResult(
        ok=True, code=250, detail=f"250 accepted by 127.0.0.1:{server.port} for 2 recipients"
    )
    [received] = server.handler.messages
    assert received.mail_from == "alerts@example.org"
    assert received.rcpt_tos == TO
    assert not received.tls

    message = parse(received)
    built = build_message(make_job(), sub, now=NOW)
    assert message["Message-ID"] == built["Message-ID"] == "<fw-17-a1b2c3@example.org>"
    assert message["Subject"] == f"[feedwatch] climate: {TITLE}"
    assert message["From"] == SENDER
    assert [str(a) for a in message["To"].addresses] == list(TO)
    assert message["Date"] == "Wed, 01 May 2024 09:30:00 +0000"
    assert message["List-Id"] == "<ops.feedwatch>"
    assert message["List-Unsubscribe"] == "<mailto:alerts@example.org?subject=unsubscribe%20ops>"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["X-Feedwatch-Delivery"] == "fw-17-a1b2c3"
    assert message["X-Feedwatch-Rule"] == "climate"

    assert message.get_content_type() == "multipart/alternative"
    parts = list(message.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert all(p.get_content_charset() == "utf-8" for p in parts)

    text = text_part(message)
    assert "UN warns on [[climate]] finance gap" in text
    assert "the [[climate]] finance gap keeps growing" in text
    assert "UN News (un-news)" in text
    assert f"Link:      {LINK}" in text
    assert "Published: 2024-05-01 08:00 UTC" in text
    assert "Alerted:   2024-05-01 09:00 UTC" in text

    body = html_part(message)
    assert "UN warns on <mark>climate</mark> finance gap" in body
    anchors = [attrs for tag, attrs in elements(body) if tag == "a"]
    assert [a["href"] for a in anchors] == [LINK]


def test_message_id_is_stable_across_retries() -> None:
    job = make_job()
    with SmtpServer() as server:
        sub = make_subscriber(server.port)
        first = send(sub, job)
        second = send(sub, replace(job, attempts=1))
    assert first.ok
    assert second.ok
    ids = [parse(r)["Message-ID"] for r in server.handler.messages]
    assert ids == ["<fw-17-a1b2c3@example.org>"] * 2


def test_message_id_domain_falls_back_when_the_sender_has_none() -> None:
    job = make_job()
    idn = build_message(job, make_subscriber(sender="alerts@bücher.example"), now=NOW)
    literal = build_message(job, make_subscriber(sender="alerts@[127.0.0.1]"), now=NOW)
    assert idn["Message-ID"] == "<fw-17-a1b2c3@xn--bcher-kva.example>"
    assert literal["Message-ID"] == "<fw-17-a1b2c3@feedwatch.invalid>"


# --------------------------------------------------------------------------- hostile items


@pytest.mark.parametrize("newline", ["\r\n", "\n", "\r", "\u2028", "\u2029", "\x85", "\x0b"])
def test_title_cannot_inject_headers(newline: str) -> None:
    title = f"Floods{newline}Bcc: evil@example.org"
    job = make_job(make_alert(title=title))
    with SmtpServer() as server:
        result = send(make_subscriber(server.port), job)
    assert result.ok
    [received] = server.handler.messages
    assert received.rcpt_tos == TO
    message = parse(received)
    assert message["Bcc"] is None
    assert "evil@example.org" not in str(message["To"])
    assert message["Subject"] == "[feedwatch] climate: Floods Bcc: evil@example.org"
    # The title is still in the body, on one line.
    assert "Story:     Floods Bcc: evil@example.org" in text_part(message)


HOSTILE_TITLE = '<script>alert(1)</script><img src=x onerror="alert(2)"> climate'
HOSTILE_CONTENT = (
    '"><svg onload=alert(3)> climate <a href="javascript:alert(4)">x</a>'
    "<iframe src=//evil.example></iframe>"
)


@pytest.mark.parametrize(
    "link",
    ["javascript:alert(5)", "JaVaScRiPt:alert(5)", "data:text/html,<script>x</script>", None],
)
def test_hostile_markup_and_links_never_become_active(link: str | None) -> None:
    job = make_job(make_alert(title=HOSTILE_TITLE, content_text=HOSTILE_CONTENT, link=link))
    message = build_message(job, make_subscriber(), now=NOW)
    body = html_part(message)

    found = elements(body)
    tags = {tag for tag, _ in found}
    assert tags.isdisjoint({"script", "img", "svg", "iframe"})
    assert all(not name.startswith("on") for _, attrs in found for name in attrs)
    assert [attrs for tag, attrs in found if tag == "a"] == []
    lowered = body.lower()
    assert "<script" not in lowered
    assert "<iframe" not in lowered
    assert "data:" not in lowered
    # The item's text is shown, escaped.
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "Link:" not in text_part(message)


def test_http_link_is_kept_and_escaped_in_html() -> None:
    link = 'https://example.org/a?b=1&c="><script>x</script>'
    message = build_message(make_job(make_alert(link=link)), make_subscriber(), now=NOW)
    body = html_part(message)
    assert "<script" not in body
    hrefs = [attrs["href"] for tag, attrs in elements(body) if tag == "a"]
    assert hrefs == [link]
    assert f"Link:      {link}" in text_part(message)


def test_non_ascii_subject_round_trips() -> None:
    title = "Überschwemmung in 東京: climate émigrés"
    with SmtpServer() as server:
        result = send(make_subscriber(server.port), make_job(make_alert(title=title)))
    assert result.ok
    message = parse(server.handler.messages[0])
    assert message["Subject"] == f"[feedwatch] climate: {title}"
    assert "Überschwemmung in 東京: [[climate]] émigrés" in text_part(message)


def test_long_subject_is_cut_with_an_ellipsis() -> None:
    title = "climate " + "word " * 300
    message = build_message(make_job(make_alert(title=title)), make_subscriber(), now=NOW)
    subject = str(message["Subject"])
    assert len(subject) <= 200
    assert subject.endswith("…")
    assert subject.startswith("[feedwatch] climate: climate word word")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("a\r\nb", "a b"),
        ("a\u2028b\u2029c\x85d", "a b c d"),
        ("  tabs\tand\x00nul  ", "tabs and nul"),
        ("bidi\u202eevil\u2066x", "bidi evil x"),
        ("plain", "plain"),
    ],
)
def test_header_text_removes_controls_and_line_breaks(raw: str, expected: str) -> None:
    assert header_text(raw) == expected


# --------------------------------------------------------------------------- TLS and AUTH


def test_starttls(tls: Tls) -> None:
    with SmtpServer(tls_context=tls.server_context(), require_starttls=True) as server:
        result = send(make_subscriber(server.port, security="starttls", ca_file=tls.ca_file))
    assert result.ok, result.detail
    [received] = server.handler.messages
    assert received.tls
    assert received.rcpt_tos == TO


def test_implicit_tls(tls: Tls) -> None:
    with SmtpServer(ssl_context=tls.server_context()) as server:
        result = send(make_subscriber(server.port, security="tls", ca_file=tls.ca_file))
    assert result.ok, result.detail
    [received] = server.handler.messages
    assert received.tls


def test_untrusted_certificate_is_a_retryable_failure(tls: Tls) -> None:
    # No ca_file: the private CA is not trusted.
    with SmtpServer(ssl_context=tls.server_context()) as server:
        result = send(make_subscriber(server.port, security="tls"))
    assert not result.ok
    assert not result.permanent
    assert f"127.0.0.1:{server.port}" in result.detail
    assert "certificate" in result.detail
    assert server.handler.messages == []


def test_starttls_not_offered_sends_nothing_in_plain_text() -> None:
    with SmtpServer() as server:
        result = send(make_subscriber(server.port, security="starttls"))
    assert not result.ok
    assert not result.permanent
    assert "STARTTLS" in result.detail
    assert f"127.0.0.1:{server.port}" in result.detail
    assert server.handler.mail_from == []
    assert server.handler.messages == []


def _auth_server(tls: Tls) -> SmtpServer:
    return SmtpServer(
        tls_context=tls.server_context(),
        require_starttls=True,
        authenticator=password_authenticator("feedwatch", "s3cret"),
        auth_require_tls=True,
        auth_required=True,
    )


def test_auth_with_good_credentials(tls: Tls) -> None:
    with _auth_server(tls) as server:
        sub = make_subscriber(
            server.port,
            security="starttls",
            ca_file=tls.ca_file,
            username="feedwatch",
            password="s3cret",
        )
        result = send(sub)
    assert result.ok, result.detail
    [received] = server.handler.messages
    assert received.authenticated
    assert received.tls


def test_auth_with_wrong_credentials(tls: Tls) -> None:
    with _auth_server(tls) as server:
        sub = make_subscriber(
            server.port,
            security="starttls",
            ca_file=tls.ca_file,
            username="feedwatch",
            password="wrong",
        )
        result = send(sub)
    assert not result.ok
    assert not result.permanent
    assert result.code == 535
    assert "authentication failed" in result.detail
    assert server.handler.mail_from == []


def test_auth_not_offered_without_tls_fails_without_sending(tls: Tls) -> None:
    # The server offers AUTH only after STARTTLS; a "none" client never gets it.
    with _auth_server(tls) as server:
        sub = make_subscriber(server.port, username="feedwatch", password="s3cret")
        result = send(sub)
    assert not result.ok
    assert not result.permanent
    assert "authentication failed" in result.detail
    assert server.handler.mail_from == []


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("reply", "permanent"),
    [("550 5.1.1 No such user", True), ("450 4.2.1 Mailbox busy, try later", False)],
)
def test_all_recipients_refused(reply: str, permanent: bool) -> None:
    handler = RecordingHandler(rcpt_replies={"*": reply})
    with SmtpServer(handler) as server:
        result = send(make_subscriber(server.port))
    assert not result.ok
    assert result.permanent is permanent
    assert result.code == int(reply[:3])
    assert result.detail.startswith(f"all recipients refused by 127.0.0.1:{server.port}: ")
    assert all(address in result.detail for address in TO)
    assert handler.messages == []


def test_some_recipients_refused_is_still_a_delivery() -> None:
    handler = RecordingHandler(rcpt_replies={"desk@example.net": "550 5.1.1 No such user"})
    with SmtpServer(handler) as server:
        result = send(make_subscriber(server.port))
    assert result.ok
    assert result.code == 250
    assert "for 1 recipient" in result.detail
    assert "refused: desk@example.net (550 5.1.1 No such user)" in result.detail
    [received] = handler.messages
    assert received.rcpt_tos == ("ops@example.org",)


@pytest.mark.parametrize(
    ("changes", "code", "permanent", "words"),
    [
        ({"mail_reply": "553 5.7.1 Sender not allowed"}, 553, True, "sender alerts@example.org"),
        ({"mail_reply": "451 4.3.0 Try again later"}, 451, False, "sender alerts@example.org"),
        ({"data_reply": "554 5.6.0 Message rejected"}, 554, True, "message refused"),
        ({"data_reply": "452 4.3.1 Out of storage"}, 452, False, "message refused"),
    ],
)
def test_sender_and_data_refusals(
    changes: dict[str, Any], code: int, permanent: bool, words: str
) -> None:
    handler = RecordingHandler(**changes)
    with SmtpServer(handler) as server:
        result = send(make_subscriber(server.port))
    assert not result.ok
    assert result.code == code
    assert result.permanent is permanent
    assert words in result.detail
    assert str(code) in result.detail
    assert handler.messages == []


# --------------------------------------------------------------------------- network trouble


def test_closed_port_is_retryable() -> None:
    with refusing_port() as port:
        result = send(make_subscriber(port))
    assert not result.ok
    assert not result.permanent
    assert result.detail == f"connection refused by 127.0.0.1:{port}"


def test_silent_server_times_out_and_is_retryable() -> None:
    with silent_port() as port:
        result = send(make_subscriber(port, timeout=0.3))
    assert not result.ok
    assert not result.permanent
    assert result.detail == f"timed out after 0.3 s talking to 127.0.0.1:{port}"


# --------------------------------------------------------------------------- digests and tests


def test_digest_groups_alerts_by_rule_in_time_order() -> None:
    def at(minute: int) -> datetime:
        return datetime(2024, 5, 1, 8, minute, tzinfo=UTC)

    alerts = (
        make_alert(alert_id=3, rule="floods", title="Third: floods", created_at=at(40)),
        make_alert(alert_id=1, rule="climate", title="First: climate", created_at=at(10)),
        make_alert(alert_id=2, rule="floods", title="Second: floods", created_at=at(20)),
        make_alert(alert_id=4, rule="climate", title="Fourth: climate", created_at=at(50)),
    )
    job = make_job(
        *alerts,
        kind="digest",
        message_id="fw-digest-9",
        window_start=datetime(2024, 5, 1, 8, 0, tzinfo=UTC),
        window_end=datetime(2024, 5, 1, 9, 0, tzinfo=UTC),
    )
    with SmtpServer() as server:
        result = send(make_subscriber(server.port), job)
    assert result.ok
    message = parse(server.handler.messages[0])
    assert message["Subject"] == "[feedwatch] Digest for ops: 4 alerts, 2024-05-01 08:00–09:00 UTC"
    assert message["X-Feedwatch-Rule"] is None

    text = text_part(message)
    order = [
        text.index(marker)
        for marker in (
            "== Rule climate (2 alerts) ==",
            "First: [[climate]]",
            "Fourth: [[climate]]",
            "== Rule floods (2 alerts) ==",
            "Second: floods",
            "Third: floods",
        )
    ]
    assert order == sorted(order)

    body = html_part(message)
    headings = [body.index(f"<h2>Rule {rule} (2 alerts)</h2>") for rule in ("climate", "floods")]
    assert headings == sorted(headings)
    assert body.index("Second: floods") < body.index("Third: floods")


def test_test_message_says_it_is_a_test() -> None:
    job = make_job(test=True, alerts=())
    with SmtpServer() as server:
        result = send(make_subscriber(server.port), job)
    assert result.ok
    message = parse(server.handler.messages[0])
    assert message["Subject"] == "[feedwatch] TEST message for subscriber ops"
    assert message["X-Feedwatch-Rule"] is None
    for body in (text_part(message), html_part(message)):
        assert "TEST message" in body
        assert "No alert was raised" in body

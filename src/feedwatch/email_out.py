"""The email channel of alert delivery: build a message for a delivery job, send it over SMTP.

Two halves:

* :func:`build_message` is pure: (job, subscriber, now) → an
  :class:`email.message.EmailMessage` under :data:`email.policy.SMTP`. Headers
  are set through the email package, never concatenated. Text from items
  (titles, content) comes from strangers: before it goes into a header, every
  control or line-break character (C0, DEL, C1 including NEL, U+2028/U+2029,
  and the bidi overrides that can disguise text) becomes a space and
  whitespace collapses, so a title cannot add a header. The subject is cut to
  about 200 characters. The body is multipart/alternative with a text/plain
  and a text/html part (UTF-8). Each alert shows its rule, the story title, a
  snippet with the matched words marked (``[[word]]`` in text, ``<mark>`` in
  HTML), the feed, the link (http and https only), and the published and alert
  times in UTC. A digest groups its alerts by rule, in time order. In the HTML,
  all item text is escaped, and the whole body then goes through a strict
  allow-list sanitiser (:func:`feedwatch._html.sanitize_email_html`) as a
  second line of defence. The Message-ID is ``<{job.message_id}@{sender
  domain}>``, so a retry of the same job reuses it and receivers can dedupe.

* :class:`SmtpSender` sends a built message with :mod:`smtplib` in a worker
  thread (:func:`asyncio.to_thread`). Security ``"tls"`` connects with implicit
  TLS; ``"starttls"`` connects in plain text and upgrades with STARTTLS, and
  fails (sending nothing) if the server does not offer it; ``"none"`` stays in
  plain text. Certificates are verified against the system store plus
  ``ca_file`` when set. The envelope recipients are exactly the configured
  ``to`` addresses, never read back from headers.

  ``send`` never raises for SMTP or network trouble; it returns a
  :class:`~feedwatch._model.SendResult`:

  ====================================================  ===========================
  outcome                                               result
  ====================================================  ===========================
  accepted (some recipients may be refused)             ok, code 250
  every recipient refused                               permanent if all codes 5xx
  sender refused, data refused, other SMTP replies      permanent if 5xx, else retry
  authentication failed or not offered                  retry (the operator can fix it)
  connection refused, timeout, DNS, TLS, disconnect     retry
  ====================================================  ===========================

  Errors after the message was accepted (a failing QUIT) do not turn a
  delivery into a failure: that would send it twice.

It does NOT choose which jobs to send, record outcomes or compute back-off
(that is the dispatcher's work), and it does not decide what an alert is.
"""

from __future__ import annotations

import asyncio
import email.policy
import html
import logging
import re
import smtplib
import socket
import ssl
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses, parseaddr
from urllib.parse import quote, urlsplit

from feedwatch._html import sanitize_email_html
from feedwatch._logging import event, get_logger
from feedwatch._model import AlertContent, DeliveryJob, EmailSettings, SendResult, SubscriberSpec
from feedwatch.snippet import Snippet, make_snippet

__all__ = ["SmtpSender", "build_message", "header_text"]

log = get_logger(__name__)

#: Subjects longer than this are cut, with an ellipsis.
SUBJECT_LIMIT = 200
#: Characters of content shown around the first match.
SNIPPET_WIDTH = 160
#: Titles are shown whole up to this length.
TITLE_WIDTH = 300
#: Used for the Message-ID when the sender address has no usable domain.
FALLBACK_DOMAIN = "feedwatch.invalid"

# --------------------------------------------------------------------------- text helpers

# C0 controls (line breaks and tabs included), DEL, C1 controls (NEL is U+0085),
# lone surrogates, the Unicode line and paragraph separators, and the bidi
# embeddings, overrides and isolates (they can make a title read as something
# else). Each becomes one space, so offsets into the text stay valid.
_UNSAFE_RE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_SPACES_RE = re.compile(r"\s{2,}")
_DOMAIN_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9-]{1,63})*$")
# RFC 5322 atext plus dot, for the local part of the Message-ID and the List-Id.
_NOT_ATEXT_RE = re.compile(r"[^A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]")


def _flatten(text: str) -> str:
    """``text`` with every unsafe character replaced by a space (same length)."""
    return _UNSAFE_RE.sub(" ", text)


def header_text(text: str) -> str:
    """``text`` made safe for a header: no control or line-break characters, one-space runs."""
    return " ".join(_flatten(text).split())


def _truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    # End on a word boundary when there is one near the end.
    space = cut.rfind(" ", limit - 40)
    if space > 0:
        cut = cut[:space]
    return cut.rstrip() + "…"


def _utc(dt: datetime) -> datetime:
    # Records carry UTC-aware datetimes; a naive one is taken as UTC.
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _when(dt: datetime | None) -> str:
    return "unknown" if dt is None else _utc(dt).strftime("%Y-%m-%d %H:%M UTC")


def _window(start: datetime, end: datetime) -> str:
    s, e = _utc(start), _utc(end)
    if s.date() == e.date():
        return f"{s:%Y-%m-%d %H:%M}–{e:%H:%M} UTC"
    return f"{s:%Y-%m-%d %H:%M} – {e:%Y-%m-%d %H:%M} UTC"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _http_link(link: str | None) -> str | None:
    """``link`` if it is an absolute http or https URL without spaces or controls."""
    if not link:
        return None
    link = link.strip()
    if _UNSAFE_RE.search(link) or any(c.isspace() for c in link):
        return None
    try:
        parts = urlsplit(link)
    except ValueError:
        return None
    return link if parts.scheme.lower() in ("http", "https") and parts.netloc else None


def _sender_address(sender: str) -> str:
    """The bare address of ``sender`` (which may be ``Name <addr>``)."""
    return parseaddr(header_text(sender))[1] or header_text(sender)


def _domain(address: str) -> str:
    domain = address.rpartition("@")[2].strip().rstrip(".")
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            return FALLBACK_DOMAIN
    return domain.lower() if domain and _DOMAIN_RE.match(domain) else FALLBACK_DOMAIN


def _addresses(values: Iterable[str]) -> list[Address]:
    return [
        Address(display_name=name, addr_spec=addr)
        for name, addr in getaddresses([header_text(v) for v in values])
        if addr
    ]


# --------------------------------------------------------------------------- snippets


def _snippet(text: str, spans: Sequence[tuple[int, int]], width: int) -> list[tuple[str, bool]]:
    """``text`` cut around ``spans`` as (piece, marked) segments, overlapping marks merged."""
    snip: Snippet = make_snippet(_flatten(text), spans, width)
    merged: list[tuple[int, int]] = []
    for start, end in sorted(snip.marks):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    segments: list[tuple[str, bool]] = []
    pos = 0
    for start, end in merged:
        if start > pos:
            segments.append((snip.text[pos:start], False))
        segments.append((snip.text[start:end], True))
        pos = end
    if pos < len(snip.text):
        segments.append((snip.text[pos:], False))
    return [(_SPACES_RE.sub(" ", piece), marked) for piece, marked in segments]


def _as_text(segments: list[tuple[str, bool]]) -> str:
    return "".join(f"[[{piece}]]" if marked else piece for piece, marked in segments).strip()


def _as_html(segments: list[tuple[str, bool]]) -> str:
    return "".join(
        f"<mark>{html.escape(piece)}</mark>" if marked else html.escape(piece)
        for piece, marked in segments
    ).strip()


def _spans(alert: AlertContent, field: str) -> list[tuple[int, int]]:
    return [(span.start, span.end) for span in alert.spans if span.field == field]


# --------------------------------------------------------------------------- rendering


class _Rendered:
    """The plain-text and HTML renderings of one alert."""

    def __init__(self, alert: AlertContent) -> None:
        title = _snippet(alert.title, _spans(alert, "title"), TITLE_WIDTH)
        if not "".join(piece for piece, _ in title).strip():
            title = [("(no title)", False)]
        excerpt = (
            _snippet(alert.content_text, _spans(alert, "content"), SNIPPET_WIDTH)
            if alert.content_text.strip()
            else []
        )
        feed = header_text(alert.feed)
        feed_title = header_text(alert.feed_title or "")
        feed_label = f"{feed_title} ({feed})" if feed_title and feed_title != feed else feed
        rule = header_text(alert.rule)
        query = header_text(alert.rule_query)
        link = _http_link(alert.link)

        lines = [f"Story:     {_as_text(title)}"]
        if excerpt:
            lines.append(f"Excerpt:   {_as_text(excerpt)}")
        lines.append(f"Rule:      {rule}" + (f"  (query: {query})" if query else ""))
        lines.append(f"Feed:      {feed_label}")
        if link:
            lines.append(f"Link:      {link}")
        lines.append(f"Published: {_when(alert.published)}")
        lines.append(f"Alerted:   {_when(alert.created_at)}")
        self.text = "\n".join(lines)

        items = [
            f"<li>Rule: <strong>{html.escape(rule)}</strong>"
            + (f" <code>{html.escape(query)}</code>" if query else "")
            + "</li>",
            f"<li>Feed: {html.escape(feed_label)}</li>",
        ]
        if link:
            escaped = html.escape(link, quote=True)
            items.append(f'<li>Link: <a href="{escaped}">{escaped}</a></li>')
        items.append(f"<li>Published: {_time_html(alert.published)}</li>")
        items.append(f"<li>Alerted: {_time_html(alert.created_at)}</li>")
        parts = [f"<h3>{_as_html(title)}</h3>"]
        if excerpt:
            parts.append(f"<blockquote>{_as_html(excerpt)}</blockquote>")
        parts.append("<ul>" + "".join(items) + "</ul>")
        self.html = "<div>" + "".join(parts) + "</div>"


def _time_html(dt: datetime | None) -> str:
    if dt is None:
        return "unknown"
    return f'<time datetime="{_utc(dt).isoformat()}">{html.escape(_when(dt))}</time>'


def _in_time_order(alerts: Iterable[AlertContent]) -> list[AlertContent]:
    return sorted(alerts, key=lambda a: (_utc(a.created_at), a.alert_id))


def _by_rule(alerts: Sequence[AlertContent]) -> list[tuple[str, list[AlertContent]]]:
    """Alerts grouped by rule; groups in the order of their first alert, alerts in time order."""
    groups: dict[str, list[AlertContent]] = {}
    for alert in _in_time_order(alerts):
        groups.setdefault(alert.rule, []).append(alert)
    return list(groups.items())


def _subject(job: DeliveryJob, sub: SubscriberSpec) -> str:
    name = header_text(sub.name)
    if job.test:
        subject = f"[feedwatch] TEST message for subscriber {name}"
    elif job.kind == "notice":
        subject = f"[feedwatch] notice: {header_text(job.notice_subject)}"
    elif job.kind == "digest":
        subject = f"[feedwatch] Digest for {name}: {_plural(len(job.alerts), 'alert')}"
        if job.window_start is not None and job.window_end is not None:
            subject += f", {_window(job.window_start, job.window_end)}"
    elif job.alerts:
        alert = job.alerts[0]
        title = header_text(alert.title) or "(no title)"
        subject = f"[feedwatch] {header_text(alert.rule)}: {title}"
    else:
        subject = f"[feedwatch] Alert for {name}"
    return _truncate(subject, SUBJECT_LIMIT)


def _bodies(job: DeliveryJob, sub: SubscriberSpec) -> tuple[str, str]:
    """The plain-text and (unsanitised) HTML bodies."""
    name = header_text(sub.name)
    text: list[str] = []
    parts: list[str] = []
    if job.test:
        notice = (
            f"This is a TEST message from feedwatch for subscriber {name}. "
            "No alert was raised: it only checks that email delivery to this address works."
        )
        text.append(notice)
        parts.append(f"<h1>Test message</h1><p>{html.escape(notice)}</p>")
        if job.alerts:
            sample = "Below is how alerts will look (samples, not real alerts)."
            text.append(sample)
            parts.append(f"<p>{html.escape(sample)}</p>")
    if job.kind == "notice" and not job.test:
        heading = f"Operator notice: {header_text(job.notice_subject)}"
        text.append(heading)
        text.append(job.notice_text)
        parts.append(f"<h1>{html.escape(heading)}</h1>")
        parts += [f"<p>{html.escape(line)}</p>" for line in job.notice_text.splitlines()]
    elif job.kind == "digest" and not job.test:
        intro = f"Digest for {name}: {_plural(len(job.alerts), 'alert')}"
        if job.window_start is not None and job.window_end is not None:
            intro += f" between {_window(job.window_start, job.window_end)}"
        text.append(intro + ".")
        parts.append(f"<h1>{html.escape(intro)}</h1>")
        for rule, alerts in _by_rule(job.alerts):
            heading = f"Rule {header_text(rule)} ({_plural(len(alerts), 'alert')})"
            text.append(f"== {heading} ==")
            parts.append(f"<h2>{html.escape(heading)}</h2>")
            for alert in alerts:
                rendered = _Rendered(alert)
                text.append(rendered.text)
                parts.append(rendered.html)
    else:
        for alert in _in_time_order(job.alerts):
            if not job.test:
                intro = f"Rule {header_text(alert.rule)} matched a story."
                text.append(intro)
                parts.append(f"<h2>{html.escape(intro)}</h2>")
            rendered = _Rendered(alert)
            text.append(rendered.text)
            parts.append(rendered.html)
    footer = (
        f"Sent by feedwatch to subscriber {name} (delivery {header_text(job.message_id)}). "
        "To stop these messages, remove or change the subscriber in the feedwatch configuration."
    )
    text.append("-- \n" + footer)
    parts.append(f"<hr><p><small>{html.escape(footer)}</small></p>")
    return "\n\n".join(text) + "\n", "".join(parts)


_HTML_HEAD = '<!DOCTYPE html>\n<html><head><meta charset="utf-8"></head><body>\n'
_HTML_TAIL = "\n</body></html>\n"


def build_message(job: DeliveryJob, sub: SubscriberSpec, *, now: datetime) -> EmailMessage:
    """Build the email for ``job`` to subscriber ``sub`` (pure; ``now`` is the Date).

    Raises:
        ValueError: ``sub`` has no email settings, or an address cannot be parsed.
    """
    settings = sub.email
    if settings is None:
        raise ValueError(f"subscriber {sub.name!r} has no email settings")
    sender = _sender_address(settings.sender)
    name = _NOT_ATEXT_RE.sub("-", header_text(sub.name)) or "subscriber"
    delivery = header_text(job.message_id)

    msg = EmailMessage(policy=email.policy.SMTP)
    msg["Subject"] = _subject(job, sub)
    msg["From"] = _addresses([settings.sender])
    msg["To"] = _addresses(settings.to)
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = f"<{_NOT_ATEXT_RE.sub('-', delivery)}@{_domain(sender)}>"
    msg["List-Id"] = f"<{name}.feedwatch>"
    unsubscribe = quote(f"unsubscribe {name}", safe="")
    msg["List-Unsubscribe"] = f"<mailto:{quote(sender, safe='@')}?subject={unsubscribe}>"
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Feedwatch-Delivery"] = delivery
    if job.kind == "alert" and job.alerts and not job.test:
        msg["X-Feedwatch-Rule"] = header_text(job.alerts[0].rule)

    text, body_html = _bodies(job, sub)
    msg.set_content(text, subtype="plain", charset="utf-8")
    msg.add_alternative(
        _HTML_HEAD + sanitize_email_html(body_html) + _HTML_TAIL, subtype="html", charset="utf-8"
    )
    return msg


# --------------------------------------------------------------------------- sending


def _reply(message: bytes | str) -> str:
    """A server reply as one short line."""
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
    return _truncate(header_text(text), 200)


def _coded(code: int, message: bytes | str) -> str:
    return f"{code} {_reply(message)}".strip()


def _is_5xx(code: int) -> bool:
    return 500 <= code <= 599


def _tls_context(settings: EmailSettings) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if settings.ca_file:
        context.load_verify_locations(cafile=settings.ca_file)
    return context


def _quit(smtp: smtplib.SMTP) -> None:
    """Say goodbye; whatever goes wrong now changes nothing about the delivery."""
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        pass
    finally:
        smtp.close()


class SmtpSender:
    """Send email delivery jobs over SMTP (see the module docstring for the outcomes).

    Args:
        local_hostname: the name sent with EHLO; None lets :mod:`smtplib` use
            the machine's fully qualified domain name.
    """

    def __init__(self, *, local_hostname: str | None = None) -> None:
        self._local_hostname = local_hostname

    async def send(self, job: DeliveryJob, sub: SubscriberSpec, *, now: datetime) -> SendResult:
        """Build and send ``job``'s message to ``sub``; never raises for SMTP or network trouble.

        Raises:
            ValueError: ``sub`` has no email settings (a wiring error, not a delivery failure).
        """
        settings = sub.email
        if settings is None:
            raise ValueError(f"subscriber {sub.name!r} has no email settings")
        msg = build_message(job, sub, now=now)
        result = await asyncio.to_thread(self._send_blocking, msg, settings)
        event(
            log,
            logging.INFO if result.ok else logging.WARNING,
            "email sent" if result.ok else "email failed",
            subscriber=sub.name,
            delivery=job.message_id,
            ok=result.ok,
            permanent=result.permanent,
            code=result.code,
            detail=result.detail,
        )
        return result

    def _send_blocking(self, msg: EmailMessage, settings: EmailSettings) -> SendResult:
        where = f"{settings.host}:{settings.port}"
        try:
            return self._deliver(msg, settings, where)
        except smtplib.SMTPRecipientsRefused as exc:
            refused = exc.recipients
            codes = [code for code, _ in refused.values()]
            listed = "; ".join(f"{addr} ({_coded(c, m)})" for addr, (c, m) in refused.items())
            return SendResult(
                ok=False,
                permanent=bool(codes) and all(_is_5xx(c) for c in codes),
                code=codes[0] if codes else None,
                detail=f"all recipients refused by {where}: {listed}",
            )
        except smtplib.SMTPAuthenticationError as exc:
            return SendResult(
                ok=False,
                code=exc.smtp_code,
                detail=f"authentication failed at {where}: {_coded(exc.smtp_code, exc.smtp_error)}",
            )
        except smtplib.SMTPSenderRefused as exc:
            return _response_failure(exc, f"sender {exc.sender} refused by {where}")
        except smtplib.SMTPDataError as exc:
            return _response_failure(exc, f"message refused by {where}")
        except smtplib.SMTPResponseException as exc:
            return _response_failure(exc, f"SMTP error from {where}")
        except smtplib.SMTPServerDisconnected as exc:
            # smtplib reports a read timeout as a disconnect; say what it was.
            if isinstance(exc.__context__, TimeoutError):
                return _timed_out(settings, where)
            return SendResult(ok=False, detail=f"{where} closed the connection: {_reply(str(exc))}")
        except smtplib.SMTPNotSupportedError as exc:
            return SendResult(ok=False, detail=f"{where}: {_reply(str(exc))}")
        except smtplib.SMTPException as exc:
            return SendResult(ok=False, detail=f"SMTP error with {where}: {_reply(str(exc))}")
        except ssl.SSLCertVerificationError as exc:
            reason = exc.verify_message or exc.reason or str(exc)
            return SendResult(
                ok=False, detail=f"TLS certificate of {where} not trusted: {_reply(str(reason))}"
            )
        except ssl.SSLError as exc:
            return SendResult(
                ok=False, detail=f"TLS error with {where}: {_reply(exc.reason or str(exc))}"
            )
        except socket.gaierror as exc:
            return SendResult(
                ok=False,
                detail=f"cannot resolve {settings.host}: {_reply(exc.strerror or str(exc))}",
            )
        except ConnectionRefusedError:
            return SendResult(ok=False, detail=f"connection refused by {where}")
        except TimeoutError:
            return _timed_out(settings, where)
        except OSError as exc:
            # Covers a CA file that cannot be read, resets and unreachable networks.
            reason = exc.strerror or str(exc) or type(exc).__name__
            return SendResult(ok=False, detail=f"network error with {where}: {_reply(reason)}")
        except UnicodeError as exc:
            # smtplib encodes credentials and commands as ASCII.
            return SendResult(
                ok=False, detail=f"cannot talk to {where}: text not encodable ({_reply(str(exc))})"
            )

    def _deliver(self, msg: EmailMessage, settings: EmailSettings, where: str) -> SendResult:
        context = _tls_context(settings) if settings.security in ("tls", "starttls") else None
        smtp: smtplib.SMTP
        if settings.security == "tls":
            smtp = smtplib.SMTP_SSL(
                settings.host,
                settings.port,
                local_hostname=self._local_hostname,
                timeout=settings.timeout,
                context=context,
            )
        else:
            smtp = smtplib.SMTP(
                settings.host,
                settings.port,
                local_hostname=self._local_hostname,
                timeout=settings.timeout,
            )
        try:
            smtp.ehlo_or_helo_if_needed()
            if settings.security == "starttls":
                # Never fall back to plain text: a stripped STARTTLS is an attack.
                if not smtp.has_extn("starttls"):
                    return SendResult(
                        ok=False,
                        detail=f"{where} does not offer STARTTLS; nothing sent in plain text",
                    )
                code, reply = smtp.starttls(context=context)
                if code != 220:
                    return SendResult(
                        ok=False,
                        permanent=False,
                        code=code,
                        detail=f"STARTTLS refused by {where}: {_coded(code, reply)}",
                    )
                smtp.ehlo()
            if settings.username is not None:
                if not smtp.has_extn("auth"):
                    return SendResult(
                        ok=False,
                        detail=f"authentication failed: {where} does not offer AUTH here",
                    )
                smtp.login(settings.username, settings.password or "")
            recipients = [addr for _, addr in getaddresses(list(settings.to)) if addr]
            refused = smtp.send_message(
                msg, from_addr=_sender_address(settings.sender), to_addrs=recipients
            )
        finally:
            _quit(smtp)
        accepted = len(recipients) - len(refused)
        detail = f"250 accepted by {where} for {_plural(accepted, 'recipient')}"
        if refused:
            listed = "; ".join(f"{addr} ({_coded(c, m)})" for addr, (c, m) in refused.items())
            detail += f"; refused: {listed}"
        return SendResult(ok=True, code=250, detail=detail)


def _timed_out(settings: EmailSettings, where: str) -> SendResult:
    return SendResult(ok=False, detail=f"timed out after {settings.timeout:g} s talking to {where}")


def _response_failure(exc: smtplib.SMTPResponseException, what: str) -> SendResult:
    code = exc.smtp_code
    return SendResult(
        ok=False,
        permanent=_is_5xx(code),
        code=code if code > 0 else None,
        detail=f"{what}: {_coded(code, exc.smtp_error)}",
    )

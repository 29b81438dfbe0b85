"""Links and content: no script, no dangerous link, on any surface feedwatch writes.

A victim feed (RSS 2.0, Atom 1.0 or JSON Feed) whose every item mentions AI, so
that every item raises an alert and is delivered, carries one hostile construct
per item: a ``javascript:``, ``vbscript:``, ``data:`` or ``file:`` link (as the
item's link, enclosure, image, or an href/src in its content, the scheme
disguised by case, entities, tabs or control characters), or content with
script, iframe, object/embed, event handlers, a form posting to
``javascript:``, a meta refresh, style with ``expression()``/``url()``, or a
base href.

It is served to a real feedwatch (see ``harness``) with two subscribers: an
email one, whose messages a real aiosmtpd server on 127.0.0.1 receives
(``smtp_server``), and a webhook one, whose posts a real receiver on 127.0.0.1
records (``webhook_receiver``). One checker (:func:`dangers`) scans a text,
after HTML-entity decoding, for every dangerous pattern; it is run over every
surface:

* storage: every text column of every stored item (``outcome.rows``);
* the emails as received, every header and every part decoded (text and HTML);
* the webhook payloads as received (every string in the JSON);
* the JSON API (``/api/v1/items``, ``/api/v1/alerts``, ``/api/v1/feeds``) and the
  Atom feed of the alerts (``/alerts.atom``, every text and attribute value), from
  ``feedwatch.server.create_app`` called through ``httpx.ASGITransport``.

Every link that remains (an item's URL, an href or src in stored HTML or in an
email, the payload's ``item.link``, the API's URLs, the Atom links) is http(s).
An item's guid (its identity: ``entry_key``, never shown as a link) is checked
for everything but a scheme, since an RSS permalink guid may be ``javascript:``.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import html
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness import XML, Outcome, Scene, scene
from smtp_server import Received, SmtpServer
from webhook_receiver import Delivery, WebhookReceiver

from feedwatch.metrics import Metrics
from feedwatch.server import create_app

CATEGORY = "Links and content"

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#: Written inside script bodies, event handlers and CSS only: it must appear nowhere.
CODE = "STOLEN"

# ------------------------------------------------------------------ the checker

_SCHEMES = r"(?:java|vb|live)script|data|file"
#: Each pattern is searched case-insensitively in the entity-decoded text with tab,
#: line feed, carriage return and NUL removed (a browser drops them inside a URL).
DANGEROUS: dict[str, str] = {
    # A scheme where a URL starts: not inside a path ("http://h/javascript:x" is a path).
    "dangerous URL scheme": rf"(?<![\w/.%~-])(?:{_SCHEMES})\s*:",
    "script element": r"<\s*/?\s*script\b",
    "iframe or frame": r"<\s*/?\s*i?frame",
    "object, embed or applet": r"<\s*/?\s*(?:object|embed|applet)\b",
    "form or form control": r"<\s*/?\s*(?:form|input|button|textarea|select)\b",
    "svg or math": r"<\s*/?\s*(?:svg|math)\b",
    "style element": r"<\s*/?\s*style\b",
    "base element": r"<\s*base\b",
    "link element": r"<\s*link\b",
    # The email's own <meta charset="utf-8"> is the only meta allowed.
    "meta element": r"<\s*meta\b(?![^>]*\bcharset=\"?utf-8\"?\s*>)",
    "meta refresh": r"http-equiv|\brefresh\b",
    "event handler": r"\bon[a-z]+\s*=",
    "style attribute": r"\bstyle\s*=",
    "srcdoc, formaction or xlink": r"\b(?:srcdoc|formaction|xlink:href)\s*=",
    "CSS expression": r"expression\s*\(",
    "CSS url()": r"\burl\s*\(",
    "CSS import": r"@import",
    "script code": CODE,
}
_DANGEROUS_RE = {name: re.compile(pattern, re.IGNORECASE) for name, pattern in DANGEROUS.items()}
_URL_NOISE = re.compile("[\t\n\r\x00]")


_OPENS_VALUE = re.compile(r"""=\s*["']$""")
_WEB_URL_START = re.compile(r"\s*https?://", re.IGNORECASE)


def _in_web_url_attribute(decoded: str, at: int) -> bool:
    """Whether position ``at`` lies in a quoted attribute value that is an http(s) URL.

    ``href="http://host/ javascript:x"`` is a link to a path on ``host`` (the
    relative-URI pass of the parser joins whatever it does not read as a scheme
    to the feed's URL); a browser reads it as http, so it is not a scheme there.
    """
    quote = max(decoded.rfind('"', 0, at), decoded.rfind("'", 0, at))
    return (
        quote > 0
        and _OPENS_VALUE.search(decoded, max(0, quote - 10), quote + 1) is not None
        and _WEB_URL_START.match(decoded[quote + 1 : at]) is not None
    )


def dangers(text: str, *, identifier: bool = False) -> list[str]:
    """The dangerous patterns found in ``text`` (after HTML-entity decoding), with context.

    ``identifier``: ``text`` is an item's guid or entry key, an opaque name that no
    surface shows as a link (emails, webhooks and Atom leave it out; the API gives
    it as ``entry_key``): a scheme there is no link, everything else still counts.
    """
    decoded = _URL_NOISE.sub("", html.unescape(text))
    found = []
    for name, pattern in _DANGEROUS_RE.items():
        if identifier and name == "dangerous URL scheme":
            continue
        for match in pattern.finditer(decoded):
            if name == "dangerous URL scheme" and _in_web_url_attribute(decoded, match.start()):
                continue
            start = max(0, match.start() - 40)
            found.append(f"{name}: ...{decoded[start : match.end() + 40]!r}...")
    return found


#: The columns (and API fields) that hold an item's identity, see ``dangers``.
IDENTIFIERS = {"guid", "entry_key"}


def assert_clean(text: str | None, where: str, *, identifier: bool = False) -> None:
    if text:
        found = dangers(text, identifier=identifier)
        assert not found, f"{where}: {found[:3]}"


def assert_web_link(url: str | None, where: str, *, optional: bool = True) -> None:
    """``url`` is an http(s) URL (or None, if ``optional``)."""
    if url is None and optional:
        return
    assert isinstance(url, str), f"{where}: {url!r}"
    assert re.match(r"https?://[^/\s]", url, re.IGNORECASE), f"{where}: not http(s): {url!r}"


def strings(value: Any) -> Iterator[str]:
    """Every string (keys too) in a JSON value."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def without_identifiers(value: Any) -> Any:
    """``value`` (JSON) without the ``IDENTIFIERS`` fields, which are checked apart."""
    if isinstance(value, dict):
        return {k: without_identifiers(v) for k, v in value.items() if k not in IDENTIFIERS}
    if isinstance(value, list):
        return [without_identifiers(v) for v in value]
    return value


class _Links(HTMLParser):
    """Every URL-bearing attribute of an HTML text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.urls: list[tuple[str, str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("href", "src", "action", "data", "background", "poster", "cite"):
                self.urls.append((tag, name, value))


def assert_html_links(markup: str, where: str) -> list[str]:
    """Every href/src/... in ``markup`` is http(s); returns them."""
    parser = _Links()
    parser.feed(markup)
    parser.close()
    for tag, name, value in parser.urls:
        assert_web_link(value, f"{where} <{tag} {name}>", optional=False)
    return [value or "" for _, _, value in parser.urls]


# ------------------------------------------------------------------ the cases

#: Hostile link values: (label, value as it is written inside XML text or an attribute).
LINKS: list[tuple[str, str]] = [
    ("javascript", "javascript:pwned(1)"),
    ("mixed case", "JaVaScRiPt:pwned(2)"),
    ("tab in the scheme", "java&#x09;script:pwned(3)"),
    ("newline in the scheme", "java&#x0A;script:pwned(4)"),
    ("entity for the j", "&#106;avascript:pwned(5)"),
    ("leading whitespace", " &#x09;&#x0D;&#x0A; javascript:pwned(6)"),
    ("text/html data", "data:text/html,%3Cscript%3Epwned(7)%3C/script%3E"),
    ("base64 data", "data:text/html;base64,PHNjcmlwdD5wd25lZCg4KTwvc2NyaXB0Pg=="),
    ("vbscript", "vbscript:pwned(9)"),
    ("file", "file:///etc/passwd"),
]

#: Hostile HTML fragments (label, markup); CODE marks what must never run or show.
CONTENT: list[tuple[str, str]] = [
    (
        "script",
        f"<p>before</p><script>{CODE}(1)</script><script src='//evil.example/x.js'></script>",
    ),
    (
        "iframe",
        '<iframe src="javascript:pwned(1)">fallback</iframe><iframe srcdoc="&lt;b&gt;"></iframe>',
    ),
    (
        "object and embed",
        '<object data="javascript:pwned(1)">obj</object><embed src="javascript:pwned(1)">',
    ),
    ("img onerror", f'<img src="x.png" onerror="{CODE}(2)" alt="pic">'),
    ("onclick", f'<p onclick="{CODE}(3)" onmouseover="{CODE}(3)">click</p>'),
    (
        "svg onload",
        f'<svg onload="{CODE}(4)"><circle r="1"/></svg><svg><script>{CODE}(4)</script></svg>',
    ),
    ("body onload", f'<body onload="{CODE}(5)">body text</body>'),
    (
        "form to javascript",
        '<form action="javascript:pwned(1)" method="post"><input type="text" name="q">'
        '<button formaction="javascript:pwned(1)">go</button></form>',
    ),
    *[
        (f"a href {label}", f'<a href="{value}">link {n}</a>')
        for n, (label, value) in enumerate(LINKS)
    ],
    *[
        (f"img src {label}", f'<img src="{value}" alt="img {n}">')
        for n, (label, value) in enumerate(LINKS)
    ],
    (
        "area and video",
        '<map><area href="javascript:pwned(1)"></map><video poster="javascript:pwned(1)"></video>',
    ),
    ("meta refresh", '<meta http-equiv="refresh" content="0;url=javascript:pwned(1)">after meta'),
    ("style expression", f'<p style="width: expression({CODE}(6))">styled</p>'),
    ("style url", '<div style="background:url(javascript:pwned(1))">background</div>'),
    (
        "style element",
        f"<style>@import 'javascript:pwned(1)'; body {{ background: url({CODE}) }}</style>css",
    ),
    ("base href", '<base href="javascript:pwned(1)/"><a href="relative">relative link</a>'),
    ("link element", '<link rel="stylesheet" href="javascript:pwned(1)">linked'),
    (
        "math xlink",
        '<math><maction actiontype="statusline" xlink:href="javascript:pwned(1)">m</maction>'
        "</math>",
    ),
    ("named colon entity", '<a href="javascript&colon;pwned(1)">colon</a>'),
    ("NUL in the scheme", '<a href="java&#0;script:pwned(1)">nul</a>'),
    ("leading control", '<a href="&#x01;javascript:pwned(1)">control</a>'),
    # Filter evasions (what a browser shows of them as text is harmless text).
    ("split tag", "<scr<script>ipt>pwned(1)</scr</script>ipt>"),
    ("double bracket", "<<script>script>pwned(1)</script>"),
    ("unquoted upper case", "<IMG SRC=JaVaScRiPt:pwned(1)><a href=javascript:pwned(1) >u</a>"),
    ("script in a comment", f"<!--<script>{CODE}(9)</script>-->c"),
    (
        "noscript mutation",
        f'<noscript><p title="</noscript><img src=x onerror={CODE}(10)>"></p></noscript>',
    ),
    ("svg style mutation", f"<svg><style><img src=x onerror={CODE}(11)></style></svg>"),
    (
        "math mglyph mutation",
        f"<math><mtext><table><mglyph><style><img src=x onerror={CODE}(12)>"
        "</style></mglyph></table></mtext></math>",
    ),
]

GOOD_LINK = "https://example.org/fine"
#: An http(s) link with markup in it: kept, but only percent-encoded.
MARKUP_LINK = 'https://example.org/x"><script>pwned(1)</script>'


def _content(n: int, markup: str) -> str:
    """Item ``n``'s content: the markup, then a good link, which must survive."""
    return f'<div>case {n}: {markup}<p>read <a href="{GOOD_LINK}">more</a></p></div>'


def rss_document() -> bytes:
    items = [
        f"<item><title>AI rss markup link</title><link>{html.escape(MARKUP_LINK)}</link>"
        '<guid isPermaLink="false">rss-markup-link</guid><description>m</description></item>'
    ]
    # A permalink guid is the item's link when it has no <link>.
    for n in (0, 1):
        items.append(
            f'<item><title>AI rss permalink {n}</title><guid isPermaLink="true">{LINKS[n][1]}'
            "</guid><description>p</description></item>"
        )
    for n, (_, value) in enumerate(LINKS):
        items.append(
            f"<item><title>AI rss link {n}</title><link>{value}</link>"
            f'<guid isPermaLink="false">rss-link-{n}</guid>'
            f'<enclosure url="{value}" type="audio/mpeg" length="1"/>'
            f'<media:thumbnail url="{value}"/><comments>{value}</comments>'
            f'<source url="{value}">src</source>'
            f"<description>plain text {n}</description></item>"
        )
    for n, (_, markup) in enumerate(CONTENT):
        items.append(
            f"<item><title>AI rss content {n}</title><link>https://example.org/rss/{n}</link>"
            f'<guid isPermaLink="false">rss-content-{n}</guid>'
            f"<description>{html.escape(_content(n, markup))}</description>"
            f"<content:encoded><![CDATA[{_content(n, markup)}]]></content:encoded></item>"
        )
    image = f"<image><url>{LINKS[0][1]}</url><title>i</title><link>{LINKS[1][1]}</link></image>"
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0" '
        'xmlns:media="http://search.yahoo.com/mrss/" '
        'xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel>'
        f"<title>Hostile RSS</title><link>{LINKS[2][1]}</link><description>d</description>"
        f"{image}{''.join(items)}</channel></rss>"
    ).encode()


def atom_document() -> bytes:
    entries = [
        "<entry><title>AI atom markup link</title><id>urn:x:atom-markup-link</id>"
        f'<link rel="alternate" href="{html.escape(MARKUP_LINK)}"/>'
        "<updated>2026-06-01T10:00:00Z</updated><summary>m</summary></entry>"
    ]
    for n, (_, value) in enumerate(LINKS):
        entries.append(
            f"<entry><title>AI atom link {n}</title><id>urn:x:atom-link-{n}</id>"
            f'<link rel="alternate" href="{value}"/><link rel="enclosure" href="{value}"/>'
            f"<updated>2026-06-01T10:00:00Z</updated><summary>plain text {n}</summary></entry>"
        )
    for n, (_, markup) in enumerate(CONTENT):
        entries.append(
            f"<entry><title>AI atom content {n}</title><id>urn:x:atom-content-{n}</id>"
            f'<link rel="alternate" href="https://example.org/atom/{n}"/>'
            "<updated>2026-06-01T10:00:00Z</updated>"
            f'<content type="html">{html.escape(_content(n, markup))}</content></entry>'
        )
    # Inline XHTML content, under an xml:base that would make relative links javascript:.
    entries.append(
        '<entry xml:base="javascript:pwned(1)/"><title>AI atom xhtml</title>'
        '<id>urn:x:atom-xhtml</id><link rel="alternate" href="relative/page"/>'
        '<updated>2026-06-01T10:00:00Z</updated><content type="xhtml">'
        f'<div xmlns="http://www.w3.org/1999/xhtml">case {len(CONTENT)}: <script>{CODE}(7)</script>'
        '<a href="javascript:pwned(1)">x</a><a href="rel">rel</a>'
        f'<img src="x.png" onerror="{CODE}(7)"/><p style="x:expression({CODE})">xhtml text</p>'
        f'<a href="{GOOD_LINK}">more</a></div></content></entry>'
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        "<title>Hostile atom</title><id>urn:x:feed</id><updated>2026-06-01T10:00:00Z</updated>"
        f'<link rel="alternate" href="{LINKS[0][1]}"/><icon>{LINKS[9][1]}</icon>'
        f"<logo>{LINKS[1][1]}</logo>{''.join(entries)}</feed>"
    ).encode()


def json_feed() -> bytes:
    items: list[dict[str, Any]] = [
        {"id": "json-markup-link", "title": "AI json markup link", "url": MARKUP_LINK}
    ]
    for n, (_, value) in enumerate(LINKS):
        url = html.unescape(value)  # JSON has no entities: the decoded form
        items.append(
            {
                "id": f"json-link-{n}",
                "title": f"AI json link {n}",
                "url": url,
                "external_url": url,
                "image": url,
                "banner_image": url,
                "content_text": f"plain text {n}",
                "attachments": [{"url": url, "mime_type": "text/html"}],
                "author": {"name": "a", "url": url, "avatar": url},
            }
        )
    for n, (_, markup) in enumerate(CONTENT):
        items.append(
            {
                "id": f"json-content-{n}",
                "title": f"AI json content {n}",
                "url": f"https://example.org/json/{n}",
                "content_html": _content(n, markup),
                "summary": _content(n, markup),
            }
        )
    document = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": "Hostile JSON",
        "home_page_url": "javascript:pwned(1)",
        "feed_url": "vbscript:pwned(1)",
        "icon": "file:///etc/passwd",
        "items": items,
    }
    return json.dumps(document).encode()


FORMATS: dict[str, tuple[Callable[[], bytes], str]] = {
    "RSS 2.0": (rss_document, "application/rss+xml; charset=utf-8"),
    "Atom 1.0": (atom_document, "application/atom+xml; charset=utf-8"),
    "JSON Feed": (json_feed, "application/feed+json"),
}


# ------------------------------------------------------------------ the surfaces


def subscribers_yaml(smtp_port: int, hook_url: str) -> str:
    """An email and a webhook subscriber to every alert of the victim feed."""
    return (
        "subscribers:\n"
        "  - {name: desk, rules: all, feeds: [victim], email: {host: 127.0.0.1, "
        f"port: {smtp_port}, security: none, from: fw@example.org, to: [desk@example.org], "
        "timeout: 10s}}\n"
        f'  - {{name: hook, rules: all, feeds: [victim], webhook: {{url: "{hook_url}", '
        f"secret: {SECRET}, timeout: 10s}}}}\n"
    )


@dataclass
class _State:
    """A running daemon as create_app asks of one."""

    heartbeat_limit: float = 30.0

    def heartbeat_age(self) -> float | None:
        return 0.0

    def ready(self) -> bool:
        return True


ITEMS = "/api/v1/items?feed=victim&limit=500"
ALERTS = "/api/v1/alerts?limit=500"
ATOM = "/alerts.atom"
ATOM_NS = "{http://www.w3.org/2005/Atom}"


def http_surfaces(s: Scene) -> dict[str, httpx.Response]:
    """The JSON API and the Atom feed of the scene's database, through ASGITransport."""
    fw = s.app()
    try:
        app = create_app(fw, _State(), Metrics())

        async def get_all() -> dict[str, httpx.Response]:
            transport = httpx.ASGITransport(app)
            async with httpx.AsyncClient(transport=transport, base_url="http://fw.test") as client:
                paths = [ITEMS, ALERTS, "/api/v1/feeds", ATOM]
                return {path: await client.get(path) for path in paths}

        return asyncio.run(get_all())
    finally:
        fw.close()


def check_email(message: EmailMessage, where: str) -> tuple[str, str]:
    """Every header and every decoded part of ``message`` is clean; returns (text, html)."""
    for name, value in message.items():
        assert_clean(f"{name}: {value}", f"{where} header {name}")
    texts: dict[str, str] = {}
    for part in message.walk():
        if part.get_content_maintype() == "multipart":
            continue
        content = part.get_content()
        assert isinstance(content, str), part.get_content_type()
        assert_clean(content, f"{where} {part.get_content_type()} part")
        texts[part.get_content_type()] = content
    assert set(texts) == {"text/plain", "text/html"}, texts.keys()
    return texts["text/plain"], texts["text/html"]


@dataclass
class Seen:
    """What one hostile poll left on every surface."""

    outcome: Outcome
    surfaces: dict[str, httpx.Response]
    mails: list[Received]
    posts: list[Delivery]
    delivery_statuses: set[str]


def attack_with_subscribers(tmp_path: Path, body: bytes, headers: dict[str, str]) -> Seen:
    """Serve ``body`` as the victim to a scene with an email and a webhook subscriber
    (real SMTP server and receiver), poll, and collect what each surface shows."""
    with (
        SmtpServer() as smtp,
        WebhookReceiver(secret=SECRET) as hook,
        scene(tmp_path, extra_yaml=subscribers_yaml(smtp.port, hook.url)) as s,
    ):
        s.serve_victim(body, headers)
        primed_mails, primed_posts = len(smtp.handler.messages), len(hook.deliveries)
        outcome = s.attack()
        fw = s.app()
        try:
            statuses = {d.status for d in fw.deliveries()}
        finally:
            fw.close()
        return Seen(
            outcome,
            http_surfaces(s),
            smtp.handler.messages[primed_mails:],
            hook.deliveries[primed_posts:],
            statuses,
        )


@pytest.mark.parametrize("fmt", FORMATS)
def test_no_dangerous_link_or_markup_survives_on_any_surface(
    fmt: str, tmp_path: Path, figures: Callable[..., None]
) -> None:
    build, content_type = FORMATS[fmt]
    seen = attack_with_subscribers(tmp_path, build(), {"Content-Type": content_type})
    figures(seen.outcome)
    outcome, surfaces, mails, posts = seen.outcome, seen.surfaces, seen.mails, seen.posts
    deliveries = seen.delivery_statuses

    # Every hostile entry was stored and alerted on, and reached both subscribers.
    cases = len(CONTENT) + (fmt == "Atom 1.0")  # content entries (Atom: and the XHTML one)
    permalinks = 2 if fmt == "RSS 2.0" else 0
    entries = 1 + permalinks + len(LINKS) + cases
    assert outcome.victim.status == "ok", outcome.victim
    assert (outcome.victim.new, outcome.victim.alerts) == (entries, entries), outcome.victim
    assert deliveries == {"sent"}, deliveries
    assert (len(mails), len(posts)) == (entries, entries)

    # Storage: every text column of every item is clean, every link http(s) or absent.
    good_links = 0
    for row in outcome.rows:
        key = row["entry_key"]
        for column, value in row.items():
            if isinstance(value, str):
                assert_clean(value, f"items.{column} of {key}", identifier=column in IDENTIFIERS)
        assert_web_link(row["url"], f"items.url of {key}")
        links = assert_html_links(row["content_html"], f"items.content_html of {key}")
        good_links += GOOD_LINK in links
    # The sanitiser keeps what is safe: each content entry's good link is still there.
    assert good_links == cases, good_links
    urls = {r["title"]: r["url"] for r in outcome.rows}
    prefix = f"AI {fmt.split()[0].lower()}"
    dropped = [f"{prefix} link {n}" for n in range(len(LINKS))]
    dropped += [f"{prefix} permalink {n}" for n in range(permalinks)]
    assert {title: urls[title] for title in dropped} == dict.fromkeys(dropped), urls
    assert urls[f"{prefix} markup link"] == (
        "https://example.org/x%22%3E%3Cscript%3Epwned(1)%3C/script%3E"
    )

    # The emails as the SMTP server received them: only to the subscriber, all clean.
    mailed: set[int] = set()
    for n, received in enumerate(mails):
        assert received.rcpt_tos == ("desk@example.org",)
        message = email.message_from_bytes(received.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        text, markup = check_email(message, f"email {n} ({message['Subject']})")
        assert_html_links(markup, f"email {n}")
        for link in re.findall(r"^Link: +(\S+)$", text, re.MULTILINE):
            assert_web_link(link, f"email {n} text Link")
        mailed.update(int(c) for c in re.findall(r"case (\d+):", text))
    # What was checked there is the hostile content: each case's excerpt was in one.
    assert mailed == set(range(cases)), sorted(mailed)

    # The webhook payloads as the receiver got them.
    for n, post in enumerate(posts):
        assert post.verified, post.error
        payload = post.json
        for value in strings(payload):
            assert_clean(value, f"webhook post {n} ({post.webhook_id})")
        assert_clean(post.body.decode("utf-8"), f"webhook post {n} body")
        assert_web_link(payload["data"]["item"]["link"], f"webhook post {n} item.link")
    snippets = " ".join(p.json["data"]["alert"]["snippet"]["text"] for p in posts)
    assert {int(c) for c in re.findall(r"case (\d+):", snippets)} == mailed

    # The JSON API and the Atom feed of the alerts.
    for path, response in surfaces.items():
        assert response.status_code == 200, (path, response.text[:200])
        if path.startswith("/api/"):
            for value in strings(without_identifiers(response.json())):
                assert_clean(value, f"GET {path}")
    items = surfaces[ITEMS].json()["items"]
    alerts = surfaces[ALERTS].json()["alerts"]
    assert len(items) == entries + 3  # and the 3 of the first poll
    assert len([a for a in alerts if a["feed"] == "victim"]) == entries + 1
    for item in items:
        assert_web_link(item["url"], f"API item {item['entry_key']} url")
        assert_clean(item["entry_key"], f"GET {ITEMS} entry_key", identifier=True)
    for alert in alerts:
        assert_web_link(alert["item_url"], f"API alert {alert['id']} item_url")
    atom = ET.fromstring(surfaces[ATOM].content)
    assert len(atom.findall(f"{ATOM_NS}entry")) == len(alerts)
    for element in atom.iter():
        assert_clean(element.text, f"Atom <{element.tag}> text")
        for name, value in element.attrib.items():
            assert_clean(value, f"Atom <{element.tag} {name}>")
    for entry in atom.iter(f"{ATOM_NS}entry"):
        for link in entry.iter(f"{ATOM_NS}link"):
            assert_web_link(link.get("href"), "Atom entry link", optional=False)


def test_the_checker_sees_every_disguise() -> None:
    """The checker itself: each hostile value and fragment above is flagged as written."""
    for label, value in LINKS:
        if label != "file":
            assert dangers(f'<a href="{value}">'), label
    assert dangers('<a href="file:///etc/passwd">')
    for label, markup in CONTENT:
        # &#0; is U+FFFD to a browser (and html.unescape): "java\ufffdscript:" is no scheme.
        assert dangers(markup) or label == "NUL in the scheme", label
    # ... and stays quiet on what feedwatch writes for safe content.
    assert not dangers('<p>ok <a href="https://example.org/a?b=c&amp;d=e" rel="noopener">x</a></p>')
    assert not dangers("http://127.0.0.1:8/java&#x09;script:pwned(1)")  # a path, not a scheme
    assert not dangers('<a href="http://h:8/ \tjavascript:pwned(1)">x</a>')  # ditto
    assert dangers('<a href="http://h:8/">x</a> javascript:pwned(1)')
    assert dangers('<a title="http://h/" href="javascript:pwned(1)">x</a>')
    assert not dangers('<!DOCTYPE html>\n<html><head><meta charset="utf-8"></head><body>\n')


#: Markup in plain-text fields. feedparser calls such a title text (it holds a tag
#: outside its list of harmless ones); feedwatch reads it as HTML and keeps the text.
TITLE_MARKUP = [
    f"<script>{CODE}(2)</script>",
    f"<img src=x onerror={CODE}(3)>",
    f'<a href="javascript:{CODE}(4)">x</a>',
    f'<iframe src="javascript:{CODE}(5)"></iframe>',
    f'<div onclick="{CODE}(6)">d</div>',
    f"<svg onload={CODE}(7)></svg>",
]


def test_markup_in_titles_and_authors_survives_on_no_surface(
    tmp_path: Path, figures: Callable[..., None]
) -> None:
    items = "".join(
        f"<item><title>AI title {n} {html.escape(markup)} end</title>"
        f"<link>https://example.org/title/{n}</link>"
        f'<guid isPermaLink="false">title-{n}</guid>'
        f"<author>desk@example.org ({html.escape(markup)} Desk)</author>"
        f"<description>Artificial intelligence, case {n}.</description></item>"
        for n, markup in enumerate(TITLE_MARKUP)
    )
    body = (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>'
        f"<title>Titles</title><link>https://example.org/</link><description>d</description>"
        f"{items}</channel></rss>"
    ).encode()
    seen = attack_with_subscribers(tmp_path, body, XML)
    figures(seen.outcome)
    outcome, surfaces, mails, posts = seen.outcome, seen.surfaces, seen.mails, seen.posts

    entries = len(TITLE_MARKUP)
    assert (outcome.victim.new, outcome.victim.alerts) == (entries, entries), outcome.victim
    assert (len(mails), len(posts)) == (entries, entries)
    titles = {r["entry_key"]: r["title"] for r in outcome.rows}
    # The words around the markup stay (an svg takes its content with it).
    assert titles["title-0"] == "AI title 0 end"
    assert titles["title-2"] == "AI title 2 x end"
    for row in outcome.rows:
        for column, value in row.items():
            if isinstance(value, str):
                assert_clean(value, f"items.{column} of {row['entry_key']}")
    for n, received in enumerate(mails):
        message = email.message_from_bytes(received.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        check_email(message, f"email {n} ({message['Subject']})")
    for n, post in enumerate(posts):
        for value in strings(post.json):
            assert_clean(value, f"webhook post {n}")
    for path, response in surfaces.items():
        assert response.status_code == 200, path
        if path.startswith("/api/"):
            for value in strings(without_identifiers(response.json())):
                assert_clean(value, f"GET {path}")
    for element in ET.fromstring(surfaces[ATOM].content).iter():
        assert_clean(element.text, f"Atom <{element.tag}> text")

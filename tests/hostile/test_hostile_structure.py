"""Structure: documents that are not feeds, broken feeds, odd items and every format.

Verdicts:

* not a feed (an HTML page, an empty body, broken JSON, XML whose root is not a
  feed's, a document cut before any item): error kind ``parse``, a message naming
  what it is, the feed's stored items untouched;
* a document cut in the middle of an item: the complete items before the cut are
  stored, the cut one is not (it may be half-made), with a warning;
* an item without guid, link and title: stored if it has any one of them, keyed
  by guid, else link, else ``h:`` + SHA-256 of ``[link, title, date]``; an item
  with none of the three (a description alone) is skipped with a warning;
* a guid repeated in one document: an exact repeat is stored once (one alert);
  another item under the same guid with another link is keyed by its link;
* Atom ``type="xhtml"``, JSON Feed 1.1, RSS 1.0 (RDF), Atom 0.3, RSS 0.91 (with
  the Netscape DOCTYPE, or an internal subset that declares no entities): stored,
  with the exact fields asserted; a DOCTYPE's DTD is never fetched.

All cases share one primed scene (module fixture); each serves its own document
(its own guids and links) and polls once more.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from harness import Outcome, Scene, assert_failed, rss_items, scene
from loopback import LoopbackServer

from feedwatch.types import StoredItem

CATEGORY = "Structure"

DATE = "Tue, 02 Jun 2026 10:00:00 +0000"
DATE_UTC = datetime(2026, 6, 2, 10, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    with scene(tmp_path_factory.mktemp("structure")) as s:
        yield s


def new_items(outcome: Outcome) -> dict[str, StoredItem]:
    """The victim's items this poll added, by entry key."""
    before = {i.id for i in outcome.before["victim"]}
    return {i.entry_key: i for i in outcome.after["victim"] if i.id not in before}


def row_of(outcome: Outcome, item: StoredItem) -> dict[str, object]:
    (row,) = [r for r in outcome.rows if r["id"] == item.id]
    return row


def item(tag: str, title: str = "", extra: str = "") -> str:
    return (
        f"<item><title>{title or tag}</title><link>https://example.org/st/{tag}</link>"
        f'<guid isPermaLink="false">st-{tag}</guid><pubDate>{DATE}</pubDate>'
        f"<description>About {tag}.</description>{extra}</item>"
    )


# --------------------------------------------------------------------------- not a feed

HTML_PAGE = (
    b"<!DOCTYPE html>\n<html lang='en'><head><title>Welcome</title></head>"
    b"<body><h1>Our news</h1><p>Moved to a new site.</p></body></html>"
)
JSON_FEED_CUT = (
    b'{"version": "https://jsonfeed.org/version/1.1", "title": "J", "items": '
    b'[{"id": "st-json-cut", "title": "Cut'
)

NOT_A_FEED: dict[str, tuple[bytes, dict[str, str], tuple[str, ...]]] = {
    "HTML page labelled as RSS": (
        HTML_PAGE,
        {"Content-Type": "application/rss+xml; charset=utf-8"},
        ("not a feed", "HTML page"),
    ),
    "HTML page as text/html": (
        HTML_PAGE,
        {"Content-Type": "text/html; charset=utf-8"},
        ("not a feed", "HTML page"),
    ),
    "XHTML page": (
        b'<?xml version="1.0"?>\n<html xmlns="http://www.w3.org/1999/xhtml"><head>'
        b"<title>t</title></head><body><p>x</p></body></html>",
        {"Content-Type": "application/xhtml+xml"},
        ("not a feed", "HTML page"),
    ),
    "empty body (200, zero bytes)": (b"", {"Content-Type": "application/rss+xml"}, ("empty",)),
    "body of blank lines": (b"\r\n\r\n  \n", {"Content-Type": "application/rss+xml"}, ("empty",)),
    "JSON Feed cut short": (
        JSON_FEED_CUT,
        {"Content-Type": "application/feed+json"},
        ("not a feed", "invalid JSON"),
    ),
    "JSON without a JSON Feed version": (
        b'{"title": "x", "items": [{"id": "st-json-nover", "title": "No version"}]}',
        {"Content-Type": "application/json"},
        ("not a feed", "JSON Feed version"),
    ),
    "XML with an unknown root, items inside": (
        b'<?xml version="1.0"?><catalog><item><title>Sneaky AI item</title>'
        b"<link>https://example.org/st/catalog</link></item></catalog>",
        {"Content-Type": "application/xml"},
        ("not a feed", "root element is <catalog>"),
    ),
    "XML with an unknown root, nothing feed-like": (
        b'<?xml version="1.0"?><config><setting name="a">1</setting></config>',
        {"Content-Type": "application/xml"},
        ("not a feed",),
    ),
    "RSS cut before its first item": (
        b'<?xml version="1.0"?><rss version="2.0"><channel><tit',
        {"Content-Type": "application/rss+xml"},
        ("not a feed",),
    ),
}


@pytest.mark.parametrize("name", NOT_A_FEED)
def test_not_a_feed_is_a_parse_error(name: str, stage: Scene, figures: Callable[..., None]) -> None:
    body, headers, words = NOT_A_FEED[name]
    stage.serve_victim(body, headers)

    outcome = stage.attack()
    figures(outcome)

    assert_failed(outcome, "parse", *words)
    assert outcome.feeds["victim"].last_error_kind == "parse"
    assert new_items(outcome) == {}
    assert len(outcome.after["victim"]) == len(outcome.before["victim"])


# --------------------------------------------------------------------------- broken feeds


def test_truncated_document_keeps_the_complete_items(
    stage: Scene, figures: Callable[..., None]
) -> None:
    document = rss_items(*(item(f"trunc-{i}") for i in range(4))).decode()
    cut = document[: document.index("<item><title>trunc-3") + 60]
    assert (cut.count("<item>"), cut.count("</item>")) == (4, 3)  # cut inside the 4th item
    stage.serve_victim(cut.encode())

    outcome = stage.attack()
    figures(outcome)

    assert outcome.victim.status == "ok", outcome.victim
    got = new_items(outcome)
    assert sorted(got) == ["st-trunc-0", "st-trunc-1", "st-trunc-2"]
    assert [got[k].title for k in sorted(got)] == ["trunc-0", "trunc-1", "trunc-2"]
    assert got["st-trunc-2"].content_text == "About trunc-2."
    assert any("last entry dropped" in w for w in outcome.victim.warnings), outcome.victim


def _hash_key(url: str | None, title: str, published: str | None) -> str:
    data = json.dumps([url, title, published], ensure_ascii=False, separators=(",", ":"))
    return "h:" + hashlib.sha256(data.encode()).hexdigest()


def test_items_without_guid_link_or_title(stage: Scene, figures: Callable[..., None]) -> None:
    stage.serve_victim(
        rss_items(
            f"<item><title>Only a title</title><pubDate>{DATE}</pubDate></item>",
            "<item><link>https://example.org/st/only-link</link></item>",
            '<item><guid isPermaLink="false">st-only-guid</guid>'
            "<description>g</description></item>",
            "<item><description>Only a description, about AI.</description></item>",
            "<item></item>",
        )
    )

    outcome = stage.attack()
    figures(outcome)

    assert outcome.victim.status == "ok", outcome.victim
    title_key = _hash_key(None, "Only a title", DATE_UTC.isoformat())
    got = {k: (i.title, i.url, i.content_text) for k, i in new_items(outcome).items()}
    assert got == {
        title_key: ("Only a title", None, ""),
        "https://example.org/st/only-link": ("", "https://example.org/st/only-link", ""),
        "st-only-guid": ("", None, "g"),
    }
    skipped = [w for w in outcome.victim.warnings if "no id, link or title" in w]
    assert [w.split(" skipped")[0] for w in skipped] == ["entry 3", "entry 4"]
    assert new_items(outcome)[title_key].published == DATE_UTC


def test_duplicate_guids_are_stored_once(stage: Scene, figures: Callable[..., None]) -> None:
    first = item("dup", "AI dup story")
    other = first.replace("st/dup<", "st/dup-other<").replace("AI dup story", "AI other story")
    stage.serve_victim(rss_items(first, first, first, other))

    outcome = stage.attack()
    figures(outcome)

    assert outcome.victim.status == "ok", outcome.victim
    got = new_items(outcome)
    assert sorted(got) == ["https://example.org/st/dup-other", "st-dup"]
    assert got["st-dup"].title == "AI dup story"
    assert got["https://example.org/st/dup-other"].title == "AI other story"
    alerts = [a for a in outcome.alerts if a.item_id in {i.id for i in got.values()}]
    assert sorted((a.rule, a.item_url) for a in alerts) == [
        ("ai", "https://example.org/st/dup"),
        ("ai", "https://example.org/st/dup-other"),
    ]
    assert sum("exact duplicate" in w for w in outcome.victim.warnings) == 2


def test_repeated_guid_and_link_with_other_text_alerts_once(
    tmp_path: Path, figures: Callable[..., None]
) -> None:
    """Own scene: a failed invariant here must not spill into the module's scene."""
    first = item("edited", "AI story")
    edited = first.replace("AI story", "AI story, corrected")
    with scene(tmp_path) as s:
        s.serve_victim(rss_items(first, edited))
        outcome = s.attack()  # checks at most one alert per (rule, canonical link)
        figures(outcome)


# --------------------------------------------------------------------------- formats

ATOM_XHTML = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>XHTML</title><id>urn:st:xhtml</id>
<updated>2026-06-02T10:00:00Z</updated><author><name>Desk</name></author>
<entry><id>urn:st:xhtml:1</id><link href="https://example.org/st/xhtml"/>
<title type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml">An <b>XHTML</b> title</div></title>
<updated>2026-06-02T10:00:00Z</updated>
<content type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml">
<p onclick="steal()">Para <em>one</em> on artificial intelligence.</p>
<script>alert(1)</script><p><a href="/st/relative">relative</a></p></div></content>
</entry></feed>"""


def test_atom_xhtml_content(stage: Scene, figures: Callable[..., None]) -> None:
    stage.serve_victim(ATOM_XHTML, {"Content-Type": "application/atom+xml"})

    outcome = stage.attack()
    figures(outcome)

    assert outcome.victim.status == "ok", outcome.victim
    (got,) = new_items(outcome).values()
    assert (got.entry_key, got.title, got.url, got.author) == (
        "urn:st:xhtml:1",
        "An XHTML title",
        "https://example.org/st/xhtml",
        "Desk",
    )
    assert got.content_text == "Para one on artificial intelligence.\nrelative"
    assert got.published is None  # Atom's <updated> is not a publication date
    html = str(row_of(outcome, got)["content_html"])
    assert "<em>one</em>" in html
    for gone in ("script", "alert(1)", "onclick"):
        assert gone not in html
    # A relative link resolves against the document's URL (there is no xml:base).
    assert f'href="{stage.server.url("/st/relative")}"' in html
    assert any(a.rule == "ai" and a.item_id == got.id for a in outcome.alerts)


def test_json_feed_1_1(stage: Scene, figures: Callable[..., None]) -> None:
    document = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": "JSON Feed",
        "home_page_url": "https://example.org/",
        "language": "en",
        "authors": [{"name": "Feed Desk"}],
        "items": [
            {
                "id": "st-json-1",
                "url": "https://example.org/st/json-1",
                "title": "JSON item on AI",
                "content_html": (
                    '<p>Body <script>x()</script><b>bold</b> <a href="javascript:x()">j</a></p>'
                ),
                "date_published": "2026-06-02T12:00:00+02:00",
                "authors": [{"name": "Ann"}, {"name": "Bob"}],
                "tags": ["policy", "Policy", "tech"],
            },
            {"id": 42, "url": "/st/json-2", "content_text": "Numeric id, relative URL."},
            {"content_text": "No id, url or title: skipped."},
            "not an object",
        ],
    }
    stage.serve_victim(json.dumps(document).encode(), {"Content-Type": "application/feed+json"})

    outcome = stage.attack()
    figures(outcome)

    assert outcome.victim.status == "ok", outcome.victim
    got = new_items(outcome)
    assert sorted(got) == ["42", "st-json-1"]
    one, two = got["st-json-1"], got["42"]
    assert (one.title, one.url, one.author, one.published, one.tags, one.language) == (
        "JSON item on AI",
        "https://example.org/st/json-1",
        "Ann, Bob",
        DATE_UTC,
        ("policy", "tech"),
        "en",
    )
    assert one.content_text == "Body bold j"
    html = str(row_of(outcome, one)["content_html"])
    assert "<b>bold</b>" in html
    for gone in ("script", "javascript"):
        assert gone not in html
    assert (two.title, two.url, two.author, two.content_text) == (
        "",
        stage.server.url("/st/json-2"),
        "Feed Desk",
        "Numeric id, relative URL.",
    )
    assert sum("skipped" in w for w in outcome.victim.warnings) == 2


RSS10 = b"""<?xml version="1.0" encoding="utf-8"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"
  xmlns="http://purl.org/rss/1.0/" xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel rdf:about="https://example.org/"><title>RDF</title><link>https://example.org/</link>
<description>d</description><items><rdf:Seq><rdf:li rdf:resource="https://example.org/st/rdf-1"/>
</rdf:Seq></items></channel>
<item rdf:about="https://example.org/st/rdf-1"><title>RDF item</title>
<link>https://example.org/st/rdf-1</link><description>RSS 1.0 text.</description>
<dc:date>2026-06-02T12:00:00+02:00</dc:date><dc:creator>Rita</dc:creator><dc:subject>rdf</dc:subject>
</item></rdf:RDF>"""

ATOM03 = b"""<?xml version="1.0" encoding="utf-8"?>
<feed version="0.3" xmlns="http://purl.org/atom/ns#"><title>Atom 0.3</title>
<link rel="alternate" type="text/html" href="https://example.org/"/><modified>2026-06-02T10:00:00Z</modified>
<author><name>Old Desk</name></author>
<entry><title>Atom 0.3 item</title><link rel="alternate" type="text/html" href="https://example.org/st/a03"/>
<id>tag:example.org,2026:st-a03</id><issued>2026-06-02T12:00:00+02:00</issued>
<modified>2026-06-02T11:00:00Z</modified>
<content type="text/html" mode="escaped">
&lt;p&gt;Escaped &lt;b&gt;HTML&lt;/b&gt;.&lt;/p&gt;</content>
</entry></feed>"""


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        pytest.param(
            RSS10,
            "application/rdf+xml",
            (
                "https://example.org/st/rdf-1",
                "RDF item",
                "https://example.org/st/rdf-1",
                "RSS 1.0 text.",
                "Rita",
                DATE_UTC,
                ("rdf",),
            ),
            id="RSS 1.0 (RDF)",
        ),
        pytest.param(
            ATOM03,
            "application/atom+xml",
            (
                "tag:example.org,2026:st-a03",
                "Atom 0.3 item",
                "https://example.org/st/a03",
                "Escaped HTML.",
                "Old Desk",
                DATE_UTC,
                (),
            ),
            id="Atom 0.3",
        ),
    ],
)
def test_older_formats(
    body: bytes,
    content_type: str,
    expected: tuple[object, ...],
    stage: Scene,
    figures: Callable[..., None],
) -> None:
    stage.serve_victim(body, {"Content-Type": content_type})

    outcome = stage.attack()
    figures(outcome)

    assert outcome.victim.status == "ok", outcome.victim
    (got,) = new_items(outcome).values()
    assert (
        got.entry_key,
        got.title,
        got.url,
        got.content_text,
        got.author,
        got.published,
        got.tags,
    ) == expected


RSS091_DOCTYPES = {
    "Netscape public DTD": (
        '<!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN" "{dtd}">'
    ),
    "internal subset without entities": (
        "<!DOCTYPE rss [<!ELEMENT rss (channel)><!ATTLIST rss version CDATA #REQUIRED>]>"
    ),
    "bare DOCTYPE": "<!DOCTYPE rss>",
}


@pytest.mark.parametrize("name", RSS091_DOCTYPES)
def test_rss_091_with_a_doctype(name: str, stage: Scene, figures: Callable[..., None]) -> None:
    tag = "rss091-" + name.split()[0].lower()
    with LoopbackServer() as dtd_host:
        doctype = RSS091_DOCTYPES[name].format(dtd=dtd_host.url("/rss-0.91.dtd"))
        body = (
            f'<?xml version="1.0" encoding="ISO-8859-1"?>\n{doctype}\n'
            '<rss version="0.91"><channel><title>R091</title><link>https://example.org/</link>'
            "<description>d</description><language>fr</language>"
            f"<item><title>Café {name}</title><link>https://example.org/st/{tag}</link>"
            "<description>Vieux format.</description></item></channel></rss>"
        ).encode("latin-1")
        stage.serve_victim(body, {"Content-Type": "text/xml"})

        outcome = stage.attack()
        figures(outcome)

        assert dtd_host.requests == [], "the DTD was fetched"
    assert outcome.victim.status == "ok", outcome.victim
    (got,) = new_items(outcome).values()
    assert (got.entry_key, got.title, got.url, got.content_text, got.language) == (
        f"https://example.org/st/{tag}",
        f"Café {name}",
        f"https://example.org/st/{tag}",
        "Vieux format.",
        "fr",
    )

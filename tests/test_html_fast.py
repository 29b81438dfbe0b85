"""The fast paths of feedwatch._html give exactly what the general code gives.

Items already stored keep their content and hashes only if these helpers give
byte for byte what they gave before, so each fast path is compared with the
general code it stands for, on text built to reach its edges.
"""

from __future__ import annotations

import re
import sys

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from feedwatch._html import (
    _ASCII_CONTROLS,
    _ASTRAL_NONCHAR_RE,
    _CONTROL_RE,
    _LONG_ASCII,
    _NH3_TAG_RE,
    _TEXT_CLEANER,
    _cleaner,
    _collapse,
    _strip_control_chars_general,
    _strip_tags,
    _strip_tags_general,
    html_sanitizer,
    sanitize_html,
    sanitized_html_to_text,
    strip_control_chars,
)

#: Every code point, lone surrogates included.
ALL_CHARS = "".join(map(chr, range(sys.maxunicode + 1)))

# --------------------------------------------------------------------------- control characters

# Characters where the paths of strip_control_chars part ways.
_CONTROL_EDGES = [
    "\x00",
    "\x01",
    "\x08",
    "\t",
    "\n",
    "\x0b",
    "\x0c",
    "\r",
    "\x1f",
    "\x7f",
    "\x80",
    "\x85",
    "\x9f",
    "\xa0",
    "\xad",
    "é",
    "\u200b",
    "\u2028",
    "\ud800",
    "\udfff",
    "\ufdd0",
    "\ufdef",
    "\ufffd",
    "\ufffe",
    "\uffff",
    "\U0001f600",
    "\U0001fffe",
    "\U0010ffff",
    "a",
    " ",
]
_ASCII_TEXT = st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=3 * _LONG_ASCII)
_MIXED_TEXT = st.text(
    alphabet=st.one_of(st.sampled_from(_CONTROL_EDGES), st.characters(max_codepoint=0x7F)),
    max_size=3 * _LONG_ASCII,
)


def test_every_character_removed_is_non_printable() -> None:
    # strip_control_chars returns printable text as it is.
    removed = _CONTROL_RE.findall(ALL_CHARS) + _ASTRAL_NONCHAR_RE.findall(ALL_CHARS) + ["\r"]

    assert len(removed) > 2000
    assert not [c for c in removed if c.isprintable()]


def test_ascii_controls_are_what_the_pattern_removes_from_ascii() -> None:
    assert set(_ASCII_CONTROLS) == {ord(c) for c in _CONTROL_RE.findall(ALL_CHARS[:0x80])}


@settings(max_examples=1000, deadline=None)
@given(st.one_of(_ASCII_TEXT, _MIXED_TEXT, st.text(max_size=3 * _LONG_ASCII)))
@example("x" * _LONG_ASCII)
@example("x" * (_LONG_ASCII - 1) + "\r")
@example("x" * _LONG_ASCII + "\r\n\x00\t")
@example("\r\n" * _LONG_ASCII)
@example("é\n\tx")
@example("é\r\nx\x85")
@example("é\r\nx")
@example("é\rx")
@example("\U0001f600\n\U0001fffe")
def test_strip_control_chars_fast_paths_agree_with_the_general_one(text: str) -> None:
    general = _strip_control_chars_general(text)

    assert strip_control_chars(text) == general
    if text.isprintable():  # what the function did before its other fast paths
        assert general == text


# --------------------------------------------------------------------------- tags

_NAMES = [
    "p",
    "P",
    "pre",
    "param",
    "br",
    "td",
    "img",
    "a",
    "b",
    "span",
    "div",
    "h1",
    "h7",
    "li",
    "ſection",  # long s: "section" to re.IGNORECASE
    "\u212aBD",  # Kelvin sign: "kbd" to re.IGNORECASE
    "p-x",
    "p:x",
    "x1",
    "1p",
    "",
]
_SPACES = ["", " ", "  ", "\t", "\n", "\xa0", "\u2028", "/", " /"]
_VALUES = [
    '""',
    '"x"',
    '"a > b"',
    '"a < b"',
    '"it\'s"',
    "'x'",
    "'a > b'",
    "'say \"hi\"'",
    "x",
    '"unclosed',
    "'unclosed",
]
_ATTRIBUTE = st.builds(
    lambda space, name, value: f"{space}{name}={value}" if value else f"{space}{name}",
    st.sampled_from([" ", "  ", "\n", "/"]),
    st.sampled_from(["href", "title", "x-y", "a'b", 'a"b']),
    st.sampled_from(["", *_VALUES]),
)
_TAG = st.builds(
    lambda slash, name, space, attributes, end: f"<{slash}{name}{space}{''.join(attributes)}{end}",
    st.sampled_from(["", "/"]),
    st.sampled_from(_NAMES),
    st.sampled_from(_SPACES),
    st.lists(_ATTRIBUTE, max_size=3),
    st.sampled_from([">", "/>", "", ">>"]),
)
_TEXT_PIECE = st.sampled_from(
    ["word", " ", "\n", "&lt;", "&amp;", "<", ">", "'", '"', "<!-- c -->", "<!x>", "é", "\xa0"]
)
_MARKUP = st.lists(st.one_of(_TAG, _TEXT_PIECE), max_size=12).map("".join)


@settings(max_examples=2000, deadline=None)
@given(_MARKUP)
@example('<p title="a > b">x</p>')
@example("<p-x>y")
@example("<ſection>x")
@example('<a title="x>y<br>z')
@example("<a title='<br>'>x</a>")
@example("<P>x</P>")
def test_strip_tags_agrees_with_the_three_passes(markup: str) -> None:
    assert _strip_tags(markup) == _strip_tags_general(markup)


_HTML = st.lists(
    st.one_of(
        _TAG,
        _TEXT_PIECE,
        st.sampled_from(
            [
                '<a href="/x?a=1&b=<2>" title="say &quot;hi&quot; <b>">l</a>',
                "<img src=x.png alt='a \"b\" > c'>",
                "<table><tr><td>a<th>b</table>",
                "<script>x<p>y</p></script>",
                "<xmp><p>x</xmp>",
                "<ol start=3><li>x</ol>",
                "<time datetime='2024-01-01T00:00'>t</time>",
                '<abbr title="it\'s">A</abbr>',
                "&#1;&#13;&#x85;&#xfffe;",
            ]
        ),
    ),
    max_size=10,
).map("".join)


@settings(max_examples=500, deadline=None)
@given(_HTML)
def test_nh3_output_takes_the_fast_path(html: str) -> None:
    # Not needed for the results (they agree either way), but for the speed.
    for clean in (sanitize_html(html, "https://example.org/a/"), _TEXT_CLEANER.clean(html)):
        outside_tags = _NH3_TAG_RE.sub("", clean)

        assert "<" not in outside_tags
        assert ">" not in outside_tags
        assert _strip_tags(clean) == _strip_tags_general(clean)


# --------------------------------------------------------------------------- whitespace


def _collapse_reference(text: str) -> str:
    """What _collapse did before its fast path (a line at a time, by str.split())."""
    return "\n".join(
        [" ".join(line.split()) for line in text.split("\n") if line and not line.isspace()]
    )


def test_only_the_space_is_printable_whitespace() -> None:
    assert [c for c in ALL_CHARS if c.isspace() and c.isprintable()] == [" "]


def test_re_and_str_agree_on_whitespace() -> None:
    assert re.findall(r"\s", ALL_CHARS) == [c for c in ALL_CHARS if c.isspace()]


_WHITESPACE_EDGES = [" ", "\n", "\t", "\xa0", "\u2028", "\u3000", "\x1c", "\x85", "\x0b"]


@settings(max_examples=1000, deadline=None)
@given(
    st.text(
        alphabet=st.sampled_from([*_WHITESPACE_EDGES, "a", "b", "é", "中", "\u200b", "\x00"]),
        max_size=40,
    )
)
@example(" a  b \n\n  c\t\n")
@example("a\xa0 b")
def test_collapse_agrees_with_splitting_every_line(text: str) -> None:
    assert _collapse(text) == _collapse_reference(text)


@settings(max_examples=300, deadline=None)
@given(_HTML)
def test_sanitized_html_to_text_of_nh3_output(html: str) -> None:
    clean = sanitize_html(html, "https://example.org/")
    text = _strip_tags_general(clean)
    if "&" in text:
        text = (
            text.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", '"')
            .replace("&nbsp;", "\xa0")
            .replace("&amp;", "&")
        )

    assert sanitized_html_to_text(clean) == _collapse_reference(text)


# --------------------------------------------------------------------------- sanitiser


def _sanitize_reference(html_text: str, base_url: str | None) -> str:
    """sanitize_html as it was, one fragment at a time."""
    text = strip_control_chars(html_text)
    if not text.strip():
        return ""
    try:
        cleaner = _cleaner(base_url)
    except ValueError:
        cleaner = _cleaner(None)
    return strip_control_chars(cleaner.clean(text))


@pytest.mark.parametrize(
    "base",
    [None, "https://example.org/a/", "HTTP://Example.org", "ftp://example.org/", "http://[::1"],
)
@settings(max_examples=50, deadline=None)
@given(
    fragments=st.lists(
        st.one_of(_HTML, st.text(alphabet=st.sampled_from(_WHITESPACE_EDGES), max_size=4)),
        max_size=4,
    )
)
def test_one_sanitizer_for_many_fragments(base: str | None, fragments: list[str]) -> None:
    sanitize = html_sanitizer(base)

    for fragment in fragments:
        assert sanitize(fragment) == _sanitize_reference(fragment, base)
        assert sanitize_html(fragment, base) == _sanitize_reference(fragment, base)

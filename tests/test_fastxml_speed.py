"""The shortcuts of feedwatch._fastxml give exactly what the general code gives.

Each shortcut (opaque URLs in ``urljoin``, the C1 scan of ``_fix_text``, the
ASCII spelling of ``_PLAIN_URL_RE``, the content type test of
``_end_content``) is compared with the code it replaced, kept here as the
oracle, on text built to reach its edges.
"""

from __future__ import annotations

import contextlib
import re
import urllib.parse

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from feedwatch import _fastxml
from feedwatch._fastxml import (
    _PLAIN_URL_RE,
    CP1252,
    _fix_text,
    make_safe_absolute_uri,
    map_content_type,
    urljoin,
)

# --------------------------------------------------------------------------- oracles

_ORACLE_PLAIN_URL_RE = re.compile(
    r"https?://[^\s/?#;\\\[\]@%]+(?:/[^\s?#;\\\[\]]*)?(?:\?[^\s#\\\[\]]+)?(?:#[^\s\\\[\]]+)?\Z"
)
_ORACLE_C1_RE = re.compile("[\x80-\x9f]")


def _oracle_urljoin(base: str, uri: str) -> str:
    """feedparser's ``urls._urljoin`` (as ``urljoin`` was before its shortcuts)."""
    if "://" in uri:
        uri = _fastxml._URIFIXER_RE.sub(r"\1\3", uri)
    try:
        return urllib.parse.urljoin(base, uri)
    except ValueError:
        return ""


def _oracle_fix_text(text: str) -> str:
    if text.isascii():
        return text
    with contextlib.suppress(UnicodeEncodeError, UnicodeDecodeError):
        text = text.encode("iso-8859-1").decode("utf-8")
    if _ORACLE_C1_RE.search(text):
        text = text.translate(CP1252)
    return text


# --------------------------------------------------------------------------- urljoin

_BASES = [
    "",
    "http://127.0.0.1:8080/feed.xml",
    "https://example.com/a/b/",
    "tag:example.com,2005:/feed",
    "urn:x",
    "mailto:a@b.example",
    "http://[::1/broken",  # urlparse raises on it
    "http://]x/",
    "ftp://host/dir/",
    "/relative/only",
]

_EDGE_URIS = [
    "tag:blog0.example,2005:/feed",
    "tag:blog0.example,2025-05-06:7949032",
    "urn:uuid:1225c695-cfb8-4ebb-aaaa-80da344efa6a",
    "mailto:someone@example.com",
    "javascript:alert(1)",
    "data:text/html,<b>x</b>",
    "TAG:Upper.Case",
    "Http:relative/path",
    "http:relative",
    "https:?q",
    "svn+ssh:x",
    "ws:x",
    "a:",
    "a.b-c+d:x",
    "1tag:x",
    "-x:y",
    "ta\tg:x",
    "tag:/\t/x",
    # urlsplit drops tabs and line breaks: "//" then a netloc it raises on.
    "tag:/\t/[x",
    "tag:/\r/x]",
    "tag:/\n/[::1",
    "tag:x\ny",
    "tag:x\r",
    "tag:[::1",
    "tag://x",
    "tag:/x",
    "é:x",
    "tag:é",
    "x:y:z",
    "nocolon",
    "/path:with:colons",
    "?q:x",
    "#f:x",
    "",
]

_SCHEMES = st.sampled_from(
    ["tag", "urn", "mailto", "http", "https", "ftp", "file", "TAG", "Http", "x+y", "a.b", "ws"]
)
_URI_TEXT = st.lists(st.sampled_from([*"ab:/?#[]@%;.\\ \t\r\n\x0b\x1c-+é", "//"]), max_size=12).map(
    "".join
)


@pytest.mark.parametrize("base", _BASES)
@pytest.mark.parametrize("uri", _EDGE_URIS)
def test_urljoin_edges(base: str, uri: str) -> None:
    assert urljoin(base, uri) == _oracle_urljoin(base, uri)


@settings(max_examples=600, deadline=None)
@given(
    st.sampled_from(_BASES),
    st.one_of(
        st.builds(lambda s, rest: f"{s}:{rest}", _SCHEMES, _URI_TEXT),
        _URI_TEXT,
        st.text(max_size=20),
    ),
)
@example("http://example.com/", "tag:x")
@example("http://[::1/broken", "tag:x")
@example("", "tag:x")
def test_urljoin_matches_oracle(base: str, uri: str) -> None:
    assert urljoin(base, uri) == _oracle_urljoin(base, uri)


def test_urljoin_opaque_shortcut_is_taken() -> None:
    """The shortcut must answer without urllib (else it is no shortcut)."""
    calls: list[tuple[str, str]] = []
    original = urllib.parse.urljoin

    def counting(base: str, url: str, allow_fragments: bool = True) -> str:
        calls.append((base, url))
        return original(base, url, allow_fragments)

    urllib.parse.urljoin = counting  # type: ignore[assignment]
    try:
        assert urljoin("http://h/", "tag:a,2005:/b") == "tag:a,2005:/b"
        assert not calls
        # A relative scheme still goes through urllib.
        assert urljoin("http://h/", "http:x") == original("http://h/", "http:x")
        assert calls
    finally:
        urllib.parse.urljoin = original  # type: ignore[assignment]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(_BASES), st.sampled_from(_EDGE_URIS) | st.text(max_size=16))
def test_make_safe_absolute_uri_consistent(base: str, rel: str) -> None:
    """make_safe_absolute_uri, built on urljoin, against the same built on the oracle."""
    assume(base and rel)
    uri = _oracle_urljoin(base, rel)
    expected = uri if uri.strip().split(":", 1)[0] in _fastxml.ACCEPTABLE_URI_SCHEMES else ""
    assert make_safe_absolute_uri(base, rel) == expected


# --------------------------------------------------------------------------- the plain URL pattern

_URL_ALPHABET = st.sampled_from(
    list("htps:/?#;\\[]@%aZ09.-_~=&") + [chr(c) for c in range(128) if chr(c).isspace()]
)


@settings(max_examples=800, deadline=None)
@given(
    st.builds(
        lambda scheme, rest: scheme + rest,
        st.sampled_from(["http://", "https://", "", "http:/"]),
        st.text(alphabet=_URL_ALPHABET, max_size=24),
    )
)
@example("http://a/b?c#d")
@example("http://a b/")
@example("http://a/\x1c")
@example("https://a/b\x0b")
@example("http://a/b#c#d")
@example("http://a?b/c")
@example("http://a@b/")
def test_plain_url_pattern_on_ascii(url: str) -> None:
    assert url.isascii()
    assert bool(_PLAIN_URL_RE.match(url)) == bool(_ORACLE_PLAIN_URL_RE.match(url))


def test_plain_url_pattern_every_ascii_character() -> None:
    for code in range(128):
        for template in ("http://a{}b/c", "http://a/b{}c", "http://a/b?c{}d", "http://a/b#c{}d"):
            url = template.format(chr(code))
            assert bool(_PLAIN_URL_RE.match(url)) == bool(_ORACLE_PLAIN_URL_RE.match(url)), url


# --------------------------------------------------------------------------- _fix_text

_FIX_ALPHABET = st.sampled_from(
    [chr(c) for c in range(0x7E, 0xA2)] + ["a", "é", "Ã", "©", "\u201c", "\u20ac", "\U0001f600"]
)


@settings(max_examples=600, deadline=None)
@given(st.text(alphabet=_FIX_ALPHABET, max_size=16) | st.text(max_size=16))
@example("caf\xc3\xa9")
@example("\x80")
@example("\x9f")
@example("\xa0")
@example("\x7f\u201c")
@example("\xc2\x80")
def test_fix_text_matches_oracle(text: str) -> None:
    assert _fix_text(text) == _oracle_fix_text(text)


def test_fix_text_every_c1_character() -> None:
    for code in range(0x7F, 0xA1):
        for text in (chr(code), "é" + chr(code), "\u201c" + chr(code), chr(code) + "\U0001f600"):
            assert _fix_text(text) == _oracle_fix_text(text)


# --------------------------------------------------------------------------- content types


_CONTENT_TYPES = [
    *("text", "plain", "html", "xhtml", "TEXT", "Html", "text/plain", "TEXT/HTML"),
    *("image/svg+xml", "application/xhtml+xml", "Application/XHTML+XML", "text/xml"),
]


@pytest.mark.parametrize("content_type", _CONTENT_TYPES)
def test_map_content_type_is_idempotent(content_type: str) -> None:
    """``_end_content`` reads a detail's type as mapped: mapping it again changes nothing."""
    mapped = map_content_type(content_type)
    assert map_content_type(mapped) == mapped

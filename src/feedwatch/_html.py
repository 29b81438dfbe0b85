"""HTML and text helpers: sanitise HTML, turn HTML into plain text, strip control characters.

Contains no business logic and no feedwatch concepts; every function is pure
and never raises on hostile input. This is the only module that imports nh3.

It does NOT decide which field of an entry is content or summary, does not
resolve links of the entry itself (see ``normalise``), and does not parse feeds.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable

import nh3

__all__ = [
    "html_sanitizer",
    "html_to_text",
    "sanitize_email_html",
    "sanitize_html",
    "sanitized_html_to_text",
    "strip_control_chars",
    "text_to_html",
]

# --------------------------------------------------------------------------- control characters

# C0 controls except \t and \n (\r is turned into \n first), DEL and C1 controls,
# lone surrogates (cannot be encoded as UTF-8), and the Unicode non-characters
# U+FDD0..U+FDEF and U+xFFFE/U+xFFFF of every plane. PostgreSQL rejects NUL in text.
_CONTROL_RE = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufdd0-\ufdef\ufffe\uffff]"
)
# Kept apart, and used only on text that has a character from U+1FFFE on (the
# first of them): in a character class they make every match about ten times
# slower. One range is as fast to look for as _CONTROL_RE, and emoji (U+1Fxxx
# below U+1FFFE) do not reach it.
_ASTRAL_FROM_FIRST_NONCHAR_RE = re.compile("[\U0001fffe-\U0010ffff]")
_ASTRAL_NONCHAR_RE = re.compile(
    "["
    + "".join(chr(plane * 0x10000 + low) for plane in range(1, 17) for low in (0xFFFE, 0xFFFF))
    + "]"
)


# What _CONTROL_RE matches in ASCII, for bytes.translate (much faster than re).
_ASCII_CONTROLS = bytes([*range(0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F])
# From this length on, ASCII text is checked as bytes even when it is printable:
# cheaper than str.isprintable() on long text, dearer on short.
_LONG_ASCII = 64


def strip_control_chars(s: str) -> str:
    """Remove control characters, lone surrogates and non-characters; keep ``\\t`` and ``\\n``.

    ``\\r\\n`` and lone ``\\r`` become ``\\n``.
    """
    # Fast paths, each giving what _strip_control_chars_general(s) gives (tests
    # compare them). Printable text has nothing to remove: every character
    # removed is non-printable, and so is "\r".
    if (len(s) < _LONG_ASCII or not s.isascii()) and s.isprintable():
        return s
    if s.isascii():
        if "\r" in s:
            s = s.replace("\r\n", "\n").replace("\r", "\n")
        data = s.encode("ascii")
        kept = data.translate(None, _ASCII_CONTROLS)
        return s if len(kept) == len(data) else kept.decode("ascii")
    # Most text is not printable only for its line breaks and tabs, which stay:
    # with them made spaces, printable text has nothing to remove either.
    if s.replace("\n", " ").replace("\t", " ").isprintable():
        return s
    return _strip_control_chars_general(s)


def _strip_control_chars_general(s: str) -> str:
    """What strip_control_chars does, for any text (slower)."""
    if "\r" in s:
        s = s.replace("\r\n", "\n").replace("\r", "\n")
    s = _CONTROL_RE.sub("", s)
    if not s.isascii() and _ASTRAL_FROM_FIRST_NONCHAR_RE.search(s):
        s = _ASTRAL_NONCHAR_RE.sub("", s)
    return s


# --------------------------------------------------------------------------- sanitising

_ALLOWED_TAGS = frozenset(
    {
        "a",
        "abbr",
        "b",
        "blockquote",
        "br",
        "caption",
        "cite",
        "code",
        "dd",
        "del",
        "div",
        "dl",
        "dt",
        "em",
        "figcaption",
        "figure",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "hr",
        "i",
        "img",
        "ins",
        "kbd",
        "li",
        "mark",
        "ol",
        "p",
        "pre",
        "q",
        "s",
        "small",
        "span",
        "strong",
        "sub",
        "sup",
        "table",
        "tbody",
        "td",
        "tfoot",
        "th",
        "thead",
        "time",
        "tr",
        "u",
        "ul",
    }
)

# No style, class or id: they do nothing useful in an email and are a way to
# hide or restyle text. No attribute can hold script: nh3 never allows on*.
_ALLOWED_ATTRIBUTES: dict[str, frozenset[str]] = {
    "a": frozenset({"href", "title"}),
    "img": frozenset({"src", "alt", "title", "width", "height"}),
    "abbr": frozenset({"title"}),
    "ol": frozenset({"start"}),
    "td": frozenset({"colspan", "rowspan"}),
    "th": frozenset({"colspan", "rowspan", "scope"}),
    "time": frozenset({"datetime"}),
}

# Elements dropped together with their content: their text is code or UI, not prose.
_CLEAN_CONTENT_TAGS = frozenset(
    {
        "script",
        "style",
        "noscript",
        "template",
        "iframe",
        "object",
        "embed",
        "applet",
        "textarea",
        "select",
        "button",
        "title",
        "head",
        "svg",
        "math",
    }
)

_URL_SCHEMES = frozenset({"http", "https", "mailto"})


# nh3 rebuilds its whole configuration on every clean() call (about a third of
# the cost of a typical entry); a Cleaner keeps it. One per base URL, since the
# base is part of the configuration: a feed's entries share theirs. Building one
# costs about what cleaning a dozen short entries does, and a worker process
# sees every feed in turn: the limit is above the feed counts expected (1,000
# in the reference setup, where 256 meant a new Cleaner at every call). About
# 12 KB each, so at most about 12 MB.
_CLEANERS: dict[str, nh3.Cleaner] = {}
_CLEANERS_LIMIT = 1024


def _cleaner(base_url: str | None) -> nh3.Cleaner:
    if base_url is not None and not base_url.lower().startswith(("http://", "https://")):
        base_url = None  # joined to any other base, a relative URL could become ftp: or file:
    key = base_url or ""
    cleaner = _CLEANERS.get(key)
    if cleaner is None:
        if len(_CLEANERS) >= _CLEANERS_LIMIT:
            _CLEANERS.clear()
        cleaner = _CLEANERS[key] = nh3.Cleaner(
            tags=_ALLOWED_TAGS,
            clean_content_tags=_CLEAN_CONTENT_TAGS,
            attributes=_ALLOWED_ATTRIBUTES,
            url_schemes=_URL_SCHEMES,
            link_rel="noopener noreferrer",
            strip_comments=True,
            # A relative URL joined to an http(s) base stays http(s): it cannot
            # name another scheme.
            url_relative=("rewrite_with_base", base_url) if base_url else "deny",
        )
    return cleaner


def sanitize_html(html_text: str, base_url: str | None) -> str:
    """Return ``html_text`` reduced to an allow-list fit for web and email display.

    Relative URLs are resolved against ``base_url`` (an http(s) URL) so they
    survive (they are dropped when there is no base). Link schemes are limited
    to http, https and mailto; links get ``rel="noopener noreferrer"``. Script,
    style, iframes, forms and event handlers never survive.
    """
    return html_sanitizer(base_url)(html_text)


def html_sanitizer(base_url: str | None) -> Callable[[str], str]:
    """``sanitize_html`` with ``base_url`` fixed, for many fragments with the same base.

    ``html_sanitizer(base)(text) == sanitize_html(text, base)``; the cleaner for
    the base is looked up once, not once per fragment.
    """
    cleaner: nh3.Cleaner | None = None

    def sanitize(html_text: str) -> str:
        nonlocal cleaner
        text = strip_control_chars(html_text)
        if not text or text.isspace():  # what strip() would leave empty, without a copy
            return ""
        if cleaner is None:
            try:
                cleaner = _cleaner(base_url)
            except ValueError:  # a base URL nh3 cannot parse: relative URLs are dropped
                cleaner = _cleaner(None)
        cleaned = cleaner.clean(text)
        # Character references such as &#1; can come back as raw controls. Only
        # numeric ones: no named reference stands for a character stripped here
        # (a test checks nh3's whole table), and without references nh3 writes
        # characters of the input, ASCII markup and ASCII URLs only.
        return strip_control_chars(cleaned) if "&#" in text else cleaned

    return sanitize


# For messages feedwatch writes itself (alert emails): structure and emphasis
# only. No images (no remote loads, no tracking pixels), links http(s) only.
_EMAIL_TAGS = frozenset(
    [
        "a",
        "blockquote",
        "br",
        "code",
        "div",
        "em",
        "h1",
        "h2",
        "h3",
        "hr",
        "li",
        "mark",
        "p",
        "small",
        "strong",
        "time",
        "ul",
    ]
)
_EMAIL_ATTRIBUTES: dict[str, frozenset[str]] = {
    "a": frozenset({"href"}),
    "time": frozenset({"datetime"}),
}


def sanitize_email_html(html_text: str) -> str:
    """Return ``html_text`` reduced to a strict allow-list, for HTML we generate ourselves.

    Meant as a last pass over an HTML body that was already built with escaped
    text: only a few structural tags survive, no images, no styles, no event
    handlers, and links only with absolute http or https URLs.
    """
    cleaned = nh3.clean(
        strip_control_chars(html_text),
        tags=_EMAIL_TAGS,
        clean_content_tags=_CLEAN_CONTENT_TAGS,
        attributes=_EMAIL_ATTRIBUTES,
        url_schemes=frozenset({"http", "https"}),
        link_rel="noopener noreferrer",
        strip_comments=True,
        url_relative="deny",
    )
    return strip_control_chars(cleaned)


# --------------------------------------------------------------------------- text

_SKIP_CONTENT = _CLEAN_CONTENT_TAGS

# Elements that separate words visually; they become line breaks in the text.
_BLOCK = frozenset(
    {
        "address",
        "article",
        "aside",
        "blockquote",
        "br",
        "caption",
        "dd",
        "details",
        "dialog",
        "div",
        "dl",
        "dt",
        "fieldset",
        "figcaption",
        "figure",
        "footer",
        "form",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "header",
        "hgroup",
        "hr",
        "li",
        "main",
        "nav",
        "ol",
        "p",
        "pre",
        "section",
        "summary",
        "table",
        "tbody",
        "tfoot",
        "thead",
        "tr",
        "ul",
    }
)
# Elements that separate words on one line (table cells, form controls, images).
_SPACED = frozenset({"td", "th", "img", "input", "option", "label", "wbr"})

# What html_to_text keeps of arbitrary HTML before reading its text: the
# elements that separate words, without attributes; nh3 (a browser's parser)
# drops everything else, and script, style and the like with their content.
_TEXT_CLEANER = nh3.Cleaner(
    tags=_BLOCK | _SPACED,
    clean_content_tags=_SKIP_CONTENT,
    attributes={},
    strip_comments=True,
)

# A tag as nh3 serialises it: attribute values are always double-quoted (and
# may hold ">"), and a "<" in text is always written "&lt;". Three passes with
# constant replacements (C speed) instead of one with a Python callback per tag.
_ATTRIBUTES = r"""(?:[^>"']|"[^"]*"|'[^']*')*>"""


def _tags_re(names: frozenset[str]) -> re.Pattern[str]:
    """Opening, closing or self-closing tags of these elements, attributes included."""
    alternatives = "|".join(sorted(names, key=len, reverse=True))  # "pre" before "p"
    return re.compile(r"</?(?:" + alternatives + r")(?![^\s/>])" + _ATTRIBUTES, re.IGNORECASE)


_BLOCK_TAG_RE = _tags_re(_BLOCK)
_SPACED_TAG_RE = _tags_re(_SPACED)
_ANY_TAG_RE = re.compile(r"</?[A-Za-z][^\s/>]*" + _ATTRIBUTES)


# A tag as nh3 writes it: a lower-case name, then attributes each with a value in
# double quotes that holds no "<", ">" or '"' (nh3 writes them as references).
# Possessive quantifiers (no backtracking) give the same matches: each is followed
# by something its characters cannot be (a name by (?![^\s/>]), the rest by '"'
# or ">"), so giving any back could never let the match go on.
_NH3_TAG_RE = re.compile(r"""</?([a-z][a-z0-9]*+)(?![^\s/>])[^<>"']*+(?:"[^<>"]*+"[^<>"']*+)*+>""")


class _TagText(dict[str, str]):
    """What the three passes replace a tag with, by the tag's name."""

    def __missing__(self, name: str) -> str:
        return ""


_TAG_TEXT = _TagText(
    {name: "" for name in _ALLOWED_TAGS}
    | {name: "\n" for name in _BLOCK}
    | {name: " " for name in _SPACED}
)


def _strip_tags(text: str) -> str:
    """Every tag replaced: a line break for blocks, a space for cells, else nothing.

    What _BLOCK_TAG_RE, _SPACED_TAG_RE and _ANY_TAG_RE make of ``text``, in one
    pass where the text is made of tags as nh3 writes them (_NH3_TAG_RE) and
    text without "<" or ">", as nh3's output is. Then each of the three
    patterns can match only at the "<" of such a tag, it matches there exactly
    when the name is one of its names (the name is all lower-case ASCII letters
    and digits, and what follows is a space, "/" or ">"), and the match is the
    whole tag: the quoted values hold no quote of the other kind that would
    matter and no ">", so the match ends at the tag's ">". A replacement holds
    no "<" or ">", so the later passes see the other tags unchanged.
    """
    parts = _NH3_TAG_RE.split(text)  # text, tag name, text, tag name, ..., text
    parts[1::2] = map(_TAG_TEXT.__getitem__, parts[1::2])
    stripped = "".join(parts)
    # The replacements hold no "<" or ">": any left were outside the tags taken.
    if "<" not in stripped and ">" not in stripped:
        return stripped
    return _strip_tags_general(text)


def _strip_tags_general(text: str) -> str:
    """What _strip_tags does, for any text (slower)."""
    text = _BLOCK_TAG_RE.sub("\n", text)
    text = _SPACED_TAG_RE.sub(" ", text)
    return _ANY_TAG_RE.sub("", text)


def _collapse(text: str) -> str:
    """Runs of whitespace within a line become one space; blank lines go."""
    # str.split() and re's \s agree on what whitespace is; this is several times
    # faster than a regex substitution over the text.
    lines = []
    for line in text.split("\n"):
        if not line:
            continue
        # A printable line has no whitespace but " ": without "  " in it, at most
        # a space at either end is to go, and strip() is cheaper than split().
        line = line.strip() if "  " not in line and line.isprintable() else " ".join(line.split())
        if line:
            lines.append(line)
    return "\n".join(lines)


def sanitized_html_to_text(html_text: str) -> str:
    """Plain text of HTML that :func:`sanitize_html` (or nh3) produced.

    Faster than :func:`html_to_text` because the markup is known to be clean:
    block elements become line breaks, cells and images spaces, entities are
    decoded, whitespace collapses. Its result has no control characters (nh3
    writes only ``&amp;``, ``&lt;``, ``&gt;``, ``&quot;`` and ``&nbsp;``).
    """
    text = html_text
    if "<" in text:
        text = _strip_tags(text)
    if "&" in text:
        # nh3's serialiser writes only these five references (everything else as
        # the character itself); "&amp;" goes last so that "&amp;lt;" stays "&lt;".
        text = (
            text.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", '"')
            .replace("&nbsp;", "\xa0")
            .replace("&amp;", "&")
        )
    return _collapse(text)


def html_to_text(html_text: str) -> str:
    """Plain text of an HTML fragment, for matching and display.

    Script, style, noscript and template content is dropped; entities are
    decoded; block elements become line breaks so words never glue together;
    runs of whitespace collapse to one space and blank lines disappear. The
    fragment is read as a browser would (nh3's html5ever parser): a tag cut off
    by the end of the input is dropped, a stray "<" stays text.
    """
    source = strip_control_chars(html_text)
    if "<" not in source and "&" not in source:
        return _collapse(source)
    return sanitized_html_to_text(strip_control_chars(_TEXT_CLEANER.clean(source)))


_PARAGRAPH_SPLIT_RE = re.compile(r"\n\s*\n")


def text_to_html(text: str) -> str:
    """HTML for plain text: escaped, blank lines make paragraphs, line breaks make ``<br>``."""
    paragraphs = [p.strip() for p in _PARAGRAPH_SPLIT_RE.split(strip_control_chars(text))]
    return "".join(
        "<p>" + "<br>".join(html.escape(line) for line in p.split("\n")) + "</p>"
        for p in paragraphs
        if p
    )

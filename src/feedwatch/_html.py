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
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import nh3

__all__ = [
    "html_to_text",
    "sanitize_email_html",
    "sanitize_html",
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
# Kept apart, and used only on text that has characters beyond the BMP: in a
# character class they make every match about ten times slower.
_ASTRAL_RE = re.compile("[\U00010000-\U0010ffff]")
_ASTRAL_NONCHAR_RE = re.compile(
    "["
    + "".join(chr(plane * 0x10000 + low) for plane in range(1, 17) for low in (0xFFFE, 0xFFFF))
    + "]"
)


def strip_control_chars(s: str) -> str:
    """Remove control characters, lone surrogates and non-characters; keep ``\\t`` and ``\\n``.

    ``\\r\\n`` and lone ``\\r`` become ``\\n``.
    """
    if "\r" in s:
        s = s.replace("\r\n", "\n").replace("\r", "\n")
    s = _CONTROL_RE.sub("", s)
    if not s.isascii() and _ASTRAL_RE.search(s):
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


def _relative_url_resolver(base_url: str) -> Callable[[str], str | None]:
    def resolve(url: str) -> str | None:
        # nh3 calls this for relative URLs only; an exception here would be
        # swallowed by nh3 as "unraisable", so never raise.
        try:
            absolute = urljoin(base_url, url.strip())
            scheme = urlsplit(absolute).scheme.lower()
        except ValueError:
            return None
        return absolute if scheme in ("http", "https") else None

    return resolve


def sanitize_html(html_text: str, base_url: str | None) -> str:
    """Return ``html_text`` reduced to an allow-list fit for web and email display.

    Relative URLs are resolved against ``base_url`` so they survive (they are
    dropped when there is no base). Link schemes are limited to http, https and
    mailto; links get ``rel="noopener noreferrer"``. Script, style, iframes,
    forms and event handlers never survive.
    """
    text = strip_control_chars(html_text)
    if not text.strip():
        return ""
    url_relative: nh3.UrlRelative = _relative_url_resolver(base_url) if base_url else "deny"
    cleaned = nh3.clean(
        text,
        tags=_ALLOWED_TAGS,
        clean_content_tags=_CLEAN_CONTENT_TAGS,
        attributes=_ALLOWED_ATTRIBUTES,
        url_schemes=_URL_SCHEMES,
        link_rel="noopener noreferrer",
        strip_comments=True,
        url_relative=url_relative,
    )
    # Character references such as &#1; can come back as raw controls.
    return strip_control_chars(cleaned)


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

_SPACES_RE = re.compile(r"[^\S\n]+")
_TAG_RE = re.compile(r"<[^>]*>?")
_INCOMPLETE_TAG_RE = re.compile(r"</?[A-Za-z]")


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_CONTENT:
            self._skip_depth += 1
        elif tag in _BLOCK:
            self.parts.append("\n")
        elif tag in _SPACED:
            self.parts.append(" ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # <script/> opens nothing; <br/> still breaks the line.
        if tag in _BLOCK:
            self.parts.append("\n")
        elif tag in _SPACED:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_CONTENT:
            self._skip_depth = max(0, self._skip_depth - 1)
        elif tag in _BLOCK:
            self.parts.append("\n")
        elif tag in _SPACED:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self._skip_depth:
            self.parts.append(data)


def _collapse(text: str) -> str:
    lines = (_SPACES_RE.sub(" ", line).strip() for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


def html_to_text(html_text: str) -> str:
    """Plain text of an HTML fragment, for matching and display.

    Script, style, noscript and template content is dropped; entities are
    decoded; block elements become line breaks so words never glue together;
    runs of whitespace collapse to one space and blank lines disappear.
    """
    source = strip_control_chars(html_text)
    if "<" not in source and "&" not in source:
        return _collapse(source)
    parser = _TextExtractor()
    try:
        parser.feed(source)
        if _INCOMPLETE_TAG_RE.match(parser.rawdata):
            # A tag cut off by the end of input is dropped (as browsers do),
            # not flushed out as text by close().
            parser.rawdata = ""
        parser.close()
        text = "".join(parser.parts)
    except Exception:
        # html.parser is lenient, but this must never raise on hostile input:
        # fall back to dropping anything tag-shaped.
        text = html.unescape(_TAG_RE.sub(" ", source))
    return _collapse(strip_control_chars(text))


_PARAGRAPH_SPLIT_RE = re.compile(r"\n\s*\n")


def text_to_html(text: str) -> str:
    """HTML for plain text: escaped, blank lines make paragraphs, line breaks make ``<br>``."""
    paragraphs = [p.strip() for p in _PARAGRAPH_SPLIT_RE.split(strip_control_chars(text))]
    return "".join(
        "<p>" + "<br>".join(html.escape(line) for line in p.split("\n")) + "</p>"
        for p in paragraphs
        if p
    )

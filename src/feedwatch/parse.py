"""Turn the bytes of one fetched document into a :class:`ParsedFeed`.

RSS 0.9x/1.0/2.0 and Atom go through a fast path first (lxml, :mod:`._fastxml`,
which reproduces feedparser's result for the well-formed documents it accepts and
declines the rest), then through feedparser; JSON Feed 1.0/1.1 through a small
parser of our own. This is the only module that imports feedparser, and
feedparser's dict never leaves it: everything is converted to typed records here.

:func:`parse_document` is a pure, top-level function (it runs in a process
pool) and raises :class:`ParseError`, never anything else, when nothing usable
remains. Survivable problems (a charset overridden, a bad entry skipped, a
non-well-formed document with entries in it) become ``ParsedFeed.warnings``.

It does NOT fetch anything (feedparser is handed bytes, never a URL or a path),
does NOT sanitise HTML or turn it into text, and does NOT compute keys, canonical
URLs or hashes: that is ``normalise``. Entity-declaring DOCTYPEs are rejected
before any parser sees the bytes.
"""

from __future__ import annotations

import calendar
import codecs
import contextlib
import email.utils
import html
import io
import json
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urljoin

import feedparser

from ._fastxml import html_pass, parse_fast
from ._html import html_to_text, strip_control_chars
from ._model import ParsedEntry, ParsedFeed
from .exceptions import ParseError

__all__ = ["parse_document"]

_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_JSON_TYPES = frozenset({"application/feed+json", "application/json"})
_JSONFEED_VERSION_PREFIX = "https://jsonfeed.org/version/"
_JSONFEED_FORMATS = {"1": "json10", "1.0": "json10", "1.1": "json11"}

#: Errors converting one entry may raise; anything else is a bug and propagates
#: (then becomes a ParseError at the boundary of :func:`parse_document`).
_ENTRY_ERRORS = (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError)


def parse_document(content: bytes, *, url: str, headers: Mapping[str, str]) -> ParsedFeed:
    """Parse one feed document.

    Args:
        content: The body as received (already decompressed).
        url: The final URL the body came from; relative links resolve against it.
        headers: The HTTP response headers (any case); Content-Type and
            Content-Language are used.

    Raises:
        ParseError: The document is empty, not a feed, unsafe (an
            entity-declaring DOCTYPE), or nothing usable remains in it.
    """
    try:
        return _parse_document(content, url=url, headers=headers)
    except ParseError:
        raise
    except Exception as exc:
        # The adapter boundary: no library exception escapes, whatever the input.
        raise ParseError(f"parser failed: {type(exc).__name__}: {exc}", url=url) from exc


def _parse_document(content: bytes, *, url: str, headers: Mapping[str, str]) -> ParsedFeed:
    lower_headers = {k.lower(): v for k, v in headers.items()}
    if not content.strip(b" \t\r\n\x00\xef\xbb\xbf\xfe\xff"):
        raise ParseError("empty document", url=url)
    media_type, _ = _content_type(lower_headers)
    body_start = _body_start(content)
    # A body labelled JSON that starts with markup goes to XML: servers mislabel.
    if (media_type in _JSON_TYPES or body_start == "{") and body_start != "<":
        return _parse_json_feed(content, url=url)
    return _parse_xml(content, url=url, headers=lower_headers)


def _content_type(headers: Mapping[str, str]) -> tuple[str, str | None]:
    """(media type, charset) from a Content-Type header, lower-cased."""
    value = headers.get("content-type", "")
    media_type, _, params = value.partition(";")
    charset = None
    for param in params.split(";"):
        name, _, param_value = param.partition("=")
        if name.strip().lower() == "charset":
            charset = param_value.strip().strip("\"'").lower() or None
    return media_type.strip().lower(), charset


def _body_start(content: bytes) -> str:
    """The first significant character of the body ("" if none), BOMs and UTF-16/32 allowed for."""
    encoding = _sniff_encoding(content) or "latin-1"
    head = content[:64].decode(encoding, errors="replace").lstrip("\ufeff \t\r\n\x00")
    return head[:1]


# --------------------------------------------------------------------------- encodings


def _sniff_encoding(content: bytes) -> str | None:
    """The encoding a BOM or the first bytes give away (XML 1.0, appendix F), or None."""
    for bom, name in (
        (codecs.BOM_UTF32_BE, "utf-32-be"),
        (codecs.BOM_UTF32_LE, "utf-32-le"),
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_BE, "utf-16-be"),
        (codecs.BOM_UTF16_LE, "utf-16-le"),
    ):
        if content.startswith(bom):
            return name
    head = content[:4]
    if head[:4] == b"\x4c\x6f\xa7\x94":  # "<?xm" in EBCDIC
        return "cp037"
    if len(head) == 4:
        if head[:3] == b"\x00\x00\x00" and head[3]:
            return "utf-32-be"
        if head[1:] == b"\x00\x00\x00" and head[0]:
            return "utf-32-le"
        if head[0] == 0 and head[1] and head[2] == 0:
            return "utf-16-be"
        if head[1] == 0 and head[0] and head[3] == 0:
            return "utf-16-le"
    return None


_XML_DECL_ENCODING_RE = re.compile(
    r"""^\s*<\?xml[^>]*?\bencoding\s*=\s*["']([A-Za-z0-9._:-]+)["']""", re.IGNORECASE
)


def _declared_xml_encoding(content: bytes) -> str | None:
    sniffed = _sniff_encoding(content) or "latin-1"
    head = content[:1024].decode(sniffed, errors="replace").lstrip("\ufeff")
    match = _XML_DECL_ENCODING_RE.match(head)
    return match.group(1).lower() if match else None


def _codec(name: str | None) -> str | None:
    """The canonical name of a text encoding, or None if Python has no such text codec."""
    if not name:
        return None
    try:
        codec = codecs.lookup(name).name
        # Rules out bytes-to-bytes codecs ("hex", "base64"...) as bytes.decode does
        # (and as feedparser meets them); empty input would skip that check.
        b"<".decode(codec, "ignore")
    except LookupError:
        return None
    return codec


def _is_utf8_family(name: str | None) -> bool:
    return _codec(name) in ("utf-8", "utf-8-sig")


def _encoding_family(name: str) -> str:
    """The encoding without its byte order: utf-16 for utf-16-le, utf-8 for utf-8-sig."""
    codec = _codec(name) or name.lower()
    return codec.removesuffix("-sig").removesuffix("-le").removesuffix("-be")


def _is_utf8(content: bytes) -> bool:
    """True when the body is valid UTF-8.

    Text in a legacy charset (cp1251, latin-1...) is practically never valid
    UTF-8 once it holds non-ASCII letters, so a valid non-ASCII body is a safe
    signal that a declaration naming such a charset is wrong.
    """
    try:
        content.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _recover_utf8(content: bytes, headers: Mapping[str, str], warnings: list[str]) -> bytes:
    """The body as valid UTF-8 when it claims UTF-8 (or nothing) but is not, and
    the truth is evident; otherwise the body unchanged.

    feedparser reads such a body as windows-1252 from the first byte to the last:
    one stray byte turns every correct non-ASCII letter into mojibake, and Cyrillic
    in windows-1251 (a common CMS misconfiguration) becomes Latin soup. Here:

    * mostly UTF-8 (more valid non-ASCII characters than invalid sequences): each
      invalid sequence becomes U+FFFD, as browsers decode UTF-8;
    * else text that reads as Russian (or Ukrainian...) in windows-1251: read so;
    * else (latin-1 text, say) left to feedparser, whose windows-1252 fits it.
    """
    if content.isascii() or _sniff_encoding(content) is not None:
        return content
    _, charset = _content_type(headers)
    declared = _declared_xml_encoding(content)
    if any(name and not _is_utf8_family(name) for name in (charset, declared)):
        # A legacy charset is named: feedparser tries it (and the other declaration).
        return content
    if _is_utf8(content):
        return content
    text = content.decode("utf-8", errors="replace")
    replaced = text.count("\ufffd") - content.count("\ufffd".encode())
    valid = len(text) - len(text.encode("ascii", errors="ignore")) - replaced
    if valid > replaced:
        warnings.append(
            f"body declared UTF-8 has {replaced} invalid UTF-8 sequence(s), replaced by U+FFFD"
        )
        return text.encode("utf-8")
    if _reads_as_cp1251(content):
        warnings.append("body declared UTF-8 is not UTF-8: read as windows-1251")
        return content.decode("cp1251", errors="replace").encode("utf-8")
    return content


_CYRILLIC_RUN_RE = re.compile("[\u0400-\u04ff]+")
#: The six most frequent letters of Russian (48% of its letters), Ukrainian (40%)
#: and Bulgarian (51%) text; other scripts' bytes read as windows-1251 give far fewer.
_FREQUENT_CYRILLIC = "оеаинт"


def _reads_as_cp1251(content: bytes) -> bool:
    """True when the (start of the) body read as windows-1251 is Cyrillic prose:
    its non-ASCII characters are mostly Cyrillic letters, in words, mostly lower
    case (KOI8-R read so is mostly upper case), with the letter frequencies of a
    Cyrillic language. Western text in windows-1252 has its accented letters
    alone between ASCII ones, which read as windows-1251 make no such words.
    """
    text = content[:_PROLOG_CHUNK].decode("cp1251", errors="replace")
    runs = _CYRILLIC_RUN_RE.findall(text)
    letters = "".join(runs)
    if len(letters) < 8:
        return False
    non_ascii = len(text) - len(text.encode("ascii", errors="ignore"))
    in_words = sum(len(run) for run in runs if len(run) >= 3)
    lower = letters.lower()
    lower_case = sum(1 for a, b in zip(letters, lower, strict=True) if a == b)
    frequent = sum(lower.count(letter) for letter in _FREQUENT_CYRILLIC)
    n = len(letters)
    return (
        n >= 0.8 * non_ascii
        and in_words >= 0.7 * n
        and lower_case >= 0.5 * n
        and frequent >= 0.35 * n
    )


# --------------------------------------------------------------------------- DOCTYPE guard


@dataclass(frozen=True, slots=True)
class _Prolog:
    """What comes before the root element of an XML document."""

    #: Text before the root element (everything, if no root was found).
    text: str
    #: The DOCTYPE declaration, verbatim, if any.
    doctype: str | None
    #: Local name of the root element, lower-cased, if one was found.
    root: str | None


# feedparser's own split of the head is "up to the first <\w" on the bytes; the
# root here starts at the same kind of character, so the prolog scanned here
# always covers what feedparser treats as the head.
_ROOT_START_RE = re.compile(r"<[A-Za-z0-9_]")
_NAME_RE = re.compile(r"[^\s/>]+")
_ENTITY_DECL_RE = re.compile(r"<!\s*ENTITY", re.IGNORECASE)
_PE_REFERENCE_RE = re.compile(r"%[^\s;%'\"<>]+;")
_EXTERNAL_ID_RE = re.compile(r"\b(SYSTEM|PUBLIC)\b", re.IGNORECASE)
_PUBLIC_ID_RE = re.compile(r"\bPUBLIC\s+([\"'])(.*?)\1", re.IGNORECASE | re.DOTALL)
#: External DTDs that are harmless to name: nobody fetches them (feedparser strips
#: the DOCTYPE, expat does not load external entities), and real feeds carry them.
_ALLOWED_PUBLIC_IDS = frozenset({"-//netscape communications//dtd rss 0.91//en"})
_PROLOG_CHUNK = 64 * 1024


def _scan_prolog(text: str) -> _Prolog:
    """Walk the prolog: XML declaration, processing instructions, comments, DOCTYPE."""
    i, n = 0, len(text)
    doctype: str | None = None
    while i < n:
        if text.startswith("<?", i):
            end = text.find("?>", i + 2)
            i = n if end < 0 else end + 2
        elif text.startswith("<!--", i):
            end = text.find("-->", i + 4)
            i = n if end < 0 else end + 3
        elif text[i : i + 9].upper() == "<!DOCTYPE":
            end = _doctype_end(text, i + 9)
            if doctype is None:
                doctype = text[i:end]
            i = end
        elif _ROOT_START_RE.match(text, i):
            name = _NAME_RE.match(text, i + 1)
            root = name.group(0).rpartition(":")[2].lower() if name else None
            return _Prolog(text=text[:i], doctype=doctype, root=root)
        elif text.startswith("<!", i):
            end = text.find(">", i + 2)
            i = n if end < 0 else end + 1
        else:
            # Whitespace, or junk a lenient parser may skip: move to the next tag.
            end = text.find("<", i + 1)
            i = n if end < 0 else end
    return _Prolog(text=text, doctype=doctype, root=None)


def _doctype_end(text: str, i: int) -> int:
    """Index just past the DOCTYPE declaration starting before ``i`` (quotes, internal subset)."""
    n = len(text)
    depth = 0
    while i < n:
        char = text[i]
        if char in "\"'":
            end = text.find(char, i + 1)
            i = n if end < 0 else end + 1
            continue
        if depth and text.startswith("<!--", i):
            end = text.find("-->", i + 4)
            i = n if end < 0 else end + 3
            continue
        if depth and text.startswith("<?", i):
            end = text.find("?>", i + 2)
            i = n if end < 0 else end + 2
            continue
        if char == "[":
            depth += 1
        elif char == "]":
            depth = max(0, depth - 1)
        elif char == ">" and not depth:
            return i + 1
        i += 1
    return n


def _prolog_problem(prolog: _Prolog) -> str | None:
    """Why this prolog is unsafe to hand to a parser, or None."""
    if _ENTITY_DECL_RE.search(prolog.text):
        return "the DOCTYPE declares entities"
    doctype = prolog.doctype
    if doctype is None:
        return None
    if _PE_REFERENCE_RE.search(doctype):
        return "the DOCTYPE references parameter entities"
    external_part = doctype.partition("[")[0]
    if _EXTERNAL_ID_RE.search(external_part):
        public = _PUBLIC_ID_RE.search(external_part)
        public_id = " ".join(public.group(2).split()).lower() if public else None
        if public_id not in _ALLOWED_PUBLIC_IDS:
            return "the DOCTYPE references an external DTD"
    return None


def _candidate_encodings(content: bytes, headers: Mapping[str, str]) -> list[str]:
    """Every encoding the XML parsers might decode the document with.

    The markup is ASCII in every ASCII-compatible charset, which latin-1 decodes
    byte for byte; the others (UTF-16/32, EBCDIC, UTF-7...) must be tried as such,
    or a declaration could hide from the scan.
    """
    _, header_charset = _content_type(headers)
    names = [_sniff_encoding(content), header_charset, _declared_xml_encoding(content)]
    encodings = ["latin-1"]
    for name in names:
        codec = _codec(name)
        if codec and codec not in encodings:
            encodings.append(codec)
    return encodings


def _check_prolog(content: bytes, headers: Mapping[str, str], url: str) -> str | None:
    """Reject HTML pages and entity-declaring or DTD-fetching DOCTYPEs, before any parser runs.

    Returns the local name of the root element (lower-cased), if one was found.
    """
    root: str | None = None
    for encoding in _candidate_encodings(content, headers):
        prolog = _read_prolog(content, encoding)
        if prolog is None:
            continue
        if prolog.root == "html":
            raise ParseError("not a feed: got an HTML page", url=url)
        problem = _prolog_problem(prolog)
        if problem:
            raise ParseError(f"unsafe document rejected: {problem}", url=url)
        root = root or prolog.root
    return root


def _read_prolog(content: bytes, encoding: str) -> _Prolog | None:
    """The prolog of the document read as ``encoding``; None if it cannot be read so at all.

    A document that cannot be decoded with an encoding cannot be parsed with it
    either (feedparser moves on to its next candidate), so there is nothing to scan.
    """
    try:
        decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
        prolog = _scan_prolog(decoder.decode(content[:_PROLOG_CHUNK]))
        if prolog.root is None and len(content) > _PROLOG_CHUNK:
            # The prolog goes on past the first chunk (a huge internal subset, say):
            # scan the whole document.
            prolog = _scan_prolog(content.decode(encoding, errors="replace"))
    except UnicodeError:
        # "UTF-16 stream does not start with BOM" ignores errors="replace".
        return None
    return prolog


# --------------------------------------------------------------------------- XML via feedparser

_SURVIVABLE_BOZO = ("CharacterEncodingOverride", "NonXMLContentType")
_ENTRY_OPEN_RE = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?(?:item|entry)[\s>/]")
_ENTRY_CLOSE_RE = re.compile(rb"</(?:[A-Za-z_][\w.-]*:)?(?:item|entry)\s*>")


#: Root elements of feeds (local names); feedparser finds no format in a few of
#: them (RSS 1.0 without its namespace, a bare <channel>) but they are feeds.
_FEED_ROOTS = frozenset({"rss", "feed", "rdf", "channel"})


def _parse_xml(content: bytes, *, url: str, headers: Mapping[str, str]) -> ParsedFeed:
    warnings: list[str] = []
    content = _recover_utf8(content, headers, warnings)
    root = _check_prolog(content, headers, url)
    response_headers = _feedparser_headers(content, headers, url, warnings)
    try:
        fast = _parse_xml_fast(
            content, url=url, response_headers=response_headers, warnings=warnings
        )
    except Exception:
        # A bug in the fast path must not cost the document: feedparser reads it.
        fast = None
    parsed = fast
    if parsed is None:
        parsed = _parse_xml_feedparser(
            content, url=url, response_headers=response_headers, warnings=warnings
        )
    if parsed.format == "unknown" and root is not None and root not in _FEED_ROOTS:
        # feedparser takes <item> elements from any XML (a sitemap, an API's answer).
        # The name is the document's: it goes into the feed's stored error, so
        # without control characters (a NUL would fail PostgreSQL) and bounded.
        shown = strip_control_chars(root)
        shown = shown if len(shown) <= 80 else shown[:80] + "..."
        raise ParseError(f"not a feed: the root element is <{shown}>", url=url)
    return parsed


def _parse_xml_fast(
    content: bytes, *, url: str, response_headers: Mapping[str, str], warnings: list[str]
) -> ParsedFeed | None:
    """The fast path (lxml, :mod:`._fastxml`): feedparser's result, or None when it declines.

    lxml reads exactly the bytes feedparser's SAX parser would: feedparser's own
    encoding detection and conversion to UTF-8, then its DOCTYPE removal.
    """
    result: dict[str, Any] = {}
    try:
        data = feedparser.encodings.convert_to_utf8(dict(response_headers), content, result)
    except (UnicodeError, ValueError, LookupError):
        # feedparser raises on these too (a declaration it cannot read): its path reports it.
        return None
    if not result.get("encoding"):
        # No encoding worked: feedparser goes straight to its lenient parser.
        return None
    warnings = list(warnings)
    if result.get("bozo"):
        exc = result.get("bozo_exception")
        if type(exc).__name__ not in _SURVIVABLE_BOZO:
            return None
        warnings.append(f"{type(exc).__name__}: {exc}")
    doctype_version, data, _ = feedparser.sanitizer.replace_doctype(data)
    fast = parse_fast(
        data,
        base=url,
        language=response_headers.get("content-language"),
        resolve_html=_resolve_relative_uris,
    )
    if fast is None:
        return None
    dates: dict[str, Any] = {}
    for entry in fast.entries:
        for key in ("published_parsed", "updated_parsed"):
            raw = entry.get(key)
            if isinstance(raw, str):
                if raw not in dates:
                    dates[raw] = _feedparser_date(raw)
                entry[key] = dates[raw]
    version = doctype_version or fast.version
    return _parsed_feed(fast.feed, fast.entries, version, _feed_title(fast.feed), warnings, url)


def _resolve_relative_uris(html_text: str, base: str, content_type: str) -> str:
    return str(feedparser.urls.resolve_relative_uris(html_text, base, "utf-8", content_type))


def _feedparser_date(text: str) -> Any:
    fast = _fast_date(text)
    return fast if fast is not None else feedparser.datetimes._parse_date(text)


# A fast, exact path for the two date shapes nearly every feed writes (feedparser
# tries its handlers in turn, in pure Python). Each regex accepts only strings that
# feedparser's handler reads field by field as below; anything else, and any
# value that handler would reject (month 13, a leap second, an overflow), is
# declined (None) and goes to feedparser, whose later handlers may still read it.
# re.ASCII: no Unicode digits, and no case folding of "ſ" to "s" or "K" to "k".

#: W3DTF, ``_parse_date_w3dtf``, feedparser's first handler.
_W3DTF_RE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})"
    r"(?:[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2}(?:\.[0-9]{1,9})?)([Zz]|[+-][0-9]{2}:?[0-9]{2})?)?",
    re.ASCII,
)
#: RFC 822 as feeds write it, ``_parse_date_rfc822``, feedparser's second handler.
#: The first handler declines all of these: the text before the first "t" or "-"
#: (or the first word, if there is no "t") is never four characters of an integer,
#: since a letter (weekday, month) or a space always comes within the first four.
_RFC822_RE = re.compile(
    r"(?:(?:mon|tue|wed|thu|fri|sat|sun),? )?([0-9]{1,2}) "
    r"(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec) ([0-9]{4}|[0-9]{2}) "
    r"([0-9]{1,2}):([0-9]{2})(?::([0-9]{2}))? ([+-][0-9]{2}:?[0-9]{2}|[a-z]{1,5})",
    re.ASCII | re.IGNORECASE,
)
_MONTHS = {
    name: number
    for number, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
        start=1,
    )
}
_RFC822_ZONE_HOURS: Mapping[str, int] = feedparser.datetimes.rfc822.timezone_names


def _fast_date(text: str) -> time.struct_time | None:
    """``feedparser.datetimes._parse_date(text)`` for the common shapes; None to decline."""
    try:
        match = _W3DTF_RE.fullmatch(text)
        if match is not None:
            return _w3dtf_date(match)
        match = _RFC822_RE.fullmatch(text)
        if match is not None:
            return _rfc822_date(match)
    except (ValueError, OverflowError):
        # feedparser's handler returns None on these, and the next handlers get a try.
        return None
    return None


def _w3dtf_date(match: re.Match[str]) -> time.struct_time:
    year, month, day, hour, minute, second, zone = match.groups()
    zone_hours = zone_minutes = 0
    if hour is None:
        # A date alone is midnight UTC.
        hour = minute = second = "0"
    elif zone and zone[0] in "+-":
        # feedparser's slicing, verbatim: "+0530" gives 0 minutes ("+05:30" 30).
        zone_hours, zone_minutes = int(zone[1:3]), int(zone[4:])
        if zone[0] == "-":
            zone_hours, zone_minutes = -zone_hours, -zone_minutes
    stamp = datetime(int(year), int(month), int(day), int(hour), int(minute), int(float(second)))
    return _to_utc(stamp, zone_hours, zone_minutes)


def _rfc822_date(match: re.Match[str]) -> time.struct_time:
    day, month_name, year_text, hour, minute, second, zone = match.groups()
    year = int(year_text)
    if len(year_text) == 2:
        year += 1900 if year >= 90 else 2000
    zone = zone.lower()
    if zone[0] in "+-":
        zone_hours, zone_minutes = int(zone[1:3]), int(zone[-2:])
        if zone[0] == "-":
            zone_hours, zone_minutes = -zone_hours, -zone_minutes
    else:
        if zone.startswith("gmt"):
            zone = zone[3:] or "gmt"
        # Unknown names are UTC to feedparser.
        zone_hours, zone_minutes = _RFC822_ZONE_HOURS.get(zone, 0), 0
    stamp = datetime(
        year, _MONTHS[month_name.lower()], int(day), int(hour), int(minute), int(second or 0)
    )
    return _to_utc(stamp, zone_hours, zone_minutes)


#: timedelta(minutes=..., hours=...) by (hours, minutes): building one from keywords
#: costs more than the rest of a date. At most 199 * 199 keys (two digits each, signed).
_ZONE_DELTAS: dict[tuple[int, int], timedelta] = {}


def _to_utc(stamp: datetime, zone_hours: int, zone_minutes: int) -> time.struct_time:
    """``(stamp - timedelta(minutes=zone_minutes, hours=zone_hours)).utctimetuple()``."""
    key = (zone_hours, zone_minutes)
    delta = _ZONE_DELTAS.get(key)
    if delta is None:
        delta = _ZONE_DELTAS[key] = timedelta(minutes=zone_minutes, hours=zone_hours)
    return (stamp - delta).utctimetuple()


_FEEDPARSER_RESOLVER = feedparser.mixin.resolve_relative_uris


def _resolve_through_html_pass(html_source: Any, base_uri: Any, encoding: Any, type_: Any) -> Any:
    """feedparser's relative-URI pass (``feedparser.mixin.resolve_relative_uris``), by
    :func:`~feedwatch._fastxml.html_pass` wherever that vouches for the HTML.

    The fast path does the very same at the same point of feedparser's ``pop``;
    tests/test_fastxml.py checks that the sanitised HTML is the same as after
    feedparser's own pass, and that the items of the corpus are. sgmllib's pass
    costs most of what feedparser spends on a document it reads with its lenient
    parser. Only for ``text/html``: feedparser's pass reads ``application/xhtml+xml``
    its own way (``<a href=u/>`` is an empty element there).
    """
    if type_ == "text/html" and isinstance(html_source, str) and isinstance(base_uri, str):
        passed = html_pass(html_source, base_uri)
        if passed is not None:
            return passed
    return _FEEDPARSER_RESOLVER(html_source, base_uri, encoding, type_)


@contextlib.contextmanager
def _html_pass_in_feedparser(enabled: bool) -> Iterator[None]:
    """Within the block, feedparser resolves relative URIs in HTML values through
    :func:`_resolve_through_html_pass`. (A module attribute: the worker processes
    parse one document at a time, in one thread.)"""
    if not enabled:
        yield
        return
    feedparser.mixin.resolve_relative_uris = _resolve_through_html_pass
    try:
        yield
    finally:
        feedparser.mixin.resolve_relative_uris = _FEEDPARSER_RESOLVER


def _parse_xml_feedparser(
    content: bytes,
    *,
    url: str,
    response_headers: Mapping[str, str],
    warnings: list[str],
    exact: bool = False,
) -> ParsedFeed:
    """The feedparser path: every document the fast path declines.

    ``exact``: feedparser's own relative-URI pass on HTML values, as the tests'
    oracle needs; otherwise :func:`~feedwatch._fastxml.html_pass` where it can
    (the same items once normalised, for a fraction of the CPU).
    """
    warnings = list(warnings)
    with _html_pass_in_feedparser(not exact):
        result = feedparser.parse(
            # A stream, never bytes or str: feedparser would treat a short string as
            # a URL or a file name and open it.
            io.BytesIO(content),
            response_headers=dict(response_headers),
            resolve_relative_uris=True,
            sanitize_html=False,
        )
    feed = _get(result, "feed") or {}
    raw_entries: list[Any] = list(_get(result, "entries") or [])
    version = str(_get(result, "version") or "")
    feed_title = _feed_title(feed)

    if _get(result, "bozo"):
        exc = _get(result, "bozo_exception")
        reason = f"{type(exc).__name__}: {exc}" if exc is not None else "malformed document"
        if type(exc).__name__ in _SURVIVABLE_BOZO:
            warnings.append(reason)
        elif not raw_entries and not feed_title:
            raise ParseError(f"not a feed: {reason}", url=url)
        else:
            warnings.append(f"document is not well-formed, kept what could be read: {reason}")
            if raw_entries and _last_entry_unclosed(content):
                # A truncated document: the last entry was cut off and may be half-made.
                raw_entries.pop()
                warnings.append("last entry dropped: the document ends inside it")
    return _parsed_feed(feed, raw_entries, version, feed_title, warnings, url)


def _parsed_feed(
    feed: Any,
    raw_entries: list[Any],
    version: str,
    feed_title: str | None,
    warnings: list[str],
    url: str,
) -> ParsedFeed:
    """The typed records from feedparser's dicts (or the fast path's, which have its keys)."""
    if not version and not raw_entries and not feed_title:
        raise ParseError("not a feed: no RSS, Atom or JSON Feed content found", url=url)

    feed_language = _language(_get(feed, "language"))
    is_atom = version.startswith("atom")
    inherit_author = _feed_author(feed) if is_atom else None
    entries: list[ParsedEntry] = []
    for index, raw in enumerate(raw_entries):
        try:
            entry = _convert_entry(
                raw, is_atom=is_atom, feed_language=feed_language, inherit_author=inherit_author
            )
        except _ENTRY_ERRORS as exc:
            warnings.append(f"entry {index} skipped: {type(exc).__name__}: {exc}")
            continue
        if entry is None:
            warnings.append(f"entry {index} skipped: no id, link or title")
            continue
        entries.append(entry)

    ttl_minutes = _ttl(_get(feed, "ttl"), warnings)
    return ParsedFeed(
        format=version or "unknown",
        title=feed_title,
        link=_http_link(_get(feed, "link")),
        language=feed_language,
        entries=tuple(entries),
        warnings=tuple(warnings),
        ttl_minutes=ttl_minutes,
    )


def _feedparser_headers(
    content: bytes, headers: Mapping[str, str], url: str, warnings: list[str]
) -> dict[str, str]:
    """The response headers feedparser needs: where the document is, and its type."""
    # Content-Location is feedparser's base URI when it is not given a URL itself
    # (api.parse: make_safe_absolute_uri(href, contentloc)).
    result = {"content-location": url}
    if "content-language" in headers:
        result["content-language"] = headers["content-language"]
    media_type, charset = _content_type(headers)
    if media_type:
        result["content-type"] = headers["content-type"]
    else:
        # With no Content-Type feedparser assumes ISO-8859-1 (RFC 2616) and flags
        # the feed; XML's own default is UTF-8 or the declaration, which
        # application/xml gives us.
        media_type = result["content-type"] = "application/xml"
    declared = charset or _declared_xml_encoding(content)
    sniffed = _sniff_encoding(content)
    if sniffed is not None and sniffed != "cp037":
        # A byte order mark, or the NUL bytes of UTF-16/32 around ASCII markup, tell
        # the encoding for certain (XML 1.0 appendix F; browsers let a BOM win too).
        # Obeying a charset that says otherwise gives NUL-riddled text or mojibake.
        if not _charset_param_honoured(media_type):
            media_type = "application/xml"
        bom_charset = "utf-8" if sniffed == "utf-8-sig" else sniffed
        result["content-type"] = f"{media_type}; charset={bom_charset}"
        if declared and _encoding_family(declared) != _encoding_family(sniffed):
            where = "Content-Type" if charset else "the XML declaration"
            warnings.append(f"{where} says {declared} but the body is {bom_charset}")
        return result
    if declared and _misdeclared_utf8(content, declared):
        # A legacy charset named over a UTF-8 body is a common server (or CMS)
        # misconfiguration; feedparser would obey it and produce mojibake.
        if not _charset_param_honoured(media_type):
            media_type = "application/xml"
        result["content-type"] = f"{media_type}; charset=utf-8"
        where = "Content-Type" if charset else "the XML declaration"
        warnings.append(f"{where} says {declared} but the body is UTF-8")
    return result


def _charset_param_honoured(media_type: str) -> bool:
    """Whether feedparser lets a charset parameter of this type override the document."""
    return media_type.startswith("text/") or media_type.endswith(
        ("/xml", "+xml", "-entity", "-dtd")
    )


def _misdeclared_utf8(content: bytes, declared: str) -> bool:
    """True when ``declared`` cannot be the body's encoding and UTF-8 evidently is."""
    if _is_utf8_family(declared) or _sniff_encoding(content) is not None:
        # A BOM or the NUL pattern of UTF-16/32 is authoritative.
        return False
    codec = _codec(declared) or ""
    if codec.startswith(("utf-16", "utf-32")):
        # ASCII markup without NUL bytes is not UTF-16 or UTF-32.
        return _is_utf8(content)
    return not content.isascii() and _is_utf8(content)


def _last_entry_unclosed(content: bytes) -> bool:
    """True when the last item/entry element of the document is never closed."""
    encoding = _sniff_encoding(content)
    if encoding in ("utf-16-be", "utf-16-le", "utf-32-be", "utf-32-le"):
        # The tags are not ASCII bytes in these; every other encoding keeps them so.
        content = content.decode(encoding, errors="replace").encode("utf-8")
    opens = list(_ENTRY_OPEN_RE.finditer(content))
    if not opens:
        return False
    closes = list(_ENTRY_CLOSE_RE.finditer(content))
    return not closes or opens[-1].start() > closes[-1].start()


def _convert_entry(
    raw: Any, *, is_atom: bool, feed_language: str | None, inherit_author: str | None
) -> ParsedEntry | None:
    # A guid without isPermaLink="false" is a URL by RSS's definition, and
    # feedparser resolves it against the base like one ("n-77" becomes
    # "https://host/feeds/n-77"); the link falls back to it when there is none.
    if not isinstance(raw, dict):
        # Nothing to read in it (``_get`` gives None): no id, link or title.
        return None
    # What ``_get`` does for a dict, without a function call per key.
    get = dict.get
    guid = _str(get(raw, "id"))
    link = _str(get(raw, "link"))
    title_detail = get(raw, "title_detail") or {}
    title = _str(get(raw, "title"))
    if not (guid or link or title):
        return None
    content, content_text = _content(raw)
    summary = _summary(raw)
    published = _date(get(raw, "published_parsed"), get(raw, "published"))
    updated = _date(get(raw, "updated_parsed"), get(raw, "updated"))
    if published is None and not is_atom:
        # feedparser files RSS's dc:date under "updated"; in RSS it is the
        # item's one date, its publication (RSS 1.0 has no other).
        published = updated
    return ParsedEntry(
        guid=guid,
        link=link,
        title=title,
        title_is_html=_str(_get(title_detail, "type")) in _HTML_TYPES,
        content=content,
        content_text=content_text,
        summary=summary,
        author=_entry_author(raw) or inherit_author,
        published=published,
        updated=updated,
        categories=tuple(_categories(get(raw, "tags"))),
        language=_entry_language(raw) or feed_language,
    )


def _content(raw: dict[str, Any]) -> tuple[str | None, str | None]:
    """(HTML content, plain-text content): the longest HTML value, else the longest text one."""
    contents = dict.get(raw, "content")
    if not contents:
        # Most entries: no content element at all.
        return None, None
    values = [c for c in contents if _str(_get(c, "value"))]
    html_values = [c for c in values if _str(_get(c, "type")) in _HTML_TYPES]
    if html_values:
        return _longest(html_values), None
    if values:
        return None, _longest(values)
    return None, None


def _longest(details: list[Any]) -> str:
    # max() keeps the first of equals: the order of the document breaks ties.
    return max((str(_get(d, "value")) for d in details), key=len)


def _summary(raw: dict[str, Any]) -> str | None:
    """The summary as HTML (feedparser keeps Atom's type="text" summaries as plain text)."""
    text = _str(dict.get(raw, "summary"))
    if text is None:
        return None
    detail = dict.get(raw, "summary_detail")
    if detail is None:
        # feedparser copies the content into a missing summary, without its type.
        detail = next((c for c in dict.get(raw, "content") or [] if _get(c, "value") == text), None)
    content_type = _str(_get(detail, "type"))
    if content_type is None or content_type in _HTML_TYPES:
        # RSS descriptions are HTML by custom (feedparser marks them text/html).
        return text
    return _plain_to_html(text)


def _plain_to_html(text: str) -> str:
    return html.escape(text).replace("\n", "<br>\n")


def _entry_author(raw: Any) -> str | None:
    names = [_str(dict.get(a, "name")) for a in _get(raw, "authors") or [] if isinstance(a, dict)]
    named = [n for n in names if n]
    if named:
        return ", ".join(dict.fromkeys(named))
    detail = _get(raw, "author_detail")
    if isinstance(detail, dict):
        name = _str(_get(detail, "name"))
        if name:
            return name
    return _str(_get(raw, "author"))


def _feed_author(feed: Any) -> str | None:
    # An Atom entry without an author inherits the feed's (RFC 4287 §4.1.2).
    return _entry_author(feed)


def _entry_language(raw: dict[str, Any]) -> str | None:
    get = dict.get
    language = _language(get(raw, "language"))
    if language:
        return language
    # xml:lang (or Content-Language) as feedparser recorded it on the text constructs.
    details = [
        *(get(raw, "content") or []),
        get(raw, "title_detail"),
        get(raw, "summary_detail"),
    ]
    for detail in details:
        if isinstance(detail, dict):
            # Mostly None: skip the call for it (_language(None) is None).
            value = get(detail, "language")
            if value is not None:
                language = _language(value)
                if language:
                    return language
    return None


def _feed_title(feed: Any) -> str | None:
    title = _str(_get(feed, "title"))
    if title is None:
        return None
    detail = _get(feed, "title_detail") or {}
    if _str(_get(detail, "type")) in _HTML_TYPES:
        title = html_to_text(title)
    return _one_line(title)


def _one_line(text: str | None) -> str | None:
    if text is None:
        return None
    return " ".join(strip_control_chars(text).split()) or None


def _categories(tags: Any) -> Iterable[str]:
    for tag in tags or []:
        term = _str(dict.get(tag, "term")) if isinstance(tag, dict) else None
        if term:
            yield term


def _ttl(value: Any, warnings: list[str]) -> int | None:
    text = _str(value)
    if text is None:
        return None
    try:
        minutes = int(text.strip())
    except ValueError:
        warnings.append(f"ignored invalid <ttl>: {text[:50]!r}")
        return None
    if minutes < 0:
        warnings.append(f"ignored invalid <ttl>: {minutes}")
        return None
    return minutes


# --------------------------------------------------------------------------- dates

# Runs of four or more digits that are not a zone offset ("+0300", "-05:00").
_YEAR_RUN_RE = re.compile(r"(?<![+\-\d])\d{4,}")

# Zones feedparser does not know and reads as UTC; Russian and European
# ministries use them. Only unambiguous abbreviations (not IST, BST, CST...).
_EXTRA_ZONES = {
    "MSK": "+0300",
    "MSD": "+0400",
    "CET": "+0100",
    "CEST": "+0200",
    "EET": "+0200",
    "EEST": "+0300",
    "WET": "+0000",
    "WEST": "+0100",
}
_RFC822_ZONE_RE = re.compile(r"\s([A-Za-z]{3,4})\s*$")
_DATE_TUPLE_TYPES = (time.struct_time, tuple)


def _date(parsed: Any, raw: Any) -> datetime | None:
    """An aware UTC datetime from feedparser's UTC struct_time, or None when invalid."""
    text = _str(raw)
    if text is not None:
        extra = _extra_zone_date(text)
        if extra is not None:
            return extra
        if parsed is None and ":60" in text:
            # feedparser reads nothing from a leap second in RFC 822 ("23:59:60
            # +0000"): read it at :59, as below.
            parsed = _leap_second_date(text)
    if not isinstance(parsed, _DATE_TUPLE_TYPES) or len(parsed) < 6:
        return None
    if text is not None:
        w3dtf = _W3DTF_RE.fullmatch(text)
        if w3dtf is not None:
            # feedparser reads "+0530" as +05:00 and rolls 30 February over into
            # March: read the fields of this shape exactly instead.
            return _w3dtf_exact(w3dtf)
    year, month, day, hour, minute, second = map(int, parsed[:6])
    if text is not None and not _year_in_text(year, text):
        # feedparser reads "10000-01-01" as a date in 2010: trust only a year the
        # text actually contains.
        return None
    try:
        # A leap second (:60) becomes :59 rather than nothing.
        # tzinfo by position: keyword arguments cost a C constructor more than the rest.
        return datetime(year, month, day, hour, minute, min(second, 59), 0, UTC)
    except (ValueError, OverflowError):
        return None


_LEAP_SECOND_RE = re.compile(r"(?<=\d:\d\d):60(?!\d)")


def _leap_second_date(text: str) -> Any:
    try:
        return _feedparser_date(_LEAP_SECOND_RE.sub(":59", text))
    except Exception:  # some feedparser handlers raise on odd text (perforce's, on month 13)
        return None


def _w3dtf_exact(match: re.Match[str]) -> datetime | None:
    """The UTC instant of a W3DTF date (``_W3DTF_RE``); None for an invalid one
    (30 February, month 13, an offset past 23:59) or one out of datetime's range.

    A leap second (:60) is read as :59, 24:00:00 as the next midnight; fractions
    of a second are dropped (as feedparser's struct_time drops them).
    """
    year, month, day, hour, minute, second, zone = match.groups()
    try:
        if hour is None:  # a date alone is midnight UTC
            return datetime(int(year), int(month), int(day), 0, 0, 0, 0, UTC)
        hours, minutes, seconds = int(hour), int(minute), int(second.partition(".")[0])
        next_day = hours == 24 and minutes == 0 and seconds == 0
        stamp = datetime(
            int(year),
            int(month),
            int(day),
            0 if next_day else hours,
            minutes,
            min(seconds, 59),
            0,
            UTC,
        )
        if next_day:
            stamp += timedelta(days=1)
        if zone and zone[0] in "+-":
            offset = _W3DTF_OFFSETS.get(zone)
            if offset is None:
                zone_hours, zone_minutes = int(zone[1:3]), int(zone[-2:])
                if zone_hours > 23 or zone_minutes > 59:
                    return None
                offset = timedelta(hours=zone_hours, minutes=zone_minutes)
                offset = _W3DTF_OFFSETS[zone] = offset if zone[0] == "+" else -offset
            stamp -= offset
        return stamp
    except (ValueError, OverflowError):
        return None


#: UTC offsets by their W3DTF text ("+05:30", "-0800"): at most 2 * 24 * 60 * 2 keys.
_W3DTF_OFFSETS: dict[str, timedelta] = {}


def _year_in_text(year: int, text: str) -> bool:
    if year >= 1000:
        # The common case without the regex: the year's digits where a run starts
        # (at the start, or after anything but a sign or a digit) begin a run of
        # four or more digits that _YEAR_RUN_RE finds, and that starts with them.
        digits = str(year)
        at = text.find(digits)
        if at == 0 or (at > 0 and text[at - 1] not in "+-" and not text[at - 1].isdecimal()):
            return True
    runs = _YEAR_RUN_RE.findall(text)
    if not runs:
        # Two-digit years ("02 Jan 06"): nothing to check against.
        return True
    # The year shifts by one when the offset crosses midnight on New Year's Eve;
    # runs like "20031213" (ISO basic format) start with the year.
    years = (str(year), str(year - 1), str(year + 1))
    return any(run.startswith(years) for run in runs)


def _extra_zone_date(text: str) -> datetime | None:
    if text[-1:].isdecimal():
        # Most dates end in an offset or a time: _RFC822_ZONE_RE needs a letter,
        # or whitespace, last (or a newline after the letters).
        return None
    match = _RFC822_ZONE_RE.search(text)
    if not match or match.group(1).upper() not in _EXTRA_ZONES:
        return None
    fixed = text[: match.start(1)] + _EXTRA_ZONES[match.group(1).upper()]
    try:
        parsed = email.utils.parsedate_tz(fixed)
        if parsed is None:
            return None
        timestamp = calendar.timegm(parsed[:9]) - (parsed[9] or 0)
        return datetime.fromtimestamp(timestamp, UTC)
    except (ValueError, OverflowError, OSError, IndexError, TypeError):
        return None


def _iso_date(value: Any) -> datetime | None:
    """RFC 3339 (JSON Feed dates) to aware UTC; a missing offset means UTC."""
    text = _str(value)
    if text is None:
        return None
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        # RFC 3339 allows a leap second (:60), which datetime does not.
        match = _W3DTF_RE.fullmatch(text.strip())
        return _w3dtf_exact(match) if match is not None else None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


# --------------------------------------------------------------------------- JSON Feed


def _parse_json_feed(content: bytes, *, url: str) -> ParsedFeed:
    data = _load_json(content, url)
    if not isinstance(data, dict):
        raise ParseError("not a feed: JSON document is not an object", url=url)
    version = data.get("version")
    if not isinstance(version, str) or not version.startswith(_JSONFEED_VERSION_PREFIX):
        raise ParseError("not a feed: JSON without a JSON Feed version", url=url)
    items = data.get("items")
    if not isinstance(items, list):
        raise ParseError("not a feed: JSON Feed without an items list", url=url)

    warnings: list[str] = []
    feed_language = _language(data.get("language"))
    try:
        feed_author = _json_author(data)
    except _ENTRY_ERRORS:
        feed_author = None
    entries: list[ParsedEntry] = []
    for index, item in enumerate(items):
        try:
            entry = _convert_json_item(item, url, feed_language, feed_author)
        except _ENTRY_ERRORS as exc:
            warnings.append(f"entry {index} skipped: {type(exc).__name__}: {exc}")
            continue
        if entry is None:
            warnings.append(f"entry {index} skipped: no id, link or title")
            continue
        entries.append(entry)

    return ParsedFeed(
        format=_JSONFEED_FORMATS.get(version.removeprefix(_JSONFEED_VERSION_PREFIX), "json"),
        title=_one_line(_str(data.get("title"))),
        link=_json_url(_str(data.get("home_page_url")), url),
        language=feed_language,
        entries=tuple(entries),
        warnings=tuple(warnings),
    )


def _load_json(content: bytes, url: str) -> Any:
    encoding = _sniff_encoding(content) or "utf-8"
    try:
        # RFC 8259 says UTF-8, but a BOM or UTF-16 does turn up. An invalid
        # sequence becomes U+FFFD (as in XML): one stray byte must not cost the feed.
        return json.loads(content.decode(encoding, errors="replace").lstrip("\ufeff"))
    except (UnicodeError, ValueError, RecursionError) as exc:
        raise ParseError(f"not a feed: invalid JSON: {exc}", url=url) from exc


def _convert_json_item(
    item: Any, base: str, feed_language: str | None, feed_author: str | None
) -> ParsedEntry | None:
    if not isinstance(item, dict):
        raise TypeError(f"item is a {type(item).__name__}, not an object")
    guid = _json_id(item.get("id"))
    link = _json_url(item.get("url"), base) or _json_url(item.get("external_url"), base)
    title = _json_str(item.get("title"))
    if not (guid or link or title):
        return None
    summary = _json_str(item.get("summary"))
    tags = item.get("tags")
    if tags is not None and not isinstance(tags, list):
        raise TypeError("tags is not a list")
    return ParsedEntry(
        guid=guid,
        link=link,
        title=title,
        # JSON Feed titles are plain text.
        title_is_html=False,
        content=_json_str(item.get("content_html")),
        content_text=_json_str(item.get("content_text")),
        # JSON Feed summaries are plain text; ParsedEntry.summary is HTML.
        summary=_plain_to_html(summary) if summary else None,
        author=_json_author(item) or feed_author,
        published=_iso_date(item.get("date_published")),
        updated=_iso_date(item.get("date_modified")),
        categories=tuple(t for t in (_json_str(t) for t in tags or []) if t),
        language=_language(item.get("language")) or feed_language,
    )


def _json_str(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value if value.strip() else None


def _json_id(value: Any) -> str | None:
    # The spec says string; numbers turn up and are as unique.
    if isinstance(value, bool):
        raise TypeError("id is a boolean")
    if isinstance(value, int | float):
        return str(value)
    return _json_str(value)


def _json_url(value: Any, base: str) -> str | None:
    text = _json_str(value)
    if text is None:
        return None
    try:
        return urljoin(base, text.strip())
    except ValueError:
        return text


def _json_author(obj: Mapping[str, Any]) -> str | None:
    authors = obj.get("authors")  # 1.1
    if not isinstance(authors, list):
        single = obj.get("author")  # 1.0
        authors = [single] if single is not None else []
    names = [_json_str(a.get("name")) for a in authors if isinstance(a, dict)]
    named = [n for n in names if n]
    return ", ".join(dict.fromkeys(named)) or None


# --------------------------------------------------------------------------- small helpers


def _get(obj: Any, key: str) -> Any:
    """``obj[key]`` for a feedparser dict, or None.

    Plain ``dict.get`` on purpose: FeedParserDict's own lookup goes through key
    aliases and a ``DeprecationWarning`` fallback from updated to published.
    """
    return dict.get(obj, key) if isinstance(obj, dict) else None


def _str(value: Any) -> str | None:
    """A non-blank string, or None (feedparser sometimes leaves other types)."""
    if isinstance(value, str) and value.strip():
        return value
    return None


def _http_link(value: Any) -> str | None:
    # feedparser falls back to the feed's <id> (a urn: or tag: URI, often) for its link.
    text = _str(value)
    if text and text.strip().lower().startswith(("http://", "https://")):
        return text.strip()
    return None


def _language(value: Any) -> str | None:
    text = _str(value)
    return text.strip() if text else None

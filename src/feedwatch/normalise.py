"""Turn a :class:`ParsedFeed` into normalised :class:`Item` records.

Pure: no I/O and no clock (``now`` is passed in). For each entry it makes
plain-text titles, sanitised HTML and plain-text content, http(s) links
resolved against the feed URL and their canonical form, UTC dates and a sort
time, a stable entry key (guid, else link, else a hash), and a content hash
over the fields that matter. Control characters are removed from every string.

It does NOT decide whether an item is new or updated (``decide``), does not
group items into stories across feeds, and does not match rules.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from urllib.parse import SplitResult, quote, unquote, urljoin, urlsplit, urlunsplit

from ._html import (
    html_sanitizer,
    html_to_text,
    sanitized_html_to_text,
    strip_control_chars,
    text_to_html,
)
from ._model import Item, ParsedEntry, ParsedFeed

__all__ = ["canonicalise_url", "normalise_entries", "normalise_link"]

#: Keys longer than this are replaced by their hash, to keep indexes small.
MAX_KEY_LENGTH = 512
HASH_PREFIX = "h:"
#: Titles longer than this (characters) are cut, at a word boundary within the last
#: TITLE_CUT_SLACK characters if there is one, and end with TITLE_ELLIPSIS.
MAX_TITLE_LENGTH = 1000
TITLE_CUT_SLACK = 100
TITLE_ELLIPSIS = "\u2026"

# --------------------------------------------------------------------------- URLs

_HTTP_SCHEMES = frozenset({"http", "https"})
_DEFAULT_PORTS = {"http": 80, "https": 443}
# WHATWG URL: tabs and newlines anywhere are removed; C0 controls and spaces at
# either end are stripped.
_URL_TAB_NEWLINE_RE = re.compile(r"[\t\n\r]")
_URL_EDGE_CHARS = "".join(chr(c) for c in range(0x21))

# Query parameters that only track the click, never select content.
_TRACKING_PARAMS = frozenset(
    {
        "fbclid",
        "gclid",
        "gclsrc",
        "dclid",
        "gbraid",
        "wbraid",
        "msclkid",
        "yclid",
        "ysclid",
        "twclid",
        "ttclid",
        "igshid",
        "mc_cid",
        "mc_eid",
        "_hsenc",
        "_hsmi",
        "__hssc",
        "__hstc",
        "__hsfp",
        "hsctatracking",
        "mkt_tok",
        "ref_src",
        "ref_url",
        "oly_anon_id",
        "oly_enc_id",
        "vero_id",
        "vero_conv",
        "wickedid",
        "_openstat",
        "srsltid",
    }
)
_TRACKING_PREFIXES = ("utm_",)

# RFC 3986 §2.3: these never need percent-encoding, so %41 and A are the same URL.
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_PERCENT_RE = re.compile(r"%([0-9A-Fa-f]{2})")
# Everything a URI may hold as is; anything else (spaces, non-ASCII) is percent-encoded.
_URI_SAFE = "!#$%&'()*+,-./:;=?@[]_~"


def _clean_url_text(url: str) -> str:
    return _URL_TAB_NEWLINE_RE.sub("", strip_control_chars(url)).strip(_URL_EDGE_CHARS)


# An absolute http(s) URL that every step below would leave as it is (but for the
# scheme's case): a host of letters, digits, dots and hyphens, no port, no user,
# no fragment, and a path and query of characters a URI holds as they are. Most
# links are such; they skip urljoin, urlsplit and quote (tests check the two
# paths agree).
_SIMPLE_URL_RE = re.compile(
    r"(https?)://([A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)"
    r"(/[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*)?(?:\?([A-Za-z0-9\-._~!$&'()*+,;=:@/?%]+))?",
    # ASCII: under full Unicode case folding [A-Za-z] would also take "ſ" and "K".
    re.IGNORECASE | re.ASCII,
)


def normalise_link(link: str | None, base: str) -> str | None:
    """``link`` resolved against ``base`` if it is an http(s) URL with a host, else None.

    ``javascript:``, ``data:``, ``vbscript:``, ``file:`` and every other scheme
    give None. Characters a URI cannot hold (spaces, non-ASCII in the path)
    are percent-encoded; the host is left as written.
    """
    if link is None:
        return None
    simple = _SIMPLE_URL_RE.fullmatch(link)
    if simple is not None:
        scheme = simple.group(1)
        return scheme.lower() + link[len(scheme) :]
    return _normalise_link(link, base)


def _link_and_canonical(link: str | None, base: str) -> tuple[str | None, str | None]:
    """``(url, canonicalise_url(url))`` for ``url = normalise_link(link, base)``.

    A simple URL is matched once for both (``canonicalise_url`` would match the
    normalised link again, with the same groups: it differs only in the case of
    the scheme, and the pattern ignores case).
    """
    if link is None:
        return None, None
    simple = _SIMPLE_URL_RE.fullmatch(link)
    if simple is None:
        url = _normalise_link(link, base)
        return url, (canonicalise_url(url) if url else None)
    scheme, host, path, query = simple.groups()
    url = scheme.lower() + link[len(scheme) :]
    if "%" in link:
        return url, _canonicalise_url(url)
    return url, _simple_canonical(scheme, host, path, query)


def _simple_canonical(scheme: str, host: str, path: str | None, query: str | None) -> str:
    base = f"{scheme.lower()}://{host.lower()}{path or '/'}"
    if not query:  # most links: no parameter to filter ("" would join to "" too)
        return base
    query = "&".join(p for p in query.split("&") if p and not _is_tracking(p))
    return f"{base}?{query}" if query else base


def _normalise_link(link: str, base: str) -> str | None:
    text = _clean_url_text(link)
    if not text:
        return None
    try:
        absolute = urljoin(base, text)
        parts = urlsplit(absolute)
        _ = parts.port  # raises ValueError for a port out of range or not a number
    except ValueError:
        return None
    if parts.scheme.lower() not in _HTTP_SCHEMES or not parts.hostname:
        return None
    return urlunsplit(
        (
            parts.scheme.lower(),
            parts.netloc,
            quote(parts.path, safe=_URI_SAFE),
            quote(parts.query, safe=_URI_SAFE),
            quote(parts.fragment, safe=_URI_SAFE),
        )
    )


def _normalise_percent(component: str) -> str:
    """Decode percent-encoded unreserved characters and upper-case the rest (RFC 3986 §6.2.2)."""

    def fix(match: re.Match[str]) -> str:
        char = chr(int(match.group(1), 16))
        return char if char in _UNRESERVED else "%" + match.group(1).upper()

    return _PERCENT_RE.sub(fix, quote(component, safe=_URI_SAFE))


def _is_tracking(param: str) -> bool:
    name = unquote(param.partition("=")[0]).lower()
    return name in _TRACKING_PARAMS or name.startswith(_TRACKING_PREFIXES)


def _canonical_host(parts: SplitResult) -> str:
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        return f"[{host}]"
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        # Not valid IDNA 2003 (an emoji, a label too long...): keep it, lower-cased.
        return host


def canonicalise_url(url: str) -> str:
    """The canonical form of an http(s) URL, to recognise the same page across feeds.

    Lower-case scheme and host, IDNA host, no default port, no fragment, no
    tracking parameters (``utm_*``, ``fbclid``, ...), the other query parameters
    kept in their order and spelling, no empty query, and ``/`` for an empty
    path. Other URLs come back unchanged (but for surrounding whitespace).
    """
    simple = _SIMPLE_URL_RE.fullmatch(url)
    if simple is not None and "%" not in url:
        return _simple_canonical(*simple.groups())
    return _canonicalise_url(url)


def _canonicalise_url(url: str) -> str:
    text = _clean_url_text(url)
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return text
    scheme = parts.scheme.lower()
    if scheme not in _HTTP_SCHEMES or not parts.hostname:
        return text
    netloc = _canonical_host(parts)
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        netloc = f"{netloc}:{port}"
    if parts.username is not None or parts.password is not None:
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = f"{userinfo}@{netloc}"
    query = "&".join(
        _normalise_percent(param)
        for param in parts.query.split("&")
        if param and not _is_tracking(param)
    )
    path = _normalise_percent(parts.path) or "/"
    return urlunsplit((scheme, netloc, path, query, ""))


# --------------------------------------------------------------------------- text

_LANGUAGE_RE = re.compile(r"^[a-z]{1,8}(-[a-z0-9]{1,8})*$")


def _one_line(text: str) -> str:
    """The words of ``text`` (control characters removed) on one line, one space apart.

    The same as replacing each run of ``\\s`` by a space and stripping: re's
    ``\\s`` and str.split() agree on what whitespace is (a test checks). Bidi
    controls become spaces first (``_no_bidi_controls``).
    """
    return " ".join(_no_bidi_controls(strip_control_chars(text)).split())


# The bidi embeddings, overrides and isolates: an unclosed override reverses the
# text after it ("invoice\u202efdp.exe" shows as "invoiceexe.pdf"), in the title
# and in whatever a display puts after the title. Each becomes a space (the words
# on either side stay apart for the rules, as before). The marks U+200E, U+200F and
# U+061C, which move no text, and the zero-width characters (ZWJ and ZWNJ spell
# Persian, Indic scripts and emoji; the rules ignore them all) are kept.
_BIDI_CONTROLS_RE = re.compile("[\u202a-\u202e\u2066-\u2069]")


def _no_bidi_controls(text: str) -> str:
    if text.isascii() or _BIDI_CONTROLS_RE.search(text) is None:
        return text
    return _BIDI_CONTROLS_RE.sub(" ", text)


def _optional_line(text: str | None) -> str | None:
    return (_one_line(text) or None) if text is not None else None


def _title(entry: ParsedEntry) -> str:
    if not entry.title:
        return ""
    # A plain-text title is final: unescaping it again would turn a literal
    # "&lt;" that the feed meant into "<". Unless it carries active markup.
    html = entry.title_is_html or _ACTIVE_MARKUP_RE.search(entry.title) is not None
    return _one_line(html_to_text(entry.title) if html else entry.title)


# Elements that run, load, embed or submit something, and tags with an event
# handler. feedparser takes a title or author for plain text when it holds a tag
# outside its list of harmless ones, so "<b>x</b>" is HTML but "<script>...</script>x"
# is text: stored so, it would reach whoever renders it as HTML (an integrator's
# page fed by the API or a webhook). Such text is read as HTML, which drops the
# markup. "#include </etc/shadow>" or "List<T>" name no such element and stay.
_ACTIVE_MARKUP_RE = re.compile(
    r"<\s*/?\s*(?:script|iframe|frame|frameset|object|embed|applet|style|link|meta|base"
    r"|form|input|button|textarea|select|svg|math|img|image|video|audio|source|body"
    r"|html|noscript|template|marquee|a)(?![\w:-])"
    r"|<[A-Za-z][^<>]*?\son[a-z]+\s*=",
    re.IGNORECASE,
)


def _plain_line(text: str | None) -> str | None:
    """``_optional_line`` of a plain-text field, read as HTML if it has active markup."""
    if text and _ACTIVE_MARKUP_RE.search(text) is not None:
        text = html_to_text(text)
    return _optional_line(text)


def _cut_title(title: str) -> str:
    """``title`` if it has at most MAX_TITLE_LENGTH characters, else cut to at most that
    many with the ellipsis: after its last whole word if one ends in the last
    TITLE_CUT_SLACK characters, else in the middle of a word.

    ``title`` is one line (``_one_line``): words one space apart, no space at either end.
    """
    if len(title) <= MAX_TITLE_LENGTH:
        return title
    room = MAX_TITLE_LENGTH - len(TITLE_ELLIPSIS)
    # A space at ``room`` itself ends the word before it within the room.
    space = title.rfind(" ", room - TITLE_CUT_SLACK, room + 1)
    return title[: space if space > 0 else room] + TITLE_ELLIPSIS


def _tags(categories: Iterable[str]) -> tuple[str, ...]:
    seen: dict[str, str] = {}
    for category in categories:
        tag = _one_line(category)
        if tag:
            folded = tag.casefold()
            if folded not in seen:
                seen[folded] = tag
    return tuple(seen.values())


def _language(value: str | None) -> str | None:
    if not value:
        return None
    tag = _one_line(value).lower().replace("_", "-")
    return tag if _LANGUAGE_RE.match(tag) else None


def _content(entry: ParsedEntry, sanitize: Callable[[str], str]) -> tuple[str, str]:
    """(sanitised HTML, plain text): content, else plain-text content, else summary.

    ``sanitize`` is ``html_sanitizer(feed_url)``.
    """
    if entry.content:
        content_html = sanitize(entry.content)
        if entry.content_text:
            return content_html, strip_control_chars(entry.content_text).strip()
        # The text of what is displayed: what the sanitiser dropped (a script,
        # an iframe's fallback) must not match rules.
        return content_html, sanitized_html_to_text(content_html)
    if entry.content_text:
        content_html = sanitize(text_to_html(entry.content_text))
        return content_html, strip_control_chars(entry.content_text).strip()
    if entry.summary:
        content_html = sanitize(entry.summary)
        return content_html, sanitized_html_to_text(content_html)
    return "", ""


# --------------------------------------------------------------------------- dates


def _to_utc(value: datetime) -> datetime:
    # Naive datetimes should not reach here; if one does, it is taken as UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _utc(value: datetime | None) -> datetime | None:
    return _to_utc(value) if value is not None else None


# --------------------------------------------------------------------------- identity


def _sha256(data: object) -> str:
    canonical = json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


# What json.dumps(..., ensure_ascii=False) writes for a string (the json module's
# own function, the one its encoder calls). The hashes below build the JSON of
# _sha256 themselves from it: json.dumps costs more in setting up than the
# short strings hashed here cost to encode.
_json_string: Callable[[str], str] = json.encoder.encode_basestring


def _json_value(value: str | None) -> str:
    """``json.dumps(value)`` for a string or None (as in _sha256)."""
    if value is None:
        return "null"
    if isinstance(value, str):
        return _json_string(value)
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _sha256_text(text: str) -> str:
    """``_sha256(text)`` for a string."""
    return hashlib.sha256(_json_string(text).encode("utf-8")).hexdigest()


# The C0 controls but "\n", as UTF-8 bytes (every byte below 0x20 is one of them).
_JSON_C0_BUT_NEWLINE = bytes(c for c in range(0x20) if c != 0x0A)


def _json_utf8(text: str) -> bytes:
    """``_json_string(text).encode("utf-8")``, faster for a long text.

    json.dumps escapes only '"', "\\" and the C0 controls; for a text whose only
    control is "\n" (most content), these three replacements are all of it
    (each touches only characters of the text itself, never what an earlier
    one wrote). In UTF-8 these characters are single bytes no other character
    uses, so the replacements can be made on the bytes.
    """
    data = text.encode("utf-8")
    if len(data.translate(None, _JSON_C0_BUT_NEWLINE)) != len(data):
        return _json_string(text).encode("utf-8")
    return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"').replace(b"\n", b"\\n") + b'"'


def _short_key(key: str) -> str:
    return key if len(key) <= MAX_KEY_LENGTH else HASH_PREFIX + _sha256_text(key)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _hash_key(url: str | None, title: str, published: str | None) -> str:
    """The last key of the ladder: ``HASH_PREFIX + _sha256([url, title, published])``."""
    canonical = f"[{_json_value(url)},{_json_value(title)},{_json_value(published)}]"
    return HASH_PREFIX + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _content_hash(
    *,
    title: str,
    content: str,
    url: str | None,
    author: str | None,
    published: str | None,
    tags: tuple[str, ...],
) -> str:
    """``_sha256`` of the fields that make an item different to a reader.

    Text rather than HTML: markup-only churn (a rotating tracking pixel) is not
    a change. Volatile fields (first_seen, sort_at, updated) stay out: a feed
    that only bumps a date must not look changed. The JSON is that of
    ``_sha256({"title": title, "content": content, ..., "tags": list(tags)})``:
    keys in sorted order, no spaces.
    """
    if not isinstance(content, str):
        return _sha256(
            {
                "title": title,
                "content": content,
                "url": url,
                "author": author,
                "published": published,
                "tags": list(tags),
            }
        )
    digest = hashlib.sha256(f'{{"author":{_json_value(author)},"content":'.encode())
    digest.update(_json_utf8(content))
    rest = (
        f',"published":{_json_value(published)},"tags":[{",".join(map(_json_value, tags))}]'
        f',"title":{_json_value(title)},"url":{_json_value(url)}}}'
    )
    digest.update(rest.encode("utf-8"))
    return digest.hexdigest()


# --------------------------------------------------------------------------- entries


def normalise_entries(
    parsed: ParsedFeed, *, feed_url: str, now: datetime
) -> tuple[list[Item], list[str]]:
    """Normalise every entry of ``parsed``; return the items and warnings.

    ``now`` (aware) is this poll's time: it is every item's ``first_seen`` and
    caps ``sort_at``. Entries that repeat another's guid (with other content)
    fall back to their link, then to a hash, for their key; exact duplicates
    appear once. A title longer than MAX_TITLE_LENGTH is cut (``_cut_title``),
    with a warning, before anything is computed from it (content hash, hash key).
    """
    now = _to_utc(now)
    items: list[Item] = []
    warnings: list[str] = []
    taken: dict[str, str] = {}  # entry key -> content hash of the item that has it
    # The same for every entry of the feed.
    sanitize = html_sanitizer(feed_url)
    feed_language = _language(parsed.language)
    languages: dict[str, str | None] = {}  # entry language -> _language of it
    for index, entry in enumerate(parsed.entries):
        url, canonical_url = _link_and_canonical(entry.link, feed_url)
        content_html, content_text = _content(entry, sanitize)
        content_text = _no_bidi_controls(content_text)
        guid = (strip_control_chars(entry.guid).strip() or None) if entry.guid else None
        title = _title(entry)
        title_length = len(title)
        if title_length > MAX_TITLE_LENGTH:
            title = _cut_title(title)
        author = _plain_line(entry.author)
        published = _utc(entry.published)
        published_iso = _iso(published)
        tags = _tags(entry.categories)
        content_hash = _content_hash(
            title=title,
            content=content_text,
            url=url,
            author=author,
            published=published_iso,
            tags=tags,
        )
        # The keys an entry may take, best first: guid, link, hash of (link, title,
        # published). The hash is only computed when the others are taken.
        ladder = [_short_key(k) for k in (guid, url) if k]
        key: str | None = None
        duplicate = False
        for candidate in ladder:
            holder = taken.get(candidate)
            if holder is None:
                key = candidate
                break
            if holder == content_hash:
                duplicate = True
                break
        else:
            candidate = _hash_key(url, title, published_iso)
            ladder.append(candidate)
            holder = taken.get(candidate)
            if holder is None:
                key = candidate
            elif holder == content_hash:
                duplicate = True
        if duplicate:
            warnings.append(f"entry {index} skipped: exact duplicate of an earlier entry")
            continue
        if key is None:
            warnings.append(
                f"entry {index} skipped: same guid, link, title and date as an earlier entry"
            )
            continue
        if key != ladder[0]:
            warnings.append(
                f"entry {index}: key {ladder[0][:80]!r} repeated in the feed, keyed by {key[:80]!r}"
            )
        if title_length > MAX_TITLE_LENGTH:
            warnings.append(
                f"entry {index} ({key[:80]!r}): title of {title_length:,} characters"
                f" cut to {len(title):,} (limit {MAX_TITLE_LENGTH:,})"
            )
        taken[key] = content_hash
        updated = _utc(entry.updated)
        dated = published or updated
        language = feed_language
        if entry.language:  # entries mostly repeat one language (often the feed's)
            language = languages.get(entry.language, "")
            if language == "":
                language = languages[entry.language] = _language(entry.language)
            language = language or feed_language
        items.append(
            Item(
                entry_key=key,
                guid=guid,
                url=url,
                canonical_url=canonical_url,
                title=title,
                content_html=content_html,
                content_text=content_text,
                author=author,
                published=published,
                updated=updated,
                first_seen=now,
                # Future dates (bad clocks, scheduled posts) must not pin an item to the top.
                sort_at=min(dated, now) if dated is not None else now,
                tags=tags,
                language=language,
                content_hash=content_hash,
            )
        )
    return items, warnings

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
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import SplitResult, quote, unquote, urljoin, urlsplit, urlunsplit

from ._html import (
    html_to_text,
    sanitize_html,
    sanitized_html_to_text,
    strip_control_chars,
    text_to_html,
)
from ._model import Item, ParsedEntry, ParsedFeed

__all__ = ["canonicalise_url", "normalise_entries", "normalise_link"]

#: Keys longer than this are replaced by their hash, to keep indexes small.
MAX_KEY_LENGTH = 512
HASH_PREFIX = "h:"

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
    re.IGNORECASE,
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
        scheme, host, path, query = simple.groups()
        query = "&".join(p for p in (query or "").split("&") if p and not _is_tracking(p))
        return f"{scheme.lower()}://{host.lower()}{path or '/'}" + (f"?{query}" if query else "")
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

_WHITESPACE_RE = re.compile(r"\s+")
_LANGUAGE_RE = re.compile(r"^[a-z]{1,8}(-[a-z0-9]{1,8})*$")


def _one_line(text: str) -> str:
    return _WHITESPACE_RE.sub(" ", strip_control_chars(text)).strip()


def _optional_line(text: str | None) -> str | None:
    return (_one_line(text) or None) if text is not None else None


def _title(entry: ParsedEntry) -> str:
    if not entry.title:
        return ""
    # A plain-text title is final: unescaping it again would turn a literal
    # "&lt;" that the feed meant into "<".
    return _one_line(html_to_text(entry.title) if entry.title_is_html else entry.title)


def _tags(categories: Iterable[str]) -> tuple[str, ...]:
    seen: dict[str, str] = {}
    for category in categories:
        tag = _one_line(category)
        if tag and tag.casefold() not in seen:
            seen[tag.casefold()] = tag
    return tuple(seen.values())


def _language(value: str | None) -> str | None:
    if not value:
        return None
    tag = _one_line(value).lower().replace("_", "-")
    return tag if _LANGUAGE_RE.match(tag) else None


def _content(entry: ParsedEntry, base: str) -> tuple[str, str]:
    """(sanitised HTML, plain text): content, else plain-text content, else summary."""
    if entry.content:
        content_html = sanitize_html(entry.content, base)
        if entry.content_text:
            return content_html, strip_control_chars(entry.content_text).strip()
        # The text of what is displayed: what the sanitiser dropped (a script,
        # an iframe's fallback) must not match rules.
        return content_html, sanitized_html_to_text(content_html)
    if entry.content_text:
        content_html = sanitize_html(text_to_html(entry.content_text), base)
        return content_html, strip_control_chars(entry.content_text).strip()
    if entry.summary:
        content_html = sanitize_html(entry.summary, base)
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


def _short_key(key: str) -> str:
    return key if len(key) <= MAX_KEY_LENGTH else HASH_PREFIX + _sha256(key)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _key_ladder(
    guid: str | None, url: str | None, title: str, published: datetime | None
) -> list[str]:
    """The keys an entry may take, best first: guid, link, hash of (link, title, published)."""
    ladder = [_short_key(k) for k in (guid, url) if k]
    ladder.append(HASH_PREFIX + _sha256([url, title, _iso(published)]))
    return ladder


def _content_hash(item_fields: dict[str, object]) -> str:
    # Volatile fields (first_seen, sort_at, updated) stay out: a feed that only
    # bumps a date must not look changed.
    return _sha256(item_fields)


# --------------------------------------------------------------------------- entries


@dataclass(frozen=True, slots=True)
class _Fields:
    """An entry's normalised fields, before it has a key."""

    guid: str | None
    url: str | None
    canonical_url: str | None
    title: str
    content_html: str
    content_text: str
    author: str | None
    published: datetime | None
    updated: datetime | None
    tags: tuple[str, ...]
    language: str | None

    def for_hash(self) -> dict[str, object]:
        # The fields that make an item different to a reader. Text rather than
        # HTML: markup-only churn (a rotating tracking pixel) is not a change.
        return {
            "title": self.title,
            "content": self.content_text,
            "url": self.url,
            "author": self.author,
            "published": _iso(self.published),
            "tags": list(self.tags),
        }

    def to_item(self, key: str, content_hash: str, now: datetime) -> Item:
        dated = self.published or self.updated
        return Item(
            entry_key=key,
            guid=self.guid,
            url=self.url,
            canonical_url=self.canonical_url,
            title=self.title,
            content_html=self.content_html,
            content_text=self.content_text,
            author=self.author,
            published=self.published,
            updated=self.updated,
            first_seen=now,
            # Future dates (bad clocks, scheduled posts) must not pin an item to the top.
            sort_at=min(dated, now) if dated is not None else now,
            tags=self.tags,
            language=self.language,
            content_hash=content_hash,
        )


def _normalise_fields(entry: ParsedEntry, parsed: ParsedFeed, feed_url: str) -> _Fields:
    url = normalise_link(entry.link, feed_url)
    content_html, content_text = _content(entry, feed_url)
    guid = strip_control_chars(entry.guid).strip() if entry.guid else None
    return _Fields(
        guid=guid or None,
        url=url,
        canonical_url=canonicalise_url(url) if url else None,
        title=_title(entry),
        content_html=content_html,
        content_text=content_text,
        author=_optional_line(entry.author),
        published=_utc(entry.published),
        updated=_utc(entry.updated),
        tags=_tags(entry.categories),
        language=_language(entry.language) or _language(parsed.language),
    )


def normalise_entries(
    parsed: ParsedFeed, *, feed_url: str, now: datetime
) -> tuple[list[Item], list[str]]:
    """Normalise every entry of ``parsed``; return the items and warnings.

    ``now`` (aware) is this poll's time: it is every item's ``first_seen`` and
    caps ``sort_at``. Entries that repeat another's guid (with other content)
    fall back to their link, then to a hash, for their key; exact duplicates
    appear once.
    """
    now = _to_utc(now)
    items: list[Item] = []
    warnings: list[str] = []
    taken: dict[str, str] = {}  # entry key -> content hash of the item that has it
    for index, entry in enumerate(parsed.entries):
        item_fields = _normalise_fields(entry, parsed, feed_url)
        content_hash = _content_hash(item_fields.for_hash())
        ladder = _key_ladder(
            item_fields.guid, item_fields.url, item_fields.title, item_fields.published
        )
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
        taken[key] = content_hash
        items.append(item_fields.to_item(key, content_hash, now))
    return items, warnings

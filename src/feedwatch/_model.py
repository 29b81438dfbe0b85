"""Internal records that cross stage boundaries, named for their journey.

Contains no business logic. Every record is immutable; every datetime is
timezone-aware UTC. ``…ForUpdate`` records are read from storage to decide,
``…Intent`` records say what to write, ``FetchResult``/``ParsedFeed``/``Item``
are what a stage produced.

    storage.feeds_for_poll          -> FeedForUpdate
    fetch.Fetcher.fetch             -> FetchResult            (or raises FetchError)
    parse.parse_document            -> ParsedFeed             (or raises ParseError)
    normalise.normalise_entries     -> Item ...
    storage.entries_for_update      -> EntryForUpdate ...
    decide.decide_items             -> ItemIntent ...
    rules.RuleSet.match             -> RuleMatch ...
    pipeline                        -> FeedUpdateIntent       -> storage.commit_feed
"""

from __future__ import annotations

import enum
import operator
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, NamedTuple

from .exceptions import ErrorKind

# --------------------------------------------------------------------------- storage -> pipeline


@dataclass(frozen=True, slots=True)
class FeedForUpdate:
    """The update-relevant state of one feed, read from storage."""

    #: Storage id of the feed.
    id: int
    #: Unique, stable name from feeds.yaml.
    name: str
    #: The URL to fetch.
    url: str
    #: ETag from the last successful fetch (sent as If-None-Match).
    etag: str | None = None
    #: Last-Modified from the last successful fetch (sent as If-Modified-Since).
    last_modified: str | None = None
    #: Poll interval in seconds.
    interval: float = 900.0
    #: Errors in a row before this poll.
    consecutive_errors: int = 0
    #: First error of the current run of errors (None when the last poll went well).
    failing_since: datetime | None = None
    #: The RSS <ttl> of the last document fetched (a 304 repeats that document).
    ttl_minutes: int | None = None
    #: Tags from feeds.yaml (used by rules and subscribers).
    tags: tuple[str, ...] = ()
    #: Lease token when the feed was claimed; the commit is fenced on it.
    lease_token: str | None = None
    #: Fingerprint of the last document handled (``decide.body_fingerprint``): a 200
    #: with the same body is not parsed again.
    body_hash: str | None = None
    #: Why that document could not be parsed (None when it parsed): repeated as is.
    body_error: str | None = None


@dataclass(frozen=True, slots=True)
class EntryForUpdate:
    """What storage knows of an item already stored, to decide new/updated/unchanged."""

    #: Storage id of the item.
    id: int
    #: Entry key within the feed.
    entry_key: str
    #: Content hash of the stored version.
    content_hash: str
    #: How many times in a row the item changed only by its hash (capped, see decide).
    hash_changes: int = 0
    #: The item's own "updated" date as stored, if it had one.
    updated: datetime | None = None


# --------------------------------------------------------------------------- fetch -> parse


@dataclass(frozen=True, slots=True)
class FetchResult:
    """One completed HTTP exchange for a feed (200 or 304)."""

    #: URL the body came from, after redirects.
    final_url: str
    #: HTTP status of the final response (200 or 304).
    status: int
    #: The decoded (decompressed) body; empty for 304.
    content: bytes
    #: Response headers, lower-case names (the last value wins for repeats).
    headers: dict[str, str] = field(default_factory=dict)
    #: Validators to store for the next conditional GET.
    etag: str | None = None
    last_modified: str | None = None
    #: Seconds the fetch took, end to end.
    elapsed: float = 0.0
    #: The final URL when every redirect on the way was permanent (301, 308).
    permanent_redirect: str | None = None

    @property
    def not_modified(self) -> bool:
        return self.status == 304


# --------------------------------------------------------------------------- parse -> normalise


@dataclass(frozen=True, slots=True)
class ParsedEntry:
    """One entry as the document carries it (no normalisation yet).

    Text fields are as the parser produced them: titles may hold HTML when the
    feed says so (``title_is_html``), content and summary are HTML.
    """

    guid: str | None = None
    link: str | None = None
    title: str | None = None
    title_is_html: bool = False
    #: Full content (HTML), when the feed has it.
    content: str | None = None
    #: Summary / description (HTML).
    summary: str | None = None
    author: str | None = None
    published: datetime | None = None
    updated: datetime | None = None
    #: Category / tag terms.
    categories: tuple[str, ...] = ()
    #: Language declared on the entry or inherited from the feed.
    language: str | None = None
    #: Plain-text content when the feed gives it as such (JSON Feed ``content_text``,
    #: Atom ``type="text"``); used as the item's text instead of deriving it from HTML.
    content_text: str | None = None


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    """What the parser got out of one document."""

    #: "rss20", "rss10", "atom10", "json11", ... as far as known.
    format: str
    title: str | None = None
    link: str | None = None
    language: str | None = None
    entries: tuple[ParsedEntry, ...] = ()
    #: Survivable problems (bad entry skipped, charset overridden, ...), for the log.
    warnings: tuple[str, ...] = ()
    #: RSS <ttl> in minutes, if any (for the polling policy).
    ttl_minutes: int | None = None


# ------------------------------------------------------------------- fetch -> prepare (worker)


@dataclass(frozen=True, slots=True)
class PrepareJob:
    """One fetched document to parse, normalise and match (in a worker process)."""

    content: bytes
    #: The final URL the body came from; relative links resolve against it.
    url: str
    headers: dict[str, str]
    #: The feed's name and tags, which rules can look at (``feed:``, ``tag:``).
    feed: str
    feed_tags: tuple[str, ...]
    #: This poll's time: every new item's ``first_seen``.
    polled_at: datetime


@dataclass(frozen=True, slots=True)
class Prepared:
    """A document turned into items, with the rules each item matches."""

    title: str | None
    ttl_minutes: int | None
    items: tuple[Item, ...]
    #: Parser and normaliser warnings, for the log.
    warnings: tuple[str, ...]
    #: entry key -> the rules the item matches (only items with at least one).
    matches: dict[str, tuple[RuleMatch, ...]]


# --------------------------------------------------------------------------- normalise -> decide


@dataclass(frozen=True, slots=True)
class Item:
    """A normalised item, ready to decide on and store."""

    #: Identity within the feed: guid, else link, else a hash.
    entry_key: str
    guid: str | None
    #: Resolved http(s) link, or None.
    url: str | None
    #: Canonical form of ``url`` (host case, default port, fragment, tracking params).
    canonical_url: str | None
    #: Plain-text title.
    title: str
    #: Sanitised HTML content (content, else summary).
    content_html: str
    #: Plain text of the content, for matching and display.
    content_text: str
    author: str | None
    #: As the feed says, in UTC; None when missing.
    published: datetime | None
    updated: datetime | None
    #: When feedwatch first saw it (or this poll's time for a new item).
    first_seen: datetime
    #: Sort key: published clamped to not after ``first_seen``; ``first_seen`` when missing.
    sort_at: datetime
    tags: tuple[str, ...]
    language: str | None
    #: Hash of the content that matters (volatile fields excluded).
    content_hash: str

    def __reduce__(self) -> tuple[Callable[..., Item], tuple[Any, ...]]:
        """Pickled as its field values in order: the worker processes send every
        item of a poll to the main process, and the default of a frozen slotted
        dataclass calls ``dataclasses.fields()`` again for every item, on both sides."""
        return _item_from_state, _item_state(self)


_ITEM_FIELDS = tuple(f.name for f in fields(Item))
_item_state = operator.attrgetter(*_ITEM_FIELDS)
#: The slot descriptors, in field order: setting through them skips the frozen
#: ``__setattr__``, as the dataclass's own ``__init__`` and ``__setstate__`` do.
_ITEM_SLOTS = tuple(Item.__dict__[name] for name in _ITEM_FIELDS)


def _item_from_state(*state: Any) -> Item:
    """The :class:`Item` whose field values are ``state`` (the inverse of ``__reduce__``)."""
    item = object.__new__(Item)
    for slot, value in zip(_ITEM_SLOTS, state, strict=True):
        slot.__set__(item, value)
    return item


class ItemChange(enum.StrEnum):
    NEW = "new"
    UPDATED = "updated"


@dataclass(frozen=True, slots=True)
class ItemIntent:
    """An item to write: new, or an update of a stored one."""

    item: Item
    change: ItemChange
    #: Storage id of the item being updated (None for new ones).
    existing_id: int | None = None
    #: Hash-only changes in a row after this update (0 after an announced edit).
    hash_changes: int = 0


# --------------------------------------------------------------------------- match


class Span(NamedTuple):
    """A matched range of characters in one field of an item (original text).

    A named tuple rather than a frozen dataclass: the matcher makes hundreds per
    item at 10,000 rules, and a tuple is built in a quarter of the time.
    """

    #: "title", "content", "author" or "feed".
    field: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class MatchInput:
    """The fields of an item a rule can look at."""

    title: str
    content: str
    author: str = ""
    feed: str = ""
    tags: tuple[str, ...] = ()
    lang: str | None = None


class RuleMatch(NamedTuple):
    """A rule that matched an item, with where (a named tuple, like :class:`Span`)."""

    rule: str
    spans: tuple[Span, ...] = ()


@dataclass(frozen=True, slots=True)
class AlertIntent:
    """An alert to store: rule ``rule`` matched the item with ``entry_key``."""

    rule: str
    entry_key: str
    spans: tuple[Span, ...] = ()


# --------------------------------------------------------------------------- pipeline -> storage


class PollStatus(enum.StrEnum):
    OK = "ok"
    NOT_MODIFIED = "not_modified"
    #: 429/503: the server asked to wait; not counted as an error.
    RATE_LIMITED = "rate_limited"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class FeedUpdateIntent:
    """Everything one poll of one feed writes, in one transaction."""

    feed_id: int
    #: Fence: write only if the feed is still leased with this token (None: no lease).
    lease_token: str | None
    #: When this poll started.
    polled_at: datetime
    status: PollStatus
    #: Next poll time decided by the policy.
    next_poll_at: datetime
    #: Validators for the next conditional GET. On "ok" they replace the stored
    #: ones (None clears); on "not_modified" None keeps the stored ones (many
    #: servers omit them on a 304); on "error" storage keeps the stored ones.
    etag: str | None = None
    last_modified: str | None = None
    #: The feed's own title from the document, when seen.
    feed_title: str | None = None
    error_kind: ErrorKind | None = None
    error_message: str | None = None
    http_status: int | None = None
    items: tuple[ItemIntent, ...] = ()
    alerts: tuple[AlertIntent, ...] = ()
    #: The document's RSS <ttl> (stored on "ok"; a 304 reuses it).
    ttl_minutes: int | None = None
    #: Disable the feed, with this reason (410 Gone, failing for too long).
    disable_reason: str | None = None
    #: Where every redirect of this fetch was permanent (301/308), the final URL;
    #: storage switches the feed to it once seen on several polls in a row.
    moved_to: str | None = None
    #: Operator notices to queue with this commit (e.g. the feed was disabled).
    notices: tuple[Notice, ...] = ()
    #: Deliveries of the alerts; written only for alerts this commit inserts.
    deliveries: tuple[DeliveryIntent, ...] = ()
    #: The fingerprint of the document this poll parsed (or failed to parse), with
    #: ``body_error`` for the latter; None keeps the stored ones (304, fetch errors).
    body_hash: str | None = None
    body_error: str | None = None


@dataclass(frozen=True, slots=True)
class CommitResult:
    """What the commit really wrote (uniqueness can turn an intent into nothing)."""

    #: False when the lease was lost and nothing was written.
    written: bool
    new_items: int = 0
    updated_items: int = 0
    new_alerts: int = 0
    #: Delivery rows written or alerts added to a pending digest.
    new_deliveries: int = 0


# --------------------------------------------------------------------------- config -> adapters

#: Entries of one document kept at most (``fetch.max_items``), the first in document order.
DEFAULT_MAX_ITEMS = 10_000


@dataclass(frozen=True, slots=True)
class FetchOptions:
    """Limits and policy for fetching feeds (config ``fetch:``)."""

    #: Networks the SSRF guard lets through although they are private/loopback/reserved.
    allow_networks: tuple[str, ...] = ()
    #: Total deadline for one fetch, redirects and body included (seconds).
    timeout: float = 30.0
    #: Deadline for establishing one connection (seconds).
    connect_timeout: float = 10.0
    #: Largest body accepted, counted after decompression (bytes).
    max_body: int = 15 * 1024 * 1024
    #: Redirects followed at most.
    max_redirects: int = 5
    #: Entries of one document kept at most, the first in document order (the rest
    #: are dropped in the worker, before normalising and matching).
    max_items: int = DEFAULT_MAX_ITEMS
    #: Fetches in flight at once, over all hosts.
    concurrency: int = 16
    #: Fetches in flight at once to one host.
    per_host: int = 2
    #: User-Agent header.
    user_agent: str = "feedwatch/0.1 (+https://github.com/feedwatch/feedwatch)"


@dataclass(frozen=True, slots=True)
class SchedulerOptions:
    """How the daemon schedules its work (``scheduler:``); durations in seconds."""

    #: How often the daemon looks for due feeds (far shorter than any interval).
    tick: float = 1.0
    #: Shortest and longest poll interval (also the bounds of the adaptive interval).
    min_interval: float = 60.0
    max_interval: float = 86400.0
    #: Random extra delay, as a fraction of the delay (0.1 = up to 10% more).
    jitter: float = 0.1
    #: Poll a feed at its recent publishing rhythm, between the two bounds.
    adaptive: bool = False
    #: Transient errors back off exponentially up to this delay.
    max_backoff: float = 6 * 3600.0
    #: A feed failing (not rate-limited) for this long is disabled.
    disable_after: float = 7 * 86400.0
    #: Time budget for parsing one document.
    parse_timeout: float = 30.0
    #: How often due deliveries are sent.
    dispatch: float = 5.0


@dataclass(frozen=True, slots=True)
class RetentionOptions:
    """How long history is kept (``retention:``); seconds, None = forever."""

    #: Items (and their alerts) first seen longer ago than this are deleted,
    #: unless one of their alerts still waits for a delivery.
    items: float | None = 365 * 86400.0
    #: Sent and failed deliveries older than this are deleted.
    deliveries: float | None = 90 * 86400.0


@dataclass(frozen=True, slots=True)
class ServerOptions:
    """The daemon's HTTP server (``server:``)."""

    host: str = "127.0.0.1"
    port: int = 8080
    #: Bearer token for the API; None leaves it open (bind to loopback then).
    token: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class FeedSpec:
    """One feed as configured."""

    name: str
    url: str
    title: str | None = None
    #: Poll interval in seconds.
    interval: float = 900.0
    tags: tuple[str, ...] = ()
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class RuleSpec:
    """One keyword rule as configured."""

    name: str
    query: str


@dataclass(frozen=True, slots=True)
class EmailSettings:
    """Where and how an email subscriber's messages are sent."""

    host: str
    port: int
    #: "starttls", "tls" or "none".
    security: str
    #: From address.
    sender: str
    #: One or several recipient addresses.
    to: tuple[str, ...]
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    #: Extra CA bundle (PEM) to trust for this server, for a private CA.
    ca_file: str | None = None
    #: Seconds for connecting and for each SMTP command.
    timeout: float = 30.0


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    """Where a webhook subscriber's payloads are POSTed."""

    url: str
    #: Standard Webhooks secret (``whsec_`` + base64); None sends unsigned.
    secret: str | None = field(default=None, repr=False)
    #: Extra request headers (never feedwatch's own ones).
    headers: tuple[tuple[str, str], ...] = ()
    #: Total seconds for one attempt (connect, send, response).
    timeout: float = 15.0


@dataclass(frozen=True, slots=True)
class DigestSchedule:
    """When digest windows end: every hour, or every day at a local time."""

    #: "hourly" or "daily".
    every: str
    hour: int = 0
    minute: int = 0
    #: IANA time zone of ``hour:minute``.
    tz: str = "UTC"


@dataclass(frozen=True, slots=True)
class SubscriberSpec:
    """One alert subscriber as configured.

    ``spec_json`` is what storage keeps (secrets replaced by a fingerprint, so a
    changed secret still counts as a change); the settings carry the real values
    and never go to the database.
    """

    name: str
    #: "email" or "webhook".
    channel: str
    spec_json: str
    #: Rule names, or None for all rules.
    rules: tuple[str, ...] | None = None
    #: Feed names, or None for every feed.
    feeds: tuple[str, ...] | None = None
    #: Feed tags (any of them), or None for no tag filter.
    tags: tuple[str, ...] | None = None
    #: "immediate" or "digest".
    mode: str = "immediate"
    schedule: DigestSchedule | None = None
    email: EmailSettings | None = None
    webhook: WebhookSettings | None = None
    #: Also receives operator notices (a feed or subscriber disabled, a feed moved).
    notices: bool = False


# --------------------------------------------------------------------------- delivery


@dataclass(frozen=True, slots=True)
class Notice:
    """An operator notice for subscriber ``subscriber`` (one with ``notices: true``)."""

    subscriber: str
    #: One line: what happened ("feed un-news disabled").
    subject: str
    #: A few lines: why, and what to do.
    text: str


@dataclass(frozen=True, slots=True)
class DeliveryIntent:
    """Deliver the alert (rule, entry key) of the feed being committed to a subscriber.

    ``windows`` is empty for an immediate delivery; for a digest it holds the
    window the alert falls in and the ones after it, as (start, end): storage puts
    the alert in the first of them whose digest has not started sending.
    """

    subscriber: str
    rule: str
    entry_key: str
    windows: tuple[tuple[datetime, datetime], ...] = ()


@dataclass(frozen=True, slots=True)
class AlertContent:
    """One alert as a message shows it."""

    alert_id: int
    rule: str
    rule_query: str
    item_id: int
    #: Item title and plain-text content (the spans point into them).
    title: str
    content_text: str
    #: The item's link (http or https only), if any.
    link: str | None
    feed: str
    #: The feed's title (configured, else from the document), if any.
    feed_title: str | None
    published: datetime | None
    #: When the alert was raised.
    created_at: datetime
    spans: tuple[Span, ...] = ()
    #: Language and tags of the item.
    language: str | None = None
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DeliveryJob:
    """A claimed delivery, ready to render and send."""

    id: int
    subscriber: str
    #: "alert" (one alert, immediate) or "digest".
    kind: str
    #: Stable across retries: the webhook-id, and the Message-ID's local part.
    message_id: str
    #: Attempts already made before this one.
    attempts: int
    created_at: datetime
    alerts: tuple[AlertContent, ...]
    #: The digest window, for digests.
    window_start: datetime | None = None
    window_end: datetime | None = None
    #: The claim's fence token (record the outcome with it).
    lease_token: str = ""
    #: A test message (``feedwatch subscribers test``), never stored.
    test: bool = False
    #: For ``kind == "notice"``: the operator notice.
    notice_subject: str = ""
    notice_text: str = ""


@dataclass(frozen=True, slots=True)
class SendResult:
    """What one send attempt came to."""

    ok: bool
    #: A failure that retrying cannot fix (SMTP 5xx on the recipients, webhook 410).
    permanent: bool = False
    #: The subscriber's endpoint is gone for good (webhook 410): disable the subscriber.
    disable: bool = False
    #: Seconds the receiver asked us to wait (Retry-After on 429/503).
    retry_after: float | None = None
    #: HTTP status or SMTP reply code, when there was one.
    code: int | None = None
    #: One line for people: what happened.
    detail: str = ""

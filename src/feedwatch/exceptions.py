"""The feedwatch exception tree; the only module that defines exception classes.

::

    FeedwatchError
    ├── ConfigError(ValueError)          feeds.yaml or a command-line value is wrong
    ├── RuleSyntaxError(ConfigError)     a rule query does not parse (name, column)
    ├── FeedError                        something went wrong with one feed
    │   ├── FetchError                   the HTTP side (kind says which: timeout, blocked, ...)
    │   └── ParseError                   the document is not a usable feed
    │       └── ParseAborted             parsing was stopped (budget) or its process died
    └── StorageError                     the database failed or is out of date

Adapters translate their library's exceptions into these at the boundary
(``raise FetchError(...) from exc``), so the rest of the code never sees an
httpx, feedparser or SQLAlchemy exception.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class FeedwatchError(Exception):
    """Base of every error feedwatch raises on purpose."""


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One problem found in a configuration file."""

    #: Dotted path of the offending value, e.g. ``feeds[3].url`` (``""`` for the whole file).
    path: str
    #: What is wrong, for a human.
    message: str
    #: 1-based line in the file, when known.
    line: int | None = None
    #: 1-based column in the file, when known.
    column: int | None = None

    def render(self, file: str | None) -> str:
        where = file or "<config>"
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(FeedwatchError, ValueError):
    """The configuration is invalid; carries every problem found, each with its place."""

    def __init__(self, problems: list[ConfigProblem], file: str | None = None) -> None:
        self.problems = problems
        self.file = file
        super().__init__("\n".join(p.render(file) for p in problems))


class RuleSyntaxError(FeedwatchError, ValueError):
    """A rule query does not parse; ``column`` is 1-based within the query."""

    def __init__(self, message: str, column: int, query: str = "") -> None:
        self.reason = message
        self.column = column
        self.query = query
        #: Name of the rule, when the query came from a named rule (set by compile_rules).
        self.rule: str | None = None
        super().__init__(f"column {column}: {message}")


class ErrorKind(enum.StrEnum):
    """How a feed failed; stored on the feed and shown by ``feedwatch feeds``."""

    TIMEOUT = "timeout"
    TOO_LARGE = "too_large"
    BLOCKED = "blocked"
    TLS = "tls"
    HTTP_STATUS = "http_status"
    CONNECTION = "connection"
    REDIRECT = "redirect"
    INVALID_URL = "invalid_url"
    PARSE = "parse"
    STORAGE = "storage"
    INTERNAL = "internal"


class FeedError(FeedwatchError):
    """Something went wrong with one feed. ``kind`` classifies it for storage and display."""

    kind: ErrorKind = ErrorKind.INTERNAL

    def __init__(self, message: str, *, url: str | None = None) -> None:
        self.message = message
        self.url = url
        super().__init__(message)


class FetchError(FeedError):
    """Fetching a feed failed. ``status`` is the HTTP status when there was one;
    ``retry_after`` the seconds the server asked us to wait (429/503), if it said."""

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        url: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, url=url)
        self.kind = kind
        self.status = status
        self.retry_after = retry_after


class ParseError(FeedError):
    """The document could not be turned into a feed (nothing usable in it)."""

    kind = ErrorKind.PARSE


class ParseAborted(ParseError):
    """Parsing the document was stopped (over its time budget) or its worker process
    died: no verdict on the document itself, so the next poll parses it again even
    if it is unchanged (a loaded machine, or a killed process, may do better then)."""


class StorageError(FeedwatchError):
    """The database failed, or its schema is newer than this program."""

"""feeds.yaml -> a validated, immutable :class:`Config`, or one ConfigError listing every problem.

What it does:

* reads the YAML with PyYAML's safe composer and walks the nodes itself, so
  every value keeps its line and column; duplicate keys, non-string keys,
  recursive aliases and unknown tags are errors (``<<`` merge keys work);
* expands ``${VAR}``, ``${VAR:-default}`` (used when VAR is unset *or empty*)
  and ``$$`` (a literal ``$``) in string *values* after parsing, never in keys;
  a lone ``$`` not followed by ``{`` or ``$`` stays as it is;
* validates with pydantic models (unknown keys rejected with a "did you
  mean" hint, strict types: ``"5"`` is not an integer, ``yes`` is not a
  string), then checks what spans the file: unique names and feed URLs,
  subscribers naming existing rules, feeds and tags, one channel each;
* checks every rule query with :func:`feedwatch.rules.check_query`;
* resolves the database URL: ``database_override`` (the CLI passes the winner
  of ``--database`` and ``FEEDWATCH_DATABASE_URL``, used as given) beats the
  ``database:`` key, which beats ``sqlite:///feedwatch.db``; a relative SQLite
  path in the file (or the default) is relative to the file's directory;
* reports *every* problem at once, each as ``file:line:column: path: message``
  (``feeds.yaml:12:10: feeds[3].url: not an http(s) URL``).

What it does not do: it never touches the network or the database, never
reads the environment by itself (``parse_config`` gets ``env``; only
``load_config`` defaults it to ``os.environ``) and reads no file but the one
``load_config`` is given (the system time-zone database aside, consulted to
check a digest schedule's zone). It is the only module importing pydantic and yaml;
the rest of feedwatch sees the plain records of :mod:`feedwatch._model`.

Keys (optional, except: each item's ``name``; a feed's ``url``; a rule's ``query``; a
subscriber's ``rules`` and one channel; email's ``host``, ``from`` and ``to``; webhook's ``url``)::

    database: sqlite:///feedwatch.db     # or postgresql://user:${PGPASSWORD}@host/db
    defaults: {interval: 15m}            # default poll interval, at least 1m
    fetch: {allow_networks: [CIDR[:PORT[-PORT]], ...], timeout: 30s, connect_timeout: 10s,
            max_body: 15MiB, max_items: 10000, max_redirects: 5, concurrency: 16,
            per_host: 2, user_agent: "..."}
    feeds:       [{name, url, title, interval, tags: [...], enabled}]
    rules:       [{name, query}]
    subscribers: [{name, rules: [...] | all, feeds: [...], tags: [...],
                   mode: immediate | digest, schedule: hourly | "daily HH:MM [Area/City]",
                   email: {host, port, security: starttls | tls | none, username,
                           password, from, to: [...]}
                   | webhook: {url, secret: whsec_..., headers: {...}}}]

Names of feeds, rules and subscribers, and tags, are lower-case slugs
(``[a-z0-9][a-z0-9._-]*``). A webhook ``secret`` is optional: absent or empty
means unsigned deliveries; otherwise it must be a Standard Webhooks secret
(``whsec_`` + base64), an error rather than a warning because a wrong secret
makes every signature fail at the receiver. An ``allow_networks`` entry without
a port allows every port; with one (``127.0.0.1/32:8080``, ``127.0.0.1/32:8000-8099``)
only those, and an IPv6 network with a port goes in brackets (``[::1/128]:8080``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import json
import os
import re
import types
import typing
import zoneinfo
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from email.utils import parseaddr
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ._allow import parse_allow_entry
from ._model import (
    DigestSchedule,
    EmailSettings,
    FeedSpec,
    FetchOptions,
    RetentionOptions,
    RuleSpec,
    SchedulerOptions,
    ServerOptions,
    SubscriberSpec,
    WebhookSettings,
)
from ._utils import format_duration, format_size, parse_duration, parse_size, suggest
from .exceptions import ConfigError, ConfigProblem, RuleSyntaxError
from .rules import check_query

__all__ = [
    "DEFAULT_DATABASE_URL",
    "DEFAULT_INTERVAL",
    "MAX_INTERVAL",
    "MIN_INTERVAL",
    "Config",
    "load_config",
    "parse_config",
]

#: Database used when neither the file nor the command line names one (beside the file).
DEFAULT_DATABASE_URL = "sqlite:///feedwatch.db"
#: Poll interval when neither the feed nor ``defaults.interval`` sets one (seconds).
DEFAULT_INTERVAL = 900.0
#: Shortest poll interval accepted: politeness, and it catches ``interval: 15`` (15 seconds).
MIN_INTERVAL = 60.0
#: Longest poll interval accepted.
MAX_INTERVAL = 30 * 86400.0

_FETCH_DEFAULTS = FetchOptions()
_NO_ENV: Mapping[str, str] = types.MappingProxyType({})
#: Values walked at most: stops "billion laughs" alias bombs.
_MAX_NODES = 100_000


@dataclass(frozen=True, slots=True)
class Config:
    """A validated configuration. Immutable; every duration in seconds, every size in bytes."""

    #: Path of the configuration file (for messages); None when parsed from text.
    file: str | None
    #: Database URL, resolved (override > ``database:`` > default beside the file).
    database_url: str
    #: Limits and policy for fetching (``fetch:``).
    fetch: FetchOptions
    #: Poll interval for feeds that set none (``defaults.interval``), seconds.
    default_interval: float
    #: Feeds in file order, each with its interval filled in.
    feeds: tuple[FeedSpec, ...]
    #: Rules in file order, every query checked.
    rules: tuple[RuleSpec, ...]
    #: Subscribers in file order.
    subscribers: tuple[SubscriberSpec, ...]
    #: The daemon's scheduling (``scheduler:``).
    scheduler: SchedulerOptions = field(default_factory=SchedulerOptions)
    #: The daemon's HTTP server (``server:``).
    server: ServerOptions = field(default_factory=ServerOptions)
    #: How long history is kept (``retention:``).
    retention: RetentionOptions = field(default_factory=RetentionOptions)


# ------------------------------------------------------------------ entry points


def load_config(
    path: str | Path,
    *,
    env: Mapping[str, str] | None = None,
    database_override: str | None = None,
) -> Config:
    """Read and validate the configuration file at ``path``.

    ``env`` defaults to ``os.environ`` (for ``${VAR}``). Relative SQLite paths
    in the file resolve against the file's directory. Raises ConfigError, also
    when the file cannot be read or is not UTF-8.
    """
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError([ConfigProblem("", f"cannot read the file: {reason}")], name) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(
            [ConfigProblem("", f"not UTF-8 text (byte {exc.start} cannot be decoded)")], name
        ) from exc
    return parse_config(
        text,
        file=name,
        env=os.environ if env is None else env,
        base_dir=Path(os.path.abspath(path)).parent,
        database_override=database_override,
    )


def parse_config(
    text: str,
    *,
    file: str | None = None,
    env: Mapping[str, str] = _NO_ENV,
    base_dir: Path | None = None,
    database_override: str | None = None,
) -> Config:
    """Validate configuration ``text``; pure (``env`` is the only source of ``${VAR}``).

    ``file`` is used in messages and kept in ``Config.file``. ``base_dir`` is
    the directory relative SQLite paths of the file resolve against (None:
    leave them relative). ``database_override`` wins over the file and is
    used as given. Raises ConfigError with every problem found.
    """
    doc = _compose(text)
    problems = list(doc.problems)
    if not isinstance(doc.data, dict):
        if not problems:
            problems.append(_top_level_problem(doc))
        raise ConfigError(_sorted(problems), file)

    failed = list(doc.failed)
    data = _interpolate(doc.data, (), env, doc, problems, failed)
    assert isinstance(data, dict)

    model: _ConfigModel | None = None
    try:
        model = _ConfigModel.model_validate(data)
    except ValidationError as exc:
        problems.extend(_pydantic_problems(exc, data, doc, failed))
    problems.extend(_cross_check(data, doc))
    if model is not None:
        problems.extend(_interval_problems(model, data, doc))

    database_url = ""
    if database_override is not None:
        if not _DB_URL.match(database_override):
            problems.append(ConfigProblem("", f"database override: {_DB_URL_HINT}"))
        database_url = database_override
    elif model is not None:
        database_url = _resolve_database_url(model.database or DEFAULT_DATABASE_URL, base_dir)

    if problems or model is None:
        raise ConfigError(_sorted(problems), file)
    return _build(model, file, database_url)


# ------------------------------------------------------------------ YAML -> data + marks

_Loc = tuple[str | int, ...]
_Mark = tuple[int, int]
_MERGE_TAG = "tag:yaml.org,2002:merge"
_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"


@dataclass
class _Doc:
    """The plain data of a YAML document, with where each value and key came from."""

    data: object = None
    #: 1-based (line, column) of each value (mappings and lists included), by path.
    values: dict[_Loc, _Mark] = field(default_factory=dict)
    #: 1-based (line, column) of each mapping key, by the path of its value.
    keys: dict[_Loc, _Mark] = field(default_factory=dict)
    problems: list[ConfigProblem] = field(default_factory=list)
    #: Paths whose value is already reported as bad (later checks stay quiet about them).
    failed: list[_Loc] = field(default_factory=list)

    def mark(self, loc: _Loc) -> _Mark | None:
        """Where the value at ``loc`` is, else its nearest ancestor."""
        for end in range(len(loc), -1, -1):
            found = self.values.get(loc[:end])
            if found is not None:
                return found
        return None

    def problem(self, loc: _Loc, message: str, *, at_key: bool = False) -> ConfigProblem:
        mark = self.keys.get(loc) if at_key else None
        mark = mark or self.mark(loc)
        line, column = mark if mark else (None, None)
        return ConfigProblem(_render_loc(loc), message, line, column)


class _TooManyNodes(Exception):
    pass


def _mark_of(node: yaml.Node) -> _Mark:
    return node.start_mark.line + 1, node.start_mark.column + 1


_FAST_LOADER: type[yaml.CSafeLoader] | None = getattr(yaml, "CSafeLoader", None)


def _compose(text: str) -> _Doc:
    doc = _Doc()
    root: yaml.Node | None = None
    if _FAST_LOADER is not None and not yaml.reader.Reader.NON_PRINTABLE.search(text):
        # libyaml: the same nodes and marks, several times faster on a long feed list.
        # Any problem (and any character PyYAML's reader refuses but libyaml might
        # not) is left to the pure-Python loader below, whose messages and positions
        # the error reports rely on.
        try:
            root = yaml.compose(text, Loader=_FAST_LOADER)
        except yaml.YAMLError:
            root = None
    try:
        if root is None:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem, context = exc.problem or "", exc.context or ""
        if problem.startswith("but "):  # "expected a single document..., but found another"
            message = f"{context}, {problem}"
        else:
            message = f"{problem} ({context})" if context else problem or "syntax error"
        line, column = (mark.line + 1, mark.column + 1) if mark else (None, None)
        doc.problems.append(ConfigProblem("", f"invalid YAML: {message}", line, column))
        return doc
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - text.rfind("\n", 0, exc.position)
        message = f"invalid YAML: {exc.reason} (character U+{exc.character:04X})"
        doc.problems.append(ConfigProblem("", message, line, column))
        return doc
    except yaml.YAMLError as exc:  # pragma: no cover - composing raises only the two above
        doc.problems.append(ConfigProblem("", f"invalid YAML: {exc}"))
        return doc
    if root is None:
        doc.problems.append(ConfigProblem("", "the configuration is empty"))
        return doc
    walker = _Walker(doc)
    try:
        doc.data = walker.walk(root, ())
    except _TooManyNodes:
        doc.problems.append(
            ConfigProblem("", f"more than {_MAX_NODES} values (an alias expanding too far?)")
        )
    return doc


class _Walker:
    """Turns composed YAML nodes into dicts, lists and scalars, recording marks."""

    def __init__(self, doc: _Doc) -> None:
        self.doc = doc
        self.count = 0
        self.active: set[int] = set()
        self.constructor = yaml.SafeLoader("")

    def walk(self, node: yaml.Node, loc: _Loc) -> object:
        self.count += 1
        if self.count > _MAX_NODES:
            raise _TooManyNodes
        self.doc.values[loc] = _mark_of(node)
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node, loc)
        if id(node) in self.active:
            self.doc.problems.append(self.doc.problem(loc, "recursive YAML alias"))
            self.doc.failed.append(loc)
            return None
        self.active.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                if node.tag != _SEQ_TAG:
                    self.doc.problems.append(self.doc.problem(loc, f"unsupported tag {node.tag}"))
                return [self.walk(child, (*loc, i)) for i, child in enumerate(node.value)]
            assert isinstance(node, yaml.MappingNode)
            if node.tag != _MAP_TAG:
                self.doc.problems.append(self.doc.problem(loc, f"unsupported tag {node.tag}"))
            return self.mapping(node, loc)
        finally:
            self.active.discard(id(node))

    def scalar(self, node: yaml.ScalarNode, loc: _Loc) -> object:
        try:
            return self.constructor.construct_object(node, deep=True)
        except yaml.MarkedYAMLError as exc:
            self.doc.problems.append(self.doc.problem(loc, exc.problem or "invalid value"))
            self.doc.failed.append(loc)
            return None

    def mapping(self, node: yaml.MappingNode, loc: _Loc) -> dict[str, object]:
        result: dict[str, object] = {}
        # "<<" merge keys first, whatever their place: explicit keys override them.
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                sources = (
                    value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
                )
                for source in sources:
                    if not isinstance(source, yaml.MappingNode):
                        self.doc.problems.append(
                            self.doc.problem(loc, "'<<' must merge a mapping or a list of mappings")
                        )
                        continue
                    if id(source) in self.active:
                        self.doc.problems.append(self.doc.problem(loc, "recursive YAML alias"))
                        continue
                    self.active.add(id(source))
                    try:
                        merged = self.mapping(source, loc)
                    finally:
                        self.active.discard(id(source))
                    for merged_key, value in merged.items():
                        result.setdefault(merged_key, value)
        first_line: dict[str, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = self.scalar(key_node, loc) if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key, str):
                self.doc.problems.append(
                    ConfigProblem(
                        _render_loc(loc),
                        f"keys must be strings, got {_kind(key)} (quote the key)",
                        *_mark_of(key_node),
                    )
                )
                continue
            if key in first_line:
                self.doc.problems.append(
                    ConfigProblem(
                        _render_loc((*loc, key)),
                        f"duplicate key {key!r} (first at line {first_line[key]})",
                        *_mark_of(key_node),
                    )
                )
                continue
            first_line[key] = key_node.start_mark.line + 1
            self.doc.keys[(*loc, key)] = _mark_of(key_node)
            result[key] = self.walk(value_node, (*loc, key))
        return result


def _top_level_problem(doc: _Doc) -> ConfigProblem:
    return doc.problem(
        (),
        "the top level must be a mapping of settings (database, defaults, scheduler, "
        f"server, retention, fetch, feeds, rules, subscribers), got {_kind(doc.data)}",
    )


# ------------------------------------------------------------------ ${VAR} interpolation

_INTERPOLATION = re.compile(r"\$(?:(\$)|\{([^}]*)\}|(\{))")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _expand(text: str, env: Mapping[str, str]) -> str:
    """Expand ``${VAR}``, ``${VAR:-default}`` and ``$$`` in ``text``; ValueError on a bad one."""

    def replace(m: re.Match[str]) -> str:
        if m.group(1):
            return "$"
        if m.group(3):
            raise ValueError("unterminated '${' (write '$$' for a literal '$')")
        body = m.group(2)
        name, has_default, default = body.partition(":-")
        if not _ENV_NAME.match(name):
            raise ValueError(
                f"invalid reference '${{{body}}}': expected ${{NAME}} or ${{NAME:-default}}"
            )
        value = env.get(name)
        if has_default:
            return value or default
        if value is None:
            raise ValueError(f"environment variable {name} is not set")
        return value

    return _INTERPOLATION.sub(replace, text)


def _interpolate(
    data: object,
    loc: _Loc,
    env: Mapping[str, str],
    doc: _Doc,
    problems: list[ConfigProblem],
    failed: list[_Loc],
) -> object:
    if isinstance(data, str):
        if "$" not in data:
            return data
        try:
            return _expand(data, env)
        except ValueError as exc:
            problems.append(doc.problem(loc, str(exc)))
            failed.append(loc)
            return data
    if isinstance(data, dict):
        return {k: _interpolate(v, (*loc, k), env, doc, problems, failed) for k, v in data.items()}
    if isinstance(data, list):
        return [_interpolate(v, (*loc, i), env, doc, problems, failed) for i, v in enumerate(data)]
    return data


# ------------------------------------------------------------------ value checks

_SLUG = re.compile(r"[a-z0-9][a-z0-9._-]*\Z")
_SLUG_MAX = 64
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DB_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_DB_URL_HINT = "not a database URL (e.g. sqlite:///feedwatch.db or postgresql://user@host/db)"
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")
_RESERVED_HEADERS = frozenset(
    {"webhook-id", "webhook-timestamp", "webhook-signature", "content-type", "content-length"}
)
_SCHEDULE = re.compile(r"(?:hourly|daily (?P<hh>\d\d):(?P<mm>\d\d)(?: (?P<tz>\S+))?)\Z")
_SCHEDULE_HINT = "expected 'hourly' or 'daily HH:MM [Area/City]', e.g. 'daily 08:00 Europe/Moscow'"


def _slug(what: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        if not _SLUG.match(value) or len(value) > _SLUG_MAX:
            raise ValueError(
                f"invalid {what} {value!r}: use lower-case letters, digits, '.', '_' and '-', "
                f"starting with a letter or digit, at most {_SLUG_MAX} characters"
            )
        return value

    return check


def _non_empty(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


def _http_url(value: str) -> str:
    if _CONTROL.search(value) or any(c.isspace() for c in value):
        raise ValueError("not an http(s) URL (contains spaces or control characters)")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ValueError("not an http(s) URL (bad host or port)") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError("not an http(s) URL")
    if not parts.hostname:
        raise ValueError("not an http(s) URL (no host)")
    return value


def _cidr(value: str) -> str:
    # The fetcher's own parser (CIDR, CIDR:PORT, CIDR:FIRST-LAST, [IPv6 CIDR]:PORT);
    # its messages quote the entry. Normalised: 10.1.2.3/8:80 is 10.0.0.0/8:80.
    return str(parse_allow_entry(value))


def _empty_is_none(value: object) -> object:
    # title: "${TITLE:-}" means no title.
    return None if isinstance(value, str) and not value.strip() else value


def _to_duration(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"expected a duration such as 30s, 15m or 1h, got {_kind(value)}")
    return parse_duration(value)


def _to_size(value: object) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError(f"expected a size such as 512KiB or 15MiB, got {_kind(value)}")
    return parse_size(value)


def _to_port(value: object) -> object:
    # A port may come from "${SMTP_PORT}", which is a string.
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return value


def _interval(value: float) -> float:
    # The lower bound is scheduler.min_interval (see _interval_problems).
    if value <= 0:
        raise ValueError("must be positive")
    if value > MAX_INTERVAL:
        raise ValueError(
            f"interval {format_duration(value)} is longer than the maximum "
            f"{format_duration(MAX_INTERVAL)}"
        )
    return value


def _positive(value: float) -> float:
    if value <= 0:
        raise ValueError("must be more than 0s")
    return value


def _int_range(low: int, high: int) -> Callable[[int], int]:
    def check(value: int) -> int:
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}, got {value}")
        return value

    return check


def _at_least(low: int) -> Callable[[int], int]:
    def check(value: int) -> int:
        if value < low:
            raise ValueError(f"must be at least {low}, got {value}")
        return value

    return check


def _min_size(value: int) -> int:
    if value < 1024:
        raise ValueError(
            f"{format_size(value)} is too small: at least 1KiB (a bare number is bytes)"
        )
    return value


def _header_safe(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters (line breaks included)")
    return value


def _address(value: str) -> str:
    _header_safe(value)
    _, addr = parseaddr(value)
    local, at, domain = addr.rpartition("@")
    if not (at and local and domain and "." in domain) or any(c.isspace() for c in addr):
        raise ValueError(f"not an email address: {value!r}")
    return value


def _host(value: str) -> str:
    if not value or "/" in value or any(c.isspace() for c in value) or _CONTROL.search(value):
        raise ValueError(
            f"not a host name: {value!r} (write the host alone, e.g. smtp.example.org)"
        )
    return value


_Name = Annotated[str, AfterValidator(_slug("name"))]
_Tag = Annotated[str, AfterValidator(_slug("tag"))]
_Text = Annotated[str, AfterValidator(_non_empty), AfterValidator(_header_safe)]
_HttpUrl = Annotated[str, AfterValidator(_http_url)]
_Cidr = Annotated[str, AfterValidator(_cidr)]
_Duration = Annotated[float, BeforeValidator(_to_duration)]
_Interval = Annotated[float, BeforeValidator(_to_duration), AfterValidator(_interval)]
_Timeout = Annotated[float, BeforeValidator(_to_duration), AfterValidator(_positive)]
_Size = Annotated[int, BeforeValidator(_to_size), AfterValidator(_min_size)]
_Port = Annotated[int, BeforeValidator(_to_port), AfterValidator(_int_range(1, 65535))]
_Address = Annotated[str, AfterValidator(_address)]


# ------------------------------------------------------------------ models


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class _DefaultsModel(_Model):
    interval: _Interval = DEFAULT_INTERVAL


def _fraction(value: object) -> object:
    """``10%`` or ``0.1`` -> 0.1."""
    if isinstance(value, str):
        text = value.strip()
        try:
            return float(text[:-1]) / 100 if text.endswith("%") else float(text)
        except ValueError:
            raise ValueError(f"expected a percentage such as 10%, got {value!r}") from None
    return value


def _unit_range(value: float) -> float:
    if not 0 <= value <= 1:
        raise ValueError("must be between 0% and 100%")
    return value


_SCHEDULER_DEFAULTS = SchedulerOptions()


class _SchedulerModel(_Model):
    tick: _Timeout = _SCHEDULER_DEFAULTS.tick
    #: The default poll interval (same as defaults.interval; set one of the two).
    interval: _Interval | None = None
    min_interval: _Timeout = _SCHEDULER_DEFAULTS.min_interval
    max_interval: _Timeout = _SCHEDULER_DEFAULTS.max_interval
    jitter: Annotated[float, BeforeValidator(_fraction), AfterValidator(_unit_range)] = (
        _SCHEDULER_DEFAULTS.jitter
    )
    adaptive: bool = False
    max_backoff: _Timeout = _SCHEDULER_DEFAULTS.max_backoff
    disable_after: _Timeout = _SCHEDULER_DEFAULTS.disable_after
    parse_timeout: _Timeout = _SCHEDULER_DEFAULTS.parse_timeout
    dispatch: _Timeout = _SCHEDULER_DEFAULTS.dispatch

    @model_validator(mode="after")
    def _consistent(self) -> _SchedulerModel:
        if self.min_interval > self.max_interval:
            raise ValueError(
                f"min_interval ({format_duration(self.min_interval)}) exceeds "
                f"max_interval ({format_duration(self.max_interval)})"
            )
        if self.tick * 2 > self.min_interval:
            raise ValueError(
                f"tick ({format_duration(self.tick)}) must be at most half of min_interval "
                f"({format_duration(self.min_interval)}), or feeds are polled late"
            )
        return self


_LISTEN = re.compile(r"(?:\[(?P<v6>[^\]]*)\]|(?P<host>[^:\s\[\]]+)):(?P<port>\d{1,5})\Z")


def _listen(value: str) -> str:
    m = _LISTEN.match(value.strip())
    ok = m is not None and 0 <= int(m["port"]) <= 65535
    if ok and m is not None and m["v6"] is not None:
        try:
            ipaddress.IPv6Address(m["v6"])
        except ValueError:
            ok = False
    if not ok:
        raise ValueError(f"expected HOST:PORT such as 127.0.0.1:8080 or [::1]:8080, got {value!r}")
    return value.strip()


def _forever(value: object) -> object:
    return None if value in ("forever", "never", None) else value


_RETENTION_DEFAULTS = RetentionOptions()


class _RetentionModel(_Model):
    #: Items first seen longer ago are deleted (with their alerts); "forever" keeps all.
    items: Annotated[_Timeout | None, BeforeValidator(_forever)] = _RETENTION_DEFAULTS.items
    #: Sent and failed deliveries older than this are deleted.
    deliveries: Annotated[_Timeout | None, BeforeValidator(_forever)] = (
        _RETENTION_DEFAULTS.deliveries
    )


class _ServerModel(_Model):
    listen: Annotated[str, AfterValidator(_listen)] = "127.0.0.1:8080"
    token: str | None = None


class _FetchModel(_Model):
    allow_networks: list[_Cidr] = Field(default_factory=list)
    timeout: _Timeout = _FETCH_DEFAULTS.timeout
    connect_timeout: _Timeout = _FETCH_DEFAULTS.connect_timeout
    max_body: _Size = _FETCH_DEFAULTS.max_body
    max_items: Annotated[int, AfterValidator(_at_least(1))] = _FETCH_DEFAULTS.max_items
    max_redirects: Annotated[int, AfterValidator(_int_range(0, 20))] = _FETCH_DEFAULTS.max_redirects
    concurrency: Annotated[int, AfterValidator(_int_range(1, 1000))] = _FETCH_DEFAULTS.concurrency
    per_host: Annotated[int, AfterValidator(_int_range(1, 100))] = _FETCH_DEFAULTS.per_host
    user_agent: _Text | None = None

    @model_validator(mode="after")
    def _connect_within_total(self) -> _FetchModel:
        if self.connect_timeout > self.timeout:
            raise ValueError(
                f"connect_timeout ({format_duration(self.connect_timeout)}) must not exceed "
                f"timeout ({format_duration(self.timeout)})"
            )
        return self


class _FeedModel(_Model):
    name: _Name
    url: _HttpUrl
    title: Annotated[_Text | None, BeforeValidator(_empty_is_none)] = None
    interval: _Interval | None = None
    tags: list[_Tag] = Field(default_factory=list)
    enabled: bool = True


class _RuleModel(_Model):
    name: _Name
    query: str

    @field_validator("query")
    @classmethod
    def _check_query(cls, query: str, info: ValidationInfo) -> str:
        name = info.data.get("name")
        prefix = f"rule {name!r}: " if isinstance(name, str) else ""
        try:
            check_query(query)
        except RuleSyntaxError as exc:
            raise ValueError(f"{prefix}column {exc.column}: {exc.reason}") from None
        return query


class _EmailModel(_Model):
    host: Annotated[str, AfterValidator(_host)]
    #: Defaults by ``security``: 587 for starttls, 465 for tls, 25 for none.
    port: _Port | None = None
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: _Text | None = None
    password: str | None = None
    from_: _Address = Field(alias="from")
    to: Annotated[list[_Address], Field(min_length=1)]
    #: An extra CA bundle (PEM) to trust, for a server with a private CA.
    ca_file: _Text | None = None
    timeout: _Duration = 30.0

    @model_validator(mode="after")
    def _complete(self) -> _EmailModel:
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together: set both or neither")
        if self.port is None:
            self.port = {"starttls": 587, "tls": 465, "none": 25}[self.security]
        return self


class _WebhookModel(_Model):
    url: _HttpUrl
    #: Standard Webhooks secret (``whsec_`` + base64); None or "" sends unsigned.
    secret: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    timeout: _Duration = 15.0

    @field_validator("secret")
    @classmethod
    def _check_secret(cls, secret: str | None) -> str | None:
        if not secret:
            return secret
        key = secret.removeprefix("whsec_")
        try:
            ok = key != secret and bool(base64.b64decode(key, validate=True))
        except (binascii.Error, ValueError):
            ok = False
        if not ok:
            raise ValueError(
                "secret must be a Standard Webhooks secret, 'whsec_' followed by base64 "
                "(leave it out or empty to send unsigned)"
            )
        return secret

    @field_validator("headers")
    @classmethod
    def _check_headers(cls, headers: dict[str, str]) -> dict[str, str]:
        for name, value in headers.items():
            if not _HEADER_NAME.match(name):
                raise ValueError(f"invalid header name {name!r}")
            if name.lower() in _RESERVED_HEADERS:
                raise ValueError(f"header {name!r} is set by feedwatch and cannot be overridden")
            if _CONTROL.search(value):
                raise ValueError(f"header {name!r}: value must not contain control characters")
        return headers


def _all_or_names(value: object) -> str:
    # Validate only the branch that applies, so errors do not mention the other one.
    return "all" if isinstance(value, str) else "names"


def _rule_refs(value: object) -> object:
    if value in ("all", "none"):
        return value
    if not isinstance(value, list):
        raise ValueError(f"expected a list of rule names, all, or none; got {_kind(value)}")
    if not value:
        raise ValueError("name at least one rule, or write: all (or none, for notices only)")
    return value


class _SubscriberModel(_Model):
    name: _Name
    # Names are checked against the rules, feeds and tags defined (see _cross_check).
    rules: Annotated[
        Annotated[list[str], Tag("names")] | Annotated[Literal["all", "none"], Tag("all")],
        Discriminator(_all_or_names),
        BeforeValidator(_rule_refs),
    ]
    feeds: list[str] | None = None
    tags: list[str] | None = None
    mode: Literal["immediate", "digest"] = "immediate"
    schedule: str | None = None
    email: _EmailModel | None = None
    webhook: _WebhookModel | None = None
    #: Also receive operator notices (a feed or subscriber disabled).
    notices: bool = False

    @field_validator("schedule")
    @classmethod
    def _check_schedule(cls, schedule: str | None) -> str | None:
        if schedule is None:
            return None
        m = _SCHEDULE.match(schedule)
        if m is None:
            raise ValueError(f"invalid schedule {schedule!r}: {_SCHEDULE_HINT}")
        if m["hh"] is not None and (int(m["hh"]) > 23 or int(m["mm"]) > 59):
            raise ValueError(f"invalid schedule {schedule!r}: no such time of day")
        if m["tz"] is not None:
            try:
                zoneinfo.ZoneInfo(m["tz"])
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"invalid schedule {schedule!r}: unknown time zone") from None
        return schedule


def _database(value: str) -> str:
    if not _DB_URL.match(value):
        raise ValueError(_DB_URL_HINT)
    return value


class _ConfigModel(_Model):
    database: Annotated[str, AfterValidator(_database)] | None = None
    defaults: _DefaultsModel = Field(default_factory=_DefaultsModel)
    scheduler: _SchedulerModel = Field(default_factory=_SchedulerModel)
    server: _ServerModel = Field(default_factory=_ServerModel)
    retention: _RetentionModel = Field(default_factory=_RetentionModel)
    fetch: _FetchModel = Field(default_factory=_FetchModel)
    feeds: list[_FeedModel] = Field(default_factory=list)
    rules: list[_RuleModel] = Field(default_factory=list)
    subscribers: list[_SubscriberModel] = Field(default_factory=list)

    @field_validator(
        "defaults",
        "scheduler",
        "server",
        "retention",
        "fetch",
        "feeds",
        "rules",
        "subscribers",
        mode="before",
    )
    @classmethod
    def _null_is_empty(cls, value: object, info: ValidationInfo) -> object:
        # "subscribers:" with every entry commented out is an empty section, not an error.
        if value is None:
            return [] if info.field_name in ("feeds", "rules", "subscribers") else {}
        return value


# ------------------------------------------------------------------ pydantic errors -> problems


def _kind(value: object) -> str:
    """How a YAML user would call the type of ``value``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"a {type(value).__name__} (quote it to make it a string)"


_TYPE_MESSAGES = {
    "string_type": "expected a string",
    "int_type": "expected an integer",
    "float_type": "expected a number",
    "bool_type": "expected true or false",
    "list_type": "expected a list",
    "dict_type": "expected a mapping",
    "model_type": "expected a mapping",
    "model_attributes_type": "expected a mapping",
}


def _clean_loc(loc: tuple[str | int, ...], data: object, kind: str) -> _Loc:
    """Keep the parts of pydantic's ``loc`` that index into ``data`` (drops union/function tags)."""
    out: list[str | int] = []
    current = data
    for i, part in enumerate(loc):
        found, child = _child(current, part)
        if found:
            current = child
            out.append(part)
        elif kind == "missing" and i == len(loc) - 1:
            out.append(part)
        # else: a union member or validator tag, not a place in the file
    return tuple(out)


def _child(container: object, part: str | int) -> tuple[bool, object]:
    if isinstance(container, dict) and isinstance(part, str) and part in container:
        return True, container[part]
    if isinstance(container, list) and isinstance(part, int) and 0 <= part < len(container):
        return True, container[part]
    return False, None


def _model_at(loc: _Loc) -> type[BaseModel] | None:
    """The model class that validates the mapping at ``loc``, if any."""
    model: type[BaseModel] = _ConfigModel
    for part in loc:
        if isinstance(part, int):
            continue
        fields = {f.alias or name: f for name, f in model.model_fields.items()}
        found = fields.get(part)
        inner = _find_model(found.annotation) if found else None
        if inner is None:
            return None
        model = inner
    return model


def _find_model(annotation: object) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _find_model(arg)
        if found is not None:
            return found
    return None


def _pydantic_problems(
    exc: ValidationError, data: dict[str, object], doc: _Doc, failed: list[_Loc]
) -> Iterator[ConfigProblem]:
    for error in exc.errors(include_url=False):
        kind = error["type"]
        loc = _clean_loc(error["loc"], data, kind)
        if any(loc[: len(f)] == f for f in failed):
            continue  # already reported: the ${VAR} in it could not be expanded
        if kind == "missing":
            yield doc.problem(loc[:-1], f"missing required key {loc[-1]!r}")
        elif kind == "extra_forbidden":
            yield doc.problem(loc, _unknown_key(loc), at_key=True)
        elif kind in ("value_error", "assertion_error"):
            yield doc.problem(loc, str(error["ctx"]["error"]))
        elif kind in _TYPE_MESSAGES:
            yield doc.problem(loc, f"{_TYPE_MESSAGES[kind]}, got {_kind(error['input'])}")
        elif kind == "literal_error":
            expected = error["ctx"]["expected"]
            yield doc.problem(loc, f"must be {expected}, not {error['input']!r}")
        elif kind == "too_short":
            yield doc.problem(loc, "must not be empty")
        else:
            msg = error["msg"]
            yield doc.problem(loc, msg[:1].lower() + msg[1:])


def _unknown_key(loc: _Loc) -> str:
    key = str(loc[-1])
    model = _model_at(loc[:-1])
    if model is None:
        return f"unknown key {key!r}"
    known = [f.alias or name for name, f in model.model_fields.items()]
    close = suggest(key, known)
    if close:
        return f"unknown key {key!r} (did you mean {close!r}?)"
    return f"unknown key {key!r} (expected one of: {', '.join(known)})"


# ------------------------------------------------------------------ checks across the file


def _cross_check(data: dict[str, object], doc: _Doc) -> Iterator[ConfigProblem]:
    """What no single value can say: unique names and URLs, references between sections."""
    names: dict[str, list[str]] = {}
    for section, kind in (("feeds", "feed"), ("rules", "rule"), ("subscribers", "subscriber")):
        seen: dict[str, int] = {}
        for i, item in _items(data, section):
            name = item.get("name")
            if not isinstance(name, str):
                continue
            if name in seen:
                first = seen[name]
                yield doc.problem(
                    (section, i, "name"),
                    f"duplicate {kind} name {name!r} (first at {section}[{first}], "
                    f"line {_line(doc, (section, first, 'name'))})",
                )
            else:
                seen[name] = i
        names[section] = list(seen)

    urls: dict[str, int] = {}
    tags: set[str] = set()
    for i, item in _items(data, "feeds"):
        url = item.get("url")
        if isinstance(url, str):
            if url in urls:
                first = urls[url]
                yield doc.problem(
                    ("feeds", i, "url"),
                    f"same URL as feeds[{first}] (line {_line(doc, ('feeds', first, 'url'))})",
                )
            else:
                urls[url] = i
        feed_tags = item.get("tags")
        if isinstance(feed_tags, list):
            tags.update(t for t in feed_tags if isinstance(t, str))

    for i, sub in _items(data, "subscribers"):
        loc: _Loc = ("subscribers", i)
        yield from _references(doc, sub, loc, "rules", "rule", names["rules"], allow_all=True)
        yield from _references(doc, sub, loc, "feeds", "feed", names["feeds"])
        yield from _references(doc, sub, loc, "tags", "tag", sorted(tags))
        if sub.get("rules") == "none" and sub.get("notices") is not True:
            yield doc.problem(
                (*loc, "rules"),
                "rules: none receives nothing; add notices: true for operator notices, "
                "or name rules",
            )
        channels = [c for c in ("email", "webhook") if sub.get(c) is not None]
        if not channels:
            yield doc.problem(loc, "no channel: add email: or webhook:")
        elif len(channels) > 1:
            yield doc.problem(
                (*loc, "webhook"),
                "a subscriber has exactly one channel, and this one also has email: "
                "(make a second subscriber)",
                at_key=True,
            )
        if sub.get("mode") == "digest" and sub.get("schedule") is None:
            yield doc.problem(
                (*loc, "mode"),
                f"mode digest needs a schedule: {_SCHEDULE_HINT}",
            )
        elif sub.get("schedule") is not None and sub.get("mode", "immediate") != "digest":
            yield doc.problem(
                (*loc, "schedule"), "a schedule applies only to mode: digest", at_key=True
            )


def _interval_problems(
    model: _ConfigModel, data: dict[str, object], doc: _Doc
) -> Iterator[ConfigProblem]:
    """Intervals within scheduler.min_interval..max_interval; one default interval."""
    sched = model.scheduler
    if sched.interval is not None and "interval" in (_as_dict(data.get("defaults"))):
        yield doc.problem(
            ("scheduler", "interval"),
            "the default interval is set twice: keep scheduler.interval or defaults.interval",
            at_key=True,
        )

    def check(loc: _Loc, value: float | None) -> Iterator[ConfigProblem]:
        if value is None:
            return
        if value < sched.min_interval:
            yield doc.problem(
                loc,
                f"interval {format_duration(value)} is shorter than the minimum "
                f"{format_duration(sched.min_interval)} (scheduler.min_interval; "
                "a bare number means seconds)",
            )
        elif value > sched.max_interval:
            yield doc.problem(
                loc,
                f"interval {format_duration(value)} is longer than the maximum "
                f"{format_duration(sched.max_interval)} (scheduler.max_interval)",
            )

    yield from check(("scheduler", "interval"), sched.interval)
    if "interval" in _as_dict(data.get("defaults")):
        yield from check(("defaults", "interval"), model.defaults.interval)
    elif (
        sched.interval is None
        and any(f.interval is None for f in model.feeds)
        and not sched.min_interval <= DEFAULT_INTERVAL <= sched.max_interval
    ):
        # The built-in default applies to some feed: it must fit the bounds too.
        yield doc.problem(
            ("scheduler",),
            f"the default interval {format_duration(DEFAULT_INTERVAL)} (used by feeds "
            "without one) is outside scheduler.min_interval..scheduler.max_interval; "
            "set scheduler.interval",
            at_key=True,
        )
    for i, feed in enumerate(model.feeds):
        yield from check(("feeds", i, "interval"), feed.interval)


def _as_dict(value: object) -> dict[str, object]:
    return value if isinstance(value, dict) else {}


def _items(data: dict[str, object], section: str) -> Iterator[tuple[int, dict[str, object]]]:
    items = data.get(section)
    if isinstance(items, list):
        for i, item in enumerate(items):
            if isinstance(item, dict):
                yield i, item


def _line(doc: _Doc, loc: _Loc) -> int | str:
    mark = doc.values.get(loc)
    return mark[0] if mark else "?"


def _references(
    doc: _Doc,
    item: dict[str, object],
    loc: _Loc,
    key: str,
    kind: str,
    known: list[str],
    *,
    allow_all: bool = False,
) -> Iterator[ConfigProblem]:
    refs = item.get(key)
    if (allow_all and refs in ("all", "none")) or not isinstance(refs, list):
        return
    for j, ref in enumerate(refs):
        if not isinstance(ref, str) or ref in known:
            continue
        close = suggest(ref, known)
        if close:
            hint = f" (did you mean {close!r}?)"
        elif known:
            hint = f" (known: {', '.join(known[:10])}{', ...' if len(known) > 10 else ''})"
        else:
            hint = f" (there are no {kind}s{' with tags' if kind == 'tag' else ''})"
        yield doc.problem((*loc, key, j), f"unknown {kind} {ref!r}{hint}")


# ------------------------------------------------------------------ output


_SQLITE_FILE = re.compile(r"(sqlite(?:\+\w+)?):///(.*)\Z", re.DOTALL)


def _resolve_database_url(url: str, base_dir: Path | None) -> str:
    """Make a relative SQLite file path absolute against ``base_dir``; leave other URLs alone."""
    m = _SQLITE_FILE.match(url)
    if m is None or base_dir is None:
        return url  # postgresql://..., sqlite:// (memory)
    scheme, rest = m.groups()
    path, question, query = rest.partition("?")
    if not path or path == ":memory:" or path.startswith(("/", "file:")):
        return url
    return f"{scheme}:///{os.path.normpath(base_dir / path)}{question}{query}"


def _build(model: _ConfigModel, file: str | None, database_url: str) -> Config:
    fetch = model.fetch
    fetch_options = FetchOptions(
        allow_networks=tuple(fetch.allow_networks),
        timeout=fetch.timeout,
        connect_timeout=fetch.connect_timeout,
        max_body=fetch.max_body,
        max_items=fetch.max_items,
        max_redirects=fetch.max_redirects,
        concurrency=fetch.concurrency,
        per_host=fetch.per_host,
        user_agent=fetch.user_agent or _FETCH_DEFAULTS.user_agent,
    )
    default_interval = (
        model.scheduler.interval
        if model.scheduler.interval is not None
        else model.defaults.interval
    )
    sched = model.scheduler
    scheduler = SchedulerOptions(
        tick=sched.tick,
        min_interval=sched.min_interval,
        max_interval=sched.max_interval,
        jitter=sched.jitter,
        adaptive=sched.adaptive,
        max_backoff=sched.max_backoff,
        disable_after=sched.disable_after,
        parse_timeout=sched.parse_timeout,
        dispatch=sched.dispatch,
    )
    m = _LISTEN.match(model.server.listen)
    assert m is not None  # validated
    server = ServerOptions(
        host=m["v6"] or m["host"], port=int(m["port"]), token=model.server.token or None
    )
    feeds = tuple(
        FeedSpec(
            name=f.name,
            url=f.url,
            title=f.title,
            interval=default_interval if f.interval is None else f.interval,
            tags=tuple(dict.fromkeys(f.tags)),
            enabled=f.enabled,
        )
        for f in model.feeds
    )
    rules = tuple(RuleSpec(name=r.name, query=r.query) for r in model.rules)
    subscribers = tuple(_subscriber(s) for s in model.subscribers)
    return Config(
        file=file,
        database_url=database_url,
        fetch=fetch_options,
        default_interval=default_interval,
        feeds=feeds,
        rules=rules,
        subscribers=subscribers,
        scheduler=scheduler,
        server=server,
        retention=RetentionOptions(
            items=model.retention.items, deliveries=model.retention.deliveries
        ),
    )


def _subscriber(model: _SubscriberModel) -> SubscriberSpec:
    data = model.model_dump(mode="json", by_alias=True)
    # Storage keeps the settings to notice changes, but never a secret: a
    # fingerprint stands in for it (a new password is still a change).
    for channel, key in (("email", "password"), ("webhook", "secret")):
        section = data.get(channel)
        if isinstance(section, dict) and section.get(key):
            digest = hashlib.sha256(str(section[key]).encode()).hexdigest()[:16]
            section[key] = f"<redacted sha256:{digest}>"
    email = webhook = None
    if model.email is not None:
        e = model.email
        assert e.port is not None  # filled in by the model
        email = EmailSettings(
            host=e.host,
            port=e.port,
            security=e.security,
            sender=e.from_,
            to=tuple(e.to),
            username=e.username,
            password=e.password,
            ca_file=e.ca_file,
            timeout=e.timeout,
        )
    if model.webhook is not None:
        w = model.webhook
        webhook = WebhookSettings(
            url=w.url,
            secret=w.secret or None,
            headers=tuple(w.headers.items()),
            timeout=w.timeout,
        )
    return SubscriberSpec(
        name=model.name,
        channel="email" if email is not None else "webhook",
        spec_json=json.dumps(data, sort_keys=True, ensure_ascii=False),
        rules=None if model.rules == "all" else () if model.rules == "none" else tuple(model.rules),
        notices=model.notices,
        feeds=None if model.feeds is None else tuple(model.feeds),
        tags=None if model.tags is None else tuple(model.tags),
        mode=model.mode,
        schedule=None if model.schedule is None else parse_schedule(model.schedule),
        email=email,
        webhook=webhook,
    )


def parse_schedule(text: str) -> DigestSchedule:
    """``hourly`` or ``daily HH:MM [Area/City]`` (already validated) as a record."""
    m = _SCHEDULE.match(text)
    if m is None:
        raise ValueError(f"invalid schedule {text!r}: {_SCHEDULE_HINT}")
    if m["hh"] is None:
        return DigestSchedule("hourly")
    return DigestSchedule("daily", int(m["hh"]), int(m["mm"]), m["tz"] or "UTC")


# ------------------------------------------------------------------ helpers

_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")


def _render_loc(loc: _Loc) -> str:
    """``("feeds", 3, "url")`` -> ``feeds[3].url``; odd keys are quoted: ``headers["X Y"]``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.match(part):
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(part, ensure_ascii=False)}]"
    return out


def _sorted(problems: list[ConfigProblem]) -> list[ConfigProblem]:
    """File order (problems without a place last), each once."""
    unique = list(dict.fromkeys(problems))
    return sorted(
        unique,
        key=lambda p: (p.line is None, p.line or 0, p.column or 0),
    )

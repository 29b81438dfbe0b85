"""Tests for feedwatch.config (feeds.yaml -> Config) and the parsers in feedwatch._utils."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import textwrap
from pathlib import Path

import pytest

from feedwatch._model import (
    DigestSchedule,
    EmailSettings,
    FeedSpec,
    FetchOptions,
    RetentionOptions,
    RuleSpec,
    SchedulerOptions,
    ServerOptions,
    WebhookSettings,
)
from feedwatch._utils import format_duration, format_size, parse_duration, parse_size, suggest
from feedwatch.config import (
    DEFAULT_INTERVAL,
    Config,
    load_config,
    parse_config,
)
from feedwatch.exceptions import ConfigError

SHIPPED = Path(__file__).resolve().parent.parent / "feeds.yaml"
SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


def yaml_text(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def errors(text: str, **kwargs: object) -> list[str]:
    """The rendered problems of an invalid configuration, one string each."""
    with pytest.raises(ConfigError) as info:
        parse_config(yaml_text(text), file="feeds.yaml", **kwargs)  # type: ignore[arg-type]
    return str(info.value).splitlines()


# --------------------------------------------------------------------------- durations and sizes


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("500ms", 0.5),
        ("30s", 30.0),
        ("15m", 900.0),
        ("1h", 3600.0),
        ("1d", 86400.0),
        ("2w", 1209600.0),
        ("1h30m", 5400.0),
        ("1d 12h", 129600.0),
        ("1m30.5s", 90.5),
        ("1.5h", 5400.0),
        ("1 h", 3600.0),
        (" 45s ", 45.0),
        ("90", 90.0),
        ("2.5", 2.5),
        (90, 90.0),
        (0, 0.0),
        (1.25, 1.25),
    ],
)
def test_parse_duration(text: str | int | float, expected: float) -> None:
    assert expected == parse_duration(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "invalid duration '': expected a number with a unit (ms, s, m, h, d, w)"),
        ("15min", "invalid duration '15min': expected a number with a unit"),
        ("15M", "invalid duration '15M'"),
        ("1h30", "invalid duration '1h30'"),
        ("h", "invalid duration 'h'"),
        ("-5s", "invalid duration '-5s'"),
        ("30m1h", "units must go from the largest down, each at most once"),
        ("1m1m", "units must go from the largest down"),
        (-1, "invalid duration -1: must be a non-negative number"),
        (float("nan"), "must be a non-negative number"),
        (True, "invalid duration True"),
    ],
)
def test_parse_duration_rejects(text: str | int | float, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0, "0s"),
        (0.5, "500ms"),
        (0.001, "1ms"),
        (1.5, "1.5s"),
        (30, "30s"),
        (900, "15m"),
        (5400, "1h30m"),
        (90.25, "1m30.25s"),
        (86400 + 3600 + 61, "1d1h1m1s"),
        (-90, "-1m30s"),
    ],
)
def test_format_duration(seconds: float, expected: str) -> None:
    assert expected == format_duration(seconds)
    if seconds >= 0:
        assert parse_duration(expected) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("15MiB", 15 * 1024 * 1024),
        ("512KiB", 512 * 1024),
        ("1GiB", 1024**3),
        ("10MB", 10_000_000),
        ("1kb", 1000),
        ("15 mib", 15 * 1024 * 1024),
        ("1.5MiB", 1_572_864),
        ("100B", 100),
        ("4096", 4096),
        (4096, 4096),
        (0, 0),
    ],
)
def test_parse_size(text: str | int, expected: int) -> None:
    assert expected == parse_size(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "invalid size ''"),
        ("15M", "invalid size '15M': unknown unit 'M'"),
        ("15 MiBs", "unknown unit 'MiBs'"),
        ("MiB", "invalid size 'MiB'"),
        ("1.5", "invalid size '1.5': not a whole number of bytes"),
        ("-1KiB", "invalid size '-1KiB'"),
        (-1, "invalid size -1: must not be negative"),
        (True, "invalid size True"),
    ],
)
def test_parse_size_rejects(text: str | int, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_size(text)


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (0, "0B"),
        (700, "700B"),
        (1024, "1KiB"),
        (15 * 1024 * 1024, "15MiB"),
        (1024**3, "1GiB"),
        (10_000_000, "10MB"),
        (1500, "1.5KiB"),
        (1_500_000_000 + 7, "1.4GiB"),
    ],
)
def test_format_size(size: int, expected: str) -> None:
    assert expected == format_size(size)


def test_suggest() -> None:
    assert suggest("intervl", ["name", "url", "interval"]) == "interval"
    assert suggest("zzz", ["name", "url"]) is None


# --------------------------------------------------------------------------- a valid configuration

FULL = """
    database: postgresql://fw:${PGPASSWORD}@db.example.org/fw
    defaults:
      interval: 20m
    fetch:
      allow_networks: [127.0.0.1, 10.1.2.3/8]
      timeout: 45s
      connect_timeout: 5s
      max_body: 2MiB
      max_items: 500
      max_redirects: 3
      concurrency: 8
      per_host: 1
      user_agent: feedwatch-test
    feeds:
      - name: un-news
        url: https://news.un.org/feed/subscribe/en/news/all/rss.xml
        title: UN News
        tags: [un, en, un]
      - name: nato
        url: https://www.nato.int/rss.xml
        interval: 1h
        enabled: false
    rules:
      - name: ai
        query: '"artificial intelligence" OR AI'
      - name: ct
        query: counter-terrorism
    subscribers:
      - name: desk
        rules: [ai, ct]
        tags: [un]
        mode: digest
        schedule: daily 08:00 Europe/Moscow
        email: {host: smtp.example.org, security: tls, username: "${SMTP_USER}",
                password: "${SMTP_PASSWORD}", from: feedwatch@example.org, to: [desk@example.org]}
      - name: chat
        rules: all
        feeds: [nato]
        webhook: {url: "https://hooks.example.org/fw", secret: "${WEBHOOK_SECRET}",
                  headers: {X-Team: analysis}}
"""
FULL_ENV = {
    "PGPASSWORD": "pg-secret",
    "SMTP_USER": "fw",
    "SMTP_PASSWORD": "smtp-secret",
    "WEBHOOK_SECRET": SECRET,
}


def test_full_config() -> None:
    config = parse_config(yaml_text(FULL), file="x.yaml", env=FULL_ENV)

    assert config.file == "x.yaml"
    assert config.database_url == "postgresql://fw:pg-secret@db.example.org/fw"
    assert config.default_interval == 1200.0
    assert config.fetch == FetchOptions(
        allow_networks=("127.0.0.1/32", "10.0.0.0/8"),
        timeout=45.0,
        connect_timeout=5.0,
        max_body=2 * 1024 * 1024,
        max_items=500,
        max_redirects=3,
        concurrency=8,
        per_host=1,
        user_agent="feedwatch-test",
    )
    assert config.feeds == (
        FeedSpec(
            name="un-news",
            url="https://news.un.org/feed/subscribe/en/news/all/rss.xml",
            title="UN News",
            interval=1200.0,
            tags=("un", "en"),
        ),
        FeedSpec(name="nato", url="https://www.nato.int/rss.xml", interval=3600.0, enabled=False),
    )
    assert config.rules == (
        RuleSpec("ai", '"artificial intelligence" OR AI'),
        RuleSpec("ct", "counter-terrorism"),
    )
    desk, chat = config.subscribers
    assert (desk.name, desk.channel) == ("desk", "email")
    assert (chat.name, chat.channel) == ("chat", "webhook")
    desk_spec = json.loads(desk.spec_json)
    assert desk.spec_json == json.dumps(desk_spec, sort_keys=True, ensure_ascii=False)
    # What storage keeps never holds a secret: a fingerprint stands in for it.
    password_print = "<redacted sha256:" + hashlib.sha256(b"smtp-secret").hexdigest()[:16] + ">"
    assert desk_spec["email"] == {
        "host": "smtp.example.org",
        "port": 465,
        "security": "tls",
        "username": "fw",
        "password": password_print,
        "from": "feedwatch@example.org",
        "to": ["desk@example.org"],
        "ca_file": None,
        "timeout": 30.0,
    }
    assert "smtp-secret" not in desk.spec_json
    assert desk_spec["rules"] == ["ai", "ct"]
    assert desk_spec["schedule"] == "daily 08:00 Europe/Moscow"
    assert desk_spec["webhook"] is None
    # The settings the senders use carry the real values.
    assert desk.email == EmailSettings(
        host="smtp.example.org",
        port=465,
        security="tls",
        sender="feedwatch@example.org",
        to=("desk@example.org",),
        username="fw",
        password="smtp-secret",
    )
    assert desk.rules == ("ai", "ct")
    assert desk.mode == "digest"
    assert desk.schedule == DigestSchedule("daily", 8, 0, "Europe/Moscow")
    chat_spec = json.loads(chat.spec_json)
    assert chat_spec["rules"] == "all"
    assert chat_spec["webhook"]["secret"].startswith("<redacted sha256:")
    assert SECRET not in chat.spec_json
    assert chat_spec["webhook"]["headers"] == {"X-Team": "analysis"}
    assert chat.rules is None
    assert chat.webhook == WebhookSettings(
        url="https://hooks.example.org/fw", secret=SECRET, headers=(("X-Team", "analysis"),)
    )


def test_minimal_config_has_defaults() -> None:
    config = parse_config("feeds: []\n")

    assert config == Config(
        file=None,
        database_url="sqlite:///feedwatch.db",
        fetch=FetchOptions(),
        default_interval=DEFAULT_INTERVAL,
        feeds=(),
        rules=(),
        subscribers=(),
    )


def test_empty_sections_are_empty() -> None:
    config = parse_config("defaults:\nfetch:\nfeeds:\nrules:\nsubscribers:\n")

    assert (config.feeds, config.rules, config.subscribers) == ((), (), ())
    assert config.fetch == FetchOptions()


def test_merge_keys_and_anchors() -> None:
    text = """
        feeds:
          - &un {name: a, url: "https://a.example.org/rss", tags: [un], interval: 1h}
          - {<<: *un, name: b, url: "https://b.example.org/rss"}
    """
    config = parse_config(yaml_text(text))

    assert [(f.name, f.url, f.tags, f.interval) for f in config.feeds] == [
        ("a", "https://a.example.org/rss", ("un",), 3600.0),
        ("b", "https://b.example.org/rss", ("un",), 3600.0),
    ]


def test_email_port_from_interpolated_string() -> None:
    text = """
        rules: [{name: r, query: x}]
        subscribers:
          - name: s
            rules: all
            email: {host: h.example.org, port: "${PORT}", security: none,
                    from: a@example.org, to: [b@example.org]}
    """
    config = parse_config(yaml_text(text), env={"PORT": "2525"})

    assert json.loads(config.subscribers[0].spec_json)["email"]["port"] == 2525


# --------------------------------------------------------------------------- each kind of error


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            """
            feeds:
              - name: a
                url: https://example.org/rss
                intervl: 15m
            """,
            ["feeds.yaml:4:5: feeds[0].intervl: unknown key 'intervl' (did you mean 'interval'?)"],
            id="unknown-key-suggestion",
        ),
        pytest.param(
            """
            feed:
              - name: a
            """,
            ["feeds.yaml:1:1: feed: unknown key 'feed' (did you mean 'feeds'?)"],
            id="unknown-top-level-key",
        ),
        pytest.param(
            """
            fetch:
              colour: blue
            """,
            [
                "feeds.yaml:2:3: fetch.colour: unknown key 'colour' (expected one of: "
                "allow_networks, timeout, connect_timeout, max_body, max_items, "
                "max_redirects, concurrency, per_host, user_agent)"
            ],
            id="unknown-key-listing",
        ),
        pytest.param(
            """
            feeds:
              - name: a
                url: https://example.org/a
              - name: b
                url: ftp://example.org/b
            """,
            ["feeds.yaml:5:10: feeds[1].url: not an http(s) URL"],
            id="bad-url-scheme",
        ),
        pytest.param(
            """
            feeds:
              - {name: a, url: "https:///rss"}
            """,
            ["feeds.yaml:2:20: feeds[0].url: not an http(s) URL (no host)"],
            id="bad-url-host",
        ),
        pytest.param(
            """
            feeds:
              - name: a
                title: A
            """,
            ["feeds.yaml:2:5: feeds[0]: missing required key 'url'"],
            id="missing-key",
        ),
        pytest.param(
            """
            feeds:
              - name: a
                url: https://example.org/a
              - name: a
                url: https://example.org/b
            """,
            ["feeds.yaml:4:11: feeds[1].name: duplicate feed name 'a' (first at feeds[0], line 2)"],
            id="duplicate-name",
        ),
        pytest.param(
            """
            rules:
              - {name: r, query: x}
              - {name: r, query: y}
            """,
            ["feeds.yaml:3:12: rules[1].name: duplicate rule name 'r' (first at rules[0], line 2)"],
            id="duplicate-rule-name",
        ),
        pytest.param(
            """
            feeds:
              - name: a
                url: https://example.org/a
              - name: b
                url: https://example.org/a
            """,
            ["feeds.yaml:5:10: feeds[1].url: same URL as feeds[0] (line 3)"],
            id="duplicate-url",
        ),
        pytest.param(
            """
            feeds:
              - name: Big News
                url: https://example.org/a
            """,
            [
                "feeds.yaml:2:11: feeds[0].name: invalid name 'Big News': use lower-case "
                "letters, digits, '.', '_' and '-', starting with a letter or digit, "
                "at most 64 characters"
            ],
            id="bad-name",
        ),
        pytest.param(
            """
            feeds:
              - name: a
                url: https://example.org/a
                enabled: "yes"
                tags: un
            """,
            [
                "feeds.yaml:4:14: feeds[0].enabled: expected true or false, got a string",
                "feeds.yaml:5:11: feeds[0].tags: expected a list, got a string",
            ],
            id="wrong-type",
        ),
        pytest.param(
            """
            fetch:
              max_redirects: "5"
              per_host: 0
              max_body: 15
            """,
            [
                "feeds.yaml:2:18: fetch.max_redirects: expected an integer, got a string",
                "feeds.yaml:3:13: fetch.per_host: must be between 1 and 100, got 0",
                "feeds.yaml:4:13: fetch.max_body: 15B is too small: at least 1KiB "
                "(a bare number is bytes)",
            ],
            id="bad-numbers",
        ),
        pytest.param(
            """
            fetch:
              max_items: 0
            """,
            ["feeds.yaml:2:14: fetch.max_items: must be at least 1, got 0"],
            id="max-items-zero",
        ),
        pytest.param(
            """
            fetch:
              max_items: -5
            """,
            ["feeds.yaml:2:14: fetch.max_items: must be at least 1, got -5"],
            id="max-items-negative",
        ),
        pytest.param(
            """
            fetch:
              max_items: "10000"
            """,
            ["feeds.yaml:2:14: fetch.max_items: expected an integer, got a string"],
            id="max-items-string",
        ),
        pytest.param(
            """
            fetch:
              max_items: 2.5
            """,
            ["feeds.yaml:2:14: fetch.max_items: expected an integer, got a number"],
            id="max-items-float",
        ),
        pytest.param(
            """
            fetch:
              timeout: 5s
              connect_timeout: 10s
            """,
            [
                "feeds.yaml:2:3: fetch: connect_timeout (10s) must not exceed timeout (5s)",
            ],
            id="connect-timeout-exceeds-timeout",
        ),
        pytest.param(
            """
            fetch:
              timeout: soon
            """,
            [
                "feeds.yaml:2:12: fetch.timeout: invalid duration 'soon': expected a number "
                "with a unit (ms, s, m, h, d, w), e.g. 30s, 15m or 1h30m"
            ],
            id="bad-duration",
        ),
        pytest.param(
            """
            defaults:
              interval: 15
            """,
            [
                "feeds.yaml:2:13: defaults.interval: interval 15s is shorter than the "
                "minimum 1m (scheduler.min_interval; a bare number means seconds)"
            ],
            id="interval-too-short",
        ),
        pytest.param(
            """
            fetch:
              allow_networks: [10.0.0.0/8, 10.0.0.0/33]
            """,
            [
                "feeds.yaml:2:32: fetch.allow_networks[1]: not a network in CIDR form: "
                "'10.0.0.0/33' (e.g. 10.0.0.0/8 or 127.0.0.1/32)"
            ],
            id="bad-cidr",
        ),
        pytest.param(
            """
            database: ${DB_URL}
            """,
            ["feeds.yaml:1:11: database: environment variable DB_URL is not set"],
            id="missing-env-var",
        ),
        pytest.param(
            """
            database: "sqlite:///${DB"
            """,
            [
                "feeds.yaml:1:11: database: unterminated '${' (write '$$' for a literal '$')",
            ],
            id="unterminated-env-var",
        ),
        pytest.param(
            """
            database: "${1DB}"
            """,
            [
                "feeds.yaml:1:11: database: invalid reference '${1DB}': expected ${NAME} "
                "or ${NAME:-default}"
            ],
            id="bad-env-var-name",
        ),
        pytest.param(
            """
            database: feedwatch.db
            """,
            [
                "feeds.yaml:1:11: database: not a database URL "
                "(e.g. sqlite:///feedwatch.db or postgresql://user@host/db)"
            ],
            id="bad-database-url",
        ),
        pytest.param(
            """
            rules:
              - name: ai
                query: '"artificial intelligence" OR'
            """,
            [
                "feeds.yaml:3:12: rules[0].query: rule 'ai': column 27: "
                "OR needs a word or phrase on each side"
            ],
            id="bad-rule-query",
        ),
        pytest.param(
            """
            rules:
              - name: ai
                query: 'AI OR "machine'
            """,
            ["feeds.yaml:3:12: rules[0].query: rule 'ai': column 7: unbalanced quote"],
            id="bad-rule-quote",
        ),
        pytest.param(
            """
            rules:
              - {name: ai, query: AI}
              - {name: ct, query: terrorism}
            subscribers:
              - name: desk
                rules: [ai, cts]
                webhook: {url: "https://hooks.example.org/x"}
            """,
            ["feeds.yaml:6:17: subscribers[0].rules[1]: unknown rule 'cts' (did you mean 'ct'?)"],
            id="subscriber-unknown-rule",
        ),
        pytest.param(
            """
            feeds:
              - {name: a, url: "https://example.org/a", tags: [un]}
            rules: [{name: ai, query: AI}]
            subscribers:
              - name: desk
                rules: some
                feeds: [b]
                tags: [eu]
                webhook: {url: "https://hooks.example.org/x"}
            """,
            [
                "feeds.yaml:6:12: subscribers[0].rules: expected a list of rule names, all, "
                "or none; got a string",
                "feeds.yaml:7:13: subscribers[0].feeds[0]: unknown feed 'b' (known: a)",
                "feeds.yaml:8:12: subscribers[0].tags[0]: unknown tag 'eu' (known: un)",
            ],
            id="subscriber-bad-references",
        ),
        pytest.param(
            """
            rules: [{name: ai, query: AI}]
            subscribers:
              - name: a
                rules: [Bad, 1]
                feeds: [2]
                webhook: {url: "https://hooks.example.org/x", secrett: x}
              - name: b
                rules: []
                email: {host: smtp.example.org, form: a@example.org, to: [b@example.org]}
            """,
            [
                "feeds.yaml:4:13: subscribers[0].rules[0]: unknown rule 'Bad' (known: ai)",
                "feeds.yaml:4:18: subscribers[0].rules[1]: expected a string, got an integer",
                "feeds.yaml:5:13: subscribers[0].feeds[0]: expected a string, got an integer",
                "feeds.yaml:6:51: subscribers[0].webhook.secrett: unknown key 'secrett' "
                "(did you mean 'secret'?)",
                "feeds.yaml:8:12: subscribers[1].rules: name at least one rule, or write: all "
                "(or none, for notices only)",
                "feeds.yaml:9:12: subscribers[1].email: missing required key 'from'",
                "feeds.yaml:9:37: subscribers[1].email.form: unknown key 'form' "
                "(did you mean 'from'?)",
            ],
            id="subscriber-nested-errors",
        ),
        pytest.param(
            "defaults: &d {<<: *d, interval: 1h}\n",
            ["feeds.yaml:1:11: defaults: recursive YAML alias"],
            id="recursive-merge",
        ),
        pytest.param(
            """
            rules: [{name: ai, query: AI}]
            subscribers:
              - name: none
                rules: all
              - name: both
                rules: all
                email: {host: smtp.example.org, from: a@example.org, to: [b@example.org]}
                webhook: {url: "https://hooks.example.org/x"}
            """,
            [
                "feeds.yaml:3:5: subscribers[0]: no channel: add email: or webhook:",
                "feeds.yaml:8:5: subscribers[1].webhook: a subscriber has exactly one channel, "
                "and this one also has email: (make a second subscriber)",
            ],
            id="subscriber-channels",
        ),
        pytest.param(
            """
            rules: [{name: ai, query: AI}]
            subscribers:
              - name: a
                rules: all
                mode: digest
                webhook: {url: "https://hooks.example.org/x"}
              - name: b
                rules: all
                schedule: hourly
                webhook: {url: "https://hooks.example.org/y"}
              - name: c
                rules: all
                mode: digest
                schedule: daily 25:00
                webhook: {url: "https://hooks.example.org/z"}
              - name: d
                rules: all
                mode: weekly
                schedule: daily 08:00 Mars/Olympus
                webhook: {url: "https://hooks.example.org/w"}
            """,
            [
                "feeds.yaml:5:11: subscribers[0].mode: mode digest needs a schedule: expected "
                "'hourly' or 'daily HH:MM [Area/City]', e.g. 'daily 08:00 Europe/Moscow'",
                "feeds.yaml:9:5: subscribers[1].schedule: a schedule applies only to mode: digest",
                "feeds.yaml:14:15: subscribers[2].schedule: invalid schedule 'daily 25:00': "
                "no such time of day",
                "feeds.yaml:18:11: subscribers[3].mode: must be 'immediate' or 'digest', "
                "not 'weekly'",
                "feeds.yaml:19:5: subscribers[3].schedule: a schedule applies only to mode: digest",
                "feeds.yaml:19:15: subscribers[3].schedule: invalid schedule "
                "'daily 08:00 Mars/Olympus': unknown time zone",
            ],
            id="subscriber-schedule",
        ),
        pytest.param(
            """
            rules: [{name: ai, query: AI}]
            subscribers:
              - name: mail
                rules: all
                email:
                  host: smtp://smtp.example.org
                  security: ssl
                  username: fw
                  from: "Feedwatch <feedwatch>"
                  to: []
              - name: hook
                rules: all
                webhook:
                  url: "https://hooks.example.org/x"
                  secret: not-a-secret
                  headers: {Webhook-Signature: forged}
            """,
            [
                "feeds.yaml:6:13: subscribers[0].email.host: not a host name: "
                "'smtp://smtp.example.org' (write the host alone, e.g. smtp.example.org)",
                "feeds.yaml:7:17: subscribers[0].email.security: must be 'starttls', 'tls' "
                "or 'none', not 'ssl'",
                "feeds.yaml:9:13: subscribers[0].email.from: not an email address: "
                "'Feedwatch <feedwatch>'",
                "feeds.yaml:10:11: subscribers[0].email.to: must not be empty",
                "feeds.yaml:15:15: subscribers[1].webhook.secret: secret must be a Standard "
                "Webhooks secret, 'whsec_' followed by base64 (leave it out or empty to send "
                "unsigned)",
                "feeds.yaml:16:16: subscribers[1].webhook.headers: header 'Webhook-Signature' "
                "is set by feedwatch and cannot be overridden",
            ],
            id="subscriber-channel-settings",
        ),
        pytest.param(
            """
            feeds:
              - name: a
               url: https://example.org/a
            """,
            [
                "feeds.yaml:3:4: invalid YAML: expected <block end>, but found "
                "'<block mapping start>' (while parsing a block collection)"
            ],
            id="yaml-syntax",
        ),
        pytest.param(
            """
            feeds:
              - name: 'a
            """,
            [
                "feeds.yaml:3:1: invalid YAML: found unexpected end of stream "
                "(while scanning a quoted scalar)"
            ],
            id="yaml-unterminated-quote",
        ),
        pytest.param(
            """
            a: 1
            ---
            b: 2
            """,
            [
                "feeds.yaml:2:1: invalid YAML: expected a single document in the stream, "
                "but found another document"
            ],
            id="yaml-two-documents",
        ),
        pytest.param(
            """
            feeds:
              - name: a
                url: https://example.org/a
                url: https://example.org/b
            """,
            ["feeds.yaml:4:5: feeds[0].url: duplicate key 'url' (first at line 3)"],
            id="duplicate-mapping-key",
        ),
        pytest.param(
            """
            feeds:
              - name: a
                url: https://example.org/a
                title: 2024-05-01
                yes: 1
            """,
            [
                "feeds.yaml:4:12: feeds[0].title: expected a string, got a date "
                "(quote it to make it a string)",
                "feeds.yaml:5:5: feeds[0]: keys must be strings, got a boolean (quote the key)",
            ],
            id="yaml-typed-scalars",
        ),
        pytest.param(
            "feeds: &x [*x]\n",
            ["feeds.yaml:1:8: feeds[0]: recursive YAML alias"],
            id="recursive-alias",
        ),
        pytest.param(
            "feeds: !!python/object:os.system x\n",
            [
                "feeds.yaml:1:8: feeds: could not determine a constructor for the tag "
                "'tag:yaml.org,2002:python/object:os.system'"
            ],
            id="unsafe-tag",
        ),
        pytest.param("", ["feeds.yaml: the configuration is empty"], id="empty"),
        pytest.param("# only a comment\n", ["feeds.yaml: the configuration is empty"], id="blank"),
        pytest.param(
            "- name: a\n",
            [
                "feeds.yaml:1:1: the top level must be a mapping of settings (database, defaults, "
                "scheduler, server, retention, fetch, feeds, rules, subscribers), got a list"
            ],
            id="top-level-list",
        ),
        pytest.param(
            'a: "x\x07"\n',
            ["feeds.yaml:1:6: invalid YAML: special characters are not allowed (character U+0007)"],
            id="control-character",
        ),
    ],
)
def test_error_messages(text: str, expected: list[str]) -> None:
    assert expected == errors(text)


def test_many_problems_reported_together_in_file_order() -> None:
    text = """
        fetch:
          timout: 30s
          allow_networks: [bogus]
        feeds:
          - name: a
            url: gopher://example.org/a
          - name: a
            url: https://example.org/b
            title: 7
        rules:
          - name: ai
            query: '"AI'
        subscribers:
          - name: desk
            rules: [ai, ct]
            email: {host: smtp.example.org, username: "${SMTP_USER}", password: x,
                    from: a@example.org, to: [b@example.org]}
    """
    with pytest.raises(ConfigError) as info:
        parse_config(yaml_text(text), file="feeds.yaml")

    assert [str(info.value)] == [
        "\n".join(
            [
                "feeds.yaml:2:3: fetch.timout: unknown key 'timout' (did you mean 'timeout'?)",
                "feeds.yaml:3:20: fetch.allow_networks[0]: not a network in CIDR form: "
                "'bogus' (e.g. 10.0.0.0/8 or 127.0.0.1/32)",
                "feeds.yaml:6:10: feeds[0].url: not an http(s) URL",
                "feeds.yaml:7:11: feeds[1].name: duplicate feed name 'a' (first at feeds[0], "
                "line 5)",
                "feeds.yaml:9:12: feeds[1].title: expected a string, got an integer",
                "feeds.yaml:12:12: rules[0].query: rule 'ai': column 1: unbalanced quote",
                "feeds.yaml:15:17: subscribers[0].rules[1]: unknown rule 'ct' (known: ai)",
                "feeds.yaml:16:47: subscribers[0].email.username: environment variable "
                "SMTP_USER is not set",
            ]
        )
    ]
    error = info.value
    assert error.file == "feeds.yaml"
    assert [(p.path, p.line, p.column) for p in error.problems][:2] == [
        ("fetch.timout", 2, 3),
        ("fetch.allow_networks[0]", 3, 20),
    ]


def test_error_without_file_name() -> None:
    with pytest.raises(ConfigError, match=r"^<config>:1:11: database: environment variable X"):
        parse_config("database: ${X}\n")


# --------------------------------------------------------------------------- ${VAR} interpolation


@pytest.mark.parametrize(
    ("value", "env", "expected"),
    [
        ("plain", {}, "plain"),
        ("${A}", {"A": "x"}, "x"),
        ("pre-${A}-post", {"A": "x"}, "pre-x-post"),
        ("${A}${B}", {"A": "1", "B": "2"}, "12"),
        ("${A:-fallback}", {}, "fallback"),
        ("${A:-fallback}", {"A": ""}, "fallback"),
        ("${A:-fallback}", {"A": "set"}, "set"),
        ("${A:-}", {}, None),  # an empty title is no title
        ("${A:-a b:c}", {}, "a b:c"),
        ("$$", {}, "$"),
        ("US$$5 and $${A}", {"A": "x"}, "US$5 and ${A}"),
        ("US$5", {}, "US$5"),
        ("${A}", {"A": "${B}"}, "${B}"),
    ],
)
def test_interpolation(value: str, env: dict[str, str], expected: str | None) -> None:
    text = f"feeds:\n  - name: a\n    url: https://example.org/a\n    title: {json.dumps(value)}\n"
    config = parse_config(text, env=env)

    assert expected == config.feeds[0].title


def test_interpolation_never_touches_keys() -> None:
    assert errors("${A}: 1\n", env={"A": "feeds"}) == [
        "feeds.yaml:1:1: [\"${A}\"]: unknown key '${A}' (expected one of: database, defaults, "
        "scheduler, server, retention, fetch, feeds, rules, subscribers)"
    ]


def test_interpolation_applies_to_list_items() -> None:
    text = "fetch:\n  allow_networks: ['${NET}']\n"
    config = parse_config(text, env={"NET": "192.168.0.0/16"})

    assert config.fetch.allow_networks == ("192.168.0.0/16",)


# --------------------------------------------------------------------------- allow_networks ports


def test_allow_networks_with_ports_are_normalised() -> None:
    text = """
        fetch:
          allow_networks:
            - 127.0.0.1/32
            - 127.0.0.1/32:8080
            - 127.0.0.1:8080
            - 127.1.2.3/8:8000-8099
            - " 127.0.0.0/8:9000-9000 "
            - "[::1/128]:8080"
            - "[::1]:8000-8099"
            - "[fd00::/8]"
            - ::1/128
    """
    config = parse_config(yaml_text(text))

    assert config.fetch.allow_networks == (
        "127.0.0.1/32",  # every port
        "127.0.0.1/32:8080",
        "127.0.0.1/32:8080",  # a bare address is a network of one
        "127.0.0.0/8:8000-8099",
        "127.0.0.0/8:9000",
        "[::1/128]:8080",
        "[::1/128]:8000-8099",
        "fd00::/8",
        "::1/128",
    )


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("127.0.0.1/32:0", "port 0 in '127.0.0.1/32:0' is out of range (1-65535)"),
        ("127.0.0.1/32:65536", "port 65536 in '127.0.0.1/32:65536' is out of range (1-65535)"),
        (
            "127.0.0.1/32:8000-70000",
            "port 70000 in '127.0.0.1/32:8000-70000' is out of range (1-65535)",
        ),
        (
            "127.0.0.1/32:8099-8000",
            "port range 8099-8000 in '127.0.0.1/32:8099-8000' is empty (first above last)",
        ),
        (
            "127.0.0.1/32:http",
            "not a port or port range after the network in '127.0.0.1/32:http': 'http'"
            " (e.g. 127.0.0.1/32:8080 or 127.0.0.1/32:8000-8099)",
        ),
        (
            "127.0.0.1/32:",
            "not a port or port range after the network in '127.0.0.1/32:': ''"
            " (e.g. 127.0.0.1/32:8080 or 127.0.0.1/32:8000-8099)",
        ),
        (
            "127.0.0.1/32:-80",
            "not a port or port range after the network in '127.0.0.1/32:-80': '-80'"
            " (e.g. 127.0.0.1/32:8080 or 127.0.0.1/32:8000-8099)",
        ),
        (
            "::1/128:8080",
            "'::1/128:8080': write an IPv6 network with a port in brackets, e.g. [::1/128]:8080",
        ),
        (
            "[::1/128:8080",
            "not a network in CIDR form: '[::1/128:8080' (e.g. 10.0.0.0/8 or 127.0.0.1/32)",
        ),
        (
            "[::1/128]8080",
            "not a network in CIDR form: '[::1/128]8080' (e.g. 10.0.0.0/8 or 127.0.0.1/32)",
        ),
        (
            "127.0.0.1/32:80:81",
            "not a network in CIDR form: '127.0.0.1/32:80:81' (e.g. 10.0.0.0/8 or 127.0.0.1/32)",
        ),
        (
            "localhost:8080",
            "not a network in CIDR form: 'localhost:8080' (e.g. 10.0.0.0/8 or 127.0.0.1/32)",
        ),
    ],
)
def test_allow_networks_bad_port_names_the_entry(entry: str, message: str) -> None:
    text = f"fetch:\n  allow_networks:\n    - 127.0.0.1/32\n    - {json.dumps(entry)}\n"
    assert errors(text) == [f"feeds.yaml:4:7: fetch.allow_networks[1]: {message}"]


# --------------------------------------------------------------------------- max_items


def test_max_items_defaults_to_ten_thousand_and_can_be_raised() -> None:
    assert parse_config("feeds: []\n").fetch.max_items == 10_000
    assert parse_config("fetch: {max_items: 50000}\n").fetch.max_items == 50_000
    assert parse_config("fetch: {max_items: 1}\n").fetch.max_items == 1


# --------------------------------------------------------------------------- database URL


@pytest.mark.parametrize(
    ("database", "override", "base_dir", "expected"),
    [
        (None, None, "/etc/fw", "sqlite:////etc/fw/feedwatch.db"),
        (None, None, None, "sqlite:///feedwatch.db"),
        ("sqlite:///feedwatch.db", None, "/etc/fw", "sqlite:////etc/fw/feedwatch.db"),
        ("sqlite:///data/fw.db", None, "/etc/fw", "sqlite:////etc/fw/data/fw.db"),
        ("sqlite:///../fw.db", None, "/etc/fw", "sqlite:////etc/fw.db"),
        ("sqlite:///./fw.db?timeout=5", None, "/etc/fw", "sqlite:////etc/fw/fw.db?timeout=5"),
        ("sqlite+pysqlite:///fw.db", None, "/etc/fw", "sqlite+pysqlite:////etc/fw/fw.db"),
        ("sqlite:////var/lib/fw.db", None, "/etc/fw", "sqlite:////var/lib/fw.db"),
        ("sqlite://", None, "/etc/fw", "sqlite://"),
        ("sqlite:///:memory:", None, "/etc/fw", "sqlite:///:memory:"),
        ("postgresql://u@db/fw", None, "/etc/fw", "postgresql://u@db/fw"),
        ("sqlite:///fw.db", "postgresql://u@db/fw", "/etc/fw", "postgresql://u@db/fw"),
        ("sqlite:///fw.db", "sqlite:///other.db", "/etc/fw", "sqlite:///other.db"),
        (None, "sqlite://", "/etc/fw", "sqlite://"),
    ],
)
def test_database_url(
    database: str | None, override: str | None, base_dir: str | None, expected: str
) -> None:
    text = f"database: '{database}'\n" if database else "feeds: []\n"
    config = parse_config(
        text,
        base_dir=Path(base_dir) if base_dir else None,
        database_override=override,
    )

    assert expected == config.database_url


def test_database_url_interpolates_password() -> None:
    config = parse_config(
        "database: postgresql+psycopg://fw:${PGPASSWORD}@db/fw\n", env={"PGPASSWORD": "s3"}
    )

    assert config.database_url == "postgresql+psycopg://fw:s3@db/fw"


def test_bad_database_override() -> None:
    assert errors("feeds: []\n", database_override="fw.db") == [
        "feeds.yaml: database override: not a database URL "
        "(e.g. sqlite:///feedwatch.db or postgresql://user@host/db)"
    ]


def test_load_config_resolves_database_beside_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_dir = tmp_path / "etc" / "x"
    config_dir.mkdir(parents=True)
    path = config_dir / "feeds.yaml"
    path.write_text("database: sqlite:///data/fw.db\nfeeds: []\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)

    by_relative_path = load_config("etc/x/feeds.yaml", env={})
    by_absolute_path = load_config(path, env={})

    expected = f"sqlite:///{config_dir}/data/fw.db"
    assert expected == by_relative_path.database_url
    assert expected == by_absolute_path.database_url
    assert by_relative_path.file == "etc/x/feeds.yaml"


def test_load_config_default_database_and_environment(tmp_path: Path) -> None:
    path = tmp_path / "feeds.yaml"
    path.write_text("feeds:\n  - {name: a, url: '${URL}'}\n", encoding="utf-8")

    config = load_config(path, env={"URL": "https://example.org/a"})

    assert config.database_url == f"sqlite:///{tmp_path}/feedwatch.db"
    assert config.feeds[0].url == "https://example.org/a"


def test_load_config_override_wins(tmp_path: Path) -> None:
    path = tmp_path / "feeds.yaml"
    path.write_text("database: sqlite:///a.db\n", encoding="utf-8")

    config = load_config(path, env={}, database_override="sqlite:///b.db")

    assert config.database_url == "sqlite:///b.db"


def test_load_config_unreadable(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match=r"nope\.yaml: cannot read the file: No such file"):
        load_config(missing)


def test_load_config_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("feeds: [] # café\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin1\.yaml: not UTF-8 text \(byte 15"):
        load_config(path)


def test_alias_bomb_is_stopped() -> None:
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for name, prev in zip("bcdef", "abcde", strict=True):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 10) + "]")

    assert errors("\n".join(lines) + "\n") == [
        "feeds.yaml: more than 100000 values (an alias expanding too far?)"
    ]


# --------------------------------------------------------------------------- the shipped feeds.yaml


def test_shipped_feeds_yaml_loads() -> None:
    config = load_config(SHIPPED, env={})

    assert len(config.feeds) >= 10
    assert all(feed.title for feed in config.feeds)
    assert {"un", "en", "ru", "fr"} <= {tag for feed in config.feeds for tag in feed.tags}
    assert config.database_url == f"sqlite:///{SHIPPED.parent}/feedwatch.db"
    assert config.fetch == FetchOptions()
    queries = {rule.name: rule.query for rule in config.rules}
    ai = next(q for q in queries.values() if '"artificial intelligence"' in q)
    assert '"искусственный интеллект"' in ai
    assert '"intelligence artificielle"' in ai
    ct = next(q for q in queries.values() if "counter-terrorism" in q)
    assert "терроризм" in ct
    assert "contre-terrorisme" in ct


def test_shipped_subscriber_examples_are_valid() -> None:
    """The commented-out subscribers in feeds.yaml validate once uncommented."""
    text = SHIPPED.read_text(encoding="utf-8")
    head, marker, tail = text.partition("# subscribers:\n")
    assert marker
    uncommented = "subscribers:\n" + "".join(
        line.removeprefix("#").removeprefix(" ") + "\n" for line in tail.splitlines()
    )
    env = {
        "SMTP_USER": "fw",
        "SMTP_PASSWORD": "pw",
        "WEBHOOK_SECRET": SECRET,
        "OPS_WEBHOOK_SECRET": SECRET,
    }

    config = parse_config(head + uncommented, env=env)

    assert [(s.name, s.channel) for s in config.subscribers] == [
        ("desk", "email"),
        ("ops", "webhook"),
        ("chat", "webhook"),
    ]
    ops = config.subscribers[1]
    assert (ops.rules, ops.notices) == ((), True)


def test_shipped_daemon_examples_are_valid_and_are_the_defaults() -> None:
    """The commented-out scheduler/server/retention sections of feeds.yaml validate,
    and say the defaults (apart from the optional token)."""
    lines = SHIPPED.read_text(encoding="utf-8").splitlines()
    start = lines.index("# scheduler:")
    sections = ("# scheduler:", "# server:", "# retention:")
    block: list[str] = []
    for line in lines[start:]:
        if not (line.startswith("#   ") or line in sections):
            break
        block.append(line.removeprefix("#").removeprefix(" "))
    text = "\n".join(block) + "\n"
    assert [line for line in block if not line.startswith(" ")] == [
        "scheduler:",
        "server:",
        "retention:",
    ]

    config = parse_config(text + "feeds: []\n", env={"FEEDWATCH_API_TOKEN": "t0ken"})

    assert config.scheduler == SchedulerOptions()
    assert config.retention == RetentionOptions()
    assert (config.server.host, config.server.port) == (ServerOptions().host, ServerOptions().port)
    assert config.server.token == "t0ken"


@pytest.mark.parametrize(
    "text",
    [
        (Path(__file__).parent.parent / "feeds.yaml").read_text(encoding="utf-8"),
        "feeds:\n  - name: a\n    url: https://example.org/a\n  - name: a\n    url: x\n",
        "feeds:\n  - {name: a, url: 'https://example.org/a'\n",  # unclosed flow mapping
        "base: &b {interval: 5m}\nfeeds:\n  - <<: *b\n    name: a\n    url: https://example.org/a\n",
        "feeds: []\nfeeds: []\n",
        "title: \x85x\nfeeds: []\n",  # NEL: PyYAML refuses it, libyaml would not report it alike
        "",
    ],
)
def test_libyaml_and_pure_loader_agree(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The libyaml fast path changes nothing: the same config or the same problems."""
    import feedwatch.config as config_module

    def outcome() -> object:
        try:
            return parse_config(text, file="feeds.yaml")
        except ConfigError as exc:
            return str(exc)

    assert config_module._FAST_LOADER is not None  # PyYAML's wheels ship libyaml
    fast = outcome()
    monkeypatch.setattr(config_module, "_FAST_LOADER", None)
    assert outcome() == fast

"""The ``scheduler:`` and ``server:`` sections of feeds.yaml.

Valid sections parse into ``Config.scheduler`` (:class:`SchedulerOptions`) and
``Config.server`` (:class:`ServerOptions`); invalid ones are reported as
``file:line:col: path: message``, like every other configuration problem.
"""

from __future__ import annotations

import textwrap

import pytest

from feedwatch._model import SchedulerOptions, ServerOptions
from feedwatch.config import DEFAULT_INTERVAL, parse_config
from feedwatch.exceptions import ConfigError

FEED = "feeds:\n  - {name: a, url: 'https://a.example.org/rss'}\n"


def yaml_text(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def errors(text: str) -> list[str]:
    """The rendered problems of an invalid configuration, one string each."""
    with pytest.raises(ConfigError) as info:
        parse_config(yaml_text(text), file="feeds.yaml")
    return str(info.value).splitlines()


# --------------------------------------------------------------------------- valid


def test_defaults_without_sections() -> None:
    config = parse_config(FEED)

    assert config.scheduler == SchedulerOptions()
    assert config.server == ServerOptions(host="127.0.0.1", port=8080, token=None)
    assert config.default_interval == DEFAULT_INTERVAL


def test_full_sections() -> None:
    config = parse_config(
        yaml_text(
            """
            scheduler:
              tick: 2s
              interval: 30m
              min_interval: 5m
              max_interval: 12h
              jitter: 10%
              adaptive: true
              max_backoff: 2h
              disable_after: 3d
              parse_timeout: 10s
              dispatch: 15s
            server:
              listen: 0.0.0.0:9090
              token: s3cret
            feeds:
              - {name: a, url: "https://a.example.org/rss"}
              - {name: b, url: "https://b.example.org/rss", interval: 1h}
            """
        )
    )

    assert config.scheduler == SchedulerOptions(
        tick=2.0,
        min_interval=300.0,
        max_interval=43200.0,
        jitter=0.1,
        adaptive=True,
        max_backoff=7200.0,
        disable_after=3 * 86400.0,
        parse_timeout=10.0,
        dispatch=15.0,
    )
    assert config.server == ServerOptions(host="0.0.0.0", port=9090, token="s3cret")
    assert config.default_interval == 1800.0
    assert [f.interval for f in config.feeds] == [1800.0, 3600.0]


def test_token_is_not_shown() -> None:
    config = parse_config("server:\n  token: s3cret\n")

    assert config.server.token == "s3cret"
    assert "s3cret" not in repr(config.server)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("10%", 0.1, id="percent"),
        pytest.param("'10 %'", 0.1, id="percent-with-space"),
        pytest.param("0%", 0.0, id="zero-percent"),
        pytest.param("100%", 1.0, id="hundred-percent"),
        pytest.param("0.25", 0.25, id="fraction"),
        pytest.param("'0.25'", 0.25, id="fraction-as-string"),
        pytest.param("0", 0.0, id="zero"),
        pytest.param("1", 1.0, id="one"),
    ],
)
def test_jitter(value: str, expected: float) -> None:
    config = parse_config(f"scheduler:\n  jitter: {value}\n")

    assert config.scheduler.jitter == pytest.approx(expected)


def test_ten_percent_is_a_tenth() -> None:
    assert parse_config("scheduler: {jitter: 10%}\n").scheduler.jitter == 0.1


def test_sub_second_durations_when_min_interval_allows_them() -> None:
    config = parse_config(
        yaml_text(
            """
            scheduler:
              tick: 100ms
              min_interval: 200ms
              interval: 500ms
            feeds:
              - {name: a, url: "https://a.example.org/rss"}
              - {name: b, url: "https://b.example.org/rss", interval: 250ms}
            """
        )
    )

    assert (config.scheduler.tick, config.scheduler.min_interval) == (0.1, 0.2)
    assert config.default_interval == 0.5
    assert [f.interval for f in config.feeds] == [0.5, 0.25]


def test_defaults_interval_alone_is_the_default() -> None:
    config = parse_config("defaults: {interval: 20m}\n" + FEED)

    assert config.default_interval == 1200.0
    assert config.feeds[0].interval == 1200.0


def test_tick_exactly_half_of_min_interval() -> None:
    assert parse_config("scheduler: {tick: 30s, min_interval: 1m}\n").scheduler.tick == 30.0


def test_interval_at_the_bounds() -> None:
    config = parse_config(
        yaml_text(
            """
            scheduler: {min_interval: 10m, max_interval: 2h}
            feeds:
              - {name: a, url: "https://a.example.org/rss", interval: 10m}
              - {name: b, url: "https://b.example.org/rss", interval: 2h}
            """
        )
    )

    assert [f.interval for f in config.feeds] == [600.0, 7200.0]


@pytest.mark.parametrize(
    ("listen", "host", "port"),
    [
        pytest.param("127.0.0.1:8080", "127.0.0.1", 8080, id="ipv4"),
        pytest.param("0.0.0.0:80", "0.0.0.0", 80, id="any-ipv4"),
        pytest.param("localhost:65535", "localhost", 65535, id="name-highest-port"),
        pytest.param("'[::1]:8080'", "::1", 8080, id="ipv6-loopback"),
        pytest.param("'[::]:9000'", "::", 9000, id="ipv6-any"),
        pytest.param("'[2001:db8::1]:443'", "2001:db8::1", 443, id="ipv6"),
        pytest.param("'[::ffff:127.0.0.1]:8080'", "::ffff:127.0.0.1", 8080, id="ipv4-mapped"),
        pytest.param("' 127.0.0.1:8080 '", "127.0.0.1", 8080, id="spaces-stripped"),
    ],
)
def test_listen(listen: str, host: str, port: int) -> None:
    server = parse_config(f"server:\n  listen: {listen}\n").server

    assert (server.host, server.port) == (host, port)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            """
            scheduler:
              tick: 40s
              min_interval: 1m
            """,
            [
                "feeds.yaml:2:3: scheduler: tick (40s) must be at most half of min_interval "
                "(1m), or feeds are polled late"
            ],
            id="tick-over-half-of-min-interval",
        ),
        pytest.param(
            """
            scheduler:
              tick: 101ms
              min_interval: 200ms
            """,
            [
                "feeds.yaml:2:3: scheduler: tick (101ms) must be at most half of min_interval "
                "(200ms), or feeds are polled late"
            ],
            id="sub-second-tick-over-half",
        ),
        pytest.param(
            """
            scheduler:
              min_interval: 2h
              max_interval: 1h
            """,
            ["feeds.yaml:2:3: scheduler: min_interval (2h) exceeds max_interval (1h)"],
            id="min-over-max",
        ),
        pytest.param(
            """
            scheduler:
              min_interval: 10m
            feeds:
              - name: a
                url: https://a.example.org/rss
                interval: 5m
            """,
            [
                "feeds.yaml:6:15: feeds[0].interval: interval 5m is shorter than the minimum "
                "10m (scheduler.min_interval; a bare number means seconds)"
            ],
            id="feed-interval-below-min",
        ),
        pytest.param(
            """
            feeds:
              - {name: a, url: "https://a.example.org/rss", interval: 30}
            """,
            [
                "feeds.yaml:2:59: feeds[0].interval: interval 30s is shorter than the minimum "
                "1m (scheduler.min_interval; a bare number means seconds)"
            ],
            id="feed-interval-below-default-min",
        ),
        pytest.param(
            """
            scheduler:
              max_interval: 1h
            feeds:
              - name: a
                url: https://a.example.org/rss
                interval: 2h
            """,
            [
                "feeds.yaml:6:15: feeds[0].interval: interval 2h is longer than the maximum "
                "1h (scheduler.max_interval)"
            ],
            id="feed-interval-above-max",
        ),
        pytest.param(
            """
            scheduler:
              min_interval: 1h
              interval: 30m
            """,
            [
                "feeds.yaml:3:13: scheduler.interval: interval 30m is shorter than the minimum "
                "1h (scheduler.min_interval; a bare number means seconds)"
            ],
            id="scheduler-interval-below-min",
        ),
        pytest.param(
            """
            scheduler:
              max_interval: 1h
            defaults:
              interval: 90m
            """,
            [
                "feeds.yaml:4:13: defaults.interval: interval 1h30m is longer than the maximum "
                "1h (scheduler.max_interval)"
            ],
            id="defaults-interval-above-max",
        ),
        pytest.param(
            """
            scheduler:
              interval: 10m
            defaults:
              interval: 20m
            """,
            [
                "feeds.yaml:2:3: scheduler.interval: the default interval is set twice: keep "
                "scheduler.interval or defaults.interval"
            ],
            id="interval-set-twice",
        ),
        pytest.param(
            """
            scheduler:
              jitter: 150%
            """,
            ["feeds.yaml:2:11: scheduler.jitter: must be between 0% and 100%"],
            id="jitter-150pct",
        ),
        pytest.param(
            """
            scheduler:
              jitter: 1.5
            """,
            ["feeds.yaml:2:11: scheduler.jitter: must be between 0% and 100%"],
            id="jitter-1.5",
        ),
        pytest.param(
            """
            scheduler:
              jitter: -5%
            """,
            ["feeds.yaml:2:11: scheduler.jitter: must be between 0% and 100%"],
            id="jitter-negative",
        ),
        pytest.param(
            """
            scheduler:
              tick: 0s
            """,
            ["feeds.yaml:2:9: scheduler.tick: must be more than 0s"],
            id="tick-zero",
        ),
        pytest.param(
            """
            scheduler:
              tick: soon
            """,
            [
                "feeds.yaml:2:9: scheduler.tick: invalid duration 'soon': expected a number "
                "with a unit (ms, s, m, h, d, w), e.g. 30s, 15m or 1h30m"
            ],
            id="tick-not-a-duration",
        ),
        pytest.param(
            """
            scheduler:
              tik: 1s
            """,
            ["feeds.yaml:2:3: scheduler.tik: unknown key 'tik' (did you mean 'tick'?)"],
            id="unknown-key",
        ),
        pytest.param(
            """
            server:
              listn: 127.0.0.1:8080
            """,
            ["feeds.yaml:2:3: server.listn: unknown key 'listn' (did you mean 'listen'?)"],
            id="server-unknown-key",
        ),
    ],
)
def test_errors(text: str, expected: list[str]) -> None:
    assert errors(text) == expected


BAD_LISTEN = "expected HOST:PORT such as 127.0.0.1:8080 or [::1]:8080, got"


@pytest.mark.parametrize(
    ("listen", "message"),
    [
        pytest.param("localhost", f"{BAD_LISTEN} 'localhost'", id="no-port"),
        pytest.param("'127.0.0.1:'", f"{BAD_LISTEN} '127.0.0.1:'", id="empty-port"),
        pytest.param("':8080'", f"{BAD_LISTEN} ':8080'", id="no-host"),
        pytest.param("'127.0.0.1:70000'", f"{BAD_LISTEN} '127.0.0.1:70000'", id="port-too-big"),
        pytest.param("'127.0.0.1:123456'", f"{BAD_LISTEN} '127.0.0.1:123456'", id="port-6-digits"),
        pytest.param("'127.0.0.1:http'", f"{BAD_LISTEN} '127.0.0.1:http'", id="port-name"),
        pytest.param("'::1:8080'", f"{BAD_LISTEN} '::1:8080'", id="ipv6-without-brackets"),
        pytest.param("'[::1]'", f"{BAD_LISTEN} '[::1]'", id="ipv6-without-port"),
        pytest.param(
            "'[example.org]:80'",
            f"{BAD_LISTEN} '[example.org]:80'",
            id="name-in-brackets",
        ),
        pytest.param("'http://127.0.0.1:8080'", f"{BAD_LISTEN} 'http://127.0.0.1:8080'", id="url"),
        pytest.param("'127.0.0.1 :8080'", f"{BAD_LISTEN} '127.0.0.1 :8080'", id="inner-space"),
        pytest.param("''", f"{BAD_LISTEN} ''", id="empty"),
        pytest.param("8080", "expected a string, got an integer", id="bare-port"),
        pytest.param(
            "'[::1::2]:8080'",
            f"{BAD_LISTEN} '[::1::2]:8080'",
            id="invalid-ipv6-literal",
        ),
    ],
)
def test_bad_listen(listen: str, message: str) -> None:
    assert errors(f"server:\n  listen: {listen}\n") == [
        f"feeds.yaml:2:11: server.listen: {message}"
    ]


@pytest.mark.parametrize(
    "scheduler",
    [
        pytest.param("{min_interval: 30m}", id="implicit-default-below-min"),
        pytest.param("{max_interval: 10m}", id="implicit-default-above-max"),
    ],
)
def test_implicit_default_interval_must_fit_the_bounds(scheduler: str) -> None:
    problems = errors(f"scheduler: {scheduler}\n" + FEED)

    assert any("scheduler.m" in line and "_interval" in line for line in problems), problems


def test_many_scheduler_problems_at_once() -> None:
    problems = errors(
        """
        scheduler:
          jitter: 150%
          dispatch: never
        server:
          listen: nowhere
        """
    )

    assert problems == [
        "feeds.yaml:2:11: scheduler.jitter: must be between 0% and 100%",
        "feeds.yaml:3:13: scheduler.dispatch: invalid duration 'never': expected a number "
        "with a unit (ms, s, m, h, d, w), e.g. 30s, 15m or 1h30m",
        f"feeds.yaml:5:11: server.listen: {BAD_LISTEN} 'nowhere'",
    ]

"""``feedwatch`` end to end: the real CLI, a real HTTP server on 127.0.0.1, real databases.

Most runs go through click's CliRunner in this process; a few run the installed
``feedwatch`` script in a subprocess (exit statuses, stderr, working directory).
Each test writes its configuration to tmp_path; only 127.0.0.1 is allowed
(``fetch.allow_networks``) and only loopback servers are ever contacted. The
poll-twice and changed-document scenarios run on SQLite and PostgreSQL
(``db_url``); the rest on SQLite. Nothing is timed: where items need ages (for
``--since``), their dates are days away from now.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from fakes import Entry, rss
from loopback import Exchange, LoopbackServer, send

from feedwatch.cli import main

DATA = Path(__file__).parent / "data" / "parse"
BASIC = (DATA / "rss20_basic.xml").read_bytes()
#: Items in BASIC (guids un-news-1001 and .../1002).
BASIC_ITEMS = BASIC.count(b"<item>")
#: Alerts BASIC raises with RULES: "climate" matches the first item, "sudan" the second.
BASIC_ALERTS = 2
FEEDWATCH = Path(sys.executable).with_name("feedwatch")
ENV_VARS = ("FEEDWATCH_CONFIG", "FEEDWATCH_DATABASE_URL")

RULES = {"climate": '"climate resolution"', "sudan": "Sudan"}

POLL_KEYS = {"started_at", "elapsed", "exit_status", "totals", "deliveries", "feeds"}
TOTALS_KEYS = {"feeds", "ok", "not_modified", "failed", "new", "updated", "alerts"}
FEED_RESULT_KEYS = {
    "feed",
    "url",
    "status",
    "new",
    "updated",
    "alerts",
    "seen",
    "elapsed",
    "http_status",
    "error_kind",
    "error",
    "warnings",
}


# --------------------------------------------------------------------------- helpers


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No FEEDWATCH_* variable from the outside leaks into a run."""
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


class FeedSite:
    """Feed documents on a loopback server, each with an ETag; a matching
    If-None-Match gets a 304 (with the ETag), anything else the document."""

    def __init__(self, server: LoopbackServer) -> None:
        self.server = server
        self._docs: dict[str, tuple[bytes, str]] = {}

    def publish(self, path: str, body: bytes, etag: str) -> str:
        """Serve ``body`` at ``path`` from now on; return its URL."""
        self._docs[path] = (body, etag)
        self.server.route(path, self._serve)
        return self.url(path)

    def url(self, path: str) -> str:
        return self.server.url(path)

    def requests_to(self, path: str) -> list[dict[str, str]]:
        return [r.headers for r in self.server.requests_to(path)]

    def paths_requested(self) -> list[str]:
        return [r.target for r in self.server.requests]

    def _serve(self, exchange: Exchange) -> None:
        body, etag = self._docs[exchange.path.split("?", 1)[0]]
        if exchange.headers.get("If-None-Match") == etag:
            send(exchange, 304, headers={"ETag": etag})
        else:
            headers = {"ETag": etag, "Content-Type": "application/rss+xml; charset=utf-8"}
            send(exchange, 200, body, headers)


@pytest.fixture
def site() -> Iterator[FeedSite]:
    with LoopbackServer() as server:
        yield FeedSite(server)


def write_config(
    path: Path,
    feeds: Mapping[str, str],
    *,
    rules: Mapping[str, str] = RULES,
    database: str | None = None,
) -> Path:
    """Write a feeds.yaml allowing 127.0.0.1 only; ``feeds`` and ``rules`` map name -> URL/query."""
    lines = []
    if database is not None:
        lines.append(f"database: {json.dumps(database)}")
    lines += [
        "fetch:",
        "  allow_networks: [127.0.0.1/32]",
        "  timeout: 10s",
        "  connect_timeout: 5s",
        "feeds:",
    ]
    lines += [f"  - {{name: {name}, url: {json.dumps(url)}}}" for name, url in feeds.items()]
    if rules:
        lines.append("rules:")
        lines += [f"  - {{name: {name}, query: {json.dumps(q)}}}" for name, q in rules.items()]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@dataclass
class Cli:
    """Runs ``feedwatch --config CONFIG [--database DB] ARGS...`` in-process."""

    config: Path | None
    database: str | None = None
    env: dict[str, str] = field(default_factory=dict)

    def __call__(self, *args: str, env: Mapping[str, str] | None = None) -> Result:
        opts: list[str] = []
        if self.config is not None:
            opts += ["--config", str(self.config)]
        if self.database is not None:
            opts += ["--database", self.database]
        return CliRunner().invoke(
            main, [*opts, *args], env={**self.env, **(env or {})}, catch_exceptions=False
        )

    def json(self, *args: str, status: int = 0) -> Any:
        """Run with ``--json``, check the exit status, return the parsed stdout."""
        result = self(*args, "--json")
        assert result.exit_code == status, result.output
        return json.loads(result.stdout)


def by_feed(poll: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["feed"]: f for f in poll["feeds"]}


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_script(*args: str, cwd: Path, env: Mapping[str, str] | None = None) -> Any:
    """Run the installed ``feedwatch`` script; no FEEDWATCH_* variable but those given."""
    base = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    return subprocess.run(
        [str(FEEDWATCH), *args],
        cwd=cwd,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def ago(**delta: float) -> datetime:
    return datetime.now(UTC) - timedelta(**delta)


# --------------------------------------------------------------------------- poll


def test_poll_json_prints_one_object_with_results_and_totals(
    site: FeedSite, tmp_path: Path
) -> None:
    council = rss(Entry("c1", "Council meets on Sudan"), Entry("c2", "Council adjourns"))
    cli = Cli(
        write_config(
            tmp_path / "feeds.yaml",
            {
                "un-climate": site.publish("/climate.xml", BASIC, '"v1"'),
                "council": site.publish("/council.xml", council, '"c1"'),
            },
        )
    )

    result = cli("poll", "--json")

    assert result.exit_code == 0, result.output
    poll = json.loads(result.stdout)  # exactly one JSON document on stdout
    assert set(poll) == POLL_KEYS
    assert poll["exit_status"] == 0
    assert datetime.fromisoformat(poll["started_at"].replace("Z", "+00:00")).tzinfo is not None
    assert poll["elapsed"] >= 0
    assert poll["totals"] == {
        "feeds": 2,
        "ok": 2,
        "not_modified": 0,
        "failed": 0,
        "new": BASIC_ITEMS + 2,
        "updated": 0,
        "alerts": BASIC_ALERTS + 1,
    }
    assert [f["feed"] for f in poll["feeds"]] == ["council", "un-climate"]
    climate = by_feed(poll)["un-climate"]
    assert set(climate) == FEED_RESULT_KEYS
    assert climate["url"] == site.url("/climate.xml")
    assert (climate["status"], climate["http_status"]) == ("ok", 200)
    assert (climate["new"], climate["seen"], climate["updated"]) == (BASIC_ITEMS, BASIC_ITEMS, 0)
    assert (climate["alerts"], climate["error_kind"], climate["error"]) == (
        BASIC_ALERTS,
        None,
        None,
    )
    assert (by_feed(poll)["council"]["new"], by_feed(poll)["council"]["alerts"]) == (2, 1)

    alerts = cli.json("alerts")
    assert sorted((a["rule"], a["feed"], a["item_title"]) for a in alerts) == [
        ("climate", "un-climate", "General Assembly adopts climate resolution"),
        ("sudan", "council", "Council meets on Sudan"),
        ("sudan", "un-climate", "Security Council meets on Sudan"),
    ]
    assert len(cli.json("items")) == BASIC_ITEMS + 2


def test_poll_twice_second_run_sends_if_none_match_and_stores_nothing(
    site: FeedSite, tmp_path: Path, db_url: str
) -> None:
    cli = Cli(
        write_config(
            tmp_path / "conf" / "feeds.yaml", {"un": site.publish("/un.xml", BASIC, '"v1"')}
        ),
        database=db_url,
    )

    first = cli.json("poll")
    items = cli.json("items")
    alerts = cli.json("alerts")
    second = cli.json("poll")

    assert by_feed(first)["un"]["new"] == BASIC_ITEMS
    assert len(items) == BASIC_ITEMS
    assert len(alerts) == BASIC_ALERTS
    (sent_first, sent_second) = site.requests_to("/un.xml")
    assert "if-none-match" not in sent_first
    assert sent_second["if-none-match"] == '"v1"'  # the ETag of the first response
    un = by_feed(second)["un"]
    assert (un["status"], un["http_status"], un["new"], un["updated"], un["alerts"]) == (
        "not_modified",
        304,
        0,
        0,
        0,
    )
    assert second["totals"]["not_modified"] == 1
    assert second["totals"]["new"] == 0
    assert cli.json("items") == items
    assert cli.json("alerts") == alerts
    (status,) = cli.json("feeds")
    assert (status["status"], status["item_count"], status["consecutive_errors"]) == (
        "not_modified",
        BASIC_ITEMS,
        0,
    )


def test_changed_document_gives_new_and_updated_and_never_duplicates_alerts(
    site: FeedSite, tmp_path: Path, db_url: str
) -> None:
    first = Entry("n1", "Climate resolution adopted", "The assembly voted.")
    other = Entry("n2", "Budget talks", "Nothing to see.")
    cli = Cli(
        write_config(
            tmp_path / "conf" / "feeds.yaml",
            {"news": site.publish("/news.xml", rss(first, other), '"v1"')},
        ),
        database=db_url,
    )
    assert by_feed(cli.json("poll"))["news"]["new"] == 2
    assert [a["item_title"] for a in cli.json("alerts")] == ["Climate resolution adopted"]

    edited = Entry("n1", first.title, "The assembly voted, 120 to 3.")
    added = Entry("n3", "New climate resolution tabled", "Another one.")
    site.publish("/news.xml", rss(edited, other, added), '"v2"')
    third = by_feed(cli.json("poll"))["news"]

    assert (third["status"], third["new"], third["updated"], third["alerts"]) == ("ok", 1, 1, 1)
    alerts = cli.json("alerts")
    assert sorted(a["item_title"] for a in alerts) == [
        "Climate resolution adopted",
        "New climate resolution tabled",
    ]
    items = {i["entry_key"]: i for i in cli.json("items")}
    assert sorted(items) == ["n1", "n2", "n3"]
    assert items["n1"]["content_text"] == edited.text

    # Re-running: a 304, then the same content under a new ETag (a 200).
    assert by_feed(cli.json("poll"))["news"]["status"] == "not_modified"
    site.publish("/news.xml", rss(edited, other, added), '"v3"')
    again = by_feed(cli.json("poll"))["news"]
    assert (again["status"], again["new"], again["updated"], again["alerts"]) == ("ok", 0, 0, 0)
    assert len(cli.json("alerts")) == len(alerts) == 2
    assert len(cli.json("items")) == 3


def test_one_failing_feed_does_not_stop_the_others(site: FeedSite, tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{closed_port()}/feed.xml"
    site.server.reply(
        "/page.html", body=b"<p>just a page</p>", headers={"Content-Type": "text/plain"}
    )
    cli = Cli(
        write_config(
            tmp_path / "feeds.yaml",
            {
                "good": site.publish("/good.xml", BASIC, '"g"'),
                "missing": site.url("/missing.xml"),
                "dead": dead,
                "page": site.url("/page.html"),
            },
        )
    )

    result = cli("poll", "--json")

    assert result.exit_code == 1, result.output
    poll = json.loads(result.stdout)
    assert poll["exit_status"] == 1
    assert (poll["totals"]["ok"], poll["totals"]["failed"]) == (1, 3)
    feeds = by_feed(poll)
    assert (feeds["good"]["status"], feeds["good"]["new"]) == ("ok", BASIC_ITEMS)
    failed = {n: (f["status"], f["error_kind"], f["http_status"]) for n, f in feeds.items()}
    assert failed == {
        "good": ("ok", None, 200),
        "missing": ("error", "http_status", 404),
        "dead": ("error", "connection", None),
        "page": ("error", "parse", 200),
    }
    assert "404" in feeds["missing"]["error"]
    assert feeds["dead"]["error"]
    assert feeds["page"]["error"]
    assert len(cli.json("items", "--feed", "good")) == BASIC_ITEMS

    stored = {f["name"]: f for f in cli.json("feeds")}
    assert (stored["good"]["consecutive_errors"], stored["good"]["last_error"]) == (0, None)
    for name in ("missing", "dead", "page"):
        assert stored[name]["status"] == "error"
        assert stored[name]["last_error_kind"] == feeds[name]["error_kind"]
        assert stored[name]["last_error"] == feeds[name]["error"]
        assert stored[name]["consecutive_errors"] == 1

    # Again, with -v: the log names each failed feed.
    verbose = cli("-v", "poll")
    assert verbose.exit_code == 1
    for name in ("missing", "dead", "page"):
        assert f"feed={name}" in verbose.stderr
    stored = {f["name"]: f for f in cli.json("feeds")}
    assert [stored[n]["consecutive_errors"] for n in ("good", "missing", "dead", "page")] == [
        0,
        2,
        2,
        2,
    ]


def test_retry_after_from_the_server_delays_the_next_poll(site: FeedSite, tmp_path: Path) -> None:
    site.server.reply("/busy.xml", 429, b"slow down", {"Retry-After": "7200"})
    cli = Cli(
        write_config(
            tmp_path / "feeds.yaml",
            {"busy": site.url("/busy.xml"), "calm": site.publish("/calm.xml", BASIC, '"c"')},
        )
    )

    # Rate limiting is not an error: the poll succeeds, the feed waits as told.
    busy = by_feed(cli.json("poll", status=0))["busy"]

    assert (busy["status"], busy["error_kind"], busy["http_status"]) == (
        "rate_limited",
        "http_status",
        429,
    )
    stored = {f["name"]: f for f in cli.json("feeds")}

    def wait(name: str) -> float:
        """Seconds from the poll to the next one, as stored (no wall clock involved)."""
        feed = stored[name]
        parse = datetime.fromisoformat
        return (parse(feed["next_poll_at"]) - parse(feed["last_poll_at"])).total_seconds()

    # Retry-After, plus at most 10% jitter; the healthy feed waits its 15m interval,
    # stretched to the 30 minutes its <ttl> asks for.
    assert 7200 <= wait("busy") <= 7200 * 1.1
    assert 1800 <= wait("calm") <= 1800 * 1.1


@pytest.mark.parametrize(
    "since",
    [
        "1000000d",
        "99999999999d",
        "0001-01-01T00:00:00+14:00",
    ],
)
@pytest.mark.parametrize("command", ["items", "alerts"])
def test_out_of_range_since_is_a_usage_error(tmp_path: Path, command: str, since: str) -> None:
    config = write_config(tmp_path / "feeds.yaml", {"alpha": "http://127.0.0.1:9/a.xml"})

    result = CliRunner().invoke(main, ["--config", str(config), command, "--since", since])

    assert result.exit_code == 2, (result.output, result.exception)
    assert "--since" in result.stderr


def test_feed_option_polls_only_that_feed(site: FeedSite, tmp_path: Path) -> None:
    cli = Cli(
        write_config(
            tmp_path / "feeds.yaml",
            {
                "alpha": site.publish("/alpha.xml", BASIC, '"a"'),
                "beta": site.publish("/beta.xml", rss(Entry("b1", "Beta")), '"b"'),
            },
        )
    )

    poll = cli.json("poll", "--feed", "beta")

    assert [f["feed"] for f in poll["feeds"]] == ["beta"]
    assert poll["totals"]["feeds"] == 1
    assert site.paths_requested() == ["/beta.xml"]
    assert [i["feed"] for i in cli.json("items")] == ["beta"]

    unknown = cli("poll", "--feed", "no-such-feed", "--json")

    assert unknown.exit_code == 2
    assert "no-such-feed" in unknown.stderr
    assert unknown.stdout == ""
    assert site.paths_requested() == ["/beta.xml"]  # nothing fetched


# --------------------------------------------------------------------------- check


def test_check_accepts_a_good_config(site: FeedSite, tmp_path: Path) -> None:
    config = write_config(tmp_path / "feeds.yaml", {"alpha": site.url("/a.xml")})

    result = Cli(config)("check")

    assert result.exit_code == 0, result.output
    assert f"{config}: OK: 1 feeds (1 enabled), 2 rules" in result.stdout
    assert site.paths_requested() == []
    assert not (tmp_path / "feedwatch.db").exists()  # check opens no database


def test_check_never_prints_the_database_password(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "feeds.yaml",
        {"alpha": "http://127.0.0.1:9/a.xml"},
        database="postgresql://fw:s3cret@127.0.0.1:1/fw",
    )

    result = Cli(config)("check")

    assert result.exit_code == 0, result.output
    assert "database postgresql://fw:***@127.0.0.1:1/fw" in result.stdout
    assert "s3cret" not in result.output


def test_check_reports_a_broken_config_with_file_line_and_column(tmp_path: Path) -> None:
    config = tmp_path / "feeds.yaml"
    config.write_text(
        "fetch:\n"
        "  allow_networks: [127.0.0.1/32]\n"
        "feeds:\n"
        "  - name: alpha\n"
        "    url: ftp://127.0.0.1/feed.xml\n",
        encoding="utf-8",
    )

    result = run_script("check", "--config", str(config), cwd=tmp_path)

    assert result.returncode == 2, result.stderr
    assert f"{config}:5:10: feeds[0].url: not an http(s) URL" in result.stderr
    assert result.stdout == ""


def test_check_with_a_missing_config_file(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "feeds.yaml"

    result = Cli(missing)("check")
    bare = run_script("check", cwd=tmp_path)  # default ./feeds.yaml, absent here

    assert result.exit_code == 2
    assert f"configuration file not found: {missing}" in result.stderr
    assert bare.returncode == 2
    assert "feeds.yaml" in bare.stderr


# --------------------------------------------------------------------------- config and database


def test_config_from_flag_or_env_before_or_after_the_command(
    site: FeedSite, tmp_path: Path
) -> None:
    from_env = write_config(tmp_path / "env" / "feeds.yaml", {"env-feed": site.url("/e.xml")})
    from_flag = write_config(
        tmp_path / "flag" / "feeds.yaml",
        {"flag-feed": site.publish("/f.xml", rss(Entry("f1", "F")), '"f"')},
    )
    env = {"FEEDWATCH_CONFIG": str(from_env)}
    no_flag = Cli(None, env=env)

    assert f"{from_env}: OK" in no_flag("check").stdout
    before = no_flag("--config", str(from_flag), "check")
    after = no_flag("check", "--config", str(from_flag))
    assert f"{from_flag}: OK" in before.stdout
    assert f"{from_flag}: OK" in after.stdout

    polled_before = no_flag("--config", str(from_flag), "poll", "--json")
    polled_after = no_flag("poll", "--json", "--config", str(from_flag))
    for result in (polled_before, polled_after):
        assert result.exit_code == 0, result.output
        assert [f["feed"] for f in json.loads(result.stdout)["feeds"]] == ["flag-feed"]
    assert "/e.xml" not in site.paths_requested()


def test_database_url_precedence_flag_then_env_then_file(site: FeedSite, tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    config = write_config(
        conf / "feeds.yaml",
        {"alpha": site.publish("/a.xml", BASIC, '"a"')},
        database="sqlite:///from-file.db",
    )
    env_db = tmp_path / "env.db"
    flag_db = tmp_path / "flag.db"
    env = {"FEEDWATCH_DATABASE_URL": f"sqlite:///{env_db}"}
    cli = Cli(config)

    assert f"database sqlite:///{conf / 'from-file.db'}" in cli("check").stdout
    assert f"database sqlite:///{env_db}" in cli("check", env=env).stdout
    for args in (
        ("--database", f"sqlite:///{flag_db}", "check"),
        ("check", "--database", f"sqlite:///{flag_db}"),
    ):
        assert f"database sqlite:///{flag_db}" in cli(*args, env=env).stdout

    # And it is really the database used: flag (before or after the command) beats env.
    assert cli("--database", f"sqlite:///{flag_db}", "poll", env=env).exit_code == 0
    assert flag_db.exists()
    assert not env_db.exists()
    assert not (conf / "from-file.db").exists()
    assert cli("poll", "--database", f"sqlite:///{flag_db}", env=env).exit_code == 0
    assert not env_db.exists()
    result = cli("items", "--json", "--database", f"sqlite:///{flag_db}")
    assert len(json.loads(result.stdout)) == BASIC_ITEMS

    # Env beats the file.
    assert cli("poll", env=env).exit_code == 0
    assert env_db.exists()
    assert not (conf / "from-file.db").exists()
    # The file's relative path is beside the file.
    assert cli("poll").exit_code == 0
    assert (conf / "from-file.db").exists()


def test_default_database_is_beside_the_config(site: FeedSite, tmp_path: Path) -> None:
    write_config(tmp_path / "conf" / "feeds.yaml", {"alpha": site.publish("/a.xml", BASIC, '"a"')})
    elsewhere = tmp_path / "work"
    elsewhere.mkdir()

    result = run_script("--config", "../conf/feeds.yaml", "poll", "--json", cwd=elsewhere)

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["totals"]["new"] == BASIC_ITEMS
    assert (tmp_path / "conf" / "feedwatch.db").is_file()
    assert list(elsewhere.iterdir()) == []


# --------------------------------------------------------------------------- items and alerts


def test_items_and_alerts_filters(site: FeedSite, tmp_path: Path) -> None:
    alpha = rss(
        Entry("a-new", "Climate resolution drafted", published=ago(hours=1)),
        Entry("a-old", "Climate resolution archive", published=ago(days=5)),
    )
    beta = rss(
        Entry("b-new", "Sudan talks", published=ago(hours=2)),
        Entry("b-old", "Sudan report", published=ago(days=10)),
    )
    cli = Cli(
        write_config(
            tmp_path / "feeds.yaml",
            {
                "alpha": site.publish("/alpha.xml", alpha, '"a"'),
                "beta": site.publish("/beta.xml", beta, '"b"'),
            },
        )
    )
    assert cli.json("poll")["totals"]["alerts"] == 4

    everything = cli.json("items")
    assert [i["entry_key"] for i in everything] == ["a-new", "b-new", "a-old", "b-old"]
    assert all(
        {"id", "feed", "title", "url", "sort_at", "first_seen"} <= set(i) for i in everything
    )
    assert [i["entry_key"] for i in cli.json("items", "--since", "2d")] == ["a-new", "b-new"]
    assert [i["entry_key"] for i in cli.json("items", "--feed", "beta")] == ["b-new", "b-old"]
    assert [i["entry_key"] for i in cli.json("items", "--limit", "1")] == ["a-new"]
    assert [
        i["entry_key"]
        for i in cli.json("items", "--feed", "alpha", "--since", "2d", "--limit", "5")
    ] == ["a-new"]
    assert cli.json("items", "--feed", "no-such-feed") == []

    alerts = cli.json("alerts", "--rule", "climate", "--since", "1d")
    assert sorted(a["item_title"] for a in alerts) == [
        "Climate resolution archive",
        "Climate resolution drafted",
    ]
    assert {a["rule"] for a in alerts} == {"climate"}
    assert all(
        {"rule", "feed", "item_title", "created_at", "snippet", "matched"} <= set(a) for a in alerts
    )
    assert "item_text" not in alerts[0]
    assert {a["feed"] for a in cli.json("alerts", "--rule", "sudan")} == {"beta"}
    assert len(cli.json("alerts", "--limit", "3")) == 3
    # Alerts are as old as the poll: none in the future.
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    assert cli.json("alerts", "--since", tomorrow) == []

    for command in ("items", "alerts"):
        bad = cli(command, "--since", "yesterday", "--json")
        assert bad.exit_code == 2
        assert "--since" in bad.stderr
        assert "yesterday" in bad.stderr
    assert cli("items", "--limit", "0").exit_code == 2


# --------------------------------------------------------------------------- config changes


def test_renamed_feed_keeps_its_history_and_removed_feed_is_kept_inactive(
    site: FeedSite, tmp_path: Path
) -> None:
    news = site.publish("/news.xml", BASIC, '"n"')
    other = site.publish("/other.xml", rss(Entry("o1", "Sudan today")), '"o"')
    config = tmp_path / "feeds.yaml"
    cli = Cli(config)
    write_config(config, {"news": news, "other": other})
    assert cli.json("poll")["totals"]["new"] == BASIC_ITEMS + 1

    # Rename: same URL, new name.
    write_config(config, {"un-news": news, "other": other})
    renamed = by_feed(cli.json("poll"))

    assert sorted(renamed) == ["other", "un-news"]
    assert (renamed["un-news"]["status"], renamed["un-news"]["new"]) == ("not_modified", 0)
    assert site.requests_to("/news.xml")[-1]["if-none-match"] == '"n"'  # validators kept
    assert len(cli.json("items", "--feed", "un-news")) == BASIC_ITEMS
    assert cli.json("items", "--feed", "news") == []
    assert {a["feed"] for a in cli.json("alerts", "--rule", "climate")} == {"un-news"}
    assert [f["name"] for f in cli.json("feeds", "--all")] == ["other", "un-news"]

    # Remove "other": not polled any more, still listed with --all, items kept.
    write_config(config, {"un-news": news})
    before = len(site.requests_to("/other.xml"))
    poll = cli.json("poll")

    assert [f["feed"] for f in poll["feeds"]] == ["un-news"]
    assert len(site.requests_to("/other.xml")) == before
    assert [f["name"] for f in cli.json("feeds")] == ["un-news"]
    listed = {f["name"]: f for f in cli.json("feeds", "--all")}
    assert sorted(listed) == ["other", "un-news"]
    assert (listed["other"]["active"], listed["un-news"]["active"]) == (False, True)
    assert listed["other"]["item_count"] == 1
    assert len(cli.json("items", "--feed", "other")) == 1


# --------------------------------------------------------------------------- human output


def test_human_output_names_each_feed_and_prints_totals(site: FeedSite, tmp_path: Path) -> None:
    cli = Cli(
        write_config(
            tmp_path / "feeds.yaml",
            {
                "alpha": site.publish("/alpha.xml", BASIC, '"a"'),
                "broken": site.url("/missing.xml"),
            },
        )
    )

    result = cli("poll")

    assert result.exit_code == 1
    assert "alpha" in result.stdout
    assert "broken" in result.stdout
    assert "404" in result.stdout
    assert re.search(
        rf"2 feeds in [0-9.]+s: 1 ok, 0 not modified, 1 failed; "
        rf"{BASIC_ITEMS} new items, 0 updated, {BASIC_ALERTS} alerts",
        result.stdout,
    ), result.stdout
    with pytest.raises(json.JSONDecodeError):
        json.loads(result.stdout)

    feeds = cli("feeds")
    assert feeds.exit_code == 0
    assert "alpha" in feeds.stdout
    assert "broken" in feeds.stdout
    items = cli("items")
    assert "General Assembly adopts climate resolution" in items.stdout
    alerts = cli("alerts")
    assert "climate" in alerts.stdout
    assert "General Assembly adopts climate resolution" in alerts.stdout


# --------------------------------------------------------------------------- database failures


@pytest.mark.parametrize("command", ["poll", "feeds", "items", "alerts"])
def test_unreachable_database_exits_3(site: FeedSite, tmp_path: Path, command: str) -> None:
    config = write_config(tmp_path / "feeds.yaml", {"alpha": site.publish("/a.xml", BASIC, '"a"')})
    cli = Cli(config, database="postgresql://feedwatch@127.0.0.1:1/feedwatch")

    result = cli(command)

    assert result.exit_code == 3, result.output
    assert result.stderr.startswith("feedwatch: database: ")
    assert "127.0.0.1:1" in result.stderr
    assert "Traceback" not in result.output
    assert site.paths_requested() == []


@pytest.mark.parametrize(
    ("database", "status", "message"),
    [
        ("mysql://feedwatch@127.0.0.1/feedwatch", 3, "unsupported database URL scheme"),
        ("sqlite:///{tmp}/no/such/dir/feedwatch.db", 3, "cannot open"),
        ("feedwatch.db", 2, "not a database URL"),
    ],
)
def test_unusable_database_url(
    site: FeedSite, tmp_path: Path, database: str, status: int, message: str
) -> None:
    config = write_config(tmp_path / "feeds.yaml", {"alpha": site.publish("/a.xml", BASIC, '"a"')})

    result = Cli(config, database=database.format(tmp=tmp_path))("poll", "--json")

    assert result.exit_code == status, result.output
    assert message in result.stderr
    assert result.stdout == ""
    assert site.paths_requested() == []


# --------------------------------------------------------------------------- the program


def program(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m feedwatch ARGS`` in a fresh process (the entry point, quick exit)."""
    return subprocess.run(
        [sys.executable, "-m", "feedwatch", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        check=False,
    )


def test_the_program_exits_with_the_command_status_and_flushed_output(tmp_path: Path) -> None:
    version = program("--version")
    assert (version.returncode, version.stdout.strip()) == (0, "feedwatch, version 0.1.0")
    missing = program("--config", str(tmp_path / "none.yaml"), "poll")
    assert missing.returncode == 2
    assert "configuration file not found" in missing.stderr
    usage = program("no-such-command")
    assert usage.returncode == 2
    assert "No such command" in usage.stderr
    # The output arrives whole through a pipe, though the process skips Python's
    # own teardown.
    helped = program("rules", "--help")
    assert helped.returncode == 0
    in_process = CliRunner().invoke(main, ["rules", "--help"], prog_name="python -m feedwatch")
    assert helped.stdout.split() == in_process.output.split()  # (wrapped to other widths)

"""``feedwatch rules``, ``rules try`` and ``rules test`` end to end.

The real CLI, a real HTTP server on 127.0.0.1 (``LoopbackServer``) and real
databases: rules are listed with the alerts a real poll raised, and backtested
over the items a real poll stored. ``rules try`` runs without any configuration
or database, also as the installed script in an empty directory. Only loopback
is ever contacted; nothing is timed (item ages are days apart from the windows).

The tests in the last section use the full rule language (field scopes, ``AND``,
``NOT``, ``NEAR``); they pass once ``feedwatch.rules`` has the new matcher.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import pytest
from click.testing import CliRunner
from loopback import LoopbackServer
from test_cli import Cli, FeedSite, ago, run_script

from feedwatch import core
from feedwatch.cli import main
from feedwatch.storage.sql import SqlStorage

TRY_KEYS = {"query", "match", "spans"}
SPAN_KEYS = {"field", "start", "end", "text"}
RULE_KEYS = {"name", "query", "active", "alerts", "alerts_7d", "last_alert_at"}
BACKTEST_KEYS = {"rule", "query", "since", "scanned", "matched", "feeds", "matches"}
MATCH_KEYS = {"item_id", "feed", "title", "url", "sort_at", "spans", "snippet"}


# --------------------------------------------------------------------------- helpers


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No FEEDWATCH_* variable from the outside leaks into a run."""
    for name in ("FEEDWATCH_CONFIG", "FEEDWATCH_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def site() -> Iterator[FeedSite]:
    with LoopbackServer() as server:
        yield FeedSite(server)


@dataclass(frozen=True, slots=True)
class Post:
    """One RSS item, with the fields rules can scope to."""

    guid: str
    title: str
    text: str = ""
    published: datetime | None = None
    tags: tuple[str, ...] = ()
    author: str | None = None


def rss(*posts: Post, language: str | None = None) -> bytes:
    """An RSS 2.0 document with categories, dc:creator and a channel language."""
    parts = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/"><channel>',
        "<title>Test</title><link>https://example.org/</link><description>t</description>",
    ]
    if language:
        parts.append(f"<language>{language}</language>")
    for post in posts:
        parts.append(f"<item><guid isPermaLink='false'>{escape(post.guid)}</guid>")
        parts.append(f"<title>{escape(post.title)}</title>")
        parts.append(f"<link>https://example.org/{escape(post.guid)}</link>")
        if post.text:
            parts.append(f"<description>{escape(post.text)}</description>")
        if post.published is not None:
            parts.append(f"<pubDate>{format_datetime(post.published, usegmt=True)}</pubDate>")
        parts.extend(f"<category>{escape(tag)}</category>" for tag in post.tags)
        if post.author:
            parts.append(f"<dc:creator>{escape(post.author)}</dc:creator>")
        parts.append("</item>")
    parts.append("</channel></rss>")
    return "\n".join(parts).encode("utf-8")


def write_config(
    path: Path,
    feeds: Mapping[str, str | tuple[str, Sequence[str]]],
    rules: Mapping[str, str],
) -> Path:
    """A feeds.yaml allowing 127.0.0.1 only; a feed is a URL or (URL, tags); rules in order."""
    lines = ["fetch:", "  allow_networks: [127.0.0.1/32]", "  timeout: 10s", "feeds:"]
    for name, spec in feeds.items():
        url, tags = (spec, ()) if isinstance(spec, str) else spec
        lines.append(f"  - {{name: {name}, url: {json.dumps(url)}, tags: {json.dumps(tags)}}}")
    if rules:
        lines.append("rules:")
        lines += [f"  - {{name: {name}, query: {json.dumps(q)}}}" for name, q in rules.items()]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run(*args: str) -> Any:
    """``feedwatch ARGS`` in-process, with no configuration at all."""
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def alert_count(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM alerts").fetchone()[0])


#: Two feeds: the UN one (tags un, en) and a council one; items days apart.
UN = (
    Post("un-1", "Security Council meets on Sudan", "The Council discussed Sudan.", ago(days=1)),
    Post("un-2", "Assembly adopts climate resolution", "A climate resolution.", ago(days=3)),
    Post("un-3", "Sudan: old report", "Archive of the Sudan file.", ago(days=45)),
)
COUNCIL = (
    Post("c-1", "Council statement on Sudan", "Sudan again.", ago(days=2)),
    Post("c-2", "Budget talks", "Nothing about it.", ago(days=4)),
)
RULES = {"sudan": "Sudan", "climate": '"climate resolution"', "quiet": "zanzibar"}


@pytest.fixture
def polled(site: FeedSite, tmp_path: Path) -> Cli:
    """A config with RULES (in that order) over two feeds, polled once into SQLite."""
    cli = Cli(
        write_config(
            tmp_path / "feeds.yaml",
            {
                "un": (site.publish("/un.xml", rss(*UN), '"u"'), ["un", "en"]),
                "council": site.publish("/council.xml", rss(*COUNCIL), '"c"'),
            },
            RULES,
        )
    )
    assert cli.json("poll")["totals"]["alerts"] == 4  # sudan x3, climate x1
    return cli


# --------------------------------------------------------------------------- rules (list)


def test_rules_lists_configured_rules_in_file_order_with_alert_counts(
    site: FeedSite, tmp_path: Path
) -> None:
    config = tmp_path / "feeds.yaml"
    feeds = {"un": site.publish("/un.xml", rss(*UN), '"u"')}
    write_config(config, feeds, RULES)
    cli = Cli(config)

    before = cli.json("rules")
    cli.json("poll")
    after = cli.json("rules")

    assert [r["name"] for r in before] == ["sudan", "climate", "quiet"]  # file order
    assert all(set(r) == RULE_KEYS for r in before)
    assert [(r["alerts"], r["alerts_7d"], r["last_alert_at"]) for r in before] == [(0, 0, None)] * 3
    assert [(r["name"], r["alerts"], r["alerts_7d"], r["active"]) for r in after] == [
        ("sudan", 2, 2, True),
        ("climate", 1, 1, True),
        ("quiet", 0, 0, True),
    ]
    assert after[0]["query"] == "Sudan"
    assert after[0]["last_alert_at"].endswith("Z")
    assert after[2]["last_alert_at"] is None

    # A rule removed from the file is listed only with --all, with its history.
    write_config(config, feeds, {"quiet": "zanzibar", "sudan": "Sudan"})
    assert [r["name"] for r in cli.json("rules")] == ["quiet", "sudan"]
    everything = {r["name"]: r for r in cli.json("rules", "--all")}
    assert list(everything) == ["quiet", "sudan", "climate"]
    assert (everything["climate"]["active"], everything["climate"]["alerts"]) == (False, 1)

    human = cli("rules", "--all")
    assert human.exit_code == 0, human.output
    lines = human.stdout.splitlines()
    assert any("climate (removed)" in line for line in lines)
    (sudan,) = [line for line in lines if "sudan" in line]
    assert "2" in sudan
    assert "ago" in sudan
    (quiet,) = [line for line in lines if "quiet" in line]
    assert "never" in quiet
    assert "zanzibar" in quiet


def test_rules_without_a_config_is_a_usage_error(tmp_path: Path) -> None:
    result = Cli(tmp_path / "missing.yaml")("rules")

    assert result.exit_code == 2
    assert "configuration file not found" in result.stderr


def test_rules_group_help_names_its_subcommands_and_they_are_not_shadowed(
    tmp_path: Path,
) -> None:
    top = run("--help")
    group = run("rules", "--help")
    trying = run("rules", "try", "--help")
    testing = run("rules", "test", "--help")

    assert "rules" in top.stdout
    assert group.exit_code == 0
    assert "try" in group.stdout
    assert "test" in group.stdout
    assert "--all" in group.stdout
    for option in ("--title", "--content", "--author", "--feed", "--tag", "--lang", "--json"):
        assert option in trying.stdout
    for option in ("--since", "--limit", "--json", "NAME_OR_QUERY"):
        assert option in testing.stdout
    # The listing's options belong before a subcommand only when there is none.
    misplaced = run("rules", "--json", "try", "sudan")
    assert misplaced.exit_code == 2
    assert "after the subcommand" in misplaced.stderr


# --------------------------------------------------------------------------- rules try


def test_rules_try_match_prints_the_spans_and_exits_0() -> None:
    title = "Security Council meets on Sudan"
    result = run("rules", "try", "sudan", "--title", title, "--content", "Talks on Sudan.")
    as_json = run("rules", "try", "sudan", "--title", title, "--json")

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("match  sudan")
    assert f"title:   {title}" in result.stdout
    assert 'title[26:31] "Sudan"' in result.stdout
    assert 'content[9:14] "Sudan"' in result.stdout
    assert as_json.exit_code == 0
    out = json.loads(as_json.stdout)
    assert set(out) == TRY_KEYS
    assert (out["query"], out["match"]) == ("sudan", True)
    assert out["spans"] == [{"field": "title", "start": 26, "end": 31, "text": "Sudan"}]
    for span in out["spans"]:
        assert set(span) == SPAN_KEYS
        assert title[span["start"] : span["end"]] == span["text"]


def test_rules_try_no_match_exits_1() -> None:
    result = run("rules", "try", "iran", "--title", "Council meets on Sudan")
    as_json = run("rules", "try", "iran", "--content", "Council meets on Sudan", "--json")
    bare = run("rules", "try", "iran")

    assert result.exit_code == 1
    assert result.stdout.startswith("no match  iran")
    assert as_json.exit_code == 1
    assert json.loads(as_json.stdout) == {"query": "iran", "match": False, "spans": []}
    assert bare.exit_code == 1
    assert "the query is valid" in bare.stdout


@pytest.mark.parametrize(
    ("query", "column", "caret_at"),
    [
        ('sudan "council', 7, 6),
        ('судан и "совет', 9, 8),
        ('中文 "x', 4, 5),  # wide characters take two columns each
    ],
)
def test_rules_try_invalid_query_points_at_the_column_and_exits_2(
    query: str, column: int, caret_at: int
) -> None:
    result = run("rules", "try", query, "--title", "anything")
    as_json = run("rules", "try", query, "--json")

    assert result.exit_code == 2
    assert result.stdout == ""
    first, shown, caret = result.stderr.splitlines()[:3]
    assert first.startswith(f"feedwatch: invalid query: column {column}: ")
    assert "quote" in first
    assert shown == f"  {query}"
    assert caret == " " * (2 + caret_at) + "^"
    assert as_json.exit_code == 2
    error = json.loads(as_json.stdout)
    assert (error["query"], error["match"], error["spans"]) == (query, False, [])
    assert error["error"]["column"] == column
    assert "quote" in error["error"]["reason"]


def test_rules_try_reads_the_content_from_a_file_or_stdin(tmp_path: Path) -> None:
    article = tmp_path / "article.txt"
    article.write_text("A long article.\nIt mentions Sudan once.", encoding="utf-8")

    from_file = run("rules", "try", "sudan", "--content-file", str(article), "--json")
    from_stdin = CliRunner().invoke(
        main, ["rules", "try", "sudan", "--content-file", "-", "--json"], input="Sudan today"
    )

    assert from_file.exit_code == 0
    assert json.loads(from_file.stdout)["spans"] == [
        {"field": "content", "start": 28, "end": 33, "text": "Sudan"}
    ]
    assert from_stdin.exit_code == 0
    assert json.loads(from_stdin.stdout)["match"] is True


def test_rules_try_works_in_an_empty_directory_without_config_or_database(
    tmp_path: Path,
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()

    hit = run_script(
        "rules", "try", '"climate resolution"', "--title", "A climate resolution", cwd=empty
    )
    miss = run_script("rules", "try", "sudan", "--title", "Budget", "--json", cwd=empty)
    bad = run_script("rules", "try", '"open', cwd=empty)

    assert (hit.returncode, miss.returncode, bad.returncode) == (0, 1, 2), (hit, miss, bad)
    assert "climate resolution" in hit.stdout
    assert json.loads(miss.stdout)["match"] is False
    assert "column 1" in bad.stderr
    assert "Traceback" not in hit.stderr + miss.stderr + bad.stderr
    assert list(empty.iterdir()) == []  # no database, no file of any kind


# --------------------------------------------------------------------------- rules test


def test_rules_test_backtests_a_rule_by_name_and_raises_no_alert(polled: Cli) -> None:
    db = polled.config.parent / "feedwatch.db"  # type: ignore[union-attr]
    alerts_before = alert_count(db)

    result = polled.json("rules", "test", "sudan")

    assert alert_count(db) == alerts_before == 4
    assert set(result) == BACKTEST_KEYS
    assert (result["rule"], result["query"]) == ("sudan", "Sudan")
    assert result["since"].endswith("Z")  # 30 days ago by default
    # Within 30 days: un-1, un-2, c-1, c-2 (un-3 is 45 days old).
    assert (result["scanned"], result["matched"]) == (4, 2)
    assert result["feeds"] == [{"feed": "council", "matches": 1}, {"feed": "un", "matches": 1}]
    assert [m["title"] for m in result["matches"]] == [
        "Security Council meets on Sudan",  # newest first
        "Council statement on Sudan",
    ]
    first = result["matches"][0]
    assert set(first) == MATCH_KEYS
    assert (first["feed"], first["url"]) == ("un", "https://example.org/un-1")
    assert {(s["field"], s["text"]) for s in first["spans"]} == {
        ("title", "Sudan"),
        ("content", "Sudan"),
    }
    assert first["snippet"]["text"] == "The Council discussed Sudan."
    assert first["snippet"]["marks"] == [[22, 27]]


def test_rules_test_an_ad_hoc_query_with_since_and_limit(polled: Cli) -> None:
    everything = polled.json("rules", "test", "sudan", "--since", "all")
    recent = polled.json("rules", "test", "Sudan OR climate", "--since", "36h")
    week = polled.json("rules", "test", "Sudan OR climate", "--since", "7d", "--limit", "1")
    counts_only = polled.json("rules", "test", "Sudan OR climate", "--limit", "0")

    assert (everything["since"], everything["scanned"], everything["matched"]) == (None, 5, 3)
    assert everything["feeds"] == [{"feed": "un", "matches": 2}, {"feed": "council", "matches": 1}]
    assert recent["rule"] is None
    assert recent["query"] == "Sudan OR climate"
    assert (recent["scanned"], recent["matched"]) == (1, 1)
    assert (week["scanned"], week["matched"], len(week["matches"])) == (4, 3, 1)
    assert week["feeds"] == [{"feed": "un", "matches": 2}, {"feed": "council", "matches": 1}]
    assert (counts_only["matched"], counts_only["matches"]) == (3, [])


def test_rules_test_human_output_has_snippets_and_per_feed_counts(polled: Cli) -> None:
    result = polled("rules", "test", "climate")

    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.startswith('rule climate: "climate resolution"  items since ')
    assert "un  Assembly adopts climate resolution" in out
    assert "    A climate resolution." in out  # the snippet
    assert "https://example.org/un-2" in out
    assert "1 of 4 items matched; no alert raised" in out


def test_rules_test_exits_1_when_nothing_matches(polled: Cli) -> None:
    by_name = polled("rules", "test", "quiet")
    ad_hoc = polled.json("rules", "test", "Iran", status=1)
    too_recent = polled("rules", "test", "sudan", "--since", "1h")

    assert by_name.exit_code == 1
    assert "no match in 4 items; no alert raised" in by_name.stdout
    assert (ad_hoc["scanned"], ad_hoc["matched"], ad_hoc["feeds"]) == (4, 0, [])
    assert too_recent.exit_code == 1
    assert "no stored items to match in that window" in too_recent.stdout


def test_rules_test_with_an_invalid_query_exits_2_with_the_column(polled: Cli) -> None:
    result = polled("rules", "test", 'sudan "council')
    bad_since = polled("rules", "test", "sudan", "--since", "yesterday")

    assert result.exit_code == 2
    assert result.stdout == ""
    assert "column 7" in result.stderr
    assert result.stderr.splitlines()[2] == "  " + " " * 6 + "^"
    assert bad_since.exit_code == 2
    assert "--since" in bad_since.stderr


def test_rules_test_reads_storage_in_batches(
    site: FeedSite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db_url: str
) -> None:
    posts = [
        Post(f"p{n}", f"Item {n} on Sudan", published=ago(days=1, minutes=n)) for n in range(7)
    ]
    cli = Cli(
        write_config(
            tmp_path / "feeds.yaml", {"un": site.publish("/un.xml", rss(*posts), '"u"')}, RULES
        ),
        database=db_url,
    )
    assert cli.json("poll")["totals"]["new"] == 7
    batches: list[int] = []
    real = SqlStorage.iter_items_for_matching

    def spy(self: SqlStorage, since: datetime | None = None, batch_size: int = 500) -> Any:
        for batch in real(self, since, batch_size):
            batches.append(len(batch))
            yield batch

    monkeypatch.setattr(core, "BACKTEST_BATCH", 3)
    monkeypatch.setattr(SqlStorage, "iter_items_for_matching", spy)

    result = cli.json("rules", "test", "sudan", "--limit", "2")

    assert batches == [3, 3, 1]
    assert (result["scanned"], result["matched"], len(result["matches"])) == (7, 7, 2)
    assert [m["title"] for m in result["matches"]] == ["Item 0 on Sudan", "Item 1 on Sudan"]
    assert len(cli.json("alerts")) == 7  # the poll's, and no more


def test_rules_commands_on_an_unreachable_database_exit_3(tmp_path: Path) -> None:
    config = write_config(tmp_path / "feeds.yaml", {"un": "http://127.0.0.1:9/un.xml"}, RULES)
    cli = Cli(config, database="postgresql://feedwatch@127.0.0.1:1/feedwatch")

    for args in (("rules",), ("rules", "test", "sudan")):
        result = cli(*args)
        assert result.exit_code == 3, result.output
        assert result.stderr.startswith("feedwatch: database: ")


# --------------------------------------------------------------------------- full rule language


def test_rules_try_field_scopes_tags_and_language() -> None:
    """Needs the full rule language (field scopes, AND/NOT, tag:, lang:, author:, feed:)."""
    args = ["--title", "Conseil de sécurité", "--content", "Le Conseil a parlé du Soudan."]
    extra = ["--tag", "un", "--tag", "press", "--lang", "fr", "--author", "Antonio Guterres"]

    scoped = run("rules", "try", "title:conseil AND content:soudan", *args, "--json")
    not_scoped = run("rules", "try", "title:soudan", *args, "--json")
    tagged = run("rules", "try", "tag:press AND lang:fr AND soudan", *args, *extra, "--json")
    wrong_lang = run("rules", "try", "lang:ru AND soudan", *args, *extra, "--json")
    author = run("rules", "try", "author:guterres", *args, *extra, "--json")
    feed = run("rules", "try", "feed:unog", *args, "--feed", "unog", "--json")

    assert scoped.exit_code == 0, scoped.output
    spans = json.loads(scoped.stdout)["spans"]
    assert {(s["field"], s["text"]) for s in spans} == {("title", "Conseil"), ("content", "Soudan")}
    assert not_scoped.exit_code == 1
    assert tagged.exit_code == 0
    assert wrong_lang.exit_code == 1
    assert author.exit_code == 0
    assert json.loads(author.stdout)["spans"] == [
        {"field": "author", "start": 8, "end": 16, "text": "Guterres"}
    ]
    assert feed.exit_code == 0
    assert {s["field"] for s in json.loads(feed.stdout)["spans"]} <= {"feed"}


def test_rules_try_boolean_and_proximity_operators() -> None:
    """Needs the full rule language."""
    text = ["--content", "Sanctions were imposed after the terrorist attack on the capital."]

    assert run("rules", "try", "sanctions AND attack", *text).exit_code == 0
    assert run("rules", "try", "sanctions NOT attack", *text).exit_code == 1
    assert run("rules", "try", "sanctions NEAR/3 imposed", *text).exit_code == 0
    assert run("rules", "try", "sanctions NEAR/2 attack", *text).exit_code == 1
    assert run("rules", "try", "terror*", *text).exit_code == 0
    unbalanced = run("rules", "try", "(sanctions AND attack", *text)
    assert unbalanced.exit_code == 2
    assert "column" in unbalanced.stderr


def test_rules_test_sees_feed_tags_item_tags_and_language(site: FeedSite, tmp_path: Path) -> None:
    """Needs the full rule language: backtests scope on the feed's configured tags,
    the items' own categories and their language, like a poll does."""
    french = rss(
        Post("f1", "Le Conseil et le Soudan", published=ago(days=1), tags=("afrique",)),
        Post("f2", "Budget", published=ago(days=1)),
        language="fr",
    )
    english = rss(Post("e1", "Council on Sudan", published=ago(days=1)), language="en")
    cli = Cli(
        write_config(
            tmp_path / "feeds.yaml",
            {
                "unog": (site.publish("/fr.xml", french, '"f"'), ["un", "geneva"]),
                "press": site.publish("/en.xml", english, '"e"'),
            },
            {"geneva": "tag:geneva AND conseil"},
        )
    )
    cli.json("poll")

    by_feed_tag = cli.json("rules", "test", "geneva")
    by_item_tag = cli.json("rules", "test", "tag:afrique")
    by_lang = cli.json("rules", "test", "lang:en AND sudan")

    assert [m["title"] for m in by_feed_tag["matches"]] == ["Le Conseil et le Soudan"]
    assert by_feed_tag["feeds"] == [{"feed": "unog", "matches": 1}]
    assert [m["title"] for m in by_item_tag["matches"]] == ["Le Conseil et le Soudan"]
    assert [m["title"] for m in by_lang["matches"]] == ["Council on Sudan"]

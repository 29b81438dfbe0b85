"""The ``feedwatch`` command line: parses arguments, calls the facade, prints.

No business logic here. Exit statuses (documented in the README):

    0  success: every feed polled (or the command did what it said);
       ``rules try`` / ``rules test``: the query matched
    1  poll: one or more feeds failed (each is listed with its error);
       ``rules try`` / ``rules test``: the query matched nothing
    2  the configuration or the command line is invalid (an invalid query too)
    3  the database cannot be used (unreachable, locked too long, newer schema)
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import signal
import sys
import unicodedata
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO, TypeVar

import click

from . import __version__
from ._logging import configure as configure_logging
from ._utils import parse_duration
from .config import Config, load_config
from .core import SPAN_FIELDS, Feedwatch, PollSummary, make_app, try_rule
from .exceptions import ConfigError, RuleSyntaxError, StorageError
from .snippet import make_snippet
from .types import Backtest, BacktestMatch, MatchedSpan, PollResult, RuleTrial, StoredAlert

if TYPE_CHECKING:  # rich is imported where it is used: `poll --json` never needs it
    from rich.console import Console
    from rich.text import Text

EXIT_OK = 0
EXIT_FEEDS_FAILED = 1
EXIT_NO_MATCH = 1
EXIT_CONFIG = 2
EXIT_STORAGE = 3

#: How matched words look on a terminal.
HIGHLIGHT = "bold yellow"

F = TypeVar("F", bound=Callable[..., Any])


@dataclasses.dataclass
class _Options:
    config: str | None = None
    database: str | None = None
    verbose: int = 0
    log_format: str = "kv"


def _common(func: F) -> F:
    """--config and --database, accepted before or after the command name."""

    def remember(name: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
        def callback(ctx: click.Context, _param: click.Parameter, value: Any) -> Any:
            if value is not None:
                setattr(ctx.ensure_object(_Options), name, value)
            return value

        return callback

    func = click.option(
        "--database",
        "-d",
        metavar="URL",
        expose_value=False,
        callback=remember("database"),
        help="Database URL (default: sqlite feedwatch.db beside the config). "
        "Env: FEEDWATCH_DATABASE_URL.",
    )(func)
    func = click.option(
        "--config",
        "-c",
        metavar="PATH",
        expose_value=False,
        callback=remember("config"),
        help="Configuration file (default: ./feeds.yaml). Env: FEEDWATCH_CONFIG.",
    )(func)
    return func


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@_common
@click.option("--verbose", "-v", count=True, help="Log more (-v info, -vv debug) to stderr.")
@click.option(
    "--log-format",
    type=click.Choice(["kv", "json"]),
    default=None,
    help="Log lines as key=value (default) or JSON objects. Env: FEEDWATCH_LOG_FORMAT.",
)
@click.version_option(__version__, prog_name="feedwatch")
@click.pass_context
def main(ctx: click.Context, verbose: int, log_format: str | None) -> None:
    """Watch organisations' RSS, Atom and JSON feeds and alert on keyword rules."""
    opts = ctx.ensure_object(_Options)
    opts.verbose = verbose
    opts.log_format = log_format or os.environ.get("FEEDWATCH_LOG_FORMAT") or "kv"
    if opts.log_format not in ("kv", "json"):
        _fail(f"FEEDWATCH_LOG_FORMAT must be kv or json, not {opts.log_format!r}", EXIT_CONFIG)
    configure_logging(logging.WARNING - 10 * min(verbose, 2), opts.log_format)


def entry_point() -> NoReturn:
    """The ``feedwatch`` program: :func:`main`, then a quick exit.

    Tearing the interpreter down (some 560 modules: SQLAlchemy, aiohttp, pydantic)
    takes about 0.13 s, a tenth of a poll answered 304 from cron. Once a command is
    done, its output and logs flushed, the process ends at once (``os._exit``), as
    it would after Python's own clean-up: feedwatch registers no exit handlers and
    has closed what it opened. In-process callers (tests) call :func:`main`.
    """
    try:
        main()  # click's standalone mode: always ends in SystemExit
        code: object = 0
    except SystemExit as exc:
        code = exc.code
    if code is None or isinstance(code, int):
        status = code or 0
    else:  # sys.exit("message"): Python prints it and exits with 1
        print(code, file=sys.stderr)
        status = 1
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (feedwatch ... | head)
            if status == 0:
                status = 1
    os._exit(status)


# --------------------------------------------------------------------------- helpers


def _fail(message: str, status: int) -> NoReturn:
    click.echo(f"feedwatch: {message}", err=True)
    sys.exit(status)


def _config_source(ctx: click.Context) -> tuple[str, str | None]:
    """The configuration file (which must exist) and the database override, from
    the flags, else the environment."""
    opts = ctx.ensure_object(_Options)
    path = opts.config or os.environ.get("FEEDWATCH_CONFIG") or "feeds.yaml"
    database = opts.database or os.environ.get("FEEDWATCH_DATABASE_URL") or None
    if not Path(path).is_file():
        _fail(f"configuration file not found: {path}", EXIT_CONFIG)
    return path, database


def _load(ctx: click.Context) -> Config:
    path, database = _config_source(ctx)
    try:
        return load_config(path, env=os.environ, database_override=database)
    except ConfigError as exc:
        _fail(f"invalid configuration:\n{exc}", EXIT_CONFIG)


def _app(ctx: click.Context) -> Feedwatch:
    config = _load(ctx)
    try:
        return make_app(config)
    except StorageError as exc:
        _fail(f"database: {exc}", EXIT_STORAGE)


def _since(value: str | None, now: datetime) -> datetime | None:
    """``2d``, ``36h``, ``90m`` ago, or an ISO date/time (UTC unless it says)."""
    if value is None:
        return None
    try:
        seconds = parse_duration(value)
    except ValueError:
        when = _iso_date(value)
    else:
        try:
            when = now - timedelta(seconds=seconds)
        except OverflowError:
            raise click.BadParameter(f"{value!r} is too long ago", param_hint="--since") from None
    try:
        return when.astimezone(UTC)
    except OverflowError:
        raise click.BadParameter(f"{value!r} is out of range", param_hint="--since") from None


def _iso_date(value: str) -> datetime:
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is neither a duration (2d, 12h, 30m) nor an ISO date", param_hint="--since"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else None


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return _iso(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def _console() -> Console:
    """Standard output; a pipe gets wide lines rather than 80 columns of wrapped cells."""
    from rich.console import Console

    console = Console(highlight=False, soft_wrap=False)
    if not console.is_terminal:
        console = Console(highlight=False, soft_wrap=False, width=200)
    return console


def _print_json(value: Any) -> None:
    click.echo(json.dumps(_jsonable(value), ensure_ascii=False, indent=2))


def _ago(when: datetime | None, now: datetime) -> str:
    if when is None:
        return "never"
    delta = (now - when).total_seconds()
    return f"in {_coarse(-delta)}" if delta < 0 else f"{_coarse(delta)} ago"


def _coarse(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def _run_storage(func: Callable[[], Any]) -> Any:
    try:
        return func()
    except StorageError as exc:
        _fail(f"database: {exc}", EXIT_STORAGE)


T = TypeVar("T")


def _read(
    ctx: click.Context, since: str | None, read: Callable[[Feedwatch, datetime | None], list[T]]
) -> list[T]:
    """Open the app, read a listing (``--since`` resolved against its clock), close."""
    app = _app(ctx)
    try:
        after = _since(since, app.now())
        result: list[T] = _run_storage(lambda: read(app, after))
        return result
    finally:
        app.close()


def _listing(ctx: click.Context, read: Callable[[Feedwatch], list[T]]) -> tuple[list[T], datetime]:
    """Open the app, read a listing and the app's time (for "ago" columns), close."""
    app = _app(ctx)
    try:
        rows: list[T] = _run_storage(lambda: read(app))
        return rows, app.now()
    finally:
        app.close()


# --------------------------------------------------------------------------- check


@main.command()
@_common
@click.pass_context
def check(ctx: click.Context) -> None:
    """Validate the configuration and say exactly what is wrong, where."""
    config = _load(ctx)
    enabled = sum(f.enabled for f in config.feeds)
    click.echo(
        f"{config.file}: OK: {len(config.feeds)} feeds ({enabled} enabled), "
        f"{len(config.rules)} rules, {len(config.subscribers)} subscribers; "
        f"database {_redact(config.database_url)}"
    )


def _redact(url: str) -> str:
    """Hide a password in a database URL."""
    if "://" in url and "@" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        if ":" in creds:
            return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"
    return url


# --------------------------------------------------------------------------- poll


@main.command()
@_common
@click.option("--feed", "-f", "names", multiple=True, metavar="NAME", help="Poll only this feed.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object for scripts.")
@click.pass_context
def poll(ctx: click.Context, names: Sequence[str], as_json: bool) -> None:
    """Poll every configured feed once, store new items, raise alerts, print a summary."""
    app = _app(ctx)
    if ctx.ensure_object(_Options).verbose == 0:
        # The summary lists every failed feed; the log repeats it only when asked (-v).
        configure_logging(logging.ERROR)
    progress, on_start, on_result = _poll_progress(as_json)
    try:
        with progress:
            summary = asyncio.run(app.poll(names, on_start=on_start, on_result=on_result))
    except ConfigError as exc:
        _fail(str(exc), EXIT_CONFIG)
    except StorageError as exc:
        _fail(f"database: {exc}", EXIT_STORAGE)
    finally:
        app.close()
    failed_deliveries = summary.deliveries.count("failed")
    status = EXIT_FEEDS_FAILED if summary.failed or failed_deliveries else EXIT_OK
    if any(r.error_kind == "storage" for r in summary.failed):
        status = EXIT_STORAGE
    if as_json:
        _print_json(_poll_json(summary, status))
    else:
        _print_poll_table(summary)
    sys.exit(status)


def _poll_progress(
    as_json: bool,
) -> tuple[
    AbstractContextManager[object],
    Callable[[int], None] | None,
    Callable[[PollResult], None] | None,
]:
    """A progress bar on a terminal's stderr, and its callbacks; nothing for --json
    (which then never imports rich: a cron job's poll starts faster)."""
    if as_json:
        return nullcontext(), None, None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    err = Console(stderr=True)
    progress = Progress(
        TextColumn("polling"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )
    task = progress.add_task("", total=None)

    def on_start(total: int) -> None:
        progress.update(task, total=total)

    def on_result(result: PollResult) -> None:
        progress.update(task, advance=1, description=result.feed)

    return progress, on_start, on_result


def _poll_json(summary: PollSummary, status: int) -> dict[str, Any]:
    return {
        "started_at": summary.started_at,
        "elapsed": round(summary.elapsed, 3),
        "exit_status": status,
        "totals": summary.totals(),
        "deliveries": list(summary.deliveries.results),
        "feeds": [
            {
                "feed": r.feed,
                "url": r.url,
                "status": r.status,
                "new": r.new,
                "updated": r.updated,
                "alerts": r.alerts,
                "seen": r.seen,
                "elapsed": round(r.elapsed, 3),
                "http_status": r.http_status,
                "error_kind": r.error_kind,
                "error": r.error,
                "warnings": list(r.warnings),
            }
            for r in summary.results
        ],
    }


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _print_poll_table(summary: PollSummary) -> None:
    from rich.table import Table
    from rich.text import Text

    console = _console()
    table = Table(title=None, show_lines=False)
    for name, kw in (
        ("feed", {"no_wrap": True}),
        ("status", {}),
        ("new", {"justify": "right"}),
        ("updated", {"justify": "right"}),
        ("alerts", {"justify": "right"}),
        ("time", {"justify": "right"}),
        ("error", {"overflow": "fold"}),
    ):
        table.add_column(name, **kw)
    styles = {"ok": "green", "not_modified": "cyan", "error": "red"}
    for r in summary.results:
        error = f"{r.error_kind}: {r.error}" if r.failed else ""
        table.add_row(
            r.feed,
            Text(r.status.replace("_", " "), style=styles.get(r.status, "")),
            str(r.new),
            str(r.updated),
            str(r.alerts),
            f"{r.elapsed:.2f}s",
            error,
        )
    console.print(table)
    t = summary.totals()
    console.print(
        f"{_count(t['feeds'], 'feed')} in {summary.elapsed:.2f}s: {t['ok']} ok, "
        f"{t['not_modified']} not modified, {t['failed']} failed; "
        f"{_count(t['new'], 'new item')}, {t['updated']} updated, {_count(t['alerts'], 'alert')}"
    )
    d = summary.deliveries
    if d.results:
        console.print(
            f"{len(d.results)} {'delivery' if len(d.results) == 1 else 'deliveries'}: "
            f"{d.count('sent')} sent, {d.count('pending')} to retry, {d.count('failed')} failed"
        )
        for dr in d.results:
            if dr.status != "sent":
                when = f", next try {_iso(dr.next_attempt_at)}" if dr.next_attempt_at else ""
                line = f"  {dr.subscriber}: delivery {dr.delivery_id} {dr.status}: {dr.detail}"
                style = "red" if dr.status == "failed" else "yellow"
                console.print(Text(line + when, style=style))


# --------------------------------------------------------------------------- feeds


@main.command()
@_common
@click.option("--all", "include_inactive", is_flag=True, help="Include feeds removed from config.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_context
def feeds(ctx: click.Context, include_inactive: bool, as_json: bool) -> None:
    """Each feed: last poll, status, items, last error."""
    from rich.table import Table
    from rich.text import Text

    rows, now = _listing(ctx, lambda app: app.feeds(include_inactive))
    if as_json:
        _print_json(rows)
        return
    console = _console()
    table = Table()
    for name in ("feed", "status", "last poll", "next poll", "items", "errors", "last error"):
        table.add_column(name, overflow="fold" if name == "last error" else "ellipsis")
    for f in rows:
        error = f"{f.last_error_kind}: {f.last_error}" if f.last_error else ""
        status = (f.status or "never polled").replace("_", " ")
        if f.disabled_at is not None:
            status = "disabled"
            error = f"{f.disabled_reason}" + (f" (last: {error})" if error else "")
        if f.moved_to:
            error = f"moved permanently to {f.moved_to}" + (f"; {error}" if error else "")
        table.add_row(
            f.name if f.active else f"{f.name} (removed)",
            Text(status, style="red" if f.disabled_at else ""),
            _ago(f.last_poll_at, now),
            _ago(f.next_poll_at, now) if f.active and f.disabled_at is None else "",
            str(f.item_count),
            str(f.consecutive_errors),
            error,
        )
    console.print(table)


# --------------------------------------------------------------------------- items


@main.command()
@_common
@click.option("--feed", "-f", metavar="NAME", help="Only this feed.")
@click.option("--since", metavar="AGE", help="Only items newer than this: 2d, 12h, or an ISO date.")
@click.option("--limit", "-n", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_context
def items(
    ctx: click.Context, feed: str | None, since: str | None, limit: int, as_json: bool
) -> None:
    """Stored items, newest first."""
    from rich.table import Table

    rows = _read(ctx, since, lambda app, after: app.items(feed, after, limit))
    if as_json:
        _print_json(rows)
        return
    console = _console()
    table = Table()
    table.add_column("date")
    table.add_column("feed")
    table.add_column("title", overflow="fold")
    table.add_column("link", overflow="fold")
    for item in rows:
        table.add_row(
            item.sort_at.strftime("%Y-%m-%d %H:%M"), item.feed, item.title, item.url or ""
        )
    console.print(table)


# --------------------------------------------------------------------------- alerts


@main.command()
@_common
@click.option("--rule", "-r", metavar="NAME", help="Only this rule.")
@click.option("--since", metavar="AGE", help="Only alerts newer than this: 1d, 6h, or an ISO date.")
@click.option("--limit", "-n", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_context
def alerts(
    ctx: click.Context, rule: str | None, since: str | None, limit: int, as_json: bool
) -> None:
    """Alerts raised by the rules, newest first, with the matched words highlighted."""
    from rich.text import Text

    rows = _read(ctx, since, lambda app, after: app.alerts(rule, after, limit))
    if as_json:
        _print_json([_alert_json(a) for a in rows])
        return
    console = _console()
    for a in rows:
        console.print(
            Text.assemble(
                (a.created_at.strftime("%Y-%m-%d %H:%M"), "dim"),
                "  ",
                (a.rule, "bold magenta"),
                "  ",
                (a.feed, "cyan"),
                "  ",
                (a.item_title, "bold"),
            )
        )
        snippet = _alert_snippet(a)
        if snippet is not None:
            console.print(Text("    ") + snippet)
        if a.item_url:
            console.print(Text("    " + a.item_url, style="blue"))
    if not rows:
        console.print("no alerts")


def _alert_snippet(alert: StoredAlert) -> Text | None:
    from rich.text import Text

    content = [(s.start, s.end) for s in alert.spans if s.field == "content"]
    if not content:
        return None
    snippet = make_snippet(alert.item_text, content)
    text = Text(snippet.text)
    for start, end in snippet.marks:
        text.stylize("bold yellow", start, end)
    return text


def _alert_json(alert: StoredAlert) -> dict[str, Any]:
    out: dict[str, Any] = _jsonable(alert)
    del out["item_text"]
    content = [(s.start, s.end) for s in alert.spans if s.field == "content"]
    snippet = make_snippet(alert.item_text, content)
    out["snippet"] = {"text": snippet.text, "marks": [list(m) for m in snippet.marks]}
    out["matched"] = [
        (alert.item_title if s.field == "title" else alert.item_text)[s.start : s.end]
        for s in alert.spans
    ]
    return out


# --------------------------------------------------------------------------- rules


@main.group(
    invoke_without_command=True,
    subcommand_metavar="[try|test] [ARGS]...",
    short_help="The rules and their alerts; try or backtest a query.",
)
@_common
@click.option("--all", "include_inactive", is_flag=True, help="Include rules removed from config.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_context
def rules(ctx: click.Context, include_inactive: bool, as_json: bool) -> None:
    """List the rules with their alerts; try a query on text; backtest it on stored items.

    Without a subcommand: the configured rules in file order, with the alerts each
    raised in all and in the last 7 days, and when the last one was.

    \b
    feedwatch rules try QUERY --title TEXT ...   does QUERY match this text?
    feedwatch rules test NAME_OR_QUERY           what would it have matched?
    """
    from rich.table import Table
    from rich.text import Text

    if ctx.invoked_subcommand is not None:
        if include_inactive or as_json:
            raise click.UsageError(
                f"--all and --json go after the subcommand: "
                f"feedwatch rules {ctx.invoked_subcommand} ... --json"
            )
        return
    rows, now = _listing(ctx, lambda app: app.rules(include_inactive))
    if as_json:
        _print_json(rows)
        return
    if not rows:
        click.echo("no rules configured")
        return
    console = _console()
    table = Table()
    table.add_column("rule", no_wrap=True)
    table.add_column("alerts", justify="right")
    table.add_column("7 days", justify="right")
    table.add_column("last alert")
    table.add_column("query", overflow="fold")
    for r in rows:
        table.add_row(
            r.name if r.active else f"{r.name} (removed)",
            str(r.alerts),
            str(r.alerts_7d),
            _ago(r.last_alert_at, now),
            Text(r.query),
        )
    console.print(table)


@rules.command("try", short_help="Does a query match this text? (no config needed)")
@click.argument("query")
@click.option("--title", default="", metavar="TEXT", help="Title to match.")
@click.option("--content", default="", metavar="TEXT", help="Content (plain text) to match.")
@click.option(
    "--content-file",
    type=click.File("r", encoding="utf-8"),
    metavar="PATH",
    help="Read the content from a file ('-': standard input).",
)
@click.option("--author", default="", metavar="TEXT", help="Author, for author: scopes.")
@click.option("--feed", default="", metavar="NAME", help="Feed name, for feed: scopes.")
@click.option("--tag", "tags", multiple=True, metavar="TAG", help="A tag (repeatable).")
@click.option("--lang", metavar="CODE", help="Language of the item (en, ru, fr, ...).")
@click.option("--json", "as_json", is_flag=True, help='Print {"query", "match", "spans"}.')
def rules_try(
    query: str,
    title: str,
    content: str,
    content_file: TextIO | None,
    author: str,
    feed: str,
    tags: Sequence[str],
    lang: str | None,
    as_json: bool,
) -> None:
    """Does QUERY match this text? Shows the matched words; needs no config or database.

    Exits 0 on a match, 1 on none, 2 if QUERY is invalid (with the column).
    """
    if content_file is not None:
        content = (content + "\n" if content else "") + content_file.read()
    try:
        trial = try_rule(
            query, title=title, content=content, author=author, feed=feed, tags=tags, lang=lang
        )
    except RuleSyntaxError as exc:
        _invalid_query(query, exc, as_json)
    if as_json:
        _print_json({"query": query, "match": trial.matched, "spans": list(trial.spans)})
    else:
        texts = {"title": title, "content": content, "author": author, "feed": feed}
        _print_trial(trial, texts, tags, lang)
    sys.exit(EXIT_OK if trial.matched else EXIT_NO_MATCH)


def _print_trial(
    trial: RuleTrial, texts: dict[str, str], tags: Sequence[str], lang: str | None
) -> None:
    from rich.text import Text

    console = _console()
    verdict = ("match", "bold green") if trial.matched else ("no match", "bold red")
    console.print(Text.assemble(verdict, "  ", trial.query))
    for name in SPAN_FIELDS:
        if texts[name]:
            marks = [(s.start, s.end) for s in trial.spans if s.field == name]
            console.print(Text(f"  {name + ':':<9}") + _highlighted(texts[name], marks))
    if tags:
        console.print(Text(f"  {'tags:':<9}{', '.join(tags)}"))
    if lang:
        console.print(Text(f"  {'lang:':<9}{lang}"))
    if trial.spans:
        console.print(Text(f"  {'matched:':<9}") + Text(", ".join(map(_span_label, trial.spans))))
    if not any(texts.values()):
        console.print(
            Text("  the query is valid; give --title, --content, ... to try it on text", "dim")
        )


def _span_label(span: MatchedSpan) -> str:
    return f"{span.field}[{span.start}:{span.end}] {json.dumps(span.text, ensure_ascii=False)}"


def _highlighted(text: str, marks: Iterable[tuple[int, int]]) -> Text:
    from rich.text import Text

    out = Text(text)
    for start, end in marks:
        out.stylize(HIGHLIGHT, start, end)
    return out


def _invalid_query(query: str, exc: RuleSyntaxError, as_json: bool) -> NoReturn:
    """Say where the query is wrong (a caret under the column), then exit 2."""
    shown = exc.query or query
    if as_json:
        _print_json(
            {
                "query": shown,
                "match": False,
                "spans": [],
                "error": {"column": exc.column, "reason": exc.reason},
            }
        )
    one_line = "".join(" " if unicodedata.category(ch).startswith("C") else ch for ch in shown)
    caret = " " * _width(one_line[: max(exc.column - 1, 0)]) + "^"
    click.echo(
        f"feedwatch: invalid query: column {exc.column}: {exc.reason}\n  {one_line}\n  {caret}",
        err=True,
    )
    sys.exit(EXIT_CONFIG)


def _width(text: str) -> int:
    """Terminal columns ``text`` takes: wide East Asian characters two, combining marks none."""
    width = 0
    for ch in text:
        if unicodedata.combining(ch):
            continue
        width += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return width


@rules.command("test", short_help="Backtest a rule or query on stored items.")
@_common
@click.argument("target", metavar="NAME_OR_QUERY")
@click.option(
    "--since",
    default="30d",
    show_default=True,
    metavar="AGE",
    help="Only items newer than this: 30d, 12h, an ISO date, or 'all'.",
)
@click.option(
    "--limit",
    "-n",
    type=click.IntRange(min=0),
    metavar="N",
    default=20,
    show_default=True,
    help="Matches to print (0: only the counts).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def rules_test(ctx: click.Context, target: str, since: str, limit: int, as_json: bool) -> None:
    """What would a rule have matched? Runs it over the stored items; raises no alert.

    NAME_OR_QUERY is the name of a configured rule, else a query. Prints the
    matching items (newest first) with the matched words and the count per feed.
    Exits 0 if anything matched, 1 if nothing did, 2 if the query is invalid.
    """
    from rich.console import Console
    from rich.progress import Progress, TextColumn, TimeElapsedColumn

    app = _app(ctx)
    err = Console(stderr=True)
    progress = Progress(
        TextColumn("matching"),
        TextColumn("{task.completed} items"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal or as_json,
    )
    task = progress.add_task("", total=None)
    try:
        after = None if since.strip().lower() == "all" else _since(since, app.now())
        with progress:
            result = app.backtest(
                target,
                after,
                limit,
                on_progress=lambda scanned: progress.update(task, completed=scanned),
            )
    except RuleSyntaxError as exc:
        _invalid_query(target, exc, as_json)
    except StorageError as exc:
        _fail(f"database: {exc}", EXIT_STORAGE)
    finally:
        app.close()
    if as_json:
        _print_json(_backtest_json(result))
    else:
        _print_backtest(result)
    sys.exit(EXIT_OK if result.matched else EXIT_NO_MATCH)


def _backtest_json(result: Backtest) -> dict[str, Any]:
    return {
        "rule": result.rule,
        "query": result.query,
        "since": result.since,
        "scanned": result.scanned,
        "matched": result.matched,
        "feeds": [{"feed": feed, "matches": n} for feed, n in result.per_feed],
        "matches": [
            {
                "item_id": m.item_id,
                "feed": m.feed,
                "title": m.title,
                "url": m.url,
                "sort_at": m.sort_at,
                "spans": list(m.spans),
                "snippet": _snippet_json(m),
            }
            for m in result.matches
        ],
    }


def _content_marks(match: BacktestMatch) -> list[tuple[int, int]]:
    return [(s.start, s.end) for s in match.spans if s.field == "content"]


def _snippet_json(match: BacktestMatch) -> dict[str, Any]:
    snippet = make_snippet(match.item_text, _content_marks(match))
    return {"text": snippet.text, "marks": [list(m) for m in snippet.marks]}


def _print_backtest(result: Backtest) -> None:
    from rich.table import Table
    from rich.text import Text

    console = _console()
    what = f"rule {result.rule}: " if result.rule is not None else "query: "
    window = (
        f"items since {result.since.strftime('%Y-%m-%d %H:%M')} UTC"
        if result.since is not None
        else "all items"
    )
    console.print(Text.assemble((what, "bold magenta"), result.query, ("  " + window, "dim")))
    for m in result.matches:
        title = _highlighted(m.title, [(s.start, s.end) for s in m.spans if s.field == "title"])
        title.stylize("bold")
        console.print(
            Text.assemble(
                (m.sort_at.strftime("%Y-%m-%d %H:%M"), "dim"), "  ", (m.feed, "cyan"), "  ", title
            )
        )
        marks = _content_marks(m)
        if marks:
            snippet = make_snippet(m.item_text, marks)
            console.print(Text("    ") + _highlighted(snippet.text, snippet.marks))
        if m.url:
            console.print(Text("    " + m.url, style="blue"))
    if result.per_feed:
        table = Table()
        table.add_column("feed", no_wrap=True)
        table.add_column("matches", justify="right")
        for feed, n in result.per_feed:
            table.add_row(feed, str(n))
        console.print(table)
    if result.matched:
        shown = len(result.matches)
        more = f" (showing the newest {shown})" if 0 < shown < result.matched else ""
        console.print(f"{result.matched} of {result.scanned} items matched{more}; no alert raised")
    elif result.scanned:
        console.print(f"no match in {result.scanned} items; no alert raised")
    else:
        console.print("no stored items to match" + (" in that window" if result.since else ""))


# --------------------------------------------------------------------------- deliveries


@main.group(
    invoke_without_command=True,
    subcommand_metavar="[retry] [ARGS]...",
    short_help="The delivery outbox: pending, sent and failed messages; requeue them.",
)
@_common
@click.option(
    "--status",
    "-s",
    type=click.Choice(["pending", "sent", "failed"]),
    help="Only deliveries in this state.",
)
@click.option("--subscriber", "-S", metavar="NAME", help="Only this subscriber's.")
@click.option("--limit", "-n", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_context
def deliveries(
    ctx: click.Context, status: str | None, subscriber: str | None, limit: int, as_json: bool
) -> None:
    """List deliveries, newest first: state, attempts, next try, last error.

    \b
    feedwatch deliveries --status failed          what did not arrive, and why
    feedwatch deliveries retry 12 15              send these again (now)
    feedwatch deliveries retry --failed           send every failed one again
    """
    from rich.table import Table
    from rich.text import Text

    if ctx.invoked_subcommand is not None:
        return
    rows, now = _listing(ctx, lambda app: app.deliveries(status, subscriber, limit))
    if as_json:
        _print_json(rows)
        return
    if not rows:
        click.echo("no deliveries")
        return
    console = _console()
    table = Table()
    for name, kw in (
        ("id", {"justify": "right"}),
        ("subscriber", {"no_wrap": True}),
        ("what", {"overflow": "fold"}),
        ("status", {}),
        ("attempts", {"justify": "right"}),
        ("when", {}),
        ("last error", {"overflow": "fold"}),
    ):
        table.add_column(name, **kw)
    styles = {"sent": "green", "pending": "yellow", "failed": "red"}
    for d in rows:
        if d.kind == "digest":
            what = f"digest of {_count(d.alerts, 'alert')} ({', '.join(d.rules)})"
        else:
            what = f"{', '.join(d.rules)}: {d.title}"
        if d.status == "sent":
            when = f"sent {_ago(d.sent_at, now)}"
        elif d.status == "pending":
            when = f"due {_ago(d.next_attempt_at, now)}"
        else:
            when = f"failed {_ago(d.last_attempt_at or d.created_at, now)}"
        error = d.last_error or ""
        if d.last_code is not None and error:
            error = f"[{d.last_code}] {error}"
        table.add_row(
            str(d.id),
            d.subscriber,
            what,
            Text(d.status, style=styles.get(d.status, "")),
            str(d.attempts),
            when,
            error if d.status != "sent" else "",
        )
    console.print(table)


@deliveries.command("retry", short_help="Requeue deliveries to be sent again now.")
@_common
@click.argument("ids", nargs=-1, type=click.IntRange(min=1))
@click.option("--failed", "all_failed", is_flag=True, help="Every failed delivery.")
@click.option("--subscriber", "-S", metavar="NAME", help="With --failed: only this subscriber's.")
@click.option("--no-send", is_flag=True, help="Only requeue; the next poll or the daemon sends.")
@click.pass_context
def deliveries_retry(
    ctx: click.Context,
    ids: Sequence[int],
    all_failed: bool,
    subscriber: str | None,
    no_send: bool,
) -> None:
    """Requeue the deliveries IDS (or, with --failed, every failed one) and send them.

    The retry schedule starts again; each keeps its message id (webhook-id,
    Message-ID), so a receiver that did get it can tell. A subscriber disabled
    by a 410 is enabled again: asking to resend says the receiver is back.
    Exits 0 when every requeued delivery was sent, 1 otherwise.
    """
    if bool(ids) == all_failed:
        raise click.UsageError("give delivery IDs or --failed (one of the two)")
    if subscriber is not None and not all_failed:
        raise click.UsageError("--subscriber goes with --failed")
    app = _app(ctx)
    try:
        requeued, enabled = _run_storage(
            lambda: app.retry_deliveries(list(ids) or None, subscriber=subscriber)
        )
        missing = sorted(set(ids) - set(requeued))
        for name in enabled:
            click.echo(f"subscriber {name} enabled again")
        if missing:
            click.echo(
                f"not requeued (no such delivery, or already sent): {', '.join(map(str, missing))}",
                err=True,
            )
        n = len(requeued)
        click.echo(f"requeued {n} {'delivery' if n == 1 else 'deliveries'}")
        if no_send or not requeued:
            sys.exit(EXIT_OK if requeued or not ids else EXIT_FEEDS_FAILED)
        try:
            summary = asyncio.run(app.dispatch())
        except StorageError as exc:
            _fail(f"database: {exc}", EXIT_STORAGE)
    finally:
        app.close()
    for r in summary.results:
        line = f"delivery {r.delivery_id} to {r.subscriber}: {r.status}"
        click.echo(line + (f" ({r.detail})" if r.detail and r.status != "sent" else ""))
    failed = [r for r in summary.results if r.delivery_id in requeued and r.status != "sent"]
    sys.exit(EXIT_FEEDS_FAILED if failed or missing else EXIT_OK)


# --------------------------------------------------------------------------- subscribers


@main.group(
    invoke_without_command=True,
    subcommand_metavar="[test] [ARGS]...",
    short_help="The subscribers and their deliveries; send a test message.",
)
@_common
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_context
def subscribers(ctx: click.Context, as_json: bool) -> None:
    """List the subscribers: channel, mode, state, deliveries pending/sent/failed.

    \b
    feedwatch subscribers test NAME     send a test message, report what happened
    """
    from rich.table import Table
    from rich.text import Text

    if ctx.invoked_subcommand is not None:
        return
    rows, now = _listing(ctx, lambda app: app.subscribers())
    if as_json:
        _print_json(rows)
        return
    if not rows:
        click.echo("no subscribers configured")
        return
    console = _console()
    table = Table()
    for name, kw in (
        ("subscriber", {"no_wrap": True}),
        ("channel", {}),
        ("mode", {}),
        ("state", {"overflow": "fold"}),
        ("pending", {"justify": "right"}),
        ("sent", {"justify": "right"}),
        ("failed", {"justify": "right"}),
        ("last sent", {}),
    ):
        table.add_column(name, **kw)
    for r in rows:
        if not r.active:
            state = Text("removed from config", style="dim")
        elif r.disabled_at is not None:
            state = Text(f"disabled {_ago(r.disabled_at, now)}: {r.disabled_reason}", style="red")
        else:
            state = Text("active", style="green")
        table.add_row(
            r.name,
            r.channel,
            r.mode,
            state,
            str(r.pending),
            str(r.sent),
            str(r.failed),
            _ago(r.last_sent_at, now),
        )
    console.print(table)


@subscribers.command("test", short_help="Send a test message to a subscriber.")
@_common
@click.argument("name")
@click.pass_context
def subscribers_test(ctx: click.Context, name: str) -> None:
    """Send NAME a clearly marked test message now and report the real outcome.

    Exits 0 when the receiver accepted it (SMTP 250, HTTP 2xx), 1 otherwise (a
    404 is a failure), 2 when no subscriber has that name. Nothing is stored.
    """
    app = _app(ctx)
    try:
        result = asyncio.run(app.test_subscriber(name))
    except KeyError:
        known = ", ".join(s.name for s in app.config.subscribers) or "none configured"
        _fail(f"no subscriber named {name!r} (known: {known})", EXIT_CONFIG)
    finally:
        app.close()
    code = f" [{result.code}]" if result.code is not None else ""
    if result.ok:
        click.echo(f"test message to {name}: delivered{code}: {result.detail}")
        sys.exit(EXIT_OK)
    kind = "permanent failure" if result.permanent else "failed"
    click.echo(f"test message to {name}: {kind}{code}: {result.detail}", err=True)
    sys.exit(EXIT_FEEDS_FAILED)


# --------------------------------------------------------------------------- daemon


@main.command()
@_common
@click.option(
    "--pid-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the process id here (for feedwatch reload); removed on exit.",
)
@click.pass_context
def run(ctx: click.Context, pid_file: Path | None) -> None:
    """Run the daemon: poll feeds on their schedules, send alerts, serve health,
    metrics and the API, until SIGTERM or SIGINT. SIGHUP reloads the configuration.

    Logs go to stderr (info and up; -v for debug); --log-format json for JSON lines.
    Exits 0 after a clean stop, 2 if the configuration is invalid, 3 if the
    database cannot be used.
    """
    from .daemon import Daemon  # the daemon's libraries load only when it runs

    opts = ctx.ensure_object(_Options)
    configure_logging(logging.INFO if opts.verbose == 0 else logging.DEBUG, opts.log_format)
    path, database = _config_source(ctx)
    daemon = Daemon(path, env=os.environ, database_override=database, pid_file=pid_file)
    try:
        status = asyncio.run(daemon.run())
    except ConfigError as exc:
        _fail(f"invalid configuration:\n{exc}", EXIT_CONFIG)
    except StorageError as exc:
        _fail(f"database: {exc}", EXIT_STORAGE)
    except OSError as exc:
        _fail(f"cannot start: {exc}", EXIT_CONFIG)
    sys.exit(status)


@main.command()
@_common
@click.option(
    "--pid-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Signal the daemon whose pid is here (SIGHUP) instead of asking it over HTTP.",
)
@click.pass_context
def reload(ctx: click.Context, pid_file: Path | None) -> None:
    """Tell the running daemon to reload its configuration.

    By default this asks the daemon over its HTTP API (``server.listen`` and
    ``server.token`` of the configuration) and reports whether the file was
    taken: exit 0 if so, 1 if the daemon refused it (the reason is printed;
    it keeps running on the old one) or does not answer. With --pid-file it
    sends SIGHUP instead (the daemon's log then says how it went), as
    ``systemctl reload feedwatch`` does.
    """
    if pid_file is not None:
        _signal_reload(pid_file)
        return
    config = _load(ctx)
    host = config.server.host
    address = f"[{host}]" if ":" in host else host
    if address in ("0.0.0.0", "[::]"):
        address = "127.0.0.1" if address == "0.0.0.0" else "[::1]"
    url = f"http://{address}:{config.server.port}/api/v1/reload"
    request = urllib.request.Request(url, method="POST", data=b"")
    if config.server.token:
        request.add_header("Authorization", f"Bearer {config.server.token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        if exc.code == 422:
            detail = json.loads(exc.read() or b"{}").get("detail", "")
            _fail(f"the daemon refused the configuration: {detail}", EXIT_FEEDS_FAILED)
        _fail(f"the daemon at {url} answered HTTP {exc.code}", EXIT_FEEDS_FAILED)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        _fail(
            f"no daemon answering at {url} ({reason}); is feedwatch run running "
            "with this configuration? (or use --pid-file)",
            EXIT_FEEDS_FAILED,
        )
    click.echo(str(answer.get("detail") or "configuration reloaded"))


def _signal_reload(pid_file: Path) -> None:
    try:
        pid = int(pid_file.read_text(encoding="ascii").strip())
        os.kill(pid, signal.SIGHUP)
    except FileNotFoundError:
        _fail(f"no pid file at {pid_file}: is the daemon running with --pid-file?", EXIT_CONFIG)
    except ValueError:
        _fail(f"{pid_file} does not hold a process id", EXIT_CONFIG)
    except ProcessLookupError:
        _fail(f"no process {pid} (stale pid file {pid_file})", EXIT_FEEDS_FAILED)
    except PermissionError:
        _fail(f"not allowed to signal process {pid}", EXIT_FEEDS_FAILED)
    click.echo(f"asked feedwatch (pid {pid}) to reload its configuration")


@main.command()
@_common
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Feeds by state, the next polls, failing and disabled feeds, pending deliveries.

    Exits 0 when no feed is failing or disabled and nothing failed to deliver, 1 otherwise.
    """
    from rich.text import Text

    app = _app(ctx)
    try:
        feeds = _run_storage(lambda: app.feeds())
        pending, oldest = _run_storage(lambda: app.storage.delivery_stats(app.now()))
        failed = _run_storage(lambda: app.deliveries(status="failed", limit=1000))
        now = app.now()
    finally:
        app.close()
    states: dict[str, int] = {}
    for f in feeds:
        state = "disabled" if f.disabled_at else (f.status or "new")
        states[state] = states.get(state, 0) + 1
    failing = [f for f in feeds if f.status == "error" and not f.disabled_at]
    disabled = [f for f in feeds if f.disabled_at]
    upcoming = sorted(
        (f for f in feeds if f.next_poll_at is not None and not f.disabled_at),
        key=lambda f: f.next_poll_at or now,
    )[:5]
    code = EXIT_FEEDS_FAILED if failing or disabled or failed else EXIT_OK
    if as_json:
        _print_json(
            {
                "feeds": states,
                "next_polls": [{"feed": f.name, "at": f.next_poll_at} for f in upcoming],
                "failing": [
                    {
                        "feed": f.name,
                        "since": f.failing_since,
                        "errors": f.consecutive_errors,
                        "kind": f.last_error_kind,
                        "error": f.last_error,
                    }
                    for f in failing
                ],
                "disabled": [
                    {"feed": f.name, "at": f.disabled_at, "reason": f.disabled_reason}
                    for f in disabled
                ],
                "deliveries": {
                    "pending": pending,
                    "oldest_pending_age": oldest,
                    "failed": len(failed),
                },
                "exit_status": code,
            }
        )
        sys.exit(code)
    console = _console()
    summary = ", ".join(f"{n} {state.replace('_', ' ')}" for state, n in sorted(states.items()))
    console.print(f"feeds: {len(feeds)} ({summary or 'none'})")
    for f in upcoming:
        console.print(f"  next: {f.name} {_ago(f.next_poll_at, now)}")
    for f in failing:
        since = f" since {_ago(f.failing_since, now)}" if f.failing_since else ""
        console.print(
            Text(
                f"  failing{since} ({f.consecutive_errors} errors): {f.name}: "
                f"{f.last_error_kind}: {f.last_error}",
                style="red",
            )
        )
    for f in disabled:
        console.print(
            Text(
                f"  disabled {_ago(f.disabled_at, now)}: {f.name}: {f.disabled_reason}", style="red"
            )
        )
    age = f", oldest {_coarse(oldest)} old" if oldest is not None else ""
    console.print(f"deliveries: {pending} pending{age}, {len(failed)} failed")
    sys.exit(code)

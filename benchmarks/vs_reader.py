"""feedwatch against lemon24/reader over the 1,000-feed corpus, side by side (issue 6).

Rerun with:

    .venv/bin/pip install 'reader>=3.15' 'sgmllib3k>=1.0'   # the `bench` dependency group
    apt-get install nginx-light                              # optional, see "Serves" below
    .venv/bin/python benchmarks/vs_reader.py [--runs 5] [--total 1000] [--json out.json]
                                             [--server auto|nginx|python]

(``pip install --group bench`` installs the same with pip >= 25.1; the venv's pip 23.2
has no --group, so the group's requirements are installed by name. sgmllib3k: reader's
vendored feedparser imports ``sgmllib``, which feedparser 6.0.14 no longer installs.)

What it does:

- Builds the corpus in a temporary folder: the documents of ``../shared/corpus/real``
  (226) plus ``gen_corpus.py --out TMP --total N`` (deterministic synthetic feeds, the
  default seed), N = ``--total`` documents in all.
- Serves them from ONE HTTP server on 127.0.0.1, every document as ``application/xml``
  with ETag and Last-Modified. Only 127.0.0.1 is ever contacted. ``--server``:
  * ``nginx`` (what ``auto``, the default, picks when ``nginx`` is on PATH or in /usr/sbin;
    Debian/Ubuntu: ``apt-get install nginx-light``): nginx in the foreground as a child of
    this script (``nginx -p TMP/nginx/ -c TMP/nginx/nginx.conf -g 'daemon off;'``), with a
    generated config: one worker process, keepalive, the documents as static files
    (symlinks under TMP/nginx/www), ``etag on`` (ETag from mtime and size),
    ``if_modified_since exact``, so 304 when If-None-Match matches and If-Modified-Since,
    if sent, equals Last-Modified; ``user root`` when run as root (the temporary folder
    is mode 0700). The 200/304 counts come from its access log (``$status`` only). It is
    stopped at the end, also on errors. It costs next to nothing per request;
  * ``python`` (what ``auto`` picks without nginx): a ThreadingHTTPServer in this
    process (ETag a SHA-1 of the body; 304 when If-None-Match matches, or with no
    If-None-Match when If-Modified-Since is not older than Last-Modified). It costs about
    1 ms of this process's CPU per request, enough to become the bottleneck of a fast
    client.
- For ``--runs`` rounds, alternately (the tool that goes first swaps every round), each
  tool with a fresh empty SQLite database:
  * feedwatch: ``feedwatch poll --json`` twice, each a fresh process, with a feeds.yaml of
    one feed per document, the rules of the shipped feeds.yaml (``ai`` and
    ``counter-terrorism``), ``fetch.allow_networks: [127.0.0.1/32]`` and, as in
    poll_corpus.py, ``concurrency: 16`` and ``per_host: 16`` (every feed is on one host);
  * reader: two processes in turn, with reader's defaults (``workers=1``: one thread
    fetches and parses feed after feed; the ``ua_fallback`` plugin; session timeout
    (3.05, 60) s; feedparser with its own sanitising). The first does ``make_reader(db)``,
    ``add_feed(url)`` for each document and ``update_feeds()``, and exits; the second does
    ``make_reader(db)`` on the same database and ``update_feeds(scheduled=False)``: since
    reader 3.21 the default ``scheduled=True`` skips every feed updated less than an hour
    ago, so the second update would fetch nothing at all.
- Wall time, cold for both tools: feedwatch, from spawning the process to its exit
  (interpreter start-up, imports, config, migrations included); reader, from spawning
  its process to the return of its ``update_feeds()`` (start-up, imports,
  ``make_reader``, and for the first update ``add_feed``, included). The table and its
  ratios are cold/cold. Also warm: reader's second ``update_feeds()`` call alone
  (``warm_s``; it still includes whatever reader does on its first update in a process),
  printed with its ratio to feedwatch's cold second poll, the comparison conservative for
  feedwatch by about feedwatch's start-up time; and, in ``--json``, feedwatch's own timing
  of each poll in its process (``elapsed_s``, the ``elapsed`` of ``poll --json``).
- Peak memory: the largest sum of the RSS of the process and all its descendants
  (feedwatch's worker processes included), sampled from /proc every 50 ms during the
  poll (a spike shorter than that can be missed), from spawning the process. Each of
  reader's two processes takes at least its exact ``ru_maxrss`` at the return of its
  update. ``--json`` also has, for feedwatch, the ``ru_maxrss`` of ``os.wait4`` (the
  largest single process of the tree) and user + system CPU seconds of each poll; for
  reader, the CPU seconds of each process up to the return of its update and, for the
  second, of the call alone (``warm_cpu_s``).
- 200/304: responses the server sent during that poll.
- Identical results: the items feedwatch stored in the first poll of round 1 are compared
  per feed with what feedparser itself yields for the same bytes (``feedparser.parse`` of
  each served document with the response's Content-Type and its URL as base, feedparser's
  defaults): entries stored, and for each entry its id (guid), title, link, date
  (published, else updated) and updated date. Values are compared after the
  normalisations feedwatch documents: whitespace runs collapsed in titles, HTML titles
  reduced to text, control characters dropped, links that are not http(s) count as none,
  dates in UTC to the second. The agreement is the share of feedparser's entries stored
  with every field equal; every disagreement (feed, entry, field, feedwatch value,
  feedparser value, reason) goes to ``--disagreements`` (a TSV file) with a count by field
  and reason printed.
"""

from __future__ import annotations

import argparse
import calendar
import concurrent.futures
import hashlib
import html
import io
import json
import os
import re
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import formatdate, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import unquote

import yaml

HERE = Path(__file__).resolve().parent
CORPUS = HERE.parent.parent / "shared" / "corpus"
SHIPPED_CONFIG = HERE.parent / "feeds.yaml"
FEED_SUFFIXES = {".xml", ".atom", ".rss"}
SAMPLE_EVERY = 0.05
PAGE = os.sysconf("SC_PAGE_SIZE")
# The Content-Type of every document, from either server; the oracle parses with it too.
CONTENT_TYPE = "application/xml"

# --------------------------------------------------------------------------- corpus and server


@dataclass(frozen=True)
class Doc:
    name: str  # feed name in feeds.yaml (a slug)
    path: str  # URL path on the server
    file: Path


def build_corpus(tmp: Path, real: Path, total: int) -> list[Doc]:
    files = sorted(p for p in real.iterdir() if p.suffix in FEED_SUFFIXES)
    if total > len(files):
        synth = tmp / "synth"
        subprocess.run(
            [
                sys.executable,
                str(CORPUS / "gen_corpus.py"),
                "--out",
                str(synth),
                "--total",
                f"{total}",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        files += sorted(synth.iterdir())
    docs = []
    for i, path in enumerate(files[:total]):
        slug = re.sub(r"[^a-z0-9._-]+", "-", path.stem.lower())
        docs.append(Doc(f"{i:04d}-{slug}"[:64], f"/{path.parent.name}/{path.name}", path))
    return docs


class Server:
    """The documents, their validators, and counts of the responses sent."""

    files: ClassVar[dict[str, tuple[bytes, str, str, float]]] = {}
    counts: ClassVar[Counter[int]] = Counter()
    lock = threading.Lock()


class CorpusHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        entry = Server.files.get(self.path)
        if entry is None:
            self.send_error(404)
            return
        body, etag, last_modified, mtime = entry
        if self._not_modified(etag, mtime):
            with Server.lock:
                Server.counts[304] += 1
            self.send_response(304)
            self.send_header("ETag", etag)
            self.send_header("Last-Modified", last_modified)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        with Server.lock:
            Server.counts[200] += 1
        self.send_response(200)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("ETag", etag)
        self.send_header("Last-Modified", last_modified)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _not_modified(self, etag: str, mtime: float) -> bool:
        if_none_match = self.headers.get("If-None-Match")
        if if_none_match is not None:
            return etag in (t.strip() for t in if_none_match.split(",")) or if_none_match == "*"
        since = self.headers.get("If-Modified-Since")
        if since is None:
            return False
        try:
            return parsedate_to_datetime(since).timestamp() >= int(mtime)
        except (TypeError, ValueError):
            return False

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    # The listen backlog: 5 by default, so 16 connections opened at once lost
    # SYNs, and their retransmission cost a poll a whole second now and then.
    request_queue_size = 128


def serve(docs: list[Doc]) -> ThreadingHTTPServer:
    for doc in docs:
        body = doc.file.read_bytes()
        mtime = doc.file.stat().st_mtime
        etag = '"' + hashlib.sha1(body).hexdigest() + '"'
        Server.files[doc.path] = (body, etag, formatdate(mtime, usegmt=True), mtime)
    server = _Server(("127.0.0.1", 0), CorpusHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def take_counts() -> dict[str, int]:
    with Server.lock:
        counts = dict(Server.counts)
        Server.counts.clear()
    return {str(k): v for k, v in sorted(counts.items())}


class PythonServer:
    """The ThreadingHTTPServer above, in this process (about 1 ms of its CPU per request)."""

    name = "python"

    def __init__(self, docs: list[Doc]) -> None:
        self._server = serve(docs)
        self.port: int = self._server.server_address[1]

    def take_counts(self) -> dict[str, int]:
        return take_counts()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def find_nginx() -> str | None:
    # Debian installs it in /usr/sbin, which is not on every user's PATH.
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _quote(path: Path) -> str:
    return json.dumps(str(path))  # a double-quoted nginx string


TEMP_PATHS = ("body", "proxy", "fastcgi", "uwsgi", "scgi")
NGINX_CONF = """\
{user}worker_processes 1;
pid {pid};
error_log {error_log} warn;

events {{
    worker_connections 1024;
}}

http {{
    types {{}}
    default_type {content_type};
    etag on;
    if_modified_since exact;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 65s;
    keepalive_requests 100000;
    server_tokens off;
    log_format status_only '$status';
    access_log {access_log} status_only;
    client_body_temp_path {temp_body};
    proxy_temp_path {temp_proxy};
    fastcgi_temp_path {temp_fastcgi};
    uwsgi_temp_path {temp_uwsgi};
    scgi_temp_path {temp_scgi};

    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
        root {root};
        location / {{
        }}
    }}
}}
"""


class NginxServer:
    """nginx in the foreground as a child: one worker, the documents as static files.

    The 200/304 counts come from its access log (one ``$status`` per line).
    """

    name = "nginx"

    def __init__(self, nginx: str, tmp: Path, docs: list[Doc]) -> None:
        self.dir = tmp / "nginx"
        root = self.dir / "www"
        for doc in docs:
            link = root / doc.path.lstrip("/")
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(doc.file.resolve())
        (self.dir / "temp").mkdir()
        self.access_log = self.dir / "access.log"
        self.access_log.touch()
        self.error_log = self.dir / "error.log"
        self.port = free_port()
        conf = self.dir / "nginx.conf"
        conf.write_text(
            NGINX_CONF.format(
                # Temporary folders are mode 0700: the default `nobody` worker could not read
                # them. (Not run as root, nginx keeps the user that started it.)
                user="user root;\n" if os.geteuid() == 0 else "",
                pid=_quote(self.dir / "nginx.pid"),
                error_log=_quote(self.error_log),
                content_type=CONTENT_TYPE,
                access_log=_quote(self.access_log),
                **{f"temp_{t}": _quote(self.dir / "temp" / t) for t in TEMP_PATHS},
                port=self.port,
                root=_quote(root),
            )
        )
        self._offset = 0
        self._stderr = (self.dir / "nginx.stderr").open("wb")
        self.proc = subprocess.Popen(
            [
                nginx,
                "-p",
                f"{self.dir}/",
                "-e",
                str(self.error_log),
                "-c",
                str(conf),
                "-g",
                "daemon off;",
            ],
            stdin=subprocess.DEVNULL,
            stdout=self._stderr,
            stderr=self._stderr,
        )
        try:
            self._wait_ready()
        except BaseException:
            self.close()
            raise

    def _wait_ready(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited with {self.proc.returncode}:\n{self._logs()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"nginx did not listen on 127.0.0.1:{self.port}:\n{self._logs()}"
                    ) from None
                time.sleep(0.05)

    def _logs(self) -> str:
        self._stderr.flush()
        text = ""
        for path in (self.dir / "nginx.stderr", self.error_log):
            if path.exists():
                text += path.read_text(errors="replace")[-2000:]
        return text

    def _read(self, counts: Counter[str]) -> int:
        with self.access_log.open("rb") as f:
            f.seek(self._offset)
            data = f.read()
        end = data.rfind(b"\n") + 1  # whole lines only
        for line in data[:end].split():
            counts[line.decode()] += 1
        self._offset += end
        return end

    def take_counts(self) -> dict[str, int]:
        """Responses logged since the last call.

        nginx writes a request's line just after sending its last byte, so the lines of a
        poll's last responses may come a moment after the client has them: read until the
        log stops growing for 20 ms.
        """
        counts: Counter[str] = Counter()
        self._read(counts)
        while True:
            time.sleep(0.02)
            if not self._read(counts):
                break
        return {k: v for k, v in sorted(counts.items(), key=lambda kv: int(kv[0]))}

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._stderr.close()


def start_server(kind: str, tmp: Path, docs: list[Doc]) -> PythonServer | NginxServer:
    if kind == "python":
        return PythonServer(docs)
    nginx = find_nginx()
    if nginx is None:
        sys.exit("--server nginx: no nginx on PATH or in /usr/sbin (apt-get install nginx-light)")
    return NginxServer(nginx, tmp, docs)


# --------------------------------------------------------------------------- memory


class TreeSampler:
    """Samples the summed RSS of a process and all its descendants from /proc."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _tree(self) -> list[int]:
        pids, todo = [], [self.pid]
        while todo:
            pid = todo.pop()
            pids.append(pid)
            try:
                for tid in os.listdir(f"/proc/{pid}/task"):
                    with open(f"/proc/{pid}/task/{tid}/children") as f:
                        todo += [int(c) for c in f.read().split()]
            except OSError:
                continue
        return pids

    def _rss(self) -> int:
        total = 0
        for pid in self._tree():
            try:
                with open(f"/proc/{pid}/statm") as f:
                    total += int(f.read().split()[1]) * PAGE
            except (OSError, IndexError, ValueError):
                continue
        return total

    def sample(self) -> float:
        """Take one sample now (list.append is atomic); return its time."""
        now = time.perf_counter()
        self.samples.append((now, self._rss()))
        return now

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(SAMPLE_EVERY)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def peak(self, start: float, end: float) -> int:
        """The largest sample from ``start`` to just after ``end``."""
        return max((rss for t, rss in self.samples if start <= t <= end + 0.01), default=0)


# --------------------------------------------------------------------------- the two tools


@dataclass
class Poll:
    tool: str
    phase: str
    wall: float
    peak_rss: int  # bytes, summed over the process tree
    items: int  # items stored by the first poll of this round
    responses: dict[str, int]
    extra: dict[str, Any] = field(default_factory=dict)


def write_config(directory: Path, port: int, docs: list[Doc]) -> Path:
    rules = yaml.safe_load(SHIPPED_CONFIG.read_text())["rules"]
    config = {
        "fetch": {"allow_networks": ["127.0.0.1/32"], "concurrency": 16, "per_host": 16},
        "rules": rules,
        "feeds": [{"name": d.name, "url": f"http://127.0.0.1:{port}{d.path}"} for d in docs],
    }
    path = directory / "feeds.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False))
    return path


Counts = Callable[[], dict[str, int]]


def run_feedwatch(feedwatch: str, config: Path, db: Path, take: Counts) -> list[Poll]:
    polls: list[Poll] = []
    for phase in ("first", "second"):
        take()
        started = time.perf_counter()
        proc = subprocess.Popen(
            [feedwatch, "--config", str(config), "--database", f"sqlite:///{db}", "poll", "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        sampler = TreeSampler(proc.pid)
        assert proc.stdout is not None
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        sampler.stop()
        proc.returncode = os.waitstatus_to_exitcode(status)
        result = json.loads(out)
        totals = result["totals"]
        items = int(totals["new"]) if phase == "first" else polls[0].items
        extra: dict[str, Any] = {
            "totals": totals,
            "ru_maxrss_kib": usage.ru_maxrss,
            # The process and its workers (reaped by it), user + system.
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        }
        if isinstance(result.get("elapsed"), int | float):
            # The poll as feedwatch times it in its process (no start-up, config, migrations).
            extra["elapsed_s"] = result["elapsed"]
        polls.append(
            Poll(
                "feedwatch",
                phase,
                wall,
                sampler.peak(started, started + wall),
                items,
                take(),
                extra,
            )
        )
    return polls


# argv: phase ("first" or "second"), database, file of URLs. The first process adds the feeds
# and updates them once; the second, a fresh process on the same database, updates them again.
READER_SCRIPT = r"""
import json, resource, sys, time
from reader import make_reader

def emit(event, **kw):
    print(json.dumps({"event": event, **kw}), flush=True)

def cpu(usage):
    return usage.ru_utime + usage.ru_stime

phase, db, urls = sys.argv[1:4]
reader = make_reader(db)
if phase == "first":
    for url in open(urls).read().split():
        reader.add_feed(url)
    reader.update_feeds()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    emit("done")
    emit(
        "info",
        entries=reader.get_entry_counts().total,
        broken=sum(1 for _ in reader.get_feeds(broken=True)),
        ru_maxrss_kib=usage.ru_maxrss,
        cpu_s=round(cpu(usage), 2),
        errors={
            f.url.rsplit("/", 1)[1]: f"{f.last_exception.type_name}: "
            + f.last_exception.value_str.replace(repr(f.url), "").replace(f.url, "")[:200]
            for f in reader.get_feeds(broken=True)
        },
    )
else:
    before = resource.getrusage(resource.RUSAGE_SELF)
    emit("start")
    started = time.perf_counter()
    reader.update_feeds(scheduled=False)
    call = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    emit("done")
    emit(
        "info",
        entries=reader.get_entry_counts().total,
        broken=sum(1 for _ in reader.get_feeds(broken=True)),
        ru_maxrss_kib=usage.ru_maxrss,
        cpu_s=round(cpu(usage), 2),
        warm_cpu_s=round(cpu(usage) - cpu(before), 2),
        warm_in_process_s=round(call, 3),
    )
reader.close()
"""


@dataclass
class ReaderRun:
    spawned: float
    marks: dict[str, float]  # event name -> time the parent read it
    info: dict[str, Any]
    responses: dict[str, int]
    peak_rss: int  # from spawning to "done", at least the process's ru_maxrss there


def _reader_process(
    python: str, phase: str, urls: Path, db: Path, stderr_path: Path, take: Counts
) -> ReaderRun:
    take()
    marks: dict[str, float] = {}
    info: dict[str, Any] = {}
    responses: dict[str, int] = {}
    with stderr_path.open("wb") as stderr:
        spawned = time.perf_counter()
        proc = subprocess.Popen(
            [python, "-c", READER_SCRIPT, phase, str(db), str(urls)],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        sampler = TreeSampler(proc.pid)
        assert proc.stdout is not None
        for line in proc.stdout:
            now = time.perf_counter()
            sampler.sample()  # a phase shorter than the sampling period still gets one
            event = json.loads(line)
            name = event.pop("event")
            marks[name] = now
            if name == "done":
                responses = take()
            elif name == "info":
                info = event
        proc.wait()
        sampler.stop()
    if proc.returncode or "done" not in marks or not info:
        tail = stderr_path.read_text(errors="replace")[-3000:]
        sys.exit(f"reader ({phase} process) failed (exit {proc.returncode}):\n{tail}")
    # One process: its ru_maxrss up to the return of its update is exact.
    peak = max(sampler.peak(spawned, marks["done"]), info["ru_maxrss_kib"] * 1024)
    return ReaderRun(spawned, marks, info, responses, peak)


def run_reader(python: str, urls: Path, db: Path, stderr_dir: Path, take: Counts) -> list[Poll]:
    first = _reader_process(python, "first", urls, db, stderr_dir / "reader-first.stderr", take)
    second = _reader_process(python, "second", urls, db, stderr_dir / "reader-second.stderr", take)
    items = int(first.info["entries"])
    warm = second.marks["done"] - second.marks["start"]
    return [
        Poll(
            "reader",
            "first",
            first.marks["done"] - first.spawned,
            first.peak_rss,
            items,
            first.responses,
            first.info,
        ),
        Poll(
            "reader",
            "second",
            # Cold, like feedwatch's: from spawning the process to the return of the update.
            second.marks["done"] - second.spawned,
            second.peak_rss,
            items,
            second.responses,
            # Warm: the update_feeds() call alone, as the parent saw it.
            {**second.info, "warm_s": round(warm, 3)},
        ),
    ]


# --------------------------------------------------------------------------- identical results

HTML_TYPES = {"text/html", "application/xhtml+xml"}
CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
TAG_RE = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9]*)?[^>]*>")
BLOCK_TAGS = {"br", "p", "div", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "td"}
ZONE_RE = re.compile(r"\s([A-Za-z]{3,4})\s*$")


def snapshot_feedwatch(db: Path) -> dict[str, dict[str, Any]]:
    """Per feed name: status, error and the stored items in insertion order."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    feeds: dict[str, dict[str, Any]] = {}
    for name, status, kind, error in conn.execute(
        "SELECT name, status, last_error_kind, last_error FROM feeds"
    ):
        feeds[name] = {"status": status, "error": f"{kind}: {error}" if kind else None}
        feeds[name]["items"] = []
    rows = conn.execute(
        "SELECT f.name, i.guid, i.url, i.title, i.published, i.updated "
        "FROM items i JOIN feeds f ON f.id = i.feed_id ORDER BY i.id"
    )
    for name, guid, url, title, published, updated in rows:
        feeds[name]["items"].append(
            {
                "id": guid,
                "link": url,
                "title": title,
                "date": _db_date(published or updated),
                "updated": _db_date(updated),
            }
        )
    conn.close()
    return feeds


def _db_date(value: str | None) -> str | None:
    if value is None:
        return None
    return datetime.fromisoformat(value).strftime("%Y-%m-%dT%H:%M:%S")


def _fp_date(parsed: Any) -> str | None:
    if not parsed:
        return None
    try:
        stamp = calendar.timegm((*tuple(parsed)[:6], 0, 0, 0))
        return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    except (ValueError, OverflowError, OSError):
        return None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def oracle(path: Path, url: str) -> dict[str, Any]:
    """What feedparser yields for one document, field by field (runs in a worker process)."""
    import feedparser

    result = feedparser.parse(
        io.BytesIO(path.read_bytes()),
        response_headers={"content-type": CONTENT_TYPE, "content-location": url},
    )
    entries = []
    for e in result.get("entries", []):
        title = _text(dict.get(e, "title"))
        title_type = (dict.get(e, "title_detail") or {}).get("type")
        published = _text(dict.get(e, "published"))
        updated = _text(dict.get(e, "updated"))
        entries.append(
            {
                "id": _text(dict.get(e, "id")),
                "link": _text(dict.get(e, "link")),
                "title": title,
                "title_html": title_type in HTML_TYPES,
                "date": _fp_date(dict.get(e, "published_parsed") or dict.get(e, "updated_parsed")),
                "updated": _fp_date(dict.get(e, "updated_parsed")),
                "date_text": published or updated,
                "updated_text": updated,
            }
        )
    bozo = result.get("bozo_exception")
    return {"entries": entries, "bozo": f"{type(bozo).__name__}: {bozo}" if bozo else None}


def _clean(value: str | None) -> str | None:
    if value is None:
        return None
    return CONTROL_RE.sub("", value.replace("\r\n", "\n").replace("\r", "\n")).strip() or None


def expected(entry: dict[str, Any]) -> dict[str, str | None]:
    """feedparser's values, normalised as feedwatch documents (see the module docstring)."""
    title = entry["title"] or ""
    if entry["title_html"]:
        # Markup out: block elements separate words, inline ones do not.
        title = html.unescape(
            TAG_RE.sub(lambda m: " " if (m.group(2) or "").lower() in BLOCK_TAGS else "", title)
        )
    link = _clean(entry["link"])
    if link and not link.lower().startswith(("http://", "https://")):
        link = None
    return {
        "id": _clean(entry["id"]),
        "link": link,
        "title": " ".join(CONTROL_RE.sub("", title).split()),
        "date": entry["date"],
        "updated": entry["updated"],
    }


FIELDS = ("id", "title", "link", "date", "updated")


def reason(name: str, fw: str | None, fp: str | None, entry: dict[str, Any]) -> str:
    if fw is None:
        return "feedwatch has none"
    if fp is None:
        return "feedparser has none"
    if name == "id":
        return "differs"
    if name == "title":
        if "".join(fw.split()) == "".join(fp.split()):
            return "whitespace"
        if html.unescape(fp) == fw or html.unescape(fw) == fp:
            return "entity unescaping"
        return "HTML title reduced to text differently" if entry["title_html"] else "differs"
    if name == "link":
        return "percent-encoding" if unquote(fw) == unquote(fp) else "differs"
    text = entry["date_text" if name == "date" else "updated_text"] or ""
    zone = ZONE_RE.search(text)
    hours = (datetime.fromisoformat(fw) - datetime.fromisoformat(fp)).total_seconds() / 3600
    if zone and hours == int(hours):
        return f"zone {zone.group(1)} that feedparser reads as UTC"
    return "differs"


def _match(exp: dict[str, Any], items: list[dict[str, Any]], used: set[int]) -> int | None:
    for key in ("id", "link", "title"):
        if exp[key]:
            for i, item in enumerate(items):
                if i not in used and item[key] == exp[key]:
                    return i
    return None


def compare(docs: list[Doc], port: int, fw: dict[str, dict[str, Any]], out: Path) -> dict[str, Any]:
    workers = os.cpu_count() or 1
    urls = [f"http://127.0.0.1:{port}{d.path}" for d in docs]
    with concurrent.futures.ProcessPoolExecutor(workers) as pool:
        parsed = list(pool.map(oracle, [d.file for d in docs], urls, chunksize=8))
    total = agree = 0
    rows: list[tuple[str, ...]] = []
    summary: Counter[tuple[str, str]] = Counter()

    def note(feed: str, entry: str, name: str, fwv: Any, fpv: Any, why: str) -> None:
        rows.append((feed, entry, name, str(fwv), str(fpv), why))
        summary[(name, why)] += 1

    for doc, result in zip(docs, parsed, strict=True):
        stored = fw.get(doc.name, {"status": None, "error": "not in the database", "items": []})
        items, used = stored["items"], set()
        seen: set[tuple[Any, ...]] = set()
        entries = result["entries"]
        for index, entry in enumerate(entries):
            total += 1
            exp = expected(entry)
            label = f"#{index} {exp['id'] or exp['link'] or exp['title']}"[:200]
            match = _match(exp, items, used)
            signature = tuple(exp.values())
            if match is None:
                if stored["status"] == "error":
                    why = f"feed failed in feedwatch: {stored['error']}"[:300]
                elif not (exp["id"] or exp["link"] or exp["title"]):
                    why = "no id, link or title (feedwatch skips such entries)"
                elif signature in seen:
                    why = "same id, title, link and dates as an earlier entry (stored once)"
                elif result["bozo"] and index == len(entries) - 1:
                    why = "last entry of a document that is not well-formed (dropped)"
                else:
                    why = "not stored by feedwatch"
                note(doc.name, label, "entry", "-", f"{len(entries)} entries", why)
                seen.add(signature)
                continue
            seen.add(signature)
            used.add(match)
            item = items[match]
            wrong = [n for n in FIELDS if item[n] != exp[n]]
            for n in wrong:
                note(doc.name, label, n, item[n], exp[n], reason(n, item[n], exp[n], entry))
            agree += not wrong
        for i, item in enumerate(items):
            if i not in used:
                total += 1
                label = f"{item['id'] or item['link'] or item['title']}"[:200]
                note(doc.name, label, "entry", "stored", "-", "extra item in feedwatch")
    out.write_text(
        "feed\tentry\tfield\tfeedwatch\tfeedparser\treason\n"
        + "".join(
            "\t".join(v.replace("\t", " ").replace("\n", " ") for v in r) + "\n" for r in rows
        )
    )
    return {
        "entries": total,
        "agree": agree,
        "percent": 100.0 * agree / total if total else 100.0,
        "disagreements": len(rows),
        "by_field_and_reason": [
            {"field": f, "reason": r, "count": c} for (f, r), c in summary.most_common()
        ],
        "report": str(out),
    }


# --------------------------------------------------------------------------- report


def table(polls: list[Poll], feeds: int) -> tuple[list[str], dict[str, Any]]:
    lines = [
        f"{'tool':10s} {'poll':6s} {'median wall s (min-max)':>24s} {'feeds/s':>8s} "
        f"{'items/s':>8s} {'peak MiB':>9s} {'200/304':>10s}"
    ]
    medians: dict[str, Any] = {}
    for tool in ("feedwatch", "reader"):
        for phase in ("first", "second"):
            rows = [p for p in polls if p.tool == tool and p.phase == phase]
            wall = statistics.median(p.wall for p in rows)
            items = statistics.median(p.items for p in rows)
            peak = max(p.peak_rss for p in rows) / 2**20
            last = rows[-1].responses
            medians[f"{tool}/{phase}"] = {
                "wall": wall,
                "min": min(p.wall for p in rows),
                "max": max(p.wall for p in rows),
                "feeds_per_s": feeds / wall,
                "items_per_s": items / wall,
                "items": items,
                "peak_mib": peak,
            }
            spread = f"{wall:.2f} ({min(p.wall for p in rows):.2f}-{max(p.wall for p in rows):.2f})"
            lines.append(
                f"{tool:10s} {phase:6s} {spread:>24s} {feeds / wall:8.1f} {items / wall:8.0f} "
                f"{peak:9.0f} {last.get('200', 0):>5d}/{last.get('304', 0):<4d}"
            )
    for phase in ("first", "second"):
        ratio = medians[f"reader/{phase}"]["wall"] / medians[f"feedwatch/{phase}"]["wall"]
        medians[f"ratio/{phase}"] = ratio
        lines.append(f"reader/feedwatch wall, {phase} poll (cold/cold): {ratio:.2f}x")
    warm = [p.extra["warm_s"] for p in polls if p.tool == "reader" and p.phase == "second"]
    warm_median = statistics.median(warm)
    medians["reader/second_warm"] = {
        "wall": warm_median,
        "min": min(warm),
        "max": max(warm),
        "feeds_per_s": feeds / warm_median,
    }
    ratio = warm_median / medians["feedwatch/second"]["wall"]
    medians["ratio/second_reader_warm_vs_feedwatch_cold"] = ratio
    lines.append(
        f"reader warm second update (its call alone): median {warm_median:.2f} s; "
        f"reader warm / feedwatch cold: {ratio:.2f}x"
    )
    for phase in ("first", "second"):
        # feedwatch's own timing of the poll in its process, when its JSON has it.
        inside = [
            p.extra["elapsed_s"]
            for p in polls
            if p.tool == "feedwatch" and p.phase == phase and "elapsed_s" in p.extra
        ]
        if inside:
            medians[f"feedwatch/{phase}_in_process"] = {
                "wall": statistics.median(inside),
                "min": min(inside),
                "max": max(inside),
            }
    return lines, medians


def run_rounds(
    args: argparse.Namespace, tmp: Path, docs: list[Doc], server: PythonServer | NginxServer
) -> tuple[list[Poll], dict[str, dict[str, Any]]]:
    config = write_config(tmp, server.port, docs)
    urls = tmp / "urls.txt"
    urls.write_text("".join(f"http://127.0.0.1:{server.port}{d.path}\n" for d in docs))
    polls: list[Poll] = []
    snapshot: dict[str, dict[str, Any]] | None = None
    for run in range(args.runs):
        order = ("feedwatch", "reader") if run % 2 == 0 else ("reader", "feedwatch")
        for tool in order:
            db = tmp / f"{tool}-{run}.sqlite"
            if tool == "feedwatch":
                got = run_feedwatch(args.feedwatch, config, db, server.take_counts)
                if snapshot is None:
                    # Items stored by this round's polls; the second stores none.
                    snapshot = snapshot_feedwatch(db)
            else:
                got = run_reader(sys.executable, urls, db, tmp, server.take_counts)
            for p in got:
                print(
                    f"run {run + 1} {tool:9s} {p.phase:6s} {p.wall:7.2f}s "
                    f"items={p.items} peak={p.peak_rss / 2**20:.0f} MiB "
                    f"responses={p.responses} "
                    + json.dumps({k: v for k, v in p.extra.items() if k != "errors"}),
                    file=sys.stderr,
                )
            polls += got
            db.unlink(missing_ok=True)
    assert snapshot is not None
    return polls, snapshot


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--total", type=int, default=1000, help="documents in the corpus")
    parser.add_argument("--json", type=Path, help="also write every number here")
    parser.add_argument(
        "--disagreements",
        type=Path,
        default=Path(tempfile.gettempdir()) / "feedwatch-vs-reader-disagreements.tsv",
        help="TSV file listing every disagreement (default: %(default)s)",
    )
    parser.add_argument("--corpus", type=Path, default=CORPUS / "real")
    parser.add_argument("--feedwatch", default=str(Path(sys.executable).with_name("feedwatch")))
    parser.add_argument(
        "--server",
        choices=("auto", "nginx", "python"),
        default="auto",
        help="what serves the corpus; auto: nginx if installed, else Python (default: auto)",
    )
    args = parser.parse_args()
    if args.server == "auto":
        args.server = "nginx" if find_nginx() else "python"

    with tempfile.TemporaryDirectory(prefix="fw-vs-reader-") as name:
        tmp = Path(name)
        docs = build_corpus(tmp, args.corpus, args.total)
        size = sum(d.file.stat().st_size for d in docs)
        server = start_server(args.server, tmp, docs)
        try:
            print(
                f"{len(docs)} documents, {size / 2**20:.0f} MiB, on 127.0.0.1:{server.port} "
                f"({server.name})",
                file=sys.stderr,
            )
            polls, snapshot = run_rounds(args, tmp, docs, server)
        finally:
            server.close()

        lines, medians = table(polls, len(docs))
        print(
            f"\n{len(docs)} feeds on 127.0.0.1 ({server.name}), median of {args.runs} runs, "
            "alternating"
        )
        print("\n".join(lines))

        first = next(p for p in polls if p.tool == "feedwatch" and p.phase == "first")
        reader = next(p for p in polls if p.tool == "reader" and p.phase == "first")
        print(
            f"feedwatch, first poll of round 1: {first.extra['totals']['failed']} feeds failed, "
            f"{first.extra['totals']['alerts']} alerts; reader: {len(reader.extra['errors'])} "
            "feeds broken after its first update:"
        )
        for kind, count in Counter(
            e.split(":", 1)[0] for e in reader.extra["errors"].values()
        ).most_common():
            print(f"  {count:4d}  {kind}")

        check = compare(docs, server.port, snapshot, args.disagreements)

    print(
        f"\nidentical results: {check['agree']} of {check['entries']} feedparser entries "
        f"({check['percent']:.2f}%) stored by feedwatch with equal id, title, link and dates; "
        f"{check['disagreements']} disagreements listed in {check['report']}"
    )
    for row in check["by_field_and_reason"]:
        print(f"  {row['count']:6d}  {row['field']:8s} {row['reason']}")

    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "feeds": len(docs),
                    "bytes": size,
                    "runs": args.runs,
                    "server": args.server,
                    "polls": [p.__dict__ for p in polls],
                    "summary": medians,
                    "identical_results": check,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Time `feedwatch poll` over the shared corpus served from loopback.

Rerun with:

    .venv/bin/python benchmarks/poll_corpus.py [--runs 5] [--corpus ../shared/corpus/real]

Serves every document of the corpus (``*.xml``, ``*.atom``, ``*.rss``) from a
threaded HTTP server on 127.0.0.1
(with ETag and Last-Modified, answering 304 to matching validators), writes a
feeds.yaml with one feed per file and two rules, then runs ``feedwatch poll``
twice per round into a fresh SQLite database: the first poll stores
everything, the second is almost all 304. Prints the median wall time,
feeds/s, items/s and peak memory (max RSS of the feedwatch process) of each.
Only 127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_CORPUS = HERE.parent.parent / "shared" / "corpus" / "real"


FILES: dict[str, tuple[bytes, str, str]] = {}


class CorpusHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        entry = FILES.get(self.path)
        if entry is None:
            self.send_error(404)
            return
        body, etag, last_modified = entry
        if self.headers.get("If-None-Match") == etag:
            self.send_response(304)
            self.send_header("ETag", etag)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/xml")
        self.send_header("ETag", etag)
        self.send_header("Last-Modified", last_modified)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    # The listen backlog: 5 by default, so 16 connections opened at once lost
    # SYNs, and their retransmission cost a poll a whole second now and then.
    request_queue_size = 128


def serve(corpus: Path) -> tuple[ThreadingHTTPServer, list[str]]:
    names = []
    for path in sorted(p for p in corpus.iterdir() if p.suffix in {".xml", ".atom", ".rss"}):
        body = path.read_bytes()
        etag = '"' + hashlib.sha1(body).hexdigest() + '"'
        FILES["/" + path.name] = (
            body,
            etag,
            formatdate(path.stat().st_mtime, usegmt=True),
        )
        names.append(path.name)
    server = _Server(("127.0.0.1", 0), CorpusHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, names


def write_config(directory: Path, port: int, names: list[str]) -> Path:
    lines = [
        "fetch:",
        "  allow_networks: [127.0.0.1/32]",
        "  concurrency: 16",
        "  per_host: 16   # every feed is on one loopback host here",
        "rules:",
        "  - name: ai",
        '    query: \'"artificial intelligence" OR AI OR "machine learning"\'',
        "  - name: security",
        "    query: 'security OR terrorism OR sanctions OR \"united nations\"'",
        "feeds:",
    ]
    for i, name in enumerate(names):
        lines += [f"  - name: feed-{i:04d}", f"    url: http://127.0.0.1:{port}/{name}"]
    config = directory / "feeds.yaml"
    config.write_text("\n".join(lines) + "\n")
    return config


def run_poll(feedwatch: str, config: Path, database: str) -> tuple[float, int, dict[str, object]]:
    """Wall seconds, max RSS in KiB, and the --json summary of one `feedwatch poll`."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [feedwatch, "--config", str(config), "--database", database, "poll", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    summary = json.loads(out)
    return wall, usage.ru_maxrss, summary


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--feedwatch", default=str(Path(sys.executable).with_name("feedwatch")))
    args = parser.parse_args()

    server, names = serve(args.corpus)
    port = server.server_address[1]
    rows: dict[str, list[tuple[float, int, int, int]]] = {"first": [], "second": []}
    with tempfile.TemporaryDirectory(prefix="fw-bench-") as tmp:
        config = write_config(Path(tmp), port, names)
        for run in range(args.runs):
            db = Path(tmp) / f"run{run}.db"
            for phase in ("first", "second"):
                wall, rss, summary = run_poll(args.feedwatch, config, f"sqlite:///{db}")
                totals = summary["totals"]
                assert isinstance(totals, dict)
                rows[phase].append((wall, rss, int(totals["new"]), int(totals["failed"])))
                print(
                    f"run {run + 1} {phase:6s}: {wall:6.2f}s  new={totals['new']} "
                    f"not_modified={totals['not_modified']} failed={totals['failed']} "
                    f"alerts={totals['alerts']} rss={rss / 1024:.0f} MiB",
                    file=sys.stderr,
                )
    server.shutdown()

    print(f"\nfeedwatch poll, {len(names)} corpus feeds on 127.0.0.1, median of {args.runs} runs")
    header = ("poll", "wall s", "feeds/s", "items/s", "peak MiB", "failed")
    print("{:8s} {:>8s} {:>9s} {:>9s} {:>9s} {:>7s}".format(*header))
    first_items = statistics.median(r[2] for r in rows["first"])
    for phase, runs in rows.items():
        wall = statistics.median(r[0] for r in runs)
        peak = max(r[1] for r in runs) / 1024
        failed = max(r[3] for r in runs)
        print(
            f"{phase:8s} {wall:8.2f} {len(names) / wall:9.1f} {first_items / wall:9.0f} "
            f"{peak:9.0f} {failed:7d}"
        )
    print(f"items stored by the first poll: {first_items:.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

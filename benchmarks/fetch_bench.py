"""Client CPU of 1,000 conditional GETs answered 304, through ``HttpFetcher``.

Rerun with:

    .venv/bin/python benchmarks/fetch_bench.py [--requests 1000] [--runs 5]

A ``ThreadingHTTPServer`` on 127.0.0.1 (HTTP/1.1 keep-alive, one ETag, 304 to
a matching If-None-Match) runs in a separate process, so its CPU is not the
client's. Each run builds one ``HttpFetcher`` (``allow_networks=["127.0.0.1/32"]``,
concurrency 16, per_host 16) and sends ``--requests`` conditional GETs at once
(the fetcher's semaphores bound them). Prints, per run and as the median of
``--runs``: client CPU seconds (user + system, ``resource.getrusage`` of this
process, helper threads included), wall seconds, and the TCP connections the
server accepted during the run. Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import multiprocessing.connection
import resource
import statistics
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ETAG = '"bench-v1"'
BODY = b'<?xml version="1.0"?><rss version="2.0"><channel><title>bench</title></channel></rss>'


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    timeout = 30

    def do_GET(self) -> None:
        if self.headers.get("If-None-Match") == ETAG:
            self.send_response(304)
            self.send_header("ETag", ETAG)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/rss+xml")
        self.send_header("ETag", ETAG)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _CountingServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.connections = 0

    def get_request(self) -> Any:
        request = super().get_request()
        self.connections += 1  # only the serving thread accepts: no lock needed
        return request


def _serve(conn: multiprocessing.connection.Connection) -> None:
    """Server process: send the port, then answer "count" with connections so far."""
    import threading

    server = _CountingServer()
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}).start()
    conn.send(server.server_address[1])
    while True:
        command = conn.recv()
        if command == "count":
            conn.send(server.connections)
        else:
            server.shutdown()
            conn.send("bye")
            return


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _one_run(url: str, requests: int) -> tuple[float, float]:
    from feedwatch._model import FetchOptions
    from feedwatch.fetch import HttpFetcher

    options = FetchOptions(allow_networks=("127.0.0.1/32",), concurrency=16, per_host=16)
    cpu0, wall0 = _cpu(), time.perf_counter()
    async with HttpFetcher(options) as fetcher:
        results = await asyncio.gather(*(fetcher.fetch(url, etag=ETAG) for _ in range(requests)))
    cpu, wall = _cpu() - cpu0, time.perf_counter() - wall0
    statuses = {r.status for r in results}
    if statuses != {304}:
        raise SystemExit(f"expected only 304s, got {statuses}")
    return cpu, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    parent, child = multiprocessing.Pipe()
    proc = multiprocessing.get_context("spawn").Process(target=_serve, args=(child,))
    proc.start()
    try:
        port = parent.recv()
        url = f"http://127.0.0.1:{port}/feed"
        asyncio.run(_one_run(url, 50))  # warm-up: imports, first connections
        cpus, walls, conns = [], [], []
        for i in range(args.runs):
            parent.send("count")
            before = parent.recv()
            cpu, wall = asyncio.run(_one_run(url, args.requests))
            parent.send("count")
            opened = parent.recv() - before
            cpus.append(cpu)
            walls.append(wall)
            conns.append(opened)
            print(
                f"run {i + 1}: cpu {cpu:.3f} s  wall {wall:.3f} s  connections {opened}",
                flush=True,
            )
        print(
            f"median of {args.runs} ({args.requests} conditional GETs, 304): "
            f"cpu {statistics.median(cpus):.3f} s  wall {statistics.median(walls):.3f} s  "
            f"connections {statistics.median(conns):g}"
        )
    finally:
        parent.send("stop")
        parent.recv()
        proc.join(10)
        if proc.is_alive():
            proc.terminate()


if __name__ == "__main__":
    sys.exit(main())

"""``feedwatch run`` for real: the installed script in a subprocess, on loopback.

Sub-second intervals (the configuration allows them when ``min_interval`` does),
feeds on a loopback HTTP server, the daemon's HTTP face on a port it picks
itself (``listen: 127.0.0.1:0``; the port is read from its JSON log). Waiting
loops have generous deadlines; no assertion is about speed. The only time
checked is a lower bound: a rate-limited feed is not polled again before the
Retry-After it was given.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fakes import Entry, rss
from loopback import Exchange, LoopbackServer, send

FEEDWATCH = Path(sys.executable).with_name("feedwatch")
DEADLINE = 30.0
RETRY_AFTER = 3

DOC = rss(Entry("n-1", "New sanctions announced", "Sanctions text.", "https://example.org/1"))


class Daemon:
    """A running ``feedwatch run`` whose JSON log lines are collected as they come."""

    def __init__(self, config: Path, tmp: Path, extra_env: dict[str, str] | None = None) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDWATCH_")}
        env.update(extra_env or {})
        self.pid_file = tmp / "feedwatch.pid"
        self.proc = subprocess.Popen(
            [
                str(FEEDWATCH),
                "--config",
                str(config),
                "--log-format",
                "json",
                "run",
                "--pid-file",
                str(self.pid_file),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[dict[str, Any]] = []
        self.raw: list[str] = []
        self._new: queue.Queue[dict[str, Any]] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.raw.append(line)
            try:
                record = json.loads(line)
            except ValueError:
                continue
            self.lines.append(record)
            self._new.put(record)

    def wait_for(self, what: Callable[[dict[str, Any]], bool], label: str) -> dict[str, Any]:
        for record in list(self.lines):
            if what(record):
                return record
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            try:
                record = self._new.get(timeout=0.2)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            if what(record):
                return record
        raise AssertionError(f"no log line {label!r}; log:\n{''.join(self.raw[-40:])}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=DEADLINE)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self._reader.join(timeout=5)
            if self.proc.stderr is not None:
                self.proc.stderr.close()


def until(condition: Callable[[], bool], label: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for: {label}")


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def write_config(path: Path, site: LoopbackServer, database: str, extra_rule: str = "") -> None:
    path.write_text(
        f"""
database: {json.dumps(database)}
scheduler: {{tick: 100ms, min_interval: 200ms, interval: 300ms, dispatch: 500ms}}
server: {{listen: "127.0.0.1:0"}}
fetch: {{allow_networks: [127.0.0.1/32], timeout: 5s, connect_timeout: 2s}}
feeds:
  - {{name: calm, url: {json.dumps(site.url("/calm.xml"))}}}
  - {{name: busy, url: {json.dumps(site.url("/busy.xml"))}}}
rules:
  - {{name: sanctions, query: sanctions}}
{extra_rule}
""",
        encoding="utf-8",
    )


@pytest.fixture
def site() -> Iterator[LoopbackServer]:
    with LoopbackServer() as server:

        def calm(exchange: Exchange) -> None:
            if exchange.headers.get("If-None-Match") == '"v1"':
                send(exchange, 304, headers={"ETag": '"v1"'})
            else:
                send(exchange, 200, DOC, {"ETag": '"v1"', "Content-Type": "application/rss+xml"})

        server.route("/calm.xml", calm)
        server.reply("/busy.xml", 429, b"slow down", {"Retry-After": str(RETRY_AFTER)})
        yield server


def test_the_daemon_polls_waits_as_told_serves_reloads_and_stops(
    tmp_path: Path, site: LoopbackServer
) -> None:
    config = tmp_path / "feeds.yaml"
    write_config(config, site, f"sqlite:///{tmp_path / 'fw.db'}")
    daemon = Daemon(config, tmp_path)
    try:
        started = daemon.wait_for(lambda r: r.get("event") == "daemon started", "daemon started")
        base = f"http://{started['listen']}"

        # The calm feed is polled again and again (first 200, then 304s) ...
        until(lambda: len(site.requests_to("/calm.xml")) >= 5, "five polls of the calm feed")
        # ... while the rate-limited one waits as it was told.
        busy = site.requests_to("/busy.xml")
        assert len(busy) >= 1
        until(lambda: len(site.requests_to("/busy.xml")) >= 2, "a second poll of the busy feed")
        first, second = site.requests_to("/busy.xml")[:2]
        assert second.at - first.at >= RETRY_AFTER - 0.05  # never earlier than Retry-After

        # Every poll's log line names its feed; JSON lines throughout.
        polled = [r for r in daemon.lines if r.get("event") == "polled"]
        assert {r["feed"] for r in polled} == {"calm", "busy"}
        assert {r["status"] for r in polled if r["feed"] == "busy"} == {"rate_limited"}
        assert all("ts" in r and "level" in r for r in daemon.lines)

        status, body = get(f"{base}/healthz")
        assert status == 200, body
        assert json.loads(body)["status"] == "ok"
        status, _ = get(f"{base}/readyz")
        assert status == 200
        status, metrics = get(f"{base}/metrics")
        assert status == 200
        assert 'feedwatch_polls_total{outcome="rate_limited"}' in metrics
        assert 'feedwatch_feeds{state="rate_limited"} 1.0' in metrics
        status, body = get(f"{base}/api/v1/alerts")
        assert status == 200
        assert [a["rule"] for a in json.loads(body)["alerts"]] == ["sanctions"]

        # Reload: an invalid file is refused and the daemon goes on ...
        good = config.read_text(encoding="utf-8")
        config.write_text(good + "\n  - {name: broken, query: 'a AND'}\n", encoding="utf-8")
        pid = int(daemon.pid_file.read_text(encoding="ascii"))
        reload = subprocess.run(
            [str(FEEDWATCH), "reload", "--pid-file", str(daemon.pid_file)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert reload.returncode == 0, reload.stderr
        assert str(pid) in reload.stdout
        failed = daemon.wait_for(lambda r: r.get("event", "").startswith("reload failed"), "fail")
        assert "broken" in failed["error"]
        # ... and a valid one is taken, without a restart.
        write_config(
            config, site, f"sqlite:///{tmp_path / 'fw.db'}", "  - {name: calm-words, query: new}"
        )
        os.kill(pid, signal.SIGHUP)
        daemon.wait_for(lambda r: r.get("event") == "configuration reloaded", "reloaded")
        status, body = get(f"{base}/healthz")
        assert status == 200, body
    finally:
        code = daemon.stop()
    assert code == 0, "".join(daemon.raw[-20:])
    assert any(r.get("event") == "daemon stopped" for r in daemon.lines)
    assert not daemon.pid_file.exists()


def test_an_invalid_configuration_stops_the_daemon_at_start(tmp_path: Path) -> None:
    config = tmp_path / "feeds.yaml"
    config.write_text("scheduler: {tick: 10s, min_interval: 5s}\nfeeds: []\n", encoding="utf-8")
    result = subprocess.run(
        [str(FEEDWATCH), "--config", str(config), "run"],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("FEEDWATCH_")},
    )
    assert result.returncode == 2
    assert "tick" in result.stderr
    assert "min_interval" in result.stderr


def test_status_shows_failing_and_disabled_feeds(tmp_path: Path, site: LoopbackServer) -> None:
    site.reply("/gone.xml", 410, b"gone")
    config = tmp_path / "feeds.yaml"
    config.write_text(
        f"""
database: {json.dumps(f"sqlite:///{tmp_path / 'fw.db'}")}
fetch: {{allow_networks: [127.0.0.1/32], timeout: 5s, connect_timeout: 2s}}
feeds:
  - {{name: calm, url: {json.dumps(site.url("/calm.xml"))}}}
  - {{name: gone, url: {json.dumps(site.url("/gone.xml"))}}}
  - {{name: down, url: "http://127.0.0.1:9/feed.xml"}}
""",
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDWATCH_")}

    def feedwatch(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(FEEDWATCH), "--config", str(config), *args],
            capture_output=True,
            text=True,
            timeout=DEADLINE,
            check=False,
            env=env,
        )

    assert feedwatch("poll").returncode == 1
    status = feedwatch("status")
    as_json = json.loads(feedwatch("status", "--json").stdout)
    feeds = feedwatch("feeds")

    assert status.returncode == 1
    assert "failing" in status.stdout
    assert "down" in status.stdout
    assert "disabled" in status.stdout
    assert "gone: HTTP 410" in status.stdout
    assert as_json["feeds"] == {"ok": 1, "error": 1, "disabled": 1}
    assert [f["feed"] for f in as_json["failing"]] == ["down"]
    assert [f["feed"] for f in as_json["disabled"]] == ["gone"]
    assert as_json["deliveries"] == {"pending": 0, "oldest_pending_age": None, "failed": 0}
    assert "disabled" in feeds.stdout


def test_feedwatch_reload_asks_the_daemon_over_http(tmp_path: Path, site: LoopbackServer) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = tmp_path / "feeds.yaml"
    write_config(config, site, f"sqlite:///{tmp_path / 'fw.db'}")
    text = config.read_text(encoding="utf-8").replace(
        'server: {listen: "127.0.0.1:0"}',
        f'server: {{listen: "127.0.0.1:{port}", token: "${{FEEDWATCH_API_TOKEN}}"}}',
    )
    config.write_text(text, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDWATCH_")}
    env["FEEDWATCH_API_TOKEN"] = "s3cret"
    daemon = Daemon(config, tmp_path, extra_env={"FEEDWATCH_API_TOKEN": "s3cret"})
    try:
        daemon.wait_for(lambda r: r.get("event") == "daemon started", "daemon started")

        def reload(token: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [str(FEEDWATCH), "--config", str(config), "reload"],
                capture_output=True,
                text=True,
                timeout=DEADLINE,
                check=False,
                env={**env, "FEEDWATCH_API_TOKEN": token},
            )

        taken = reload("s3cret")
        assert taken.returncode == 0, taken.stderr
        assert "configuration reloaded" in taken.stdout
        wrong = reload("not-the-token")
        assert wrong.returncode == 1
        assert "HTTP 401" in wrong.stderr
        status, _ = get(f"http://127.0.0.1:{port}/healthz")
        assert status == 200
    finally:
        assert daemon.stop() == 0

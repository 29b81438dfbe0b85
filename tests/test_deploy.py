"""The files in ``deploy/``: systemd unit, Containerfile, compose file, example configuration.

No container engine runs here and nothing is built: the unit goes through
``systemd-analyze verify`` and ``systemd-analyze security --offline`` (skipped where
systemd-analyze is missing), the compose file is read with PyYAML, the Containerfile
with a small instruction parser, and the example configuration with ``feedwatch check``.
The image's HEALTHCHECK command is run for real against a server on 127.0.0.1.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from feedwatch.config import load_config

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
UNIT = DEPLOY / "feedwatch.service"
CONTAINERFILE = DEPLOY / "Containerfile"
COMPOSE = DEPLOY / "compose.yaml"
EXAMPLE_CONFIG = DEPLOY / "feeds.container.yaml"
FEEDWATCH = Path(sys.executable).with_name("feedwatch")
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_systemd_analyze = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed"
)


# --------------------------------------------------------------------------- systemd unit


def unit_settings(text: str) -> dict[str, dict[str, list[str]]]:
    """``{section: {key: [values in file order]}}`` of a unit file; comments skipped."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


SERVICE = unit_settings(UNIT.read_text())["Service"]


def runnable_unit(tmp_path: Path) -> Path:
    """The unit, copied to tmp_path with executables that exist on this machine."""
    kill = "/bin/kill" if Path("/bin/kill").exists() else shutil.which("kill")
    assert kill, "no kill executable for ExecReload"
    text = UNIT.read_text()
    text = text.replace("ExecStart=/opt/feedwatch/bin/feedwatch ", f"ExecStart={FEEDWATCH} ")
    text = text.replace("ExecReload=/bin/kill ", f"ExecReload={kill} ")
    assert str(FEEDWATCH) in text
    path = tmp_path / UNIT.name
    path.write_text(text)
    return path


def systemd_analyze(*args: str | Path) -> subprocess.CompletedProcess[str]:
    assert SYSTEMD_ANALYZE is not None
    return subprocess.run(
        [SYSTEMD_ANALYZE, *map(str, args)], capture_output=True, text=True, timeout=60
    )


@needs_systemd_analyze
def test_unit_verifies(tmp_path: Path) -> None:
    unit = runnable_unit(tmp_path)
    result = systemd_analyze("verify", unit)
    output = result.stdout + result.stderr
    # Problems elsewhere on the machine (other units) are not ours; ours name the file.
    ours = [line for line in output.splitlines() if unit.name in line or str(tmp_path) in line]
    assert result.returncode == 0, output
    assert ours == []


@needs_systemd_analyze
def test_verify_would_catch_a_bad_unit(tmp_path: Path) -> None:
    """The check above is not vacuous: verify reports unknown keys and bad values here."""
    unit = runnable_unit(tmp_path)
    unit.write_text(unit.read_text() + "\n[Service]\nProtectSystm=strict\nProtectHome=maybe\n")
    result = systemd_analyze("verify", unit)
    output = result.stdout + result.stderr
    ours = [line for line in output.splitlines() if unit.name in line]
    assert len(ours) == 2, output
    assert "ProtectSystm" in ours[0]
    assert "protect home" in ours[1].lower()


@needs_systemd_analyze
def test_unit_sandbox_score(tmp_path: Path) -> None:
    """`systemd-analyze security` rates the sandbox; 1.2 "OK" when written, keep it under 2."""
    unit = runnable_unit(tmp_path)
    result = systemd_analyze("security", "--offline=yes", "--no-pager", unit)
    output = result.stdout + result.stderr
    if result.returncode != 0 and "offline" in output:
        pytest.skip(f"this systemd-analyze has no --offline (systemd < 250): {output[:200]}")
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d)", output)
    assert m, output
    assert float(m[1]) <= 2.0, output


HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "PrivateMounts": "yes",
    "PrivateUsers": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes",
    "ProtectClock": "yes",
    "ProtectHostname": "yes",
    "ProtectProc": "invisible",
    "RestrictNamespaces": "yes",
    "RestrictRealtime": "yes",
    "RestrictSUIDSGID": "yes",
    "LockPersonality": "yes",
    "MemoryDenyWriteExecute": "yes",
    "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
    "SystemCallArchitectures": "native",
    "CapabilityBoundingSet": "",
    "AmbientCapabilities": "",
    "UMask": "0077",
    "RemoveIPC": "yes",
    "KeyringMode": "private",
    "DevicePolicy": "closed",
}

SERVICE_SETTINGS = {
    "Type": "exec",
    "ExecStart": "/opt/feedwatch/bin/feedwatch run --log-format json",
    "ExecReload": "/bin/kill -HUP $MAINPID",
    "DynamicUser": "yes",
    "StateDirectory": "feedwatch",
    "ConfigurationDirectory": "feedwatch",
    "WorkingDirectory": "/var/lib/feedwatch",
    "EnvironmentFile": "-/etc/feedwatch/env",
    "KillSignal": "SIGTERM",
    "Restart": "on-failure",
    "RestartPreventExitStatus": "2",
}


@pytest.mark.parametrize(("key", "value"), [*HARDENING.items(), *SERVICE_SETTINGS.items()])
def test_unit_setting(key: str, value: str) -> None:
    assert SERVICE.get(key) == [value]


def test_unit_system_call_filter() -> None:
    assert SERVICE["SystemCallFilter"] == ["@system-service", "~@privileged @resources"]
    assert SERVICE["SystemCallErrorNumber"] == ["EPERM"]


def test_unit_environment_and_timeouts() -> None:
    assert "FEEDWATCH_CONFIG=/etc/feedwatch/feeds.yaml" in SERVICE["Environment"]
    assert re.fullmatch(r"\d+s?", SERVICE["RestartSec"][0])
    # Above the daemon's graceful shutdown (a fetch in flight may take its 30 s deadline).
    assert int(SERVICE["TimeoutStopSec"][0].removesuffix("s")) >= 30
    # A memory limit is a suggestion for the operator, commented out.
    assert re.search(r"^#MemoryMax=\d+[MG]$", UNIT.read_text(), re.MULTILINE)


def test_unit_hardening_is_documented() -> None:
    readme = (DEPLOY / "README.md").read_text()
    missing = [key for key in [*HARDENING, "SystemCallFilter"] if f"`{key}=" not in readme]
    assert missing == []


# --------------------------------------------------------------------------- compose


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def test_compose_services(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"postgres", "feedwatch"}
    assert "pgdata" in compose["volumes"]


def test_compose_postgres(compose: dict[str, Any]) -> None:
    pg = compose["services"]["postgres"]
    assert pg["image"].split("/")[-1].startswith("postgres:")
    test = pg["healthcheck"]["test"]
    assert "pg_isready" in (test if isinstance(test, str) else " ".join(test))
    assert pg["environment"]["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD")
    assert any(v.startswith("pgdata:") for v in pg["volumes"])
    assert "ports" not in pg  # only the daemons reach it


def test_compose_feedwatch(compose: dict[str, Any]) -> None:
    fw = compose["services"]["feedwatch"]
    assert fw["depends_on"]["postgres"]["condition"] == "service_healthy"
    url = fw["environment"]["FEEDWATCH_DATABASE_URL"]
    assert url.startswith("postgresql+psycopg://feedwatch:${POSTGRES_PASSWORD")
    assert url.endswith("@postgres:5432/feedwatch")
    assert fw["environment"]["FEEDWATCH_API_TOKEN"].startswith("${FEEDWATCH_API_TOKEN")
    assert "./feeds.container.yaml:/etc/feedwatch/feeds.yaml:ro" in fw["volumes"]
    assert (DEPLOY / "feeds.container.yaml").is_file()
    assert fw["ports"] == ["127.0.0.1:8080:8080"]
    # The build: context is the repository root, the Containerfile relative to it.
    context = (DEPLOY / fw["build"]["context"]).resolve()
    assert context == ROOT
    assert (context / fw["build"]["dockerfile"]).resolve() == CONTAINERFILE


def test_compose_publishes_on_loopback_only(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), (name, port)


def test_compose_variables_are_in_env_example(compose: dict[str, Any]) -> None:
    required = set(re.findall(r"\$\{(\w+):\?", COMPOSE.read_text()))
    example = (DEPLOY / "env.example").read_text()
    assert required == {"POSTGRES_PASSWORD", "FEEDWATCH_API_TOKEN"}
    for var in required:
        assert re.search(rf"^{var}=", example, re.MULTILINE), var


# --------------------------------------------------------------------------- Containerfile


def instructions(text: str) -> list[tuple[str, str]]:
    """``[(INSTRUCTION, arguments)]`` with continuation lines joined, comments dropped."""
    result: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        word, _, args = line.partition(" ")
        result.append((word.upper(), args.strip()))
    assert not pending, "dangling line continuation"
    return result


CONTAINER = instructions(CONTAINERFILE.read_text())


def container_args(word: str) -> list[str]:
    return [args for w, args in CONTAINER if w == word]


def test_containerfile_is_multi_stage_on_python_slim() -> None:
    arg = container_args("ARG")[0]
    name, _, image = arg.partition("=")
    assert name == "PYTHON_IMAGE"
    assert image.endswith("python:3.12-slim")
    froms = container_args("FROM")
    assert froms == ["${PYTHON_IMAGE} AS build", "${PYTHON_IMAGE}"]
    assert any(a.startswith("--from=build /opt/feedwatch ") for a in container_args("COPY"))
    assert any("[postgres]" in a for a in container_args("RUN"))


def test_containerfile_runs_as_non_root() -> None:
    user = container_args("USER")[-1]
    assert user.split(":")[0] not in ("root", "0", "")
    # The final USER comes after the last FROM (it applies to the runtime stage).
    words = [w for w, _ in CONTAINER]
    assert len(words) - 1 - words[::-1].index("USER") > len(words) - 1 - words[::-1].index("FROM")


def test_containerfile_runtime_settings() -> None:
    assert container_args("EXPOSE") == ["8080"]
    assert json.loads(container_args("ENTRYPOINT")[-1]) == ["feedwatch", "run"]
    assert json.loads(container_args("VOLUME")[-1]) == ["/var/lib/feedwatch"]
    assert any(
        a.endswith("deploy/feeds.container.yaml /etc/feedwatch/feeds.yaml")
        for a in container_args("COPY")
    )
    assert "FEEDWATCH_CONFIG=/etc/feedwatch/feeds.yaml" in container_args("ENV")[-1]
    assert container_args("STOPSIGNAL") == ["SIGTERM"]


def test_containerfile_copies_what_exists() -> None:
    """Every COPY source (not from a stage) is in the build context, the repository root."""
    for args in container_args("COPY"):
        words = [w for w in shlex.split(args) if not w.startswith("--")]
        if args.startswith("--from="):
            continue
        for source in words[:-1]:
            assert (ROOT / source).exists(), source


def healthcheck_command() -> list[str]:
    (args,) = container_args("HEALTHCHECK")
    _, _, command = args.partition(" CMD ")
    argv = json.loads(command)
    assert isinstance(argv, list)
    return argv


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        code = self.status if self.path == "/healthz" else 404
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[http.server.ThreadingHTTPServer]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False), (None, False)])
def test_healthcheck_command(
    health_server: http.server.ThreadingHTTPServer,
    monkeypatch: pytest.MonkeyPatch,
    status: int | None,
    healthy: bool,
) -> None:
    """The image's HEALTHCHECK, run here: 200 passes; 503 and a refused connection fail."""
    argv = healthcheck_command()
    assert argv[0] == "python"
    assert "/healthz" in argv[-1]
    port = health_server.server_address[1] if status is not None else free_port()
    monkeypatch.setattr(_Health, "status", status or 200)
    env = {
        **os.environ,
        "FEEDWATCH_HEALTHCHECK_URL": f"http://127.0.0.1:{port}/healthz",
        # A proxy in the environment must not see the probe.
        "http_proxy": f"http://127.0.0.1:{free_port()}",
        "HTTP_PROXY": f"http://127.0.0.1:{free_port()}",
        "no_proxy": "",
    }
    result = subprocess.run(
        [sys.executable, *argv[1:]], env=env, capture_output=True, text=True, timeout=30
    )
    assert (result.returncode == 0) is healthy, result.stderr


# --------------------------------------------------------------------------- example config


def check(env_updates: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDWATCH_")}
    env.update(env_updates)
    return subprocess.run(
        [str(FEEDWATCH), "--config", str(EXAMPLE_CONFIG), "check"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_example_config_passes_check() -> None:
    result = check({"FEEDWATCH_API_TOKEN": "t0ken"})
    assert result.returncode == 0, result.stderr
    assert ": OK: " in result.stdout


def test_example_config_needs_the_token() -> None:
    """Listening on 0.0.0.0 without a token would leave the API open: refuse to start."""
    result = check({})
    assert result.returncode == 2
    assert "FEEDWATCH_API_TOKEN" in result.stderr


def test_example_config_for_a_container() -> None:
    config = load_config(str(EXAMPLE_CONFIG), env={"FEEDWATCH_API_TOKEN": "t0ken"})
    assert (config.server.host, config.server.port) == ("0.0.0.0", 8080)
    assert config.server.token == "t0ken"
    # The image's volume; /etc/feedwatch (beside the config) is not writable there.
    assert config.database_url == "sqlite:////var/lib/feedwatch/feedwatch.db"
    assert config.feeds

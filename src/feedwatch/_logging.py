"""Logging set-up: key=value lines (or JSON lines) on stderr. Contains no business logic.

Events are constant strings with key-value context: ``log.info("polled",
extra={"kv": {"feed": name, "status": "ok"}})`` renders as
``polled feed=un-news status=ok``; :func:`event` is the shorthand.

:func:`bind` adds key-values to every line logged in its ``with`` block, in the
same task (a ``contextvars`` variable, so concurrent polls keep theirs apart):
the pipeline binds ``feed=NAME`` around each poll, so every line of that poll,
from fetch to commit, names the feed.

``configure(fmt="json")`` writes one JSON object per line instead:
``{"ts": "...Z", "level": "info", "logger": "feedwatch.pipeline", "event": "polled",
"feed": "un-news", ...}``.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

_BOUND: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "feedwatch_log_context", default=None
)


@contextmanager
def bind(**kv: Any) -> Iterator[None]:
    """Add ``kv`` to every log line of this task inside the block."""
    current = _BOUND.get() or {}
    token = _BOUND.set({**current, **kv})
    try:
        yield
    finally:
        _BOUND.reset(token)


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    """Bound context first, then the event's own key-values (which win)."""
    bound: dict[str, Any] = getattr(record, "bound", None) or {}
    kv: dict[str, Any] = getattr(record, "kv", {})
    return {**bound, **kv}


class _ContextFilter(logging.Filter):
    """Captures the bound context when the record is made (same task)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.bound = _BOUND.get() or {}
        return True


class _KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        parts = [f"level={record.levelname.lower()}", f"logger={record.name}", record.getMessage()]
        parts += [f"{k}={_quote(v)}" for k, v in _fields(record).items()]
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created, UTC)
        out: dict[str, Any] = {
            "ts": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        for key, value in _fields(record).items():
            out.setdefault(key, value)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def _quote(value: Any) -> str:
    text = str(value)
    if not text or any(c.isspace() or c in '"=' for c in text):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time (test runners swap it)."""

    _feedwatch = True

    def __init__(self) -> None:
        super().__init__(sys.stderr)
        self.addFilter(_ContextFilter())

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(name)


def event(log: logging.Logger, level: int, name: str, **kv: Any) -> None:
    """Log event ``name`` with key-values."""
    if log.isEnabledFor(level):
        log.log(level, name, extra={"kv": kv})


#: Accepted by :func:`configure` (``--log-format``).
FORMATS = ("kv", "json")
_current = {"format": "kv"}


def current_format() -> str:
    """The format :func:`configure` last set ("kv" until then): worker processes log alike."""
    return _current["format"]


def configure(level: int = logging.WARNING, fmt: str | None = None) -> None:
    """Send feedwatch's logs to stderr as key=value lines, or JSON lines with ``fmt="json"``.

    Calling it again changes the level (and the format, when given).
    """
    root = logging.getLogger("feedwatch")
    root.setLevel(level)
    handler = next((h for h in root.handlers if getattr(h, "_feedwatch", False)), None)
    if handler is None:
        handler = _StderrHandler()
        handler.setFormatter(_KeyValueFormatter())
        root.addHandler(handler)
    if fmt is not None:
        if fmt not in FORMATS:
            raise ValueError(f"log format must be one of {', '.join(FORMATS)}, not {fmt!r}")
        handler.setFormatter(_JsonFormatter() if fmt == "json" else _KeyValueFormatter())
        _current["format"] = fmt

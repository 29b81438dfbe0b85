"""Logging set-up: key=value lines on stderr. Contains no business logic.

Events are constant strings with key-value context: ``log.info("polled",
extra={"kv": {"feed": name, "status": "ok"}})`` renders as
``polled feed=un-news status=ok``; :func:`event` is the shorthand.
"""

from __future__ import annotations

import logging
import sys
from typing import Any


class _KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        kv: dict[str, Any] = getattr(record, "kv", {})
        parts = [f"level={record.levelname.lower()}", f"logger={record.name}", record.getMessage()]
        parts += [f"{k}={_quote(v)}" for k, v in kv.items()]
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


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


def configure(level: int = logging.WARNING) -> None:
    """Send feedwatch's logs to stderr as key=value lines."""
    root = logging.getLogger("feedwatch")
    root.setLevel(level)
    if not any(getattr(h, "_feedwatch", False) for h in root.handlers):
        handler = _StderrHandler()
        handler.setFormatter(_KeyValueFormatter())
        root.addHandler(handler)

"""The worker process of :class:`feedwatch.workers.PreparePool`.

Run as ``python -m feedwatch._prepare_worker PARENT_PID [MAX_ITEMS]`` (the entries
kept of one document, ``fetch.max_items``; its default without). Reads frames from
stdin (``("rules", specs)`` or ``("job", PrepareJob)``), answers each job on
stdout with ``("ok", Prepared)``, ``("parse_error", message)`` or
``("error", description)``, and exits at the end of its input or when its
parent dies. Anything else that writes to stdout (a stray print) is sent to
stderr instead, so it cannot corrupt the frames.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import logging
import os
import pickle
import signal
import sys
import traceback
from collections.abc import Callable
from typing import Any, BinaryIO

from ._logging import bind, configure
from ._model import DEFAULT_MAX_ITEMS, PrepareJob
from .exceptions import ParseError
from .prepare import prepare
from .rules import Matcher, compile_rules
from .workers import HEADER, LOG_FORMAT_ENV, frame

_PR_SET_PDEATHSIG = 1
#: Return freed heap pages to the system after this many documents, or after
#: any document larger than _BIG_DOCUMENT bytes.
_TRIM_EVERY = 16
_BIG_DOCUMENT = 1 << 20
#: Bytes a pipe to the parent holds (Linux's default is 64 KiB).
_PIPE_SIZE = 1 << 20


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None where there is none (musl, macOS)."""
    try:
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


def _die_with_parent(parent: int) -> None:
    """Exit when the process that started us dies (even by SIGKILL), so no orphan
    keeps parsing."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):  # pragma: no cover - no prctl here
            pass
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _widen_pipe(fd: int) -> None:
    """Make a pipe to the parent hold 1 MiB instead of 64 KiB (Linux; best effort).

    A document or a reply then crosses in one or a few writes: asyncio's pipe
    transport writes what the pipe takes and moves the rest of its buffer down
    after every write, which costs the parent quadratic time on a 64 KiB pipe.
    """
    setpipe = getattr(fcntl, "F_SETPIPE_SZ", None)
    if setpipe is None:  # pragma: no cover - not Linux
        return
    with contextlib.suppress(OSError):  # not a pipe, or over /proc/sys/fs/pipe-max-size
        fcntl.fcntl(fd, setpipe, _PIPE_SIZE)


def _read(stream: BinaryIO) -> tuple[str, Any] | None:
    header = stream.read(HEADER.size)
    if len(header) < HEADER.size:
        return None
    (size,) = HEADER.unpack(header)
    payload = stream.read(size)
    if len(payload) < size:
        return None
    message: tuple[str, Any] = pickle.loads(payload)
    return message


def _answer(job: PrepareJob, matcher: Matcher, max_items: int) -> tuple[str, object]:
    try:
        with bind(feed=job.feed):  # every line logged while preparing names the feed
            return "ok", prepare(job, matcher, max_items=max_items)
    except ParseError as exc:
        return "parse_error", exc.message
    except Exception as exc:
        return "error", "".join(traceback.format_exception_only(exc)).strip()


def main() -> None:
    _die_with_parent(int(sys.argv[1]))
    max_items = int(sys.argv[2]) if len(sys.argv) > 2 else DEFAULT_MAX_ITEMS
    # Keep fd 1 for the frames; everything else printed goes to stderr.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    for fd in (0, out.fileno()):
        _widen_pipe(fd)
    sys.stdout = sys.stderr
    stdin = sys.stdin.buffer
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the parent to handle
    fmt = os.environ.get(LOG_FORMAT_ENV)
    configure(logging.WARNING, fmt if fmt in ("kv", "json") else None)
    trim = _malloc_trim()
    matcher = compile_rules(())
    done = 0
    while True:
        message = _read(stdin)
        if message is None:
            return
        kind, value = message
        if kind == "rules":
            matcher = compile_rules(value)
            continue
        out.write(frame(_answer(value, matcher, max_items)))
        out.flush()
        done += 1
        if trim is not None and (done % _TRIM_EVERY == 0 or len(value.content) > _BIG_DOCUMENT):
            # A big document's tree and strings are freed, but glibc keeps the
            # pages: hand them back, or every worker grows to its largest feed.
            trim(0)


if __name__ == "__main__":
    main()

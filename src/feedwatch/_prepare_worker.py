"""The worker process of :class:`feedwatch.workers.PreparePool`.

Run as ``python -m feedwatch._prepare_worker PARENT_PID``. Reads frames from
stdin (``("rules", specs)`` or ``("job", PrepareJob)``), answers each job on
stdout with ``("ok", Prepared)``, ``("parse_error", message)`` or
``("error", description)``, and exits at the end of its input or when its
parent dies. Anything else that writes to stdout (a stray print) is sent to
stderr instead, so it cannot corrupt the frames.
"""

from __future__ import annotations

import ctypes
import os
import pickle
import signal
import sys
import traceback
from typing import Any, BinaryIO

from ._model import PrepareJob
from .exceptions import ParseError
from .prepare import prepare
from .rules import Matcher, compile_rules
from .workers import HEADER, frame

_PR_SET_PDEATHSIG = 1


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


def _answer(job: PrepareJob, matcher: Matcher) -> tuple[str, object]:
    try:
        return "ok", prepare(job, matcher)
    except ParseError as exc:
        return "parse_error", exc.message
    except Exception as exc:
        return "error", "".join(traceback.format_exception_only(exc)).strip()


def main() -> None:
    _die_with_parent(int(sys.argv[1]))
    # Keep fd 1 for the frames; everything else printed goes to stderr.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    stdin = sys.stdin.buffer
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the parent to handle
    matcher = compile_rules(())
    while True:
        message = _read(stdin)
        if message is None:
            return
        kind, value = message
        if kind == "rules":
            matcher = compile_rules(value)
            continue
        out.write(frame(_answer(value, matcher)))
        out.flush()


if __name__ == "__main__":
    main()

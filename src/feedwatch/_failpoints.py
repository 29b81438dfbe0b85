"""Crash points for the delivery crash tests: ``FEEDWATCH_FAILPOINTS=after-commit``.

A named point listed in the environment variable kills the process on the spot
with SIGKILL (no cleanup, no flush), exactly as a power cut or the OOM killer
would. Names: ``after-commit`` (a poll committed alerts and deliveries, before
any is sent) and ``after-send`` (a delivery was sent, before its outcome is
recorded). Unset, this is one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

ENV = "FEEDWATCH_FAILPOINTS"


def hit(name: str) -> None:
    """Die here if ``name`` is one of the comma-separated names in ``$FEEDWATCH_FAILPOINTS``."""
    armed = os.environ.get(ENV)
    if armed and name in (part.strip() for part in armed.split(",")):
        os.kill(os.getpid(), signal.SIGKILL)

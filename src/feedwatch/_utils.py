"""Small generic parsers and formatters: durations, sizes, "did you mean" suggestions.

Contains no business logic and knows nothing of feeds, rules or configuration
files: every function takes plain values and returns plain values, and every
parser raises :class:`ValueError` with a message that can be shown to a user
as it is. Does no I/O.

Durations are written as in ``500ms``, ``30s``, ``15m``, ``1h``, ``1d``, ``2w``
or combined from the largest unit down (``1h30m``, ``1d 12h``); a bare number
is seconds. Sizes are written as in ``512KiB``, ``15MiB``, ``1GiB`` (powers of
1024) or ``10MB`` (powers of 1000); a bare integer is bytes.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation

__all__ = [
    "format_duration",
    "format_size",
    "one_line",
    "parse_duration",
    "parse_size",
    "suggest",
]

# --------------------------------------------------------------------------- durations

#: Seconds per duration unit, largest first (the order combinations must follow).
_DURATION_UNITS: dict[str, float] = {
    "w": 604800.0,
    "d": 86400.0,
    "h": 3600.0,
    "m": 60.0,
    "s": 1.0,
    "ms": 0.001,
}
_UNIT_ORDER = list(_DURATION_UNITS)
_NUMBER = r"\d+(?:\.\d+)?"
_BARE_NUMBER = re.compile(rf"{_NUMBER}\Z")
# "ms" before "m" and "s" so that the alternation takes the longest unit.
_DURATION_PART = re.compile(rf"\s*({_NUMBER})\s*(ms|w|d|h|m|s)(?![A-Za-z])")
_DURATION_HINT = "expected a number with a unit (ms, s, m, h, d, w), e.g. 30s, 15m or 1h30m"


def parse_duration(value: str | int | float) -> float:
    """Seconds in a duration: ``"1h30m"`` -> 5400.0; a bare number is seconds.

    Raises ValueError for anything else, including negative and non-finite numbers.
    """
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r}: {_DURATION_HINT}")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"invalid duration {value!r}: must be a non-negative number")
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"invalid duration {value!r}: {_DURATION_HINT}")
    text = value.strip()
    if _BARE_NUMBER.match(text):
        return float(text)
    if not text:
        raise ValueError(f"invalid duration {value!r}: {_DURATION_HINT}")
    total = 0.0
    pos = 0
    last = -1
    while pos < len(text):
        m = _DURATION_PART.match(text, pos)
        if m is None:
            raise ValueError(f"invalid duration {value!r}: {_DURATION_HINT}")
        number, unit = m.groups()
        rank = _UNIT_ORDER.index(unit)
        if rank <= last:
            raise ValueError(
                f"invalid duration {value!r}: units must go from the largest down, "
                "each at most once (e.g. 1h30m)"
            )
        last = rank
        total += float(number) * _DURATION_UNITS[unit]
        pos = m.end()
    return total


def format_duration(seconds: float) -> str:
    """The shortest exact form of ``seconds`` (to the millisecond) that parse_duration reads.

    ``5400`` -> ``"1h30m"``, ``0.5`` -> ``"500ms"``, ``90.25`` -> ``"1m30.25s"``,
    ``0`` -> ``"0s"``; negative values get a leading ``-`` (for display only).
    """
    if isinstance(seconds, bool) or not math.isfinite(seconds):
        raise ValueError(f"cannot format {seconds!r} as a duration")
    total_ms = round(seconds * 1000)
    if total_ms < 0:
        return "-" + format_duration(-total_ms / 1000)
    if total_ms == 0:
        return "0s"
    parts: list[str] = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000)):
        count, total_ms = divmod(total_ms, size)
        if count:
            parts.append(f"{count}{unit}")
    if total_ms:
        if not parts and total_ms < 1000:
            parts.append(f"{total_ms}ms")
        else:
            whole, frac = divmod(total_ms, 1000)
            parts.append(f"{whole}.{frac:03d}".rstrip("0").rstrip(".") + "s")
    return "".join(parts)


# --------------------------------------------------------------------------- sizes

_SIZE_UNITS: dict[str, int] = {
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
_SIZE = re.compile(rf"({_NUMBER})\s*([A-Za-z]*)\Z")
_SIZE_HINT = "expected bytes or a number with a unit (B, KiB, MiB, GiB, KB, MB, GB), e.g. 15MiB"
_BINARY_NAMES = (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024))
_DECIMAL_NAMES = (("TB", 1000**4), ("GB", 1000**3), ("MB", 1000**2), ("KB", 1000))


def parse_size(value: str | int) -> int:
    """Bytes in a size: ``"15MiB"`` -> 15728640, ``"10MB"`` -> 10000000; a bare integer is bytes.

    Units are case-insensitive. A fractional number is allowed with a unit
    (``1.5MiB``) and rounded to whole bytes. Raises ValueError otherwise.
    """
    if isinstance(value, bool):
        raise ValueError(f"invalid size {value!r}: {_SIZE_HINT}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"invalid size {value!r}: must not be negative")
        return value
    if not isinstance(value, str):
        raise ValueError(f"invalid size {value!r}: {_SIZE_HINT}")
    m = _SIZE.match(value.strip())
    if m is None:
        raise ValueError(f"invalid size {value!r}: {_SIZE_HINT}")
    number, unit = m.groups()
    multiplier = _SIZE_UNITS.get(unit.lower() or "b")
    if multiplier is None:
        raise ValueError(f"invalid size {value!r}: unknown unit {unit!r}; {_SIZE_HINT}")
    try:
        amount = Decimal(number) * multiplier
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only decimals
        raise ValueError(f"invalid size {value!r}: {_SIZE_HINT}") from exc
    if multiplier == 1 and amount != amount.to_integral_value():
        raise ValueError(f"invalid size {value!r}: not a whole number of bytes")
    return int(amount.to_integral_value())


def format_size(size: int) -> str:
    """A readable size: exact when a unit divides it (``"15MiB"``, ``"10MB"``, ``"700B"``),
    else approximate with one decimal in binary units (``"1.4MiB"``).
    """
    if isinstance(size, bool):
        raise ValueError(f"cannot format {size!r} as a size")
    if size < 0:
        return "-" + format_size(-size)
    if size == 0:
        return "0B"
    for names in (_BINARY_NAMES, _DECIMAL_NAMES):
        for name, multiplier in names:
            if size % multiplier == 0:
                return f"{size // multiplier}{name}"
    if size < 1024:
        return f"{size}B"
    for name, multiplier in _BINARY_NAMES:
        if size >= multiplier:
            return f"{size / multiplier:.1f}{name}"
    raise AssertionError("unreachable")  # pragma: no cover


# --------------------------------------------------------------------------- suggestions


def suggest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate closest to ``word`` if one is close enough to be a likely typo, else None."""
    matches = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


# --------------------------------------------------------------------------- messages


def one_line(text: str, limit: int = 500) -> str:
    """``text`` fit to quote in a message: one printable line, at most ``limit`` long.

    For messages that quote what a stranger sent (a server's answer or header, a
    parser's complaint about a document), which are stored, logged and shown.
    Runs of whitespace (line breaks, NEL and the separators included) become one
    space; every other character that is not printable is dropped: C0 and C1
    controls (terminal escapes among them), format characters (bidi overrides,
    zero-width ones), lone surrogates. A longer line is cut and ends with "…".
    """
    words = ("".join(ch for ch in word if ch.isprintable()) for word in text.split())
    line = " ".join(word for word in words if word)
    return line if len(line) <= limit else line[: limit - 1] + "…"

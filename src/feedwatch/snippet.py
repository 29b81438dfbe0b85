"""Pure: cut a short snippet around matched spans, for alerts shown to people."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Snippet:
    """A piece of text with the matched ranges relative to it."""

    text: str
    #: (start, end) offsets into ``text``.
    marks: tuple[tuple[int, int], ...]


def make_snippet(text: str, spans: Sequence[tuple[int, int]], width: int = 160) -> Snippet:
    """Up to ``width`` characters around the first span, with ellipses where cut.

    Spans outside ``text`` are ignored; with no span, the start of the text.
    """
    valid = sorted((s, e) for s, e in spans if 0 <= s < e <= len(text))
    if not valid:
        cut = text[:width]
        return Snippet(cut + ("…" if len(text) > width else ""), ())
    first_start, first_end = valid[0]
    room = max(width - (first_end - first_start), 0)
    start = max(first_start - room // 2, 0)
    end = min(max(first_end, start + width), len(text))
    start = max(min(start, end - width), 0)
    # Do not cut words in half where a space is near.
    if start > 0:
        space = text.find(" ", start, first_start)
        if space != -1:
            start = space + 1
    if end < len(text):
        space = text.rfind(" ", first_end, end)
        if space != -1:
            end = space
    prefix = "…" if start > 0 else ""
    suffix = "…" if end < len(text) else ""
    shift = len(prefix) - start
    marks = tuple((s + shift, e + shift) for s, e in valid if s >= start and e <= end)
    return Snippet(prefix + text[start:end] + suffix, marks)

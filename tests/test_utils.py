"""feedwatch._utils.one_line: what a message may quote of a stranger's text."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from feedwatch._utils import one_line


def test_plain_text_is_kept() -> None:
    assert one_line("HTTP 404 Not Found") == "HTTP 404 Not Found"


def test_line_breaks_become_single_spaces_and_other_controls_go() -> None:
    # NEL (\x85) and U+2028 are line breaks; CSI (\x9b), NUL, a bidi override and a
    # lone surrogate are not printable: dropped.
    text = " redirect to http://x/\r\nBcc: a@b\x9b31m\x85\x00 \u2028e\u202end\ud800 "
    assert one_line(text) == "redirect to http://x/ Bcc: a@b31m end"


def test_a_long_line_is_cut_with_an_ellipsis() -> None:
    assert one_line("a" * 10, limit=5) == "aaaa…"
    assert one_line("a" * 5, limit=5) == "aaaaa"


@given(st.text(), st.integers(min_value=1, max_value=50))
def test_the_result_is_one_printable_bounded_line(text: str, limit: int) -> None:
    line = one_line(text, limit)
    assert len(line) <= limit
    assert line.isprintable()
    assert line == line.strip()
    assert "  " not in line
    assert one_line(line, limit) == line

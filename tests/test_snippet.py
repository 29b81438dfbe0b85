from __future__ import annotations

from feedwatch.snippet import make_snippet


def test_short_text_is_kept_whole_with_marks() -> None:
    snippet = make_snippet("Regulating AI in the CIS", [(11, 13)])

    assert snippet.text == "Regulating AI in the CIS"
    assert snippet.marks == ((11, 13),)


def test_long_text_is_cut_around_the_first_span() -> None:
    text = "word " * 100 + "TARGET" + " tail" * 100
    start = text.index("TARGET")

    snippet = make_snippet(text, [(start, start + 6)], width=60)

    assert snippet.text.startswith("…")
    assert snippet.text.endswith("…")
    assert len(snippet.text) <= 62
    [(s, e)] = snippet.marks
    assert snippet.text[s:e] == "TARGET"


def test_no_span_gives_the_start() -> None:
    assert make_snippet("abc " * 100, [], width=10).text == "abc abc ab…"


def test_spans_outside_the_text_are_ignored() -> None:
    assert make_snippet("short", [(3, 99)]).marks == ()

"""The matcher's lazy work per field: sound, and invisible in the results.

Phase 1 analyses only the chunks that may satisfy a unit; the others are never
looked at again. So token positions (for phrases and NEAR) are not summed over
every chunk's analysis but counted in the text between the chunks with units
(``text.count_tokens``, ``matcher._bases``); a field gets positional postings
only when a phrase or NEAR has all its words in it (``_Seq.occ``), and offsets
alone otherwise; a barren chunk after a compound start is dismissed without
analysis when it cannot continue the compound (``matcher._cannot_continue``).
These tests check each against what it replaces, over every code point where
that matters, random texts and real ones, and check that matching with the
slow variants gives the same alerts and spans.
"""

from __future__ import annotations

import functools
import itertools
import random
import re
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feedwatch._model import MatchInput, RuleSpec
from feedwatch.rules import compile_rules, matcher
from feedwatch.rules._stem import profile_for
from feedwatch.rules.matcher import RuleSet, _bases, _build_postings, _cannot_continue
from feedwatch.rules.text import chunk_tokens, count_tokens, token_spans

REAL = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus" / "real"

RULES = [
    RuleSpec("ai", '"artificial intelligence" OR AI OR "machine learning" OR ИИ OR IA'),
    RuleSpec("ct", "counter-terrorism OR terrorism OR terroriste OR antiterroriste"),
    RuleSpec("near", "sanctions NEAR/3 (oil OR gas) OR (data ONEAR/2 model*)"),
    RuleSpec("slop", '"security council"~2 OR "совет безопасности" OR "open source"'),
    RuleSpec("ru", '"искусственный интеллект" OR терроризм OR антитеррористический'),
    RuleSpec("mixed", "(learning OR intelligence) AND NOT (cooking NEAR/5 recipe)"),
    RuleSpec("joined", 'counter-terror* OR "anti terror"'),  # joins to barren chunks
]


# --------------------------------------------------------------------------- token counts


def all_characters() -> list[str]:
    return [chr(cp) for cp in range(sys.maxunicode + 1) if not 0xD800 <= cp <= 0xDFFF]


def test_no_token_spans_whitespace() -> None:
    """Every character ``str.split`` splits on separates tokens: the tokens of a text
    are those of its chunks, so they can be counted in the text."""
    spaces = [ch for ch in all_characters() if ch.isspace()]
    assert len(spaces) > 20
    for ch in spaces:
        assert token_spans(f"a{ch}b") == [(0, 1), (2, 3)], hex(ord(ch))
        assert token_spans(f"a\u00ad{ch}\u200bb") == [(0, 1), (4, 5)], hex(ord(ch))


def test_a_letter_or_digit_is_a_token_wherever_python_says_so() -> None:
    """``one_word`` (hence ``chunk_tokens``) takes a chunk whose core is ``isalnum``
    for one token without the tokenizer: the tokenizer agrees on every such character."""
    wrong = [ch for ch in all_characters() if ch.isalnum() and token_spans(f"{ch}{ch}") != [(0, 2)]]
    assert wrong == []


def test_ascii_tokens_are_runs_of_letters_and_digits() -> None:
    alnum = re.compile("[A-Za-z0-9]")
    for cp in range(128):
        ch = chr(cp)
        if alnum.match(ch):
            assert token_spans(f"{ch}a{ch}") == [(0, 3)]
        else:
            assert token_spans(f"a{ch}b") == [(0, 1), (2, 3)], cp


# Letters, digits, marks, invisible characters, hyphens, punctuation and all sorts of
# whitespace: every way a chunk can be split into tokens.
TEXT_ALPHABET = (
    "abcXYZ019" + "éßıİﬁ" + "яЁи" + "αΩ" + "\u0301\u0306" + "\u00ad\u200b\u2060\ufeff"
    "-\u2011\u2013\u2014'’.,«»()" + " \t\n\u00a0\u2003\u3000\x1c"
)


def slow_count(text: str, start: int, end: int) -> int:
    """What positions used to be built from: the tokens of each chunk in between."""
    return sum(len(chunk_tokens(chunk).spans) for chunk in text[start:end].split())


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=TEXT_ALPHABET, max_size=60), st.data())
def test_count_tokens_is_the_sum_over_the_chunks(text: str, data: st.DataObject) -> None:
    # Cut points at whitespace: the ends of the text and every end of a chunk.
    cuts = sorted({0, len(text), *(m.end() for m in re.finditer(r"\S+", text))})
    start = data.draw(st.sampled_from(cuts))
    end = data.draw(st.sampled_from([c for c in cuts if c >= start]))
    for ascii_text in {text.isascii(), False}:
        got = count_tokens(text, start, end, ascii_text=ascii_text)
        assert got == slow_count(text, start, end)


# --------------------------------------------------------------------------- inputs


@functools.cache
def samples() -> tuple[MatchInput, ...]:
    texts = [
        "The Security Council met; the council on security, then security and the council.",
        "Artificial intelligence (AI) and machine-learning: artificial — intelligence; "
        "machine learning models, data-driven model building and data model* checks.",
        "Sanctions on oil. Sanctions, then gas; oil sanctions, sanctions — on — gas!",
        "Counter terrorism and counter-terrorism; counter‑ terrorism, counter terror-ism.",
        "Совет Безопасности ООН, совет по безопасности: искусственный интеллект и ИИ; "
        "искусственного интеллекта, терроризм.",
        "Open-source, open source, and (open) source: learning about cooking a recipe.",
        "in the intelligence in tel aviv; an titerroriste, anti terroriste, in “tel” ...",
        "Counter terror-ism, counter terror.ism, anti terror. Antiterror (anti terror-)",
    ]
    if REAL.is_dir():
        rng = random.Random(4)
        files = sorted(REAL.iterdir())
        for path in rng.sample(files, min(30, len(files))):
            text = re.sub(r"<[^>]+>", " ", path.read_text("utf-8", errors="replace"))
            texts += [text[i : i + 3000] for i in range(0, min(len(text), 30_000), 3000)]
    return tuple(
        MatchInput(title=t[:90], content=t, author=t[-30:], lang=lang)
        for t in texts
        for lang in (None, "en", "ru")
    )


def fields_of(rules: RuleSet, item: MatchInput) -> list[tuple[matcher._Lang, matcher._FieldData]]:
    lang = rules._lang(profile_for(item.lang))
    out = []
    for text in (item.title, item.content, item.author):
        data = rules._field(lang, text, set())
        if data is not None:
            out.append((lang, data))
    return out


def test_bases_are_token_positions_up_to_a_shift() -> None:
    rules = compile_rules(RULES)
    assert isinstance(rules, RuleSet)
    checked = 0
    for item in samples():
        for lang, data in fields_of(rules, item):
            chunks, text = data.chunks, data.text
            indices = [i for i, c in enumerate(chunks) if c in data.wanted]
            if len(indices) < 2:
                continue
            offsets = matcher._offsets(text, chunks, indices)
            got = _bases(lang, text, chunks, indices, offsets)
            sizes = [len(chunk_tokens(c).spans) for c in chunks]
            true = list(itertools.accumulate(sizes, initial=0))
            first = indices[0]
            assert {i: got[i] for i in indices} == {i: true[i] - true[first] for i in indices}
            checked += 1
    assert checked > 20


def test_postings_exist_exactly_for_the_units_of_a_field() -> None:
    """What lets a phrase skip a field without postings: a unit has postings in a
    field if and only if the field satisfies it, with positions or without."""
    rules = compile_rules(RULES)
    assert isinstance(rules, RuleSet)
    checked = 0
    for item in samples():
        for lang, data in fields_of(rules, item):
            with_positions = _build_postings(lang, data, True)
            offsets_only = _build_postings(lang, data, False)
            assert set(with_positions) == data.present
            assert set(offsets_only) == data.present
            # The same occurrences in the same order (by offset) either way.
            for unit, found in with_positions.items():
                assert [p[2:] for p in found] == [p[2:] for p in offsets_only[unit]]
                assert found == sorted(found)
            checked += 1
    assert checked > 50


# --------------------------------------------------------------------------- compound starts


def test_cannot_continue_is_sound() -> None:
    """A chunk dismissed after a compound start has no first token that goes on from
    it to a prefix of a compound target (what the analysis would check)."""
    rules = compile_rules(RULES)
    assert isinstance(rules, RuleSet)
    lang = rules._lang(profile_for("en"))
    prefixes, heads = rules._prefixes, sorted(rules._heads)
    chunks = {c for item in samples() for c in item.content.split()}
    rng = random.Random(2)
    letters = "teligrnoscaбеиз" + "TELIЁ" + "-'’“(.," + "é\u0301"
    chunks = set(rng.sample(sorted(chunks), min(len(chunks), 2000)))
    chunks.update(
        "".join(rng.choice(letters) for _ in range(rng.randint(1, 8))) for _ in range(2000)
    )
    dismissed = 0
    for chunk in sorted(chunks):
        info = rules._chunk(lang, chunk)
        for head in heads:
            if not _cannot_continue(head, chunk, prefixes):
                continue
            dismissed += 1
            assert info.first is None or (head + info.first[0].folded[:3]) not in prefixes
    assert dismissed > 10_000


# --------------------------------------------------------------------------- with and without


def slow_count_tokens(text: str, start: int, end: int, *, ascii_text: bool) -> int:
    return slow_count(text, start, end)


def offsets_from_positional(self: matcher._Item, field: int) -> dict[int, list[matcher.Posting]]:
    return self.postings(field)


def all_units(self: matcher._Item, field: int) -> set[int]:
    """Every unit of the field as far as postings go: no field is skipped early."""
    return set(self.postings(field))


def never(head: str, chunk: str, prefixes: object) -> bool:
    return False


def test_matching_is_the_same_without_the_lazy_shortcuts(monkeypatch: pytest.MonkeyPatch) -> None:
    inputs = samples()
    fast = compile_rules(RULES)
    expected = [fast.match(x) for x in inputs]
    assert sum(map(bool, expected)) > 20
    monkeypatch.setattr(matcher, "count_tokens", slow_count_tokens)
    monkeypatch.setattr(matcher._Item, "offset_postings", offsets_from_positional)
    monkeypatch.setattr(matcher._Item, "units_in", all_units)
    monkeypatch.setattr(matcher, "_cannot_continue", never)
    slow = compile_rules(RULES)
    for _ in range(2):  # the second round runs on the caches the first one filled
        assert [slow.match(x) for x in inputs] == expected

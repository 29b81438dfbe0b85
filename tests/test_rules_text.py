"""Normalisation and tokenisation for rules (feedwatch.rules.text), and the stemmer choice."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from feedwatch.rules._stem import primary_language, profile_for, stem_keys
from feedwatch.rules.text import (
    chunk_tokens,
    compile_regex,
    fold_text,
    fold_token,
    fold_word,
    is_caps,
    is_hyphen_gap,
    required_literals,
    script_of,
    tokenize,
)


@pytest.mark.parametrize(
    ("raw", "folded", "cased"),
    [
        ("Sanctions", "sanctions", "sanctions"),
        ("café", "cafe", "café"),
        ("cafe\u0301", "cafe", "café"),  # NFD input
        ("Genève", "geneve", "genève"),
        ("GENÈVE", "geneve", "genève"),
        ("Straße", "strasse", "strasse"),
        ("STRASSE", "strasse", "strasse"),
        ("ёлка", "елка", "елка"),
        ("Ёлка", "елка", "елка"),
        ("йод", "йод", "йод"),  # Cyrillic й is not и
        ("и\u0306од", "йод", "йод"),  # NFD й
        ("İstanbul", "istanbul", "i\u0307stanbul"),  # Turkish dotted I
        ("ISTANBUL", "istanbul", "istanbul"),
        ("ınternet", "internet", "ınternet"),
        ("\ufb01nance", "finance", "finance"),  # NFKC ligature
        ("\uff21\uff29", "ai", "ai"),  # full-width
        ("coun\u00adter", "counter", "counter"),  # soft hyphen
        ("counter\u200bterrorism", "counterterrorism", "counterterrorism"),
        ("œuvre", "oeuvre", "œuvre"),
        ("Łódź", "lodz", "łódź"),
        ("naïve", "naive", "naïve"),
        ("ИИ", "ии", "ии"),
        ("2231", "2231", "2231"),
        ("Ελλάδα", "ελλάδα", "ελλάδα"),  # Greek keeps its accents
        ("ударе\u0301ние", "ударе\u0301ние", "ударе\u0301ние"),  # Cyrillic keeps the stress mark
    ],
)
def test_fold_token(raw: str, folded: str, cased: str) -> None:
    f = fold_token(raw)
    assert (f.folded, f.cased) == (folded, unicodedata.normalize("NFC", cased))


@pytest.mark.parametrize(
    ("raw", "caps"),
    [
        ("UN", True),
        ("ИИ", True),
        ("СНГ", True),
        ("NATO", True),
        ("COVID19", True),
        ("Un", False),
        ("un", False),
        ("A", False),
        ("G20", False),
        ("2231", False),
        ("ÉTATS", True),
    ],
)
def test_is_caps(raw: str, caps: bool) -> None:
    assert is_caps(raw) is caps


@pytest.mark.parametrize(
    ("text", "script"),
    [
        ("sanctions", "latin"),
        ("élection", "latin"),
        ("санкции", "cyrillic"),
        ("2231", "none"),
        ("2231abc", "latin"),
        ("ελλάδα", "greek"),
        ("عربي", "arabic"),
        ("中文", "other"),
        ("Mосква", "latin"),  # mixed: the first letter decides
    ],
)
def test_script_of(text: str, script: str) -> None:
    assert script_of(text) == script


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("Counter-Terrorism Committee", ["Counter", "Terrorism", "Committee"]),
        ("l'intelligence artificielle", ["l", "intelligence", "artificielle"]),
        ("l’intelligence", ["l", "intelligence"]),
        ("coun\u00adter\u00adterrorism", ["coun\u00adter\u00adterrorism"]),
        ("end\u00ad of line", ["end", "of", "line"]),
        ("\u200bstart", ["start"]),
        ("cafe\u0301 noir", ["cafe\u0301", "noir"]),
        ("🕊️peace🌍talks", ["peace", "talks"]),
        ("G20, 2231 (2015).", ["G20", "2231", "2015"]),
        ("UN-led", ["UN", "led"]),
        ("a_b", ["a", "b"]),
        ("\u0301alone", ["alone"]),
        ("", []),
    ],
)
def test_tokenize_keeps_original_offsets(text: str, tokens: list[str]) -> None:
    found = tokenize(text)
    assert [t.raw for t in found] == tokens
    assert all(text[t.start : t.end] == t.raw for t in found)


def test_chunk_tokens_know_hyphen_joins() -> None:
    chunk = chunk_tokens("counter\u2011terrorism,co.operation")
    assert chunk.raws == ("counter", "terrorism", "co", "operation")
    assert chunk.joins == (True, False, False)
    assert [f.folded for f in chunk.folded] == ["counter", "terrorism", "co", "operation"]


@pytest.mark.parametrize(
    ("gap", "joins"),
    [
        ("-", True),
        ("\u2010", True),
        ("\u2011", True),
        ("\u2013", True),
        ("\u2212", True),
        ("\u00ad-", True),
        (" ", True),
        ("\n", True),
        ("\u2014", False),
        (" - ", False),
        ("--", False),
        (". ", False),
        ("/", False),
        ("", False),
    ],
)
def test_is_hyphen_gap(gap: str, joins: bool) -> None:
    assert is_hyphen_gap(gap) is joins


# --------------------------------------------------------------------------- whole texts


@pytest.mark.parametrize(
    ("text", "folded"),
    [
        ("Resolution 2231", "resolution 2231"),
        ("Genève à GENÈVE", "geneve a geneve"),
        ("Straße", "strasse"),
        ("Ёлка", "елка"),
        ("и\u0306од", "йод"),
        ("cafe\u0301", "cafe"),
        ("coun\u00adter", "counter"),
        ("\ufb01n", "fin"),
        ("œuvre…", "oeuvre..."),
        ("a\u00a0b", "a b"),
        ("İ", "i"),
    ],
)
def test_fold_text(text: str, folded: str) -> None:
    assert fold_text(text).text == folded


_TEXTS = st.lists(
    st.one_of(
        st.sampled_from([*"aé-. \u00ad\u200b\u0301\u0306ßﬁİИиЁё…\u00a0", "œ", "Straße"]),
        st.characters(),
    ),
    max_size=30,
).map("".join)


@settings(database=None, max_examples=400, deadline=None)
@given(text=_TEXTS)
def test_fold_text_maps_every_character_back(text: str) -> None:
    folded = fold_text(text)
    previous_end = 0
    for i, ch in enumerate(folded.text):
        start, end = folded.original_span(i, i + 1)
        assert 0 <= start < end <= len(text)
        assert start >= previous_end or start == folded.original_span(max(i - 1, 0), i)[0]
        previous_end = start
        # The character comes from (the fold of) that original range.
        assert ch in fold_word(text[start:end]) or ch in text[start:end].casefold()


@settings(database=None, max_examples=400, deadline=None)
@given(text=_TEXTS)
# A combining mark outside the combining-diacritics blocks (U+1CF00, Unicode 14)
# after a Latin letter: dropped by both.
@example(text="a\u00ad\U0001cf00")
def test_tokens_fold_like_the_whole_text(text: str) -> None:
    """Every folded token occurs in the folded text: regex literals can be checked on tokens."""
    whole = fold_text(text).text
    for token in tokenize(text):
        assert fold_token(token.raw).folded in whole


@pytest.mark.parametrize(
    "text",
    [
        "a" * 100_000,
        "a\u00ad" * 50_000,
        "-" * 100_000,
        "é\u0301" * 50_000,
        ("word " * 20_000),
        "\u200b" * 100_000,
    ],
)
def test_long_texts_tokenise_and_fold(text: str) -> None:
    """Linear, no pathological backtracking: these finish (no timing asserted)."""
    tokens = tokenize(text)
    assert sum(t.end - t.start for t in tokens) <= len(text)
    assert len(fold_text(text).text) <= 2 * len(text)


# --------------------------------------------------------------------------- regexes


@pytest.mark.parametrize(
    ("pattern", "literals"),
    [
        (r"\bres(?:olution)? ?\d{4}\b", ("res",)),
        ("sanctions", ("sanctions",)),
        ("Sanctions", ("sanctions",)),
        ("counter.?terrorism", ("terrorism",)),
        ("un|united nations", ("un", "nations")),
        ("ab?c", None),
        ("colou?r", ("colo",)),
        ("x{0,2}yz", ("yz",)),
        ("ab{2}cd", ("ab",)),
        ("[abc]def", ("def",)),
        (r"\d+", None),
        ("(?x) a b c", None),
        (r"\pLabc", ("abc",)),
        (r"\p{Lu}xyz", ("xyz",)),
        (r"(a)\1bcd", ("bcd",)),
        (r"(?P<w>ab)(?P=w)cd", ("cd",)),
        ("genève", ("geneve",)),
        ("terror(ism|ist)s?", ("terror",)),
        ("a|", None),
    ],
)
def test_required_literals(pattern: str, literals: tuple[str, ...] | None) -> None:
    assert required_literals(compile_regex(pattern)) == literals


def test_compile_regex_folds_the_pattern_and_reports_errors() -> None:
    assert compile_regex("GENÈVE").folded_pattern == "GENeVE"  # and case-insensitive
    assert compile_regex("GENÈVE").search(fold_text("à Genève !")) == [(2, 8)]
    assert compile_regex("Ge\u0300neve").folded_pattern == "Geneve"
    assert compile_regex(r"\D\Wé").folded_pattern == r"\D\We"
    with pytest.raises(ValueError, match="missing"):
        compile_regex("(abc")


# --------------------------------------------------------------------------- stemming


@pytest.mark.parametrize(
    ("lang", "latin", "cyrillic"),
    [
        (None, "english", "russian"),
        ("", "english", "russian"),
        ("en", "english", "russian"),
        ("en-US", "english", "russian"),
        ("fr_FR", "french", "russian"),
        ("FR", "french", "russian"),
        ("ru", "english", "russian"),
        ("uk", "english", "russian"),  # no Ukrainian stemmer: by script
        ("sr", "serbian", "serbian"),
        ("zz", "english", "russian"),
    ],
)
def test_profile_for(lang: str | None, latin: str, cyrillic: str) -> None:
    profile = dict(profile_for(lang))
    assert (profile["latin"], profile["cyrillic"]) == (latin, cyrillic)


def test_primary_language() -> None:
    assert primary_language("en-US") == "en"
    assert primary_language(" pt_BR ") == "pt"
    assert primary_language("") is None
    assert primary_language(None) is None


def test_stem_keys_see_accents_both_ways() -> None:
    accented = set(stem_keys("french", "securite", "sécurité"))
    plain = set(stem_keys("french", "securite", "securite"))
    assert accented & plain
    assert stem_keys("russian", "интеллекта", "интеллекта") == ("интеллект",)

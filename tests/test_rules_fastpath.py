"""The matcher's fast paths for finding the chunks of a field to look at, against
the general versions they replace (kept here as oracles).

* ``RuleSet._field``: the barren chunks are removed with ``set.difference`` and a
  new one-word ASCII chunk is tried by ``_quick_barren``'s first test inline;
* ``RuleSet._quick_barren``: a chunk with non-ASCII punctuation is searched as it
  is, not after mapping that punctuation to spaces (``str.translate``);
* ``text.chunk_tokens``: an ASCII chunk is tokenised with ``re`` and its hyphen
  gaps read directly;
* ``RuleSet.match``: the item's language tag is mapped to its profile's caches once.

Each is compared with the version it replaced over hand-picked edge cases and
hypothesis-generated input; the matches must be identical (rules, order, spans).
"""

from __future__ import annotations

import re
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feedwatch._model import MatchInput, RuleSpec
from feedwatch.rules import text
from feedwatch.rules._stem import profile_for
from feedwatch.rules.matcher import (
    _JOIN,
    _JOIN_ONLY,
    _LANG_TAGS_LIMIT,
    _QUICK_CYRILLIC,
    _QUICK_PUNCTUATION,
    RuleSet,
    _cannot_continue,
    _FieldData,
    _Lang,
)
from feedwatch.rules.text import EDGE_PUNCTUATION

# --------------------------------------------------------------------------- oracles

_QUICK_TABLE = str.maketrans(dict.fromkeys(_QUICK_PUNCTUATION, " "))
_only_russian = re.compile(f"[\\x00-\\x7f{_QUICK_CYRILLIC}]*").fullmatch


def quick_barren_oracle(lang: _Lang, chunk: str) -> bool:
    """``RuleSet._quick_barren`` as it was: punctuation mapped to spaces first."""
    quick = lang.quick
    if quick is None:
        return False
    core = chunk if chunk.isalnum() else chunk.strip(EDGE_PUNCTUATION)
    if core.isascii():
        if core.isalnum():
            return core[:2].lower() not in quick
    else:
        core = core.translate(_QUICK_TABLE)
        if not core.isascii() and not (lang.quick_cyrillic and _only_russian(core)):
            return False
    pattern = lang.quick_re
    return pattern is not None and pattern.search(core) is None


class OracleRuleSet(RuleSet):
    """A rule set whose phase 1 is the general version (``difference_update``, every
    new chunk through the translating quick test)."""

    def _quick_barren(self, lang: _Lang, chunk: str) -> bool:
        return quick_barren_oracle(lang, chunk)

    def _field(self, lang: _Lang, text: str, present: set[int]) -> _FieldData | None:
        if not text:
            return None
        chunks = text.split()
        rest = set(chunks)
        rest.difference_update(lang.barren)
        if not rest:
            return None
        known, barren = lang.chunks, lang.barren
        new = rest.difference(known)
        if new:
            for chunk in new:
                if self._quick_barren(lang, chunk):
                    barren.add(chunk)
                else:
                    self._chunk(lang, chunk)
            rest.difference_update(barren)
            if not rest:
                return None
        units_of = lang.units
        here: set[int] = set()
        here.update(*map(units_of.__getitem__, rest))
        joins: list[tuple[int, tuple[int, ...]]] = []
        if _JOIN in here:
            here.discard(_JOIN)
            lasts, prefixes = lang.lasts, self._prefixes
            for i in range(len(chunks) - 1):
                if chunks[i] not in lasts:
                    continue
                left = lasts[chunks[i]][0]
                following = chunks[i + 1]
                info = known.get(following)
                if info is None:
                    if _cannot_continue(left.folded, following, prefixes):
                        continue
                    info = self._chunk(lang, following)
                right = info.first
                if right is None:
                    continue
                if (left.folded + right[0].folded[:3]) not in prefixes:
                    continue
                units = self._compound(lang, (left, right[0]))
                if units:
                    if following not in known:
                        self._chunk(lang, following, keep=True)
                    joins.append((i, units))
                    here.update(units)
        if not here:
            return None
        wanted = {c for c in rest if units_of[c] and units_of[c] is not _JOIN_ONLY}
        present |= here
        return _FieldData(text, chunks, wanted, here, joins)


def chunk_tokens_oracle(chunk: str) -> text.Chunk:
    """``text.chunk_tokens`` without its cache and its ASCII path."""
    word = text.one_word(chunk)
    if word is not None:
        start, core = word
        return text.Chunk(((start, start + len(core)),), (core,), (text.fold_token(core),), ())
    spans = text.token_spans(chunk)
    raws = tuple(chunk[s:e] for s, e in spans)
    joins = tuple(
        text.is_hyphen_gap(chunk[spans[k][1] : spans[k + 1][0]]) for k in range(len(spans) - 1)
    )
    return text.Chunk(tuple(spans), raws, tuple(text.fold_token(r) for r in raws), joins)


def fresh_chunk_tokens(chunk: str) -> text.Chunk:
    text._chunk_cache.pop(chunk, None)
    return text.chunk_tokens(chunk)


# --------------------------------------------------------------------------- inputs

RULE_SETS = {
    "shipped": [
        RuleSpec(
            "ai",
            '"artificial intelligence" OR AI OR "machine learning" OR "искусственный интеллект"'
            ' OR ИИ OR "intelligence artificielle" OR IA',
        ),
        RuleSpec(
            "counter-terrorism",
            "counter-terrorism OR terrorism OR terrorist OR терроризм OR террорист"
            " OR антитеррористический OR contre-terrorisme OR terrorisme OR terroriste"
            " OR antiterroriste",
        ),
    ],
    "mixed": [
        RuleSpec("near", "sanctions NEAR/3 (oil OR gas)"),
        RuleSpec("prefix", "cyber* OR =dies OR e-mail"),
        RuleSpec("not", "security -football"),
        RuleSpec("fields", "title:(open-source) OR author:smith OR feed:news"),
        RuleSpec("lang", "lang:fr (gouvernement OR élections)"),
        RuleSpec("ru", '"совет безопасности" OR санкц* OR выборы OR Москва'),
        RuleSpec("compound", "anti-money-laundering OR co-operation OR webassembly"),
        RuleSpec("phrase", '"new york"~2 OR "machine" ONEAR/2 learning'),
    ],
    # A regex literal turns the quick test off: every new chunk is analysed.
    "regex": [RuleSpec("rx", "/gpt-?[0-9]+/ OR climate"), RuleSpec("w", "terror* OR ИИ")],
    # A one-letter rule word and a Russian word with a one-letter stem.
    "short": [RuleSpec("one", "a OR x OR и OR ИИ"), RuleSpec("ru", "оями OR терроризм")],
}
LANGS = (None, "en", "en-US", "fr", "de", "ru", "sr", "id")

EDGE_CHUNKS = [
    "it’s",
    "AI’s",
    "war—and",
    "«Да»",
    "«ИИ»",
    "(AI)",
    "e-mail",
    "e-scooter",
    "U.S.",
    "--",
    "-a",
    "a-",
    "co-operation",
    "counter-terrorism,",
    "counter‑terrorism’s",
    "https://www.example.com/2024/counter-terrorism-and-ai",
    "ИИ-модели",
    "2024года",
    "Москва’s",
    "Cossío",
    "naïve",
    "Mосква",
    "ter\u00adrorism",
    "in",
    "an",
    "counter",
    "terrorism",
    "Терроризма",
    "©2024",
    "№5",
    "50€",
    "…and",
]

SAMPLES = [
    "Counter terrorism: the UN adopts a resolution; artificial-intelligence rules",
    "It’s the AI’s turn—and “machine learning”… counter‑terrorism’s «new» era; e-scooters",
    "Совет Безопасности ООН: «Искусственный интеллект» и ИИ—угроза? Терроризм, "
    "антитеррористические меры, санкции; ИИ-модели, COVID-19, 2024года, ёлка",
    "Le gouvernement présente la loi antiterroriste; contre terrorisme et IA générative.",
    "Sanctions on gas and oil in New York; anti money laundering and co operation. "
    "Machine learning, then machine - learning; webassembly or web assembly; cyber-attacks.",
    "in in in an an counter counter terrorism in telligence artificial intelligence",
    " ".join(EDGE_CHUNKS),
]

CHUNK_ALPHABET = (
    "aeinoyAEINOYtcmlrsxTCMLRSX019-'.,()/_"
    + _QUICK_PUNCTUATION
    + "атеинсоАТЕИНСОёЁяЯ"
    + "éüßαΩ\u0301\u00ad\u2019"
)
WORDS = [
    *EDGE_CHUNKS,
    *(w for s in SAMPLES for w in s.split()),
    *("the", "a", "of", "in", "an", "co", "te", "ter", "terror", "int", "telligence"),
    *("machine", "learning", "artificial", "counter", "contre", "ИИ", "в", "и", "контр"),
]


def make(cls: type[RuleSet], name: str) -> RuleSet:
    return cls(RULE_SETS[name])


# --------------------------------------------------------------------------- quick test


@pytest.mark.parametrize("name", sorted(RULE_SETS))
@pytest.mark.parametrize("lang", LANGS)
def test_quick_barren_edge_cases(name: str, lang: str | None) -> None:
    rules = make(RuleSet, name)
    state = rules._lang(profile_for(lang))
    for chunk in EDGE_CHUNKS:
        assert rules._quick_barren(state, chunk) == quick_barren_oracle(state, chunk), chunk


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(sorted(RULE_SETS)),
    st.sampled_from(LANGS),
    st.text(alphabet=CHUNK_ALPHABET, min_size=1, max_size=12),
)
def test_quick_barren_is_the_translating_version(name: str, lang: str | None, chunk: str) -> None:
    rules = make(RuleSet, name)
    state = rules._lang(profile_for(lang))
    assert rules._quick_barren(state, chunk) == quick_barren_oracle(state, chunk)


def test_quick_punctuation_is_read_as_a_space() -> None:
    """The claim behind searching without translating, on every character of it."""
    rules = make(RuleSet, "shipped")
    state = rules._lang(profile_for("ru"))
    assert state.quick_re is not None
    assert state.quick_cyrillic
    for ch in _QUICK_PUNCTUATION:
        for a, b in (("x", "te"), ("te", "x"), ("ии", "о"), ("in", "2"), ("", "ai"), ("qq", "")):
            assert bool(state.quick_re.search(f"{a}{ch}{b}")) == bool(
                state.quick_re.search(f"{a} {b}")
            ), (a, ch, b)
            assert rules._quick_barren(state, f"{a}{ch}{b}") == quick_barren_oracle(
                state, f"{a}{ch}{b}"
            )


# --------------------------------------------------------------------------- chunk tokens


@pytest.mark.parametrize("chunk", [*EDGE_CHUNKS, "a", "", "-", "a--b", "a-b-c", "a.-b", "a-\tb"])
def test_chunk_tokens_edge_cases(chunk: str) -> None:
    assert fresh_chunk_tokens(chunk) == chunk_tokens_oracle(chunk)


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=string.printable + "\x00\x7f", max_size=20))
def test_ascii_chunk_tokens_are_the_tokenizers(chunk: str) -> None:
    assert fresh_chunk_tokens(chunk) == chunk_tokens_oracle(chunk)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=CHUNK_ALPHABET, max_size=12))
def test_other_chunk_tokens_unchanged(chunk: str) -> None:
    assert fresh_chunk_tokens(chunk) == chunk_tokens_oracle(chunk)


# --------------------------------------------------------------------------- phase 1 and matching


def _items(texts: list[str]) -> list[MatchInput]:
    return [
        MatchInput(
            title=t[:60], content=t, author=t[-20:], feed="news", tags=("security",), lang=lang
        )
        for t in texts
        for lang in LANGS
    ]


@pytest.mark.parametrize("name", sorted(RULE_SETS))
def test_fields_and_matches_equal_the_general_version(name: str) -> None:
    fast, slow = make(RuleSet, name), make(OracleRuleSet, name)
    items = _items(SAMPLES)
    for _ in range(2):  # the second round runs on the caches the first one filled
        for item in items:
            for field in (item.title, item.content, item.author):
                fp: set[int] = set()
                sp: set[int] = set()
                lang = profile_for(item.lang)
                got = fast._field(fast._lang(lang), field, fp)
                want = slow._field(slow._lang(lang), field, sp)
                assert got == want, field
                assert fp == sp
            assert fast.match(item) == slow.match(item)
    assert any(fast.match(item) for item in items)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(sorted(RULE_SETS)),
    st.lists(st.sampled_from(WORDS) | st.text(alphabet=CHUNK_ALPHABET, max_size=10), max_size=40),
    st.lists(st.sampled_from([" ", "  ", "\n", "\t", "\u00a0", " - "]), min_size=1),
    st.sampled_from(LANGS),
)
def test_random_items_match_as_the_general_version(
    name: str, words: list[str], seps: list[str], lang: str | None
) -> None:
    content = "".join(w + seps[i % len(seps)] for i, w in enumerate(words))
    item = MatchInput(title=content[:50], content=content, author=content[:15], lang=lang)
    assert make(RuleSet, name).match(item) == make(OracleRuleSet, name).match(item)


def test_caches_cleared_in_between_change_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tiny cache limits: barren and analysed chunks are forgotten all the time."""
    from feedwatch.rules import matcher

    monkeypatch.setattr(matcher, "_CACHE_LIMIT", 20)
    monkeypatch.setattr(matcher, "_BARREN_LIMIT", 30)
    for name in RULE_SETS:
        fast, slow = make(RuleSet, name), make(OracleRuleSet, name)
        for item in _items(SAMPLES) * 2:
            assert fast.match(item) == slow.match(item)


def test_language_tags_map_to_their_profiles_caches() -> None:
    rules = make(RuleSet, "shipped")
    fresh = make(RuleSet, "shipped")
    tags = [f"x{i}" for i in range(_LANG_TAGS_LIMIT + 50)] + ["en", "en-US", "EN", "ru", None]
    item = "Counter-terrorism and ИИ: artificial intelligence"
    for tag in tags:
        found = rules.match(MatchInput(title="", content=item, lang=tag))
        assert found == fresh.match(MatchInput(title="", content=item, lang=tag))
        assert found
    assert len(rules._lang_of_tag) == _LANG_TAGS_LIMIT
    # Tags of one profile share its caches; the map holds what profile_for says.
    for tag, lang in rules._lang_of_tag.items():
        assert lang is rules._lang(profile_for(tag))
    assert rules._langs.keys() == fresh._langs.keys()

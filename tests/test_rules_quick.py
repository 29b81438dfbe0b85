"""The matcher's shortcut for barren words: sound, and invisible in the results.

A one-word ASCII chunk whose first two letters start no rule key is declared
barren without being analysed (``RuleSet._quick_barren``). That is only sound
when a stemmer never changes a word's first two letters (a one-letter stem
turns the shortcut off); these tests check that claim for every stemmer the
shortcut trusts, over real words and random ones, and check that matching with
and without the shortcut gives the same alerts and spans.
"""

from __future__ import annotations

import functools
import random
import re
import string
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feedwatch._model import MatchInput, RuleSpec
from feedwatch.rules import compile_rules
from feedwatch.rules._stem import stem_keys
from feedwatch.rules.matcher import _STEM_EXCEPTION_STARTS, _SUFFIX_ONLY_STEMMERS, RuleSet

REAL = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus" / "real"
WORD = re.compile(r"[A-Za-z0-9]+")

# Words of the stemmers' languages, with their trickiest suffixes and prefixes.
SAMPLE_WORDS = [
    "dying",
    "lying",
    "tying",
    "skies",
    "skis",
    "idly",
    "gently",
    "ugly",
    "early",
    "only",
    "singly",
    "news",
    "howe",
    "atlas",
    "cosmos",
    "bias",
    "andes",
    "generalization",
    "relational",
    "probability",
    "valency",
    "happy",
    "cries",
    "hopping",
    "hoping",
    "conflated",
    "operator",
    "owed",
    "ties",
    "dies",
    "died",
    "lied",
    "tied",
    "eyes",
    "yes",
    "yearly",
    "yielding",
    "terrorisme",
    "contre-terrorisme",
    "antiterroriste",
    "intelligence",
    "artificielle",
    "élections",
    "gouvernement",
    "Terrorismus",
    "Anti-Terror-Gesetz",
    "Regierungen",
    "Verhandlungen",
    "terrorismo",
    "inteligencia",
    "gobiernos",
    "terrorismi",
    "intelligenza",
    "governo",
    "terrorismo",
    "inteligência",
    "terrorisme",
    "overheden",
    "terrorism",
    "regeringar",
    "terrorisme",
    "regjeringen",
    "terrorismi",
    "hallitukset",
    "terorism",
    "guvernul",
    "terrorisme",
    "govern",
]


@functools.cache
def vocabulary() -> tuple[str, ...]:
    words = {w for text in SAMPLE_WORDS for w in WORD.findall(text)}
    if REAL.is_dir():
        for path in sorted(REAL.iterdir()):
            words.update(WORD.findall(path.read_text("utf-8", errors="replace")))
    rng = random.Random(6)
    for _ in range(20_000):  # random strings exercise every rule of a stemmer
        size = rng.randint(1, 14)
        words.add("".join(rng.choice(string.ascii_lowercase + "aeiouy") for _ in range(size)))
    return tuple(sorted(words))


@pytest.mark.parametrize("algorithm", sorted(_SUFFIX_ONLY_STEMMERS))
def test_trusted_stemmers_keep_the_first_two_letters(algorithm: str) -> None:
    exceptions = _STEM_EXCEPTION_STARTS.get(algorithm, frozenset())
    wrong = []
    for word in vocabulary():
        folded = word.lower()
        for key in stem_keys(algorithm, folded, folded):
            # One-letter stems turn the shortcut off (RuleSet._quick_starts).
            if len(key) >= 2 and key[:2] != folded[:2] and folded[:2] not in exceptions:
                wrong.append((word, key))
    assert wrong == []


RULES = [
    RuleSpec("ai", '"artificial intelligence" OR AI OR "machine learning" OR ИИ OR IA'),
    RuleSpec("ct", "counter-terrorism OR terrorism OR terroriste OR antiterroriste"),
    RuleSpec("near", "sanctions NEAR/3 (oil OR gas)"),
    RuleSpec("prefix", "cyber* OR =dies"),
    RuleSpec("lang", "lang:fr gouvernement"),
]


def without_shortcut(rules: list[RuleSpec]) -> RuleSet:
    matcher = compile_rules(rules)
    assert isinstance(matcher, RuleSet)
    matcher._quick_starts = lambda lang: None  # type: ignore[method-assign]
    return matcher


def texts() -> list[MatchInput]:
    samples = [
        "Counter terrorism: the UN adopts a resolution; artificial-intelligence rules",
        "Sanctions on gas, oil and coal. Dying embers; he dies. Cyberattacks rise.",
        "Le gouvernement présente la loi antiterroriste. IA générative.",
        "Nothing to see here, just words: information, international, contest, lemon.",
        "Intel ligence and counter- terrorism, written oddly; machine-learning models.",
    ]
    if REAL.is_dir():
        rng = random.Random(1)
        files = sorted(REAL.iterdir())
        for path in rng.sample(files, min(40, len(files))):
            text = re.sub(r"<[^>]+>", " ", path.read_text("utf-8", errors="replace"))
            samples += [text[i : i + 2000] for i in range(0, min(len(text), 20_000), 2000)]
    return [
        MatchInput(title=t[:80], content=t, lang=lang)
        for t in samples
        for lang in (None, "en", "fr", "id")
    ]


def test_matching_is_the_same_with_and_without_the_shortcut() -> None:
    fast, slow = compile_rules(RULES), without_shortcut(RULES)
    inputs = texts()
    for _ in range(2):  # the second round runs on the caches the first one filled
        assert [fast.match(x) for x in inputs] == [slow.match(x) for x in inputs]
    assert any(fast.match(x) for x in inputs)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [*SAMPLE_WORDS, "in", "an", "co", "counter", "terror", "AI", "ai", "IA", "oil", "the"]
        )
        | st.text(alphabet=string.ascii_letters + " -,.", max_size=12),
        max_size=30,
    )
)
def test_random_texts_match_the_same_with_and_without_the_shortcut(words: list[str]) -> None:
    text = " ".join(words)
    item = MatchInput(title=text[:40], content=text, lang="en")
    assert compile_rules(RULES).match(item) == without_shortcut(RULES).match(item)

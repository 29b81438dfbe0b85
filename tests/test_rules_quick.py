"""The matcher's shortcut for barren words: sound, and invisible in the results.

A chunk none of whose tokens has first two letters that start a rule key is
declared barren without being analysed (``RuleSet._quick_barren``): one ASCII
word, several ASCII words (``e-scooter``, ``it's``), with non-ASCII punctuation
(``it’s``, ``war—and``), or Russian words. That is only sound when a stemmer
never changes a word's first two letters (a one-letter stem turns the shortcut
off); these tests check that claim for every stemmer the shortcut trusts, over
real words and random ones, check the characters it reads as separators, check
every chunk it declares barren against the analysis, and check that matching
with and without the shortcut gives the same alerts and spans.
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
from feedwatch.rules._stem import profile_for, stem_keys
from feedwatch.rules.matcher import (
    _QUICK_PUNCTUATION,
    _STEM_EXCEPTION_STARTS,
    _SUFFIX_ONLY_CYRILLIC_STEMMERS,
    _SUFFIX_ONLY_STEMMERS,
    RuleSet,
)
from feedwatch.rules.text import EDGE_PUNCTUATION, chunk_tokens, fold_token, token_spans

ROOT = Path(__file__).resolve().parent.parent
REAL = ROOT.parent / "shared" / "corpus" / "real"
WORD = re.compile(r"[A-Za-z0-9]+")
RUSSIAN_WORD = re.compile("[А-Яа-яЁё]+")
RUSSIAN_LETTERS = "".join(map(chr, range(0x410, 0x450))) + "Ёё"

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


# Russian words, inflected (the benchmarks' vocabularies add many more).
SAMPLE_RUSSIAN = """
терроризм терроризма терроризму терроризмом террорист террористы террористов
антитеррористический антитеррористического антитеррористическая
искусственный искусственного искусственная интеллект интеллекта интеллекту
ИИ ии её ещё идёт ёлка Ёлки объём подъёмный нн ее её ей ею их им ими
санкции санкций разведка ассамблея совет совета безопасность безопасности
министр министерство парламент правительство выборы голосование закон суд
бороться борьба боролись учиться учителя читать читающий прочитанный
машинное обучение обучения нейросеть нейросети модели модель данные данных
"""


@functools.cache
def russian_vocabulary() -> tuple[str, ...]:
    words = set(RUSSIAN_WORD.findall(SAMPLE_RUSSIAN))
    for name in ("rules_bench.py", "rules_quick.py", "rules_inflection.py"):
        path = ROOT / "benchmarks" / name
        if path.is_file():
            words.update(RUSSIAN_WORD.findall(path.read_text("utf-8")))
    rng = random.Random(7)
    alphabet = "абвгдежзийклмнопрстуфхцчшщъыьэюяё" + "аеиоуыэюяь" * 2
    for _ in range(30_000):  # random strings exercise every rule of a stemmer
        size = rng.randint(1, 16)
        words.add("".join(rng.choice(alphabet) for _ in range(size)))
    return tuple(sorted(words))


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


@pytest.mark.parametrize("algorithm", sorted(_SUFFIX_ONLY_CYRILLIC_STEMMERS))
def test_trusted_cyrillic_stemmers_only_remove_endings(algorithm: str) -> None:
    wrong = []
    for word in russian_vocabulary():
        folded = fold_token(word).folded
        assert folded == word.lower().replace("ё", "е")
        for key in stem_keys(algorithm, folded, fold_token(word).cased):
            if not folded.startswith(key):
                wrong.append((word, key))
    assert wrong == []


def test_russian_letters_fold_one_by_one() -> None:
    """What the quick pattern assumes of a token of Russian letters (all of them,
    and every pair): one token, lower case and ``ё`` -> ``е``, letter by letter."""
    for a in RUSSIAN_LETTERS:
        for word in (a, *(a + b for b in RUSSIAN_LETTERS)):
            f = fold_token(word)
            assert chunk_tokens(word).raws == (word,)
            assert f.folded == f.cased == word.lower().replace("ё", "е")
            assert f.script == "cyrillic"


@pytest.mark.parametrize("ch", sorted(set(_QUICK_PUNCTUATION + EDGE_PUNCTUATION)))
def test_quick_punctuation_is_never_in_a_token(ch: str) -> None:
    assert not ch.isspace()
    assert token_spans(ch) == []
    assert token_spans(f"a{ch}b") == [(0, 1), (2, 3)]
    assert token_spans(f"я{ch}1") == [(0, 1), (2, 3)]


RULES = [
    RuleSpec("ai", '"artificial intelligence" OR AI OR "machine learning" OR ИИ OR IA'),
    RuleSpec("ct", "counter-terrorism OR terrorism OR terroriste OR antiterroriste"),
    RuleSpec("near", "sanctions NEAR/3 (oil OR gas)"),
    RuleSpec("prefix", "cyber* OR =dies"),
    RuleSpec("lang", "lang:fr gouvernement"),
    RuleSpec("ru", '"искусственный интеллект" OR терроризм OR антитеррористический OR санкц*'),
]
#: Rule sets that turn parts of the shortcut off: a one-letter rule word, a Russian
#: word with a one-letter stem, an untrusted Latin stemmer (by language).
OTHER_RULES = [
    [RuleSpec("one", "a OR x OR и OR ИИ"), RuleSpec("ru", "оями OR терроризм")],  # stem "о"
    [RuleSpec("plain", "united OR nations OR совет OR безопасности OR e-scooter OR ёлка")],
]
LANGS = (None, "en", "fr", "de", "ru", "sr", "id")


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
        "It’s the AI’s turn—and “machine learning”… counter‑terrorism’s «new» era; e-scooters",
        "Совет Безопасности ООН: «Искусственный интеллект» и ИИ—угроза? Терроризм, "
        "антитеррористические меры, санкции; ИИ-модели, COVID-19, 2024года, ёлка, Ёжик",
        "Контр терроризм в 2024 г.; искусственного интеллекта нет—но есть «ии» и ии.",
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
        for lang in (None, "en", "fr", "id", "ru")
    ]


@pytest.mark.parametrize("rules", [RULES, *OTHER_RULES])
def test_matching_is_the_same_with_and_without_the_shortcut(rules: list[RuleSpec]) -> None:
    fast, slow = compile_rules(rules), without_shortcut(rules)
    inputs = texts()
    for _ in range(2):  # the second round runs on the caches the first one filled
        assert [fast.match(x) for x in inputs] == [slow.match(x) for x in inputs]
    assert any(fast.match(x) for x in inputs)


# Characters of random chunks: ASCII letters, digits and punctuation, the non-ASCII
# punctuation the shortcut reads as separators, Russian letters, and others it must
# not decide on (accented and Greek letters, a combining mark, a soft hyphen).
CHUNK_ALPHABET = (
    "aeinoyAEINOYtcmlrsxTCMLRSX019"
    "-'.,()/_" + _QUICK_PUNCTUATION + "атеинсоАТЕИНСОёЁяЯ" + "éüßαΩ\u0301\u00ad"
)


def chunks_to_try() -> list[str]:
    """Chunks from the samples and the real corpus, and random ones."""
    found = {c for item in texts() for c in item.content.split()}
    found.update(c for word in SAMPLE_WORDS for c in word.split())
    found.update(RUSSIAN_WORD.findall(SAMPLE_RUSSIAN))
    rng = random.Random(3)
    for _ in range(20_000):
        found.add("".join(rng.choice(CHUNK_ALPHABET) for _ in range(rng.randint(1, 9))))
    return sorted(found)


@pytest.mark.parametrize("rules", [RULES, *OTHER_RULES])
@pytest.mark.parametrize("lang", LANGS)
def test_every_chunk_decided_quickly_is_barren(rules: list[RuleSpec], lang: str | None) -> None:
    """The shortcut against the analysis itself: a chunk it calls barren satisfies
    no unit, starts no compound (and analysing it keeps it only as barren)."""
    matcher = compile_rules(rules)
    assert isinstance(matcher, RuleSet)
    decided = 0
    for chunk in chunks_to_try():
        state = matcher._lang(profile_for(lang))
        if not matcher._quick_barren(state, chunk):
            continue
        decided += 1
        matcher._chunk(state, chunk)
        assert chunk in state.barren, chunk
        assert chunk not in state.chunks, chunk
        assert chunk not in state.lasts, chunk
    # Serbian and Indonesian stemmers are not trusted: no shortcut there.
    assert (decided > 1000) is (lang not in ("sr", "id"))


def test_what_turns_the_shortcut_off() -> None:
    matcher = compile_rules(RULES)
    assert isinstance(matcher, RuleSet)
    russian = matcher._lang(profile_for("ru"))
    assert russian.quick is not None
    assert russian.quick_cyrillic
    assert matcher._quick_barren(russian, "«Совет,")
    assert matcher._quick_barren(russian, "Asperger’s")
    assert matcher._quick_barren(russian, "e-scooter")
    assert not matcher._quick_barren(russian, "Терроризма")  # "те" starts a key
    assert not matcher._quick_barren(russian, "AI’s")
    assert not matcher._quick_barren(russian, "2024года")  # a token of both scripts
    assert not matcher._quick_barren(russian, "Cossío")  # an accented letter
    # Serbian stems Latin (and Cyrillic) words: no shortcut at all.
    assert matcher._lang(profile_for("sr")).quick is None
    # A Russian rule word whose stem is one letter: Cyrillic chunks are analysed.
    one = compile_rules(OTHER_RULES[0])
    assert isinstance(one, RuleSet)
    state = one._lang(profile_for("ru"))
    assert state.quick is not None
    assert not state.quick_cyrillic
    assert not one._quick_barren(state, "совет")
    assert one._quick_barren(state, "council")
    assert not one._quick_barren(state, "a")  # a one-letter rule word
    assert one._quick_barren(state, "ab")


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                *SAMPLE_WORDS,
                *RUSSIAN_WORD.findall(SAMPLE_RUSSIAN),
                *("in", "an", "co", "counter", "terror", "AI", "ai", "IA", "oil", "the"),
                *("в", "и", "контр", "искусственный", "ИИ-модели", "AI’s", "«ИИ»"),
            ]
        )
        | st.text(alphabet=string.ascii_letters + " -,.’—«»ИиТтеЁ", max_size=12),
        max_size=30,
    ),
    st.sampled_from(LANGS),
)
def test_random_texts_match_the_same_with_and_without_the_shortcut(
    words: list[str], lang: str | None
) -> None:
    text = " ".join(words)
    item = MatchInput(title=text[:40], content=text, lang=lang)
    assert compile_rules(RULES).match(item) == without_shortcut(RULES).match(item)

"""Stemming for rules: Snowball stemmers (PyStemmer) by language, with a bounded cache.

Pure (no I/O, no clock). The only module of feedwatch importing ``Stemmer``.

Which stemmer a token gets is decided here: :func:`profile_for` turns an
item's language tag into a map script -> stemmer. The item's language wins for
tokens in that language's script (``fr`` -> French for Latin tokens); other
tokens, and items without a language or with one no stemmer covers
(``uk``, ``kk``, ``zh``), go by script: Latin -> English, Cyrillic -> Russian,
Greek -> Greek, Arabic -> Arabic, Armenian -> Armenian, Devanagari -> Hindi,
Tamil -> Tamil; other scripts are not stemmed. There is no Ukrainian Snowball
stemmer: Ukrainian text is stemmed as Russian, which joins most regular
inflections.

:func:`stem_keys` gives the keys a word is compared by in one language: the
stem of its accent-folded form and the accent-folded stem of its cased form
(a French stemmer strips ``-é`` only when it sees the accent). Two words match
when their keys meet.

Does NOT fold or tokenise text (``text`` does) and knows nothing of rules.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Final

import Stemmer

from .text import fold_word

#: ISO 639-1 code -> (Snowball algorithm, scripts it stems).
LANGUAGES: Final[Mapping[str, tuple[str, frozenset[str]]]] = {
    code: (algorithm, frozenset(scripts.split()))
    for code, algorithm, scripts in (
        ("en", "english", "latin"),
        ("fr", "french", "latin"),
        ("de", "german", "latin"),
        ("es", "spanish", "latin"),
        ("it", "italian", "latin"),
        ("pt", "portuguese", "latin"),
        ("nl", "dutch", "latin"),
        ("sv", "swedish", "latin"),
        ("da", "danish", "latin"),
        ("no", "norwegian", "latin"),
        ("nb", "norwegian", "latin"),
        ("nn", "norwegian", "latin"),
        ("fi", "finnish", "latin"),
        ("et", "estonian", "latin"),
        ("hu", "hungarian", "latin"),
        ("ro", "romanian", "latin"),
        ("tr", "turkish", "latin"),
        ("ca", "catalan", "latin"),
        ("eu", "basque", "latin"),
        ("ga", "irish", "latin"),
        ("lt", "lithuanian", "latin"),
        ("id", "indonesian", "latin"),
        ("cs", "czech", "latin"),
        ("pl", "polish", "latin"),
        ("eo", "esperanto", "latin"),
        ("st", "sesotho", "latin"),
        ("ru", "russian", "cyrillic"),
        ("sr", "serbian", "latin cyrillic"),
        ("el", "greek", "greek"),
        ("hy", "armenian", "armenian"),
        ("ar", "arabic", "arabic"),
        ("fa", "persian", "arabic"),
        ("hi", "hindi", "devanagari"),
        ("ne", "nepali", "devanagari"),
        ("ta", "tamil", "tamil"),
        ("yi", "yiddish", "hebrew"),
    )
}

#: Script -> stemmer for tokens whose item language does not say.
DEFAULT_BY_SCRIPT: Final[Mapping[str, str]] = {
    "latin": "english",
    "cyrillic": "russian",
    "greek": "greek",
    "armenian": "armenian",
    "arabic": "arabic",
    "devanagari": "hindi",
    "tamil": "tamil",
}

#: Stemmer algorithm -> scripts whose words it stems (query side: which rule words
#: need keys for it).
ALGORITHM_SCRIPTS: Final[Mapping[str, frozenset[str]]] = {
    algorithm: scripts for algorithm, scripts in LANGUAGES.values()
}

#: A map script -> stemmer algorithm, as a hashable tuple of pairs.
Profile = tuple[tuple[str, str], ...]

DEFAULT_PROFILE: Final[Profile] = tuple(sorted(DEFAULT_BY_SCRIPT.items()))

_profiles: dict[str | None, Profile] = {}


def primary_language(lang: str | None) -> str | None:
    """``"en-US"`` -> ``"en"``; None or blank -> None."""
    if not lang:
        return None
    primary = lang.strip().replace("_", "-").split("-", 1)[0].lower()
    return primary or None


def profile_for(lang: str | None) -> Profile:
    """Script -> stemmer for an item in language ``lang`` (a BCP 47 tag or None)."""
    hit = _profiles.get(lang)
    if hit is not None:
        return hit
    by_script = dict(DEFAULT_BY_SCRIPT)
    known = LANGUAGES.get(primary_language(lang) or "")
    if known is not None:
        algorithm, scripts = known
        for script in scripts:
            by_script[script] = algorithm
    profile = tuple(sorted(by_script.items()))
    if len(_profiles) < 1000:
        _profiles[lang] = profile
    return profile


_local = threading.local()
_CACHE_LIMIT: Final = 30_000
#: algorithm -> word -> stem.
_stem_cache: dict[str, dict[str, str]] = {}


def _stemmer(algorithm: str) -> Stemmer.Stemmer:
    # Stemmer objects are not thread-safe: one per thread and algorithm.
    stemmers: dict[str, Stemmer.Stemmer] | None = getattr(_local, "stemmers", None)
    if stemmers is None:
        stemmers = _local.stemmers = {}
    stemmer = stemmers.get(algorithm)
    if stemmer is None:
        stemmer = stemmers[algorithm] = Stemmer.Stemmer(algorithm)
        stemmer.maxCacheSize = 0  # ours is in front (and its LRU is slow on new words)
    return stemmer


def stem(algorithm: str, word: str) -> str:
    """The Snowball stem of ``word`` (already lower-case) by ``algorithm``."""
    cache = _stem_cache.get(algorithm)
    if cache is None:
        cache = _stem_cache[algorithm] = {}
    hit = cache.get(word)
    if hit is None:
        hit = str(_stemmer(algorithm).stemWord(word))
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        cache[word] = hit
    return hit


def stem_keys(algorithm: str, folded: str, cased: str) -> tuple[str, ...]:
    """The keys a word is compared by in ``algorithm``'s language (one or two)."""
    first = stem(algorithm, folded)
    if cased == folded:
        return (first,)
    second = fold_word(stem(algorithm, cased))
    return (first,) if second == first else (first, second)

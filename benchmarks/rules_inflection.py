"""Measure inflection matching: Snowball (PyStemmer) vs pymorphy3 vs simplemma.

Run:

    .venv/bin/python benchmarks/rules_inflection.py

Reads the pairs in ``tests/data/rules_inflection.yaml`` (a word as a rule would
hold it, another form as an item would, and whether an analyst wants them to
match) and reports, per method and language, how many pairs it gets right,
how many wanted pairs it misses and how many unwanted pairs it merges, plus
the cost per token (uncached) on the words of the table. Methods:

* ``snowball``: the PyStemmer stem of the folded word (lower-case, Latin
  accents stripped), one key per word;
* ``snowball+accents``: the keys feedwatch uses (``feedwatch.rules._stem.stem_keys``):
  the stem of the folded word and the folded stem of the accented one;
* ``pymorphy3``: Russian only; the set of normal forms of every parse (two
  words match when the sets meet);
* ``simplemma``: the lemma in the pair's language;
* ``feedwatch``: the whole matcher, a rule ``a`` against an item ``b`` in the
  pair's language (also applies the short-word and capitals rules).

This script is a development tool: it imports the candidate libraries itself
(pymorphy3 and simplemma are not dependencies of feedwatch).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import yaml

from feedwatch._model import MatchInput, RuleSpec
from feedwatch.rules import compile_rules
from feedwatch.rules._stem import LANGUAGES, stem_keys
from feedwatch.rules.text import fold_token

CASES = Path(__file__).resolve().parent.parent / "tests" / "data" / "rules_inflection.yaml"


def _load() -> list[tuple[str, str, str, bool]]:
    data = yaml.safe_load(CASES.read_text(encoding="utf-8"))
    return [(row[0], str(row[1]), str(row[2]), bool(row[3])) for row in data["pairs"]]


def main() -> None:
    import pymorphy3
    import Stemmer
    from simplemma import Lemmatizer

    pairs = _load()
    rss0 = _rss_mib()
    morph = pymorphy3.MorphAnalyzer()
    morph.parse("тест")
    rss1 = _rss_mib()
    lemmatizer = Lemmatizer(cache_max_size=0)
    for lang in ("en", "ru", "fr"):
        lemmatizer.lemmatize("test", lang)
    rss2 = _rss_mib()
    stemmers = {lang: Stemmer.Stemmer(LANGUAGES[lang][0]) for lang in ("en", "ru", "fr")}
    for stemmer in stemmers.values():
        stemmer.maxCacheSize = 0

    def snowball(lang: str, word: str) -> set[str]:
        return {stemmers[lang].stemWord(fold_token(word).folded)}

    def snowball_accents(lang: str, word: str) -> set[str]:
        f = fold_token(word)
        return set(stem_keys(LANGUAGES[lang][0], f.folded, f.cased))

    def morphy(lang: str, word: str) -> set[str] | None:
        if lang != "ru":
            return None
        return {p.normal_form.replace("ё", "е") for p in morph.parse(word.casefold())}

    def lemma(lang: str, word: str) -> set[str]:
        return {fold_token(lemmatizer.lemmatize(word.casefold(), lang)).folded}

    def whole(lang: str, a: str, b: str) -> bool:
        matcher = compile_rules([RuleSpec("r", a)])
        return bool(matcher.match(MatchInput(title="", content=b, lang=lang)))

    keyed: dict[str, Callable[[str, str], set[str] | None]] = {
        "snowball": snowball,
        "snowball+accents": snowball_accents,
        "pymorphy3": morphy,
        "simplemma": lemma,
    }
    print(f"{len(pairs)} pairs from {CASES.name}\n")
    header = f"{'method':<18} {'lang':<4} {'right':>7} {'missed':>7} {'merged':>7}"
    print(header)
    print("-" * len(header))
    for name in [*keyed, "feedwatch"]:
        totals = [0, 0, 0, 0]
        for lang in ("en", "ru", "fr"):
            right = missed = merged = total = 0
            for pair_lang, a, b, same in pairs:
                if pair_lang != lang:
                    continue
                if name == "feedwatch":
                    got: bool | None = whole(lang, a, b)
                else:
                    ka, kb = keyed[name](lang, a), keyed[name](lang, b)
                    got = None if ka is None or kb is None else bool(ka & kb)
                if got is None:
                    continue
                total += 1
                right += got == same
                missed += same and not got
                merged += got and not same
            if not total:
                continue
            for i, v in enumerate((right, missed, merged, total)):
                totals[i] += v
            print(f"{name:<18} {lang:<4} {right:>3}/{total:<3} {missed:>7} {merged:>7}")
        right, missed, merged, total = totals
        print(
            f"{name:<18} {'all':<4} {right:>3}/{total:<3} {missed:>7} {merged:>7}"
            f"   {100 * right / total:.0f}%\n"
        )

    # Cost per token, uncached: every word of the table, each method called directly.
    words = {
        lang: sorted({w for pl, a, b, _ in pairs if pl == lang for w in (a, b)})
        for lang in ("en", "ru", "fr")
    }
    rounds = 200
    print(f"cost per token (caches off, {rounds} rounds over the table's words):")
    for name, call in (
        ("snowball", lambda lang, w: stemmers[lang].stemWord(w)),
        ("pymorphy3", lambda lang, w: morph.parse(w)),
        ("simplemma", lambda lang, w: lemmatizer.lemmatize(w, lang)),
    ):
        for lang, ws in words.items():
            if name == "pymorphy3" and lang != "ru":
                continue
            lowered = [w.casefold() for w in ws]
            start = time.perf_counter()
            for _ in range(rounds):
                for w in lowered:
                    call(lang, w)
            per = (time.perf_counter() - start) / (rounds * len(lowered)) * 1e6
            print(f"  {name:<10} {lang}: {per:6.2f} us/token")
    print(
        f"memory: pymorphy3 (ru dictionaries) +{rss1 - rss0:.0f} MiB RSS, "
        f"simplemma (en, ru, fr) +{rss2 - rss1:.0f} MiB; Snowball needs no dictionary"
    )


def _rss_mib() -> float:
    """Resident memory of this process (Linux; 0 elsewhere)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except OSError:
        return 0.0
    return pages * 4096 / 2**20


if __name__ == "__main__":
    main()

"""Quick timing of the rule matcher on a simple generated set (not the official benchmark).

Run:

    .venv/bin/python benchmarks/rules_quick.py                 # 5,000 items x 100 and 10,000 rules
    .venv/bin/python benchmarks/rules_quick.py --items 2000 --rules 100 1000
    .venv/bin/python benchmarks/rules_quick.py --profile 10000 # cProfile one pass, top functions

Items are about 1 KB of text in English (half), Russian and French (a quarter
each), drawn with a Zipf distribution from a vocabulary of real words (the
domain terms, inflected) and generated ones, with a title, a language, tags,
an author and a feed. Rules mix terms (mostly uncommon words, as real alert
rules are), phrases, AND/OR/NOT, NEAR/ONEAR, field scopes, prefixes, ``=``
exact words, ``lang:``/``tag:`` filters and a few regexes. Each size is
compiled once, warmed on the first 500 items (the per-process token caches
fill), then timed over all items on one CPU; a naive loop (one ``re`` pattern
per rule word, every rule tried on every item) is timed on the first items for
the speed-up. ``benchmarks/rules_bench.py`` is the official benchmark.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import re
import sys
import time
from collections.abc import Sequence

from feedwatch._model import MatchInput, RuleSpec
from feedwatch.rules import compile_rules


def _split(text: str) -> list[str]:
    return text.split()


_EN = _split(
    """
the of and to in a is that for on with as by at from it be this are was which an or has
have not but their its were been will also more than they other after new two all
security council resolution sanctions terrorism terrorist terrorists counter-terrorism
artificial intelligence assembly general secretary minister ministers ministry foreign
affairs human rights nations united member states state report reports meeting meetings
parliament parliamentary delegation delegations cooperation development sustainable
climate change peace peacekeeping mission missions election elections elected vote votes
treaty agreement agreements negotiations negotiating talks crisis refugees refugee
migration humanitarian aid assistance economic economy trade financial laundering money
cyber attack attacks weapons nuclear proliferation disarmament conference committee
strategy strategies policy policies government governments law laws court justice
investigation investigations regional region international global summit declaration
"""
)
_RU = _split(
    """
и в на с по о для не что из к от это как а также при его их был была были будет совет
безопасности резолюция резолюции санкции санкций терроризм терроризма терроризму
терроризмом искусственный интеллект искусственного интеллекта ассамблея генеральная
генерального секретаря министр министра министерство иностранных дел права человека
государства государств государствах член члены доклад заседание заседания парламент
парламентская делегация сотрудничество сотрудничества развитие устойчивого климата мир
миротворческая миссия выборы выборов голосование договор соглашение переговоры кризис
беженцы миграция гуманитарная помощь экономический экономика торговля отмывание денег
кибератака оружие ядерного разоружение конференция комитет стратегия политика
правительство закон суд правосудие расследование региональный международный саммит
декларация снг межпарламентская
"""
)
_FR = _split(
    """
le la les de des du et à en un une est que pour sur avec par au aux dans il elle ils ont
a été sera plus pas ce cette ces qui leur conseil sécurité résolution sanctions
terrorisme terroriste terroristes contre-terrorisme intelligence artificielle assemblée
générale secrétaire ministre ministres ministère affaires étrangères droits homme
nations unies états état membre membres rapport réunion parlement parlementaire
délégation coopération développement durable climat paix mission élections élection vote
traité accord accords négociations crise réfugiés migration aide humanitaire économique
économie commerce blanchiment argent cyberattaque armes nucléaire désarmement conférence
comité stratégie politique gouvernement loi tribunal justice enquête régional
international sommet déclaration genève
"""
)
_SYLLABLES = {
    "en": _split("ka ter lo mar pen vis dor ran sel tin bro gan mel por tes"),
    "ru": _split("ка тер ло мар пен вис дор ран сел тин бро ган мел пор тес"),
    "fr": _split("ka tèr lo mar pen vis dor ran sél tin bro gan mél por tés"),
}
_LANGS = ("en", "en", "ru", "fr")
_TAGS = ("security", "un", "cis", "ai", "human-rights", "economy", "climate")


def _vocabulary(lang: str, real: list[str], rnd: random.Random, size: int = 3000) -> list[str]:
    words = list(dict.fromkeys(real))
    seen = set(words)
    syllables = _SYLLABLES[lang]
    while len(words) < size:
        word = "".join(rnd.choice(syllables) for _ in range(rnd.randint(2, 4)))
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


def _zipf_weights(n: int) -> list[float]:
    return [1.0 / (rank + 1) for rank in range(n)]


def generate(items: int, seed: int = 7) -> tuple[dict[str, list[str]], list[MatchInput]]:
    rnd = random.Random(seed)
    vocab = {
        "en": _vocabulary("en", _EN, rnd),
        "ru": _vocabulary("ru", _RU, rnd),
        "fr": _vocabulary("fr", _FR, rnd),
    }
    weights = {lang: _zipf_weights(len(words)) for lang, words in vocab.items()}
    out: list[MatchInput] = []
    for _ in range(items):
        lang = rnd.choice(_LANGS)
        words, w = vocab[lang], weights[lang]
        sentences = []
        size = 0
        while size < 1000:
            sentence = rnd.choices(words, w, k=rnd.randint(8, 20))
            sentence[0] = sentence[0].capitalize()
            text = " ".join(sentence) + rnd.choice((".", ".", ",", ";", "?"))
            sentences.append(text)
            size += len(text) + 1
        title = " ".join(rnd.choices(words, w, k=rnd.randint(5, 10))).capitalize()
        out.append(
            MatchInput(
                title=title,
                content=" ".join(sentences),
                author=rnd.choice(("Staff", "UN News", "Пресс-служба", "Service de presse")),
                feed=rnd.choice(("un-news", "ipa-cis", "mfa-fr")),
                tags=tuple(rnd.sample(_TAGS, rnd.randint(0, 3))),
                lang=rnd.choice((lang, lang, f"{lang}-{lang.upper()}", None)),
            )
        )
    return vocab, out


def generate_rules(vocab: dict[str, list[str]], count: int, seed: int = 11) -> list[RuleSpec]:
    rnd = random.Random(seed)

    def word(lang: str | None = None, rare: bool = True) -> str:
        words = vocab[lang or rnd.choice(_LANGS)]
        lo = 100 if rare else 0
        return rnd.choice(words[lo:])

    rules: list[RuleSpec] = []
    for i in range(count):
        lang = rnd.choice(_LANGS)
        kind = rnd.random()
        if kind < 0.35:
            query = word(lang)
        elif kind < 0.50:
            query = f'"{word(lang, False)} {word(lang)}"'
        elif kind < 0.62:
            query = f"{word(lang)} AND {word(lang, False)}"
        elif kind < 0.72:
            query = f"{word(lang)} OR {word(lang)} OR {word()}"
        elif kind < 0.77:
            query = f"{word(lang)} NOT {word(lang, False)}"
        elif kind < 0.82:
            op = rnd.choice(("NEAR", "ONEAR"))
            query = f"{word(lang)} {op}/{rnd.randint(1, 8)} {word(lang, False)}"
        elif kind < 0.87:
            query = f"{rnd.choice(('title', 'content', 'text'))}:{word(lang)}"
        elif kind < 0.91:
            query = f"{word(lang)[:4]}*"
        elif kind < 0.94:
            query = f"={word(lang)}"
        elif kind < 0.98:
            filt = rnd.choice((f"lang:{lang}", f"tag:{rnd.choice(_TAGS)}"))
            query = f"{filt} AND {word(lang)}"
        elif kind < 0.99:
            query = f'{word(lang)} -"{word(lang, False)} {word(lang, False)}"'
        else:
            query = f"/{re.escape(word(lang)[:5])}\\w* \\d+/"
        rules.append(RuleSpec(f"r{i}", query))
    return rules


# --------------------------------------------------------------------------- naive baseline


def _naive(rules: Sequence[RuleSpec]) -> list[list[re.Pattern[str]]]:
    """Per rule, one case-insensitive word-boundary pattern per word; all must match."""
    out = []
    for rule in rules:
        words = re.findall(r"[^\W_]{2,}", rule.query)
        words = [w for w in words if w not in ("AND", "OR", "NOT", "NEAR", "ONEAR")]
        out.append([re.compile(rf"\b{re.escape(w)}\w*\b", re.IGNORECASE) for w in words])
    return out


def _time_naive(rules: Sequence[RuleSpec], items: Sequence[MatchInput]) -> float:
    patterns = _naive(rules)
    start = time.perf_counter()
    for item in items:
        text = item.title + "\n" + item.content
        for pats in patterns:
            all(p.search(text) for p in pats)
    return len(items) / (time.perf_counter() - start)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=5000)
    parser.add_argument("--rules", type=int, nargs="+", default=[100, 10_000])
    parser.add_argument("--naive-items", type=int, default=100)
    parser.add_argument("--profile", type=int, metavar="RULES", help="profile one size instead")
    args = parser.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})
    vocab, items = generate(args.items)
    mean = sum(len(i.title) + len(i.content) for i in items) / len(items)
    print(f"{len(items):,} items, mean {mean:.0f} characters; Python {sys.version.split()[0]}")
    if args.profile:
        import cProfile
        import pstats

        matcher = compile_rules(generate_rules(vocab, args.profile))
        for item in items[:500]:
            matcher.match(item)
        cProfile.runctx("for i in items: m.match(i)", {"items": items, "m": matcher}, {}, "/tmp/rq")
        pstats.Stats("/tmp/rq").sort_stats("tottime").print_stats(25)
        return 0
    print(
        f"{'rules':>7} {'compile s':>9} {'items/s':>9} {'us/item':>8} {'matches/item':>12}"
        f" {'naive items/s':>13} {'speed-up':>8}"
    )
    for count in args.rules:
        rules = generate_rules(vocab, count)
        start = time.perf_counter()
        matcher = compile_rules(rules)
        compile_s = time.perf_counter() - start
        for item in items[:500]:
            matcher.match(item)
        gc.collect()
        matches = 0
        start = time.perf_counter()
        for item in items:
            matches += len(matcher.match(item))
        rate = len(items) / (time.perf_counter() - start)
        naive = _time_naive(rules, items[: args.naive_items])
        print(
            f"{count:>7,} {compile_s:>9.2f} {rate:>9,.0f} {1e6 / rate:>8.0f}"
            f" {matches / len(items):>12.1f} {naive:>13,.1f} {rate / naive:>7.0f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The rule language: matching (data-driven tables), parsing, errors, spans, safety.

The case tables live in ``tests/data/rules_cases.yaml`` (rule, item, expected,
matched text) and ``tests/data/rules_inflection.yaml`` (inflection pairs).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feedwatch._model import MatchInput, RuleMatch, RuleSpec, Span
from feedwatch.exceptions import RuleSyntaxError
from feedwatch.rules import Matcher, check_query, compile_rules
from feedwatch.rules.query import dump, parse_query
from feedwatch.rules.text import fold_token, tokenize

DATA = Path(__file__).parent / "data"
CASES = yaml.safe_load((DATA / "rules_cases.yaml").read_text(encoding="utf-8"))
INFLECTION = yaml.safe_load((DATA / "rules_inflection.yaml").read_text(encoding="utf-8"))


def item(**fields: Any) -> MatchInput:
    fields.setdefault("title", "")
    fields.setdefault("content", "")
    fields["tags"] = tuple(fields.get("tags", ()))
    return MatchInput(**fields)


def run(query: str, **fields: Any) -> list[RuleMatch]:
    return compile_rules([RuleSpec("r", query)]).match(item(**fields))


def matches(query: str, **fields: Any) -> bool:
    return bool(run(query, **fields))


def texts_of(subject: MatchInput, spans: tuple[Span, ...]) -> list[str]:
    fields = {
        "title": subject.title,
        "content": subject.content,
        "author": subject.author,
        "feed": subject.feed,
    }
    return [f"{s.field}:{fields[s.field][s.start : s.end]}" for s in spans]


# --------------------------------------------------------------------------- the case tables


def _case_params(group: str) -> list[Any]:
    return [
        pytest.param(
            c["rule"], c["item"], c["match"], c.get("spans"), id=f"{group}-{i}-{c['rule']}"
        )
        for i, c in enumerate(CASES[group])
    ]


@pytest.mark.parametrize(
    ("rule", "fields", "expected", "spans"), _case_params("issue") + _case_params("ours")
)
def test_case_table(
    rule: str, fields: dict[str, Any], expected: bool, spans: list[str] | None
) -> None:
    subject = item(**fields)
    found = compile_rules([RuleSpec("r", rule)]).match(subject)

    assert bool(found) is expected
    if spans is not None:
        assert texts_of(subject, found[0].spans if found else ()) == spans


def test_case_table_has_our_own_cases_in_three_languages() -> None:
    ours = CASES["ours"]
    cyrillic = [c for c in ours if any("а" <= ch <= "я" for ch in c["rule"].lower())]
    french = [c for c in ours if c["item"].get("lang", "").startswith("fr") or "é" in c["rule"]]

    assert len(CASES["issue"]) == 25
    assert len(ours) >= 40
    assert len(cyrillic) >= 5
    assert len(french) >= 5


def _inflection_params() -> list[Any]:
    out = []
    for row in INFLECTION["pairs"]:
        lang, a, b, same = row[0], str(row[1]), str(row[2]), bool(row[3])
        miss = len(row) > 4 and row[4] == "miss"
        out.append(pytest.param(lang, a, b, same != miss, id=f"{lang}-{a}-{b}"))
    return out


@pytest.mark.parametrize(("lang", "rule", "text", "expected"), _inflection_params())
def test_inflection_table(lang: str, rule: str, text: str, expected: bool) -> None:
    """Snowball stemming joins regular inflections; the known misses are marked in the data."""
    assert matches(rule, content=text, lang=lang) is expected
    if lang != "fr":
        # Without a language the script decides: Latin is English, Cyrillic Russian.
        assert matches(rule, content=text) is expected


def test_inflection_table_is_big_enough() -> None:
    pairs = INFLECTION["pairs"]
    assert len(pairs) >= 40
    assert {row[0] for row in pairs} == {"en", "ru", "fr"}
    assert sum(1 for row in pairs if not row[3]) >= 10  # false-merge checks


# --------------------------------------------------------------------------- hyphens and compounds

COUNTER_TERRORISM_RULES = [
    "counter-terrorism",
    "counterterrorism",
    "counter\u2011terrorism",
    '"counter terrorism"',
    "Counter-Terrorism",
    "=counterterrorism",
]
COUNTER_TERRORISM_TEXTS = [
    "the counter-terrorism committee",
    "the counterterrorism committee",
    "the counter terrorism committee",
    "the Counter\u2011Terrorism Committee",
    "the COUNTER\u2010TERRORISM committee",
    "the counter\u00adterrorism committee",
    "the counter\u2013terrorism committee",
]


@pytest.mark.parametrize("text", COUNTER_TERRORISM_TEXTS)
@pytest.mark.parametrize("rule", COUNTER_TERRORISM_RULES)
def test_hyphen_variants_match_one_another(rule: str, text: str) -> None:
    [found] = run(rule, content=text)
    [span] = found.spans
    assert text[span.start : span.end].lower().startswith("counter")
    assert text[span.start : span.end].lower().endswith("terrorism")


@pytest.mark.parametrize(
    "text",
    [
        "we counter. Terrorism is",
        "counter, terrorism",
        "counter \u2014 terrorism",
        "counter/terrorism",
        "encounter terrorism",
    ],
)
def test_compounds_do_not_join_across_punctuation(text: str) -> None:
    assert not matches("counterterrorism", content=text)


def test_phrases_ignore_punctuation_between_words() -> None:
    assert matches('"counter terrorism"', content="we counter. Terrorism is")
    assert matches("counter-terrorism", content="counter, terrorism")


def test_compounds_are_stemmed_and_take_three_parts() -> None:
    assert matches("counterterrorism", content="counter-terrorisms")
    assert matches("antimoneylaundering", content="anti-money-laundering law")
    assert matches("counterterror*", content="counter-terrorism")
    assert matches('"counter terrorism strategy"', content="a counterterrorism strategy")


# --------------------------------------------------------------------------- acronyms


@pytest.mark.parametrize(
    ("rule", "text", "expected"),
    [
        ("UN", "UN", True),
        ("UN", "UN-led", True),
        ("UN", "(UN)", True),
        ("UN", "un café", False),
        ("UN", "Un", False),
        ("UN", "UNESCO", False),
        ("UN", "UNs", False),
        ("un", "UN", True),
        ("un", "un", True),
        ("Un", "UN", True),
        ("AI", "said", False),
        ("AI", "AI", True),
        ("ИИ", "и", False),
        ("ИИ", "И", False),
        ("ИИ", "ИИ", True),
        ("ии", "ИИ", True),
        ("NATO", "NATO's", True),
        ("NATO", "Nato", False),
        ("nato", "NATO", True),
        ("G20", "g20", True),
        ("COVID-19", "COVID-19", True),
        ("COVID-19", "Covid-19", False),
    ],
)
def test_acronyms_match_capitals_only(rule: str, text: str, expected: bool) -> None:
    assert matches(rule, content=text) is expected


def test_short_words_are_not_stemmed() -> None:
    assert not matches("tax", content="taxes")
    assert not matches("war", content="wars")
    assert matches("wars", content="war")


# --------------------------------------------------------------------------- spans


def test_spans_point_into_the_original_text() -> None:
    matcher = compile_rules([RuleSpec("ai", '"artificial intelligence" OR AI')])
    subject = MatchInput(title="AI weekly", content="On Artificial  Intelligence.")

    [match] = matcher.match(subject)

    assert match.rule == "ai"
    assert match.spans == (Span("title", 0, 2), Span("content", 3, 27))
    assert subject.content[3:27] == "Artificial  Intelligence"


@pytest.mark.parametrize(
    ("rule", "content", "expected"),
    [
        ("counterterrorism", "x coun\u00adter\u00adterrorism y", "coun\u00adter\u00adterrorism"),
        ("counterterrorism", "x counter\u200bterrorism y", "counter\u200bterrorism"),
        ("finance", "les \ufb01nances", "\ufb01nances"),
        ("strasse", "die Straße", "Straße"),
        ("cafe", "un cafe\u0301 noir", "cafe\u0301"),
        ("geneve", "a\u00a0Gene\u0300ve\u00a0!", "Gene\u0300ve"),
        ("sanctions", "\n\n  sanctions\t\tand  more sanctions  ", "sanctions"),
        ("/ge\u0300neve/", "\u00e0 GENE\u0300VE", "GENE\u0300VE"),
        ("/stra(ss|ß)e/", "ﬁ Straße", "Straße"),
    ],
)
def test_spans_survive_invisible_and_combining_characters(
    rule: str, content: str, expected: str
) -> None:
    [found] = run(rule, content=content)
    assert {content[s.start : s.end] for s in found.spans} == {expected}


def test_every_occurrence_is_highlighted_once() -> None:
    content = "Sanctions, sanctions; SANCTIONED. sanction-busting"
    [found] = run("sanctions OR sanction*", content=content)

    assert [content[s.start : s.end] for s in found.spans] == [
        "Sanctions",
        "sanctions",
        "SANCTIONED",
        "sanction",
    ]


def test_spans_of_not_branches_are_not_reported() -> None:
    [found] = run("sanctions NOT football", content="sanctions on Russia")
    assert [s.start for s in found.spans] == [0]
    [found] = run("NOT football", content="sanctions")
    assert found.spans == ()


def test_rules_come_back_in_rule_order_and_only_when_matching() -> None:
    matcher = compile_rules(
        [
            RuleSpec("b", "terrorism"),
            RuleSpec("a", "sanctions"),
            RuleSpec("c", "football"),
            RuleSpec("d", "NOT football"),
        ]
    )

    found = matcher.match(MatchInput(title="", content="sanctions and terrorism"))

    assert [m.rule for m in found] == ["b", "a", "d"]


def test_a_rule_set_matches_like_its_rules_one_by_one() -> None:
    rules = [
        RuleSpec(f"r{i}", q)
        for i, q in enumerate(
            [
                "sanctions",
                '"security council"',
                "sanctions AND Iran",
                "sanctions OR embargo",
                "sanctions NOT Iran",
                "Iran NEAR/2 sanctions",
                "title:sanctions",
                "lang:en AND council",
                "tag:un",
                "sanct*",
                "=sanction",
                "/council \\d+/",
                "NOT embargo",
                "counterterrorism",
                "UN",
            ]
        )
    ]
    together = compile_rules(rules)
    alone = [compile_rules([r]) for r in rules]
    subjects = [
        item(title="Sanctions on Iran", content="the Security Council 2231 met", lang="en"),
        item(content="an embargo; the UN counter terrorism office", tags=["UN"]),
        item(title="", content="sanction sanctions sanctioned Iran", lang="fr"),
        item(title="Council", content=""),
    ]
    for subject in subjects:
        expected = [m for one in alone for m in one.match(subject)]
        assert together.match(subject) == expected


# --------------------------------------------------------------------------- the parser


@pytest.mark.parametrize(
    ("query", "tree"),
    [
        ("a OR b c", "(OR a (AND b c))"),
        ("a b OR c", "(OR (AND a b) c)"),
        ("a AND b OR c AND d", "(OR (AND a b) (AND c d))"),
        ("NOT a b", "(AND (NOT a) b)"),
        ("-a", "(NOT a)"),
        ("a -b", "(AND a (NOT b))"),
        ("--a", "(NOT (NOT a))"),
        ("NOT NOT a", "(NOT (NOT a))"),
        ("-(a OR b)", "(NOT (OR a b))"),
        ("a NEAR/3 b NEAR/2 c", "(NEAR/2 (NEAR/3 a b) c)"),
        ("a NEAR/3 b OR c", "(OR (NEAR/3 a b) c)"),
        ("NOT a NEAR/2 b", "(NOT (NEAR/2 a b))"),
        ("a ONEAR/0 b", "(ONEAR/0 a b)"),
        ("(a OR b) NEAR/5 c", "(NEAR/5 (OR a b) c)"),
        ('"a b" NEAR/1 cde*', '(NEAR/1 "a b" cde*)'),
        ("---a", "(NOT (NOT (NOT a)))"),
        ("title:a b", "(AND title:a b)"),
        ("title:(a OR b) c", "(AND (OR title:a title:b) c)"),
        ("title:(a content:b)", "(AND title:a content:b)"),
        ("text:a", "a"),
        ("TITLE:a", "title:a"),
        ("-title:a", "(NOT title:a)"),
        ("counter-terrorism", '"counter terrorism"'),
        ("l'intelligence", '"l intelligence"'),
        ('"a b"~3', '"a b"~3'),
        ('"single"', "single"),
        ("UN", "^un"),
        ("=Sanctions", "=sanctions"),
        ("Terror*", "terror*"),
        ("counter-terror*", '"counter terror*"'),
        ("lang:RU", "lang:ru"),
        ("lang:en_US", "lang:en-us"),
        ("tag:(un OR cis)", "(OR tag:un tag:cis)"),
        ("tag:secur*", "tag:secur*"),
        ('tag:"human rights"', "tag:human rights"),
        ("or and not near", "(AND or and not near)"),
        ("NEARLY", "^nearly"),
        ("12:30", '"12 30"'),
        ("Note: x", "(AND note x)"),
        ("/a\\/b/", "/a\\/b/"),
        ("title:/^x/", "title:/^x/"),
        ("a AND (b OR c)", "(AND a (OR b c))"),
        ("été", "ete"),
    ],
)
def test_parser(query: str, tree: str) -> None:
    assert dump(parse_query(query)) == tree


@pytest.mark.parametrize(
    ("query", "column", "reason"),
    [
        ('"artificial intelligence', 1, "unbalanced quote"),
        ('AI OR "machine', 7, "unbalanced quote"),
        ("AI OR", 4, "OR needs a word or phrase on each side"),
        ("OR AI", 1, "OR needs a word or phrase on each side"),
        ("AI OR OR ML", 7, "OR needs a word or phrase on each side"),
        ("a AND", 3, "AND needs a word or phrase on each side"),
        ("AND a", 1, "AND needs a word or phrase on each side"),
        ("a OR AND b", 6, "AND needs a word or phrase on each side"),
        ("", 1, "empty query"),
        ("   ", 1, "empty query"),
        ('AI OR ""', 7, "empty phrase"),
        ('AI OR "  "', 7, "empty phrase"),
        ("AI OR ---", 7, "'---' has no letters or digits"),
        ("a - b", 3, "'-' has no letters or digits"),
        ("🕊", 1, "'🕊' has no letters or digits"),
        ("(a OR b", 1, "unbalanced parenthesis"),
        ("a OR b)", 7, "unbalanced parenthesis"),
        ("(a (b)", 1, "unbalanced parenthesis"),
        (")", 1, "unbalanced parenthesis"),
        ("a ()", 3, "empty group"),
        ("title:()", 7, "empty group"),
        ("(a OR)", 4, "OR needs a word or phrase on each side"),
        ("NOT", 1, "NOT needs a word or phrase after it"),
        ("a -", 3, "'-' has no letters or digits"),
        ("a NOT", 3, "NOT needs a word or phrase after it"),
        ("a NEAR b", 3, "NEAR needs a distance: NEAR/n (e.g. NEAR/5)"),
        ("a NEAR/ b", 3, "NEAR needs a distance: NEAR/n (e.g. NEAR/5)"),
        ("a NEAR/x b", 3, "NEAR needs a distance: NEAR/n (e.g. NEAR/5)"),
        ("a ONEAR b", 3, "ONEAR needs a distance: ONEAR/n (e.g. ONEAR/5)"),
        ("a NEAR/3", 3, "NEAR/3 needs a word or phrase on each side"),
        ("NEAR/3 a", 1, "NEAR/3 needs a word or phrase on each side"),
        ("a NEAR/3 NOT b", 10, "NEAR/3 works on words, phrases, prefixes and OR-groups"),
        ("a NEAR/3 (b c)", 10, "NEAR/3 works on words, phrases, prefixes and OR-groups"),
        ("(NOT a) NEAR/3 b", 1, "NEAR/3 works on words, phrases, prefixes and OR-groups"),
        ("a NEAR/2 lang:ru", 10, "not on lang: filters"),
        ("a NEAR/2 /x/", 10, "not on regexes"),
        ("foo:bar", 1, "unknown field 'foo' (known fields: title, content, text, author"),
        ("a http://example.org", 3, "unknown field 'http'"),
        ("title:", 1, "title: needs a word, phrase, regex or group right after the colon"),
        ("a title: b", 3, "title: needs a word, phrase, regex or group right after the colon"),
        ("title:-a", 1, "title: needs a word, phrase, regex or group right after the colon"),
        ("te*", 1, "a prefix needs at least 3 letters before *"),
        ("x te*", 3, "a prefix needs at least 3 letters before *"),
        ("counter-te*", 1, "a prefix needs at least 3 letters before *"),
        ("te*st", 1, "* is only allowed at the end of a word"),
        ("=", 1, "= needs a word right after it"),
        ('"a b"~', 6, "~ needs a number of words after it"),
        ('x "a b"~x', 8, "~ needs a number of words after it"),
        ("/abc", 1, "unbalanced regex: no closing /"),
        ("a /ab\\/", 3, "unbalanced regex: no closing /"),
        ("//", 1, "empty regex"),
        ("a /(abc/", 3, "invalid regex"),
        ("/a{2,1}/", 1, "invalid regex"),
        ("tag:/x/", 5, "tag: takes a value, not a regex"),
        ("tag:*", 5, "tag: needs a value"),
    ],
)
def test_invalid_queries_name_the_column(query: str, column: int, reason: str) -> None:
    with pytest.raises(RuleSyntaxError) as info:
        check_query(query)

    assert info.value.column == column
    assert reason in info.value.reason


def test_compile_rules_names_the_invalid_rule() -> None:
    with pytest.raises(RuleSyntaxError) as info:
        compile_rules([RuleSpec("ok", "sanctions"), RuleSpec("bad", "a OR")])

    assert str(info.value) == "rule 'bad': column 3: OR needs a word or phrase on each side"
    assert info.value.rule == "bad"  # type: ignore[attr-defined]
    assert (info.value.column, info.value.query) == (3, "a OR")


def test_the_old_syntax_still_works() -> None:
    matcher: Matcher = compile_rules(
        [RuleSpec("climate", '"climate resolution"'), RuleSpec("sudan", "Sudan")]
    )
    found = matcher.match(item(title="Sudan", content="a new climate resolution"))
    assert [m.rule for m in found] == ["climate", "sudan"]


# --------------------------------------------------------------------------- safety


def test_a_catastrophic_regex_times_out_quietly(caplog: pytest.LogCaptureFixture) -> None:
    matcher = compile_rules([RuleSpec("slow", "/(a|aa)+$/"), RuleSpec("fine", "aaaa*")])
    subject = item(content="a" * 5000 + "b")

    with caplog.at_level(logging.WARNING, logger="feedwatch.rules.matcher"):
        found = matcher.match(subject)

    assert [m.rule for m in found] == ["fine"]
    assert any(r.getMessage() == "rule_regex_timeout" for r in caplog.records)


def test_a_large_item_is_matched() -> None:
    paragraph = "The Security Council adopted resolution 2231 on counter-terrorism. " * 6
    content = (paragraph + "\n\n") * 250  # ~100 KB
    matcher = compile_rules(
        [
            RuleSpec("a", "counterterrorism"),
            RuleSpec("b", '"security council" NEAR/5 resolution'),
            RuleSpec("c", "/resolution \\d+/"),
        ]
    )

    found = matcher.match(item(content=content))

    assert [m.rule for m in found] == ["a", "b", "c"]
    assert len(found[0].spans) == 1500


# --------------------------------------------------------------------------- properties

_WORDS = [
    "sanctions",
    "Sanctioned",
    "UN",
    "un",
    "ИИ",
    "терроризму",
    "café",
    "Straße",
    "counter-terrorism",
    "counter",
    "terrorism",
    "l'intelligence",
    "2231",
    "coun\u00adter",
    "e\u0301te\u0301",
]
_QUERY_PIECES = st.one_of(
    st.sampled_from(
        [
            *_WORDS,
            "AND",
            "OR",
            "NOT",
            "-",
            "(",
            ")",
            '"',
            "NEAR/2",
            "ONEAR/0",
            "NEAR",
            "title:",
            "lang:",
            "tag:",
            "foo:",
            "*",
            "=",
            "~2",
            "/",
            "/a+b/",
            "/(/",
            "/\\bun\\b/",
            '"a b"',
            '"counter terrorism"~1',
            "ter*",
        ]
    ),
    st.text(max_size=4),
)
_TEXT = st.lists(
    st.one_of(
        st.sampled_from(
            [*"aAeé-‑–—.,;:'’ \n\t\u00ad\u200b\u0301ßﬁ🕊ИиЁё", "UN", "counter", "terrorism"]
        ),
        st.sampled_from(["sanctions", " ", "  ", "ИИ", "Straße", "café"]),
        st.characters(),
    ),
    max_size=40,
).map("".join)


@settings(database=None, max_examples=300, deadline=None)
@given(pieces=st.lists(_QUERY_PIECES, max_size=8), joiner=st.sampled_from([" ", ""]), text=_TEXT)
def test_random_queries_raise_only_rule_syntax_errors(
    pieces: list[str], joiner: str, text: str
) -> None:
    query = joiner.join(pieces)
    try:
        check_query(query)
    except RuleSyntaxError as exc:
        column = exc.column
    else:
        column = 0
    if column:
        assert 1 <= column <= max(len(query), 1)
        return
    matcher = compile_rules([RuleSpec("r", query)])
    for subject in (item(content=text), item(title=text, content=text, lang="ru", tags=[text])):
        for found in matcher.match(subject):
            for span in found.spans:
                assert 0 <= span.start < span.end <= len(text)


@settings(database=None, max_examples=300, deadline=None)
@given(text=_TEXT, lang=st.sampled_from([None, "en", "ru", "fr-FR", "uk", "zz", ""]))
def test_random_texts_never_break_matching(text: str, lang: str | None) -> None:
    matcher = compile_rules(
        [RuleSpec(f"r{i}", q) for i, q in enumerate([*_WORDS[:9], "NOT x", "/a.b/"])]
    )
    for found in matcher.match(item(title=text, content=text, lang=lang)):
        for span in found.spans:
            assert 0 <= span.start < span.end <= len(text)


@settings(
    database=None,
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.filter_too_much],
)
@given(text=_TEXT, data=st.data())
def test_an_exact_word_highlights_exactly_its_tokens(text: str, data: st.DataObject) -> None:
    tokens = [t for t in tokenize(text) if not fold_token(t.raw).caps]
    if not tokens:
        return
    word = data.draw(st.sampled_from(tokens)).raw
    folded = fold_token(word).folded
    found = run(f"={word}", content=text)

    expected = {(t.start, t.end) for t in tokens if fold_token(t.raw).folded == folded}
    got = {(s.start, s.end) for m in found for s in m.spans}
    assert expected <= got
    for start, end in got - expected:  # compounds: tokens joined by hyphens or spaces
        assert "".join(fold_token(t.raw).folded for t in tokenize(text[start:end])) == folded


@settings(database=None, max_examples=150, deadline=None)
@given(
    words=st.lists(
        st.sampled_from(
            [
                "counter",
                "terrorism",
                "counter-terrorism",
                "UN",
                "sanctions,",
                "co",
                "operation",
                "Straße",
                "(Iran)",
                "l'État",
                "terror",
                "un",
            ]
        ),
        min_size=1,
        max_size=25,
    ),
    lang=st.sampled_from([None, "en", "fr"]),
)
def test_each_rule_of_a_set_highlights_its_tokens(words: list[str], lang: str | None) -> None:
    """Exact words in a set that also joins compounds: every token found, wherever joins are."""
    text = " ".join(words)
    tokens = [t for t in tokenize(text) if not fold_token(t.raw).caps]
    distinct = sorted({fold_token(t.raw).folded for t in tokens})
    rules = [RuleSpec("compound", "counterterrorism"), RuleSpec("coop", "cooperation")]
    rules += [RuleSpec(f"={w}", f"={w}") for w in distinct]
    found = {m.rule: m.spans for m in compile_rules(rules).match(item(content=text, lang=lang))}
    for word in distinct:
        expected = {(t.start, t.end) for t in tokens if fold_token(t.raw).folded == word}
        assert expected <= {(s.start, s.end) for s in found[f"={word}"]}


def _generated(seed: int) -> tuple[list[RuleSpec], list[MatchInput]]:
    """A mixed rule set and items over one small en/ru/fr vocabulary."""
    import random

    rnd = random.Random(seed)
    words = [
        "sanctions", "sanction", "Iran", "Russia", "council", "security", "UN", "counter",
        "terrorism", "counter-terrorism", "cooperation", "co-operation", "санкции",
        "санкциями", "Совет", "безопасности", "ИИ", "и", "sécurité", "conseil", "l'État",
        "2231", "embargo", "oil", "Straße", "café",
    ]  # fmt: skip
    plain = [w for w in words if "-" not in w and "'" not in w]

    def w() -> str:
        return rnd.choice(words)

    def p() -> str:
        return rnd.choice(plain)

    makers = [
        lambda: w(),
        lambda: f'"{p()} {p()}"',
        lambda: f'"{p()} {p()}"~{rnd.randint(1, 3)}',
        lambda: f"{w()} AND {w()}",
        lambda: f"{w()} OR {w()} OR {w()}",
        lambda: f"{w()} NOT {w()}",
        lambda: f"NOT {w()}",
        lambda: f"{p()} NEAR/{rnd.randint(0, 4)} {p()}",
        lambda: f"({p()} OR {p()}) ONEAR/{rnd.randint(1, 4)} {p()}",
        lambda: f"title:{w()}",
        lambda: f"{rnd.choice([x for x in plain if len(x) >= 5])[:4]}*",
        lambda: f"={p()}",
        lambda: f"lang:{rnd.choice(['en', 'ru', 'fr'])} AND {w()}",
        lambda: f"tag:{rnd.choice(['un', 'cis'])} {w()}",
        lambda: "/council \\d+|санкц\\w+/",
        lambda: "counterterrorism",
    ]
    rules = [RuleSpec(f"r{i}", rnd.choice(makers)()) for i in range(120)]
    seps = [" ", " ", " ", ", ", ". ", "  ", "\n\n", " - "]
    subjects = []
    for _ in range(40):
        text = "".join(rnd.choice(words) + rnd.choice(seps) for _ in range(rnd.randint(5, 40)))
        subjects.append(
            item(
                title=" ".join(rnd.choice(words) for _ in range(rnd.randint(0, 4))),
                content=text,
                lang=rnd.choice([None, "en", "ru-RU", "fr"]),
                tags=rnd.sample(["UN", "cis", "ai"], rnd.randint(0, 2)),
            )
        )
    return rules, subjects


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_generated_rule_set_matches_like_its_rules_one_by_one(seed: int) -> None:
    """The index, the candidate checks and the flat rules change nothing but speed."""
    rules, subjects = _generated(seed)
    together = compile_rules(rules)
    alone = [compile_rules([rule]) for rule in rules]
    for subject in subjects:
        assert together.match(subject) == [m for one in alone for m in one.match(subject)]

"""The first-version keyword matcher: words, phrases, OR, word boundaries, casefold."""

from __future__ import annotations

import pytest

from feedwatch._model import MatchInput, RuleSpec, Span
from feedwatch.exceptions import RuleSyntaxError
from feedwatch.rules import check_query, compile_rules


def matches(query: str, content: str, title: str = "") -> bool:
    matcher = compile_rules([RuleSpec("r", query)])
    return bool(matcher.match(MatchInput(title=title, content=content)))


@pytest.mark.parametrize(
    ("query", "content", "expected"),
    [
        ('"artificial intelligence"', "Regulating Artificial Intelligence in the CIS", True),
        ('"artificial intelligence"', "artificial general intelligence", False),
        ('"artificial intelligence"', "discussed artificial-intelligence safety", True),
        ('"intelligence artificial"', "artificial intelligence", False),
        ("AI", "He said the minister was unavailable", False),
        ("AI", "New AI rules", True),
        ("AI", "(AI)", True),
        ("UN", "UNESCO launched a programme", False),
        ("ИИ", "Парламент и правительство", False),
        ("ИИ", "Развитие ИИ в государствах СНГ", True),
        ("интеллект", "ИНТЕЛЛЕКТ", True),
        ("strasse", "Konferenz in der STRASSE", True),
        ("counter-terrorism", "the Counter-Terrorism Committee", True),
        ('"counter terrorism"', "Counter-Terrorism Executive Directorate", True),
        ("sanctions OR embargo", "an arms embargo", True),
        ("sanctions OR embargo", "a trade deal", False),
        ("sanctions Russia", "sanctions on Russia", True),
        ("sanctions Russia", "sanctions on Iran", False),
        ("or", "this or that", True),
        ("intelligence", "intelligences", False),
    ],
)
def test_match_table(query: str, content: str, expected: bool) -> None:
    assert matches(query, content) is expected


def test_spans_point_into_the_original_text() -> None:
    matcher = compile_rules([RuleSpec("ai", '"artificial intelligence" OR AI')])
    item = MatchInput(title="AI weekly", content="On Artificial  Intelligence.")

    [match] = matcher.match(item)

    assert match.rule == "ai"
    assert match.spans == (Span("title", 0, 2), Span("content", 3, 27))
    assert item.content[3:27] == "Artificial  Intelligence"


def test_rules_come_back_in_rule_order_and_only_when_matching() -> None:
    matcher = compile_rules(
        [RuleSpec("b", "terrorism"), RuleSpec("a", "sanctions"), RuleSpec("c", "football")]
    )

    found = matcher.match(MatchInput(title="", content="sanctions and terrorism"))

    assert [m.rule for m in found] == ["b", "a"]


@pytest.mark.parametrize(
    ("query", "column", "reason"),
    [
        ('"artificial intelligence', 1, "unbalanced quote"),
        ("AI OR", 4, "OR needs a word or phrase on each side"),
        ("OR AI", 1, "OR needs a word or phrase on each side"),
        ("AI OR OR ML", 7, "OR needs a word or phrase on each side"),
        ("", 1, "empty query"),
        ('AI OR ""', 7, "empty phrase"),
        ("AI OR ---", 7, "'---' has no letters or digits"),
    ],
)
def test_invalid_queries_name_the_column(query: str, column: int, reason: str) -> None:
    with pytest.raises(RuleSyntaxError) as info:
        check_query(query)

    assert info.value.column == column
    assert info.value.reason == reason

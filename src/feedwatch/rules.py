"""Keyword rules, first version: words and quoted phrases, ``OR`` between alternatives.

Pure: no I/O, no clock. ::

    query   = conj , { "OR" , conj } ;
    conj    = atom , { atom } ;            (* juxtaposition: all must match *)
    atom    = phrase | word ;
    phrase  = '"' , word , { word } , '"' ;

``OR`` is an operator only in upper case. Matching is case-insensitive (Unicode
casefold) on word boundaries over the title and the content text: a word is a
run of letters and digits, so ``AI`` never matches ``said`` and
``"artificial intelligence"`` matches ``Artificial-Intelligence``. A bare word
with a hyphen (``counter-terrorism``) is the phrase of its parts.

The rest of feedwatch sees only :class:`Matcher` (``compile_rules``) and
:func:`check_query`; the full rule language replaces this module behind them.
This module does not store alerts or decide who hears of them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from ._model import MatchInput, RuleMatch, RuleSpec, Span
from .exceptions import RuleSyntaxError

_WORD = re.compile(r"[^\W_]+")


class Matcher(Protocol):
    """A compiled rule set. ``match`` returns the rules that match, in rule order."""

    def match(self, item: MatchInput) -> list[RuleMatch]: ...


@dataclass(frozen=True, slots=True)
class _Token:
    text: str
    start: int
    end: int


def _tokens(text: str) -> list[_Token]:
    return [_Token(m.group().casefold(), m.start(), m.end()) for m in _WORD.finditer(text)]


# A query is an OR of conjunctions of phrases; a phrase is a tuple of casefolded words.
_Phrase = tuple[str, ...]
_Query = tuple[tuple[_Phrase, ...], ...]


def _lex(query: str) -> list[tuple[str, str, int]]:
    """Split into ("OR" | "PHRASE" | "WORD", text, 1-based column) tokens."""
    out: list[tuple[str, str, int]] = []
    i, n = 0, len(query)
    while i < n:
        ch = query[i]
        if ch.isspace():
            i += 1
        elif ch == '"':
            end = query.find('"', i + 1)
            if end < 0:
                raise RuleSyntaxError("unbalanced quote", i + 1, query)
            out.append(("PHRASE", query[i + 1 : end], i + 1))
            i = end + 1
        else:
            j = i
            while j < n and not query[j].isspace() and query[j] != '"':
                j += 1
            word = query[i:j]
            out.append(("OR" if word == "OR" else "WORD", word, i + 1))
            i = j
    return out


def _parse(query: str) -> _Query:
    alternatives: list[tuple[_Phrase, ...]] = []
    current: list[_Phrase] = []
    last_or_col = 0
    for kind, text, col in _lex(query):
        if kind == "OR":
            if not current:
                raise RuleSyntaxError("OR needs a word or phrase on each side", col, query)
            alternatives.append(tuple(current))
            current = []
            last_or_col = col
            continue
        words = tuple(t.text for t in _tokens(text))
        if not words:
            what = "empty phrase" if kind == "PHRASE" else f"{text!r} has no letters or digits"
            raise RuleSyntaxError(what, col, query)
        current.append(words)
    if not current:
        if alternatives:
            raise RuleSyntaxError("OR needs a word or phrase on each side", last_or_col, query)
        raise RuleSyntaxError("empty query", 1, query)
    alternatives.append(tuple(current))
    return tuple(alternatives)


def check_query(query: str) -> None:
    """Raise :class:`RuleSyntaxError` (with the 1-based column) if ``query`` is invalid."""
    _parse(query)


def _find_phrase(tokens: Sequence[_Token], phrase: _Phrase) -> list[tuple[int, int]]:
    """Character ranges where ``phrase`` occurs as consecutive tokens."""
    hits: list[tuple[int, int]] = []
    k = len(phrase)
    for i in range(len(tokens) - k + 1):
        if all(tokens[i + j].text == phrase[j] for j in range(k)):
            hits.append((tokens[i].start, tokens[i + k - 1].end))
    return hits


@dataclass(frozen=True, slots=True)
class _CompiledRule:
    name: str
    query: _Query


class SimpleMatcher:
    """The first-version matcher: evaluates each rule over the item's tokens."""

    def __init__(self, rules: Iterable[RuleSpec]) -> None:
        self._rules = tuple(_CompiledRule(r.name, _parse(r.query)) for r in rules)

    def match(self, item: MatchInput) -> list[RuleMatch]:
        fields = (("title", item.title), ("content", item.content))
        tokenised = [(name, _tokens(text)) for name, text in fields]
        out: list[RuleMatch] = []
        for rule in self._rules:
            spans: list[Span] = []
            for conj in rule.query:
                conj_spans: list[Span] = []
                for phrase in conj:
                    found = [
                        Span(field, start, end)
                        for field, tokens in tokenised
                        for start, end in _find_phrase(tokens, phrase)
                    ]
                    if not found:
                        break
                    conj_spans.extend(found)
                else:
                    spans.extend(conj_spans)
            if spans:
                unique = sorted(set(spans), key=lambda s: (s.field != "title", s.start, s.end))
                out.append(RuleMatch(rule.name, tuple(unique)))
        return out


def compile_rules(rules: Iterable[RuleSpec]) -> Matcher:
    """Compile the rule set once; raises :class:`RuleSyntaxError` for an invalid query."""
    return SimpleMatcher(rules)

"""Keyword rules: the query language, compiled once, matched against every new item.

Pure: no I/O, no clock (a regex search has a time budget; see below). The rest
of feedwatch uses only this API::

    from feedwatch.rules import compile_rules, check_query, Matcher

    matcher = compile_rules([RuleSpec("ai", '"artificial intelligence" OR AI')])
    matcher.match(MatchInput(title=..., content=..., lang="en"))  # -> [RuleMatch(...)]
    check_query('AI OR "machine')                     # raises RuleSyntaxError, .column 7

``compile_rules`` raises :class:`~feedwatch.exceptions.RuleSyntaxError` for the
first invalid query; its message starts with ``rule 'name':`` and ``.rule`` is
the name (``.column`` and ``.reason`` as from ``check_query``). ``match``
returns the matching rules in rule order, each with the character ranges
(:class:`~feedwatch._model.Span`) of what matched in the ORIGINAL title,
content, author or feed text: ``item.content[span.start:span.end]``.

Modules: ``query`` (lexer, parser, AST), ``text`` (normalisation, tokens,
regexes), ``_stem`` (stemmers), ``matcher`` (index and evaluation). This
package does not store rules or alerts and does not decide who hears of them.

Language reference
==================

Grammar (operators are upper-case only: ``and``, ``or``, ``not``, ``near`` are
plain words)::

    rule      = or_expr ;
    or_expr   = and_expr , { "OR" , and_expr } ;
    and_expr  = not_expr , { [ "AND" ] , not_expr } ;      (* juxtaposition = AND *)
    not_expr  = ( "NOT" | "-" ) , not_expr | near_expr ;
    near_expr = primary , { ( "NEAR" | "ONEAR" ) , "/" , digits , primary } ;
    primary   = [ field , ":" ] , ( "(" , or_expr , ")" | phrase | regex | term ) ;
    field     = "title" | "content" | "text" | "author" | "feed" | "tag" | "lang" ;
    phrase    = '"' , word , { word } , '"' , [ "~" , digits ] ;
    term      = [ "=" ] , word , [ "*" ] ;
    regex     = "/" , ... , "/" ;                          (* \\/ for a slash inside *)

Precedence, loosest first: ``OR``, ``AND`` (or nothing), ``NOT``/``-``,
``NEAR``/``ONEAR`` (left-associative), the field prefix. So ``a OR b c`` is
``a OR (b AND c)``, ``NOT a b`` is ``(NOT a) AND b``, ``NOT a NEAR/2 b`` is
``NOT (a NEAR/2 b)``. ``-`` is NOT only where a primary starts (``-football``,
``a -b``); inside a word it is a hyphen (``counter-terrorism``). A query that
is only a NOT (``NOT football``) matches every item without the word.

Fields. Without a prefix a word is searched in the title and the content
(``text:`` says the same); ``title:``, ``content:``, ``author:``, ``feed:``
search one field. A prefix applies to the next primary, a group too:
``title:(sanctions OR embargo)``. Positions never cross fields: a phrase or a
NEAR lies within the title or within the content. ``lang:`` and ``tag:`` are
exact, case-insensitive filters on the item's metadata: ``lang:ru`` holds for
``ru`` and ``ru-RU`` (any tag with that prefix at a ``-`` boundary),
``tag:security`` for a tag ``Security``; ``tag:secur*`` is a tag prefix.
``word:`` with any other name before the colon (``foo:bar``, an unquoted
``http://...``) is a syntax error naming the known fields; quote it
(``"http://x"``), or write ``12:30`` (digits are not a field).

Words. Text is normalised the same way in rules and items (``text``), and
input need not be NFC: soft hyphens (U+00AD) and zero-width characters
(U+200B..U+200D, U+2060, U+FEFF) are removed; a token is a run of letters,
marks and digits; each token is NFKC-normalised,
casefolded (``Straße`` = ``strasse``), ``ё`` -> ``е``, and loses the accents of
LATIN letters only (``café`` = ``cafe``, ``Genève`` = ``geneve``; Cyrillic
``й`` never becomes ``и``). Apostrophes separate: ``l'intelligence`` is ``l``
+ ``intelligence``. A word of a rule that splits into several tokens
(``counter-terrorism``, ``l'intelligence``, ``a/b``) is the phrase of them.
Mixed-script words are matched as written (no confusable folding: a Latin
``M`` in ``Mосква`` does not match ``москва``).

* **Inflection.** A bare word matches the other forms of the same word by
  Snowball stemming (PyStemmer): ``sanctions`` matches ``sanctioned``,
  ``терроризм`` matches ``терроризму``, ``élections`` matches ``élection``.
  An item's token is stemmed in the item's language (``MatchInput.lang``,
  primary subtag: ``en-US`` -> English) when a stemmer covers it and the token
  is in that language's script; otherwise by script (Latin -> English,
  Cyrillic -> Russian, Greek, Arabic, Armenian, Devanagari -> Hindi, Tamil;
  others are not stemmed). There is no Ukrainian stemmer: Ukrainian items are
  stemmed as Russian. A rule word gets keys for every language of its script,
  so a rule written once matches in all of them. Irregular forms are not
  joined (``women``/``woman``, ``люди``/``человек``): write ``a OR b``. We
  measured Snowball against pymorphy3 and simplemma (see
  ``benchmarks/rules_inflection.py``): slightly less accurate on irregular
  forms, but it handles words and names no dictionary knows, costs about a
  microsecond a token and needs no dictionary in memory.
* **Short words and acronyms.** A rule word shorter than 4 characters is
  matched exactly (after folding), never by stem: ``tax`` does not match
  ``taxes`` (but ``taxes`` matches ``tax``: item tokens are always stemmed).
  A rule word written in capitals (at least two letters, all upper-case:
  ``UN``, ``AI``, ``ИИ``, ``СНГ``, ``NATO``) matches only tokens written in
  capitals, exactly: ``UN`` matches "UN" and "UN-led" but not French "un" nor
  "Un"; ``AI`` never matches "said"; ``ИИ`` never matches the conjunction "и"
  (which the Russian stemmer would make of it). Written in lower case, a short
  word matches any case: ``un`` matches "UN" and "un".
* ``=word`` matches the folded word exactly, without stemming (``=sanctions``
  does not match "sanctioned"). ``word*`` matches tokens starting with the
  folded word; at least 3 characters before the ``*`` (``terror*`` matches
  "terrorists"). ``counter-terror*`` is a phrase whose last word is a prefix.

Hyphens and compounds. ``counter-terrorism``, ``counter terrorism``,
``counterterrorism`` and ``Counter‑Terrorism`` match one another, as a term or
a phrase, both ways: a rule word of 5+ characters may be written in the item
as two or three tokens joined by single hyphens (``-`` U+2010 U+2011 U+2012
U+2013 U+2212 U+FE63 U+FF0D; the em dash is punctuation) or as two tokens
separated by whitespace, each part at least 2 characters long (``co-operation``
joins; ``e-mail`` does not, and "a", "и" are never looked at), and a phrase's
adjacent words may be one item token.
Joining never crosses other punctuation (``counter. Terrorism`` is not
``counterterrorism``), but phrases, like in
search engines, ignore punctuation between words (``"counter terrorism"``
matches ``counter. Terrorism``). Joined tokens are also stemmed and prefixed:
``counterterrorism`` matches ``counter-terrorisms``, ``counterterror*``
matches ``counter-terrorism``. Items are checked cheaply: only adjacent tokens
whose concatenation can start such a rule word are joined.

Phrases and proximity. ``"a b c"`` needs the words adjacent and in order;
``"a b"~n`` allows up to n extra words between them in all (in order).
``a NEAR/n b``: at most n words between, either order; ``a ONEAR/n b``: a
first. NEAR's sides are terms, phrases, prefixes, OR-groups of them, or other
NEARs (``a NEAR/3 b NEAR/2 c`` is ``(a NEAR/3 b) NEAR/2 c``: c within 2 words
of the span a..b); AND, NOT, regexes and metadata filters inside NEAR are
syntax errors.

Regexes. ``/.../`` runs (``regex`` module, case-insensitive) on the field's
text folded like tokens: casefolded, NFKC, Latin accents and ``ё`` folded,
invisible characters removed. So write them in lower case without accents,
or let the pattern's own non-ASCII letters be folded the same way
(``/genève/`` matches "GENÈVE" and "Geneve"). Spans map back to the original
text. A search that takes more than 50 ms is abandoned: a non-match for that
field, logged as a warning (``rule_regex_timeout``), never an exception.
Regexes whose every match contains a literal word fragment are only run on
items containing it.

Matches. A rule matches when its expression holds; its spans are those of the
positive parts that matched (never of NOT branches): every occurrence of each
matched word, phrase (one span from its first to its last word; one per word
when it has a ``~``) and NEAR side, sorted by field (title, content, author,
feed) then offset, overlaps merged. A rule that holds through metadata or NOT
alone matches with no spans.

Errors. An invalid rule is rejected with the 1-based column of the error in
the query: unbalanced quote, parenthesis or regex (at the opening one), empty
group, operator without operand (at the operator, or at the unexpected
token), NEAR without ``/n``, unknown field, prefix too short, ``~`` without
digits, invalid regex (at its opening ``/``), a word with no letters or digits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .query import parse_query

if TYPE_CHECKING:
    from .matcher import Matcher, RuleSet, compile_rules

__all__ = ["Matcher", "RuleSet", "check_query", "compile_rules"]


def check_query(query: str) -> None:
    """Raise :class:`RuleSyntaxError` (with the 1-based ``.column`` and ``.reason``)
    if ``query`` is invalid."""
    parse_query(query)


def __getattr__(name: str) -> Any:
    # The matcher (index, stemmers, Aho-Corasick) is imported on first use: the
    # configuration only checks queries, and polling matches in worker processes.
    if name in ("Matcher", "RuleSet", "compile_rules"):
        from . import matcher

        return getattr(matcher, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

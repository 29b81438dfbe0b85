"""The compiled rule set: an index over the words rules require, and evaluation.

Pure: no I/O, no clock (regex searches have a time budget; a timed-out regex
is a non-match and a logged warning). The only module of feedwatch importing
``ahocorasick``.

Compiling (once per rule set):

* every word of every rule becomes a **unit** (folded form + :class:`Mode`);
  identical units, and identical leaves, are shared between rules;
* each rule gets its **requirements** in conjunctive form: groups of units, one
  of each group must occur in an item for the rule to possibly match (OR ->
  the union of its children's best groups; AND and NEAR -> all their children's
  groups; a phrase -> one group per word; NOT -> nothing). The most selective
  group goes into an inverted index unit -> rules; a rule without requirements
  (``NOT x``, a regex without a literal) is a candidate for every item;
* rules that are ANDs of OR-lists of single words and filters, minus NOT-lists
  (most rules) become a flat node decided by set lookups;
* vocabularies map a folded token to the units it satisfies: exact, capitals,
  prefixes (only the prefix lengths rules use), regex literals (an Aho-Corasick
  automaton), and per stemmer a map stem -> units, built the first time an item
  needs that stemmer;
* compound targets: the folded rule words of 5+ characters; their prefixes
  (of 2+ characters) are the tokens that may start a compound.

Matching one item:

1. split each field on whitespace; the distinct chunks (``"counter-terrorism,"``)
   are looked up (C-level set operations) in this rule set's caches for the
   item's language profile: a set of barren chunks (no unit, no compound start:
   most words), and for the others the units their tokens and hyphen compounds
   satisfy. A new chunk is first tried by the quick barren test (the first two
   letters of each of its tokens, see ``RuleSet._quick_barren``), else analysed
   once (tokenised through ``text``, stemmed). Adjacent chunks whose boundary
   tokens can join are checked against the compound targets;
2. the units present, plus the item's ``lang:`` and ``tag:`` units, select
   candidate rules from the index; a candidate whose other requirement groups
   are not all met is dropped without evaluation;
3. only then, and only for the fields asked, character offsets (and token
   positions, when a phrase or NEAR has all its words in the field: the tokens
   between the chunks with units are counted in the text, one regex search per
   gap) are computed for the candidates' units, and the candidates evaluated in
   rule order; matched positive leaves yield spans in the original text.

Does NOT parse queries (``query``), fold text (``text``) or stem (``_stem``).
"""

from __future__ import annotations

import functools
import itertools
import logging
import re
import string
from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, replace
from typing import Any, Final, Protocol, TypeVar

import ahocorasick

from .._logging import event, get_logger
from .._model import MatchInput, RuleMatch, RuleSpec, Span
from ..exceptions import RuleSyntaxError
from ._stem import ALGORITHM_SCRIPTS, Profile, profile_for, stem_keys
from .query import (
    FIELD_NAMES,
    And,
    Meta,
    Mode,
    Near,
    Node,
    Not,
    Or,
    Regex,
    Word,
    Words,
    parse_query,
)
from .text import (
    EDGE_PUNCTUATION,
    Folded,
    FoldedText,
    RegexTimeout,
    UserRegex,
    chunk_tokens,
    compile_regex,
    count_tokens,
    fold_text,
    fold_token,
    fold_word,
    one_word,
    required_literals,
    script_of,
)

log = get_logger(__name__)

#: Rule words at least this long (folded) can be written as two or more item tokens.
MIN_COMPOUND_LENGTH: Final = 5
#: At most this many tokens join into one compound (``anti-money-laundering``).
MAX_COMPOUND_TOKENS: Final = 3
#: Phrases up to this many words try every way of joining adjacent words.
_ALL_MERGES_UP_TO: Final = 4
#: Per-language caches of chunks and tokens are cleared when they reach this size.
_CACHE_LIMIT: Final = 30_000
#: Barren chunks remembered per language profile (about 60 bytes each).
_BARREN_LIMIT: Final = 80_000
#: Item language tags whose profile is remembered (tags are arbitrary feed text).
_LANG_TAGS_LIMIT: Final = 1_000

#: Snowball stemmers that never change the first two letters of an ASCII word
#: into a stem of two letters or more (their suffix regions start at the third
#: letter at the earliest), but for the starts in _STEM_EXCEPTION_STARTS; checked
#: over real and random words by tests/test_rules_quick.py. Not in the list:
#: Dutch (drops "ge-", doubles vowels), Finnish (undoubles "bba"), Indonesian
#: (strips prefixes), Irish (initial mutations), and those not checked.
_SUFFIX_ONLY_STEMMERS: Final = frozenset(
    {
        "catalan",
        "danish",
        "english",
        "french",
        "german",
        "italian",
        "norwegian",
        "portuguese",
        "romanian",
        "spanish",
        "swedish",
    }
)
#: Word starts a stemmer may change: English "?ying" -> "?ie" (dying, vying),
#: German "ae", "oe", "ue" read as umlauts.
_STEM_EXCEPTION_STARTS: Final[Mapping[str, frozenset[str]]] = {
    "english": frozenset(c + "y" for c in string.ascii_lowercase + string.digits),
    "german": frozenset({"ae", "oe", "ue"}),
}
#: Snowball stemmers for Cyrillic whose stem of a word (``ё`` read as ``е``) is
#: always a prefix of it: the Russian one only removes endings. Checked over real
#: and random words by tests/test_rules_quick.py. Not in the list: Serbian.
_SUFFIX_ONLY_CYRILLIC_STEMMERS: Final = frozenset({"russian"})
#: The Cyrillic letters a quickly decided chunk may contain: a token of them folds
#: letter by letter (lower case, ``ё`` -> ``е``).
_QUICK_CYRILLIC: Final = "А-Яа-яЁё"
#: Non-ASCII punctuation often inside or around words ("it’s", "war—and", "«Да»"):
#: no character of it is part of a token (checked by tests/test_rules_quick.py),
#: so for the quick decision it separates tokens like an ASCII space.
_QUICK_PUNCTUATION: Final = (
    "\u00ab\u00bb\u2018\u2019\u201a\u201b\u201c\u201d\u201e\u201f\u2039\u203a"
    "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\u2026\u2022\u00b7\u2032\u2033"
    "\u00a9\u00ae\u2122\u00b0\u20ac\u00a3\u00a7\u2116"
)
#: Characters that are never part of a token: a chunk starting with one has no
#: first token to end a compound with.
_NOT_IN_TOKENS: Final = frozenset(EDGE_PUNCTUATION + _QUICK_PUNCTUATION)
#: Build the named tuples without their Python-level ``__new__`` (half the cost).
_span: Final = functools.partial(tuple.__new__, Span)
_rule_match: Final = functools.partial(tuple.__new__, RuleMatch)
#: A NEAR keeps at most this many matching pairs per item (enough to highlight).
_MAX_NEAR_PAIRS: Final = 200


class Matcher(Protocol):
    """A compiled rule set. ``match`` returns the rules that match, in rule order."""

    def match(self, item: MatchInput) -> list[RuleMatch]: ...


# --------------------------------------------------------------------------- units


@dataclass(frozen=True, slots=True)
class _Unit:
    """Something an item token (or the item's metadata) can satisfy."""

    kind: str  # "word" | "lang" | "tag" | "tag*" | "literal"
    text: str
    mode: Mode | None = None
    cased: str = ""
    script: str = ""

    def score(self) -> float:
        """How rare an item containing this unit is (higher: rarer) - a heuristic."""
        if self.kind in ("lang", "lang*"):
            return 0.5
        if self.kind in ("tag", "tag*"):
            return 1.0
        if self.kind == "literal":
            return float(len(self.text))
        bonus = {Mode.CAPS: 3.0, Mode.PREFIX: -1.0}.get(self.mode or Mode.STEM, 0.0)
        return len(self.text) + bonus


Group = frozenset[int]
#: (first position, last position, start offset, end offset) of a token or compound.
Posting = tuple[int, int, int, int]
#: (field, first position, last position, ((start, end), ...)).
Occ = tuple[int, int, int, tuple[tuple[int, int], ...]]
#: (field, start, end) in the original text.
Hit = tuple[int, int, int]


def _best(groups: Sequence[Group], units: Sequence[_Unit]) -> Group:
    return max(groups, key=lambda g: min(units[u].score() for u in g))


# --------------------------------------------------------------------------- evaluation nodes


Spans = tuple[Span, ...]
_UNSET: Final = object()


def _to_spans(hits: Sequence[Hit]) -> Spans:
    """Span objects for sorted hits, overlaps merged."""
    out: list[Span] = []
    pf = ps = pe = -1
    for f, s, e in hits:
        if f == pf and s < pe:
            if e > pe:
                pe = e
                out[-1] = _span((FIELD_NAMES[f], ps, e))
            continue
        pf, ps, pe = f, s, e
        out.append(_span((FIELD_NAMES[f], s, e)))
    return tuple(out)


class _Ctx(Protocol):
    """What nodes need from the item being matched (see _Item)."""

    #: node id -> spans (or None: does not hold), for shared nodes.
    memo: dict[int, Spans | None]
    #: node id -> occurrences, for positional nodes.
    occs: dict[int, list[Occ]]
    #: Units the item satisfies somewhere (a leaf none of whose units is here fails).
    present: set[int]

    def postings(self, field: int) -> dict[int, list[Posting]]: ...
    def units_in(self, field: int) -> set[int] | frozenset[int]: ...
    def may_have(self, field: int, units: Group) -> bool: ...
    def folded(self, field: int) -> FoldedText: ...
    def langs(self) -> frozenset[str]: ...
    def tags(self) -> frozenset[str]: ...
    def to_spans(self, hits: Iterable[Hit]) -> Spans: ...
    def single_spans(self, unit: int, fields: tuple[int, ...]) -> Spans | None: ...
    def unit_spans(self, unit: int, fields: tuple[int, ...]) -> Spans | None: ...
    def regex_timed_out(self, leaf: _RegexLeaf, field: int) -> None: ...


class _Node:
    __slots__ = ("id",)

    def __init__(self) -> None:
        self.id = 0

    def spans(self, ctx: _Ctx) -> Spans | None:
        """Where the node holds (sorted, merged; possibly empty), or None when it does not."""
        raise NotImplementedError

    def groups(self, units: Sequence[_Unit]) -> list[Group]:
        """Requirement groups: each must meet the item's units for the node to hold."""
        raise NotImplementedError

    def cost(self) -> int:
        """Rough evaluation cost, to try cheap children of an AND first."""
        return 1


class _Positional(_Node):
    __slots__ = ()

    def occ(self, ctx: _Ctx) -> list[Occ]:
        raise NotImplementedError

    def spans(self, ctx: _Ctx) -> Spans | None:
        memo = ctx.memo
        if self.id in memo:
            return memo[self.id]
        occs = self.occ(ctx)
        result = (
            ctx.to_spans((f, s, e) for f, _p0, _p1, spans in occs for s, e in spans)
            if occs
            else None
        )
        memo[self.id] = result
        return result


class _Seq(_Positional):
    """Words in a row (a term, a hyphenated term or a phrase), with joined alternatives."""

    __slots__ = ("_groups", "alts", "fields", "single", "slop", "unitset")

    def __init__(
        self, alts: tuple[tuple[int, ...], ...], slop: int, fields: tuple[int, ...]
    ) -> None:
        super().__init__()
        #: Unit sequences any of which is a match (the words as written, joined variants).
        self.alts = alts
        self.slop = slop
        self.fields = fields
        #: One group per word as written (set by the compiler).
        self._groups: list[Group] = []
        #: Every unit of every alternative.
        self.unitset = frozenset(u for alt in alts for u in alt)
        #: The unit, when this is one word with no alternatives.
        self.single = alts[0][0] if len(alts) == 1 and len(alts[0]) == 1 else -1

    def spans(self, ctx: _Ctx) -> Spans | None:
        memo = ctx.memo
        done = memo.get(self.id, _UNSET)
        if done is not _UNSET:
            return done  # type: ignore[return-value]
        result: Spans | None = None
        single = self.single
        if single >= 0:
            if single in ctx.present:
                result = ctx.unit_spans(single, self.fields)
        elif not self.unitset.isdisjoint(ctx.present):
            occs = self.occ(ctx)
            if occs:
                result = ctx.to_spans((f, s, e) for f, _p0, _p1, spans in occs for s, e in spans)
        memo[self.id] = result
        return result

    def occ(self, ctx: _Ctx) -> list[Occ]:
        hit = ctx.occs.get(self.id)
        if hit is not None:
            return hit
        out: list[Occ] = []
        single = self.single
        for field in self.fields:
            # A unit has postings in a field exactly when the field satisfies it:
            # fields without a whole alternative are skipped before any postings.
            have = ctx.units_in(field)
            if single >= 0:
                if single in have:
                    found = ctx.postings(field)[single]
                    out += [(field, p0, p1, ((s, e),)) for p0, p1, s, e in found]
                continue
            alts = [alt for alt in self.alts if have.issuperset(alt)]
            if not alts:
                continue
            postings = ctx.postings(field)
            seen: set[tuple[int, int]] = set()
            for alt in alts:
                lists = [postings[u] for u in alt]
                for occ in _join(field, lists, self.slop):
                    key = (occ[1], occ[2])
                    if key not in seen:
                        seen.add(key)
                        out.append(occ)
        ctx.occs[self.id] = out
        return out

    def groups(self, units: Sequence[_Unit]) -> list[Group]:
        return self._groups

    def cost(self) -> int:
        return 2 if len(self.alts) == 1 and len(self.alts[0]) == 1 else 4


def _join(field: int, lists: list[list[Posting]], slop: int) -> list[Occ]:
    """Occurrences of units in order, adjacent or with ``slop`` extra positions in all."""
    if len(lists) == 1:
        return [(field, p0, p1, ((s, e),)) for p0, p1, s, e in lists[0]]
    starts = [[p[0] for p in lst] for lst in lists]
    out: list[Occ] = []
    last = len(lists) - 1

    def extend(j: int, prev_end: int, budget: int, chain: list[Posting]) -> list[Posting] | None:
        lst = lists[j]
        idx = bisect_left(starts[j], prev_end + 1)
        limit = prev_end + 1 + budget
        while idx < len(lst) and lst[idx][0] <= limit:
            nxt = lst[idx]
            idx += 1
            chain.append(nxt)
            if j == last:
                return chain
            found = extend(j + 1, nxt[1], budget - (nxt[0] - prev_end - 1), chain)
            if found is not None:
                return found
            chain.pop()
        return None

    for first in lists[0]:
        chain = extend(1, first[1], slop, [first])
        if chain is None:
            continue
        # A plain phrase is one span; with a slop, one span per word.
        spans = tuple((p[2], p[3]) for p in chain) if slop else ((first[2], chain[-1][3]),)
        out.append((field, first[0], chain[-1][1], spans))
    return out


class _NearNode(_Positional):
    __slots__ = ("distance", "left", "ordered", "right")

    def __init__(self, left: _Positional, right: _Positional, distance: int, ordered: bool) -> None:
        super().__init__()
        self.left = left
        self.right = right
        self.distance = distance
        self.ordered = ordered

    def occ(self, ctx: _Ctx) -> list[Occ]:
        hit = ctx.occs.get(self.id)
        if hit is not None:
            return hit
        out: list[Occ] = []
        lefts = self.left.occ(ctx)
        rights = self.right.occ(ctx) if lefts else []
        if lefts and rights:
            d = self.distance
            by_field: dict[int, list[Occ]] = {}
            for r in rights:
                by_field.setdefault(r[0], []).append(r)
            for field, rs in by_field.items():
                rs.sort(key=lambda o: (o[1], o[2]))
                r_starts = [r[1] for r in rs]
                widest = max(r[2] - r[1] for r in rs)
                for lf, l0, l1, lspans in lefts:
                    if lf != field:
                        continue
                    # Right side after the left one: at most d positions between.
                    lo = bisect_left(r_starts, l1 + 1)
                    hi = bisect_right(r_starts, l1 + 1 + d)
                    for r in rs[lo:hi]:
                        out.append((field, l0, r[2], lspans + r[3]))
                    if not self.ordered:
                        # Right side before the left one.
                        lo = bisect_left(r_starts, l0 - 1 - d - widest)
                        hi = bisect_left(r_starts, l0)
                        for r in rs[lo:hi]:
                            if r[2] < l0 and l0 - r[2] - 1 <= d:
                                out.append((field, r[1], l1, r[3] + lspans))
                    if len(out) >= _MAX_NEAR_PAIRS:
                        break
        ctx.occs[self.id] = out
        return out

    def groups(self, units: Sequence[_Unit]) -> list[Group]:
        return self.left.groups(units) + self.right.groups(units)

    def cost(self) -> int:
        return self.left.cost() + self.right.cost() + 2


class _PosOr(_Positional):
    """An OR-group as a NEAR operand: the union of its children's occurrences."""

    __slots__ = ("children",)

    def __init__(self, children: tuple[_Positional, ...]) -> None:
        super().__init__()
        self.children = children

    def occ(self, ctx: _Ctx) -> list[Occ]:
        hit = ctx.occs.get(self.id)
        if hit is not None:
            return hit
        out = [o for child in self.children for o in child.occ(ctx)]
        ctx.occs[self.id] = out
        return out

    def groups(self, units: Sequence[_Unit]) -> list[Group]:
        return _or_groups(self.children, units)

    def cost(self) -> int:
        return sum(c.cost() for c in self.children)


class _RegexLeaf(_Node):
    __slots__ = ("fields", "literals", "rx")

    def __init__(self, rx: UserRegex, fields: tuple[int, ...]) -> None:
        super().__init__()
        self.rx = rx
        self.fields = fields
        self.literals: Group = frozenset()

    def spans(self, ctx: _Ctx) -> Spans | None:
        memo = ctx.memo
        if self.id in memo:
            return memo[self.id]
        if self.literals and self.literals.isdisjoint(ctx.present):
            memo[self.id] = None
            return None
        hits: list[Hit] = []
        for field in self.fields:
            if self.literals and not ctx.may_have(field, self.literals):
                continue
            text = ctx.folded(field)
            if not text.text:
                continue
            try:
                found = self.rx.search(text)
            except RegexTimeout:
                ctx.regex_timed_out(self, field)
                continue
            for s, e in found:
                start, end = text.original_span(s, e)
                hits.append((field, start, end))
        result = ctx.to_spans(hits) if hits else None
        memo[self.id] = result
        return result

    def groups(self, units: Sequence[_Unit]) -> list[Group]:
        return [self.literals] if self.literals else []

    def cost(self) -> int:
        return 20


class _MetaLeaf(_Node):
    __slots__ = ("field", "prefix", "unit", "value")

    def __init__(self, field: str, value: str, prefix: bool, unit: int) -> None:
        super().__init__()
        self.field = field
        self.value = value
        self.prefix = prefix
        self.unit = unit

    def spans(self, ctx: _Ctx) -> Spans | None:
        values = ctx.langs() if self.field == "lang" else ctx.tags()
        ok = any(v.startswith(self.value) for v in values) if self.prefix else self.value in values
        return () if ok else None

    def groups(self, units: Sequence[_Unit]) -> list[Group]:
        return [frozenset((self.unit,))]

    def cost(self) -> int:
        return 0


class _AndNode(_Node):
    __slots__ = ("children",)

    def __init__(self, children: tuple[_Node, ...]) -> None:
        super().__init__()
        # Cheap children first: a failing one spares the rest.
        self.children = tuple(sorted(children, key=lambda c: c.cost()))

    def spans(self, ctx: _Ctx) -> Spans | None:
        parts: list[Spans] = []
        for child in self.children:
            got = child.spans(ctx)
            if got is None:
                return None
            if got:
                parts.append(got)
        return _union(parts)

    def groups(self, units: Sequence[_Unit]) -> list[Group]:
        return [g for child in self.children for g in child.groups(units)]

    def cost(self) -> int:
        return sum(c.cost() for c in self.children)


class _OrNode(_Node):
    __slots__ = ("children",)

    def __init__(self, children: tuple[_Node, ...]) -> None:
        super().__init__()
        self.children = children

    def spans(self, ctx: _Ctx) -> Spans | None:
        parts: list[Spans] = []
        held = False
        for child in self.children:
            got = child.spans(ctx)
            if got is not None:
                held = True
                if got:
                    parts.append(got)
        return _union(parts) if held else None

    def groups(self, units: Sequence[_Unit]) -> list[Group]:
        return _or_groups(self.children, units)

    def cost(self) -> int:
        return sum(c.cost() for c in self.children)


class _NotNode(_Node):
    __slots__ = ("child",)

    def __init__(self, child: _Node) -> None:
        super().__init__()
        self.child = child

    def spans(self, ctx: _Ctx) -> Spans | None:
        return () if self.child.spans(ctx) is None else None

    def groups(self, units: Sequence[_Unit]) -> list[Group]:
        return []

    def cost(self) -> int:
        return self.child.cost()


#: A literal of a flat rule: one word in some fields, or a metadata filter.
_Literal = tuple[int, tuple[int, ...]] | _MetaLeaf


class _FlatNode(_Node):
    """A rule that is an AND of OR-lists of single words and filters, minus NOT-lists.

    Most rules have this shape (``a``, ``a OR b``, ``a b -c``, ``lang:ru AND a``); it
    is decided with set lookups on the units each field satisfies, and only the
    words that hold are looked at for spans (shared through the item's memo).
    """

    __slots__ = ("clauses", "meta_negated", "negated", "word_negated")

    def __init__(
        self, clauses: tuple[tuple[_Literal, ...], ...], negated: tuple[_Literal, ...]
    ) -> None:
        super().__init__()
        self.negated = negated
        #: Each clause as (words, filters): words are (unit, fields).
        self.clauses = tuple(
            (
                tuple(lit for lit in clause if not isinstance(lit, _MetaLeaf)),
                tuple(lit for lit in clause if isinstance(lit, _MetaLeaf)),
            )
            for clause in clauses
        )
        self.word_negated = tuple(lit for lit in negated if not isinstance(lit, _MetaLeaf))
        self.meta_negated = tuple(lit for lit in negated if isinstance(lit, _MetaLeaf))

    def spans(self, ctx: _Ctx) -> Spans | None:
        present = ctx.present
        unit_spans = ctx.unit_spans
        for unit, fields in self.word_negated:
            if unit in present and unit_spans(unit, fields) is not None:
                return None
        for meta in self.meta_negated:
            if meta.spans(ctx) is not None:
                return None
        parts: list[Spans] = []
        for words, metas in self.clauses:
            held = False
            for unit, fields in words:
                if unit in present:
                    found = unit_spans(unit, fields)
                    if found is not None:
                        held = True
                        parts.append(found)
            if not held:
                for meta in metas:
                    if meta.spans(ctx) is not None:
                        held = True
                        break
                if not held:
                    return None
        return _union(parts)

    def groups(self, units: Sequence[_Unit]) -> list[Group]:
        raise NotImplementedError  # groups come from the node it replaces


def _flatten(node: _Node) -> tuple[list[tuple[_Literal, ...]], list[_Literal]] | None:
    """(clauses, negated literals) when ``node`` has the flat shape, else None."""
    match node:
        case _Seq() if node.single >= 0:
            return [((node.single, node.fields),)], []
        case _MetaLeaf():
            return [(node,)], []
        case _OrNode():
            merged: list[_Literal] = []
            for child in node.children:
                flat = _flatten(child)
                if flat is None or len(flat[0]) != 1 or flat[1]:
                    return None
                merged += flat[0][0]
            return [tuple(merged)], []
        case _AndNode():
            clauses: list[tuple[_Literal, ...]] = []
            negated: list[_Literal] = []
            for child in node.children:
                flat = _flatten(child)
                if flat is None:
                    return None
                clauses += flat[0]
                negated += flat[1]
            return clauses, negated
        case _NotNode():
            flat = _flatten(node.child)
            if flat is None or len(flat[0]) != 1 or flat[1]:
                return None
            return [], list(flat[0][0])
    return None


_FIELD_ORDER: Final = {name: i for i, name in enumerate(FIELD_NAMES)}


def _union(parts: list[Spans]) -> Spans:
    """Spans of several children, sorted, overlaps merged (Span's own hash is slow)."""
    if not parts:
        return ()
    if len(parts) == 1:
        return parts[0]
    order = _FIELD_ORDER
    hits = sorted({(order[sp.field], sp.start, sp.end) for part in parts for sp in part})
    return _to_spans(hits)


def _or_groups(children: Iterable[_Node], units: Sequence[_Unit]) -> list[Group]:
    """One group: the union of each child's most selective group (none if a child has none)."""
    union: set[int] = set()
    for child in children:
        groups = child.groups(units)
        if not groups:
            return []
        union |= _best(groups, units)
    return [frozenset(union)]


# --------------------------------------------------------------------------- item side


class _Chunk:
    """A whitespace-free piece of item text, analysed once per language profile."""

    __slots__ = ("first", "flat", "ntok")

    def __init__(self, ntok: int) -> None:
        self.ntok = ntok
        #: (unit, first token index, last token index, start, end) for every unit a
        #: token or a hyphen compound of the chunk satisfies, in token order.
        self.flat: tuple[tuple[int, int, int, int, int], ...] = ()
        #: The first token when it starts the chunk (it may end a compound): (folded, end).
        self.first: tuple[Folded, int] | None = None


_NO_UNITS: frozenset[int] = frozenset()
#: A pseudo-unit in a chunk's units: its last token may start a compound with the next chunk.
_JOIN: Final = -1
_JOIN_ONLY: Final = frozenset((_JOIN,))
_ZEROS: Final = [0] * 4096
#: Up to this many chunk occurrences with units, find them with str.find (no offset table).
_FIND_AT_MOST: Final = 12


class _Lang:
    """Caches for items of one language profile, keyed by chunk or token text.

    Kept as several dicts so that the per-item work is C-level ``map``/``filter``
    over the chunks; all are cleared together (between items) when full.
    """

    __slots__ = (
        "barren",
        "by_script",
        "chunks",
        "compounds",
        "lasts",
        "quick",
        "quick_cyrillic",
        "quick_re",
        "tokens",
        "units",
    )

    def __init__(self, profile: Profile) -> None:
        self.by_script = dict(profile)
        #: Every chunk analysed that is not barren (or ends a compound).
        self.chunks: dict[str, _Chunk] = {}
        #: Chunk -> the units satisfied in it (for every chunk in ``chunks``).
        self.units: dict[str, frozenset[int]] = {}
        #: Chunk -> its last token (folded, start) when that may start a compound.
        self.lasts: dict[str, tuple[Folded, int]] = {}
        #: Raw token -> the units it satisfies.
        self.tokens: dict[str, tuple[int, ...]] = {}
        self.compounds: dict[tuple[str | bool, ...], tuple[int, ...]] = {}
        #: Chunks known to satisfy no unit and to start no compound: most words of
        #: most items. A field made only of them is skipped with one C-level
        #: ``issuperset``; kept longer than the other caches (a set of strings).
        self.barren: set[str] = set()
        #: First two letters of every rule key a token of ASCII (or Russian) letters
        #: could meet in this profile, or None when no such shortcut is sound (see
        #: _quick_starts).
        self.quick: frozenset[str] | None = None
        #: Finds in a chunk of ASCII (and Russian letters, when ``quick_cyrillic``) the
        #: start of a token whose first two letters are in ``quick`` (_quick_pattern).
        self.quick_re: re.Pattern[str] | None = None
        #: Whether chunks with Russian letters may be decided quickly (_quick_cyrillic).
        self.quick_cyrillic = False

    def remember(
        self,
        chunk: str,
        info: _Chunk,
        units: frozenset[int],
        last: tuple[Folded, int] | None,
    ) -> None:
        """Keep the analysis of a chunk that is not barren (or ends a compound)."""
        self.chunks[chunk] = info
        self.units[chunk] = units
        if last is not None:
            self.lasts[chunk] = last

    def trim(self) -> None:
        if len(self.barren) >= _BARREN_LIMIT:
            self.barren.clear()
        if len(self.chunks) >= _CACHE_LIMIT or len(self.tokens) >= _CACHE_LIMIT:
            for cache in (
                self.chunks,
                self.units,
                self.lasts,
                self.tokens,
            ):
                cache.clear()
        if len(self.compounds) >= _CACHE_LIMIT:
            self.compounds.clear()


@dataclass(slots=True)
class _FieldData:
    text: str
    chunks: list[str]
    #: The chunk texts that satisfy a unit (not only a compound start).
    wanted: set[str]
    #: The units satisfied in this field.
    present: set[int]
    #: (chunk index, units) of compounds joined across chunks ``i`` and ``i + 1``.
    joins: list[tuple[int, tuple[int, ...]]]


class _Item:
    """One item being matched: lazily built positions, folded texts, metadata."""

    def __init__(
        self,
        lang: _Lang,
        item: MatchInput,
        fields: list[_FieldData | None],
        present: set[int],
        positions: bool,
    ) -> None:
        self.present = present
        self._positions = positions
        self._lang = lang
        self._item = item
        self._fields = fields
        self._postings: list[dict[int, list[Posting]] | None] = [None, None, None, None]
        self._offsets_only: list[dict[int, list[Posting]] | None] = [None, None, None, None]
        self._folded: list[FoldedText | None] = [None, None, None, None]
        self.memo: dict[int, Spans | None] = {}
        self.occs: dict[int, list[Occ]] = {}
        self._unit_spans: dict[tuple[int, tuple[int, ...]], Spans | None] = {}
        self.rule = ""
        self._langs: frozenset[str] | None = None
        self._tags: frozenset[str] | None = None

    def postings(self, field: int) -> dict[int, list[Posting]]:
        """Unit -> postings in ``field``, with token positions if any candidate needs them."""
        got = self._postings[field]
        if got is None:
            data = self._fields[field]
            if data is None or not data.present:
                got = {}
            else:
                got = _build_postings(self._lang, data, self._positions)
            self._postings[field] = got
        return got

    def offset_postings(self, field: int) -> dict[int, list[Posting]]:
        """Like :meth:`postings`, for offsets only: positions may all be 0 (the lists
        are in the same order, by offset, either way)."""
        got = self._postings[field]
        if got is None:
            got = self._offsets_only[field]
            if got is None:
                data = self._fields[field]
                if data is None or not data.present:
                    got = {}
                else:
                    got = _build_postings(self._lang, data, False)
                self._offsets_only[field] = got
        return got

    def units_in(self, field: int) -> set[int] | frozenset[int]:
        """The units ``field`` satisfies (exactly those with postings in it)."""
        data = self._fields[field]
        return _NO_UNITS if data is None else data.present

    def may_have(self, field: int, units: Group) -> bool:
        """Whether one of ``units`` is satisfied in ``field``."""
        data = self._fields[field]
        return data is not None and not units.isdisjoint(data.present)

    def folded(self, field: int) -> FoldedText:
        got = self._folded[field]
        if got is None:
            item = self._item
            text = (item.title, item.content, item.author, item.feed)[field]
            got = self._folded[field] = fold_text(text)
        return got

    def langs(self) -> frozenset[str]:
        if self._langs is None:
            self._langs = _lang_values(self._item.lang)
        return self._langs

    def tags(self) -> frozenset[str]:
        if self._tags is None:
            self._tags = frozenset(fold_word(t).strip() for t in self._item.tags)
        return self._tags

    def to_spans(self, hits: Iterable[Hit]) -> Spans:
        """Sorted by field (title, content, author, feed) then offset; overlaps merged."""
        return _to_spans(sorted(set(hits)))

    def unit_spans(self, unit: int, fields: tuple[int, ...]) -> Spans | None:
        """:meth:`single_spans`, remembered for the item."""
        key = (unit, fields)
        got = self._unit_spans.get(key, _UNSET)
        if got is _UNSET:
            got = self._unit_spans[key] = self.single_spans(unit, fields)
        return got  # type: ignore[return-value]

    def single_spans(self, unit: int, fields: tuple[int, ...]) -> Spans | None:
        """Spans of the tokens (and compounds) satisfying ``unit`` in ``fields``."""
        out: list[Span] = []
        for f in fields:
            data = self._fields[f]
            if data is None or unit not in data.present:
                continue
            postings = self._postings[f]
            if postings is None:
                postings = self.offset_postings(f)
            found = postings.get(unit)
            if not found:
                continue
            name = FIELD_NAMES[f]
            end = -1
            for _p0, _p1, s, e in found:
                if s < end:  # overlaps the previous one (a token and a compound)
                    if e > end:
                        end = e
                        out[-1] = _span((name, out[-1].start, e))
                    continue
                end = e
                out.append(_span((name, s, e)))
        return tuple(out) if out else None

    def regex_timed_out(self, leaf: _RegexLeaf, field: int) -> None:
        event(
            log,
            logging.WARNING,
            "rule_regex_timeout",
            rule=self.rule,
            regex=leaf.rx.pattern,
            field=FIELD_NAMES[field],
        )


def _lang_values(lang: str | None) -> frozenset[str]:
    """``"ru-RU"`` -> {"ru", "ru-ru"}: every prefix at a subtag boundary."""
    if not lang:
        return frozenset()
    parts = lang.strip().replace("_", "-").casefold().split("-")
    return frozenset("-".join(parts[: i + 1]) for i in range(len(parts)) if parts[0])


def _build_postings(lang: _Lang, data: _FieldData, positions: bool) -> dict[int, list[Posting]]:
    """Unit -> positions and offsets in one field, for every unit satisfied in it.

    Without ``positions`` (no phrase or NEAR to evaluate) positions are all 0.
    """
    chunks, text = data.chunks, data.text
    joins = data.joins
    # The chunks with units (every occurrence of a chunk text has the same units).
    wanted = data.wanted
    if joins:
        wanted = (
            wanted | {chunks[i + 1] for i, _units in joins} | {chunks[i] for i, _units in joins}
        )
    indices = list(itertools.compress(range(len(chunks)), map(wanted.__contains__, chunks)))
    if not indices:
        return {}
    if not joins and not positions and len(indices) <= _FIND_AT_MOST:
        return _offset_postings(lang, text, wanted)
    offsets = _offsets(text, chunks, indices)
    bases: Mapping[int, int] | list[int]
    if positions or joins:
        bases = _bases(lang, text, chunks, indices, offsets)
    else:
        bases = _ZEROS if len(chunks) < len(_ZEROS) else [0] * (len(chunks) + 1)
    postings: defaultdict[int, list[Posting]] = defaultdict(list)
    infos = lang.chunks
    for i in indices:
        base = bases[i]
        off = offsets[i]
        for u, k0, k1, s, e in infos[chunks[i]].flat:
            postings[u].append((base + k0, base + k1, off + s, off + e))
    for i, units in joins:
        last = lang.lasts[chunks[i]]
        first = infos[chunks[i + 1]].first
        assert first is not None
        entry = (bases[i + 1] - 1, bases[i + 1], offsets[i] + last[1], offsets[i + 1] + first[1])
        for u in units:
            postings[u].append(entry)
        for u in units:
            lst = postings.get(u)
            if lst is not None and len(lst) > 1:
                lst.sort()
    return postings


def _bases(
    lang: _Lang, text: str, chunks: list[str], indices: list[int], offsets: Mapping[int, int]
) -> dict[int, int]:
    """Position of the first token of ``chunks[i]`` for each ``i`` in ``indices`` (ascending).

    Counted from the first of them (positions are only ever compared within a
    field, so a shift common to the field changes nothing): the tokens of the
    chunks in between are counted in the text itself, one C-level regex search
    per gap, so the chunks without units are never analysed. The count is the
    sum of :func:`chunk_tokens` over those chunks, as tokens never span
    whitespace (checked in tests/test_rules_quick.py).
    """
    infos = lang.chunks
    ascii_text = text.isascii()
    first = indices[0]
    out = {first: 0}
    prev, base = first, 0
    for i in indices[1:]:
        chunk = chunks[prev]
        base += infos[chunk].ntok
        if i > prev + 1:
            start = offsets[prev] + len(chunk)
            base += count_tokens(text, start, offsets[i], ascii_text=ascii_text)
        out[i] = base
        prev = i
    return out


def _offset_postings(lang: _Lang, text: str, wanted: set[str]) -> dict[int, list[Posting]]:
    """Postings without positions (all 0): each wanted chunk found by ``str.find``."""
    postings: defaultdict[int, list[Posting]] = defaultdict(list)
    infos = lang.chunks
    n = len(text)
    for chunk in wanted:
        flat = infos[chunk].flat
        size = len(chunk)
        p = text.find(chunk)
        while p >= 0:
            # Whitespace on both sides: this is the chunk, not part of a longer one.
            if (p == 0 or text[p - 1].isspace()) and (p + size == n or text[p + size].isspace()):
                for u, _k0, _k1, s, e in flat:
                    postings[u].append((0, 0, p + s, p + e))
            p = text.find(chunk, p + size)
    if len(wanted) > 1:
        for lst in postings.values():
            if len(lst) > 1:
                lst.sort()
    return postings


def _offsets(text: str, chunks: list[str], indices: list[int]) -> dict[int, int]:
    """Offset in ``text`` of ``chunks[i]`` for each ``i`` in ``indices`` (ascending, and
    holding every index of each chunk text it names)."""
    lead = len(text) - len(text.lstrip())
    ends = list(itertools.accumulate(map(len, chunks), initial=0))
    if lead + ends[-1] + len(chunks) - 1 == len(text.rstrip()):
        # One whitespace character between chunks (the common case): arithmetic.
        return {i: lead + ends[i] + i for i in indices}
    # Otherwise find each in order; chunks are whitespace-delimited, and every
    # chunk equal to one looked for is in ``indices``, so each find lands right.
    offsets: dict[int, int] = {}
    pos, n = 0, len(text)
    for i in indices:
        chunk = chunks[i]
        size = len(chunk)
        p = text.find(chunk, pos)
        while p >= 0 and (
            (p > 0 and not text[p - 1].isspace()) or (p + size < n and not text[p + size].isspace())
        ):
            p = text.find(chunk, p + 1)
        if p < 0:  # pragma: no cover - every chunk comes from text.split()
            raise AssertionError(f"chunk {chunk!r} not found")
        offsets[i] = p
        pos = p + size
    return offsets


# --------------------------------------------------------------------------- the rule set

_N = TypeVar("_N", bound=_Node)


@dataclass(frozen=True, slots=True)
class _Rule:
    name: str
    node: _Node
    #: All must meet the item's units for the rule to be worth evaluating.
    groups: tuple[Group, ...]
    #: Every word unit in the rule (positions are computed for these only).
    units: frozenset[int]
    #: Whether evaluating needs token positions (phrases, NEAR), not just offsets.
    positional: bool
    #: The groups other than the indexed one: still to check for a candidate.
    check: tuple[Group, ...] = ()


class RuleSet:
    """A compiled rule set (see the module docstring).

    Its caches are not locked: match from one thread at a time (one rule set per
    worker thread if there are several).
    """

    def __init__(self, rules: Iterable[RuleSpec]) -> None:
        self._units: list[_Unit] = []
        self._unit_ids: dict[_Unit, int] = {}
        self._leaves: dict[tuple[object, ...], _Node] = {}
        self._nodes = 0
        #: Whether any rule looks at the title, content, author, feed.
        self._uses = [False, False, False, False]
        self._rule_units: set[int] = set()
        self._rule_positional = False
        compiled: list[_Rule] = []
        for spec in rules:
            try:
                ast = parse_query(spec.query)
            except RuleSyntaxError as exc:
                raise _named(exc, spec.name) from None
            self._rule_units = set()
            self._rule_positional = False
            node = self._node(ast, positional=False)
            groups = tuple(node.groups(self._units))
            compiled.append(
                _Rule(
                    spec.name,
                    node,
                    groups,
                    frozenset(self._rule_units),
                    self._rule_positional,
                )
            )
        self._build_vocabularies()
        always: list[int] = []
        index: dict[int, list[int]] = {}
        indexed: list[_Rule] = []
        for i, rule in enumerate(compiled):
            if rule.groups:
                best = _best(rule.groups, self._units)
                for u in best:
                    index.setdefault(u, []).append(i)
                rest = tuple(dict.fromkeys(g for g in rule.groups if g != best))
                rule = replace(rule, check=rest)
            else:
                always.append(i)
            indexed.append(rule)
        self._rules = tuple(indexed)
        # Per-rule columns for the matching loop.
        self._names = [r.name for r in indexed]
        self._nodes_of = [_flat_or(r.node) for r in indexed]
        # A rule's other requirement groups, as group ids: the groups an item meets
        # are found once per item (unit -> groups), and each candidate is then one
        # C-level ``issuperset``.
        group_ids: dict[Group, int] = {}
        self._checks = [
            frozenset(group_ids.setdefault(g, len(group_ids)) for g in r.check) for r in indexed
        ]
        unit_groups: dict[int, list[int]] = {}
        for group, gid in group_ids.items():
            for u in group:
                unit_groups.setdefault(u, []).append(gid)
        self._unit_groups = {u: tuple(gids) for u, gids in unit_groups.items()}
        #: (unit, fields) of rules that are one word: decided without a node call.
        self._singles: list[tuple[int, tuple[int, ...]] | None] = [
            (n.single, n.fields) if isinstance(n, _Seq) and n.single >= 0 else None
            for n in self._nodes_of
        ]
        self._positional = [r.positional for r in indexed]
        self._index = {u: tuple(dict.fromkeys(ids)) for u, ids in index.items()}
        self._always = tuple(always)
        self._langs: dict[Profile, _Lang] = {}
        #: Item language tag -> its profile's caches (spares hashing the profile per item).
        self._lang_of_tag: dict[str | None, _Lang] = {}
        self._stem_vocab: dict[str, dict[str, tuple[int, ...]]] = {}

    @property
    def names(self) -> tuple[str, ...]:
        """The rule names, in rule order."""
        return tuple(r.name for r in self._rules)

    # ----------------------------------------------------------------- compiling

    def _unit(self, unit: _Unit) -> int:
        uid = self._unit_ids.get(unit)
        if uid is None:
            uid = self._unit_ids[unit] = len(self._units)
            self._units.append(unit)
        return uid

    def _word_unit(self, word: Word) -> int:
        cased = word.cased if word.mode is Mode.STEM else ""
        return self._unit(_Unit("word", word.folded, word.mode, cased, word.script))

    def _shared(self, key: tuple[object, ...], make: Callable[[], _N]) -> _N:
        """One node per key for the whole rule set (evaluated once per item)."""
        node = self._leaves.get(key)
        if node is None:
            node = make()
            self._nodes += 1
            node.id = self._nodes
            self._leaves[key] = node
        return node  # type: ignore[return-value]

    def _node(self, ast: Node, *, positional: bool) -> _Node:
        match ast:
            case Words():
                return self._seq(ast)
            case Near():
                self._rule_positional = True
                left = self._node(ast.left, positional=True)
                right = self._node(ast.right, positional=True)
                assert isinstance(left, _Positional)
                assert isinstance(right, _Positional)
                return self._shared(
                    ("near", left.id, right.id, ast.distance, ast.ordered),
                    lambda: _NearNode(left, right, ast.distance, ast.ordered),
                )
            case Or():
                children = tuple(self._node(c, positional=positional) for c in ast.children)
                if positional:
                    pos = tuple(c for c in children if isinstance(c, _Positional))
                    return self._shared(("por", tuple(c.id for c in pos)), lambda: _PosOr(pos))
                return self._numbered(_OrNode(children))
            case And():
                return self._numbered(
                    _AndNode(tuple(self._node(c, positional=False) for c in ast.children))
                )
            case Not():
                return self._numbered(_NotNode(self._node(ast.child, positional=False)))
            case Regex():
                rx = compile_regex(ast.pattern)
                leaf = self._shared(
                    ("regex", ast.pattern, ast.fields), lambda: _RegexLeaf(rx, ast.fields)
                )
                for f in ast.fields:
                    self._uses[f] = True
                literals = required_literals(rx)
                if literals:
                    leaf.literals = frozenset(self._unit(_Unit("literal", t)) for t in literals)
                return leaf
            case Meta():
                kind = ast.field + ("*" if ast.prefix else "")
                unit = self._unit(_Unit(kind, ast.value))
                return self._shared(
                    ("meta", ast.field, ast.value, ast.prefix),
                    lambda: _MetaLeaf(ast.field, ast.value, ast.prefix, unit),
                )

    def _numbered(self, node: _Node) -> _Node:
        self._nodes += 1
        node.id = self._nodes
        return node

    def _seq(self, ast: Words) -> _Seq:
        words = ast.words
        alts: list[tuple[int, ...]] = []
        covers: list[set[int]] = [set() for _ in words]
        for segmentation in _segmentations(len(words)):
            alt: list[int] = []
            for lo, hi in segmentation:
                uid = self._word_unit(_merge(words[lo:hi]))
                self._rule_units.add(uid)
                alt.append(uid)
                for j in range(lo, hi):
                    covers[j].add(uid)
            alts.append(tuple(alt))
        for f in ast.fields:
            self._uses[f] = True
        if any(len(alt) > 1 for alt in alts):
            self._rule_positional = True
        key = ("seq", tuple(alts), ast.slop, ast.fields)
        seq = self._shared(key, lambda: _Seq(tuple(alts), ast.slop, ast.fields))
        seq._groups = [frozenset(c) for c in covers]
        return seq

    def _build_vocabularies(self) -> None:
        exact: dict[str, list[int]] = {}
        caps: dict[str, list[int]] = {}
        prefix: dict[str, list[int]] = {}
        lang: dict[str, list[int]] = {}
        tag: dict[str, list[int]] = {}
        self._tag_prefixes: list[tuple[str, int]] = []
        self._lang_prefixes: list[tuple[str, int]] = []
        literals: dict[str, list[int]] = {}
        heads: set[str] = set()
        prefixes: set[str] = set()
        self._stem_units: list[tuple[int, _Unit]] = []
        for uid, unit in enumerate(self._units):
            if unit.kind == "word":
                if unit.mode is Mode.CAPS:
                    caps.setdefault(unit.text, []).append(uid)
                elif unit.mode is Mode.PREFIX:
                    prefix.setdefault(unit.text, []).append(uid)
                else:
                    exact.setdefault(unit.text, []).append(uid)
                    if unit.mode is Mode.STEM:
                        self._stem_units.append((uid, unit))
                if len(unit.text) >= MIN_COMPOUND_LENGTH:
                    text = unit.text
                    prefixes.update(text[:k] for k in range(1, len(text) + 1))
                    # A compound's parts: at least 2 letters each (so "a", "и", "в" never
                    # start one; they are too common to look at what follows them).
                    heads.update(text[:k] for k in range(2, len(text) - 1))
            elif unit.kind == "lang":
                lang.setdefault(unit.text, []).append(uid)
            elif unit.kind == "lang*":
                self._lang_prefixes.append((unit.text, uid))
            elif unit.kind == "tag":
                tag.setdefault(unit.text, []).append(uid)
            elif unit.kind == "tag*":
                self._tag_prefixes.append((unit.text, uid))
            elif unit.kind == "literal":
                literals.setdefault(unit.text, []).append(uid)
        self._exact = {k: tuple(v) for k, v in exact.items()}
        self._caps = {k: tuple(v) for k, v in caps.items()}
        self._prefix = {k: tuple(v) for k, v in prefix.items()}
        self._prefix_lengths = tuple(sorted({len(k) for k in prefix}))
        self._prefix_heads = frozenset(k[:n] for k in prefix for n in range(1, len(k) + 1))
        self._lang_units = {k: tuple(v) for k, v in lang.items()}
        self._tag_units = {k: tuple(v) for k, v in tag.items()}
        self._lang_units_any = bool(self._lang_units or self._lang_prefixes)
        self._tag_units_any = bool(self._tag_units or self._tag_prefixes)
        self._meta_cache: dict[tuple[str, str], tuple[int, ...]] = {}
        #: Tokens that may start a compound, and every prefix of a compound target.
        self._heads = frozenset(heads)
        self._prefixes = frozenset(prefixes)
        self._automaton: Any = None
        if literals:
            automaton = ahocorasick.Automaton()
            for text, ids in literals.items():
                automaton.add_word(text, tuple(ids))
            automaton.make_automaton()
            self._automaton = automaton
        self._shortest_literal = min(map(len, literals), default=0)

    def _stems(self, algorithm: str) -> dict[str, tuple[int, ...]]:
        """Stem key -> units, for the rule words a stemmer's scripts cover (built on demand)."""
        vocab = self._stem_vocab.get(algorithm)
        if vocab is None:
            scripts = ALGORITHM_SCRIPTS[algorithm]
            building: dict[str, list[int]] = {}
            for uid, unit in self._stem_units:
                if unit.script in scripts:
                    for key in stem_keys(algorithm, unit.text, unit.cased or unit.text):
                        building.setdefault(key, []).append(uid)
            vocab = {k: tuple(v) for k, v in building.items()}
            self._stem_vocab[algorithm] = vocab
        return vocab

    # ----------------------------------------------------------------- item tokens

    def _lang(self, profile: Profile) -> _Lang:
        got = self._langs.get(profile)
        if got is None:
            got = self._langs[profile] = _Lang(profile)
            got.quick_cyrillic = self._quick_cyrillic(got)
            got.quick = self._quick_starts(got)
            if got.quick is not None:
                got.quick_re = _quick_pattern(got.quick, got.quick_cyrillic)
        return got

    def _quick_cyrillic(self, lang: _Lang) -> bool:
        """Whether a Cyrillic token's first two letters are also those of every key
        it can satisfy a stem unit by: its stemmer only removes endings and no rule
        word stems to a single letter."""
        algorithm = lang.by_script.get("cyrillic")
        if algorithm is None or not self._stem_units:
            return True
        if algorithm not in _SUFFIX_ONLY_CYRILLIC_STEMMERS:
            return False
        return all(len(key) >= 2 for key in self._stems(algorithm))

    def _quick_starts(self, lang: _Lang) -> frozenset[str] | None:
        """The first two letters of every key an ASCII word could satisfy a unit by.

        A chunk none of whose tokens has first two letters (folded) among them
        satisfies no unit and starts no compound: it is barren without being
        analysed (see _quick_barren). None when that does not hold: regex literals
        (they match inside tokens), or a Latin stemmer that may change a word's
        first letters. With ``lang.quick_cyrillic`` the Russian stemmer's keys are
        in too (the others are there already: exact words, prefixes, heads).
        """
        if self._automaton is not None:
            return None
        keys: set[str] = {*self._exact, *self._caps, *self._prefix, *self._heads}
        algorithm = lang.by_script.get("latin")
        if algorithm is not None and self._stem_units:
            if algorithm not in _SUFFIX_ONLY_STEMMERS:
                return None
            stems = self._stems(algorithm)
            if any(len(key) < 2 for key in stems):
                return None  # a one-letter stem can come from words starting otherwise
            keys.update(stems)
            keys.update(_STEM_EXCEPTION_STARTS.get(algorithm, ()))
        cyrillic = lang.by_script.get("cyrillic")
        if lang.quick_cyrillic and cyrillic is not None and self._stem_units:
            keys.update(self._stems(cyrillic))
        return frozenset(key[:2] for key in keys)

    def _quick_barren(self, lang: _Lang, chunk: str) -> bool:
        """Whether ``chunk`` is surely barren, decided without analysing it.

        Sound because a chunk satisfies a unit or starts a compound only through a
        token whose first two folded letters are in ``lang.quick``: checked
        directly for a one-word ASCII chunk, with ``lang.quick_re`` for others made
        of ASCII, :data:`_QUICK_PUNCTUATION` and (when allowed) Russian letters.
        """
        quick = lang.quick
        if quick is None:
            return False
        core = chunk if chunk.isalnum() else chunk.strip(EDGE_PUNCTUATION)
        if core.isascii():
            if core.isalnum():
                # As chunk_tokens sees it: one token, folded by lower-casing (ASCII).
                return core[:2].lower() not in quick
        elif not _ascii_or_quick(core) and not (lang.quick_cyrillic and _russian_or_quick(core)):
            return False
        # Searched without mapping _QUICK_PUNCTUATION to spaces first: the pattern
        # reads a character of it exactly as a space (in none of its classes).
        pattern = lang.quick_re
        return pattern is not None and pattern.search(core) is None

    def _token_units(self, lang: _Lang, raw: str, f: Folded) -> tuple[int, ...]:
        units = self._units_for(lang, f.folded, f.cased, f.caps, f.script, prefixes=True)
        lang.tokens[raw] = units
        return units

    def _units_for(
        self, lang: _Lang, folded: str, cased: str, caps: bool, script: str, *, prefixes: bool
    ) -> tuple[int, ...]:
        found: list[int] = []
        got = self._exact.get(folded)
        if got:
            found += got
        if caps:
            got = self._caps.get(folded)
            if got:
                found += got
        algorithm = lang.by_script.get(script)
        if algorithm is not None and self._stem_units:
            vocab = self._stems(algorithm)
            for key in stem_keys(algorithm, folded, cased):
                got = vocab.get(key)
                if got:
                    found += got
        if prefixes and self._prefix:
            size = len(folded)
            for n in self._prefix_lengths:
                if n > size:
                    break
                head = folded[:n]
                got = self._prefix.get(head)
                if got:
                    found += got
                elif head not in self._prefix_heads:
                    break  # no longer prefix of the token can be a rule prefix either
        if self._automaton is not None and len(folded) >= self._shortest_literal:
            for _end, ids in self._automaton.iter(folded):
                found += ids
        if len(found) > 1:
            return tuple(sorted(set(found)))
        return tuple(found)

    def _compound(self, lang: _Lang, parts: Sequence[Folded]) -> tuple[int, ...]:
        """Units satisfied by tokens written joined (``counter`` + ``terrorism``).

        Only the rule words that would allow this join on their own count (5+
        characters, each part 2+, see :func:`_allows_join`), so that what a rule
        matches never depends on the other rules of the set.
        """
        cased = "".join(p.cased for p in parts)
        caps = all(p.caps for p in parts)
        key: tuple[str | bool, ...] = (*[p.folded for p in parts], cased, caps)
        hit = lang.compounds.get(key)
        if hit is None:
            folded = "".join(p.folded for p in parts)
            found = self._units_for(lang, folded, cased, caps, script_of(folded), prefixes=True)
            units = self._units
            hit = tuple(
                u
                for u in found
                if units[u].kind == "word"
                and len(units[u].text) >= MIN_COMPOUND_LENGTH
                and _allows_join(units[u].text, parts)
            )
            lang.compounds[key] = hit
        return hit

    def _chunk(self, lang: _Lang, chunk: str, *, keep: bool = False) -> _Chunk:
        """Analyse a chunk into ``lang``'s caches; a barren one (no unit, no compound
        start) only into ``lang.barren``, unless ``keep`` (it ends a compound)."""
        heads = self._heads
        word = one_word(chunk)
        if word is not None:
            # One token (most chunks): no compound inside, and no tokenizer needed.
            start, raw = word
            end = start + len(raw)
            f = fold_token(raw)
            units = lang.tokens.get(raw)
            if units is None:
                units = self._token_units(lang, raw, f)
            info = _Chunk(1)
            if start == 0:
                info.first = (f, end)
            last = (f, start) if end == len(chunk) and f.folded in heads else None
            if units:
                info.flat = tuple([(u, 0, 0, start, end) for u in units])
                lang.remember(chunk, info, frozenset((*units, _JOIN) if last else units), last)
            elif last is not None:
                lang.remember(chunk, info, _JOIN_ONLY, last)
            elif keep:
                lang.remember(chunk, info, _NO_UNITS, None)
            else:
                lang.barren.add(chunk)
            return info
        tokens = chunk_tokens(chunk)
        spans, folded = tokens.spans, tokens.folded
        info = _Chunk(len(spans))
        if not spans:
            if keep:
                lang.remember(chunk, info, _NO_UNITS, None)
            else:
                lang.barren.add(chunk)
            return info
        flat: list[tuple[int, int, int, int, int]] = []
        cache = lang.tokens
        for k, raw in enumerate(tokens.raws):
            units = cache.get(raw)
            if units is None:
                units = self._token_units(lang, raw, folded[k])
            if units:
                start, end = spans[k]
                flat += [(u, k, k, start, end) for u in units]
        if heads:
            prefixes = self._prefixes
            for k in range(len(spans) - 1):
                head = folded[k].folded
                if head not in heads:
                    continue
                for m in range(k + 1, min(k + MAX_COMPOUND_TOKENS, len(spans))):
                    if not tokens.joins[m - 1] or (head + folded[m].folded[:3]) not in prefixes:
                        break
                    units = self._compound(lang, folded[k : m + 1])
                    flat += [(u, k, m, spans[k][0], spans[m][1]) for u in units]
                    head += folded[m].folded
            flat.sort(key=lambda t: (t[1], t[2]))
        info.flat = tuple(flat)
        units_here = {t[0] for t in flat}
        if spans[0][0] == 0:
            info.first = (folded[0], spans[0][1])
        end_span = spans[-1]
        last = None
        if end_span[1] == len(chunk) and folded[-1].folded in heads:
            last = (folded[-1], end_span[0])
            units_here.add(_JOIN)
        if units_here == {_JOIN}:
            lang.remember(chunk, info, _JOIN_ONLY, last)
        elif units_here:
            lang.remember(chunk, info, frozenset(units_here), last)
        elif keep:
            lang.remember(chunk, info, _NO_UNITS, None)
        else:
            lang.barren.add(chunk)
        return info

    def _meta_units(self, field: str, value: str) -> tuple[int, ...]:
        """Units of ``lang:``/``tag:`` filters met by an item's language or one tag."""
        key = (field, value)
        hit = self._meta_cache.get(key)
        if hit is None:
            found: list[int] = []
            if field == "lang":
                for v in _lang_values(value):
                    found += self._lang_units.get(v, ())
                    found += [uid for pre, uid in self._lang_prefixes if v.startswith(pre)]
            else:
                v = fold_word(value).strip()
                found += self._tag_units.get(v, ())
                found += [uid for pre, uid in self._tag_prefixes if v.startswith(pre)]
            hit = tuple(found)
            if len(self._meta_cache) >= _CACHE_LIMIT:
                self._meta_cache.clear()
            self._meta_cache[key] = hit
        return hit

    def _field(self, lang: _Lang, text: str, present: set[int]) -> _FieldData | None:
        """Phase 1 for one field: chunks, and the units they satisfy (into ``present``).

        Written as C-level ``map``/``filter`` over the chunks: this runs for every item.
        """
        if not text:
            return None
        chunks = text.split()
        # Most chunks of most items are barren (no unit, no compound start): only
        # the others are looked at; a field with none of them is skipped whole.
        # ``difference`` looks each distinct chunk up once; ``difference_update``
        # with the (much larger) barren set would first build the intersection.
        rest = set(chunks).difference(lang.barren)
        if not rest:
            return None
        known, barren = lang.chunks, lang.barren
        new = rest.difference(known)
        if new:
            starts, quick = lang.quick, self._quick_barren
            for chunk in new:
                if starts is not None:
                    if chunk.isascii() and chunk.isalnum():
                        # One ASCII word (most new chunks): _quick_barren's own test of it.
                        if chunk[:2].lower() not in starts:
                            barren.add(chunk)
                            continue
                    elif quick(lang, chunk):
                        barren.add(chunk)
                        continue
                self._chunk(lang, chunk)  # into ``known`` or ``barren``
            rest.difference_update(barren)
            if not rest:
                return None
        units_of = lang.units
        here: set[int] = set()
        here.update(*map(units_of.__getitem__, rest))
        joins: list[tuple[int, tuple[int, ...]]] = []
        if _JOIN in here:
            # Some chunk ends with a token that may start a compound: look at what follows.
            here.discard(_JOIN)
            lasts, prefixes = lang.lasts, self._prefixes
            for i in itertools.compress(range(len(chunks) - 1), map(lasts.__contains__, chunks)):
                left = lasts[chunks[i]][0]
                following = chunks[i + 1]
                info = known.get(following)
                if info is None:
                    # Barren, so not kept: most cannot continue, seen without analysis.
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
                        self._chunk(lang, following, keep=True)  # postings look it up
                    joins.append((i, units))
                    here.update(units)
        if not here:
            return None  # the same as a field with no unit in it
        # The chunks with units (not only a compound start): the others are not
        # looked at again; token positions are counted in the text when needed.
        wanted = {c for c in rest if units_of[c] and units_of[c] is not _JOIN_ONLY}
        present |= here
        return _FieldData(text, chunks, wanted, here, joins)

    # ----------------------------------------------------------------- matching

    def match(self, item: MatchInput) -> list[RuleMatch]:
        """The rules matching ``item``, in rule order, with spans in its original text."""
        lang = self._lang_of_tag.get(item.lang)
        if lang is None:
            lang = self._lang(profile_for(item.lang))
            if len(self._lang_of_tag) < _LANG_TAGS_LIMIT:
                self._lang_of_tag[item.lang] = lang
        lang.trim()
        present: set[int] = set()
        uses = self._uses
        fields: list[_FieldData | None] = [
            self._field(lang, item.title, present) if uses[0] else None,
            self._field(lang, item.content, present) if uses[1] else None,
            self._field(lang, item.author, present) if uses[2] else None,
            self._field(lang, item.feed, present) if uses[3] else None,
        ]
        if item.lang and self._lang_units_any:
            present.update(self._meta_units("lang", item.lang))
        if item.tags and self._tag_units_any:
            for tag in item.tags:
                present.update(self._meta_units("tag", tag))
        # Candidates: rules indexed under a unit the item has (C-level unions) ...
        candidates: set[int] = set(self._always)
        candidates.update(*filter(None, map(self._index.get, present)))
        if not candidates:
            return []
        # Those that meet their other requirement groups too, in rule order.
        met: set[int] = set()
        met.update(*filter(None, map(self._unit_groups.get, present)))
        checks = self._checks
        order = sorted(candidates)
        order = list(itertools.compress(order, map(met.issuperset, map(checks.__getitem__, order))))
        if not order:
            return []
        # Postings are computed lazily per field, for the units the item has; token
        # positions only if a candidate has a phrase or NEAR.
        positions = any(map(self._positional.__getitem__, order))
        ctx = _Item(lang, item, fields, present, positions)
        out: list[RuleMatch] = []
        names, nodes, singles = self._names, self._nodes_of, self._singles
        unit_spans = ctx.unit_spans
        for i in order:
            single = singles[i]
            if single is not None:
                # One word (the commonest rule): its spans, shared by every such rule.
                if single[0] in present:
                    spans = unit_spans(single[0], single[1])
                    if spans is not None:
                        out.append(_rule_match((names[i], spans)))
                continue
            ctx.rule = names[i]
            spans = nodes[i].spans(ctx)
            if spans is not None:
                out.append(_rule_match((names[i], spans)))
        return out


# --------------------------------------------------------------------------- phrases


def _segmentations(n: int) -> list[list[tuple[int, int]]]:
    """Ways to write ``n`` words as runs of joined words (``counter terrorism`` ->
    ``counter``+``terrorism``, ``counterterrorism``). All of them for short phrases;
    for longer ones the words as written plus each adjacent pair joined."""
    if n == 1:
        return [[(0, 1)]]
    if n <= _ALL_MERGES_UP_TO:
        out: list[list[tuple[int, int]]] = []
        for cuts in itertools.product((False, True), repeat=n - 1):
            seg: list[tuple[int, int]] = []
            lo = 0
            for i, cut in enumerate(cuts, start=1):
                if cut:
                    seg.append((lo, i))
                    lo = i
            seg.append((lo, n))
            out.append(seg)
        # As written first.
        out.sort(key=len, reverse=True)
        return out
    single = [(i, i + 1) for i in range(n)]
    out = [single]
    for i in range(n - 1):
        out.append([*single[:i], (i, i + 2), *single[i + 2 :]])
    return out


def _merge(words: Sequence[Word]) -> Word:
    """Words written joined: ``counter`` + ``terrorism`` -> ``counterterrorism``."""
    if len(words) == 1:
        return words[0]
    folded = "".join(w.folded for w in words)
    cased = "".join(w.cased for w in words)
    modes = {w.mode for w in words}
    if words[-1].mode is Mode.PREFIX:
        mode = Mode.PREFIX
    elif Mode.CAPS in modes:
        mode = Mode.CAPS
    elif Mode.STEM in modes and len(folded) >= 4:
        mode = Mode.STEM
    else:
        mode = Mode.EXACT
    return Word(folded, cased, mode, script_of(folded))


# --------------------------------------------------------------------------- quick decisions


#: The first token of an ASCII chunk, when the chunk starts with one.
_ASCII_WORD: Final = re.compile("[A-Za-z0-9]+").match
#: Whether a text is made of ASCII and _QUICK_PUNCTUATION (and Russian letters): the
#: characters a quickly decided chunk may contain.
_ascii_or_quick: Final = re.compile(f"[\\x00-\\x7f{re.escape(_QUICK_PUNCTUATION)}]*").fullmatch
_russian_or_quick: Final = re.compile(
    f"[\\x00-\\x7f{_QUICK_CYRILLIC}{re.escape(_QUICK_PUNCTUATION)}]*"
).fullmatch


def _cannot_continue(head: str, chunk: str, prefixes: AbstractSet[str]) -> bool:
    """Whether ``chunk`` surely cannot continue a compound after the token ``head``
    (folded), decided without analysing it: it does not start with a token, or
    (ASCII) its first token's first three letters do not go on from ``head`` to a
    prefix of a compound target. False: analyse it to know."""
    if chunk[0] in _NOT_IN_TOKENS:
        return True
    if not chunk.isascii():
        return False
    word = _ASCII_WORD(chunk)
    return word is None or (head + word.group()[:3].lower()) not in prefixes


def _quick_pattern(quick: frozenset[str], cyrillic: bool) -> re.Pattern[str]:
    """A regex that finds, in a piece of text made of ASCII and :data:`_QUICK_PUNCTUATION`
    (which it reads as spaces: no class of it has any of those characters) and Russian
    letters when ``cyrillic``, where a token starts whose first two folded letters are in
    ``quick`` (a token of one letter: that letter), and every token mixing ASCII
    and Cyrillic (not decided quickly). No match: every token of the text is
    barren and starts no compound.

    Tokens there are the maximal runs of ASCII letters and digits (or of Russian
    letters): no marks, no invisible characters. They fold letter by letter:
    lower case, and ``ё`` -> ``е``.
    """
    letters = "A-Za-z0-9" + (_QUICK_CYRILLIC if cyrillic else "")

    def variants(ch: str) -> str:
        """The characters of a token that fold to ``ch`` ("" for none)."""
        if ch.isascii() and ch.isalnum():
            return "".join(sorted({ch, ch.upper()}))
        if cyrillic and "а" <= ch <= "я":
            return "".join(sorted({ch, ch.upper(), *("ёЁ" if ch == "е" else "")}))
        return ""

    # Grouped by first letter: one branch per letter, tried at token starts only.
    seconds: dict[str, str] = {}  # first letter (its variants) -> second letters
    alone: set[str] = set()  # first letters that are a start on their own
    for start in sorted(quick):
        first = variants(start[0])
        if not first:
            continue
        if len(start) == 1:
            alone.add(first)
        elif second := variants(start[1]):
            seconds[first] = seconds.get(first, "") + second
    branches: list[str] = []
    for first in sorted(seconds.keys() | alone):
        after = [f"[{seconds[first]}]"] if first in seconds else []
        if first in alone:
            after.append(f"(?![{letters}])")  # a token of that one letter
        branches.append(f"[{first}](?:{'|'.join(after)})")
    parts = [f"(?<![{letters}])(?:{'|'.join(branches)})"] if branches else []
    if cyrillic:
        parts.append(f"[A-Za-z0-9][{_QUICK_CYRILLIC}]|[{_QUICK_CYRILLIC}][A-Za-z0-9]")
    # Nothing to find: "(?!)" matches nowhere (an empty pattern would match everywhere).
    return re.compile("|".join(parts) or "(?!)")


# --------------------------------------------------------------------------- API


def _allows_join(word: str, parts: Sequence[Folded]) -> bool:
    """Whether the rule word ``word`` alone lets these tokens join: each part starts
    where the word goes on (by its first 3 letters), parts of 2+ letters."""
    head = parts[0].folded
    for part in parts[1:]:
        if not 2 <= len(head) <= len(word) - 2 or not word.startswith(head + part.folded[:3]):
            return False
        head += part.folded
    return True


def _flat_or(node: _Node) -> _Node:
    """The flat form of a rule's node when it has one (single words stay as they are)."""
    if isinstance(node, _Seq | _MetaLeaf):
        return node
    flat = _flatten(node)
    if flat is None:
        return node
    clauses, negated = flat
    return _FlatNode(tuple(clauses), tuple(negated))


def _named(exc: RuleSyntaxError, rule: str) -> RuleSyntaxError:
    """The same error, naming the rule: ``str()`` is "rule 'ai': column 7: ..." and
    ``.rule`` is the name; ``.reason`` and ``.column`` are unchanged."""
    named = RuleSyntaxError(exc.reason, exc.column, exc.query)
    named.args = (f"rule {rule!r}: column {exc.column}: {exc.reason}",)
    named.rule = rule
    return named


def compile_rules(rules: Iterable[RuleSpec]) -> Matcher:
    """Compile the rule set once; raises :class:`RuleSyntaxError` for an invalid query
    (its message names the rule, and ``.rule`` holds the name)."""
    return RuleSet(rules)


__all__ = ["Matcher", "RuleSet", "compile_rules"]

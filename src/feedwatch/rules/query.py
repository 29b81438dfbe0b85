"""Rule queries: lexer and recursive-descent parser -> AST with 1-based columns.

Pure: no I/O, no clock. Implements the grammar in the package docstring
(``feedwatch.rules``); every error is a :class:`RuleSyntaxError` with the
1-based column (in code points) of the offending token and a ``reason``.

Words are folded and split here (with :mod:`.text`), so the AST holds what the
matcher needs: each :class:`Word` knows its folded form and how it matches
(:class:`Mode`). Does NOT match anything (``matcher`` does) and does not
stem.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, replace
from typing import Final

from ..exceptions import RuleSyntaxError
from .text import compile_regex, fold_token, fold_word, tokenize

#: Text fields a word can be scoped to; ``text`` is title + content (the default).
TEXT_FIELDS: Final = ("title", "content", "text", "author", "feed")
#: Metadata fields: exact (case-insensitive) filters, not text.
META_FIELDS: Final = ("tag", "lang")
FIELDS: Final = TEXT_FIELDS + META_FIELDS
#: The text fields of an item, by index (a :class:`Words` ``fields`` tuple holds indices).
FIELD_NAMES: Final = ("title", "content", "author", "feed")
_SCOPE: Final = {
    "title": (0,),
    "content": (1,),
    "text": (0, 1),
    "author": (2,),
    "feed": (3,),
}
DEFAULT_SCOPE: Final = (0, 1)

#: Words shorter than this (folded) match exactly, never by stem.
MIN_STEM_LENGTH: Final = 4
#: A prefix (``word*``) needs at least this many characters before the ``*``.
MIN_PREFIX_LENGTH: Final = 3


class Mode(enum.Enum):
    """How one word of a rule matches item tokens."""

    #: Same folded form, or same stem in the token's language.
    STEM = "stem"
    #: Same folded form (``=word``, and words shorter than 4 characters).
    EXACT = "exact"
    #: Same folded form, and the item token is written in capitals (``UN``, ``ИИ``).
    CAPS = "caps"
    #: The folded token starts with the folded word (``terror*``).
    PREFIX = "prefix"


@dataclass(frozen=True, slots=True)
class Word:
    """One word of a rule, folded."""

    folded: str
    #: Folded but with Latin accents (for stemming; see ``_stem.stem_keys``).
    cased: str
    mode: Mode
    script: str


# --------------------------------------------------------------------------- AST


@dataclass(frozen=True, slots=True)
class Words:
    """A term (one word, or a hyphenated word = its parts in a row) or a quoted phrase."""

    words: tuple[Word, ...]
    #: Extra words allowed between the words (``"a b"~n``); 0 for terms.
    slop: int
    #: Text fields searched (indices into FIELD_NAMES).
    fields: tuple[int, ...]
    column: int
    #: As written (for messages and dumps).
    text: str


@dataclass(frozen=True, slots=True)
class Regex:
    pattern: str
    fields: tuple[int, ...]
    column: int


@dataclass(frozen=True, slots=True)
class Meta:
    """``lang:`` or ``tag:``: the item's language tag, or one of its tags."""

    field: str
    value: str
    prefix: bool
    column: int


@dataclass(frozen=True, slots=True)
class Not:
    child: Node
    column: int


@dataclass(frozen=True, slots=True)
class And:
    children: tuple[Node, ...]
    column: int


@dataclass(frozen=True, slots=True)
class Or:
    children: tuple[Node, ...]
    column: int


@dataclass(frozen=True, slots=True)
class Near:
    left: Node
    right: Node
    #: At most this many words between the two sides.
    distance: int
    #: ONEAR: the left side comes first.
    ordered: bool
    column: int


Node = Words | Regex | Meta | Not | And | Or | Near


def dump(node: Node) -> str:
    """A compact prefix rendering of the AST, for tests and ``rules try``."""
    match node:
        case Words():
            parts = []
            for w in node.words:
                # "=" only where it changes something: short words are exact anyway.
                exact = w.mode is Mode.EXACT and len(w.folded) >= MIN_STEM_LENGTH
                mark = "^" if w.mode is Mode.CAPS else "=" if exact else ""
                parts.append(mark + w.folded + ("*" if w.mode is Mode.PREFIX else ""))
            body = " ".join(parts)
            if len(node.words) > 1 or node.slop:
                body = f'"{body}"' + (f"~{node.slop}" if node.slop else "")
            if node.fields != DEFAULT_SCOPE:
                body = "+".join(FIELD_NAMES[i] for i in node.fields) + ":" + body
            return body
        case Regex():
            scope = "" if node.fields == DEFAULT_SCOPE else f"{FIELD_NAMES[node.fields[0]]}:"
            return f"{scope}/{node.pattern}/"
        case Meta():
            return f"{node.field}:{node.value}{'*' if node.prefix else ''}"
        case Not():
            return f"(NOT {dump(node.child)})"
        case And():
            return "(AND " + " ".join(dump(c) for c in node.children) + ")"
        case Or():
            return "(OR " + " ".join(dump(c) for c in node.children) + ")"
        case Near():
            op = "ONEAR" if node.ordered else "NEAR"
            return f"({op}/{node.distance} {dump(node.left)} {dump(node.right)})"


# --------------------------------------------------------------------------- lexer


class _T(enum.Enum):
    LPAREN = "("
    RPAREN = ")"
    AND = "AND"
    OR = "OR"
    NOT = "NOT"
    NEAR = "NEAR"
    WORD = "word"
    PHRASE = "phrase"
    REGEX = "regex"
    FIELD = "field"


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: _T
    text: str
    column: int
    #: NEAR distance, phrase slop.
    number: int = 0
    #: ONEAR.
    ordered: bool = False


_FIELD_PREFIX = re.compile(r"([A-Za-z]+):")
_NEAR = re.compile(r"(O?NEAR)(?:/(\d+))?$")
_STOP = frozenset('()"')
_KNOWN = ", ".join(FIELDS)


def _lex(query: str) -> list[_Tok]:
    out: list[_Tok] = []
    i, n = 0, len(query)
    while i < n:
        ch = query[i]
        col = i + 1
        if ch.isspace():
            i += 1
        elif ch == "(":
            out.append(_Tok(_T.LPAREN, ch, col))
            i += 1
        elif ch == ")":
            out.append(_Tok(_T.RPAREN, ch, col))
            i += 1
        elif ch == '"':
            end = query.find('"', i + 1)
            if end < 0:
                raise RuleSyntaxError("unbalanced quote", col, query)
            text = query[i + 1 : end]
            i = end + 1
            slop = 0
            if i < n and query[i] == "~":
                j = i + 1
                while j < n and query[j].isdigit():
                    j += 1
                if j == i + 1:
                    raise RuleSyntaxError(
                        '~ needs a number of words after it (e.g. "a b"~3)', i + 1, query
                    )
                slop = int(query[i + 1 : j])
                i = j
            out.append(_Tok(_T.PHRASE, text, col, number=slop))
        elif ch == "/":
            j = i + 1
            while j < n and query[j] != "/":
                j += 2 if query[j] == "\\" else 1
            if j >= n:
                raise RuleSyntaxError("unbalanced regex: no closing /", col, query)
            pattern = query[i + 1 : j]
            if not pattern:
                raise RuleSyntaxError("empty regex", col, query)
            out.append(_Tok(_T.REGEX, pattern, col))
            i = j + 1
        elif ch == "-" and _starts_operand(query, i + 1):
            out.append(_Tok(_T.NOT, ch, col))
            i += 1
        else:
            field = _FIELD_PREFIX.match(query, i)
            if field and field.end() < n and not query[field.end()].isspace():
                name = field.group(1)
                if name.lower() not in FIELDS:
                    raise RuleSyntaxError(
                        f"unknown field {name!r} (known fields: {_KNOWN})", col, query
                    )
                out.append(_Tok(_T.FIELD, name.lower(), col))
                i = field.end()
                continue
            j = i
            while j < n and not query[j].isspace() and query[j] not in _STOP:
                j += 1
            chunk = query[i:j]
            i = j
            if chunk in ("AND", "OR", "NOT"):
                out.append(_Tok(_T(chunk), chunk, col))
                continue
            near = _NEAR.match(chunk) if chunk.startswith(("NEAR", "ONEAR")) else None
            if near or chunk.startswith(("NEAR/", "ONEAR/")):
                if near is None or near.group(2) is None:
                    op = "ONEAR" if chunk.startswith("O") else "NEAR"
                    raise RuleSyntaxError(
                        f"{op} needs a distance: {op}/n (e.g. {op}/5)", col, query
                    )
                out.append(
                    _Tok(
                        _T.NEAR,
                        chunk,
                        col,
                        number=int(near.group(2)),
                        ordered=near.group(1) == "ONEAR",
                    )
                )
                continue
            if field and field.group(1).lower() in FIELDS:
                raise RuleSyntaxError(
                    f"{field.group(1).lower()}: needs a word, phrase, regex or group "
                    "right after the colon",
                    col,
                    query,
                )
            out.append(_Tok(_T.WORD, chunk, col))
    return out


def _starts_operand(query: str, i: int) -> bool:
    """Whether a ``-`` just before ``query[i]`` is NOT: an operand follows it directly
    (``-football``, ``-(a b)``, ``--a``), not a space or punctuation alone (``a - b``, ``---``)."""
    j = i
    while j < len(query) and query[j] == "-":
        j += 1
    if j >= len(query) or query[j].isspace() or query[j] == ")":
        return False
    if query[j] in '("/':
        return True
    end = j
    while end < len(query) and not query[end].isspace() and query[end] not in _STOP:
        end += 1
    return any(ch.isalnum() for ch in query[j:end])


# --------------------------------------------------------------------------- words


def _words(piece: str, column: int, query: str, *, allow_ops: bool = True) -> tuple[Word, ...]:
    """Fold one whitespace-free piece (``=word``, ``word*``, ``counter-terror*``)."""
    exact = piece.startswith("=")
    body = piece[1:] if exact else piece
    prefix = body.endswith("*")
    if prefix:
        body = body[:-1]
    if exact and not body and not prefix:
        raise RuleSyntaxError("= needs a word right after it", column, query)
    if "*" in body:
        raise RuleSyntaxError("* is only allowed at the end of a word", column, query)
    tokens = tokenize(body)
    if not tokens:
        raise RuleSyntaxError(f"{piece!r} has no letters or digits", column, query)
    out: list[Word] = []
    for k, tok in enumerate(tokens):
        f = fold_token(tok.raw)
        if prefix and k == len(tokens) - 1:
            if len(f.folded) < MIN_PREFIX_LENGTH:
                raise RuleSyntaxError(
                    f"a prefix needs at least {MIN_PREFIX_LENGTH} letters before *",
                    column,
                    query,
                )
            mode = Mode.PREFIX
        elif f.caps:
            mode = Mode.CAPS
        elif exact or len(f.folded) < MIN_STEM_LENGTH:
            mode = Mode.EXACT
        else:
            mode = Mode.STEM
        out.append(Word(f.folded, f.cased, mode, f.script))
    return tuple(out)


def _meta_value(field: str, raw: str, column: int, query: str) -> tuple[str, bool]:
    prefix = raw.endswith("*")
    value = fold_word(raw[1:] if raw.startswith("=") else raw).strip()
    if prefix:
        value = value[:-1]
    if field == "lang":
        value = value.replace("_", "-")
    if not value or "*" in value:
        raise RuleSyntaxError(f"{field}: needs a value", column, query)
    return value, prefix


# --------------------------------------------------------------------------- parser

_OPERAND_START = frozenset({_T.WORD, _T.PHRASE, _T.REGEX, _T.FIELD, _T.LPAREN, _T.NOT})
_OPERAND_MSG = "needs a word or phrase on each side"


class _Parser:
    def __init__(self, query: str) -> None:
        self.query = query
        self.tokens = _lex(query)
        self.pos = 0

    def error(self, reason: str, column: int) -> RuleSyntaxError:
        return RuleSyntaxError(reason, column, self.query)

    def peek(self) -> _Tok | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def parse(self) -> Node:
        if not self.tokens:
            raise self.error("empty query", 1)
        node = self.or_expr(None)
        tok = self.peek()
        if tok is not None:
            # Only a ")" can be left over: every other token starts or joins an operand.
            raise self.error("unbalanced parenthesis", tok.column)
        return node

    def or_expr(self, scope: str | None) -> Node:
        first = self.and_expr(None, scope)
        children = [first]
        while (tok := self.peek()) is not None and tok.kind is _T.OR:
            self.pos += 1
            children.append(self.and_expr(tok, scope))
        return children[0] if len(children) == 1 else Or(tuple(children), _column(first))

    def and_expr(self, pending: _Tok | None, scope: str | None) -> Node:
        first = self.not_expr(pending, scope)
        children = [first]
        while (tok := self.peek()) is not None:
            if tok.kind is _T.AND:
                self.pos += 1
                children.append(self.not_expr(tok, scope))
            elif tok.kind in _OPERAND_START:
                children.append(self.not_expr(None, scope))
            else:
                break
        return children[0] if len(children) == 1 else And(tuple(children), _column(first))

    def not_expr(self, pending: _Tok | None, scope: str | None) -> Node:
        tok = self.peek()
        if tok is not None and tok.kind is _T.NOT:
            self.pos += 1
            return Not(self.not_expr(tok, scope), tok.column)
        return self.near_expr(pending, scope)

    def near_expr(self, pending: _Tok | None, scope: str | None) -> Node:
        left = self.primary(pending, scope)
        while (tok := self.peek()) is not None and tok.kind is _T.NEAR:
            self.pos += 1
            right = self.primary(tok, scope)
            _check_positional(left, tok, self.query)
            _check_positional(right, tok, self.query)
            left = Near(left, right, tok.number, tok.ordered, _column(left))
        return left

    def primary(self, pending: _Tok | None, scope: str | None) -> Node:
        tok = self.peek()
        if (
            tok is None
            or tok.kind in (_T.RPAREN, _T.OR, _T.AND, _T.NEAR)
            or (tok.kind is _T.NOT and pending is not None and pending.kind in (_T.NEAR, _T.FIELD))
        ):
            raise self._missing_operand(pending, tok)
        self.pos += 1
        if tok.kind is _T.FIELD:
            # Errors about a field-scoped operand point at the field name.
            return replace(self.primary(tok, tok.text), column=tok.column)
        if tok.kind is _T.LPAREN:
            if (close := self.peek()) is not None and close.kind is _T.RPAREN:
                raise self.error("empty group", tok.column)
            node = self.or_expr(scope)
            close = self.peek()
            if close is None or close.kind is not _T.RPAREN:
                raise self.error("unbalanced parenthesis", tok.column)
            self.pos += 1
            if isinstance(node, And | Or | Not | Near):
                # Errors about a group point at its "(".
                node = replace(node, column=tok.column)
            return node
        if tok.kind is _T.REGEX:
            if scope in META_FIELDS:
                raise self.error(f"{scope}: takes a value, not a regex", tok.column)
            try:
                compile_regex(tok.text)
            except ValueError as exc:
                raise self.error(f"invalid regex: {exc}", tok.column) from None
            return Regex(tok.text, _SCOPE.get(scope or "text", DEFAULT_SCOPE), tok.column)
        if scope in META_FIELDS:
            assert scope is not None
            value, prefix = _meta_value(scope, tok.text, tok.column, self.query)
            return Meta(scope, value, prefix, tok.column)
        fields = _SCOPE[scope or "text"]
        if tok.kind is _T.PHRASE:
            words: list[Word] = []
            for piece in tok.text.split():
                words.extend(_words(piece, tok.column, self.query))
            if not words:
                raise self.error("empty phrase", tok.column)
            return Words(tuple(words), tok.number, fields, tok.column, f'"{tok.text}"')
        if tok.kind is _T.NOT:  # pragma: no cover - handled in not_expr
            raise self._missing_operand(pending, tok)
        return Words(_words(tok.text, tok.column, self.query), 0, fields, tok.column, tok.text)

    def _missing_operand(self, pending: _Tok | None, found: _Tok | None) -> RuleSyntaxError:
        if found is not None and found.kind in (_T.OR, _T.AND, _T.NEAR):
            # An operator where an operand should be: it lacks its left operand.
            return self.error(f"{_op_name(found)} {_OPERAND_MSG}", found.column)
        if pending is None:
            if found is not None and found.kind is _T.RPAREN:
                return self.error("unbalanced parenthesis", found.column)
            return self.error("empty query", 1)  # pragma: no cover - caught in parse()
        if found is not None and found.kind is _T.RPAREN and pending.kind is _T.LPAREN:
            return self.error("empty group", pending.column)
        if pending.kind is _T.NOT:
            return self.error("NOT needs a word or phrase after it", pending.column)
        if pending.kind is _T.FIELD:
            return self.error(
                f"{pending.text}: needs a word, phrase, regex or group right after the colon",
                pending.column,
            )
        if pending.kind is _T.NEAR and found is not None and found.kind is _T.NOT:
            return self.error(
                f"{_op_name(pending)} works on words, phrases, prefixes and OR-groups of them, "
                "not on NOT",
                found.column,
            )
        return self.error(f"{_op_name(pending)} {_OPERAND_MSG}", pending.column)


def _op_name(tok: _Tok) -> str:
    if tok.kind is _T.NEAR:
        return f"{'ONEAR' if tok.ordered else 'NEAR'}/{tok.number}"
    return tok.text


def _column(node: Node) -> int:
    return node.column


def _check_positional(node: Node, op: _Tok, query: str) -> None:
    """NEAR takes words, phrases, prefixes, OR-groups of them and other NEARs."""
    match node:
        case Words():
            return
        case Near():
            return
        case Or():
            for child in node.children:
                _check_positional(child, op, query)
            return
        case Meta():
            what = f"{node.field}: filters"
        case Regex():
            what = "regexes"
        case And():
            what = "AND (a group of several words: quote a phrase or use NEAR in the group)"
        case Not():
            what = "NOT"
    raise RuleSyntaxError(
        f"{_op_name(op)} works on words, phrases, prefixes and OR-groups of them, not on {what}",
        node.column,
        query,
    )


def parse_query(query: str) -> Node:
    """Parse a rule query; raises :class:`RuleSyntaxError` with the column of the error."""
    return _Parser(query).parse()

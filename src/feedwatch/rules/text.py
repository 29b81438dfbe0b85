"""Text for rules: normalisation, tokenisation, and user regexes over normalised text.

Pure: no I/O, no clock (a regex search has a time budget, enforced by the
``regex`` library). The only module of feedwatch importing ``regex``.

Rules and items go through the same functions, so a word in a rule and the
same word in an item always fold to the same string:

* A **token** is a run of letters, marks and digits (Unicode L*, M*, N*) that
  starts with a letter or digit. Soft hyphens (U+00AD) and zero-width
  characters (U+200B..U+200D, U+2060, U+FEFF) between such characters are part
  of the token and removed when folding: ``coun\\u00adter`` is ``counter``.
  Everything else separates tokens, so ``l'intelligence`` is ``l`` +
  ``intelligence`` and ``UN-led`` is ``UN`` + ``led``.
* :func:`fold_token` gives a token's **folded** form: invisible characters and
  variation selectors removed, NFKC (ligatures, full-width forms), casefold
  (``Straße`` -> ``strasse``), ``ё`` -> ``е``, and for LATIN letters only the
  accents stripped (``Genève`` -> ``geneve``; Cyrillic ``й`` stays ``й``), plus
  ``ı ł ø đ ħ œ æ`` -> ``i l o d h oe ae``. Its **cased** form is the same
  without the accent stripping (a stemmer sees the accents; see ``_stem``).
* :func:`fold_text` folds a whole field the same way for regexes and keeps, for
  every character of the result, the range of the original text it came from,
  so regex matches map back to exact original offsets.

Does NOT stem (``_stem`` does), parse queries (``query``) or decide what
matches (``matcher``). Caches are per process and bounded.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from bisect import bisect_right
from dataclasses import dataclass
from typing import Final, NamedTuple

import regex

#: Characters removed wherever they occur inside a token (not separators).
INVISIBLE: Final = "\u00ad\u200b\u200c\u200d\u2060\ufeff"
#: Hyphen-like characters that join two tokens into a compound (``counter‑terrorism``):
#: hyphen-minus, hyphen, non-breaking hyphen, figure dash, en dash, minus sign,
#: small and full-width hyphen-minus. The em dash (U+2014) is punctuation, not a hyphen.
HYPHENS: Final = "-\u2010\u2011\u2012\u2013\u2212\ufe63\uff0d"

_TOKEN = regex.compile(
    r"[\p{L}\p{N}][\p{L}\p{M}\p{N}]*(?:[\u00ad\u200b-\u200d\u2060\ufeff]+[\p{L}\p{M}\p{N}]+)*"
)
# Removed when folding: the invisible characters, variation selectors, combining grapheme joiner.
_REMOVE = re.compile("[\u00ad\u200b-\u200d\u2060\ufeff\ufe00-\ufe0f\u034f\U000e0100-\U000e01ef]")
_EXTRA = str.maketrans({"ё": "е", "ѐ": "е"})
_LATIN_EXTRA = str.maketrans(
    {"ı": "i", "ł": "l", "ø": "o", "đ": "d", "ħ": "h", "ŧ": "t", "œ": "oe", "æ": "ae"}
)
_CACHE_LIMIT: Final = 30_000
#: The matcher keeps its own analysis of each chunk per language profile; this
#: cache only spares re-tokenising across profiles, so it stays small.
_CHUNK_CACHE_LIMIT: Final = 20_000


def _is_latin(ch: str) -> bool:
    cp = ord(ch)
    return (
        (cp < 0x80 and ch.isalpha())
        or 0x00C0 <= cp <= 0x02AF
        or 0x1D00 <= cp <= 0x1EFF
        or 0x2C60 <= cp <= 0x2C7F
        or 0xA720 <= cp <= 0xA7FF
        or 0xAB30 <= cp <= 0xAB6F
        or 0xFF21 <= cp <= 0xFF5A
    )


def _strip_latin_accents(text: str) -> str:
    """Drop combining marks whose base letter is Latin (``é`` -> ``e``; ``й`` stays)."""
    if not _LATIN_OR_MARK.search(text):
        return text  # Cyrillic, Greek, ...: nothing to strip
    if not _MARKS.search(text):
        return text.translate(_LATIN_TABLE)  # precomposed letters only
    return _strip_slowly(text)


def _strip_slowly(text: str) -> str:
    decomposed = unicodedata.normalize("NFD", text)
    out: list[str] = []
    latin_base = False
    is_mark = _MARKS.match
    for ch in decomposed:
        if is_mark(ch):
            if latin_base:
                continue
        else:
            latin_base = _is_latin(ch)
        out.append(ch)
    return unicodedata.normalize("NFC", "".join(out)).translate(_LATIN_EXTRA)


# Latin letters beyond ASCII, and combining marks: every mark, as fold_text's _MARK
# sees them (the regex module's \p{M}), not only the combining-diacritics blocks.
_LATIN_OR_MARK = regex.compile(
    "[\u00c0-\u02af\u1d00-\u1eff\u2c60-\u2c7f\ua720-\ua7ff\uab30-\uab6f\\p{M}]"
)
_MARKS = regex.compile(r"\p{M}")
# Precomposed Latin letter -> the letter without its accents (or as _LATIN_EXTRA says).
_LATIN_TABLE: dict[int, str] = {}
for _cp in (*range(0x00C0, 0x0250), *range(0x1E00, 0x1F00)):
    _stripped = _strip_slowly(chr(_cp)) if unicodedata.category(chr(_cp))[0] != "M" else chr(_cp)
    if _stripped != chr(_cp):
        _LATIN_TABLE[_cp] = _stripped
del _cp, _stripped


class Folded(NamedTuple):
    """A token as rules see it (a named tuple: cheap to make, and many are made)."""

    #: Casefolded, NFKC, accent-folded for Latin letters, ``ё`` -> ``е``.
    folded: str
    #: Like ``folded`` but with Latin accents kept (what a stemmer is given first).
    cased: str
    #: Written in capitals: at least two cased letters, all upper-case (``UN``, ``ИИ``).
    caps: bool
    #: Script of the first letter (see :func:`script_of`).
    script: str


_fold_cache: dict[str, Folded] = {}


def fold_token(raw: str) -> Folded:
    """Fold one token (as the tokenizer found it, or as written in a rule)."""
    hit = _fold_cache.get(raw)
    if hit is not None:
        return hit
    if raw.isascii():
        folded = raw.lower()
        script = "none" if folded.isdigit() else "latin" if folded.isalnum() else script_of(folded)
        result = Folded(folded, folded, raw.isupper() and is_caps(raw), script)
    else:
        text = _REMOVE.sub("", raw) if _REMOVE.search(raw) else raw
        cased = unicodedata.normalize("NFKC", text).casefold().translate(_EXTRA)
        folded = cased if cased.isascii() else _strip_latin_accents(cased)
        result = Folded(folded, cased, is_caps(raw), script_of(folded))
    if len(_fold_cache) >= _CACHE_LIMIT:
        _fold_cache.clear()
    _fold_cache[raw] = result
    return result


def fold_word(text: str) -> str:
    """The folded form of any short text (a tag, a language, a regex literal)."""
    text = _REMOVE.sub("", text)
    cased = unicodedata.normalize("NFKC", text).casefold().translate(_EXTRA)
    return cased if cased.isascii() else _strip_latin_accents(cased)


def is_caps(raw: str) -> bool:
    """At least two cased letters, and every cased letter upper-case."""
    return raw.isupper() and sum(1 for ch in raw if ch.isupper()) >= 2


#: Scripts told apart for stemming. "none" is a token without letters (a number).
SCRIPTS: Final = (
    "latin",
    "cyrillic",
    "greek",
    "armenian",
    "hebrew",
    "arabic",
    "devanagari",
    "tamil",
    "other",
    "none",
)


def script_of(text: str) -> str:
    """The script of the first letter of ``text`` ("none" without letters)."""
    for ch in text:
        if not ch.isalpha():
            continue
        cp = ord(ch)
        if _is_latin(ch):
            return "latin"
        if 0x0400 <= cp <= 0x052F or 0x1C80 <= cp <= 0x1C8F or 0x2DE0 <= cp <= 0x2DFF:
            return "cyrillic"
        if 0xA640 <= cp <= 0xA69F:
            return "cyrillic"
        if 0x0370 <= cp <= 0x03FF or 0x1F00 <= cp <= 0x1FFF:
            return "greek"
        if 0x0530 <= cp <= 0x058F:
            return "armenian"
        if 0x0590 <= cp <= 0x05FF:
            return "hebrew"
        if 0x0600 <= cp <= 0x06FF or 0x0750 <= cp <= 0x077F or 0x08A0 <= cp <= 0x08FF:
            return "arabic"
        if 0xFB50 <= cp <= 0xFDFF or 0xFE70 <= cp <= 0xFEFF:
            return "arabic"
        if 0x0900 <= cp <= 0x097F:
            return "devanagari"
        if 0x0B80 <= cp <= 0x0BFF:
            return "tamil"
        return "other"
    return "none"


@dataclass(frozen=True, slots=True)
class Token:
    """A token of a text: ``text[start:end] == raw``."""

    start: int
    end: int
    raw: str


def tokenize(text: str) -> list[Token]:
    """The tokens of ``text``, in order, with their offsets in ``text``. Linear time."""
    return [Token(m.start(), m.end(), m.group()) for m in _TOKEN.finditer(text)]


def token_spans(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of every token of ``text``."""
    return [m.span() for m in _TOKEN.finditer(text)]


# The tokens of ASCII text (no marks, no invisible characters there).
_ASCII_TOKEN = re.compile("[A-Za-z0-9]+")


def count_tokens(text: str, start: int, end: int, *, ascii_text: bool) -> int:
    """The number of tokens in ``text[start:end]``, one C-level search.

    When ``start`` and ``end`` are at whitespace (or the ends of ``text``) this
    is the sum of :func:`chunk_tokens` over the chunks in between, as no token
    spans whitespace. ``ascii_text``: ``text.isascii()``, known to the caller.
    """
    pattern = _ASCII_TOKEN if ascii_text else _TOKEN
    return len(pattern.findall(text, start, end))


class Chunk(NamedTuple):
    """The tokens of a whitespace-free piece of text (see :func:`chunk_tokens`)."""

    #: ``(start, end)`` of each token in the chunk.
    spans: tuple[tuple[int, int], ...]
    #: The raw text of each token.
    raws: tuple[str, ...]
    folded: tuple[Folded, ...]
    #: ``joins[k]``: token ``k`` and token ``k + 1`` are joined by one hyphen.
    joins: tuple[bool, ...]


_chunk_cache: dict[str, Chunk] = {}
# Punctuation often around a word; none of it is part of a token.
EDGE_PUNCTUATION: Final = "!\"#$%&'()*+,./:;<=>?@[\\]^_`{|}~«»“”‘’„…–—-"


def one_word(chunk: str) -> tuple[int, str] | None:
    """``(start, word)`` when a whitespace-free piece of text is one token with only
    :data:`EDGE_PUNCTUATION` around it (``"(UN)"``, ``"Russia,"``), else None."""
    if chunk.isalnum():
        return 0, chunk
    core = chunk.strip(EDGE_PUNCTUATION)
    if core and core.isalnum():
        return len(chunk) - len(chunk.lstrip(EDGE_PUNCTUATION)), core
    return None


def chunk_tokens(chunk: str) -> Chunk:
    """Tokens of a whitespace-free piece of text, folded; cached per process."""
    hit = _chunk_cache.get(chunk)
    if hit is None:
        word = one_word(chunk)
        if word is not None:
            # One word, maybe with punctuation around it: the common cases, without
            # the tokenizer.
            start, core = word
            hit = Chunk(((start, start + len(core)),), (core,), (fold_token(core),), ())
        elif chunk.isascii():
            # ASCII (URLs, "e-mail", "U.S."): the tokens are the runs of letters and
            # digits (as for count_tokens), and of the gaps between two of them only
            # "-" (or whitespace) is a hyphen gap, as is_hyphen_gap says: the same
            # result as the general path, with ``re`` and no call per gap.
            spans = [m.span() for m in _ASCII_TOKEN.finditer(chunk)]
            raws = tuple(chunk[s:e] for s, e in spans)
            gaps = [chunk[spans[k][1] : spans[k + 1][0]] for k in range(len(spans) - 1)]
            joins = tuple(gap == "-" or gap.isspace() for gap in gaps)
            hit = Chunk(tuple(spans), raws, tuple(map(fold_token, raws)), joins)
        else:
            spans = token_spans(chunk)
            raws = tuple(chunk[s:e] for s, e in spans)
            joins = tuple(
                is_hyphen_gap(chunk[spans[k][1] : spans[k + 1][0]]) for k in range(len(spans) - 1)
            )
            hit = Chunk(tuple(spans), raws, tuple(fold_token(r) for r in raws), joins)
        if len(_chunk_cache) >= _CHUNK_CACHE_LIMIT:
            _chunk_cache.clear()
        _chunk_cache[chunk] = hit
    return hit


def is_hyphen_gap(gap: str) -> bool:
    """True when the characters between two tokens join them into a compound.

    Whitespace only, or exactly one hyphen (see :data:`HYPHENS`), invisible
    characters ignored; never across other punctuation (``counter. Terrorism``).
    """
    gap = gap.strip(INVISIBLE)
    if not gap:
        return False
    if len(gap) == 1 and gap in HYPHENS:
        return True
    return gap.isspace()


# --------------------------------------------------------------------------- texts for regexes


@dataclass(frozen=True, slots=True)
class FoldedText:
    """A field folded like tokens, with a map back to the original offsets."""

    text: str
    #: ``cum[i]``: where the fold of original character ``i`` starts in ``text``
    #: (``cum[len(original)] == len(text)``); None when character ``i`` of
    #: ``text`` came from character ``i`` of the original, for every ``i``.
    cum: tuple[int, ...] | None = None

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """The original range covered by ``text[start:end]`` (``end > start``).

        The end extends over original characters that folded to nothing right
        after it (a combining accent, a soft hyphen).
        """
        cum = self.cum
        if cum is None:
            return start, end
        last = bisect_right(cum, end - 1)
        return bisect_right(cum, start) - 1, max(last, bisect_right(cum, end) - 1)


# Characters whose fold is one other character, keyed by the casefolded character:
# Latin letters with accents, ё, no-break and other spaces, full-width forms.
_ONE_TO_ONE: dict[str, str] = {}
# Combining marks (the blocks Latin text uses) and removed characters: the fast
# path leaves them to the general one. Other marks are caught by the NFC check.
_HARD = re.compile(
    "[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f"
    "\u00ad\u200b-\u200d\u2060\ufeff\ufe00-\ufe0f]"
)
_char_cache: dict[str, str] = {}


def _fold_char(ch: str) -> str:
    """The fold of one character on its own (marks are handled by the caller)."""
    hit = _char_cache.get(ch)
    if hit is None:
        if _REMOVE.match(ch):
            hit = ""
        else:
            cased = unicodedata.normalize("NFKC", ch).casefold().translate(_EXTRA)
            hit = cased if cased.isascii() else _strip_latin_accents(cased)
        if len(_char_cache) >= _CACHE_LIMIT:
            _char_cache.clear()
        _char_cache[ch] = hit
    return hit


def _init_one_to_one() -> re.Pattern[str]:
    ranges = [
        (0x00A0, 0x024F),
        (0x1E00, 0x1EFF),
        (0x0400, 0x045F),
        (0x2000, 0x200A),
        (0x202F, 0x202F),
        (0x205F, 0x205F),
        (0x3000, 0x3000),
        (0xFF01, 0xFF5E),
    ]
    for lo, hi in ranges:
        for cp in range(lo, hi + 1):
            ch = chr(cp)
            if unicodedata.category(ch)[0] == "M":
                continue
            cf = ch.casefold()
            folded = _fold_char(ch)
            if len(cf) == 1 and len(folded) == 1 and folded != cf:
                _ONE_TO_ONE[cf] = folded
            elif len(cf) == 1 and len(folded) != 1:
                _ONE_TO_MANY.add(cf)
    return re.compile("[" + re.escape("".join(sorted(_ONE_TO_ONE))) + "]")


_ONE_TO_MANY: set[str] = set()
_ONE_TO_ONE_RE = _init_one_to_one()
_ONE_TO_MANY_RE = re.compile("[" + re.escape("".join(sorted(_ONE_TO_MANY))) + "]")


def fold_text(text: str) -> FoldedText:
    """Fold a whole text as :func:`fold_token` folds tokens, keeping the offset map.

    Character by character (a combining mark goes with the character before
    it: dropped after a Latin letter, composed with others when that gives one
    character), so the map is exact; NFKC is applied per character. Fast paths
    for ASCII and for text every character of which folds to one character.
    """
    if text.isascii():
        return FoldedText(text.lower())
    cf = text.casefold()
    if (
        len(cf) == len(text)
        and not _HARD.search(cf)
        and not _ONE_TO_MANY_RE.search(cf)
        and unicodedata.is_normalized("NFC", cf)
    ):
        # Every character folds to one: replace the few that change, C-level.
        for ch in set(_ONE_TO_ONE_RE.findall(cf)):
            cf = cf.replace(ch, _ONE_TO_ONE[ch])
        if unicodedata.is_normalized("NFKC", cf):
            return FoldedText(cf)
    return _fold_text_mapped(text)


def _fold_text_mapped(text: str) -> FoldedText:
    cache = _char_cache
    try:
        pieces = list(map(cache.__getitem__, text))
    except KeyError:
        for ch in set(text):
            if ch not in cache:
                _fold_char(ch)
        pieces = [cache.get(ch) or _fold_char(ch) for ch in text]
    marks = [m.start() for m in _MARK.finditer(text)]
    latin = _is_latin
    for i in marks:
        # The base is the nearest earlier character that did not fold to nothing.
        j = i - 1
        while j >= 0 and not pieces[j]:
            j -= 1
        if j < 0:
            pieces[i] = text[i]
            continue
        base = pieces[j]
        if latin(base[-1]) or latin(text[j]):
            pieces[i] = ""
            continue
        composed = unicodedata.normalize("NFC", base[-1] + text[i]).translate(_EXTRA)
        if len(composed) == 1:
            pieces[j] = base[:-1] + composed
            pieces[i] = ""
        else:
            pieces[i] = text[i]
    folded = "".join(pieces)
    cum = tuple(itertools.accumulate(map(len, pieces), initial=0))
    return FoldedText(folded, cum)


_MARK = regex.compile(r"\p{M}")


# --------------------------------------------------------------------------- user regexes

#: Seconds one regex search may take before it counts as no match.
REGEX_TIMEOUT: Final = 0.05
#: At most this many matches of one regex in one field are reported.
REGEX_MAX_MATCHES: Final = 100

# What to fold in a pattern: non-ASCII runs, and an ASCII letter with the accents after it.
_NON_ASCII_RUN = regex.compile(
    r"[A-Za-z][\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]+"
    r"|[^\x00-\x7f]+"
)


class RegexTimeout(Exception):
    """A regex search ran out of time (caught by the matcher, never raised to callers)."""


@dataclass(frozen=True, slots=True)
class UserRegex:
    """A compiled rule regex. Runs on :func:`fold_text` output, case-insensitively."""

    pattern: str
    #: The pattern with its non-ASCII characters folded like text (``É`` -> ``e``).
    folded_pattern: str
    compiled: regex.Pattern[str]

    def search(self, text: FoldedText, timeout: float = REGEX_TIMEOUT) -> list[tuple[int, int]]:
        """Non-empty matches as ranges of ``text`` (folded offsets); raises RegexTimeout."""
        found: list[tuple[int, int]] = []
        try:
            # Most regexes do not match: one search, then all matches only if it did.
            first = self.compiled.search(text.text, timeout=timeout)
            if first is None:
                return found
            for m in self.compiled.finditer(text.text, first.start(), timeout=timeout):
                if m.end() > m.start():
                    found.append(m.span())
                    if len(found) >= REGEX_MAX_MATCHES:
                        break
        except TimeoutError as exc:
            raise RegexTimeout(self.pattern) from exc
        return found


def compile_regex(pattern: str) -> UserRegex:
    """Compile a rule regex; raises ValueError with the library's message if invalid."""
    folded = _NON_ASCII_RUN.sub(lambda m: fold_word(m.group()), pattern)
    try:
        compiled = regex.compile(folded, regex.IGNORECASE)
    except (regex.error, OverflowError, RecursionError) as exc:
        raise ValueError(str(exc)) from None
    return UserRegex(pattern, folded, compiled)


# --------------------------------------------------------------------------- regex prefilter

_QUANT_BRACE = regex.compile(r"\{(\d*)(?:,(\d*))?\}")
_VERBOSE_FLAG = regex.compile(r"\(\?[a-zA-Z^-]*x")


def _skip_group(p: str, i: int) -> int:
    """Index just after the group opening at ``p[i] == "("``."""
    depth = 0
    while i < len(p):
        ch = p[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "[":
            i = _skip_class(p, i)
            continue
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return i


def _skip_class(p: str, i: int) -> int:
    """Index just after the character class opening at ``p[i] == "["`` (nested sets too)."""
    depth = 0
    j = i
    while j < len(p):
        ch = p[j]
        if ch == "\\":
            j += 2
            continue
        if ch == "[":
            depth += 1
            j += 1
            # A "]" right after "[" or "[^" is a literal.
            if j < len(p) and p[j] == "^":
                j += 1
            if j < len(p) and p[j] == "]":
                j += 1
            continue
        if ch == "]":
            depth -= 1
            if depth == 0:
                return j + 1
        j += 1
    return j


def _quantifier(p: str, i: int) -> tuple[int, int]:
    """(minimum repeats, length of the quantifier text) at ``p[i]``; (1, 0) if none."""
    if i >= len(p):
        return 1, 0
    ch = p[i]
    if ch in "?*+":
        n = 1 + (i + 1 < len(p) and p[i + 1] in "?+")
        return (0 if ch != "+" else 1), n
    if ch == "{":
        m = _QUANT_BRACE.match(p, i)
        if m is None:
            if p.startswith("{e", i) or p.startswith("{i", i) or p.startswith("{d", i):
                return 0, 1  # fuzzy matching: the atom may differ; treat as optional
            return 1, 0  # a literal "{"
        low = int(m.group(1)) if m.group(1) else 0
        end = m.end()
        if end < len(p) and p[end] in "?+":
            end += 1
        return low, end - i
    return 1, 0


def _branch_runs(branch: str) -> list[str]:
    """Runs of literal word characters every match of ``branch`` contains."""
    runs: list[str] = []
    run: list[str] = []

    def flush() -> None:
        if run:
            runs.append("".join(run))
            run.clear()

    i = 0
    while i < len(branch):
        ch = branch[i]
        if ch == "\\":
            nxt = branch[i + 1 : i + 2]
            flush()
            if nxt in ("p", "P", "N", "x", "u", "U") and branch[i + 2 : i + 3] == "{":
                close = branch.find("}", i)
                i = close + 1 if close > 0 else len(branch)
            elif nxt in ("p", "P"):
                i += 3
            elif nxt in ("g", "k") and branch[i + 2 : i + 3] in ("<", "{"):
                close = branch.find(">" if branch[i + 2] == "<" else "}", i)
                i = close + 1 if close > 0 else len(branch)
            elif nxt.isdigit():
                i += 2
                while i < len(branch) and branch[i].isdigit():
                    i += 1
            elif nxt == "x":
                i += 4
            elif nxt == "u":
                i += 6
            elif nxt == "U":
                i += 10
            else:
                i += 2
            i += _quantifier(branch, i)[1]
            continue
        if ch == "(":
            flush()
            i = _skip_group(branch, i)
            i += _quantifier(branch, i)[1]
            continue
        if ch == "[":
            flush()
            i = _skip_class(branch, i)
            i += _quantifier(branch, i)[1]
            continue
        low, qlen = _quantifier(branch, i + 1)
        if ch.isalnum():
            if low == 0:
                flush()
            else:
                run.append(ch)
                if qlen:
                    flush()
        else:
            flush()
        i += 1 + qlen
    flush()
    return runs


def _top_level_branches(p: str) -> list[str]:
    branches: list[str] = []
    start = i = 0
    while i < len(p):
        ch = p[i]
        if ch == "\\":
            i += 2
        elif ch == "[":
            i = _skip_class(p, i)
        elif ch == "(":
            i = _skip_group(p, i)
        elif ch == "|":
            branches.append(p[start:i])
            i += 1
            start = i
        else:
            i += 1
    branches.append(p[start:])
    return branches


def required_literals(rx: UserRegex, min_length: int = 2) -> tuple[str, ...] | None:
    """Folded word-character strings one of which every match contains, or None.

    Used to skip a regex for items that cannot match it: every literal is a run
    of letters and digits, so it lies inside one folded token of the field.
    Conservative: None (no prefilter) whenever unsure (verbose flag, a branch
    without a literal of ``min_length``).
    """
    pattern = rx.folded_pattern
    if _VERBOSE_FLAG.search(pattern):
        return None
    literals: list[str] = []
    for branch in _top_level_branches(pattern):
        runs = _branch_runs(branch)
        best = max(runs, key=len, default="")
        if len(best) < min_length:
            return None
        literals.append(fold_word(best))
    return tuple(dict.fromkeys(literals))

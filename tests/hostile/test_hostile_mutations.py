"""Mutations (property): a broken feed gives valid items or a categorised error.

Hypothesis takes valid feeds (RSS 2.0, Atom 1.0, RSS 1.0, JSON Feed: the documents
of tests/data/parse and a few small real ones from the shared corpus beside the
project) and breaks them: truncation anywhere, flipped bits, entity references,
DOCTYPEs declaring entities (internal, external file, parameter, nested), raw
control bytes, a re-encoding (UTF-16/32, cp1251, latin-1, KOI8-R, ...) with the
declaration and the header charset kept, fixed, dropped or lying, and elements
duplicated or removed. Each mutant goes through what a worker process runs on a
fetched body (:func:`feedwatch.prepare.prepare`: parse, normalise, match), in this
process, and must either

* give items that are valid: every text a str without NUL, lone surrogates or
  control characters (but tab, LF, CR), links http(s) or None, dates aware UTC
  or None, ``sort_at`` not after ``first_seen``, a non-empty entry key, nothing
  read from the file an external entity names, and a result the worker can
  pickle to its parent; or
* raise :class:`~feedwatch.exceptions.ParseError` (kind ``parse``) with a message,

never any other exception. No network: nothing here is served or fetched.
"""

from __future__ import annotations

import json
import pickle
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

import pytest
from harness import RULES, MemorySampler, check_text
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feedwatch._model import Item, Prepared, PrepareJob, RuleSpec
from feedwatch.exceptions import ErrorKind, ParseError
from feedwatch.prepare import prepare
from feedwatch.rules import Matcher, compile_rules

CATEGORY = "Mutations (property)"

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "parse"
#: The shared corpus of real feeds, beside the project (absent: its seeds are left out).
CORPUS = ROOT.parent / "shared" / "corpus" / "real"
#: Small real feeds of each format.
CORPUS_SEEDS = {
    "v2__internal_reader_parser_testdata_no_encoding_ISO-8859-1.xml": "application/rss+xml",
    "fastfeedpa__benchmark_data_83aaa3f0643a7b3d.xml": "application/rss+xml",
    "rss2email__test_data_gmane_feed.rss": "application/rdf+xml",
    "fastfeedpa__tests_integration_stackoverflow.xml": "application/atom+xml",
    "rss2email__test_data_bbc-chinese_feed.atom": "application/atom+xml",
}
DATA_SEEDS = (
    "rss20_basic.xml",
    "atom10_xml_base.xml",
    "rss10_rdf.xml",
    "jsonfeed11.json",
    "cp1251_declared.xml",
    "multilingual.xml",
    "html_titles.xml",
    "dates.xml",
)

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
#: Stands for the path of the secret file in an external entity (see ``secret``).
SECRET_PATH = "@SECRET@"
SECRET = "TOP-SECRET-MUTANT-4711"


@dataclass(frozen=True)
class Seed:
    name: str
    data: bytes
    #: The document as text (decoded as its declaration or header says).
    text: str
    url: str
    content_type: str

    def __repr__(self) -> str:  # in hypothesis's reports
        return f"Seed({self.name!r})"

    @property
    def is_json(self) -> bool:
        return self.name.endswith(".json")


_DECLARED = re.compile(rb"""^(?:\xef\xbb\xbf)?<\?xml[^>]*encoding=["']([A-Za-z0-9._-]+)""")


def _decode(data: bytes, content_type: str) -> str:
    declared = _DECLARED.match(data)
    charset = re.search(r"charset=([\w.-]+)", content_type)
    for encoding in (
        declared.group(1).decode() if declared else None,
        charset.group(1) if charset else None,
        "utf-8",
    ):
        if encoding:
            try:
                return data.decode(encoding)
            except (UnicodeDecodeError, LookupError):
                continue
    return data.decode("latin-1")


@cache
def seeds() -> tuple[Seed, ...]:
    found: list[Seed] = []
    for name in DATA_SEEDS:
        headers = json.loads((DATA / name).with_suffix(".headers.json").read_text("utf-8"))
        data = (DATA / name).read_bytes()
        content_type = headers.get("content-type", "")
        found.append(Seed(name, data, _decode(data, content_type), headers["url"], content_type))
    for name, content_type in CORPUS_SEEDS.items():
        path = CORPUS / name
        if path.is_file():
            data = path.read_bytes()
            found.append(
                Seed(
                    name,
                    data,
                    _decode(data, content_type),
                    "https://example.org/feed",
                    content_type,
                )
            )
    return tuple(found)


@cache
def matcher() -> Matcher:
    return compile_rules([RuleSpec(name, query) for name, query in RULES.items()])


# ------------------------------------------------------------------ mutations

#: A mutation: the seed's text (for those that work on text) and bytes in, bytes and
#: the content type out, with a description for the failure report.
Mutant = tuple[bytes, str, str]

ENTITIES = [
    "&nbsp;", "&eacute;", "&hellip;", "&foo;", "&amp;", "&lt;script&gt;", "&amp;#0;",
    "&#0;", "&#1;", "&#x8;", "&#xB;", "&#x1B;", "&#x7F;", "&#128;", "&#x85;", "&#150;",
    "&#xD800;", "&#xDFFF;", "&#xFFFE;", "&#xFFFF;", "&#x110000;", "&#99999999999;",
    "&#x202E;", "&#x200B;", "&", "&#", "&#x;", "&amp", "&;", "&#-1;",
]  # fmt: skip

DOCTYPES = [
    ('<!DOCTYPE rss [<!ENTITY e "text with a &#1; control">]>', "&e;"),
    ('<!DOCTYPE rss [<!ENTITY e "<script>alert(1)</script>">]>', "&e;"),
    (
        '<!DOCTYPE rss [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
        '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>',
        "&c;",
    ),
    (f'<!DOCTYPE rss [<!ENTITY e SYSTEM "file://{SECRET_PATH}">]>', "&e;"),
    (f'<!DOCTYPE rss [<!ENTITY % p SYSTEM "file://{SECRET_PATH}"> %p;]>', ""),
    (
        f'<!DOCTYPE rss [<!ENTITY % f SYSTEM "file://{SECRET_PATH}">'
        "<!ENTITY % w \"<!ENTITY e '%f;'>\"> %w;]>",
        "&e;",
    ),
    ('<!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN" "rss-0.91.dtd">', ""),
    ("<!DOCTYPE html>", ""),
    ("<!DOCTYPE rss [", ""),
]

CONTROL_BYTES = [
    b"\x00", b"\x01", b"\x08", b"\x0b", b"\x0c", b"\x1b", b"\x7f", b"\x80", b"\x85",
    b"\x9f", b"\xff", b"\xc0\x80", b"\xed\xa0\x80", b"\xef\xbf\xbe", b"\xfe\xff",
    b"\xef\xbb\xbf", b"\xe2\x80\xae", b"\r", b"\x00\x00\x00",
]  # fmt: skip

ENCODINGS = [
    "utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-8-sig", "cp1251", "latin-1",
    "koi8-r", "cp1252", "shift_jis", "gb18030",
]  # fmt: skip

_ELEMENT = re.compile(r"<([A-Za-z][\w:.-]*)(?:\s[^<>]*)?>(?:(?!<\1[\s>]).)*?</\1\s*>", re.DOTALL)
_XML_DECLARATION = re.compile(r"^\ufeff?<\?xml[^>]*\?>")
_ENCODING_ATTRIBUTE = re.compile(r"""encoding=["'][^"']*["']""")


def _after_declaration(text: str) -> int:
    found = _XML_DECLARATION.match(text)
    return found.end() if found else 0


def _text_positions(text: str) -> list[int]:
    """Where text nodes start (after each '>'), and the end."""
    return [m.end() for m in re.finditer(">", text)] or [len(text)]


@st.composite
def truncation(draw: st.DrawFn, seed: Seed) -> Mutant:
    at = draw(st.integers(0, len(seed.data)))
    return seed.data[:at], seed.content_type, f"truncated at byte {at} of {len(seed.data)}"


@st.composite
def bit_flips(draw: st.DrawFn, seed: Seed) -> Mutant:
    data = bytearray(seed.data)
    if not data:  # truncated to nothing by an earlier step
        return seed.data, seed.content_type, "no bits to flip"
    flips = draw(
        st.lists(
            st.tuples(st.integers(0, len(data) - 1), st.integers(0, 7)), min_size=1, max_size=12
        )
    )
    for at, bit in flips:
        data[at] ^= 1 << bit
    return bytes(data), seed.content_type, f"bits flipped at {flips}"


def _reencoded(text: str, seed: Seed) -> Mutant:
    """``text`` back in the seed's own encoding (as declared), or UTF-8."""
    return _encode(text, "utf-8" if seed.is_json else _seed_encoding(seed)), seed.content_type, ""


def _seed_encoding(seed: Seed) -> str:
    declared = _DECLARED.match(seed.data)
    return declared.group(1).decode() if declared else "utf-8"


def _encode(text: str, encoding: str) -> bytes:
    try:
        return text.encode(encoding, "xmlcharrefreplace")
    except (LookupError, UnicodeError):
        return text.encode("utf-8", "surrogatepass")


@st.composite
def entity_insertion(draw: st.DrawFn, seed: Seed) -> Mutant:
    text = seed.text
    refs = draw(st.lists(st.sampled_from(ENTITIES), min_size=1, max_size=4))
    for ref in refs:
        positions = _text_positions(text)
        at = (
            draw(st.sampled_from(positions))
            if draw(st.booleans())
            else draw(st.integers(0, len(text)))
        )
        text = text[:at] + ref + text[at:]
    data, content_type, _ = _reencoded(text, seed)
    return data, content_type, f"entity references {refs}"


@st.composite
def doctype_insertion(draw: st.DrawFn, seed: Seed) -> Mutant:
    doctype, reference = draw(st.sampled_from(DOCTYPES))
    text = seed.text
    start = _after_declaration(text)
    text = text[:start] + doctype + text[start:]
    if reference:
        positions = [p for p in _text_positions(text) if p > start + len(doctype)] or [len(text)]
        at = draw(st.sampled_from(positions))
        text = text[:at] + reference + text[at:]
    data, content_type, _ = _reencoded(text, seed)
    return data, content_type, f"DOCTYPE {doctype!r}, reference {reference!r}"


@st.composite
def control_bytes(draw: st.DrawFn, seed: Seed) -> Mutant:
    data = seed.data
    inserted = []
    for _ in range(draw(st.integers(1, 4))):
        chunk = draw(st.sampled_from(CONTROL_BYTES))
        at = draw(st.integers(0, len(data)))
        data = data[:at] + chunk + data[at:]
        inserted.append((at, chunk))
    return data, seed.content_type, f"bytes inserted {inserted}"


@st.composite
def reencoding(draw: st.DrawFn, seed: Seed) -> Mutant:
    encoding = draw(st.sampled_from(ENCODINGS))
    declaration = draw(st.sampled_from(["keep", "truth", "drop", "lie"]))
    header = draw(st.sampled_from(["keep", "truth", "none", "lie"]))
    text = seed.text
    if declaration == "truth":
        text = _ENCODING_ATTRIBUTE.sub(f'encoding="{encoding}"', text, count=1)
    elif declaration == "drop":
        text = _XML_DECLARATION.sub("", text, count=1)
    elif declaration == "lie":
        text = _ENCODING_ATTRIBUTE.sub('encoding="utf-8"', text, count=1)
    data = _encode(text, encoding)
    base = seed.content_type.split(";")[0] or "application/xml"
    content_type = {
        "keep": seed.content_type,
        "truth": f"{base}; charset={encoding}",
        "none": base,
        "lie": f"{base}; charset={'windows-1251' if encoding != 'cp1251' else 'utf-8'}",
    }[header]
    return (
        data,
        content_type,
        f"re-encoded as {encoding}, declaration {declaration}, header {header}",
    )


@st.composite
def element_surgery(draw: st.DrawFn, seed: Seed) -> Mutant:
    text = seed.text
    done = []
    for _ in range(draw(st.integers(1, 3))):
        elements = list(_ELEMENT.finditer(text))
        if not elements:
            break
        element = elements[draw(st.integers(0, len(elements) - 1))]
        how = draw(
            st.sampled_from(["duplicate", "remove", "drop start tag", "drop end tag", "nest"])
        )
        whole = element.group(0)
        start_tag_end = whole.index(">") + 1
        end_tag_start = whole.rindex("</")
        if how == "duplicate":
            replacement = whole * draw(st.integers(2, 4))
        elif how == "remove":
            replacement = ""
        elif how == "drop start tag":
            replacement = whole[start_tag_end:]
        elif how == "drop end tag":
            replacement = whole[:end_tag_start]
        else:  # the element inside itself
            replacement = whole[:start_tag_end] + whole + whole[start_tag_end:]
        text = text[: element.start()] + replacement + text[element.end() :]
        done.append(f"{how} <{element.group(1)}>")
    data, content_type, _ = _reencoded(text, seed)
    return data, content_type, f"elements: {done}"


MUTATIONS: dict[str, Callable[[Seed], st.SearchStrategy[Mutant]]] = {
    "truncation": truncation,
    "bit flips": bit_flips,
    "entity references": entity_insertion,
    "DOCTYPE with entities": doctype_insertion,
    "control bytes": control_bytes,
    "re-encoding": reencoding,
    "elements duplicated or removed": element_surgery,
}


@st.composite
def stacked(draw: st.DrawFn, seed: Seed) -> Mutant:
    """Two or three mutations, one after the other."""
    first = draw(st.sampled_from(list(MUTATIONS.values())))
    data, content_type, what = draw(first(seed))
    steps = [what]
    for _ in range(draw(st.integers(1, 2))):
        text = _decode(data, content_type)
        step = draw(st.sampled_from(list(MUTATIONS.values())))
        data, content_type, what = draw(step(Seed(seed.name, data, text, seed.url, content_type)))
        steps.append(what)
    return data, content_type, " then ".join(steps)


# ------------------------------------------------------------------ the property

#: Examples per mutation (about 480 in all).
EXAMPLES = {
    "truncation": 70,
    "bit flips": 70,
    "entity references": 70,
    "DOCTYPE with entities": 70,
    "control bytes": 50,
    "re-encoding": 80,
    "elements duplicated or removed": 60,
    "stacked": 60,
}


@pytest.fixture(scope="module")
def secret(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A file an external entity points at: what it holds must never come out."""
    path = tmp_path_factory.mktemp("mutations") / "secret.txt"
    path.write_text(SECRET + "\n", encoding="utf-8")
    return path


def check_item(item: Item, secret: str) -> None:
    where = f"item {item.entry_key[:60]!r}"
    assert isinstance(item.entry_key, str)
    assert item.entry_key.strip(), f"{where}: empty entry key"
    for name in ("entry_key", "title", "content_html", "content_text", "content_hash"):
        value = getattr(item, name)
        assert isinstance(value, str), (where, name, value)
        check_text(value, f"{where}.{name}")
    for name in ("guid", "url", "canonical_url", "author", "language"):
        value = getattr(item, name)
        assert value is None or isinstance(value, str), (where, name, value)
        if value is not None:
            check_text(value, f"{where}.{name}")
    for tag in item.tags:
        assert isinstance(tag, str)
        check_text(tag, f"{where}.tags")
    for link in (item.url, item.canonical_url):
        assert link is None or link.startswith(("http://", "https://")), (where, link)
    for name in ("published", "updated", "first_seen", "sort_at"):
        value = getattr(item, name)
        if value is not None:
            assert isinstance(value, datetime), (where, name, value)
            assert value.tzinfo is not None, (where, name, value)
            assert value.utcoffset() == timedelta(0), (where, name, value)
    assert item.first_seen == NOW, (where, item.first_seen)
    assert item.sort_at <= item.first_seen, (where, item.sort_at)
    blob = " ".join(str(v) for v in (item.title, item.content_html, item.content_text, item.url))
    assert secret not in blob, f"{where}: the external entity's file was read"


def check_mutant(data: bytes, content_type: str, what: str, seed: Seed, secret: Path) -> None:
    for encoding in ("utf-8", "utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"):
        data = data.replace(SECRET_PATH.encode(encoding), str(secret).encode(encoding))
    job = PrepareJob(
        content=data,
        url=seed.url,
        headers={"content-type": content_type} if content_type else {},
        feed="mutant",
        feed_tags=(),
        polled_at=NOW,
    )
    error: ParseError | None = None
    try:
        prepared = prepare(job, matcher())
    except ParseError as exc:
        error = exc
    except Exception as exc:
        pytest.fail(f"{seed.name}, {what}: {type(exc).__name__}: {exc} (not a ParseError)")
    if error is not None:
        assert error.kind is ErrorKind.PARSE
        assert error.message.strip(), f"{seed.name}, {what}: a parse error without a message"
        check_text(error.message, "the error message")
        return
    check_prepared(prepared, SECRET)


def check_prepared(prepared: Prepared, secret: str) -> None:
    if prepared.title is not None:
        check_text(prepared.title, "the feed title")
        assert secret not in prepared.title
    assert prepared.ttl_minutes is None or isinstance(prepared.ttl_minutes, int)
    for warning in prepared.warnings:
        assert isinstance(warning, str)
    for item in prepared.items:
        check_item(item, secret)
    keys = [item.entry_key for item in prepared.items]
    assert len(keys) == len(set(keys)), "two items share an entry key"
    assert set(prepared.matches) <= set(keys)
    # The worker sends this to its parent pickled.
    assert pickle.loads(pickle.dumps(prepared)) == prepared


def _strategy(name: str) -> st.SearchStrategy[tuple[Seed, Mutant]]:
    mutate = stacked if name == "stacked" else MUTATIONS[name]
    return st.sampled_from(seeds()).flatmap(lambda seed: mutate(seed).map(lambda m: (seed, m)))


@dataclass(frozen=True)
class MutationFigures:
    wall_s: float
    memory_mib: float


@pytest.mark.parametrize("name", EXAMPLES)
def test_mutant_gives_valid_items_or_a_parse_error(
    name: str, secret: Path, figures: Callable[..., None]
) -> None:
    assert len(seeds()) >= len(DATA_SEEDS)
    slowest = 0.0

    @settings(
        max_examples=EXAMPLES[name],
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(_strategy(name))
    def run(case: tuple[Seed, Mutant]) -> None:
        nonlocal slowest
        seed, (data, content_type, what) = case
        started = time.monotonic()
        check_mutant(data, content_type, what, seed, secret)
        slowest = max(slowest, time.monotonic() - started)

    with MemorySampler() as sampler:
        run()
    # For the table: the slowest mutant's parse, and this process's memory growth.
    figures(MutationFigures(wall_s=slowest, memory_mib=sampler.growth_mib))


@pytest.mark.parametrize("seed", [s.name for s in seeds()])
def test_every_seed_is_valid_before_mutation(seed: str) -> None:
    """The seeds themselves parse into items (so a mutant's error is the mutation's)."""
    (found,) = [s for s in seeds() if s.name == seed]
    job = PrepareJob(found.data, found.url, {"content-type": found.content_type}, "seed", (), NOW)
    prepared = prepare(job, matcher())
    assert prepared.items
    check_prepared(prepared, SECRET)

"""Parse speed: feedparser path against the fast (lxml) path.

Times ``parse_document`` alone, and ``parse_document`` + ``normalise_entries``,
once with the fast path (as shipped) and once forced through feedparser, over the
226 real documents of the shared corpus and a synthetic corpus written by
``gen_corpus.py``. Each figure is the median of 5 runs. Prints documents/s,
items/s, the share of documents and of items the fast path accepted, and the
ratio of the two paths.

Rerun from the repository root:

    .venv/bin/python benchmarks/parse_bench.py [--total 1000] [--runs 5]

(``--total`` is gen_corpus.py's: real plus synthetic documents.)
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from unittest import mock

from feedwatch import parse
from feedwatch.exceptions import ParseError
from feedwatch.normalise import normalise_entries

CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus"
NOW = datetime(2024, 6, 1, 12, tzinfo=UTC)
HEADERS = {"Content-Type": "application/xml"}

Doc = tuple[str, bytes]


def _load(directory: Path) -> list[Doc]:
    return [
        (f"http://127.0.0.1:8000/feeds/{p.name}", p.read_bytes())
        for p in sorted(directory.iterdir())
        if p.is_file()
    ]


def _run(docs: list[Doc], *, normalise: bool) -> int:
    items = 0
    for url, content in docs:
        try:
            parsed = parse.parse_document(content, url=url, headers=HEADERS)
        except ParseError:
            continue
        if normalise:
            items += len(normalise_entries(parsed, feed_url=url, now=NOW)[0])
        else:
            items += len(parsed.entries)
    return items


def _median_time(fn: Callable[[], int], runs: int) -> tuple[float, int]:
    times = []
    items = 0
    for _ in range(runs):
        start = time.perf_counter()
        items = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), items


def _accepted(docs: list[Doc]) -> tuple[int, int, int, int]:
    """(documents accepted, documents, items accepted, items) by the fast path."""
    accepted = items_accepted = items_total = 0
    for url, content in docs:
        try:
            parsed = parse.parse_document(content, url=url, headers=HEADERS)
        except ParseError:
            continue
        lower = {k.lower(): v for k, v in HEADERS.items()}
        response_headers = parse._feedparser_headers(content, lower, url, [])
        fast = parse._parse_xml_fast(
            content, url=url, response_headers=response_headers, warnings=[]
        )
        items_total += len(parsed.entries)
        if fast is not None:
            accepted += 1
            items_accepted += len(fast.entries)
    return accepted, len(docs), items_accepted, items_total


def _feedparser_only() -> mock._patch[object]:
    return mock.patch.object(parse, "_parse_xml_fast", return_value=None)


def _report(name: str, docs: list[Doc], runs: int) -> None:
    accepted, total, items_accepted, items_total = _accepted(docs)
    print(f"\n{name}: {total} documents, {items_total} items")
    print(
        f"  fast path accepted {accepted}/{total} documents ({accepted / total:.1%}),"
        f" {items_accepted}/{items_total} items ({items_accepted / max(items_total, 1):.1%})"
    )
    for normalise in (False, True):
        label = "parse_document + normalise_entries" if normalise else "parse_document"
        fast_s, items = _median_time(lambda n=normalise: _run(docs, normalise=n), runs)
        with _feedparser_only():
            slow_s, _ = _median_time(lambda n=normalise: _run(docs, normalise=n), runs)
        print(f"  {label}:")
        print(
            f"    feedparser path: {slow_s:7.2f} s  {total / slow_s:8.1f} docs/s"
            f"  {items / slow_s:9.1f} items/s"
        )
        print(
            f"    fast path:       {fast_s:7.2f} s  {total / fast_s:8.1f} docs/s"
            f"  {items / fast_s:9.1f} items/s"
        )
        print(f"    ratio: {slow_s / fast_s:.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--total", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    if not (CORPUS / "real").is_dir():
        sys.exit(f"shared corpus not found at {CORPUS}")
    _report("real", _load(CORPUS / "real"), args.runs)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [
                sys.executable,
                str(CORPUS / "gen_corpus.py"),
                "--out",
                tmp,
                "--total",
                str(args.total),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        _report(f"synthetic (--total {args.total})", _load(Path(tmp)), args.runs)


if __name__ == "__main__":
    main()

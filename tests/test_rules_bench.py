"""Keeps ``benchmarks/rules_bench.py`` from rotting: its generators and one tiny run.

No timing assertion: only that the script runs, is deterministic, and that every
rule it generates compiles with the matcher in place.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest

from feedwatch.rules import check_query, compile_rules

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "rules_bench.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("rules_bench", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["rules_bench"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_items_are_deterministic_multilingual_and_about_1_kb(bench: ModuleType) -> None:
    items = bench.generate_items(300, seed=7)

    assert items == bench.generate_items(300, seed=7)
    assert items != bench.generate_items(300, seed=8)
    sizes = [len(i.title) + len(i.content) for i in items]
    assert 850 <= sum(sizes) / len(sizes) <= 1100
    assert set(Counter(i.lang for i in items)) == {"en", "ru", "fr"}
    assert all(i.title and i.content and i.feed for i in items)
    assert any(i.tags for i in items)
    assert any(i.author for i in items)
    russian = next(i for i in items if i.lang == "ru")
    assert any("а" <= ch <= "я" for ch in russian.content)


def test_rules_are_deterministic_mixed_and_compile(bench: ModuleType) -> None:
    rules = bench.generate_rules(1000, seed=3)
    syntax = bench.detect_syntax()

    assert rules[:100] == bench.generate_rules(100, seed=3)  # smaller sets are prefixes
    kinds = Counter(node[0] for node in rules)
    assert {"term", "phrase", "and", "or", "not", "near", "field", "prefix", "regex"} <= set(kinds)
    specs = bench.rule_specs(rules, syntax)
    assert len({s.name for s in specs}) == len(specs)
    compile_rules(specs)  # raises on any invalid query
    if syntax == "full":
        for spec in specs:
            check_query(spec.query)
        queries = " ".join(s.query for s in specs)
        for operator in (" AND ", " OR ", " NOT ", " NEAR/", " ONEAR/", "title:", "lang:", "tag:"):
            assert operator in queries
        assert any(s.query.startswith("/") for s in specs)
    # The naive baseline understands every rule.
    subject = bench.NaiveItem.of(bench.generate_items(1)[0])
    for node in rules:
        bench.naive_rule(node)(subject)


def test_one_small_configuration_runs_and_reports(bench: ModuleType) -> None:
    lines: list[str] = []

    numbers = bench.run_benchmark(
        items=200,
        rule_counts=[1, 50],
        runs=2,
        naive_items=20,
        naive_budget=60.0,
        budget=0.0,
        syntax=bench.detect_syntax(),
        memory=False,
        pin=False,
        out=lines.append,
    )

    text = "\n".join(lines)
    assert "naive items/s" in text
    assert "not pinned" in text
    (one, fifty) = numbers["results"]
    assert (one["rules"], fifty["rules"]) == (1, 50)
    assert fifty["items_timed"] == 200
    assert len(fifty["match_s"]) == 2
    assert fifty["matches"][0] == fifty["matches"][1]  # same matches in every run
    assert fifty["naive_items"] == 20
    assert fifty["items_per_s"] > 0
    assert json.dumps(numbers)  # --json can write it


def test_memory_of_a_compiled_set(bench: ModuleType) -> None:
    memory = bench.measure_memory(200, bench.detect_syntax())

    assert memory["rules"] == 200
    assert memory["tracemalloc_peak_mib"] > 0
    assert memory["tracemalloc_peak_mib"] >= memory["tracemalloc_retained_mib"]


def test_the_script_runs_from_the_command_line(tmp_path: Path) -> None:
    out = tmp_path / "numbers.json"
    result = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            *("--items", "150", "--rules", "1,20", "--runs", "1", "--naive-items", "10"),
            *("--json", str(out)),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert "rules rendered in" in result.stdout
    assert "compiled 20-rule set" in result.stdout  # the memory child ran
    numbers = json.loads(out.read_text(encoding="utf-8"))
    assert [r["rules"] for r in numbers["results"]] == [1, 20]
    assert numbers["memory"]["rules"] == 20

"""The hostile-input suite: fixtures and the per-category table printed at the end.

Run it alone with::

    .venv/bin/pytest tests/hostile

Each module is one category (``CATEGORY`` at its top). Every test that polls
records its figures with the ``figures`` fixture (wall time of the hostile poll,
peak memory of this process and its workers above this process before the poll);
at the end of the run a table gives, per category: cases, passed, failed, the
slowest hostile poll and the highest memory growth.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

#: category -> [passed, failed, skipped, slowest s, most MiB]
_TABLE: dict[str, list[Any]] = {}


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Callable[..., None]:
    """``figures(outcome)``: record an Outcome's wall time and memory for the table."""

    def record(outcome: Any) -> None:
        request.node.user_properties.append(("wall_s", outcome.wall_s))
        request.node.user_properties.append(("memory_mib", outcome.memory_mib))

    return record


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if "hostile" not in report.nodeid:
        return
    if report.when != "call" and not (report.when == "setup" and report.outcome != "passed"):
        return
    category = report.nodeid.split("::", 1)[0]
    row = _TABLE.setdefault(category, [0, 0, 0, 0.0, 0.0])
    if report.outcome == "passed":
        row[0] += 1
    elif report.outcome == "failed":
        row[1] += 1
    else:
        row[2] += 1
    props = dict(report.user_properties)
    row[3] = max(row[3], float(props.get("wall_s", 0.0)))
    row[4] = max(row[4], float(props.get("memory_mib", 0.0)))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        module = getattr(item, "module", None)
        if module is not None and hasattr(module, "CATEGORY"):
            _NAMES[item.nodeid.split("::", 1)[0]] = module.CATEGORY


_NAMES: dict[str, str] = {}


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _TABLE:
        return
    write = terminalreporter.write_line
    write("")
    write("hostile-input suite, per category")
    header = (
        f"{'category':<22} {'cases':>5} {'passed':>6} {'failed':>6} {'xfail/skip':>10}"
        f" {'slowest poll s':>14} {'peak MiB':>8}"
    )
    write(header)
    write("-" * len(header))
    totals = [0, 0, 0, 0.0, 0.0]
    for path in sorted(_TABLE, key=lambda p: _NAMES.get(p, p)):
        passed, failed, skipped, slowest, memory = _TABLE[path]
        name = _NAMES.get(path, path)
        write(
            f"{name:<22} {passed + failed + skipped:>5} {passed:>6} {failed:>6} {skipped:>10}"
            f" {slowest:>14.2f} {memory:>8.0f}"
        )
        for i, value in enumerate((passed, failed, skipped)):
            totals[i] += value
        totals[3] = max(totals[3], slowest)
        totals[4] = max(totals[4], memory)
    write("-" * len(header))
    write(
        f"{'all':<22} {sum(totals[:3]):>5} {totals[0]:>6} {totals[1]:>6} {totals[2]:>10}"
        f" {totals[3]:>14.2f} {totals[4]:>8.0f}"
    )
    write("peak MiB: this process and its worker processes at their peak during the hostile")
    write("poll, less this process just before it (sampled every 20 ms).")

"""Differential tests for the date fast paths of feedwatch.parse.

``parse._fast_date`` must give exactly what feedparser's ``_parse_date`` gives for
every string it accepts (and decline the rest); ``_year_in_text`` and
``_extra_zone_date`` have shortcuts that must agree with their plain regex
versions, copied here as oracles.
"""

from __future__ import annotations

import calendar
import email.utils
import re
from datetime import UTC, datetime

import feedparser
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from feedwatch import parse as parse_module

_oracle = feedparser.datetimes._parse_date

# --------------------------------------------------------------------------- strategies


def _digits(low: int, high: int, widths: tuple[int, ...] = (2,)) -> st.SearchStrategy[str]:
    """A number in [low, high], zero-padded to one of ``widths`` (or not padded)."""
    return st.builds(
        lambda n, width: str(n).zfill(width) if width else str(n),
        st.integers(low, high),
        st.sampled_from((*widths, 0)),
    )


_SIGN = st.sampled_from(["+", "-"])
_NUMERIC_ZONES = st.one_of(
    st.builds(lambda s, h, m: f"{s}{h}:{m}", _SIGN, _digits(0, 99), _digits(0, 99)),
    st.builds(lambda s, h, m: f"{s}{h}{m}", _SIGN, _digits(0, 99), _digits(0, 99)),
    st.builds(lambda s, h: f"{s}{h}", _SIGN, _digits(0, 99)),
    st.sampled_from(["+0000", "-0000", "+05:30", "-0930", "+24:00", "+99:99", "+5:30"]),
)
_ZONE_NAMES = st.sampled_from(
    [
        *feedparser.datetimes.rfc822.timezone_names,
        *(name.upper() for name in feedparser.datetimes.rfc822.timezone_names),
        "GMT",
        "gmt",
        "UTC",
        "GMTA",
        "gmtz",
        "GMT+2",
        "GMT-05:00",
        "Etc/GMT",
        "MSK",
        "CEST",
        "XYZZY",
        "abcdef",
        "Z",
        "z",
        "",
    ]
)
_SPACE = st.sampled_from([" ", " ", " ", "  ", "\t", "\xa0", "\n"])


def _mutate(draw: st.DrawFn, slots: list[str], weird: list[st.SearchStrategy[str]]) -> str:
    """The slots joined, one of them (sometimes) replaced by a near miss for that slot."""
    if draw(st.integers(0, 2)) == 0:
        index = draw(st.integers(0, len(slots) - 1))
        slots[index] = draw(weird[index])
    text = "".join(slots)
    if draw(st.integers(0, 19)) == 0:
        text = draw(_SPACE) + text
    if draw(st.integers(0, 19)) == 0:
        text += draw(_SPACE)
    return text


_CLOCK_WEIRD = st.sampled_from(["24:00", "23:60", "23:59:60", "9:5", "12", "12:00:00:00", ""])


@st.composite
def _w3dtf_like(draw: st.DrawFn) -> str:
    """W3DTF dates (the common ISO 8601 subset), or near misses."""
    has_time = draw(st.integers(0, 5)) > 0
    slots = [
        draw(_digits(0, 9999, (4,)).filter(lambda y: len(y) == 4)),
        "-" + draw(_digits(1, 12).filter(lambda m: len(m) == 2)),
        "-" + draw(_digits(1, 31).filter(lambda d: len(d) == 2)),
        draw(st.sampled_from(["T", "T", "t"])) if has_time else "",
        f"{draw(st.integers(0, 23)):02}:{draw(st.integers(0, 59)):02}" if has_time else "",
        f":{draw(st.integers(0, 60)):02}" if has_time else "",
        draw(st.sampled_from(["", "", ".0", ".123", ".999999", "." + "9" * 20]))
        if has_time
        else "",
        draw(st.one_of(st.sampled_from(["Z", "z", ""]), _NUMERIC_ZONES)) if has_time else "",
    ]
    weird: list[st.SearchStrategy[str]] = [
        st.sampled_from(["10000", "025", "0000", "٢٠٢٥", " 2025", "+2025"]),
        st.sampled_from(["-00", "-13", "-6", "", "-", "--06"]),
        st.sampled_from(["-00", "-32", "-1", "", "-1T"]),
        st.sampled_from([" ", "", "TT", "T ", "Z"]),
        _CLOCK_WEIRD,
        st.sampled_from([":61", ":5", "", ":00.", ":00:00"]),
        st.sampled_from([".", ".x", ",5", ". 5"]),
        st.one_of(_ZONE_NAMES, _NUMERIC_ZONES, st.sampled_from(["ZZ", " Z", "Z+01:00"])),
    ]
    return _mutate(draw, slots, weird)


_WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
_CASED = st.sampled_from([str, str.lower, str.upper])


@st.composite
def _rfc822_like(draw: st.DrawFn) -> str:
    """RFC 822 dates as feeds write them, or near misses."""
    weekday = draw(st.sampled_from(["", *_WEEKDAYS]))
    seconds = draw(st.sampled_from(["", f":{draw(st.integers(0, 60)):02}"]))
    slots = [
        draw(_CASED)(weekday) + draw(st.sampled_from([", ", " "])) if weekday else "",
        draw(st.builds(str, st.integers(1, 31)) | _digits(1, 31)),
        " " + draw(_CASED)(draw(st.sampled_from(_MONTHS))),
        " " + draw(_digits(0, 9999, (4,)) | _digits(0, 99)),
        f" {draw(_digits(0, 23))}:{draw(st.integers(0, 59)):02}{seconds}",
        " " + draw(_NUMERIC_ZONES | _ZONE_NAMES),
    ]
    weird: list[st.SearchStrategy[str]] = [
        st.sampled_from(["Monday, ", "Xyz, ", "Sun,, ", "Sun,", "Tu, ", "ſun, ", "Sun\xa0"]),
        st.sampled_from(["0", "00", "32", "001", "", "Jun"]),
        st.sampled_from([" June", " Sept", " Xyz", " 06", " 1", "  Jun", "\tJun", " 01"]),
        st.sampled_from([" 025", " 5", " 12025", " ٢٠٢٥", ""]),
        _CLOCK_WEIRD.map(lambda clock: " " + clock),
        st.sampled_from(["", " ", " +0000 (UTC)", " GMT x", " Etc/GMT"]),
    ]
    return _mutate(draw, slots, weird)


_DATE_ALPHABET = st.sampled_from(list("0123456789 -+:.,TtZz/GMTSunJaOct\n٣"))
_ANY_DATE = st.one_of(_w3dtf_like(), _rfc822_like(), st.text(_DATE_ALPHABET, max_size=40))


# --------------------------------------------------------------------------- _fast_date


@settings(max_examples=1500)
@given(_ANY_DATE)
@example("2025-06-01T12:00:00Z")
@example("Sun, 01 Oct 2025 12:00:00 +0000")
@example("1 Oct 2025 12:00:00 GMT")
@example("Sat, 31 Dec 2022 23:30:00 -0100")
def test_fast_date_is_feedparser_date(text: str) -> None:
    fast = parse_module._fast_date(text)
    if fast is not None:
        expected = _oracle(text)
        assert fast == expected
        assert tuple(fast) == tuple(expected)


@pytest.mark.parametrize(
    "text",
    [
        # The shapes of the corpus, and their near relatives.
        "Sun, 01 Jun 2025 12:00:00 +0000",
        "Sun, 01 Jun 2025 12:00:00 -0500",
        "Sun, 01 Jun 2025 12:00:00 +05:30",
        "Sun, 01 Jun 2025 12:00:00 GMT",
        "Sun, 01 Jun 2025 12:00:00 EST",
        "Sun, 01 Jun 2025 12:00:00 UTC",
        "Sun, 01 Jun 2025 12:00:00 MSK",
        "Sun, 01 Jun 2025 12:00:00 gmtA",
        "Sun, 01 Jun 2025 12:00 PDT",
        "Sun 01 Jun 2025 12:00:00 Z",
        "sun, 1 JUN 2025 9:05:00 +0000",
        "01 Jun 2025 12:00:00 +0000",
        "01 Jun 95 12:00:00 +0000",
        "01 Jun 89 12:00:00 +0000",
        "Wed, 01 Jan 2025 00:30:00 +0100",
        "Fri, 31 Dec 9999 23:00:00 +0000",
        "2025-06-01T12:00:00Z",
        "2025-06-01t12:00:00z",
        "2025-06-01T12:00:00",
        "2025-06-01T12:00:00+02:00",
        "2025-06-01T12:00:00-0530",
        "2025-06-01T12:00:00.123-05:00",
        "2025-06-01T12:00:00.999999+02:00",
        "2025-01-01T00:30:00+01:00",
        "2025-06-01",
        "0999-06-01",
    ],
)
def test_fast_date_takes_the_common_shapes(text: str) -> None:
    fast = parse_module._fast_date(text)

    assert fast is not None
    assert fast == _oracle(text)


@pytest.mark.parametrize(
    "text",
    [
        # Rejected by the first handler that matches the shape: a later one may read it.
        "2025-06-01T12:00:60Z",
        "2025-06-01T24:00:00Z",
        "2025-13-01T12:00:00Z",
        "2025-02-30",
        "0000-01-01",
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:00:00-05:00",
        "2025-06-01T12:00:59.99999999999999999Z",
        "Sun, 01 Jun 2025 12:00:60 +0000",
        "Sun, 31 Jun 2025 12:00:00 +0000",
        "Mon, 01 Jan 0001 00:00:00 +0100",
        # Shapes left to feedparser.
        " 2025-06-01T12:00:00Z",
        "2025-06-01T12:00:00Z\n",
        "2025-06-01 12:00:00",
        "20250601T120000Z",
        "Sun, 01 Jun 2025 12:00:00 +0000 (UTC)",
        "Sun, 01 Jun 025 12:00:00 +0000",
        "Jun 01 2025 12:00:00 +0000",
        "Sunday, 01 Jun 2025 12:00:00 +0000",
        "Sun, 01 June 2025 12:00:00 +0000",
        "Sun, 01 Jun 2025 12:00:00 Etc/GMT",
        "Sun, 01 Jun 2025",
        "ſun, 01 Jun 2025 12:00:00 +0000",
        "Sun, 01\xa0Jun 2025 12:00:00 +0000",
        "٢٠٢٥-06-01",
        "",
    ],
)
def test_fast_date_declines_the_rest(text: str) -> None:
    assert parse_module._fast_date(text) is None


@given(_ANY_DATE)
def test_feedparser_date_is_feedparser_date(text: str) -> None:
    try:
        expected = _oracle(text)
    except Exception as exc:  # Some handlers raise (perforce's, on month 13): so must we.
        with pytest.raises(type(exc)):
            parse_module._feedparser_date(text)
        return
    assert parse_module._feedparser_date(text) == expected


# --------------------------------------------------------------------------- _date helpers

_YEAR_RUN_RE = re.compile(r"(?<![+\-\d])\d{4,}")


def _year_in_text_oracle(year: int, text: str) -> bool:
    runs = _YEAR_RUN_RE.findall(text)
    if not runs:
        return True
    years = (str(year), str(year - 1), str(year + 1))
    return any(run.startswith(years) for run in runs)


_TEXT_ALPHABET = st.sampled_from(list("0123456789 -+:.TZa٢"))


@settings(max_examples=1000)
@given(
    st.one_of(st.integers(-20, 20_000), st.sampled_from([999, 1000, 2024, 2025, 9999, 10000])),
    st.one_of(st.text(_TEXT_ALPHABET, max_size=30), _ANY_DATE),
)
@example(2025, "12025-01-01")
@example(2025, "+2025")
@example(2025, "1999 +2025")
@example(2025, "1999-2025")
@example(2025, "1999 12025")
@example(2025, "x2025")
@example(2025, "٢2025")
@example(2025, "2025")
@example(999, "0999-01-01")
@example(2010, "10000-01-01")
def test_year_in_text_is_the_regex_version(year: int, text: str) -> None:
    assert parse_module._year_in_text(year, text) == _year_in_text_oracle(year, text)


_RFC822_ZONE_RE = re.compile(r"\s([A-Za-z]{3,4})\s*$")


def _extra_zone_date_oracle(text: str) -> datetime | None:
    match = _RFC822_ZONE_RE.search(text)
    if not match or match.group(1).upper() not in parse_module._EXTRA_ZONES:
        return None
    fixed = text[: match.start(1)] + parse_module._EXTRA_ZONES[match.group(1).upper()]
    try:
        parsed = email.utils.parsedate_tz(fixed)
        if parsed is None:
            return None
        timestamp = calendar.timegm(parsed[:9]) - (parsed[9] or 0)
        return datetime.fromtimestamp(timestamp, UTC)
    except (ValueError, OverflowError, OSError, IndexError, TypeError):
        return None


@given(
    st.builds(
        lambda date, zone, tail: date + zone + tail,
        _ANY_DATE,
        st.sampled_from(["", " MSK", " cest", " EET\n", " WET ", " MSK1", " 1", " XYZ"]),
        st.sampled_from(["", "", "\n", " ", "1", "٢"]),
    )
)
@example("Sun, 01 Jun 2025 12:00:00 MSK")
@example("Sun, 01 Jun 2025 12:00:00 MSK\n")
def test_extra_zone_date_is_the_regex_version(text: str) -> None:
    assert parse_module._extra_zone_date(text) == _extra_zone_date_oracle(text)

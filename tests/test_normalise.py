"""Tests for feedwatch.normalise and the HTML helpers it relies on (feedwatch._html)."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from feedwatch._html import html_to_text, sanitize_html, strip_control_chars, text_to_html
from feedwatch._model import Item, ParsedEntry, ParsedFeed
from feedwatch.normalise import canonicalise_url, normalise_entries, normalise_link

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
FEED_URL = "https://www.example.org/feeds/news.xml"


def _items(*entries: ParsedEntry, language: str | None = None) -> list[Item]:
    feed = ParsedFeed(format="rss20", language=language, entries=entries)
    items, _ = normalise_entries(feed, feed_url=FEED_URL, now=NOW)
    return items


def _item(entry: ParsedEntry, language: str | None = None) -> Item:
    (item,) = _items(entry, language=language)
    return item


# --------------------------------------------------------------------------- canonical URLs


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("HTTP://WWW.Example.COM/a", "http://www.example.com/a"),
        ("https://example.com", "https://example.com/"),
        ("https://example.com:443/a", "https://example.com/a"),
        ("http://example.com:80/a", "http://example.com/a"),
        ("http://example.com:8080/a", "http://example.com:8080/a"),
        ("https://example.com:80/a", "https://example.com:80/a"),
        ("https://example.com/a#section", "https://example.com/a"),
        ("https://example.com/a?", "https://example.com/a"),
        ("https://example.com/a?utm_source=rss&utm_medium=feed", "https://example.com/a"),
        ("https://example.com/a?UTM_Campaign=x&id=3", "https://example.com/a?id=3"),
        (
            "https://example.com/a?z=1&fbclid=x&a=2&gclid=y&mc_cid=1&mc_eid=2",
            "https://example.com/a?z=1&a=2",
        ),
        (
            "https://example.com/a?yclid=1&_hsenc=2&_hsmi=3&ref_src=4&igshid=5",
            "https://example.com/a",
        ),
        ("https://example.com/a?b=2&a=1&b=1", "https://example.com/a?b=2&a=1&b=1"),
        ("https://example.com/a?q=a+b&r=%2F", "https://example.com/a?q=a+b&r=%2F"),
        ("https://example.com/a?flag&x=", "https://example.com/a?flag&x="),
        ("https://example.com/%7euser/%c3%a9", "https://example.com/~user/%C3%A9"),
        ("https://example.com/путь?q=я", "https://example.com/%D0%BF%D1%83%D1%82%D1%8C?q=%D1%8F"),
        (
            "https://пример.рф/новости",
            "https://xn--e1afmkfd.xn--p1ai/%D0%BD%D0%BE%D0%B2%D0%BE%D1%81%D1%82%D0%B8",
        ),
        ("https://Bücher.example/", "https://xn--bcher-kva.example/"),
        ("http://[2001:DB8::1]:80/a", "http://[2001:db8::1]/a"),
        ("https://user@Example.com/a", "https://user@example.com/a"),
        ("  https://example.com/a  ", "https://example.com/a"),
        ("mailto:someone@example.com", "mailto:someone@example.com"),
        ("https://example.com:99999/a", "https://example.com:99999/a"),
    ],
)
def test_canonicalise_url(url: str, expected: str) -> None:
    assert expected == canonicalise_url(url)


def test_canonical_url_is_idempotent() -> None:
    url = "HTTPS://Example.COM:443/a/%7e/é?utm_source=x&b=1#f"

    once = canonicalise_url(url)

    assert once == canonicalise_url(once)


# --------------------------------------------------------------------------- links


@pytest.mark.parametrize(
    ("link", "expected"),
    [
        ("https://example.com/a", "https://example.com/a"),
        ("/story/1", "https://www.example.org/story/1"),
        ("story/1", "https://www.example.org/feeds/story/1"),
        ("//cdn.example.com/a", "https://cdn.example.com/a"),
        ("  https://example.com/a\n", "https://example.com/a"),
        ("https://example.com/a b", "https://example.com/a%20b"),
        ("javascript:alert(1)", None),
        ("  JaVaScRiPt:alert(1)", None),
        ("java\tscript:alert(1)", None),
        ("\x01javascript:alert(1)", None),
        ("data:text/html;base64,PHNjcmlwdD4=", None),
        ("vbscript:msgbox(1)", None),
        ("file:///etc/passwd", None),
        ("ftp://example.com/a", None),
        ("mailto:a@example.com", None),
        ("http://", None),
        ("https://example.com:notaport/", None),
        ("", None),
        ("   ", None),
        (None, None),
    ],
)
def test_normalise_link(link: str | None, expected: str | None) -> None:
    assert expected == normalise_link(link, FEED_URL)


# --------------------------------------------------------------------------- HTML helpers


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        ("<p>a</p><p>b</p>", "a\nb"),
        ("a<br>b<br/>c", "a\nb\nc"),
        ("<div>one</div>two", "one\ntwo"),
        ("<ul><li>x</li><li>y</li></ul>", "x\ny"),
        ("<h1>Title</h1>Body", "Title\nBody"),
        ("<table><tr><td>a</td><td>b</td></tr></table>", "a b"),
        ("<b>bold</b><i>italic</i>", "bolditalic"),
        ("wo<span>rd</span>", "word"),
        ("AT&amp;T &lt;tag&gt; &eacute;t&eacute; &#8212; &#x41;", "AT&T <tag> été — A"),
        ("a&nbsp;&nbsp;b", "a b"),
        ("  lots   of\n\n\n   space  ", "lots of\nspace"),
        ("<script>var x = '<p>no</p>';</script>yes", "yes"),
        ("<style>p { color: red }</style>yes", "yes"),
        ("<noscript>no</noscript><template><p>no</p></template>yes", "yes"),
        ("<p>unclosed <b>tags", "unclosed tags"),
        ("<<<>>>", "<<<>>>"),
        ("<!-- comment -->text<![CDATA[x]]>", "text"),
        ("<p\n", ""),
        ("", ""),
        ("plain text", "plain text"),
    ],
)
def test_html_to_text(html: str, expected: str) -> None:
    assert expected == html_to_text(html)


@pytest.mark.parametrize(
    "html",
    [
        "<" * 10_000,
        "<a " * 5_000,
        "&#" * 5_000,
        "<div>" * 20_000,
        "</" + "x" * 100_000,
        "\x00<p\x00>",
    ],
)
def test_html_to_text_never_raises(html: str) -> None:
    assert isinstance(html_to_text(html), str)


def test_sanitize_html_removes_what_can_run() -> None:
    dirty = (
        '<p onclick="steal()" style="position:fixed">Hi <a href="javascript:alert(1)">j</a>'
        '<a href="data:text/html,x">d</a><a href="vbscript:x">v</a></p>'
        '<script>alert(1)</script><style>body{}</style><iframe src="https://evil.example/">f</iframe>'
        '<form action="https://evil.example/post"><input name="q"><button>Go</button></form>'
        '<img src="x" onerror="steal()"><object data="x.swf">o</object><svg onload="x()"></svg>'
        '<img src="data:image/png;base64,AAAA">'
    )

    clean = sanitize_html(dirty, "https://www.example.org/")

    for forbidden in (
        "onclick",
        "onerror",
        "onload",
        "style",
        "javascript",
        "data:",
        "vbscript",
        "<script",
        "alert",
        "<iframe",
        "<form",
        "action",
        "<input",
        "<object",
        "<svg",
        "evil",
    ):
        assert forbidden not in clean, forbidden
    assert "Hi" in clean


def test_sanitize_html_keeps_display_markup_and_resolves_links() -> None:
    html = (
        '<h2>T</h2><p><a href="/a" title="t">x</a> <strong>s</strong> <em>e</em></p>'
        "<ul><li>i</li></ul><blockquote>q</blockquote><pre><code>c</code></pre>"
        '<img src="img/p.png" alt="p"><a href="mailto:a@example.org">m</a>'
        '<table><tr><td colspan="2">c</td></tr></table>'
    )

    clean = sanitize_html(html, "https://www.example.org/news/")

    assert '<a href="https://www.example.org/a" title="t" rel="noopener noreferrer">x</a>' in clean
    assert '<img src="https://www.example.org/news/img/p.png" alt="p">' in clean
    assert 'href="mailto:a@example.org"' in clean
    for tag in ("<h2>", "<strong>", "<em>", "<ul>", "<li>", "<blockquote>", "<pre>", "<code>"):
        assert tag in clean
    assert '<td colspan="2">' in clean


def test_sanitize_html_drops_relative_links_without_a_base() -> None:
    assert sanitize_html('<a href="/a">x</a>', None) == '<a rel="noopener noreferrer">x</a>'


def test_sanitize_html_resolves_only_to_http() -> None:
    # A base with an odd scheme must not turn relative links into something else.
    assert "href" not in sanitize_html('<a href="x">x</a>', "ftp://example.org/")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a\x00b", "ab"),
        ("a\r\nb\rc", "a\nb\nc"),
        ("tab\tand\nnewline", "tab\tand\nnewline"),
        ("\x01\x08\x0b\x0c\x0e\x1f\x7f", ""),
        ("c1\x80\x85\x9f", "c1"),
        ("lone \ud800 surrogate", "lone  surrogate"),
        ("non\ufffe\uffff\ufdd0char", "nonchar"),
        ("astral \U0001fffe\U0010ffff ok \U0001f600", "astral  ok \U0001f600"),
        ("Привет, été, 中文", "Привет, été, 中文"),
    ],
)
def test_strip_control_chars(text: str, expected: str) -> None:
    assert expected == strip_control_chars(text)


def test_text_to_html_round_trips_through_html_to_text() -> None:
    text = "a < b & c\nnext line\n\nnew paragraph"

    html = text_to_html(text)

    assert html == "<p>a &lt; b &amp; c<br>next line</p><p>new paragraph</p>"
    assert html_to_text(html) == "a < b & c\nnext line\nnew paragraph"


# --------------------------------------------------------------------------- entries


def test_control_characters_are_removed_from_every_string_field() -> None:
    dirty = "\x00\x01x\x7f\x9f\ud800"
    entry = ParsedEntry(
        guid=f"g{dirty}",
        link=f"https://example.com/{dirty}",
        title=f"t{dirty}",
        content=f"<p>c{dirty}&#1;</p>",
        author=f"a{dirty}",
        categories=(f"tag{dirty}",),
    )

    item = _item(entry)

    strings = [
        item.entry_key,
        item.guid or "",
        item.url or "",
        item.canonical_url or "",
        item.title,
        item.content_html,
        item.content_text,
        item.author or "",
        *item.tags,
    ]
    for value in strings:
        assert strip_control_chars(value) == value, value
        assert "\x00" not in value
    assert item.guid == "gx"
    assert item.title == "tx"
    assert item.content_text == "cx"
    assert item.author == "ax"
    assert item.tags == ("tagx",)


def test_unsafe_links_are_dropped_and_the_key_falls_back() -> None:
    items = _items(
        ParsedEntry(link="javascript:alert(1)", title="a"),
        ParsedEntry(link="data:text/html,hi", title="b"),
    )

    assert [i.url for i in items] == [None, None]
    assert [i.canonical_url for i in items] == [None, None]
    assert all(i.entry_key.startswith("h:") for i in items)


def test_content_html_is_sanitised() -> None:
    entry = ParsedEntry(
        guid="1",
        content=(
            '<p onclick="x()">Body <a href="/more">more</a></p><script>steal()</script>'
            '<iframe src="https://evil.example/">frame</iframe><form action="/post">f</form>'
        ),
    )

    item = _item(entry)

    assert "onclick" not in item.content_html
    assert "<script" not in item.content_html
    assert "<iframe" not in item.content_html
    assert "action" not in item.content_html
    assert 'href="https://www.example.org/more"' in item.content_html
    assert "steal" not in item.content_text
    assert "frame" not in item.content_text


@pytest.mark.parametrize(
    ("entry", "html", "text"),
    [
        (
            ParsedEntry(guid="1", content="<p>full</p>", summary="<p>short</p>"),
            "<p>full</p>",
            "full",
        ),
        (ParsedEntry(guid="1", summary="<p>short</p>"), "<p>short</p>", "short"),
        (
            ParsedEntry(guid="1", content_text="as  is\n\nkept", summary="s"),
            "<p>as  is</p><p>kept</p>",
            "as  is\n\nkept",
        ),
        (
            ParsedEntry(guid="1", content="<p>html</p>", content_text="the feed's own text"),
            "<p>html</p>",
            "the feed's own text",
        ),
        (ParsedEntry(guid="1"), "", ""),
    ],
    ids=["content over summary", "summary", "plain-text content", "both", "none"],
)
def test_content_choice(entry: ParsedEntry, html: str, text: str) -> None:
    item = _item(entry)

    assert html == item.content_html
    assert text == item.content_text


@pytest.mark.parametrize(
    ("title", "is_html", "expected"),
    [
        ("1 &lt; 2", False, "1 &lt; 2"),
        ("1 &lt; 2", True, "1 < 2"),
        ("<b>Bold</b> &amp; more", True, "Bold & more"),
        ("<b>not markup</b>", False, "<b>not markup</b>"),
        ("  many\n  lines\t here ", False, "many lines here"),
        (None, False, ""),
    ],
)
def test_title(title: str | None, is_html: bool, expected: str) -> None:
    assert expected == _item(ParsedEntry(guid="1", title=title, title_is_html=is_html)).title


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<script>alert(1)</script>Hi", "Hi"),
        ("<SCRIPT SRC=//127.0.0.2/x.js></SCRIPT>Hi", "Hi"),
        ("<img src=x onerror=alert(1)> Cats", "Cats"),
        ('<iframe src="javascript:alert(1)"></iframe>T', "T"),
        ('<a href="javascript:x">click</a> me', "click me"),
        ('<div onclick="x()">D</div>', "D"),
        ("<svg/onload=alert(1)>S", ""),  # the sanitiser drops an svg with its content
        ("Before <svg/onload=alert(1)></svg> after", "Before after"),
        # Angle brackets that are no active markup stay as the feed wrote them.
        ("#include </etc/shadow>", "#include </etc/shadow>"),
        ("List<T> and <b> tags", "List<T> and <b> tags"),
        ("a < b and c > d", "a < b and c > d"),
        ("<abbr>WHO</abbr> <scripted> <aside>", "<abbr>WHO</abbr> <scripted> <aside>"),
    ],
)
def test_plain_title_and_author_with_active_markup_are_read_as_html(
    text: str, expected: str
) -> None:
    # feedparser calls such a title text (it holds a tag outside its harmless list).
    item = _item(ParsedEntry(guid="1", title=text, title_is_html=False, author=text))
    assert (item.title, item.author or "") == (expected, expected)


def test_dates_and_sort_time() -> None:
    moscow = timezone(timedelta(hours=3))
    past = datetime(2024, 5, 1, 15, 0, tzinfo=moscow)
    future = NOW + timedelta(days=365)

    published, updated_only, future_item, undated = _items(
        ParsedEntry(guid="1", published=past, updated=past + timedelta(hours=1)),
        ParsedEntry(guid="2", updated=past),
        ParsedEntry(guid="3", published=future),
        ParsedEntry(guid="4"),
    )

    assert datetime(2024, 5, 1, 12, 0, tzinfo=UTC) == published.published
    assert published.published.tzinfo == UTC
    assert datetime(2024, 5, 1, 12, 0, tzinfo=UTC) == published.sort_at
    assert updated_only.published is None
    assert datetime(2024, 5, 1, 12, 0, tzinfo=UTC) == updated_only.sort_at
    assert future == future_item.published
    assert future_item.sort_at == NOW
    assert (undated.published, undated.updated, undated.sort_at) == (None, None, NOW)
    assert all(i.first_seen == NOW for i in (published, updated_only, future_item, undated))


def test_key_ladder() -> None:
    published = datetime(2024, 5, 10, 12, 0, tzinfo=UTC)

    by_guid, by_link, by_hash = _items(
        ParsedEntry(guid=" g-1 ", link="https://example.com/1", title="a"),
        ParsedEntry(guid="  ", link="https://example.com/2", title="b"),
        ParsedEntry(title="Only a title", published=published),
    )

    assert by_guid.entry_key == "g-1"
    assert by_link.entry_key == "https://example.com/2"
    assert by_link.guid is None
    # The documented formula, computed independently.
    data = json.dumps([None, "Only a title", "2024-05-10T12:00:00+00:00"], separators=(",", ":"))
    assert "h:" + hashlib.sha256(data.encode()).hexdigest() == by_hash.entry_key


def test_repeated_guids_fall_back_and_exact_duplicates_appear_once() -> None:
    first = ParsedEntry(guid="same", link="https://example.com/1", title="One")
    other = ParsedEntry(guid="same", link="https://example.com/2", title="Two")
    third = ParsedEntry(guid="same", link="https://example.com/2", title="Three")
    feed = ParsedFeed(format="rss20", entries=(first, other, first, third))

    items, warnings = normalise_entries(feed, feed_url=FEED_URL, now=NOW)

    assert [i.entry_key for i in items[:2]] == ["same", "https://example.com/2"]
    assert items[2].entry_key.startswith("h:")
    assert [i.title for i in items] == ["One", "Two", "Three"]
    assert any("duplicate" in w for w in warnings)
    assert len({i.entry_key for i in items}) == len(items)


def test_long_guids_are_hashed() -> None:
    guid = "https://example.com/?" + "x" * 2000

    item = _item(ParsedEntry(guid=guid, title="t"))

    assert item.entry_key.startswith("h:")
    assert len(item.entry_key) == 2 + 64
    assert guid == item.guid


def test_content_hash_ignores_volatile_fields() -> None:
    entry = ParsedEntry(
        guid="1",
        title="t",
        content="<p>c</p>",
        published=datetime(2024, 5, 1, tzinfo=UTC),
        updated=datetime(2024, 5, 2, tzinfo=UTC),
    )
    feed = ParsedFeed(format="rss20", entries=(entry,))
    later = NOW + timedelta(days=3)

    (item,), _ = normalise_entries(feed, feed_url=FEED_URL, now=NOW)
    (same,), _ = normalise_entries(feed, feed_url=FEED_URL, now=later)
    bumped = _item(replace(entry, updated=datetime(2024, 5, 3, tzinfo=UTC)))
    retitled = _item(replace(entry, title="t2"))
    rewritten = _item(replace(entry, content="<p>c2</p>"))
    retagged = _item(replace(entry, categories=("x",)))

    assert item.content_hash == same.content_hash
    assert item.content_hash == bumped.content_hash
    assert (
        len(
            {
                item.content_hash,
                retitled.content_hash,
                rewritten.content_hash,
                retagged.content_hash,
            }
        )
        == 4
    )
    assert len(item.content_hash) == 64


def test_tags_are_deduplicated_case_insensitively_in_order() -> None:
    entry = ParsedEntry(
        guid="1", categories=("Économie", " économie ", "ÉCONOMIE", "", "Santé", "x  y")
    )

    assert _item(entry).tags == ("Économie", "Santé", "x y")


@pytest.mark.parametrize(
    ("entry_language", "feed_language", "expected"),
    [
        ("ru", "en", "ru"),
        (None, "en-US", "en-us"),
        ("en_GB", None, "en-gb"),
        (" FR ", None, "fr"),
        ("not a language!", "de", "de"),
        (None, None, None),
    ],
)
def test_language(
    entry_language: str | None, feed_language: str | None, expected: str | None
) -> None:
    item = _item(ParsedEntry(guid="1", language=entry_language), language=feed_language)

    assert expected == item.language


def test_naive_now_is_taken_as_utc() -> None:
    feed = ParsedFeed(format="rss20", entries=(ParsedEntry(guid="1"),))

    (item,), _ = normalise_entries(feed, feed_url=FEED_URL, now=NOW.replace(tzinfo=None))

    assert item.first_seen == NOW
    assert item.first_seen.tzinfo == UTC


# ---------------------------------------------------------------------- URL fast paths

_URL_PIECES = st.fixed_dictionaries(
    {
        "scheme": st.sampled_from(
            ["http", "https", "HTTP", "Https", "ftp", "javascript", "httpſ", "HTTPK"]
        ),
        "host": st.sampled_from(
            [
                "example.org",
                "Example.ORG",
                "a-b.c",
                "xn--d1acufc.xn--p1ai",
                "bücher.de",
                "h",
                "a..b",
            ]
        ),
        "port": st.sampled_from(["", ":80", ":443", ":8080", ":99999", ":x"]),
        "path": st.text(alphabet="/abcAZ09-._~!$&'()*+,;=:@%20 é\\#ſK", max_size=12),
        "query": st.one_of(
            st.just(""),
            st.lists(
                st.sampled_from(
                    ["a=1", "utm_source=x", "B=2", "fbclid=z", "%41=%7e", "q=a b", "", "x"]
                ),
                max_size=4,
            ).map(lambda ps: "?" + "&".join(ps)),
        ),
    }
)


@pytest.mark.parametrize(
    ("link", "expected"),
    [
        # Characters that fold to ASCII letters under Unicode case folding are not
        # ASCII: percent-encoded in a path; not a scheme (so a relative reference).
        ("https://example.org/\u017f", "https://example.org/%C5%BF"),
        ("https://example.org/\u212a", "https://example.org/%E2%84%AA"),
        ("http\u017f://example.org/", "http://127.0.0.1/http%C5%BF:/example.org/"),
    ],
)
def test_unicode_letters_that_fold_to_ascii_take_the_general_path(
    link: str, expected: str | None
) -> None:
    assert normalise_link(link, "http://127.0.0.1/feed.xml") == expected


@settings(max_examples=500, deadline=None)
@given(_URL_PIECES)
def test_simple_url_fast_paths_agree_with_the_general_ones(p: dict[str, str]) -> None:
    from feedwatch.normalise import _canonicalise_url, _normalise_link

    url = f"{p['scheme']}://{p['host']}{p['port']}{p['path']}{p['query']}"
    base = "http://127.0.0.1/feed.xml"
    assert normalise_link(url, base) == _normalise_link(url, base)
    assert canonicalise_url(url) == _canonicalise_url(url)


@settings(max_examples=500, deadline=None)
@given(st.one_of(_URL_PIECES, st.none()))
def test_link_and_canonical_agree_with_the_two_functions(p: dict[str, str] | None) -> None:
    from feedwatch.normalise import _link_and_canonical

    link = None if p is None else f"{p['scheme']}://{p['host']}{p['port']}{p['path']}{p['query']}"
    base = "http://127.0.0.1/feed.xml"
    url = normalise_link(link, base)
    assert _link_and_canonical(link, base) == (url, canonicalise_url(url) if url else None)


# ------------------------------------------------------------------ text and hash fast paths

_SPECIAL = [
    '"',
    "\\",
    "\n",
    "\t",
    "\r",
    "\x00",
    "\x1f",
    "\x7f",
    "\x85",
    "\xa0",
    "\u2028",
    "é",
    "😀",
]
#: Text json.dumps and UTF-8 take (no lone surrogates), with what JSON escapes.
_JSON_TEXT = st.text(
    alphabet=st.one_of(
        st.sampled_from(_SPECIAL), st.characters(exclude_categories=("Cs",), max_codepoint=0x7F)
    ),
    max_size=30,
)


def _dumps(data: object) -> str:
    return json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.none(), _JSON_TEXT, st.text(max_size=30).filter(lambda t: t.isprintable())))
@example('a "b" \\ c\nd')
@example("\n\x01")
def test_json_of_strings_is_that_of_json_dumps(value: str | None) -> None:
    from feedwatch.normalise import _json_utf8, _json_value

    assert _json_value(value) == _dumps(value)
    if value is not None:
        assert _json_utf8(value) == _dumps(value).encode()


@settings(max_examples=300, deadline=None)
@given(
    title=_JSON_TEXT,
    content=_JSON_TEXT,
    url=st.one_of(st.none(), _JSON_TEXT),
    author=st.one_of(st.none(), _JSON_TEXT),
    published=st.one_of(st.none(), st.just("2024-05-10T12:00:00+00:00")),
    tags=st.lists(_JSON_TEXT, max_size=3).map(tuple),
)
def test_hashes_are_those_of_json_dumps(
    title: str,
    content: str,
    url: str | None,
    author: str | None,
    published: str | None,
    tags: tuple[str, ...],
) -> None:
    from feedwatch.normalise import _content_hash, _hash_key, _sha256, _short_key

    fields = {
        "title": title,
        "content": content,
        "url": url,
        "author": author,
        "published": published,
        "tags": list(tags),
    }
    digest = hashlib.sha256(_dumps(fields).encode()).hexdigest()
    assert _sha256(fields) == digest
    assert (
        _content_hash(
            title=title, content=content, url=url, author=author, published=published, tags=tags
        )
        == digest
    )
    key = "h:" + hashlib.sha256(_dumps([url, title, published]).encode()).hexdigest()
    assert _hash_key(url, title, published) == key
    long_key = title + "x" * 600
    assert _short_key(long_key) == "h:" + hashlib.sha256(_dumps(long_key).encode()).hexdigest()


def test_keys_and_hashes_are_those_stored_before() -> None:
    # Computed by the code before its fast paths: items stored then must not
    # look updated now.
    items = _items(
        ParsedEntry(
            guid="g-1",
            link="https://example.com/a?utm_source=x&b=1",
            title='Say "hi" \\ <there>',
            content=(
                '<p>Line one</p>\n<p>Line\ttwo &amp; "three" \\ é 😀</p>'
                "<table><tr><td>a</td><td>b</td></tr></table>"
            ),
            author="Ann\u2028Author",
            published=datetime(2024, 5, 1, 15, 0, tzinfo=timezone(timedelta(hours=3))),
            categories=("Économie", "x  y"),
        ),
        ParsedEntry(
            title="Only a title",
            published=datetime(2024, 5, 10, 12, 0, 30, 123456, tzinfo=UTC),
            summary="plain\ttext\r\nand more",
        ),
        ParsedEntry(link="/relative/путь?q=1", content_text='as  is\n\tkept "q"', guid="x" * 600),
    )

    assert [(i.entry_key, i.content_hash) for i in items] == [
        ("g-1", "6d067731dc0be0a2fc70bfe83477a1496940d06f00e2a9d0a5fb04eb905a9cd5"),
        (
            "h:8fba5231b3b5a71f3e7b64cdff84ee2886dbbd7c43eca73f60cd75475bd46760",
            "896bd700575865d5e9050f4fdaf92af62a15f289dc233f0202554a0e51f4fc39",
        ),
        (
            "h:95ec2d7c00ae130a5fd2d5f8cb3d9f2d00924f71aa3c119906669bf0af1c7256",
            "139ace2f017d561e2088047447a5e18c85142ad1d7b88509a23131763f7feb9f",
        ),
    ]


@settings(max_examples=500, deadline=None)
@given(
    st.text(
        alphabet=st.sampled_from([" ", "\n", "\t", "\xa0", "\u2028", "\x00", "\r", "a", "é"]),
        max_size=20,
    )
)
def test_one_line_agrees_with_the_regex(text: str) -> None:
    from feedwatch.normalise import _one_line

    assert _one_line(text) == re.sub(r"\s+", " ", strip_control_chars(text)).strip()


def test_entry_languages_are_read_once_per_value() -> None:
    languages = ["EN", "not valid!", None, "EN", "not valid!", "", "fr_FR"]
    items = _items(
        *(ParsedEntry(guid=str(i), language=lang) for i, lang in enumerate(languages)),
        language="de",
    )

    assert [i.language for i in items] == ["en", "de", "de", "en", "de", "de", "fr-fr"]


def test_entries_keyed_by_their_hash_alone() -> None:
    published = datetime(2024, 5, 10, 12, 0, tzinfo=UTC)
    first = ParsedEntry(title="t", published=published, content="<p>a</p>")
    feed = ParsedFeed(
        format="rss20",
        entries=(first, first, replace(first, content="<p>b</p>"), replace(first, title="u")),
    )

    items, warnings = normalise_entries(feed, feed_url=FEED_URL, now=NOW)

    assert [i.title for i in items] == ["t", "u"]
    assert all(i.entry_key.startswith("h:") for i in items)
    assert warnings == [
        "entry 1 skipped: exact duplicate of an earlier entry",
        "entry 2 skipped: same guid, link, title and date as an earlier entry",
    ]


# --------------------------------------------------------------------------- long titles


def test_a_title_of_exactly_the_limit_is_kept_whole() -> None:
    title = "word " * 199 + "abcde"  # 1,000 characters
    feed = ParsedFeed(format="rss20", entries=(ParsedEntry(guid="g", title=title),))

    (item,), warnings = normalise_entries(feed, feed_url=FEED_URL, now=NOW)

    assert len(title) == 1000
    assert (item.title, warnings) == (title, [])
    # One more: cut after the last whole word that leaves room for the ellipsis.
    assert _item(ParsedEntry(guid="g", title=title + "f")).title == "word " * 198 + "word…"


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        # The last whole word that leaves room for the ellipsis (999 characters).
        pytest.param("words " * 300, ("words " * 166)[:995] + "…", id="at-a-word-boundary"),
        # A space right after the 999th character: all 999 are whole words.
        pytest.param("a" * 999 + " tail", "a" * 999 + "…", id="boundary-right-after-the-room"),
        # No space in the last 100 characters of the room: cut in the word.
        pytest.param("b " + "c" * 1500, "b " + "c" * 997 + "…", id="no-boundary-in-the-slack"),
        pytest.param("я" * 5000, "я" * 999 + "…", id="one-long-word"),
        # The words are one space apart before the cut ("  many\n lines" is one line).
        pytest.param("xy \n\t " * 600, ("xy " * 333)[:998] + "…", id="whitespace-collapsed-first"),
    ],
)
def test_a_long_title_is_cut_with_an_ellipsis(title: str, expected: str) -> None:
    feed = ParsedFeed(
        format="rss20",
        entries=(ParsedEntry(guid="short", title="short"), ParsedEntry(guid="g", title=title)),
    )

    items, warnings = normalise_entries(feed, feed_url=FEED_URL, now=NOW)

    assert items[1].title == expected
    assert len(items[1].title) <= 1000
    assert items[0].title == "short"
    length = len(" ".join(title.split()))
    assert warnings == [
        f"entry 1 ('g'): title of {length:,} characters cut to {len(expected):,} (limit 1,000)"
    ]


def test_a_long_html_title_is_cut_after_its_markup_is_gone() -> None:
    words = "<b>bold</b> &amp; " * 200  # 1,200 characters of text, 3,600 of markup
    item = _item(ParsedEntry(guid="g", title=words, title_is_html=True))

    assert item.title.startswith("bold & bold & ")
    assert item.title.endswith(" bold…")  # the last whole word within 999 characters
    assert len(item.title) <= 1000


def test_the_key_and_hashes_of_a_cut_title_are_those_of_the_cut_title() -> None:
    published = datetime(2024, 5, 10, 12, 0, tzinfo=UTC)
    long = "lorem ipsum " * 500
    cut = _item(ParsedEntry(title=long, published=published))
    (cut_again,) = _items(ParsedEntry(title=long + "and a different end", published=published))
    as_stored = _item(ParsedEntry(title=cut.title, published=published))

    # Keyed by the hash of (link, title, published) over the title as stored: an
    # entry written with the cut title is the same item, and a title that differs
    # only beyond the cut makes no new one.
    assert cut.entry_key.startswith("h:")
    assert cut.entry_key == as_stored.entry_key == cut_again.entry_key
    assert cut.content_hash == as_stored.content_hash == cut_again.content_hash
    data = json.dumps([None, cut.title, published.isoformat()], ensure_ascii=False)
    expected = "h:" + hashlib.sha256(data.replace(", ", ",").encode()).hexdigest()
    assert cut.entry_key == expected


def test_a_skipped_duplicate_gets_no_title_warning() -> None:
    entry = ParsedEntry(guid="g", title="t " * 700)
    feed = ParsedFeed(format="rss20", entries=(entry, entry))

    items, warnings = normalise_entries(feed, feed_url=FEED_URL, now=NOW)

    assert len(items) == 1
    assert warnings == [
        "entry 0 ('g'): title of 1,399 characters cut to 1,000 (limit 1,000)",
        "entry 1 skipped: exact duplicate of an earlier entry",
    ]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(["a", "é", " ", "\n", "😀"]), max_size=1200))
def test_cut_titles_keep_a_prefix_of_whole_words_when_they_can(text: str) -> None:
    from feedwatch.normalise import _cut_title, _one_line

    title = _one_line("x" * 900 + text)  # around the limit
    cut = _cut_title(title)

    if len(title) <= 1000:
        assert cut == title
        return
    kept = cut.removesuffix("…")
    assert kept != cut
    assert len(cut) <= 1000
    assert title.startswith(kept)
    assert len(kept) >= 899
    if " " in title[899:1000]:  # a word ends within the slack: the cut is after it
        assert title[len(kept)] == " "
        assert not kept.endswith(" ")
    else:
        assert len(kept) == 999

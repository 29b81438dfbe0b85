"""The fast parse path: well-formed RSS 0.9x/2.0, RSS 1.0 (RDF) and Atom 1.0 through lxml.

feedparser (pure Python, SAX over expat) costs about 70 times an lxml tree of
the same document. This module reads the tree lxml builds and reproduces what
feedparser would have put in the keys ``parse`` reads (entries' ``id``,
``link``, ``title``/``title_detail``, ``content``, ``summary``/``summary_detail``,
``published``/``updated`` and their ``*_parsed``, ``authors``/``author_detail``/
``author``, ``tags``, ``language``; the feed's ``title``, ``link``, ``language``,
``ttl`` and authors). It is a port of the parts of feedparser's
``_FeedParserMixin`` state machine that decide those keys (depth rules for
titles, description-after-summary becoming content, guid-as-link, author
syncing, category terms, xml:base and xml:lang scopes, namespace naming...),
walking the tree instead of SAX events. This is the only module that imports
lxml; it does not import feedparser.

It DECLINES (returns None, and ``parse`` runs feedparser) whenever it cannot
guarantee feedparser's result: a document lxml rejects or warns about, an
unknown root or version, constructs whose feedparser behaviour is not ported
(text elements with child elements outside Atom ``type="xhtml"``, base64
content, ``base`` attributes other than xml:base, nested entries, textinput or
structured images inside entries, GML and Podlove chapters...). Encoding and
DOCTYPE handling are not done here: ``parse`` hands over the very bytes
feedparser's SAX parser would read (feedparser's own ``convert_to_utf8`` and
``replace_doctype`` output), so both paths decode identically.

Dates come back as the raw strings: in every ``*_parsed`` key there is the text
feedparser would have handed to its date parser, and ``parse`` converts it.

HTML values are not re-serialised through feedparser's sgmllib pass (its
relative-URI resolver, about half of feedparser's cost). ``html_pass`` redoes
with regular expressions what of that pass survives the sanitiser (nh3): the
attributes of the elements nh3 keeps (a, img, abbr, ol, td, th, time), sorted,
de-duplicated keeping the last, their URLs resolved as feedparser does; and
feedparser's short-tag and ``<!`` rewrites. HTML holding a construct where
sgmllib and an HTML parser part ways (odd entities, unbalanced quotes, ``<>``,
``</br>``, unterminated tags...) goes through feedparser's own pass instead
(``resolve_html``, injected by ``parse``).

Known differences to feedparser, after ``normalise`` (tests/test_fastxml.py
checks every document of the shared corpus, inline edge cases and mutated
feeds against feedparser):

=====================================  =========================================
Difference                             Reason
=====================================  =========================================
none known                             --
=====================================  =========================================
"""

from __future__ import annotations

import contextlib
import functools
import re
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape as _xml_escape

from lxml import etree  # type: ignore[import-untyped]

__all__ = ["FastFeed", "parse_fast"]

Record = dict[str, Any]

# --------------------------------------------------------------------------- feedparser tables

#: feedparser's namespace table (``_FeedParserMixin.namespaces``), URIs lower-cased.
_XML_NAMESPACE = "http://www.w3.org/XML/1998/namespace"
NAMESPACES: dict[str, str] = {
    "": "",
    "http://backend.userland.com/rss": "",
    "http://blogs.law.harvard.edu/tech/rss": "",
    "http://purl.org/rss/1.0/": "",
    "http://my.netscape.com/rdf/simple/0.9/": "",
    "http://example.com/newformat#": "",
    "http://example.com/necho": "",
    "http://purl.org/echo/": "",
    "uri/of/echo/namespace#": "",
    "http://purl.org/pie/": "",
    "http://purl.org/atom/ns#": "",
    "http://www.w3.org/2005/atom": "",
    "http://purl.org/rss/1.0/modules/rss091#": "",
    "http://webns.net/mvcb/": "admin",
    "http://purl.org/rss/1.0/modules/aggregation/": "ag",
    "http://purl.org/rss/1.0/modules/annotate/": "annotate",
    "http://media.tangent.org/rss/1.0/": "audio",
    "http://backend.userland.com/blogchannelmodule": "blogChannel",
    "http://creativecommons.org/ns#license": "cc",
    "http://web.resource.org/cc/": "cc",
    "http://cyber.law.harvard.edu/rss/creativecommonsrssmodule.html": "creativeCommons",
    "http://backend.userland.com/creativecommonsrssmodule": "creativeCommons",
    "http://purl.org/rss/1.0/modules/company": "co",
    "http://purl.org/rss/1.0/modules/content/": "content",
    "http://my.theinfo.org/changed/1.0/rss/": "cp",
    "http://purl.org/dc/elements/1.1/": "dc",
    "http://purl.org/dc/terms/": "dcterms",
    "http://purl.org/rss/1.0/modules/email/": "email",
    "http://purl.org/rss/1.0/modules/event/": "ev",
    "http://rssnamespace.org/feedburner/ext/1.0": "feedburner",
    "http://freshmeat.net/rss/fm/": "fm",
    "http://xmlns.com/foaf/0.1/": "foaf",
    "http://www.w3.org/2003/01/geo/wgs84_pos#": "geo",
    "http://www.georss.org/georss": "georss",
    "http://www.opengis.net/gml": "gml",
    "http://postneo.com/icbm/": "icbm",
    "http://purl.org/rss/1.0/modules/image/": "image",
    "http://www.itunes.com/dtds/podcast-1.0.dtd": "itunes",
    "http://example.com/dtds/podcast-1.0.dtd": "itunes",
    "http://purl.org/rss/1.0/modules/link/": "l",
    "http://search.yahoo.com/mrss": "media",
    "http://search.yahoo.com/mrss/": "media",
    "http://madskills.com/public/xml/rss/module/pingback/": "pingback",
    "http://prismstandard.org/namespaces/1.2/basic/": "prism",
    "http://www.w3.org/1999/02/22-rdf-syntax-ns#": "rdf",
    "http://www.w3.org/2000/01/rdf-schema#": "rdfs",
    "http://purl.org/rss/1.0/modules/reference/": "ref",
    "http://purl.org/rss/1.0/modules/richequiv/": "reqv",
    "http://purl.org/rss/1.0/modules/search/": "search",
    "http://purl.org/rss/1.0/modules/slash/": "slash",
    "http://schemas.xmlsoap.org/soap/envelope/": "soap",
    "http://purl.org/rss/1.0/modules/servicestatus/": "ss",
    "http://hacks.benhammersley.com/rss/streaming/": "str",
    "http://purl.org/rss/1.0/modules/subscription/": "sub",
    "http://purl.org/rss/1.0/modules/syndication/": "sy",
    "http://schemas.pocketsoap.com/rss/mydescmodule/": "szf",
    "http://purl.org/rss/1.0/modules/taxonomy/": "taxo",
    "http://purl.org/rss/1.0/modules/threading/": "thr",
    "http://purl.org/rss/1.0/modules/textinput/": "ti",
    "http://madskills.com/public/xml/rss/module/trackback/": "trackback",
    "http://wellformedweb.org/commentapi/": "wfw",
    "http://purl.org/rss/1.0/modules/wiki/": "wiki",
    "http://www.w3.org/1999/xhtml": "xhtml",
    "http://www.w3.org/1999/xlink": "xlink",
    "http://www.w3.org/xml/1998/namespace": "xml",
    "http://podlove.org/simple-chapters": "psc",
}
_CANONICAL_PREFIXES = frozenset(v for v in NAMESPACES.values() if v)
_NS_NETSCAPE = "http://my.netscape.com/rdf/simple/0.9/"
_NS_RSS10 = "http://purl.org/rss/1.0/"
_NS_ATOM = "http://www.w3.org/2005/atom"
_USERLAND = "backend.userland.com/rss"

#: Names of feedparser's ``_end_*`` handlers (an xhtml content element so named
#: runs the handler inside the content and corrupts feedparser's state).
END_HANDLERS = frozenset(
    [
        "abstract",
        "author",
        "body",
        "category",
        "channel",
        "content",
        "content_encoded",
        "contributor",
        "copyright",
        "created",
        "creativeCommons_license",
        "creativecommons_license",
        "dc_author",
        "dc_contributor",
        "dc_creator",
        "dc_date",
        "dc_description",
        "dc_language",
        "dc_publisher",
        "dc_rights",
        "dc_subject",
        "dc_title",
        "dcterms_created",
        "dcterms_issued",
        "dcterms_modified",
        "dcterms_valid",
        "description",
        "email",
        "entry",
        "expirationdate",
        "feed",
        "feedburner_browserfriendly",
        "fullitem",
        "generator",
        "geom",
        "georss_box",
        "georss_line",
        "georss_point",
        "georss_polygon",
        "georss_where",
        "gml_exterior",
        "gml_linearring",
        "gml_linestring",
        "gml_point",
        "gml_polygon",
        "gml_pos",
        "gml_poslist",
        "guid",
        "height",
        "homepage",
        "id",
        "image",
        "info",
        "issued",
        "item",
        "itunes_author",
        "itunes_block",
        "itunes_category",
        "itunes_email",
        "itunes_explicit",
        "itunes_keywords",
        "itunes_name",
        "itunes_owner",
        "itunes_subtitle",
        "itunes_summary",
        "keywords",
        "language",
        "lastbuilddate",
        "link",
        "managingeditor",
        "media_category",
        "media_credit",
        "media_description",
        "media_keywords",
        "media_license",
        "media_player",
        "media_rating",
        "media_restriction",
        "media_thumbnail",
        "media_title",
        "modified",
        "name",
        "newlocation",
        "psc_chapters",
        "pubdate",
        "published",
        "rights",
        "source",
        "subtitle",
        "summary",
        "tagline",
        "tags",
        "textInput",
        "textinput",
        "title",
        "updated",
        "uri",
        "url",
        "webmaster",
        "where",
        "width",
        "xhtml_body",
    ]
)

#: Names of feedparser's ``_start_*`` handlers.
START_HANDLERS = frozenset(
    [
        "abstract",
        "author",
        "body",
        "category",
        "cc_license",
        "channel",
        "cloud",
        "content",
        "content_encoded",
        "contributor",
        "copyright",
        "created",
        "creativeCommons_license",
        "creativecommons_license",
        "dc_author",
        "dc_contributor",
        "dc_creator",
        "dc_date",
        "dc_description",
        "dc_language",
        "dc_publisher",
        "dc_rights",
        "dc_subject",
        "dc_title",
        "dcterms_created",
        "dcterms_issued",
        "dcterms_modified",
        "dcterms_valid",
        "description",
        "email",
        "enclosure",
        "entry",
        "expirationdate",
        "feed",
        "feedburner_browserfriendly",
        "fullitem",
        "generator",
        "georss_box",
        "georss_line",
        "georss_point",
        "georss_polygon",
        "georss_where",
        "georssgeom",
        "gml_exterior",
        "gml_linearring",
        "gml_linestring",
        "gml_point",
        "gml_polygon",
        "gml_pos",
        "gml_poslist",
        "guid",
        "height",
        "homepage",
        "id",
        "image",
        "info",
        "issued",
        "item",
        "itunes_author",
        "itunes_category",
        "itunes_email",
        "itunes_image",
        "itunes_link",
        "itunes_name",
        "itunes_owner",
        "itunes_subtitle",
        "itunes_summary",
        "keywords",
        "language",
        "lastbuilddate",
        "link",
        "managingeditor",
        "media_category",
        "media_content",
        "media_credit",
        "media_description",
        "media_group",
        "media_license",
        "media_player",
        "media_rating",
        "media_restriction",
        "media_thumbnail",
        "media_title",
        "modified",
        "name",
        "newlocation",
        "psc_chapter",
        "psc_chapters",
        "pubdate",
        "published",
        "rights",
        "rss",
        "source",
        "subtitle",
        "summary",
        "tagline",
        "tags",
        "textInput",
        "textinput",
        "title",
        "updated",
        "uri",
        "url",
        "webmaster",
        "where",
        "width",
        "xhtml_body",
    ]
)

CAN_BE_RELATIVE_URI = frozenset(
    {"comments", "docs", "href", "icon", "id", "link", "logo", "url", "wfw_comment"}
    | {"wfw_commentrss"}
)
CAN_CONTAIN_RELATIVE_URIS = frozenset(
    {"content", "copyright", "description", "info", "rights", "subtitle", "summary"}
    | {"tagline", "title"}
)
_HTML_TYPES = frozenset({"application/xhtml+xml", "text/html"})

#: feedparser's ``FeedParserDict.keymap`` as used when storing a key.
_SET_KEYMAP = {
    "channel": "feed",
    "items": "entries",
    "guid": "id",
    "date": "updated",
    "date_parsed": "updated_parsed",
    "description": "summary",
    "description_detail": "summary_detail",
    "url": "href",
    "modified": "updated",
    "modified_parsed": "updated_parsed",
    "issued": "published",
    "issued_parsed": "published_parsed",
    "copyright": "rights",
    "copyright_detail": "rights_detail",
    "tagline": "subtitle",
    "tagline_detail": "subtitle_detail",
}

#: feedparser's ``_HTMLSanitizer.acceptable_elements`` (for ``looks_like_html``).
ACCEPTABLE_ELEMENTS = frozenset(
    [
        "a",
        "abbr",
        "acronym",
        "address",
        "area",
        "article",
        "aside",
        "audio",
        "b",
        "big",
        "blockquote",
        "br",
        "button",
        "canvas",
        "caption",
        "center",
        "cite",
        "code",
        "col",
        "colgroup",
        "command",
        "datagrid",
        "datalist",
        "dd",
        "del",
        "details",
        "dfn",
        "dialog",
        "dir",
        "div",
        "dl",
        "dt",
        "em",
        "event-source",
        "fieldset",
        "figcaption",
        "figure",
        "font",
        "footer",
        "form",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "header",
        "hr",
        "i",
        "img",
        "input",
        "ins",
        "kbd",
        "keygen",
        "label",
        "legend",
        "li",
        "m",
        "map",
        "menu",
        "meter",
        "multicol",
        "nav",
        "nextid",
        "noscript",
        "ol",
        "optgroup",
        "option",
        "output",
        "p",
        "pre",
        "progress",
        "q",
        "s",
        "samp",
        "section",
        "select",
        "small",
        "sound",
        "source",
        "spacer",
        "span",
        "strike",
        "strong",
        "sub",
        "sup",
        "table",
        "tbody",
        "td",
        "textarea",
        "tfoot",
        "th",
        "thead",
        "time",
        "tr",
        "tt",
        "u",
        "ul",
        "var",
        "video",
    ]
)

#: feedparser's ``_BaseHTMLProcessor.elements_no_end_tag``.
ELEMENTS_NO_END_TAG = frozenset(
    [
        "area",
        "base",
        "basefont",
        "br",
        "col",
        "command",
        "embed",
        "frame",
        "hr",
        "img",
        "input",
        "isindex",
        "keygen",
        "link",
        "meta",
        "param",
        "source",
        "track",
        "wbr",
    ]
)

#: feedparser's ``html._cp1252``: C1 controls read as the windows-1252 characters.
CP1252: dict[int, str] = {
    128: "\u20ac",
    130: "\u201a",
    131: "\u0192",
    132: "\u201e",
    133: "\u2026",
    134: "\u2020",
    135: "\u2021",
    136: "\u02c6",
    137: "\u2030",
    138: "\u0160",
    139: "\u2039",
    140: "\u0152",
    142: "\u017d",
    145: "\u2018",
    146: "\u2019",
    147: "\u201c",
    148: "\u201d",
    149: "\u2022",
    150: "\u2013",
    151: "\u2014",
    152: "\u02dc",
    153: "\u2122",
    154: "\u0161",
    155: "\u203a",
    156: "\u0153",
    158: "\u017e",
    159: "\u0178",
}

#: feedparser's ``urls.ACCEPTABLE_URI_SCHEMES``.
ACCEPTABLE_URI_SCHEMES = frozenset(
    [
        "file",
        "ftp",
        "gopher",
        "h323",
        "hdl",
        "http",
        "https",
        "imap",
        "magnet",
        "mailto",
        "mms",
        "news",
        "nntp",
        "prospero",
        "rsync",
        "rtsp",
        "rtspu",
        "sftp",
        "shttp",
        "sip",
        "sips",
        "snews",
        "svn",
        "svn+ssh",
        "telnet",
        "wais",
        "aim",
        "callto",
        "cvs",
        "facetime",
        "feed",
        "git",
        "gtalk",
        "irc",
        "ircs",
        "irc6",
        "itms",
        "mms",
        "msnim",
        "skype",
        "ssh",
        "smb",
        "svn",
        "ymsg",
    ]
)

# html.entities.entitydefs keys, for looks_like_html.
from html.entities import entitydefs as _ENTITYDEFS  # noqa: E402

#: The C1 controls (U+0080 to U+009F).
_C1_CHARS = tuple(map(chr, range(0x80, 0xA0)))
_URIFIXER_RE = re.compile("^([A-Za-z][A-Za-z0-9+-.]*://)(/*)(.*?)")
#: A scheme, read as urllib's ``urlsplit`` does (ASCII letter first, up to the first ":").
_OPAQUE_URI_RE = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*):")
#: ``https?://[^\s/?#;\\\[\]@%]+(?:/[^\s?#;\\\[\]]*)?(?:\?[^\s#\\\[\]]+)?(?:#[^\s\\\[\]]+)?\Z``
#: for ASCII text (the only text it is matched against): ``\s`` spelt out as
#: the ASCII whitespace, so that each class is one bitmap, and possessive
#: quantifiers (no class can start what follows it, so giving back never helps).
_ASCII_SPACE = "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f "
_PLAIN_URL_RE = re.compile(
    rf"https?://[^{_ASCII_SPACE}/?#;\\\[\]@%]++(?:/[^{_ASCII_SPACE}?#;\\\[\]]*+)?"
    rf"(?:\?[^{_ASCII_SPACE}#\\\[\]]++)?(?:#[^{_ASCII_SPACE}\\\[\]]++)?\Z"
)
_AMP_REF_RE = re.compile("&([A-Za-z0-9_]+);")
_CLOSE_TAG_RE = re.compile(r"</(\w+)>")
_ENTITY_LIKE_RE = re.compile(r"&#?\w+;")
_TAG_NAME_RE = re.compile(r"</?(\w+)")
_ENTITY_NAME_RE = re.compile(r"&(\w+);")
_EMAIL_RE = re.compile(
    r"""(([a-zA-Z0-9\_\-\.\+]+)@((\[[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.)|(([a-zA-Z0-9\-]+\.)+))([a-zA-Z]{2,4}|[0-9]{1,3})(\]?))(\?subject=\S+)?"""
)

_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"


# --------------------------------------------------------------------------- helpers (feedparser's)


def urljoin(base: str, uri: str) -> str:
    """feedparser's ``urls._urljoin``."""
    if base and uri.isascii() and _PLAIN_URL_RE.match(uri):
        # urljoin gives a plain absolute http(s) URL back as it is.
        return uri
    if "://" in uri:
        uri = _URIFIXER_RE.sub(r"\1\3", uri)
    elif (
        (opaque := _OPAQUE_URI_RE.match(uri)) is not None
        and opaque.group(1).lower() not in urllib.parse.uses_relative
        and "\t" not in uri
        and "\r" not in uri
        and "\n" not in uri
        and (not base or _parses(base))
    ):
        # urllib's urljoin gives back as it is a URL whose scheme (read before
        # the first ":", no "//" after it, nothing for urlsplit to remove) is
        # not one of the relative ones: "tag:", "urn:", "mailto:"...
        return uri
    try:
        return urllib.parse.urljoin(base, uri)
    except ValueError:
        return ""


@functools.lru_cache(maxsize=256)
def _parses(url: str) -> bool:
    """Whether urllib's ``urlparse`` reads ``url`` without a ValueError."""
    try:
        urllib.parse.urlparse(url)
    except ValueError:
        return False
    return True


def make_safe_absolute_uri(base: str, rel: str | None = None) -> str:
    """feedparser's ``urls.make_safe_absolute_uri``."""
    if not base:
        return rel or ""
    if not rel:
        try:
            scheme = urllib.parse.urlparse(base)[0]
        except ValueError:
            return ""
        if not scheme or scheme in ACCEPTABLE_URI_SCHEMES:
            return base
        return ""
    if rel.isascii() and _PLAIN_URL_RE.match(rel):
        # What urljoin gives back as it is, and its scheme is http(s).
        return rel
    uri = urljoin(base, rel)
    if uri.strip().split(":", 1)[0] not in ACCEPTABLE_URI_SCHEMES:
        return ""
    return uri


def looks_like_html(text: str) -> bool:
    """feedparser's ``_FeedParserMixin.looks_like_html``."""
    if "&" not in text and "</" not in text:
        return False
    if not (_CLOSE_TAG_RE.search(text) or _ENTITY_LIKE_RE.search(text)):
        return False
    if any(t.lower() not in ACCEPTABLE_ELEMENTS for t in _TAG_NAME_RE.findall(text)):
        return False
    return all(e in _ENTITYDEFS for e in _ENTITY_NAME_RE.findall(text))


def map_content_type(content_type: str) -> str:
    content_type = content_type.lower()
    if content_type in ("text", "plain"):
        return "text/plain"
    if content_type == "html":
        return "text/html"
    if content_type == "xhtml":
        return "application/xhtml+xml"
    return content_type


def _fix_text(text: str) -> str:
    """The last two steps of feedparser's ``pop``: UTF-8 read as latin-1, and C1 as cp1252."""
    if text.isascii():
        return text
    with contextlib.suppress(UnicodeEncodeError, UnicodeDecodeError):
        text = text.encode("iso-8859-1").decode("utf-8")
    # 32 substring scans cost a fifth of one search for the character class.
    if any(c1 in text for c1 in _C1_CHARS):
        text = text.translate(CP1252)
    return text


# --------------------------------------------------------------------------- feedparser's HTML pass

# feedparser runs every HTML value through an sgmllib re-serialiser (its
# relative-URI resolver). After the sanitiser, what survives of that pass is
# the attributes of the few elements the sanitiser keeps (sorted, de-duplicated
# keeping the last, URLs resolved) and its reading of a few malformed
# constructs. ``html_pass`` redoes the first with regular expressions and
# reports the second as "risky" (None): then feedparser's own pass runs.

from html.entities import html5 as _HTML5  # noqa: E402
from html.entities import name2codepoint as _NAME2CODEPOINT  # noqa: E402

_LEGACY_ENTITIES = frozenset(k for k in _HTML5 if not k.endswith(";"))
_KNOWN_ENTITIES = frozenset(_NAME2CODEPOINT) | {"apos"}
_SURVIVING_TAGS = frozenset({"a", "img", "abbr", "ol", "td", "th", "time"})
#: feedparser's ``RelativeURIResolver.relative_uris`` for those tags.
_RELATIVE_URI_ATTRS = frozenset({("a", "href"), ("img", "longdesc"), ("img", "src")})
_RELATIVE_URI_ATTRS |= {("img", "usemap")}

_DECL_RE = re.compile(r"<!((?!DOCTYPE|--|\[))", re.IGNORECASE)
_SHORTTAG_RE = re.compile(r"<([^<>\s]+?)\s*/>")
# Where sgmllib and an HTML parser may read the markup differently: at a "<",
# one of the risky constructs, or a "<" + letter that does not open a strict
# start tag (a plain name, attributes that sgmllib's ``attrfind`` takes whole,
# quoted values closed and holding no "<" + letter, then ">"). One search over
# the "<"s of the text; a quoted value holding "<" + letter would hide a tag
# inside another from a left-to-right tag scan.
_QUOTED_2 = r'"[^"<]*+(?:<(?![a-zA-Z])[^"<]*+)*+"'
_QUOTED_1 = r"'[^'<]*+(?:<(?![a-zA-Z])[^'<]*+)*+'"
_MARKUP_CHECK_RE = re.compile(
    r"<(?:(?i:>|\?|!(?!--)|!---?>|/(?![a-zA-Z])|/br|xmp|noembed|noframes|plaintext"
    r"|/[a-zA-Z][^<>]*+(?:<|$))"
    r"|(?=[a-zA-Z])(?![a-zA-Z][-_.:a-zA-Z0-9]*+"
    r"(?:\s++[a-zA-Z_][-:.a-zA-Z_0-9]*+"
    r"(?:\s*+=\s*+(?:"
    + _QUOTED_2
    + "|"
    + _QUOTED_1
    + r"|[\][\-a-zA-Z0-9./,:;+*%?!&$()_#=~@]++))?)*+"
    r"\s*+/?>))"
)
_RISKY_CHARREF_RE = re.compile(r"&#(?![0-9]+;|[xX][0-9a-fA-F]+;)", re.IGNORECASE)
_ENTITY_REF_RE = re.compile(r"&([a-zA-Z][-.a-zA-Z0-9]*)(;?)")
# "image" too: an HTML parser reads it as "img".
# (The lookahead only skips the "<"s no name can follow, faster; IGNORECASE
# makes it take what the names' first letters take, the dotted and dotless i too.)
_SURVIVOR_OPEN_RE = re.compile(
    r"<(?=[aiot])(a|img|image|abbr|ol|td|th|time)(?=[\s/>])", re.IGNORECASE
)
# sgmllib's ``attrfind`` and feedparser's ``endbracket``.
_ATTRFIND_RE = re.compile(
    r"\s*([a-zA-Z_][-:.a-zA-Z_0-9]*)[$]?(\s*=\s*"
    r"""('[^']*'|"[^"]*"|[][\-a-zA-Z0-9./,:;+*%?!&$\(\)_#=~'"@]*))?"""
)
_ENDBRACKET_RE = re.compile(
    r"("
    r"""[^'"<>]"""
    r"""|"[^"]*"(?=>|/|\s|\w+=)"""
    r"""|'[^']*'(?=>|/|\s|\w+=))*(?=[<>])"""
    r"""|.*?(?=[<>]"""
    r")"
)
# What ``_ENDBRACKET_RE``'s first branch reads, without a group per character:
# the branch can only follow one path (a quote starts a quoted value or ends
# it), so matching it possessively finds the same end, which is ``end(1)``
# when at least one character was read.
_ENDBRACKET_FAST_RE = re.compile(
    r"""(?:[^'"<>]++|"[^"]*+"(?=>|/|\s|\w+=)|'[^']*+'(?=>|/|\s|\w+=))*+(?=[<>])"""
)
# ``<a href="...">`` exactly, the survivor most HTML holds.
_SIMPLE_LINK_RE = re.compile(r'<a href="([^"]*)">')
_TAGFIND_RE = re.compile(r"[a-zA-Z][-_.:a-zA-Z0-9]*")
_SPECIAL_RE = re.compile(r'[<>"&]')
_BARE_AMPERSAND_RE = re.compile(r"&(?!#\d+;|#x[0-9a-fA-F]+;|\w+;)")
_ENTITY_IN_ATTR_RE = re.compile(r"&(?:([a-zA-Z][-.a-zA-Z0-9]*)|#([0-9]+))(;?)")


def _shorttag(match: re.Match[str]) -> str:
    tag = match.group(1)
    if tag in ELEMENTS_NO_END_TAG:
        return "<" + tag + " />"
    return "<" + tag + "></" + tag + ">"


def _entity_risky(html: str) -> bool:
    n = len(html)
    for match in _ENTITY_REF_RE.finditer(html):
        name, semicolon = match.groups()
        if semicolon:
            if name not in _KNOWN_ENTITIES:
                return True
            continue
        end = match.end()
        if end == n:
            return True
        if name in _LEGACY_ENTITIES:
            continue
        if name in _KNOWN_ENTITIES:
            return True
        # A legacy entity the HTML parser would read as a prefix of the name.
        for cut in range(2, min(len(name), 7)):
            if name[:cut] in _LEGACY_ENTITIES:
                return True
    return False


def html_pass(html: str, base: str) -> str | None:
    """What feedparser's HTML pass makes of ``html`` as far as the sanitiser keeps it.

    None when the HTML holds a construct this emulation does not vouch for.
    """
    # Each rewrite and check runs only when the text holds the literal its
    # pattern starts with (a substring test is far cheaper than a regex scan).
    if "<" not in html:
        if "&" not in html:
            return html
        # No markup: only the character references matter.
        if "&#" in html:
            html = html.replace("&#39;", "'").replace("&#34;", '"')
            if _RISKY_CHARREF_RE.search(html):
                return None
        if "&" in html and _entity_risky(html):
            return None
        return html
    # (A one-character scan first: far cheaper, and "!" and "&" are rare in HTML.)
    bang = "!" in html and "<!" in html
    if bang:
        html = _DECL_RE.sub(r"&lt;!\1", html)
    if "/>" in html:
        html = _SHORTTAG_RE.sub(_shorttag, html)
    charref = "&" in html and "&#" in html
    if charref:
        html = html.replace("&#39;", "'").replace("&#34;", '"')
    if _MARKUP_CHECK_RE.search(html):
        return None
    if "&" in html:
        if charref and _RISKY_CHARREF_RE.search(html):
            return None
        if _entity_risky(html):
            return None
    # (Neither rewrite above makes a "<!" of its own.)
    if bang and "<!--" in html and html.count("<!--") > html.count("-->"):
        return None
    out: list[str] = []
    last = 0
    _resolved: dict[str, str] = {}
    for match in _SURVIVOR_OPEN_RE.finditer(html):
        start = match.start()
        simple = _SIMPLE_LINK_RE.match(html, start)
        if simple is not None:
            # The most common survivor, read in one go: what the general
            # reading below makes of it (one attribute, its quotes dropped).
            out.append(html[last:start])
            out.append(f"<a{_html_attr('href', simple.group(1), True, base, _resolved)}>")
            last = simple.end()
            continue
        fast_end = _ENDBRACKET_FAST_RE.match(html, start + 1)
        if fast_end is not None and fast_end.end() > start + 1:
            j = fast_end.end()
        else:
            end_match = _ENDBRACKET_RE.match(html, start + 1)
            if end_match is None:
                return None
            j = end_match.end(1)
        if j >= len(html) or html[j] != ">":
            return None
        tag_match = _TAGFIND_RE.match(html, start + 1)
        if tag_match is None:
            return None
        tag = html[start + 1 : tag_match.end()].lower()
        k = tag_match.end()
        attrs: dict[str, str] = {}
        while k < j:
            attr = _ATTRFIND_RE.match(html, k)
            if not attr:
                break
            name, rest, value = attr.groups()
            if not rest:
                value = name
            elif value[:1] == "'" == value[-1:] or value[:1] == '"' == value[-1:]:
                value = value[1:-1]
            attrs[name.lower()] = value
            if attr.end() == k:
                break
            k = attr.end()
        # Sorted by name alone: the names are unique.
        parts = [
            _html_attr(key, attrs[key], (tag, key) in _RELATIVE_URI_ATTRS, base, _resolved)
            for key in sorted(attrs)
        ]
        out.append(html[last:start])
        slash = " /" if tag in ELEMENTS_NO_END_TAG else ""
        out.append(f"<{tag}{''.join(parts)}{slash}>")
        last = j + 1
    if not out:
        return html
    out.append(html[last:])
    return "".join(out)


def _html_attr(key: str, value: str, is_uri: bool, base: str, resolved: dict[str, str]) -> str:
    """`` key="value"`` as feedparser's HTML pass writes an attribute of a surviving element.

    ``value`` is as written (its quotes dropped); ``is_uri``: a URL feedparser
    resolves against ``base``; ``resolved`` memoises that resolution.
    """
    if "&#" in value:
        # Only numeric references change (";" added): named ones come back as they were.
        value = _ENTITY_IN_ATTR_RE.sub(_entity_in_attr, value)
    if value and key in ("rel", "type"):
        value = value.lower()
    if is_uri:
        absolute = resolved.get(value)
        if absolute is None:
            absolute = resolved[value] = make_safe_absolute_uri(base, value.strip())
        # feedparser keeps the value when the resolved URL is unsafe ("").
        value = absolute or value
    if _SPECIAL_RE.search(value):
        value = value.replace(">", "&gt;").replace("<", "&lt;").replace('"', "&quot;")
        value = _BARE_AMPERSAND_RE.sub("&amp;", value)
    return f' {key}="{value}"'


def _entity_in_attr(match: re.Match[str]) -> str:
    if match.group(2):
        return f"&#{match.group(2)};"
    if match.group(3):
        return f"&{match.group(1)};"
    return f"&{match.group(1)}"


# --------------------------------------------------------------------------- result


@dataclass(slots=True)
class FastFeed:
    """What feedparser would have returned, in its own key names (the keys ``parse`` reads)."""

    version: str
    feed: Record
    entries: list[Record]


class _Decline(Exception):
    """Not a document this path can vouch for: feedparser takes it."""


_PARSER_OPTIONS: dict[str, Any] = {
    "recover": False,
    "resolve_entities": False,
    "no_network": True,
    "load_dtd": False,
    "huge_tree": False,
}

ResolveHtml = Callable[[str, str, str], str]

#: Bytes handed to lxml at a time.
_FEED_PIECE = 1 << 20


def parse_fast(
    data: bytes, *, base: str, language: str | None, resolve_html: ResolveHtml
) -> FastFeed | None:
    """feedparser's result for ``data``, or None to decline.

    Args:
        data: The document as feedparser's SAX parser would read it (UTF-8, the
            XML declaration rewritten, the DOCTYPE removed).
        base: feedparser's base URI (the document URL).
        language: The Content-Language header, if any.
        resolve_html: feedparser's relative-URI resolver for HTML
            ``(html, base, content type) -> html``; called only for content under
            an xml:base other than the document URL that holds a relative URL.
    """
    try:
        parser = etree.XMLPullParser(events=("start-ns",), **_PARSER_OPTIONS)
        # In pieces: libxml2 refuses more than 10,000,000 bytes in one push
        # ("Buffer size limit exceeded") unless huge_tree lifts its other limits too.
        for start in range(0, len(data), _FEED_PIECE):
            parser.feed(data[start : start + _FEED_PIECE])
        root = parser.close()
        if len(parser.error_log):
            return None
        declarations = [event[1] for event in parser.read_events()]
        return _Walker(base, language, resolve_html).run(root, declarations)
    except (_Decline, etree.LxmlError, RecursionError):
        return None


# --------------------------------------------------------------------------- the walker

#: What the walk needs to know of an element name, worked out once per name:
#: (handler key, feedparser tag, unprefixed, handler, flags). ``flags``:
#: ``_RESETS_TEXTINPUT`` and ``_RESETS_IMAGE`` (the element ends feedparser's
#: textinput or image context), ``_IS_ROOT_NAME`` (its tag is "feed" or "rss",
#: whose xml:lang becomes the feed's language).
_Info = tuple[str, str, bool, "Handler", int]
_RESETS_TEXTINPUT = 1
_RESETS_IMAGE = 2
_IS_ROOT_NAME = 4
#: Its handler is ``_h_container``: empty and without attributes, the element
#: changes nothing but the contexts it ends.
_IS_CONTAINER = 8


class _Walker:
    __slots__ = (
        "author_context",
        "base",
        "base_memo",
        "depth",
        "depth_map",
        "doc_base",
        "entries",
        "entry",
        "feed",
        "guidislink",
        "has_content",
        "image",
        "inauthor",
        "incontributor",
        "inentry",
        "infeed",
        "inimage",
        "inpublisher",
        "insource",
        "intextinput",
        "is_atom",
        "is_atom10",
        "lang",
        "names",
        "namespacemap",
        "namespaces_in_use",
        "resolve_html",
        "source",
        "summary_key",
        "title_depth",
        "version",
    )

    def __init__(self, base: str, language: str | None, resolve_html: ResolveHtml) -> None:
        self.doc_base = base
        self.base = base
        self.base_memo: dict[str, str] = {}
        self.lang = language
        self.resolve_html = resolve_html
        self.feed: Record = {}
        if language:
            self.feed["language"] = language.replace("_", "-")
        self.entries: list[Record] = []
        self.entry: Record = {}
        self.depth_map: dict[str, int] = {}
        self.source: Record = {}
        self.depth = 0
        self.infeed = self.inentry = self.insource = False
        self.inimage = self.intextinput = False
        self.inauthor = self.incontributor = self.inpublisher = False
        self.has_content = False
        self.guidislink = False
        self.summary_key: str | None = None
        self.title_depth = -1
        self.version = ""
        self.is_atom = self.is_atom10 = False
        self.names: dict[str, _Info] = {}
        self.namespacemap: dict[str | None, str] = {}
        self.namespaces_in_use: dict[str, str] = {}

    # ------------------------------------------------------------------ setup

    def run(self, root: Any, declarations: list[tuple[str, str]]) -> FastFeed:
        self._namespaces(declarations)
        key = self._name(root.tag)[0]
        version = self.version
        if key == "rss":
            if not version.startswith("rss"):
                attrs = self._attrs(root, root.items())
                attr_version = attrs.get("version", "")
                version = _RSS_VERSIONS.get(attr_version) or (
                    "rss20" if attr_version.startswith("2.") else "rss"
                )
        elif key == "rdf_rdf":
            if version not in ("rss10", "rss090"):
                raise _Decline
        elif key == "feed":
            if version != "atom10":
                raise _Decline
        else:
            raise _Decline
        self.version = version
        self.is_atom = version.startswith("atom")
        self.is_atom10 = version == "atom10"
        self._element(root, root.tag)
        return FastFeed(version=version, feed=self.feed, entries=self.entries)

    def _namespaces(self, declarations: list[tuple[str, str]]) -> None:
        """feedparser's ``track_namespace`` over every declaration, in document order."""
        seen: dict[str, str] = {}
        defaults: set[str] = set()
        prefixed: set[str] = set()
        for raw_prefix, uri in declarations:
            if not uri:
                continue
            prefix = raw_prefix or None
            lower = uri.lower()
            if not self.version:
                if prefix is None and lower == _NS_NETSCAPE:
                    self.version = "rss090"
                elif lower == _NS_RSS10:
                    self.version = "rss10"
                elif lower == _NS_ATOM:
                    self.version = "atom10"
            if _USERLAND in lower:
                uri = lower = "http://backend.userland.com/rss"
            canonical = NAMESPACES.get(lower)
            if canonical is not None:
                if prefix is not None:
                    if self.namespacemap.get(prefix, canonical) != canonical:
                        raise _Decline
                    if prefix != canonical and prefix in _CANONICAL_PREFIXES:
                        raise _Decline
                self.namespacemap[prefix] = canonical
                key = canonical
            else:
                key = prefix or ""
                (defaults if prefix is None else prefixed).add(uri)
            if key and seen.setdefault(key, uri) != uri:
                # A name bound to two URIs: which one feedparser sees depends on when.
                raise _Decline
            self.namespaces_in_use[key] = uri
        if defaults & prefixed:
            raise _Decline

    def _name(self, tag: str) -> _Info:
        """feedparser's name for an element (``startElementNS`` and ``unknown_starttag``)."""
        info = self.names.get(tag)
        if info is not None:
            return info
        if tag[:1] == "{":
            namespace, _, local = tag[1:].partition("}")
        else:
            namespace, local = "", tag
        lower = namespace.lower()
        if _USERLAND in lower:
            namespace = lower = "http://backend.userland.com/rss"
        prefix = NAMESPACES.get(lower)
        localname = local.lower()
        if prefix:
            localname = prefix.lower() + ":" + localname
        elif prefix is None and namespace:
            for name, value in self.namespaces_in_use.items():
                if name and value == namespace:
                    localname = name + ":" + localname
                    break
        localname = localname.lower()
        if ":" in localname:
            doc_prefix, suffix = localname.split(":", 1)
        else:
            doc_prefix, suffix = "", localname
        canonical = self.namespacemap.get(doc_prefix, doc_prefix)
        key = canonical + "_" + suffix if canonical else suffix
        unprefixed = not canonical
        flags = 0
        if unprefixed:
            if key not in ("title", "link", "description", "name"):
                flags |= _RESETS_TEXTINPUT
            if key not in ("title", "link", "description", "url", "href", "width", "height"):
                flags |= _RESETS_IMAGE
        if localname in ("feed", "rss"):
            flags |= _IS_ROOT_NAME
        handler = _handler(key)
        if handler is _h_container and not flags & _IS_ROOT_NAME:
            flags |= _IS_CONTAINER
        info = (key, localname, unprefixed, handler, flags)
        self.names[tag] = info
        return info

    @staticmethod
    def _attrs(el: Any, items: list[tuple[str, str]]) -> dict[str, str]:
        """feedparser's ``attrs_d`` for an element (names lower-cased, rel and type values too).

        ``items`` is ``el.items()``.
        """
        if len(items) == 1:
            # One attribute, not namespaced (the common case): filed once.
            only_name, only_value = items[0]
            if only_name[:1] != "{":
                only_name = only_name.lower()
                if only_value and only_name in ("rel", "type"):
                    only_value = only_value.lower()
                return {only_name: only_value}
        attrs: dict[str, str]
        for name, _ in items:
            if name[:1] == "{":
                break
        else:
            # No namespaced attribute: every name is filed once, as written.
            attrs = {name.lower(): value for name, value in items}
            for key in ("rel", "type"):
                value = attrs.get(key)
                if value:
                    attrs[key] = value.lower()
            return attrs
        attrs = {}
        qnames: list[tuple[str, str]] = []
        in_scope: dict[str, str] | None = None
        for name, value in items:
            if name[:1] == "{":
                namespace, _, local = name[1:].partition("}")
                prefix = NAMESPACES.get(namespace.lower(), "")
                attrs[(prefix + ":" + local if prefix else local).lower()] = value
                # feedparser also files every attribute under its name as written
                # (expat's qname), whatever its namespace: "rdf:about" with a
                # misspelt RDF namespace is still "rdf:about".
                if namespace == _XML_NAMESPACE:
                    written = "xml"
                else:
                    if in_scope is None:
                        in_scope = {uri: p for p, uri in el.nsmap.items() if p}
                    written = in_scope.get(namespace, "")
                qnames.append((written + ":" + local if written else local, value))
            else:
                attrs[name.lower()] = value
                qnames.append((name, value))
        for name, value in qnames:
            attrs[name.lower()] = value
        for key in ("rel", "type"):
            value = attrs.get(key)
            if value:
                attrs[key] = value.lower()
        return attrs

    # ------------------------------------------------------------------ the walk

    def _children(self, el: Any) -> None:
        for child in el:
            tag = child.tag
            if tag.__class__ is str:
                self._element(child, tag)

    def _element(self, el: Any, tag: str) -> None:
        """One element (``tag`` is ``el.tag``): feedparser's start, its handler, its end."""
        info = self.names.get(tag)
        if info is None:
            info = self._name(tag)
        flags = info[4]
        items = el.items()
        if flags & _IS_CONTAINER and not items and not len(el):
            if flags & _RESETS_TEXTINPUT:
                self.intextinput = False
            if flags & _RESETS_IMAGE:
                self.inimage = False
            return
        self.depth += 1
        old_base = self.base
        old_lang = self.lang
        if items:
            attrs = self._attrs(el, items)
            base_attr = attrs.get("xml:base", attrs.get("base"))
            if base_attr:
                if "xml:base" not in attrs:
                    raise _Decline
                self.base = make_safe_absolute_uri(old_base, base_attr) or old_base
            else:
                self.base = self._same_base()
            lang = attrs.get("xml:lang", attrs.get("lang"))
            if lang == "":
                lang = None
            elif lang is None:
                lang = old_lang
            if lang and flags & _IS_ROOT_NAME:
                self.feed["language"] = lang.replace("_", "-")
            self.lang = lang
        else:
            attrs = _NO_ATTRS
            base = self.base_memo.get(old_base)
            self.base = self._same_base() if base is None else base
            # No xml:lang: the language in scope stays.
            if old_lang and flags & _IS_ROOT_NAME:
                self.feed["language"] = old_lang.replace("_", "-")
        if flags & _RESETS_TEXTINPUT:
            self.intextinput = False
        if flags & _RESETS_IMAGE:
            self.inimage = False
        info[3](self, el, attrs)
        self.base = old_base
        self.lang = old_lang
        self.depth -= 1

    def _same_base(self) -> str:
        base = self.base
        memo = self.base_memo.get(base)
        if memo is None:
            memo = self.base_memo[base] = make_safe_absolute_uri(base, base) or base
        return memo

    # ------------------------------------------------------------------ feedparser's machinery

    def _context(self) -> Record:
        if self.insource:
            return self.source
        if self.inimage and "image" in self.feed:
            image: Record = self.feed["image"]
            return image
        if self.intextinput:
            textinput = self.feed.get("textinput")
            if textinput is None:
                raise _Decline
            return textinput  # type: ignore[no-any-return]
        if self.inentry:
            return self.entry
        return self.feed

    def _text(self, el: Any) -> str:
        """The character data of a text element; declines if it has child elements."""
        if not len(el):
            return el.text or ""
        parts = [el.text or ""]
        for child in el:
            if child.tag.__class__ is str:
                raise _Decline
            parts.append(child.tail or "")
        return "".join(parts)

    def _pop(self, element: str, text: str, expecting: bool, detail: Record | None) -> str:
        """feedparser's ``pop``, from the character data of the element on."""
        output = text.strip()
        if not expecting:
            return output
        if output and element in CAN_BE_RELATIVE_URI and (element != "id" or self.guidislink):
            output = urljoin(self.base or "", output)
        if detail is not None:
            # (A detail's type is mapped already: ``map_content_type`` of it is itself.)
            content_type = detail["type"]
            if content_type == "text/plain" and not self.is_atom and looks_like_html(output):
                detail["type"] = content_type = "text/html"
            if content_type in _HTML_TYPES and element in CAN_CONTAIN_RELATIVE_URIS:
                passed = html_pass(output, self.base)
                if passed is None:
                    passed = self.resolve_html(output, self.base, content_type)
                output = passed
        if not output.isascii():
            output = _fix_text(output)
        if element in ("category", "tags", "itunes_keywords"):
            return output
        if element == "title" and -1 < self.title_depth <= self.depth:
            return output
        if self.inentry and not self.insource:
            entry = self.entry
            if element == "content":
                if detail is None:
                    raise _Decline
                entry.setdefault("content", []).append({**detail, "value": output})
            elif element == "link":
                if not self.inimage:
                    if "&" in output:
                        output = _AMP_REF_RE.sub(r"&\g<1>", output.replace("&amp;", "&"))
                    entry["link"] = output
            else:
                if element == "description":
                    element = "summary"
                old_depth = self.depth_map.get(element)
                if old_depth is None or self.depth <= old_depth:
                    self.depth_map[element] = self.depth
                    entry[_SET_KEYMAP.get(element, element)] = output
                if detail is not None:
                    detail_key = element + "_detail"
                    entry[_SET_KEYMAP.get(detail_key, detail_key)] = {**detail, "value": output}
        elif self.infeed or self.insource:
            context = self._context()
            if element == "description":
                element = "subtitle"
            context[_SET_KEYMAP.get(element, element)] = output
            if element == "link":
                if "&" in output:
                    output = _AMP_REF_RE.sub(r"&\g<1>", output)
                context["link"] = output
            elif detail is not None:
                detail_key = element + "_detail"
                context[_SET_KEYMAP.get(detail_key, detail_key)] = {**detail, "value": output}
        return output

    def _content_value(self, el: Any, detail: Record) -> str:
        """The character data of a text construct (title, summary, content...)."""
        xhtml = detail["type"] == "application/xhtml+xml"
        if not len(el):
            text = el.text or ""
            return _xml_escape(text) if xhtml else text
        if not xhtml:
            parts = [el.text or ""]
            for child in el:
                if child.tag.__class__ is str:
                    # feedparser turns the construct into inline xhtml: not ported.
                    raise _Decline
                parts.append(child.tail or "")
            return "".join(parts)
        pieces: list[str] = []
        self._xhtml_children(el, pieces)
        if self.is_atom10:
            while pieces and len(pieces) > 1 and not pieces[-1].strip():
                del pieces[-1]
            while pieces and len(pieces) > 1 and not pieces[0].strip():
                del pieces[0]
            if (
                pieces
                and (pieces[0] == "<div>" or pieces[0].startswith("<div "))
                and pieces[-1] == "</div>"
            ):
                depth = 0
                for piece in pieces[:-1]:
                    if piece.startswith("</"):
                        depth -= 1
                        if depth == 0:
                            break
                    elif piece.startswith("<") and not piece.endswith("/>"):
                        depth += 1
                else:
                    pieces = pieces[1:-1]
        # feedparser's HTML pass drops the end tags of void elements; the
        # sanitiser would read "</br>" as a second line break.
        return "".join(p for p in pieces if p not in _VOID_END_TAGS)

    def _xhtml_children(self, el: Any, pieces: list[str]) -> None:
        text = el.text
        if text:
            pieces.append(_xml_escape(text))
        for child in el:
            if child.tag.__class__ is str:
                self._xhtml_element(child, pieces)
            tail = child.tail
            if tail:
                pieces.append(_xml_escape(tail))

    def _xhtml_element(self, el: Any, pieces: list[str]) -> None:
        tag_name = el.tag
        info = self.names.get(tag_name)
        if info is None:
            info = self._name(tag_name)
        key, tag = info[0], info[1]
        if key in END_HANDLERS:
            raise _Decline
        local = tag.rsplit(":", 1)[-1] if ":" in tag else tag
        if local in ("svg", "math") or not local.isascii():
            # A non-ASCII element name is text to feedparser's HTML pass, which
            # then writes it back its own way (``<ˆmg .../>``): not ported.
            raise _Decline
        items = el.items()
        attrs = self._attrs(el, items) if items else _NO_ATTRS
        if "xml:base" in attrs or "base" in attrs:
            raise _Decline
        strattrs = "".join(
            f' {k}="{_xml_escape(v, {chr(34): "&quot;"})}"' for k, v in attrs.items()
        )
        pieces.append(f"<{local}{strattrs}>")
        self._xhtml_children(el, pieces)
        pieces.append(f"</{local}>")

    def _push_content_detail(self, attrs: dict[str, str], default_type: str) -> Record:
        """A content detail; ``default_type`` is a mapped, text or XML, content type."""
        if self.lang:
            self.lang = self.lang.replace("_", "-")
        if not attrs:
            return {"type": default_type, "language": self.lang, "base": self.base}
        content_type = map_content_type(attrs.get("type", default_type))
        if attrs.get("mode", "") == "base64" or not (
            content_type.startswith("text/") or content_type.endswith(("+xml", "/xml"))
        ):
            raise _Decline
        return {"type": content_type, "language": self.lang, "base": self.base}

    def _text_construct(
        self, el: Any, attrs: dict[str, str], element: str, default_type: str, expecting: bool
    ) -> str:
        """``push_content`` ... ``pop_content`` of a leaf text construct."""
        detail = self._push_content_detail(attrs, default_type)
        return self._pop(element, self._content_value(el, detail), expecting, detail)

    # ------------------------------------------------------------------ authors

    def _sync_author_detail(self) -> None:
        context = self._context()
        authors = context.get("authors")
        detail: Record = authors[-1] if authors else {}
        if detail:
            name = detail.get("name")
            email = detail.get("email")
            if name and email:
                context["author"] = f"{name} ({email})"
            elif name:
                context["author"] = name
            elif email:
                context["author"] = email
            return
        author = context.get("author")
        email = None
        if not author:
            return
        match = _EMAIL_RE.search(author) if "@" in author else None
        if match:
            email = match.group(0)
            author = author.replace(email, "")
            author = author.replace("()", "")
            author = author.replace("<>", "")
            author = author.replace("&lt;&gt;", "")
            author = author.strip()
            if author and author[0] == "(":
                author = author[1:]
            if author and author[-1] == ")":
                author = author[:-1]
            author = author.strip()
        if author or email:
            context.setdefault("author_detail", detail)
        if author:
            detail["name"] = author
        if email:
            detail["email"] = email

    def _save_author(self, key: str, value: str, prefix: str = "author") -> None:
        context = self._context()
        context.setdefault(prefix + "_detail", {})[key] = value
        self._sync_author_detail()
        authors = context.setdefault("authors", [{}])
        authors[-1][key] = value

    def _save_contributor(self, key: str, value: str) -> None:
        context = self._context()
        context.setdefault("contributors", [{}])[-1][key] = value

    # ------------------------------------------------------------------ tags

    def _add_tag(self, term: str | None, scheme: str | None, label: str | None) -> None:
        tags = self._context().setdefault("tags", [])
        if not term and not scheme and not label:
            return
        value = {"term": term, "scheme": scheme, "label": label}
        if value not in tags:
            tags.append(value)

    def _end_category(self, value: str) -> None:
        if not value:
            return
        tags = self._context().get("tags")
        if tags is None:
            raise _Decline
        if value and len(tags) and not tags[-1]["term"]:
            tags[-1]["term"] = value
        else:
            self._add_tag(value, None, None)


_NO_ATTRS: dict[str, str] = {}
_VOID_END_TAGS = frozenset(f"</{tag}>" for tag in ELEMENTS_NO_END_TAG)
_RSS_VERSIONS = {"0.91": "rss091u", "0.92": "rss092", "0.93": "rss093", "0.94": "rss094"}
#: Unknown elements whose value lands in a key ``parse`` reads.
_GENERIC_STORED = frozenset({"ttl", "date"})
_DANGEROUS_KEYS = frozenset(
    {
        "authors",
        "author_detail",
        "title_detail",
        "summary_detail",
        "published_parsed",
        "updated_parsed",
        "date_parsed",
        "modified_parsed",
        "issued_parsed",
        "description_detail",
    }
)

# --------------------------------------------------------------------------- handlers

Handler = Callable[[_Walker, Any, dict[str, str]], None]


def _h_rss(w: _Walker, el: Any, attrs: dict[str, str]) -> None:
    if w.depth != 1:
        raise _Decline
    w._children(el)


def _h_feed(w: _Walker, el: Any, attrs: dict[str, str]) -> None:
    if w.depth != 1:
        raise _Decline
    w.infeed = True
    w._children(el)
    w.infeed = False


def _h_channel(w: _Walker, el: Any, attrs: dict[str, str]) -> None:
    if w.inentry or "lastmod" in attrs or "href" in attrs:
        raise _Decline
    w.infeed = True
    w._children(el)
    w.infeed = False


def _h_item(w: _Walker, el: Any, attrs: dict[str, str]) -> None:
    if w.inentry or w.insource or "lastmod" in attrs or "href" in attrs:
        raise _Decline
    entry: Record = {}
    w.entries.append(entry)
    w.entry = entry
    w.depth_map = {}
    w.inentry = True
    w.guidislink = False
    w.title_depth = -1
    about = attrs.get(w.namespacemap.get("rdf", "rdf") + ":about")
    if about:
        w._context()["id"] = about
    w._children(el)
    w.inentry = False
    w.has_content = False


def _h_image(w: _Walker, el: Any, attrs: dict[str, str]) -> None:
    if w.inentry and len(el):
        raise _Decline
    context = w._context()
    if not w.inentry:
        context.setdefault("image", {})
    w.inimage = True
    w.title_depth = -1
    w._children(el)
    w.inimage = False


def _h_textinput(w: _Walker, el: Any, attrs: dict[str, str]) -> None:
    if w.inentry:
        raise _Decline
    w._context().setdefault("textinput", {})
    w.intextinput = True
    w.title_depth = -1
    w._children(el)
    w.intextinput = False


def _h_source(w: _Walker, el: Any, attrs: dict[str, str]) -> None:
    if w.insource:
        raise _Decline
    w.source = {}
    w.insource = True
    w.title_depth = -1
    if len(el):
        w._children(el)
    w.insource = False


def _h_title(w: _Walker, el: Any, attrs: dict[str, str]) -> None:
    value = w._text_construct(el, attrs, "title", "text/plain", w.infeed or w.inentry or w.insource)
    if value:
        w.title_depth = w.depth


def _h_media_title(w: _Walker, el: Any, attrs: dict[str, str]) -> None:
    title_depth = w.title_depth
    _h_title(w, el, attrs)
    w.title_depth = title_depth


def _start_content(w: _Walker, el: Any, attrs: dict[str, str]) -> None:
    """``_start_content`` ... ``_end_content`` (Atom content, or a description turned content)."""
    w.has_content = True
    detail = w._push_content_detail(attrs, "text/plain")
    _end_content(w, el, detail)


def _end_content(w: _Walker, el: Any, detail: Record) -> None:
    # (``_push_content_detail`` maps the type: ``map_content_type`` of it is itself.)
    copy_to_summary = detail["type"] in ("text/plain", "text/html", "application/xhtml+xml")
    value = w._pop("content", w._content_value(el, detail), True, detail)
    if copy_to_summary:
        w._context().setdefault("summary", value)


def _h_content(w: _Walker, el: Any, attrs: dict[str, str]) -> None:
    _start_content(w, el, attrs)


def _h_content_encoded(w: _Walker, el: Any, attrs: dict[str, str]) -> None:
    w.has_content = True
    _end_content(w, el, w._push_content_detail(attrs, "text/html"))


def _h_body(w: _Walker, el: Any, attrs: dict[str, str]) -> None:
    _end_content(w, el, w._push_content_detail(attrs, "application/xhtml+xml"))


def _h_description(w: _Walker, el: Any, attrs: dict[str, str]) -> None:
    if "summary" in w._context() and not w.has_content:
        w.summary_key = "content"
        _start_content(w, el, attrs)
    else:
        w._text_construct(
            el, attrs, "description", "text/html", w.infeed or w.inentry or w.insource
        )
    w.summary_key = None


def _h_abstract(w: _Walker, el: Any, attrs: dict[str, str]) -> None:
    w._text_construct(el, attrs, "description", "text/plain", w.infeed or w.inentry or w.insource)
    w.summary_key = None


def _h_summary(w: _Walker, el: Any, attrs: dict[str, str]) -> None:
    if "summary" in w._context() and not w.has_content:
        w.summary_key = "content"
        _start_content(w, el, attrs)
    else:
        w.summary_key = "summary"
        w._text_construct(el, attrs, "summary", "text/plain", True)
    w.summary_key = None


def _h_other_construct(w: _Walker, el: Any, attrs: dict[str, str]) -> None:
    """subtitle, rights, info...: text constructs whose value ``parse`` never reads."""
    detail = w._push_content_detail(attrs, "text/plain")
    if detail["type"] == "application/xhtml+xml":
        pieces: list[str] = []
        w._xhtml_children(el, pieces)
    else:
        w._content_value(el, detail)


def _h_link(w: _Walker, el: Any, attrs: dict[str, str]) -> None:
    if not attrs:
        # RSS's <link>URL</link>: no href, the text is the link.
        w._context().setdefault("links", [])
        w._pop("link", w._text(el), w.infeed or w.inentry or w.insource, None)
        return
    attrs = dict(attrs)
    attrs.setdefault("rel", "alternate")
    if attrs["rel"] == "self":
        attrs.setdefault("type", "application/atom+xml")
    else:
        attrs.setdefault("type", "text/html")
    context = w._context()
    href = attrs.get("url", attrs.get("uri", attrs.get("href")))
    if href:
        attrs.pop("url", None)
        attrs.pop("uri", None)
        attrs["href"] = href
    if "href" in attrs:
        attrs["href"] = urljoin(w.base or "", attrs["href"])
    context.setdefault("links", [])
    if "href" in attrs:
        if attrs.get("rel") == "alternate" and map_content_type(attrs["type"]) in _HTML_TYPES:
            context["link"] = attrs["href"]
        if len(el):
            w._children(el)
    else:
        w._pop("link", w._text(el), w.infeed or w.inentry or w.insource, None)


def _h_guid(w: _Walker, el: Any, attrs: dict[str, str]) -> None:
    w.guidislink = attrs.get("ispermalink", "true") == "true"
    value = w._pop("id", w._text(el), True, None)
    context = w._context()
    context.setdefault("guidislink", w.guidislink and "link" not in context)
    if w.guidislink:
        context.setdefault("link", value)


def _date_handler(element: str) -> Handler:
    parsed_key = element + "_parsed"

    def handler(w: _Walker, el: Any, attrs: dict[str, str]) -> None:
        value = w._pop(element, w._text(el), True, None)
        # The text feedparser hands to its date parser; ``parse`` converts it.
        w._context()[parsed_key] = value

    return handler


def _h_ignored_text(w: _Walker, el: Any, attrs: dict[str, str]) -> None:
    """A pushed element whose value lands in no key ``parse`` reads."""
    w._text(el)


def _h_container(w: _Walker, el: Any, attrs: dict[str, str]) -> None:
    """An element whose handler keeps no state ``parse`` depends on."""
    if len(el):
        w._children(el)


def _h_category(w: _Walker, el: Any, attrs: dict[str, str]) -> None:
    if attrs:
        w._add_tag(attrs.get("term"), attrs.get("scheme", attrs.get("domain")), attrs.get("label"))
    else:
        # ``_add_tag(None, None, None)``: the tag list, and no tag.
        w._context().setdefault("tags", [])
    # ``_pop("category", ...)``: the stripped text, mended (categories are not stored).
    value = w._text(el).strip()
    if not value.isascii():
        value = _fix_text(value)
    w._end_category(value)


def _h_media_category(w: _Walker, el: Any, attrs: dict[str, str]) -> None:
    attrs = dict(attrs)
    attrs.setdefault("scheme", "http://search.yahoo.com/mrss/category_schema")
    _h_category(w, el, attrs)


def _h_itunes_category(w: _Walker, el: Any, attrs: dict[str, str]) -> None:
    w._add_tag(attrs.get("text"), "http://www.itunes.com/", None)
    if len(el):
        # Nested itunes:category elements: only the attributes make tags.
        text = [el.text or ""]
        for child in el:
            child_tag = child.tag
            if child_tag.__class__ is str:
                w._element(child, child_tag)
            text.append(child.tail or "")
        w._end_category(w._pop("category", "".join(text), True, None))
        return
    w._end_category(w._pop("category", w._text(el), True, None))


def _keywords_handler(element: str, scheme: str | None) -> Handler:
    def handler(w: _Walker, el: Any, attrs: dict[str, str]) -> None:
        if attrs:
            # Not pushed (no start handler, attributes): feedparser drops the value.
            w._children(el)
            return
        value = w._pop(element, w._text(el), True, None)
        for term in value.split(","):
            if term.strip():
                w._add_tag(term.strip(), scheme, None)

    return handler


def _h_tags(w: _Walker, el: Any, attrs: dict[str, str]) -> None:
    for term in w._pop("tags", w._text(el), True, None).split(","):
        w._add_tag(term.strip(), None, None)


def _h_language(w: _Walker, el: Any, attrs: dict[str, str]) -> None:
    w._pop("language", w._text(el), True, None)


def _author_text(w: _Walker, el: Any) -> str:
    """The author element's own character data; its children run their handlers."""
    if not len(el):
        return el.text or ""
    parts = [el.text or ""]
    for child in el:
        child_tag = child.tag
        if child_tag.__class__ is str:
            if not _pushes(w, child, child_tag) and (child.text or len(child)):
                raise _Decline
            w._element(child, child_tag)
        parts.append(child.tail or "")
    return "".join(parts)


def _pushes(w: _Walker, el: Any, tag: str) -> bool:
    key = w._name(tag)[0]
    if key in _HANDLERS:
        return key in _PUSHING
    return not el.items()


def _h_author(w: _Walker, el: Any, attrs: dict[str, str]) -> None:
    w.inauthor = True
    w._context().setdefault("authors", []).append({})
    w._pop("author", _author_text(w, el), True, None)
    w.inauthor = False
    w._sync_author_detail()


def _h_contributor(w: _Walker, el: Any, attrs: dict[str, str]) -> None:
    w.incontributor = True
    w._context().setdefault("contributors", []).append({})
    _author_text(w, el)
    w.incontributor = False


def _end_name(w: _Walker, value: str) -> None:
    if w.inpublisher:
        w._save_author("name", value, "publisher")
    elif w.inauthor:
        w._save_author("name", value)
    elif w.incontributor:
        w._save_contributor("name", value)
    elif w.intextinput:
        w._context()["name"] = value


def _h_dc_contributor(w: _Walker, el: Any, attrs: dict[str, str]) -> None:
    w.incontributor = True
    w._context().setdefault("contributors", []).append({})
    _end_name(w, w._pop("name", w._text(el), False, None))
    w.incontributor = False


def _h_name(w: _Walker, el: Any, attrs: dict[str, str]) -> None:
    _end_name(w, w._pop("name", w._text(el), False, None))


def _h_email(w: _Walker, el: Any, attrs: dict[str, str]) -> None:
    value = w._pop("email", w._text(el), False, None)
    if w.inpublisher:
        w._save_author("email", value, "publisher")
    elif w.inauthor:
        w._save_author("email", value)
    elif w.incontributor:
        w._save_contributor("email", value)


def _h_url(w: _Walker, el: Any, attrs: dict[str, str]) -> None:
    value = w._pop("href", w._text(el), True, None)
    if w.inauthor:
        w._save_author("href", value)
    elif w.incontributor:
        w._save_contributor("href", value)


def _h_itunes_owner(w: _Walker, el: Any, attrs: dict[str, str]) -> None:
    w.inpublisher = True
    _author_text(w, el)
    w.inpublisher = False


def _h_itunes_image(w: _Walker, el: Any, attrs: dict[str, str]) -> None:
    href = attrs.get("href") or attrs.get("url")
    if href:
        w._context()["image"] = {"href": href}
    w._children(el)


def _h_decline(w: _Walker, el: Any, attrs: dict[str, str]) -> None:
    raise _Decline


_HANDLERS: dict[str, Handler] = {
    "rss": _h_rss,
    "feed": _h_feed,
    "channel": _h_channel,
    "item": _h_item,
    "entry": _h_item,
    "image": _h_image,
    "textinput": _h_textinput,
    "source": _h_source,
    "title": _h_title,
    "dc_title": _h_title,
    "media_title": _h_media_title,
    "content": _h_content,
    "content_encoded": _h_content_encoded,
    "fullitem": _h_content_encoded,
    "body": _h_body,
    "xhtml_body": _h_body,
    "description": _h_description,
    "dc_description": _h_description,
    "media_description": _h_description,
    "abstract": _h_abstract,
    "summary": _h_summary,
    "itunes_summary": _h_summary,
    "subtitle": _h_other_construct,
    "tagline": _h_other_construct,
    "itunes_subtitle": _h_other_construct,
    "rights": _h_other_construct,
    "copyright": _h_other_construct,
    "dc_rights": _h_other_construct,
    "info": _h_other_construct,
    "feedburner_browserfriendly": _h_other_construct,
    "link": _h_link,
    "guid": _h_guid,
    "id": _h_guid,
    "pubdate": _date_handler("published"),
    "published": _date_handler("published"),
    "issued": _date_handler("published"),
    "dcterms_issued": _date_handler("published"),
    "updated": _date_handler("updated"),
    "modified": _date_handler("updated"),
    "lastbuilddate": _date_handler("updated"),
    "dc_date": _date_handler("updated"),
    "dcterms_modified": _date_handler("updated"),
    "created": _h_ignored_text,
    "dcterms_created": _h_ignored_text,
    "expirationdate": _h_ignored_text,
    "dcterms_valid": _h_ignored_text,
    "category": _h_category,
    "keywords": _h_category,
    "dc_subject": _h_category,
    "media_category": _h_media_category,
    "itunes_category": _h_itunes_category,
    "itunes_keywords": _keywords_handler("itunes_keywords", "http://www.itunes.com/"),
    "media_keywords": _keywords_handler("media_keywords", None),
    "tags": _h_tags,
    "language": _h_language,
    "dc_language": _h_language,
    "author": _h_author,
    "managingeditor": _h_author,
    "dc_author": _h_author,
    "dc_creator": _h_author,
    "itunes_author": _h_author,
    "contributor": _h_contributor,
    "dc_contributor": _h_dc_contributor,
    "name": _h_name,
    "itunes_name": _h_name,
    "email": _h_email,
    "itunes_email": _h_email,
    "url": _h_url,
    "homepage": _h_url,
    "uri": _h_url,
    "itunes_owner": _h_itunes_owner,
    "webmaster": _h_ignored_text,
    "dc_publisher": _h_ignored_text,
    # Handlers that keep nothing ``parse`` reads: the children still count.
    "enclosure": _h_container,
    "cloud": _h_container,
    "generator": _h_container,
    "newlocation": _h_container,
    "width": _h_container,
    "height": _h_container,
    "itunes_image": _h_itunes_image,
    "itunes_link": _h_itunes_image,
    "itunes_block": _h_container,
    "itunes_explicit": _h_container,
    "media_content": _h_container,
    "media_thumbnail": _h_container,
    "media_player": _h_container,
    "media_rating": _h_container,
    "media_credit": _h_container,
    "media_license": _h_container,
    "media_restriction": _h_container,
    "media_group": _h_container,
    "georss_point": _h_container,
    "georss_line": _h_container,
    "georss_polygon": _h_container,
    "georss_box": _h_container,
    "georss_where": _h_container,
    "where": _h_container,
    "cc_license": _h_container,
    "creativecommons_license": _h_container,
    "admin_generatoragent": _h_container,
    "admin_errorreportsto": _h_container,
    # Not ported: feedparser may raise on them or keeps state the walk does not.
    "psc_chapters": _h_decline,
    "psc_chapter": _h_decline,
    "gml_pos": _h_decline,
    "gml_poslist": _h_decline,
    "gml_point": _h_decline,
    "gml_linestring": _h_decline,
    "gml_polygon": _h_decline,
    "gml_exterior": _h_decline,
    "gml_linearring": _h_decline,
    "rdf_rdf": _h_container,
}


def _stored_handler(key: str) -> Handler:
    """An element without a handler whose value lands in a key ``parse`` reads."""

    def handler(w: _Walker, el: Any, attrs: dict[str, str]) -> None:
        if attrs:
            raise _Decline
        w._pop(key, w._text(el), True, None)

    return handler


_STORED_HANDLERS = {key: _stored_handler(key) for key in _GENERIC_STORED}


def _handler(key: str) -> Handler:
    """The handler of the elements with this handler key."""
    handler = _HANDLERS.get(key)
    if handler is not None:
        return handler
    if key in START_HANDLERS or key in END_HANDLERS:
        # feedparser has a handler for it that is not ported.
        return _h_decline
    stored = _STORED_HANDLERS.get(key)
    if stored is not None:
        return stored
    if key in _DANGEROUS_KEYS:
        return _h_decline
    # An unknown element: its children still count.
    return _h_container


#: Handler keys whose element feedparser pushes (its text is its own).
_PUSHING = frozenset(_HANDLERS) - {
    "rss",
    "feed",
    "channel",
    "enclosure",
    "cloud",
    "media_content",
    "media_group",
    "cc_license",
    "admin_generatoragent",
    "admin_errorreportsto",
    "rdf_rdf",
    "itunes_keywords",
    "media_keywords",
}

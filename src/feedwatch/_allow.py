"""``fetch.allow_networks`` entries: a network, on every port or on some.

Pure (``ipaddress`` only), so that the configuration can check entries without
importing the HTTP stack; :mod:`feedwatch.fetch`'s guard applies them.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import TypeAlias

__all__ = ["AllowedNetwork", "parse_allow_entry"]

IPNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class AllowedNetwork:
    """One ``fetch.allow_networks`` entry: a network, on every port or on some.

    Written ``CIDR`` (every port), ``CIDR:PORT`` or ``CIDR:FIRST-LAST``; an IPv6
    network with ports goes in brackets, ``[::1/128]:8080``. A bare address is
    a network of one (``127.0.0.1`` is ``127.0.0.1/32``). ``str()`` gives that
    canonical form.
    """

    network: IPNetwork
    #: The first and last port allowed (inclusive); None: every port.
    ports: tuple[int, int] | None = None

    def admits(self, port: int) -> bool:
        return self.ports is None or self.ports[0] <= port <= self.ports[1]

    @property
    def port_text(self) -> str:
        """``8080`` or ``8000-8099`` (empty for every port)."""
        if self.ports is None:
            return ""
        first, last = self.ports
        return str(first) if first == last else f"{first}-{last}"

    def __str__(self) -> str:
        if self.ports is None:
            return str(self.network)
        if self.network.version == 6:
            return f"[{self.network}]:{self.port_text}"
        return f"{self.network}:{self.port_text}"


_PORTS = re.compile(r"([0-9]{1,5})(?:-([0-9]{1,5}))?")


def parse_allow_entry(value: str) -> AllowedNetwork:
    """Parse one ``fetch.allow_networks`` entry (see :class:`AllowedNetwork`).

    Raises:
        ValueError: with a message for the user that quotes ``value``.
    """
    text = value.strip()
    ports_text: str | None = None
    if text.startswith("["):  # [network]:ports
        network_text, closed, rest = text[1:].partition("]")
        if not closed or (rest and not rest.startswith(":")):
            raise _not_a_network(value)
        ports_text = rest[1:] if rest else None
    elif text.count(":") == 1:  # IPv4 network:ports (an IPv6 one has several colons)
        network_text, _, ports_text = text.partition(":")
    else:
        network_text = text
    try:
        network = ipaddress.ip_network(network_text.strip(), strict=False)
    except ValueError:
        if _unbracketed_ipv6_with_port(network_text):
            raise ValueError(
                f"{value!r}: write an IPv6 network with a port in brackets, e.g. [::1/128]:8080"
            ) from None
        raise _not_a_network(value) from None
    if ports_text is None:
        return AllowedNetwork(network)
    match = _PORTS.fullmatch(ports_text.strip())
    if match is None:
        raise ValueError(
            f"not a port or port range after the network in {value!r}: {ports_text!r}"
            " (e.g. 127.0.0.1/32:8080 or 127.0.0.1/32:8000-8099)"
        )
    first = int(match[1])
    last = int(match[2]) if match[2] else first
    for port in (first, last):
        if not 1 <= port <= 65535:
            raise ValueError(f"port {port} in {value!r} is out of range (1-65535)")
    if first > last:
        raise ValueError(f"port range {first}-{last} in {value!r} is empty (first above last)")
    return AllowedNetwork(network, (first, last))


def _unbracketed_ipv6_with_port(text: str) -> bool:
    """Whether ``text`` is an IPv6 network, a colon and a port (``::1/128:8080``)."""
    network, _, port = text.rpartition(":")
    if "/" not in network or _PORTS.fullmatch(port) is None:
        return False
    try:
        return ipaddress.ip_network(network, strict=False).version == 6
    except ValueError:
        return False


def _not_a_network(value: str) -> ValueError:
    return ValueError(f"not a network in CIDR form: {value!r} (e.g. 10.0.0.0/8 or 127.0.0.1/32)")

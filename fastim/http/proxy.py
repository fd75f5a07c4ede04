"""The client behind a reverse proxy: its address and scheme from forwarding fields.

Behind a proxy the TCP peer is the proxy. A proxy says who its client was in
``X-Forwarded-For`` (each proxy appends the address it was reached from) with
``X-Forwarded-Proto``, or in the standard ``Forwarded`` field (RFC 7239). Anyone can send
these fields, so they are read only when the peer is a listed trusted proxy, and then
walked from the right (RFC 7239 §5.2 / §7.4): the nearest entries were written by our own
proxies, the leftmost may be anything the client made up. The first address that is not a
trusted proxy is the client. Anything malformed or ambiguous means the fields are ignored:
the client is the peer, as if there were no proxy fields at all.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from .headers import Headers

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

SCHEMES = ("http", "https")
_CACHE_SIZE = 4096


class TrustedProxies:
    """The addresses and networks whose forwarding fields are believed.

    >>> TrustedProxies(["127.0.0.1", "10.0.0.0/8"]).trusts("10.1.2.3")
    True

    A value that is not an IP address or network raises ValueError.
    """

    def __init__(self, proxies: Iterable[str | IPNetwork] = ()) -> None:
        networks: list[IPNetwork] = []
        for proxy in proxies:
            if isinstance(proxy, str):
                text = proxy.strip()
                try:
                    # strict=False: "10.1.2.3/8" means 10.0.0.0/8, as an operator meant.
                    networks.append(ipaddress.ip_network(text, strict=False))
                except ValueError:
                    raise ValueError(
                        f"not an IP address or network: {proxy!r} "
                        "(e.g. 127.0.0.1, ::1, 10.0.0.0/8)"
                    ) from None
            else:
                networks.append(proxy)
        self.networks = tuple(networks)
        # Answers already worked out, by address: a request's few addresses repeat across
        # requests, and `address in network` costs a microsecond or so each. Bounded.
        self._known: dict[IPAddress, bool] = {}

    def __bool__(self) -> bool:
        return bool(self.networks)

    def __repr__(self) -> str:
        return f"TrustedProxies({[str(n) for n in self.networks]!r})"

    def trusts(self, address: str | IPAddress | None) -> bool:
        """Whether `address` (text or parsed) is one of the trusted proxies."""
        if address is None:
            return False
        if isinstance(address, str):
            parsed = parse_address(address)
            if parsed is None:
                return False
            address = parsed
        # An IPv4 peer on a dual-stack socket shows as ::ffff:a.b.c.d.
        known = self._known.get(address)
        if known is not None:
            return known
        checked = address
        if isinstance(checked, ipaddress.IPv6Address) and checked.ipv4_mapped is not None:
            checked = checked.ipv4_mapped
        trusted = any(checked in network for network in self.networks)
        if len(self._known) >= _CACHE_SIZE:
            self._known.clear()
        self._known[address] = trusted
        return trusted


@dataclass(frozen=True)
class Client:
    """Who a request came from: its address and the scheme it used (`http`/`https`)."""

    addr: str
    scheme: str


@functools.lru_cache(maxsize=_CACHE_SIZE)
def parse_address(text: str) -> IPAddress | None:
    """An IP address from a forwarding field's node, or None if it is not one.

    Accepted forms: ``192.0.2.1``, ``192.0.2.1:8080``, ``2001:db8::1``, ``[2001:db8::1]``
    and ``[2001:db8::1]:8080`` (RFC 7239 §6: the port is dropped). The ``unknown`` and
    ``_obfuscated`` identifiers of RFC 7239 §6.2/§6.3 are not addresses: None.
    """
    text = text.strip()
    if not text:
        return None
    if text[0] == "[":
        end = text.find("]")
        if end < 0:
            return None
        rest = text[end + 1:]
        if rest and not (rest[0] == ":" and rest[1:].isdigit()):
            return None
        text = text[1:end]
    elif text.count(":") == 1:  # IPv4 with a port; a bare IPv6 has two colons at least
        text, _, port = text.partition(":")
        if not port.isdigit():
            return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _split_list(values: list[str]) -> list[str] | None:
    """The members of a comma-separated list field given as one or more field lines
    (RFC 9110 §5.3: lines of one field combine with commas), or None if one is empty."""
    members = [member.strip() for value in values for member in value.split(",")]
    if any(not member for member in members):
        return None
    return members


def _split_outside_quotes(text: str, separator: str) -> list[str] | None:
    """Split on `separator` where it is not inside a quoted-string; None if a quote is
    left open."""
    parts: list[str] = []
    start = 0
    quoted = escaped = False
    for index, char in enumerate(text):
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append(text[start:index])
            start = index + 1
    if quoted:
        return None
    parts.append(text[start:])
    return parts


def parse_forwarded(values: list[str]) -> list[dict[str, str]] | None:
    """The elements of ``Forwarded`` field lines (RFC 7239 §4), each a dict of its
    parameters with lower-cased names and unquoted values; None if malformed."""
    elements: list[dict[str, str]] = []
    for value in values:
        parts = _split_outside_quotes(value, ",")
        if parts is None:
            return None
        for part in parts:
            pairs = _split_outside_quotes(part, ";")
            if pairs is None:
                return None
            element: dict[str, str] = {}
            for pair in pairs:
                name, equals, raw = pair.strip().partition("=")
                name = name.strip().lower()
                raw = raw.strip()
                if not equals or not name or not raw or name in element:
                    return None
                if raw[0] == '"':
                    if len(raw) < 2 or raw[-1] != '"':
                        return None
                    raw = raw[1:-1].replace('\\"', '"').replace("\\\\", "\\")
                element[name] = raw
            if not element:
                return None
            elements.append(element)
    return elements


def _scheme(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip().lower()
    return value if value in SCHEMES else None


def resolve_client(peer: str, scheme: str, headers: Headers,
                   trusted: TrustedProxies) -> Client:
    """The request's client: `peer` and the connection's `scheme`, unless the peer is a
    trusted proxy whose forwarding fields name another client.

    Both ``Forwarded`` and ``X-Forwarded-*`` fields at once are ambiguous: a proxy that
    writes one kind passes the other on from the client as it came. Neither is used then.
    """
    fallback = Client(peer, scheme)
    if not trusted or not trusted.trusts(peer):
        return fallback  # never believe a value from a peer that is not our proxy
    forwarded = headers.get_all("forwarded")
    x_for = headers.get_all("x-forwarded-for")
    x_proto = headers.get_all("x-forwarded-proto")
    if forwarded:
        if x_for or x_proto:
            return fallback
        found = _from_forwarded(forwarded, trusted)
    else:
        found = _from_x_forwarded(x_for, x_proto, trusted)
    if found is None:
        return fallback
    address, proto = found
    return Client(address or peer, proto or scheme)


def _from_forwarded(values: list[str], trusted: TrustedProxies) -> tuple[str, str] | None:
    """The client's address and scheme ("" if not said) from ``Forwarded``; None if
    malformed."""
    elements = parse_forwarded(values)
    if elements is None:
        return None
    nodes = []
    for element in elements:
        node = element.get("for")
        if node is None:
            return None  # a proxy on the way did not say whom it forwarded for
        nodes.append(node)
    found = _walk(nodes, trusted)
    if found is None:
        return None
    address, index = found
    if index is None:
        return None  # not reached: parse_forwarded gives at least one element
    proto = elements[index].get("proto")
    if proto is None:
        return address, ""  # the proxy did not say: the connection's scheme stands
    checked = _scheme(proto)
    return None if checked is None else (address, checked)


def _from_x_forwarded(x_for: list[str], x_proto: list[str],
                      trusted: TrustedProxies) -> tuple[str, str] | None:
    """The client's address ("" for the peer) and scheme ("" if not said) from
    ``X-Forwarded-For`` and ``X-Forwarded-Proto``; None if malformed."""
    nodes = _split_list(x_for) if x_for else []
    protos = _split_list(x_proto) if x_proto else []
    if nodes is None or protos is None:
        return None
    found = _walk(nodes, trusted)
    if found is None:
        return None
    address, index = found
    if not protos:
        return address, ""
    if len(protos) == 1:
        # One value: set (or replaced) by the nearest proxy, which in the usual set-up is
        # the one the client reached.
        proto = protos[0]
    elif index is not None and len(protos) == len(nodes):
        # Appended by each proxy like X-Forwarded-For: the same position names the hop.
        proto = protos[index]
    else:
        return None
    checked = _scheme(proto)
    return None if checked is None else (address, checked)


def _walk(nodes: list[str], trusted: TrustedProxies) -> tuple[str, int | None] | None:
    """Walk forwarded nodes from the right past trusted proxies (RFC 7239 §7.4).

    Returns the client's address and its index in `nodes`, ``("", None)`` for an empty
    list (the peer itself is the client), or None when a node on the way is not an
    address. When every node is a trusted proxy the leftmost one is the client.
    """
    for index in range(len(nodes) - 1, -1, -1):
        address = parse_address(nodes[index])
        if address is None:
            return None
        if index == 0 or not trusted.trusts(address):
            return str(address), index
    return "", None

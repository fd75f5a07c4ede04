"""Push endpoints are URLs a client hands the server, which then POSTs to them: without a
guard, a user could make the server reach its own network (server-side request forgery,
docs/security.md). An endpoint must be https:// on a public address: its URL is checked
when it is subscribed (`check_endpoint`), and the address actually connected to is
checked at every push, before a byte is sent (`address_allowed`, used by transport.py).

Two options loosen it (`PushOptions`): ``allow_http_loopback``, for tests and development
only, admits http:// and https:// on a loopback address (a push-service stand-in);
``allow_private`` admits private and link-local addresses (a push service of one's own).
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from fastim.errors import bad_request
from fastim.notify.options import PushOptions

#: Longer than any push service's endpoint (FCM's are about 200 characters).
MAX_ENDPOINT = 2048

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def address_allowed(address: Address, options: PushOptions) -> bool:
    """Whether the server may POST to `address`."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback:
        return options.allow_http_loopback
    if address.is_global:
        return True
    if address.is_multicast or address.is_unspecified or address.is_reserved:
        return False
    return options.allow_private  # private, link-local, shared (CGN) ranges


def check_endpoint(endpoint: str, options: PushOptions) -> str:
    """`endpoint` if the server may push there; 400 saying why not."""
    if not isinstance(endpoint, str) or not endpoint:
        raise bad_request("endpoint is required")
    if len(endpoint) > MAX_ENDPOINT or not endpoint.isascii() or not endpoint.isprintable() \
            or " " in endpoint:
        raise bad_request(f"endpoint must be a URL of at most {MAX_ENDPOINT} ASCII characters")
    try:
        parts = urlsplit(endpoint)
        port = parts.port
    except ValueError:
        raise bad_request("endpoint is not a valid URL") from None
    host = parts.hostname
    if not host or parts.username is not None or parts.password is not None or parts.fragment:
        raise bad_request("endpoint must be an https:// URL with a host, no user or fragment")
    literal = _ip_literal(host)
    if parts.scheme == "http":
        loopback = (literal is not None and literal.is_loopback) or host == "localhost"
        if not (options.allow_http_loopback and loopback):
            raise bad_request("endpoint must be an https:// URL")
    elif parts.scheme != "https":
        raise bad_request("endpoint must be an https:// URL")
    if port == 0:
        raise bad_request("endpoint has no valid port")
    if literal is not None and not address_allowed(literal, options):
        raise bad_request("endpoint must be on a public address")
    if host == "localhost" and not options.allow_http_loopback:
        raise bad_request("endpoint must be on a public address")
    return endpoint


def _ip_literal(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None

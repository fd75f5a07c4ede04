"""The HTTP session pushes go out on, closed against server-side request forgery at the
one moment that counts: the connection.

A push endpoint's host is a name the subscriber chose. Checking the addresses the name
resolves to and then letting the HTTP client resolve it again to connect leaves a gap:
a name whose DNS answer changes in between (DNS rebinding, a TTL of 0) passes the check
with a public address and is connected on an internal one. So the check is made on the
socket itself: once the TCP connection is up, the address of its peer
(``getpeername()``) must be allowed (`endpoints.address_allowed`), else the socket is
closed before a byte is written on it: no TLS ClientHello, no request line. Whatever DNS
said, before or during, the address checked is the address connected.

The same session follows no redirects (a 3xx would send the POST to a URL that was never
checked) and ignores proxies from the environment (through a proxy the peer is the
proxy, not the push service).
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NewConnectionError

from fastim.notify.endpoints import address_allowed
from fastim.notify.options import PushOptions


class PeerRefused(NewConnectionError):
    """The connection reached an address pushes may not go to; nothing was sent."""


def check_peer(sock: socket.socket, options: PushOptions) -> None:
    """Raise `PermissionError` unless the connected peer of `sock` is allowed."""
    host = str(sock.getpeername()[0]).split("%", 1)[0]  # an IPv6 scope id is no address
    address = ipaddress.ip_address(host)
    if not address_allowed(address, options):
        raise PermissionError(f"connected to {address}, which pushes may not reach")


def _checked(base: type[HTTPConnection], options: PushOptions) -> type[HTTPConnection]:
    """`base` (urllib3's plain or TLS connection) whose new sockets are checked. urllib3
    makes every connection's socket in ``_new_conn`` (both ``HTTPConnection.connect`` and
    ``HTTPSConnection.connect`` call it before anything is written; the TLS handshake
    comes after), so the check there precedes every byte; tests/notify/test_push_rebinding.py
    fails if a urllib3 release stops doing so."""

    class Checked(base):  # type: ignore[valid-type,misc]
        def _new_conn(self) -> socket.socket:
            sock: socket.socket = super()._new_conn()
            try:
                check_peer(sock, options)
            except (OSError, ValueError) as exc:
                sock.close()
                raise PeerRefused(self, f"push refused: {exc}") from None
            return sock

    Checked.__name__ = Checked.__qualname__ = f"PeerChecked{base.__name__}"
    return Checked


class PeerCheckedAdapter(HTTPAdapter):
    """A requests adapter whose connection pools make peer-checked connections."""

    def __init__(self, options: PushOptions) -> None:
        self._options = options
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        plain = _checked(HTTPConnection, self._options)
        tls = _checked(HTTPSConnection, self._options)

        class PlainPool(HTTPConnectionPool):
            ConnectionCls = plain

        class TlsPool(HTTPSConnectionPool):
            ConnectionCls = tls  # type: ignore[assignment]

        self.poolmanager.pool_classes_by_scheme = {"http": PlainPool, "https": TlsPool}


class PushSession(requests.Session):
    """The session of one push: peer-checked connections, no redirects, no proxies."""

    def __init__(self, options: PushOptions) -> None:
        super().__init__()
        self.trust_env = False
        adapter = PeerCheckedAdapter(options)
        self.mount("https://", adapter)
        self.mount("http://", adapter)

    def request(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["allow_redirects"] = False
        return super().request(*args, **kwargs)

"""The opening handshake (RFC 6455 §4), without I/O.

A client sends an HTTP/1.1 GET with `Upgrade: websocket`; the server checks it (§4.2.1)
and answers `101 Switching Protocols` with `Sec-WebSocket-Accept` (§4.2.2); the client
checks that answer (§4.1). Both ends are here, with the small HTTP/1.1 head parser they
need (RFC 9112 §2-5), so that fastim.ws stands on its own.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from fastim.ws.exceptions import InvalidHandshake

__all__ = [
    "GUID",
    "Headers",
    "Request",
    "Response",
    "ServerAccept",
    "accept_key",
    "generate_key",
    "parse_request",
    "parse_response",
    "check_request",
    "accept_headers",
    "accept_response",
    "reject_response",
    "client_headers",
    "build_request",
    "check_response",
    "MAX_HEAD_SIZE",
    "HeadReader",
]

# RFC 6455 §1.3: the GUID the accept key is derived with.
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

# Limits on what a peer can make us buffer before the handshake is done.
MAX_HEAD_SIZE = 16 * 1024
MAX_HEADERS = 128

# RFC 9110 §5.6.2: a token, as in a method or a header name.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_VALUE_OK = re.compile(r"[^\x00-\x08\x0a-\x1f\x7f]*")  # field-value: no CTLs except HTAB


def accept_key(key: str) -> str:
    """The Sec-WebSocket-Accept value for a Sec-WebSocket-Key (RFC 6455 §4.2.2 item 5.4):
    base64(SHA-1(key + GUID))."""
    digest = hashlib.sha1((key + GUID).encode("ascii")).digest()
    return base64.b64encode(digest).decode("ascii")


def generate_key() -> str:
    """A fresh Sec-WebSocket-Key: 16 random bytes, base64-encoded (RFC 6455 §4.1)."""
    return base64.b64encode(os.urandom(16)).decode("ascii")


class Headers:
    """HTTP header fields as received: order and repeats kept, names matched in any case.

    Iterating gives (name, value) pairs as they came.
    """

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str]] = list(items)

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of `name`, or `default`."""
        name = name.lower()
        for key, value in self._items:
            if key.lower() == name:
                return value
        return default

    def get_all(self, name: str) -> list[str]:
        """Every value of `name`, in order."""
        name = name.lower()
        return [value for key, value in self._items if key.lower() == name]

    def tokens(self, name: str) -> list[str]:
        """The comma-separated elements of every `name` field, lowercased (RFC 9110 §5.6.1),
        e.g. `Connection: keep-alive, Upgrade` gives ["keep-alive", "upgrade"]."""
        return [
            item.strip().lower()
            for value in self.get_all(name)
            for item in value.split(",")
            if item.strip()
        ]

    def add(self, name: str, value: str) -> None:
        """Append a field."""
        self._items.append((name, value))

    def items(self) -> list[tuple[str, str]]:
        """A copy of the (name, value) pairs."""
        return list(self._items)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Headers) and self._items == other._items

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


class HeadReader:
    """Collects the bytes of one HTTP head as they arrive, up to its empty line (RFC 9112
    §2.1: the head ends at the first CRLF CRLF), whatever the chunks: what the client
    (a response) and the server (a request) both read before the WebSocket starts.

    `feed(data)` returns None until the head is complete, then `(head, rest)`: the head
    with its final CRLF CRLF, and the bytes that came after it (already frames). A head
    longer than MAX_HEAD_SIZE raises InvalidHandshake(`status`, "<what> head too large"),
    as soon as that many bytes came without its end: a peer cannot make us buffer more.
    """

    __slots__ = ("_buffer", "_status", "_what")

    def __init__(self, *, status: int, what: str) -> None:
        self._buffer = bytearray()
        self._status = status
        self._what = what

    def feed(self, data: bytes) -> tuple[bytes, bytes] | None:
        buffer = self._buffer
        # The end may straddle two chunks: search from 3 bytes before the new data.
        start = max(0, len(buffer) - 3)
        buffer += data
        end = buffer.find(b"\r\n\r\n", start)
        if (end < 0 and len(buffer) > MAX_HEAD_SIZE) or end + 4 > MAX_HEAD_SIZE:
            raise InvalidHandshake(self._status, f"{self._what} head too large")
        if end < 0:
            return None
        head, rest = bytes(buffer[: end + 4]), bytes(buffer[end + 4 :])
        buffer.clear()
        return head, rest


@dataclass
class Request:
    """An HTTP request head: `GET /chat?x=1 HTTP/1.1` and its header fields."""

    method: str
    target: str
    version: str
    headers: Headers


@dataclass
class Response:
    """An HTTP response head."""

    status: int
    reason: str
    version: str
    headers: Headers


def _split_head(head: bytes) -> tuple[str, Headers]:
    """Split a head (ending in CRLF CRLF) into its start line and header fields."""
    # RFC 9112 §2.2: parse as octets; latin-1 maps each to one character.
    lines = head.decode("latin-1").removesuffix("\r\n\r\n").split("\r\n")
    headers = Headers()
    for line in lines[1:]:
        if len(headers) >= MAX_HEADERS:
            raise InvalidHandshake(431, "too many header fields")
        name, colon, value = line.partition(":")
        # §5.1: no whitespace between name and colon; §5.2: obs-fold is rejected;
        # a bare CR or LF left in a line means the line endings were not CRLF (§2.2).
        if not colon or not _TOKEN.fullmatch(name):
            raise InvalidHandshake(400, f"malformed header line {line[:40]!r}")
        value = value.strip(" \t")
        if not _VALUE_OK.fullmatch(value):
            raise InvalidHandshake(400, f"invalid characters in header {name}")
        headers.add(name, value)
    return lines[0], headers


def parse_request(head: bytes) -> Request:
    """Parse a request head (RFC 9112 §3) ending in CRLF CRLF; InvalidHandshake(400) if
    it is malformed."""
    start, headers = _split_head(head)
    parts = start.split(" ")
    if len(parts) != 3 or not _TOKEN.fullmatch(parts[0]) or not parts[1]:
        raise InvalidHandshake(400, "malformed request line")
    method, target, version = parts
    if not re.fullmatch(r"HTTP/\d\.\d", version):
        raise InvalidHandshake(400, "malformed HTTP version")
    return Request(method, target, version, headers)


def parse_response(head: bytes) -> Response:
    """Parse a response head (RFC 9112 §4); InvalidHandshake(0, ...) if it is malformed."""
    try:
        start, headers = _split_head(head)
    except InvalidHandshake as exc:
        raise InvalidHandshake(0, f"bad response from server: {exc.reason}") from None
    version, _, rest = start.partition(" ")
    status, _, reason = rest.partition(" ")
    if not re.fullmatch(r"HTTP/\d\.\d", version) or not re.fullmatch(r"\d{3}", status):
        raise InvalidHandshake(0, f"bad status line from server: {start[:60]!r}")
    return Response(int(status), reason, version, headers)


# -- server side ---------------------------------------------------------------------------

SelectSubprotocol = Callable[[Sequence[str], Sequence[str]], "str | None"]
NegotiateExtensions = Callable[[list[str]], "tuple[str | None, Any]"]


@dataclass
class ServerAccept:
    """What a valid upgrade request leads to: the 101 response's extra fields, and the
    subprotocol and extension object chosen for the connection."""

    key: str
    subprotocol: str | None = None
    extension: Any = None
    headers: list[tuple[str, str]] = field(default_factory=list)


def _upgrade_required(reason: str) -> InvalidHandshake:
    # RFC 9110 §15.5.22: a 426 names the protocol to upgrade to; RFC 6455 §4.4 adds the
    # version the server speaks.
    return InvalidHandshake(
        426,
        reason,
        [
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Version", "13"),
        ],
    )


def check_request(
    method: str,
    headers: Headers | Sequence[tuple[str, str]],
    *,
    version: str = "HTTP/1.1",
    origins: Sequence[str | None] | None = None,
    check_origin: Callable[[str | None], bool] | None = None,
    subprotocols: Sequence[str] = (),
    select_subprotocol: SelectSubprotocol | None = None,
    negotiate_extensions: NegotiateExtensions | None = None,
) -> ServerAccept:
    """Validate a client's opening handshake (RFC 6455 §4.2.1) and decide the answer.

    Raises InvalidHandshake carrying the error response: 405 for a method other than GET,
    400 for a version other than HTTP/1.1, a missing Host or `Connection: upgrade`, or a
    Sec-WebSocket-Key that is not base64 of 16 bytes; 426 (with `Sec-WebSocket-Version:
    13`) without `Upgrade: websocket` or with a Sec-WebSocket-Version other than 13; 403
    when the Origin is refused.

    Hooks: `origins` lists the Origin values accepted (None in it admits a request without
    Origin), `check_origin(origin)` decides on its own; `select_subprotocol(offered,
    subprotocols)` picks the subprotocol (default: the first of `subprotocols` the client
    offered); `negotiate_extensions(offers)` returns (Sec-WebSocket-Extensions value or
    None, extension object or None) and may raise InvalidHandshake.
    """
    if not isinstance(headers, Headers):
        headers = Headers(headers)
    # §4.2.1 item 1: "An HTTP/1.1 or higher GET request".
    if method != "GET":
        raise InvalidHandshake(405, "WebSocket handshake must be a GET", [("Allow", "GET")])
    if version != "HTTP/1.1":
        raise InvalidHandshake(400, "WebSocket handshake needs HTTP/1.1")
    # Item 2: a Host header field.
    if len(headers.get_all("Host")) != 1:
        raise InvalidHandshake(400, "missing or repeated Host header")
    # Items 3 and 4: Upgrade: websocket, Connection: Upgrade (token lists, any case).
    if "websocket" not in headers.tokens("Upgrade"):
        raise _upgrade_required("this resource needs a WebSocket upgrade")
    if "upgrade" not in headers.tokens("Connection"):
        raise InvalidHandshake(400, "Connection header must include Upgrade")
    # Item 6: Sec-WebSocket-Version: 13, otherwise 426 naming 13 (§4.4).
    if headers.get_all("Sec-WebSocket-Version") != ["13"]:
        raise _upgrade_required("unsupported Sec-WebSocket-Version, expected 13")
    # Item 5: Sec-WebSocket-Key, base64 of a 16-byte nonce.
    keys = headers.get_all("Sec-WebSocket-Key")
    if len(keys) != 1:
        raise InvalidHandshake(400, "missing or repeated Sec-WebSocket-Key")
    key = keys[0]
    try:
        nonce = base64.b64decode(key.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        nonce = b""
    if len(nonce) != 16:
        raise InvalidHandshake(400, "Sec-WebSocket-Key must be base64 of 16 bytes")

    # Item 7 / §10.2: the Origin is the browser's word on which page is connecting.
    origin = headers.get("Origin")
    if origins is not None and origin not in origins:
        raise InvalidHandshake(403, "Origin not allowed")
    if check_origin is not None and not check_origin(origin):
        raise InvalidHandshake(403, "Origin not allowed")

    accepted = ServerAccept(key)
    # Item 8 / §4.2.2 item 5.4: at most one of the subprotocols the client offered.
    # Subprotocol names are case-sensitive (§11.5), so not Headers.tokens().
    offered = [
        token.strip()
        for value in headers.get_all("Sec-WebSocket-Protocol")
        for token in value.split(",")
        if token.strip()
    ]
    if offered and (subprotocols or select_subprotocol is not None):
        if select_subprotocol is not None:
            chosen = select_subprotocol(offered, subprotocols)
        else:
            chosen = next((p for p in subprotocols if p in offered), None)
        if chosen is not None:
            if chosen not in offered:
                raise InvalidHandshake(500, "select_subprotocol chose a protocol not offered")
            accepted.subprotocol = chosen
            accepted.headers.append(("Sec-WebSocket-Protocol", chosen))
    # Item 9 / §9.1: extensions, e.g. permessage-deflate (RFC 7692).
    offers = headers.get_all("Sec-WebSocket-Extensions")
    if offers and negotiate_extensions is not None:
        value, extension = negotiate_extensions(offers)
        if value is not None:
            accepted.extension = extension
            accepted.headers.append(("Sec-WebSocket-Extensions", value))
    return accepted


def _response_head(status: int, headers: Iterable[tuple[str, str]]) -> bytes:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    lines = [f"HTTP/1.1 {status} {phrase}"]
    lines.extend(f"{name}: {value}" for name, value in headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def accept_headers(
    accepted: ServerAccept, extra_headers: Iterable[tuple[str, str]] = ()
) -> list[tuple[str, str]]:
    """The header fields of the 101 response for an accepted request (RFC 6455 §4.2.2)."""
    return [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Accept", accept_key(accepted.key)),
        *accepted.headers,
        *extra_headers,
    ]


def accept_response(headers: Iterable[tuple[str, str]]) -> bytes:
    """The `101 Switching Protocols` response with the given header fields."""
    return _response_head(101, headers)


def reject_response(error: InvalidHandshake) -> bytes:
    """A complete HTTP error response for a refused handshake: status, the error's
    headers, and its reason as a short text body; the connection closes after it."""
    body = (error.reason + "\n").encode("utf-8")
    headers = [
        *error.headers,
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Length", str(len(body))),
        ("Connection", "close"),
    ]
    return _response_head(error.status, headers) + body


# -- client side ---------------------------------------------------------------------------


def client_headers(
    host: str,
    key: str,
    *,
    origin: str | None = None,
    subprotocols: Sequence[str] = (),
    extensions: str | None = None,
    extra_headers: Iterable[tuple[str, str]] = (),
) -> list[tuple[str, str]]:
    """The header fields of a client's opening handshake (RFC 6455 §4.1): `host` is the
    Host value, `key` a fresh generate_key()."""
    headers = [
        ("Host", host),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", key),
        ("Sec-WebSocket-Version", "13"),
    ]
    if origin is not None:
        headers.append(("Origin", origin))
    if subprotocols:
        headers.append(("Sec-WebSocket-Protocol", ", ".join(subprotocols)))
    if extensions:
        headers.append(("Sec-WebSocket-Extensions", extensions))
    headers.extend(extra_headers)
    return headers


def build_request(resource: str, headers: Iterable[tuple[str, str]]) -> bytes:
    """The request head `GET resource HTTP/1.1` with the given header fields."""
    lines = [f"GET {resource} HTTP/1.1"]
    lines.extend(f"{name}: {value}" for name, value in headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def check_response(
    response: Response,
    key: str,
    *,
    subprotocols: Sequence[str] = (),
    accept_extensions: Callable[[str], Any] | None = None,
) -> tuple[str | None, Any]:
    """Check the server's answer to our handshake (RFC 6455 §4.1, "the client MUST
    validate the server's response"); return (subprotocol, extension object).

    `accept_extensions(value)` receives the Sec-WebSocket-Extensions value when we made
    an offer; without it any extension in the answer fails the handshake.
    """
    headers = response.headers

    def fail(reason: str) -> InvalidHandshake:
        return InvalidHandshake(response.status, reason, headers.items())

    # Item 1: anything but 101 means no WebSocket (§4.1: "the client MUST fail").
    if response.status != 101:
        raise fail(f"server answered {response.status} instead of 101")
    # Items 2 and 3.
    if "websocket" not in headers.tokens("Upgrade"):
        raise fail("missing Upgrade: websocket in the server's answer")
    if "upgrade" not in headers.tokens("Connection"):
        raise fail("missing Connection: Upgrade in the server's answer")
    # Item 4: the accept value proves the server read our key.
    if headers.get_all("Sec-WebSocket-Accept") != [accept_key(key)]:
        raise fail("wrong Sec-WebSocket-Accept")
    # Item 5: only extensions we offered.
    extension: Any = None
    values = headers.get_all("Sec-WebSocket-Extensions")
    if values:
        if accept_extensions is None:
            raise fail("server chose an extension that was not offered")
        extension = accept_extensions(", ".join(values))
    # Item 6: only a subprotocol we offered.
    chosen = headers.get_all("Sec-WebSocket-Protocol")
    if not chosen:
        return None, extension
    if len(chosen) != 1 or chosen[0] not in subprotocols:
        raise fail("server chose a subprotocol that was not offered")
    return chosen[0], extension

"""The errors a caller of fastim.ws can catch, grouped by meaning.

    WebSocketError
    ├── ProtocolError          the peer broke RFC 6455; carries the close code we sent
    ├── InvalidHandshake       the opening handshake failed; carries an HTTP status
    ├── InvalidURI             connect() was given something that is not a ws:// or wss:// URI
    └── ConnectionClosed       the connection is closed; carries the close code and reason
        ├── ConnectionClosedOK     ... with 1000 (normal), 1001 (going away) or 1005 (no code)
        └── ConnectionClosedError  ... with any other code, or 1006 when TCP just dropped

This module imports only the close codes (codes.py), so that every other module can import it.
"""

from __future__ import annotations

from collections.abc import Sequence

from fastim.ws.codes import CloseCode

__all__ = [
    "WebSocketError",
    "ProtocolError",
    "InvalidHandshake",
    "InvalidURI",
    "ConnectionClosed",
    "ConnectionClosedOK",
    "ConnectionClosedError",
]


class WebSocketError(Exception):
    """Base class of every exception raised by fastim.ws."""


class ProtocolError(WebSocketError):
    """The peer violated RFC 6455.

    `code` is the close code the connection is failed with (RFC 6455 §7.4.1): 1002 for a
    framing or sequencing error, 1007 for invalid UTF-8, 1009 for a message over the size
    limit. `reason` is a short human explanation, also sent as the close reason.
    """

    def __init__(self, code: CloseCode, reason: str) -> None:
        super().__init__(f"{int(code)} {reason}")
        self.code = code
        self.reason = reason


class InvalidHandshake(WebSocketError):
    """The opening handshake (RFC 6455 §4) failed.

    On the server side, `status`, `reason` and `headers` describe the HTTP error response the
    server should answer with (for example 426 with `Sec-WebSocket-Version: 13`). On the
    client side, `status` is the status line the server answered with (0 when the response
    could not even be parsed) and `headers` are the response's headers.
    """

    def __init__(
        self,
        status: int,
        reason: str,
        headers: Sequence[tuple[str, str]] = (),
    ) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason
        self.headers: list[tuple[str, str]] = list(headers)


class InvalidURI(WebSocketError, ValueError):
    """connect() was given a URI that is not `ws://host[:port][/path]` or `wss://...`."""


class ConnectionClosed(WebSocketError):
    """The WebSocket connection is closed; nothing more can be sent or received.

    `code` and `reason` are those of the close frame the peer sent, or, when the peer sent
    none, of the close frame we sent (for example 1002 after a protocol error), or 1006
    (abnormal closure) when the TCP connection ended without any close frame.
    """

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(f"connection closed: {code} {reason}".rstrip())
        self.code = code
        self.reason = reason


class ConnectionClosedOK(ConnectionClosed):
    """The connection was closed normally (code 1000, 1001 or 1005)."""


class ConnectionClosedError(ConnectionClosed):
    """The connection was closed with an error code, or dropped without a close frame."""


# RFC 6455 §7.4.1: 1000 and 1001 say the connection did its job; 1005 (an empty close
# frame) means the peer closed cleanly without giving a code.
OK_CLOSE_CODES = frozenset({1000, 1001, 1005})


def connection_closed(code: int, reason: str = "") -> ConnectionClosed:
    """Return the ConnectionClosed subclass instance that matches `code`."""
    if code in OK_CLOSE_CODES:
        return ConnectionClosedOK(code, reason)
    return ConnectionClosedError(code, reason)

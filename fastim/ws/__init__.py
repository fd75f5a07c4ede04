"""fastim.ws: WebSocket (RFC 6455) written by hand, a sans-I/O core with an asyncio layer.

The core (frames, handshake, protocol) does no I/O; see docs/library.md for the API.
"""

from fastim.ws.exceptions import (
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    InvalidHandshake,
    InvalidURI,
    ProtocolError,
    WebSocketError,
)
from fastim.ws.frames import CloseCode, Frame, FrameDecoder, Opcode, apply_mask, encode_frame
from fastim.ws.handshake import Headers, accept_key
from fastim.ws.protocol import Role, State, WebSocketProtocol

__all__ = [
    "CloseCode",
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "Frame",
    "FrameDecoder",
    "Headers",
    "InvalidHandshake",
    "InvalidURI",
    "Opcode",
    "ProtocolError",
    "Role",
    "State",
    "WebSocketError",
    "WebSocketProtocol",
    "accept_key",
    "apply_mask",
    "encode_frame",
]

"""fastim.ws: WebSocket (RFC 6455) written by hand, a sans-I/O core with an asyncio layer.

    from fastim.ws import serve, connect

    async def echo(ws):
        async for message in ws:
            await ws.send(message)

The core (frames, handshake, protocol) does no I/O; the asyncio layer (connection,
server, client) moves its bytes. docs/library.md documents the API and every option.
"""

from fastim.ws.client import connect
from fastim.ws.connection import Connection
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
from fastim.ws.loop import install_uvloop, run
from fastim.ws.prepared import PreparedFrame, broadcast, prepare
from fastim.ws.protocol import Role, State, WebSocketProtocol
from fastim.ws.server import Server, serve, take_over

__all__ = [
    "CloseCode",
    "Connection",
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "Frame",
    "FrameDecoder",
    "Headers",
    "InvalidHandshake",
    "InvalidURI",
    "Opcode",
    "PreparedFrame",
    "ProtocolError",
    "Role",
    "Server",
    "State",
    "WebSocketError",
    "WebSocketProtocol",
    "accept_key",
    "apply_mask",
    "broadcast",
    "connect",
    "encode_frame",
    "install_uvloop",
    "prepare",
    "run",
    "serve",
    "take_over",
]

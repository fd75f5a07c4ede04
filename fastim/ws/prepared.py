"""One message for many connections: its frame encoded once, and compressed once per
set of compression parameters.

A server's data frame carries no mask (RFC 6455 §5.1, §5.3), so the bytes of one
unfragmented message frame (§5.2: header, then payload) are the same on every server
connection that sends the message as it is. `prepare()` builds them once; a fan-out hands
the same bytes object to every such connection (`Connection.send_prepared`, `broadcast`)
instead of encoding the text and packing a header once per connection.

With permessage-deflate the compressed bytes depend on the connection's compression
context (RFC 7692 §7.2.3.2), so they cannot be shared, except where the server runs
without context takeover (`server_no_context_takeover`, §7.1.1.1, which a server may
choose even when the client did not ask): each message is then compressed on its own, and
connections that agreed the same parameters (level, memory level, window) send the same
compressed frame. A PreparedFrame compresses itself once per such parameter set, the
first time a connection with that set sends it, and keeps the frame for the others: the
connections are grouped by their negotiated parameters as they come.

A connection whose frame would differ builds its own from the original message: one
whose compressor keeps its context, a client (it masks every frame with a fresh key,
§5.3), or one whose frames are traced (`on_frame` wants a Frame). Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol as Interface

from fastim.ws.deflate import PerMessageDeflate
from fastim.ws.exceptions import ConnectionClosed
from fastim.ws.frames import SHORT_DATA_HEADERS, Opcode, frame_header

__all__ = ["PreparedFrame", "PreparedSender", "prepare", "broadcast"]


class PreparedFrame:
    """A data message with its unmasked, uncompressed frame, built once by `prepare()`,
    and its compressed frames, built once per parameter set by `compressed_data()`.

    `message` is the message as given (str for text, bytes for binary), for connections
    that must build their own frame; `opcode` is TEXT or BINARY; `payload` the message's
    bytes (UTF-8 for text); `data` the whole frame, FIN set, header then payload.
    """

    __slots__ = ("message", "opcode", "payload", "data", "_compressed")

    def __init__(self, message: str | bytes, opcode: Opcode, payload: bytes, data: bytes) -> None:
        self.message = message
        self.opcode = opcode
        self.payload = payload
        self.data = data
        # Compressed frames by PerMessageDeflate.shared_compression; made on first use.
        self._compressed: dict[tuple[int, int, int], bytes] | None = None

    def compressed_data(self, extension: object) -> bytes | None:
        """The whole compressed frame of this message as a connection with `extension`
        sends it (RSV1 set, RFC 7692 §6), compressed on the first call for its parameters
        and the same bytes object afterwards; None when the connection's compressed bytes
        cannot be shared (context takeover, or an extension other than permessage-deflate).
        """
        if not isinstance(extension, PerMessageDeflate):
            return None
        key = extension.shared_compression
        if key is None:
            return None
        compressed = self._compressed
        if compressed is None:
            compressed = self._compressed = {}
        data = compressed.get(key)
        if data is None:
            # Without context takeover compress() starts from, and leaves, no state.
            payload = extension.compress(self.payload)
            # §5.2 with RFC 7692 §6: FIN and RSV1 set, the opcode, the length, unmasked.
            data = frame_header(0xC0 | self.opcode, len(payload)) + payload
            compressed[key] = data
        return data

    def __repr__(self) -> str:
        return f"<PreparedFrame {self.opcode.name} {len(self.payload)} bytes>"


class PreparedSender(Interface):
    """What broadcast() needs of a connection: fastim.ws.Connection is one. Named by what
    it does rather than imported, so that connection.py may import this module."""

    def send_prepared(self, frame: PreparedFrame) -> None:
        """Send the prepared message; raise ConnectionClosed once the connection is closing."""
        ...  # pragma: no cover


def prepare(message: str | bytes | bytearray | memoryview) -> PreparedFrame:
    """The frame of `message` as a server sends it without compression: str as a text
    message, anything bytes-like as binary (a mutable buffer is copied)."""
    if isinstance(message, str):
        opcode, payload = Opcode.TEXT, message.encode("utf-8")
    elif isinstance(message, bytes | bytearray | memoryview):
        opcode, payload = Opcode.BINARY, bytes(message)
        message = payload
    else:
        raise TypeError(f"prepare() takes str or bytes, not {type(message).__name__}")
    length = len(payload)
    # §5.2: FIN, no RSV bits, the opcode; MASK clear; the length in the fewest bytes.
    header = SHORT_DATA_HEADERS[opcode][length] if length < 126 else frame_header(
        0x80 | opcode, length)
    return PreparedFrame(message, opcode, payload, header + payload)


def broadcast(connections: Iterable[PreparedSender],
              message: str | bytes | bytearray | memoryview | PreparedFrame) -> int:
    """Send `message` to each of `connections` without waiting (as `send_nowait`), its frame
    prepared once. Connections already closed or closing are skipped. Returns how many
    connections it was written to.

    Connections that compress without context takeover share one compressed frame per
    set of negotiated parameters (see PreparedFrame.compressed_data). Like `send_nowait`,
    this never waits for a slow reader: bound what a connection may queue by watching its
    `buffered_amount`."""
    frame = message if isinstance(message, PreparedFrame) else prepare(message)
    sent = 0
    for connection in connections:
        try:
            connection.send_prepared(frame)
        except ConnectionClosed:
            continue
        sent += 1
    return sent

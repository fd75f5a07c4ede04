"""The bytes of a connection as they cross the wire, for learners and for debugging.

    connection = await connect("ws://127.0.0.1:9001/")
    tap(connection, lambda frame: print(frame.direction, frame.data.hex(" ")))

`on_frame` (Options) shows frames as the core sees them: unmasked, and without the masking
key, which is a detail of the decoder. `tap()` shows what the core never keeps: each frame's
bytes exactly as they were read from or written to the transport, header, masking key and
payload as sent (masked, compressed). It sits outside the connection: it wraps the
transport the connection writes to and the protocol the transport reads into, and cuts both
byte streams into frames with `FrameSplitter`, which reads just enough of each header to
know where the frame ends (RFC 6455 §5.2) and checks no rule; the connection's own decoder
does that. A connection nobody taps pays nothing for this module.

A tap starts at the first byte after it is installed: bytes read together with the opening
handshake's head and already given to the connection are not seen again (browsers and
fastim's client send nothing before the 101).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TextIO

from fastim.ws.connection import Connection
from fastim.ws.frames import Frame, Opcode, apply_mask, encode_frame
from fastim.ws.handshake import accept_response, build_request
from fastim.ws.protocol import Role, State

__all__ = [
    "WireFrame",
    "FrameSplitter",
    "Tap",
    "tap",
    "request_head",
    "response_head",
    "frame_summary",
    "frame_detail",
    "trace_connection",
]

logger = logging.getLogger("fastim.ws")

# Payload bytes kept of each frame by default: enough for a learner to read, bounded so
# that a tap never holds a big message twice.
DEFAULT_KEEP = 64 * 1024


@dataclass(frozen=True, slots=True)
class WireFrame:
    """One frame as it crossed the wire. `data` is its bytes (the first `header_size` are
    the header with the masking key, if any), cut after `keep` payload bytes; `size` is its
    whole length on the wire."""

    direction: str  # "recv" or "send", as seen by the tapped endpoint
    data: bytes
    size: int
    header_size: int

    @property
    def fin(self) -> bool:
        return bool(self.data[0] & 0x80)

    @property
    def rsv(self) -> tuple[bool, bool, bool]:
        first = self.data[0]
        return bool(first & 0x40), bool(first & 0x20), bool(first & 0x10)

    @property
    def opcode(self) -> int:
        """The opcode's value: reserved ones (0x3-0x7, 0xB-0xF) are not Opcode members."""
        return self.data[0] & 0x0F

    @property
    def opcode_name(self) -> str:
        opcode = self.opcode
        return Opcode(opcode).name if opcode in _OPCODES else f"0x{opcode:x}"

    @property
    def masked(self) -> bool:
        return bool(self.data[1] & 0x80)

    @property
    def length(self) -> int:
        """The payload length the header announces."""
        return self.size - self.header_size

    @property
    def header(self) -> bytes:
        """The header without the masking key: 2, 4 or 10 bytes (§5.2)."""
        return self.data[: self.header_size - 4 if self.masked else self.header_size]

    @property
    def mask(self) -> bytes | None:
        """The 4-byte masking key (§5.3), or None."""
        return self.data[self.header_size - 4 : self.header_size] if self.masked else None

    @property
    def wire_payload(self) -> bytes:
        """The payload bytes as they were on the wire (masked, if the frame is)."""
        return self.data[self.header_size :]

    @property
    def payload(self) -> bytes:
        """The payload unmasked (still compressed, if RSV1 says so)."""
        mask = self.mask
        return self.wire_payload if mask is None else apply_mask(self.wire_payload, mask)

    @property
    def complete(self) -> bool:
        """Whether `data` holds the whole frame (see `keep`)."""
        return len(self.data) == self.size


_OPCODES = frozenset(int(op) for op in Opcode)


def header_size(data: bytes | bytearray) -> tuple[int, int] | None:
    """(header size, payload length) of the frame at the start of `data`, or None while
    the bytes that say so have not all arrived (RFC 6455 §5.2)."""
    if len(data) < 2:
        return None
    length = data[1] & 0x7F
    extra = 2 if length == 126 else 8 if length == 127 else 0
    if len(data) < 2 + extra:
        return None
    if extra:
        length = int.from_bytes(data[2 : 2 + extra], "big")
    return 2 + extra + (4 if data[1] & 0x80 else 0), length


class FrameSplitter:
    """Cuts one direction's byte stream into WireFrames, whatever the chunks. Keeps at most
    `keep` payload bytes of a frame; the rest is counted and dropped."""

    def __init__(self, direction: str, keep: int = DEFAULT_KEEP) -> None:
        self.direction = direction
        self.keep = keep
        self._buffer = bytearray()
        self._skip = 0  # bytes of the current frame still to drop, beyond `keep`

    def feed(self, data: bytes | bytearray | memoryview) -> list[WireFrame]:
        """The frames that `data` completes (or fills up to `keep`), in order."""
        frames: list[WireFrame] = []
        buffer = self._buffer
        buffer += data
        while buffer:
            if self._skip:
                dropped = min(self._skip, len(buffer))
                del buffer[:dropped]
                self._skip -= dropped
                continue
            sizes = header_size(buffer)
            if sizes is None:
                break
            head, length = sizes
            size = head + length
            kept = head + min(length, self.keep)
            if len(buffer) < kept:
                break
            frames.append(WireFrame(self.direction, bytes(buffer[:kept]), size, head))
            del buffer[:kept]
            self._skip = size - kept
        return frames


# -- the tap ----------------------------------------------------------------------------------

FrameObserver = Callable[[WireFrame], None]


class _TappedTransport:
    """The connection's transport, with every write shown to the tap first."""

    def __init__(self, transport: asyncio.Transport, tap: Tap) -> None:
        self._transport = transport
        self._tap = tap

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._tap._saw(self._tap._sent, data)
        self._transport.write(data)

    def writelines(self, lines: Iterable[bytes | bytearray | memoryview]) -> None:
        lines = list(lines)
        for data in lines:
            self._tap._saw(self._tap._sent, data)
        self._transport.writelines(lines)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _TappedProtocol(asyncio.Protocol):
    """Stands between the transport and the connection: shows every read to the tap,
    then hands it on."""

    def __init__(self, connection: Connection, tap: Tap) -> None:
        self._connection = connection
        self._tap = tap

    def data_received(self, data: bytes) -> None:
        self._tap._saw(self._tap._received, data)
        self._connection.data_received(data)

    def eof_received(self) -> bool | None:
        return self._connection.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._connection.connection_lost(exc)

    def pause_writing(self) -> None:
        self._connection.pause_writing()

    def resume_writing(self) -> None:
        self._connection.resume_writing()


class Tap:
    """A tapped connection (see `tap`)."""

    def __init__(self, connection: Connection, observer: FrameObserver, keep: int) -> None:
        self.connection = connection
        self.observer = observer
        self._received = FrameSplitter("recv", keep)
        self._sent = FrameSplitter("send", keep)

    def _saw(self, splitter: FrameSplitter, data: bytes | bytearray | memoryview) -> None:
        try:
            for frame in splitter.feed(data):
                self.observer(frame)
        except Exception:
            # Watching must never break what is watched.
            logger.exception("frame observer failed")

    def send_frames(self, frames: Iterable[Frame]) -> None:
        """Write `frames` as they are, after what the connection has already queued: for
        showing what send() never does, e.g. a message in several fragments (§5.4). The
        caller keeps them valid: data frames only, a message's fragments together, no
        RSV bit the connection did not negotiate. A client masks each one (§5.3)."""
        connection = self.connection
        if connection.state is not State.OPEN:
            raise RuntimeError("the connection is closing")
        connection._flush()  # keep the order of what the connection has queued
        transport = connection._transport
        assert transport is not None
        for frame in frames:
            if frame.opcode.is_control:
                raise ValueError("send_frames() sends data frames only")
            mask = os.urandom(4) if connection._core.role is Role.CLIENT else None
            transport.write(encode_frame(frame, mask))


def tap(connection: Connection, observer: FrameObserver, *, keep: int = DEFAULT_KEEP) -> Tap:
    """Call `observer(frame)` with a WireFrame for every frame `connection` reads or writes
    from now on, as its bytes crossed the wire. `keep` bounds the payload bytes kept per
    frame. Call it once the connection is open, e.g. first thing in a server's handler."""
    transport = connection._transport
    if transport is None or isinstance(transport, _TappedTransport):
        raise RuntimeError("tap() takes an open connection that is not tapped yet")
    watcher = Tap(connection, observer, keep)
    transport.set_protocol(_TappedProtocol(connection, watcher))
    connection._transport = _TappedTransport(transport, watcher)  # type: ignore[assignment]
    return watcher


# -- the opening handshake ----------------------------------------------------------------------


def request_head(connection: Connection) -> bytes:
    """The opening handshake's request head. On a server fastim.ws read from the socket
    itself (serve), the bytes as they came; otherwise the request line and fields rebuilt
    from what the connection keeps (on a client, exactly what it sent)."""
    raw = connection._headers
    if isinstance(raw, bytes):
        return raw
    query = connection._query
    if not isinstance(query, str):  # parsed already: rebuild it
        from urllib.parse import urlencode

        query = urlencode(query, doseq=True)
    target = connection.path + (f"?{query}" if query else "")
    return build_request(target, connection.headers)


def response_head(connection: Connection) -> bytes:
    """The 101 response head: on a server exactly what it wrote; on a client rebuilt from
    the fields it read (with the standard reason phrase, whatever the server's was)."""
    return accept_response(connection.response_headers)


# -- text for terminals ---------------------------------------------------------------------------

SUMMARY_PAYLOAD_BYTES = 16  # payload bytes shown in a summary line
DETAIL_PAYLOAD_BYTES = 64  # payload bytes shown with --trace=bytes
_BYTES_PER_LINE = 16


def frame_summary(frame: WireFrame) -> str:
    """One line, e.g. `recv FIN=1 RSV=000 TEXT MASK=1 len=5 b'Hello'` (the payload
    unmasked, still compressed if it is)."""
    payload = frame.payload
    shown = repr(payload[:SUMMARY_PAYLOAD_BYTES]) + (
        "..." if frame.length > SUMMARY_PAYLOAD_BYTES else ""
    )
    rsv = "".join(str(int(bit)) for bit in frame.rsv)
    return (
        f"{frame.direction} FIN={int(frame.fin)} RSV={rsv} {frame.opcode_name} "
        f"MASK={int(frame.masked)} len={frame.length} {shown}"
    )


def frame_detail(frame: WireFrame, *, wire_bytes: bool = False) -> list[str]:
    """The lines under a summary: the header's bytes and the masking key; with
    `wire_bytes`, the payload as it was on the wire (masked), 16 bytes a line."""
    mask = frame.mask
    key = f"  masking key {mask.hex(' ')}" if mask is not None else ""
    lines = [f"  header {frame.header.hex(' ')}{key}"]
    if wire_bytes and frame.length:
        payload = frame.wire_payload[:DETAIL_PAYLOAD_BYTES]
        label = "  payload (masked)" if mask is not None else "  payload"
        for i in range(0, len(payload), _BYTES_PER_LINE):
            prefix = label if i == 0 else " " * len(label)
            lines.append(f"{prefix} {payload[i : i + _BYTES_PER_LINE].hex(' ')}")
        if frame.length > DETAIL_PAYLOAD_BYTES:
            lines.append(f"{' ' * len(label)} ... {frame.length - DETAIL_PAYLOAD_BYTES} more")
    return lines


def trace_connection(connection: Connection, out: TextIO, level: str) -> Tap:
    """Print the opening handshake's heads, then tap the connection and print every frame
    (`level` "headers": a summary, the header's bytes and the masking key; "bytes": also
    the payload as it was on the wire)."""
    peer = connection.remote_address
    where = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
    server = connection._core.role is Role.SERVER
    heads = [(request_head(connection), "recv" if server else "send")]
    heads.append((response_head(connection), "send" if server else "recv"))
    for head, direction in heads:
        for line in head.decode("latin-1").rstrip("\r\n").split("\r\n"):
            print(f"{where} {direction} {line}", file=out)
    out.flush()

    def show(frame: WireFrame) -> None:
        lines = [frame_summary(frame), *frame_detail(frame, wire_bytes=level == "bytes")]
        print("\n".join(f"{where} {line}" for line in lines), file=out, flush=True)

    return tap(connection, show)

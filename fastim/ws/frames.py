"""WebSocket frames (RFC 6455 §5): opcodes, close codes, masking, encoder and decoder.

The base framing protocol, §5.2:

      0                   1                   2                   3
      0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
     +-+-+-+-+-------+-+-------------+-------------------------------+
     |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
     |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
     |N|V|V|V|       |S|             |   (if payload len==126/127)   |
     | |1|2|3|       |K|             |                               |
     +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
     |     Extended payload length continued, if payload len == 127  |
     + - - - - - - - - - - - - - - - +-------------------------------+
     |                               |Masking-key, if MASK set to 1  |
     +-------------------------------+-------------------------------+
     | Masking-key (continued)       |          Payload Data         |
     +-------------------------------- - - - - - - - - - - - - - - - +

Nothing here does I/O: the decoder is fed bytes and hands out frames.
"""

from __future__ import annotations

import importlib
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, TypeVar
from typing import Protocol as Interface

from fastim.ws.codes import CloseCode
from fastim.ws.exceptions import ProtocolError

__all__ = [
    "Opcode",
    "CloseCode",
    "Frame",
    "FrameHeader",
    "FrameDecoder",
    "MessageQueue",
    "apply_mask",
    "encode_frame",
    "frame_header",
    "first_octet",
    "SHORT_DATA_HEADERS",
    "encode_close_payload",
    "decode_close_payload",
    "is_valid_close_code",
    "MAX_CONTROL_PAYLOAD",
]


class Opcode(IntEnum):
    """Frame opcodes (RFC 6455 §5.2, §11.8). 0x3-0x7 and 0xB-0xF are reserved."""

    CONTINUATION = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA

    @property
    def is_control(self) -> bool:
        """Control frames have the high bit of the opcode set (RFC 6455 §5.5)."""
        return self >= 0x8


# RFC 6455 §5.5: "All control frames MUST have a payload length of 125 bytes or less".
MAX_CONTROL_PAYLOAD = 125

# Opcode by the low 4 bits of a frame's first octet; None for the reserved ones (§5.2).
_OPCODES: tuple[Opcode | None, ...] = tuple(
    Opcode(value) if value in Opcode._value2member_map_ else None for value in range(16)
)


def is_valid_close_code(code: int) -> bool:
    """Whether `code` may appear in a close frame on the wire (RFC 6455 §7.4).

    1000-1003 and 1007-1011 are defined by the RFC, 1012-1014 were registered with IANA
    since (§11.7), 3000-3999 are for libraries and frameworks, 4000-4999 for private use.
    1004 is reserved; 1005, 1006 and 1015 are reserved for reporting, never sent (§7.4.1);
    the rest of 1016-2999 is unassigned, and codes below 1000 or from 5000 up are not used.
    """
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999


@dataclass(slots=True)
class Frame:
    """One frame, with its payload unmasked. `masked` tells whether it was (or will be)
    masked on the wire; the masking key itself is a detail of the encoder and decoder."""

    opcode: Opcode
    payload: bytes = b""
    fin: bool = True
    rsv1: bool = False
    rsv2: bool = False
    rsv3: bool = False
    masked: bool = False


class MessageQueue(Interface):
    """Where FrameDecoder.read_messages() puts the data of whole messages (e.g. a list)."""

    def append(self, data: str | bytes, /) -> None:
        """Add one message's data at the end."""
        ...  # pragma: no cover


@dataclass(slots=True)
class FrameHeader:
    """The fixed part of a frame, known before its payload has arrived."""

    fin: bool
    rsv1: bool
    rsv2: bool
    rsv3: bool
    opcode: Opcode
    length: int
    mask: bytes | None  # the 4-byte masking key, None when the frame is not masked
    size: int  # bytes taken by the header on the wire: 2 to 14


# Masking (RFC 6455 §5.3): octet i of the payload is XORed with octet i % 4 of the key.
# Pure Python cannot afford a loop over the bytes. Short payloads are XORed as one big
# integer: the key repeated is the 4-byte key times 0x00000001_00000001_..., a product
# without carries, cut to the payload's length. Long ones go through bytes.translate over
# each of the four interleaved strides (translate runs in C, with one 256-byte XOR table
# per key octet, built on first use): about 1.2 GB/s here against 0.4-0.8 for the integer
# at those sizes; measured crossover near 1 KiB (docs/performance.md).
_TRANSLATE_THRESHOLD = 1024
_SHORT = 126  # the repeat/cut tables cover every 7-bit payload length (§5.2)
_KEY_REPEAT = [sum(1 << (32 * i) for i in range((n + 3) // 4)) for n in range(_SHORT)]
_LOW_BYTES = [(1 << (8 * n)) - 1 for n in range(_SHORT)]
_XOR_TABLES: dict[int, bytes] = {}
# Payloads up to this size are sliced out of the receive buffer (a copy, cheaper than a
# memoryview and its release below this size); larger ones are read through a memoryview.
_VIEW_THRESHOLD = 16 * 1024


def _xor_table(key_octet: int) -> bytes:
    table = _XOR_TABLES.get(key_octet)
    if table is None:
        table = _XOR_TABLES[key_octet] = bytes(b ^ key_octet for b in range(256))
    return table


def _mask_python(data: bytes | bytearray | memoryview, mask: bytes | bytearray) -> bytes:
    """XOR `data` with the 4-byte `mask` from its first octet, in pure Python."""
    n = len(data)
    if n < _SHORT:
        key = int.from_bytes(mask, "little") * _KEY_REPEAT[n] & _LOW_BYTES[n]
        return (int.from_bytes(data, "little") ^ key).to_bytes(n, "little")
    if n < _TRANSLATE_THRESHOLD:
        key_bytes = (mask * (n // 4 + 1))[:n]
        return (int.from_bytes(data, "little") ^ int.from_bytes(key_bytes, "little")).to_bytes(
            n, "little"
        )
    out = bytearray(data)
    for i in range(4):
        out[i::4] = out[i::4].translate(_xor_table(mask[i]))
    return bytes(out)


_T = TypeVar("_T")


def from_speedups(name: str, fallback: _T, speedups: bool) -> _T:
    """`fastim.ws._speedups.<name>` where the optional C extension was built (setup.py
    compiles it where a compiler is present) and `speedups` is true, else `fallback`, the
    same in Python. FASTIM_WS_SPEEDUPS=0 in the environment forces the latter."""
    if speedups:
        try:
            module: Any = importlib.import_module("fastim.ws._speedups")
        except ImportError:  # no compiler at install time: the pure-Python path
            return fallback
        return getattr(module, name, fallback)  # an extension built before `name`: Python
    return fallback


def _select_mask(
    speedups: bool,
) -> Callable[[bytes | bytearray | memoryview, bytes | bytearray], bytes]:
    """The masking function to use: _speedups.mask or the pure-Python one."""
    return from_speedups("mask", _mask_python, speedups)


_SPEEDUPS = os.environ.get("FASTIM_WS_SPEEDUPS", "1") != "0"

_mask = _select_mask(_SPEEDUPS)

# A large payload is received straight into the object that becomes the message's bytes,
# unmasked read by read as it arrives (FrameDecoder._receive_directly): no receive buffer
# grown to the frame's size and copied out again at the end. Large means at least this
# many bytes; and the switch is made once an eighth of the payload has arrived, so that a
# peer cannot make us allocate more than eight times what it has sent.
_DIRECT_THRESHOLD = 64 * 1024
try:
    from fastim.ws._speedups import alloc as _alloc_c
    from fastim.ws._speedups import mask_into as _mask_into_c
except ImportError:  # pragma: no cover - the extension is built on the project's machines
    _alloc_c = _mask_into_c = None  # type: ignore[assignment]


def _mask_into_python(
    target: bytes | bytearray,
    offset: int,
    data: bytes | bytearray | memoryview,
    key: bytes | bytearray | None,
) -> None:
    """Pure-Python `_speedups.mask_into`, on a bytearray target."""
    assert isinstance(target, bytearray)
    end = offset + len(data)
    target[offset:end] = data if key is None else apply_mask(data, bytes(key), offset)


def apply_mask(data: bytes | bytearray | memoryview, mask: bytes, offset: int = 0) -> bytes:
    """XOR `data` with the 4-byte masking key `mask` (RFC 6455 §5.3).

    Masking is its own inverse: the same call masks and unmasks. `offset` is the position
    of `data[0]` within the frame's payload, for unmasking a payload piece by piece.
    """
    shift = offset % 4
    if shift:
        mask = mask[shift:] + mask[:shift]
    return _mask(data, mask)


_PACK_7 = struct.Struct("!BB").pack
_PACK_16 = struct.Struct("!BBH").pack
_PACK_64 = struct.Struct("!BBQ").pack


def frame_header(first: int, length: int, mask_bit: int = 0) -> bytes:
    """The octets before a frame's masking key and payload (RFC 6455 §5.2): `first` (FIN,
    RSV1-3 and the opcode), then the MASK bit (0x80 or 0) with the payload length in the
    minimal number of bytes, as §5.2 requires: 7 bits, or 126 and 16 bits, or 127 and 64."""
    if length < 126:
        return _PACK_7(first, mask_bit | length)
    if length < 1 << 16:
        return _PACK_16(first, mask_bit | 126, length)
    return _PACK_64(first, mask_bit | 127, length)


# The headers a server writes most: unfragmented, unmasked text and binary frames of under
# 126 bytes, precomputed (a list lookup costs half of packing two octets).
SHORT_DATA_HEADERS: dict[Opcode, list[bytes]] = {
    opcode: [frame_header(0x80 | opcode, n) for n in range(126)]
    for opcode in (Opcode.TEXT, Opcode.BINARY)
}
_SHORT_HEADERS_BY_FIRST = {0x80 | opcode: SHORT_DATA_HEADERS[opcode] for opcode in SHORT_DATA_HEADERS}


def first_octet(frame: Frame) -> int:
    """A frame's first octet: FIN, RSV1, RSV2, RSV3, then the 4-bit opcode (§5.2)."""
    return (
        (0x80 if frame.fin else 0)
        | (0x40 if frame.rsv1 else 0)
        | (0x20 if frame.rsv2 else 0)
        | (0x10 if frame.rsv3 else 0)
        | frame.opcode
    )


def encode_frame(frame: Frame, mask: bytes | None = None) -> bytes:
    """Serialise `frame` (RFC 6455 §5.2). With a 4-byte `mask` the payload is masked, as a
    client must do (§5.3); without one the frame goes unmasked, as a server must send it."""
    first = first_octet(frame)
    payload = frame.payload
    if mask is None:
        return frame_header(first, len(payload)) + payload
    return frame_header(first, len(payload), 0x80) + mask + _mask(payload, mask)


# The two ends of the hot path of a request/response peer, one whole small frame read and
# one written, each in one call. WebSocketProtocol.receive_message and message_bytes use
# them; `_speedups.parse_message` and `encode_message` do the same in C.


def _parse_message_python(data: bytes, masked: bool, max_size: int | None) -> str | bytes | None:
    """The message of `data` when it is exactly one whole data frame: FIN set, no RSV bit,
    text or binary, a 7- or 16-bit length (§5.2), masked if and only if `masked` (§5.1),
    the payload at most `max_size` bytes (None: no limit). Unmasked (§5.3), it comes back
    as bytes for binary and as str for text that is valid UTF-8 (§8.1). Anything else
    returns None: the caller then parses `data` the long way, which has every check."""
    size = len(data)
    if size < 2:
        return None
    first = data[0]
    if first != 0x82 and first != 0x81:  # FIN + BINARY, FIN + TEXT (§5.2)
        return None
    if (data[1] >= 0x80) != masked:
        return None
    length = data[1] & 0x7F
    start = 2
    if length >= 126:
        if length == 127 or size < 4:
            return None
        length = data[2] << 8 | data[3]  # §5.2: a 16-bit length
        start = 4
    if masked:
        start += 4
    if size != start + length or (max_size is not None and length > max_size):
        return None
    payload = _mask(data[start:], data[start - 4 : start]) if masked else data[start:]
    if first == 0x82:
        return payload
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _encode_message_python(message: object, key: bytes | None, limit: int) -> bytes | None:
    """The one frame of a data message, header and payload joined: a str as text (UTF-8),
    exactly bytes as binary (anything else returns None), masked with the 4-byte `key`, or
    unmasked when it is None (§5.2, §5.3). None when the payload is `limit` bytes or more."""
    if type(message) is bytes:
        first, payload = 0x82, message
    elif type(message) is str:
        first, payload = 0x81, message.encode("utf-8")
    else:
        return None
    length = len(payload)
    if length >= limit:
        return None
    if key is None:
        if length < 126:
            return _SHORT_HEADERS_BY_FIRST[first][length] + payload
        return frame_header(first, length) + payload
    return frame_header(first, length, 0x80) + key + _mask(payload, key)


ParseMessage = Callable[[bytes, bool, int | None], str | bytes | None]
EncodeMessage = Callable[[object, bytes | None, int], bytes | None]


def _select_message_codec(speedups: bool) -> tuple[ParseMessage, EncodeMessage]:
    """parse_message and encode_message from the C extension where it was built and
    `speedups` is true (as for _select_mask), else the pure-Python ones above."""
    return (from_speedups("parse_message", _parse_message_python, speedups),
            from_speedups("encode_message", _encode_message_python, speedups))


_parse_message, _encode_message = _select_message_codec(_SPEEDUPS)


def encode_close_payload(code: int | None, reason: str = "") -> bytes:
    """The payload of a close frame: a 2-byte code then a UTF-8 reason (RFC 6455 §5.5.1).
    `code=None` gives the empty payload, which the peer reads as 1005 (no status)."""
    if code is None:
        return b""
    return struct.pack("!H", code) + reason.encode("utf-8")


def decode_close_payload(payload: bytes) -> tuple[int, str]:
    """Parse a received close frame's payload into (code, reason) (RFC 6455 §5.5.1, §7.1.5).

    An empty payload gives (1005, ""). A 1-byte payload or a code that may not be sent is a
    protocol error (1002); a reason that is not UTF-8 is invalid data (1007).
    """
    if not payload:
        return CloseCode.NO_STATUS_RCVD, ""
    if len(payload) == 1:
        raise ProtocolError(CloseCode.PROTOCOL_ERROR, "close frame with a 1-byte payload")
    code = int.from_bytes(payload[:2], "big")
    if not is_valid_close_code(code):
        raise ProtocolError(CloseCode.PROTOCOL_ERROR, f"invalid close code {code}")
    try:
        reason = payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError(CloseCode.INVALID_DATA, "close reason is not UTF-8") from None
    return code, reason


class FrameDecoder:
    """Incremental frame decoder: `feed()` it bytes in chunks of any size, then call
    `next_frame()` until it returns None.

    The decoder enforces the rules a single frame can break on its own (RFC 6455 §5.2,
    §5.5) and raises ProtocolError for them; rules about sequences of frames (fragmentation,
    RSV bits and extensions) belong to the protocol state machine in protocol.py.

    - `expect_masked`: True on a server (client frames must be masked, §5.1), False on a
      client (server frames must not be), None to accept both.
    - `max_data_length`: the largest payload the next data frame may have, or None. The
      protocol lowers it while a fragmented message grows; a data frame over it fails with
      1009 as soon as its header is read, before any of its payload is buffered.
    - `pending_header` (read it, do not set it): the header of the frame whose payload is
      still arriving, or None.
    - `buffer` (read it, do not change it): the bytes received and not yet decoded; it
      always starts at the header of the next frame, so it is empty when nothing is due.
    """

    __slots__ = (
        "expect_masked",
        "max_data_length",
        "pending_header",
        "buffer",
        "_unmasked",
        "_payload",
        "_filled",
    )

    def __init__(
        self,
        *,
        expect_masked: bool | None = None,
        max_data_length: int | None = None,
    ) -> None:
        self.expect_masked = expect_masked
        self.max_data_length = max_data_length
        self.pending_header: FrameHeader | None = None
        # One buffer; it always starts at the header of the frame being decoded.
        self.buffer = bytearray()
        # How many payload bytes of the pending frame have been unmasked in place (by
        # peek_payload), so they are never unmasked twice.
        self._unmasked = 0
        # A large pending frame's payload, received directly (see _DIRECT_THRESHOLD), and
        # how many of its bytes have arrived; None and 0 otherwise.
        self._payload: bytes | bytearray | None = None
        self._filled = 0

    @property
    def buffered(self) -> int:
        """How many bytes are buffered and not yet handed out."""
        return len(self.buffer) + self._filled

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Append received bytes."""
        payload = self._payload
        if payload is not None:
            # What belongs to the pending frame goes straight into its payload.
            header = self.pending_header
            assert header is not None
            filled = self._filled
            missing = len(payload) - filled
            with memoryview(data) as view:
                with view[:missing] as piece:
                    self._put(piece, filled, header.mask)
                    self._filled = filled + len(piece)
                if len(view) > missing:
                    with view[missing:] as rest:
                        self.buffer += rest
            return
        self.buffer += data

    def _put(
        self, piece: bytes | bytearray | memoryview, offset: int, key: bytes | None
    ) -> None:
        payload = self._payload
        if type(payload) is bytearray:
            _mask_into_python(payload, offset, piece, key)
        else:
            assert payload is not None
            _mask_into_c(payload, offset, piece, key)

    def _receive_directly(self, header: FrameHeader) -> None:
        """Move the part of the pending frame's payload that has arrived into the object
        that becomes its payload; what follows will be put there as it comes (feed)."""
        # The C extension fills a bytes object in place; without it (or with the tests'
        # pure-Python masking in use) a bytearray is filled and copied once at the end.
        c = _mask is not _mask_python and _alloc_c is not None
        self._payload = _alloc_c(header.length) if c else bytearray(header.length)
        done = self._unmasked  # peek_payload unmasked these in place already
        buffer = self.buffer
        with memoryview(buffer) as view:
            received = view[header.size :]
            self._put(received[:done], 0, None)
            self._put(received[done:], done, header.mask)
            self._filled = len(received)
            received.release()  # before the buffer may change
        buffer.clear()
        self._unmasked = 0

    def next_frame(self) -> Frame | None:
        """Return the next complete frame, or None until more bytes are fed.

        Raises ProtocolError for a malformed frame; the stream cannot be trusted after it.
        """
        buffer = self.buffer
        header = self.pending_header
        if header is not None:
            return self._complete(header)
        # The header is parsed on the spot, and a frame that is all there (the common case:
        # small messages arrive whole) becomes a Frame without a FrameHeader in between.
        if len(buffer) < 2:
            return None
        first = buffer[0]
        second = buffer[1]
        opcode = _OPCODES[first & 0x0F]
        if opcode is None:
            # §5.2: "If an unknown opcode is received, the receiving endpoint MUST _Fail_".
            raise ProtocolError(CloseCode.PROTOCOL_ERROR, f"reserved opcode {first & 0x0F:#x}")
        length = second & 0x7F
        masked = second >= 0x80
        if opcode >= 0x8:
            # §5.5: control frames are never fragmented and carry at most 125 bytes.
            if first < 0x80:
                raise ProtocolError(CloseCode.PROTOCOL_ERROR, "fragmented control frame")
            if length > MAX_CONTROL_PAYLOAD:
                raise ProtocolError(CloseCode.PROTOCOL_ERROR, "control frame too long")
        expect_masked = self.expect_masked
        if expect_masked is not None and masked != expect_masked:
            # §5.1: a server closes on an unmasked frame, a client on a masked one.
            raise ProtocolError(
                CloseCode.PROTOCOL_ERROR,
                "unmasked client frame" if expect_masked else "masked server frame",
            )
        if length < 126:
            size = 2
        else:
            size = 4 if length == 126 else 10
            if len(buffer) < size:
                return None
            if length == 126:
                (length,) = struct.unpack_from("!H", buffer, 2)
            else:
                (length,) = struct.unpack_from("!Q", buffer, 2)
                if length >> 63:
                    # §5.2: "the most significant bit MUST be 0".
                    raise ProtocolError(
                        CloseCode.PROTOCOL_ERROR, "64-bit length with top bit set"
                    )
        limit = self.max_data_length
        if limit is not None and length > limit and opcode < 0x8:
            # Refuse before buffering the payload (§10.4: limits on frame and message size).
            raise ProtocolError(CloseCode.MESSAGE_TOO_BIG, "message too big")
        mask: bytes | None = None
        if masked:
            if len(buffer) < size + 4:
                return None
            mask = bytes(buffer[size : size + 4])
            size += 4
        end = size + length
        if len(buffer) < end:
            # The payload is still arriving: keep the header (peek_payload reads it).
            self.pending_header = FrameHeader(
                first >= 0x80,
                (first & 0x40) != 0,
                (first & 0x20) != 0,
                (first & 0x10) != 0,
                opcode,
                length,
                mask,
                size,
            )
            if length >= _DIRECT_THRESHOLD and (len(buffer) - size) * 8 >= length:
                self._receive_directly(self.pending_header)  # see _DIRECT_THRESHOLD
            return None
        if length < _VIEW_THRESHOLD:
            # A small payload: slicing copies a few bytes, cheaper than a memoryview.
            payload = bytes(buffer[size:end]) if mask is None else _mask(buffer[size:end], mask)
        else:
            with memoryview(buffer) as view:
                payload = bytes(view[size:end]) if mask is None else _mask(view[size:end], mask)
        del buffer[:end]
        return Frame(
            opcode,
            payload,
            first >= 0x80,
            (first & 0x40) != 0,
            (first & 0x20) != 0,
            (first & 0x10) != 0,
            masked,
        )

    def read_messages(
        self, queue: MessageQueue, max_count: int | None = None, max_size: int | None = None
    ) -> int:
        """The fast path for the frames that come most often: whole messages, each in one
        frame (FIN set, no RSV bit, text or binary, a 7- or 16-bit length, RFC 6455 §5.4),
        that have fully arrived. Appends their data to `queue` (a text message as str, a
        binary one as bytes), at most `max_count` of them, and returns how many.

        Stops, consuming nothing more, at the first frame of any other kind, incomplete,
        longer than `max_size` or `max_data_length`, or breaking any rule, including text
        that is not UTF-8 (§8.1): `next_frame()` then decodes that one with every check and
        error. In a loop over the buffer, without a Frame or a copy of what follows.
        """
        if self.pending_header is not None:
            return 0
        buffer = self.buffer
        available = len(buffer)
        expect_masked = self.expect_masked
        limit = self.max_data_length
        if max_size is not None and (limit is None or max_size < limit):
            limit = max_size
        count = pos = 0
        try:
            while available - pos >= 2 and (max_count is None or count < max_count):
                first = buffer[pos]
                if first != 0x82 and first != 0x81:  # FIN + BINARY, FIN + TEXT
                    break
                second = buffer[pos + 1]
                masked = second >= 0x80
                if masked != expect_masked and expect_masked is not None:
                    break
                length = second & 0x7F
                start = pos + 2
                if length >= 126:
                    if length == 127 or available - pos < 4:
                        break
                    length = buffer[pos + 2] << 8 | buffer[pos + 3]  # §5.2: 16 bits
                    start = pos + 4
                if limit is not None and length > limit:
                    break
                if masked:
                    start += 4
                end = start + length
                if end > available:
                    break
                if not masked:
                    payload = bytes(buffer[start:end])
                elif length < _VIEW_THRESHOLD:
                    payload = _mask(buffer[start:end], buffer[start - 4 : start])
                else:
                    with memoryview(buffer) as view:
                        payload = _mask(view[start:end], bytes(view[start - 4 : start]))
                if first == 0x82:
                    queue.append(payload)
                else:
                    try:
                        queue.append(payload.decode("utf-8"))
                    except UnicodeDecodeError:
                        break  # next_frame() and the protocol fail it with 1007
                pos = end
                count += 1
        finally:
            if pos:
                del buffer[:pos]
        return count

    def _complete(self, header: FrameHeader) -> Frame | None:
        """The pending frame, once the rest of its payload has arrived."""
        direct = self._payload
        if direct is not None:
            if self._filled < header.length:
                return None
            self._payload = None
            self._filled = 0
            self.pending_header = None
            return Frame(
                header.opcode,
                direct if type(direct) is bytes else bytes(direct),
                header.fin,
                header.rsv1,
                header.rsv2,
                header.rsv3,
                header.mask is not None,
            )
        buffer = self.buffer
        end = header.size + header.length
        if len(buffer) < end:
            received = len(buffer) - header.size
            if header.length >= _DIRECT_THRESHOLD and received * 8 >= header.length:
                self._receive_directly(header)
            return None
        mask = header.mask
        if mask is not None and self._unmasked:
            # peek_payload() already unmasked a prefix in place: finish the job there.
            self._unmask_in_place(header, header.length)
            mask = None
        with memoryview(buffer) as view:
            payload = bytes(view[header.size : end]) if mask is None else _mask(
                view[header.size : end], mask
            )
        del buffer[:end]
        self.pending_header = None
        self._unmasked = 0
        return Frame(
            header.opcode,
            payload,
            header.fin,
            header.rsv1,
            header.rsv2,
            header.rsv3,
            header.mask is not None,
        )

    def peek_payload(self, start: int) -> bytes:
        """The unmasked bytes of the pending frame's payload from `start` to what has
        arrived so far. Lets the protocol check the UTF-8 of a text frame that is still
        arriving (RFC 6455 §8.1 fail fast) without waiting for the whole frame."""
        header = self.pending_header
        if header is None:
            return b""
        if self._payload is not None:
            return bytes(self._payload[start : self._filled])
        available = min(len(self.buffer) - header.size, header.length)
        if header.mask is not None:
            self._unmask_in_place(header, available)
        return bytes(self.buffer[header.size + start : header.size + available])

    def _unmask_in_place(self, header: FrameHeader, upto: int) -> None:
        assert header.mask is not None
        done = self._unmasked
        if upto > done:
            lo, hi = header.size + done, header.size + upto
            self.buffer[lo:hi] = apply_mask(self.buffer[lo:hi], header.mask, done)
            self._unmasked = upto

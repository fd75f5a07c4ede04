"""The WebSocket connection as a sans-I/O state machine (RFC 6455 §5, §7).

Bytes go in with `receive_data()`, events come out; `send_*()` calls return the bytes to
write. No sockets, no asyncio, no clocks: the host (fastim.ws.connection for asyncio, or a
test) moves the bytes and decides when to close TCP.

One thing is left to the host on purpose: *when* to answer the peer's close frame, or to
send the close frame reporting a protocol error. The core reports both as events
(`CloseReceived`, `ProtocolFailure`) in order with the messages that came before them; the
host lets its application consume those messages (and, say, echo them) first, then writes
`close_reply()`. That keeps "the message before the close is handled before the close"
true for the application, which a core that answered on its own could not promise.

    state machine (§7.1):

    OPEN ──close sent, close received, protocol error──▶ CLOSING ──the other half──▶ CLOSED
                                                  (or EOF from the peer at any time ──▶ CLOSED)
"""

from __future__ import annotations

import codecs
import os
import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum, IntEnum
from typing import Any
from typing import Protocol as Interface

from fastim.ws import frames
from fastim.ws.exceptions import ProtocolError, connection_closed
from fastim.ws.frames import (
    MAX_CONTROL_PAYLOAD,
    SHORT_DATA_HEADERS,
    CloseCode,
    Frame,
    FrameDecoder,
    MessageQueue,
    Opcode,
    apply_mask,
    decode_close_payload,
    encode_close_payload,
    first_octet,
    frame_header,
    is_valid_close_code,
)

__all__ = [
    "Role",
    "State",
    "Extension",
    "Message",
    "PingReceived",
    "PongReceived",
    "CloseReceived",
    "ProtocolFailure",
    "Event",
    "WebSocketProtocol",
    "DEFAULT_MAX_SIZE",
]

DEFAULT_MAX_SIZE = 2**20  # 1 MiB per incoming message
# Pongs data_to_send() returns at most at once: one for each ping received since the last
# call up to this many, the last of them for the most recent ping (RFC 6455 §5.5.3 lets a
# pong answer only the most recent). Peers expect a pong for each of a few pings (the
# Autobahn suite's cases 2.10 and 2.11 send ten at once); a flood of pings in one read
# still costs at most 16 pongs (2 KiB), not one per ping (docs/library.md, issue 16).
PONGS_AT_ONCE = 16

_PACK_16 = struct.Struct("!BBH").pack

# What an extension is told when max_size is None: never reached, and with room for the
# "max_size + 1" a bomb-safe inflater asks for without overflowing a C ssize_t.
_NO_LIMIT = sys.maxsize // 2


class Role(Enum):
    """Which end of the connection we are; it decides who masks (RFC 6455 §5.1)."""

    SERVER = "server"
    CLIENT = "client"


class State(IntEnum):
    """Connection states after the opening handshake (RFC 6455 §4.1, §7.1)."""

    OPEN = 1
    CLOSING = 2
    CLOSED = 3


class Extension(Interface):
    """What the core needs from a negotiated extension such as permessage-deflate
    (RFC 7692): fastim.ws.deflate.PerMessageDeflate satisfies it.

    The core calls `decompress()` for each frame of a message whose first frame had RSV1
    set, in order, with the frame's payload and FIN bit, and `compress()` for each outgoing
    message of at least `threshold` bytes, setting RSV1 on its (only) frame.
    """

    threshold: int

    def decompress(self, payload: bytes, fin: bool, max_size: int) -> bytes:
        """Inflate one frame's payload; raise ProtocolError (1009) past max_size."""
        ...  # pragma: no cover

    def compress(self, message: bytes) -> bytes:
        """Deflate a whole message."""
        ...  # pragma: no cover


@dataclass(frozen=True, slots=True)
class Message:
    """A complete data message: str for a text message, bytes for a binary one."""

    data: str | bytes


@dataclass(frozen=True, slots=True)
class PingReceived:
    """A ping arrived; the core has already queued the pong (RFC 6455 §5.5.2), which
    data_to_send() returns: one per ping, at most PONGS_AT_ONCE at once (see there)."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class PongReceived:
    """A pong arrived (RFC 6455 §5.5.3); unsolicited ones are reported too."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class CloseReceived:
    """The peer sent a close frame (RFC 6455 §5.5.1). Nothing after it is read. Unless we
    already sent our close, answer with `close_reply()` once the messages before it are
    handled. `code` is 1005 when the frame carried no code."""

    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class ProtocolFailure:
    """The peer broke the protocol: _Fail the WebSocket Connection_ (RFC 6455 §7.1.7) by
    writing `close_reply()` (a close frame with `error.code`) and then closing TCP.
    Nothing after the bad frame is read."""

    error: ProtocolError


Event = Message | PingReceived | PongReceived | CloseReceived | ProtocolFailure

FrameObserver = Callable[[str, Frame], None]


class _MaskKeys:
    """Masking keys for a client (RFC 6455 §5.3: fresh and unpredictable for each frame),
    taken 4 bytes at a time from os.urandom drawn 4 KiB at once: the same CSPRNG output as
    os.urandom(4) per frame, without a getrandom(2) system call for each."""

    __slots__ = ("_pool", "_next")

    def __init__(self) -> None:
        self._pool = b""
        self._next = 0

    def __call__(self) -> bytes:
        start = self._next
        if start >= len(self._pool):
            self._pool = os.urandom(4096)
            start = 0
        self._next = start + 4
        return self._pool[start : start + 4]


# The bound method, not the instance: calling an instance goes through its type's
# __call__ slot (about 2k instructions a frame), a bound method is a direct call.
_mask_keys = _MaskKeys().__call__


def _new_utf8_decoder() -> codecs.IncrementalDecoder:
    return codecs.getincrementaldecoder("utf-8")("strict")


class WebSocketProtocol:
    """One WebSocket connection after its opening handshake, without any I/O.

    - `role`: Role.SERVER or Role.CLIENT.
    - `max_size`: the largest incoming message in bytes (None: no limit). A message of
      exactly max_size is accepted; one byte more fails the connection with 1009, and a
      frame that would go over is refused from its header, before its payload is buffered.
    - `extension`: a negotiated extension (see `Extension`), or None. Only with one may
      RSV1 be set, and only on the first frame of a data message (RFC 7692 §6).
    - `mask_key`: how a client draws its masking keys (§5.3 wants them unpredictable).
    - `on_frame`: called with ("recv" | "send", frame) for every frame, e.g. for tracing.
    """

    __slots__ = (
        "role",
        "max_size",
        "extension",
        "on_frame",
        "_mask_key",
        "_decoder",
        "_pongs",
        "_message_opcode",
        "_message_compressed",
        "_message_size",
        "_parts",
        "_utf8",
        "_validated",
        "close_sent",
        "close_received",
        "failure",
        "eof_received",
        "between_messages",
    )

    def __init__(
        self,
        role: Role,
        *,
        max_size: int | None = DEFAULT_MAX_SIZE,
        extension: Extension | None = None,
        mask_key: Callable[[], bytes] = _mask_keys,
        on_frame: FrameObserver | None = None,
    ) -> None:
        self.role = role
        self.max_size = max_size
        self.extension = extension
        self.on_frame = on_frame
        self._mask_key = mask_key if role is Role.CLIENT else None
        # §5.1: a server must receive masked frames, a client unmasked ones.
        self._decoder = FrameDecoder(
            expect_masked=role is Role.SERVER, max_data_length=self._wire_limit()
        )
        # The payloads of the pings to answer with data_to_send(), in order, at most
        # PONGS_AT_ONCE: beyond that the last is replaced by the most recent (§5.5.3), so
        # a flood of pings costs a few pongs per read, not one per ping. None while there
        # is none: an idle connection holds no list.
        self._pongs: list[bytes] | None = None

        # The data message being received (§5.4). Text is checked and decoded as it
        # arrives (§8.1, fail fast) into str pieces; binary is kept as bytes pieces; both
        # are joined once at the end, so a message in thousands of fragments costs O(n).
        self._message_opcode: Opcode | None = None
        self._message_compressed = False
        self._message_size = 0  # bytes received on the wire for this message
        self._parts: list[Any] = []  # str pieces of a text message, bytes of a binary one
        self._utf8: codecs.IncrementalDecoder | None = None
        self._validated = 0  # bytes of the pending text frame already decoded via peek

        self.close_sent: tuple[int, str] | None = None
        self.close_received: tuple[int, str] | None = None
        self.failure: ProtocolError | None = None
        self.eof_received = False
        # Read it, do not set it: between two messages, nothing buffered, still receiving,
        # our close frame not sent. Then receive_message() may take a whole frame at once,
        # and a host that finds no message queued knows it has to wait for the peer.
        self.between_messages = True

    # -- state ---------------------------------------------------------------------------

    @property
    def state(self) -> State:
        """OPEN, CLOSING (one side of the close handshake done), or CLOSED."""
        if self.eof_received or (
            self.close_sent is not None
            and (self.close_received is not None or self.failure is not None)
        ):
            return State.CLOSED
        if self.close_sent is None and self.close_received is None and self.failure is None:
            return State.OPEN
        return State.CLOSING

    @property
    def buffered(self) -> int:
        """Bytes received and not yet parsed (see receive_data's max_messages)."""
        return self._decoder.buffered

    @property
    def receiving(self) -> bool:
        """False once a close frame, a protocol error or EOF ended the incoming stream."""
        return self.close_received is None and self.failure is None and not self.eof_received

    # -- receiving -----------------------------------------------------------------------

    def receive_data(
        self,
        data: bytes | bytearray | memoryview,
        *,
        max_messages: int | None = None,
        messages: MessageQueue | None = None,
    ) -> list[Event]:
        """Feed bytes read from the connection; return the events they complete.

        Never raises for anything the peer sends: a violation becomes a ProtocolFailure
        event (the last one), and everything after it is ignored.

        With `max_messages`, parsing stops after that many Message events and the rest
        stays buffered until the next call (which may feed b""): a host with a bounded
        queue of messages takes no more than it has room for.

        With `messages`, a host's queue, the data of each message is appended there, in
        order, instead of coming back as a Message event (one object less per message);
        the other events still come back, and a close or failure is still the last.
        """
        events: list[Event] = []
        if self.close_received is not None or self.failure is not None or self.eof_received:
            return events  # §5.5.1: nothing after a close frame is processed
        decoder = self._decoder
        buffer = decoder.buffer
        if decoder.pending_header is None:
            buffer += data
        else:
            decoder.feed(data)  # a large payload may go straight to its frame
        count = 0
        try:
            # The buffer always starts at the next frame's header: empty and no frame
            # pending (whose payload may be received outside the buffer), nothing to do.
            while (buffer or decoder.pending_header is not None) and (
                max_messages is None or count < max_messages
            ):
                if self._message_opcode is None and self.on_frame is None:
                    # The common case, whole uncompressed messages in one frame each
                    # (§5.4): no Frame, no pieces to keep, no state to change.
                    batch: list[str | bytes] = []
                    count += decoder.read_messages(
                        batch if messages is None else messages,
                        None if max_messages is None else max_messages - count,
                        None if self.extension is None else self.max_size,
                    )
                    if batch:
                        events.extend(map(Message, batch))
                    if count == max_messages or not buffer and decoder.pending_header is None:
                        break
                frame = decoder.next_frame()
                if frame is None:
                    if decoder.pending_header is not None:
                        self._check_partial_text()
                    break
                if self.on_frame is not None:
                    self.on_frame("recv", frame)
                before = len(events)
                self._receive_frame(frame, events)
                if len(events) > before and type(events[-1]) is Message:
                    count += 1
                    if messages is not None:
                        messages.append(events.pop().data)  # type: ignore[union-attr]
                if self.close_received is not None:
                    break
        except ProtocolError as error:
            self.failure = error
            events.append(ProtocolFailure(error))
        if self.failure is not None or self.close_received is not None:
            self._drop_message()
            self._decoder = FrameDecoder()  # free whatever was buffered
            self.between_messages = False
        else:
            self.between_messages = (
                self._message_opcode is None
                and not self._decoder.buffer
                and self._decoder.pending_header is None
                and self.close_sent is None
            )
        return events

    def receive_message(self, data: bytes) -> str | bytes | None:
        """The fast path of `receive_data()` for what a request/response peer sends most:
        `data` is exactly one whole data frame, FIN set, no RSV bit, text or binary, with a
        7- or 16-bit length, masked as the role requires (RFC 6455 §5.1, §5.2), arriving
        between two messages with nothing buffered. Then its message comes back (str for
        text, bytes for binary) and the core is left as receive_data() would leave it.

        Anything else, including a message over max_size, text that is not UTF-8 (§8.1),
        or any frame once our close frame is sent, returns None and consumes nothing: the
        host then calls receive_data(data), which has every check and error. No events,
        no Frame, no buffer.
        """
        if not self.between_messages or self.on_frame is not None:
            return None
        # §5.1: a server receives masked frames only, a client unmasked ones only (and
        # _mask_key is None exactly on a server). frames._parse_message (C where the
        # extension was built) is looked up at call time, as the tests swap it.
        return frames._parse_message(data, self._mask_key is None, self.max_size)

    def receive_eof(self) -> None:
        """The peer closed its side of TCP. A message in progress is lost."""
        self.eof_received = True
        self.between_messages = False
        self._drop_message()

    def data_to_send(self) -> bytes:
        """Bytes the core wants written on its own account, then forgets them: the pongs
        that answer the pings received since the last call (§5.5.2), one each, at most
        PONGS_AT_ONCE, the last for the most recent ping (§5.5.3)."""
        pongs = self._pongs
        if pongs is None:
            return b""
        self._pongs = None
        return b"".join(self._frame_bytes(Frame(Opcode.PONG, payload)) for payload in pongs)

    def _receive_frame(self, frame: Frame, events: list[Event]) -> None:
        opcode = frame.opcode
        # §5.2: RSV1-3 must be 0 unless an extension gives them a meaning; the one fastim
        # knows, permessage-deflate, sets RSV1 on the first frame of a message (RFC 7692
        # §6), never on a continuation or a control frame.
        if frame.rsv2 or frame.rsv3:
            raise ProtocolError(CloseCode.PROTOCOL_ERROR, "reserved bit set")
        if frame.rsv1 and (
            self.extension is None or opcode.is_control or opcode is Opcode.CONTINUATION
        ):
            raise ProtocolError(CloseCode.PROTOCOL_ERROR, "RSV1 set without an extension")
        if opcode is Opcode.PING:
            # §5.5.2: answer a ping with a pong carrying its payload, unless we have
            # already sent a close frame (§5.5.1: nothing may follow it). §5.5.3: when
            # many came before the host asks, the most recent stands for the rest.
            events.append(PingReceived(frame.payload))
            if self.close_sent is None:
                pongs = self._pongs
                if pongs is None:
                    self._pongs = [frame.payload]
                elif len(pongs) < PONGS_AT_ONCE:
                    pongs.append(frame.payload)
                else:
                    pongs[-1] = frame.payload
        elif opcode is Opcode.PONG:
            events.append(PongReceived(frame.payload))  # §5.5.3
        elif opcode is Opcode.CLOSE:
            code, reason = decode_close_payload(frame.payload)
            self.close_received = (code, reason)
            events.append(CloseReceived(code, reason))
        else:
            self._receive_data_frame(frame, events)

    def _receive_data_frame(self, frame: Frame, events: list[Event]) -> None:
        opcode = frame.opcode
        if opcode is Opcode.CONTINUATION:
            if self._message_opcode is None:
                # §5.4: a continuation frame continues something, or is an error.
                raise ProtocolError(CloseCode.PROTOCOL_ERROR, "continuation without a message")
        elif self._message_opcode is not None:
            # §5.4: the fragments of one message are not interleaved with another's.
            raise ProtocolError(
                CloseCode.PROTOCOL_ERROR, "new data frame inside a fragmented message"
            )
        elif frame.fin and not frame.rsv1 and not self._validated:
            # A whole uncompressed message that did not take receive_data's fast path
            # (it came in pieces, or somebody watches the frames).
            events.append(Message(self._unfragmented(opcode, frame.payload)))
            return
        else:
            self._message_opcode = opcode
            self._message_compressed = frame.rsv1

        payload = frame.payload
        self._message_size += len(payload)
        if self.max_size is not None:
            # What the rest of this message may still add (§10.4); checked by the decoder
            # on each next header, before the payload is buffered.
            budget = self._wire_limit() if self._message_compressed else self.max_size
            assert budget is not None
            self._check_size(self._message_size, budget)
            self._decoder.max_data_length = budget - self._message_size
        if self._message_compressed:
            assert self.extension is not None
            limit = _NO_LIMIT if self.max_size is None else self.max_size
            payload = self.extension.decompress(payload, frame.fin, limit)
        if self._message_opcode is Opcode.TEXT:
            validated, self._validated = self._validated, 0
            self._decode_text(memoryview(payload)[validated:] if validated else payload, frame.fin)
        else:
            self._parts.append(payload)
        if frame.fin:
            events.append(Message(self._take_message()))

    def _unfragmented(self, opcode: Opcode, payload: bytes) -> str | bytes:
        """The data of a message that came whole in one uncompressed frame."""
        if self.extension is not None:
            # With an extension the decoder's limit is the wire limit (see _wire_limit),
            # larger than max_size: an uncompressed message is held to max_size here.
            self._check_size(len(payload), self.max_size)
        if opcode is Opcode.TEXT:
            try:
                return payload.decode("utf-8")  # §8.1: a text message must be UTF-8
            except UnicodeDecodeError:
                raise _invalid_utf8() from None
        return payload

    def _decode_text(self, data: bytes | memoryview, final: bool) -> None:
        # §8.1: a text message must be valid UTF-8; checked piece by piece so that a
        # bad fragment fails the connection at once, not after the whole message.
        if self._utf8 is None:
            self._utf8 = _new_utf8_decoder()
        try:
            text = self._utf8.decode(data, final)
        except UnicodeDecodeError:
            raise _invalid_utf8() from None
        if not final:
            # CPython's incremental decoder holds back ED A0..BF until a third byte comes,
            # though those bytes start a UTF-16 surrogate, never valid (RFC 3629 §3).
            pending = self._utf8.getstate()[0]
            if len(pending) >= 2 and pending[0] == 0xED and pending[1] >= 0xA0:
                raise _invalid_utf8()
        if text:
            self._parts.append(text)

    def _check_partial_text(self) -> None:
        """UTF-8 check the part of a text frame that has arrived so far (fail fast)."""
        header = self._decoder.pending_header
        if header is None or header.rsv1 or header.rsv2 or header.rsv3:
            return  # nothing pending, or a frame whose completion will raise or inflate
        if header.opcode is Opcode.TEXT:
            if self._message_opcode is not None:
                return  # out of sequence: its completion raises 1002
        elif header.opcode is not Opcode.CONTINUATION or (
            self._message_opcode is not Opcode.TEXT or self._message_compressed
        ):
            return
        piece = self._decoder.peek_payload(self._validated)
        if piece:
            self._validated += len(piece)
            self._decode_text(piece, False)

    def _take_message(self) -> str | bytes:
        data: str | bytes
        if self._message_opcode is Opcode.TEXT:
            data = "".join(self._parts)
        else:
            data = b"".join(self._parts)
        self._drop_message()
        return data

    def _drop_message(self) -> None:
        self._message_opcode = None
        self._message_compressed = False
        self._message_size = 0
        self._parts = []
        self._utf8 = None
        self._validated = 0
        self._decoder.max_data_length = self._wire_limit()

    def _wire_limit(self) -> int | None:
        """The most bytes a message may take on the wire: max_size, or, with a compression
        extension, max_size plus deflate's worst-case growth of incompressible data, so
        that a message of exactly max_size always fits. The growth is zlib's conservative
        deflateBound, valid for any window and memory level a peer may use (small memory
        levels emit many small stored blocks, 5 bytes of header each). The inflated size
        is held to max_size by the extension itself."""
        size = self.max_size
        if size is None or self.extension is None:
            return size
        return size + ((size + 7) >> 3) + ((size + 63) >> 6) + 11

    @staticmethod
    def _check_size(size: int, limit: int | None) -> None:
        if limit is not None and size > limit:
            raise ProtocolError(CloseCode.MESSAGE_TOO_BIG, "message too big")

    # -- sending -------------------------------------------------------------------------

    def send_text(self, text: str) -> bytes:
        """Bytes of a text message (one frame, compressed if an extension says so)."""
        header, payload = self.message_frame(text)
        return header + payload

    def send_binary(self, data: bytes | bytearray | memoryview) -> bytes:
        """Bytes of a binary message."""
        header, payload = self.message_frame(data)
        return header + payload

    def message_frame(self, message: str | bytes | bytearray | memoryview) -> tuple[bytes, bytes]:
        """The one frame of a data message, as its header and its payload: a str goes as a
        text message, anything bytes-like as binary, compressed if an extension says so.

        In two pieces so that the host can write a large payload without first copying it
        behind its header (`transport.writelines`); `send_text` and `send_binary` join them.
        """
        if type(message) is bytes:
            opcode, data = Opcode.BINARY, message
        elif isinstance(message, str):
            opcode, data = Opcode.TEXT, message.encode("utf-8")
        elif isinstance(message, bytes | bytearray | memoryview):
            # bytes(bytes) is the same object; a mutable buffer is copied, so that the
            # caller may reuse it while the frame waits to be written.
            opcode, data = Opcode.BINARY, bytes(message)
        else:
            raise TypeError(f"send() takes str or bytes, not {type(message).__name__}")
        if self.close_sent is not None:
            self._check_can_send()
        extension = self.extension
        if extension is None:
            if self.on_frame is None and self._mask_key is not None:
                # The common case on a client: one masked frame (§5.3), nobody watching.
                key = self._mask_key()
                header = frame_header(0x80 | opcode, len(data), 0x80) + key
                return header, frames._mask(data, key)
            if self.on_frame is None:
                # The common case on a server: an unmasked frame, nobody watching.
                length = len(data)
                if length < 126:
                    return SHORT_DATA_HEADERS[opcode][length], data
                if length < 0x10000:  # §5.2: 126, then a 16-bit length; one call less
                    return _PACK_16(0x80 | opcode, 126, length), data
                return frame_header(0x80 | opcode, length), data
            frame = Frame(opcode, data)
        elif len(data) >= extension.threshold:
            # RFC 7692 §6: a compressed message has RSV1 set on its first frame.
            frame = Frame(opcode, extension.compress(data), rsv1=True)
        else:
            frame = Frame(opcode, data)
        return self._frame_parts(frame)

    def message_bytes(
        self, message: str | bytes | bytearray | memoryview, limit: int
    ) -> bytes | None:
        """`message_frame(message)` joined into one bytes object, for the common case: a
        str or bytes message whose frame goes uncompressed (no extension, or one that
        leaves a message under its threshold as it is), its payload under `limit` bytes,
        nobody watching the frames, our close not sent. Otherwise None, and the host calls
        message_frame(), which handles (and checks) everything. In one call, in C where
        the extension was built (frames._encode_message)."""
        if self.on_frame is not None or self.close_sent is not None:
            return None
        extension = self.extension
        if extension is not None and extension.threshold < limit:
            limit = extension.threshold
        key = self._mask_key
        return frames._encode_message(message, None if key is None else key(), limit)

    def send_ping(self, payload: bytes = b"") -> bytes:
        """Bytes of a ping (RFC 6455 §5.5.2); the payload is at most 125 bytes."""
        return self._send_control(Opcode.PING, payload)

    def send_pong(self, payload: bytes = b"") -> bytes:
        """Bytes of an unsolicited pong, e.g. a one-way heartbeat (RFC 6455 §5.5.3)."""
        return self._send_control(Opcode.PONG, payload)

    def send_close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> bytes:
        """Bytes of a close frame starting the closing handshake (RFC 6455 §5.5.1, §7.1.2).

        `code` must be one that may be sent (1000-1003, 1007-1014, 3000-4999) and the
        reason at most 123 bytes of UTF-8, so that the payload fits a control frame.
        """
        if not is_valid_close_code(code):
            raise ValueError(f"close code {code} may not be sent")
        if len(reason.encode("utf-8")) > MAX_CONTROL_PAYLOAD - 2:
            raise ValueError("close reason longer than 123 bytes")
        return self._send_close(code, reason)

    def close_reply(self) -> bytes:
        """Bytes of the close frame that answers the peer's close (echoing its code,
        §5.5.1) or that reports our ProtocolFailure (its code, §7.1.7)."""
        if self.failure is not None:
            return self._send_close(self.failure.code, self.failure.reason)
        if self.close_received is None:
            raise RuntimeError("no close frame received and no protocol error to report")
        code = self.close_received[0]
        return self._send_close(None if code == CloseCode.NO_STATUS_RCVD else code, "")

    def _send_close(self, code: int | None, reason: str) -> bytes:
        self._check_can_send()
        self.close_sent = (CloseCode.NO_STATUS_RCVD if code is None else code, reason)
        self.between_messages = False  # messages after our close are the host's to drop
        return self._frame_bytes(Frame(Opcode.CLOSE, encode_close_payload(code, reason)))

    def _send_control(self, opcode: Opcode, payload: bytes) -> bytes:
        if len(payload) > MAX_CONTROL_PAYLOAD:
            raise ValueError("control frame payload longer than 125 bytes")
        self._check_can_send()
        return self._frame_bytes(Frame(opcode, bytes(payload)))

    def _check_can_send(self) -> None:
        # §5.5.1: after sending a close frame, nothing more is sent.
        if self.close_sent is not None:
            code, reason = self.close_received or self.close_sent
            raise connection_closed(code, reason)

    def _frame_bytes(self, frame: Frame) -> bytes:
        header, payload = self._frame_parts(frame)
        return header + payload

    def _frame_parts(self, frame: Frame) -> tuple[bytes, bytes]:
        """Header (with the masking key, on a client) and payload (masked, on a client)."""
        mask = None if self._mask_key is None else self._mask_key()
        frame.masked = mask is not None
        if self.on_frame is not None:
            self.on_frame("send", frame)
        first = first_octet(frame)
        payload = frame.payload
        if mask is None:
            return frame_header(first, len(payload)), payload
        # §5.3: a client masks every frame with a fresh key, sent before the payload.
        return frame_header(first, len(payload), 0x80) + mask, apply_mask(payload, mask)


def _invalid_utf8() -> ProtocolError:
    return ProtocolError(CloseCode.INVALID_DATA, "invalid UTF-8 in a text message")

"""The sans-I/O connection state machine (RFC 6455 §5, §7): messages, fragmentation with
control frames between fragments, every violation with its close code, fail-fast UTF-8,
size limits, the close handshake, and the extension hook."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastim.ws import frames as frames_module
from fastim.ws.exceptions import ConnectionClosedError, ConnectionClosedOK, ProtocolError
from fastim.ws.frames import CloseCode, Frame, FrameDecoder, Opcode, apply_mask, encode_frame
from fastim.ws.protocol import (
    PONGS_AT_ONCE,
    CloseReceived,
    Event,
    Message,
    PingReceived,
    PongReceived,
    ProtocolFailure,
    Role,
    State,
    WebSocketProtocol,
)

MASK = b"\x01\x02\x03\x04"


def client_frame(opcode: Opcode, payload: bytes = b"", fin: bool = True, **rsv: bool) -> bytes:
    """A frame as a client sends it (masked)."""
    return encode_frame(Frame(opcode, payload, fin, **rsv), MASK)


def server() -> WebSocketProtocol:
    return WebSocketProtocol(Role.SERVER)


def frames_in(data: bytes) -> list[Frame]:
    decoder = FrameDecoder()
    decoder.feed(data)
    out = []
    while (frame := decoder.next_frame()) is not None:
        out.append(frame)
    return out


def failure_code(events: list[Event]) -> int:
    assert events and isinstance(events[-1], ProtocolFailure), events
    return int(events[-1].error.code)


# -- messages ----------------------------------------------------------------------------


def test_text_and_binary_messages() -> None:
    ws = server()
    events = ws.receive_data(
        client_frame(Opcode.TEXT, "héllo".encode()) + client_frame(Opcode.BINARY, b"\x00\xff")
    )
    assert events == [Message("héllo"), Message(b"\x00\xff")]
    assert ws.state is State.OPEN


def test_fragmented_message_with_control_frames_between() -> None:
    ws = server()
    wire = (
        client_frame(Opcode.TEXT, b"Hel", fin=False)
        + client_frame(Opcode.PING, b"p1")
        + client_frame(Opcode.CONTINUATION, b"l", fin=False)
        + client_frame(Opcode.PONG, b"unsolicited")
        + client_frame(Opcode.CONTINUATION, b"o")
    )
    events = ws.receive_data(wire)
    assert events == [PingReceived(b"p1"), PongReceived(b"unsolicited"), Message("Hello")]
    # §5.5.2: the ping was answered at once, with its payload.
    assert frames_in(ws.data_to_send()) == [Frame(Opcode.PONG, b"p1")]
    assert ws.data_to_send() == b""


def test_each_of_a_few_pings_read_at_once_gets_its_pong_in_order() -> None:
    # §5.5.2: a pong for each ping; the Autobahn suite (cases 2.10, 2.11) expects all ten.
    ws = server()
    wire = b"".join(client_frame(Opcode.PING, b"payload-%d" % i) for i in range(10))
    ws.receive_data(wire)
    assert frames_in(ws.data_to_send()) == [
        Frame(Opcode.PONG, b"payload-%d" % i) for i in range(10)]
    assert ws.data_to_send() == b""


def test_a_flood_of_pings_read_at_once_gets_a_bounded_number_of_pongs() -> None:
    # §5.5.3: "an endpoint MAY elect to send a Pong frame for only the most recently
    # processed Ping frame": past PONGS_AT_ONCE, the most recent stands for the rest, so
    # a flood of pings read at once costs a few pongs (docs/library.md).
    ws = server()
    wire = b"".join(client_frame(Opcode.PING, b"%d" % i) for i in range(1000))
    events = ws.receive_data(wire)
    assert events == [PingReceived(b"%d" % i) for i in range(1000)]
    kept = [b"%d" % i for i in range(PONGS_AT_ONCE - 1)] + [b"999"]
    assert frames_in(ws.data_to_send()) == [Frame(Opcode.PONG, p) for p in kept]
    assert ws.data_to_send() == b""
    ws.receive_data(client_frame(Opcode.PING, b"next"))
    assert frames_in(ws.data_to_send()) == [Frame(Opcode.PONG, b"next")]


@settings(max_examples=100, deadline=None)
@given(
    fragments=st.lists(st.binary(max_size=50), min_size=1, max_size=20),
    pings=st.lists(st.booleans(), min_size=20, max_size=20),
    binary=st.booleans(),
    data=st.data(),
)
def test_fragmented_message_reassembles_under_any_split(
    fragments: list[bytes], pings: list[bool], binary: bool, data: st.DataObject
) -> None:
    if not binary:
        fragments = [f.hex().encode() for f in fragments]  # valid UTF-8
    wire = b""
    for i, fragment in enumerate(fragments):
        opcode = (Opcode.BINARY if binary else Opcode.TEXT) if i == 0 else Opcode.CONTINUATION
        wire += client_frame(opcode, fragment, fin=i == len(fragments) - 1)
        if pings[i] and i < len(fragments) - 1:
            wire += client_frame(Opcode.PING, b"%d" % i)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=6)))
    ws = server()
    events: list[Event] = []
    start = 0
    for cut in [*cuts, len(wire)]:
        events += ws.receive_data(wire[start:cut])
        start = cut
    expected = b"".join(fragments)
    assert events[-1] == Message(expected if binary else expected.decode())
    assert events[:-1] == [PingReceived(b"%d" % i) for i in range(len(fragments) - 1) if pings[i]]


def test_thousands_of_tiny_fragments() -> None:
    ws = server()
    parts = [client_frame(Opcode.BINARY, b"ab", fin=False)]
    parts += [client_frame(Opcode.CONTINUATION, b"ab", fin=False) for _ in range(5000)]
    parts.append(client_frame(Opcode.CONTINUATION, b"ab"))
    assert ws.receive_data(b"".join(parts)) == [Message(b"ab" * 5002)]


def test_max_messages_leaves_the_rest_buffered() -> None:
    ws = server()
    wire = b"".join(client_frame(Opcode.TEXT, b"%d" % i) for i in range(5))
    wire += client_frame(Opcode.PING, b"p")
    assert ws.receive_data(wire, max_messages=2) == [Message("0"), Message("1")]
    assert ws.receive_data(b"", max_messages=0) == []
    assert ws.data_to_send() == b""  # the ping is not read yet
    assert ws.receive_data(b"", max_messages=2) == [Message("2"), Message("3")]
    assert ws.receive_data(b"") == [Message("4"), PingReceived(b"p")]


# -- violations ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wire", "code"),
    [
        (client_frame(Opcode.TEXT, b"x", rsv1=True), 1002),
        (client_frame(Opcode.TEXT, b"x", rsv2=True), 1002),
        (client_frame(Opcode.BINARY, b"x", rsv3=True), 1002),
        (client_frame(Opcode.PING, b"x", rsv1=True), 1002),
        (bytes([0x83, 0x80]) + MASK, 1002),  # reserved data opcode
        (bytes([0x8B, 0x80]) + MASK, 1002),  # reserved control opcode
        (encode_frame(Frame(Opcode.TEXT, b"unmasked")), 1002),
        (bytes([0x09, 0x80]) + MASK, 1002),  # fragmented ping
        (client_frame(Opcode.PING, bytes(126)), 1002),
        (client_frame(Opcode.CONTINUATION, b"x"), 1002),
        (client_frame(Opcode.TEXT, b"a", fin=False) + client_frame(Opcode.TEXT, b"b"), 1002),
        (client_frame(Opcode.TEXT, b"a", fin=False) + client_frame(Opcode.BINARY, b"b"), 1002),
        (bytes([0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0]) + MASK, 1002),  # 64-bit top bit
        (client_frame(Opcode.TEXT, b"\xff"), 1007),
        (client_frame(Opcode.TEXT, b"\xed\xa0\x80"), 1007),  # a UTF-16 surrogate
        (client_frame(Opcode.CLOSE, b"\x03"), 1002),
        (client_frame(Opcode.CLOSE, b"\x03\xe8\xff\xfe"), 1007),
    ],
)
def test_each_violation_has_its_close_code(wire: bytes, code: int) -> None:
    ws = server()
    events = ws.receive_data(wire)
    assert failure_code(events) == code
    reply = frames_in(ws.close_reply())
    assert reply[0].opcode is Opcode.CLOSE
    assert int.from_bytes(reply[0].payload[:2], "big") == code
    assert ws.state is State.CLOSED


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000])
def test_invalid_close_codes_fail_with_1002(code: int) -> None:
    ws = server()
    events = ws.receive_data(client_frame(Opcode.CLOSE, code.to_bytes(2, "big")))
    assert failure_code(events) == 1002


def test_client_refuses_masked_frames() -> None:
    ws = WebSocketProtocol(Role.CLIENT)
    events = ws.receive_data(encode_frame(Frame(Opcode.TEXT, b"x"), MASK))
    assert failure_code(events) == 1002


def test_nothing_is_read_after_a_violation() -> None:
    ws = server()
    wire = client_frame(Opcode.TEXT, b"first") + bytes([0x83, 0x80]) + MASK
    wire += client_frame(Opcode.PING, b"after")
    events = ws.receive_data(wire)
    assert events[0] == Message("first")
    assert failure_code(events) == 1002 and len(events) == 2
    assert ws.data_to_send() == b""  # the ping after the error got no pong
    assert ws.receive_data(client_frame(Opcode.TEXT, b"more")) == []


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_any_bytes_give_events_never_an_exception(data: bytes) -> None:
    ws = WebSocketProtocol(Role.SERVER, max_size=100)
    events = ws.receive_data(data)
    for event in events[:-1]:
        assert not isinstance(event, ProtocolFailure)
    if events and isinstance(events[-1], ProtocolFailure):
        assert events[-1].error.code in (1002, 1007, 1009)


# -- UTF-8 fail fast (RFC 6455 §8.1) ------------------------------------------------------------

BAD_TAIL = b"\xf4\x90\x80\x80"  # beyond U+10FFFF: invalid from its second byte


def test_utf8_fails_on_the_bad_fragment_not_at_the_end() -> None:
    ws = server()
    assert ws.receive_data(client_frame(Opcode.TEXT, "κόσμε".encode() + b"\xf4", fin=False)) == []
    events = ws.receive_data(client_frame(Opcode.CONTINUATION, b"\x90", fin=False))
    assert failure_code(events) == 1007


def test_utf8_fails_inside_a_frame_still_arriving() -> None:
    ws = server()
    wire = client_frame(Opcode.TEXT, "κόσμε".encode() + BAD_TAIL + b"edited")
    cut = wire.index(MASK) + 4 + len("κόσμε".encode()) + 1
    assert ws.receive_data(wire[:cut]) == []  # valid so far (…\xf4 may still be fine)
    assert failure_code(ws.receive_data(wire[cut : cut + 1])) == 1007  # \x90: certainly not


def test_utf8_fails_fast_in_a_large_frame_received_directly() -> None:
    # A large payload goes straight into its bytes once an eighth has come (docs/performance.md);
    # its UTF-8 is still checked read by read, and the rest is never waited for.
    ws = server()
    good = "κόσμε".encode() * 20_000
    wire = client_frame(Opcode.TEXT, good + BAD_TAIL + bytes(200_000))
    assert ws.receive_data(wire[:100_000]) == []
    assert ws.buffered == 100_000 - 14 and not ws.between_messages
    assert ws.receive_data(wire[100_000:200_000]) == []
    assert failure_code(ws.receive_data(wire[200_000:240_000])) == 1007
    ws = server()
    wire = client_frame(Opcode.TEXT, good) + client_frame(Opcode.TEXT, b"next")
    for start in range(0, len(wire), 70_000):
        events = ws.receive_data(wire[start : start + 70_000])
    assert events == [Message(good.decode()), Message("next")]
    assert ws.between_messages


def test_utf8_surrogate_prefix_fails_fast_across_fragments() -> None:
    ws = server()
    events = ws.receive_data(client_frame(Opcode.TEXT, b"ok\xed\xa0", fin=False))
    assert failure_code(events) == 1007


def test_valid_utf8_split_inside_characters() -> None:
    text = "κόσμε ☃ 😀 end"
    encoded = text.encode()
    ws = server()
    wire = b"".join(
        client_frame(
            Opcode.TEXT if i == 0 else Opcode.CONTINUATION,
            encoded[i : i + 1],
            fin=i == len(encoded) - 1,
        )
        for i in range(len(encoded))
    )
    assert ws.receive_data(wire) == [Message(text)]


def test_partial_text_frame_in_a_fragmented_message_then_completion() -> None:
    ws = server()
    assert ws.receive_data(client_frame(Opcode.TEXT, b"abc", fin=False)) == []
    wire = client_frame(Opcode.CONTINUATION, "défghi".encode())
    assert ws.receive_data(wire[:9]) == []  # 6 header bytes and 3 payload bytes
    assert ws.receive_data(wire[9:]) == [Message("abcdéfghi")]


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=40), data=st.data())
def test_single_text_frame_under_any_split(text: str, data: st.DataObject) -> None:
    wire = client_frame(Opcode.TEXT, text.encode())
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=6)))
    ws = server()
    events: list[Event] = []
    start = 0
    for cut in [*cuts, len(wire)]:
        events += ws.receive_data(wire[start:cut])
        start = cut
    assert events == [Message(text)]


def test_out_of_sequence_partial_frames_are_not_peeked() -> None:
    # A second TEXT frame inside a fragmented text message fails as a sequencing error
    # (1002) when it completes, even though its partial payload is not valid UTF-8.
    ws = server()
    ws.receive_data(client_frame(Opcode.TEXT, b"a", fin=False))
    wire = client_frame(Opcode.TEXT, b"\xff\xff\xff")
    assert ws.receive_data(wire[:-1]) == []
    assert failure_code(ws.receive_data(wire[-1:])) == 1002
    # A partial binary continuation is not checked as text either.
    ws = server()
    ws.receive_data(client_frame(Opcode.BINARY, b"a", fin=False))
    wire = client_frame(Opcode.CONTINUATION, b"\xff\xff\xff")
    assert ws.receive_data(wire[:-1]) == []
    assert ws.receive_data(wire[-1:]) == [Message(b"a\xff\xff\xff")]


# -- size limits ---------------------------------------------------------------------------


def test_message_of_exactly_max_size_is_accepted() -> None:
    ws = WebSocketProtocol(Role.SERVER, max_size=1000)
    assert ws.receive_data(client_frame(Opcode.BINARY, bytes(1000))) == [Message(bytes(1000))]
    wire = client_frame(Opcode.TEXT, b"a" * 500, fin=False) + client_frame(
        Opcode.CONTINUATION, b"b" * 500
    )
    assert ws.receive_data(wire) == [Message("a" * 500 + "b" * 500)]


def test_frame_over_max_size_fails_before_its_payload() -> None:
    ws = WebSocketProtocol(Role.SERVER, max_size=1000)
    header = client_frame(Opcode.BINARY, bytes(1001))[:8]  # 2 + 2 length bytes + 4 mask
    assert failure_code(ws.receive_data(header)) == 1009


def test_fragments_adding_up_over_max_size_fail() -> None:
    ws = WebSocketProtocol(Role.SERVER, max_size=1000)
    assert ws.receive_data(client_frame(Opcode.TEXT, b"a" * 600, fin=False)) == []
    header = client_frame(Opcode.CONTINUATION, b"b" * 401)[:8]
    assert failure_code(ws.receive_data(header)) == 1009
    # The limit is per message: the next message starts from zero again.
    ws = WebSocketProtocol(Role.SERVER, max_size=1000)
    ws.receive_data(client_frame(Opcode.TEXT, b"a" * 600, fin=False))
    ws.receive_data(client_frame(Opcode.CONTINUATION, b"a" * 400))
    assert ws.receive_data(client_frame(Opcode.BINARY, bytes(1000))) == [Message(bytes(1000))]


def test_no_size_limit() -> None:
    ws = WebSocketProtocol(Role.SERVER, max_size=None)
    assert ws.receive_data(client_frame(Opcode.BINARY, bytes(70000))) == [Message(bytes(70000))]


# -- closing ---------------------------------------------------------------------------------


def test_peer_initiated_close_is_echoed() -> None:
    ws = server()
    events = ws.receive_data(client_frame(Opcode.CLOSE, b"\x03\xe9going"))
    assert events == [CloseReceived(1001, "going")]
    assert ws.state is State.CLOSING
    assert frames_in(ws.close_reply()) == [Frame(Opcode.CLOSE, b"\x03\xe9")]
    assert ws.state is State.CLOSED
    with pytest.raises(ConnectionClosedOK):
        ws.send_text("too late")


def test_empty_close_is_answered_with_an_empty_close() -> None:
    ws = server()
    assert ws.receive_data(client_frame(Opcode.CLOSE)) == [CloseReceived(1005, "")]
    assert frames_in(ws.close_reply()) == [Frame(Opcode.CLOSE, b"")]
    assert ws.close_sent == (1005, "")


def test_close_in_the_middle_of_a_fragmented_message() -> None:
    ws = server()
    wire = (
        client_frame(Opcode.TEXT, b"frag", fin=False)
        + client_frame(Opcode.CLOSE, b"\x03\xe8")
        + client_frame(Opcode.CONTINUATION, b"ment")
    )
    assert ws.receive_data(wire) == [CloseReceived(1000, "")]  # the partial message is dropped
    assert ws.receive_data(client_frame(Opcode.TEXT, b"later")) == []


def test_data_may_be_sent_after_receiving_close_until_ours_is_sent() -> None:
    ws = server()
    ws.receive_data(client_frame(Opcode.CLOSE, b"\x03\xe8"))
    assert frames_in(ws.send_text("last words")) == [Frame(Opcode.TEXT, b"last words")]
    ws.close_reply()
    with pytest.raises(ConnectionClosedOK):
        ws.send_binary(b"x")


def test_locally_initiated_close() -> None:
    ws = server()
    assert frames_in(ws.send_close(4000, "done")) == [Frame(Opcode.CLOSE, b"\x0f\xa0done")]
    assert ws.state is State.CLOSING
    # Messages may still arrive until the peer's close (§7.1.2); pings get no pong.
    events = ws.receive_data(client_frame(Opcode.TEXT, b"in flight") + client_frame(Opcode.PING))
    assert events == [Message("in flight"), PingReceived(b"")]
    assert ws.data_to_send() == b""
    assert ws.receive_data(client_frame(Opcode.CLOSE, b"\x0f\xa0")) == [CloseReceived(4000, "")]
    assert ws.state is State.CLOSED
    with pytest.raises(ConnectionClosedError) as info:
        ws.send_ping()
    assert info.value.code == 4000


def test_send_close_validates_code_and_reason() -> None:
    ws = server()
    for code in (1005, 1006, 999, 5000):
        with pytest.raises(ValueError):
            ws.send_close(code)
    with pytest.raises(ValueError):
        ws.send_close(1000, "x" * 124)
    assert ws.send_close(1000, "x" * 123)[:2] == b"\x88\x7d"


def test_close_reply_without_a_reason_to_reply() -> None:
    with pytest.raises(RuntimeError):
        server().close_reply()


def test_eof_ends_everything() -> None:
    ws = server()
    ws.receive_data(client_frame(Opcode.TEXT, b"partial", fin=False))
    ws.receive_eof()
    assert ws.state is State.CLOSED and not ws.receiving
    assert ws.receive_data(client_frame(Opcode.CONTINUATION, b"!")) == []


def test_failure_while_closing() -> None:
    ws = server()
    ws.send_close()
    events = ws.receive_data(bytes([0x83, 0x80]) + MASK)
    assert failure_code(events) == 1002
    assert ws.state is State.CLOSED


# -- sending -----------------------------------------------------------------------------------


def test_server_frames_are_unmasked_and_client_frames_masked() -> None:
    assert server().send_text("Hello") == bytes([0x81, 0x05]) + b"Hello"
    client = WebSocketProtocol(Role.CLIENT, mask_key=lambda: bytes([0x37, 0xFA, 0x21, 0x3D]))
    assert client.send_text("Hello") == bytes.fromhex("818537fa213d7f9f4d5158")
    assert client.send_pong(b"Hello") == bytes.fromhex("8a8537fa213d7f9f4d5158")
    # A server reads what a client writes, and the other way round.
    ws = server()
    assert ws.receive_data(WebSocketProtocol(Role.CLIENT).send_binary(bytearray(b"\x01"))) == [
        Message(b"\x01")
    ]


def test_control_payload_limit_on_send() -> None:
    with pytest.raises(ValueError):
        server().send_ping(bytes(126))
    assert server().send_ping(bytes(125))[:2] == b"\x89\x7d"


def test_on_frame_sees_every_frame() -> None:
    seen: list[tuple[str, Opcode, bool]] = []
    ws = WebSocketProtocol(Role.SERVER, on_frame=lambda d, f: seen.append((d, f.opcode, f.masked)))
    ws.receive_data(client_frame(Opcode.PING, b"x"))
    ws.data_to_send()  # the pong is made (and seen) when the host takes it
    ws.send_text("y")
    assert seen == [
        ("recv", Opcode.PING, True),
        ("send", Opcode.PONG, False),
        ("send", Opcode.TEXT, False),
    ]


# -- the extension hook (the shape fastim.ws.deflate plugs into) ----------------------------


class RawDeflate:
    """A minimal permessage-deflate-like extension, to exercise the core's hook."""

    def __init__(self, threshold: int = 10) -> None:
        self.threshold = threshold
        self.calls: list[tuple[int, bool, int]] = []
        self._inflater = zlib.decompressobj(-15)

    def compress(self, message: bytes) -> bytes:
        deflater = zlib.compressobj(wbits=-15)
        data = deflater.compress(message) + deflater.flush(zlib.Z_SYNC_FLUSH)
        assert data.endswith(b"\x00\x00\xff\xff")
        return data[:-4]

    def decompress(self, payload: bytes, fin: bool, max_size: int) -> bytes:
        self.calls.append((len(payload), fin, max_size))
        if fin:
            payload += b"\x00\x00\xff\xff"
        try:
            data = self._inflater.decompress(payload, max_size + 1)
        except zlib.error:
            raise ProtocolError(CloseCode.INVALID_DATA, "bad deflate data") from None
        if len(data) > max_size:
            raise ProtocolError(CloseCode.MESSAGE_TOO_BIG, "inflated message too big")
        if fin:
            self._inflater = zlib.decompressobj(-15)
        return data


def test_extension_compresses_and_sets_rsv1_on_the_first_frame() -> None:
    sender = WebSocketProtocol(Role.CLIENT, extension=RawDeflate())
    wire = sender.send_text("compress me " * 20)
    frame = frames_in(wire)[0]
    assert frame.rsv1 and len(frame.payload) < 240
    assert frames_in(sender.send_text("short"))[0].rsv1 is False  # under the threshold
    receiver = WebSocketProtocol(Role.SERVER, max_size=5000, extension=RawDeflate())
    assert receiver.receive_data(wire) == [Message("compress me " * 20)]


def test_extension_gets_each_frame_of_a_compressed_message() -> None:
    extension = RawDeflate()
    compressed = RawDeflate().compress(b"hello hello hello hello")
    wire = client_frame(Opcode.TEXT, compressed[:5], fin=False, rsv1=True)
    wire += client_frame(Opcode.PING, b"between")
    wire += client_frame(Opcode.CONTINUATION, compressed[5:])
    ws = WebSocketProtocol(Role.SERVER, max_size=100, extension=extension)
    assert ws.receive_data(wire) == [PingReceived(b"between"), Message("hello hello hello hello")]
    assert extension.calls == [(5, False, 100), (len(compressed) - 5, True, 100)]


def test_extension_rsv1_rules() -> None:
    ws = WebSocketProtocol(Role.SERVER, extension=RawDeflate())
    wire = client_frame(Opcode.TEXT, b"x", fin=False) + client_frame(
        Opcode.CONTINUATION, b"y", rsv1=True
    )
    assert failure_code(ws.receive_data(wire)) == 1002  # RSV1 on a continuation
    ws = WebSocketProtocol(Role.SERVER, extension=RawDeflate())
    assert failure_code(ws.receive_data(client_frame(Opcode.PING, b"", rsv1=True))) == 1002
    ws = WebSocketProtocol(Role.SERVER, extension=RawDeflate())
    assert ws.receive_data(client_frame(Opcode.BINARY, b"plain")) == [Message(b"plain")]


def test_extension_errors_become_failures() -> None:
    bomb = RawDeflate().compress(bytes(10000))
    ws = WebSocketProtocol(Role.SERVER, max_size=1000, extension=RawDeflate())
    assert failure_code(ws.receive_data(client_frame(Opcode.BINARY, bomb, rsv1=True))) == 1009
    ws = WebSocketProtocol(Role.SERVER, extension=RawDeflate())
    garbage = client_frame(Opcode.BINARY, b"\xff\xff\xff\xff", rsv1=True)
    assert failure_code(ws.receive_data(garbage)) == 1007
    # Inflated text is UTF-8 checked like any text.
    ws = WebSocketProtocol(Role.SERVER, max_size=None, extension=RawDeflate())
    bad_text = client_frame(Opcode.TEXT, RawDeflate().compress(b"\xff" * 20), rsv1=True)
    assert failure_code(ws.receive_data(bad_text)) == 1007


# -- receive_message, the fast path for one whole frame ------------------------------------


def _wire(receiver: Role, *frames: Frame) -> bytes:
    """`frames` as the peer of `receiver` sends them: masked towards a server (§5.1)."""
    return b"".join(encode_frame(f, MASK if receiver is Role.SERVER else None) for f in frames)


_BEFORE: dict[str, Callable[[Role], bytes]] = {
    "nothing": lambda role: b"",
    "a whole message": lambda role: _wire(role, Frame(Opcode.BINARY, b"before")),
    "half a frame": lambda role: _wire(role, Frame(Opcode.BINARY, b"x" * 40))[:9],
    "a first fragment": lambda role: _wire(role, Frame(Opcode.TEXT, b"frag", fin=False)),
    "a close": lambda role: _wire(role, Frame(Opcode.CLOSE, b"\x03\xe8")),
    "a violation": lambda role: _wire(role, Frame(Opcode.CONTINUATION, b"?")),
}


def _comparable(events: list[Event]) -> list[object]:
    """Events with each ProtocolError as (code, reason): exceptions compare by identity."""
    return [
        (event.error.code, event.error.reason) if isinstance(event, ProtocolFailure) else event
        for event in events
    ]


# receive_message() and message_bytes() with each implementation of frames._parse_message
# and _encode_message: the pure-Python ones and, where it was built, the C extension's.
_CODECS = {"python": (frames_module._parse_message_python, frames_module._encode_message_python)}
if frames_module._select_message_codec(True) != _CODECS["python"]:  # pragma: no branch
    _CODECS["c"] = frames_module._select_message_codec(True)


@contextmanager
def _codec(name: str) -> Iterator[None]:
    saved = frames_module._parse_message, frames_module._encode_message
    frames_module._parse_message, frames_module._encode_message = _CODECS[name]
    try:
        yield
    finally:
        frames_module._parse_message, frames_module._encode_message = saved


@pytest.mark.parametrize("codec", sorted(_CODECS))
@settings(max_examples=300, deadline=None)
@given(
    role=st.sampled_from(Role),
    before=st.sampled_from(sorted(_BEFORE)),
    opcode=st.sampled_from(Opcode),
    fin=st.booleans(),
    rsv1=st.booleans(),
    payload=st.one_of(
        st.binary(max_size=130),
        st.text(max_size=40).map(str.encode),
        st.sampled_from([b"\xff", b"\xed\xa0\x80", b"a" * 125, b"b" * 126, b"c" * 1500]),
    ),
    wrong_mask=st.booleans(),
    cut=st.integers(-3, 3),
    max_size=st.sampled_from([None, 126, 1000]),
    extension=st.booleans(),
    eof=st.booleans(),
)
def test_receive_message_is_receive_data_for_one_whole_frame(
    codec: str,
    role: Role,
    before: str,
    opcode: Opcode,
    fin: bool,
    rsv1: bool,
    payload: bytes,
    wrong_mask: bool,
    cut: int,
    max_size: int | None,
    extension: bool,
    eof: bool,
) -> None:
    """Whatever arrives and whatever came before, receive_message() either returns what
    receive_data() would have made of it (one Message) and leaves the core in the same
    state, or returns None and consumes nothing."""
    if opcode.is_control:
        payload, fin = payload[:125], True
    masked_as = role if not wrong_mask else (Role.CLIENT if role is Role.SERVER else Role.SERVER)
    data = _wire(masked_as, Frame(opcode, payload, fin, rsv1=rsv1))
    # cut < 0: the frame is incomplete; cut > 0: bytes of a next frame follow it.
    data = data[:cut] if cut < 0 else data + _wire(role, Frame(Opcode.BINARY, b"next"))[:cut]
    cores = [
        WebSocketProtocol(role, max_size=max_size, extension=RawDeflate() if extension else None)
        for _ in range(2)
    ]
    for core in cores:
        core.receive_data(_BEFORE[before](role))
        if eof:
            core.receive_eof()
    fast, full = cores
    with _codec(codec):
        message = fast.receive_message(data)
    events = _comparable(full.receive_data(data))
    if message is None:
        assert _comparable(fast.receive_data(data)) == events
    else:
        assert events == [Message(message)]
        assert type(message) is (str if opcode is Opcode.TEXT else bytes)
    # Either way both cores are now in the same state: what follows reads the same.
    follow = _wire(role, Frame(Opcode.CONTINUATION, b"end"), Frame(Opcode.TEXT, b"t"))
    assert _comparable(fast.receive_data(follow)) == _comparable(full.receive_data(follow))
    assert (fast.state, fast.buffered, fast.receiving) == (
        full.state,
        full.buffered,
        full.receiving,
    )


def test_receive_message_takes_small_and_16_bit_frames() -> None:
    ws = server()
    assert ws.receive_message(client_frame(Opcode.BINARY, b"\x00" * 32)) == b"\x00" * 32
    assert ws.receive_message(client_frame(Opcode.TEXT, "é".encode() * 600)) == "é" * 600
    client = WebSocketProtocol(Role.CLIENT)
    assert client.receive_message(encode_frame(Frame(Opcode.TEXT, b"hi"))) == "hi"


def test_receive_message_leaves_the_rest_to_receive_data() -> None:
    ws = server()
    ws.on_frame = lambda direction, frame: None  # somebody watches every frame
    assert ws.receive_message(client_frame(Opcode.BINARY, b"x")) is None
    ws = server()
    assert ws.receive_message(b"\x82") is None  # not even a header
    ws = server()  # text that is not UTF-8: receive_data fails it with 1007 (§8.1)
    assert ws.receive_message(client_frame(Opcode.TEXT, b"\xff")) is None
    assert failure_code(ws.receive_data(client_frame(Opcode.TEXT, b"\xff"))) == 1007
    ws = WebSocketProtocol(Role.SERVER, max_size=1000)  # over max_size: 1009 there
    assert ws.receive_message(client_frame(Opcode.BINARY, bytes(1001))) is None
    assert failure_code(ws.receive_data(client_frame(Opcode.BINARY, bytes(1001)))) == 1009
    big = WebSocketProtocol(Role.SERVER, max_size=None)
    assert big.receive_message(client_frame(Opcode.BINARY, bytes(70000))) is None  # 64-bit
    assert big.receive_data(client_frame(Opcode.BINARY, bytes(70000))) == [Message(bytes(70000))]


@pytest.mark.parametrize("length", [0, 125, 126, 65535, 65536, 70000])
def test_message_frame_headers_use_the_minimal_length_encoding(length: int) -> None:
    # §5.2: 7 bits, or 126 and 16 bits, or 127 and 64 bits, whichever is the smallest.
    header, payload = server().message_frame(bytes(length))
    decoded = frames_in(header + payload)
    assert decoded == [Frame(Opcode.BINARY, bytes(length))]
    assert len(header) == (2 if length < 126 else 4 if length < 65536 else 10)


@pytest.mark.parametrize("codec", sorted(_CODECS))
@settings(max_examples=200, deadline=None)
@given(
    role=st.sampled_from(Role),
    message=st.one_of(
        st.binary(max_size=200),
        st.text(max_size=60),
        st.sampled_from([b"c" * 1500, "é" * 700, bytearray(b"ba"), memoryview(b"mv")]),
    ),
    limit=st.sampled_from([0, 10, 126, 1024, 4096]),
    threshold=st.sampled_from([None, 0, 20, 2000]),
    traced=st.booleans(),
    closed=st.booleans(),
)
def test_message_bytes_is_message_frame_joined(
    codec: str,
    role: Role,
    message: str | bytes,
    limit: int,
    threshold: int | None,
    traced: bool,
    closed: bool,
) -> None:
    """message_bytes() returns message_frame() joined, or None where the host must call
    message_frame(): a payload of `limit` bytes or more, one the extension compresses, a
    traced core, a core whose close is sent (message_frame raises), a bytes-like message."""
    cores = [
        WebSocketProtocol(
            role,
            extension=None if threshold is None else RawDeflate(threshold),
            mask_key=lambda: MASK,
        )
        for _ in range(2)
    ]
    for core in cores:
        if traced:
            core.on_frame = lambda direction, frame: None
        if closed:
            core.send_close()
    joined, parts = cores
    with _codec(codec):
        data = joined.message_bytes(message, limit)
    payload = message.encode() if isinstance(message, str) else bytes(message)
    if (
        traced
        or closed
        or type(message) not in (str, bytes)
        or len(payload) >= limit
        or (threshold is not None and len(payload) >= threshold)
    ):
        assert data is None
    else:
        header, body = parts.message_frame(message)
        assert data == header + body


def test_client_masking_keys_are_fresh_for_every_frame() -> None:
    # §5.3: a fresh, unpredictable key per frame; drawn from os.urandom 4 KiB at a time.
    from fastim.ws.protocol import _MaskKeys

    keys = _MaskKeys()
    drawn = [keys() for _ in range(3000)]  # more than one pool of 1,024 keys
    assert all(len(key) == 4 for key in drawn)
    assert len(set(drawn)) > 2990  # 32 random bits: a repeat in 3,000 is rare
    ws = WebSocketProtocol(Role.CLIENT)
    header, payload = ws.message_frame(b"masked")
    assert header[:2] == b"\x82\x86" and len(header) == 6
    assert apply_mask(payload, header[2:]) == b"masked"

"""Frames (RFC 6455 §5): the §5.7 examples byte for byte, masking, the encoder/decoder
round trip under any split of the byte stream, and the decoder's errors."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastim.ws import frames as frames_module
from fastim.ws.exceptions import ProtocolError
from fastim.ws.frames import (
    CloseCode,
    Frame,
    FrameDecoder,
    Opcode,
    apply_mask,
    decode_close_payload,
    encode_close_payload,
    encode_frame,
    is_valid_close_code,
)

MASK = bytes([0x37, 0xFA, 0x21, 0x3D])  # the key of the RFC's masked examples

# RFC 6455 §5.7, each example as (frame, masking key or None, bytes on the wire).
RFC_EXAMPLES = [
    # A single-frame unmasked text message
    (Frame(Opcode.TEXT, b"Hello"), None, bytes([0x81, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F])),
    # A single-frame masked text message
    (
        Frame(Opcode.TEXT, b"Hello", masked=True),
        MASK,
        bytes([0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58]),
    ),
    # A fragmented unmasked text message: "Hel" then "lo"
    (Frame(Opcode.TEXT, b"Hel", fin=False), None, bytes([0x01, 0x03, 0x48, 0x65, 0x6C])),
    (Frame(Opcode.CONTINUATION, b"lo"), None, bytes([0x80, 0x02, 0x6C, 0x6F])),
    # Unmasked Ping request and masked Ping response (a pong)
    (Frame(Opcode.PING, b"Hello"), None, bytes([0x89, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F])),
    (
        Frame(Opcode.PONG, b"Hello", masked=True),
        MASK,
        bytes([0x8A, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58]),
    ),
    # 256 bytes binary message in a single unmasked frame
    (Frame(Opcode.BINARY, bytes(256)), None, bytes([0x82, 0x7E, 0x01, 0x00]) + bytes(256)),
    # 64KiB binary message in a single unmasked frame
    (
        Frame(Opcode.BINARY, bytes(65536)),
        None,
        bytes([0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0]) + bytes(65536),
    ),
]


@pytest.mark.parametrize(("frame", "mask", "wire"), RFC_EXAMPLES)
def test_rfc_5_7_examples_encode(frame: Frame, mask: bytes | None, wire: bytes) -> None:
    assert encode_frame(frame, mask) == wire


@pytest.mark.parametrize(("frame", "mask", "wire"), RFC_EXAMPLES)
def test_rfc_5_7_examples_decode(frame: Frame, mask: bytes | None, wire: bytes) -> None:
    decoder = FrameDecoder()
    decoder.feed(wire)
    assert decoder.next_frame() == frame
    assert decoder.next_frame() is None
    assert decoder.buffered == 0


def test_rfc_5_7_masked_hello_one_byte_at_a_time() -> None:
    decoder = FrameDecoder(expect_masked=True)
    wire = RFC_EXAMPLES[1][2]
    frames = []
    for byte in wire:
        decoder.feed(bytes([byte]))
        frame = decoder.next_frame()
        if frame is not None:
            frames.append(frame)
    assert frames == [Frame(Opcode.TEXT, b"Hello", masked=True)]


# -- masking --------------------------------------------------------------------------------

# Both implementations of §5.3: the pure-Python one, which every installation has and which
# is the fallback, and the optional C extension where it was built.
Masker = Callable[[bytes | bytearray | memoryview, bytes], bytes]
MASKERS: list[Masker] = [frames_module._mask_python]
MASKER_IDS = ["python"]
_c_masker = frames_module._select_mask(True)
if _c_masker is not frames_module._mask_python:  # pragma: no branch - built here
    MASKERS.append(_c_masker)
    MASKER_IDS.append("c")


@pytest.fixture(params=MASKERS, ids=MASKER_IDS)
def masking(request: pytest.FixtureRequest) -> Iterator[Masker]:
    """Run a test with each masking implementation in use by the whole module."""
    saved = frames_module._mask
    frames_module._mask = request.param
    try:
        yield request.param
    finally:
        frames_module._mask = saved


@pytest.mark.parametrize("masker", MASKERS, ids=MASKER_IDS)
@settings(max_examples=200)
@given(data=st.binary(max_size=5000), mask=st.binary(min_size=4, max_size=4))
def test_masking_matches_the_rfc_definition(masker: Masker, data: bytes, mask: bytes) -> None:
    # §5.3: transformed-octet-i = original-octet-i XOR masking-key-octet-(i MOD 4)
    expected = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
    assert masker(data, mask) == expected
    assert masker(memoryview(bytearray(data)), mask) == expected


@pytest.mark.parametrize("masker", MASKERS, ids=MASKER_IDS)
@pytest.mark.parametrize("size", [0, 1, 3, 4, 5, 125, 126, 1023, 1024, 1025, 70001])
def test_masking_at_every_size_class(masker: Masker, size: int) -> None:
    # Each implementation switches method by size (integer, translate; 8 bytes a time).
    data = os.urandom(size)
    assert masker(data, MASK) == bytes(b ^ MASK[i % 4] for i, b in enumerate(data))


@settings(max_examples=200)
@given(data=st.binary(max_size=5000), mask=st.binary(min_size=4, max_size=4))
def test_masking_is_its_own_inverse(data: bytes, mask: bytes) -> None:
    masked = apply_mask(data, mask)
    assert len(masked) == len(data)
    assert apply_mask(masked, mask) == data


@settings(max_examples=100)
@given(
    data=st.binary(min_size=1, max_size=6000),
    mask=st.binary(min_size=4, max_size=4),
    cut=st.integers(min_value=0),
)
def test_masking_in_pieces_with_offset(data: bytes, mask: bytes, cut: int) -> None:
    cut %= len(data)
    pieces = apply_mask(data[:cut], mask) + apply_mask(data[cut:], mask, offset=cut)
    assert pieces == apply_mask(data, mask)


def test_masking_accepts_memoryview_and_empty() -> None:
    assert apply_mask(memoryview(b"Hello"), MASK) == bytes.fromhex("7f9f4d5158")
    assert apply_mask(b"", MASK) == b""


def test_c_masking_refuses_a_bad_key() -> None:
    if len(MASKERS) < 2:  # pragma: no cover - the extension is built on the project's machines
        pytest.skip("fastim.ws._speedups is not built here")
    with pytest.raises(ValueError):
        MASKERS[1](b"data", b"abc")
    with pytest.raises(TypeError):
        MASKERS[1]("text", MASK)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        MASKERS[1](b"data", 1234)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        MASKERS[1](b"data")  # type: ignore[call-arg]


def test_masking_falls_back_to_python(monkeypatch: pytest.MonkeyPatch) -> None:
    assert frames_module._select_mask(False) is frames_module._mask_python
    # As when no compiler was there at install time: the extension does not import.
    monkeypatch.setitem(sys.modules, "fastim.ws._speedups", None)
    assert frames_module._select_mask(True) is frames_module._mask_python


def test_environment_turns_the_c_masking_off() -> None:
    code = (
        "from fastim.ws import frames as f; print(f._mask is f._mask_python"
        " and f._parse_message is f._parse_message_python"
        " and f._encode_message is f._encode_message_python)"
    )
    env = dict(os.environ, FASTIM_WS_SPEEDUPS="0")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "True", out.stderr


# -- round trips -----------------------------------------------------------------------------

LENGTHS = st.one_of(
    st.integers(0, 125),  # 7-bit length
    st.integers(126, 70000),  # 16-bit, and a few 64-bit
    st.sampled_from([125, 126, 65535, 65536]),  # the class boundaries
)


@st.composite
def frames(draw: st.DrawFn) -> tuple[Frame, bytes | None]:
    opcode = draw(st.sampled_from(list(Opcode)))
    length = draw(LENGTHS) if not opcode.is_control else draw(st.integers(0, 125))
    payload = (
        draw(st.binary(min_size=length, max_size=length))
        if length < 200
        else (bytes([draw(st.integers(0, 255))]) * length)
    )
    mask = draw(st.one_of(st.none(), st.binary(min_size=4, max_size=4)))
    frame = Frame(
        opcode,
        payload,
        fin=True if opcode.is_control else draw(st.booleans()),
        rsv1=draw(st.booleans()),
        rsv2=draw(st.booleans()),
        rsv3=draw(st.booleans()),
        masked=mask is not None,
    )
    return frame, mask


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(items=st.lists(frames(), min_size=1, max_size=5), data=st.data())
def test_round_trip_under_any_split(
    masking: Masker, items: list[tuple[Frame, bytes | None]], data: st.DataObject
) -> None:
    stream = b"".join(encode_frame(frame, mask) for frame, mask in items)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    use_fast_path = data.draw(st.booleans())
    decoder = FrameDecoder()
    decoded: list[Frame] = []
    start = 0
    for cut in [*cuts, len(stream)]:
        decoder.feed(stream[start:cut])
        start = cut
        while True:
            # The protocol tries the fast path for whole messages first, then next_frame.
            if use_fast_path:
                queue: list[str | bytes] = []
                decoder.read_messages(queue)
                for message in queue:
                    expected = items[len(decoded)][0]
                    assert expected.fin and not (expected.rsv1 or expected.rsv2 or expected.rsv3)
                    if isinstance(message, str):
                        text = message.encode()
                        decoded.append(Frame(Opcode.TEXT, text, masked=expected.masked))
                    else:
                        decoded.append(Frame(Opcode.BINARY, message, masked=expected.masked))
            frame = decoder.next_frame()
            if frame is None:
                break
            decoded.append(frame)
    assert decoded == [frame for frame, _ in items]
    assert decoder.buffered == 0


def test_fast_path_leaves_other_frames_to_next_frame() -> None:
    def whole(wire: bytes, **kwargs: object) -> list[str | bytes]:
        max_size = kwargs.pop("max_size", None)
        decoder = FrameDecoder(**kwargs)  # type: ignore[arg-type]
        decoder.feed(wire)
        queue: list[str | bytes] = []
        assert decoder.read_messages(queue, None, max_size) == len(queue)  # type: ignore[arg-type]
        if not queue:
            assert decoder.buffered == len(wire)  # nothing consumed
        return queue

    message = encode_frame(Frame(Opcode.TEXT, b"hi"), MASK)
    assert whole(message) == ["hi"]
    assert whole(message, expect_masked=True) == ["hi"]
    assert whole(message, expect_masked=False) == []  # next_frame raises 1002
    assert whole(message, max_data_length=1) == []  # next_frame raises 1009
    assert whole(message, max_size=1) == []  # the protocol raises 1009
    assert whole(message[:-1]) == []  # incomplete
    assert whole(encode_frame(Frame(Opcode.BINARY, b"hi")), expect_masked=False) == [b"hi"]
    assert whole(encode_frame(Frame(Opcode.TEXT, b"\xff"), MASK)) == []  # 1007 elsewhere
    assert whole(encode_frame(Frame(Opcode.TEXT, b"hi", fin=False), MASK)) == []
    assert whole(encode_frame(Frame(Opcode.PING, b"hi"), MASK)) == []
    assert whole(encode_frame(Frame(Opcode.BINARY, bytes(70000)), MASK)) == []  # 64-bit
    assert whole(encode_frame(Frame(Opcode.BINARY, bytes(300)))[:3]) == []
    assert whole(encode_frame(Frame(Opcode.BINARY, bytes(3000)), MASK)) == [bytes(3000)]
    large = bytes(range(256)) * 200  # read through a memoryview, not sliced out
    assert whole(encode_frame(Frame(Opcode.BINARY, large), MASK)) == [large]
    # Several in a row, then a frame for next_frame(); at most max_count of them.
    ping = encode_frame(Frame(Opcode.PING, b"p"), MASK)
    decoder = FrameDecoder()
    decoder.feed(message * 3 + ping + message)
    queue: list[str | bytes] = []
    assert decoder.read_messages(queue, 2) == 2 and queue == ["hi", "hi"]
    assert decoder.read_messages(queue) == 1 and queue == ["hi"] * 3
    assert decoder.read_messages(queue) == 0
    assert decoder.next_frame() == Frame(Opcode.PING, b"p", masked=True)
    assert decoder.read_messages(queue) == 1 and decoder.buffered == 0
    # Never while the payload of another frame is pending.
    decoder = FrameDecoder()
    decoder.feed(encode_frame(Frame(Opcode.BINARY, b"0123456789"))[:5])
    assert decoder.next_frame() is None and decoder.pending_header is not None
    assert decoder.read_messages(queue) == 0


def test_extended_length_arriving_in_pieces() -> None:
    wire = encode_frame(Frame(Opcode.BINARY, bytes(300)), MASK)
    decoder = FrameDecoder()
    decoder.feed(wire[:3])  # the 16-bit length is not all there
    assert decoder.next_frame() is None and decoder.pending_header is None
    decoder.feed(wire[3:7])  # the masking key is not all there
    assert decoder.next_frame() is None and decoder.pending_header is None
    decoder.feed(wire[7:])
    assert decoder.next_frame() == Frame(Opcode.BINARY, bytes(300), masked=True)


def test_encoder_uses_minimal_length_encoding() -> None:
    assert len(encode_frame(Frame(Opcode.BINARY, bytes(125)))) == 2 + 125
    assert len(encode_frame(Frame(Opcode.BINARY, bytes(126)))) == 4 + 126
    assert len(encode_frame(Frame(Opcode.BINARY, bytes(65535)))) == 4 + 65535
    assert len(encode_frame(Frame(Opcode.BINARY, bytes(65536)))) == 10 + 65536


def test_encoder_sets_rsv_bits() -> None:
    wire = encode_frame(Frame(Opcode.TEXT, b"", rsv1=True, rsv2=True, rsv3=True))
    assert wire == bytes([0xF1, 0x00])


# -- decoder errors ------------------------------------------------------------------------


def _decode(wire: bytes, **kwargs: object) -> list[Frame]:
    decoder = FrameDecoder(**kwargs)  # type: ignore[arg-type]
    decoder.feed(wire)
    out = []
    while (frame := decoder.next_frame()) is not None:
        out.append(frame)
    return out


def _error(wire: bytes, **kwargs: object) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        _decode(wire, **kwargs)
    return info.value


@pytest.mark.parametrize("opcode", [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF])
def test_reserved_opcodes_are_protocol_errors(opcode: int) -> None:
    error = _error(bytes([0x80 | opcode, 0x00]))
    assert error.code == CloseCode.PROTOCOL_ERROR


@pytest.mark.parametrize("opcode", [Opcode.CLOSE, Opcode.PING, Opcode.PONG])
def test_fragmented_control_frame(opcode: Opcode) -> None:
    assert _error(bytes([opcode, 0x00])).code == CloseCode.PROTOCOL_ERROR


@pytest.mark.parametrize("length_byte", [126, 127])
def test_control_frame_over_125_bytes(length_byte: int) -> None:
    wire = bytes([0x89, length_byte]) + bytes(8)
    assert _error(wire).code == CloseCode.PROTOCOL_ERROR


def test_64_bit_length_with_top_bit_set() -> None:
    wire = bytes([0x82, 127]) + struct.pack("!Q", 1 << 63)
    assert _error(wire).code == CloseCode.PROTOCOL_ERROR


def test_mask_rules() -> None:
    unmasked = encode_frame(Frame(Opcode.TEXT, b"hi"))
    masked = encode_frame(Frame(Opcode.TEXT, b"hi"), MASK)
    assert _error(unmasked, expect_masked=True).code == CloseCode.PROTOCOL_ERROR
    assert _error(masked, expect_masked=False).code == CloseCode.PROTOCOL_ERROR
    assert len(_decode(masked, expect_masked=True)) == 1
    assert len(_decode(unmasked, expect_masked=False)) == 1


def test_data_frame_over_the_limit_fails_on_its_header() -> None:
    decoder = FrameDecoder(max_data_length=10)
    decoder.feed(bytes([0x82, 11]))  # the header alone: no payload has come yet
    with pytest.raises(ProtocolError) as info:
        decoder.next_frame()
    assert info.value.code == CloseCode.MESSAGE_TOO_BIG


def test_data_frame_exactly_at_the_limit_passes() -> None:
    assert _decode(bytes([0x82, 10]) + bytes(10), max_data_length=10)[0].payload == bytes(10)


def test_control_frames_are_not_held_to_the_data_limit() -> None:
    assert _decode(bytes([0x89, 5]) + b"Hello", max_data_length=0)[0].opcode is Opcode.PING


@settings(max_examples=300)
@given(st.binary(max_size=200), st.sampled_from([None, True, False]))
def test_any_bytes_give_frames_or_a_protocol_error(data: bytes, expect_masked: bool | None) -> None:
    decoder = FrameDecoder(expect_masked=expect_masked, max_data_length=1000)
    decoder.feed(data)
    try:
        while decoder.next_frame() is not None:
            pass
    except ProtocolError as error:
        assert error.code in (CloseCode.PROTOCOL_ERROR, CloseCode.MESSAGE_TOO_BIG)


def test_peek_payload_unmasks_what_has_arrived() -> None:
    wire = encode_frame(Frame(Opcode.TEXT, b"Hello, world"), MASK)
    decoder = FrameDecoder()
    assert decoder.peek_payload(0) == b""  # no pending frame
    decoder.feed(wire[:9])  # 6 header bytes + "Hel"
    assert decoder.next_frame() is None
    assert decoder.pending_header is not None
    assert decoder.peek_payload(0) == b"Hel"
    decoder.feed(wire[9:11])
    assert decoder.peek_payload(3) == b"lo"
    decoder.feed(wire[11:])
    frame = decoder.next_frame()
    assert frame is not None and frame.payload == b"Hello, world"


def test_peek_of_an_unmasked_frame() -> None:
    decoder = FrameDecoder(expect_masked=False)
    decoder.feed(encode_frame(Frame(Opcode.TEXT, b"server text"))[:7])
    assert decoder.next_frame() is None
    assert decoder.peek_payload(1) == b"erve"


def test_peek_of_a_large_masked_frame_then_completion() -> None:
    payload = bytes(range(256)) * 40
    wire = encode_frame(Frame(Opcode.BINARY, payload), MASK)
    decoder = FrameDecoder()
    decoder.feed(wire[:5000])
    assert decoder.next_frame() is None
    assert decoder.peek_payload(0) == payload[: 5000 - 8]
    decoder.feed(wire[5000:])
    frame = decoder.next_frame()
    assert frame is not None and frame.payload == payload


# -- large payloads, received straight into their bytes (docs/performance.md) ---------------------------

BIG = 300_000  # over frames._DIRECT_THRESHOLD


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    cuts=st.lists(st.integers(0, 2 * BIG + 300), max_size=8),
    masked=st.booleans(),
)
def test_large_frames_under_any_split(masking: Masker, cuts: list[int], masked: bool) -> None:
    # Large frames (each with what follows it) under every split: a read may hold the end
    # of one frame and the start of the next, a header may come in pieces.
    payloads = [os.urandom(BIG), b"small", os.urandom(BIG + 7)]
    key = MASK if masked else None
    wire = b"".join(encode_frame(Frame(Opcode.BINARY, p, masked=masked), key) for p in payloads)
    decoder = FrameDecoder(expect_masked=masked)
    got: list[bytes] = []
    start = 0
    for cut in [*sorted(cuts), len(wire)]:
        decoder.feed(wire[start:cut])
        start = max(start, cut)
        while (frame := decoder.next_frame()) is not None:
            assert type(frame.payload) is bytes and frame.masked is masked
            got.append(frame.payload)
    assert got == payloads
    assert decoder.buffered == 0 and decoder.pending_header is None


def test_a_large_frame_is_received_directly_once_an_eighth_has_come(masking: Masker) -> None:
    payload = os.urandom(BIG)
    wire = encode_frame(Frame(Opcode.BINARY, payload), MASK)
    decoder = FrameDecoder()
    decoder.feed(wire[:1000])  # under an eighth: buffered as it came
    assert decoder.next_frame() is None
    assert decoder.buffered == 1000 and len(decoder.buffer) == 1000
    decoder.feed(wire[1000 : BIG // 4])  # now over: straight into the payload
    assert decoder.next_frame() is None
    assert decoder.buffer == b"" and decoder.buffered == BIG // 4 - 14
    assert decoder.peek_payload(10) == payload[10 : BIG // 4 - 14]
    decoder.feed(wire[BIG // 4 :] + b"\x81")  # the rest, and the next frame's first byte
    frame = decoder.next_frame()
    assert frame is not None and frame.payload == payload
    assert decoder.buffer == b"\x81"


def test_a_large_text_frame_checked_before_and_after_the_switch(masking: Masker) -> None:
    # peek_payload unmasks in place what has arrived (to check UTF-8 early); the switch
    # to the direct payload then copies that part as it is and unmasks the rest.
    payload = "é".encode() * (BIG // 2)
    wire = encode_frame(Frame(Opcode.TEXT, payload), MASK)
    decoder = FrameDecoder()
    decoder.feed(wire[:5000])
    assert decoder.next_frame() is None
    assert decoder.peek_payload(0) == payload[: 5000 - 14]
    decoder.feed(wire[5000:60000])
    assert decoder.next_frame() is None  # switched
    assert decoder.peek_payload(5000 - 14) == payload[5000 - 14 : 60000 - 14]
    decoder.feed(wire[60000:])
    frame = decoder.next_frame()
    assert frame is not None and frame.payload == payload


def test_c_alloc_and_mask_into() -> None:
    if len(MASKERS) < 2:  # pragma: no cover - the extension is built on the project's machines
        pytest.skip("fastim.ws._speedups is not built here")
    from fastim.ws._speedups import alloc, mask_into

    data = os.urandom(1001)
    for target in (alloc(1010), bytearray(1010)):
        mask_into(target, 0, b"", MASK)
        mask_into(target, 3, data[:500], MASK)  # a key phase of 3
        mask_into(target, 503, memoryview(data)[500:], bytearray(MASK))
        mask_into(target, 1004, b"sixsix", None)  # a plain copy
        assert target[3:1004] == apply_mask(data, MASK, 3)
        assert target[1004:] == b"sixsix"
    assert alloc(0) == b""
    with pytest.raises(ValueError):
        alloc(-1)
    with pytest.raises(TypeError):
        alloc("1")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        mask_into(bytearray(4), 1, b"1234", None)  # past the end
    with pytest.raises(ValueError):
        mask_into(bytearray(4), -1, b"", None)
    with pytest.raises(ValueError):
        mask_into(bytearray(4), 0, b"12", b"abc")  # a bad key
    with pytest.raises(TypeError):
        mask_into(memoryview(bytearray(4)), 0, b"12", None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        mask_into(bytearray(4), "0", b"12", None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        mask_into(bytearray(4), 0, "12", None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        mask_into(bytearray(4), 0, b"12", 1234)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        mask_into(bytearray(4), 0, b"12")  # type: ignore[call-arg]



# -- one whole small frame in one call: parse_message, encode_message ----------------------

# Both implementations: the pure-Python ones and, where it was built, the C extension's.
CODECS: list[tuple[frames_module.ParseMessage, frames_module.EncodeMessage]] = [
    (frames_module._parse_message_python, frames_module._encode_message_python)
]
if len(MASKERS) > 1:  # pragma: no branch - built here
    CODECS.append(frames_module._select_message_codec(True))
CODEC_IDS = ["python", "c"][: len(CODECS)]


@pytest.mark.parametrize("codec", CODECS, ids=CODEC_IDS)
def test_parse_message_leaves_long_lengths_and_cut_headers_to_the_long_way(
    codec: tuple[frames_module.ParseMessage, frames_module.EncodeMessage],
) -> None:
    # Every time, not only when hypothesis draws them: a 64-bit length (§5.2: 127), and
    # a 16-bit length whose two bytes have not all come.
    parse, _ = codec
    assert parse(encode_frame(Frame(Opcode.BINARY, bytes(65536))), False, None) is None
    assert parse(encode_frame(Frame(Opcode.BINARY, bytes(200)))[:3], False, None) is None


@pytest.mark.parametrize("codec", CODECS, ids=CODEC_IDS)
@settings(max_examples=300)
@given(
    # Mostly whole data frames, and each way of not being one.
    opcode=st.sampled_from([Opcode.TEXT, Opcode.BINARY, *Opcode]),
    fin=st.sampled_from([True, True, False]),
    rsv=st.sampled_from([{}, {}, {"rsv1": True}, {"rsv3": True}]),
    payload=st.one_of(
        st.binary(max_size=300),
        st.text(max_size=100).map(str.encode),
        st.sampled_from([b"\xff", b"\xed\xa0\x80", b"a" * 1025, bytes(65535), bytes(65536)]),
    ),
    key=st.one_of(st.none(), st.binary(min_size=4, max_size=4)),
    wrong_mask=st.sampled_from([False, False, True]),
    cut=st.sampled_from([0, 0, 0, -3, -1, 1, 2]),
    max_size=st.sampled_from([None, 0, 125, 126, 2000, -1]),
    wrap=st.sampled_from([bytes, bytearray, memoryview]),
)
def test_parse_message_takes_exactly_one_whole_small_data_frame(
    codec: tuple[frames_module.ParseMessage, frames_module.EncodeMessage],
    opcode: Opcode,
    fin: bool,
    rsv: dict[str, bool],
    payload: bytes,
    key: bytes | None,
    wrong_mask: bool,
    cut: int,
    max_size: int | None,
    wrap: Callable[[bytes], bytes],
) -> None:
    parse, _ = codec
    masked = (key is not None) != wrong_mask
    if parse is frames_module._parse_message_python:
        wrap = bytes  # what a transport hands over; C takes any buffer
    data = encode_frame(Frame(opcode, payload, fin, **rsv), key)
    data = data[:cut] if cut < 0 else data + b"\x81\x00"[:cut]  # short, or followed
    message = parse(wrap(data), masked, max_size)
    whole = (
        opcode in (Opcode.TEXT, Opcode.BINARY)
        and fin
        and not rsv
        and (key is not None) == masked
        and len(payload) < 65536
        and cut == 0
        and (max_size is None or len(payload) <= max_size)
    )
    if opcode is Opcode.TEXT and whole:
        try:
            expected: str | bytes | None = payload.decode("utf-8")
        except UnicodeDecodeError:
            expected = None  # §8.1: the long way fails it with 1007
    else:
        expected = payload if whole else None
    assert message == expected and type(message) is type(expected)


@pytest.mark.parametrize("codec", CODECS, ids=CODEC_IDS)
@settings(max_examples=300)
@given(
    message=st.one_of(
        st.binary(max_size=300),
        st.text(max_size=100),
        st.text(alphabet="aé😀", min_size=20, max_size=30),
        st.sampled_from([bytes(70000), "x" * 70000, bytearray(b"ba"), memoryview(b"mv"), 7]),
    ),
    key=st.one_of(st.none(), st.binary(min_size=4, max_size=4)),
    limit=st.sampled_from([0, 1, 40, 126, 1024, 1 << 20]),
)
def test_encode_message_is_encode_frame_for_a_small_str_or_bytes(
    codec: tuple[frames_module.ParseMessage, frames_module.EncodeMessage],
    message: object,
    key: bytes | None,
    limit: int,
) -> None:
    _, encode = codec
    data = encode(message, key, limit)
    if type(message) is bytes:
        frame: Frame | None = Frame(Opcode.BINARY, message)
    elif type(message) is str:
        frame = Frame(Opcode.TEXT, message.encode("utf-8"))
    else:
        frame = None  # bytes-like or not: the long way copies or refuses it
    if frame is None or len(frame.payload) >= limit:
        assert data is None
    else:
        assert data == encode_frame(frame, key)


@pytest.mark.parametrize("codec", CODECS, ids=CODEC_IDS)
def test_parse_message_takes_7_and_16_bit_lengths_masked_or_not(
    codec: tuple[frames_module.ParseMessage, frames_module.EncodeMessage],
) -> None:
    parse, _ = codec
    for text in ("", "hi", "é" * 62, "é" * 63, "é" * 700, "😀" * 16000):
        for key in (MASK, None):
            data = encode_frame(Frame(Opcode.TEXT, text.encode()), key)
            assert parse(data, key is not None, None) == text
            binary = encode_frame(Frame(Opcode.BINARY, text.encode()), key)
            assert parse(binary, key is not None, 64000) == text.encode()
    assert parse(encode_frame(Frame(Opcode.TEXT, b"\xc3"), MASK), True, None) is None
    assert parse(encode_frame(Frame(Opcode.BINARY, bytes(200)), MASK), True, 199) is None


def test_message_codec_errors_and_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    for _, encode in CODECS:  # a lone surrogate is not UTF-8, as for str.encode
        with pytest.raises(UnicodeEncodeError):
            encode("\ud800", None, 1024)
    python = (frames_module._parse_message_python, frames_module._encode_message_python)
    assert frames_module._select_message_codec(False) == python
    # As when no compiler was there at install time, or the extension predates these.
    monkeypatch.setitem(sys.modules, "fastim.ws._speedups", None)
    assert frames_module._select_message_codec(True) == python


def test_c_message_codec_checks_its_arguments() -> None:
    if len(CODECS) < 2:  # pragma: no cover - the extension is built on the project's machines
        pytest.skip("fastim.ws._speedups is not built here")
    parse, encode = CODECS[1]
    text = encode_frame(Frame(Opcode.TEXT, "é".encode() * 700), MASK)  # over 1 KiB of text
    assert parse(text, True, None) == "é" * 700
    with pytest.raises(TypeError):
        parse(b"\x81\x00", True)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        parse("text", False, None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        parse(b"\x81\x00", False, "10")  # type: ignore[arg-type]

    class Truthless:
        def __bool__(self) -> bool:
            raise ValueError("no truth")

    with pytest.raises(ValueError):
        parse(b"\x81\x00", Truthless(), None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        encode(b"x", None)  # type: ignore[call-arg]
    with pytest.raises(ValueError):
        encode(b"x", b"abc", 10)
    with pytest.raises(ValueError):
        encode(b"x", bytearray(MASK), 10)
    with pytest.raises(TypeError):
        encode(b"x", None, "10")  # type: ignore[arg-type]


# -- close payloads --------------------------------------------------------------------------


def test_close_payload_round_trip() -> None:
    assert encode_close_payload(1000, "bye") == b"\x03\xe8bye"
    assert decode_close_payload(b"\x03\xe8bye") == (1000, "bye")
    assert encode_close_payload(None) == b""
    assert decode_close_payload(b"") == (CloseCode.NO_STATUS_RCVD, "")


def test_close_payload_errors() -> None:
    with pytest.raises(ProtocolError) as info:
        decode_close_payload(b"\x03")
    assert info.value.code == CloseCode.PROTOCOL_ERROR
    with pytest.raises(ProtocolError) as info:
        decode_close_payload(b"\x03\xed")  # 1005 may not be sent
    assert info.value.code == CloseCode.PROTOCOL_ERROR
    with pytest.raises(ProtocolError) as info:
        decode_close_payload(b"\x03\xe8\xff")
    assert info.value.code == CloseCode.INVALID_DATA


@pytest.mark.parametrize(
    "code",
    [
        1000,
        1001,
        1002,
        1003,
        1007,
        1008,
        1009,
        1010,
        1011,
        1012,
        1013,
        1014,
        3000,
        3999,
        4000,
        4999,
    ],
)
def test_valid_close_codes(code: int) -> None:
    assert is_valid_close_code(code)


@pytest.mark.parametrize(
    "code", [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]
)
def test_invalid_close_codes(code: int) -> None:
    assert not is_valid_close_code(code)


def test_opcode_is_control() -> None:
    assert [op.is_control for op in Opcode] == [False, False, False, True, True, True]

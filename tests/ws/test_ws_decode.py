"""`python -m fastim.ws decode HEX` and fastim.ws.explain: each field of a frame explained,
each broken rule named with its RFC section and close code, and the verdicts in agreement
with fastim's own receiver (WebSocketProtocol) on any frame."""

from __future__ import annotations

import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastim.ws.__main__ import main
from fastim.ws.deflate import PerMessageDeflate
from fastim.ws.explain import SHOWN_BYTES, Explanation, explain_frame, parse_hex
from fastim.ws.frames import CloseCode, Frame, Opcode, encode_frame
from fastim.ws.protocol import ProtocolFailure, Role, WebSocketProtocol

KEY = bytes.fromhex("37fa213d")  # the masking key of RFC 6455 §5.7's examples
MASKED_HELLO = "81 85 37 fa 21 3d 7f 9f 4d 51 58"  # RFC 6455 §5.7


def explain(hex_text: str, receiver: Role | None = None, deflate: bool = False) -> Explanation:
    return explain_frame(parse_hex(hex_text), receiver=receiver, deflate=deflate)


def masked(frame: Frame, key: bytes = KEY) -> bytes:
    return encode_frame(frame, key)


def plain(opcode: Opcode, payload: bytes, *, rsv1: bool = False) -> bytes:
    return encode_frame(Frame(opcode, payload, rsv1=rsv1))


def assert_invalid(ex: Explanation, code: CloseCode, section: str, words: str) -> None:
    assert not ex.valid
    assert ex.close_code == code
    first = ex.violations[0]
    assert first.section == section
    assert words in first.rule
    text = ex.render()
    assert f"INVALID: {first.rule} ({section})." in text
    assert f"close code {int(code)} {code.name}" in text


# -- reading hex -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "81 85 37 fa",
        "81:85:37:FA",
        "0x81 0x85 0x37 0xfa",
        "0x81, 0x85, 0x37, 0xfa",
        "8185 37fa",
        "  81\n85\t37fa ",
    ],
)
def test_parse_hex_takes_hex_as_people_write_it(text: str) -> None:
    assert parse_hex(text) == bytes([0x81, 0x85, 0x37, 0xFA])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("81 8", "odd number of hex digits (3)"),
        ("81 zz", "not a hex digit: 'z'"),
        ("   ", "no bytes given"),
    ],
)
def test_parse_hex_says_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_hex(text)


def test_cli_rejects_bad_hex_with_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["decode", "81", "8"])
    assert info.value.code == 2
    assert "odd number of hex digits" in capsys.readouterr().err


def test_cli_server_and_client_are_exclusive() -> None:
    with pytest.raises(SystemExit) as info:
        main(["decode", "--server", "--client", "81 00"])
    assert info.value.code == 2


# -- valid frames, field by field ------------------------------------------------------------


def test_cli_explains_the_rfc_masked_hello(capsys: pytest.CaptureFixture[str]) -> None:
    # Several arguments are joined: the hex can be pasted unquoted.
    assert main(["decode", "--server", *MASKED_HELLO.split()]) == 0
    out = capsys.readouterr().out
    assert out.splitlines() == [
        "11 bytes received by a server",
        "byte 0      0x81 = 1 000 0001",
        "  FIN       1     final: the last frame of its message (§5.2)",
        "  RSV1-3    000   no extension bits (§5.2)",
        "  opcode    0001  0x1 TEXT: a data frame carrying UTF-8 text (§5.6)",
        "byte 1      0x85 = 1 0000101",
        "  MASK      1     masked, as every frame a client sends must be (§5.3)",
        "  length    5     7-bit length: 0-125 fits in byte 1 itself (§5.2)",
        "bytes 2-5   masking key 37 fa 21 3d (§5.3)",
        "bytes 6-10  payload, 5 bytes, masked:",
        "            7f 9f 4d 51 58",
        "  unmasked  48 65 6c 6c 6f",
        "            (byte i XOR key byte i % 4, §5.3: 7f^37=48, 9f^fa=65, 4d^21=6c, 51^3d=6c, ...)",
        "  text      'Hello'",
        "VALID: a complete TEXT frame of 11 bytes.",
    ]


def test_without_a_receiver_the_mask_bit_says_who_sent_it() -> None:
    assert "masked: sent by a client" in explain(MASKED_HELLO).render()
    unmasked = explain("81 05 48 65 6c 6c 6f")
    assert unmasked.valid
    assert "not masked: sent by a server, which never masks (§5.1)" in unmasked.render()
    assert "unmasked" not in unmasked.render()
    assert unmasked.render().splitlines()[0] == "7 bytes"
    ok = explain("81 05 48 65 6c 6c 6f", Role.CLIENT)
    assert ok.valid
    assert "not masked, as every frame a server sends must be (§5.1)" in ok.render()


def test_xor_worked_example_stops_at_four_bytes() -> None:
    text = explain_frame(masked(Frame(Opcode.BINARY, b"abc")), receiver=Role.SERVER).render()
    assert "(byte i XOR key byte i % 4, §5.3: 56^37=61, 98^fa=62, 42^21=63)" in text


def test_16_bit_length_form() -> None:
    # RFC 6455 §5.7: 256 bytes binary message in a single unmasked frame.
    ex = explain_frame(bytes.fromhex("827e0100") + bytes(256), receiver=Role.CLIENT)
    assert ex.valid and ex.size == 260 and ex.payload == bytes(256)
    text = ex.render()
    assert "  length    126   16-bit length: the length follows in bytes 2-3 (§5.2)" in text
    assert "bytes 2-3   payload length 01 00 = 256" in text
    assert "bytes 4-259 payload, 256 bytes, not masked:" in text
    assert f"... {256 - SHOWN_BYTES} more bytes" in text
    assert "note" not in text
    assert "as text" in text  # 256 NUL bytes are valid UTF-8 too


def test_64_bit_length_form() -> None:
    # RFC 6455 §5.7: 64KiB binary message in a single unmasked frame.
    ex = explain_frame(bytes.fromhex("827f0000000000010000") + bytes(65536))
    assert ex.valid and ex.size == 65546
    text = ex.render()
    assert "  length    127   64-bit length: the length follows in bytes 2-9 (§5.2)" in text
    assert "bytes 2-9   payload length 00 00 00 00 00 01 00 00 = 65536" in text


@pytest.mark.parametrize(
    "frame",
    [
        "82 7e 00 05 01 02 03 04 05",  # 5 in the 16-bit form
        "82 7f 00 00 00 00 00 00 00 05 01 02 03 04 05",  # 5 in the 64-bit form
        "82 7f 00 00 00 00 00 00 01 00" + " 00" * 256,  # 256 in the 64-bit form
    ],
)
def test_a_length_not_in_its_shortest_form_is_noted_not_refused(frame: str) -> None:
    # §5.2 asks the sender for the minimal form; fastim's receiver accepts any.
    ex = explain(frame)
    assert ex.valid
    assert "not the shortest form, which a sender must use (§5.2)" in ex.render()
    events = WebSocketProtocol(Role.CLIENT).receive_data(parse_hex(frame))
    assert [type(event).__name__ for event in events] == ["Message"]


def test_empty_payload() -> None:
    ex = explain("82 00")
    assert ex.valid and ex.payload == b""
    assert "            no payload" in ex.render()


def test_binary_payload_that_is_not_text_is_shown_in_hex_only() -> None:
    ex = explain("82 02 ff fe")
    assert ex.valid and ex.message == b"\xff\xfe"
    assert "as text" not in ex.render()
    ex = explain("82 02 68 69")
    assert "  as text   'hi'" in ex.render()


def test_first_fragment_of_a_text_message() -> None:
    # RFC 6455 §5.7: "Hel" then "lo".
    ex = explain("01 03 48 65 6c")
    assert ex.valid and not ex.fin and ex.message == "Hel"
    text = ex.render()
    assert "  FIN       0     not final: more fragments of this message follow (§5.4)" in text
    assert "  text      'Hel' (the message continues)" in text
    # A fragment may end inside a character: 'é' is c3 a9.
    ex = explain("01 02 48 c3")
    assert ex.valid and ex.message == "H"


def test_continuation_frame_is_valid_only_inside_a_message() -> None:
    ex = explain("80 02 6c 6f")
    assert ex.valid
    text = ex.render()
    assert "0x0 CONTINUATION" in text
    assert "valid only after a TEXT or BINARY frame with FIN=0" in text
    assert "  as text   'lo'" in text


def test_ping_and_pong() -> None:
    ping = explain("89 05 48 65 6c 6c 6f")
    assert ping.valid
    assert "a receiver answers with a pong carrying this payload (§5.5.2)" in ping.render()
    pong = explain("8a 00")
    assert pong.valid and "0xa PONG" in pong.render()


@pytest.mark.parametrize(
    ("code", "meaning"),
    [
        (1000, "1000 NORMAL_CLOSURE: the purpose of the connection is fulfilled"),
        (1001, "1001 GOING_AWAY"),
        (1011, "1011 INTERNAL_ERROR"),
        (1014, "1014 BAD_GATEWAY"),
        (3000, "3000 for libraries and frameworks, registered with IANA (§7.4.2)"),
        (4999, "4999 for private use by applications (§7.4.2)"),
    ],
)
def test_close_frame_code_and_reason(code: int, meaning: str) -> None:
    frame = masked(Frame(Opcode.CLOSE, struct.pack("!H", code) + "bye ✓".encode()))
    ex = explain_frame(frame, receiver=Role.SERVER)
    assert ex.valid
    text = ex.render()
    assert meaning in text
    assert "  reason    'bye ✓'" in text
    assert f"answers with a close frame, code {code} (§5.5.1)" in text


def test_close_frame_without_reason_or_code() -> None:
    assert "  reason    (none)" in explain("88 02 03 e8").render()
    empty = explain("88 00")
    assert empty.valid
    assert "no status code: the receiver reports 1005 NO_STATUS_RCVD (§7.1.5)" in empty.render()


def test_bytes_after_the_frame_belong_to_the_next_one() -> None:
    ex = explain("81 02 68 69 82 00")
    assert ex.valid and ex.size == 4
    assert "bytes 4-5   not part of this frame: the next frame starts here" in ex.render()
    assert "byte 4      not part of this frame" in explain("81 02 68 69 82").render()


# -- permessage-deflate ----------------------------------------------------------------------


def test_deflate_inflates_rfc_7692_hello(capsys: pytest.CaptureFixture[str]) -> None:
    # RFC 7692 §7.2.3.1: "Hello" compressed, unmasked.
    assert main(["decode", "--client", "--deflate", "c1 07 f2 48 cd c9 c9 07 00"]) == 0
    out = capsys.readouterr().out
    assert "  RSV1-3    100   RSV1: the message is compressed (RFC 7692 §6)" in out
    assert "  inflated  payload + 00 00 ff ff, inflated as raw DEFLATE (RFC 7692 §7.2.2):" in out
    assert "  text      'Hello'" in out


def test_deflate_masked_and_binary() -> None:
    payload = PerMessageDeflate().compress(b"\x00\x01" * 40)
    ex = explain_frame(
        masked(Frame(Opcode.BINARY, payload, rsv1=True)), receiver=Role.SERVER, deflate=True
    )
    assert ex.valid and ex.message == b"\x00\x01" * 40


def test_deflate_first_fragment_and_empty_message() -> None:
    # RFC 7692 §7.2.3.3: "Hello" compressed, split in two frames. The first frame's 3 bytes
    # hold "He" and the start of the next code, so it inflates to "He" for now.
    first = explain("41 03 f2 48 cd", deflate=True)
    assert first.valid and first.message == "He"
    assert "  inflated  payload, inflated as raw DEFLATE" in first.render()
    # §7.2.3.6: an empty message compresses to 00; an empty payload is an empty message too.
    for frame in ("c1 01 00", "c1 00"):
        ex = explain(frame, deflate=True)
        assert ex.valid and ex.message == ""


def test_deflate_corrupt_and_context_takeover() -> None:
    assert_invalid(
        explain("c1 05 ff 00 11 00 00", deflate=True),
        CloseCode.INVALID_DATA,
        "RFC 7692 §7.2.2",
        "not valid DEFLATE data (invalid block type)",
    )
    # RFC 7692 §7.2.3.2: "Hello" again with context takeover copies from the first message.
    assert_invalid(
        explain("c1 05 f2 00 11 00 00", deflate=True),
        CloseCode.INVALID_DATA,
        "RFC 7692 §7.2.2",
        "refers back to an earlier message (context takeover)",
    )


def test_deflate_inflated_text_must_be_utf8() -> None:
    payload = PerMessageDeflate().compress(b"ok \xff")
    assert_invalid(
        explain_frame(plain(Opcode.TEXT, payload, rsv1=True), deflate=True),
        CloseCode.INVALID_DATA,
        "RFC 6455 §8.1",
        "the text is not valid UTF-8 at byte 3 of it (ff)",
    )


# -- each rule a single frame can break ------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "receiver", "deflate", "code", "section", "words"),
    [
        ("83 00", None, False, 1002, "RFC 6455 §5.2", "opcode 0x3 is reserved"),
        ("8b 00", None, False, 1002, "RFC 6455 §5.2", "opcode 0xb is reserved"),
        ("89 7e 00 7e" + " 00" * 126, None, False, 1002, "RFC 6455 §5.5", "at most 125 bytes"),
        ("88 7e", None, False, 1002, "RFC 6455 §5.5", "at most 125 bytes"),
        ("09 00", None, False, 1002, "RFC 6455 §5.5", "must not be fragmented"),
        ("81 05 48 65 6c 6c 6f", Role.SERVER, False, 1002, "RFC 6455 §5.1", "must be masked"),
        (MASKED_HELLO, Role.CLIENT, False, 1002, "RFC 6455 §5.1", "must not be masked"),
        (
            "82 7f 80 00 00 00 00 00 00 00",
            None,
            False,
            1002,
            "RFC 6455 §5.2",
            "most significant bit",
        ),
        ("a1 00", None, False, 1002, "RFC 6455 §5.2", "RSV2 and RSV3 must be 0"),
        ("91 00", None, True, 1002, "RFC 6455 §5.2", "RSV2 and RSV3 must be 0"),
        ("c1 00", None, False, 1002, "RFC 6455 §5.2", "RSV1 is set but no extension"),
        ("c9 00", None, True, 1002, "RFC 7692 §6.1", "first frame of a data message only"),
        ("c0 00", None, True, 1002, "RFC 7692 §6.1", "first frame of a data message only"),
        ("88 01 03", None, False, 1002, "RFC 6455 §5.5.1", "not 1 byte"),
        ("88 02 03 e7", None, False, 1002, "RFC 6455 §7.4", "close code 999 may not be sent"),
        ("88 02 03 ec", None, False, 1002, "RFC 6455 §7.4", "close code 1004"),
        ("88 02 03 ed", None, False, 1002, "RFC 6455 §7.4", "close code 1005"),
        ("88 02 03 ee", None, False, 1002, "RFC 6455 §7.4", "close code 1006"),
        ("88 02 03 f7", None, False, 1002, "RFC 6455 §7.4", "close code 1015"),
        ("88 02 03 f8", None, False, 1002, "RFC 6455 §7.4", "close code 1016"),
        ("88 02 0b b7", None, False, 1002, "RFC 6455 §7.4", "close code 2999"),
        ("88 02 13 88", None, False, 1002, "RFC 6455 §7.4", "close code 5000"),
        (
            "88 04 03 e8 c3 28",
            None,
            False,
            1007,
            "RFC 6455 §8.1",
            "the close reason is not valid UTF-8",
        ),
        (
            "81 02 c3 28",
            None,
            False,
            1007,
            "RFC 6455 §8.1",
            "the text is not valid UTF-8 at byte 0",
        ),
        ("81 01 c3", None, False, 1007, "RFC 6455 §8.1", "the text is not valid UTF-8"),
        (
            "01 02 41 ff",
            None,
            False,
            1007,
            "RFC 6455 §8.1",
            "the text so far is not valid UTF-8 at byte 1",
        ),
        # ED A0 starts a UTF-16 surrogate: no third byte can make it valid (fail fast).
        ("01 02 ed a0", None, False, 1007, "RFC 6455 §8.1", "the start of a surrogate"),
    ],
)
def test_each_rule_is_named_with_its_close_code(
    frame: str, receiver: Role | None, deflate: bool, code: int, section: str, words: str
) -> None:
    assert_invalid(explain(frame, receiver, deflate), CloseCode(code), section, words)


def test_close_code_meanings_of_invalid_codes() -> None:
    assert "1004 reserved (§7.4.1)" in explain("88 02 03 ec").render()
    assert "2999 unassigned: reserved for future RFCs (§7.4.2)" in explain("88 02 0b b7").render()
    assert "999 outside the ranges of §7.4.2" in explain("88 02 03 e7").render()
    assert "1005 NO_STATUS_RCVD: never sent" in explain("88 02 03 ed").render()


def test_every_broken_rule_is_listed_the_first_decides(capsys: pytest.CaptureFixture[str]) -> None:
    # Unmasked, RSV2 set, a reserved control opcode, fragmented: four rules at once.
    assert main(["decode", "--server", "2c 00"]) == 1
    out = capsys.readouterr().out
    invalid = [line for line in out.splitlines() if line.startswith("INVALID")]
    assert invalid == [
        "INVALID: opcode 0xc is reserved (RFC 6455 §5.2).",
        "INVALID: RSV2 and RSV3 must be 0: no extension here uses them (RFC 6455 §5.2).",
        "INVALID: a control frame must not be fragmented (FIN=0) (RFC 6455 §5.5).",
        "INVALID: a client's frame must be masked (RFC 6455 §5.1).",
    ]
    assert out.endswith(
        "A receiver must fail the connection with close code 1002 PROTOCOL_ERROR"
        " (RFC 6455 §7.1.7).\n"
    )
    assert "0xc: reserved for future control frames (§5.2)" in out


def test_payload_of_a_frame_with_a_bad_header_is_not_judged() -> None:
    # RSV1 without deflate on text that is not UTF-8: the header decides, 1002 not 1007.
    ex = explain("c1 02 c3 28")
    assert [v.code for v in ex.violations] == [CloseCode.PROTOCOL_ERROR]


# -- incomplete frames -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "missing", "line"),
    [
        ("81", 1, "INCOMPLETE: the header needs at least 2 bytes, 1 are here: 1 byte missing"),
        (
            "82 7e 01",
            1,
            "INCOMPLETE: the header needs at least 4 bytes, 3 are here: 1 byte missing",
        ),
        ("82 ff 00 00", 10, "INCOMPLETE: the header needs at least 14 bytes, 4 are here: 10 bytes"),
        ("81 85 37 fa", 7, "INCOMPLETE: the frame is 11 bytes long, 4 are here: 7 bytes missing."),
        (
            "82 fe 00 02 00",
            5,
            "INCOMPLETE: the frame is 10 bytes long, 5 are here: 5 bytes missing.",
        ),
        (
            "81 85 37 fa 21 3d 7f 9f",
            3,
            "INCOMPLETE: the frame is 11 bytes long, 8 are here: 3 bytes missing.",
        ),
        (
            "81 85 37 fa 21 3d",
            5,
            "INCOMPLETE: the frame is 11 bytes long, 6 are here: 5 bytes missing.",
        ),
    ],
)
def test_incomplete_frame_says_how_many_bytes_are_missing(
    frame: str, missing: int, line: str
) -> None:
    ex = explain(frame)
    assert not ex.valid and not ex.violations
    assert ex.missing == missing
    assert line in ex.render()


def test_incomplete_payload_is_shown_as_far_as_it_goes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["decode", "81 85 37 fa 21 3d 7f 9f"]) == 1
    out = capsys.readouterr().out
    assert "bytes 6-7   payload, 5 bytes, 2 here, masked:" in out
    assert "  unmasked  48 65" in out
    assert explain("81 00", None).missing == 0
    assert explain_frame(b"").missing == 2


def test_incomplete_text_already_invalid_fails_fast() -> None:
    # §8.1: a receiver (fastim) fails on the first bad byte, before the frame is complete.
    assert_invalid(
        explain("81 05 41 ff"),
        CloseCode.INVALID_DATA,
        "RFC 6455 §8.1",
        "the text so far is not valid UTF-8 at byte 1",
    )
    assert explain("81 05 41 c3").missing == 3  # a character cut short is fine so far
    assert explain("c1 05 41 ff", deflate=True).missing == 3  # compressed: not text yet


def test_header_rule_broken_before_the_frame_is_complete() -> None:
    ex = explain("83 05 00")
    assert ex.close_code == CloseCode.PROTOCOL_ERROR and ex.missing == 4


# -- agreement with fastim's receiver ---------------------------------------------------------


def rarely(draw: st.DrawFn) -> bool:
    """True one time in ten: header faults are few, so payload rules get tested too."""
    return draw(st.integers(0, 9)) == 0


@st.composite
def frames(draw: st.DrawFn, receiver: Role) -> bytes:
    """Frames with any header bits, opcode, length form and payload, mostly well-formed."""
    opcode = draw(st.sampled_from(list(Opcode))) if not rarely(draw) else draw(st.integers(0, 15))
    fin = draw(st.booleans()) if opcode < 8 or rarely(draw) else True
    rsv1 = draw(st.booleans())
    rsv2, rsv3 = rarely(draw), rarely(draw)
    first = fin << 7 | rsv1 << 6 | rsv2 << 5 | rsv3 << 4 | opcode
    must_mask = receiver is Role.SERVER
    mask = draw(st.binary(min_size=4, max_size=4)) if must_mask != rarely(draw) else None
    if opcode == Opcode.CLOSE and draw(st.booleans()):
        code = draw(
            st.sampled_from([999, 1000, 1001, 1004, 1005, 1012, 1016, 2999, 3000, 4999, 5000])
        )
        reason = draw(st.sampled_from([b"", b"bye", b"\xc3\x28", "✓".encode(), b"\xed\xa0\x80"]))
        payload = struct.pack("!H", code) + reason
    elif rsv1 and draw(st.booleans()):
        text = draw(st.one_of(st.binary(max_size=40), st.text(max_size=40).map(str.encode)))
        payload = PerMessageDeflate().compress(text)
        if not fin:
            payload = payload[: draw(st.integers(0, len(payload)))]
    else:
        payload = draw(
            st.one_of(
                st.binary(max_size=140),
                st.text(max_size=40).map(str.encode),
                st.text(min_size=1, max_size=20).map(str.encode).map(lambda b: b[:-1]),
            )
        )
    length_form = draw(st.sampled_from(["minimal", "minimal", "16", "64"]))
    size = len(payload)
    if length_form == "16":
        header = bytes([first, 126]) + struct.pack("!H", size)
    elif length_form == "64":
        top = (1 << 63) if rarely(draw) else 0
        header = bytes([first, 127]) + struct.pack("!Q", size | top)
    elif size < 126:
        header = bytes([first, size])
    else:
        header = bytes([first, 126]) + struct.pack("!H", size)
    if mask is None:
        return header + payload
    header = header[:1] + bytes([header[1] | 0x80]) + header[2:]
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


@settings(max_examples=300, deadline=None)
@given(data=st.data(), receiver=st.sampled_from([Role.SERVER, Role.CLIENT]), deflate=st.booleans())
def test_verdict_agrees_with_fastims_receiver(
    data: st.DataObject, receiver: Role, deflate: bool
) -> None:
    frame = data.draw(frames(receiver))
    ex = explain_frame(frame, receiver=receiver, deflate=deflate)
    core = WebSocketProtocol(
        receiver, max_size=None, extension=PerMessageDeflate() if deflate else None
    )
    if frame[0] & 0x0F == Opcode.CONTINUATION:
        # A continuation frame is judged inside a message, as the explainer assumes.
        start = Frame(Opcode.BINARY, b"", fin=False)
        core.receive_data(encode_frame(start, KEY if receiver is Role.SERVER else None))
    events = core.receive_data(frame)
    failures = [e.error.code for e in events if isinstance(e, ProtocolFailure)]
    if ex.violations:
        assert failures == [ex.close_code]
    else:
        assert not failures
        assert not ex.missing  # these frames are complete
        assert len(events) == (1 if ex.fin or ex.opcode is not None and ex.opcode >= 8 else 0)


def test_inflate_matches_zlib() -> None:
    compressor = zlib.compressobj(wbits=-15)
    text = "explain me " * 20
    payload = compressor.compress(text.encode()) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert payload.endswith(b"\x00\x00\xff\xff")
    ex = explain_frame(plain(Opcode.TEXT, payload[:-4], rsv1=True), deflate=True)
    assert ex.valid and ex.message == text


def test_accept_steps_are_accept_key_worked_out() -> None:
    from fastim.ws.explain import ACCEPT_STEP_MEANING, accept_steps
    from fastim.ws.handshake import accept_key

    steps = accept_steps("UdTUf90CC561cQXn4n5XRg==")  # the tutorial's example
    assert steps.joined == "UdTUf90CC561cQXn4n5XRg==258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
    assert steps.sha1.hex() == "199938d452594986340a6b2b64f1a9506450ce46"
    assert steps.accept == accept_key(steps.key) == "GZk41FJZSYY0CmsrZPGpUGRQzkY="
    assert list(ACCEPT_STEP_MEANING) == ["key", "joined", "sha1", "accept"]
    assert all("§" in meaning for meaning in ACCEPT_STEP_MEANING.values())


def test_rows_are_the_lines_in_two_columns() -> None:
    explained = explain_frame(bytes.fromhex("8105 48656c6c6f"))
    assert len(explained.rows) == len(explained.lines) - 1  # all but the byte count
    assert explained.rows[1] == ("FIN", "1     final: the last frame of its message (§5.2)")


def test_inflating_stops_at_max_size() -> None:
    bomb = PerMessageDeflate().compress(bytes(100_000))
    frame = encode_frame(Frame(Opcode.BINARY, bomb, rsv1=True))
    explained = explain_frame(frame, deflate=True, max_size=1000)
    assert explained.close_code == CloseCode.MESSAGE_TOO_BIG
    assert explained.violations[0].rule.startswith("the payload inflates to more than 1000")
    assert explain_frame(frame, deflate=True).message == bytes(100_000)

"""permessage-deflate (RFC 7692): header parsing, negotiation, and the payload transformation."""

from __future__ import annotations

import json
import random
import sys
import tracemalloc
import zlib

import pytest

from fastim.ws import InvalidHandshake, ProtocolError
from fastim.ws.deflate import (
    DeflateOptions,
    ExtensionHeaderError,
    NegotiationError,
    PerMessageDeflate,
    accept_client_response,
    client_offer,
    deflate_options,
    negotiate_server,
    parse_extensions,
)

MESSAGE_TOO_BIG = 1009
INVALID_DATA = 1007


def text_frame(payload: bytes, *, fin: bool = True, rsv1: bool = True, opcode: int = 0x1) -> bytes:
    """An unmasked frame with a 7-bit length, as the RFC 7692 §7.2.3 examples are written."""
    assert len(payload) < 126
    return bytes([(0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode, len(payload)]) + payload


# --------------------------------------------------------------------------------------------
# Sec-WebSocket-Extensions grammar (RFC 6455 §9.1)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([], []),
        ([""], []),
        (["permessage-deflate"], [("permessage-deflate", [])]),
        (
            ["permessage-deflate; client_max_window_bits"],
            [("permessage-deflate", [("client_max_window_bits", None)])],
        ),
        (
            # Several offers, whitespace around every separator, a quoted value.
            ['permessage-deflate ;server_max_window_bits = "10" ; client_no_context_takeover ,'
             "\tpermessage-deflate, x-webkit-deflate-frame"],
            [
                (
                    "permessage-deflate",
                    [("server_max_window_bits", "10"), ("client_no_context_takeover", None)],
                ),
                ("permessage-deflate", []),
                ("x-webkit-deflate-frame", []),
            ],
        ),
        (
            # Two header lines mean the same as one joined with a comma; empty elements vanish.
            ["a; x=1", " , , b; y=\"z\\9\""],
            [("a", [("x", "1")]), ("b", [("y", "z9")])],
        ),
    ],
)
def test_parse_extensions(values: list[str], expected: list[object]) -> None:
    assert parse_extensions(values) == expected


@pytest.mark.parametrize(
    "value",
    [
        "permessage-deflate;",  # a parameter name must follow ";"
        "; server_max_window_bits=10",  # no extension name
        "permessage-deflate; server_max_window_bits=",  # no value after "="
        "permessage-deflate server_no_context_takeover",  # missing ";"
        "permessage-deflate; a=b=c",
        'permessage-deflate; a="10',  # unterminated quoted-string
        'permessage-deflate; a="1\\',  # backslash at the very end
        'permessage-deflate; a="1 0"',  # unquoted value must be a token
        'permessage-deflate; a=""',  # ... and a token is never empty
        'permessage-deflate; a="1\x010"',  # control character
        "permessage-deflate; a=(10)",
        "perméssage-deflate",
    ],
)
def test_parse_extensions_rejects_bad_syntax(value: str) -> None:
    with pytest.raises(ExtensionHeaderError):
        parse_extensions([value])


# --------------------------------------------------------------------------------------------
# Server side negotiation (RFC 7692 §7.1)
# --------------------------------------------------------------------------------------------

NO_LIMITS = DeflateOptions(server_max_window_bits=15, client_max_window_bits=15)


@pytest.mark.parametrize(
    ("offers", "options", "response", "agreed"),
    [
        # agreed = (local bits, remote bits, local no-takeover, remote no-takeover) of the server
        (["permessage-deflate"], None,
         "permessage-deflate; server_max_window_bits=12", (12, 15, False, False)),
        (["permessage-deflate"], NO_LIMITS, "permessage-deflate", (15, 15, False, False)),
        # What browsers send: the server may pick the client's window.
        (["permessage-deflate; client_max_window_bits"], None,
         "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12",
         (12, 12, False, False)),
        (["permessage-deflate; client_max_window_bits"], NO_LIMITS,
         "permessage-deflate", (15, 15, False, False)),
        (["permessage-deflate; client_max_window_bits=10"], None,
         "permessage-deflate; server_max_window_bits=12; client_max_window_bits=10",
         (12, 10, False, False)),
        (["permessage-deflate; client_max_window_bits=10"], NO_LIMITS,
         "permessage-deflate; client_max_window_bits=10", (15, 10, False, False)),
        (["permessage-deflate; client_max_window_bits=15"], NO_LIMITS,
         "permessage-deflate", (15, 15, False, False)),
        (["permessage-deflate; server_max_window_bits=10"], None,
         "permessage-deflate; server_max_window_bits=10", (10, 15, False, False)),
        (["permessage-deflate; server_max_window_bits=15"], None,
         "permessage-deflate; server_max_window_bits=12", (12, 15, False, False)),
        (["permessage-deflate; server_max_window_bits=15"], NO_LIMITS,
         "permessage-deflate; server_max_window_bits=15", (15, 15, False, False)),
        (['permessage-deflate; server_max_window_bits="8"'], None,
         "permessage-deflate; server_max_window_bits=8", (8, 15, False, False)),
        (["permessage-deflate; server_no_context_takeover"], None,
         "permessage-deflate; server_no_context_takeover; server_max_window_bits=12",
         (12, 15, True, False)),
        (["permessage-deflate; client_no_context_takeover"], NO_LIMITS,
         "permessage-deflate; client_no_context_takeover", (15, 15, False, True)),
        (["permessage-deflate"],
         DeflateOptions(server_no_context_takeover=True, client_no_context_takeover=True,
                        server_max_window_bits=9),
         "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
         "server_max_window_bits=9", (9, 15, True, True)),
        # Every parameter at once.
        (["permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
          "server_max_window_bits=11; client_max_window_bits=13"], None,
         "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
         "server_max_window_bits=11; client_max_window_bits=12", (11, 12, True, True)),
        # The first acceptable offer wins; other extensions are declined by omission.
        (["x-webkit-deflate-frame, permessage-deflate; server_max_window_bits=9, "
          "permessage-deflate"], None,
         "permessage-deflate; server_max_window_bits=9", (9, 15, False, False)),
        (["permessage-deflate; server_max_window_bits=10", "permessage-deflate"], None,
         "permessage-deflate; server_max_window_bits=10", (10, 15, False, False)),
        # An unknown parameter declines that offer only (RFC 7692 §7.1).
        (["permessage-deflate; x_future=1, permessage-deflate; client_no_context_takeover"],
         NO_LIMITS, "permessage-deflate; client_no_context_takeover", (15, 15, False, True)),
    ],
)
def test_negotiate_server_accepts(
    offers: list[str],
    options: DeflateOptions | None,
    response: str,
    agreed: tuple[int, int, bool, bool],
) -> None:
    value, extension = negotiate_server(offers, options)
    assert value == response
    assert extension is not None
    assert (
        extension.local_max_window_bits,
        extension.remote_max_window_bits,
        extension.local_no_context_takeover,
        extension.remote_no_context_takeover,
    ) == agreed


@pytest.mark.parametrize(
    "offers",
    [
        [],
        [""],
        ["x-webkit-deflate-frame"],
        ["permessage-deflate; x_future"],
        ["permessage-deflate; x_future; y_future=2; server_max_window_bits=10"],
        ["permessage-deflate; x_future, permessage-deflate; y=2"],
        ["deflate-frame; server_max_window_bits=99"],  # not ours: its parameters are its own
    ],
)
def test_negotiate_server_declines(offers: list[str]) -> None:
    assert negotiate_server(offers) == (None, None)


@pytest.mark.parametrize(
    "offer",
    [
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
        "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
        "permessage-deflate; x_future; x_future",  # duplicated, even if unknown
        "permessage-deflate; x_future; server_max_window_bits=99",  # unknown AND bad
        "permessage-deflate; server_no_context_takeover=1",
        'permessage-deflate; client_no_context_takeover="true"',
        "permessage-deflate; server_max_window_bits",
        "permessage-deflate; server_max_window_bits=7",
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits=08",
        "permessage-deflate; server_max_window_bits=+9",
        "permessage-deflate; server_max_window_bits=ten",
        "permessage-deflate; client_max_window_bits=16",
        'permessage-deflate; client_max_window_bits="0x9"',
        # A broken later offer spoils the header even when an earlier one is fine.
        "permessage-deflate, permessage-deflate; server_max_window_bits=99",
        # Broken header syntax, anywhere.
        "permessage-deflate; ",
        "x-other; a=\"unterminated, permessage-deflate",
    ],
)
def test_negotiate_server_rejects_malformed_offer_with_400(offer: str) -> None:
    with pytest.raises(NegotiationError) as caught:
        negotiate_server([offer])
    assert caught.value.status == 400
    assert caught.value.reason


def test_negotiation_error_is_an_invalid_handshake() -> None:
    assert issubclass(NegotiationError, InvalidHandshake)


# --------------------------------------------------------------------------------------------
# Client side negotiation
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "offer"),
    [
        # RFC 7692 §7.1.2.2: without a value, "tell me a window"; as browsers offer it.
        (None, "permessage-deflate; client_max_window_bits"),
        (NO_LIMITS, "permessage-deflate; client_max_window_bits"),
        # A bounded offer: the client promises to compress within 2**12 bytes.
        (DeflateOptions(client_max_window_bits=12), "permessage-deflate; client_max_window_bits=12"),
        (
            DeflateOptions(
                server_no_context_takeover=True,
                client_no_context_takeover=True,
                server_max_window_bits=10,
                client_max_window_bits=9,
            ),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
            "server_max_window_bits=10; client_max_window_bits=9",
        ),
    ],
)
def test_client_offer(options: DeflateOptions | None, offer: str) -> None:
    assert client_offer(options) == offer
    # ... and it is a well-formed offer that our own server accepts.
    assert negotiate_server([offer])[1] is not None


@pytest.mark.parametrize(
    ("response", "options", "agreed"),
    [
        # agreed = (local bits, remote bits, local no-takeover, remote no-takeover) of the client
        ("permessage-deflate", None, (15, 15, False, False)),
        ("permessage-deflate", NO_LIMITS, (15, 15, False, False)),
        ("permessage-deflate", DeflateOptions(client_max_window_bits=12), (12, 15, False, False)),
        ("permessage-deflate; server_max_window_bits=10; client_max_window_bits=9", None,
         (9, 10, False, False)),
        ("permessage-deflate; client_max_window_bits=12", None, (12, 15, False, False)),
        ("permessage-deflate; client_max_window_bits=15", NO_LIMITS, (15, 15, False, False)),
        ("permessage-deflate; server_no_context_takeover", None, (15, 15, False, True)),
        ("permessage-deflate; client_no_context_takeover", None, (15, 15, True, False)),
        # Our own hint binds us even when the server does not repeat it.
        ("permessage-deflate", DeflateOptions(client_no_context_takeover=True),
         (15, 15, True, False)),
        ("permessage-deflate; server_no_context_takeover",
         DeflateOptions(server_no_context_takeover=True), (15, 15, False, True)),
        ("permessage-deflate; server_max_window_bits=9", DeflateOptions(server_max_window_bits=10),
         (15, 9, False, False)),
        # server_max_window_bits=15 is never offered, so any answer is fine.
        ("permessage-deflate", DeflateOptions(server_max_window_bits=15), (15, 15, False, False)),
        (' permessage-deflate ; server_max_window_bits="11" ', None, (15, 11, False, False)),
    ],
)
def test_accept_client_response(
    response: str, options: DeflateOptions | None, agreed: tuple[int, int, bool, bool]
) -> None:
    extension = accept_client_response(response, options)
    assert (
        extension.local_max_window_bits,
        extension.remote_max_window_bits,
        extension.local_no_context_takeover,
        extension.remote_no_context_takeover,
    ) == agreed


@pytest.mark.parametrize(
    ("response", "options"),
    [
        ("x-webkit-deflate-frame", None),  # never offered
        ("permessage-deflate, x-webkit-deflate-frame", None),
        ("permessage-deflate, permessage-deflate", None),  # accepted twice
        ("", None),
        ("permessage-deflate; x_future", None),  # not defined for a response (§7.1)
        ("permessage-deflate; server_no_context_takeover; server_no_context_takeover", None),
        ("permessage-deflate; server_no_context_takeover=yes", None),
        ("permessage-deflate; server_max_window_bits=16", None),
        ("permessage-deflate; client_max_window_bits", None),  # needs a value in a response
        ("permessage-deflate; server_max_window_bits=11", DeflateOptions(server_max_window_bits=10)),
        ("permessage-deflate", DeflateOptions(server_max_window_bits=10)),  # ignored our request
        ("permessage-deflate", DeflateOptions(server_no_context_takeover=True)),
        ("permessage-deflate; server_max_window_bits=", None),
    ],
)
def test_accept_client_response_rejects(response: str, options: DeflateOptions | None) -> None:
    with pytest.raises(NegotiationError) as caught:
        accept_client_response(response, options)
    assert caught.value.status == 101
    assert "permessage-deflate response" in caught.value.reason


# --------------------------------------------------------------------------------------------
# RFC 7692 §7.1.2 on the client side: one test per rule of the two window parameters
# --------------------------------------------------------------------------------------------


def _far_repeats(window_bits: int) -> list[bytes]:
    """Messages that repeat a block 1.5 windows back, and one half a window back: a
    compressor with a larger window than `window_bits` refers to the far copy, and an inflater
    with this window refuses it; one within the window only refers to the near copy."""
    rng = random.Random(window_bits)
    block = rng.randbytes(3 << (window_bits - 1))
    half = rng.randbytes(1 << (window_bits - 2))
    return [block, block, half + half]


@pytest.mark.parametrize("bits", range(8, 16))
def test_7_1_2_1_a_server_window_the_client_did_not_ask_for_sets_its_inflater(bits: int) -> None:
    # "A server MAY include the server_max_window_bits extension parameter in an extension
    # negotiation response even if the extension negotiation offer being accepted by the
    # response didn't include" it: the client then inflates with that window.
    client = accept_client_response(f"permessage-deflate; server_max_window_bits={bits}")
    assert client.remote_max_window_bits == bits
    server = PerMessageDeflate(local_max_window_bits=bits)
    for message in _far_repeats(bits)[1:]:
        assert client.decompress(server.compress(message), True, None) == message


@pytest.mark.parametrize("answer", range(8, 16))
def test_7_1_2_1_a_server_window_the_client_asked_for_must_be_answered_within_it(
    answer: int,
) -> None:
    # "the server MUST either decline the offer or include the server_max_window_bits
    # extension parameter in the extension negotiation response with the same or smaller
    # value as the offer."
    options = DeflateOptions(server_max_window_bits=11)
    assert client_offer(options) == (
        "permessage-deflate; server_max_window_bits=11; client_max_window_bits"
    )
    response = f"permessage-deflate; server_max_window_bits={answer}"
    if answer <= 11:
        assert accept_client_response(response, options).remote_max_window_bits == answer
    else:
        with pytest.raises(NegotiationError, match="above the 11 requested"):
            accept_client_response(response, options)


def test_7_1_2_1_a_server_window_the_client_asked_for_may_not_be_left_out() -> None:
    with pytest.raises(NegotiationError, match="requested but not accepted"):
        accept_client_response("permessage-deflate", DeflateOptions(server_max_window_bits=11))


@pytest.mark.parametrize("name", ["server_max_window_bits", "client_max_window_bits"])
@pytest.mark.parametrize("value", ["7", "16", "08", "0x9", "9.0", "-9", "", '""'])
def test_7_1_2_a_window_value_outside_8_to_15_fails(name: str, value: str) -> None:
    # §7.1.2.1, §7.1.2.2: "a decimal integer value without leading zeroes between 8 to 15,
    # inclusive".
    with pytest.raises(NegotiationError):
        accept_client_response(f"permessage-deflate; {name}={value}")


def test_7_1_2_2_a_response_names_the_client_window_with_a_value() -> None:
    # Only an offer may carry client_max_window_bits without a value.
    with pytest.raises(NegotiationError, match="client_max_window_bits"):
        accept_client_response("permessage-deflate; client_max_window_bits")


@pytest.mark.parametrize("options", [None, DeflateOptions(client_max_window_bits=15)])
def test_7_1_2_2_the_default_offer_lets_the_server_choose(options: DeflateOptions | None) -> None:
    # "This parameter has no value or a decimal integer value": without one, the client
    # says only that it supports being told a window.
    assert client_offer(options) == "permessage-deflate; client_max_window_bits"
    assert negotiate_server([client_offer(options)])[0] == (
        "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12"
    )


@pytest.mark.parametrize("bits", range(8, 16))
def test_7_1_2_2_the_client_compresses_within_the_window_the_server_names(bits: int) -> None:
    # "If a received extension negotiation response has the client_max_window_bits extension
    # parameter, the client MUST NOT use an LZ77 sliding window size greater than" its value.
    client = accept_client_response(f"permessage-deflate; client_max_window_bits={bits}")
    assert client.local_max_window_bits == bits
    messages = _far_repeats(bits)
    payloads = [client.compress(message) for message in messages]
    assert _inflate_with_zlib(payloads, bits) == messages
    assert sum(map(len, payloads)) < sum(map(len, messages))  # the near repeat was found


def test_7_1_2_2_the_far_repeat_would_break_a_smaller_window() -> None:
    # Control for the test above: a compressor one bit wider refers past the window.
    wider = PerMessageDeflate(local_max_window_bits=11)
    with pytest.raises(zlib.error, match="too far back"):
        _inflate_with_zlib([wider.compress(m) for m in _far_repeats(10)], 10)


@pytest.mark.parametrize(
    ("offered", "answer", "used"),
    [
        # No client_max_window_bits in the answer: "the client may use" up to 15; a bounded
        # offer keeps its promise.
        (None, None, 15),
        (12, None, 12),
        # "the server may either ignore this value or ... [answer] with a value equal to or
        # smaller than the received value": an answer above the bound is the server ignoring
        # it, not an error; the client keeps to its bound, which is within the answer too.
        (12, 15, 12),
        (12, 13, 12),
        (12, 12, 12),
        (12, 9, 9),
        (9, 8, 8),
        (None, 8, 8),
    ],
)
def test_7_1_2_2_a_bounded_offer_is_kept_whatever_the_server_answers(
    offered: int | None, answer: int | None, used: int
) -> None:
    options = DeflateOptions(client_max_window_bits=offered)
    expected_offer = "permessage-deflate; client_max_window_bits"
    if offered is not None:
        expected_offer += f"={offered}"
    assert client_offer(options) == expected_offer
    response = "permessage-deflate"
    if answer is not None:
        response += f"; client_max_window_bits={answer}"
    client = accept_client_response(response, options)
    assert client.local_max_window_bits == used
    messages = _far_repeats(used)
    assert _inflate_with_zlib([client.compress(m) for m in messages], used) == messages


# --------------------------------------------------------------------------------------------
# Options
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"server_max_window_bits": 7},
        {"client_max_window_bits": 16},
        {"mem_level": 0},
        {"mem_level": 10},
        {"level": 10},
        {"level": -2},
        {"threshold": -1},
    ],
)
def test_options_are_checked(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        DeflateOptions(**kwargs)  # type: ignore[arg-type]


def test_deflate_options() -> None:
    assert deflate_options(None, {"threshold": 0}) is None
    assert deflate_options("deflate") == DeflateOptions()
    assert deflate_options("deflate", {}) == DeflateOptions()
    assert deflate_options("deflate", {"threshold": 0}) == DeflateOptions(threshold=0)
    custom = DeflateOptions(threshold=0, mem_level=9)
    assert deflate_options("deflate", custom) is custom
    with pytest.raises(ValueError):
        deflate_options("gzip")
    with pytest.raises(TypeError):
        deflate_options("deflate", {"window_bits": 10})
    with pytest.raises(ValueError):
        deflate_options("deflate", {"mem_level": 10})


def test_options_reach_the_extension() -> None:
    options = DeflateOptions(threshold=100, mem_level=3, level=1)
    _, server = negotiate_server(["permessage-deflate"], options)
    client = accept_client_response("permessage-deflate", options)
    for extension in (server, client):
        assert extension is not None
        assert (extension.threshold, extension.mem_level, extension.level) == (100, 3, 1)
        assert "local_max_window_bits" in repr(extension)


# --------------------------------------------------------------------------------------------
# RFC 7692 §7.2.3: the examples, byte for byte
# --------------------------------------------------------------------------------------------

HELLO = bytes.fromhex("f248cdc9c90700")  # §7.2.3.1


def test_rfc7692_7_2_3_1_compress_hello() -> None:
    extension = PerMessageDeflate()
    payload = extension.compress(b"Hello")
    assert payload == HELLO
    # The frame of §7.2.3.1: FIN, RSV1 and opcode 1 (text) make 0xc1.
    assert text_frame(payload) == bytes.fromhex("c107f248cdc9c90700")


def test_rfc7692_7_2_3_2_context_takeover() -> None:
    extension = PerMessageDeflate()
    assert extension.compress(b"Hello") == HELLO
    # The second "Hello" refers back to the first: a match of length 5, distance 5.
    second = extension.compress(b"Hello")
    assert second == bytes.fromhex("f200110000")
    assert text_frame(second) == bytes.fromhex("c105f200110000")


def test_without_context_takeover_every_message_compresses_alike() -> None:
    extension = PerMessageDeflate(local_no_context_takeover=True)
    assert extension.compress(b"Hello") == HELLO
    assert extension.compress(b"Hello") == HELLO


@pytest.mark.parametrize(
    ("frames", "message"),
    [
        # §7.2.3.1: one frame, and the same message in two fragments.
        (["c107f248cdc9c90700"], b"Hello"),
        (["4103f248cd", "8004c9c90700"], b"Hello"),
        # §7.2.3.3: a DEFLATE block with no compression.
        (["c10b000500faff48656c6c6f00"], b"Hello"),
        # §7.2.3.4: a DEFLATE block with BFINAL set to 1.
        (["c108f348cdc9c9070000"], b"Hello"),
        # §7.2.3.5: two DEFLATE blocks in one message.
        (["c10df248050000 00ffffcac9c90700".replace(" ", "")], b"Hello"),
    ],
)
def test_rfc7692_examples_decompress(frames: list[str], message: bytes) -> None:
    extension = PerMessageDeflate()
    inflated = b""
    for index, frame_hex in enumerate(frames):
        frame = bytes.fromhex(frame_hex)
        assert frame[1] == len(frame) - 2  # the examples' 7-bit lengths
        inflated += extension.decompress(frame[2:], index == len(frames) - 1, 1 << 20)
    assert inflated == message


def test_rfc7692_7_2_3_2_decompress_with_context_takeover() -> None:
    extension = PerMessageDeflate()
    assert extension.decompress(HELLO, True, 100) == b"Hello"
    assert extension.decompress(bytes.fromhex("f200110000"), True, 100) == b"Hello"


def test_remote_no_context_takeover_resets_the_decompressor() -> None:
    # The second message of §7.2.3.2 refers to the first; a peer that promised not to take
    # over its context would never send it, and our fresh decompressor cannot resolve it.
    extension = PerMessageDeflate(remote_no_context_takeover=True)
    assert extension.decompress(HELLO, True, 100) == b"Hello"
    with pytest.raises(ProtocolError) as caught:
        extension.decompress(bytes.fromhex("f200110000"), True, 100)
    assert caught.value.code == INVALID_DATA
    # ... while an independent message decodes fine after the reset.
    assert PerMessageDeflate(remote_no_context_takeover=True).decompress(HELLO, True, 9) == b"Hello"


def test_after_a_bfinal_block_the_next_message_starts_a_new_stream() -> None:
    extension = PerMessageDeflate()
    assert extension.decompress(bytes.fromhex("f348cdc9c9070000"), True, 100) == b"Hello"
    assert extension.decompress(HELLO, True, 100) == b"Hello"
    # Also when the BFINAL block ends one frame and the stream goes on in the next.
    assert extension.decompress(bytes.fromhex("f348cdc9c90700"), False, 100) == b"Hello"
    assert extension.decompress(HELLO, True, 100) == b"Hello"


def test_empty_message() -> None:
    sender, receiver = PerMessageDeflate(), PerMessageDeflate()
    assert sender.compress(b"") == b"\x00"  # an empty stored block, tail stripped (§7.2.3.6)
    assert receiver.decompress(b"\x00", True, 0) == b""
    # A peer that sends RSV1 with no payload at all also means an empty message, and the
    # decompressor is left untouched for the next one.
    assert receiver.decompress(b"", False, 0) == b""
    assert receiver.decompress(b"", True, 0) == b""
    assert receiver.decompress(HELLO, True, 5) == b"Hello"


def test_empty_final_fragment_after_data() -> None:
    payload = PerMessageDeflate().compress(b"Hello, Hello, Hello")
    receiver = PerMessageDeflate()
    assert receiver.decompress(payload, False, 100) + receiver.decompress(b"", True, 100) == (
        b"Hello, Hello, Hello"
    )


def _inflate_with_zlib(messages: list[bytes], window_bits: int) -> list[bytes]:
    """Inflate each compressed message in its own call to zlib, one byte of input at a time.

    zlib only enforces its window for data that is not in the output of the current call, so
    feeding it in small pieces makes every back reference go through the window check.
    """
    inflater = zlib.decompressobj(wbits=-window_bits)
    result = []
    for payload in messages:
        data = payload + b"\x00\x00\xff\xff"
        result.append(b"".join(inflater.decompress(data[i : i + 1]) for i in range(len(data))))
    return result


def test_window_bits_8_is_compressed_with_9_and_inflates_with_an_8_bit_window() -> None:
    # zlib cannot compress raw deflate with an 8-bit window. fastim compresses with 9 bits,
    # which is safe because zlib never emits a distance above 512 - 262 = 250. Check it with
    # zlib's own 256-byte inflater, on messages that repeat earlier ones 200-520 bytes back.
    with pytest.raises(ValueError):
        zlib.compressobj(6, zlib.DEFLATED, -8)
    rng = random.Random(7692)
    _, server = negotiate_server(["permessage-deflate; server_max_window_bits=8"])
    assert server is not None and server.local_max_window_bits == 8
    messages = []
    for _ in range(20):
        block = rng.randbytes(rng.randrange(200, 520))
        messages += [block, block, block[:100] + rng.randbytes(30) + block]
    payloads = [server.compress(message) for message in messages]
    assert _inflate_with_zlib(payloads, 8) == messages
    assert sum(map(len, payloads)) < sum(map(len, messages))  # it did compress
    # Control: a compressor with a real 1 KiB window refers further back, and the same 8-bit
    # inflater refuses it; so the check above can fail.
    ten = PerMessageDeflate(local_max_window_bits=10)
    with pytest.raises(zlib.error, match="too far back"):
        _inflate_with_zlib([ten.compress(message) for message in messages], 8)


# --------------------------------------------------------------------------------------------
# Bounded inflation (zip bombs) and corrupt data
# --------------------------------------------------------------------------------------------


def test_message_of_exactly_max_size_passes_and_one_byte_more_fails() -> None:
    message = bytes(1000)
    payload = PerMessageDeflate().compress(message)
    assert PerMessageDeflate().decompress(payload, True, 1000) == message
    with pytest.raises(ProtocolError) as caught:
        PerMessageDeflate().decompress(payload, True, 999)
    assert caught.value.code == MESSAGE_TOO_BIG


def test_the_limit_counts_the_whole_message_across_frames() -> None:
    payload = PerMessageDeflate().compress(b"a" * 3000)
    pieces = [payload[: len(payload) // 2], payload[len(payload) // 2 :]]
    receiver = PerMessageDeflate()
    inflated = receiver.decompress(pieces[0], False, 2999)
    assert len(inflated) < 3000
    with pytest.raises(ProtocolError) as caught:
        receiver.decompress(pieces[1], True, 2999)
    assert caught.value.code == MESSAGE_TOO_BIG
    # The count starts again at each message.
    receiver = PerMessageDeflate()
    for _ in range(3):
        assert len(receiver.decompress(PerMessageDeflate().compress(b"b" * 3000), True, 3000)) == 3000


def test_no_limit_when_max_size_is_none_or_huge() -> None:
    message = bytes(5 << 20)
    payload = PerMessageDeflate().compress(message)
    assert PerMessageDeflate().decompress(payload, True, None) == message
    # The ws core says "no limit" with sys.maxsize; zlib must not see sys.maxsize + 1.
    assert PerMessageDeflate().decompress(payload, True, sys.maxsize) == message


@pytest.fixture(scope="module")
def bomb() -> bytes:
    """64 MiB of zeros, deflated to about 64 KiB: a thousand to one."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = bytes(1 << 20)
    payload = b"".join(compressor.compress(chunk) for _ in range(64))
    payload += compressor.flush(zlib.Z_SYNC_FLUSH)
    assert payload.endswith(b"\x00\x00\xff\xff")
    return payload[:-4]


def test_bomb_is_stopped_without_inflating_it(bomb: bytes) -> None:
    max_size = 1 << 20
    assert len(bomb) < max_size // 4  # the frame itself is well within the limit
    receiver = PerMessageDeflate()
    tracemalloc.start()
    try:
        with pytest.raises(ProtocolError) as caught:
            receiver.decompress(bomb, True, max_size)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert caught.value.code == MESSAGE_TOO_BIG
    # Inflating it all would take 64 MiB; a bounded inflater holds about max_size + 1 bytes.
    assert peak < 3 * max_size


def test_bomb_split_into_frames_fails_on_the_frame_that_crosses_the_limit(bomb: bytes) -> None:
    receiver = PerMessageDeflate()
    frames = [bomb[i : i + 256] for i in range(0, len(bomb), 256)]
    inflated = 0
    with pytest.raises(ProtocolError) as caught:
        for index, frame in enumerate(frames):
            inflated += len(receiver.decompress(frame, index == len(frames) - 1, 1 << 20))
    assert caught.value.code == MESSAGE_TOO_BIG
    assert inflated <= 1 << 20
    assert index < len(frames) // 8  # stopped early, not at the end of the message


@pytest.mark.parametrize(
    "payload",
    [
        b"\xff\xff\xff\xff",  # reserved block type 11
        bytes.fromhex("f248cdc9c907"),  # cut off before the sync flush: stored header damaged
        b"\x00\x05\x00\x00\x00Hello",  # stored block whose NLEN is not ~LEN
    ],
)
def test_corrupt_data_is_invalid_data(payload: bytes) -> None:
    with pytest.raises(ProtocolError) as caught:
        received = PerMessageDeflate()
        received.decompress(payload, True, 1000)
        received.decompress(HELLO, True, 1000)  # for data that only breaks the next block
    assert caught.value.code == INVALID_DATA


def test_distance_beyond_the_negotiated_window_is_invalid_data() -> None:
    # The second message refers 2000 bytes back, into the first: fine for a 2 KiB window,
    # beyond a 1 KiB one (a peer ignoring the negotiated client_max_window_bits=10).
    block = random.Random(1).randbytes(2000)
    sender = PerMessageDeflate(local_max_window_bits=15)
    first, second = sender.compress(block), sender.compress(block)
    assert len(second) < 40  # a few back references of up to 258 bytes each
    receiver = PerMessageDeflate(remote_max_window_bits=11)
    assert receiver.decompress(first, True, None) + receiver.decompress(second, True, None) == (
        block * 2
    )
    receiver = PerMessageDeflate(remote_max_window_bits=10)
    assert receiver.decompress(first, True, None) == block
    with pytest.raises(ProtocolError) as caught:
        receiver.decompress(second, True, None)
    assert caught.value.code == INVALID_DATA


# --------------------------------------------------------------------------------------------
# Threshold, ratio and memory
# --------------------------------------------------------------------------------------------

CHAT_MESSAGE = json.dumps(
    {
        "id": 123456,
        "userid": 42,
        "cmd": 10,
        "dstid": 7,
        "media": 1,
        "content": "Are we still on for lunch tomorrow at noon?",
        "pic": "",
        "url": "",
        "memo": "",
        "amount": 0,
    }
).encode()


def test_threshold_default_and_chat_messages_shrink() -> None:
    _, server = negotiate_server(["permessage-deflate; client_max_window_bits"])
    assert server is not None
    assert server.threshold == 32
    assert len(CHAT_MESSAGE) >= server.threshold
    sizes = []
    for number in range(20):
        message = CHAT_MESSAGE.replace(b"123456", str(123456 + number).encode())
        sizes.append(len(server.compress(message)))
    # The first message shrinks a little; later ones share its window and shrink a lot.
    assert sizes[0] < len(CHAT_MESSAGE)
    assert max(sizes[1:]) < len(CHAT_MESSAGE) // 4


def _endpoint_memory(**parameters: object) -> tuple[int, int, int]:
    """Bytes that one endpoint's compressor and decompressor hold after one message each way,
    and what is left once a message has been processed."""
    peer = PerMessageDeflate(**parameters)  # type: ignore[arg-type]
    incoming = peer.compress(CHAT_MESSAGE)
    tracemalloc.start()
    try:
        endpoint = PerMessageDeflate(**parameters)  # type: ignore[arg-type]
        start = tracemalloc.get_traced_memory()[0]
        endpoint.compress(CHAT_MESSAGE)
        after_compress = tracemalloc.get_traced_memory()[0]
        endpoint.decompress(incoming, True, None)
        after_decompress = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return after_compress - start, after_decompress - after_compress, after_decompress - start


def test_memory_per_connection() -> None:
    # The figures in fastim/ws/deflate.py's docstring come from here (run with -s to see them).
    _, server = negotiate_server(["permessage-deflate; client_max_window_bits"])
    assert server is not None
    agreed = {
        "local_max_window_bits": server.local_max_window_bits,
        "remote_max_window_bits": server.remote_max_window_bits,
        "mem_level": server.mem_level,
    }
    compressor, decompressor, total = _endpoint_memory(**agreed)
    print(f"\npermessage-deflate defaults: compressor {compressor / 1024:.1f} KiB, "
          f"decompressor {decompressor / 1024:.1f} KiB, total {total / 1024:.1f} KiB")
    assert 16 * 1024 < compressor < 48 * 1024
    assert 4 * 1024 < decompressor < 16 * 1024

    zlib_defaults = _endpoint_memory(
        local_max_window_bits=15, remote_max_window_bits=15, mem_level=8
    )[2]
    print(f"zlib defaults (15 bits, mem_level 8): {zlib_defaults / 1024:.1f} KiB")
    assert zlib_defaults > 4 * total

    # Without context takeover nothing stays allocated between messages.
    idle = _endpoint_memory(**agreed, local_no_context_takeover=True,
                            remote_no_context_takeover=True)[2]
    print(f"no_context_takeover, between messages: {idle / 1024:.1f} KiB")
    assert idle < 1024


@pytest.mark.parametrize(
    ("offer", "answer", "bounds"),
    [
        # The default offer against a server that names no window (aiohttp, the conformance
        # suite): both directions at 15 bits, the compressor with fastim's mem_level 5.
        (None, "permessage-deflate", (160 * 1024, 224 * 1024)),
        # ... against a server that names 12 for both (fastim's and websockets' defaults).
        (None, "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12",
         (32 * 1024, 64 * 1024)),
        # A bounded offer keeps the compressor at 12 bits whatever the server answers; the
        # decompressor follows the server's window, 15 bits here.
        (12, "permessage-deflate", (64 * 1024, 96 * 1024)),
    ],
)
def test_client_memory_per_connection(
    offer: int | None, answer: str, bounds: tuple[int, int]
) -> None:
    # The client's figures in docs/compression.md come from here (run with -s to see them).
    client = accept_client_response(answer, DeflateOptions(client_max_window_bits=offer))
    compressor, decompressor, total = _endpoint_memory(
        local_max_window_bits=client.local_max_window_bits,
        remote_max_window_bits=client.remote_max_window_bits,
        mem_level=client.mem_level,
    )
    print(f"\nclient offering {offer}, answered {answer!r}: compressor "
          f"{compressor / 1024:.1f} KiB, decompressor {decompressor / 1024:.1f} KiB, "
          f"total {total / 1024:.1f} KiB")
    assert bounds[0] < total < bounds[1]

"""permessage-deflate properties (hypothesis): negotiate, compress, fragment, decompress."""

from __future__ import annotations

import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastim.ws import ProtocolError
from fastim.ws.deflate import (
    DeflateOptions,
    PerMessageDeflate,
    accept_client_response,
    client_offer,
    negotiate_server,
    parse_extensions,
)

# Small windows are where mistakes show: a back reference past the window fails there.
window_bits = st.one_of(st.none(), st.integers(8, 10), st.integers(8, 15))

options = st.builds(
    DeflateOptions,
    server_no_context_takeover=st.booleans(),
    client_no_context_takeover=st.booleans(),
    server_max_window_bits=window_bits,
    client_max_window_bits=window_bits,
    mem_level=st.integers(1, 9),
    level=st.integers(-1, 9),
)

# Chat-like messages repeat themselves, which is what context takeover and small windows are
# about; random bytes exercise stored blocks and long outputs.
words = st.sampled_from([b'{"cmd":10,', b'"content":"', b"hello", b" ", b"\xe4\xbd\xa0\xe5\xa5\xbd",
                         b'"}', b"0123456789", b"\x00" * 40])
messages = st.one_of(
    st.binary(max_size=600),
    st.lists(words, max_size=200).map(b"".join),
)


def fragments(data: st.DataObject, payload: bytes) -> list[bytes]:
    """Cut a compressed payload into frames at arbitrary places, empty frames included."""
    cuts = sorted(data.draw(st.lists(st.integers(0, len(payload)), max_size=5)))
    bounds = [0, *cuts, len(payload)]
    return [payload[start:end] for start, end in zip(bounds, bounds[1:], strict=False)]


class StrictInflater:
    """zlib's inflater held to a window, fed one byte at a time.

    zlib checks its window only for back references that reach past the output of the current
    call, so feeding single bytes makes it check (nearly) every one: an independent witness that
    a compressor stays within the window it negotiated.
    """

    def __init__(self, window_bits: int, no_context_takeover: bool) -> None:
        self.window_bits = window_bits
        self.no_context_takeover = no_context_takeover
        self.inflater = zlib.decompressobj(wbits=-window_bits)

    def inflate(self, payload: bytes) -> bytes:
        if self.no_context_takeover:
            self.inflater = zlib.decompressobj(wbits=-self.window_bits)
        data = payload + b"\x00\x00\xff\xff"
        return b"".join(self.inflater.decompress(data[i : i + 1]) for i in range(len(data)))


def send(
    sender: PerMessageDeflate,
    receiver: PerMessageDeflate,
    witness: StrictInflater,
    message: bytes,
    data: st.DataObject,
) -> bytes:
    payload = sender.compress(message)
    assert witness.inflate(payload) == message
    frames = fragments(data, payload)
    inflated = b"".join(
        # The limit is exactly the message size: a correct stream never trips it.
        receiver.decompress(frame, index == len(frames) - 1, len(message))
        for index, frame in enumerate(frames)
    )
    return inflated


@settings(max_examples=150, deadline=None)
@given(server_options=options, client_options=options, data=st.data(),
       shared=st.binary(min_size=300, max_size=1200),
       conversation=st.lists(st.tuples(st.booleans(), st.booleans(), messages), max_size=8))
def test_negotiated_round_trip_both_ways(
    server_options: DeflateOptions,
    client_options: DeflateOptions,
    data: st.DataObject,
    shared: bytes,
    conversation: list[tuple[bool, bool, bytes]],
) -> None:
    # Whatever the two ends are configured with, what the server answers to the client's
    # offer is accepted by the client, and the two agree on every parameter.
    response, server = negotiate_server([client_offer(client_options)], server_options)
    assert response is not None and server is not None
    client = accept_client_response(response, client_options)
    assert client.local_max_window_bits <= server.remote_max_window_bits
    assert server.local_max_window_bits <= client.remote_max_window_bits
    assert not server.remote_no_context_takeover or client.local_no_context_takeover
    assert not client.remote_no_context_takeover or server.local_no_context_takeover

    # Witnesses that decompress with exactly the windows and resets the server announced.
    to_server = StrictInflater(server.remote_max_window_bits, server.remote_no_context_takeover)
    to_client = StrictInflater(client.remote_max_window_bits, client.remote_no_context_takeover)
    for from_client, with_shared, message in conversation:
        # Messages that repeat a shared block refer back hundreds of bytes, across messages.
        if with_shared:
            message = shared + message
        sender, receiver, witness = (
            (client, server, to_server) if from_client else (server, client, to_client)
        )
        assert send(sender, receiver, witness, message, data) == message


@settings(max_examples=100, deadline=None)
@given(message=messages.filter(bool), data=st.data(), takeover=st.booleans())
def test_one_byte_over_the_limit_is_message_too_big(
    message: bytes, data: st.DataObject, takeover: bool
) -> None:
    sender = PerMessageDeflate(local_no_context_takeover=not takeover)
    receiver = PerMessageDeflate(remote_no_context_takeover=not takeover)
    warm_up = b"a message before: " + message[:50]
    assert receiver.decompress(sender.compress(warm_up), True, len(warm_up)) == warm_up
    frames = fragments(data, sender.compress(message))
    inflated = 0
    with pytest.raises(ProtocolError) as caught:
        for index, frame in enumerate(frames):
            inflated += len(receiver.decompress(frame, index == len(frames) - 1, len(message) - 1))
    assert caught.value.code == 1009
    assert inflated <= len(message) - 1


@settings(max_examples=300, deadline=None)
@given(payloads=st.lists(st.binary(max_size=64), min_size=1, max_size=4),
       max_size=st.one_of(st.none(), st.integers(0, 300)))
def test_garbage_gives_bytes_or_a_close_code(payloads: list[bytes], max_size: int | None) -> None:
    receiver = PerMessageDeflate(remote_max_window_bits=8)
    try:
        for index, payload in enumerate(payloads):
            inflated = receiver.decompress(payload, index == len(payloads) - 1, max_size)
            assert max_size is None or len(inflated) <= max_size
    except ProtocolError as exc:
        assert exc.code in (1007, 1009)


tokens = st.text("abcdefghijklmnopqrstuvwxyz0123456789-_.!#$%&'*+^`|~", min_size=1, max_size=12)
params = st.lists(st.tuples(tokens, st.one_of(st.none(), tokens)), max_size=4)
extension_lists = st.lists(st.tuples(tokens, params), max_size=4)


@settings(max_examples=200, deadline=None)
@given(extensions=extension_lists, data=st.data())
def test_header_round_trip(extensions: list[tuple[str, list[tuple[str, str | None]]]],
                           data: st.DataObject) -> None:
    def spaces() -> str:
        return data.draw(st.sampled_from(["", " ", "\t", "  "]))

    def value(text: str) -> str:
        if data.draw(st.booleans()):
            return text
        # quoted-string, with some characters needlessly escaped (RFC 7230 §3.2.6)
        return '"' + "".join(("\\" + c) if data.draw(st.booleans()) else c for c in text) + '"'

    elements = []
    for name, extension_params in extensions:
        element = name
        for param, param_value in extension_params:
            element += f"{spaces()};{spaces()}{param}"
            if param_value is not None:
                element += f"{spaces()}={spaces()}{value(param_value)}"
        elements.append(element)
    header = f"{spaces()},{spaces()}".join(elements)
    assert parse_extensions([header]) == extensions

"""One message to many connections: prepare(), Connection.send_prepared() and broadcast().

The prepared frame must be byte for byte what a server writes for the message (RFC 6455
§5.2), go as those very bytes to every connection that would write the same, and never
to one whose frame differs: permessage-deflate (RFC 7692, a context per connection), a
client (masked, §5.3), a traced connection. The peers are real sockets, and the
`websockets` library checks what fastim sends. Nothing asserts on timing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest
import uvloop
from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import serve as ws_serve
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

from fastim.ws import (
    Connection,
    ConnectionClosed,
    Opcode,
    PreparedFrame,
    broadcast,
    connect,
    prepare,
    serve,
)
from fastim.ws.deflate import PerMessageDeflate
from fastim.ws.frames import Frame, encode_frame

T = TypeVar("T")
SAFETY = 10.0


def run(coro: Coroutine[Any, Any, T], loop: str = "asyncio") -> T:
    factory = uvloop.new_event_loop if loop == "uvloop" else asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(asyncio.wait_for(coro, SAFETY))


# -- prepare(): the frame's bytes --------------------------------------------------------


@pytest.mark.parametrize("length", [0, 1, 125, 126, 65535, 65536])
def test_a_prepared_text_frame_is_the_unmasked_frame_of_rfc_6455(length: int) -> None:
    # §5.2: 7-bit lengths up to 125, then 126 + 16 bits, then 127 + 64 bits.
    text = "é" * (length // 2) + "x" * (length % 2)
    prepared = prepare(text)
    assert prepared.opcode is Opcode.TEXT
    assert prepared.message is text
    assert prepared.payload == text.encode("utf-8")
    assert prepared.data == encode_frame(Frame(Opcode.TEXT, text.encode("utf-8")))


def test_a_prepared_binary_frame_copies_a_mutable_buffer() -> None:
    buffer = bytearray(b"\x00\x01\x02")
    prepared = prepare(buffer)
    buffer[0] = 0xFF  # the caller may reuse its buffer at once
    assert prepared.opcode is Opcode.BINARY
    assert prepared.message == prepared.payload == b"\x00\x01\x02"
    assert prepared.data == b"\x82\x03\x00\x01\x02"
    assert prepare(memoryview(b"ab")).data == b"\x82\x02ab"
    assert prepare(b"ab").message == b"ab"
    assert repr(prepared) == "<PreparedFrame BINARY 3 bytes>"


def test_prepare_refuses_what_is_no_message() -> None:
    with pytest.raises(TypeError, match="str or bytes"):
        prepare(42)  # type: ignore[arg-type]


# -- over sockets ------------------------------------------------------------------------


def room_server(messages: list[str | bytes], ready: int,
                hook: Any = None, **options: Any) -> tuple[Any, list[int]]:
    """A server that, once `ready` connections are in, sends `messages` to all of them
    with one broadcast() each, then closes them."""
    room: list[Connection] = []
    all_in = asyncio.Event()
    sent: list[int] = []

    async def handler(ws: Connection) -> None:
        room.append(ws)
        if len(room) == ready:
            all_in.set()
        await all_in.wait()
        if ws is room[0]:
            for message in messages:
                frame = prepare(message)
                if hook is not None:
                    hook(room, frame)
                sent.append(broadcast(room, frame))
        await ws.wait_closed()

    return serve(handler, "127.0.0.1", 0, **options), sent


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_every_connection_gets_each_message_with_and_without_compression(loop: str) -> None:
    # Three peers without permessage-deflate share the prepared bytes; two with it get
    # frames compressed in their own contexts (context takeover: the second copy of a
    # message compresses against the first, differently on each connection's history).
    messages: list[str | bytes] = ["hello, room", "hello, room", "字" * 300, b"\x00" * 500]
    shared: list[bool] = []

    def check_sharing(room: list[Connection], frame: PreparedFrame) -> None:
        for ws in room:
            ws.send_prepared(frame)  # one extra copy, to look at what was queued
            shared.append(ws._pending[-1] is frame.data)

    async def main() -> None:
        serving, sent = room_server(messages, 5, check_sharing,
                                    compression_options={"threshold": 64})
        async with serving as server:
            plain = [ws_connect(f"ws://127.0.0.1:{server.port}", compression=None)
                     for _ in range(3)]
            deflated = [ws_connect(f"ws://127.0.0.1:{server.port}") for _ in range(2)]
            clients = [await c for c in plain + deflated]
            for client in clients:
                got = [await client.recv() for _ in range(2 * len(messages))]
                assert got == [m for m in messages for _ in range(2)]
            assert sent == [5] * len(messages)
            for client in clients:
                await client.close()

    run(main(), loop)
    # By message: the plain three share every frame; the deflating two share only the
    # short message, which permessage-deflate leaves uncompressed (below the threshold).
    by_message = [shared[n:n + 5] for n in range(0, len(shared), 5)]
    assert len(by_message) == len(messages)
    assert all(sorted(flags)[-3:] == [True] * 3 for flags in by_message)
    assert [flags.count(True) for flags in by_message] == [5, 5, 3, 3]


def test_a_client_masks_a_prepared_frame_and_a_traced_connection_sees_it() -> None:
    # The prepared bytes are a server's (unmasked): a client builds its own masked frame
    # (§5.3), and a connection with on_frame builds a Frame for the hook.
    received: list[str | bytes] = []
    traced: list[tuple[str, Opcode]] = []

    async def collect(ws: Any) -> None:
        async for message in ws:
            received.append(message)

    async def main() -> None:
        async with ws_serve(collect, "127.0.0.1", 0, compression=None) as server:
            port = server.sockets[0].getsockname()[1]
            async with connect(f"ws://127.0.0.1:{port}", compression=None,
                               on_frame=lambda ws, d, f: traced.append((d, f.opcode))) as ws:
                ws.send_prepared(prepare("from a client"))
                assert broadcast([ws], b"\x01\x02") == 1
            async with connect(f"ws://127.0.0.1:{port}", compression=None) as ws:
                ws.send_prepared(prepare("x" * 2000))
            while len(received) < 3:
                await asyncio.sleep(0.01)

    run(main())
    assert received == ["from a client", b"\x01\x02", "x" * 2000]
    assert ("send", Opcode.TEXT) in traced and ("send", Opcode.BINARY) in traced


def test_broadcast_skips_closed_connections_and_send_prepared_raises() -> None:
    async def main() -> None:
        room: list[Connection] = []
        done = asyncio.Event()
        results: list[Any] = []

        async def handler(ws: Connection) -> None:
            room.append(ws)
            if len(room) < 2:
                await ws.wait_closed()
                return
            await room[0].close()
            results.append(broadcast(room, "still here?"))
            with pytest.raises(ConnectionClosed):
                room[0].send_prepared(prepare("too late"))
            done.set()
            await ws.wait_closed()

        async with serve(handler, "127.0.0.1", 0, compression=None) as server:
            first = await ws_connect(f"ws://127.0.0.1:{server.port}")
            while not room:
                await asyncio.sleep(0.01)
            second = await ws_connect(f"ws://127.0.0.1:{server.port}")
            await asyncio.wait_for(done.wait(), SAFETY)
            assert await second.recv() == "still here?"
            await second.close()
            await first.wait_closed()
        assert results == [1]

    run(main())


# -- compressed once: servers without context takeover (RFC 7692 §7.1.1.1) ---------------

CHAT = (
    '{"id":1,"userid":42,"cmd":11,"dstid":7,"media":1,"content":"see you at noon in the '
    'usual room","pic":"","url":"","memo":"","amount":0}'
)
SHARED_MESSAGES: list[str | bytes] = [CHAT, "short", "字" * 3000, bytes(100_000), CHAT]


def test_a_prepared_frame_compresses_once_per_parameter_set() -> None:
    prepared = prepare(CHAT)
    alone = PerMessageDeflate(local_no_context_takeover=True, local_max_window_bits=10)
    data = prepared.compressed_data(alone)
    # The frame a connection with these parameters would send itself (RSV1, §6).
    own = PerMessageDeflate(local_no_context_takeover=True, local_max_window_bits=10)
    assert data == encode_frame(Frame(Opcode.TEXT, own.compress(CHAT.encode()), rsv1=True))
    same = PerMessageDeflate(local_no_context_takeover=True, local_max_window_bits=10,
                             threshold=0)
    assert prepared.compressed_data(same) is data  # the threshold does not change the bytes
    other = PerMessageDeflate(local_no_context_takeover=True, local_max_window_bits=11)
    other_data = prepared.compressed_data(other)  # equal bytes here (a short message),
    assert other_data is not None and other_data is not data  # but compressed apart
    # 8 bits is compressed with 9 (zlib's least), so the two share a frame.
    eight = PerMessageDeflate(local_no_context_takeover=True, local_max_window_bits=8)
    nine = PerMessageDeflate(local_no_context_takeover=True, local_max_window_bits=9)
    assert prepared.compressed_data(eight) is prepared.compressed_data(nine)
    # With context takeover the bytes depend on the connection's history: nothing shared.
    assert prepared.compressed_data(PerMessageDeflate()) is None
    assert prepared.compressed_data(object()) is None
    assert prepared.compressed_data(None) is None


def _shared_key(bits: int | None, server_options: dict[str, Any]) -> tuple[int, int, int]:
    window = min(bits or 15, server_options.get("server_max_window_bits") or 12)
    return (server_options.get("level", 6), server_options.get("mem_level", 5), max(window, 9))


@pytest.mark.parametrize(
    "server_options",
    [
        {},
        {"level": 1, "mem_level": 1},
        {"level": 9, "mem_level": 9, "server_max_window_bits": 15},
        {"level": -1, "mem_level": 8, "server_max_window_bits": 10, "threshold": 0},
    ],
)
def test_broadcast_compresses_once_per_parameter_set_and_every_client_decodes_it(
    server_options: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The server chooses server_no_context_takeover without being asked (§7.1.1.1). Its
    # clients ask for every server window (§7.1.2.1), with and without the other parameters;
    # websockets' client and fastim's both decode what is on the wire.
    calls: list[tuple[int, int, int] | None] = []
    compress = PerMessageDeflate.compress

    def counting(self: PerMessageDeflate, message: bytes) -> bytes:
        calls.append(self.shared_compression)
        return compress(self, message)

    monkeypatch.setattr(PerMessageDeflate, "compress", counting)
    ws_offers: list[Any] = [
        ClientPerMessageDeflateFactory(server_max_window_bits=bits,
                                       client_no_context_takeover=bits % 2 == 0)
        for bits in range(8, 16)
    ]
    ws_offers += [ClientPerMessageDeflateFactory(),
                  ClientPerMessageDeflateFactory(server_no_context_takeover=True,
                                                 client_max_window_bits=9)]
    fastim_offers: list[dict[str, Any]] = [
        {}, {"server_max_window_bits": 8}, {"server_max_window_bits": 13,
                                           "client_no_context_takeover": True},
    ]
    windows = [f.server_max_window_bits for f in ws_offers]
    windows += [o.get("server_max_window_bits") for o in fastim_offers]
    keys = {_shared_key(bits, server_options) for bits in windows}
    peers = len(ws_offers) + len(fastim_offers) + 1  # and one without compression
    shared: list[bool] = []

    def check_sharing(room: list[Connection], frame: PreparedFrame) -> None:
        # What send_prepared() would write, caught before it is written.
        for ws in room:
            written: list[bytes] = []
            ws._write = written.append  # type: ignore[method-assign]
            try:
                ws.send_prepared(frame)
            finally:
                del ws._write
            shares = (frame.data, *(frame._compressed or {}).values())
            shared.append(len(written) == 1 and any(written[0] is data for data in shares))

    async def main() -> None:
        serving, sent = room_server(
            SHARED_MESSAGES, peers, check_sharing,
            compression_options={**server_options, "server_no_context_takeover": True})
        async with serving as server:
            url = f"ws://127.0.0.1:{server.port}"
            clients: list[Any] = [
                *[await ws_connect(url, compression=None, extensions=[f]) for f in ws_offers],
                await ws_connect(url, compression=None),
                *[await connect(url, compression_options=o) for o in fastim_offers],
            ]
            for n, client in enumerate(clients):
                headers = client.response.headers if n <= len(ws_offers) else (
                    client.response_headers)
                extensions = headers.get("Sec-WebSocket-Extensions") or ""
                if n != len(ws_offers):  # all but the one without compression
                    assert "server_no_context_takeover" in extensions
                got = [await client.recv() for _ in range(len(SHARED_MESSAGES))]
                assert got == SHARED_MESSAGES
            assert sent == [peers] * len(SHARED_MESSAGES)
            for client in clients:
                await client.close()

    calls.clear()
    run(main())
    threshold = server_options.get("threshold", 32)
    compressible = [m for m in SHARED_MESSAGES if len(m if isinstance(m, bytes)
                                                      else m.encode()) >= threshold]
    # Once per message and parameter set, however many connections share the set.
    server_calls = [key for key in calls if key is not None]
    assert len(server_calls) == len(compressible) * len(keys) < len(compressible) * peers
    assert set(server_calls) == keys
    assert [n for n, flag in enumerate(shared) if not flag] == []


@pytest.mark.parametrize("mode", ["uncompressed", "per-connection", "shared"])
def test_the_fanout_benchmark_measures_bytes_that_decode(mode: str) -> None:
    # bench/deflate_fanout.py's figures (docs/compression.md): a short run, its own check
    # of the wire bytes on, and shared sends what the mode promises.
    from bench.deflate_fanout import chat_messages, deliver

    messages = chat_messages(6)
    deliveries, _, written = run(deliver(mode, 20, messages, check=True), "uvloop")
    assert deliveries == 20 * 6
    raw = sum(len(m.encode()) + 4 for m in messages) * 20  # 126 + 16-bit length headers
    if mode == "uncompressed":
        assert written == raw
    else:
        assert written < raw

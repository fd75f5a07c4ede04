"""permessage-deflate in the running library: through the core, over real sockets, and against
an independent implementation (the `websockets` library) in both directions."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import Awaitable
from typing import Any

import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import serve as ws_serve
from websockets.exceptions import ConnectionClosedError as WsConnectionClosedError
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    ServerPerMessageDeflateFactory,
)

from fastim.ws import (
    CloseCode,
    Connection,
    ConnectionClosedError,
    Frame,
    InvalidHandshake,
    Opcode,
    Role,
    WebSocketProtocol,
    connect,
    encode_frame,
    serve,
)
from fastim.ws.deflate import PerMessageDeflate
from fastim.ws.protocol import Message, ProtocolFailure

SAFETY = 10  # seconds; a safety net against hangs, never an assertion about speed

CHAT = json.dumps(
    {"id": 1, "userid": 42, "cmd": 10, "dstid": 7, "media": 1, "content": "see you at noon",
     "pic": "", "url": "", "memo": "", "amount": 0}
)
MESSAGES: list[str | bytes] = [
    CHAT,
    CHAT.replace("noon", "one"),
    "short",  # under the threshold: goes uncompressed
    "",
    "ünïcödé " * 50,
    bytes(range(256)) * 40,
    os.urandom(3000),  # incompressible
    b"\x00" * 200_000,
    "x" * 70_000,
]


def run(coroutine: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coroutine, SAFETY))  # type: ignore[arg-type]


class FrameLog:
    """Records (direction, opcode, fin, rsv1) of every frame a fastim connection handles."""

    def __init__(self) -> None:
        self.frames: list[tuple[str, Opcode, bool, bool]] = []

    def __call__(self, connection: Connection, direction: str, frame: Frame) -> None:
        self.frames.append((direction, frame.opcode, frame.fin, frame.rsv1))

    def compressed(self, direction: str) -> int:
        return sum(1 for d, _, _, rsv1 in self.frames if d == direction and rsv1)


async def echo(connection: Connection) -> None:
    async for message in connection:
        await connection.send(message)


# --------------------------------------------------------------------------------------------
# Through the sans-I/O core
# --------------------------------------------------------------------------------------------


def client_frame(frame: Frame) -> bytes:
    return encode_frame(frame, mask=b"\x37\xfa\x21\x3d")


def test_core_decodes_the_rfc7692_frames() -> None:
    core = WebSocketProtocol(Role.SERVER, extension=PerMessageDeflate())
    hello = bytes.fromhex("f248cdc9c90700")
    events = core.receive_data(
        client_frame(Frame(Opcode.TEXT, hello, rsv1=True))  # §7.2.3.1
        + client_frame(Frame(Opcode.TEXT, bytes.fromhex("f200110000"), rsv1=True))  # §7.2.3.2
        + client_frame(Frame(Opcode.TEXT, hello[:3], fin=False, rsv1=True))  # fragmented
        + client_frame(Frame(Opcode.CONTINUATION, hello[3:]))
        + client_frame(Frame(Opcode.BINARY, b"raw"))  # uncompressed messages still allowed
    )
    assert events == [Message("Hello"), Message("Hello"), Message("Hello"), Message(b"raw")]


def test_core_sends_compressed_messages_with_rsv1_on_the_only_frame() -> None:
    server = WebSocketProtocol(Role.SERVER, extension=PerMessageDeflate(threshold=5))
    # The server's bytes of the RFC's example, frame header included: c1 07 f2 48 ...
    assert server.send_text("Hello") == bytes.fromhex("c107f248cdc9c90700")
    assert server.send_text("Hello") == bytes.fromhex("c105f200110000")
    assert server.send_text("Hi") == b"\x81\x02Hi"  # below the threshold: RSV1 clear
    assert server.send_ping(b"Hello") == b"\x89\x05Hello"  # control frames never compressed


@pytest.mark.parametrize(
    "frames",
    [
        # RFC 7692 §6.1: control frames are never compressed.
        [Frame(Opcode.PING, b"", rsv1=True)],
        [Frame(Opcode.CLOSE, b"\x03\xe8", rsv1=True)],
        # §6: RSV1 goes on the first frame of a message only, never on a continuation.
        [Frame(Opcode.BINARY, b"\xf2\x48", fin=False),
         Frame(Opcode.CONTINUATION, b"\xcd\xc9\xc9\x07\x00", rsv1=True)],
        [Frame(Opcode.BINARY, b"\xf2\x48", fin=False, rsv1=True),
         Frame(Opcode.CONTINUATION, b"\xcd\xc9\xc9\x07\x00", rsv1=True)],
        # RSV2/RSV3 mean nothing to permessage-deflate.
        [Frame(Opcode.TEXT, bytes.fromhex("f248cdc9c90700"), rsv1=True, rsv2=True)],
    ],
)
def test_core_rsv1_misuse_is_a_protocol_error(frames: list[Frame]) -> None:
    core = WebSocketProtocol(Role.SERVER, extension=PerMessageDeflate())
    events = core.receive_data(b"".join(map(client_frame, frames)))
    assert isinstance(events[-1], ProtocolFailure)
    assert events[-1].error.code == CloseCode.PROTOCOL_ERROR


def test_core_bomb_and_corrupt_data_fail_with_their_close_codes() -> None:
    bomb = PerMessageDeflate().compress(bytes(10_000))
    core = WebSocketProtocol(Role.SERVER, max_size=9_999, extension=PerMessageDeflate())
    [failure] = core.receive_data(client_frame(Frame(Opcode.BINARY, bomb, rsv1=True)))
    assert isinstance(failure, ProtocolFailure)
    assert failure.error.code == CloseCode.MESSAGE_TOO_BIG

    core = WebSocketProtocol(Role.SERVER, extension=PerMessageDeflate())
    [failure] = core.receive_data(client_frame(Frame(Opcode.BINARY, b"\xff\xff", rsv1=True)))
    assert isinstance(failure, ProtocolFailure)
    assert failure.error.code == CloseCode.INVALID_DATA

    # Invalid UTF-8 inside a compressed text message is still caught (1007).
    core = WebSocketProtocol(Role.SERVER, extension=PerMessageDeflate())
    bad_text = PerMessageDeflate().compress(b"ok \xc3\x28")
    [failure] = core.receive_data(client_frame(Frame(Opcode.TEXT, bad_text, rsv1=True)))
    assert isinstance(failure, ProtocolFailure)
    assert failure.error.code == CloseCode.INVALID_DATA


# --------------------------------------------------------------------------------------------
# fastim server <-> websockets client
# --------------------------------------------------------------------------------------------


async def _websockets_client_against_fastim(
    client_kwargs: dict[str, Any], server_kwargs: dict[str, Any], expected_extension: str | None
) -> FrameLog:
    log = FrameLog()
    async with (
        serve(echo, "127.0.0.1", 0, on_frame=log, **server_kwargs) as server,
        ws_connect(f"ws://127.0.0.1:{server.port}/", **client_kwargs) as client,
    ):
        assert client.response is not None
        assert client.response.headers.get("Sec-WebSocket-Extensions") == expected_extension
        for message in MESSAGES:
            await client.send(message)
            assert await client.recv() == message
    return log


def test_websockets_client_with_its_defaults() -> None:
    # websockets offers "permessage-deflate; client_max_window_bits"; fastim asks it for a
    # 4 KiB window and announces its own.
    async def main() -> None:
        log = await _websockets_client_against_fastim(
            {}, {}, "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12"
        )
        assert log.compressed("recv") >= len(MESSAGES) - 2  # websockets compresses every message
        assert log.compressed("send") == len([m for m in MESSAGES if len(m) >= 32])

    run(main())


@pytest.mark.parametrize(
    ("factory", "expected"),
    [
        (
            ClientPerMessageDeflateFactory(
                server_no_context_takeover=True, client_no_context_takeover=True
            ),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
            "server_max_window_bits=12; client_max_window_bits=12",
        ),
        (
            ClientPerMessageDeflateFactory(server_max_window_bits=9, client_max_window_bits=10),
            "permessage-deflate; server_max_window_bits=9; client_max_window_bits=10",
        ),
        (
            # fastim compresses for websockets' 8-bit inflater (with zlib's 9, see deflate.py)
            ClientPerMessageDeflateFactory(server_max_window_bits=8, client_max_window_bits=9),
            "permessage-deflate; server_max_window_bits=8; client_max_window_bits=9",
        ),
    ],
)
def test_websockets_client_with_its_options(
    factory: ClientPerMessageDeflateFactory, expected: str
) -> None:
    async def main() -> None:
        log = await _websockets_client_against_fastim(
            {"compression": None, "extensions": [factory]}, {}, expected
        )
        assert log.compressed("recv") and log.compressed("send")

    run(main())


def test_fastim_server_without_compression_declines() -> None:
    async def main() -> None:
        log = await _websockets_client_against_fastim({}, {"compression": None}, None)
        assert not log.compressed("recv") and not log.compressed("send")

    run(main())


def test_fastim_server_options_reach_the_negotiation() -> None:
    async def main() -> None:
        log = await _websockets_client_against_fastim(
            {},
            {"compression_options": {"threshold": 0, "server_max_window_bits": 10,
                                     "client_no_context_takeover": True}},
            "permessage-deflate; client_no_context_takeover; server_max_window_bits=10; "
            "client_max_window_bits=12",
        )
        assert log.compressed("send") == len(MESSAGES)  # threshold 0: even "" is compressed

    run(main())


def test_bomb_from_a_websockets_client_is_closed_with_1009() -> None:
    async def main() -> None:
        async with (
            serve(echo, "127.0.0.1", 0, max_size=100_000) as server,
            ws_connect(f"ws://127.0.0.1:{server.port}/", max_size=None) as client,
        ):
            await client.send(bytes(100_000))  # exactly the limit: fine
            assert await client.recv() == bytes(100_000)
            # ~1 MB of zeros is ~1 KB on the wire: the frame is small, its content is not.
            await client.send(bytes(1_000_000))
            with pytest.raises(WsConnectionClosedError) as caught:
                await client.recv()
            assert caught.value.rcvd is not None
            assert caught.value.rcvd.code == CloseCode.MESSAGE_TOO_BIG

    run(main())


async def _raw_upgrade(port: int, extensions: str) -> tuple[asyncio.StreamReader,
                                                            asyncio.StreamWriter, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Extensions: {extensions}\r\n\r\n"
        ).encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    return reader, writer, head


@pytest.mark.parametrize(
    "extensions",
    [
        "permessage-deflate; server_max_window_bits=99",
        "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
        'permessage-deflate; server_max_window_bits="1',
    ],
)
def test_malformed_offer_gets_400(extensions: str) -> None:
    async def main() -> None:
        async with serve(echo, "127.0.0.1", 0) as server:
            reader, writer, head = await _raw_upgrade(server.port, extensions)
            assert head.startswith(b"HTTP/1.1 400 ")
            writer.close()

    run(main())


@pytest.mark.parametrize(
    "frames",
    [
        [Frame(Opcode.PING, b"hi", rsv1=True)],
        [Frame(Opcode.TEXT, b"\xf2\x48", fin=False, rsv1=True),
         Frame(Opcode.CONTINUATION, b"\xcd\xc9\xc9\x07\x00", rsv1=True)],
    ],
)
def test_rsv1_misuse_on_the_wire_is_closed_with_1002(frames: list[Frame]) -> None:
    async def main() -> None:
        async with serve(echo, "127.0.0.1", 0) as server:
            reader, writer, head = await _raw_upgrade(server.port, "permessage-deflate")
            assert head.startswith(b"HTTP/1.1 101 ")
            assert b"Sec-WebSocket-Extensions: permessage-deflate" in head
            writer.write(b"".join(map(client_frame, frames)))
            first, length = await reader.readexactly(2)
            assert first == 0x88 and 2 <= length <= 125  # FIN + close, unmasked, with a code
            payload = await reader.readexactly(length)
            assert int.from_bytes(payload[:2], "big") == CloseCode.PROTOCOL_ERROR
            writer.close()

    run(main())


# --------------------------------------------------------------------------------------------
# fastim client <-> websockets server
# --------------------------------------------------------------------------------------------


async def _fastim_client_against_websockets(
    server_kwargs: dict[str, Any], client_kwargs: dict[str, Any], expected: str | None
) -> FrameLog:
    log = FrameLog()

    async def ws_echo(connection: Any) -> None:
        async for message in connection:
            await connection.send(message)

    async with ws_serve(ws_echo, "127.0.0.1", 0, **server_kwargs) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}/", on_frame=log, **client_kwargs) as client:
            assert client.response_headers.get("Sec-WebSocket-Extensions") == expected
            for message in MESSAGES:
                await client.send(message)
                assert await client.recv() == message
    return log


def test_fastim_client_against_websockets_defaults() -> None:
    # fastim offers "permessage-deflate; client_max_window_bits"; websockets' server
    # defaults (12-bit windows, memLevel 5) name 12 for both.
    async def main() -> None:
        log = await _fastim_client_against_websockets(
            {}, {}, "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12"
        )
        assert log.compressed("send") and log.compressed("recv")

    run(main())


@pytest.mark.parametrize(
    ("factory", "expected"),
    [
        (
            ServerPerMessageDeflateFactory(
                server_no_context_takeover=True, client_no_context_takeover=True
            ),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
        ),
        (
            ServerPerMessageDeflateFactory(server_max_window_bits=9, client_max_window_bits=8),
            "permessage-deflate; server_max_window_bits=9; client_max_window_bits=8",
        ),
        # No window named at all: both ends compress with 15 bits (RFC 7692 §7.1.2).
        (ServerPerMessageDeflateFactory(), "permessage-deflate"),
    ],
)
def test_fastim_client_against_websockets_options(
    factory: ServerPerMessageDeflateFactory, expected: str
) -> None:
    async def main() -> None:
        log = await _fastim_client_against_websockets(
            {"compression": None, "extensions": [factory]}, {}, expected
        )
        assert log.compressed("send") and log.compressed("recv")

    run(main())


def test_fastim_client_asking_for_no_context_takeover() -> None:
    async def main() -> None:
        await _fastim_client_against_websockets(
            {},
            {"compression_options": {"server_no_context_takeover": True,
                                     "client_no_context_takeover": True,
                                     "server_max_window_bits": 10}},
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
            "server_max_window_bits=10; client_max_window_bits=12",
        )

    run(main())


def test_fastim_client_without_compression_offers_nothing() -> None:
    async def main() -> None:
        log = await _fastim_client_against_websockets({}, {"compression": None}, None)
        assert not log.compressed("send") and not log.compressed("recv")

    run(main())


@pytest.mark.parametrize(
    ("side", "bits"),
    # websockets does not compress with 8 bits (zlib cannot); fastim's server does, above.
    [*(("client", bits) for bits in range(8, 16)), *(("server", bits) for bits in range(9, 16))],
)
def test_fastim_client_against_websockets_naming_each_window(side: str, bits: int) -> None:
    # The server names a window for one side, as RFC 7692 §7.1.2 lets it; 13.x of the
    # conformance suite does the same with 15 (the answer that used to fail the client).
    factory = ServerPerMessageDeflateFactory(**{f"{side}_max_window_bits": bits})
    window = f"{side}_max_window_bits={bits}"

    async def main() -> None:
        log = await _fastim_client_against_websockets(
            {"compression": None, "extensions": [factory]}, {}, f"permessage-deflate; {window}"
        )
        assert log.compressed("send") and log.compressed("recv")

    run(main())


@pytest.mark.parametrize("answer", [None, 8, 12, 15])
def test_fastim_client_with_a_bounded_offer_against_websockets(answer: int | None) -> None:
    # A bounded offer (client_max_window_bits=10): a server may answer below it, or ignore it
    # (RFC 7692 §7.1.2.2); the client connects either way and compresses within its bound.
    async def main() -> None:
        async def handler(connection: Any) -> None:
            async for message in connection:
                await connection.send(message)

        def name_the_window(connection: Any, request: Any, response: Any) -> None:
            offer = request.headers["Sec-WebSocket-Extensions"]
            assert offer == "permessage-deflate; client_max_window_bits=10"
            del response.headers["Sec-WebSocket-Extensions"]
            value = "permessage-deflate"
            if answer is not None:
                value += f"; client_max_window_bits={answer}"
            response.headers["Sec-WebSocket-Extensions"] = value

        # websockets' server decompresses with 15 bits, whatever it answers.
        factory = ServerPerMessageDeflateFactory(client_max_window_bits=15)
        async with ws_serve(handler, "127.0.0.1", 0, compression=None, extensions=[factory],
                            process_response=name_the_window) as server:
            port = server.sockets[0].getsockname()[1]
            async with connect(f"ws://127.0.0.1:{port}/",
                               compression_options={"client_max_window_bits": 10}) as client:
                extension = client._core.extension
                assert isinstance(extension, PerMessageDeflate)
                assert extension.local_max_window_bits == min(10, answer or 15)
                for message in MESSAGES:
                    await client.send(message)
                    assert await client.recv() == message

    run(main())


@pytest.mark.parametrize(
    "answer",
    [
        "permessage-deflate; client_max_window_bits",  # a response needs the value (§7.1.2.2)
        "permessage-deflate; server_max_window_bits=16",  # outside 8-15 (§7.1.2.1)
        "permessage-deflate; x_unknown",  # not defined by RFC 7692 (§7.1)
    ],
)
def test_fastim_client_fails_on_a_bad_answer(answer: str) -> None:
    async def main() -> None:
        async def handler(connection: Any) -> None:
            await connection.wait_closed()

        def bad_answer(connection: Any, request: Any, response: Any) -> None:
            del response.headers["Sec-WebSocket-Extensions"]
            response.headers["Sec-WebSocket-Extensions"] = answer

        async with ws_serve(handler, "127.0.0.1", 0, process_response=bad_answer) as server:
            port = server.sockets[0].getsockname()[1]
            with pytest.raises(InvalidHandshake) as caught:
                await connect(f"ws://127.0.0.1:{port}/")
            assert "permessage-deflate response" in caught.value.reason

    run(main())


# --------------------------------------------------------------------------------------------
# fastim client -> aiohttp server
# --------------------------------------------------------------------------------------------


async def _fastim_client_against_aiohttp(
    client_options: dict[str, Any], expected: str, *, notakeover: bool = False
) -> None:
    aiohttp_web = pytest.importorskip("aiohttp.web")

    async def handler(request: Any) -> Any:
        response = aiohttp_web.WebSocketResponse(compress=True)
        await response.prepare(request)
        async for message in response:
            if message.type == aiohttp_web.WSMsgType.TEXT:
                await response.send_str(message.data)
            else:
                await response.send_bytes(message.data)
        return response

    app = aiohttp_web.Application()
    app.router.add_get("/", handler)
    runner = aiohttp_web.AppRunner(app, access_log=None)
    await runner.setup()
    site = aiohttp_web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = site._server.sockets[0].getsockname()[1]
        log = FrameLog()
        async with connect(f"ws://127.0.0.1:{port}/", on_frame=log,
                           compression_options=client_options) as client:
            assert client.response_headers.get("Sec-WebSocket-Extensions") == expected
            for message in MESSAGES:
                await client.send(message)
                assert await client.recv() == message
        assert log.compressed("send") and log.compressed("recv")
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(
    ("client_options", "expected"),
    [
        # aiohttp names no client window: fastim compresses with 15 bits (RFC 7692 §7.1.2.2).
        ({}, "permessage-deflate"),
        ({"client_max_window_bits": 9}, "permessage-deflate"),
        *(
            ({"server_max_window_bits": bits}, f"permessage-deflate; server_max_window_bits={bits}")
            for bits in range(9, 15)
        ),
        ({"server_no_context_takeover": True},
         "permessage-deflate; server_no_context_takeover"),
    ],
)
def test_fastim_client_against_aiohttp(client_options: dict[str, Any], expected: str) -> None:
    run(_fastim_client_against_aiohttp(client_options, expected))


# --------------------------------------------------------------------------------------------
# fastim <-> fastim
# --------------------------------------------------------------------------------------------

Options = dict[str, Any]


@pytest.mark.parametrize(
    ("server_options", "client_options"),
    [
        ({}, {}),
        ({"threshold": 0, "mem_level": 1, "level": 1}, {"threshold": 0, "mem_level": 9}),
        ({"server_no_context_takeover": True}, {"client_no_context_takeover": True}),
        ({"server_max_window_bits": 8, "client_max_window_bits": 8},
         {"server_max_window_bits": 9, "client_max_window_bits": 15}),
    ],
)
def test_fastim_to_fastim(server_options: Options, client_options: Options) -> None:
    async def main() -> None:
        server_log, client_log = FrameLog(), FrameLog()
        async with (
            serve(echo, "127.0.0.1", 0, on_frame=server_log,
                  compression_options=server_options) as server,
            connect(f"ws://127.0.0.1:{server.port}/", on_frame=client_log,
                    compression_options=client_options) as client,
        ):
            for message in MESSAGES:
                await client.send(message)
                assert await client.recv() == message
        assert client_log.compressed("send") and client_log.compressed("recv")
        assert server_log.compressed("send") == client_log.compressed("recv")

    run(main())


def test_fastim_without_a_size_limit() -> None:
    async def main() -> None:
        async with (
            serve(echo, "127.0.0.1", 0, max_size=None) as server,
            connect(f"ws://127.0.0.1:{server.port}/", max_size=None) as client,
        ):
            for message in MESSAGES:
                await client.send(message)
                assert await client.recv() == message

    run(main())


def test_fastim_client_closed_with_1009_by_a_fastim_server() -> None:
    async def main() -> None:
        async with (
            serve(echo, "127.0.0.1", 0, max_size=50_000) as server,
            connect(f"ws://127.0.0.1:{server.port}/", max_size=None) as client,
        ):
            await client.send("a" * 60_000)  # a few hundred bytes on the wire
            with pytest.raises(ConnectionClosedError) as caught:
                await client.recv()
            assert caught.value.code == CloseCode.MESSAGE_TOO_BIG

    run(main())


def test_unknown_options_fail_at_once() -> None:
    with pytest.raises(ValueError):
        serve(echo, "127.0.0.1", 0, compression="gzip")
    with pytest.raises(TypeError):
        serve(echo, "127.0.0.1", 0, compression_options={"window": 9})

    with pytest.raises(ValueError):
        connect("ws://127.0.0.1:9/", compression="brotli")
    with pytest.raises(TypeError):
        connect("ws://127.0.0.1:9/", compression_options={"level": 1, "window": 9})



def test_core_incompressible_message_of_exactly_max_size_fits_on_the_wire() -> None:
    # Deflate makes random bytes a little longer (stored blocks); a message of exactly
    # max_size must still be accepted, one byte more refused, compressed or not.
    size = 50_000
    for memory in (1, 8):
        sender = PerMessageDeflate(mem_level=memory) if memory != 8 else PerMessageDeflate()
        payload = os.urandom(size)
        wire = sender.compress(payload)
        assert len(wire) > size
        core = WebSocketProtocol(Role.SERVER, max_size=size, extension=PerMessageDeflate())
        [message] = core.receive_data(client_frame(Frame(Opcode.BINARY, wire, rsv1=True)))
        assert isinstance(message, Message) and message.data == payload
    core = WebSocketProtocol(Role.SERVER, max_size=size, extension=PerMessageDeflate())
    too_big = PerMessageDeflate().compress(os.urandom(size + 1))
    [failure] = core.receive_data(client_frame(Frame(Opcode.BINARY, too_big, rsv1=True)))
    assert isinstance(failure, ProtocolFailure)
    assert failure.error.code == CloseCode.MESSAGE_TOO_BIG
    # An uncompressed message on a compressing connection keeps the plain limit,
    # unfragmented or fragmented.
    for frames in ([Frame(Opcode.BINARY, bytes(size + 1))],
                   [Frame(Opcode.BINARY, bytes(size), fin=False),
                    Frame(Opcode.CONTINUATION, b"x")]):
        core = WebSocketProtocol(Role.SERVER, max_size=size, extension=PerMessageDeflate())
        events = core.receive_data(b"".join(map(client_frame, frames)))
        assert isinstance(events[-1], ProtocolFailure)
        assert events[-1].error.code == CloseCode.MESSAGE_TOO_BIG

"""fastim.ws over real sockets: interop with the independent `websockets` library both
ways, each violation's close code on the wire (raw bytes over a plain socket), heartbeats,
backpressure, timeouts, and the take_over() seam used by fastim.http.

Every test runs its coroutine under a 10 s safety net; nothing asserts on timing.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
import uvloop
import websockets
from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import serve as ws_serve

from fastim.ws import (
    Connection,
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    InvalidHandshake,
    InvalidURI,
    State,
    connect,
    serve,
    take_over,
)
from fastim.ws.frames import Frame, FrameDecoder, Opcode, encode_frame
from fastim.ws.handshake import accept_key, parse_request, parse_response, reject_response

T = TypeVar("T")
LOOPS = ["asyncio", "uvloop"]
KEY = "dGhlIHNhbXBsZSBub25jZQ=="
MASK = b"\x0a\x0b\x0c\x0d"
SAFETY = 10.0


def run(coro: Coroutine[Any, Any, T], loop: str = "asyncio") -> T:
    """Run `coro` on a fresh loop of the given kind, with a safety timeout."""
    factory = uvloop.new_event_loop if loop == "uvloop" else asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(asyncio.wait_for(coro, SAFETY))


async def echo(ws: Connection) -> None:
    async for message in ws:
        await ws.send(message)


def frame(opcode: Opcode, payload: bytes = b"", fin: bool = True, **rsv: bool) -> bytes:
    """A frame as a client puts it on the wire (masked)."""
    return encode_frame(Frame(opcode, payload, fin, **rsv), MASK)


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return code.to_bytes(2, "big") + reason


UPGRADE_REQUEST = (
    "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    f"Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n"
)


class RawClient:
    """A WebSocket client made of a plain TCP socket: it writes exactly the bytes a test
    gives it and reads back the server's frames, so violations can be put on the wire."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.decoder = FrameDecoder(expect_masked=False)
        self.head = b""

    @classmethod
    async def open(
        cls, port: int, path: str = "/", extra_headers: str = "", after_head: bytes = b""
    ) -> RawClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        client = cls(reader, writer)
        request = UPGRADE_REQUEST.format(path=path) + extra_headers + "\r\n"
        writer.write(request.encode() + after_head)
        client.head = await reader.readuntil(b"\r\n\r\n")
        response = parse_response(client.head)
        assert response.status == 101, client.head
        assert response.headers.get("Sec-WebSocket-Accept") == accept_key(KEY)
        return client

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def read_frame(self) -> Frame | None:
        """The next frame from the server, or None at EOF."""
        while True:
            received = self.decoder.next_frame()
            if received is not None:
                return received
            try:
                data = await self.reader.read(65536)
            except ConnectionResetError:
                return None
            if not data:
                return None
            self.decoder.feed(data)

    async def frames_until_close(self) -> tuple[list[Frame], int | None]:
        """Frames before the server's close frame, and the close code (None: no code).
        Answers the close as a client should (§5.5.1), then checks that the server closed
        TCP, and closes the socket."""
        before = []
        while True:
            received = await self.read_frame()
            assert received is not None, f"EOF without a close frame after {before}"
            if received.opcode is Opcode.CLOSE:
                break
            before.append(received)
        code = int.from_bytes(received.payload[:2], "big") if received.payload else None
        self.send(frame(Opcode.CLOSE, received.payload[:2]))
        assert await self.read_frame() is None  # then TCP is closed by the server
        self.writer.close()
        return before, code

    def close(self) -> None:
        self.writer.close()


# -- interop with the websockets library -----------------------------------------------------


@pytest.mark.parametrize("loop", LOOPS)
def test_fastim_server_with_websockets_client(loop: str) -> None:
    seen: list[Any] = []

    async def handler(ws: Connection) -> None:
        seen.append((ws.path, ws.query, ws.headers.get("X-Test"), ws.remote_address[0]))
        assert ws.query is ws.query and ws.headers is ws.headers  # parsed once
        assert ws.response_headers.get("Upgrade") == "websocket"
        assert ws.response_headers is ws.response_headers
        await echo(ws)

    async def main() -> None:
        async with serve(handler, "127.0.0.1", 0) as server:
            uri = f"ws://127.0.0.1:{server.port}/chat?token=abc&x=1&x=2"
            async with ws_connect(
                uri, compression=None, additional_headers={"X-Test": "yes"}
            ) as client:
                await client.send("héllo ☃")
                assert await client.recv() == "héllo ☃"
                await client.send(b"\x00\xff" * 50000)
                assert await client.recv() == b"\x00\xff" * 50000
                await client.send(["frag", "men", "ted"])
                assert await client.recv() == "fragmented"
                latency = await (await client.ping(b"abc"))
                assert latency >= 0
            assert client.close_code == 1000
        assert seen == [("/chat", {"token": ["abc"], "x": ["1", "2"]}, "yes", "127.0.0.1")]

    run(main(), loop)


@pytest.mark.parametrize("loop", LOOPS)
def test_fastim_client_with_websockets_server(loop: str) -> None:
    paths: list[str] = []

    async def ws_echo(ws: Any) -> None:
        paths.append(ws.request.path)
        async for message in ws:
            await ws.send(message)

    async def main() -> None:
        async with ws_serve(ws_echo, "127.0.0.1", 0, compression=None) as server:
            port = server.sockets[0].getsockname()[1]
            async with connect(f"ws://127.0.0.1:{port}/room?id=7") as ws:
                assert ws.path == "/room" and ws.query == {"id": ["7"]}
                assert ws.headers.get("Host") == f"127.0.0.1:{port}"
                assert ws.response_headers.get("Upgrade") == "websocket"
                await ws.send("text")
                assert await ws.recv() == "text"
                await ws.send(bytearray(b"x" * 300000))
                assert await ws.recv() == b"x" * 300000
                assert await (await ws.ping()) >= 0
                assert ws.close_code is None and ws.close_reason is None
                assert ws.state is State.OPEN
            assert ws.close_code == 1000 and ws.close_reason == ""
            assert ws.state is State.CLOSED
        assert paths == ["/room?id=7"]

    run(main(), loop)


def test_websockets_server_closing_with_an_error_code() -> None:
    async def closer(ws: Any) -> None:
        await ws.close(4001, "go away")

    async def main() -> None:
        async with ws_serve(closer, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            ws = await connect(f"ws://127.0.0.1:{port}")
            with pytest.raises(ConnectionClosedError) as info:
                await ws.recv()
            assert (info.value.code, info.value.reason) == (4001, "go away")
            with pytest.raises(ConnectionClosedError):
                async for _ in ws:
                    pass
            await ws.wait_closed()
            assert ws.close_code == 4001

    run(main())


def test_subprotocol_negotiation_both_ways() -> None:
    async def handler(ws: Connection) -> None:
        await ws.send(ws.subprotocol or "none")

    async def main() -> None:
        async with serve(handler, "127.0.0.1", 0, subprotocols=["v2", "chat"]) as server:
            uri = f"ws://127.0.0.1:{server.port}"
            async with ws_connect(uri, subprotocols=["chat", "v2"]) as client:  # type: ignore[list-item]
                assert client.subprotocol == "v2"
                assert await client.recv() == "v2"
            async with connect(uri, subprotocols=["chat"]) as ws:
                assert ws.subprotocol == "chat"
                assert await ws.recv() == "chat"
            async with connect(uri) as ws:
                assert await ws.recv() == "none"

    run(main())


# -- violations: each close code on the wire --------------------------------------------------

VIOLATIONS = [
    ("reserved opcode", frame(Opcode.TEXT, b"ok") + bytes([0x83, 0x80]) + MASK, 1002),
    ("reserved control opcode", bytes([0x8B, 0x80]) + MASK, 1002),
    ("RSV1 without extension", frame(Opcode.TEXT, b"x", rsv1=True), 1002),
    ("RSV2", frame(Opcode.BINARY, b"x", rsv2=True), 1002),
    ("RSV3", frame(Opcode.PING, b"", rsv3=True), 1002),
    ("unmasked client frame", encode_frame(Frame(Opcode.TEXT, b"x")), 1002),
    ("control frame over 125", frame(Opcode.PING, bytes(126)), 1002),
    ("fragmented control frame", frame(Opcode.PING, b"x", fin=False), 1002),
    ("continuation without a message", frame(Opcode.CONTINUATION, b"x"), 1002),
    (
        "data frame inside a fragmented message",
        frame(Opcode.TEXT, b"a", fin=False) + frame(Opcode.TEXT, b"b"),
        1002,
    ),
    ("64-bit length top bit", bytes([0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0]) + MASK, 1002),
    ("invalid UTF-8", frame(Opcode.TEXT, b"\xce\xba\xff"), 1007),
    (
        "invalid UTF-8 in a later fragment",
        frame(Opcode.TEXT, b"ok", fin=False) + frame(Opcode.CONTINUATION, b"\xc0", fin=False),
        1007,
    ),
    ("1-byte close payload", frame(Opcode.CLOSE, b"\x03"), 1002),
    ("close reason not UTF-8", frame(Opcode.CLOSE, close_payload(1000, b"\xff")), 1007),
    ("too big", frame(Opcode.BINARY, bytes(2001))[:8], 1009),
    (
        "fragments too big",
        frame(Opcode.BINARY, bytes(1000), fin=False) + frame(Opcode.CONTINUATION, bytes(1001))[:8],
        1009,
    ),
] + [
    (f"close code {code}", frame(Opcode.CLOSE, close_payload(code)), 1002)
    for code in (0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535)
]


@pytest.mark.parametrize(("name", "wire", "code"), VIOLATIONS, ids=[v[0] for v in VIOLATIONS])
def test_violation_gets_its_close_code_on_the_wire(name: str, wire: bytes, code: int) -> None:
    async def main() -> None:
        async with serve(echo, "127.0.0.1", 0, max_size=2000) as server:
            client = await RawClient.open(server.port)
            client.send(wire)
            before, received = await client.frames_until_close()
            assert received == code
            if name == "reserved opcode":  # the message before the bad frame is echoed first
                assert before == [Frame(Opcode.TEXT, b"ok")]
            else:
                assert before == []
            client.close()

    run(main())


@pytest.mark.parametrize("loop", LOOPS)
def test_message_before_a_violation_is_echoed_before_the_close(loop: str) -> None:
    # Autobahn 3.2: a message, a frame with RSV=2, a ping, in one write.
    async def main() -> None:
        async with serve(echo, "127.0.0.1", 0) as server:
            client = await RawClient.open(server.port)
            client.send(
                frame(Opcode.TEXT, b"Hello, world!")
                + frame(Opcode.TEXT, b"Hello, world!", rsv2=True)
                + frame(Opcode.PING)
            )
            before, code = await client.frames_until_close()
            assert before == [Frame(Opcode.TEXT, b"Hello, world!")]  # and no pong
            assert code == 1002

    run(main(), loop)


def test_utf8_fails_fast_while_the_frame_is_still_arriving() -> None:
    # Autobahn 6.4.3: the frame's payload arrives in chops; the bad chop fails it at once,
    # though the frame is not complete and the last chop is never sent.
    async def main() -> None:
        async with serve(echo, "127.0.0.1", 0) as server:
            client = await RawClient.open(server.port)
            payload = "κόσμε".encode() + b"\xf4\x90\x80\x80" + b"edited"
            wire = frame(Opcode.TEXT, payload)
            split = len(wire) - len(payload) + len("κόσμε".encode()) + 2
            client.send(wire[:split])
            _, code = await client.frames_until_close()
            assert code == 1007

    run(main())


@pytest.mark.parametrize("loop", LOOPS)
def test_close_handshake_initiated_by_the_client(loop: str) -> None:
    async def main() -> None:
        async with serve(echo, "127.0.0.1", 0) as server:
            client = await RawClient.open(server.port)
            # A message and the close in one write: the echo comes before the close.
            client.send(
                frame(Opcode.TEXT, b"last") + frame(Opcode.CLOSE, close_payload(1001, b"bye"))
            )
            before, code = await client.frames_until_close()
            assert before == [Frame(Opcode.TEXT, b"last")]
            assert code == 1001
            client = await RawClient.open(server.port)
            client.send(frame(Opcode.CLOSE))  # an empty close is answered with an empty close
            assert await client.frames_until_close() == ([], None)

    run(main(), loop)


def test_close_in_the_middle_of_a_fragmented_message() -> None:
    async def main() -> None:
        async with serve(echo, "127.0.0.1", 0) as server:
            client = await RawClient.open(server.port)
            client.send(
                frame(Opcode.TEXT, b"frag", fin=False)
                + frame(Opcode.CLOSE, close_payload(1000))
                + frame(Opcode.CONTINUATION, b"ment")
            )
            assert await client.frames_until_close() == ([], 1000)

    run(main())


def test_pings_between_fragments_are_answered_at_once() -> None:
    async def main() -> None:
        async with serve(echo, "127.0.0.1", 0) as server:
            client = await RawClient.open(server.port)
            client.send(frame(Opcode.TEXT, b"frag", fin=False) + frame(Opcode.PING, b"p1"))
            assert await client.read_frame() == Frame(Opcode.PONG, b"p1")
            client.send(frame(Opcode.PONG, b"unsolicited") + frame(Opcode.CONTINUATION, b"ment"))
            assert await client.read_frame() == Frame(Opcode.TEXT, b"fragment")
            client.send(frame(Opcode.CLOSE, close_payload(1000)))
            assert await client.frames_until_close() == ([], 1000)

    run(main())


def test_large_message_exactly_at_max_size() -> None:
    size = 3 * 2**20

    async def main() -> None:
        async with serve(echo, "127.0.0.1", 0, max_size=size) as server:
            async with ws_connect(f"ws://127.0.0.1:{server.port}", max_size=None) as client:
                payload = os.urandom(size)
                await client.send(payload)
                assert await client.recv() == payload
                await client.send("é" * (size // 2))
                assert await client.recv() == "é" * (size // 2)
                await client.send(bytes(size + 1))
                with pytest.raises(websockets.ConnectionClosedError):
                    await client.recv()
            assert client.close_code == 1009

    run(main())


# -- heartbeats and timeouts -----------------------------------------------------------------


@pytest.mark.parametrize("loop", LOOPS)
def test_heartbeat_timeout_closes_a_silent_peer(loop: str) -> None:
    async def main() -> None:
        async with serve(
            echo, "127.0.0.1", 0, ping_interval=0.2, ping_timeout=0.2, close_timeout=0.5
        ) as server:
            client = await RawClient.open(server.port)  # and then never answers
            ping = await client.read_frame()
            assert ping is not None and ping.opcode is Opcode.PING
            before, code = await client.frames_until_close()
            assert before == [] and code == 1011

    run(main(), loop)


def test_one_keepalive_ping_at_a_time() -> None:
    # The pong may take up to ping_timeout, many intervals here: the ticks in between
    # send no second ping.
    async def main() -> None:
        async with serve(
            echo, "127.0.0.1", 0, ping_interval=0.02, ping_timeout=0.3, close_timeout=0.5
        ) as server:
            client = await RawClient.open(server.port)  # and then never answers
            before, code = await client.frames_until_close()
            assert [f.opcode for f in before] == [Opcode.PING] and code == 1011

    run(main())


def test_heartbeat_answered_keeps_the_connection() -> None:
    async def main() -> None:
        async with serve(echo, "127.0.0.1", 0, ping_interval=0.1, ping_timeout=1) as server:
            client = await RawClient.open(server.port)
            for _ in range(3):
                ping = await client.read_frame()
                assert ping is not None and ping.opcode is Opcode.PING
                client.send(frame(Opcode.PONG, ping.payload))
            client.send(frame(Opcode.TEXT, b"still here"))
            received = await client.read_frame()
            while received is not None and received.opcode is Opcode.PING:
                received = await client.read_frame()
            assert received == Frame(Opcode.TEXT, b"still here")
            client.send(frame(Opcode.CLOSE, close_payload(1000)))
            before, code = await client.frames_until_close()
            assert code == 1000 and all(f.opcode is Opcode.PING for f in before)

    run(main())


def test_client_heartbeat_against_websockets_server() -> None:
    async def quiet(ws: Any) -> None:
        await ws.wait_closed()

    async def main() -> None:
        seen: list[tuple[str, Opcode]] = []

        def on_frame(connection: Connection, direction: str, sent: Frame) -> None:
            seen.append((direction, sent.opcode))

        async with ws_serve(quiet, "127.0.0.1", 0, ping_interval=None) as server:
            port = server.sockets[0].getsockname()[1]
            uri = f"ws://127.0.0.1:{port}"
            async with connect(uri, ping_interval=0.05, ping_timeout=1, on_frame=on_frame) as ws:
                # An idle client pings; websockets answers; the connection stays open.
                while seen.count(("recv", Opcode.PONG)) < 2:
                    await asyncio.sleep(0.02)
                assert ws.close_code is None
            assert ws.close_code == 1000
        assert seen[:2] == [("send", Opcode.PING), ("recv", Opcode.PONG)]

    run(main())


def test_handshake_timeout_drops_a_client_that_says_nothing() -> None:
    async def main() -> None:
        async with serve(echo, "127.0.0.1", 0, open_timeout=0.2) as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"GET / HTTP/1.1\r\n")  # and never the rest
            assert await reader.read() == b""
            writer.close()

    run(main())


def test_close_timeout_when_the_peer_never_answers_close() -> None:
    async def silent_server() -> tuple[asyncio.Server, list[bytes]]:
        received: list[bytes] = []

        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            head = await reader.readuntil(b"\r\n\r\n")
            key = parse_request(head).headers.get("Sec-WebSocket-Key") or ""
            writer.write(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
                + accept_key(key).encode()
                + b"\r\n\r\n"
            )
            received.append(await reader.read(100))  # the close frame; then no answer
            await reader.read()

        return await asyncio.start_server(answer, "127.0.0.1", 0), received

    async def main() -> None:
        server, received = await silent_server()
        async with server:
            port = server.sockets[0].getsockname()[1]
            ws = await connect(f"ws://127.0.0.1:{port}", close_timeout=0.2)
            await ws.close(4000, "done")
            assert ws.state is State.CLOSED
            assert ws.close_code == 4000  # what we sent, since the peer sent nothing
            assert ws.close_reason == "done"
            assert received[0][0] == 0x88

    run(main())


# -- backpressure --------------------------------------------------------------------------


def test_send_waits_while_the_peer_does_not_read() -> None:
    chunk = bytes(256 * 1024)
    count = 64

    async def main() -> None:
        sent: list[int] = []
        connections: list[Connection] = []

        async def producer(ws: Connection) -> None:
            connections.append(ws)
            for i in range(count):
                await ws.send(chunk)
                sent.append(i)

        async with serve(producer, "127.0.0.1", 0, write_limit=64 * 1024) as server:
            client = await RawClient.open(server.port)  # not reading yet
            while not connections or not connections[0]._writing_paused:
                await asyncio.sleep(0.01)
            # 16 MiB cannot fit in socket buffers: the producer is held back.
            assert len(sent) < count
            assert connections[0].handler_task is not None
            assert not connections[0].handler_task.done()
            for _ in range(count):  # now read: every message arrives, in order
                received = await client.read_frame()
                assert received is not None and received.payload == chunk
            assert await client.frames_until_close() == ([], 1000)
            assert len(sent) == count

    run(main())


@pytest.mark.parametrize("loop", LOOPS)
def test_answers_written_at_once_keep_their_order_with_other_writes(loop: str) -> None:
    """send() writes the answer to the last message taken at once (one system call
    instead of a flush later); whatever else is written, by the handler or by another
    task, before or after it, still reaches the peer in the order of the calls."""

    async def main() -> None:
        connections: list[Connection] = []
        waiting, go = asyncio.Event(), asyncio.Event()

        async def handler(ws: Connection) -> None:
            connections.append(ws)
            async for message in ws:
                await ws.send(message)  # at once
                await ws.send(b"then")  # queued behind it
                if message == b"wait":
                    waiting.set()
                    await go.wait()  # no recv() to flush: the loop's turn does
                    await ws.send(b"later")

        async with serve(handler, "127.0.0.1", 0) as server:
            client = await RawClient.open(server.port)
            client.send(frame(Opcode.BINARY, b"one"))
            got = [(await client.read_frame()) for _ in range(2)]
            assert [f.payload for f in got if f is not None] == [b"one", b"then"]
            client.send(frame(Opcode.BINARY, b"wait"))
            # Another task writes to the connection while its handler waits elsewhere.
            await waiting.wait()
            connections[0].send_nowait(b"other")
            go.set()
            got = [(await client.read_frame()) for _ in range(4)]
            assert [f.payload for f in got if f is not None] == [
                b"wait", b"then", b"other", b"later"
            ]
            client.send(frame(Opcode.PING, b"p") + frame(Opcode.BINARY, b"two"))
            got = [(await client.read_frame()) for _ in range(3)]
            assert [(f.opcode, f.payload) for f in got if f is not None] == [
                (Opcode.PONG, b"p"), (Opcode.BINARY, b"two"), (Opcode.BINARY, b"then")
            ]
            client.send(frame(Opcode.CLOSE, close_payload(1000)))
            assert await client.frames_until_close() == ([], 1000)

    run(main(), loop)


@pytest.mark.parametrize("iterate", [False, True], ids=["recv", "async-for"])
def test_received_messages_are_bounded_and_reading_pauses(iterate: bool) -> None:
    total = 200

    async def main() -> None:
        go = asyncio.Event()
        got: list[str | bytes] = []
        connections: list[Connection] = []

        async def slow_reader(ws: Connection) -> None:
            connections.append(ws)
            await go.wait()
            if iterate:  # __anext__ has its own path to the queue
                async for message in ws:
                    got.append(message)
                    if len(got) == total:
                        break
                return
            for _ in range(total):
                got.append(await ws.recv())

        async with serve(slow_reader, "127.0.0.1", 0, max_queue=4) as server:
            client = await RawClient.open(server.port)
            client.send(b"".join(frame(Opcode.TEXT, b"%d" % i) for i in range(total)))
            while not connections or not connections[0]._reading_paused:
                await asyncio.sleep(0.01)
            assert len(connections[0]._messages) <= 4  # the rest waits in the kernel
            go.set()
            while len(got) < total:
                await asyncio.sleep(0.01)
            assert got == [str(i) for i in range(total)]
            assert await client.frames_until_close() == ([], 1000)

    run(main())


# -- floods from a peer that does not read (docs/library.md) ----------------------------------------

# What the server may hold for a peer that sends and never reads, beyond write_limit: the
# answers to one read (at most 16 pongs, or a callback's echoes of one
# read's messages) and what is pending for the loop's turn. docs/library.md gives the figure.
FLOOD_SLACK = 256 * 1024
FLOOD_PINGS = 600_000
FLOOD_SECONDS = 3.0


def _flood(port: int, wire: bytes, count: int, tail: bytes = b"") -> int:
    """A client that never reads: a 4 KiB receive buffer, the handshake, then `wire`
    again and again (`count` times at most, for FLOOD_SECONDS at most, until the server
    stops taking it), then `tail`. Returns how many times `wire` went out whole."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall((UPGRADE_REQUEST.format(path="/") + "\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)  # nothing after the 101 is read
    assert head.startswith(b"HTTP/1.1 101")
    sock.settimeout(0.5)
    sent = 0
    deadline = time.monotonic() + FLOOD_SECONDS
    try:
        while sent < count and time.monotonic() < deadline:
            sock.sendall(wire)
            sent += 1
        if tail:
            sock.sendall(tail)
    except (TimeoutError, OSError):
        pass  # the server stopped reading: TCP flow control holds the client back
    time.sleep(0.2)
    return sent


def _run_flood(
    wire: bytes,
    count: int,
    tail: bytes = b"",
    callback: bool = False,
    loop: str = "asyncio",
    **options: Any,
) -> tuple[int, int, list[Connection]]:
    """Floods a server with `wire` from a non-reading client in a thread; returns the
    largest `buffered_amount` the server's connection showed, the repeats sent, and it."""

    async def main() -> tuple[int, int, list[Connection]]:
        connections: list[Connection] = []

        async def handler(ws: Connection) -> None:
            connections.append(ws)
            if callback:
                ws.set_message_callback(ws.send_nowait)
                await ws.wait_closed()
            else:
                await echo(ws)

        async with serve(handler, "127.0.0.1", 0, ping_interval=None, **options) as server:
            flood = asyncio.get_running_loop().run_in_executor(
                None, _flood, server.port, wire, count, tail
            )
            peak = 0
            while not flood.done():
                if connections:
                    peak = max(peak, connections[0].buffered_amount)
                await asyncio.sleep(0.002)
            sent = await flood
            peak = max(peak, connections[0].buffered_amount)
            return peak, sent, connections

    return run(main(), loop)


@pytest.mark.parametrize("loop", LOOPS)
def test_a_ping_flood_from_a_peer_that_does_not_read_holds_bounded_memory(loop: str) -> None:
    # 600,000 masked 125-byte pings and no reading. Each used to queue its pong.
    ping = frame(Opcode.PING, bytes(125))
    peak, sent, _ = _run_flood(ping * 1000, FLOOD_PINGS // 1000, loop=loop)
    assert sent > 0
    assert peak <= 64 * 1024 + FLOOD_SLACK, (peak, sent)


def test_a_callback_echo_stops_reading_while_its_answers_do_not_drain() -> None:
    # send_nowait() never waits; reading stops instead, so a peer that sends and does not
    # read cannot grow the answers without bound.
    message = frame(Opcode.BINARY, bytes(1000))
    peak, sent, _ = _run_flood(message * 64, 200_000, callback=True, loop="uvloop")
    assert sent > 0
    assert peak <= 64 * 1024 + FLOOD_SLACK, (peak, sent)


def test_a_close_after_a_flood_is_answered_and_the_connection_ends() -> None:
    # The close reply joins the queue like any answer; the peer that does not read it
    # loses the connection close_timeout later, and nothing grew meanwhile.
    ping = frame(Opcode.PING, bytes(125))
    close = frame(Opcode.CLOSE, close_payload(1000))
    peak, sent, connections = _run_flood(
        ping * 1000, FLOOD_PINGS // 1000, tail=close, close_timeout=0.3
    )
    assert peak <= 64 * 1024 + FLOOD_SLACK, (peak, sent)
    assert connections[0].state is State.CLOSED


class RecordingTransport(asyncio.Transport):
    """In memory: records whether reading is paused and what is written."""

    def __init__(self) -> None:
        super().__init__()
        self.reading = True
        self.written: list[bytes] = []

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def is_reading(self) -> bool:
        return self.reading

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written.append(bytes(data))

    def writelines(self, list_of_data: Any) -> None:
        self.written.extend(bytes(data) for data in list_of_data)

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0


def test_reading_resumes_only_when_the_queue_has_room_and_the_writes_drained() -> None:
    # Two reasons to pause reading, a full queue of messages and a write buffer over
    # write_limit: the transport reads again only once neither holds.
    from fastim.ws.connection import Options
    from fastim.ws.protocol import Role, WebSocketProtocol

    async def main() -> None:
        transport = RecordingTransport()
        ws = Connection(WebSocketProtocol(Role.SERVER), Options(max_queue=2, ping_interval=None))
        ws.connection_made(transport)
        ws.pause_writing()
        ws.pause_writing()  # once is enough
        assert not transport.reading
        ws.data_received(b"".join(frame(Opcode.TEXT, b"%d" % i) for i in range(4)))
        assert ws._reading_paused and not transport.reading  # both reasons now
        ws.resume_writing()
        assert not transport.reading  # the queue is still full
        ws.pause_writing()
        # The queue has room again, the writes have not drained.
        assert [await ws.recv() for _ in range(4)] == ["0", "1", "2", "3"]
        assert not ws._reading_paused and not transport.reading
        ws.resume_writing()
        assert transport.reading
        ws._start_close(1000, "")  # our close is sent: reading goes on, to find the peer's
        ws.pause_writing()
        assert transport.reading

    run(main())


def test_the_direct_write_flag_follows_every_state_it_stands_for() -> None:
    # send() writes the answer to the last message taken at once when one flag says so;
    # the flag must fall with each thing that forbids it and come back only with all.
    from fastim.ws.connection import Options
    from fastim.ws.protocol import Role, WebSocketProtocol

    class FillingTransport(RecordingTransport):
        """Calls pause_writing() inside write(), as asyncio does above the limit."""

        def write(self, data: bytes | bytearray | memoryview) -> None:
            super().write(data)
            ws.pause_writing()

    async def main() -> None:
        nonlocal ws
        transport = FillingTransport()
        ws = Connection(WebSocketProtocol(Role.SERVER), Options(ping_interval=None))
        ws.connection_made(transport)
        ws.data_received(frame(Opcode.TEXT, b"a"))
        assert await ws.recv() == "a" and ws._write_now
        sender = asyncio.create_task(ws.send("b"))  # written at once, then waits
        await asyncio.sleep(0)
        assert transport.written == [encode_frame(Frame(Opcode.TEXT, b"b"))] and not sender.done()
        assert not ws._direct and not ws._write_now
        ws.resume_writing()
        await sender
        assert ws._direct
        ws.data_received(frame(Opcode.TEXT, b"c"))
        assert await ws.recv() == "c" and ws._write_now
        ws._write(b"")  # something else waits to be written: it goes first
        assert not ws._write_now
        ws._start_close(1000, "")
        ws.resume_writing()  # the buffer drains after our close: still the long way
        assert not ws._direct
        with pytest.raises(ConnectionClosedOK):
            await ws.send("d")

    ws: Connection
    run(main())


# -- the take_over() seam ------------------------------------------------------------------


class TinyHTTP(asyncio.Protocol):
    """A stand-in for fastim.http: reads a request head, hands /ws to take_over(), and
    answers anything else, or a refused upgrade, with its own response."""

    def __init__(self, handler: Callable[[Connection], Awaitable[None]], **options: Any) -> None:
        self.handler = handler
        self.options = options
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buffer += data
        if b"\r\n\r\n" not in self.buffer:
            return
        head, rest = self.buffer.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ")
        headers = [tuple(line.split(": ", 1)) for line in lines[1:]]
        if not target.startswith("/ws"):
            self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nplain")
            return
        # fastim.http may have paused reading (e.g. its own backpressure): take_over resumes.
        self.transport.pause_reading()
        try:
            take_over(
                self.transport,
                method,
                target,
                headers,  # type: ignore[arg-type]
                self.handler,
                buffered=rest,
                extra_headers=[("Set-Cookie", "session=abc")],
                **self.options,
            )
        except InvalidHandshake as error:
            extra = "".join(f"{k}: {v}\r\n" for k, v in error.headers)
            self.transport.write(
                f"HTTP/1.1 {error.status} Nope\r\n{extra}Content-Length: 0\r\n\r\n".encode()
            )
            self.transport.close()


@pytest.mark.parametrize("loop", LOOPS)
def test_take_over_seam(loop: str) -> None:
    seen: list[Any] = []

    async def handler(ws: Connection) -> None:
        seen.append((ws.path, ws.query, ws.headers.get("cookie")))
        await echo(ws)

    async def main() -> None:
        loop_ = asyncio.get_running_loop()
        server = await loop_.create_server(lambda: TinyHTTP(handler, max_size=100), "127.0.0.1", 0)
        async with server:
            port = server.sockets[0].getsockname()[1]
            # Plain HTTP still works on the same port.
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /other HTTP/1.1\r\nHost: x\r\n\r\n")
            assert (await reader.readuntil(b"plain")).startswith(b"HTTP/1.1 200 OK")
            writer.close()
            # The upgrade, with Set-Cookie in the 101 and the options applied.
            async with ws_connect(
                f"ws://127.0.0.1:{port}/ws?room=1", additional_headers={"Cookie": "a=b"}
            ) as client:
                assert client.response is not None
                assert client.response.headers["Set-Cookie"] == "session=abc"
                await client.send("through the seam")
                assert await client.recv() == "through the seam"
                await client.send(bytes(101))
                with pytest.raises(websockets.ConnectionClosedError):
                    await client.recv()
            assert client.close_code == 1009
            # Frames sent right behind the request head reach the handler (`buffered`).
            raw = await RawClient.open(port, "/ws", after_head=frame(Opcode.TEXT, b"early"))
            assert b"Set-Cookie: session=abc\r\n" in raw.head
            assert await raw.read_frame() == Frame(Opcode.TEXT, b"early")
            raw.close()
            # A refused upgrade raises InvalidHandshake; the HTTP layer answers it.
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(
                b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Key: " + KEY.encode() + b"\r\nSec-WebSocket-Version: 8\r\n\r\n"
            )
            answer = await reader.read()
            assert answer.startswith(b"HTTP/1.1 426 Nope\r\n")
            assert b"Sec-WebSocket-Version: 13\r\n" in answer
        assert seen[0] == ("/ws", {"room": ["1"]}, "a=b")

    run(main(), loop)


def test_take_over_rejects_unknown_options() -> None:
    with pytest.raises(TypeError):
        take_over(None, "GET", "/", [], echo, no_such_option=1)  # type: ignore[arg-type]


# -- handshake errors over serve() and connect() --------------------------------------------


@pytest.mark.parametrize(
    ("request_head", "status", "header"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 426, b"Upgrade: websocket"),
        (
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n",
            400,
            b"Content-Type",
        ),
        (b"POST / HTTP/1.1\r\nHost: x\r\n\r\n", 405, b"Allow: GET"),
        (b"GET / HTTP/1.0\r\nHost: x\r\n\r\n", 400, b"Content-Length"),
        (b"nonsense\r\n\r\n", 400, b"Content-Length"),
        (b"GET / HTTP/1.1\r\n" + b"X: " + b"y" * 20000 + b"\r\n\r\n", 431, b"Connection: close"),
        (b"GET / HTTP/1.1\r\n" + b"X: " + b"y" * 20000, 431, b"Connection: close"),
    ],
)
def test_serve_answers_bad_handshakes(request_head: bytes, status: int, header: bytes) -> None:
    async def main() -> None:
        async with serve(echo, "127.0.0.1", 0, origins=None) as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(request_head)
            answer = await reader.read()
            assert answer.startswith(b"HTTP/1.1 %d " % status)
            assert header in answer
            writer.close()

    run(main())


def test_origin_check_over_serve() -> None:
    async def main() -> None:
        async with serve(echo, "127.0.0.1", 0, origins=["http://good.example"]) as server:
            uri = f"ws://127.0.0.1:{server.port}"
            async with connect(uri, origin="http://good.example") as ws:
                await ws.send("ok")
                assert await ws.recv() == "ok"
            with pytest.raises(InvalidHandshake) as info:
                await connect(uri, origin="http://evil.example")
            assert info.value.status == 403

    run(main())


def test_connect_errors() -> None:
    async def main() -> None:
        for bad in ("http://x/", "ws://", "ws://host:port/", "ws://h/#frag"):
            with pytest.raises(InvalidURI):
                await connect(bad)

        async def not_websocket(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")

        async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.close()

        async def say_nothing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read()

        async def huge_head(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 101 OK\r\n" + b"X: " + b"y" * 20000)

        for answer, status in ((not_websocket, 404), (hang_up, 0), (huge_head, 0)):
            server = await asyncio.start_server(answer, "127.0.0.1", 0)
            async with server:
                port = server.sockets[0].getsockname()[1]
                with pytest.raises(InvalidHandshake) as info:
                    await connect(f"ws://127.0.0.1:{port}/")
                assert info.value.status == status
        server = await asyncio.start_server(say_nothing, "127.0.0.1", 0)
        async with server:
            port = server.sockets[0].getsockname()[1]
            with pytest.raises(TimeoutError):
                await connect(f"ws://127.0.0.1:{port}/", open_timeout=0.2)
        with pytest.raises(ValueError):
            connect("ws://127.0.0.1/", compression="brotli")
        with pytest.raises(ValueError):
            serve(echo, "127.0.0.1", 0, compression="brotli")
        with pytest.raises(TypeError):
            connect("ws://127.0.0.1/", no_such_option=True)

    run(main())


def test_websockets_library_refused_by_version() -> None:
    async def main() -> None:
        async with serve(echo, "127.0.0.1", 0) as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(
                UPGRADE_REQUEST.format(path="/").replace("Version: 13", "Version: 8").encode()
                + b"\r\n"
            )
            answer = await reader.read()
            assert answer.startswith(b"HTTP/1.1 426 Upgrade Required\r\n")
            assert b"\r\nSec-WebSocket-Version: 13\r\n" in answer

    run(main())


# -- the connection API ------------------------------------------------------------------------


def test_connection_api_details() -> None:
    async def handler(ws: Connection) -> None:
        message = await ws.recv()
        if message == "ping me":
            await ws.pong("unsolicited")
            latency = await (await ws.ping("from server"))
            await ws.send(f"latency {latency >= 0}")
        await ws.close(4000, "bye now")
        with pytest.raises(ConnectionClosed):
            await ws.send("after close")
        with pytest.raises(ConnectionClosed):
            await ws.ping()
        with pytest.raises(ConnectionClosed):
            await ws.pong()

    async def main() -> None:
        async with serve(handler, "127.0.0.1", 0) as server:
            ws = await connect(f"ws://127.0.0.1:{server.port}")
            assert "client" in repr(ws) and "OPEN" in repr(ws)
            with pytest.raises(TypeError):
                await ws.send(123)  # type: ignore[arg-type]
            waiter = await ws.ping(b"twice")
            with pytest.raises(RuntimeError):
                await ws.ping(b"twice")
            await waiter
            abandoned = await ws.ping(b"never awaited")
            abandoned.cancel()  # the connection may end before its pong: no harm
            # Two readers at once is a bug in the caller.
            first = asyncio.ensure_future(ws.recv())
            await asyncio.sleep(0)
            with pytest.raises(RuntimeError):
                await ws.recv()
            await ws.send("ping me")
            assert await first == "latency True"
            with pytest.raises(ConnectionClosedError) as info:
                await ws.recv()
            assert (info.value.code, info.value.reason) == (4000, "bye now")
            assert (ws.close_code, ws.close_reason) == (4000, "bye now")
            await ws.close()  # closing again is harmless
            assert ws.state is State.CLOSED

    run(main())


def test_async_for_ends_on_a_normal_close() -> None:
    async def handler(ws: Connection) -> None:
        for i in range(3):
            await ws.send(str(i))

    async def main() -> None:
        async with (
            serve(handler, "127.0.0.1", 0) as server,
            connect(f"ws://127.0.0.1:{server.port}") as ws,
        ):
            assert [message async for message in ws] == ["0", "1", "2"]
            with pytest.raises(ConnectionClosedOK):
                await ws.recv()

    run(main())


def test_handler_exception_closes_with_1011() -> None:
    async def broken(ws: Connection) -> None:
        raise RuntimeError("bug in the handler")

    async def main() -> None:
        async with serve(broken, "127.0.0.1", 0) as server:
            client = await RawClient.open(server.port)
            before, code = await client.frames_until_close()
            assert code == 1011

    run(main())


def test_server_close_says_going_away() -> None:
    async def main() -> None:
        server = await serve(echo, "127.0.0.1", 0)
        client = await RawClient.open(server.port)
        client.send(frame(Opcode.TEXT, b"hi"))
        assert await client.read_frame() == Frame(Opcode.TEXT, b"hi")
        server.close()
        received = await client.read_frame()
        assert received is not None and received.opcode is Opcode.CLOSE
        assert received.payload[:2] == (1001).to_bytes(2, "big")
        client.send(frame(Opcode.CLOSE, received.payload[:2]))
        assert await client.read_frame() is None
        client.close()
        await server.wait_closed()
        assert len(server.sockets) == 0

    run(main())


@pytest.mark.parametrize("loop", LOOPS)
def test_server_close_refuses_handshakes_in_progress(loop: str) -> None:
    # A connection still sending its request when close() is called used to be upgraded
    # afterwards: its handler started once wait_closed() had returned, and the loop was
    # closed with it pending ("Task was destroyed but it is pending!").
    started: list[Connection] = []

    async def handler(ws: Connection) -> None:
        started.append(ws)
        await ws.recv()

    async def main() -> None:
        server = await serve(handler, "127.0.0.1", 0)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET / HTTP/1.1\r\n")  # the request has begun, not ended
        while not server._handshakes:
            await asyncio.sleep(0.01)
        server.close()
        writer.write((UPGRADE_REQUEST.format(path="/")[16:] + "\r\n").encode())
        await server.wait_closed()
        try:
            answer = await reader.read()
        except ConnectionResetError:  # our late request arrived after the close
            answer = b""
        assert answer in (b"", reject_response(InvalidHandshake(503, "server shutting down")))
        for _ in range(5):
            await asyncio.sleep(0)
        assert not started and not server._tasks and not server._handshakes
        writer.close()

    run(main(), loop)


def test_a_connection_accepted_while_closing_is_refused() -> None:
    from fastim.ws.server import Server, ServerOptions, _ServerHandshake

    class ClosingTransport(RecordingTransport):
        closed = False

        def close(self) -> None:
            self.closed = True

    async def main() -> None:
        server = Server(echo, ServerOptions())
        server._closing = True  # close() ran between the accept and connection_made
        transport = ClosingTransport()
        _ServerHandshake(server).connection_made(transport)
        assert transport.closed and transport.written[0].startswith(b"HTTP/1.1 503 ")
        assert not server._handshakes

    run(main())


def test_peer_dropping_tcp_is_an_abnormal_closure() -> None:
    results: list[BaseException] = []

    async def handler(ws: Connection) -> None:
        try:
            await ws.recv()
        except ConnectionClosed as exc:
            results.append(exc)
            raise

    async def main() -> None:
        async with serve(handler, "127.0.0.1", 0) as server:
            client = await RawClient.open(server.port)
            client.send(frame(Opcode.TEXT, b"partial", fin=False))
            await client.writer.drain()
            client.close()
            while not results:
                await asyncio.sleep(0.01)

    run(main())
    assert isinstance(results[0], ConnectionClosedError) and results[0].code == 1006


def test_messages_queued_before_eof_are_still_delivered() -> None:
    async def main() -> None:
        got: list[Any] = []
        done = asyncio.Event()
        release = asyncio.Event()

        async def handler(ws: Connection) -> None:
            await release.wait()
            try:
                while True:
                    got.append(await ws.recv())
            except ConnectionClosedError as exc:
                got.append(exc.code)
            done.set()

        async with serve(handler, "127.0.0.1", 0) as server:
            client = await RawClient.open(server.port)
            client.send(frame(Opcode.TEXT, b"one") + frame(Opcode.TEXT, b"two"))
            client.writer.write_eof()
            await asyncio.sleep(0.1)
            release.set()
            await done.wait()
        assert got == ["one", "two", 1006]

    run(main())


def test_close_answers_a_pending_peer_close() -> None:
    async def main() -> None:
        closed = asyncio.Event()

        async def handler(ws: Connection) -> None:
            await closed.wait()  # the peer's close is waiting behind an unread message
            await ws.close(1000)

        async with serve(handler, "127.0.0.1", 0) as server:
            client = await RawClient.open(server.port)
            client.send(frame(Opcode.TEXT, b"unread") + frame(Opcode.CLOSE, close_payload(4002)))
            await asyncio.sleep(0.05)
            closed.set()
            assert await client.frames_until_close() == ([], 4002)

    run(main())


def test_messages_after_close_are_discarded_and_paused_reading_resumes() -> None:
    async def main() -> None:
        results: list[Any] = []

        async def handler(ws: Connection) -> None:
            while not ws._reading_paused:
                await asyncio.sleep(0.01)
            await ws.close(1000)  # must resume reading to see the peer's close
            results.append(ws.close_code)

        async with serve(handler, "127.0.0.1", 0, max_queue=2) as server:
            client = await RawClient.open(server.port)
            client.send(b"".join(frame(Opcode.TEXT, b"m") for _ in range(50)))
            received = await client.read_frame()
            assert received is not None and received.opcode is Opcode.CLOSE
            client.send(frame(Opcode.TEXT, b"after") + frame(Opcode.CLOSE, close_payload(1000)))
            assert await client.read_frame() is None
            client.close()
            while not results:
                await asyncio.sleep(0.01)
        assert results == [1000]

    run(main())


# -- TLS ------------------------------------------------------------------------------------


def test_wss(tls_files: tuple[Path, Path]) -> None:
    cert, key = tls_files
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    client_context = ssl.create_default_context(cafile=str(cert))

    async def main() -> None:
        async with serve(echo, "127.0.0.1", 0, ssl=server_context) as server:
            async with connect(f"wss://127.0.0.1:{server.port}/secure", ssl=client_context) as ws:
                await ws.send("over TLS")
                assert await ws.recv() == "over TLS"
            assert ws.close_code == 1000
            with pytest.raises(ssl.SSLError):
                await connect(f"wss://127.0.0.1:{server.port}/")  # not a trusted CA

    run(main())


def test_one_pong_answers_the_pings_before_it() -> None:
    async def handler(ws: Connection) -> None:
        first = await ws.ping(b"a")
        cancelled = await ws.ping(b"b")
        cancelled.cancel()
        third = await ws.ping(b"c")
        await ws.send("pinged")
        assert await third >= 0 and await first >= 0  # one pong for "c" settles all
        unanswered = await ws.ping(b"d")
        unanswered.cancel()  # still waiting when the connection ends: no harm
        await ws.send("settled")

    async def main() -> None:
        async with serve(handler, "127.0.0.1", 0) as server:
            client = await RawClient.open(server.port)
            payloads = []
            while len(payloads) < 3:
                received = await client.read_frame()
                assert received is not None and received.opcode is Opcode.PING
                payloads.append(received.payload)
            assert payloads == [b"a", b"b", b"c"]
            assert await client.read_frame() == Frame(Opcode.TEXT, b"pinged")
            client.send(frame(Opcode.PONG, b"c"))
            assert await client.read_frame() == Frame(Opcode.PING, b"d")
            assert await client.read_frame() == Frame(Opcode.TEXT, b"settled")
            assert await client.frames_until_close() == ([], 1000)

    run(main())


def test_no_heartbeat_and_no_handshake_timeout_when_disabled() -> None:
    async def main() -> None:
        async with (
            serve(echo, "127.0.0.1", 0, ping_interval=None, open_timeout=None) as server,
            connect(f"ws://127.0.0.1:{server.port}", ping_interval=0.02, ping_timeout=None) as ws,
        ):
            await asyncio.sleep(0.1)  # the client pings, and never times out
            await ws.send("alive")
            assert await ws.recv() == "alive"
            assert ws._heartbeat is not None or ws._pings
            (connection,) = server.connections
            assert connection._heartbeat is None  # the server does not ping

    run(main())


def test_sender_is_released_when_the_peer_vanishes() -> None:
    async def main() -> None:
        outcome: list[BaseException] = []
        connections: list[Connection] = []

        async def producer(ws: Connection) -> None:
            connections.append(ws)
            try:
                while True:
                    await ws.send(bytes(256 * 1024))
            except ConnectionClosed as exc:
                outcome.append(exc)
                raise

        async with serve(producer, "127.0.0.1", 0) as server:
            client = await RawClient.open(server.port)
            while not connections or not connections[0]._writing_paused:
                await asyncio.sleep(0.01)
            # A second sender gives up while waiting: the first is released regardless.
            extra = asyncio.ensure_future(connections[0].send(b"extra"))
            await asyncio.sleep(0.01)
            extra.cancel()
            client.writer.transport.abort()  # gone without a close frame
            while not outcome:
                await asyncio.sleep(0.01)
        assert isinstance(outcome[0], ConnectionClosedError)
        assert outcome[0].code == 1006

    run(main())


def test_close_code_reports_a_failure_not_yet_answered() -> None:
    async def main() -> None:
        seen: list[Any] = []
        ready = asyncio.Event()

        async def handler(ws: Connection) -> None:
            await ready.wait()
            while ws.state is State.OPEN:
                await asyncio.sleep(0.01)
            seen.append((ws.state, ws.close_code, ws.close_reason))
            seen.append(await ws.recv())  # the message before the bad frame still comes
            try:
                await ws.recv()
            except ConnectionClosedError as exc:
                seen.append(exc.code)

        async with serve(handler, "127.0.0.1", 0) as server:
            client = await RawClient.open(server.port)
            client.send(frame(Opcode.TEXT, b"before") + frame(Opcode.TEXT, b"\xff"))
            ready.set()
            assert await client.frames_until_close() == ([], 1007)
        assert seen == [
            (State.CLOSING, 1007, "invalid UTF-8 in a text message"),
            "before",
            1007,
        ]

    run(main())


def test_client_reads_a_response_head_in_pieces() -> None:
    async def slow_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        key = parse_request(head).headers.get("Sec-WebSocket-Key") or ""
        response = (
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
            + accept_key(key).encode()
            + b"\r\n\r\n"
        )
        for i in range(0, len(response), 7):
            writer.write(response[i : i + 7])
            await writer.drain()
            await asyncio.sleep(0.001)
        writer.write(encode_frame(Frame(Opcode.TEXT, b"welcome")))
        await reader.read()

    async def main() -> None:
        server = await asyncio.start_server(slow_answer, "127.0.0.1", 0)
        async with server:
            port = server.sockets[0].getsockname()[1]
            ws = await connect(f"ws://127.0.0.1:{port}", close_timeout=0.1)
            assert await ws.recv() == "welcome"
            await ws.close()

    run(main())


def test_event_loop_helpers() -> None:
    from fastim.ws import loop as ws_loop

    async def which() -> str:
        return type(asyncio.get_running_loop()).__module__

    assert ws_loop.run(which()).startswith("uvloop")
    new = ws_loop.new_event_loop()
    new.close()
    before = asyncio.get_event_loop_policy()
    try:
        assert ws_loop.install_uvloop() is True
        assert isinstance(asyncio.get_event_loop_policy(), uvloop.EventLoopPolicy)
    finally:
        asyncio.set_event_loop_policy(before)


def test_send_nowait_writes_at_once_and_reports_what_is_buffered() -> None:
    async def fan_out(ws: Connection) -> None:
        assert ws.buffered_amount == 0
        ws.send_nowait("text frame")
        ws.send_nowait(b"\x00binary")
        await ws.close()
        with pytest.raises(ConnectionClosed):
            ws.send_nowait("too late")

    async def main() -> None:
        async with (serve(fan_out, "127.0.0.1", 0) as server,
                    ws_connect(f"ws://127.0.0.1:{server.port}") as client):
            assert await client.recv() == "text frame"
            assert await client.recv() == b"\x00binary"

    run(main())


def test_answers_that_are_not_small_bytes_or_str_go_the_long_way() -> None:
    # send()/send_nowait() join a small str or bytes message to its header in one call;
    # anything else (bytes-like, large) is framed the long way, written at once as the
    # answer to the message being handled when it is small, queued for the turn otherwise.
    from fastim.ws.connection import Options
    from fastim.ws.protocol import Role, WebSocketProtocol

    def server_frame(payload: bytes) -> bytes:
        return encode_frame(Frame(Opcode.BINARY, payload))

    async def main() -> None:
        transport = RecordingTransport()
        ws = Connection(WebSocketProtocol(Role.SERVER), Options(ping_interval=None))
        ws.connection_made(transport)

        def answer(message: str | bytes) -> None:
            assert isinstance(message, bytes)
            ws.send_nowait(bytearray(message))  # type: ignore[arg-type]
            ws.send_nowait(message * 1000)

        ws.set_message_callback(answer)
        ws.data_received(frame(Opcode.BINARY, b"ab"))
        assert transport.written == [server_frame(b"ab")]  # at once
        await asyncio.sleep(0)
        assert b"".join(transport.written[1:]) == server_frame(b"ab" * 1000)  # at the turn

    run(main())


def test_async_for_waits_for_the_rest_of_a_frame() -> None:
    # Half a frame is buffered: `async for` finds no message and waits for the rest.
    from fastim.ws.connection import Options
    from fastim.ws.protocol import Role, WebSocketProtocol

    async def main() -> None:
        ws = Connection(WebSocketProtocol(Role.SERVER), Options(ping_interval=None))
        ws.connection_made(RecordingTransport())
        wire = frame(Opcode.BINARY, b"x" * 40)
        ws.data_received(wire[:9])
        waiting = asyncio.ensure_future(ws.__anext__())
        await asyncio.sleep(0)
        assert not waiting.done()
        ws.data_received(wire[9:])
        assert await waiting == b"x" * 40

    run(main())


def test_two_reads_before_the_waiting_task_runs_deliver_both_in_order() -> None:
    # The first whole message wakes the waiting `async for`; a second read arrives before
    # that task runs (its waiter is already woken): both messages come, in order.
    from fastim.ws.connection import Options
    from fastim.ws.protocol import Role, WebSocketProtocol

    async def main() -> None:
        ws = Connection(WebSocketProtocol(Role.SERVER), Options(ping_interval=None))
        ws.connection_made(RecordingTransport())
        waiting = asyncio.ensure_future(ws.__anext__())
        await asyncio.sleep(0)
        ws.data_received(frame(Opcode.TEXT, b"one"))
        ws.data_received(frame(Opcode.BINARY, b"two"))
        assert await waiting == "one"
        assert await ws.__anext__() == b"two"

    run(main())


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("iterate", [True, False])
def test_a_whole_message_runs_the_waiting_task_before_data_received_returns(
    iterate: bool, loop: str
) -> None:
    # Read from the loop, as a transport reads, a whole message runs the task waiting for
    # it at once, in that task's own context; read from inside a task (asyncio runs one
    # task at a time) it wakes the receiver through the loop, as before.
    from fastim.ws.connection import Options
    from fastim.ws.protocol import Role, WebSocketProtocol

    who: contextvars.ContextVar[str] = contextvars.ContextVar("who", default="nobody")

    async def main() -> None:
        ws = Connection(WebSocketProtocol(Role.SERVER), Options(ping_interval=None))
        ws.connection_made(RecordingTransport())
        got: list[tuple[str | bytes, str]] = []

        async def receiver() -> None:
            who.set("receiver")
            if iterate:
                async for message in ws:
                    got.append((message, who.get()))
            else:
                while True:
                    got.append((await ws.recv(), who.get()))

        task = asyncio.create_task(receiver())
        await asyncio.sleep(0)  # it waits
        running = asyncio.get_running_loop()
        seen: asyncio.Future[list[tuple[str | bytes, str]]] = running.create_future()

        def read() -> None:
            ws.data_received(frame(Opcode.TEXT, b"one"))
            seen.set_result(list(got))  # what the receiver had when the read returned

        running.call_soon(read)
        assert await seen == [("one", "receiver")]
        ws.data_received(frame(Opcode.BINARY, b"two"))  # from this task
        assert got == [("one", "receiver")]
        await asyncio.sleep(0)
        assert got == [("one", "receiver"), (b"two", "receiver")]
        task.cancel()

    run(main(), loop)


@pytest.mark.parametrize("kind", ["python", "c"])
def test_hand_over_runs_the_awaiting_task_now_or_says_no(kind: str) -> None:
    from fastim.ws import connection as connection_module
    from fastim.ws.frames import from_speedups

    hand_over = (connection_module._hand_over_python if kind == "python"
                 else from_speedups("hand_over", connection_module._hand_over_python, True))
    assert kind == "python" or hand_over is not connection_module._hand_over_python

    async def main() -> None:
        loop = asyncio.get_running_loop()
        got: list[object] = []

        async def wait(waiter: asyncio.Future[object]) -> None:
            got.append(await waiter)

        def from_the_loop(*call: Any) -> asyncio.Future[object]:
            answer: asyncio.Future[object] = loop.create_future()
            loop.call_soon(lambda: answer.set_result(call[0](*call[1:])))
            return answer

        waiter: asyncio.Future[object] = loop.create_future()
        task = asyncio.create_task(wait(waiter))
        await asyncio.sleep(0)
        assert await from_the_loop(lambda: (hand_over(waiter, "now", loop), list(got))) == (
            True, ["now"])
        await task

        # From inside a task (this one): handed over, run through the loop.
        waiter = loop.create_future()
        task = asyncio.create_task(wait(waiter))
        await asyncio.sleep(0)
        assert hand_over(waiter, "later", loop) is True
        assert got == ["now"]
        await task
        assert got == ["now", "later"]

        # Its context in use (entered around the call): through the loop too.
        waiter = loop.create_future()
        context = contextvars.copy_context()
        task = asyncio.create_task(wait(waiter), context=context)
        await asyncio.sleep(0)
        assert await from_the_loop(context.run, hand_over, waiter, "in use", loop) is True
        await task
        assert got[-1] == "in use"

        # No callback (nobody awaits it, or its task was cancelled), or two: not touched.
        waiter = loop.create_future()
        assert hand_over(waiter, "nobody", loop) is False
        waiter.add_done_callback(got.append)
        waiter.add_done_callback(got.append)
        assert hand_over(waiter, "two", loop) is False
        assert not waiter.done()

    run(main())


def test_task_running_as_python_3_14_tells_it() -> None:
    from fastim.ws.connection import _TaskRunning

    running = _TaskRunning()

    async def main() -> list[bool]:
        loop = asyncio.get_running_loop()
        outside = loop.create_future()
        loop.call_soon(lambda: outside.set_result(bool(running)))
        return [bool(running), await outside]

    assert run(main()) == [True, False]


@pytest.mark.parametrize("loop", LOOPS)
def test_a_read_of_more_than_the_queue_holds_reaches_the_receiver_whole(loop: str) -> None:
    # Thirty messages in one read, from the loop: the queue takes sixteen and reading
    # pauses; the task woken at the end of the read takes them all, reading resumes for
    # the rest, and a close frame read with them ends `async for` after the last.
    from fastim.ws.connection import Options
    from fastim.ws.protocol import Role, WebSocketProtocol

    async def main() -> list[str | bytes]:
        ws = Connection(WebSocketProtocol(Role.SERVER), Options(ping_interval=None))
        transport = RecordingTransport()
        ws.connection_made(transport)
        got: list[str | bytes] = []

        async def iterate() -> None:
            async for message in ws:
                got.append(message)

        task = asyncio.create_task(iterate())
        await asyncio.sleep(0)
        wire = b"".join(frame(Opcode.TEXT, b"%d" % n) for n in range(30))
        asyncio.get_running_loop().call_soon(
            ws.data_received, wire + frame(Opcode.CLOSE, close_payload(1000)))
        await task
        assert transport.reading
        return got

    assert run(main(), loop) == [str(n) for n in range(30)]


def test_a_connection_ended_under_async_for_is_freed_without_the_cycle_collector() -> None:
    # The error that ends `async for` travels in its waiter: it must not hold, through
    # its traceback, the frame that holds the waiter (a cycle only gc.collect() frees).
    import gc
    import weakref

    from fastim.ws.connection import Options
    from fastim.ws.protocol import Role, WebSocketProtocol

    class Marker:  # an application's attribute: freed with the connection
        pass

    async def main() -> weakref.ref[Marker]:
        ws = Connection(WebSocketProtocol(Role.SERVER), Options(ping_interval=None))
        ws.connection_made(RecordingTransport())
        ws.marker = marker = Marker()  # type: ignore[attr-defined]

        async def iterate(connection: Connection) -> None:
            with pytest.raises(ConnectionClosed):
                async for _ in connection:
                    pass

        task = asyncio.create_task(iterate(ws))
        await asyncio.sleep(0)
        asyncio.get_running_loop().call_soon(ws.connection_lost, ConnectionResetError())
        await task
        return weakref.ref(marker)

    gc.collect()
    gc.disable()
    try:
        gone = run(main())
        assert gone() is None
    finally:
        gc.enable()


async def _next(ws: Connection) -> str | bytes:
    return await ws.__anext__()


@pytest.mark.parametrize("loop", LOOPS)
def test_async_for_awaits_the_message_itself(loop: str) -> None:
    # __anext__ makes no coroutine: a queued message comes in a finished awaitable, and a
    # wait is a future whose result is the message (or whose exception is the end). A
    # message is handed to it only when its task can run at once; otherwise, and when it
    # is cancelled, the message stays queued for the next receiver.
    from fastim.ws.connection import Options
    from fastim.ws.protocol import Role, WebSocketProtocol

    async def main() -> None:
        ws = Connection(WebSocketProtocol(Role.SERVER), Options(ping_interval=None))
        ws.connection_made(RecordingTransport())
        running = asyncio.get_running_loop()

        def read(wire: bytes) -> None:  # from the loop, as a transport reads
            running.call_soon(ws.data_received, wire)

        ws.data_received(frame(Opcode.TEXT, b"queued"))
        ready = ws.__anext__()
        assert not asyncio.isfuture(ready)
        assert await ready == "queued"
        waiting = ws.__anext__()
        assert asyncio.isfuture(waiting)
        read(frame(Opcode.TEXT, b"one"))
        assert await waiting == "one"

        # A task in `async for` cancelled while it waits; recv() then waits in its place.
        async def iterate() -> None:
            async for _ in ws:
                pass

        task = asyncio.create_task(iterate())
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        receiving = asyncio.ensure_future(ws.recv())
        await asyncio.sleep(0)
        read(frame(Opcode.BINARY, b"two"))
        assert await receiving == b"two"

        # Two callbacks on it (no task's in particular): resolved, and they run as usual.
        waiting = ws.__anext__()
        seen: list[object] = []
        waiting.add_done_callback(seen.append)  # type: ignore[attr-defined]
        waiting.add_done_callback(seen.append)  # type: ignore[attr-defined]
        read(frame(Opcode.TEXT, b"three"))
        assert await waiting == "three"
        await asyncio.sleep(0)
        assert seen == [waiting, waiting]

        # Read from inside a task, then cancelled before the loop could hand it over.
        waiting = ws.__anext__()
        ws.data_received(frame(Opcode.TEXT, b"four"))
        waiting.cancel()  # type: ignore[attr-defined]
        await asyncio.sleep(0)
        assert await ws.__anext__() == "four"

        # Half a message wakes nobody; the rest does.
        waiting = ws.__anext__()
        read(frame(Opcode.TEXT, b"fi", fin=False))
        await asyncio.sleep(0)
        assert not waiting.done()  # type: ignore[attr-defined]
        read(frame(Opcode.CONTINUATION, b"ve"))
        assert await waiting == "five"

        # Taken by recv() before the loop could hand it over: the waiter waits on.
        waiting = ws.__anext__()
        ws.data_received(frame(Opcode.TEXT, b"six"))  # from this task: queued
        assert await ws.recv() == "six"
        await asyncio.sleep(0)
        assert not waiting.done()  # type: ignore[attr-defined]
        read(frame(Opcode.TEXT, b"seven"))
        assert await waiting == "seven"

        # The waiting task's context in use elsewhere (entered around the read): it is
        # woken through the loop instead, one message per read or two.
        for wire in (frame(Opcode.TEXT, b"8"), frame(Opcode.TEXT, b"8") * 2):
            context = contextvars.copy_context()
            task = asyncio.create_task(_next(ws), context=context)
            await asyncio.sleep(0)
            running.call_soon(context.run, ws.data_received, wire)
            assert await task == "8"
        assert await ws.__anext__() == "8"

        # The peer's close ends `async for`: StopAsyncIteration from the future.
        waiting = ws.__anext__()
        read(frame(Opcode.CLOSE, close_payload(1000)))
        with pytest.raises(StopAsyncIteration):
            await waiting

        # A violation ends it with the error.
        failing = Connection(WebSocketProtocol(Role.SERVER), Options(ping_interval=None))
        failing.connection_made(RecordingTransport())
        waiting = failing.__anext__()
        running.call_soon(failing.data_received, frame(Opcode.TEXT, b"\xff"))
        with pytest.raises(ConnectionClosed) as closed:
            await waiting
        assert closed.value.code == 1007

    run(main(), loop)


@pytest.mark.parametrize("iterate", [True, False])
def test_a_message_handed_to_a_receiver_cancelled_before_it_ran_is_kept(iterate: bool) -> None:
    # data_received hands a whole message straight to the waiting receiver; when that
    # task is cancelled before it runs (wait_for's timeout firing in the same turn), the
    # message goes back first in line: the next receiver gets it, then what came after.
    from fastim.ws.connection import Options
    from fastim.ws.protocol import Role, WebSocketProtocol

    async def main() -> None:
        ws = Connection(WebSocketProtocol(Role.SERVER), Options(ping_interval=None))
        ws.connection_made(RecordingTransport())
        receive = ws.__anext__ if iterate else ws.recv
        waiting = asyncio.ensure_future(receive())
        await asyncio.sleep(0)
        ws.data_received(frame(Opcode.TEXT, b"one"))  # handed over
        waiting.cancel()
        ws.data_received(frame(Opcode.BINARY, b"two"))  # queued behind it
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert await receive() == "one"
        assert await receive() == b"two"

        waiting = asyncio.ensure_future(receive())
        await asyncio.sleep(0)
        ws.data_received(frame(Opcode.TEXT, b"three"))
        waiting.cancel()
        other = ws.recv()
        if iterate:
            # `async for`'s waiter is the message itself: read from inside a task (this
            # one), the message is not handed to it but stays queued, for whoever comes.
            with pytest.raises(StopIteration) as stopped:
                other.send(None)
        else:
            # recv()'s was handed the message: a receiver that started waiting before
            # the cancelled one ran is woken for it.
            assert isinstance(other.send(None), asyncio.Future)  # the queue is empty
            with pytest.raises(asyncio.CancelledError):
                await waiting
            with pytest.raises(StopIteration) as stopped:
                other.send(None)
        assert stopped.value.value == "three"

    run(main())


def test_the_fast_paths_keep_order_cancellation_and_the_close() -> None:
    # data_received() parses a whole small frame itself and send() writes a server's
    # plain answer without core.message_bytes(): messages queued before anybody waits come
    # in order, a message arriving after a waiting `async for` was cancelled is kept for
    # the next one, and the direct answer after our close frame raises, writing nothing.
    from fastim.ws.connection import Options
    from fastim.ws.protocol import Role, WebSocketProtocol

    async def main() -> None:
        transport = RecordingTransport()
        ws = Connection(WebSocketProtocol(Role.SERVER), Options(ping_interval=None))
        ws.connection_made(transport)
        ws.data_received(frame(Opcode.TEXT, b"one"))
        ws.data_received(frame(Opcode.BINARY, b"two"))
        assert await ws.__anext__() == "one"
        assert await ws.__anext__() == b"two"

        waiting = asyncio.ensure_future(ws.__anext__())
        await asyncio.sleep(0)
        waiting.cancel()
        ws.data_received(frame(Opcode.TEXT, b"three"))  # the waiter is cancelled, not run
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert await ws.recv() == "three"

        await ws.send("answer")  # the answer to the message just taken: written at once
        assert transport.written == [encode_frame(Frame(Opcode.TEXT, b"answer"))]
        ws.data_received(frame(Opcode.TEXT, b"four"))
        assert await ws.recv() == "four"
        sent = ws.send(b"answered")  # written in the call; what it returns has finished
        assert transport.written[1] == encode_frame(Frame(Opcode.BINARY, b"answered"))
        assert asyncio.iscoroutine(sent)
        assert await sent is None
        closing = asyncio.ensure_future(ws.close())
        await asyncio.sleep(0)  # our close frame is sent; close() waits for the peer's
        refused = ws.send("after the close")  # raises when awaited, as a coroutine would
        with pytest.raises(ConnectionClosed):
            await refused
        await asyncio.sleep(0)
        assert transport.written[2:] == [encode_frame(Frame(Opcode.CLOSE, close_payload(1000)))]
        closing.cancel()

    run(main())
    run(main(), "uvloop")


def test_a_traced_connection_sees_whole_small_frames() -> None:
    # The fast path of data_received() is for connections nobody traces: with on_frame
    # set, a whole small frame goes through the core's events, and the hook sees it.
    from fastim.ws.connection import Options
    from fastim.ws.protocol import Role, WebSocketProtocol

    async def main() -> None:
        seen: list[tuple[str, Opcode]] = []
        options = Options(ping_interval=None,
                          on_frame=lambda _, direction, f: seen.append((direction, f.opcode)))
        ws = Connection(WebSocketProtocol(Role.SERVER), options)
        ws.connection_made(RecordingTransport())
        ws.data_received(frame(Opcode.TEXT, b"hi"))
        assert await ws.recv() == "hi"
        await ws.send("hi")
        await asyncio.sleep(0)
        assert seen == [("recv", Opcode.TEXT), ("send", Opcode.TEXT)]

    run(main())


@pytest.mark.parametrize("loop", LOOPS)
def test_message_and_close_read_after_tcp_is_gone(loop: str) -> None:
    # A message and a close frame arrive, then TCP ends before the application reads
    # them: the message is still delivered, then the close, whose answer (nowhere to
    # write it now) is dropped without an error.
    async def main() -> None:
        got: list[Any] = []
        connections: list[Connection] = []
        release = asyncio.Event()

        async def handler(ws: Connection) -> None:
            connections.append(ws)
            await release.wait()
            got.append(await ws.recv())
            try:
                await ws.recv()
            except ConnectionClosedOK as exc:
                got.append(exc.code)

        async with serve(handler, "127.0.0.1", 0) as server:
            client = await RawClient.open(server.port)
            client.send(frame(Opcode.TEXT, b"last") + frame(Opcode.CLOSE, close_payload(1000)))
            await client.writer.drain()
            client.writer.transport.abort()
            while not connections or connections[0].state is not State.CLOSED:
                await asyncio.sleep(0.01)
            release.set()
            while len(got) < 2:
                await asyncio.sleep(0.01)
        assert got == ["last", 1000]

    run(main(), loop)


def test_heartbeat_timeout_while_reading_is_paused() -> None:
    # The application does not read and the peer neither reads nor answers pings: reading
    # is paused (the queue is full), and the peer is still dropped at the ping timeout.
    async def main() -> None:
        connections: list[Connection] = []
        release = asyncio.Event()

        async def stalled(ws: Connection) -> None:
            connections.append(ws)
            await release.wait()

        async with serve(
            stalled, "127.0.0.1", 0, max_queue=1, ping_interval=0.05, ping_timeout=0.05
        ) as server:
            client = await RawClient.open(server.port)
            client.send(b"".join(frame(Opcode.TEXT, b"%d" % i) for i in range(3)))
            before, code = await client.frames_until_close()
            assert code == 1011 and all(f.opcode is Opcode.PING for f in before)
            assert len(connections[0]._messages) == 1
            release.set()

    run(main())



# -- set_message_callback: messages handled inside the read callback -------------------------


@pytest.mark.parametrize("loop", LOOPS)
def test_message_callback_echoes_without_a_task_switch(loop: str) -> None:
    """Whole frames, fragments with a ping between them, text and binary: each message
    reaches the callback in order, its answer goes out, and the close handshake ends the
    handler that waits for it."""

    async def handler(ws: Connection) -> None:
        ws.set_message_callback(ws.send_nowait)
        await ws.wait_closed()

    async def main() -> None:
        async with serve(handler, "127.0.0.1", 0) as server:
            client = await RawClient.open(server.port)
            client.send(frame(Opcode.BINARY, b"one"))
            assert (await client.read_frame()) == Frame(Opcode.BINARY, b"one")
            client.send(
                frame(Opcode.TEXT, "hé".encode(), fin=False)
                + frame(Opcode.PING, b"p")
                + frame(Opcode.CONTINUATION, b"llo")
                + frame(Opcode.BINARY, b"two")
            )
            got = [await client.read_frame() for _ in range(3)]
            assert [(f.opcode, f.payload) for f in got if f is not None] == [
                (Opcode.PONG, b"p"), (Opcode.TEXT, "héllo".encode()), (Opcode.BINARY, b"two")
            ]
            client.send(frame(Opcode.BINARY, b"last") + frame(Opcode.CLOSE, close_payload(1000)))
            assert await client.frames_until_close() == ([Frame(Opcode.BINARY, b"last")], 1000)

    run(main(), loop)


def test_message_callback_takes_the_queue_then_can_be_removed() -> None:
    """Messages queued before the callback is set reach it at once, in order, the reader
    paused for them reads on; with None, messages are queued for recv() again; a queued
    close is answered once the callback has had the messages before it."""
    total = 40

    async def main() -> None:
        got: list[str | bytes] = []
        connections: list[Connection] = []
        go, again, removed = asyncio.Event(), asyncio.Event(), asyncio.Event()

        async def handler(ws: Connection) -> None:
            connections.append(ws)
            await go.wait()
            ws.set_message_callback(got.append)
            await again.wait()
            ws.set_message_callback(None)
            removed.set()
            assert await ws.recv() == b"queued again"
            ws.set_message_callback(got.append)
            await ws.wait_closed()

        async with serve(handler, "127.0.0.1", 0, max_queue=4) as server:
            client = await RawClient.open(server.port)
            client.send(b"".join(frame(Opcode.TEXT, b"%d" % i) for i in range(total)))
            while not connections or not connections[0]._reading_paused:
                await asyncio.sleep(0.01)
            go.set()
            while len(got) < total:
                await asyncio.sleep(0.01)
            assert got == [str(i) for i in range(total)]
            again.set()
            await removed.wait()
            client.send(frame(Opcode.BINARY, b"queued again"))
            client.send(frame(Opcode.BINARY, b"after") + frame(Opcode.CLOSE, close_payload(1000)))
            assert await client.frames_until_close() == ([], 1000)
            assert got[total:] == [b"after"]

    run(main())


def test_message_callback_given_messages_and_the_close_already_queued() -> None:
    async def main() -> None:
        got: list[str | bytes] = []
        connections: list[Connection] = []
        go = asyncio.Event()

        async def handler(ws: Connection) -> None:
            connections.append(ws)
            await go.wait()
            ws.set_message_callback(got.append)
            await ws.wait_closed()

        async with serve(handler, "127.0.0.1", 0) as server:
            client = await RawClient.open(server.port)
            client.send(frame(Opcode.TEXT, b"a") + frame(Opcode.TEXT, b"b"))
            client.send(frame(Opcode.CLOSE, close_payload(4000)))
            while not connections or len(connections[0]._messages) < 3:
                await asyncio.sleep(0.01)  # "a", "b", then the end
            go.set()
            assert await client.frames_until_close() == ([], 4000)
            assert got == ["a", "b"]

    run(main())


@pytest.mark.parametrize("one_read", [True, False])
def test_message_callback_that_raises_closes_with_1011(
    caplog: pytest.LogCaptureFixture, one_read: bool
) -> None:
    # one_read: both frames in one read (parsed by the core), else one frame per read
    # (the fast path of data_received).
    def callback(message: str | bytes) -> None:
        raise ValueError("bad message")

    async def handler(ws: Connection) -> None:
        ws.set_message_callback(callback)
        await ws.wait_closed()

    async def main() -> None:
        async with serve(handler, "127.0.0.1", 0) as server:
            client = await RawClient.open(server.port)
            if one_read:
                client.send(frame(Opcode.BINARY, b"x") + frame(Opcode.BINARY, b"y"))
            else:
                client.send(frame(Opcode.BINARY, b"x"))
                await asyncio.sleep(0.05)
                client.send(frame(Opcode.BINARY, b"y"))
            before, code = await client.frames_until_close()
            assert before == [] and code == 1011

    with caplog.at_level("ERROR", logger="fastim.ws"):
        run(main())
    failures = [r for r in caplog.records if "message callback failed" in r.getMessage()]
    assert len(failures) == 1  # "y" is dropped after the close: no second call


@pytest.mark.parametrize("loop", LOOPS)
def test_callback_echo_with_compression_negotiated(loop: str) -> None:
    # With permessage-deflate the direct write of send_nowait() goes through the core:
    # small answers stay under the threshold, a large one is compressed.
    async def handler(ws: Connection) -> None:
        ws.set_message_callback(ws.send_nowait)
        await ws.wait_closed()

    async def main() -> None:
        # fastim's client leaves small messages uncompressed: the server's fast path
        async with serve(handler, "127.0.0.1", 0) as server, connect(
            f"ws://127.0.0.1:{server.port}/"
        ) as client:
            assert "permessage-deflate" in (
                client.response_headers.get("Sec-WebSocket-Extensions") or ""
            )
            for message in ("hi", "x" * 10_000, b"\x00\x01"):
                await client.send(message)
                assert await client.recv() == message

    run(main(), loop)

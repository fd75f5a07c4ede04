"""Faults of the peer at the WebSocket library level: a peer that stops, or crawls, half-way
through a frame.

RFC 6455 §5.4: control frames may come between the frames of a message, never inside a
frame. A peer stuck in the middle of a frame can therefore never answer a ping; the
keepalive of fastim.ws (docs/library.md, "Heartbeats") uses that to bound how long a frame
may take. The app-level tests (the hub telling friends, other users going on) are in
tests/chat/test_faults_clients.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastim.ws import Connection, ConnectionClosed, serve
from fastim.ws.frames import Frame, FrameDecoder, Opcode, encode_frame
from fastim.ws.handshake import accept_key, parse_response

KEY = "dGhlIHNhbXBsZSBub25jZQ=="
MASK = b"\x01\x02\x03\x04"
SAFETY = 10.0  # a safety net only: no test asserts on time


def half_a_frame(declared: int = 1024, sent: int = 100) -> tuple[bytes, bytes]:
    """A masked text frame whose header announces `declared` bytes: the header and the
    first `sent` bytes of the payload, and the rest of the payload."""
    whole = encode_frame(Frame(Opcode.TEXT, b"x" * declared), MASK)
    cut = len(whole) - declared + sent
    return whole[:cut], whole[cut:]


async def open_raw(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        ("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         f"Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    head = await reader.readuntil(b"\r\n\r\n")
    response = parse_response(head)
    assert response.status == 101 and response.headers.get("Sec-WebSocket-Accept") == accept_key(
        KEY)
    return reader, writer


async def frames_until_eof(reader: asyncio.StreamReader) -> list[Frame]:
    decoder = FrameDecoder(expect_masked=False)
    frames = []
    while True:
        try:
            data = await asyncio.wait_for(reader.read(65536), SAFETY)
        except ConnectionResetError:
            data = b""
        decoder.feed(data)
        while (received := decoder.next_frame()) is not None:
            frames.append(received)
        if not data:
            return frames


def test_a_peer_dripping_a_frame_is_pinged_and_closed_at_the_ping_timeout() -> None:
    # One byte of the frame every 30 ms, well inside every 100 ms ping interval: the bytes
    # alone would keep the connection "alive" while the frame never ends (the slowloris of
    # WebSocket). The peer is pinged all the same, cannot answer inside its frame, and is
    # closed with 1011 at the ping timeout.
    async def main() -> None:
        ends: list[Any] = []

        async def handler(ws: Connection) -> None:
            try:
                async for message in ws:
                    await ws.send(message)
            except ConnectionClosed:
                pass
            finally:
                ends.append(ws.close_code)

        async with serve(handler, "127.0.0.1", 0, ping_interval=0.1, ping_timeout=0.3,
                         close_timeout=0.3) as server:
            reader, writer = await open_raw(server.port)
            start, rest = half_a_frame()
            writer.write(start)
            collected = asyncio.create_task(frames_until_eof(reader))
            for byte in rest:  # bounded: the frame ends after 924 more bytes
                if collected.done():
                    break
                writer.write(bytes([byte]))
                await asyncio.sleep(0.03)
            frames = await collected
            writer.close()
            opcodes = [f.opcode for f in frames]
            assert Opcode.TEXT not in opcodes, "the dripped frame was let through to its end"
            assert opcodes[0] is Opcode.PING and opcodes[-1] is Opcode.CLOSE, opcodes
            assert int.from_bytes(frames[-1].payload[:2], "big") == 1011
            while not ends:  # the handler ends once TCP is closed
                await asyncio.sleep(0.01)
            assert ends == [1011]

    asyncio.run(asyncio.wait_for(main(), 4 * SAFETY))


def test_a_large_frame_arriving_steadily_is_not_cut_off() -> None:
    # The other side of the rule: a frame that spans several ping intervals but ends
    # within the ping timeout of the ping it caused passes, and the pong that follows it
    # keeps the connection.
    async def main() -> None:
        async with serve(lambda ws: _echo(ws), "127.0.0.1", 0, ping_interval=0.05,
                         ping_timeout=SAFETY) as server:
            reader, writer = await open_raw(server.port)
            start, rest = half_a_frame(declared=4096, sent=0)
            writer.write(start)
            for offset in range(0, len(rest), 512):  # 8 pieces over ~4 intervals
                writer.write(rest[offset:offset + 512])
                await asyncio.sleep(0.03)
            decoder = FrameDecoder(expect_masked=False)
            while True:
                decoder.feed(await asyncio.wait_for(reader.read(65536), SAFETY))
                received = decoder.next_frame()
                while received is not None and received.opcode is Opcode.PING:
                    writer.write(encode_frame(Frame(Opcode.PONG, received.payload), MASK))
                    received = decoder.next_frame()
                if received is not None:
                    break
            assert received == Frame(Opcode.TEXT, b"x" * 4096)
            writer.write(encode_frame(Frame(Opcode.CLOSE, (1000).to_bytes(2, "big")), MASK))
            frames = await frames_until_eof(reader)
            assert frames[-1].opcode is Opcode.CLOSE
            writer.close()

    asyncio.run(asyncio.wait_for(main(), 4 * SAFETY))


async def _echo(ws: Connection) -> None:
    async for message in ws:
        await ws.send(message)

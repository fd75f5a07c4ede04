"""fastim.ws.trace (the bytes as they crossed the wire) and fastim.ws.console (the
interactive client of `python -m fastim.ws client`)."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_ws_asyncio import run

from fastim.ws import console
from fastim.ws.__main__ import main, start_echo
from fastim.ws.client import connect
from fastim.ws.connection import Connection
from fastim.ws.exceptions import ConnectionClosed, ConnectionClosedOK
from fastim.ws.frames import Frame, Opcode, encode_frame
from fastim.ws.server import serve, take_over
from fastim.ws.trace import (
    FrameSplitter,
    WireFrame,
    frame_detail,
    frame_summary,
    header_size,
    request_head,
    response_head,
    tap,
)

ROOT = Path(__file__).resolve().parents[2]
KEY = bytes.fromhex("37fa213d")


# -- cutting a stream into frames ---------------------------------------------------------


def test_splitter_finds_frames_whatever_the_chunks() -> None:
    stream = (
        encode_frame(Frame(Opcode.TEXT, b"Hello"), KEY)
        + encode_frame(Frame(Opcode.BINARY, bytes(300)))
        + encode_frame(Frame(Opcode.BINARY, bytes(70000)), KEY)
    )
    for chunk in (1, 7, len(stream)):
        splitter = FrameSplitter("recv")
        frames: list[WireFrame] = []
        for i in range(0, len(stream), chunk):
            frames += splitter.feed(stream[i : i + chunk])
        assert [f.header_size for f in frames] == [6, 4, 14]
        assert [f.length for f in frames] == [5, 300, 70000]
        hello, short, big = frames
        assert hello.data == bytes.fromhex("8185 37fa213d 7f9f4d5158")
        assert hello.header == bytes.fromhex("8185") and hello.mask == KEY
        assert hello.wire_payload == bytes.fromhex("7f9f4d5158") and hello.payload == b"Hello"
        assert hello.fin and hello.masked and hello.rsv == (False, False, False)
        assert hello.opcode_name == "TEXT" and hello.complete
        assert short.mask is None and short.payload == bytes(300) and short.header == short.data[:4]
        assert not big.complete and len(big.data) == 14 + 64 * 1024 and big.size == 70014


@given(
    st.lists(
        st.tuples(st.sampled_from(list(Opcode)), st.binary(max_size=300), st.booleans()),
        max_size=6,
    ),
    st.lists(st.integers(min_value=1, max_value=64), min_size=1, max_size=20),
)
def test_splitter_cuts_any_stream_where_the_encoder_joined_it(
    frames: list[tuple[Opcode, bytes, bool]], cuts: list[int]
) -> None:
    encoded = [encode_frame(Frame(op, data), KEY if masked else None)
               for op, data, masked in frames]
    stream = b"".join(encoded)
    splitter = FrameSplitter("recv", keep=100)
    found: list[WireFrame] = []
    position, i = 0, 0
    while position < len(stream):
        step = cuts[i % len(cuts)]
        found += splitter.feed(stream[position : position + step])
        position, i = position + step, i + 1
    assert [f.size for f in found] == [len(e) for e in encoded]
    assert [f.data for f in found] == [e[: f.header_size + 100] for e, f in zip(encoded, found, strict=True)]
    assert [f.payload for f in found] == [data[:100] for _, data, _ in frames]


def test_splitter_keeps_what_it_is_told_and_skips_the_rest() -> None:
    splitter = FrameSplitter("send", keep=2)
    frames = splitter.feed(encode_frame(Frame(Opcode.BINARY, b"abcdef")) + b"\x83\x00")
    assert [f.data for f in frames] == [b"\x82\x06ab", b"\x83\x00"]
    assert frames[1].opcode_name == "0x3" and frames[1].opcode == 3
    # A frame cut in its header waits for the rest.
    assert splitter.feed(b"\x82\x7e\x00") == [] and header_size(b"\x82\x7e\x00") is None
    assert header_size(b"\x82") is None
    assert [f.length for f in splitter.feed(b"\x01" + b"x")] == [1]


def test_summary_and_detail_lines() -> None:
    frame = FrameSplitter("recv").feed(encode_frame(Frame(Opcode.TEXT, b"x" * 70), KEY))[0]
    assert frame_summary(frame) == (
        "recv FIN=1 RSV=000 TEXT MASK=1 len=70 b'xxxxxxxxxxxxxxxx'..."
    )
    assert frame_detail(frame) == ["  header 81 c6  masking key 37 fa 21 3d"]
    detail = frame_detail(frame, wire_bytes=True)
    assert len(detail) == 1 + 4 + 1
    assert detail[1].startswith("  payload (masked) 4f 82 59 45 4f 82")
    assert detail[-1].endswith("... 6 more")
    empty = FrameSplitter("send").feed(b"\x8a\x00")[0]
    assert frame_detail(empty, wire_bytes=True) == ["  header 8a 00"]


# -- tapping connections --------------------------------------------------------------------


def test_echo_trace_shows_the_handshake_and_the_wire_bytes() -> None:
    trace = io.StringIO()

    async def scenario() -> None:
        server = await start_echo("127.0.0.1", 0, max_size=None, trace=trace, trace_level="bytes")
        async with server, connect(f"ws://127.0.0.1:{server.port}/x?a=1") as client:
            await client.send("Hello")
            assert await client.recv() == "Hello"
            noise = os.urandom(5000)  # not compressible: header and payload written apart
            await client.send(noise)
            assert await client.recv() == noise

    run(scenario())
    lines = [line.split(" ", 1)[1] for line in trace.getvalue().splitlines()]
    assert lines[0] == "recv GET /x?a=1 HTTP/1.1"
    assert "send HTTP/1.1 101 Switching Protocols" in lines
    assert any(line.startswith("send Sec-WebSocket-Accept: ") for line in lines)
    hello = lines.index("recv FIN=1 RSV=000 TEXT MASK=1 len=5 b'Hello'")
    assert re.fullmatch(r"  header 81 85  masking key( [0-9a-f]{2}){4}", lines[hello + 1])
    assert lines[hello + 2].startswith("  payload (masked) ")
    echoed = lines.index("send FIN=1 RSV=000 TEXT MASK=0 len=5 b'Hello'")
    assert lines[echoed + 1 : echoed + 3] == ["  header 81 05", "  payload 48 65 6c 6c 6f"]
    assert "send FIN=1 RSV=100 BINARY MASK=0" in "\n".join(lines)  # compressed echo


def test_take_over_heads_are_rebuilt_and_the_tap_sees_both_ways() -> None:
    seen: list[WireFrame] = []
    heads: list[bytes] = []

    async def handler(connection: Connection) -> None:
        assert connection.query == {"a": ["1", "2"]}  # parsed first: rebuilt from it
        heads.extend([request_head(connection), response_head(connection)])
        watcher = tap(connection, seen.append)
        with pytest.raises(RuntimeError, match="not tapped yet"):
            tap(connection, seen.append)
        with pytest.raises(ValueError, match="data frames only"):
            watcher.send_frames([Frame(Opcode.PING)])
        message = await connection.recv()
        watcher.send_frames(
            [Frame(Opcode.TEXT, b"a", fin=False), Frame(Opcode.CONTINUATION, b"b")]
        )
        await connection.send(message)
        # The transport's other methods reach the real one.
        assert connection.buffered_amount >= 0
        protocol = connection._transport.get_protocol()  # type: ignore[union-attr]
        protocol.pause_writing()
        protocol.resume_writing()
        await connection.close()
        with pytest.raises(RuntimeError, match="closing"):
            watcher.send_frames([Frame(Opcode.TEXT, b"late")])

    async def scenario() -> None:
        done = asyncio.get_running_loop().create_future()

        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode().split("\r\n")
            fields = [tuple(line.split(": ", 1)) for line in lines[1:] if line]
            connection = take_over(
                writer.transport,  # type: ignore[arg-type]
                "GET",
                lines[0].split()[1],
                fields,  # type: ignore[arg-type]
                handler,
                compression=None,
            )
            await connection.wait_closed()
            done.set_result(None)

        listener = await asyncio.start_server(accept, "127.0.0.1", 0)
        port = listener.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}/p?a=1&a=2", compression=None) as client:
            await client.send("hi")
            assert await client.recv() == "ab"
            assert await client.recv() == "hi"
            with pytest.raises(ConnectionClosedOK):
                await client.recv()
        await done
        listener.close()

    run(scenario())
    request, response = heads
    assert request.startswith(b"GET /p?a=1&a=2 HTTP/1.1\r\nHost: 127.0.0.1:")
    assert response.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert [(f.direction, f.opcode_name, f.fin) for f in seen] == [
        ("recv", "TEXT", True),
        ("send", "TEXT", False),
        ("send", "CONTINUATION", True),
        ("send", "TEXT", True),
        ("send", "CLOSE", True),
        ("recv", "CLOSE", True),
    ]


def test_a_client_tap_masks_the_frames_it_sends_and_a_failing_observer_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    received: list[str | bytes] = []
    seen: list[WireFrame] = []

    async def collect(connection: Connection) -> None:
        async for message in connection:
            received.append(message)

    def observer(frame: WireFrame) -> None:
        seen.append(frame)
        raise RuntimeError("observer bug")

    async def scenario() -> None:
        async with serve(collect, "127.0.0.1", 0) as server:
            client = await connect(f"ws://127.0.0.1:{server.port}/")
            watcher = tap(client, observer)
            watcher.send_frames([Frame(Opcode.BINARY, b"12", fin=False)])
            watcher.send_frames([Frame(Opcode.CONTINUATION, b"34")])
            await client.close()

    with caplog.at_level(logging.ERROR, "fastim.ws"):
        run(scenario())
    assert received == [b"1234"]
    assert [f.masked for f in seen[:2]] == [True, True]
    assert seen[0].payload == b"12" and seen[0].mask is not None
    assert "frame observer failed" in caplog.text


def test_tap_needs_an_open_connection() -> None:
    async def scenario() -> None:
        async with serve(lambda c: c.wait_closed(), "127.0.0.1", 0) as server:
            client = await connect(f"ws://127.0.0.1:{server.port}/")
            await client.close()
            client._transport = None
            with pytest.raises(RuntimeError, match="open connection"):
                tap(client, print)

    run(scenario())


# -- the interactive client -----------------------------------------------------------------


async def _echo(connection: Connection) -> None:
    async for message in connection:
        await connection.send(message)


def client_session(lines: str, handler=_echo, **options: object) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    out = io.StringIO()

    async def scenario() -> int:
        async with serve(handler, "127.0.0.1", 0, ping_interval=None) as server:
            return await console.run_client(
                f"ws://127.0.0.1:{server.port}/", io.StringIO(lines), out, **options  # type: ignore[arg-type]
            )

    return run(scenario()), out.getvalue()


def test_client_commands() -> None:
    status, out = client_session(
        "hello\n/ping are you there\n/ping\n/binary 00 ff\n/binary zz\n/close abc\n"
        "/help\n/nonsense\n/close 4000 bye\nnever sent\n",
        trace_level="bytes",
    )
    assert status == 1  # 4000 is not a normal closure
    assert "message: 'hello'" in out and "message: b'\\x00\\xff'" in out
    assert "send FIN=1 RSV=000 PING MASK=1 len=13 b'are you there'" in out
    assert "recv FIN=1 RSV=000 PONG MASK=0 len=13 b'are you there'" in out
    assert "/binary: not a hex digit: 'z'" in out
    assert "/close: invalid literal" in out
    assert out.count(console.HELP) == 3  # at the start, /help, /nonsense
    assert "send FIN=1 RSV=000 CLOSE MASK=1 len=5 b'\\x0f\\xa0bye'" in out
    assert "closed: 4000 ''" in out  # the server's answer echoes the code, not the reason
    assert "never sent" not in out.replace("message: 'never sent'", "")


def test_client_closes_at_the_end_of_its_input() -> None:
    status, out = client_session("hi\n", compression=None)
    assert status == 0 and out.rstrip().endswith("closed: 1000 ''")
    assert "permessage-deflate" not in out


def test_client_ends_when_the_server_closes() -> None:
    async def goodbye(connection: Connection) -> None:
        await connection.close(1001, "going")

    class Silent(io.StringIO):
        def readline(self, size: int | None = -1) -> str:
            import time

            time.sleep(60)  # the user types nothing (a daemon thread: no wait at exit)
            return ""  # pragma: no cover

    out = io.StringIO()

    async def scenario() -> int:
        async with serve(goodbye, "127.0.0.1", 0) as server:
            return await console.run_client(f"ws://127.0.0.1:{server.port}/", Silent(), out)

    assert run(scenario()) == 1
    assert "closed: 1001 'going'" in out.getvalue()


def test_client_stops_when_sending_finds_the_connection_closed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def closed(*args: object) -> bool:
        raise ConnectionClosed(1006, "")

    monkeypatch.setattr(console, "run_command", closed)
    status, out = client_session("hi\n")
    assert "closed: 1000" in out and status == 0


def test_python_m_fastim_ws_client(tmp_path: Path) -> None:
    server = subprocess.Popen(
        [sys.executable, "-m", "fastim.ws", "echo", "--port", "0", "--trace"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert server.stderr is not None
        port = server.stderr.readline().rstrip().rsplit(":", 1)[1]
        done = subprocess.run(
            [sys.executable, "-m", "fastim.ws", "client", f"ws://127.0.0.1:{port}/",
             "--no-compression"],
            cwd=ROOT,
            input="hello\n/close 1000 bye\n",
            capture_output=True,
            text=True,
            timeout=30,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
    finally:
        server.terminate()
        server.communicate(timeout=10)
    assert done.returncode == 0, done.stderr
    # The echo may come after the close was sent, when the client drops messages: its
    # frame is in the trace either way.
    assert "recv FIN=1 RSV=000 TEXT MASK=0 len=5 b'hello'" in done.stdout
    assert "closed: 1000 ''" in done.stdout


def test_main_client_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[object, ...]] = []

    async def fake(url: str, stream: object, out: object, **options: object) -> int:
        calls.append((url, options))
        return 0

    monkeypatch.setattr("fastim.ws.__main__.run_client", fake)
    assert main(["client", "ws://h/", "--trace=bytes", "--no-compression"]) == 0
    assert calls == [("ws://h/", {"trace_level": "bytes", "compression": None})]

    async def interrupted(*args: object, **options: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr("fastim.ws.__main__.run_client", interrupted)
    assert main(["client", "ws://h/"]) == 1



def test_fragments_sent_by_a_tapped_client_reach_a_reader_that_comes_late() -> None:
    # The server's handler starts reading after the first fragment came: the message is
    # half there, so it waits for the rest (Connection.__anext__).
    received: list[str | bytes] = []

    async def late_reader(connection: Connection) -> None:
        await asyncio.sleep(0.2)
        async for message in connection:
            received.append(message)

    async def scenario() -> None:
        async with serve(late_reader, "127.0.0.1", 0) as server:
            client = await connect(f"ws://127.0.0.1:{server.port}/", compression=None)
            watcher = tap(client, lambda frame: None)
            watcher.send_frames([Frame(Opcode.TEXT, b"half", fin=False)])
            await asyncio.sleep(0.4)
            watcher.send_frames([Frame(Opcode.CONTINUATION, b" and half")])
            await client.close()

    run(scenario())
    assert received == ["half and half"]

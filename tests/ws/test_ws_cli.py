"""python -m fastim.ws: accept-key, and the echo server with --trace."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from test_ws_asyncio import RawClient, close_payload, frame, run
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import WebSocketException
from websockets.sync.client import connect as sync_connect

from fastim.ws.__main__ import main, start_echo
from fastim.ws.frames import Frame, Opcode

ROOT = Path(__file__).resolve().parents[2]


def test_accept_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["accept-key", "dGhlIHNhbXBsZSBub25jZQ=="]) == 0
    assert capsys.readouterr().out == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\n"


def test_a_command_is_required() -> None:
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2


def test_echo_keeps_text_as_text_and_traces_every_frame() -> None:
    trace = io.StringIO()

    async def scenario() -> None:
        server = await start_echo("127.0.0.1", 0, max_size=100, trace=trace)
        async with server:
            async with ws_connect(f"ws://127.0.0.1:{server.port}", compression=None) as client:
                await client.send("Hello")
                assert await client.recv() == "Hello"
                await client.send(b"\x00\x01")
                assert await client.recv() == b"\x00\x01"
                await client.send(["frag", "ment"])
                assert await client.recv() == "fragment"
            # --max-size applies.
            raw = await RawClient.open(server.port)
            raw.send(frame(Opcode.BINARY, bytes(101))[:8])
            assert (await raw.frames_until_close())[1] == 1009

    run(scenario())
    lines = trace.getvalue().splitlines()
    assert any(" recv FIN=1 RSV=000 TEXT MASK=1 len=5 b'Hello'" in line for line in lines)
    assert any(" send FIN=1 RSV=000 TEXT MASK=0 len=5 b'Hello'" in line for line in lines)
    assert any(" recv FIN=0 RSV=000 TEXT MASK=1 len=4 b'frag'" in line for line in lines)
    assert any(" recv FIN=0 RSV=000 CONTINUATION MASK=1 len=4 b'ment'" in line for line in lines)
    assert any(
        " send FIN=1 RSV=000 CLOSE MASK=0 len=17 b'\\x03\\xf1message too bi'..." in line
        for line in lines
    )
    assert all(line.startswith("127.0.0.1:") for line in lines)


def test_trace_shortens_long_payloads() -> None:
    trace = io.StringIO()

    async def scenario() -> None:
        server = await start_echo("127.0.0.1", 0, max_size=None, trace=trace)
        async with server:
            raw = await RawClient.open(server.port)
            raw.send(frame(Opcode.BINARY, b"0123456789abcdefXYZ"))
            assert await raw.read_frame() == Frame(Opcode.BINARY, b"0123456789abcdefXYZ")
            raw.send(frame(Opcode.CLOSE, close_payload(1000)))
            assert (await raw.frames_until_close())[1] == 1000

    run(scenario())
    assert "len=19 b'0123456789abcdef'..." in trace.getvalue()


def test_main_echo_serves_until_interrupted() -> None:
    # In-process, so that coverage sees it: a thread talks to the server, then sends the
    # SIGINT a user's Ctrl-C would, and main() returns 0.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    answers: list[str] = []

    def client() -> None:
        # The SIGINT is sent whatever happened here: without it main() would serve
        # forever (a handshake cut short on a loaded machine is not an OSError).
        try:
            for _ in range(200):
                try:
                    with sync_connect(f"ws://127.0.0.1:{port}", open_timeout=5) as ws:
                        ws.send("interrupt me")
                        answers.append(str(ws.recv(timeout=5)))
                        break
                except (OSError, WebSocketException):
                    time.sleep(0.02)
        finally:
            os.kill(os.getpid(), signal.SIGINT)
            # Python runs the handler when the main thread next runs Python code: a
            # connection makes the idle loop do so (in the whole suite, with coverage,
            # the loop was once left asleep in epoll with the signal pending).
            for _ in range(100):
                if returned.is_set():
                    break
                with contextlib.suppress(OSError):
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                time.sleep(0.05)

    # As a fresh process has it, whatever an earlier test's loop left behind: Ctrl-C
    # raises KeyboardInterrupt, and no stale wakeup fd swallows the signal.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.set_wakeup_fd(-1)
    returned = threading.Event()
    thread = threading.Thread(target=client)
    thread.start()
    try:
        assert main(["echo", "--port", str(port), "--ping-interval", "0"]) == 0
    finally:
        returned.set()
        thread.join(10)
    assert answers == ["interrupt me"]


def test_python_m_fastim_ws_echo_runs() -> None:
    # The real command, as the Autobahn run uses it: it prints where it listens.
    process = subprocess.Popen(
        [sys.executable, "-m", "fastim.ws", "echo", "--port", "0", "--max-size", "16777216"],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        assert line.startswith("echo server listening on ws://127.0.0.1:")
        port = int(line.rsplit(":", 1)[1])

        async def scenario() -> None:
            async with ws_connect(f"ws://127.0.0.1:{port}", max_size=None) as client:
                await client.send("über")
                assert await client.recv() == "über"

        asyncio.run(asyncio.wait_for(scenario(), 10))
    finally:
        process.terminate()
        process.wait(10)
        if process.stderr is not None:
            process.stderr.close()


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")  # pragma: no cover


def test_python_m_fastim_ws_echo_holds_a_ping_flood_bounded() -> None:
    # The echo command is a library user like any other; 600,000 masked
    # 125-byte pings from a client that never reads must not grow the server's memory.
    from test_ws_asyncio import FLOOD_PINGS, _flood

    process = subprocess.Popen(
        [sys.executable, "-m", "fastim.ws", "echo", "--port", "0", "--ping-interval", "0"],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert process.stderr is not None
        port = int(process.stderr.readline().rsplit(":", 1)[1])
        before = _rss_kib(process.pid)
        sent = _flood(port, frame(Opcode.PING, bytes(125)) * 1000, FLOOD_PINGS // 1000)
        grown = _rss_kib(process.pid) - before
        assert sent > 0
        assert grown < 16 * 1024, f"RSS grew by {grown} KiB after {sent * 1000} pings"
    finally:
        process.terminate()
        process.wait(10)

"""A client that sends and never reads cannot make the HTTP server queue answers without
limit (docs/http.md): pipelined requests wait while the write buffer is above its high-water
mark, and a peer that reads nothing for `write_timeout` seconds is cut off.

Each test measures the server's own transport write buffer (what the process holds in
memory for the connection) while a non-reading client on loopback pushes for a bounded
time, and checks it against the documented bound (docs/http.md, "Backpressure")."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from http_support import SAFETY_TIMEOUT, ServerThread, request

from fastim.http import HTTPError, Limits, Request, Response, Router, json_response
from fastim.http.server import HTTPProtocol, Server

#: The transport's high-water mark (asyncio's and uvloop's default, which the HTTP
#: server keeps) plus the one answer written before the mark is noticed: the documented
#: bound on what one HTTP connection holds unsent. The answers here are well under 1 KiB.
HIGH_WATER = 64 * 1024
BOUND = HIGH_WATER + 1024
#: How long each flood pushes at most (not an assertion: the bound must hold throughout).
PUSH_SECONDS = 0.8
#: Samples in a row (2 ms apart) with the server no longer reading the flood that end a
#: flood test before PUSH_SECONDS: the state a non-reading peer leaves it in for good.
SETTLED = 50


def make_router() -> Router:
    router = Router()

    @router.get("/")
    async def index(request: Request) -> Response:
        return json_response({"hello": "world"})

    @router.post("/echo")
    async def echo(request: Request) -> Response:
        return Response(request.body, content_type="application/octet-stream")

    async def refuse(request: Request) -> Sequence[tuple[str, str]]:
        raise HTTPError(401, "token missing or invalid", [("WWW-Authenticate", "Bearer")])

    async def chat(connection, request: Request) -> None:  # type: ignore[no-untyped-def]
        async for message in connection:
            await connection.send(message)

    router.websocket("/chat", chat, before_upgrade=refuse)
    router.websocket("/echo-ws", chat)
    return router


class Watched:
    """Records the transport of every HTTP connection and samples, on the server's loop,
    the largest write buffer any of them held."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.transports: list[Any] = []
        self.peak = 0
        original = HTTPProtocol.connection_made
        transports = self.transports

        def connection_made(protocol: HTTPProtocol, transport: Any) -> None:
            transports.append(transport)
            original(protocol, transport)

        monkeypatch.setattr(HTTPProtocol, "connection_made", connection_made)

    async def sample(self, seconds: float, pushed: threading.Event | None = None) -> int:
        """Sample for `seconds` at most; with `pushed`, stop early once the client is done
        pushing and the server has let go of every connection or stopped reading it for
        SETTLED samples in a row: the peer reads nothing, so nothing moves after that."""
        end = time.monotonic() + seconds
        still = 0
        while time.monotonic() < end:
            for transport in self.transports:
                self.peak = max(self.peak, transport.get_write_buffer_size())
            if pushed is not None and pushed.is_set() and self.transports and all(
                    t.is_closing() or not t.is_reading() for t in self.transports):
                still += 1
                if still >= SETTLED:
                    break
            else:
                still = 0
            await asyncio.sleep(0.002)
        return self.peak


@pytest.fixture(params=["asyncio", "uvloop"])
def loop_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def watched(monkeypatch: pytest.MonkeyPatch) -> Watched:
    return Watched(monkeypatch)


def non_reader(port: int) -> socket.socket:
    """A client socket with a small receive buffer that will never be read."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    return sock


def push(sock: socket.socket, unit: bytes, seconds: float, most: int = 60000) -> int:
    """Send `unit` up to `most` times, or until `seconds` have passed; never read.
    Returns how many whole units went out."""
    data = memoryview(unit * most)
    sent = 0
    end = time.monotonic() + seconds
    while sent < len(data) and time.monotonic() < end:
        try:
            sent += sock.send(data[sent:])
        except BlockingIOError:
            time.sleep(0.01)  # the server stopped reading: exactly what should happen
        except (ConnectionResetError, BrokenPipeError):
            break
    return sent // len(unit)


def upgrade(target: str, version: str = "13") -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return request("GET", target, headers=[
        ("Upgrade", "websocket"), ("Connection", "Upgrade"),
        ("Sec-WebSocket-Version", version), ("Sec-WebSocket-Key", key)])


# Each reply the server makes to a client that keeps sending: an ordinary answer, an
# error answer on a kept-alive connection (404, a refused upgrade, a handshake fastim.ws
# refuses), a parser's 400 (then the connection is closed), a 100 Continue with its
# answer, and a 101 (once: what follows is WebSocket, not HTTP).
FLOODS = {
    "200": request("GET", "/"),
    "404": request("GET", "/nowhere"),
    "HEAD": request("HEAD", "/"),
    "401 refused upgrade": upgrade("/chat"),
    "426 bad handshake": upgrade("/echo-ws", version="8"),
    "400 bad request": b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    "100 Continue": request("POST", "/echo", b"hi", headers=[("Expect", "100-continue")]),
    "101": upgrade("/echo-ws"),
}


@pytest.mark.parametrize("flood", list(FLOODS))
def test_a_client_that_never_reads_cannot_grow_the_servers_write_buffer(
    loop_kind: str, watched: Watched, flood: str
) -> None:
    unit = FLOODS[flood]
    pushed = threading.Event()
    with ServerThread(make_router(), loop_kind) as thread:
        sampler = asyncio.run_coroutine_threadsafe(
            watched.sample(PUSH_SECONDS + 0.3, pushed), thread.loop)
        with non_reader(thread.port) as sock:
            sent = push(sock, unit, PUSH_SECONDS)
            pushed.set()
            peak = sampler.result(SAFETY_TIMEOUT)
        assert sent > 0
        assert peak <= BOUND, f"{flood}: {peak} bytes queued after {sent} requests"


def test_the_plain_get_flood_of_the_attack_stays_bounded(watched: Watched) -> None:
    """The attack as found: GET /chat twenty thousand times on one connection."""
    pushed = threading.Event()
    with ServerThread(make_router()) as thread:
        sampler = asyncio.run_coroutine_threadsafe(
            watched.sample(PUSH_SECONDS + 0.3, pushed), thread.loop)
        with non_reader(thread.port) as sock:
            push(sock, b"GET /chat HTTP/1.1\r\nHost: x\r\n\r\n", PUSH_SECONDS)
            pushed.set()
            assert sampler.result(SAFETY_TIMEOUT) <= BOUND


def wait_for_connections(thread: ServerThread, count: int, seconds: float) -> bool:
    """Whether the server holds `count` HTTP connections within `seconds`."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if len(thread.server.connections) == count:
            return True
        time.sleep(0.02)
    return False


def test_a_peer_that_reads_nothing_is_cut_off_after_the_write_timeout(loop_kind: str) -> None:
    limits = Limits(write_timeout=0.5, keep_alive_timeout=60)
    with ServerThread(make_router(), loop_kind, limits=limits) as thread, \
            non_reader(thread.port) as sock:
        assert wait_for_connections(thread, 1, SAFETY_TIMEOUT)
        push(sock, FLOODS["200"], 1.0)
        # Open, unread, for far longer than the write timeout: the server lets go.
        assert wait_for_connections(thread, 0, SAFETY_TIMEOUT)


class StuckTransport(asyncio.Transport):
    """A transport whose peer reads nothing: close() waits for a flush that never comes."""

    def __init__(self) -> None:
        super().__init__()
        self.closing = False
        self.aborted = asyncio.get_running_loop().create_future()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 1) if name == "peername" else default

    def write(self, data: Any) -> None:
        pass

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 10_000

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True
        if not self.aborted.done():
            self.aborted.set_result(None)


def test_closing_with_unsent_bytes_is_cut_after_the_write_timeout() -> None:
    """After an error answer (and its linger) or an answer with Connection: close, a
    close() still has bytes to flush; a peer that never reads them must not keep the
    connection for ever."""
    async def scenario() -> None:
        server = Server(make_router(), limits=Limits(write_timeout=0.2, linger_timeout=0.1))
        protocol = HTTPProtocol(server)
        transport = StuckTransport()
        protocol.connection_made(transport)
        protocol.data_received(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")  # 400
        await asyncio.wait_for(transport.aborted, SAFETY_TIMEOUT)

    asyncio.run(scenario())


def test_a_slow_but_steady_reader_gets_every_answer(loop_kind: str) -> None:
    """The control: backpressure delays a reader that keeps up; it loses nothing."""
    count = 3000
    body = b"x" * 1000
    answer_head = b"HTTP/1.1 200 OK\r\n"

    async def client(port: int) -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)

        async def send() -> None:
            for _ in range(count):
                writer.write(request("POST", "/echo", body))
                await writer.drain()

        sending = asyncio.create_task(send())
        answers = 0
        while answers < count:
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(answer_head), head
            assert await reader.readexactly(len(body)) == body
            answers += 1
            if answers % 100 == 0:
                await asyncio.sleep(0.01)  # slow, but never stopping
        await sending
        writer.close()
        return answers

    with ServerThread(make_router(), loop_kind, limits=Limits(write_timeout=2.0)) as thread:
        assert asyncio.run(asyncio.wait_for(client(thread.port), SAFETY_TIMEOUT)) == count


@pytest.fixture
def big_file(tmp_path: Any) -> Iterator[Any]:
    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(1024 * 1024) * 8)
    yield tmp_path


def test_a_file_download_nobody_reads_is_cut_off_after_the_write_timeout(
    big_file: Any, loop_kind: str
) -> None:
    router = Router()
    router.static("/files/", big_file)
    limits = Limits(write_timeout=0.5)
    with ServerThread(router, loop_kind, limits=limits) as thread, \
            non_reader(thread.port) as sock:
        assert wait_for_connections(thread, 1, SAFETY_TIMEOUT)
        push(sock, request("GET", "/files/big.bin"), 0.2, most=1)
        assert wait_for_connections(thread, 0, SAFETY_TIMEOUT)

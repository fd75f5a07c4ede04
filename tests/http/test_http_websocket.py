"""WebSocket routes on the same port as REST: the upgrade goes through fastim.http's
parser and router, the pre-upgrade check, then fastim.ws.server.take_over.

The client is the independent `websockets` library, so both ends are real."""

from __future__ import annotations

import asyncio
import base64
import os
import struct
import threading
from collections.abc import Iterator, Sequence

import pytest
from http_support import SAFETY_TIMEOUT, Client, ServerThread, exchange, request
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from fastim.http import HTTPError, Request, Response, Router, json_response

ORIGIN = "http://app.test"


def make_router() -> Router:
    router = Router()

    @router.get("/api")
    async def api(request: Request) -> Response:
        return json_response("rest")

    @router.get("/chat")
    async def chat_page(request: Request) -> Response:
        return Response("<p>chat page</p>", content_type="text/html")

    async def check(request: Request) -> Sequence[tuple[str, str]]:
        token = request.query.get("token", [""])[0]
        if token != "good":
            raise HTTPError(401, "token missing or invalid", [("WWW-Authenticate", "Bearer")])
        if request.headers.get("origin") != ORIGIN:
            raise HTTPError(403, "origin not allowed")
        request.state.user = "ann"
        return [("Set-Cookie", "fastim_token=good; Path=/; HttpOnly")]

    async def chat(connection, request: Request) -> None:  # type: ignore[no-untyped-def]
        async for message in connection:
            await connection.send(f"{request.state.user}: {message}")

    router.websocket("/chat", chat, before_upgrade=check)

    async def room(connection, request: Request) -> None:  # type: ignore[no-untyped-def]
        await connection.send(f"room {request.path_params['rid']} {connection.path}")
        async for message in connection:
            await connection.send(message)

    router.websocket("/room/{rid}", room)
    return router


@pytest.fixture(params=["asyncio", "uvloop"])
def server(request: pytest.FixtureRequest) -> Iterator[ServerThread]:
    with ServerThread(make_router(), request.param) as thread:
        yield thread


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(asyncio.wait_for(coro, SAFETY_TIMEOUT))


def test_rest_and_websocket_on_the_same_port(server: ServerThread) -> None:
    async def scenario() -> tuple[str, str, str | None]:
        url = f"ws://127.0.0.1:{server.port}/chat?token=good"
        async with connect(url, origin=ORIGIN) as ws:  # type: ignore[arg-type]
            await ws.send("hello")
            first = await ws.recv()
            await ws.send("again")
            second = await ws.recv()
            cookie = ws.response.headers.get("Set-Cookie") if ws.response else None
        return str(first), str(second), cookie

    assert exchange(server, request("GET", "/api")).status == 200
    first, second, cookie = run(scenario())
    assert (first, second) == ("ann: hello", "ann: again")
    assert cookie == "fastim_token=good; Path=/; HttpOnly"  # extra header on the 101
    # A plain GET on the same path is the page.
    page = exchange(server, request("GET", "/chat"))
    assert (page.status, page.body) == (200, b"<p>chat page</p>")


def test_path_parameters_reach_the_websocket_handler(server: ServerThread) -> None:
    async def scenario() -> str:
        async with connect(f"ws://127.0.0.1:{server.port}/room/42?x=1") as ws:
            return str(await ws.recv())

    assert run(scenario()) == "room 42 /room/42"


@pytest.mark.parametrize(("query", "origin", "status"), [
    ("", ORIGIN, 401),
    ("?token=bad", ORIGIN, 401),
    ("?token=good", "http://evil.test", 403),
])
def test_pre_upgrade_check_refuses_before_the_101(
    server: ServerThread, query: str, origin: str, status: int
) -> None:
    async def scenario() -> int:
        try:
            async with connect(f"ws://127.0.0.1:{server.port}/chat{query}",
                               origin=origin):  # type: ignore[arg-type]
                return 101
        except InvalidStatus as exc:
            return exc.response.status_code

    assert run(scenario()) == status


def upgrade_request(target: str, *, key: str | None = None, version: str = "13",
                    extra: list[tuple[str, str]] | None = None) -> bytes:
    headers = [("Upgrade", "websocket"), ("Connection", "Upgrade"),
               ("Sec-WebSocket-Version", version), ("Origin", ORIGIN)]
    if key is not False:
        headers.append(("Sec-WebSocket-Key", key or base64.b64encode(os.urandom(16)).decode()))
    return request("GET", target, headers=headers + (extra or []))


def test_refused_upgrade_keeps_the_connection_for_http(server: ServerThread) -> None:
    with server.connect() as sock:
        client = Client(sock)
        client.send(upgrade_request("/chat"))
        refused = client.read_response()
        assert refused.status == 401
        assert refused.header("www-authenticate") == "Bearer"
        client.send(request("GET", "/api"))
        assert client.read_response().status == 200


def test_invalid_handshakes_get_the_status_fastim_ws_chose(server: ServerThread) -> None:
    response = exchange(server, upgrade_request("/chat?token=good", version="8"))
    assert response.status == 426
    assert response.header("sec-websocket-version") == "13"
    response = exchange(server, upgrade_request("/chat?token=good", key="short"))
    assert response.status == 400


def test_upgrade_with_a_body_is_refused(server: ServerThread) -> None:
    data = upgrade_request("/room/1", extra=[("Content-Length", "2")]) + b"hi"
    assert exchange(server, data).status == 400


def test_an_http_1_0_upgrade_is_400(server: ServerThread) -> None:
    """RFC 6455 §4.1: the handshake is an HTTP/1.1 request (1.0 once got a 101)."""
    data = upgrade_request("/room/1").replace(b"HTTP/1.1", b"HTTP/1.0", 1)
    response = exchange(server, data)
    assert response.status == 400
    assert b"HTTP/1.1" in response.body
    assert exchange(server, upgrade_request("/room/1")).status == 101


def test_upgrade_header_on_a_plain_route_is_just_http(server: ServerThread) -> None:
    assert exchange(server, upgrade_request("/api")).status == 200


def masked_text_frame(text: str) -> bytes:
    payload = text.encode()
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return struct.pack("!BB", 0x81, 0x80 | len(payload)) + mask + masked


def test_frames_sent_with_the_upgrade_request_are_not_lost(server: ServerThread) -> None:
    with server.connect() as sock:
        client = Client(sock)
        # The request and the first frame arrive in one segment: the frame is in the
        # HTTP parser's buffer when the connection is handed over.
        client.send(upgrade_request("/room/7") + masked_text_frame("early"))
        response = client.read_response()
        assert response.status == 101
        frames = []
        while len(frames) < 2:
            while len(client.buffer) < 2 or len(client.buffer) < 2 + client.buffer[1]:
                assert client._fill()
            length = client.buffer[1]
            frames.append(client.buffer[2 : 2 + length])
            client.buffer = client.buffer[2 + length:]
        assert frames == [b"room 7 /room/7", b"early"]


def test_graceful_shutdown_closes_websockets_with_1001(server: ServerThread) -> None:
    async def scenario() -> int | None:
        async with connect(f"ws://127.0.0.1:{server.port}/room/1") as ws:
            await ws.recv()
            assert len(server.server.websockets) == 1
            shutdown = asyncio.wrap_future(
                asyncio.run_coroutine_threadsafe(server.server.shutdown(timeout=5), server.loop))
            try:
                await ws.recv()
            except ConnectionClosed as exc:
                await shutdown
                return exc.rcvd.code if exc.rcvd else None
            return None

    assert run(scenario()) == 1001


def test_an_upgrade_whose_check_ends_after_shutdown_began_is_503(loop_kind: str) -> None:
    """A reconnect storm reaches a node as it drains: an upgrade whose pre-upgrade check
    (a database read in the chat) was still running when the shutdown began gets 503,
    and the shutdown ends. Before, the WebSocket was opened after every WebSocket had
    been closed: nothing closed it, and on uvloop the server never finished closing."""
    entered = threading.Event()
    router = Router()

    async def handler(connection, request: Request) -> None:  # type: ignore[no-untyped-def]
        async for message in connection:
            await connection.send(message)

    with ServerThread(router, loop_kind) as thread:
        gate = asyncio.run_coroutine_threadsafe(make_event(), thread.loop).result(SAFETY_TIMEOUT)

        async def slow_check(request: Request) -> None:
            entered.set()
            await gate.wait()

        router.websocket("/late", handler, before_upgrade=slow_check)

        async def scenario() -> int:
            upgrade = asyncio.ensure_future(connect(f"ws://127.0.0.1:{thread.port}/late"))
            while not entered.is_set():
                await asyncio.sleep(0.01)
            shutdown = asyncio.wrap_future(asyncio.run_coroutine_threadsafe(
                thread.server.shutdown(timeout=SAFETY_TIMEOUT), thread.loop))
            while not thread.server.closing:
                await asyncio.sleep(0.01)
            thread.loop.call_soon_threadsafe(gate.set)
            try:
                ws = await upgrade
            except InvalidStatus as exc:
                await shutdown
                return exc.response.status_code
            await ws.close()
            return 101

        assert run(scenario()) == 503


async def make_event() -> asyncio.Event:
    return asyncio.Event()


@pytest.fixture(params=["asyncio", "uvloop"])
def loop_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)

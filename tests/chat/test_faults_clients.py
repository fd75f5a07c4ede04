"""A chat client vanishes half-way through a frame: its header announces 1 KiB, 100 bytes
of payload come, and then

* ``fin``: the client closes its socket (a FIN): TCP ended with no close frame, 1006
  (RFC 6455 §7.1.5), and the server closes its side at once;
* ``rst``: the client resets the connection (SO_LINGER 0): 1006 too;
* ``silent``: the client keeps the connection but never sends again and never reads (a
  half-open connection, as after a crash behind a NAT): the keepalive pings it, no pong
  can come inside its frame, and the ping timeout closes it with 1011
  (docs/library.md, "Heartbeats"; the library-level tests are tests/ws/test_faults_ws.py).

Each time the server frees the connection, the hub tells the user's friends that the
user went offline, and everybody else's conversation goes on. Half-open HTTP (a request
head never finished) is slowloris, tested by
tests/http/test_http_server.py::test_slowloris_dribbling_bytes_is_cut_off.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from pathlib import Path
from typing import Any

import pytest

from fastim.ws.frames import Frame, FrameDecoder, Opcode, encode_frame
from tests.chat_support import SAFETY, ChatClient, befriend
from tests.store_fixtures import ApiServer, api_config

KEY = "dGhlIHNhbXBsZSBub25jZQ=="
MASK = b"\x0a\x0b\x0c\x0d"


class RawChatClient:
    """A /chat client made of a plain socket, to stop at any byte of a frame."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.decoder = FrameDecoder(expect_masked=False)

    @classmethod
    async def open(cls, port: int, token: str) -> RawChatClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            (f"GET /chat?token={token} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
             "Upgrade: websocket\r\nConnection: Upgrade\r\n"
             f"Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), SAFETY)
        assert head.startswith(b"HTTP/1.1 101 "), head
        client = cls(reader, writer)
        presence = await client.read_frame()  # the hub's snapshot: live from here on
        assert presence is not None and b'"cmd":50' in presence.payload
        return client

    def send_half_a_frame(self) -> None:
        whole = encode_frame(Frame(Opcode.TEXT, b"x" * 1024), MASK)
        header = len(whole) - 1024
        assert struct.unpack("!H", whole[2:4]) == (1024,)  # the header says 1 KiB
        self.writer.write(whole[:header + 100])

    async def read_frame(self) -> Frame | None:
        """The next frame from the server, or None at EOF (or a reset)."""
        while (received := self.decoder.next_frame()) is None:
            try:
                data = await asyncio.wait_for(self.reader.read(65536), SAFETY)
            except ConnectionResetError:
                return None
            if not data:
                return None
            self.decoder.feed(data)
        return received

    def fin(self) -> None:
        self.writer.close()

    def rst(self) -> None:
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()


async def server_connections(api: ApiServer) -> set[Any]:
    """The server's open WebSocket connections (read on the server's own loop)."""

    async def snapshot() -> set[Any]:
        assert api.app.server is not None
        return set(api.app.server.websockets)

    return await asyncio.to_thread(api.call, snapshot())


@pytest.fixture
def api(tmp_path: Path) -> Any:
    with ApiServer(api_config(f"sqlite:///{tmp_path}/fastim.db", tmp_path)) as server:
        # /chat keeps the ws defaults (ping every 20 s, 20 s for the pong); shortened here
        # so that a half-open connection is found in well under a second.
        route, _ = server.app.router.resolve_websocket("/chat")
        route.options.update(ping_interval=0.2, ping_timeout=0.4, close_timeout=0.4)
        # Record the close code each connection has when the hub's handler returns: what
        # the app saw (the library then closes the connection on its own account).
        server.ended = {}
        chat = route.handler

        async def recording(connection: Any, request: Any) -> None:
            try:
                await chat(connection, request)
            finally:
                server.ended[connection] = connection.close_code

        route.handler = recording
        yield server


@pytest.mark.parametrize("how", ["fin", "rst", "silent"])
def test_a_client_vanishing_mid_frame_is_freed_and_its_friends_told(api: ApiServer,
                                                                     how: str) -> None:
    alice, alice_token = api.user_with_token()
    bob, bob_token = api.user_with_token()
    carol, carol_token = api.user_with_token()
    befriend(api, alice_token, bob, bob_token)
    befriend(api, carol_token, bob, bob_token)

    async def scenario() -> None:
        bob_chat = await ChatClient.open(api, bob_token)
        carol_chat = await ChatClient.open(api, carol_token)
        before = await server_connections(api)
        alice_raw = await RawChatClient.open(api.port, alice_token)
        (alices,) = await server_connections(api) - before
        await bob_chat.expect(lambda f: f == {"cmd": 50, "userid": alice["id"],
                                              "online": True})

        alice_raw.send_half_a_frame()
        if how == "fin":
            alice_raw.fin()
        elif how == "rst":
            alice_raw.rst()
        # silent: nothing more, and nothing read, until the server has let go

        went = await bob_chat.expect(lambda f: f.get("cmd") == 50
                                     and f.get("userid") == alice["id"])
        assert went == {"cmd": 50, "userid": alice["id"], "online": False}
        while alices in await server_connections(api):  # the handler has ended
            await asyncio.sleep(0.02)
        # RFC 6455 §7.1.5: TCP ended without a close frame, 1006 (never sent on the wire);
        # the keepalive's own close, 1011 (§7.4.1: an unexpected condition).
        assert api.ended[alices] == {"fin": 1006, "rst": 1006, "silent": 1011}[how]

        if how == "silent":
            # What the server sent while the client did not read: the keepalive ping it
            # could not answer, the close with 1011, then the end of TCP.
            ping = await alice_raw.read_frame()
            assert ping is not None and ping.opcode is Opcode.PING
            close = await alice_raw.read_frame()
            assert close is not None and close.opcode is Opcode.CLOSE
            assert struct.unpack("!H", close.payload[:2]) == (1011,)
            assert close.payload[2:] == b"keepalive ping timeout"
            assert await alice_raw.read_frame() is None
            alice_raw.fin()

        # Everybody else goes on: Carol and Bob talk, and Alice comes back.
        ack = await carol_chat.say(10, bob["id"], "still here?", "c1")
        assert ack["cmd"] == 1
        assert (await bob_chat.message())["id"] == ack["id"]
        alice_chat = await ChatClient.open(api, alice_token)
        back = await bob_chat.expect(lambda f: f.get("cmd") == 50
                                     and f.get("userid") == alice["id"])
        assert back["online"] is True
        ack = await alice_chat.say(10, bob["id"], "I'm back", "a1")
        assert ack["cmd"] == 1
        assert (await bob_chat.message())["content"] == "I'm back"
        for client in (alice_chat, bob_chat, carol_chat):
            await client.close()

    asyncio.run(scenario())

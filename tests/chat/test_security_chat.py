"""The chat's defences seen from the client's side of the wire (docs/security.md).

History and read marks of a group one left, read marks of a stranger's conversation, the
64 KiB frame limit of /chat, and the close code a slow reader receives.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct

import pytest

from fastim.handlers.chat import MAX_FRAME
from fastim.ws import ConnectionClosed
from tests.chat_support import ChatClient, befriend
from tests.store_fixtures import ApiServer


def test_a_member_who_left_keeps_what_they_could_read_and_nothing_after(
        api: ApiServer) -> None:
    owner, to = api.user_with_token(nickname="owner")
    member, tm = api.user_with_token(nickname="member")
    group = api.post("/contact/createcommunity", {"name": "was in it", "visibility": "public"},
                     token=to).data
    assert api.post("/contact/joincommunity", {"dstid": group["id"]}, token=tm).status == 200

    async def talk(cid: str) -> None:
        o = await ChatClient.open(api, to)
        assert (await o.say(11, group["id"], cid, cid))["cmd"] == 1
        await o.close()

    asyncio.run(talk("o1"))
    query = f"cmd=11&dstid={group['id']}"
    history = api.get(f"/chat/history?{query}", token=tm)
    assert history.status == 200 and [r["cid"] for r in history.list["rows"]] == ["o1"]
    assert api.get(f"/chat/reads?{query}", token=tm).status == 200
    assert api.post("/contact/leavecommunity", {"dstid": group["id"]}, token=tm).status == 200
    asyncio.run(talk("o2"))
    # Issue 17: a member who left keeps what they could read up to then, nothing after;
    # who read how far is for members only.
    kept = api.get(f"/chat/history?{query}", token=tm)
    assert kept.status == 200 and [r["cid"] for r in kept.list["rows"]] == ["o1"]
    assert kept.list["total"] == 1
    reply = api.get(f"/chat/reads?{query}", token=tm)
    assert reply.status == 403, reply.body
    assert "not a member" in reply.json["msg"]
    assert [r["cid"] for r in api.get(f"/chat/history?{query}", token=to).list["rows"]] == [
        "o2", "o1"]
    stranger, ts = api.user_with_token(nickname="stranger")
    assert api.get(f"/chat/history?{query}", token=ts).status == 403


def test_reads_of_a_conversation_of_strangers_are_403(api: ApiServer) -> None:
    alice, ta = api.user_with_token(nickname="alice")
    bob, tb = api.user_with_token(nickname="bob")
    stranger, ts = api.user_with_token(nickname="stranger")
    befriend(api, ta, bob, tb)
    group = api.post("/contact/createcommunity", {"name": "members only"}, token=ta).data
    assert api.get(f"/chat/reads?cmd=10&dstid={bob['id']}", token=ta).status == 200
    for query in (f"cmd=10&dstid={bob['id']}", f"cmd=10&dstid={alice['id']}",
                  f"cmd=11&dstid={group['id']}"):
        assert api.get(f"/chat/reads?{query}", token=ts).status == 403, query
    assert api.get(f"/chat/reads?cmd=10&dstid={bob['id']}").status == 401


def test_a_frame_over_64_kib_is_closed_with_1009_on_the_wire(api: ApiServer) -> None:
    alice, ta, = api.user_with_token(nickname="alice")

    async def scenario() -> None:
        client = await ChatClient.open(api, ta)
        # Exactly the limit: accepted and answered (the text itself is too long).
        head, tail = '{"cmd":10,"dstid":1,"media":1,"cid":"big","content":"', '"}'
        exact = head + "a" * (MAX_FRAME - len(head) - len(tail)) + tail
        assert len(exact.encode()) == MAX_FRAME
        await client.connection.send(exact)
        reply = await client.expect(lambda f: f.get("cid") == "big")
        assert (reply["cmd"], reply["error"]) == (2, "too_long")
        # One byte more: the server fails the connection with 1009 (RFC 6455 §7.4.1).
        await client.connection.send(" " + exact)
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await client.frame()
        assert closed.value.code == 1009

    asyncio.run(scenario())


def read_frames_until_close(sock: socket.socket) -> tuple[int, str, int]:
    """Read a server's frames (unmasked, no extensions) after the 101 until its close
    frame: (close code, reason, data frames seen before it)."""
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        assert chunk, "connection ended before the 101"
        buffer += chunk
    head, buffer = buffer.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 101")
    frames = 0
    while True:
        if len(buffer) >= 2:
            opcode, length = buffer[0] & 0x0F, buffer[1] & 0x7F
            start = 2
            if length == 126 and len(buffer) >= 4:
                length, start = struct.unpack("!H", buffer[2:4])[0], 4
            elif length == 127 and len(buffer) >= 10:
                length, start = struct.unpack("!Q", buffer[2:10])[0], 10
            if length < 126 and start + length <= len(buffer):
                payload = buffer[start:start + length]
                buffer = buffer[start + length:]
                if opcode == 0x8:
                    code = struct.unpack("!H", payload[:2])[0]
                    return code, payload[2:].decode(), frames
                frames += 1
                continue
            if length >= 126 and start > 2 and start + length <= len(buffer):
                buffer = buffer[start + length:]
                frames += 1
                continue
        chunk = sock.recv(1 << 20)
        assert chunk, "connection ended without a close frame"
        buffer += chunk


#: The outbound buffer of this module's `roomy_api` (tests/chat/conftest.py).
ROOMY_OUTBOUND_BUFFER = 64 * 1024


def test_the_slow_reader_receives_1008_on_the_wire(roomy_api: ApiServer) -> None:
    api = roomy_api
    owner, to = api.user_with_token()
    sleeper, tz = api.user_with_token()
    group = api.post("/contact/createcommunity", {"name": "a sleeper", "visibility": "public"}, token=to).data
    api.post("/contact/joincommunity", {"dstid": group["id"]}, token=tz)

    async def scenario() -> tuple[int, str, int]:
        raw = socket.socket()
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        raw.settimeout(10)
        raw.connect(("127.0.0.1", api.port))
        raw.sendall(
            f"GET /chat?token={tz} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode())
        o = await ChatClient.open(api, to)
        while not api.app.services.hub.is_online(sleeper["id"]):
            await asyncio.sleep(0.01)
        text = "字" * 3900  # ~12 KB a frame; 1,500 are far past the kernel's buffers
        for count in range(1500):
            assert (await o.say(11, group["id"], text, f"big{count}"))["cmd"] == 1
            if not api.app.services.hub.is_online(sleeper["id"]):
                break
        assert not api.app.services.hub.is_online(sleeper["id"])
        await o.close()
        # Now the sleeper wakes up and reads: every frame that was queued, then the close.
        try:
            return read_frames_until_close(raw)
        finally:
            raw.close()

    code, reason, frames = asyncio.run(scenario())
    assert code == 1008 and "too slow" in reason
    assert frames > 0


def test_the_frame_parser_of_these_tests_reads_what_it_is_given() -> None:
    # A tiny self-check of read_frames_until_close on a socket pair.
    left, right = socket.socketpair()
    with left, right:
        text = json.dumps({"cmd": 0}).encode()
        big = b"x" * 300
        close = struct.pack("!H", 1008) + b"too slow"
        left.sendall(b"HTTP/1.1 101 Switching Protocols\r\n\r\n"
                     + bytes([0x81, len(text)]) + text
                     + bytes([0x82, 126]) + struct.pack("!H", len(big)) + big
                     + bytes([0x88, len(close)]) + close)
        assert read_frames_until_close(right) == (1008, "too slow", 2)

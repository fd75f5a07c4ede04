"""A chat client for the tests: a real fastim.ws connection to a real server's /chat."""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Callable
from typing import Any

from fastim.ws import connect
from tests.store_fixtures import ApiServer, befriend_over

SAFETY = 10.0  # a safety net only: no test asserts on time


class ChatClient:
    """One device: sends JSON commands, collects what the server sends."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.unread: deque[dict[str, Any]] = deque()
        self.snapshot: dict[str, Any] = {}

    @classmethod
    async def open(cls, api: ApiServer | int, token: str, **options: Any) -> ChatClient:
        """Connect to a server (or a port) and wait for the presence snapshot: from then on
        the hub delivers to this device live (what came before it is for sync, as
        docs/chat-protocol.md says). The snapshot is kept in `snapshot`."""
        port = api if isinstance(api, int) else api.port
        connection = await connect(f"ws://127.0.0.1:{port}/chat?token={token}",
                                   ping_interval=None, **options)
        client = cls(connection)
        client.snapshot = await client.expect(lambda f: f.get("cmd") == 50 and "users" in f)
        return client

    async def send(self, **command: Any) -> None:
        await self.connection.send(json.dumps(command))

    async def frame(self) -> dict[str, Any]:
        """The next frame, in arrival order."""
        if self.unread:
            return self.unread.popleft()
        raw = await asyncio.wait_for(self.connection.recv(), SAFETY)
        return json.loads(raw)

    async def expect(self, test: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """The first frame that passes `test`; frames before it are kept for later."""
        skipped: list[dict[str, Any]] = []
        while True:
            frame = await self.frame()
            if test(frame):
                self.unread.extendleft(reversed(skipped))
                return frame
            skipped.append(frame)

    async def cmd(self, cmd: int) -> dict[str, Any]:
        return await self.expect(lambda f: f.get("cmd") == cmd and "id" not in f
                                 if cmd in (1, 2) else f.get("cmd") == cmd)

    async def message(self) -> dict[str, Any]:
        """The next delivered chat message (a frame with a server id and content)."""
        return await self.expect(lambda f: f.get("cmd") in (10, 11) and "id" in f)

    async def say(self, cmd: int, dstid: int, content: str, cid: str,
                  **extra: Any) -> dict[str, Any]:
        """Send a text message and return its ack (or error) frame."""
        await self.send(cmd=cmd, dstid=dstid, media=1, content=content, cid=cid, **extra)
        return await self.expect(lambda f: f.get("cmd") in (1, 2) and f.get("cid") == cid)

    async def no_more_messages(self) -> None:
        """Assert that no chat message is on its way: a heartbeat's answer comes first."""
        await self.send(cmd=0)
        while (frame := await self.frame())["cmd"] != 0:
            assert not (frame.get("cmd") in (10, 11) and "id" in frame), frame

    async def close(self) -> None:
        await self.connection.close()


def befriend(api: ApiServer, token: str, other: dict[str, Any], other_token: str) -> None:
    """The user of `token` and `other` (logged in with `other_token`) become friends: a
    request and its acceptance (`tests.store_fixtures.befriend_over`)."""
    me = api.get("/user/me", token=token).data
    befriend_over(api.post, token, me["id"], other_token, other["id"])

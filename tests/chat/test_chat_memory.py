"""A closed chat connection is freed when it ends, by reference counting, not left for
the cycle collector: with 2,000 connections the heap is big, full collections are rare,
and a closed connection's session, WebSocket and buffers (about 8 KiB) piled up between
them, growing the server's memory by megabytes a minute (docs/reliability.md, "Memory")."""

from __future__ import annotations

import asyncio
import gc
import time

from fastim.chat.session import ChatSession
from tests.chat_support import ChatClient
from tests.store_fixtures import ApiServer


def live_sessions() -> int:
    return sum(1 for o in gc.get_objects() if isinstance(o, ChatSession))


def test_a_closed_chat_connection_leaves_no_cycle(api: ApiServer) -> None:
    _, token = api.user_with_token(nickname="alice")

    async def scenario() -> None:
        for abort in (False, True):  # a close handshake, and a TCP reset without one
            client = await ChatClient.open(api, token)
            await client.send(cmd=0)
            await client.cmd(0)
            if abort:
                client.connection._transport.abort()
            else:
                await client.close()

    gc.collect()
    gc.disable()  # what is left now can only be freed by reference counting
    try:
        asyncio.run(scenario())
        # The server's handler ends a moment after the client's side: a safety net only.
        deadline = time.monotonic() + 10
        while live_sessions() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert live_sessions() == 0
    finally:
        gc.enable()

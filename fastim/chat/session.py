"""One device's WebSocket connection as the hub sees it.

Frames are written at once, without waiting: a fan-out must never wait for one slow
reader. The connection's own write buffer is the outbound queue, bounded in bytes: a
device whose buffer passes `max_buffer` has stopped reading, and is disconnected with
1008 (its messages stay stored for sync). Nobody else waits for it.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from typing import Any

from fastim.ws import ConnectionClosed

_ids = itertools.count(1)

#: The close code of a connection whose login token was revoked (logout, password change)
#: or has expired: log in again rather than reconnect. A private-use code (RFC 6455
#: §7.4.2, 4000-4999), so a client can tell it from 1008 "too slow / too fast".
TOKEN_REVOKED = 4001


class ChatSession:
    __slots__ = ("id", "user_id", "connection", "max_buffer", "closing", "on_close", "_closer",
                 "token_hash", "expires")

    def __init__(self, connection: Any, user_id: int, max_buffer: int, *, node: str = "",
                 on_close: Callable[[], None] | None = None,
                 token_hash: str = "", expires: float | None = None) -> None:
        self.id = f"{node}{next(_ids)}"
        self.user_id = user_id
        self.connection = connection
        self.max_buffer = max_buffer
        self.closing = False
        self.on_close = on_close  # leave the hub at once, not after the close handshake
        self._closer: asyncio.Task[None] | None = None
        # Which login opened this connection (the stored SHA-256 of its token) and when
        # that token expires (epoch seconds): revoking it closes the connection too.
        self.token_hash = token_hash
        self.expires = expires

    def push(self, frame: str) -> None:
        if self.closing:
            return
        try:
            self.connection.send_nowait(frame)
        except ConnectionClosed:
            self.closing = True
            return
        if self.connection.buffered_amount > self.max_buffer:
            self.close_for(1008, "too slow: the outbound queue is full")

    def close_for(self, code: int, reason: str) -> None:
        if self.closing:
            return
        self.closing = True
        if self.on_close is not None:
            self.on_close()
        self._closer = asyncio.get_running_loop().create_task(
            self.connection.close(code, reason))

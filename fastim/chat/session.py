"""One device's WebSocket connection as the hub sees it.

Frames are written at once, without waiting: a fan-out must never wait for one slow
reader. The connection's own write buffer is the outbound queue, bounded in bytes: a
device whose buffer passes `max_buffer` has stopped reading, and is disconnected with
1008 (its messages stay stored for sync). Nobody else waits for it.

Each stored message goes to a connection once. A message can reach a device by two
roads, live and in the reply to a sync the client sent around the same time, and the
bus may hand a node the same message twice (a republish after an outage). The session
remembers the ids it was sent, cheaply for the usual case: ids mostly arrive in
increasing order (the group commit delivers in id order, and the bus keeps one order per
publisher), so an id above the highest sent so far (`high`) is new without any lookup;
it is only appended to `recent`, the newest ids sent, which answers for the rest (an id
at or below `high`: a duplicate, an overlap with a sync, or another node's message
overtaken by a newer one). Only the newest are kept: the overlap is always among the
latest messages.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Iterable
from typing import Protocol, TypeVar

from fastim.ws import Connection, ConnectionClosed, PreparedFrame

_ids = itertools.count(1)

RECENT_IDS = 128  # ids kept to answer for duplicates: between this and twice as many
# The live ids above the client's sync cursor, which a later sync page may hold (the
# rest of a sync, or a checkpoint: docs/chat-protocol.md "The sync cursor"), are kept
# too, up to this many (8 KiB of list; a client that never syncs does not hold more).
SYNC_HOLD = 1024
# A fan-out looks at the connection's buffer once this many bytes were written since the
# last look, not at every frame: the bound is then passed by at most this much.
CHECK_EVERY = 16 * 1024

#: The close code of a connection whose login token was revoked (logout, password change)
#: or has expired: log in again rather than reconnect. A private-use code (RFC 6455
#: §7.4.2, 4000-4999), so a client can tell it from 1008 "too slow / too fast".
TOKEN_REVOKED = 4001


class Session(Protocol):
    """One device of a user: a WebSocket connection seen from the hub.

    Besides the methods the hub calls, it names the fields `fan_out` reads and writes
    directly: the fan-out runs once per recipient of every message, and doing there what
    `deliver()` does, without a method call, is much of its speed.
    """

    id: str
    user_id: int
    #: The stored SHA-256 of the login token that opened the connection ("" if none):
    #: revoking that token closes it (`Hub.revoke_tokens`).
    token_hash: str
    # Read and written by fan_out() in its loop:
    connection: Connection
    closing: bool
    high: int
    recent: list[int]
    trim_at: int
    unchecked: int
    max_buffer: int

    def push(self, frame: str) -> None: ...
    def close_for(self, code: int, reason: str) -> None: ...

    def first_send(self, message_id: int) -> bool:
        """Record that stored message `message_id` goes to this device live; False when it
        went already (each message once per connection)."""

    def first_sync(self, message_id: int) -> bool:
        """The same for a row of a sync page."""

    def sync_asked(self, since: int,
                   changes_since: int | None) -> tuple[frozenset[int], frozenset[int]]:
        """A sync page from `since` (and `changes_since`) was asked; returns the message
        ids and the change ids above them this connection was sent already."""

    def sync_paged(self, following: int, more: bool,
                   changes_following: int | None = None) -> None:
        """A sync page reaching `following` (and `changes_following`) went out; `more`:
        the client may page on."""

    def trim(self) -> None:
        """Forget the older ids of `recent` (called when it reaches `trim_at`)."""

    def deliver(self, frame: PreparedFrame, message_id: int | None) -> bool:
        """Write a fan-out's frame (unless `message_id` went already); False when the
        device is now too far behind: the hub then calls `too_slow()` after its loop."""

    def too_slow(self) -> None: ...


S = TypeVar("S", bound=Session)


class ChatSession:
    __slots__ = ("id", "user_id", "connection", "max_buffer", "closing", "on_close",
                 "high", "recent", "trim_at", "synced", "cursor", "change_cursor",
                 "unchecked", "_closer",
                 "token_hash", "expires")

    def __init__(self, connection: Connection, user_id: int, max_buffer: int, *,
                 node: str = "",
                 on_close: Callable[[], None] | None = None,
                 token_hash: str = "", expires: float | None = None) -> None:
        self.id = f"{node}{next(_ids)}"
        self.user_id = user_id
        self.connection = connection
        self.max_buffer = max_buffer
        self.closing = False
        self.on_close = on_close  # leave the hub at once, not after the close handshake
        self.high = 0  # the highest message id this connection has been sent
        self.recent: list[int] = []  # the newest ids it was sent live, in sending order
        self.trim_at = 2 * RECENT_IDS  # recent's length at which trim() is due
        self.synced: list[int] = []  # the newest ids it was sent in sync pages
        # The client's sync cursors as this connection knows them: the `next` and
        # `changes_next` of the last sync page it was sent (0 before any). The live ids
        # above them are kept (up to SYNC_HOLD): the client's next sync page holds them.
        self.cursor = 0
        self.change_cursor = 0
        self.unchecked = 0  # bytes deliver() wrote since it last looked at the buffer
        self._closer: asyncio.Task[None] | None = None
        # Which login opened this connection (the stored SHA-256 of its token) and when
        # that token expires (epoch seconds): revoking it closes the connection too.
        self.token_hash = token_hash
        self.expires = expires

    def first_send(self, message_id: int) -> bool:
        """Record that message `message_id` goes to this connection live; False when it
        was sent already, live or in a sync page (then it must not go again)."""
        if message_id > self.high:
            self.high = message_id
        elif message_id in self.recent or message_id in self.synced:
            return False
        recent = self.recent
        recent.append(message_id)
        if len(recent) >= self.trim_at:
            self.trim()
        return True

    def first_sync(self, message_id: int) -> bool:
        """Record that message `message_id` goes to this connection in a sync page; False
        when it was sent already. Sync rows are kept apart from the live ids, so that a
        page of old rows cannot push out the live ids a later page would repeat."""
        if message_id in self.recent or message_id in self.synced:
            return False
        if message_id > self.high:
            self.high = message_id  # a live copy that comes later is then looked up
        synced = self.synced
        synced.append(message_id)
        if len(synced) >= 2 * RECENT_IDS:
            del synced[:RECENT_IDS]
        return True

    def sync_asked(self, since: int,
                   changes_since: int | None) -> tuple[frozenset[int], frozenset[int]]:
        """The client asked for a sync page from `since` (and `changes_since`): keep the
        live ids above them until the page goes (it may hold them). Returns the message
        ids above `since`, and the change ids above `changes_since` (kept as negative
        ids), this connection was sent already: the page need not read them again."""
        self.cursor = min(self.cursor, since)
        if changes_since is not None:
            self.change_cursor = min(self.change_cursor, changes_since)
        held = [*self.recent, *self.synced]
        changes = frozenset() if changes_since is None else frozenset(
            -i for i in held if i < 0 and -i > changes_since)
        return frozenset(i for i in held if i > since), changes

    def sync_paged(self, following: int, more: bool,
                   changes_following: int | None = None) -> None:
        """A sync page went out: its rows reached `following` (its changes
        `changes_following`), the client's cursors now; `more`: it may page on."""
        self.cursor = following
        if changes_following is not None:
            self.change_cursor = changes_following
        if not more and len(self.recent) >= 2 * RECENT_IDS:
            self.trim()

    def trim(self) -> None:
        """Forget all but the newest RECENT_IDS live ids, except those above the
        client's cursors (up to SYNC_HOLD): its next sync page may hold them."""
        recent = self.recent
        older = len(recent) - RECENT_IDS
        if len(recent) < SYNC_HOLD:
            cursor, changes = self.cursor, -self.change_cursor
            recent[:older] = [i for i in recent[:older] if i > cursor or i < changes]
            self.trim_at = max(2 * RECENT_IDS, len(recent) + RECENT_IDS)
        else:
            del recent[:older]
            self.trim_at = 2 * RECENT_IDS

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

    def deliver(self, frame: PreparedFrame, message_id: int | None) -> bool:
        """One delivery of a fan-out: the frame prepared once for all recipients, written
        unless this connection has had `message_id` already. Returns False when the
        connection is now over `max_buffer`: the caller closes it with `too_slow()` once
        its loop is done (closing leaves the hub, which changes what the loop walks)."""
        return not fan_out((self,), frame, None, message_id)

    def too_slow(self) -> None:
        self.close_for(1008, "too slow: the outbound queue is full")

    def close_for(self, code: int, reason: str) -> None:
        if self.closing:
            return
        self.closing = True
        if self.on_close is not None:
            self.on_close()
        self._closer = asyncio.get_running_loop().create_task(
            self.connection.close(code, reason))


def fan_out(sessions: Iterable[S], frame: PreparedFrame, skip_session: str | None,
            message_id: int | None) -> list[S]:
    """`deliver()` of one fan-out to each of `sessions` but the one `skip_session` names,
    in one loop with first_send()'s usual case written out: this runs once per recipient
    of every message, and a method call and its attribute lookups are much of its cost.
    Returns the sessions now over their `max_buffer`, for the caller to close once its
    loop is done."""
    slow: list[S] = []
    size = len(frame.data)
    for session in sessions:
        if session.closing or session.id == skip_session:
            continue
        if message_id is not None:
            # The usual case: the newest id this connection has been sent (first_send()).
            if message_id > session.high:
                session.high = message_id
                recent = session.recent
                recent.append(message_id)
                if len(recent) >= session.trim_at:
                    session.trim()
            elif not session.first_send(message_id):
                continue
        connection = session.connection
        try:
            connection.send_prepared(frame)
        except ConnectionClosed:
            session.closing = True
            continue
        unchecked = session.unchecked + size
        if unchecked < CHECK_EVERY:
            session.unchecked = unchecked
            continue
        session.unchecked = 0
        if connection.buffered_amount > session.max_buffer:
            slow.append(session)
    return slow

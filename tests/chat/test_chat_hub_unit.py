"""The hub on its own: an in-memory store and the in-process bus, real WebSocket
connections on loopback, no database. Fast checks of the hub's rules; the end-to-end ones,
through the app and both databases, are in test_chat_hub.py."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from typing import Any

from fastim.bus.events import MemberLeft
from fastim.bus.local import LocalBus
from fastim.chat.hub import Hub, NewMessage
from fastim.chat.session import ChatSession
from fastim.store.errors import StoreError
from fastim.store.messages import StoredMessage, SyncPage
from fastim.ws import connect, serve

SAFETY_TIMEOUT = 20.0  # a hung test fails instead of hanging; never asserted on


class MemoryChatStore:
    """What the hub asks of its store (`fastim.chat.hub.ChatStore`), kept in lists."""

    def __init__(self, friends: dict[int, set[int]], groups: dict[int, set[int]]) -> None:
        self.friends = friends
        self.groups = groups  # user -> groups
        self.rows: list[NewMessage] = []
        self.by_cid: dict[tuple[int, str], StoredMessage] = {}

    async def friends_of(self, user_id: int) -> set[int]:
        return set(self.friends.get(user_id, ()))

    async def group_windows(self, user_id: int) -> dict[int, int]:
        return dict.fromkeys(self.groups.get(user_id, ()), 0)

    async def insert_messages(self, batch: Sequence[NewMessage]) -> list[StoredMessage]:
        stored = []
        for item in batch:
            key = (item.sender, item.message.cid or f"#{len(self.rows)}")
            if key in self.by_cid:
                old = self.by_cid[key]
                stored.append(StoredMessage(old.id, old.ts, created=False))
                continue
            self.rows.append(item)
            self.by_cid[key] = StoredMessage(len(self.rows), item.ts, created=True)
            stored.append(self.by_cid[key])
        return stored

    async def sync_page(self, user_id: int, groups: Sequence[int], since: int, limit: int,
                        sent: frozenset[int]) -> SyncPage:
        return SyncPage([], since, False, 0 if since == 0 else None)

    async def mark_read(self, user_id: int, conv: str, upto: int) -> int:
        return upto


async def chat_of(store: MemoryChatStore, users: Sequence[int],
                  script: Any) -> dict[int, list[dict[str, Any]]]:
    """Connect each user through a real server whose handler joins the hub, run `script`
    with the clients, and return every frame each user received."""
    hub = Hub(store, bus=LocalBus())
    hub.start()
    joined: dict[int, asyncio.Event] = {user: asyncio.Event() for user in users}

    async def handler(ws: Any) -> None:
        user = int(ws.path.rpartition("/")[2])
        session = ChatSession(ws, user_id=user, max_buffer=1 << 20)
        await hub.connect(session)
        joined[user].set()
        try:
            async for text in ws:
                await hub.receive(session, text)
        finally:
            hub.disconnect(session)

    received: dict[int, list[dict[str, Any]]] = {user: [] for user in users}
    async with serve(handler, "127.0.0.1", 0) as server:
        clients = {user: await connect(f"ws://127.0.0.1:{server.port}/{user}")
                   for user in users}
        await asyncio.gather(*(event.wait() for event in joined.values()))
        await script(hub, clients)
        for user, client in clients.items():
            await client.send('{"cmd":0}')  # a heartbeat's echo ends what there is to read
            while (frame := json.loads(await client.recv())) != {"cmd": 0}:
                received[user].append(frame)
            await client.close()
    await hub.close()
    return received


def run(coroutine: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coroutine, SAFETY_TIMEOUT))


def messages(frames: list[dict[str, Any]]) -> list[tuple[int, str]]:
    return [(f["userid"], f["content"]) for f in frames if f.get("cmd") in (10, 11)]


def test_a_message_is_stored_once_acked_and_delivered_to_the_friend() -> None:
    store = MemoryChatStore({1: {2}, 2: {1}}, {})
    acks: list[tuple[str, int, bool]] = []

    async def script(hub: Hub, clients: dict[int, Any]) -> None:
        text = '{"cmd":10,"dstid":2,"media":1,"content":"hi","cid":"c1"}'
        await clients[1].send(text)
        await clients[1].send(text)  # a resend with the same cid: acked, not stored again
        while len(acks) < 2:
            frame = json.loads(await clients[1].recv())
            if frame.get("cmd") == 1:
                acks.append((frame["cid"], frame["id"], frame["dup"]))

    got = run(chat_of(store, [1, 2], script))
    assert acks == [("c1", 1, False), ("c1", 1, True)]
    assert [(row.sender, row.message.content) for row in store.rows] == [(1, "hi")]
    assert messages(got[2]) == [(1, "hi")]


def test_strangers_and_non_members_are_refused_and_nothing_is_stored() -> None:
    store = MemoryChatStore({}, {1: {7}})

    async def script(hub: Hub, clients: dict[int, Any]) -> None:
        await clients[2].send('{"cmd":10,"dstid":1,"media":1,"content":"hey"}')
        await clients[2].send('{"cmd":11,"dstid":7,"media":1,"content":"hey"}')

    got = run(chat_of(store, [1, 2], script))
    assert store.rows == []
    assert [f.get("error") for f in got[2] if f.get("cmd") == 2] == ["not_friend", "not_member"]
    assert messages(got[1]) == []


def test_a_member_who_left_gets_no_more_of_the_group_and_may_not_post() -> None:
    store = MemoryChatStore({}, {1: {7}, 2: {7}, 3: {7}})

    async def script(hub: Hub, clients: dict[int, Any]) -> None:
        await clients[1].send('{"cmd":11,"dstid":7,"media":1,"content":"one"}')
        await clients[1].send('{"cmd":0}')
        while json.loads(await clients[1].recv()) != {"cmd": 0}:
            pass
        hub.apply(MemberLeft(group_id=7, user_id=3))
        await clients[1].send('{"cmd":11,"dstid":7,"media":1,"content":"two"}')
        await clients[3].send('{"cmd":11,"dstid":7,"media":1,"content":"three"}')

    got = run(chat_of(store, [1, 2, 3], script))
    assert messages(got[2]) == [(1, "one"), (1, "two")]
    assert messages(got[3]) == [(1, "one")]
    assert [row.message.content for row in store.rows] == ["one", "two"]


class LongHistoryStore(MemoryChatStore):
    """A history of `pages` full sync pages of user 1's 1:1 messages from user 2."""

    def __init__(self, pages: int) -> None:
        super().__init__({1: {2}, 2: {1}}, {})
        self.newest = pages * 200
        self.asked = 0

    async def sync_page(self, user_id: int, groups: Sequence[int], since: int, limit: int,
                        sent: frozenset[int]) -> SyncPage:
        self.asked += 1
        ids = range(since + 1, min(since + limit, self.newest) + 1)
        rows = [{"id": i, "cid": None, "userid": 2, "cmd": 10, "dstid": 1, "media": 1,
                 "content": f"m{i}", "pic": "", "url": "", "memo": "", "amount": 0, "ts": i}
                for i in ids if i not in sent]
        return SyncPage(rows, ids[-1] if ids else since, ids[-1] < self.newest if ids else False)


def test_a_long_sync_is_paced_never_closed_for_the_rate_limit() -> None:
    """Issue 25: a client that follows `more` page after page (docs/chat-protocol.md) got
    1008 "message rate limit exceeded" after about 40 pages. 150 pages, asked as fast as
    they come back, all arrive; messages are still limited as before."""
    store = LongHistoryStore(pages=150)
    seen: list[int] = []

    async def script(hub: Hub, clients: dict[int, Any]) -> None:
        since, more = 0, True
        while more:
            await clients[1].send(json.dumps({"cmd": 20, "since": since, "limit": 200}))
            frame = json.loads(await clients[1].recv())
            while frame.get("cmd") != 21:
                frame = json.loads(await clients[1].recv())
            seen.extend(row["id"] for row in frame["rows"])
            since, more = frame["next"], frame["more"]

    run(chat_of(store, [1, 2], script))
    assert seen == list(range(1, 150 * 200 + 1))
    assert store.asked == 150


class ClosedStore(MemoryChatStore):
    """A store closed under the sync in flight, as on a node shutting down."""

    async def sync_page(self, user_id: int, groups: Sequence[int], since: int, limit: int,
                        sent: frozenset[int]) -> SyncPage:
        raise StoreError("the store is closed")


def test_a_sync_that_finds_the_store_closed_at_shutdown_is_unavailable_in_one_line(
        caplog: Any) -> None:
    """A node that drains closes its hub, then its store: a sync in flight then gets
    `unavailable` (its client asks again on the node it reconnects to), logged as one
    line, not as a failure with a traceback; before the hub closed, it is a failure."""
    store = ClosedStore({1: {2}, 2: {1}}, {})
    errors: list[str] = []

    async def script(hub: Hub, clients: dict[int, Any]) -> None:
        for closing in (False, True):
            if closing:
                hub._closed = True  # what Hub.close() sets before the store closes
            await clients[1].send('{"cmd":20,"since":5,"limit":10}')
            while (frame := json.loads(await clients[1].recv())).get("cmd") != 2:
                pass  # the presence snapshot
            errors.append(frame["error"])
        hub._closed = False

    with caplog.at_level(logging.INFO, logger="fastim.chat.hub"):
        run(chat_of(store, [1, 2], script))
    assert errors == ["unavailable", "unavailable"]
    failures = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(failures) == 1 and failures[0].exc_info is not None
    assert any("as the store closed" in r.getMessage() for r in caplog.records
               if r.levelno == logging.INFO)

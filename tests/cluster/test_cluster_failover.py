"""Failures of a cluster: a node SIGKILLed, Redis restarted mid-conversation.

The store is the source of truth: whatever was acked reaches its recipients, live or
through the sync a client makes on reconnecting, and never twice on one connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.cluster_support import (
    Cluster,
    Inbox,
    RedisServer,
    Sender,
    assert_each_once,
    eventually,
    frames_until_heartbeat,
)

pytestmark = [pytest.mark.mysql, pytest.mark.redis]

NODE_TTL = 1.0  # seconds: a killed node's users go offline about this long after


@pytest.fixture
def trio(tmp_path: Path, mysql_database: str, redis_addr: tuple[str, int]) -> Iterator[
        Cluster]:
    cluster = Cluster(tmp_path, f"{mysql_database}_kill{secrets.token_hex(2)}",
                      f"redis://{redis_addr[0]}:{redis_addr[1]}/0")
    try:
        for _ in range(3):
            cluster.add(node_ttl=NODE_TTL)
        yield cluster
    finally:
        cluster.close()


def test_a_killed_node_s_users_reconnect_elsewhere_sync_and_its_presence_expires(
        trio: Cluster, redis_addr: tuple[str, int]) -> None:
    n1, n2, n3 = trio.nodes
    alice, bob, carol, dave = (n1.user("alice"), n2.user("bob"), n3.user("carol"),
                               n2.user("dave"))
    trio.friends(alice, bob)
    trio.friends(carol, bob)
    trio.friends(carol, dave)
    group = trio.group(alice, [bob, carol])
    probe = redis.Redis(*redis_addr)
    nodes_key = f"{trio.prefix}:nodes"

    async def scenario() -> None:
        sender = Sender(alice, [n1.port])
        # Bob's client knows two nodes: his own, and another to fail over to.
        bob_inbox = Inbox(bob, [n2.port, n3.port])
        bob_task = asyncio.create_task(bob_inbox.run())
        watcher = await n3.chat(carol.token)
        dave_client = await n2.chat(dave.token)
        await asyncio.wait_for(bob_inbox.synced.wait(), 10)
        assert len(probe.zrange(nodes_key, 0, -1)) == 3

        async def send(count: int, tag: str) -> set[int]:
            ids = set()
            for n in range(count):
                kind, dstid = (10, bob.id) if n % 2 else (11, group)
                ids.add(await sender.say(kind, dstid, f"{tag}{n}"))
            return ids

        before = await send(6, "before")
        await eventually(lambda: before <= set(bob_inbox.ids), "bob's live messages")

        n2.kill()  # bob and dave lose their node without a closing handshake
        during = await send(10, "during")  # stored and acked while bob reconnects
        await eventually(lambda: len(bob_inbox.connections) == 2
                         and bob_inbox.synced.is_set(), "bob back on node 3")
        after = await send(6, "after")
        expected = before | during | after
        await eventually(lambda: expected <= set(bob_inbox.ids), "bob's messages")
        assert_each_once(bob_inbox, expected)
        assert after <= bob_inbox.live  # live delivery goes on from the new node

        # Dave never comes back: once node 2's lease runs out, a live node reaps it and
        # carol (a friend, on node 3) is told he is offline; bob, back on node 3, stays
        # online.
        went = await watcher.expect(lambda f: f.get("cmd") == 50 and f.get("userid") == dave.id
                                    and f.get("online") is False)
        assert went == {"cmd": 50, "userid": dave.id, "online": False}
        await eventually(lambda: len(probe.zrange(nodes_key, 0, -1)) == 2, "node 2 reaped")
        about_bob = [f["online"] for f in await frames_until_heartbeat(watcher)
                     if f.get("cmd") == 50 and f.get("userid") == bob.id]
        assert about_bob[-1:] in ([], [True])  # if he flickered, he ended online
        rows = n1.post("/contact/loadfriend", token=carol.token).list["rows"]
        assert {r["id"]: r["online"] for r in rows} == {bob.id: True, dave.id: False}

        await bob_inbox.stop()
        bob_task.cancel()
        await asyncio.gather(bob_task, return_exceptions=True)
        await sender.close()
        await watcher.close()
        with contextlib.suppress(Exception):  # his node is gone
            await asyncio.wait_for(dave_client.close(), 2)

    try:
        asyncio.run(scenario())
    finally:
        probe.close()


def test_redis_restarted_mid_conversation_loses_nothing_and_repeats_nothing(
        tmp_path: Path, mysql_database: str, private_redis: RedisServer) -> None:
    cluster = Cluster(tmp_path, f"{mysql_database}_rr{secrets.token_hex(2)}",
                      private_redis.url)
    try:
        n1, n2 = cluster.add(node_ttl=NODE_TTL), cluster.add(node_ttl=NODE_TTL)
        alice, bob, carol = n1.user("alice"), n2.user("bob"), n1.user("carol")
        cluster.friends(alice, bob)
        group = cluster.group(alice, [bob, carol])
        asyncio.run(_conversation_across_a_redis_restart(
            private_redis, n1.port, n2.port, alice, bob, carol, group))
    finally:
        cluster.close()


async def _conversation_across_a_redis_restart(redis_server: RedisServer, port1: int,
                                               port2: int, alice: Any, bob: Any, carol: Any,
                                               group: int) -> None:
    sender = Sender(alice, [port1])
    bob_inbox = Inbox(bob, [port2])  # on the other node
    carol_inbox = Inbox(carol, [port1])  # on the sender's node: her copies go via Redis too
    inboxes = [bob_inbox, carol_inbox]
    tasks = [asyncio.create_task(inbox.run()) for inbox in inboxes]
    for inbox in inboxes:
        await asyncio.wait_for(inbox.synced.wait(), 10)
    to_bob: set[int] = set()
    to_group: set[int] = set()
    stop = asyncio.Event()

    async def talk() -> None:
        """Alice keeps talking, 1:1 to bob and to the group, through it all."""
        n = 0
        while not stop.is_set():
            if n % 2:
                to_bob.add(await sender.say(10, bob.id, f"m{n}"))
            else:
                to_group.add(await sender.say(11, group, f"m{n}"))
            n += 1
            await asyncio.sleep(0.01)

    talker = asyncio.create_task(talk())
    await eventually(lambda: len(to_bob) + len(to_group) >= 10, "a conversation")
    redis_server.kill()
    acked_before_outage = len(to_bob) + len(to_group)
    # Redis is gone: messages are still stored and acked.
    await eventually(lambda: len(to_bob) + len(to_group) >= acked_before_outage + 10,
                     "acks while Redis is down")
    redis_server.start()  # empty: no registry, no subscriptions
    # Each node reconnects, closes its chat connections with 1012, the clients
    # reconnect and sync.
    for inbox in inboxes:
        await eventually(lambda inbox=inbox: 1012 in inbox.close_codes
                         and inbox.synced.is_set(), f"{inbox.user} reconnected", 20)
    resumed_from = len(to_bob) + len(to_group)
    await eventually(lambda: len(to_bob) + len(to_group) >= resumed_from + 10,
                     "the conversation after the restart")
    stop.set()
    await talker
    sent_after = set(sorted(to_bob | to_group)[-5:])

    await eventually(lambda: (to_bob | to_group) <= set(bob_inbox.ids), "bob has all")
    await eventually(lambda: to_group <= set(carol_inbox.ids), "carol has the group's")
    assert_each_once(bob_inbox, to_bob | to_group)
    assert_each_once(carol_inbox, to_group)
    assert sent_after & to_bob <= bob_inbox.live  # live delivery resumed
    assert sent_after & to_group <= carol_inbox.live
    for inbox in inboxes:
        await inbox.stop()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await sender.close()

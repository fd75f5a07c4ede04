"""Many nodes as one: real `fastim serve` processes sharing MariaDB and Redis.

Clients are spread over the nodes; everything a user sees on one node they see across
nodes too: 1:1 and group messages, acks, receipts, typing, presence, and contact changes
made through any node.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from fastim.config import add_serve_arguments, config_from_args
from fastim.ws import InvalidHandshake, connect
from tests.cluster_support import Cluster, Node, User, frames_until_heartbeat

pytestmark = [pytest.mark.mysql, pytest.mark.redis]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, mysql_database: str,
            redis_addr: tuple[str, int]) -> Iterator[Cluster]:
    """Three nodes, each serving everything, on a database of their own."""
    db = f"{mysql_database}_chat{secrets.token_hex(2)}"
    nodes = Cluster(tmp_path_factory.mktemp("cluster"), db,
                    f"redis://{redis_addr[0]}:{redis_addr[1]}/0")
    try:
        for _ in range(3):
            nodes.add()
        yield nodes
    finally:
        nodes.close()


def test_one_to_one_across_nodes_with_acks_devices_and_the_real_sender(
        cluster: Cluster) -> None:
    n1, n2, n3 = cluster.nodes
    alice, bob = n1.user("alice"), n2.user("bob")
    cluster.friends(alice, bob)
    phone = n3.login(alice, "phone")

    async def scenario() -> None:
        laptop, mobile, b = await n1.chat(alice.token), await n3.chat(phone), await n2.chat(
            bob.token)
        ack = await laptop.say(10, bob.id, "你好 bob, from node 1", "a1")
        assert ack["cmd"] == 1 and ack["dup"] is False
        got = await b.message()
        assert (got["id"], got["userid"], got["content"]) == (
            ack["id"], alice.id, "你好 bob, from node 1")
        mirrored = await mobile.message()  # the sender's other device, on another node
        assert mirrored["id"] == ack["id"]
        back = await b.say(10, alice.id, "hi alice", "b1", userid=alice.id)  # forged
        for device in (laptop, mobile):
            message = await device.message()
            assert (message["id"], message["userid"]) == (back["id"], bob.id)
        for device in (laptop, mobile, b):
            await device.no_more_messages()  # the sender's own device got no copy
            await device.close()

    asyncio.run(scenario())


def test_group_spread_over_three_nodes_each_member_once(
        cluster: Cluster, redis_addr: tuple[str, int]) -> None:
    members = [node.user(f"m{i}") for i, node in enumerate(cluster.nodes * 3)]
    owner = members[0]
    group = cluster.group(owner, members[1:])
    homes = [cluster.nodes[i % 3] for i in range(len(members))]
    rounds = 5

    async def scenario() -> None:
        clients = [await home.chat(member.token) for member, home in zip(members, homes, strict=True)]
        # One member per node sends (members 0, 1, 2 are on nodes 1, 2, 3).
        senders = clients[:3]
        # Nine members online on three nodes: Redis routes the group channel to three
        # subscribers (one per node), not nine.
        probe = redis.Redis(*redis_addr)
        try:
            channel = f"{cluster.prefix}:g:{group}"
            assert probe.pubsub_numsub(channel) == [(channel.encode(), 3)]
        finally:
            probe.close()
        acks: dict[int, list[int]] = {}
        for n, client in enumerate(senders):
            for round_ in range(rounds):
                await client.send(cmd=11, dstid=group, media=1, content=f"{n}/{round_}",
                                  cid=f"{n}-{round_}")
        for n, client in enumerate(senders):
            acks[n] = [(await client.expect(lambda f, cid=f"{n}-{r}": f.get("cmd") == 1
                                            and f.get("cid") == cid))["id"]
                       for r in range(rounds)]
        everything = {i for ids in acks.values() for i in ids}
        for index, client in enumerate(clients):
            expected = everything - set(acks.get(index, []))
            received = [await client.message() for _ in range(len(expected))]
            ids = [m["id"] for m in received]
            assert sorted(ids) == sorted(expected)  # each message once
            for sent in acks.values():  # and each sender's messages in server-id order
                assert [i for i in ids if i in sent] == [i for i in sent if i in expected]
        for client in clients:
            await client.no_more_messages()
            await client.close()

    asyncio.run(scenario())


def test_receipts_typing_and_presence_cross_nodes(cluster: Cluster) -> None:
    n1, n2, n3 = cluster.nodes
    alice, bob, carol = n1.user("alice"), n2.user("bob"), n3.user("carol")
    cluster.friends(alice, bob)
    group = cluster.group(carol, [alice, bob])
    bob_phone = n3.login(bob, "phone")

    def online(viewer: User, node: Node) -> dict[int, bool]:
        rows = node.post("/contact/loadfriend", token=viewer.token).list["rows"]
        return {row["id"]: row["online"] for row in rows}

    async def scenario() -> None:
        a = await n1.chat(alice.token)
        assert a.snapshot["users"] == []
        b = await n2.chat(bob.token)
        assert b.snapshot["users"] == [alice.id]  # alice is on another node
        assert await a.cmd(50) == {"cmd": 50, "userid": bob.id, "online": True}
        assert online(alice, n3) == {bob.id: True}  # asked on a node neither is on
        c = await n3.chat(carol.token)

        ack = await a.say(10, bob.id, "read me", "r1")
        await b.message()
        await b.send(cmd=30, kind=10, dstid=alice.id, upto=ack["id"])
        assert await a.cmd(31) == {"cmd": 31, "kind": 10, "dstid": alice.id,
                                   "userid": bob.id, "upto": ack["id"]}
        group_ack = await c.say(11, group, "group read me", "g1")
        await a.message()
        await b.message()
        await a.send(cmd=30, kind=11, dstid=group, upto=group_ack["id"])
        for member in (b, c):  # every online member counts who has read
            receipt = await member.expect(lambda f: f.get("cmd") == 31 and f["kind"] == 11)
            assert (receipt["kind"], receipt["userid"], receipt["upto"]) == (
                11, alice.id, group_ack["id"])

        await b.send(cmd=40, kind=10, dstid=alice.id)
        assert await a.cmd(40) == {"cmd": 40, "kind": 10, "dstid": alice.id,
                                   "userid": bob.id}

        # Bob on a second node: closing one device does not make him offline.
        phone = await n3.chat(bob_phone)
        await b.close()
        assert not [f for f in await frames_until_heartbeat(a) if f.get("cmd") == 50]
        assert online(alice, n1) == {bob.id: True}
        await phone.close()
        assert await a.cmd(50) == {"cmd": 50, "userid": bob.id, "online": False}
        assert online(alice, n2) == {bob.id: False}
        await a.close()
        await c.close()

    asyncio.run(scenario())


def test_contact_changes_through_one_node_reach_every_node_at_once(cluster: Cluster) -> None:
    n1, n2, n3 = cluster.nodes
    alice, bob = n1.user("alice"), n2.user("bob")
    owner, carol, dave = n1.user("owner"), n2.user("carol"), n2.user("dave")
    group = cluster.group(owner, [dave], via=n1)

    async def scenario() -> None:
        a, b = await n1.chat(alice.token), await n2.chat(bob.token)
        o, c, d = (await n1.chat(owner.token), await n2.chat(carol.token),
                   await n2.chat(dave.token))
        assert (await b.say(10, alice.id, "hello?", "x"))["error"] == "not_friend"
        # Befriended through node 3; both already online on nodes 1 and 2.
        cluster.friends(alice, bob, via=n3)
        ack = await b.say(10, alice.id, "now we are friends", "y")
        assert ack["cmd"] == 1
        assert (await a.message())["id"] == ack["id"]

        # Carol (online on node 2) joins through node 3: she may post on node 2 at once
        # and receives the group there.
        joined = n3.post("/contact/joincommunity", {"dstid": group}, token=carol.token)
        assert joined.status == 200
        posted = await c.say(11, group, "hi all", "c1")
        assert posted["cmd"] == 1
        assert (await o.message())["id"] == posted["id"]
        from_owner = await o.say(11, group, "welcome carol", "o1")
        assert (await c.message())["id"] == from_owner["id"]

        # Carol leaves through node 1: node 2 refuses her next post, and stops sending
        # her the group.
        left = n1.post("/contact/leavecommunity", {"dstid": group}, token=carol.token)
        assert left.status == 200
        refused = await c.say(11, group, "still here?", "c2")
        assert refused["error"] == "not_member"
        after = await o.say(11, group, "carol has left", "o2")
        await d.expect(lambda f: f.get("id") == after["id"])  # dave still gets it
        await c.no_more_messages()

        # A group whose only online member is on node 2 joins through node 1: node 2
        # subscribes to it then and there.
        second = cluster.group(owner, [], via=n1)
        assert n1.post("/contact/joincommunity", {"dstid": second},
                       token=carol.token).status == 200
        greeting = await o.say(11, second, "second group", "o3")
        assert (await c.message())["id"] == greeting["id"]

        # Dissolved through node 3: dave, on node 2, may no longer post.
        gone = n3.post("/contact/dissolvecommunity", {"dstid": group}, token=owner.token)
        assert gone.status == 200
        assert (await d.say(11, group, "anyone?", "d1"))["error"] == "not_member"
        for client in (a, b, o, c, d):
            await client.close()

    asyncio.run(scenario())


@pytest.fixture
def split(tmp_path: Path, mysql_database: str, redis_addr: tuple[str, int]) -> Iterator[
        Cluster]:
    """Business separation: one node serves the REST API and pages, one the chat."""
    db = f"{mysql_database}_split{secrets.token_hex(2)}"
    nodes = Cluster(tmp_path, db, f"redis://{redis_addr[0]}:{redis_addr[1]}/0")
    try:
        nodes.add(role="api")
        nodes.add(role="chat")
        yield nodes
    finally:
        nodes.close()


def test_api_and_chat_roles_share_one_database_and_redis(split: Cluster) -> None:
    api, chat = split.nodes
    alice, bob = api.user("alice"), api.user("bob")
    assert chat.post("/user/register", {"mobile": "13000000001"}).status == 404
    assert chat.get("/login").status == 404
    assert api.get("/login").status == 200

    async def upgrade(node: Node, token: str) -> int:
        try:
            connection = await connect(f"ws://127.0.0.1:{node.port}/chat?token={token}")
        except InvalidHandshake as exc:
            return exc.status
        await connection.close()
        return 101

    assert asyncio.run(upgrade(api, alice.token)) != 101  # the chat page, not the chat
    assert asyncio.run(upgrade(chat, alice.token)) == 101

    async def scenario() -> None:
        a, b = await chat.chat(alice.token), await chat.chat(bob.token)
        # The api node has no hub; the change reaches the chat node over Redis.
        split.friends(alice, bob, via=api)
        ack = await a.say(10, bob.id, "split but together", "s1")
        assert ack["cmd"] == 1
        assert (await b.message())["id"] == ack["id"]
        rows = api.post("/contact/loadfriend", token=alice.token).list["rows"]
        assert rows == [dict(rows[0], id=bob.id, online=True)]
        for node in (api, chat):  # history is served beside the chat, and by the api
            page = node.get(f"/chat/history?cmd=10&dstid={bob.id}", token=alice.token)
            assert [r["id"] for r in page.list["rows"]] == [ack["id"]]
        await a.close()
        await b.close()

    asyncio.run(scenario())


@pytest.mark.parametrize("role", ["api", "chat"])
def test_a_split_role_needs_redis(role: str) -> None:
    parser = argparse.ArgumentParser()
    add_serve_arguments(parser, environ={})
    with pytest.raises(SystemExit, match="needs --redis"):
        config_from_args(parser.parse_args(["--role", role]))
    config = config_from_args(parser.parse_args(["--role", role, "--redis", "redis://x"]))
    assert config.role == role
    from_env = argparse.ArgumentParser()
    add_serve_arguments(from_env, environ={"FASTIM_ROLE": "both"})  # not checked by argparse
    with pytest.raises(SystemExit, match="role must be one of"):
        config_from_args(from_env.parse_args([]))

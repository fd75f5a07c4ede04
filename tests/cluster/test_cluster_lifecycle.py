"""The message lifecycle across two nodes sharing MariaDB and Redis, with messages sealed
at rest (`--message-key-file`): a change made on one node reaches the readers on the
other live, once, and an edit is sealed like the original."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from typing import Any

import pymysql
import pytest

from fastim.store.sealing import write_key_file
from tests.chat_support import ChatClient
from tests.cluster_support import Cluster, frames_until_heartbeat

pytestmark = [pytest.mark.mysql, pytest.mark.redis]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, mysql_database: str,
            redis_addr: tuple[str, int]) -> Iterator[Cluster]:
    directory = tmp_path_factory.mktemp("lifecycle")
    keys = directory / "message.keys"
    write_key_file(keys, "k1")
    db = f"{mysql_database}_life{secrets.token_hex(2)}"
    nodes = Cluster(directory, db, f"redis://{redis_addr[0]}:{redis_addr[1]}/0")
    try:
        for _ in range(2):
            nodes.add(extra=("--message-key-file", str(keys)))
        yield nodes
    finally:
        nodes.close()


async def change(client: ChatClient, cmd: int, cid: str, **fields: Any) -> dict[str, Any]:
    await client.send(cmd=cmd, cid=cid, **fields)
    return await client.expect(lambda f: f.get("cmd") in (1, 2) and f.get("cid") == cid)


def test_changes_cross_nodes_once_and_edits_stay_sealed(
        cluster: Cluster, mysql_addr: tuple[str, int]) -> None:
    n1, n2 = cluster.nodes
    alice, bob, carol = n1.user("alice"), n2.user("bob"), n2.user("carol")
    cluster.friends(alice, bob)
    group = cluster.group(alice, [bob, carol])

    async def scenario() -> tuple[int, int]:
        a, b, c = await n1.chat(alice.token), await n2.chat(bob.token), await n2.chat(
            carol.token)
        sent = await a.say(10, bob.id, "a secret, misspeled", "a1")
        await b.message()
        assert (await change(a, 60, "e1", id=sent["id"], content="a secret, misspelled"))[
            "cmd"] == 1
        for device in (a, b):
            edit = await device.expect(lambda f: f.get("cmd") == 60)
            assert edit["content"] == "a secret, misspelled"
        said = await b.say(11, group, "hi all", "b1")
        await c.message()
        assert (await change(c, 62, "x1", id=said["id"], emoji="👍"))["cmd"] == 1
        for device in (a, b, c):
            got = await device.expect(lambda f: f.get("cmd") == 62)
            assert got["reactions"] == {"👍": [carol.id]}
        # The owner, on the other node, recalls bob's group message.
        assert (await change(a, 61, "r1", id=said["id"]))["cmd"] == 1
        for device in (a, b, c):
            recall = await device.expect(lambda f: f.get("cmd") == 61)
            assert recall["id"] == said["id"] and recall["recalled"] is True
        for device in (a, b, c):
            rest = await frames_until_heartbeat(device)
            assert not [f for f in rest if f.get("cmd") in (60, 61, 62)], rest  # once
            await device.close()
        return int(sent["id"]), int(said["id"])

    edited, recalled = asyncio.run(scenario())
    connection = pymysql.connect(host=mysql_addr[0], port=mysql_addr[1], user="root",
                                 database=cluster.db.rsplit("/", 1)[1])
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT content, sealed FROM messages WHERE id = %s", (edited,))
            content, sealed = cursor.fetchone()
            assert content == "" and sealed.startswith("enc:v1:k1:")
            assert "misspelled" not in sealed
            cursor.execute("SELECT content, sealed FROM messages WHERE id = %s", (recalled,))
            assert cursor.fetchone() == ("", None)
    finally:
        connection.close()
    history = n2.get(f"/chat/history?cmd=10&dstid={alice.id}", token=bob.token)
    assert history.status == 200
    [message] = history.json["rows"]
    assert message["content"] == "a secret, misspelled" and "edited" in message


def test_a_newcomer_on_either_node_gets_no_change_of_a_message_from_before_they_joined(
        cluster: Cluster) -> None:
    """The history window holds across nodes: the newcomer's devices on both nodes (the
    join told to the other node through Redis) get the changes of what was sent after
    they joined, never those of older messages, whichever node the change was made on."""
    n1, n2 = cluster.nodes
    owner, old_hand, newcomer = n1.user("owner"), n2.user("old hand"), n1.user("newcomer")
    group = cluster.group(owner, [old_hand])
    phone = n2.login(newcomer, "phone")

    async def scenario() -> None:
        o, h = await n1.chat(owner.token), await n2.chat(old_hand.token)
        old = await o.say(11, group, "before the newcomer came", "o1")
        await h.message()
        near, far = await n1.chat(newcomer.token), await n2.chat(phone)
        assert n2.post("/contact/joincommunity", {"dstid": group},
                       token=newcomer.token).status == 200
        for device in (near, far):
            await device.expect(lambda f: f.get("cmd") == 71 and f.get("event") == "joined")
        assert (await change(o, 60, "e1", id=old["id"], content="edited, still old"))[
            "cmd"] == 1
        assert (await change(h, 62, "x1", id=old["id"], emoji="👍"))["cmd"] == 1
        assert (await change(near, 62, "x2", id=old["id"], emoji="👍"))["error"] \
            == "not_found"
        new = await h.say(11, group, "welcome", "h1")
        assert (await change(o, 62, "x3", id=new["id"], emoji="🎉"))["cmd"] == 1
        for device in (near, far):
            await device.expect(lambda f: f.get("cmd") == 62 and f.get("id") == new["id"])
            rest = await frames_until_heartbeat(device)
            assert not [f for f in rest if f.get("id") == old["id"]], rest
        for device in (o, h):  # the older members had every change
            for cmd in (60, 62):
                await device.expect(lambda f, cmd=cmd: f.get("cmd") == cmd
                                    and f.get("id") == old["id"])
        for client in (o, h, near, far):
            await client.close()

    asyncio.run(scenario())

"""Friends by consent across nodes: real `fastim serve` processes sharing MariaDB and
Redis. A request, its acceptance, an unfriend and a block made through one node reach
the connections of both sides on the others at once (the control events of
fastim/bus/events.py on the Redis control channel)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from tests.cluster_support import Cluster, frames_until_heartbeat

pytestmark = [pytest.mark.mysql, pytest.mark.redis]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, mysql_database: str,
            redis_addr: tuple[str, int]) -> Iterator[Cluster]:
    """Two nodes serving everything, and one api-only node (no hub: its changes reach
    the chat nodes only through Redis)."""
    db = f"{mysql_database}_friends{secrets.token_hex(2)}"
    nodes = Cluster(tmp_path_factory.mktemp("friends"), db,
                    f"redis://{redis_addr[0]}:{redis_addr[1]}/0")
    try:
        nodes.add()
        nodes.add()
        nodes.add(role="api")
        yield nodes
    finally:
        nodes.close()


def _contact(event: str, userid: int) -> Any:
    return lambda f: f.get("cmd") == 70 and f.get("event") == event and f["userid"] == userid


def _presence(userid: int, online: bool) -> Any:
    return lambda f: f.get("cmd") == 50 and f.get("userid") == userid and f["online"] is online


def test_a_request_and_its_acceptance_reach_the_other_node(cluster: Cluster) -> None:
    n1, n2, api = cluster.nodes
    alice, bob = n1.user("alice"), n2.user("bob")

    async def scenario() -> None:
        a, b = await n1.chat(alice.token), await n2.chat(bob.token)
        asked = api.post("/contact/addfriend", {"dstname": bob.mobile}, token=alice.token)
        assert asked.data == {"status": "requested"}
        notice = await b.expect(_contact("request", alice.id))
        accepted = api.post("/contact/accept", {"requestid": notice["requestid"]},
                            token=bob.token)
        assert accepted.status == 200 and accepted.data["online"] is True
        await a.expect(_contact("friend", bob.id))
        await b.expect(_contact("friend", alice.id))
        await a.expect(_presence(bob.id, True))
        await b.expect(_presence(alice.id, True))
        ack = await a.say(10, bob.id, "across nodes, by consent", "c1")
        assert ack["cmd"] == 1
        assert (await b.message())["id"] == ack["id"]
        await a.close()
        await b.close()

    asyncio.run(scenario())


def test_unfriend_through_a_third_node_ends_it_on_every_device_at_once(
        cluster: Cluster) -> None:
    n1, n2, api = cluster.nodes
    alice, bob = n1.user("alice"), n2.user("bob")
    cluster.friends(alice, bob)
    phone = n2.login(alice, "phone")

    async def scenario() -> None:
        laptop, mobile, b = await n1.chat(alice.token), await n2.chat(phone), await n2.chat(
            bob.token)
        await laptop.say(10, bob.id, "before", "c1")
        await b.message()
        await mobile.message()
        assert api.post("/contact/unfriend", {"dstid": bob.id}, token=alice.token).status == 200
        for device in (laptop, mobile):
            await device.expect(_presence(bob.id, False))
            await device.expect(_contact("unfriend", bob.id))
        await b.expect(_presence(alice.id, False))
        await b.expect(_contact("unfriend", alice.id))
        # Nothing 1:1 passes either way, from any device, on any node.
        for device, other, cid in ((laptop, bob, "c2"), (mobile, bob, "c3"), (b, alice, "c4")):
            refused = await device.say(10, other.id, "after", cid)
            assert (refused["cmd"], refused["error"]) == (2, "not_friend")
            await device.send(cmd=40, kind=10, dstid=other.id)
            answer = await device.expect(lambda f: f.get("cmd") in (2, 40))
            assert answer["error"] == "not_friend"
        # Alice going offline is no longer told to bob.
        await laptop.close()
        await mobile.close()
        assert not [f for f in await frames_until_heartbeat(b) if f.get("cmd") in (10, 40, 50)]
        await b.close()

    asyncio.run(scenario())
    history = n2.get(f"/chat/history?cmd=10&dstid={alice.id}", token=bob.token)
    assert [row["content"] for row in history.list["rows"]] == ["before"]


def test_block_across_nodes_the_blocked_sees_a_stranger(cluster: Cluster) -> None:
    n1, n2, api = cluster.nodes
    alice, mallory = n1.user("alice"), n2.user("mallory")
    cluster.friends(mallory, alice)

    async def scenario() -> None:
        a, m = await n1.chat(alice.token), await n2.chat(mallory.token)
        assert m.snapshot["users"] == [alice.id]
        assert api.post("/contact/block", {"dstid": mallory.id}, token=alice.token).status == 200
        # Mallory is told what any unfriend shows, nothing more.
        await m.expect(_presence(alice.id, False))
        await m.expect(_contact("unfriend", alice.id))
        await a.expect(_contact("unfriend", mallory.id))
        refused = await m.say(10, alice.id, "let me in", "m1")
        assert refused["error"] == "not_friend"
        asked = n2.post("/contact/addfriend", {"dstid": alice.id}, token=mallory.token)
        assert asked.data == {"status": "requested"}
        assert not [f for f in await frames_until_heartbeat(a) if f.get("cmd") in (10, 70)]
        # Alice comes back on another node: mallory does not see her online.
        await a.close()
        a = await n2.chat(alice.token)
        assert mallory.id not in a.snapshot["users"]
        assert not [f for f in await frames_until_heartbeat(m) if f.get("cmd") == 50]
        await a.close()
        await m.close()

    asyncio.run(scenario())
    assert api.get("/contact/requests", token=alice.token).list["total"] == 0
    assert [u["id"] for u in api.get("/contact/blocked", token=alice.token).list["rows"]] == [
        mallory.id]

"""Web Push across two nodes (MariaDB + Redis): a message is pushed by the node that
stored it only, and messages of one conversation stored on two nodes at once still
make one push (the coalescing window is shared through Redis). Both nodes sign with
the one VAPID key file they share (`--vapid-key-file`)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator

import pytest

from tests.cluster_support import Cluster
from tests.push_support import Browser, PushService

pytestmark = [pytest.mark.mysql, pytest.mark.redis]


@pytest.fixture(scope="module")
def service() -> Iterator[PushService]:
    stand_in = PushService()
    yield stand_in
    stand_in.close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, mysql_database: str,
            redis_addr: tuple[str, int]) -> Iterator[Cluster]:
    directory = tmp_path_factory.mktemp("push-cluster")
    db = f"{mysql_database}_push{secrets.token_hex(2)}"
    nodes = Cluster(directory, db, f"redis://{redis_addr[0]}:{redis_addr[1]}/0")
    shared_key = ["--vapid-key-file", str(directory / "vapid.pem"),
                  "--push-allow-http-loopback"]
    try:
        for _ in range(2):
            nodes.add(extra=shared_key)
        yield nodes
    finally:
        nodes.close()


def test_two_nodes_push_a_conversation_once(cluster: Cluster, service: PushService) -> None:
    n1, n2 = cluster.nodes
    alice, bob, carol = n1.user("Alice"), n1.user("Bob"), n2.user("Carol")
    group = cluster.group(alice, [bob, carol])
    cluster.friends(alice, bob)
    cluster.friends(carol, bob)
    key = n1.get("/user/push", bob.token).data["key"]
    assert n2.get("/user/push", bob.token).data["key"] == key  # one key for the cluster
    browser = Browser(service)
    reply = n2.post("/user/push", browser.subscription(), token=bob.token)
    assert reply.status == 201, reply.body

    async def scenario() -> None:
        a, c = await n1.chat(alice.token), await n2.chat(carol.token)
        # One group message stored on each node, at once.
        await asyncio.gather(a.send(cmd=11, dstid=group, media=1, content="from 1", cid="a"),
                             c.send(cmd=11, dstid=group, media=1, content="from 2", cid="c"))
        for device, cid in ((a, "a"), (c, "c")):
            ack = await device.expect(lambda f, cid=cid: f.get("cid") == cid)
            assert ack["cmd"] == 1, ack
        # Then one 1:1 message from each node: each node works out its pushes in order,
        # so once both of these have come, both nodes have decided about the group's.
        for device, cid in ((a, "a2"), (c, "c2")):
            ack = await device.say(10, bob.id, "marker", cid)
            assert ack["cmd"] == 1, ack
        await a.close()
        await c.close()

    asyncio.run(scenario())
    pushes = service.wait_for(browser.endpoint, 3)
    titles = sorted(browser.decrypt(p)["title"] for p in pushes)
    group_title = [t for t in titles if " in " in t]
    assert len(group_title) == 1, titles
    assert sorted(t for t in titles if " in " not in t) == [
        "New message from Alice", "New message from Carol"]
    assert all(p.vapid_key == key for p in pushes)
    assert len(service.to(browser.endpoint)) == 3

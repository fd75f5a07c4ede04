"""The web client in a cluster: two people on two nodes behind HAProxy chat in Chromium;
the node of one is SIGKILLed; her page reconnects through the proxy by itself and the
conversation goes on with nothing missing (docs/scaling.md, "Behind a load balancer")."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from playwright.sync_api import expect

from deploy.haproxy import Checks, HAProxy, find_haproxy

pytest.register_assert_rewrite("tests.web_support")
from tests.cluster_support import Cluster, Node, User, free_port, wait_until  # noqa: E402
from tests.web_support import (  # noqa: E402
    WAIT_MS,
    Person,
    bubbles,
    open_chat,
    open_conversation,
    screenshot,
    send_text,
    wait_online,
)

pytest_plugins = ["tests.web_support"]
pytestmark = [pytest.mark.browser, pytest.mark.mysql, pytest.mark.redis]
expect.set_options(timeout=WAIT_MS)


@dataclass
class Front:
    """What the page helpers need of a server: its URL (here, the proxy's)."""

    url: str


@pytest.fixture
def proxied(tmp_path: Path, mysql_database: str,
            redis_addr: tuple[str, int]) -> Iterator[tuple[Cluster, HAProxy]]:
    if find_haproxy() is None:
        pytest.skip("haproxy is not installed (apt-get install haproxy)")
    cluster = Cluster(tmp_path, f"{mysql_database}_wc{secrets.token_hex(2)}",
                      f"redis://{redis_addr[0]}:{redis_addr[1]}/0")
    proxy = None
    try:
        for _ in range(2):
            cluster.add(node_ttl=1.0, port=free_port(),
                        extra=["--trusted-proxy", "127.0.0.1"])
        proxy = HAProxy(tmp_path / "haproxy", ("127.0.0.1", free_port()),
                        [("127.0.0.1", n.port) for n in cluster.nodes],
                        # three slow checks in a row take a node out, not one (see
                        # tests/cluster/test_cluster_proxy.py)
                        Checks(interval=0.2, fall=3, rise=1)).start()
        yield cluster, proxy
    finally:
        if proxy is not None:
            proxy.stop()
        cluster.close()


def person(user: User) -> Person:
    return Person(id=user.id, mobile=user.mobile, passwd="correct horse",
                  nickname=user.name, token=user.token)


def node_of(cluster: Cluster, user: User) -> Node | None:
    """The live node holding `user`'s connection, from the presence registry in Redis
    (a killed node stays listed until its lease runs out), or None."""
    client = redis.Redis.from_url(cluster.redis.split("?")[0])
    try:
        holders = {m.decode() for m in client.smembers(f"{cluster.prefix}:on:{user.id}")}
    finally:
        client.close()
    found = [n for n in cluster.nodes if n.alive and n.process is not None
             and any(f"-{n.process.pid}-" in holder for holder in holders)]
    assert len(found) <= 1, (holders, found)
    return found[0] if found else None


def test_a_killed_node_s_user_reconnects_through_the_proxy_and_misses_nothing(
        browser: Any, proxied: tuple[Cluster, HAProxy], shots: Path) -> None:
    cluster, proxy = proxied
    front = Front(proxy.url.rstrip("/"))
    alice_user, bob_user = cluster.nodes[0].user("Alice"), cluster.nodes[1].user("Bob")
    cluster.friends(alice_user, bob_user)
    alice, bob = person(alice_user), person(bob_user)
    try:
        pa = open_chat(browser, front, alice)  # type: ignore[arg-type]
        pb = open_chat(browser, front, bob)  # type: ignore[arg-type]
        # leastconn: the second socket goes to the node with none.
        alices_node, bobs_node = node_of(cluster, alice_user), node_of(cluster, bob_user)
        assert alices_node is not None and bobs_node is not None
        assert alices_node is not bobs_node
        open_conversation(pa, "u", bob.id)
        open_conversation(pb, "u", alice.id)
        send_text(pa, "Hi Bob, from node A")
        expect(bubbles(pb, "Hi Bob, from node A")).to_have_count(1)

        alices_node.kill()  # SIGKILL: no close frame, no goodbye to Redis
        # Bob writes while Alice's page has no connection; her page reconnects by
        # itself through the proxy, to the node that is left, and syncs.
        send_text(pb, "Did you drop?")
        wait_until(lambda: pa.locator('#conn[data-state="online"]').count() == 1
                   and node_of(cluster, alice_user) is bobs_node, "Alice back, on Bob's node")
        wait_online(pa)
        expect(bubbles(pa, "Did you drop?")).to_have_count(1)
        send_text(pa, "Still here")
        expect(bubbles(pb, "Still here")).to_have_count(1)
        # Nothing twice on either side.
        for page, texts in ((pa, ["Hi Bob, from node A", "Did you drop?", "Still here"]),
                            (pb, ["Hi Bob, from node A", "Did you drop?", "Still here"])):
            for text in texts:
                expect(bubbles(page, text)).to_have_count(1)
        screenshot(pa, shots, "cluster-failover")
        assert alice.errors == [] and bob.errors == []
    finally:
        for who in (alice, bob):
            if who.context is not None:
                who.context.close()

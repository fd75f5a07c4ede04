"""Safe groups across nodes: real `fastim serve` processes sharing MariaDB and Redis. A
join by invite and a removal made through an api-only node reach the group's connections
on the chat nodes at once (cmd 71, the GroupNotice control event); a removed member stops
receiving the group on every node, and a new member's sync starts at their join."""

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
    db = f"{mysql_database}_groups{secrets.token_hex(2)}"
    nodes = Cluster(tmp_path_factory.mktemp("groups"), db,
                    f"redis://{redis_addr[0]}:{redis_addr[1]}/0")
    try:
        nodes.add()
        nodes.add()
        nodes.add(role="api")
        yield nodes
    finally:
        nodes.close()


def _notice(event: str, userid: int) -> Any:
    return lambda f: f.get("cmd") == 71 and f.get("event") == event and f["userid"] == userid


def test_invite_join_and_kick_across_nodes(cluster: Cluster) -> None:
    n1, n2, api = cluster.nodes
    owner, carol = n1.user("owner"), n2.user("carol")
    created = api.post("/contact/createcommunity", {"name": f"p-{secrets.token_hex(3)}"},
                       token=owner.token)
    assert created.status == 201 and created.data["visibility"] == "private"
    group = int(created.data["id"])
    # A private group is not found by id or name.
    assert n2.post("/contact/joincommunity", {"dstid": group}, token=carol.token).status == 404

    async def scenario() -> None:
        o = await n1.chat(owner.token)
        await o.say(11, group, "before carol", "o1")
        invite = api.post("/contact/invite", {"groupid": group}, token=owner.token)
        assert invite.status == 201 and invite.data["url"] == f"/join/{invite.data['code']}"
        joined = api.post("/contact/joinbyinvite", {"code": invite.data["code"]},
                          token=carol.token)
        assert joined.status == 200 and joined.data["status"] == "joined"
        await o.expect(_notice("joined", carol.id))
        c = await n2.chat(carol.token)
        await c.send(cmd=20, since=0, limit=50)
        synced = await c.cmd(21)
        assert [r["content"] for r in synced["rows"] if r["cmd"] == 11] == []
        ack = await o.say(11, group, "welcome carol", "o2")
        assert (await c.message())["id"] == ack["id"]
        kicked = api.post("/contact/kick", {"groupid": group, "memberid": carol.id, "ban": 1},
                          token=owner.token)
        assert kicked.data == {"removed": True, "banned": True}
        await c.expect(_notice("removed", carol.id))
        await o.expect(_notice("removed", carol.id))
        await o.say(11, group, "carol is gone", "o3")
        assert not [f for f in await frames_until_heartbeat(c) if f.get("cmd") == 11]
        refused = await c.say(11, group, "still here?", "c1")
        assert refused["error"] == "not_member"
        await o.close()
        await c.close()
        # Banned: the invite no longer lets her in.
        again = api.post("/contact/joinbyinvite", {"code": invite.data["code"]},
                         token=carol.token)
        assert again.status == 403

    asyncio.run(scenario())
    history = n2.get(f"/chat/history?cmd=11&dstid={group}", token=carol.token)
    assert [r["content"] for r in history.list["rows"]] == ["welcome carol"]

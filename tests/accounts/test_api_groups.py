"""Groups that are safe to run (issue 17), over REST on both backends: private by
default, invites, roles, kick and ban, join requests, history that starts at the join."""

from __future__ import annotations

import asyncio
from typing import Any

from fastim.accounts.groups import code_hash
from tests.chat_support import ChatClient
from tests.store_fixtures import ApiServer, run


def _error(reply: Any, status: int) -> str:
    assert reply.status == status, (reply.status, reply.body)
    body = reply.json
    assert body["code"] == -1
    return str(body["msg"])


def _group(api: ApiServer, token: str, name: str, **settings: str) -> int:
    reply = api.post("/contact/createcommunity", {"name": name, **settings}, token=token)
    assert reply.status == 201, reply.body
    return int(reply.data["id"])


def test_a_private_group_answers_like_a_missing_one(api: ApiServer) -> None:
    _, to = api.user_with_token()
    _, tx = api.user_with_token()
    group = _group(api, to, "secret club")
    hidden = _error(api.post("/contact/joincommunity", {"dstname": "secret club"}, token=tx), 404)
    missing = _error(api.post("/contact/joincommunity", {"dstname": "no club"}, token=tx), 404)
    assert hidden == missing
    assert _error(api.post("/contact/joincommunity", {"dstid": group}, token=tx), 404) == missing
    # The owner opens it: now it is found by name.
    assert api.post("/contact/groupsettings", {"groupid": group, "visibility": "public"},
                    token=to).data["visibility"] == "public"
    assert api.post("/contact/joincommunity", {"dstname": "secret club"},
                    token=tx).data["status"] == "joined"
    _error(api.post("/contact/groupsettings", {"groupid": group, "visibility": "private"},
                    token=tx), 403)


def test_invites_join_private_groups_and_end(api: ApiServer) -> None:
    _, to = api.user_with_token()
    _, ta = api.user_with_token()
    _, tb = api.user_with_token()
    group = _group(api, to, "invite only")
    _error(api.post("/contact/invite", {"groupid": group}, token=ta), 403)  # not a member
    made = api.post("/contact/invite", {"groupid": group, "uses": 1}, token=to)
    assert made.status == 201
    code = made.data["code"]
    assert len(code) >= 22 and made.data["url"] == f"/join/{code}"
    # Stored hashed, never in clear.
    stored = run(api.app.store.read(lambda tx: tx.rows("SELECT code_hash FROM group_invites")))
    assert [r[0] for r in stored] == [code_hash(code)]
    preview = api.get(f"/contact/invitepreview?code={code}")
    assert preview.data == {"name": "invite only", "members": 1, "id": group}
    page = api.get(f"/join/{code}")
    assert page.status == 200 and "invite only" in page.body.decode()
    assert api.post("/contact/joinbyinvite", {"code": code}, token=ta).data["status"] == "joined"
    # Used up.
    _error(api.post("/contact/joinbyinvite", {"code": code}, token=tb), 404)
    assert api.get(f"/join/{code}").status == 404
    second = api.post("/contact/invite", {"groupid": group}, token=to).data
    listed = api.get(f"/contact/invites?groupid={group}", token=to).list
    assert [i["id"] for i in listed["rows"]] == [second["id"]]
    assert api.post("/contact/revokeinvite", {"groupid": group, "inviteid": second["id"]},
                    token=to).status == 200
    _error(api.post("/contact/joinbyinvite", {"code": second["code"]}, token=tb), 404)
    _error(api.post("/contact/joinbyinvite", {"code": "x" * 22}, token=tb), 404)


def test_roles_kick_ban_and_join_requests(api: ApiServer) -> None:
    owner, to = api.user_with_token()
    admin, ta = api.user_with_token()
    member, tm = api.user_with_token()
    asker, tq = api.user_with_token()
    group = _group(api, to, "run safely", visibility="public")
    for token in (ta, tm):
        api.post("/contact/joincommunity", {"dstid": group}, token=token)
    _error(api.post("/contact/setrole", {"groupid": group, "memberid": admin["id"],
                                         "role": "admin"}, token=tm), 403)
    assert api.post("/contact/setrole", {"groupid": group, "memberid": admin["id"],
                                         "role": "admin"}, token=to).status == 200
    roles = {m["id"]: m["role"] for m in
             api.get(f"/contact/loadmembers?dstid={group}", token=tm).list["rows"]}
    assert roles == {owner["id"]: "owner", admin["id"]: "admin", member["id"]: "member"}
    info = api.get(f"/contact/groupinfo?groupid={group}", token=ta).data
    assert info["role"] == "admin" and info["members"] == 3
    # An admin cannot remove the owner; a member cannot remove anyone.
    _error(api.post("/contact/kick", {"groupid": group, "memberid": owner["id"]}, token=ta), 403)
    _error(api.post("/contact/kick", {"groupid": group, "memberid": admin["id"]}, token=tm), 403)
    kicked = api.post("/contact/kick", {"groupid": group, "memberid": member["id"], "ban": 1},
                      token=ta)
    assert kicked.data == {"removed": True, "banned": True}
    # Banned: joining again reads like a missing group; the bans list shows them.
    _error(api.post("/contact/joincommunity", {"dstid": group}, token=tm), 404)
    assert [b["id"] for b in api.get(f"/contact/bans?groupid={group}", token=ta).list["rows"]] \
        == [member["id"]]
    assert api.post("/contact/unban", {"groupid": group, "memberid": member["id"]},
                    token=to).status == 200
    assert api.post("/contact/joincommunity", {"dstid": group}, token=tm).status == 200
    # Approval: a join becomes a request the moderators answer.
    api.post("/contact/groupsettings", {"groupid": group, "join": "approval"}, token=to)
    requested = api.post("/contact/joincommunity", {"dstid": group}, token=tq)
    assert requested.status == 202 and requested.data == {"id": group, "status": "requested"}
    waiting = api.get(f"/contact/joinrequests?groupid={group}", token=ta).list
    assert [r["id"] for r in waiting["rows"]] == [asker["id"]]
    _error(api.get(f"/contact/joinrequests?groupid={group}", token=tm), 403)
    assert api.post("/contact/approvejoin", {"groupid": group, "memberid": asker["id"]},
                    token=ta).status == 200
    assert api.get(f"/contact/groupinfo?groupid={group}", token=tq).data["role"] == "member"
    _error(api.post("/contact/declinejoin", {"groupid": group, "memberid": asker["id"]},
                    token=ta), 404)


def test_history_starts_at_the_join_and_a_rejoin_skips_the_gap(api: ApiServer) -> None:
    _, to = api.user_with_token()
    member, tm = api.user_with_token()
    group = _group(api, to, "from now on", visibility="public")

    async def say(*cids: str) -> None:
        o = await ChatClient.open(api, to)
        for cid in cids:
            assert (await o.say(11, group, cid, cid))["cmd"] == 1
        await o.close()

    def readable() -> list[str]:
        rows = api.get(f"/chat/history?cmd=11&dstid={group}", token=tm).list["rows"]
        return [r["content"] for r in reversed(rows)]

    def unread() -> int:
        rows = api.get("/chat/unread", token=tm).list["rows"]
        return sum(r["unread"] for r in rows if r["dstid"] == group and r["cmd"] == 11)

    asyncio.run(say("old1", "old2"))
    api.post("/contact/joincommunity", {"dstid": group}, token=tm)
    assert readable() == [] and unread() == 0
    asyncio.run(say("new1"))
    assert readable() == ["new1"] and unread() == 1

    async def sync() -> list[str]:
        m = await ChatClient.open(api, tm)
        await m.send(cmd=20, since=0, limit=50)
        rows = (await m.cmd(21))["rows"]
        await m.close()
        return [r["content"] for r in rows if r["cmd"] == 11]

    assert asyncio.run(sync()) == ["new1"]
    api.post("/contact/kick", {"groupid": group, "memberid": member["id"]}, token=to)
    asyncio.run(say("gap"))
    assert readable() == ["new1"]  # what they could read, nothing after
    api.post("/contact/joincommunity", {"dstid": group}, token=tm)
    asyncio.run(say("back"))
    assert readable() == ["back"] and asyncio.run(sync()) == ["back"]
    # history "all": a new member reads everything.
    api.post("/contact/groupsettings", {"groupid": group, "history": "all"}, token=to)
    _, tn = api.user_with_token()
    api.post("/contact/joincommunity", {"dstid": group}, token=tn)
    rows = api.get(f"/chat/history?cmd=11&dstid={group}", token=tn).list["rows"]
    assert [r["content"] for r in reversed(rows)] == ["old1", "old2", "new1", "gap", "back"]

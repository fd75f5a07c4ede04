"""GET /chat/summaries (issue 24): the client's list of chats at start-up in one request,
on SQLite and MariaDB: every friend and group, newest first, each with its newest message
as the caller sees it (recalled, deleted for them, a group's window) and unread counts."""

from __future__ import annotations

import asyncio

from tests.chat_support import ChatClient, befriend
from tests.store_fixtures import ApiServer


def test_summaries_list_every_chat_newest_first_as_the_caller_sees_it(api: ApiServer) -> None:
    alice, ta = api.user_with_token(nickname="alice")
    bob, tb = api.user_with_token(nickname="bob")
    carol, tc = api.user_with_token(nickname="carol")
    dave, td = api.user_with_token(nickname="dave")
    eve, te = api.user_with_token(nickname="eve")  # nobody's friend
    befriend(api, ta, bob, tb)
    befriend(api, ta, carol, tc)
    befriend(api, ta, dave, td)
    group = api.post("/contact/createcommunity", {"name": "summaries", "visibility": "public"},
                     token=tb).data

    async def scenario() -> dict[str, int]:
        a, b, c, e = [await ChatClient.open(api, t) for t in (ta, tb, tc, te)]
        ids = {}
        ids["bob1"] = (await b.say(10, alice["id"], "hi alice", "b1"))["id"]
        ids["bob2"] = (await b.say(10, alice["id"], "are you there?", "b2"))["id"]
        ids["group_before"] = (await b.say(11, group["id"], "before alice joined", "g1"))["id"]
        assert api.post("/contact/joincommunity", {"dstid": group["id"]}, token=ta).status == 200
        ids["carol"] = (await c.say(10, alice["id"], "oops", "c1"))["id"]
        await c.send(cmd=61, id=ids["carol"], cid="c1r")  # recalled
        await c.expect(lambda f: f.get("cmd") == 1 and f.get("cid") == "c1r")
        assert api.post("/contact/joincommunity", {"dstid": group["id"]}, token=te).status == 200
        ids["eve"] = (await e.say(11, group["id"], "hello from eve", "e1"))["id"]
        assert api.post("/contact/leavecommunity", {"dstid": group["id"]}, token=te).status == 200
        ids["mine"] = (await a.say(10, bob["id"], "yes, here", "a1"))["id"]
        ids["hidden"] = (await b.say(10, alice["id"], "delete me", "b3"))["id"]
        await a.send(cmd=63, id=ids["hidden"], cid="a1d")  # deleted for alice alone
        await a.expect(lambda f: f.get("cmd") == 1 and f.get("cid") == "a1d")
        for client in (a, b, c, e):
            await client.close()
        return ids

    ids = asyncio.run(scenario())
    reply = api.get("/chat/summaries", token=ta)
    assert reply.status == 200
    rows = reply.list["rows"]
    assert reply.list["total"] == len(rows) == 4
    by_chat = {(r["cmd"], r["dstid"]): r for r in rows}
    # Bob's chat: the newest is one alice deleted for herself, so hers before it shows.
    with_bob = by_chat[(10, bob["id"])]
    assert with_bob["message"]["id"] == ids["mine"] and with_bob["message"]["content"] == "yes, here"
    assert with_bob["unread"] == 3  # bob's three, the deleted one included, as /chat/unread
    with_carol = by_chat[(10, carol["id"])]
    assert with_carol["message"]["recalled"] is True and with_carol["message"]["content"] == ""
    # The group: eve's message, her name along (not alice's friend); nothing from before
    # alice joined.
    in_group = by_chat[(11, group["id"])]
    assert in_group["message"]["id"] == ids["eve"] and in_group["unread"] == 1
    assert in_group["sender"]["nickname"] == "eve" and "mobile" not in in_group["sender"]
    assert "sender" not in with_bob
    assert by_chat[(10, dave["id"])] == {"cmd": 10, "dstid": dave["id"], "message": None,
                                         "unread": 0, "mentions": 0}
    # Newest first, the chats without a message last.
    assert [r["dstid"] for r in rows[:3]] == [bob["id"], group["id"], carol["id"]]
    # Bob sees the group as it is for him too.
    of_bob = {(r["cmd"], r["dstid"]): r for r in api.get("/chat/summaries", token=tb).list["rows"]}
    assert of_bob[(11, group["id"])]["message"]["id"] == ids["eve"]
    assert api.get("/chat/summaries").status == 401


def test_group_changes_place_joins_and_leaves_among_the_messages(api: ApiServer) -> None:
    owner, to = api.user_with_token(nickname="owner")
    joiner, tj = api.user_with_token(nickname="joiner")
    stranger, ts = api.user_with_token(nickname="stranger")
    group = api.post("/contact/createcommunity", {"name": "changes", "visibility": "public"},
                     token=to).data

    async def scenario() -> int:
        o = await ChatClient.open(api, to)
        first = (await o.say(11, group["id"], "first", "o1"))["id"]
        assert api.post("/contact/joincommunity", {"dstid": group["id"]}, token=tj).status == 200
        await o.say(11, group["id"], "welcome", "o2")
        assert api.post("/contact/joincommunity", {"dstid": group["id"]}, token=ts).status == 200
        assert api.post("/contact/leavecommunity", {"dstid": group["id"]}, token=ts).status == 200
        await o.close()
        return int(first)

    first = asyncio.run(scenario())
    reply = api.get(f"/contact/groupchanges?dstid={group['id']}", token=tj)
    assert reply.status == 200
    rows = [(r["nickname"], r["event"], r["after"]) for r in reply.list["rows"]]
    welcome = first + 1
    assert rows == [("joiner", "joined", first), ("stranger", "joined", welcome),
                    ("stranger", "left", welcome)]
    assert reply.list["rows"][0]["ts"] > 0
    # Only members: the one who left, a stranger, no token.
    assert api.get(f"/contact/groupchanges?dstid={group['id']}", token=ts).status == 404
    assert api.get("/contact/groupchanges?dstid=abc", token=tj).status == 400
    assert api.get(f"/contact/groupchanges?dstid={group['id']}").status == 401

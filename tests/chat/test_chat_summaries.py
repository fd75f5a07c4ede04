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
    befriend(api, ta, bob, tb)
    befriend(api, ta, carol, tc)
    befriend(api, ta, dave, td)
    group = api.post("/contact/createcommunity", {"name": "summaries", "visibility": "public"},
                     token=tb).data

    async def scenario() -> dict[str, int]:
        a, b, c = [await ChatClient.open(api, t) for t in (ta, tb, tc)]
        ids = {}
        ids["bob1"] = (await b.say(10, alice["id"], "hi alice", "b1"))["id"]
        ids["bob2"] = (await b.say(10, alice["id"], "are you there?", "b2"))["id"]
        ids["group_before"] = (await b.say(11, group["id"], "before alice joined", "g1"))["id"]
        assert api.post("/contact/joincommunity", {"dstid": group["id"]}, token=ta).status == 200
        ids["carol"] = (await c.say(10, alice["id"], "oops", "c1"))["id"]
        await c.send(cmd=61, id=ids["carol"], cid="c1r")  # recalled
        await c.expect(lambda f: f.get("cmd") == 1 and f.get("cid") == "c1r")
        ids["mine"] = (await a.say(10, bob["id"], "yes, here", "a1"))["id"]
        ids["hidden"] = (await b.say(10, alice["id"], "delete me", "b3"))["id"]
        await a.send(cmd=63, id=ids["hidden"], cid="a1d")  # deleted for alice alone
        await a.expect(lambda f: f.get("cmd") == 1 and f.get("cid") == "a1d")
        for client in (a, b, c):
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
    # The group: nothing from before alice joined; dave: no message at all.
    assert by_chat[(11, group["id"])]["message"] is None
    assert by_chat[(11, group["id"])]["unread"] == 0
    assert by_chat[(10, dave["id"])] == {"cmd": 10, "dstid": dave["id"], "message": None,
                                         "unread": 0, "mentions": 0}
    # Newest first, the chats without a message last.
    assert [r["dstid"] for r in rows[:2]] == [bob["id"], carol["id"]]
    # Bob, who wrote in the group before alice joined, sees it.
    of_bob = {(r["cmd"], r["dstid"]): r for r in api.get("/chat/summaries", token=tb).list["rows"]}
    assert of_bob[(11, group["id"])]["message"]["id"] == ids["group_before"]
    assert api.get("/chat/summaries").status == 401

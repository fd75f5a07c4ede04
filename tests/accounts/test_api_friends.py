"""Friends by consent over HTTP and /chat on one server, on SQLite and MariaDB: what the
answers reveal, the live notices (cmd 70), and what unfriend and block stop at once."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tests.chat_support import ChatClient, befriend
from tests.store_fixtures import ApiServer, api_config, new_mobile


def _contact(event: str, userid: int) -> Any:
    return lambda f: f.get("cmd") == 70 and f.get("event") == event and f["userid"] == userid


def test_addfriend_answers_alike_whether_or_not_the_number_is_used(api: ApiServer) -> None:
    me, token = api.user_with_token()
    known = api.register()
    blocker, blocker_token = api.user_with_token()
    assert api.post("/contact/block", {"dstid": me["id"]}, token=blocker_token).status == 200
    replies = [
        api.post("/contact/addfriend", {"dstname": number}, token=token)
        for number in (known["mobile"], new_mobile(), blocker["mobile"], known["mobile"])
    ]
    # Byte for byte: status, body and every header field but the date.
    seen = {(r.status, r.body, tuple((k.lower(), v) for k, v in r.headers if k.lower() != "date"))
            for r in replies}
    assert len(seen) == 1
    assert replies[0].body == b'{"code":0,"msg":"","data":{"status":"requested"}}'



def test_the_daily_quota_is_a_429_with_retry_after(db_url: str, tmp_path: Path) -> None:
    config = api_config(db_url, tmp_path)
    config.friend_requests_per_day = 2
    with ApiServer(config) as api:
        _, token = api.user_with_token()
        for _ in range(2):
            assert api.post("/contact/addfriend", {"dstname": new_mobile()}, token=token).status == 200
        reply = api.post("/contact/addfriend", {"dstid": api.register()["id"]}, token=token)
        assert reply.status == 429 and reply.json["code"] == -1
        assert 0 < int(reply.header("retry-after") or 0) <= 24 * 3600


def test_requests_accept_decline_unfriend_block_over_http(api: ApiServer) -> None:
    alice, ta = api.user_with_token(nickname="alice")
    bob, tb = api.user_with_token(nickname="bob")
    carol, tc = api.user_with_token(nickname="carol")
    api.post("/contact/addfriend", {"dstid": bob["id"]}, token=ta)
    api.post("/contact/addfriend", {"dstid": bob["id"]}, token=tc)
    rows = api.get("/contact/requests", token=tb).list["rows"]
    by_user = {row["user"]["id"]: row["id"] for row in rows}
    assert set(by_user) == {alice["id"], carol["id"]}
    assert api.post("/contact/accept", {"requestid": by_user[alice["id"]]}, token=ta).status == 404
    assert api.post("/contact/accept", {"requestid": by_user[alice["id"]]}, token=tb).status == 200
    assert api.post("/contact/decline", {"requestid": by_user[carol["id"]]}, token=tb).status == 200
    # Carol is not told: hers still looks pending.
    assert [r["direction"] for r in api.get("/contact/requests", token=tc).list["rows"]] == ["out"]
    assert api.get("/contact/requests", token=tb).list == {"rows": [], "total": 0}
    assert [f["id"] for f in api.get("/contact/loadfriend", token=ta).list["rows"]] == [bob["id"]]
    assert api.post("/contact/unfriend", {"dstid": alice["id"]}, token=tb).status == 200
    assert api.get("/contact/loadfriend", token=ta).list["total"] == 0
    assert api.post("/contact/unfriend", {"dstid": bob["id"]}, token=ta).status == 404
    assert api.post("/contact/block", {"dstid": carol["id"]}, token=tb).status == 200
    blocked = api.get("/contact/blocked", token=tb).list
    assert blocked["total"] == 1 and blocked["rows"][0]["id"] == carol["id"]
    assert "mobile" not in blocked["rows"][0]
    assert api.post("/contact/unblock", {"dstid": carol["id"]}, token=tb).status == 200
    assert api.get("/contact/blocked", token=tb).list["total"] == 0
    for path in ("/contact/accept", "/contact/decline", "/contact/unfriend", "/contact/block",
                 "/contact/unblock"):
        assert api.post(path, {}, token=tb).status == 400, path
        assert api.get(path, token=tb).status == 405, path


def test_requests_and_acceptance_arrive_live(api: ApiServer) -> None:
    alice, ta = api.user_with_token(nickname="alice")
    bob, tb = api.user_with_token(nickname="bob")
    pest, tp = api.user_with_token(nickname="pest")

    async def scenario() -> None:
        a, b = await ChatClient.open(api, ta), await ChatClient.open(api, tb)
        assert api.post("/contact/addfriend", {"dstid": bob["id"]}, token=ta).status == 200
        notice = await b.expect(_contact("request", alice["id"]))
        assert notice["requestid"] == api.get("/contact/requests", token=tb).list["rows"][0]["id"]
        accepted = api.post("/contact/accept", {"requestid": notice["requestid"]}, token=tb)
        assert accepted.data["online"] is True
        await a.expect(_contact("friend", bob["id"]))
        await b.expect(_contact("friend", alice["id"]))
        # Each sees the other online at once, and they can talk.
        await a.expect(lambda f: f.get("cmd") == 50 and f.get("userid") == bob["id"])
        await b.expect(lambda f: f.get("cmd") == 50 and f.get("userid") == alice["id"])
        ack = await a.say(10, bob["id"], "now we can talk", "c1")
        assert ack["cmd"] == 1
        assert (await b.message())["content"] == "now we can talk"
        # A request from someone bob blocks reaches no connection of his.
        api.post("/contact/block", {"dstid": pest["id"]}, token=tb)
        assert api.post("/contact/addfriend", {"dstid": bob["id"]}, token=tp).status == 200
        await b.send(cmd=0)
        while (frame := await b.frame())["cmd"] != 0:
            assert frame.get("cmd") != 70, frame
        await a.close()
        await b.close()

    asyncio.run(scenario())


def test_unfriend_stops_everything_both_ways_and_keeps_history(api: ApiServer) -> None:
    alice, ta = api.user_with_token(nickname="alice")
    bob, tb = api.user_with_token(nickname="bob")
    befriend(api, ta, bob, tb)

    async def scenario() -> None:
        a, b = await ChatClient.open(api, ta), await ChatClient.open(api, tb)
        assert b.snapshot["users"] == [alice["id"]]
        await a.say(10, bob["id"], "before", "c1")
        await b.message()
        assert api.post("/contact/unfriend", {"dstid": alice["id"]}, token=tb).status == 200
        for client, other in ((a, bob), (b, alice)):
            await client.expect(lambda f, o=other: f.get("cmd") == 50
                                and f.get("userid") == o["id"] and f["online"] is False)
            await client.expect(_contact("unfriend", other["id"]))
        for client, other, cid in ((a, bob, "c2"), (b, alice, "c3")):
            refused = await client.say(10, other["id"], "after", cid)
            assert (refused["cmd"], refused["error"]) == (2, "not_friend")
            await client.send(cmd=40, kind=10, dstid=other["id"])
            typing = await client.expect(lambda f: f.get("cmd") in (2, 40))
            assert typing["cmd"] == 2 and typing["error"] == "not_friend"
        await a.no_more_messages()
        await b.no_more_messages()
        # Alice leaving is not announced to Bob any more.
        await a.close()
        await b.send(cmd=0)
        while (frame := await b.frame())["cmd"] != 0:
            assert frame.get("cmd") != 50, frame
        await b.close()

    asyncio.run(scenario())
    for token, other in ((ta, bob), (tb, alice)):
        history = api.get(f"/chat/history?cmd=10&dstid={other['id']}", token=token)
        assert history.status == 200 and [r["content"] for r in history.list["rows"]] == ["before"]


def test_a_blocked_user_cannot_reach_the_blocker_who_shows_offline(api: ApiServer) -> None:
    alice, ta = api.user_with_token(nickname="alice")
    mallory, tm = api.user_with_token(nickname="mallory")
    befriend(api, tm, alice, ta)

    async def scenario() -> None:
        m = await ChatClient.open(api, tm)
        a = await ChatClient.open(api, ta)
        await m.expect(lambda f: f.get("cmd") == 50 and f.get("userid") == alice["id"]
                       and f["online"])
        assert api.post("/contact/block", {"dstid": mallory["id"]}, token=ta).status == 200
        # Mallory sees what an unfriend shows: alice offline, no longer a friend.
        await m.expect(lambda f: f.get("cmd") == 50 and f.get("userid") == alice["id"]
                       and f["online"] is False)
        await m.expect(_contact("unfriend", alice["id"]))
        refused = await m.say(10, alice["id"], "let me in", "m1")
        assert refused["error"] == "not_friend"
        await a.no_more_messages()
        # Alice reconnecting is not shown to mallory; mallory asking reaches nobody.
        await a.close()
        a = await ChatClient.open(api, ta)
        assert api.post("/contact/addfriend", {"dstid": alice["id"]}, token=tm).data == {
            "status": "requested"}
        await a.send(cmd=0)
        while (frame := await a.frame())["cmd"] != 0:
            assert frame.get("cmd") != 70, frame
        await m.send(cmd=0)
        while (frame := await m.frame())["cmd"] != 0:
            assert frame.get("cmd") != 50, frame
        await a.close()
        await m.close()

    asyncio.run(scenario())
    assert api.get("/contact/requests", token=ta).list["total"] == 0

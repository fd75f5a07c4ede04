"""The chat hub over real sockets: a real server, real WebSocket clients, SQLite and MariaDB."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import pytest

from fastim.ws import ConnectionClosed, InvalidHandshake, connect
from tests.chat_support import ChatClient, befriend
from tests.store_fixtures import ApiServer


def pair(api: ApiServer) -> tuple[dict[str, Any], str, dict[str, Any], str]:
    alice, ta = api.user_with_token(nickname="alice")
    bob, tb = api.user_with_token(nickname="bob")
    befriend(api, ta, bob, tb)
    return alice, ta, bob, tb


def stored_messages(api: ApiServer) -> list[tuple[Any, ...]]:
    return api.call(api.app.store.read(
        lambda tx: tx.rows("SELECT sender, cid, content FROM messages ORDER BY id")))


def test_two_friends_chat_both_ways_with_acks(api: ApiServer) -> None:
    alice, ta, bob, tb = pair(api)

    async def scenario() -> None:
        a = await ChatClient.open(api, ta)
        b = await ChatClient.open(api, tb)
        ack = await a.say(10, bob["id"], "你好 bob 😀", "a1")
        assert ack["cmd"] == 1 and ack["id"] > 0 and ack["dup"] is False
        got = await b.message()
        assert got["id"] == ack["id"] and got["userid"] == alice["id"]
        assert (got["content"], got["dstid"], got["cid"]) == ("你好 bob 😀", bob["id"], "a1")
        ack2 = await b.say(10, alice["id"], "hi alice", "b1")
        back = await a.message()
        assert back["id"] == ack2["id"] > ack["id"] and back["userid"] == bob["id"]
        await a.close()
        await b.close()

    asyncio.run(scenario())


def test_forged_userid_is_replaced_by_the_real_sender(api: ApiServer) -> None:
    alice, ta, bob, tb = pair(api)
    mallory, tm = api.user_with_token(nickname="mallory")
    befriend(api, tm, bob, tb)

    async def scenario() -> None:
        m = await ChatClient.open(api, tm)
        b = await ChatClient.open(api, tb)
        await m.say(10, bob["id"], "I am alice", "m1", userid=alice["id"])
        got = await b.message()
        assert got["userid"] == mallory["id"]
        await m.close()
        await b.close()

    asyncio.run(scenario())
    assert stored_messages(api) == [(mallory["id"], "m1", "I am alice")]


def test_non_friend_and_non_member_are_refused_and_nothing_is_stored(api: ApiServer) -> None:
    alice, ta, bob, tb = pair(api)
    stranger, ts = api.user_with_token()
    group = api.post("/contact/createcommunity", {"name": "closed club"}, token=tb).data

    async def scenario() -> None:
        s = await ChatClient.open(api, ts)
        refused = await s.say(10, alice["id"], "hello?", "s1")
        assert (refused["cmd"], refused["error"]) == (2, "not_friend")
        refused = await s.say(11, group["id"], "let me in", "s2")
        assert (refused["cmd"], refused["error"]) == (2, "not_member")
        refused = await s.say(10, stranger["id"], "me myself", "s3")
        assert refused["error"] == "not_friend"
        await s.close()

    asyncio.run(scenario())
    assert stored_messages(api) == []


def test_bad_input_gets_an_error_reply_and_changes_nothing(api: ApiServer) -> None:
    alice, ta, bob, tb = pair(api)

    async def scenario() -> None:
        a = await ChatClient.open(api, ta)
        for raw, reason in [("not json", "bad_json"), ("[1]", "bad_json"),
                            ('{"cmd": 77}', "unknown_cmd"),
                            (json.dumps({"cmd": 10, "dstid": bob["id"], "media": 4,
                                         "url": "javascript:alert(1)"}), "bad_url"),
                            (json.dumps({"cmd": 10, "dstid": bob["id"], "media": 1,
                                         "content": "x" * 4001}), "too_long"),
                            # a lone surrogate would fail the whole group-commit batch
                            ('{"cmd": 10, "dstid": ' + str(bob["id"])
                             + ', "media": 1, "content": "\\ud800"}', "bad_field")]:
            await a.connection.send(raw)
            error = await a.cmd(2)
            assert error["error"] == reason
        # the connection still works
        ack = await a.say(10, bob["id"], "still here", "ok1")
        assert ack["cmd"] == 1
        await a.close()

    asyncio.run(scenario())
    assert stored_messages(api) == [(alice["id"], "ok1", "still here")]


def test_a_connection_that_keeps_sending_garbage_is_closed_with_1008(api: ApiServer) -> None:
    _, ta, _, _ = pair(api)

    async def scenario() -> int | None:
        a = await ChatClient.open(api, ta)
        with pytest.raises(ConnectionClosed):
            for _ in range(100):
                await a.connection.send("garbage")
                await asyncio.sleep(0)
            while True:
                await a.frame()
        await a.close()  # else the server's shutdown waits for a peer that is gone
        return a.connection.close_code

    assert asyncio.run(scenario()) == 1008


def test_message_rate_limit_closes_with_1008(api: ApiServer) -> None:
    alice, ta, bob, tb = pair(api)

    async def scenario() -> int | None:
        a = await ChatClient.open(api, ta)
        with pytest.raises(ConnectionClosed):
            for n in range(500):  # far above the burst of 40
                await a.send(cmd=0, n=n)
            while True:
                await a.frame()
        await a.close()  # else the server's shutdown waits for a peer that is gone
        return a.connection.close_code

    assert asyncio.run(scenario()) == 1008


def test_group_of_50_each_member_receives_each_message_once_in_server_id_order(
        api: ApiServer) -> None:
    owner, to = api.user_with_token(nickname="owner")
    group = api.post("/contact/createcommunity", {"name": "fifty", "visibility": "public"}, token=to).data
    members = [(owner, to)]
    for _ in range(49):
        user, token = api.user_with_token()
        assert api.post("/contact/joincommunity", {"dstid": group["id"]}, token=token).status == 200
        members.append((user, token))

    async def scenario() -> None:
        clients = [await ChatClient.open(api, token) for _, token in members]
        senders = clients[:5]
        for round_ in range(4):
            for n, client in enumerate(senders):
                await client.send(cmd=11, dstid=group["id"], media=1,
                                  content=f"r{round_} from {n}", cid=f"{round_}-{n}")
        expected = 4 * len(senders)
        for index, client in enumerate(clients):
            own = 4 if index < len(senders) else 0
            received = [await client.message() for _ in range(expected - own)]
            ids = [m["id"] for m in received]
            assert ids == sorted(ids) and len(set(ids)) == len(ids)
        for client in clients:
            await client.no_more_messages()
            await client.close()

    asyncio.run(scenario())


def test_multi_device_both_devices_receive_and_the_sender_sees_its_own_message(
        api: ApiServer) -> None:
    alice, ta, bob, tb = pair(api)
    ta2 = api.login(alice, device="phone")

    async def scenario() -> None:
        laptop = await ChatClient.open(api, ta)
        phone = await ChatClient.open(api, ta2)
        b = await ChatClient.open(api, tb)
        ack = await laptop.say(10, bob["id"], "from the laptop", "l1")
        mirrored = await phone.message()
        assert mirrored["id"] == ack["id"] and mirrored["userid"] == alice["id"]
        await b.say(10, alice["id"], "to both", "b1")
        assert (await laptop.message())["content"] == "to both"
        assert (await phone.message())["content"] == "to both"
        for c in (laptop, phone, b):
            await c.close()

    asyncio.run(scenario())


def test_offline_delivery_through_sync_in_order_without_duplicates(api: ApiServer) -> None:
    alice, ta, bob, tb = pair(api)

    async def scenario() -> None:
        a = await ChatClient.open(api, ta)
        b = await ChatClient.open(api, tb)
        first = await a.say(10, bob["id"], "before", "x0")
        seen = (await b.message())["id"]
        await b.close()
        sent = [await a.say(10, bob["id"], f"while away {n}", f"x{n + 1}") for n in range(7)]
        b = await ChatClient.open(api, tb)
        rows: list[dict[str, Any]] = []
        since = seen
        while True:
            await b.send(cmd=20, since=since, limit=3)
            page = await b.cmd(21)
            rows += page["rows"]
            if not page["more"]:
                break
            since = page["next"]
        assert [r["id"] for r in rows] == [s["id"] for s in sent]
        assert [r["content"] for r in rows] == [f"while away {n}" for n in range(7)]
        assert first["id"] == seen
        await a.close()
        await b.close()

    asyncio.run(scenario())


def test_duplicate_cid_is_stored_and_delivered_once(api: ApiServer) -> None:
    alice, ta, bob, tb = pair(api)

    async def scenario() -> None:
        a = await ChatClient.open(api, ta)
        b = await ChatClient.open(api, tb)
        first = await a.say(10, bob["id"], "once", "same")
        again = await a.say(10, bob["id"], "once", "same")
        assert again["id"] == first["id"] and again["dup"] is True
        # two copies in one burst (likely one batch) are one message too
        await a.send(cmd=10, dstid=bob["id"], media=1, content="twice", cid="burst")
        await a.send(cmd=10, dstid=bob["id"], media=1, content="twice", cid="burst")
        acks = [await a.expect(lambda f: f.get("cid") == "burst") for _ in range(2)]
        assert acks[0]["id"] == acks[1]["id"]
        assert sorted(x["dup"] for x in acks) == [False, True]
        got = [await b.message(), await b.message()]
        assert [g["content"] for g in got] == ["once", "twice"]
        await b.no_more_messages()  # no third copy
        await a.close()
        await b.close()

    asyncio.run(scenario())
    assert [row[1] for row in stored_messages(api)] == ["same", "burst"]


def test_read_receipts_history_and_unread_counts(api: ApiServer) -> None:
    alice, ta, bob, tb = pair(api)

    async def scenario() -> None:
        a = await ChatClient.open(api, ta)
        b = await ChatClient.open(api, tb)
        acks = [await a.say(10, bob["id"], f"m{n}", f"c{n}") for n in range(3)]
        unread = api.get("/chat/unread", token=tb).list["rows"]
        assert unread == [{"cmd": 10, "dstid": alice["id"], "unread": 3, "last": acks[2]["id"],
                           "mentions": 0}]
        await b.send(cmd=30, kind=10, dstid=alice["id"], upto=acks[1]["id"])
        receipt = await a.cmd(31)
        assert receipt == {"cmd": 31, "kind": 10, "dstid": alice["id"], "userid": bob["id"],
                           "upto": acks[1]["id"]}
        # marks only move forward
        await b.send(cmd=30, kind=10, dstid=alice["id"], upto=1)
        assert (await a.cmd(31))["upto"] == acks[1]["id"]
        unread = api.get("/chat/unread", token=tb).list["rows"]
        assert unread[0]["unread"] == 1
        await a.close()
        await b.close()

    asyncio.run(scenario())
    page = api.get(f"/chat/history?cmd=10&dstid={bob['id']}&pagesize=2", token=ta).list
    assert [r["content"] for r in page["rows"]] == ["m2", "m1"]
    older = api.get(f"/chat/history?cmd=10&dstid={bob['id']}&before={page['rows'][-1]['id']}",
                    token=ta).list
    assert [r["content"] for r in older["rows"]] == ["m0"]
    # `total` counts the whole conversation, as for every list, whatever the page shows.
    assert page["total"] == older["total"] == 3
    stranger, ts = api.user_with_token()
    assert api.get(f"/chat/history?cmd=10&dstid={bob['id']}", token=ts).status == 403
    assert api.get(f"/chat/history?cmd=10&dstid={bob['id']}").status == 401
    reads = api.get(f"/chat/reads?cmd=10&dstid={alice['id']}", token=tb).list
    assert reads["rows"] == [{"userid": bob["id"], "upto": page["rows"][1]["id"]}]


def test_presence_and_typing(api: ApiServer) -> None:
    alice, ta, bob, tb = pair(api)

    async def scenario() -> None:
        a = await ChatClient.open(api, ta)
        assert a.snapshot["users"] == []
        b = await ChatClient.open(api, tb)
        assert b.snapshot["users"] == [alice["id"]]
        came = await a.cmd(50)
        assert came == {"cmd": 50, "userid": bob["id"], "online": True}
        friends = api.post("/contact/loadfriend", {}, token=ta).list["rows"]
        assert friends[0]["online"] is True
        await b.send(cmd=40, kind=10, dstid=alice["id"])
        assert await a.cmd(40) == {"cmd": 40, "kind": 10, "dstid": alice["id"],
                                   "userid": bob["id"]}
        await b.close()
        went = await a.cmd(50)
        assert went == {"cmd": 50, "userid": bob["id"], "online": False}
        await a.close()

    asyncio.run(scenario())


def test_upgrade_needs_a_valid_token_and_an_allowed_origin(api: ApiServer) -> None:
    _, ta, _, _ = pair(api)

    async def status_of(url: str, **options: Any) -> int:
        try:
            connection = await connect(url, **options)
        except InvalidHandshake as exc:
            return exc.status
        await connection.close()
        return 101

    base = f"ws://127.0.0.1:{api.port}/chat"
    assert asyncio.run(status_of(base)) == 401
    assert asyncio.run(status_of(base + "?token=forged")) == 401
    assert asyncio.run(status_of(f"{base}?token={ta}", origin="https://evil.example")) == 403
    own = f"http://127.0.0.1:{api.port}"
    assert asyncio.run(status_of(f"{base}?token={ta}", origin=own)) == 101
    cookie = [("Cookie", f"fastim_token={ta}")]
    assert asyncio.run(status_of(base, origin=own, extra_headers=cookie)) == 101


def test_a_reader_that_stops_reading_is_cut_off_while_others_keep_receiving(
        roomy_api: ApiServer) -> None:
    api = roomy_api
    owner, to = api.user_with_token()
    group = api.post("/contact/createcommunity", {"name": "with a sleeper", "visibility": "public"}, token=to).data
    sleeper, tz = api.user_with_token()
    reader, tr = api.user_with_token()
    for token in (tz, tr):
        api.post("/contact/joincommunity", {"dstid": group["id"]}, token=token)

    async def scenario() -> None:
        # The sleeper's socket has a small receive buffer and is never read after the 101.
        raw = socket.socket()
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        raw.connect(("127.0.0.1", api.port))
        raw.sendall(
            f"GET /chat?token={tz} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode())
        o = await ChatClient.open(api, to)
        r = await ChatClient.open(api, tr)
        while not api.app.services.hub.is_online(sleeper["id"]):
            await asyncio.sleep(0.01)
        text = "字" * 3900  # ~12 KB a frame
        # Kernel buffers on loopback hold a few MB; 1,500 frames are ~17 MB, far past them
        # and the 256 KiB outbound bound. The reader gets every one meanwhile.
        for count in range(1500):
            await o.say(11, group["id"], text, f"big{count}")
            got = await r.message()
            assert got["cid"] == f"big{count}"
            if not api.app.services.hub.is_online(sleeper["id"]):
                break
        assert not api.app.services.hub.is_online(sleeper["id"])
        assert api.app.services.hub.is_online(reader["id"])
        last = await o.say(11, group["id"], "after the cut", "after")
        assert (await r.message())["id"] == last["id"]
        raw.close()
        await o.close()
        await r.close()

    asyncio.run(scenario())


def test_a_member_who_left_or_a_dissolved_group_can_no_longer_post(api: ApiServer) -> None:
    owner, to = api.user_with_token()
    member, tm = api.user_with_token()
    group = api.post("/contact/createcommunity", {"name": "short-lived", "visibility": "public"}, token=to).data
    api.post("/contact/joincommunity", {"dstid": group["id"]}, token=tm)

    async def scenario() -> None:
        o = await ChatClient.open(api, to)
        m = await ChatClient.open(api, tm)
        assert (await m.say(11, group["id"], "hello all", "m1"))["cmd"] == 1
        assert (await o.message())["content"] == "hello all"
        assert api.post("/contact/leavecommunity", {"dstid": group["id"]}, token=tm).status == 200
        refused = await m.say(11, group["id"], "still here?", "m2")
        assert refused["error"] == "not_member"
        # the one who left receives the group's messages no more
        await o.say(11, group["id"], "after you left", "o1")
        await m.no_more_messages()
        assert api.post("/contact/dissolvecommunity", {"dstid": group["id"]},
                        token=to).status == 200
        assert (await o.say(11, group["id"], "anyone?", "o2"))["error"] == "not_member"
        await o.close()
        await m.close()

    asyncio.run(scenario())


def test_who_receives_a_group_message_follows_each_join_leave_and_connect_at_once(
        api: ApiServer) -> None:
    # The hub keeps a list of each group's recipient sessions between messages: every
    # change of membership or presence must show in the very next message.
    owner, to = api.user_with_token()
    first, t1 = api.user_with_token()
    second, t2 = api.user_with_token()
    late, tl = api.user_with_token()
    group = api.post("/contact/createcommunity", {"name": "changing", "visibility": "public"}, token=to).data
    for token in (t1, t2):
        assert api.post("/contact/joincommunity", {"dstid": group["id"]},
                        token=token).status == 200

    async def scenario() -> None:
        o = await ChatClient.open(api, to)
        a = await ChatClient.open(api, t1)

        async def say(text: str, *receivers: ChatClient) -> None:
            ack = await o.say(11, group["id"], text, text)
            for receiver in receivers:
                got = await receiver.message()
                assert (got["id"], got["content"]) == (ack["id"], text)

        await say("one", a)
        b = await ChatClient.open(api, t2)  # a member comes online
        await say("two", a, b)
        a2 = await ChatClient.open(api, api.login(first, device="phone"))  # a second device
        await say("three", a, b, a2)
        await a2.close()  # that device goes offline again
        await say("four", a, b)
        assert api.post("/contact/leavecommunity", {"dstid": group["id"]},
                        token=t2).status == 200
        await say("five", a)
        await b.no_more_messages()
        n = await ChatClient.open(api, tl)  # online first, then joins
        assert api.post("/contact/joincommunity", {"dstid": group["id"]},
                        token=tl).status == 200
        await say("six", a, n)
        await a.close()  # the last device of a member
        await say("seven", n)
        for client in (o, b, n):
            await client.no_more_messages()
            await client.close()

    asyncio.run(scenario())


def test_a_batch_the_database_refuses_is_not_acked_and_a_resend_stores_it_once(
        api: ApiServer) -> None:
    alice, ta, bob, tb = pair(api)
    store = api.app.store
    rename = ("ALTER TABLE messages RENAME TO messages_away",
              "ALTER TABLE messages_away RENAME TO messages")

    async def scenario() -> None:
        a = await ChatClient.open(api, ta)
        b = await ChatClient.open(api, tb)
        api.call(store.write(lambda tx: tx.execute(rename[0])))
        try:
            refused = await a.say(10, bob["id"], "during the outage", "out1")
        finally:
            api.call(store.write(lambda tx: tx.execute(rename[1])))
        assert (refused["cmd"], refused["error"]) == (2, "store_failed")
        await b.no_more_messages()
        ack = await a.say(10, bob["id"], "during the outage", "out1")
        assert ack["cmd"] == 1 and ack["dup"] is False
        assert (await b.message())["id"] == ack["id"]
        await a.close()
        await b.close()

    asyncio.run(scenario())
    assert stored_messages(api) == [(alice["id"], "out1", "during the outage")]


def test_a_sync_the_database_fails_gets_an_error_and_the_connection_goes_on(
        api: ApiServer) -> None:
    alice, ta, bob, tb = pair(api)
    store = api.app.store

    async def scenario() -> None:
        a = await ChatClient.open(api, ta)
        api.call(store.write(lambda tx: tx.execute("ALTER TABLE messages RENAME TO gone")))
        try:
            await a.send(cmd=20, since=0)
            error = await a.cmd(2)
        finally:
            api.call(store.write(lambda tx: tx.execute("ALTER TABLE gone RENAME TO messages")))
        assert error["error"] == "unavailable"
        await a.send(cmd=20, since=0)
        assert (await a.cmd(21))["rows"] == []
        await a.close()

    asyncio.run(scenario())


def test_history_parameters_are_checked_like_every_api_field(api: ApiServer) -> None:
    alice, ta, bob, tb = pair(api)
    for query in ("cmd=10&dstid=abc", "cmd=10&dstid=-1", "cmd=10&dstid=99999999999999999999",
                  f"cmd=10&dstid={bob['id']}&pagesize=1.5", "dstid=1", "cmd=12&dstid=1"):
        reply = api.get(f"/chat/history?{query}", token=ta)
        assert reply.status == 400, (query, reply.body)
        assert reply.json["code"] == -1


def test_history_total_is_the_whole_conversation_and_pagesize_is_1_to_100(
        api: ApiServer) -> None:
    # The outside attack: `total` was the page's length and pagesize=0 gave one row.
    alice, ta, bob, tb = pair(api)

    async def scenario() -> None:
        a = await ChatClient.open(api, ta)
        for n in range(5):
            await a.say(10, bob["id"], f"m{n}", f"t{n}")
        await a.close()

    asyncio.run(scenario())
    base = f"/chat/history?cmd=10&dstid={bob['id']}"
    for query, rows in (("&pagesize=2", 2), ("&pagesize=1", 1), ("", 5), ("&pagesize=100", 5)):
        reply = api.get(base + query, token=ta)
        assert reply.status == 200, reply.body
        assert (len(reply.list["rows"]), reply.list["total"]) == (rows, 5), query
    for pagesize in (0, 101):
        reply = api.get(f"{base}&pagesize={pagesize}", token=ta)
        assert reply.status == 400, (pagesize, reply.body)
        assert reply.json["msg"] == "pagesize must be 1 to 100"


def test_a_session_sends_each_id_once_whatever_order_the_ids_come_in() -> None:
    # Ids mostly come in increasing order (no lookup then), but another node's message
    # can be overtaken by a newer one, the bus can hand a node a message twice, and a
    # sync page can hold what also arrives live: each id goes out once, none is lost.
    from fastim.chat.session import RECENT_IDS, ChatSession
    from fastim.ws import prepare, serve

    async def scenario() -> list[Any]:
        sent: list[bool] = []

        async def handler(ws: Any) -> None:
            session = ChatSession(ws, user_id=1, max_buffer=1 << 20)
            for message_id in (5, 7, 6, 7, 5, 8):  # 6 overtaken; 7 and 5 again
                session.deliver(prepare(json.dumps({"id": message_id})), message_id)
            sent.extend(session.first_sync(n) for n in (6, 8, 9))  # a sync page
            session.sync_paged(9, more=False)
            session.deliver(prepare('{"id":9}'), 9)  # already in the sync page
            session.deliver(prepare('{"cmd":40}'), None)  # typing: no id, no record
            for message_id in range(100, 100 + 3 * RECENT_IDS):  # a long run
                session.deliver(prepare("{}"), message_id)
            # Kept while above the client's cursor (9): its next sync may hold them;
            # once a page moved the cursor past them, back to the usual size.
            assert len(session.recent) == 3 * RECENT_IDS  # (those up to 9 forgotten)
            session.sync_paged(100 + 3 * RECENT_IDS - 1, more=False)
            assert RECENT_IDS <= len(session.recent) < 2 * RECENT_IDS
            session.push('{"end":true}')
            await ws.wait_closed()

        async with (serve(handler, "127.0.0.1", 0, compression=None) as server,
                    connect(f"ws://127.0.0.1:{server.port}", compression=None) as client):
            got = []
            while (frame := json.loads(await client.recv())) != {"end": True}:
                if frame:
                    got.append(frame)
        return [sent, got]

    sent, got = asyncio.run(asyncio.wait_for(scenario(), 10))
    assert sent == [False, False, True]
    assert got == [{"id": 5}, {"id": 7}, {"id": 6}, {"id": 8}, {"cmd": 40}]


def test_a_long_sync_never_repeats_what_came_live_while_it_paged() -> None:
    # Sync rows are recorded apart from live ids, and live ids a later page may hold are
    # kept until the sync is over: a page of 200 old rows, or a flood of live messages
    # between two pages, must not make a later page send a live message again.
    from fastim.chat.session import RECENT_IDS, ChatSession

    session = ChatSession(None, user_id=1, max_buffer=1 << 20)
    live = [session.first_send(n) for n in range(301, 306)]  # right after the snapshot
    page1 = [session.first_sync(n) for n in range(1, 201)]
    session.sync_paged(200, more=True)
    flood = range(306, 306 + 3 * RECENT_IDS)  # live while the client pages on
    flooded = [session.first_send(n) for n in flood]
    page2 = [session.first_sync(n) for n in range(201, flood[-1] + 1)]
    session.sync_paged(flood[-1], more=False)
    assert all(live) and all(page1) and all(flooded)
    assert page2 == [True] * 100 + [False] * (5 + len(flood))
    # Over: the live record is back to its usual size, and still answers for duplicates.
    assert session.first_send(flood[-1] + 1)
    assert len(session.recent) < 2 * RECENT_IDS
    assert not session.first_send(flood[-1])


def test_a_sync_asked_again_keeps_the_live_ids_above_its_since_until_its_last_page() -> None:
    # A checkpoint sync from `since` re-reads what came live above it: those ids are kept
    # (past the usual RECENT_IDS, above the client's cursor) until its last page, and
    # named to the store as held.
    from fastim.chat.session import RECENT_IDS, ChatSession

    session = ChatSession(None, user_id=1, max_buffer=1 << 20)
    session.sync_paged(0, more=False)  # the first sync is over
    live = range(1, 1 + 3 * RECENT_IDS)
    assert all(session.first_send(n) for n in live)
    held, changes = session.sync_asked(100, None)
    assert changes == frozenset()
    assert held == frozenset(range(101, live[-1] + 1))  # all kept above the cursor (0)
    assert held == frozenset(n for n in session.recent if n > 100)
    flood = range(live[-1] + 1, live[-1] + 1 + 3 * RECENT_IDS)
    assert all(session.first_send(n) for n in flood)  # live while the sync reads
    page = [session.first_sync(n) for n in range(101, flood[-1] + 1)]
    session.sync_paged(flood[-1], more=False)
    # Only what was forgotten before the ask goes again; nothing held then or live since.
    assert page == [n not in held and n not in flood for n in range(101, flood[-1] + 1)]
    assert len(held) >= RECENT_IDS


def test_a_device_back_to_a_backlog_of_pages_gets_each_message_once(
        roomy_api: ApiServer) -> None:
    api = roomy_api
    alice, ta, bob, tb = pair(api)

    async def scenario() -> None:
        b = await ChatClient.open(api, tb)
        offline = [(await b.say(10, alice["id"], f"m{n}", f"o{n}"))["id"] for n in range(300)]
        a = await ChatClient.open(api, ta)
        live = [(await b.say(10, alice["id"], f"live{n}", f"l{n}"))["id"] for n in range(5)]
        got = [(await a.message())["id"] for _ in live]
        since = 0
        while True:  # pages of 200: the first pushes 200 old rows through the record
            await a.send(cmd=20, since=since)
            page = await a.cmd(21)
            got += [row["id"] for row in page["rows"]]
            if not page["more"]:
                break
            since = page["next"]
        assert sorted(got) == sorted(offline + live)  # each once
        await a.no_more_messages()
        await a.close()
        await b.close()

    asyncio.run(scenario())


def test_a_checkpoint_sync_answers_what_came_live_by_its_next_alone(api: ApiServer) -> None:
    """The client's cursor moves only with sync pages (docs/chat-protocol.md "The sync
    cursor"): from nothing it starts at `head`; later it asks again from there for what
    came live, and the page moves its cursor without sending those messages twice."""
    alice, ta, bob, tb = pair(api)

    async def scenario() -> None:
        b = await ChatClient.open(api, tb)
        before = (await b.say(10, alice["id"], "before the device", "c0"))["id"]
        a = await ChatClient.open(api, ta)
        await a.send(cmd=20, since=0, limit=1, changes_since=0)
        first = await a.cmd(21)
        assert (first["head"], [r["id"] for r in first["rows"]]) == (before, [before])
        live = [(await b.say(10, alice["id"], f"live{n}", f"c{n + 1}"))["id"]
                for n in range(3)]
        assert [(await a.message())["id"] for _ in live] == live
        own = (await a.say(10, bob["id"], "an answer", "a1"))["id"]  # held since its ack
        assert (await b.message())["id"] == own
        await b.send(cmd=60, id=live[0], content="live0, edited", cid="e1")
        edit = await a.cmd(60)
        await a.send(cmd=20, since=first["head"], limit=200,
                     changes_since=first["changes_next"])
        checkpoint = await a.cmd(21)
        assert (checkpoint["rows"], checkpoint["next"], checkpoint["more"]) == ([], own,
                                                                               False)
        assert (checkpoint["changes"], checkpoint["changes_next"]) == ([], edit["change"])
        assert "head" not in checkpoint
        # The next connection (the first was lost before a checkpoint) names what it
        # holds above its cursor: only the rest comes again.
        again = await ChatClient.open(api, ta)
        await again.send(cmd=20, since=first["head"], limit=200, held=live[1:] + [own])
        resync = await again.cmd(21)
        assert ([r["id"] for r in resync["rows"]], resync["next"]) == ([live[0]], own)
        assert resync["rows"][0]["content"] == "live0, edited"
        await again.close()
        await a.no_more_messages()
        await a.close()
        await b.close()

    asyncio.run(scenario())


def test_a_commit_whose_answer_was_lost_is_delivered_live_at_its_resend(
        api: ApiServer) -> None:
    # The database commits the batch but its answer never comes back (a connection lost
    # after COMMIT): the sender gets store_failed and resends; the resend finds the
    # message stored (dup) and it must still reach the recipient live, once.
    alice, ta, bob, tb = pair(api)
    commit = api.app.services.hub._commit
    really_write = commit._write

    async def answer_lost(batch: Any) -> Any:
        await really_write(batch)
        raise ConnectionResetError("the commit's answer was lost")

    async def scenario() -> None:
        a = await ChatClient.open(api, ta)
        b = await ChatClient.open(api, tb)
        commit._write = answer_lost
        try:
            refused = await a.say(10, bob["id"], "committed after all", "lost1")
        finally:
            commit._write = really_write
        assert (refused["cmd"], refused["error"]) == (2, "store_failed")
        ack = await a.say(10, bob["id"], "committed after all", "lost1")
        assert ack["cmd"] == 1 and ack["dup"] is True
        assert (await b.message())["id"] == ack["id"]
        # A later duplicate of it is acked and not delivered again.
        again = await a.say(10, bob["id"], "committed after all", "lost1")
        assert again["id"] == ack["id"] and again["dup"] is True
        await b.no_more_messages()
        await a.close()
        await b.close()

    asyncio.run(scenario())
    assert stored_messages(api) == [(alice["id"], "lost1", "committed after all")]

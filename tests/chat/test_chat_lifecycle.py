"""The message lifecycle over real sockets, on SQLite and MariaDB: replies, edits,
recalls, reactions, delete for me and mentions, live and through sync and history, with
every rule enforced by the server (docs/chat-protocol.md, "Changing a message")."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from fastim.chat.hub import HubOptions
from fastim.chat.lifecycle import LifecycleOptions
from tests.chat_support import ChatClient, befriend
from tests.store_fixtures import ApiServer, api_config


def pair(api: ApiServer) -> tuple[dict[str, Any], str, dict[str, Any], str]:
    alice, ta = api.user_with_token(nickname="alice")
    bob, tb = api.user_with_token(nickname="bob")
    befriend(api, ta, bob, tb)
    return alice, ta, bob, tb


async def change(client: ChatClient, cmd: int, cid: str, **fields: Any) -> dict[str, Any]:
    """Send a change and return its ack (or error)."""
    await client.send(cmd=cmd, cid=cid, **fields)
    return await client.expect(lambda f: f.get("cmd") in (1, 2) and f.get("cid") == cid)


async def changed(client: ChatClient, cmd: int) -> dict[str, Any]:
    return await client.expect(lambda f: f.get("cmd") == cmd and "change" in f)


def history(api: ApiServer, token: str, cmd: int, dstid: int) -> list[dict[str, Any]]:
    reply = api.get(f"/chat/history?cmd={cmd}&dstid={dstid}&pagesize=50", token=token)
    assert reply.status == 200, reply.json
    rows: list[dict[str, Any]] = reply.list["rows"]
    return rows


def row(api: ApiServer, message_id: int) -> tuple[Any, ...]:
    found = api.call(api.app.store.read(lambda tx: tx.row(
        "SELECT content, pic, url, memo, sealed FROM messages WHERE id = ?", [message_id])))
    assert found is not None
    return tuple(found)


def group_of(api: ApiServer, owner_token: str, tokens: list[str], name: str) -> int:
    group = api.post("/contact/createcommunity", {"name": name, "visibility": "public"}, token=owner_token).data
    for token in tokens:
        assert api.post("/contact/joincommunity", {"dstid": group["id"]},
                        token=token).status == 200
    return int(group["id"])


@pytest.fixture
def strict_api(db_url: str, tmp_path: Any) -> Iterator[ApiServer]:
    """A server whose edit and recall windows are over at once."""
    config = api_config(db_url, tmp_path)
    config.hub = HubOptions(lifecycle=LifecycleOptions(edit_window=0.0, recall_window=0.0))
    with ApiServer(config) as server:
        yield server


def test_a_reply_carries_the_quote_live_and_in_history(api: ApiServer) -> None:
    alice, ta, bob, tb = pair(api)
    carol, tc = api.user_with_token(nickname="carol")
    befriend(api, ta, carol, tc)

    async def scenario() -> None:
        a, b = await ChatClient.open(api, ta), await ChatClient.open(api, tb)
        first = await a.say(10, bob["id"], "x" * 150, "a1")
        await b.message()
        answer = await b.say(10, alice["id"], "yes", "b1", reply_to=first["id"])
        assert answer["cmd"] == 1
        got = await a.message()
        assert got["reply"] == {"id": first["id"], "userid": alice["id"], "media": 1,
                                "content": "x" * 100}
        # A message of another conversation cannot be quoted.
        other = await a.say(10, carol["id"], "private", "a2")
        refused = await b.say(10, alice["id"], "peek", "b2", reply_to=other["id"])
        assert refused["error"] == "not_found"
        # The original recalled: the quote shows it recalled.
        assert (await change(a, 61, "r1", id=first["id"]))["cmd"] == 1
        await a.close()
        await b.close()

    asyncio.run(scenario())
    rows = {r["id"]: r for r in history(api, tb, 10, alice["id"])}
    reply = next(r for r in rows.values() if "reply" in r)
    assert reply["reply"]["recalled"] is True and reply["reply"]["content"] == ""


def test_edit_by_the_sender_reaches_both_and_history_shows_the_latest(
        api: ApiServer) -> None:
    alice, ta, bob, tb = pair(api)

    async def scenario() -> None:
        a, b = await ChatClient.open(api, ta), await ChatClient.open(api, tb)
        sent = await a.say(10, bob["id"], "helo", "a1")
        await b.message()
        ack = await change(a, 60, "e1", id=sent["id"], content="hello")
        assert ack["cmd"] == 1 and ack["dup"] is False and ack["change"] > 0
        for device in (a, b):
            edit = await changed(device, 60)
            assert (edit["id"], edit["content"], edit["change"]) == (
                sent["id"], "hello", ack["change"])
            assert edit["edited"] >= sent["ts"]
        # A resend is acked again and applied once, and delivered once: a device of
        # Bob's that connects after the edit gets it from the change log, not live again.
        later = await ChatClient.open(api, tb)
        again = await change(a, 60, "e1", id=sent["id"], content="hello")
        assert again["dup"] is True and again["change"] == ack["change"]
        await a.say(10, bob["id"], "after the resend", "a2")
        await later.expect(lambda f: f.get("content") == "after the resend")
        assert not [f for f in later.unread if f.get("cmd") == 60], list(later.unread)
        await later.close()
        # Only the sender may edit.
        refused = await change(b, 60, "e2", id=sent["id"], content="hacked")
        assert refused["cmd"] == 2 and refused["error"] == "not_sender"
        missing = await change(b, 60, "e3", id=sent["id"] + 1000, content="?")
        assert missing["error"] == "not_found"
        await a.close()
        await b.close()

    asyncio.run(scenario())
    message = next(r for r in history(api, tb, 10, alice["id"]) if r["cid"] == "a1")
    assert message["content"] == "hello" and "edited" in message
    logged = api.call(api.app.store.read(
        lambda tx: tx.value("SELECT COUNT(*) FROM message_changes")))
    assert logged == 1


def test_recall_erases_the_text_from_the_database(api: ApiServer) -> None:
    alice, ta, bob, tb = pair(api)

    async def scenario() -> int:
        a, b = await ChatClient.open(api, ta), await ChatClient.open(api, tb)
        sent = await a.say(10, bob["id"], "wrong chat!", "a1", memo="secret memo")
        await b.message()
        refused = await change(b, 61, "r0", id=sent["id"])
        assert refused["error"] == "not_sender"
        ack = await change(a, 61, "r1", id=sent["id"])
        assert ack["cmd"] == 1
        for device in (a, b):
            recall = await changed(device, 61)
            assert recall["id"] == sent["id"] and recall["recalled"] is True
            assert recall["content"] == ""
        late = await change(a, 60, "e1", id=sent["id"], content="again")
        assert late["error"] == "recalled"
        await a.close()
        await b.close()
        return int(sent["id"])

    message_id = asyncio.run(scenario())
    assert row(api, message_id) == ("", "", "", "", None)
    [message] = history(api, ta, 10, bob["id"])
    assert message["recalled"] is True and message["content"] == "" and message["memo"] == ""


def test_windows_and_permissions_are_the_servers(strict_api: ApiServer) -> None:
    api = strict_api
    alice, ta, bob, tb = pair(api)
    group = group_of(api, ta, [tb], "strict")

    async def scenario() -> None:
        a, b = await ChatClient.open(api, ta), await ChatClient.open(api, tb)
        sent = await a.say(10, bob["id"], "too late to change", "a1")
        await asyncio.sleep(0.01)
        assert (await change(a, 60, "e1", id=sent["id"], content="x"))["error"] == "too_late"
        assert (await change(a, 61, "r1", id=sent["id"]))["error"] == "too_late"
        # The group's owner may recall a member's message at any time; a member may not
        # recall another's.
        said = await b.say(11, group, "spam", "b1")
        own = await a.say(11, group, "owner's", "a2")
        await asyncio.sleep(0.01)
        assert (await change(b, 61, "r2", id=own["id"]))["error"] == "not_sender"
        assert (await change(b, 61, "r3", id=said["id"]))["error"] == "too_late"
        assert (await change(a, 61, "r4", id=said["id"]))["cmd"] == 1
        recall = await changed(b, 61)
        assert recall["id"] == said["id"] and recall["userid"] == alice["id"]
        await a.close()
        await b.close()

    asyncio.run(scenario())
    assert row(api, history(api, tb, 11, group)[-1]["id"])[0] == ""


def test_reactions_are_bounded_and_reach_everyone(api: ApiServer) -> None:
    alice, ta, bob, tb = pair(api)

    async def scenario() -> None:
        a, b = await ChatClient.open(api, ta), await ChatClient.open(api, tb)
        sent = await a.say(10, bob["id"], "react to me", "a1")
        await b.message()
        assert (await change(b, 62, "x1", id=sent["id"], emoji="👍", on=True))["cmd"] == 1
        for device in (a, b):
            got = await changed(device, 62)
            assert got["reactions"] == {"👍": [bob["id"]]} and got["emoji"] == "👍"
        # Once per user and emoji: a second "on" changes nothing.
        again = await change(b, 62, "x2", id=sent["id"], emoji="👍", on=True)
        assert again["cmd"] == 1 and again["change"] is None
        assert (await change(a, 62, "x3", id=sent["id"], emoji="👍"))["cmd"] == 1
        for device in (a, b):
            assert (await changed(device, 62))["reactions"] == {"👍": [bob["id"], alice["id"]]}
        assert (await change(b, 62, "x4", id=sent["id"], emoji="👍", on=False))["cmd"] == 1
        for device in (a, b):
            assert (await changed(device, 62))["reactions"] == {"👍": [alice["id"]]}
        bad = await change(a, 62, "x5", id=sent["id"], emoji="<b>hi</b>")
        assert bad["error"] == "bad_field"
        for n in range(19):
            ack = await change(a, 62, f"y{n}", id=sent["id"], emoji=chr(0x1F600 + n))
            assert ack["cmd"] == 1, ack
        over = await change(a, 62, "y20", id=sent["id"], emoji="🚀")
        assert over["error"] == "too_many_reactions"
        await a.close()
        await b.close()

    asyncio.run(scenario())
    [message] = history(api, tb, 10, alice["id"])
    assert len(message["reactions"]) == 20 and message["reactions"]["👍"] == [alice["id"]]


def test_delete_for_me_hides_on_all_my_devices_only(api: ApiServer) -> None:
    alice, ta, bob, tb = pair(api)
    phone = api.login(bob, device="phone")

    async def scenario() -> int:
        a = await ChatClient.open(api, ta)
        b1, b2 = await ChatClient.open(api, tb), await ChatClient.open(api, phone)
        sent = await a.say(10, bob["id"], "embarrassing", "a1")
        kept = await a.say(10, bob["id"], "fine", "a2")
        ack = await change(b1, 63, "d1", id=sent["id"])
        assert ack["cmd"] == 1 and ack["change"] > 0
        for device in (b1, b2):
            gone = await changed(device, 63)
            assert gone["id"] == sent["id"]
        await a.send(cmd=0)
        frames = []
        while (frame := await a.frame())["cmd"] != 0:
            frames.append(frame)
        assert not [f for f in frames if f.get("cmd") == 63]  # alice is not affected
        # A fresh device of bob's does not get it in its sync.
        b3 = await ChatClient.open(api, tb)
        await b3.send(cmd=20, since=0, changes_since=0)
        result = await b3.cmd(21)
        assert [r["id"] for r in result["rows"]] == [kept["id"]]
        for client in (a, b1, b2, b3):
            await client.close()
        return int(sent["id"])

    hidden = asyncio.run(scenario())
    assert [r["id"] for r in history(api, tb, 10, alice["id"])] != []
    assert hidden not in [r["id"] for r in history(api, tb, 10, alice["id"])]
    assert hidden in [r["id"] for r in history(api, ta, 10, bob["id"])]


def test_an_offline_device_gets_each_change_once_in_its_sync(api: ApiServer) -> None:
    alice, ta, bob, tb = pair(api)

    async def scenario() -> None:
        a, b = await ChatClient.open(api, ta), await ChatClient.open(api, tb)
        one = await a.say(10, bob["id"], "first", "a1")
        two = await a.say(10, bob["id"], "second", "a2")
        await b.send(cmd=20, since=0, changes_since=0)
        start = await b.cmd(21)
        cursor, changes_cursor = start["next"], start["changes_next"]
        await b.close()
        # While bob is away: an edit, a recall, a reaction.
        await change(a, 60, "e1", id=one["id"], content="first, edited")
        await change(a, 61, "r1", id=two["id"])
        await change(a, 62, "x1", id=one["id"], emoji="🎉")
        b = await ChatClient.open(api, tb)
        await b.send(cmd=20, since=cursor, changes_since=changes_cursor)
        result = await b.cmd(21)
        assert result["rows"] == []
        kinds = [(c["cmd"], c["id"]) for c in result["changes"]]
        assert kinds == [(60, one["id"]), (61, two["id"]), (62, one["id"])]
        assert [c["change"] for c in result["changes"]] == sorted(
            c["change"] for c in result["changes"])
        edit = result["changes"][0]
        assert edit["content"] == "first, edited" and edit["reactions"] == {"🎉": [alice["id"]]}
        recall = result["changes"][1]
        assert recall["recalled"] is True and recall["content"] == ""
        # Asking again from the new cursor gives nothing: each change once.
        await b.send(cmd=20, since=result["next"], changes_since=result["changes_next"])
        again = await b.cmd(21)
        assert again["changes"] == [] and again["changes_next"] == result["changes_next"]
        # A change that reaches the connection live is left out of its next sync.
        await change(a, 62, "x2", id=one["id"], emoji="🎉", on=False)
        live = await changed(b, 62)
        await b.send(cmd=20, since=result["next"], changes_since=result["changes_next"])
        third = await b.cmd(21)
        assert third["changes"] == [] and third["changes_next"] == live["change"]
        await a.close()
        await b.close()

    asyncio.run(scenario())


def test_a_device_with_a_change_cursor_but_no_message_yet_keeps_its_cursor(
        api: ApiServer) -> None:
    """`since` 0 with a `changes_since` above 0 is a device that has seen changes (live)
    but no message by sync yet: it goes on from its change cursor; only a device with
    neither starts the log at its newest change."""
    alice, ta, bob, tb = pair(api)

    async def scenario() -> None:
        a = await ChatClient.open(api, ta)
        sent = await a.say(10, bob["id"], "helo", "a1")
        first = await change(a, 60, "e1", id=sent["id"], content="hello")
        second = await change(a, 62, "x1", id=sent["id"], emoji="👍")
        b = await ChatClient.open(api, tb)  # connected after: nothing came live
        await b.send(cmd=20, since=0, changes_since=first["change"])
        result = await b.cmd(21)
        assert [c["change"] for c in result["changes"]] == [second["change"]]
        await b.send(cmd=20, since=0, changes_since=0)
        fresh = await b.cmd(21)
        assert fresh["changes"] == [] and fresh["changes_next"] == second["change"]
        await a.close()
        await b.close()

    asyncio.run(scenario())


def test_mentions_in_a_group(api: ApiServer) -> None:
    owner, to = api.user_with_token(nickname="owner")
    ann, ta = api.user_with_token(nickname="ann")
    ben, tb = api.user_with_token(nickname="ben")
    stranger, _ = api.user_with_token(nickname="stranger")
    group = group_of(api, to, [ta, tb], "mentions")

    async def scenario() -> None:
        o, a, b = [await ChatClient.open(api, t) for t in (to, ta, tb)]
        ack = await o.say(11, group, "@ann look", "o1", mentions=[ann["id"]])
        assert ack["cmd"] == 1
        to_ann, to_ben = await a.message(), await b.message()
        assert to_ann["mentioned"] is True and to_ann["mentions"] == [ann["id"]]
        assert "mentioned" not in to_ben and to_ben["id"] == to_ann["id"] == ack["id"]
        await a.no_more_messages()
        refused = await o.say(11, group, "@stranger", "o2", mentions=[stranger["id"]])
        assert refused["error"] == "not_member"
        assert (await a.say(11, group, "@all", "a1", mentions="all"))["error"] \
            == "not_moderator"
        everyone = await o.say(11, group, "@all meeting", "o3", mentions="all")
        for device in (a, b):
            got = await device.message()
            assert got["id"] == everyone["id"] and got["mentioned"] is True
        await b.no_more_messages()
        for client in (o, a, b):
            await client.close()

    asyncio.run(scenario())
    unread = {r["dstid"]: r for r in api.get("/chat/unread", token=ta).list["rows"]}
    assert unread[group]["unread"] == 2 and unread[group]["mentions"] == 2
    unread = {r["dstid"]: r for r in api.get("/chat/unread", token=tb).list["rows"]}
    assert unread[group]["mentions"] == 1
    rows = history(api, ta, 11, group)
    assert all(r["mentioned"] for r in rows)


async def frames_until_heartbeat(client: ChatClient) -> list[dict[str, Any]]:
    """Every frame that arrives before the answer to a heartbeat sent now: a way to see
    that something did *not* come, without a timer."""
    await client.send(cmd=0)
    frames = []
    while (frame := await client.frame())["cmd"] != 0:
        frames.append(frame)
    return frames


def test_a_newcomer_neither_sees_nor_touches_messages_from_before_they_joined(
        api: ApiServer) -> None:
    """A group's history is "joined" by default: a newcomer reads its messages from when
    they joined. The edits, recalls and reactions of older messages never reach them
    (live on a device open when they joined or opened after, nor in a sync's changes),
    and to them such a message is `not_found` for every change and for reply_to."""
    owner, to = api.user_with_token(nickname="owner")
    ann, ta = api.user_with_token(nickname="ann")
    newcomer, tn = api.user_with_token(nickname="newcomer")
    group = group_of(api, to, [ta], "window")

    async def scenario() -> None:
        o, a = await ChatClient.open(api, to), await ChatClient.open(api, ta)
        old = await o.say(11, group, "before you came: the secret plan", "o1")
        older = await a.say(11, group, "an old word of ann's", "a1")
        await a.message()
        await o.message()
        early = await ChatClient.open(api, tn)  # online as they join
        assert api.post("/contact/joincommunity", {"dstid": group},
                        token=tn).status == 200
        await early.expect(lambda f: f.get("cmd") == 71 and f.get("event") == "joined")
        late = await ChatClient.open(api, tn)  # opened after joining
        # Changes of the old messages reach the older members, not the newcomer.
        assert (await change(o, 60, "e1", id=old["id"], content="the plan, edited"))[
            "cmd"] == 1
        assert (await change(a, 62, "x1", id=old["id"], emoji="👍"))["cmd"] == 1
        assert (await change(o, 61, "r1", id=older["id"]))["cmd"] == 1  # the owner's
        for device in (o, a):
            for cmd in (60, 62, 61):
                await changed(device, cmd)
        # The newcomer may not touch them: to them they do not exist.
        for cmd, fields in ((60, {"content": "mine now"}), (61, {}),
                            (62, {"emoji": "😀"}), (63, {})):
            refused = await change(early, cmd, f"n{cmd}", id=old["id"], **fields)
            assert (refused["cmd"], refused["error"]) == (2, "not_found"), refused
        quoted = await early.say(11, group, "what plan?", "n1", reply_to=old["id"])
        assert (quoted["cmd"], quoted["error"]) == (2, "not_found")
        # A message sent after they joined is theirs to see changed.
        new = await o.say(11, group, "welcome", "o2")
        assert (await change(a, 62, "x2", id=new["id"], emoji="🎉"))["cmd"] == 1
        for device in (early, late):
            frames = await frames_until_heartbeat(device)
            leaked = [f for f in frames if f.get("id") in (old["id"], older["id"])]
            assert leaked == [], leaked
            assert [(f["cmd"], f["id"]) for f in frames if f.get("cmd") in (11, 62)] == [
                (11, new["id"]), (62, new["id"])], frames
        # Nor do they come in a sync (of a device that was sent nothing live), even one
        # that asks for the whole change log.
        fresh = await ChatClient.open(api, tn)
        await fresh.send(cmd=20, since=older["id"], changes_since=0)
        synced = await fresh.cmd(21)
        assert [r["id"] for r in synced["rows"]] == [new["id"]]
        assert [(c["cmd"], c["id"]) for c in synced["changes"]] == [(62, new["id"])], \
            synced["changes"]
        assert (await early.say(11, group, "ok", "n2", reply_to=new["id"]))["cmd"] == 1
        for client in (o, a, early, late, fresh):
            await client.close()

    asyncio.run(scenario())
    assert [r["content"] for r in history(api, tn, 11, group)] == ["ok", "welcome"]
    # An older member's history shows the old messages as they are now.
    old_rows = {r["cid"]: r for r in history(api, ta, 11, group)}
    assert old_rows["o1"]["content"] == "the plan, edited"
    assert old_rows["o1"]["reactions"] == {"👍": [ann["id"]]}
    assert old_rows["a1"]["recalled"] is True


def test_a_member_approved_to_join_gets_no_change_of_an_older_message(
        api: ApiServer) -> None:
    """The window of a join that a moderator approved reaches the hub too: the member's
    open device gets the changes of messages sent after the approval only."""
    owner, to = api.user_with_token(nickname="owner")
    asker, tq = api.user_with_token(nickname="asker")
    group = group_of(api, to, [], "approval")
    assert api.post("/contact/groupsettings", {"groupid": group, "join": "approval"},
                    token=to).status == 200

    async def scenario() -> None:
        o, q = await ChatClient.open(api, to), await ChatClient.open(api, tq)
        old = await o.say(11, group, "members only, so far", "o1")
        assert api.post("/contact/joincommunity", {"dstid": group},
                        token=tq).json["data"]["status"] == "requested"
        assert api.post("/contact/approvejoin", {"groupid": group, "memberid": asker["id"]},
                        token=to).status == 200
        await q.expect(lambda f: f.get("cmd") == 71 and f.get("event") == "joined")
        assert (await change(o, 60, "e1", id=old["id"], content="still members only"))[
            "cmd"] == 1
        new = await o.say(11, group, "welcome", "o2")
        assert (await change(o, 60, "e2", id=new["id"], content="welcome, asker"))[
            "cmd"] == 1
        frames = await frames_until_heartbeat(q)
        assert [(f["cmd"], f["id"]) for f in frames if "id" in f] == [
            (11, new["id"]), (60, new["id"])], frames
        await o.close()
        await q.close()

    asyncio.run(scenario())

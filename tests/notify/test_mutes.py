"""Muting a conversation over REST (both backends): stored, listed where the client gets
its contacts, told live to the user's other devices (cmd 70 "mute"), and every bad
request refused with nothing changed."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from tests.chat_support import ChatClient, befriend
from tests.store_fixtures import ApiServer


def test_mute_and_unmute_a_friend_and_a_group(api: ApiServer) -> None:
    me, token = api.user_with_token(nickname="me")
    friend, friend_token = api.user_with_token(nickname="friend")
    befriend(api, token, friend, friend_token)
    group = api.post("/contact/createcommunity", {"name": "muted room"}, token=token).data
    until = int(time.time()) + 3600

    async def scenario() -> None:
        other_device = await ChatClient.open(api, token)
        reply = await asyncio.to_thread(api.post, "/contact/mute",
                                        {"cmd": 10, "dstid": friend["id"]}, token=token)
        assert reply.data == {"cmd": 10, "dstid": friend["id"], "until": None}
        told = await other_device.expect(lambda f: f.get("event") == "mute")
        assert told == {"cmd": 70, "event": "mute", "kind": 10, "dstid": friend["id"],
                        "muted": True, "until": None}
        reply = await asyncio.to_thread(api.post, "/contact/mute",
                                        {"cmd": "11", "dstid": str(group["id"]),
                                         "until": until}, token=token)
        assert reply.data == {"cmd": 11, "dstid": group["id"], "until": until}
        told = await other_device.expect(lambda f: f.get("event") == "mute")
        assert (told["kind"], told["until"]) == (11, until)
        await other_device.close()

    asyncio.run(scenario())
    assert api.get("/contact/mutes", token=token).list == {"rows": [
        {"cmd": 10, "dstid": friend["id"], "until": None},
        {"cmd": 11, "dstid": group["id"], "until": until}], "total": 2}
    [row] = api.post("/contact/loadfriend", {}, token=token).list["rows"]
    assert (row["muted"], row["muted_until"]) == (True, None)
    [row] = api.post("/contact/loadcommunity", {}, token=token).list["rows"]
    assert (row["muted"], row["muted_until"]) == (True, until)
    # The friend's own lists do not show my mute.
    [row] = api.post("/contact/loadfriend", {}, token=friend_token).list["rows"]
    assert "muted" not in row

    assert api.post("/contact/unmute", {"cmd": 10, "dstid": friend["id"]},
                    token=token).status == 200
    assert api.post("/contact/unmute", {"cmd": 10, "dstid": friend["id"]},
                    token=token).status == 200  # twice: no error
    assert [m["cmd"] for m in api.get("/contact/mutes", token=token).list["rows"]] == [11]
    [row] = api.post("/contact/loadfriend", {}, token=token).list["rows"]
    assert "muted" not in row


BAD_MUTES: list[tuple[dict[str, Any], int, str]] = [
    ({"dstid": 1}, 400, "cmd is required"),
    ({"cmd": 12, "dstid": 1}, 400, "cmd must be 10"),
    ({"cmd": 10}, 400, "dstid is required"),
    ({"cmd": 10, "dstid": "x"}, 400, "dstid must be an integer"),
    ({"cmd": 10, "dstid": "STRANGER"}, 404, "not your friend"),
    ({"cmd": 11, "dstid": 999_999}, 404, "not a member"),
    ({"cmd": 10, "dstid": "FRIEND", "until": 5}, 400, "in the future"),
    ({"cmd": 10, "dstid": "FRIEND", "until": "soon"}, 400, "until must be an integer"),
    ({"cmd": 10, "dstid": "FRIEND", "until": 4_000_000_000}, 400, "more than a year"),
]


def test_bad_mutes_are_refused_and_change_nothing(api: ApiServer) -> None:
    me, token = api.user_with_token()
    friend, friend_token = api.user_with_token()
    befriend(api, token, friend, friend_token)
    stranger, _ = api.user_with_token()
    named = {"FRIEND": friend["id"], "STRANGER": stranger["id"]}
    for values, status, reason in BAD_MUTES:
        values = {k: named.get(v, v) if isinstance(v, str) else v for k, v in values.items()}
        reply = api.post("/contact/mute", values, token=token)
        assert reply.status == status and reason in reply.json["msg"], (values, reply.body)
    assert api.get("/contact/mutes", token=token).list == {"rows": [], "total": 0}
    assert api.post("/contact/mute", {"cmd": 10, "dstid": friend["id"]}).status == 401

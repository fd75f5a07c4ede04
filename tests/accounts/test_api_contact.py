"""/contact/* over real sockets against a real fastim server, on SQLite and MariaDB."""

from __future__ import annotations

import concurrent.futures
from typing import Any

from tests.store_fixtures import ApiServer, befriend_over, table_counts


def _error(reply: Any, status: int) -> str:
    assert reply.status == status, (reply.status, reply.body)
    assert reply.json["code"] == -1
    return str(reply.json["msg"])


def test_addfriend_then_loadfriend_once_the_other_accepted(api: ApiServer) -> None:
    # fastIM's own flow, by consent: addfriend asks; loadfriend shows the friend once the
    # other side has accepted.
    me, token = api.user_with_token(nickname="我")
    friend, friend_token = api.user_with_token(nickname="朋友 🤝")
    reply = api.post("/contact/addfriend", {"dstname": friend["mobile"]}, token=token)
    assert reply.status == 200 and reply.data == {"status": "requested"}
    assert api.post("/contact/loadfriend", {}, token=token).list == {"rows": [], "total": 0}
    pending = api.post("/contact/requests", {}, token=friend_token).list
    assert pending["total"] == 1 and pending["rows"][0]["user"]["id"] == me["id"]
    accepted = api.post("/contact/accept", {"requestid": pending["rows"][0]["id"]},
                        token=friend_token)
    assert accepted.data == {"id": me["id"], "nickname": "我", "avatar": "", "sex": "U",
                             "memo": "", "online": False}
    listed = api.post("/contact/loadfriend", {}, token=token)
    assert listed.list == {"rows": [{"id": friend["id"], "nickname": "朋友 🤝", "avatar": "",
                                     "sex": "U", "memo": "", "online": False}], "total": 1}
    # ...and the friendship is mutual.
    theirs = api.post("/contact/loadfriend", {}, token=friend_token)
    assert [row["id"] for row in theirs.list["rows"]] == [me["id"]]


def test_addfriend_refusals(api: ApiServer) -> None:
    me, token = api.user_with_token()
    friend, friend_token = api.user_with_token()
    befriend_over(api.post, token, me["id"], friend_token, friend["id"])
    before = table_counts(api.app.store)
    assert "yourself" in _error(api.post("/contact/addfriend", {"dstid": me["id"]}, token=token),
                                400)
    assert "yourself" in _error(
        api.post("/contact/addfriend", {"dstname": me["mobile"]}, token=token), 400)
    _error(api.post("/contact/addfriend", {"dstid": 10**9}, token=token), 404)
    _error(api.post("/contact/addfriend", {}, token=token), 400)
    _error(api.post("/contact/addfriend", {"dstid": "1; DROP TABLE users"}, token=token), 400)
    _error(api.post("/contact/addfriend", {"dstname": "not a number"}, token=token), 400)
    already = api.post("/contact/addfriend", {"dstid": friend["id"]}, token=token)
    assert already.status == 200 and already.data == {"status": "friends"}
    assert table_counts(api.app.store) == before


def test_loadfriend_pages_through_query_or_body(api: ApiServer) -> None:
    me, token = api.user_with_token()
    friends = [api.register() for _ in range(5)]
    for f in friends:
        befriend_over(api.post, token, me["id"], api.login(f), f["id"])
    first = api.get("/contact/loadfriend?pagefrom=0&pagesize=2", token=token).list
    second = api.post("/contact/loadfriend", {"pagefrom": 1, "pagesize": 2}, token=token).list
    third = api.request("POST", "/contact/loadfriend", form={"pagefrom": "2", "pagesize": "2"},
                        token=token).list
    assert [r["id"] for p in (first, second, third) for r in p["rows"]] == [
        f["id"] for f in friends
    ]
    assert first["total"] == second["total"] == third["total"] == 5
    _error(api.get("/contact/loadfriend?pagesize=0", token=token), 400)


def test_group_life_cycle(api: ApiServer) -> None:
    owner, owner_token = api.user_with_token()
    member, member_token = api.user_with_token()
    created = api.post("/contact/createcommunity", {
        "name": "读书会 📚", "icon": "/asset/images/community.png", "memo": "每周五", "cate": 1,
        "visibility": "public",
    }, token=owner_token)
    assert created.status == 201
    group = {k: v for k, v in created.data.items()
             if k not in ("visibility", "join", "history")}
    assert created.data["visibility"] == "public"
    assert {k: group[k] for k in ("name", "ownerid", "icon", "memo", "cate")} == {
        "name": "读书会 📚", "ownerid": owner["id"], "icon": "/asset/images/community.png",
        "memo": "每周五", "cate": 1,
    }
    assert "already exists" in _error(
        api.post("/contact/createcommunity", {"name": "读书会 📚"}, token=member_token), 409)

    joined = api.post("/contact/joincommunity", {"dstname": "读书会 📚"}, token=member_token)
    assert joined.data == {**group, "status": "joined"}
    _error(api.post("/contact/joincommunity", {"dstid": group["id"]}, token=member_token), 409)
    _error(api.post("/contact/joincommunity", {"dstname": "nope"}, token=member_token), 404)

    members = api.get(f"/contact/loadmembers?dstid={group['id']}", token=member_token).list
    assert [(m["id"], m["role"]) for m in members["rows"]] == [
        (owner["id"], "owner"), (member["id"], "member"),
    ]
    assert members["total"] == 2
    assert api.post("/contact/loadcommunity", {}, token=member_token).list == {
        "rows": [group], "total": 1,
    }

    leave = api.post("/contact/leavecommunity", {"dstid": group["id"]}, token=owner_token)
    assert "hand it over" in _error(leave, 409)
    _error(api.post("/contact/dissolvecommunity", {"dstid": group["id"]}, token=member_token),
           403)
    moved = api.post("/contact/transfercommunity",
                     {"dstid": group["id"], "ownerid": member["id"]}, token=owner_token)
    assert moved.data["ownerid"] == member["id"]
    assert api.post("/contact/leavecommunity", {"dstid": group["id"]},
                    token=owner_token).status == 200
    _error(api.get(f"/contact/loadmembers?dstid={group['id']}", token=owner_token), 403)
    gone = api.post("/contact/dissolvecommunity", {"dstid": group["id"]}, token=member_token)
    assert gone.status == 200 and gone.data["id"] == group["id"]
    assert api.post("/contact/loadcommunity", {}, token=member_token).list == {
        "rows": [], "total": 0,
    }
    _error(api.post("/contact/joincommunity", {"dstid": group["id"]}, token=owner_token), 404)


def test_the_per_owner_group_limit_is_409_with_a_clear_message(api: ApiServer) -> None:
    _, token = api.user_with_token()
    for i in range(5):
        assert api.post("/contact/createcommunity", {"name": f"limit {i}"},
                        token=token).status == 201
    before = table_counts(api.app.store)
    message = _error(api.post("/contact/createcommunity", {"name": "limit 5"}, token=token), 409)
    assert "5 groups" in message and ("dissolve" in message or "hand over" in message)
    assert table_counts(api.app.store) == before


def test_bad_group_fields_are_400_and_change_nothing(api: ApiServer) -> None:
    _, token = api.user_with_token()
    before = table_counts(api.app.store)
    for values, field in [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "g" * 65}, "name"),
        ({"name": ["list"]}, "name"),
        ({"name": "ok", "icon": "https://evil.example/i.png"}, "icon"),
        ({"name": "ok", "memo": "m" * 141}, "memo"),
        ({"name": "ok", "cate": "one"}, "cate"),
    ]:
        reply = api.post("/contact/createcommunity", values, token=token)
        assert field in _error(reply, 400), values
    assert table_counts(api.app.store) == before


def test_changes_need_post(api: ApiServer) -> None:
    _, token = api.user_with_token()
    for path in ("/contact/addfriend", "/contact/createcommunity", "/contact/joincommunity",
                 "/user/logout", "/user/update"):
        reply = api.get(path, token=token)
        assert reply.status == 405 and "POST" in (reply.header("allow") or "")


def test_concurrent_friend_requests_over_http_make_one_friendship(api: ApiServer) -> None:
    a, a_token = api.user_with_token()
    b, b_token = api.user_with_token()

    def ask(i: int) -> tuple[int, str]:
        if i % 2:
            reply = api.post("/contact/addfriend", {"dstid": b["id"]}, token=a_token)
        else:
            reply = api.post("/contact/addfriend", {"dstid": a["id"]}, token=b_token)
        return reply.status, reply.data["status"]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(ask, range(8)))
    assert {status for status, _ in answers} == {200}
    assert {answer for _, answer in answers} == {"requested", "friends"}
    assert table_counts(api.app.store)["friendships"] == 2
    assert table_counts(api.app.store)["friend_requests"] == 0

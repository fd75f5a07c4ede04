"""/user/* over real sockets against a real fastim server, on SQLite and MariaDB."""

from __future__ import annotations

import concurrent.futures
import time
from typing import Any

import pytest

from fastim.handlers.views import SESSION_COOKIE
from tests.store_fixtures import ApiServer, api_config, new_mobile, table_counts


def _error(reply: Any, status: int) -> str:
    assert reply.status == status, (reply.status, reply.body)
    body = reply.json
    assert body["code"] == -1 and body["data"] is None
    assert body["msg"]
    return str(body["msg"])


def test_register_answers_201_with_the_profile_and_no_secrets(api: ApiServer) -> None:
    mobile = new_mobile()
    reply = api.post("/user/register", {
        "mobile": mobile, "passwd": "correct horse", "nickname": "阿里 🐱", "sex": "W",
        "memo": "你好 👋", "avatar": "/asset/images/avatar1.jpg",
    })
    assert reply.status == 201
    assert reply.header("content-type") == "application/json; charset=utf-8"
    body = reply.json
    assert (body["code"], body["msg"]) == (0, "")
    data = body["data"]
    assert set(data) == {"id", "mobile", "nickname", "avatar", "sex", "memo", "createat"}
    assert (data["mobile"], data["nickname"], data["memo"]) == (mobile, "阿里 🐱", "你好 👋")
    assert b"correct horse" not in reply.body


def test_register_accepts_a_form_body_as_fastim_sent_it(api: ApiServer) -> None:
    mobile = new_mobile()
    reply = api.request("POST", "/user/register", form={
        "mobile": mobile, "passwd": "correct horse", "nickname": "表单 ✅", "sex": "M",
    })
    assert reply.status == 201
    assert reply.data["nickname"] == "表单 ✅"
    login = api.request("POST", "/user/login", form={"mobile": mobile, "passwd": "correct horse"})
    assert login.status == 200 and login.data["nickname"] == "表单 ✅"


def test_a_taken_number_is_409(api: ApiServer) -> None:
    user = api.register()
    reply = api.post("/user/register", {"mobile": user["mobile"], "passwd": "another one",
                                        "nickname": "twin"})
    assert "already registered" in _error(reply, 409)


def test_login_sets_an_httponly_samesite_cookie_that_authenticates(api: ApiServer) -> None:
    user = api.register()
    reply = api.post("/user/login", {"mobile": user["mobile"], "passwd": user["passwd"]})
    assert reply.status == 200
    token = reply.data["token"]
    assert reply.data["id"] == user["id"] and reply.data["expires"] > time.time()
    cookie = reply.header("set-cookie")
    assert cookie is not None
    parts = [p.strip() for p in cookie.split(";")]
    assert parts[0] == f"{SESSION_COOKIE}={token}"
    assert "HttpOnly" in parts and "SameSite=Lax" in parts and "Path=/" in parts
    me = api.get("/user/me", headers={"Cookie": f"{SESSION_COOKIE}={token}"})
    assert me.status == 200 and me.data["id"] == user["id"]
    me = api.get("/user/me", token=token)
    assert me.status == 200 and me.data["mobile"] == user["mobile"]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer "},
        {"Authorization": "Bearer not-a-real-token-at-all-xxxxxxxxxxxxxxxxxx"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Cookie": f"{SESSION_COOKIE}=forged"},
    ],
)
def test_no_or_bad_token_is_401_with_www_authenticate(
    api: ApiServer, headers: dict[str, str]
) -> None:
    for path in ("/user/me", "/contact/loadfriend", "/user/find?id=1"):
        reply = api.get(path, headers=headers)
        _error(reply, 401)
        assert reply.header("www-authenticate") == 'Bearer realm="fastim"'
    _error(api.post("/contact/addfriend", {"dstid": 1}, headers=headers), 401)


def test_a_stale_cookie_is_401_and_cleared(api: ApiServer) -> None:
    _, token = api.user_with_token()
    api.post("/user/logout", token=token)
    reply = api.get("/user/me", headers={"Cookie": f"{SESSION_COOKIE}={token}"})
    _error(reply, 401)
    assert reply.header("set-cookie") == (
        f"{SESSION_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax"
    )
    assert api.get("/user/me", token=token).header("set-cookie") is None


def test_an_expired_token_is_401(api: ApiServer) -> None:
    _, token = api.user_with_token()
    accounts = api.app.services.accounts
    real_clock = accounts.clock
    accounts.clock = lambda: real_clock() + accounts.token_ttl + 1
    try:
        assert "expired" in _error(api.get("/user/me", token=token), 401)
    finally:
        accounts.clock = real_clock
    assert api.get("/user/me", token=token).status == 200


def test_logout_revokes_this_device_only_and_clears_the_cookie(api: ApiServer) -> None:
    user = api.register()
    phone = api.login(user, device="phone")
    laptop = api.login(user, device="laptop")
    reply = api.post("/user/logout", token=phone)
    assert reply.status == 200 and reply.json == {"code": 0, "msg": "", "data": None}
    assert "Max-Age=0" in (reply.header("set-cookie") or "")
    _error(api.get("/user/me", token=phone), 401)
    assert api.get("/user/me", token=laptop).status == 200
    _error(api.post("/user/logout", token=phone), 401)


def test_a_userid_other_than_the_callers_is_403_and_changes_nothing(api: ApiServer) -> None:
    me, token = api.user_with_token()
    other = api.register()
    before = table_counts(api.app.store)
    for method, path, values in [
        ("GET", f"/user/me?userid={other['id']}", None),
        ("POST", "/contact/addfriend", {"userid": other["id"], "dstid": other["id"]}),
        ("POST", "/contact/createcommunity", {"userid": str(other["id"]), "name": "x"}),
        ("POST", "/contact/loadfriend", {"userid": other["id"]}),
        ("POST", "/user/update", {"userid": other["id"], "nickname": "hijack"}),
    ]:
        reply = api.request(method, path, json_body=values, token=token)
        assert "userid" in _error(reply, 403)
    assert table_counts(api.app.store) == before
    # The caller's own userid (fastIM clients send it) is fine.
    reply = api.post("/contact/loadfriend", {"userid": me["id"]}, token=token)
    assert reply.status == 200


def test_find_returns_a_public_profile(api: ApiServer) -> None:
    _, token = api.user_with_token()
    other = api.register(nickname="findable")
    reply = api.get(f"/user/find?id={other['id']}", token=token)
    assert reply.data == {"id": other["id"], "nickname": "findable", "avatar": "",
                          "sex": "U", "memo": ""}
    assert api.post("/user/find", {"id": other["id"]}, token=token).data["id"] == other["id"]
    _error(api.get(f"/user/find?id={other['id'] + 1000}", token=token), 404)
    _error(api.get("/user/find?id=abc", token=token), 400)


def test_profile_update_and_password_change(api: ApiServer) -> None:
    user, token = api.user_with_token(passwd="first password")
    reply = api.post("/user/update", {"nickname": "新名字 ✨", "memo": "line 1\nline 2"},
                     token=token)
    assert (reply.data["nickname"], reply.data["memo"]) == ("新名字 ✨", "line 1\nline 2")
    assert api.get("/user/me", token=token).data["nickname"] == "新名字 ✨"
    other_device = api.login(user, device="other")
    reply = api.post("/user/passwd", {"oldpasswd": "first password",
                                      "passwd": "second password"}, token=token)
    assert reply.status == 200
    assert api.get("/user/me", token=token).status == 200
    _error(api.get("/user/me", token=other_device), 401)
    _error(api.post("/user/login", {"mobile": user["mobile"], "passwd": "first password"}), 401)
    api.login({**user, "passwd": "second password"})


def test_repeated_failed_logins_get_429_with_retry_after(api: ApiServer) -> None:
    user = api.register()
    wrong = {"mobile": user["mobile"], "passwd": "wrong password"}
    for _ in range(5):
        _error(api.post("/user/login", wrong), 401)
    reply = api.post("/user/login", {**wrong, "passwd": user["passwd"]})
    _error(reply, 429)
    retry_after = reply.header("retry-after")
    assert retry_after is not None and 0 < int(retry_after) <= 900


@pytest.mark.parametrize(
    ("content_type", "body", "status"),
    [
        ("application/json", b"{not json", 400),
        ("application/json", b"[1, 2]", 400),
        ("application/json", b'"a string"', 400),
        ("text/plain", b"mobile=1", 415),
        ("application/xml", b"<a/>", 415),
    ],
)
def test_malformed_bodies_get_clear_4xx(
    api: ApiServer, content_type: str, body: bytes, status: int
) -> None:
    before = table_counts(api.app.store)
    reply = api.request("POST", "/user/register", body=body,
                        headers={"Content-Type": content_type})
    _error(reply, status)
    assert table_counts(api.app.store) == before


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"mobile": None}, "mobile"),
        ({"mobile": 13800000000}, "mobile"),
        ({"mobile": "1" * 40}, "mobile"),
        ({"mobile": "138' OR '1'='1"}, "mobile"),
        ({"mobile": "138😀00000000"}, "mobile"),
        ({"passwd": "short"}, "passwd"),
        ({"passwd": 12345678}, "passwd"),
        ({"nickname": ""}, "nickname"),
        ({"nickname": "n" * 33}, "nickname"),
        ({"nickname": {"$ne": 1}}, "nickname"),
        ({"nickname": "bad\u0000nul"}, "nickname"),
        ({"sex": "F"}, "sex"),
        ({"sex": "😀"}, "sex"),
        ({"avatar": "javascript:alert(1)"}, "avatar"),
        ({"memo": "m" * 141}, "memo"),
    ],
)
def test_bad_register_fields_over_http_are_400_and_change_nothing(
    api: ApiServer, values: dict[str, Any], field: str
) -> None:
    before = table_counts(api.app.store)
    body = {"mobile": new_mobile(), "passwd": "correct horse", "nickname": "ok", **values}
    body = {k: v for k, v in body.items() if v is not None}
    reply = api.post("/user/register", body)
    assert field in _error(reply, 400)
    assert table_counts(api.app.store) == before


def test_lone_surrogates_in_json_are_400(api: ApiServer) -> None:
    body = b'{"mobile": "13811112222", "passwd": "correct horse", "nickname": "\\ud800"}'
    reply = api.request("POST", "/user/register", body=body,
                        headers={"Content-Type": "application/json"})
    assert "nickname" in _error(reply, 400)


def test_concurrent_registrations_over_http_make_one_account(api: ApiServer) -> None:
    mobile = new_mobile()

    def register(i: int) -> int:
        return api.post("/user/register", {"mobile": mobile, "passwd": f"password {i}",
                                           "nickname": f"n{i}"}).status

    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        statuses = sorted(pool.map(register, range(10)))
    assert statuses == [201] + [409] * 9
    assert table_counts(api.app.store)["users"] == 1


def test_a_restart_keeps_accounts_and_sessions(db_url: str, tmp_path: Any) -> None:
    config = api_config(db_url, tmp_path)
    with ApiServer(config) as first:
        user, token = first.user_with_token(nickname="持久 💾")
    with ApiServer(config) as second:
        assert second.app.store.applied_migrations == []
        me = second.get("/user/me", token=token)
        assert me.status == 200 and me.data["nickname"] == "持久 💾"
        second.login(user)

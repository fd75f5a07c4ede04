"""The Origin check on cookie-authenticated changes (CSRF beyond SameSite), over real
sockets against a real fastim server, on SQLite and MariaDB.

SameSite=Lax keeps the session cookie off cross-*site* requests only; a page of the same
site on another origin (another port of the same host) gets it sent. So an unsafe request
(RFC 9110 §9.2.1) that authenticates with the cookie and carries a foreign ``Origin``
(RFC 6454 §7) is refused with 403 (``fastim.handlers.auth.check_origin``). The browser
test of the same is tests/web/test_web_csrf.py.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from fastim.handlers.views import SESSION_COOKIE
from tests.store_fixtures import ApiServer, api_config, table_counts

FOREIGN = "http://127.0.0.1:1"  # the same site as the server, another origin


def _cookie(token: str, origin: str | None = None) -> dict[str, str]:
    headers = {"Cookie": f"{SESSION_COOKIE}={token}"}
    if origin is not None:
        headers["Origin"] = origin
    return headers


def _own(api: ApiServer) -> str:
    return f"http://127.0.0.1:{api.port}"


@pytest.mark.parametrize("origin", [FOREIGN, "https://evil.example", "null"])
def test_a_cookie_change_from_a_foreign_origin_is_403_and_changes_nothing(
    api: ApiServer, origin: str
) -> None:
    me, token = api.user_with_token(nickname="Me")
    other = api.register()
    before = table_counts(api.app.store)
    for path, values in (("/contact/addfriend", {"dstid": other["id"]}),
                         ("/user/update", {"nickname": "pwned"}),
                         ("/contact/createcommunity", {"name": "pwned"}),
                         ("/user/logout", {})):
        for send in ("json", "form"):
            options: dict[str, Any] = {"json_body": values} if send == "json" else {
                "form": {k: str(v) for k, v in values.items()}}
            reply = api.request("POST", path, headers=_cookie(token, origin), **options)
            assert reply.status == 403, (path, send, reply.body)
            assert reply.json["code"] == -1
    # An upload is refused before its body is looked at.
    reply = api.request("POST", "/attach/upload", body=b"", headers=_cookie(token, origin))
    assert reply.status == 403
    assert table_counts(api.app.store) == before
    me_now = api.get("/user/me", token=token)
    assert me_now.status == 200 and me_now.data["nickname"] == "Me"  # not logged out either


def test_a_cookie_change_from_the_own_origin_or_without_origin_works(api: ApiServer) -> None:
    _, token = api.user_with_token()
    one, two = api.register(), api.register()
    # The web client's own requests: Chromium sends Origin with every POST.
    reply = api.post("/contact/addfriend", {"dstid": one["id"]}, headers=_cookie(token, _own(api)))
    assert reply.status == 200, reply.body
    # No Origin: not a browser, so no ambient cookie; the token decides.
    reply = api.post("/contact/addfriend", {"dstid": two["id"]}, headers=_cookie(token))
    assert reply.status == 200, reply.body


def test_bearer_requests_and_safe_methods_need_no_origin_check(api: ApiServer) -> None:
    _, token = api.user_with_token()
    other = api.register()
    # A page cannot add Authorization to a cross-origin request without CORS: not CSRF-able.
    reply = api.post("/contact/addfriend", {"dstid": other["id"]}, token=token,
                     headers={"Origin": FOREIGN})
    assert reply.status == 200, reply.body
    # GET changes nothing (RFC 9110 §9.2.1; every change is POST-only).
    reply = api.get("/user/me", headers=_cookie(token, FOREIGN))
    assert reply.status == 200, reply.body


def test_allowed_origins_may_change_things_with_the_cookie(db_url: str, tmp_path: Any) -> None:
    allowed = "https://chat.example"
    config = dataclasses.replace(api_config(db_url, tmp_path), allowed_origins=(allowed,))
    with ApiServer(config) as api:
        _, token = api.user_with_token()
        reply = api.post("/user/update", {"nickname": "Allowed"},
                         headers=_cookie(token, allowed))
        assert reply.status == 200 and reply.data["nickname"] == "Allowed"
        reply = api.post("/user/update", {"nickname": "Other"},
                         headers=_cookie(token, "https://other.example"))
        assert reply.status == 403


def test_login_and_register_from_a_foreign_origin_are_403(api: ApiServer) -> None:
    """Login CSRF: a foreign page must not log the victim's browser in to its account."""
    user = api.register()
    before = table_counts(api.app.store)
    credentials = {"mobile": user["mobile"], "passwd": user["passwd"]}
    for origin in (FOREIGN, "https://evil.example", "null"):
        reply = api.request("POST", "/user/login", form=credentials, headers={"Origin": origin})
        assert reply.status == 403 and reply.header("set-cookie") is None
        reply = api.post("/user/register", {"mobile": "13900000000", "passwd": "long enough",
                                            "nickname": "x"}, headers={"Origin": origin})
        assert reply.status == 403
    assert table_counts(api.app.store) == before  # no session, no account
    # The app's own login page, and clients that send no Origin, still log in.
    assert api.post("/user/login", credentials, headers={"Origin": _own(api)}).status == 200
    assert api.post("/user/login", credentials).status == 200


def test_behind_a_trusted_proxy_the_own_origin_has_the_proxys_scheme(tmp_path: Any) -> None:
    """The own origin is request.scheme + Host: behind a --trusted-proxy that says https,
    the web client's https:// origin is its own and http:// is another site."""
    config = api_config(f"sqlite:///{tmp_path}/fastim.db", tmp_path)
    config.trusted_proxies = ("127.0.0.1",)
    with ApiServer(config) as api:
        _, token = api.user_with_token()
        host = f"127.0.0.1:{api.port}"

        def update_from(origin: str) -> int:
            headers = {**_cookie(token, origin), "X-Forwarded-For": "203.0.113.7",
                       "X-Forwarded-Proto": "https"}
            return api.post("/user/update", {"nickname": "Proxied"}, headers=headers).status

        assert update_from(f"https://{host}") == 200
        assert update_from(f"http://{host}") == 403

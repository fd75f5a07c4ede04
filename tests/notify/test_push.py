"""Web Push end to end, against a push-service stand-in on loopback (tests/push_support.py):
the stand-in checks each POST's VAPID signature against the server's public key and its
claims, and the test decrypts the body with the subscription's own keys (RFC 8291).

One server for the module (SQLite; the store's push queries also run on MariaDB in
tests/cluster/test_cluster_push.py); each test makes its own users, so their
conversations never share a coalescing window.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from fastim.errors import AppError
from fastim.notify.endpoints import check_endpoint
from fastim.notify.options import PushOptions
from fastim.notify.push import Stored, subscription_language
from tests.chat_support import ChatClient, befriend
from tests.push_support import Browser, PushService
from tests.store_fixtures import ApiServer, api_config


@pytest.fixture(scope="module")
def service() -> Iterator[PushService]:
    stand_in = PushService()
    yield stand_in
    stand_in.close()


def push_server(tmp: Path, **options: Any) -> ApiServer:
    config = api_config(f"sqlite:///{tmp}/fastim.db", tmp)
    config.push = replace(PushOptions(), allow_http_loopback=True, **options)
    return ApiServer(config)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    with push_server(tmp_path_factory.mktemp("push")) as server:
        yield server


def idle(api: ApiServer) -> None:
    """Until every push of the messages stored so far has been answered."""
    api.call(api.app.services.push.idle())


def pair(api: ApiServer) -> tuple[dict[str, Any], str, dict[str, Any], str]:
    alice, alice_token = api.user_with_token(nickname="Alice")
    bob, bob_token = api.user_with_token(nickname="Bob")
    befriend(api, alice_token, bob, bob_token)
    return alice, alice_token, bob, bob_token


def subscribe(api: ApiServer, token: str, browser: Browser) -> None:
    reply = api.post("/user/push", browser.subscription(), token=token)
    assert reply.status == 201, reply.body


def say(api: ApiServer, token: str, cmd: int, dstid: int, *texts: str) -> None:
    async def talk() -> None:
        client = await ChatClient.open(api, token)
        try:
            for text in texts:
                ack = await client.say(cmd, dstid, text, secrets.token_hex(6))
                assert ack["cmd"] == 1, ack
        finally:
            await client.close()

    asyncio.run(talk())


def test_an_offline_user_gets_one_push_signed_and_encrypted(api: ApiServer,
                                                             service: PushService) -> None:
    alice, alice_token, bob, bob_token = pair(api)
    browser = Browser(service)
    subscribe(api, bob_token, browser)
    key = api.get("/user/push", token=bob_token).data
    assert key["subscriptions"] == 1 and len(key["key"]) == 87  # 65 bytes, base64url

    say(api, alice_token, 10, bob["id"], "see you at 8 周五")
    [push] = service.wait_for(browser.endpoint)
    # Signed with the key the server gives browsers as applicationServerKey.
    assert push.vapid_key == key["key"]
    assert int(push.headers["ttl"]) > 0
    shown = browser.decrypt(push)
    # Without --push-preview: who, never what.
    assert shown["title"] == "New message from Alice"
    assert shown["body"] == ""
    assert "周五" not in push.body.decode("latin-1") and "周五" not in str(shown)
    assert (shown["cmd"], shown["dstid"]) == (10, alice["id"])
    idle(api)
    assert len(service.to(browser.endpoint)) == 1


def test_a_push_is_in_the_language_of_the_browser_that_shows_it(
        api: ApiServer, service: PushService) -> None:
    alice, alice_token, bob, bob_token = pair(api)
    group = api.post("/contact/createcommunity", {"name": f"读书会{secrets.token_hex(2)}",
                                                  "visibility": "public"}, token=alice_token).data
    assert api.post("/contact/joincommunity", {"dstid": group["id"]},
                    token=bob_token).status == 200
    # Bob's phone shows fastim in Chinese and says so when it subscribes (the page's
    # current language); his laptop's page says nothing and was served in English; a
    # tablet's page says nothing and was served in Chinese (its Accept-Language).
    phone, laptop, tablet = Browser(service), Browser(service), Browser(service)
    reply = api.post("/user/push", {**phone.subscription(), "lang": "zh-CN"}, token=bob_token)
    assert reply.status == 201, reply.body
    subscribe(api, bob_token, laptop)
    reply = api.post("/user/push", tablet.subscription(), token=bob_token,
                     headers={"Accept-Language": "zh-TW,zh;q=0.9,en;q=0.5"})
    assert reply.status == 201, reply.body

    say(api, alice_token, 10, bob["id"], "周五见")
    say(api, alice_token, 11, group["id"], "大家好")
    titles = {}
    for name, browser in (("phone", phone), ("laptop", laptop), ("tablet", tablet)):
        # Decrypted with the browser's own keys (RFC 8291): the text was encrypted as is.
        titles[name] = sorted(browser.decrypt(p)["title"]
                              for p in service.wait_for(browser.endpoint, 2))
    chinese = ["Alice发来一条新消息", f"Alice在群聊「{group['name']}」中发来一条新消息"]
    assert titles["phone"] == titles["tablet"] == chinese
    assert titles["laptop"] == sorted(["New message from Alice",
                                       f"New message from Alice in {group['name']}"])

    # A language we do not ship is English; something that is no language tag, an error.
    assert api.post("/user/push", {**Browser(service).subscription(), "lang": "fr-FR"},
                    token=bob_token).status == 201
    assert subscription_language("fr-FR", "zh-CN") == "en"
    assert subscription_language("zh-Hant-TW", "en") == "zh-CN"
    assert subscription_language(None, "zh-CN") == "zh-CN"
    for bad in ("zh_CN; DROP", 7, "x" * 40):
        reply = api.post("/user/push", {**Browser(service).subscription(), "lang": bad},
                         token=bob_token)
        assert reply.status == 400 and "lang must be a language tag" in reply.json["msg"]


def test_an_online_user_is_not_pushed(api: ApiServer, service: PushService) -> None:
    alice, alice_token, bob, bob_token = pair(api)
    browser = Browser(service)
    subscribe(api, bob_token, browser)

    async def scenario() -> None:
        bob_device = await ChatClient.open(api, bob_token)
        alice_device = await ChatClient.open(api, alice_token)
        ack = await alice_device.say(10, bob["id"], "here?", "c1")
        assert ack["cmd"] == 1
        assert (await bob_device.message())["content"] == "here?"
        # Bob's device is still connected while the push is worked out.
        await asyncio.to_thread(idle, api)
        await alice_device.close()
        await bob_device.close()

    asyncio.run(scenario())
    idle(api)
    assert service.to(browser.endpoint) == []


def test_a_muted_conversation_is_not_pushed_and_unmuting_brings_pushes_back(
        api: ApiServer, service: PushService) -> None:
    alice, alice_token, bob, bob_token = pair(api)
    browser = Browser(service)
    subscribe(api, bob_token, browser)
    muted = api.post("/contact/mute", {"cmd": 10, "dstid": alice["id"]}, token=bob_token)
    assert muted.status == 200 and muted.data == {"cmd": 10, "dstid": alice["id"], "until": None}
    say(api, alice_token, 10, bob["id"], "muted?")
    idle(api)
    assert service.to(browser.endpoint) == []

    assert api.post("/contact/unmute", {"cmd": 10, "dstid": alice["id"]},
                    token=bob_token).status == 200
    say(api, alice_token, 10, bob["id"], "and now?")
    service.wait_for(browser.endpoint)


def test_pushes_are_coalesced_per_conversation(api: ApiServer, service: PushService) -> None:
    alice, alice_token, bob, bob_token = pair(api)
    carol, carol_token = api.user_with_token(nickname="Carol")
    befriend(api, carol_token, bob, bob_token)
    browser = Browser(service)
    subscribe(api, bob_token, browser)
    say(api, alice_token, 10, bob["id"], "one", "two", "three")
    say(api, carol_token, 10, bob["id"], "from Carol")
    idle(api)
    # One for Alice's three messages, one for Carol's: another conversation.
    titles = sorted(browser.decrypt(p)["title"] for p in service.to(browser.endpoint))
    assert titles == ["New message from Alice", "New message from Carol"]


def test_a_group_pushes_its_offline_members_but_not_the_sender(
        api: ApiServer, service: PushService) -> None:
    alice, alice_token, bob, bob_token = pair(api)
    made = api.post("/contact/createcommunity", {"name": f"g{secrets.token_hex(3)}",
                                                 "visibility": "public"}, token=alice_token)
    group = made.data
    assert api.post("/contact/joincommunity", {"dstid": group["id"]},
                    token=bob_token).status == 200
    bob_browser, alice_browser = Browser(service), Browser(service)
    subscribe(api, bob_token, bob_browser)
    subscribe(api, alice_token, alice_browser)
    say(api, alice_token, 11, group["id"], "hello group")
    [push] = service.wait_for(bob_browser.endpoint)
    shown = bob_browser.decrypt(push)
    assert shown["title"] == f"New message from Alice in {group['name']}"
    assert (shown["cmd"], shown["dstid"]) == (11, group["id"])
    idle(api)
    assert service.to(alice_browser.endpoint) == []


def test_a_subscription_the_push_service_forgot_is_removed(api: ApiServer,
                                                          service: PushService) -> None:
    alice, alice_token, bob, bob_token = pair(api)
    carol, carol_token = api.user_with_token(nickname="Carol")
    befriend(api, carol_token, bob, bob_token)
    gone, missing = Browser(service), Browser(service)
    service.answers[gone.endpoint.split(str(service.port))[1]] = 410
    service.answers[missing.endpoint.split(str(service.port))[1]] = 404
    subscribe(api, bob_token, gone)
    subscribe(api, bob_token, missing)
    assert api.get("/user/push", token=bob_token).data["subscriptions"] == 2
    say(api, alice_token, 10, bob["id"], "anyone?")
    idle(api)
    assert len(service.to(gone.endpoint)) == len(service.to(missing.endpoint)) == 1
    assert api.get("/user/push", token=bob_token).data["subscriptions"] == 0
    say(api, carol_token, 10, bob["id"], "still nobody")
    idle(api)
    assert len(service.to(gone.endpoint)) == 1


def test_logout_and_unsubscribe_end_the_pushes(api: ApiServer, service: PushService) -> None:
    alice, alice_token, bob, bob_token = pair(api)
    phone_token = api.login(bob)
    laptop, phone = Browser(service), Browser(service)
    subscribe(api, bob_token, laptop)
    subscribe(api, phone_token, phone)
    assert api.post("/user/logout", {}, token=phone_token).status == 200
    assert api.get("/user/push", token=bob_token).data["subscriptions"] == 1
    removed = api.request("DELETE", "/user/push", json_body={"endpoint": laptop.endpoint},
                          token=bob_token)
    assert removed.status == 200 and removed.data == {"removed": True}
    assert api.get("/user/push", token=bob_token).data["subscriptions"] == 0
    say(api, alice_token, 10, bob["id"], "gone?")
    idle(api)
    assert service.to(laptop.endpoint) == service.to(phone.endpoint) == []


def test_a_session_revoked_elsewhere_is_pushed_nothing(api: ApiServer,
                                                       service: PushService) -> None:
    alice, alice_token, bob, bob_token = pair(api)
    phone_token = api.login(bob, device="phone")
    laptop, phone = Browser(service), Browser(service)
    subscribe(api, bob_token, laptop)
    subscribe(api, phone_token, phone)
    # Bob changes his password on the laptop: the phone's session ends.
    changed = api.post("/user/passwd", {"oldpasswd": bob["passwd"],
                                        "passwd": "a new horse battery"}, token=bob_token)
    assert changed.status == 200, changed.body
    say(api, alice_token, 10, bob["id"], "after the change")
    service.wait_for(laptop.endpoint)
    idle(api)
    assert service.to(phone.endpoint) == []


def test_a_browser_subscribes_once_whoever_is_logged_in(api: ApiServer,
                                                       service: PushService) -> None:
    alice, alice_token, bob, bob_token = pair(api)
    shared = Browser(service)
    subscribe(api, alice_token, shared)
    subscribe(api, bob_token, shared)  # Bob logged in on the same browser afterwards
    assert api.get("/user/push", token=alice_token).data["subscriptions"] == 0
    assert api.get("/user/push", token=bob_token).data["subscriptions"] == 1


@pytest.mark.parametrize(("change", "reason"), [
    ({"endpoint": "https://10.0.0.7/push/x"}, "public address"),
    ({"endpoint": "https://[fd00::1]/push/x"}, "public address"),
    ({"endpoint": "https://169.254.169.254/latest"}, "public address"),
    ({"endpoint": "ftp://push.example/x"}, "https://"),
    ({"endpoint": "https://user:pw@push.example/x"}, "no user"),
    ({"endpoint": "https://push.example/" + "x" * 2100}, "at most"),
    ({"endpoint": ""}, "endpoint is required"),
    ({"keys": {"p256dh": "AAAA", "auth": "AAAAAAAAAAAAAAAAAAAAAA"}}, "P-256"),
    ({"keys": {"p256dh": None, "auth": "x"}}, "p256dh"),
    ({"keys": "nope"}, "keys must be"),
])
def test_bad_subscriptions_are_refused_and_change_nothing(
        api: ApiServer, service: PushService, change: dict[str, Any], reason: str) -> None:
    _, token = api.user_with_token()
    good = Browser(service).subscription()
    reply = api.post("/user/push", {**good, **change}, token=token)
    assert reply.status == 400 and reason in reply.json["msg"], reply.body
    assert api.get("/user/push", token=token).data["subscriptions"] == 0
    assert api.post("/user/push", good).status == 401  # and nobody anonymous


def test_production_refuses_loopback_and_plain_http() -> None:
    production = PushOptions()
    for endpoint in ("http://127.0.0.1:9/push", "https://127.0.0.1/push",
                     "https://localhost/push", "http://push.example/x",
                     "https://192.168.1.2/x"):
        with pytest.raises(AppError):
            check_endpoint(endpoint, production)
    assert check_endpoint("https://fcm.googleapis.com/fcm/send/abc", production)
    lan = PushOptions(allow_private=True)
    assert check_endpoint("https://192.168.1.2/x", lan)


def test_preview_carries_the_text_when_the_operator_asks(
        tmp_path: Path, service: PushService) -> None:
    with push_server(tmp_path, preview=True) as api:
        alice, alice_token, bob, bob_token = pair(api)
        browser = Browser(service)
        subscribe(api, bob_token, browser)
        say(api, alice_token, 10, bob["id"], "每周五晚上 " + "x" * 200)
        [push] = service.wait_for(browser.endpoint)
        shown = browser.decrypt(push)
        assert shown["title"] == "New message from Alice"
        assert shown["body"] == ("每周五晚上 " + "x" * 200)[:120]
        # What is not text is named in the browser's language, as the page names it.
        push = api.app.services.push
        for media, memo, lang, body in ((4, "", "zh-CN", "[图片]"), (4, "", "en", "Photo"),
                                        (3, "", "zh-CN", "[语音]"),
                                        (5, "报告.pdf", "zh-CN", "[文件] 报告.pdf"),
                                        (5, "", "en", "File: file")):
            stored = Stored(alice["id"], 10, bob["id"], 1, media, "", memo)
            assert api.call(push._payload(stored, alice["id"], lang))["body"] == body


def test_push_flags_preview_refused_when_sealed_and_a_bad_subject(tmp_path: Path) -> None:
    import argparse

    from fastim.config import add_serve_arguments, config_from_args
    parser = argparse.ArgumentParser()
    add_serve_arguments(parser, environ={})
    args = parser.parse_args(["--push-preview", "--message-key-file", str(tmp_path / "k")])
    with pytest.raises(SystemExit, match="sealed"):
        config_from_args(args)
    args = parser.parse_args(["--push-subject", "admin@example.com"])
    with pytest.raises(SystemExit, match="mailto"):
        config_from_args(args)
    args = parser.parse_args(["--push-preview", "--push-subject", "mailto:ops@example.com"])
    assert config_from_args(args).push.preview is True


def test_the_vapid_key_is_made_once_private_and_kept(tmp_path: Path) -> None:
    from fastim.notify.vapid import VapidKey

    path = tmp_path / "vapid-private.pem"
    first = VapidKey.load_or_create(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert VapidKey.load_or_create(path).public_key == first.public_key  # a restart
    other = VapidKey.load_or_create(tmp_path / "elsewhere.pem")
    assert other.public_key != first.public_key

"""An open /chat connection ends with its login: logout, password change, token expiry.

The token of a WebSocket is checked at the upgrade only; these tests prove that a revoked
or expired token also ends the connections it opened (close code 4001,
docs/chat-protocol.md), on this node and on the others of a cluster, and nothing else.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path
from typing import Any

import pytest

from fastim.accounts import token_hash
from fastim.chat.session import TOKEN_REVOKED
from fastim.ws import ConnectionClosed
from tests.chat_support import ChatClient, befriend
from tests.store_fixtures import ApiServer


async def closed_with(client: ChatClient) -> tuple[int, str]:
    """Read until the server closes the connection; its close code and reason."""
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await client.frame()
    return closed.value.code, closed.value.reason


def test_logout_closes_the_chat_it_opened_and_no_other(api: ApiServer) -> None:
    alice = api.register(nickname="alice")
    phone = api.login(alice, device="phone")
    laptop = api.login(alice, device="laptop")
    bob, tb = api.user_with_token(nickname="bob")
    befriend(api, tb, alice, phone)

    async def scenario() -> None:
        on_phone = await ChatClient.open(api, phone)
        on_laptop = await ChatClient.open(api, laptop)
        b = await ChatClient.open(api, tb)
        # Logging out over REST ends the phone's open connection...
        assert api.post("/user/logout", token=phone).status == 200
        assert await closed_with(on_phone) == (TOKEN_REVOKED, "logged out")
        # ...and only that one: the laptop still receives.
        ack = await b.say(10, alice["id"], "still there?", "b1")
        assert (await on_laptop.message())["id"] == ack["id"]
        await on_laptop.close()
        await b.close()

    asyncio.run(scenario())


def test_a_password_change_closes_every_other_chat_of_the_user(api: ApiServer) -> None:
    alice = api.register(nickname="alice")
    phone = api.login(alice, device="phone")
    laptop = api.login(alice, device="laptop")
    tablet = api.login(alice, device="tablet")

    async def scenario() -> None:
        on_phone = await ChatClient.open(api, phone)
        on_tablet = await ChatClient.open(api, tablet)
        on_laptop = await ChatClient.open(api, laptop)
        reply = api.post("/user/passwd", {"oldpasswd": alice["passwd"],
                                          "passwd": "a new passphrase"}, token=laptop)
        assert reply.status == 200, reply.body
        assert await closed_with(on_phone) == (TOKEN_REVOKED, "password changed")
        assert await closed_with(on_tablet) == (TOKEN_REVOKED, "password changed")
        # The device that changed the password stays connected.
        await on_laptop.send(cmd=0)
        assert (await on_laptop.cmd(0))["cmd"] == 0
        await on_laptop.close()

    asyncio.run(scenario())


def test_a_new_login_closes_the_chats_of_the_tokens_it_replaced(api: ApiServer) -> None:
    alice = api.register(nickname="alice")
    phone = api.login(alice, device="phone")
    laptop = api.login(alice, device="laptop")
    api.app.services.accounts.max_sessions = 2

    async def scenario() -> None:
        on_phone = await ChatClient.open(api, phone)
        on_laptop = await ChatClient.open(api, laptop)
        # Logging in again on the phone replaces the phone's token: its chat ends...
        phone_again = api.login(alice, device="phone")
        assert await closed_with(on_phone) == (TOKEN_REVOKED, "signed in again")
        # ...and a third device pushes the oldest live token (the laptop's) past the cap.
        on_phone_again = await ChatClient.open(api, phone_again)
        api.login(alice, device="tablet")
        assert await closed_with(on_laptop) == (TOKEN_REVOKED, "signed in again")
        await on_phone_again.send(cmd=0)
        assert (await on_phone_again.cmd(0))["cmd"] == 0
        await on_phone_again.close()

    asyncio.run(scenario())


def test_an_open_chat_is_closed_when_its_token_expires(api: ApiServer) -> None:
    alice = api.register(nickname="alice")
    # A token that expires in a few seconds, saved the way a login saves one.
    token = secrets.token_urlsafe(32)
    now = int(time.time())
    api.call(api.app.store.save_token(alice["id"], token_hash(token), "short", now + 3,
                                      now=now, max_sessions=20))
    lasting = api.login(alice, device="lasting")

    async def scenario() -> None:
        short = await ChatClient.open(api, token)
        other = await ChatClient.open(api, lasting)
        assert await closed_with(short) == (TOKEN_REVOKED, "token expired")
        await other.send(cmd=0)
        assert (await other.cmd(0))["cmd"] == 0
        await other.close()

    asyncio.run(scenario())
    # Connecting again with the expired token is refused at the upgrade.
    assert api.get(f"/chat?token={token}", headers={
        "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}).status == 401


@pytest.mark.redis
@pytest.mark.mysql
def test_logout_on_one_node_closes_the_chat_on_another(
        tmp_path: Path, mysql_database: str, redis_addr: tuple[str, int]) -> None:
    from tests.cluster_support import Cluster

    host, port = redis_addr
    cluster = Cluster(tmp_path, f"{mysql_database}_rv{secrets.token_hex(2)}",
                      f"redis://{host}:{port}/0")
    try:
        api_node = cluster.add(role="api")
        chat_node = cluster.add(role="chat")
        alice = api_node.user("alice")
        phone = api_node.login(alice, "phone")
        laptop = api_node.login(alice, "laptop")

        async def scenario() -> Any:
            on_phone = await ChatClient.open(chat_node.port, phone)
            on_laptop = await ChatClient.open(chat_node.port, laptop)
            assert api_node.post("/user/logout", token=phone).status == 200
            assert await closed_with(on_phone) == (TOKEN_REVOKED, "logged out")
            await on_laptop.send(cmd=0)
            assert (await on_laptop.cmd(0))["cmd"] == 0
            await on_laptop.close()

        asyncio.run(scenario())
    finally:
        cluster.close()

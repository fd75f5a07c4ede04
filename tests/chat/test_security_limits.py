"""Issue 16's chat limits, over real sockets: connections per user, the message rate
limit per user (across devices, and across nodes through Redis), and the acks of stored
messages going out before the rate limit's close frame."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from fastim.bus.local import LocalBus
from fastim.chat.hub import TOO_MANY_CONNECTIONS, Hub, HubOptions
from fastim.chat.ratelimit import SharedWindow
from fastim.chat.session import ChatSession
from fastim.ws import ConnectionClosed, InvalidHandshake, connect, serve
from tests.chat.test_chat_hub_unit import MemoryChatStore
from tests.chat_support import ChatClient, befriend
from tests.store_fixtures import ApiServer, api_config

SAFETY = 20.0  # a hung test fails instead of hanging; never asserted on


def limited_api(db_url: str, tmp_path: Any, **hub: Any) -> ApiServer:
    config = api_config(db_url, tmp_path)
    config.hub = HubOptions(**hub)
    return ApiServer(config)


@pytest.fixture
def slow_api(db_url: str, tmp_path: Any) -> Iterator[ApiServer]:
    """A server whose bucket hardly refills during a test: 40 at once, then 0.2/s."""
    with limited_api(db_url, tmp_path, rate=0.2, burst=40) as server:
        yield server


def friends(api: ApiServer) -> tuple[dict[str, Any], str, dict[str, Any]]:
    alice, ta = api.user_with_token(nickname="alice")
    bob, tb = api.user_with_token(nickname="bob")
    befriend(api, ta, bob, tb)
    return alice, ta, bob


def stored_by(api: ApiServer, user_id: int) -> int:
    return int(api.call(api.app.store.read(
        lambda tx: tx.row("SELECT COUNT(*) FROM messages WHERE sender = ?", (user_id,))))[0])


async def drain(client: ChatClient) -> tuple[list[dict[str, Any]], int | None]:
    """Every frame until the server closes the connection, and its close code."""
    frames = []
    try:
        while True:
            frames.append(await client.frame())
    except ConnectionClosed:
        pass
    return frames, client.connection.close_code


def acks(frames: list[dict[str, Any]]) -> list[str]:
    return [f["cid"] for f in frames if f.get("cmd") == 1]


# --- acks before the close -------------------------------------------------------------


def test_sixty_messages_back_to_back_every_stored_one_is_acked_before_the_1008(
        slow_api: ApiServer) -> None:
    api = slow_api
    alice, ta, bob = friends(api)

    async def scenario() -> tuple[list[dict[str, Any]], int | None]:
        a = await ChatClient.open(api, ta)
        payload = [json.dumps({"cmd": 10, "dstid": bob["id"], "media": 1,
                               "content": f"m{n}", "cid": f"c{n}"}) for n in range(60)]
        try:
            for text in payload:
                await a.connection.send(text)
        except ConnectionClosed:
            pass  # the close may come while we still send
        return await drain(a)

    frames, code = asyncio.run(scenario())
    stored = stored_by(api, alice["id"])
    assert code == 1008
    assert 40 <= stored < 60  # the burst was taken, the rest refused
    # Every stored message was acked, in order, before the close frame.
    assert acks(frames) == [f"c{n}" for n in range(stored)]


# --- one budget per user ------------------------------------------------------------------


def test_the_rate_limit_is_per_user_across_that_users_connections(slow_api: ApiServer) -> None:
    api = slow_api
    alice, ta, bob = friends(api)

    async def scenario() -> list[int | None]:
        devices = [await ChatClient.open(api, ta) for _ in range(5)]
        for d, device in enumerate(devices):  # 5 x 15 = 75 messages, a burst allows 40
            for n in range(15):
                try:
                    await device.send(cmd=10, dstid=bob["id"], media=1, content="x",
                                      cid=f"{d}-{n}")
                except ConnectionClosed:
                    break
        codes = []
        for device in devices:
            try:
                await device.send(cmd=0)
                while (await device.frame())["cmd"] != 0:
                    pass
                await device.close()
                codes.append(None)
            except ConnectionClosed:
                codes.append(device.connection.close_code)
        return codes

    codes = asyncio.run(scenario())
    assert stored_by(api, alice["id"]) <= 42  # the burst, and what refilled meanwhile
    assert 1008 in codes


def test_a_reconnect_does_not_buy_a_fresh_burst(slow_api: ApiServer) -> None:
    api = slow_api
    alice, ta, bob = friends(api)

    async def scenario() -> int | None:
        first = await ChatClient.open(api, ta)
        for n in range(38):
            await first.say(10, bob["id"], "x", f"a{n}")
        await first.close()
        second = await ChatClient.open(api, ta)
        with pytest.raises(ConnectionClosed):
            for n in range(20):
                await second.say(10, bob["id"], "x", f"b{n}")
        return second.connection.close_code

    assert asyncio.run(scenario()) == 1008
    assert stored_by(api, alice["id"]) <= 41


# --- connections per user ---------------------------------------------------------------


def test_connections_beyond_the_cap_get_429_and_the_others_keep_working(
        db_url: str, tmp_path: Any) -> None:
    with limited_api(db_url, tmp_path, max_connections_per_user=3) as api:
        alice, ta, bob = friends(api)

        async def scenario() -> None:
            devices = [await ChatClient.open(api, ta) for _ in range(3)]
            with pytest.raises(InvalidHandshake) as refused:
                await ChatClient.open(api, ta)
            assert refused.value.status == 429
            assert dict(refused.value.headers).get("Retry-After") == "30"
            for n, device in enumerate(devices):  # the connected devices are untouched
                assert (await device.say(10, bob["id"], "still here", f"s{n}"))["cmd"] == 1
            await devices[0].close()
            await asyncio.sleep(0.1)
            devices[0] = await ChatClient.open(api, ta)  # a freed slot is usable again
            # Another user is not affected by alice's devices.
            other = api.login(bob)
            await (await ChatClient.open(api, other)).close()
            for device in devices:
                await device.close()

        asyncio.run(scenario())


def test_upgrades_racing_past_the_check_are_closed_with_4002() -> None:
    """The hub enforces the cap too: here no upgrade check runs at all."""
    store = MemoryChatStore({}, {})

    async def scenario() -> list[int | None]:
        hub = Hub(store, HubOptions(max_connections_per_user=2), bus=LocalBus())
        hub.start()

        async def handler(ws: Any) -> None:
            session = ChatSession(ws, user_id=1, max_buffer=1 << 20,
                                  on_close=lambda: hub.disconnect(session))
            await hub.connect(session)
            try:
                async for text in ws:
                    await hub.receive(session, text)
            finally:
                hub.disconnect(session)

        codes: list[int | None] = []
        async with serve(handler, "127.0.0.1", 0) as server:
            clients = await asyncio.gather(*(
                connect(f"ws://127.0.0.1:{server.port}/") for _ in range(4)))
            for client in clients:
                try:
                    await client.send('{"cmd":0}')
                    await asyncio.wait_for(client.recv(), SAFETY)
                    while json.loads(await asyncio.wait_for(client.recv(), SAFETY)) != \
                            {"cmd": 0}:
                        pass
                    codes.append(None)
                except ConnectionClosed:
                    codes.append(client.close_code)
            assert len(hub.users[1].sessions) == 2
            for client in clients:
                await client.close()
        await hub.close()
        return codes

    codes = asyncio.run(scenario())
    assert sorted(codes, key=str) == sorted([None, None, TOO_MANY_CONNECTIONS,
                                             TOO_MANY_CONNECTIONS], key=str)


# --- across nodes, through Redis ---------------------------------------------------------


@pytest.mark.redis
def test_the_rate_limit_is_shared_across_nodes_through_redis(
        redis_addr: tuple[str, int]) -> None:
    """Two hubs (two nodes) whose own buckets would allow anything: the shared window in
    Redis (30 messages per 10 s) is what stops a user sending through both."""
    url = f"redis://{redis_addr[0]}:{redis_addr[1]}/0"
    prefix = f"ratetest{time.time_ns()}"
    store = MemoryChatStore({1: {2}, 2: {1}}, {})

    async def scenario() -> tuple[int, list[int | None]]:
        hubs = [Hub(store, HubOptions(rate=1e6, burst=1e6), bus=LocalBus(),
                    shared=SharedWindow(aioredis.from_url(url), prefix, limit=30,
                                        window=10.0, flush_every=0.02)) for _ in range(2)]
        servers = []
        for hub in hubs:
            hub.start()

            async def handler(ws: Any, hub: Hub = hub) -> None:
                session = ChatSession(ws, user_id=1, max_buffer=1 << 20,
                                      on_close=lambda: hub.disconnect(session))
                await hub.connect(session)
                try:
                    async for text in ws:
                        await hub.receive(session, text)
                finally:
                    hub.disconnect(session)

            servers.append(await serve(handler, "127.0.0.1", 0).__aenter__())
        clients = [await connect(f"ws://127.0.0.1:{server.port}/") for server in servers]
        for client in clients:
            await asyncio.wait_for(client.recv(), SAFETY)  # the presence snapshot
        acked = 0
        codes: list[int | None] = [None, None]
        for n in range(60):  # alternately through each node, acked one by one
            index = n % 2
            if codes[index] is not None:
                continue
            client = clients[index]
            try:
                await client.send(json.dumps({"cmd": 10, "dstid": 2, "media": 1,
                                              "content": "x", "cid": f"c{n}"}))
                frame = json.loads(await asyncio.wait_for(client.recv(), SAFETY))
                assert frame["cmd"] == 1
                acked += 1
            except ConnectionClosed:
                codes[index] = client.close_code
            await asyncio.sleep(0.01)
        for client in clients:
            await client.close()
        for server in servers:
            await server.__aexit__(None, None, None)
        for hub in hubs:
            await hub.close()
            assert hub.shared is not None
            await hub.shared.close()
        return acked, codes

    acked, codes = asyncio.run(scenario())
    # The limit, and what both nodes let through before the next flush told them: a few
    # on an idle machine (one flush interval), more when the flush task runs late under
    # load; without the shared window all 60 would be acked.
    assert 30 <= acked < 60, acked
    assert codes == [1008, 1008]

"""The Redis bus piece by piece: envelopes (sans-I/O), the presence registry's scripts on
a real Redis, and `RedisBus` in process against a private redis-server that is killed
and restarted (the outbox, the reset of connections, the reconnect)."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from hypothesis import given, settings
from hypothesis import strategies as st

from fastim.bus import BusOptions, Names, RedisBus, State, pack, scripts, split_url, unpack
from fastim.bus.events import (
    ControlEvent,
    FriendAdded,
    FriendRemoved,
    FriendRequested,
    GroupDissolved,
    GroupNotice,
    MemberJoined,
    MemberLeft,
    TokensRevoked,
    UsersWentOffline,
    from_json,
    to_json,
)
from tests.cluster_support import RedisServer, eventually, wait_until

# -- envelopes and names -----------------------------------------------------------------


@settings(max_examples=200)
@given(frame=st.text(), skip=st.none() | st.text(max_size=40),
       also=st.none() | st.integers(0, 2**63 - 1),
       message_id=st.none() | st.integers(0, 2**63 - 1), origin=st.text(max_size=40),
       seq=st.none() | st.integers(0, 2**63 - 1),
       about=st.none() | st.integers(0, 2**63 - 1))
def test_an_envelope_carries_any_frame_unchanged(frame: str, skip: str | None,
                                                  also: int | None, message_id: int | None,
                                                  origin: str, seq: int | None,
                                                  about: int | None) -> None:
    envelope = unpack(pack(origin, frame, skip_session=skip, also=also,
                           message_id=message_id, seq=seq, about=about))
    assert (envelope.origin, envelope.frame, envelope.skip_session, envelope.also,
            envelope.message_id, envelope.seq, envelope.about) == (
        origin, frame, skip, also, message_id, seq, about)


@pytest.mark.parametrize("payload", [
    b"no header line", b"[1]\n{}", b'{"s": "x"}\n{}', b'{"o": 1}\n{}',
    b'{"o": "n", "s": 5}\n{}', b'{"o": "n", "m": true}\n{}', b'{"o": "n", "a": "1"}\n{}',
    b'{"o": "n", "q": "2"}\n{}', b'{"o": "n", "w": "3"}\n{}',
    b"not json\n{}",
])
def test_a_bad_envelope_is_refused(payload: bytes) -> None:
    with pytest.raises(ValueError):
        unpack(payload)


def test_channel_names_parse_back() -> None:
    names = Names("dep-1")
    assert names.parse(names.user(42)) == ("u", 42)
    assert names.parse(names.group(7)) == ("g", 7)
    assert names.parse(names.control) == ("ctl", 0)
    for foreign in (b"other:u:1", b"dep-1:x:1", b"dep-1:u:abc"):
        with pytest.raises(ValueError):
            names.parse(foreign)


def test_the_url_names_the_deployment_prefix() -> None:
    assert split_url("redis://127.0.0.1:6379/0") == ("redis://127.0.0.1:6379/0", "fastim")
    assert split_url("redis://h:1/2?prefix=staging&socket_timeout=3") == (
        "redis://h:1/2?socket_timeout=3", "staging")
    for bad in ("http://h/0", "redis://h/0?prefix=", "redis://h/0?prefix=a:b"):
        with pytest.raises(ValueError):
            split_url(bad)


@pytest.mark.parametrize("event", [
    FriendAdded(1, 2), FriendRemoved(2, 1), FriendRequested(9, 1, 2),
    MemberJoined(3, 4), MemberJoined(3, 4, since=0), MemberJoined(3, 4, since=1042),
    MemberLeft(3, 4), GroupDissolved(3), GroupNotice(3, "joined", 4, since=77),
    GroupNotice(3, "removed", 4, by_id=1, banned=True),
    GroupNotice(3, "request", 5, to=(1, 2)), GroupNotice(3, "role", 4, by_id=1, role="admin"),
    TokensRevoked(4, ("h1",), reason="signed in again"),
    TokensRevoked(4, None, keep="h3", reason="password changed"),
    UsersWentOffline((5, 6)),
])
def test_a_control_event_crosses_the_control_channel_unchanged(event: ControlEvent) -> None:
    assert from_json(to_json(event)) == event


def test_a_join_from_a_node_that_does_not_say_the_window_has_none() -> None:
    # An older node's join: the hub then sends the member no change of an older
    # message (fastim/chat/hub.py, member_joined), rather than guess a window.
    assert from_json('{"t":"join","g":3,"u":4}') == MemberJoined(3, 4, since=None)
    assert from_json('{"t":"group","g":3,"e":"joined","u":4,"by":0}').since is None


def test_the_reapers_gone_message_is_a_control_event() -> None:
    # Built by the Lua of scripts.REAP, not by to_json.
    assert from_json('{"t":"gone","users":[5,9]}') == UsersWentOffline((5, 9))
    for bad in ('{"t":"later"}', "[1]", '{"t":"join","g":1}'):
        with pytest.raises((ValueError, KeyError)):
            from_json(bad)


# -- the registry's scripts on the machine's Redis ----------------------------------------


class Registry:
    """The Lua scripts called the way RedisBus calls them, on a fresh prefix."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.prefix = f"fastim-reg-{secrets.token_hex(4)}"
        self.names = Names(self.prefix)

    def run(self, name: str, *args: Any) -> Any:
        return self.client.eval(scripts.ALL[name], 0, self.prefix, *args)

    def beat(self, node: str, ttl_ms: int) -> list[Any]:
        return self.run("heartbeat", node, ttl_ms)

    def online(self, *users: int) -> set[int]:
        return {int(u) for u in self.run("online", *users)}

    def cleanup(self) -> None:
        for key in self.client.scan_iter(f"{self.prefix}:*"):
            self.client.delete(key)


@pytest.fixture
def registry(redis_addr: tuple[str, int]) -> Iterator[Registry]:
    client = redis.Redis(*redis_addr)
    reg = Registry(client)
    try:
        yield reg
    finally:
        reg.cleanup()
        client.close()


def listen(reg: Registry, *channels: bytes) -> Any:
    pubsub = reg.client.pubsub()
    pubsub.subscribe(*channels)
    for _ in channels:
        assert pubsub.get_message(timeout=5)["type"] == "subscribe"
    return pubsub


def published(pubsub: Any) -> list[tuple[bytes, bytes]]:
    """What arrived so far: a PING on the same connection marks "so far"."""
    pubsub.ping()
    got = []
    while True:
        message = pubsub.get_message(timeout=5)
        assert message is not None
        if message["type"] == "pong":
            return got
        got.append((message["channel"], message["data"]))


def test_presence_goes_with_the_first_and_last_device_anywhere(registry: Registry) -> None:
    reg = registry
    for node in ("A", "B", "F"):
        reg.beat(node, 60_000)
    reg.run("arrive", "F", 9, b"-", 1)  # user 9 is online on node F; user 8 is not
    watch = listen(reg, reg.names.user(9), reg.names.user(8))
    try:
        # User 1's first device (node A): friends 9 (online) and 8 (offline).
        assert reg.run("arrive", "A", 1, b"hello", 9, 8) == [1, b"9"]
        assert published(watch) == [(reg.names.user(9), b"hello")]
        # A second device on node B: not news.
        assert reg.run("arrive", "B", 1, b"again", 9, 8) == [0, b"9"]
        assert reg.online(1, 2, 9) == {1, 9}
        # Leaving node A while node B still holds the user: nothing to say.
        assert reg.run("depart", "A", 1, b"bye", 9) == [0]
        # The last device: the online friend is told.
        assert reg.run("depart", "B", 1, b"bye", 9, 8) == [1]
        assert published(watch) == [(reg.names.user(9), b"bye")]
        assert reg.online(1) == set()
        # A node that holds no registration (a reaper took it) says nothing.
        assert reg.run("depart", "B", 1, b"bye again", 9) == [0]
        assert published(watch) == []
    finally:
        watch.close()


def test_a_node_whose_heartbeat_lapses_is_reaped_once(registry: Registry) -> None:
    reg = registry
    assert reg.beat("live", 60_000)[0] == 1  # first beat: newly registered
    assert reg.beat("live", 60_000)[0] == 0
    reg.beat("dying", 50)
    reg.run("arrive", "dying", 5, b"-")
    reg.run("arrive", "dying", 6, b"-")
    reg.run("arrive", "live", 6, b"-")  # user 6 is on both nodes
    watch = listen(reg, reg.names.control)
    try:
        assert reg.run("reap", "dying", "0", "live") == [0]  # not expired yet: left alone
        lapsed: list[Any] = []

        def has_lapsed() -> bool:  # poll until its lease has run out
            lapsed[:] = reg.beat("live", 60_000)[1:]
            return bool(lapsed)

        wait_until(has_lapsed, "the lease to run out")
        assert lapsed == [b"dying"]
        assert reg.online(5, 6) == {6}  # expired: user 5 is offline before any reaping
        assert reg.run("reap", "dying", "0", "live") == [1, 5]
        assert reg.run("reap", "dying", "0", "other") == [0]  # only one reaper does it
        [(channel, data)] = published(watch)
        envelope = unpack(data)
        assert (channel, envelope.origin) == (reg.names.control, "live")
        assert json.loads(envelope.frame) == {"t": "gone", "users": [5]}
        assert reg.client.exists(f"{reg.prefix}:node:dying") == 0
        assert reg.client.zrange(f"{reg.prefix}:nodes", 0, -1) == [b"live"]
    finally:
        watch.close()


def test_a_node_that_came_back_in_time_is_not_reaped(registry: Registry) -> None:
    reg = registry
    reg.beat("slow", 60_000)
    reg.run("arrive", "slow", 3, b"-")
    assert reg.run("reap", "slow", "0", "other") == [0]
    assert reg.online(3) == {3}


# -- RedisBus in process, against a Redis that dies ---------------------------------------


class FakeSession:
    def __init__(self, id: str, user_id: int) -> None:
        self.id = id
        self.user_id = user_id
        self.closed: list[int] = []

    def close_for(self, code: int, reason: str) -> None:
        self.closed.append(code)


class FakePresence:
    def __init__(self, sessions: dict[str, FakeSession]) -> None:
        self.sessions = sessions


class FakeHub:
    """Records what the bus hands to a hub."""

    def __init__(self) -> None:
        self.bus: Any = None
        self.users: dict[int, FakePresence] = {}
        self.delivered: list[tuple[Any, ...]] = []
        self.changes: list[ControlEvent] = []

    def is_online(self, user: int) -> bool:
        return user in self.users

    def deliver_to_users(self, users: Any, frame: str, skip: str | None = None,
                         message_id: int | None = None) -> None:
        self.delivered.append(("users", tuple(users), frame, skip, message_id))

    def deliver_to_group(self, group: int, frame: str, also: int | None = None,
                         skip: str | None = None, message_id: int | None = None,
                         about: int | None = None) -> None:
        self.delivered.append(("group", group, frame, also, skip, message_id))

    def apply(self, event: ControlEvent) -> None:
        self.changes.append(event)

    def close_all(self, code: int, reason: str) -> int:
        sessions = [s for presence in self.users.values() for s in presence.sessions.values()]
        for session in sessions:
            session.close_for(code, reason)
        return len(sessions)


def fast(max_outbox: int = 100) -> BusOptions:
    return BusOptions(node_ttl=1.0, max_outbox=max_outbox, wait=1.0, backoff_max=0.2)


def test_two_buses_carry_frames_presence_and_contact_changes(
        private_redis: RedisServer) -> None:
    url = f"{private_redis.url}?prefix=t{secrets.token_hex(3)}"

    async def scenario() -> None:
        one, two = RedisBus(url, fast(), node="one"), RedisBus(url, fast(), node="two")
        hub1, hub2 = FakeHub(), FakeHub()
        one.attach(hub1)
        two.attach(hub2)
        await one.start()
        await two.start()
        assert one.state is two.state is State.UP
        # User 7 on node two, group 3 with an online member on node two.
        hub2.users[7] = FakePresence({})
        assert await two.arrived(7, [3], friends=[], frame="{}") == set()
        assert await one.online([7, 8]) == {7}
        one.to_users([7, 7], '{"x":1}', skip_session="s1", message_id=10)
        one.to_group(3, '{"g":1}', also=5, message_id=11)
        events: list[ControlEvent] = [
            FriendAdded(1, 2), MemberJoined(3, 4), MemberLeft(3, 4),
            GroupDissolved(3, (4,)), TokensRevoked(4, ("h1", "h2"), reason="logged out"),
            TokensRevoked(4, None, keep="h3", reason="password changed")]
        for event in events:
            one.publish(event)
        await one.settle()
        await eventually(lambda: len(hub2.changes) == len(events), "the control events")
        assert hub2.delivered == [("users", (7,), '{"x":1}', "s1", 10),
                                  ("group", 3, '{"g":1}', 5, None, 11)]
        # The other node gets each event as published (a dissolved group's members are
        # not carried: each hub knows its own); the origin applied them when it published
        # them, and not a second time when Redis echoed them back.
        assert hub2.changes == [*events[:3], GroupDissolved(3), *events[4:]]
        assert hub1.changes == events
        two.departed(7, [3], friends=[], frame="{}")
        await two.settle()
        assert await one.online([7]) == set()
        await one.close()
        await two.close()

    asyncio.run(scenario())


def test_settle_returns_once_every_other_node_has_applied_the_change(
        private_redis: RedisServer) -> None:
    """A contact change is in force on every node when its request is answered: here
    node two is slow to handle what its subscription brings, and node one's settle()
    still returns only after node two's hub has the event."""
    url = f"{private_redis.url}?prefix=t{secrets.token_hex(3)}"

    async def scenario() -> None:
        one, two = RedisBus(url, fast(), node="one"), RedisBus(url, fast(), node="two")
        hub1, hub2 = FakeHub(), FakeHub()
        one.attach(hub1)
        two.attach(hub2)
        await one.start()
        await two.start()
        handle = two._on_message
        loop = asyncio.get_running_loop()
        two._on_message = lambda channel, payload: loop.call_later(  # type: ignore[method-assign]
            0.2, handle, channel, payload)
        one.publish(FriendAdded(1, 2))
        one.publish(MemberJoined(3, 4))
        await one.settle()
        assert hub2.changes == [FriendAdded(1, 2), MemberJoined(3, 4)]
        assert one._confirming == {}
        await one.close()
        await two.close()

    asyncio.run(scenario())


def test_a_node_that_never_answers_delays_settle_but_does_not_hold_it(
        private_redis: RedisServer) -> None:
    """A subscriber that receives control events but never says it applied them (a
    hung node, or one from before the answers existed) costs a change `options.wait`
    at most, and leaves nothing behind."""
    prefix = f"t{secrets.token_hex(3)}"

    async def scenario() -> None:
        mute = aioredis.from_url(private_redis.url).pubsub()
        await mute.subscribe(Names(prefix).control)
        one = RedisBus(f"{private_redis.url}?prefix={prefix}", fast(), node="one")
        one.attach(FakeHub())
        await one.start()
        one.publish(FriendAdded(1, 2))
        await asyncio.wait_for(one.settle(), timeout=30)
        assert one._confirming == {}
        assert (await mute.get_message(timeout=5))["type"] == "subscribe"
        assert json.loads(unpack((await mute.get_message(timeout=5))["data"]).frame)
        await one.close()
        await mute.aclose()

    asyncio.run(scenario())


def test_while_redis_is_down_stored_messages_wait_and_connections_reset_after(
        private_redis: RedisServer) -> None:
    prefix = f"t{secrets.token_hex(3)}"
    url = f"{private_redis.url}?prefix={prefix}"

    async def scenario() -> None:
        bus = RedisBus(url, fast(max_outbox=3), node="sender")
        hub = FakeHub()
        bus.attach(hub)
        phone = FakeSession("sender/1", 1)
        hub.users[1] = FakePresence({phone.id: phone})
        await bus.start()

        private_redis.kill()
        await eventually(lambda: bus.state is State.DOWN, "the bus to notice")
        await bus.settle()  # returns at once while down
        for n in range(5):  # stored messages: kept, the oldest beyond 3 dropped
            bus.to_users([7], f'{{"n":{n}}}', message_id=100 + n)
        bus.to_users([7], '{"cmd":40}')  # typing: dropped
        assert bus.stats.dropped == 3
        assert await bus.online([1, 9]) == {1}  # only what it knows locally
        assert await bus.arrived(2, [], friends=[1], frame="{}") == {1}

        # Back, but locked until someone listens for user 7: then the bus may reconnect.
        private_redis.start("--requirepass", "wait")
        listener = aioredis.Redis(port=private_redis.port, password="wait")
        pubsub = listener.pubsub()
        await pubsub.subscribe(Names(prefix).user(7))
        await listener.config_set("requirepass", "")
        await eventually(lambda: bus.state is State.UP, "the bus back", 20)
        assert phone.closed == [1012]  # reconnect and sync
        assert (bus.stats.resets, bus.stats.reconnects) == (1, 1)
        got: list[int | None] = []

        async def next_message() -> Any:
            while True:  # None also stands for the skipped subscribe confirmation
                message = await pubsub.get_message(ignore_subscribe_messages=True,
                                                   timeout=None)
                if message is not None:
                    return message

        while len(got) < 3:
            message = await asyncio.wait_for(next_message(), 10)
            got.append(unpack(message["data"]).message_id)
        assert got == [102, 103, 104]  # in order, after the reconnect
        await pubsub.aclose()
        await listener.aclose()
        await bus.close()

    asyncio.run(scenario())


def test_a_node_starts_without_redis_and_joins_when_it_comes(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "late")
    url = f"{server.url}?prefix=late"

    async def scenario() -> None:
        bus = RedisBus(url, fast())
        await bus.start()  # waits a moment, then goes on without Redis
        assert bus.state is State.DOWN
        server.start()
        await eventually(lambda: bus.state is State.UP, "the bus to connect", 20)
        await bus.close()

    try:
        asyncio.run(scenario())
    finally:
        server.kill()

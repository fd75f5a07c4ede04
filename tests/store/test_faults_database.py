"""The database goes away for a while, and comes back.

* MariaDB, a private server started by the test (tests/mariadb_support.py): stopped
  (SIGTERM), killed (SIGKILL), or hung (SIGSTOP), then started again on the same data
  directory, or resumed.
* SQLite: another process holds the write lock (``BEGIN EXCLUSIVE``), then lets go.

Meanwhile REST answers 503 with a JSON error and Retry-After (never 500, never a hang:
every HTTP call here has a safety timeout), a chat message gets a ``store_failed`` error
and no ack, and the chat connection stays open. Afterwards the app works again by itself:
no restart, the failed message sent again is stored once, and every acked message is
in the history. docs/reliability.md, "Faults".
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import fastim.store.base
import fastim.store.mysql
import fastim.store.sqlite
from fastim.ws import InvalidHandshake
from tests.chat_support import ChatClient, befriend
from tests.mariadb_support import MariaDBServer, mariadb_server
from tests.store_fixtures import ApiServer, Reply, api_config


@pytest.fixture
def private_mariadb(tmp_path: Path) -> Iterator[MariaDBServer]:
    server = mariadb_server(tmp_path / "mariadb")
    try:
        yield server
    finally:
        server.close()


def assert_unavailable(reply: Reply) -> None:
    """503, fastIM's error envelope naming the database, and when to try again."""
    assert reply.status == 503, (reply.status, reply.body)
    body = reply.json
    assert body["code"] == -1 and body["data"] is None
    assert "database" in body["msg"]
    retry_after = reply.header("Retry-After")
    assert retry_after is not None and int(retry_after) >= 1


async def call(api: ApiServer, method: str, path: str, **kw: Any) -> Reply:
    """A REST call from a thread, so chat clients on this loop keep reading meanwhile."""
    return await asyncio.to_thread(api.request, method, path, **kw)


async def conversation(api: ApiServer) -> tuple[dict[str, Any], str, ChatClient, ChatClient,
                                                 dict[str, Any]]:
    """Alice and Bob, friends, each on the chat."""
    alice, alice_token = await asyncio.to_thread(api.user_with_token)
    bob, bob_token = await asyncio.to_thread(api.user_with_token)
    await asyncio.to_thread(befriend, api, alice_token, bob, bob_token)
    return alice, alice_token, await ChatClient.open(api, alice_token), \
        await ChatClient.open(api, bob_token), bob


async def say_many(alice: ChatClient, bob: dict[str, Any], tag: str, count: int) -> set[int]:
    """Messages acked by the server: their ids."""
    ids = set()
    for n in range(count):
        ack = await alice.say(10, bob["id"], f"{tag} {n}", f"{tag}-{n}")
        assert ack["cmd"] == 1, ack
        ids.add(ack["id"])
    return ids


async def history_ids(api: ApiServer, token: str, bob: dict[str, Any]) -> set[int]:
    reply = await call(api, "GET", f"/chat/history?cmd=10&dstid={bob['id']}&pagesize=100",
                       token=token)
    assert reply.status == 200, reply.body
    return {row["id"] for row in reply.list["rows"]}


async def outage_and_recovery(api: ApiServer, take_away: Any, bring_back: Any,
                              reads_work: bool) -> None:
    alice, token, alice_chat, bob_chat, bob = await conversation(api)
    acked = await say_many(alice_chat, bob, "before", 5)

    await asyncio.to_thread(take_away)

    # REST: a write, a login (it writes its token), and a read; on SQLite reads go on.
    assert_unavailable(await call(api, "POST", "/contact/createcommunity",
                                  json_body={"name": "during"}, token=token))
    assert_unavailable(await call(api, "POST", "/user/login", json_body={
        "mobile": alice["mobile"], "passwd": alice["passwd"]}))
    friends = await call(api, "POST", "/contact/loadfriend", json_body={}, token=token)
    if reads_work:
        assert friends.status == 200, friends.body
    else:
        assert_unavailable(friends)
        # A new chat connection is refused before the upgrade: its token cannot be checked.
        with pytest.raises(InvalidHandshake) as refused:
            await ChatClient.open(api, token)
        assert refused.value.status == 503

    # Chat: the message is not stored, so it is not acked; the client is told to resend.
    failed = await alice_chat.say(10, bob["id"], "during", "during-0")
    assert failed == {"cmd": 2, "error": "store_failed", "cid": "during-0",
                      "msg": "the message could not be stored; send it again"}
    await alice_chat.send(cmd=0)  # the connection itself is fine
    assert (await alice_chat.cmd(0)) == {"cmd": 0}

    await asyncio.to_thread(bring_back)
    # The store's circuit breaker opened during the outage (fastim/store/base.py): it
    # lets the next probe through PROBE_INTERVAL after the last failed one.
    await asyncio.to_thread(until_a_probe_may_run, api)

    # Recovered by itself, from the first request on: no retry loop here.
    created = await call(api, "POST", "/contact/createcommunity",
                         json_body={"name": "after"}, token=token)
    assert created.status == 201, created.body
    resent = await alice_chat.say(10, bob["id"], "during", "during-0")
    assert resent["cmd"] == 1 and resent["dup"] is False  # stored now, and only now
    acked |= {resent["id"]} | await say_many(alice_chat, bob, "after", 5)

    # No acked message is lost: all in the history, and all delivered to Bob.
    assert await history_ids(api, token, bob) == acked
    received = set()
    while received != acked:
        received.add((await bob_chat.message())["id"])
    await bob_chat.no_more_messages()
    for client in (alice_chat, bob_chat):
        await client.close()


@pytest.mark.parametrize("outage", ["stopped", "killed", "hung"])
def test_mariadb_going_away_answers_503_and_store_failed_then_recovers(
        private_mariadb: MariaDBServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        outage: str) -> None:
    # A hung server is only noticed by the driver's read timeout: shortened here so that
    # the test takes seconds (the default is in fastim/store/mysql.py).
    monkeypatch.setattr(fastim.store.mysql, "READ_TIMEOUT", 1)
    server = private_mariadb
    take_away, bring_back = {
        "stopped": (server.stop, server.start),
        "killed": (server.kill, server.start),
        "hung": (server.pause, server.resume),
    }[outage]
    with ApiServer(api_config(server.url("fastim"), tmp_path)) as api:
        asyncio.run(outage_and_recovery(api, take_away, bring_back, reads_work=False))


def test_a_hung_mariadb_costs_each_request_its_own_timeout_not_a_queue_of_them(
        private_mariadb: MariaDBServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # DBUtils makes new connections, and pings idle ones, under the pool's lock: on a hung
    # server every thread would wait its turn behind the others' timeouts. The store makes
    # its connections up front and pings on its own thread (fastim/store/mysql.py), so
    # concurrent requests time out side by side. Twelve of them at 1 s (2 s with the
    # reconnect) each would outlast the HTTP client's 10 s safety timeout in a queue.
    monkeypatch.setattr(fastim.store.mysql, "READ_TIMEOUT", 1)
    with ApiServer(api_config(private_mariadb.url("fastim"), tmp_path)) as api:
        _, token = api.user_with_token()
        private_mariadb.pause()

        async def requests() -> list[Reply]:
            return await asyncio.gather(*(
                call(api, "POST", "/contact/loadfriend", json_body={}, token=token)
                for _ in range(12)))

        for reply in asyncio.run(requests()):
            assert_unavailable(reply)
        private_mariadb.resume()
        until_a_probe_may_run(api)
        assert api.post("/contact/loadfriend", {}, token=token).status == 200


def until_a_probe_may_run(api: ApiServer) -> None:
    """Until the store's breakers are closed or let the next transaction through as their
    probe: PROBE_INTERVAL after the last failed one, which may be a background writer's
    (the search indexer, the group commit) that failed after the outage ended, not a
    fixed time after it (bounded; the request after it asserts)."""
    breakers = api.app.services.store.breakers.values()
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline and any(
            b.open and (b.probing or b.clock() < b.next_probe) for b in breakers):
        time.sleep(0.02)


# SQLite: another process takes the write lock.
HOLD_THE_LOCK = """
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.readline()
connection.execute("COMMIT")
"""


class LockHolder:
    """A second process holding an exclusive transaction on the database file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.process: subprocess.Popen[bytes] | None = None

    def take(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", HOLD_THE_LOCK, str(self.path)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert self.process.stdout is not None
        assert self.process.stdout.readline() == b"locked\n"

    def release(self) -> None:
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write(b"\n")
        self.process.stdin.flush()
        assert self.process.wait(10) == 0

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def test_sqlite_locked_by_another_process_answers_503_on_writes_then_recovers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The busy timeout shortened so that the test takes seconds (default 5 s).
    monkeypatch.setattr(fastim.store.sqlite, "BUSY_TIMEOUT_MS", 300)
    path = tmp_path / "fastim.db"
    holder = LockHolder(path)
    try:
        with ApiServer(api_config(f"sqlite:///{path}", tmp_path)) as api:
            asyncio.run(outage_and_recovery(api, holder.take, holder.release,
                                            reads_work=True))
    finally:
        holder.kill()


def test_sqlite_writes_queued_behind_a_lock_share_one_busy_timeout(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Writes go one at a time through the single writer thread. Each waits for the lock
    # only what is left of the busy timeout since it was asked for, so a queue of writes
    # behind a lock all get their 503 within about one busy timeout, not one each. The
    # timeout here is long enough that N queued writes would outlast the HTTP client's
    # safety timeout if each waited its own.
    monkeypatch.setattr(fastim.store.sqlite, "BUSY_TIMEOUT_MS", 3000)
    path = tmp_path / "fastim.db"
    holder = LockHolder(path)
    try:
        with ApiServer(api_config(f"sqlite:///{path}", tmp_path)) as api:
            _, token = api.user_with_token()
            holder.take()

            async def writes() -> list[Reply]:
                return await asyncio.gather(*(
                    call(api, "POST", "/contact/createcommunity",
                         json_body={"name": f"queued {n}"}, token=token) for n in range(6)))

            for reply in asyncio.run(writes()):  # 6 x 3 s > the client's 10 s
                assert_unavailable(reply)
            holder.release()
            until_a_probe_may_run(api)
            assert api.post("/contact/createcommunity", {"name": "after"},
                            token=token).status == 201
    finally:
        holder.kill()

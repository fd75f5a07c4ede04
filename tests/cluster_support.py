"""Real fastim nodes for the cluster tests: `python -m fastim serve` processes sharing one
MariaDB database and one Redis, and a private `redis-server` for the tests that restart it.

Every cluster gets its own Redis key prefix (``?prefix=`` in the URL), so clusters of
different tests, and other users of the machine's Redis, never see each other.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import redis

from fastim.ws import ConnectionClosed, connect
from tests.chat_support import SAFETY, ChatClient
from tests.store_fixtures import TEST_KDF, Reply, befriend_over, new_mobile

STARTUP = 30.0  # safety net for a node to start on a loaded machine; not asserted on
_RUNNING = re.compile(r"fastim is running: open http://127\.0\.0\.1:(\d+)/")


def wait_until(test: Callable[[], bool], what: str, timeout: float = SAFETY) -> None:
    """Poll `test` until it holds; fail naming `what` after the safety timeout."""
    deadline = time.monotonic() + timeout
    while not test():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


async def eventually(test: Callable[[], Any], what: str, timeout: float = SAFETY) -> None:
    """The asyncio form of `wait_until`."""
    deadline = time.monotonic() + timeout
    while not test():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def frames_until_heartbeat(client: ChatClient) -> list[dict[str, Any]]:
    """Every frame that arrives before the answer to a heartbeat sent now (and what was
    already waiting): a way to see that something did *not* come, without a timer."""
    await client.send(cmd=0)
    frames = []
    while (frame := await client.frame())["cmd"] != 0:
        frames.append(frame)
    return frames


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Node:
    """One `fastim serve` process on a free port."""

    def __init__(self, directory: Path, db: str, redis: str, *, role: str = "all",
                 node_ttl: float = 1.5, name: str = "node", port: int = 0,
                 extra: Sequence[str] = ()) -> None:
        self.directory = directory
        self.name = name
        # A fixed `port` survives a restart (a load balancer's list names it).
        self.args = [sys.executable, "-m", "fastim", "serve", "--host", "127.0.0.1",
                     "--port", str(port), "--db", db, "--redis", redis, "--role", role,
                     "--node-ttl", str(node_ttl), "--chat-rate", "10000",
                     "--register-per-address", "100000", "--kdf", TEST_KDF,
                     "--data-dir", str(directory / "data"),
                     "--resource-dir", str(directory / "resource"), *extra]
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0

    def start(self) -> Node:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.stdout = self.directory / "stdout.log"
        self.stderr = self.directory / "stderr.log"
        with open(self.stdout, "wb") as out, open(self.stderr, "wb") as err:
            self.process = subprocess.Popen(self.args, stdout=out, stderr=err,
                                            stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + STARTUP
        while True:
            found = _RUNNING.search(self.stdout.read_text())
            if found:
                self.port = int(found.group(1))
                return self
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name} did not start:\n{self.log()}")
            time.sleep(0.05)

    def log(self) -> str:
        return self.stderr.read_text() if self.stderr.exists() else ""

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no goodbye to Redis, no closing handshakes."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(SAFETY)

    def stop(self) -> None:
        """SIGTERM and wait for the graceful shutdown (SIGKILL as a safety net: the
        shutdown waits for clients' closing handshakes, up to the server's timeout)."""
        self.terminate()
        self.wait_stopped()

    def terminate(self) -> None:
        """SIGTERM, without waiting: the graceful shutdown begins."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def wait_stopped(self) -> None:
        """Wait for the shutdown `terminate` began (SIGKILL after STARTUP seconds)."""
        if self.process is None:
            return
        try:
            self.process.wait(STARTUP)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(SAFETY)

    # -- REST -------------------------------------------------------------------------

    def request(self, method: str, path: str, body: Any = None,
                token: str | None = None) -> Reply:
        headers = {}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=SAFETY)
        try:
            conn.request(method, path, body=data, headers=headers)
            response = conn.getresponse()
            return Reply(response.status, response.getheaders(), response.read())
        finally:
            conn.close()

    def post(self, path: str, body: Any = None, token: str | None = None) -> Reply:
        return self.request("POST", path, body if body is not None else {}, token)

    def get(self, path: str, token: str | None = None) -> Reply:
        return self.request("GET", path, None, token)

    def user(self, nickname: str) -> User:
        """Register a user through this node and log in."""
        mobile = new_mobile()
        reply = self.post("/user/register", {"mobile": mobile, "passwd": "correct horse",
                                             "nickname": nickname})
        assert reply.status == 201, reply.body
        login = self.post("/user/login", {"mobile": mobile, "passwd": "correct horse"})
        assert login.status == 200, login.body
        return User(id=int(reply.data["id"]), name=nickname, mobile=mobile,
                    token=str(login.data["token"]))

    def login(self, user: User, device: str) -> str:
        """Another token for `user` (another device)."""
        reply = self.post("/user/login", {"mobile": user.mobile, "passwd": "correct horse",
                                          "device": device})
        assert reply.status == 200, reply.body
        return str(reply.data["token"])

    async def chat(self, token: str) -> ChatClient:
        return await ChatClient.open(self.port, token)


class User:
    def __init__(self, id: int, name: str, mobile: str, token: str) -> None:
        self.id = id
        self.name = name
        self.mobile = mobile
        self.token = token

    def __repr__(self) -> str:
        return f"<User {self.id} {self.name}>"


class Cluster:
    """Nodes sharing one database and one Redis prefix."""

    def __init__(self, directory: Path, db: str, redis_url: str) -> None:
        self.directory = directory
        self.db = db
        self.prefix = f"fastim-test-{secrets.token_hex(4)}"
        self.redis = f"{redis_url}?prefix={self.prefix}"
        self.nodes: list[Node] = []

    def add(self, *, role: str = "all", node_ttl: float = 1.5, port: int = 0,
            extra: Sequence[str] = ()) -> Node:
        name = f"node{len(self.nodes) + 1}"
        node = Node(self.directory / name, self.db, self.redis, role=role,
                    node_ttl=node_ttl, name=name, port=port, extra=extra)
        self.nodes.append(node)
        return node.start()

    def close(self) -> None:
        """Stop the nodes, then remove whatever this cluster left in Redis (a node that
        had to be killed leaves its registry entries for a reaper that never comes)."""
        # All told at once, then waited for: their graceful shutdowns overlap.
        for node in self.nodes:
            node.terminate()
        for node in self.nodes:
            node.wait_stopped()
        if not self.redis.startswith("redis://"):
            return  # behind Sentinel: the test's own servers go with it
        client = redis.Redis.from_url(self.redis.split("?")[0])
        try:
            for key in client.scan_iter(f"{self.prefix}:*"):
                client.delete(key)
        except redis.RedisError:
            pass  # a private redis-server may be gone already
        finally:
            client.close()

    def friends(self, a: User, b: User, via: Node | None = None) -> None:
        """A request from `a`, accepted by `b` (`tests.store_fixtures.befriend_over`)."""
        befriend_over((via or self.nodes[0]).post, a.token, a.id, b.token, b.id)

    def group(self, owner: User, members: list[User], via: Node | None = None) -> int:
        node = via or self.nodes[0]
        reply = node.post("/contact/createcommunity",
                          {"name": f"g-{secrets.token_hex(4)}", "visibility": "public"},
                          token=owner.token)
        assert reply.status == 201, reply.body
        group = int(reply.data["id"])
        for member in members:
            joined = node.post("/contact/joincommunity", {"dstid": group}, token=member.token)
            assert joined.status == 200, joined.body
        return group


class RedisServer:
    """A private redis-server on a free port, which a test may kill and restart.

    No persistence (`--save ''`, no AOF): a restart comes back empty, like a failover
    to a cold replica, the hardest case for the bus.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, *extra: str) -> RedisServer:
        """Start (again) on the same port; `extra` arguments go to redis-server."""
        self.directory.mkdir(parents=True, exist_ok=True)
        binary = shutil.which("redis-server")
        if binary is None:
            message = "redis-server is not installed"
            if os.environ.get("CI"):
                pytest.fail(message)
            pytest.skip(message)
        log = open(self.directory / "redis.log", "ab")  # noqa: SIM115 - the process owns it
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.directory), *extra],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        wait_until(self._answers, f"redis-server on port {self.port}", STARTUP)
        return self

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith((b"+PONG", b"-NOAUTH"))
        except OSError:
            return False

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(SAFETY)


# -- clients that survive a node or Redis going away -------------------------------------


class Inbox:
    """Everything one user's device received, across its reconnects.

    `run()` keeps a device connected to one of `ports`: on every (re)connect it syncs
    from its cursor, naming the ids it holds above it, then reads live frames; the cursor
    moves only with sync pages (docs/chat-protocol.md, "The sync cursor"), and
    `checkpoint()` asks again as a client does from time to time. Each connection's
    message ids are kept apart, to check "never twice on one connection".
    """

    def __init__(self, user: User, ports: list[int], token: str | None = None) -> None:
        self.user = user
        self.ports = ports
        self.token = token or user.token
        self.cursor = 0
        self.connections: list[list[int]] = []  # message ids, per connection
        self.messages: dict[int, dict[str, Any]] = {}
        self.live: set[int] = set()  # ids that came as live frames, not in a sync reply
        self.frames: list[dict[str, Any]] = []  # everything, in arrival order
        self.close_codes: list[int | None] = []
        self.client: ChatClient | None = None
        self.connected = asyncio.Event()
        self.synced = asyncio.Event()  # this connection's sync has come to its end
        self._stop = False

    @property
    def ids(self) -> list[int]:
        return [i for conn in self.connections for i in conn]

    def _take(self, message: dict[str, Any], live: bool) -> None:
        self.connections[-1].append(message["id"])
        if live:
            self.live.add(message["id"])
        self.messages[message["id"]] = message

    async def _ask(self, client: ChatClient, since: int) -> None:
        held = sorted(i for i in self.messages if i > since)[-1000:]
        await client.send(cmd=20, since=since, limit=50, held=held)

    async def checkpoint(self) -> None:
        """Ask again from the cursor on the current connection, as a client does every
        so many live messages: what never came live (its node died before publishing
        it) comes now."""
        if self.client is not None:
            self.synced.clear()
            await self._ask(self.client, self.cursor)

    async def _connect(self) -> ChatClient:
        while True:
            for port in self.ports:
                try:
                    connection = await connect(f"ws://127.0.0.1:{port}/chat?token={self.token}",
                                               ping_interval=None)
                    return ChatClient(connection)
                except (OSError, ConnectionClosed, Exception):  # noqa: BLE001 - retrying
                    await asyncio.sleep(0.05)

    async def run(self) -> None:
        while not self._stop:
            client = self.client = await self._connect()
            self.connections.append([])
            try:
                await self._ask(client, self.cursor)
                self.connected.set()
                while True:
                    frame = await client.connection.recv()
                    data = json.loads(frame)
                    self.frames.append(data)
                    if data.get("cmd") in (10, 11) and "id" in data:
                        self._take(data, live=True)
                    elif data.get("cmd") == 21:
                        for row in data["rows"]:
                            self._take(row, live=False)
                        self.cursor = max(self.cursor, data["next"])
                        if data["more"]:
                            await self._ask(client, data["next"])
                        else:
                            self.synced.set()
            except ConnectionClosed:
                self.close_codes.append(client.connection.close_code)
            finally:
                self.connected.clear()
                self.synced.clear()

    async def stop(self) -> None:
        self._stop = True
        if self.client is not None:
            await self.client.close()


def assert_each_once(inbox: Inbox, expected: set[int]) -> None:
    """Every expected message reached the device exactly once over all its connections,
    and no connection was sent one twice."""
    for connection in inbox.connections:
        twice = [i for i, n in Counter(connection).items() if n > 1]
        assert not twice, f"{inbox.user} got {twice} twice on one connection"
    counts = Counter(inbox.ids)
    assert set(counts) == expected, (
        f"{inbox.user}: missing {sorted(expected - set(counts))}, "
        f"unexpected {sorted(set(counts) - expected)}")
    assert all(n == 1 for n in counts.values()), f"{inbox.user}: duplicates {counts}"


class SteadyChat:
    """`sender` writes to `recipient` one 1:1 message after another (bounded in count)
    while a test breaks things; `recipient`'s device reads, reconnecting and syncing.
    `finish()` checks that every acked message reached it exactly once."""

    def __init__(self, sender: User, recipient: User, sender_ports: list[int],
                 recipient_ports: list[int], limit: int = 5000) -> None:
        self.recipient = recipient
        self.sender = Sender(sender, sender_ports)
        self.inbox = Inbox(recipient, recipient_ports)
        self.limit = limit
        self.acked: set[int] = set()
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self._tasks.append(asyncio.create_task(self.inbox.run()))
        await asyncio.wait_for(self.inbox.synced.wait(), SAFETY)
        self._tasks.append(asyncio.create_task(self._talk()))

    async def _talk(self) -> None:
        for n in range(self.limit):
            if self._stop.is_set():
                return
            self.acked.add(await self.sender.say(10, self.recipient.id, f"m{n}"))
            await asyncio.sleep(0.01)

    async def more(self, count: int, what: str, timeout: float = SAFETY) -> None:
        """Wait until `count` more messages were acked (the chat goes on)."""
        before = len(self.acked)
        await eventually(lambda: len(self.acked) >= before + count, what, timeout)

    async def finish(self) -> None:
        self._stop.set()
        await self._tasks[1]
        await eventually(lambda: self.inbox.connected.is_set(), f"{self.recipient} online")
        await self.inbox.checkpoint()
        await eventually(lambda: self.acked <= set(self.inbox.ids),
                         f"{self.recipient} has every acked message")
        assert_each_once(self.inbox, self.acked)
        await self.inbox.stop()
        await self.sender.close()
        self._tasks[0].cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


class Sender:
    """Sends numbered messages one at a time, reconnecting and resending with the same
    cid when its connection goes away before the ack (docs/chat-protocol.md: retries)."""

    def __init__(self, user: User, ports: list[int]) -> None:
        self.user = user
        self.ports = ports
        self.acked: dict[str, int] = {}  # cid -> server id
        self.client: ChatClient | None = None

    async def _client(self) -> ChatClient:
        while self.client is None:
            for port in self.ports:
                try:
                    self.client = await ChatClient.open(port, self.user.token)
                    break
                except (OSError, ConnectionClosed, Exception):  # noqa: BLE001 - retrying
                    await asyncio.sleep(0.05)
        return self.client

    async def say(self, cmd: int, dstid: int, cid: str) -> int:
        """Send until acked; return the server id."""
        while True:
            client = await self._client()
            try:
                reply = await client.say(cmd, dstid, f"message {cid}", cid)
            except ConnectionClosed:
                self.client = None
                continue
            assert reply["cmd"] == 1, reply
            self.acked[cid] = reply["id"]
            return int(reply["id"])

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()

"""`python -m bench.chat`: the chat hub's benchmark (figures in docs/performance.md).

Two tables:

1. Stored messages per second, one transaction per message against group commit (the
   hub's GroupCommit over its storage, LifecycleStorage), on SQLite (WAL, synchronous=FULL) and MariaDB;
   and group commit again with each message sealed (AES-256-GCM, --message-key-file),
   and with four devices of the receiver syncing all the while.
   `python -m bench.chat store` prints this table alone.
2. Fan-out in a group of N online members: deliveries per second and send-to-receipt
   latency (p50/p99) through the real chat server (`fastim serve`, pinned to core 0),
   beside a bare fastim.ws room that forwards each message to every connection. The
   receivers are raw sockets in one uvloop process pinned to core 1 that only find frame
   boundaries, so they cost far less per frame than the server does. Both senders write
   all their messages without waiting for acks (`--window N` holds the chat sender to N
   unacked, which the room's sender, having no acks, is not). A third row runs the
   chat hub as two nodes on the same core, sharing MariaDB and Redis (docs/scaling.md).

`python -m bench.chat --nodes 1,2,3` prints the cluster's rows instead (docs/scaling.md):
group fan-out and 1:1 throughput with every client going through HAProxy in front of 1,
2 and 3 nodes, and what a message costs when it crosses nodes against staying on one
(bench/cluster.py `measure_proxy`, `measure_crossing`), on a private mariadbd
(tests/mariadb_support.py) and the local Redis under a prefix of its own.

Bounded in count and time; loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from fastim.chat.groupcommit import GroupCommit
from fastim.chat.hub import NewMessage, conversation
from fastim.chat.protocol import ChatMessage, Cmd, Media
from fastim.store import open_store
from fastim.store.changes import LifecycleStorage
from fastim.store.messages import StoredMessage
from fastim.store.sealing import MessageKey, Sealer

ROOT = Path(__file__).resolve().parent.parent
TOKEN_PREFIX = "bench-token-"


# -- stored messages per second -------------------------------------------------------------


def _message(sender: int, dstid: int, n: int) -> NewMessage:
    chat = ChatMessage(cmd=Cmd.SINGLE, dstid=dstid, media=Media.TEXT,
                       content=f"message number {n} with a little text 😀", pic="", url="",
                       memo="", amount=0, cid=f"c{n}")
    return NewMessage(sender=sender, message=chat, session_id="bench",
                      conv=conversation(Cmd.SINGLE, sender, dstid), ts=int(time.time() * 1000))


async def _two_users(store: Any) -> tuple[int, int]:
    ids = []
    for n in range(2):
        # Random enough that the runs sharing one MariaDB database never draw one twice.
        user = await store.create_user(mobile=f"13{secrets.randbelow(10**8):08d}{n}",
                                       passwd="00", salt="00", kdf="scrypt:1024:8:1",
                                       nickname=f"bench {n}")
        ids.append(user.id)
    return ids[0], ids[1]


async def _sync_until(storage: LifecycleStorage, user: int, done: asyncio.Future[None],
                      pages: list[int]) -> None:
    """A device of `user` syncing in a loop (pages of 200 from its cursor) until `done`."""
    cursor = 0
    while not done.done():
        rows = await storage.messages_since(user, [], cursor, 200)
        pages.append(len(rows))
        if rows:
            cursor = rows[-1]["id"]
        else:
            await asyncio.sleep(0)


async def store_rate(url: str, mode: str, count: int, sealed: bool = False,
                     syncing: int = 0) -> float:
    """Messages stored per second. The storage is the server's own (LifecycleStorage:
    a message's reply and mentions go in its transaction); with `syncing`, that many
    devices of the receiver sync in a loop meanwhile (on MySQL a sync's reads lock the
    rows they return: docs/store.md, "Reading in id order")."""
    store = await open_store(url, pool_size=4)
    try:
        sealer = Sealer([MessageKey("bench", secrets.token_bytes(32))]) if sealed else None
        storage = LifecycleStorage(store, sealer)
        await storage.start()
        a, b = await _two_users(store)
        messages = [_message(a, b, n) for n in range(count)]
        pages: list[int] = []
        start = time.perf_counter()
        if mode == "one by one":
            for message in messages:
                await storage.insert_messages([message])
        else:
            done = asyncio.get_running_loop().create_future()
            written = 0

            def on_written(batch: Any, results: Any) -> None:
                nonlocal written
                written += len(results)
                if written == count and not done.done():
                    done.set_result(None)

            def on_failed(batch: Any, error: BaseException) -> None:
                if not done.done():
                    done.set_exception(error)

            commit: GroupCommit[NewMessage, StoredMessage] = GroupCommit(
                storage.insert_messages, on_written, on_failed, max_batch=256)
            commit.start()
            syncs = [asyncio.create_task(_sync_until(storage, b, done, pages))
                     for _ in range(syncing)]
            for message in messages:
                commit.submit(message)
            await done
            await commit.close()
            await asyncio.gather(*syncs)
        return count / (time.perf_counter() - start)
    finally:
        await store.close()


def mysql_database() -> tuple[str, str] | None:
    try:
        import pymysql

        conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="",
                               autocommit=True)
    except Exception:
        return None
    name = f"fastim_bench_{secrets.token_hex(4)}"
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    conn.close()
    return name, f"mysql://root:@127.0.0.1:3306/{name}"


def drop_mysql_database(name: str) -> None:
    import pymysql

    conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="",
                           autocommit=True)
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
    conn.close()


def storage_table(count: int) -> list[str]:
    rows = ["| backend | one transaction per message | group commit | ratio "
            "| group commit, sealed | sealed / clear | group commit, 4 devices syncing |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    with tempfile.TemporaryDirectory() as tmp:
        backends = [("SQLite (WAL)", lambda n: f"sqlite:///{tmp}/{n}.db")]
        made = mysql_database()
        if made is not None:
            backends.append(("MariaDB", lambda n: made[1]))
        try:
            for label, url in backends:
                single = asyncio.run(store_rate(url("one"), "one by one", count // 4))
                grouped = asyncio.run(store_rate(url("group"), "group commit", count))
                # (clear before sealed: on MariaDB the runs share one database)
                syncing = asyncio.run(store_rate(url("syncing"), "group commit", count,
                                                 syncing=4))
                sealed = asyncio.run(store_rate(url("sealed"), "group commit", count, True))
                rows.append(f"| {label} | {single:,.0f}/s | {grouped:,.0f}/s | "
                            f"×{grouped / single:.1f} | {sealed:,.0f}/s | "
                            f"{sealed / grouped:.0%} | {syncing:,.0f}/s |")
        finally:
            if made is not None:
                drop_mysql_database(made[0])
    return rows


# -- fan-out ---------------------------------------------------------------------------------


async def prepare_group(url: str, members: int) -> tuple[int, list[str]]:
    """Users with known tokens, all in one group; the first is the sender."""
    import hashlib

    store = await open_store(url, pool_size=4)
    try:
        tokens: list[str] = []
        ids: list[int] = []
        for n in range(members):
            user = await store.create_user(mobile=f"1380{n:07d}", passwd="00", salt="00",
                                           kdf="scrypt:1024:8:1", nickname=f"member {n}")
            token = f"{TOKEN_PREFIX}{n}-{secrets.token_hex(8)}"
            digest = hashlib.sha256(token.encode("ascii")).hexdigest()
            await store.save_token(user.id, digest, "bench", int(time.time()) + 3600)
            ids.append(user.id)
            tokens.append(token)
        group = await store.create_group(ids[0], "bench room", limit=None)
        for user_id in ids[1:]:
            await store.add_member(group.id, user_id)
        return group.id, tokens
    finally:
        await store.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


def pinned(core: int) -> list[str]:
    return ["taskset", "-c", str(core)] if shutil.which("taskset") and os.cpu_count() != 1 else []


def fanout(kind: str, members: int, messages: int, data_dir: Path,
           window: int = 0) -> dict[str, float]:
    """One sender and `members - 1` receivers. `kind`: "room" (bare fastim.ws), "chat"
    (one fastim node on SQLite) or "cluster" (two fastim nodes on one core, sharing
    MariaDB and Redis; receivers alternate between them, the sender is on the first).
    Both senders write all their messages without waiting (yielding every 8); with
    `window` > 0 the chat sender also keeps at most that many messages unacked (the
    room's sender has no acks to wait for, so this throttles the chat side only)."""
    ports = [free_port()] if kind != "cluster" else [free_port(), free_port()]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    made = None
    if kind == "room":
        commands = [[sys.executable, "-m", "bench.chat", "room-server", "--port", str(ports[0])]]
        target = {"path": "/", "group": 0, "tokens": [""] * members}
    else:
        if kind == "chat":
            url, extra = f"sqlite:///{data_dir}/fanout.db", []
        else:
            made = mysql_database()
            if made is None:
                raise RuntimeError("MariaDB is not reachable on 127.0.0.1:3306")
            url = made[1]
            extra = ["--redis", f"redis://127.0.0.1:6379/0?prefix=bench{secrets.token_hex(4)}"]
        group, tokens = asyncio.run(prepare_group(url, members))
        commands = [[sys.executable, "-m", "fastim", "serve", "--port", str(port), "--db", url,
                     "--data-dir", str(data_dir / f"node{port}"), "--chat-rate", "1000000",
                     *extra] for port in ports]
        target = {"path": "/chat?token={token}", "group": group, "tokens": tokens}
    servers = [subprocess.Popen(pinned(0) + command, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL) for command in commands]
    try:
        for port in ports:
            wait_listening(port)
        spec = json.dumps({"ports": ports, "messages": messages, "window": window, **target})
        out = subprocess.run(pinned(1) + [sys.executable, "-m", "bench.chat", "room-client",
                                          spec], env=env, capture_output=True, text=True,
                             timeout=300, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        for server in servers:
            server.terminate()
            server.wait(10)
        if made is not None:
            drop_mysql_database(made[0])


# The bare room: every message from any connection goes to every connection. It runs on
# uvloop (main() starts it with fastim.ws.run), as `fastim serve` does.
async def room_server(port: int) -> None:
    from fastim.ws import serve

    room: set[Any] = set()

    async def handler(ws: Any) -> None:
        room.add(ws)
        try:
            async for message in ws:
                for peer in room:
                    peer.send_nowait(message)
        finally:
            room.discard(ws)

    async with serve(handler, "127.0.0.1", port, max_size=65536, compression=None) as server:
        await server.serve_forever()


class Receiver(asyncio.Protocol):
    """Counts server frames; the tracked ones also parse their send time for latency."""

    def __init__(self, client: RoomClient, track: bool) -> None:
        self.client = client
        self.track = track
        self.buffer = bytearray()
        self.upgraded = False
        self.transport: Any = None
        self.ready = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        if not self.upgraded:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            if not buffer.startswith(b"HTTP/1.1 101"):
                self.ready.set_exception(RuntimeError(bytes(buffer[:end]).decode()))
                return
            del buffer[:end + 4]
            self.upgraded = True
            self.ready.set_result(None)
        offset = 0
        size = len(buffer)
        while size - offset >= 2:
            length = buffer[offset + 1] & 0x7F
            head = 2
            if length == 126:
                if size - offset < 4:
                    break
                length = int.from_bytes(buffer[offset + 2:offset + 4], "big")
                head = 4
            elif length == 127:
                if size - offset < 10:
                    break
                length = int.from_bytes(buffer[offset + 2:offset + 10], "big")
                head = 10
            if size - offset < head + length:
                break
            self.client.frame(self, bytes(buffer[offset + head:offset + head + length])
                              if self.track else b"")
            offset += head + length
        del buffer[:offset]


class RoomClient:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.delivered = 0
        self.latencies: list[float] = []
        self.acked = 0
        self.ack_waiter: asyncio.Future[None] | None = None

    def frame(self, receiver: Receiver, payload: bytes) -> None:
        self.delivered += 1
        if receiver.track and payload[:1] == b"{":
            data = json.loads(payload)
            content = data.get("content") or ""
            if content.startswith("t="):
                self.latencies.append(time.perf_counter() - float(content[2:]))
            elif data.get("cmd") == 1:
                self.acked += 1

    async def run(self) -> dict[str, float]:
        loop = asyncio.get_running_loop()
        ports = self.spec["ports"]
        receivers: list[Receiver] = []
        for n, token in enumerate(self.spec["tokens"]):
            port = ports[0] if n == 0 else ports[n % len(ports)]
            path = self.spec["path"].format(token=token)
            request = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                       "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                       "Sec-WebSocket-Version: 13\r\n\r\n").encode()
            _, receiver = await loop.create_connection(
                lambda n=n: Receiver(self, track=n == 0 or n % 50 == 1), "127.0.0.1", port)
            receiver.transport.write(request)
            await receiver.ready
            receivers.append(receiver)
        await asyncio.sleep(0.5)  # presence frames settle
        sender = receivers[0]
        group = self.spec["group"]
        count = self.spec["messages"]
        self.delivered = 0
        self.latencies.clear()
        start = time.perf_counter()
        # Both senders are driven alike by default: they write every message at once,
        # yielding to the loop after every 8 (a chat client may pipeline its sends; the
        # protocol does not make it wait for acks). With a window, the chat sender
        # also waits while that many messages are unacked; the room has no acks.
        window = self.spec.get("window", 0) or count
        for n in range(count):
            body = json.dumps({"cmd": 11, "dstid": group, "media": 1, "cid": f"b{n}",
                               "content": f"t={time.perf_counter()!r}"}).encode()
            sender.transport.write(_masked_text(body))
            while n - self.acked >= window if group else False:
                await asyncio.sleep(0)
            if n % 8 == 0:
                await asyncio.sleep(0)
        expected = count * (len(receivers) - (1 if group else 0))
        deadline = time.monotonic() + 120
        while self.delivered - self.acked < expected and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - start
        delivered = self.delivered - self.acked  # the sender's acks are no deliveries
        for receiver in receivers:
            receiver.transport.close()
        latencies = sorted(self.latencies) or [0.0]
        return {"deliveries_per_s": delivered / elapsed, "delivered": delivered,
                "expected": expected,
                "p50_ms": 1000 * statistics.median(latencies),
                "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]}


def _masked_text(payload: bytes) -> bytes:
    mask = os.urandom(4)
    length = len(payload)
    header = bytes([0x81, 0x80 | length]) if length < 126 else (
        bytes([0x81, 0xFE]) + length.to_bytes(2, "big"))
    key = int.from_bytes((mask * (length // 4 + 1))[:length], "big")
    masked = (int.from_bytes(payload, "big") ^ key).to_bytes(length, "big")
    return header + mask + masked


def cluster_rows(sizes: list[int], members: int, messages: int, pairs: int,
                 redis: str) -> dict[str, Any]:
    """The cluster's bench rows (module docstring): each size behind HAProxy, then the
    crossing cost on two nodes. Each run gets a fresh database on one private mariadbd,
    so the shared server carries none of it and its CPU is the run's alone."""
    import pymysql

    from bench.cluster import (
        measure_crossing,
        measure_proxy,
        print_crossing_table,
        print_proxy_table,
    )
    from tests.mariadb_support import mariadb_server

    report: dict[str, Any] = {"cpus": os.cpu_count(), "load_average_before": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp:
        server = mariadb_server(Path(tmp) / "mariadb")
        try:
            def fresh(name: str) -> str:
                conn = pymysql.connect(host="127.0.0.1", port=server.port, user="root",
                                       password="", autocommit=True)
                with conn.cursor() as cur:
                    cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
                conn.close()
                return server.url(name)

            def bus(name: str) -> str:
                return f"{redis}?prefix=bench-{name}-{secrets.token_hex(3)}"

            report["proxy"] = [asyncio.run(measure_proxy(fresh(f"proxy{n}"), bus(f"p{n}"), n,
                                                         members, messages, pairs, Path(tmp)))
                               for n in sizes]
            report["crossing"] = asyncio.run(measure_crossing(
                fresh("crossing"), bus("x"), pairs, messages, members, Path(tmp)))
        finally:
            server.close()
    report["load_average_after"] = os.getloadavg()
    print_proxy_table(report["proxy"])
    print_crossing_table(report["crossing"])
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chat", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=lambda text: [int(n) for n in text.split(",")],
                        default=None, help="the cluster's rows instead: HAProxy in front of "
                        "each number of nodes, e.g. 1,2,3 (docs/scaling.md)")
    parser.add_argument("--members", type=int, default=1000,
                        help="with --nodes: the group's size (default %(default)s)")
    parser.add_argument("--messages", type=int, default=100,
                        help="with --nodes: group messages, 1:1 messages per couple, and "
                        "rounds of the crossing rows (default %(default)s)")
    parser.add_argument("--pairs", type=int, default=50,
                        help="with --nodes: couples of friends sending 1:1 at once "
                        "(default %(default)s)")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0",
                        help="with --nodes: the Redis (a prefix of the run's own is added)")
    parser.add_argument("--json", type=Path, default=None,
                        help="with --nodes: write the figures here too")
    sub = parser.add_subparsers(dest="command")
    run = sub.add_parser("run", help="both tables (the default)")
    run.add_argument("--quick", action="store_true", help="fewer messages and members")
    run.add_argument("--window", type=int, default=0,
                     help="messages the chat sender may have unacked (default 0: no limit, "
                     "driven as the bare room's sender is, which has no acks; N > 0 "
                     "throttles the chat sender only)")
    store = sub.add_parser("store", help="only the stored-messages table")
    store.add_argument("--quick", action="store_true", help="fewer messages")
    room = sub.add_parser("room-server")
    room.add_argument("--port", type=int, required=True)
    client = sub.add_parser("room-client")
    client.add_argument("spec")
    args = parser.parse_args(argv)
    if args.nodes:
        if any(n < 1 for n in args.nodes):
            parser.error("--nodes takes positive numbers, e.g. 1,2,3")
        report = cluster_rows(args.nodes, args.members, args.messages, args.pairs, args.redis)
        print(json.dumps(report, indent=1))
        if args.json is not None:
            args.json.write_text(json.dumps(report, indent=1))
        return 0
    if args.command == "room-server":
        from fastim.ws import run as run_on_uvloop

        run_on_uvloop(room_server(args.port))
        return 0
    if args.command == "room-client":
        from fastim.ws import install_uvloop

        install_uvloop()
        result = asyncio.run(RoomClient(json.loads(args.spec)).run())
        print(json.dumps(result))
        return 0
    quick = getattr(args, "quick", False)
    print("## Stored messages per second\n")
    print("\n".join(storage_table(2_000 if quick else 20_000)))
    if args.command == "store":
        return 0
    members = 200 if quick else 1_000
    messages = 50 if quick else 200
    print(f"\n## Fan-out in a group of {members} online members ({messages} messages)\n")
    print("| server | deliveries/s | p50 | p99 | delivered |")
    print("|---|---:|---:|---:|---:|")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind, label in (("room", "bare fastim.ws room"), ("chat", "fastim chat hub"),
                            ("cluster", "chat hub, 2 nodes over Redis (MariaDB)")):
            try:
                result = fanout(kind, members, messages, Path(tmp),
                                getattr(args, "window", 0))
            except (RuntimeError, subprocess.SubprocessError) as exc:
                print(f"| {label} | n/a: {exc} | | | |")
                continue
            results[kind] = result
            print(f"| {label} | {result['deliveries_per_s']:,.0f} | {result['p50_ms']:.1f} ms "
                  f"| {result['p99_ms']:.1f} ms | {result['delivered']:,}/{result['expected']:,} |")
    ratio = results["chat"]["deliveries_per_s"] / max(1.0, results["room"]["deliveries_per_s"])
    window = getattr(args, "window", 0)
    drive = (f"the chat sender kept at most {window} messages unacked, the room's sender "
             "was not held back" if window else "both senders driven alike")
    print(f"\nThe chat hub delivers at {ratio:.0%} of the bare room's rate ({drive}; the "
          "hub also validates, checks membership and stores every message).")
    return 0


if __name__ == "__main__":
    sys.exit(main())

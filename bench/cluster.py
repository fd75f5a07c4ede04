"""How the figures in docs/scaling.md are measured: short, bounded runs of real nodes.

    python -m bench.cluster --db mysql://root:@127.0.0.1:3306/fastim_measure \\
        --redis redis://127.0.0.1:6390/0 [memory|fanout|direct|store|proxy|all]
    python -m bench.cluster proxy --nodes 1,2,3 --db … --redis …   # through HAProxy

Nodes are `python -m fastim serve` processes; the clients run in this process, on the
same machine, so wall-clock rates are lower bounds. Server capacity is therefore also
given per CPU-second of the node process (from /proc), which the client does not touch.
Use a Redis of its own (`redis-server --port 6390 --save ''`): the Redis counters are
read from INFO and must not include anyone else's traffic. Linux only (/proc).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from fastim.accounts import Accounts, Contacts
from fastim.chat.hub import NewMessage, conversation
from fastim.chat.protocol import ChatMessage, Cmd, Media
from fastim.store import open_store
from fastim.store.messages import ChatStorage
from fastim.ws import connect

CHEAP_KDF = "scrypt:1024:8:1"  # users made for a measurement need no strong hashes
_RUNNING = re.compile(r"fastim is running: open http://127\.0\.0\.1:(\d+)/")
_TICK = os.sysconf("SC_CLK_TCK")


class NodeProcess:
    """A `fastim serve` process and what /proc says about it."""

    def __init__(self, directory: Path, db: str, redis: str) -> None:
        self.directory = directory
        args = [sys.executable, "-m", "fastim", "serve", "--port", "0", "--db", db,
                "--chat-rate", "1000000", "--data-dir", str(directory / "data"),
                "--resource-dir", str(directory / "resource")]
        if redis:
            args += ["--redis", redis]
        directory.mkdir(parents=True, exist_ok=True)
        self.out = directory / "stdout.log"
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        with open(self.out, "wb") as out, open(directory / "stderr.log", "wb") as err:
            self.process = subprocess.Popen(args, stdout=out, stderr=err, env=env)
        deadline = time.monotonic() + 60
        while not (found := _RUNNING.search(self.out.read_text())):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((directory / "stderr.log").read_text())
            time.sleep(0.05)
        self.port = int(found.group(1))

    def rss(self) -> int:
        """Resident memory in bytes."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def cpu(self) -> float:
        """CPU seconds used so far (user + system)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICK

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()


async def make_users(db: str, count: int, group: bool = False) -> tuple[list[tuple[int, str]],
                                                                        int]:
    """`count` users with a token each; with `group`, all in one new group."""
    store = await open_store(db, pool_size=8)
    accounts = Accounts(store, kdf=CHEAP_KDF)
    contacts = Contacts(store)
    tag = secrets.token_hex(3)
    try:
        users = []
        base = 17_000_000_000 + secrets.randbelow(900_000_000)
        for n in range(count):
            values = {"mobile": str(base + n), "passwd": "measure it", "nickname": f"m{n}"}
            user = await accounts.register(values)
            login = await accounts.login(values)
            users.append((user, login.token))
        group_id = 0
        if group:
            owner = users[0][0]
            group = await contacts.create_group(owner, {"name": f"measure-{tag}"})
            group_id = group.id
            for user, _ in users[1:]:
                await contacts.join_group(user, {"dstid": group_id})
        return [(u.id, token) for u, token in users], group_id
    finally:
        accounts.close()
        await store.close()


class Device:
    """A measuring client: counts the chat messages it receives and when."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.arrivals: dict[int, float] = {}  # server id -> monotonic time
        self.acks: dict[str, int] = {}
        self.reader: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, port: int, token: str) -> Device:
        connection = await connect(f"ws://127.0.0.1:{port}/chat?token={token}",
                                   ping_interval=None, max_queue=100_000)
        while json.loads(await connection.recv()).get("cmd") != Cmd.PRESENCE:
            pass  # registered by the hub once the presence snapshot comes
        device = cls(connection)
        device.reader = asyncio.get_running_loop().create_task(device._read())
        return device

    async def _read(self) -> None:
        with contextlib.suppress(Exception):
            async for raw in self.connection:
                frame = json.loads(raw)
                if frame.get("cmd") == Cmd.ACK:
                    self.acks[frame["cid"]] = frame["id"]
                elif "id" in frame:
                    self.arrivals[frame["id"]] = time.monotonic()

    async def close(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.connection.close(), 5)


async def open_many(port: int, tokens: Sequence[str], at_once: int = 50) -> list[Device]:
    devices: list[Device] = []
    for start in range(0, len(tokens), at_once):
        devices += await asyncio.gather(*(Device.open(port, t)
                                          for t in tokens[start:start + at_once]))
    return devices


def redis_info(url: str) -> dict[str, float]:
    """Commands and CPU from the Redis server's INFO (its whole traffic)."""
    import redis

    from fastim.bus.envelope import split_url

    client = redis.Redis.from_url(split_url(url)[0])
    try:
        stats = client.info("commandstats")
        cpu = client.info("cpu")
    finally:
        client.close()
    counts = {name.removeprefix("cmdstat_"): float(value["calls"])
              for name, value in stats.items()}
    counts["cpu"] = float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])
    return counts


#: Commands of the measurement's own Redis client, not of the nodes.
_OWN = {"info", "hello", "client|setinfo", "pubsub|numsub", "client"}


def delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {k: after[k] - before.get(k, 0.0) for k in after
            if k not in _OWN and after[k] != before.get(k, 0.0)}


def subscribers(url: str, channel: str) -> int:
    """How many connections (nodes) are subscribed to `channel`."""
    import redis

    from fastim.bus.envelope import split_url

    plain, prefix = split_url(url)
    client = redis.Redis.from_url(plain)
    try:
        return int(client.pubsub_numsub(f"{prefix}:{channel}")[0][1])
    finally:
        client.close()


# -- the measurements ---------------------------------------------------------------------


async def measure_memory(db: str, redis: str, count: int, workdir: Path,
                         settle: float = 1.0) -> dict[str, Any]:
    """RSS per idle connection. `settle`: seconds for the node's memory to settle before
    the first reading (twice that before the second)."""
    users, _ = await make_users(db, count + 1)
    node = NodeProcess(workdir / f"memory-{'redis' if redis else 'local'}", db, redis)
    try:
        warm = await open_many(node.port, [users[0][1]])  # first-connection costs aside
        await asyncio.sleep(settle)
        before = node.rss()
        devices = await open_many(node.port, [t for _, t in users[1:]])
        await asyncio.sleep(2 * settle)
        after = node.rss()
        for device in devices + warm:
            await device.close()
        return {"bus": "redis" if redis else "local", "connections": count,
                "rss_before_mb": before / 2**20, "rss_after_mb": after / 2**20,
                "bytes_per_connection": (after - before) / count}
    finally:
        node.stop()


async def measure_fanout(db: str, redis: str, members: int, messages: int,
                         workdir: Path) -> dict[str, Any]:
    """One sender, a group of `members` spread over two nodes (or on one without Redis)."""
    users, group = await make_users(db, members, group=True)
    nodes = [NodeProcess(workdir / f"fanout-{'redis' if redis else 'local'}-{i}", db, redis)
             for i in range(2 if redis else 1)]
    try:
        tokens = [token for _, token in users]
        devices: list[Device] = []
        for index, node in enumerate(nodes):  # receivers alternate between the nodes
            devices += await open_many(node.port, tokens[1 + index::len(nodes)])
        sender = await Device.open(nodes[0].port, tokens[0])
        cpu_before = [node.cpu() for node in nodes]
        redis_before = redis_info(redis) if redis else {}
        started = time.monotonic()
        sent_at = {}
        for n in range(messages):
            cid = f"f{n}"
            sent_at[cid] = time.monotonic()
            await sender.connection.send(json.dumps(
                {"cmd": 11, "dstid": group, "media": 1, "content": f"fan-out {n}", "cid": cid}))
        await _until(lambda: len(sender.acks) >= messages
                     and all(len(d.arrivals) >= messages for d in devices), 300, "the fan-out")
        finished = max(max(d.arrivals.values()) for d in devices)
        cpu = [node.cpu() - b for node, b in zip(nodes, cpu_before, strict=True)]
        redis_delta = delta(redis_info(redis), redis_before) if redis else {}
        ids = {sender.acks[cid]: sent_at[cid] for cid in sent_at}
        latencies = sorted(t - ids[i] for d in devices for i, t in d.arrivals.items())
        deliveries = len(devices) * messages
        # Redis sends each PUBLISH once to each subscribed connection (node).
        watching = subscribers(redis, f"g:{group}") if redis else 0
        for device in devices + [sender]:
            await device.close()
        result: dict[str, Any] = {
            "bus": "redis" if redis else "local", "nodes": len(nodes), "members": members,
            "messages": messages, "deliveries": deliveries,
            "wall_seconds": finished - started,
            "deliveries_per_second_wall": deliveries / (finished - started),
            "node_cpu_seconds": cpu,
            # None when the run was too short for /proc's clock ticks to see it.
            "deliveries_per_node_cpu_second": deliveries / sum(cpu) if sum(cpu) else None,
            "latency_p50_ms": 1000 * latencies[len(latencies) // 2],
            "latency_p99_ms": 1000 * latencies[int(len(latencies) * 0.99)],
        }
        if redis:
            result["redis_per_chat_message"] = {k: v / messages
                                                for k, v in redis_delta.items()}
            result["group_channel_subscribers"] = watching
        return result
    finally:
        for node in nodes:
            node.stop()


async def measure_direct(db: str, redis: str, messages: int, workdir: Path) -> dict[str, Any]:
    """Redis commands for 1:1 messages between users on two different nodes."""
    users, _ = await make_users(db, 2)
    store = await open_store(db, pool_size=2)
    try:
        await store.add_friendship(users[0][0], users[1][0], now=int(time.time()))
    finally:
        await store.close()
    nodes = [NodeProcess(workdir / f"direct-{i}", db, redis) for i in range(2)]
    try:
        alice = await Device.open(nodes[0].port, users[0][1])
        bob = await Device.open(nodes[1].port, users[1][1])
        before = redis_info(redis)
        cpu_before = [node.cpu() for node in nodes]
        for n in range(messages):
            await alice.connection.send(json.dumps(
                {"cmd": 10, "dstid": users[1][0], "media": 1, "content": f"hi {n}",
                 "cid": f"d{n}"}))
        await _until_arrived([bob], messages, 120, "the 1:1 messages")
        cpu = [node.cpu() - b for node, b in zip(nodes, cpu_before, strict=True)]
        after = delta(redis_info(redis), before)
        # Each PUBLISH goes once to each node subscribed to the user's channel.
        watching = {"bob": subscribers(redis, f"u:{users[1][0]}"),
                    "alice": subscribers(redis, f"u:{users[0][0]}")}
        cpu_ms = after.pop("cpu", 0.0) * 1000
        await alice.close()
        await bob.close()
        return {"messages": messages, "channel_subscribers": watching,
                "redis_cpu_ms": cpu_ms, "node_cpu_seconds": cpu,
                "node_cpu_us_per_message": [1e6 * c / messages for c in cpu],
                "redis_per_chat_message": {k: v / messages for k, v in after.items()}}
    finally:
        for node in nodes:
            node.stop()


async def measure_store(db: str, seconds: float) -> dict[str, Any]:
    """Stored messages a second: one transaction per message against group commit."""
    store = await open_store(db, pool_size=8)
    storage = ChatStorage(store)
    await storage.start()
    users, _ = await make_users(db, 2)
    sender, recipient = users[0][0], users[1][0]
    counter = iter(range(10**9))

    def item() -> NewMessage:
        n = next(counter)
        message = ChatMessage(cmd=Cmd.SINGLE, dstid=recipient, media=Media.TEXT,
                              content=f"stored {n}", pic="", url="", memo="", amount=0,
                              cid=f"s{n}-{secrets.token_hex(2)}")
        return NewMessage(sender=sender, message=message, session_id="measure",
                          conv=conversation(Cmd.SINGLE, sender, recipient),
                          ts=int(time.time() * 1000))

    results: dict[str, Any] = {}
    try:
        flush = await store.server_variable("innodb_flush_log_at_trx_commit")
        results["innodb_flush_log_at_trx_commit"] = int(flush) if flush is not None else None
        for batch in (1, 32, 256):
            stored = 0
            started = time.monotonic()
            while time.monotonic() - started < seconds:
                await storage.insert_messages([item() for _ in range(batch)])
                stored += batch
            results[f"batch_{batch}_per_second"] = stored / (time.monotonic() - started)
        return results
    finally:
        await store.close()


async def _pairs_of_friends(db: str, pairs: int) -> list[tuple[tuple[int, str],
                                                                  tuple[int, str]]]:
    users, _ = await make_users(db, 2 * pairs)
    store = await open_store(db, pool_size=2)
    try:
        for a, b in zip(users[::2], users[1::2], strict=True):
            await store.add_friendship(a[0], b[0], now=int(time.time()))
    finally:
        await store.close()
    return list(zip(users[::2], users[1::2], strict=True))


async def _until(done: Callable[[], bool], seconds: float, what: str,
                 poll: float = 0.05) -> None:
    """Wait until `done()` holds; RuntimeError naming `what` after `seconds` (every
    run is bounded in time as well as in count)."""
    deadline = time.monotonic() + seconds
    while not done():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not complete")
        await asyncio.sleep(poll)


async def _until_arrived(devices: Sequence[Device], count: int, seconds: float, what: str,
                         poll: float = 0.05) -> None:
    """Wait until each of `devices` has received `count` messages (see `_until`)."""
    await _until(lambda: all(len(d.arrivals) >= count for d in devices), seconds, what, poll)


def _percentiles(latencies: list[float]) -> tuple[float, float]:
    ordered = sorted(latencies)
    return (1000 * ordered[len(ordered) // 2],
            1000 * ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))])


async def measure_proxy(db: str, redis: str, node_count: int, members: int, messages: int,
                        pairs: int, workdir: Path) -> dict[str, Any]:
    """Group fan-out and 1:1 throughput with every client going through HAProxy in
    front of `node_count` nodes (on one Redis: with one node the Redis round trip is
    still paid, so the rows differ only by how many nodes share the work)."""
    from deploy.haproxy import Checks, HAProxy

    users, group = await make_users(db, members, group=True)
    couples = await _pairs_of_friends(db, pairs)
    nodes = [NodeProcess(workdir / f"proxy{node_count}-{i}", db, redis)
             for i in range(node_count)]
    proxy = HAProxy(workdir / f"proxy{node_count}", ("127.0.0.1", _free_port()),
                    [("127.0.0.1", node.port) for node in nodes], Checks(interval=1.0))
    proxy.start()
    port = proxy.listen[1]
    try:
        # Group fan-out: one sender, `members - 1` receivers spread by leastconn.
        tokens = [token for _, token in users]
        receivers = await open_many(port, tokens[1:])
        sender = await Device.open(port, tokens[0])
        cpu_before = sum(node.cpu() for node in nodes)
        sent_at: dict[str, float] = {}
        started = time.monotonic()
        for n in range(messages):
            sent_at[f"f{n}"] = time.monotonic()
            await sender.connection.send(json.dumps(
                {"cmd": 11, "dstid": group, "media": 1, "content": f"fan-out {n}",
                 "cid": f"f{n}"}))
        await _until(lambda: len(sender.acks) >= messages
                     and all(len(d.arrivals) >= messages for d in receivers), 300,
                     "the fan-out through the proxy")
        finished = max(max(d.arrivals.values()) for d in receivers)
        fan_cpu = sum(node.cpu() for node in nodes) - cpu_before
        by_id = {sender.acks[cid]: t for cid, t in sent_at.items()}
        fan_p50, fan_p99 = _percentiles([t - by_id[i] for d in receivers
                                         for i, t in d.arrivals.items()])
        deliveries = len(receivers) * messages
        for device in [*receivers, sender]:
            await device.close()

        # 1:1: `pairs` couples, each sender sending `messages` back to back.
        senders = await open_many(port, [a[1] for a, _ in couples])
        readers = await open_many(port, [b[1] for _, b in couples])
        cpu_before = sum(node.cpu() for node in nodes)
        sent: dict[tuple[int, str], float] = {}
        started_direct = time.monotonic()
        for n in range(messages):
            for index, ((_, _), (peer, _)) in enumerate(couples):
                sent[(index, f"d{n}")] = time.monotonic()
                await senders[index].connection.send(json.dumps(
                    {"cmd": 10, "dstid": peer, "media": 1, "content": f"hi {n}",
                     "cid": f"d{n}"}))
        await _until_arrived(readers, messages, 300, "the 1:1 messages through the proxy")
        direct_finished = max(max(r.arrivals.values()) for r in readers)
        direct_cpu = sum(node.cpu() for node in nodes) - cpu_before
        direct_latencies = [t - sent[(index, cid)]
                            for index, (s_dev, r_dev) in enumerate(zip(senders, readers,
                                                                       strict=True))
                            for cid, message_id in s_dev.acks.items()
                            if (t := r_dev.arrivals.get(message_id)) is not None]
        direct_p50, direct_p99 = _percentiles(direct_latencies)
        for device in [*senders, *readers]:
            await device.close()
        direct_count = pairs * messages
        return {
            "nodes": node_count,
            "fanout": {"members": members, "messages": messages, "deliveries": deliveries,
                       "deliveries_per_second": deliveries / (finished - started),
                       "node_cpu_us_per_delivery": 1e6 * fan_cpu / deliveries,
                       "p50_ms": fan_p50, "p99_ms": fan_p99},
            "direct": {"pairs": pairs, "messages": direct_count,
                       "messages_per_second": direct_count / (direct_finished - started_direct),
                       "node_cpu_us_per_message": 1e6 * direct_cpu / direct_count,
                       "p50_ms": direct_p50, "p99_ms": direct_p99},
        }
    finally:
        proxy.stop()
        for node in nodes:
            node.stop()


async def measure_crossing(db: str, redis: str, pairs: int, rounds: int, members: int,
                           workdir: Path) -> dict[str, Any]:
    """What a message costs when it crosses nodes, against staying on one: two nodes on
    one Redis, clients placed on them by hand (no proxy, so the placement is known).

    1:1: `pairs` couples of friends; each round every sender sends one message and the
    round ends when all have arrived, so latencies are of a message, not of a queue.
    "same" has both sides of every couple on node A, "crossing" the readers on node B.
    Group: one sender on node A and a group of `members`, its receivers all on node A
    ("same") or alternating between A and B ("crossing"); `rounds` messages, each sent
    once the previous one reached everyone. CPU is both nodes' together, from /proc:
    on the Redis bus every frame goes through Redis even to a device on its own node
    (docs/scaling.md, "Routing"), so what crossing adds is the second node's decode and
    its own fan-out."""
    couples = await _pairs_of_friends(db, pairs)
    users, group = await make_users(db, members, group=True)
    nodes = [NodeProcess(workdir / f"crossing-{i}", db, redis) for i in range(2)]
    results: dict[str, Any] = {"pairs": pairs, "rounds": rounds, "members": members}
    try:
        for placement in ("same", "crossing"):
            reader_node = nodes[0] if placement == "same" else nodes[1]
            senders = await open_many(nodes[0].port, [a[1] for a, _ in couples])
            readers = await open_many(reader_node.port, [b[1] for _, b in couples])
            cpu_before = sum(node.cpu() for node in nodes)
            latencies: list[float] = []
            for n in range(rounds):
                sent = {}
                for index, (_, (peer, _)) in enumerate(couples):
                    sent[index] = time.monotonic()
                    await senders[index].connection.send(json.dumps(
                        {"cmd": 10, "dstid": peer, "media": 1, "content": f"hi {n}",
                         "cid": f"{placement}-{n}"}))
                await _until_arrived(readers, n + 1, 60, "a 1:1 round", poll=0.001)
                latencies += [max(r.arrivals.values()) - sent[i]
                              for i, r in enumerate(readers)]
            cpu = sum(node.cpu() for node in nodes) - cpu_before
            p50, p99 = _percentiles(latencies)
            results[f"direct_{placement}"] = {
                "messages": pairs * rounds, "node_cpu_us_per_message":
                    1e6 * cpu / (pairs * rounds), "p50_ms": p50, "p99_ms": p99}
            for device in [*senders, *readers]:
                await device.close()

            tokens = [token for _, token in users]
            sender = await Device.open(nodes[0].port, tokens[0])
            receivers: list[Device] = []
            spread = [nodes[0]] if placement == "same" else nodes
            for index, node in enumerate(spread):
                receivers += await open_many(node.port, tokens[1 + index::len(spread)])
            cpu_before = sum(node.cpu() for node in nodes)
            group_latencies: list[float] = []
            for n in range(rounds):
                started = time.monotonic()
                await sender.connection.send(json.dumps(
                    {"cmd": 11, "dstid": group, "media": 1, "content": f"all {n}",
                     "cid": f"g-{placement}-{n}"}))
                await _until_arrived(receivers, n + 1, 60, "a group round", poll=0.001)
                message_id = sender.acks.get(f"g-{placement}-{n}")
                group_latencies += [d.arrivals[message_id] - started for d in receivers
                                    if message_id in d.arrivals]
            cpu = sum(node.cpu() for node in nodes) - cpu_before
            deliveries = rounds * len(receivers)
            p50, p99 = _percentiles(group_latencies)
            results[f"group_{placement}"] = {
                "deliveries": deliveries, "node_cpu_us_per_delivery": 1e6 * cpu / deliveries,
                "p50_ms": p50, "p99_ms": p99}
            for device in [*receivers, sender]:
                await device.close()
        return results
    finally:
        for node in nodes:
            node.stop()


def print_crossing_table(result: dict[str, Any]) -> None:
    print("| what | placement | node CPU µs (both nodes) | p50 / p99 ms |", file=sys.stderr)
    print("|---|---|---:|---:|", file=sys.stderr)
    for kind, unit in (("direct", "message"), ("group", "delivery")):
        for placement in ("same", "crossing"):
            row = result[f"{kind}_{placement}"]
            print(f"| {kind} | {placement} | {row[f'node_cpu_us_per_{unit}']:.1f} per {unit} "
                  f"| {row['p50_ms']:.2f} / {row['p99_ms']:.2f} |", file=sys.stderr)


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def print_proxy_table(rows: list[dict[str, Any]]) -> None:
    """The bench row of docs/scaling.md: one line per cluster size."""
    print("| nodes | group fan-out deliveries/s | CPU µs/delivery | p50 / p99 ms "
          "| 1:1 messages/s | CPU µs/message | p50 / p99 ms |", file=sys.stderr)
    print("|---:|---:|---:|---:|---:|---:|---:|", file=sys.stderr)
    for row in rows:
        fan, direct = row["fanout"], row["direct"]
        print(f"| {row['nodes']} | {fan['deliveries_per_second']:,.0f} "
              f"| {fan['node_cpu_us_per_delivery']:.1f} "
              f"| {fan['p50_ms']:.1f} / {fan['p99_ms']:.1f} "
              f"| {direct['messages_per_second']:,.0f} | {direct['node_cpu_us_per_message']:.0f} "
              f"| {direct['p50_ms']:.1f} / {direct['p99_ms']:.1f} |", file=sys.stderr)


async def main_async(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="fastim-measure-"))
    wanted = {args.what} if args.what != "all" else {"memory", "fanout", "direct", "store"}
    report: dict[str, Any] = {"cpus": os.cpu_count(), "load_average": os.getloadavg()}
    if "memory" in wanted:
        report["memory"] = [await measure_memory(args.db, "", args.connections, workdir,
                                                 args.settle),
                            await measure_memory(args.db, args.redis, args.connections,
                                                 workdir, args.settle)]
    if "fanout" in wanted:
        report["fanout"] = [await measure_fanout(args.db, "", args.members, args.messages,
                                                 workdir),
                            await measure_fanout(args.db, args.redis, args.members,
                                                 args.messages, workdir)]
    if "direct" in wanted:
        report["direct"] = await measure_direct(args.db, args.redis, args.messages, workdir)
    if "store" in wanted:
        report["store"] = await measure_store(args.db, args.seconds)
    if "proxy" in wanted:
        report["proxy"] = [await measure_proxy(args.db, args.redis, count, args.members,
                                               args.messages, args.pairs, workdir)
                           for count in args.nodes]
        print_proxy_table(report["proxy"])
    print(json.dumps(report, indent=2))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.cluster",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("what", nargs="?", default="all",
                        choices=["memory", "fanout", "direct", "store", "proxy", "all"])
    parser.add_argument("--db", required=True, help="a MySQL/MariaDB URL (a scratch database)")
    parser.add_argument("--redis", required=True, help="a Redis of the measurement's own")
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--settle", type=float, default=1.0,
                        help="memory: seconds to let RSS settle before the first reading"
                             " (twice that before the second); 0 where only the run"
                             " matters, not the figure (the tests)")
    parser.add_argument("--pairs", type=int, default=50,
                        help="proxy: couples of friends sending 1:1 at once")
    parser.add_argument("--nodes", type=lambda text: [int(n) for n in text.split(",")],
                        default=[1, 2, 3], help="proxy: cluster sizes, e.g. 1,2,3")
    asyncio.run(main_async(parser.parse_args(argv)))


if __name__ == "__main__":
    main()

"""Redis without a single point of failure: a primary, a replica and three sentinels,
started by the test on loopback ports; `--redis redis+sentinel://…`.

The primary is killed mid-conversation; the sentinels promote the replica; the nodes
follow it (fastim/bus/client.py), their clients reconnect (1012) and sync, and every
acked message reaches its recipient once. Logins (the throttle is in Redis) work after.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from fastim.bus.client import SentinelTarget, parse_sentinel_url
from fastim.bus.envelope import split_url
from tests.chat_support import SAFETY
from tests.cluster_support import (
    Cluster,
    RedisServer,
    SteadyChat,
    eventually,
    free_port,
    wait_until,
)

SERVICE = "fastim-primary"


@pytest.mark.parametrize(("url", "target"), [
    ("redis+sentinel://127.0.0.1:26379/mymaster",
     SentinelTarget(sentinels=(("127.0.0.1", 26379),), service="mymaster")),
    ("rediss+sentinel://:s%40cret@a:1,b:2,[::1]:3/svc/4?sentinel_password=pw",
     SentinelTarget(sentinels=(("a", 1), ("b", 2), ("::1", 3)), service="svc", db=4,
                    password="s@cret", sentinel_password="pw", tls=True)),
])
def test_a_sentinel_url_names_the_sentinels_and_the_service(url: str,
                                                            target: SentinelTarget) -> None:
    assert parse_sentinel_url(url) == target


@pytest.mark.parametrize("url", [
    "redis://127.0.0.1:6379/0", "redis+sentinel://127.0.0.1/svc",
    "redis+sentinel://127.0.0.1:26379/", "redis+sentinel://127.0.0.1:26379/svc/x",
    "redis+sentinel://127.0.0.1:26379/svc/0/1",
])
def test_a_bad_sentinel_url_is_refused(url: str) -> None:
    with pytest.raises(ValueError):
        parse_sentinel_url(url)


def test_the_deployment_prefix_works_with_sentinel_too() -> None:
    assert split_url("redis+sentinel://h:1,h:2/svc?prefix=blue") == (
        "redis+sentinel://h:1,h:2/svc", "blue")


class Sentinels:
    """A primary, a replica of it, and three sentinels watching them."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.primary = RedisServer(directory / "primary").start()
        self.replica = RedisServer(directory / "replica").start(
            "--replicaof", "127.0.0.1", str(self.primary.port))
        self.ports = [free_port() for _ in range(3)]
        self.processes: list[subprocess.Popen[bytes]] = []
        binary = shutil.which("redis-server")
        assert binary is not None
        for number, port in enumerate(self.ports):
            folder = directory / f"sentinel{number}"
            folder.mkdir(parents=True)
            conf = folder / "sentinel.conf"  # a sentinel rewrites its file: one each
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {folder}\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {self.primary.port} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} 500\n"
                f"sentinel failover-timeout {SERVICE} 3000\n")
            log = open(folder / "log", "ab")  # noqa: SIM115 - the process owns it
            self.processes.append(subprocess.Popen(
                [binary, str(conf), "--sentinel"], stdout=log, stderr=log,
                stdin=subprocess.DEVNULL))
            log.close()
        for port in self.ports:
            wait_until(lambda port=port: self._primary_port(port) == self.primary.port,
                       f"sentinel on {port} to watch the primary")
        wait_until(self._replica_in_sync, "the replica to be in sync")

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.ports)
        return f"redis+sentinel://{hosts}/{SERVICE}"

    def _primary_port(self, sentinel_port: int) -> int | None:
        try:
            client = redis.Redis(port=sentinel_port, socket_timeout=1)
            found = client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)
            client.close()
        except redis.RedisError:
            return None
        return int(found[1]) if found else None

    def _replica_in_sync(self) -> bool:
        info = redis.Redis(port=self.replica.port).info("replication")
        return bool(info.get("master_link_status") == "up")

    def primary_is_now(self, port: int) -> bool:
        return all(self._primary_port(p) == port for p in self.ports)

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                process.wait(SAFETY)
        self.primary.kill()
        self.replica.kill()


@pytest.fixture
def sentinels(tmp_path: Path) -> Iterator[Sentinels]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    group = Sentinels(tmp_path / "redis")
    try:
        yield group
    finally:
        group.close()


@pytest.mark.mysql
def test_the_primary_dies_and_the_nodes_follow_the_promoted_replica(
        tmp_path: Path, mysql_database: str, sentinels: Sentinels) -> None:
    cluster = Cluster(tmp_path, f"{mysql_database}_sn{secrets.token_hex(2)}", sentinels.url)
    try:
        n1, n2 = cluster.add(node_ttl=1.0), cluster.add(node_ttl=1.0)
        alice, bob = n1.user("alice"), n2.user("bob")
        cluster.friends(alice, bob)

        async def scenario() -> None:
            chat = SteadyChat(alice, bob, [n1.port], [n2.port])
            await chat.start()
            await chat.more(10, "chat before the failover")
            await asyncio.to_thread(sentinels.primary.kill)
            await eventually(lambda: sentinels.primary_is_now(sentinels.replica.port),
                             "the sentinels to promote the replica", 30)
            # Both nodes reconnect to the new primary; bob's node tells him to resync.
            await eventually(lambda: 1012 in chat.inbox.close_codes
                             and chat.inbox.synced.is_set(),
                             "bob reconnected after the failover", 30)
            await chat.more(10, "chat after the failover")
            await chat.finish()

        asyncio.run(scenario())
        # The login throttle lives in Redis too: logins work against the new primary.
        assert n1.post("/user/login", {"mobile": alice.mobile,
                                       "passwd": "correct horse"}).status == 200
        assert n2.get("/healthz").status == 200
    finally:
        cluster.close()

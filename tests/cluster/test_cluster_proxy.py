"""Several nodes behind HAProxy (deploy/haproxy.py), as docs/scaling.md deploys them:
one address, a rolling restart and a SIGKILL under steady chat, and `make cluster`.

Clients know only the proxy's port. Whatever was acked reaches its recipient once,
live or by the sync a client makes when it reconnects; a draining node's clients are
told 1012 and come back through the proxy to another node.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import secrets
import signal
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.haproxy import Checks, HAProxy, find_haproxy
from tests.chat_support import SAFETY
from tests.cluster_support import (
    Cluster,
    SteadyChat,
    free_port,
    wait_until,
)

pytestmark = [pytest.mark.mysql, pytest.mark.redis]

#: A check times out after `interval` (no `timeout check`): on a loaded machine one slow
#: /healthz answer must not take a live node out, so three in a row do.
CHECKS = Checks(interval=0.2, fall=3, rise=1)
#: Longer than the proxy takes to see the failed check, so no client is sent to a node
#: after it started closing.
DRAIN_DELAY = 1.0


@pytest.fixture
def haproxy_binary() -> str:
    binary = find_haproxy()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("haproxy is not installed (.ci/run installs it)")
        pytest.skip("haproxy is not installed (apt-get install haproxy)")
    return binary


@pytest.fixture
def proxied(tmp_path: Path, mysql_database: str, redis_addr: tuple[str, int],
            haproxy_binary: str) -> Iterator[tuple[Cluster, HAProxy]]:
    cluster = Cluster(tmp_path, f"{mysql_database}_px{secrets.token_hex(2)}",
                      f"redis://{redis_addr[0]}:{redis_addr[1]}/0")
    proxy = None
    try:
        for _ in range(2):
            cluster.add(node_ttl=1.0, port=free_port(), extra=[
                "--trusted-proxy", "127.0.0.1", "--drain-delay", str(DRAIN_DELAY)])
        proxy = HAProxy(tmp_path / "haproxy", ("127.0.0.1", free_port()),
                        [("127.0.0.1", node.port) for node in cluster.nodes], CHECKS).start()
        yield cluster, proxy
    finally:
        if proxy is not None:
            proxy.stop()
        cluster.close()


def proxy_get(address: tuple[str, int], path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(*address, timeout=SAFETY)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def both_up(proxy: HAProxy, cluster: Cluster) -> None:
    """Wait until the proxy's checks pass on every node (after a start or a restart)."""
    for node in cluster.nodes:
        wait_until(lambda node=node: node.get("/healthz").status == 200, f"{node.name} ready")
    wait_until(lambda: proxy_get(proxy.listen, "/healthz")[0] == 200,
               "the proxy to pass traffic")


def test_a_rolling_restart_behind_the_proxy_loses_and_repeats_nothing(
        proxied: tuple[Cluster, HAProxy]) -> None:
    cluster, proxy = proxied
    alice, bob = cluster.nodes[0].user("alice"), cluster.nodes[1].user("bob")
    cluster.friends(alice, bob)
    both_up(proxy, cluster)

    async def scenario() -> None:
        chat = SteadyChat(alice, bob, [proxy.listen[1]], [proxy.listen[1]])
        await chat.start()
        for node in cluster.nodes:  # one by one, as an upgrade would
            await chat.more(10, f"chat before {node.name} restarts")
            await asyncio.to_thread(node.stop)  # SIGTERM: drain, 1012, exit
            await asyncio.to_thread(node.start)
            await asyncio.to_thread(both_up, proxy, cluster)
        await chat.more(10, "chat after the restarts")
        await chat.finish()
        # Both nodes were restarted, so bob was on a draining node at least once, and
        # his client was told to go elsewhere rather than cut off.
        assert 1012 in chat.inbox.close_codes, chat.inbox.close_codes

    asyncio.run(scenario())


def test_a_node_killed_behind_the_proxy_loses_and_repeats_nothing(
        proxied: tuple[Cluster, HAProxy]) -> None:
    cluster, proxy = proxied
    alice, bob = cluster.nodes[0].user("alice"), cluster.nodes[1].user("bob")
    cluster.friends(alice, bob)
    both_up(proxy, cluster)

    async def scenario() -> None:
        chat = SteadyChat(alice, bob, [proxy.listen[1]], [proxy.listen[1]])
        await chat.start()
        await chat.more(20, "chat before the crash")
        # leastconn put the two on different nodes or on one; either way someone is
        # cut off without a closing handshake.
        await asyncio.to_thread(cluster.nodes[0].kill)
        await chat.more(20, "chat after the crash")
        await chat.finish()

    asyncio.run(scenario())


def test_tls_ends_at_the_proxy_and_the_nodes_know_the_scheme_was_https(
        tmp_path: Path, mysql_database: str, redis_addr: tuple[str, int],
        haproxy_binary: str, tls_files: tuple[Path, Path]) -> None:
    """The proxy holds the certificate; a node, told by X-Forwarded-Proto from a trusted
    proxy, marks the session cookie Secure (it would not over plain HTTP)."""
    cert, key = tls_files
    pem = tmp_path / "site.pem"
    pem.write_bytes(cert.read_bytes() + key.read_bytes())
    cluster = Cluster(tmp_path, f"{mysql_database}_tls{secrets.token_hex(2)}",
                      f"redis://{redis_addr[0]}:{redis_addr[1]}/0")
    proxy = None
    try:
        node = cluster.add(port=free_port(), extra=["--trusted-proxy", "127.0.0.1"])
        user = node.user("tls")
        proxy = HAProxy(tmp_path / "haproxy", ("127.0.0.1", free_port()),
                        [("127.0.0.1", node.port)], CHECKS, tls_pem=pem).start()
        assert proxy.url.startswith("https://")
        context = ssl.create_default_context(cafile=str(cert))

        def login() -> http.client.HTTPResponse:
            conn = http.client.HTTPSConnection(*proxy.listen, timeout=SAFETY,
                                               context=context)
            conn.request("POST", "/user/login",
                         body=json.dumps({"mobile": user.mobile, "passwd": "correct horse"}),
                         headers={"Content-Type": "application/json", "Host": "localhost"})
            response = conn.getresponse()
            response.read()
            conn.close()
            return response

        wait_until(lambda: login().status == 200, "login through the TLS proxy")
        assert "; Secure" in (login().getheader("Set-Cookie") or "")
        direct = node.post("/user/login", {"mobile": user.mobile, "passwd": "correct horse"})
        assert "; Secure" not in (direct.header("Set-Cookie") or "")
    finally:
        if proxy is not None:
            proxy.stop()
        cluster.close()


def test_make_cluster_starts_nodes_behind_a_proxy_and_stops_them(
        tmp_path: Path, mysql_database: str, redis_addr: tuple[str, int],
        haproxy_binary: str) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "deploy.cluster", "--nodes", "2", "--port", str(port),
         "--dir", str(tmp_path / "cluster"), "--db", f"{mysql_database}_mk",
         "--redis", f"redis://{redis_addr[0]}:{redis_addr[1]}/0?prefix=mk{secrets.token_hex(2)}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        cwd=Path(__file__).resolve().parents[2])
    try:
        assert process.stdout is not None
        lines = []
        while "is running" not in (line := process.stdout.readline()):
            assert line, "".join(lines)  # it exited without starting
            lines.append(line)
        assert line.strip().endswith(f"open http://127.0.0.1:{port}/")
        nodes = [int(x.rsplit(":", 1)[1].strip("/\n")) for x in lines if x.startswith("node")]
        assert len(nodes) == 2
        address = ("127.0.0.1", port)
        wait_until(lambda: proxy_get(address, "/healthz")[0] == 200, "the cluster to be ready")
        assert proxy_get(address, "/login")[0] == 200
        process.send_signal(signal.SIGINT)
        assert process.wait(SAFETY * 2) == 0
        for node_port in [port, *nodes]:  # the proxy and every node are gone
            with pytest.raises(OSError):
                http.client.HTTPConnection("127.0.0.1", node_port, timeout=2).connect()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(SAFETY)

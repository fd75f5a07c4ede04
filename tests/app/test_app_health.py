"""`/healthz` and draining (docs/scaling.md, "Behind a load balancer"): a node says it is
ready only while its database and bus work, says it is not while it drains, and a
draining node tells its WebSocket clients to reconnect elsewhere (1012)."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from fastim.app import create_app
from fastim.config import Config
from fastim.ws import ConnectionClosed
from tests.app.test_app_cli import start_cli
from tests.chat_support import ChatClient
from tests.cluster_support import RedisServer, wait_until
from tests.mariadb_support import mariadb_server
from tests.store_fixtures import ApiServer, api_config


def health(api: ApiServer) -> tuple[int, dict[str, str]]:
    reply = api.get("/healthz")
    assert reply.header("Cache-Control") == "no-store"
    return reply.status, reply.json


def test_a_running_node_is_ready(tmp_path: Path) -> None:
    with ApiServer(api_config(f"sqlite:///{tmp_path}/h.db", tmp_path)) as api:
        assert health(api) == (200, {"status": "ready", "database": "ok", "bus": "ok"})
        head = api.request("HEAD", "/healthz")
        assert (head.status, head.body) == (200, b"")


def test_a_draining_node_fails_its_check_and_sends_its_clients_elsewhere(
        tmp_path: Path) -> None:
    with ApiServer(api_config(f"sqlite:///{tmp_path}/h.db", tmp_path)) as api:
        user, token = api.user_with_token()

        async def drained() -> int | None:
            client = await ChatClient.open(api.port, token)
            api.app.draining = True  # what drain() does first, before its delay
            assert health(api) == (503, {"status": "draining"})
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(
                api.app.drain(0), api.loop))
            with pytest.raises(ConnectionClosed) as closed:
                await client.frame()
            return closed.value.code

        assert asyncio.run(drained()) == 1012


def test_a_node_without_its_redis_link_is_not_ready(tmp_path: Path,
                                                    private_redis: RedisServer) -> None:
    config = replace(api_config(f"sqlite:///{tmp_path}/h.db", tmp_path),
                     redis=private_redis.url, node_ttl=1.0)
    with ApiServer(config) as api:
        assert health(api)[0] == 200
        private_redis.kill()
        wait_until(lambda: health(api)[0] == 503, "the check to fail without Redis")
        assert health(api)[1] == {"status": "unavailable", "database": "ok",
                                  "bus": "disconnected"}
        private_redis.start()
        wait_until(lambda: health(api)[0] == 200, "the check to pass with Redis back")


def test_a_node_whose_database_is_gone_is_not_ready(tmp_path: Path) -> None:
    server = mariadb_server(tmp_path / "mariadb")
    try:
        config = api_config(server.url("fastim"), tmp_path)
        with ApiServer(config) as api:
            assert health(api)[0] == 200
            server.stop()
            assert health(api) == (503, {"status": "unavailable", "database": "unavailable",
                                         "bus": "ok"})
            server.start()
            wait_until(lambda: health(api)[0] == 200, "the check to pass with the database")
    finally:
        server.close()


def test_every_role_answers_the_check() -> None:
    for role in ("all", "api", "chat"):
        app = create_app(Config(role=role, redis="redis://127.0.0.1:6379/0"))
        route, _ = app.router.resolve("GET", "/healthz")
        assert route is not None, role


def test_sigterm_drains_for_the_given_delay_then_exits(tmp_path: Path) -> None:
    process, host, port = start_cli(tmp_path, "--port", "0", "--data-dir",
                                    str(tmp_path / "d"), "--drain-delay", "30")

    def check() -> int:
        with socket.create_connection((host, port), timeout=5) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return int(sock.recv(64).split(b" ")[1])

    try:
        assert check() == 200
        process.send_signal(signal.SIGTERM)
        # Still serving, and saying it is leaving: the balancer moves traffic away.
        wait_until(lambda: check() == 503, "the check to fail after SIGTERM")
        process.send_signal(signal.SIGKILL)  # the test need not wait out the delay
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)


def test_the_drain_delay_flag_is_checked() -> None:
    done = subprocess.run([sys.executable, "-m", "fastim", "serve", "--drain-delay", "-1"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "--drain-delay must not be negative" in done.stderr

"""Redis over TLS (``rediss://``) and with a password: every Redis user of a node (the
bus, the login and registration throttles, the shared chat rate window) reaches a
private redis-server that accepts only TLS and only with the password
(docs/scaling.md "Redis over TLS, with a password")."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import redis

from fastim.bus import RedisBus, State, split_url
from fastim.bus.envelope import redacted_url
from fastim.config import Config
from fastim.services import login_throttle, register_throttle, shared_rate_window
from tests.cluster_support import free_port

PASSWORD = "s3cret pass/word"  # a space and a slash: the URL must quote them


@pytest.fixture
def tls_redis(tmp_path: Path, tls_files: tuple[Path, Path]) -> Iterator[tuple[int, Path]]:
    """A redis-server that speaks only TLS and wants `PASSWORD`: (port, CA file)."""
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is not installed")
        pytest.skip("redis-server is not installed")
    cert, key = tls_files
    port = free_port()
    log = tmp_path / "redis.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [binary, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
             "--tls-cert-file", str(cert), "--tls-key-file", str(key),
             "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no",
             "--requirepass", PASSWORD, "--save", "", "--appendonly", "no",
             "--dir", str(tmp_path)],
            stdout=out, stderr=out, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    text = log.read_text(errors="replace")
                    if "TLS" in text and "not" in text.lower():
                        pytest.skip(f"this redis-server has no TLS: {text[-300:]}")
                    pytest.fail(f"redis-server with TLS did not start: {text[-500:]}")
                time.sleep(0.05)
        yield port, cert
    finally:
        process.kill()
        process.wait(10)


def url_of(port: int, ca: Path, password: str = PASSWORD, prefix: str = "tlstest") -> str:
    return (f"rediss://:{quote(password, safe='')}@127.0.0.1:{port}/0"
            f"?ssl_ca_certs={quote(str(ca), safe='')}&prefix={prefix}")


def test_split_url_keeps_tls_and_the_password_for_redis_py() -> None:
    url, prefix = split_url("rediss://:pw%2F1@redis.example:6380/2?ssl_ca_certs=%2Fca.pem"
                            "&prefix=prod")
    assert prefix == "prod"
    assert url == "rediss://:pw%2F1@redis.example:6380/2?ssl_ca_certs=%2Fca.pem"
    kwargs = redis.connection.parse_url(url)
    assert kwargs["connection_class"] is redis.connection.SSLConnection
    assert kwargs["password"] == "pw/1" and kwargs["ssl_ca_certs"] == "/ca.pem"


def test_the_password_never_reaches_the_log(tls_redis: tuple[int, Path],
                                            caplog: pytest.LogCaptureFixture) -> None:
    port, ca = tls_redis
    assert redacted_url("rediss://:pw@h:1/0") == "rediss://:***@h:1/0"
    assert redacted_url("redis://user:pw@h:1/0?x=1") == "redis://user:***@h:1/0?x=1"
    assert redacted_url("redis://h:1/0") == "redis://h:1/0"

    async def scenario() -> None:
        for url in (url_of(port, ca), url_of(port, ca, password="wrong guess")):
            bus = RedisBus(url)
            await bus.start()
            await bus.close()

    with caplog.at_level("INFO"):
        asyncio.run(scenario())
    assert "127.0.0.1" in caplog.text and ":***@" in caplog.text
    assert "wrong guess" not in caplog.text and quote(PASSWORD, safe="") not in caplog.text
    assert "wrong%20guess" not in caplog.text


def test_every_redis_user_of_a_node_works_over_tls_with_a_password(
        tls_redis: tuple[int, Path]) -> None:
    port, ca = tls_redis
    config = Config(redis=url_of(port, ca))

    async def scenario() -> None:
        bus = RedisBus(config.redis)
        await bus.start()
        assert bus.state is State.UP
        await bus.close()
        throttle = login_throttle(config)
        await throttle.attempt("13800000000", "192.0.2.1")
        await throttle.close()
        registrations = register_throttle(config)
        await registrations.attempt("192.0.2.1")
        await registrations.close()
        shared = shared_rate_window(config)
        assert shared is not None
        over, left = await shared.add({7: 3})
        assert over == set() and 0 < left <= 10
        await shared.close()

    asyncio.run(scenario())
    # What they counted is in that Redis (no fallback to the process's memory).
    client = redis.Redis(host="127.0.0.1", port=port, password=PASSWORD, ssl=True,
                         ssl_ca_certs=str(ca))
    try:
        keys = {key.decode() for key in client.scan_iter("tlstest:*")}
    finally:
        client.close()
    assert "tlstest:login:m:13800000000" in keys
    assert "tlstest:register:a:192.0.2.1" in keys
    assert any(key.startswith("tlstest:chatrate:7:") for key in keys)


def test_a_wrong_password_or_plain_redis_is_refused(tls_redis: tuple[int, Path]) -> None:
    port, ca = tls_redis

    async def state(url: str) -> State:
        bus = RedisBus(url)
        await bus.start()  # waits a moment, then goes on without Redis
        result = bus.state
        await bus.close()
        return result

    assert asyncio.run(state(url_of(port, ca, password="wrong"))) is State.DOWN
    plain = f"redis://:{quote(PASSWORD, safe='')}@127.0.0.1:{port}/0"
    assert asyncio.run(state(plain)) is State.DOWN
    with pytest.raises((redis.exceptions.ConnectionError, ssl.SSLError, OSError)):
        redis.Redis(host="127.0.0.1", port=port, password=PASSWORD, ssl=True,
                    socket_timeout=2).ping()  # an unknown CA: the certificate is checked

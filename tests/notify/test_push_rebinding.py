"""DNS rebinding between a push endpoint's check and its connection (docs/security.md).

A name can pass a check with a public address and be connected a moment later on an
internal one. fastim checks the address of the socket actually connected, before a byte
is written (fastim/notify/transport.py). These tests connect for real on loopback: a
listener records every TCP connection it accepts and the bytes that came on it, so
"refused before any byte" is seen from the far side, not taken from our own code.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fastim.accounts.service import token_hash
from fastim.notify.options import PushOptions
from fastim.notify.transport import PushSession
from fastim.store.notify import save_subscription
from tests.chat_support import ChatClient, befriend
from tests.push_support import b64url
from tests.store_fixtures import ApiServer, api_config

SAFETY = 10.0  # a safety net only: no test asserts on time


class Listener:
    """A TCP listener on 127.0.0.1: for each connection, the bytes received until the
    peer closed it (an HTTP request is answered 201 so that a client does not wait)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.connections: list[bytes] = []
        self._changed = threading.Condition()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        data = b""
        with conn:
            conn.settimeout(SAFETY)
            try:
                while chunk := conn.recv(65536):
                    data += chunk
                    if b"\r\n\r\n" in data:
                        conn.sendall(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n"
                                     b"Connection: close\r\n\r\n")
            except OSError:
                pass
        with self._changed:
            self.connections.append(data)
            self._changed.notify_all()

    def wait_for(self, count: int) -> list[bytes]:
        deadline = time.monotonic() + SAFETY
        with self._changed:
            while len(self.connections) < count:
                left = deadline - time.monotonic()
                assert left > 0, f"{count} connections never came: {self.connections}"
                self._changed.wait(left)
            return list(self.connections)

    def close(self) -> None:
        self.sock.close()


def browser_keys() -> dict[str, str]:
    """A browser's subscription keys (RFC 8291 §3.2): a P-256 public key and a secret."""
    point = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return {"p256dh": b64url(point), "auth": b64url(os.urandom(16))}


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


def test_a_name_on_loopback_is_connected_then_refused_before_any_byte(
        listener: Listener) -> None:
    # "localhost" stands for any name whose DNS answer is now an internal address: the
    # session does not ask DNS whether it may go, it looks at whom it reached.
    production = PushOptions()
    for n, url in enumerate((f"https://localhost:{listener.port}/push/x",
                             f"http://localhost:{listener.port}/push/x",
                             f"http://127.0.0.1:{listener.port}/push/x"), start=1):
        with PushSession(production) as session, \
                pytest.raises(requests.exceptions.ConnectionError, match="push refused"):
            session.post(url, data=b"secret", timeout=SAFETY)
        # The TCP connection was made (so the check was of the real peer), and closed
        # with nothing on it: no TLS ClientHello, no request line.
        assert listener.wait_for(n)[n - 1] == b""

    # The same listener with loopback allowed (the tests' option) gets the request: the
    # refusal above was the peer check, not a listener that takes nothing.
    with PushSession(PushOptions(allow_http_loopback=True)) as session:
        answer = session.post(f"http://localhost:{listener.port}/push/x", data=b"hello",
                              timeout=SAFETY)
    assert answer.status_code == 201
    request = listener.wait_for(4)[3]
    assert request.startswith(b"POST /push/x HTTP/1.1\r\n") and request.endswith(b"hello")


def test_a_push_to_a_name_that_now_resolves_internally_sends_nothing(
        tmp_path: Path, listener: Listener, caplog: pytest.LogCaptureFixture) -> None:
    """The whole path: a server with production options, and a subscription whose check
    passed earlier (stored as `POST /user/push` stores it, as when its name still had a
    public address); its name now resolves to 127.0.0.1. The push connects, sees the
    peer, and sends nothing."""
    config = api_config(f"sqlite:///{tmp_path}/fastim.db", tmp_path)
    config.push = replace(PushOptions(), coalesce=0.0)
    with ApiServer(config) as api:
        alice, alice_token = api.user_with_token(nickname="Alice")
        bob, bob_token = api.user_with_token(nickname="Bob")
        befriend(api, alice_token, bob, bob_token)
        browser = browser_keys()
        services = api.app.services
        api.call(services.store.write(
            save_subscription, bob["id"], f"https://localhost:{listener.port}/push/bob",
            browser["p256dh"], browser["auth"], token_hash(bob_token), int(time.time()), 10))

        async def say() -> None:
            client = await ChatClient.open(api, alice_token)
            try:
                ack = await client.say(10, bob["id"], "are you there?", secrets.token_hex(6))
                assert ack["cmd"] == 1, ack
            finally:
                await client.close()

        with caplog.at_level(logging.WARNING, logger="fastim.notify.push"):
            asyncio.run(say())
            api.call(services.push.idle())
        assert listener.wait_for(1) == [b""]
        assert services.push.sent == 0
        assert "push refused: connected to 127.0.0.1" in caplog.text

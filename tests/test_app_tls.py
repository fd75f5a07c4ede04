"""`fastim serve --certfile/--keyfile`: HTTPS and wss:// on one port, verified by clients."""

from __future__ import annotations

import asyncio
import http.client
import json
import ssl
from pathlib import Path
from typing import Any

import pytest

from fastim.ws import connect
from tests.store_fixtures import ApiServer, api_config


@pytest.fixture
def tls_api(tls_files: tuple[Path, Path], tmp_path: Path) -> Any:
    cert, key = tls_files
    config = api_config(f"sqlite:///{tmp_path}/fastim.db", tmp_path)
    config.certfile, config.keyfile = cert, key
    with ApiServer(config) as server:
        yield server


def https(port: int, context: ssl.SSLContext, method: str, path: str,
          body: Any = None, token: str | None = None) -> tuple[int, Any]:
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        conn.request(method, path, body=json.dumps(body) if body is not None else None,
                     headers=headers)
        reply = conn.getresponse()
        data = reply.read()
        return reply.status, json.loads(data) if data.startswith(b"{") else data
    finally:
        conn.close()


def test_https_and_wss_on_one_port(tls_api: ApiServer, tls_files: tuple[Path, Path]) -> None:
    cert, _ = tls_files
    context = ssl.create_default_context(cafile=str(cert))
    port = tls_api.port
    assert tls_api.app.url.startswith("https://")
    status, _ = https(port, context, "POST", "/user/register",
                      {"mobile": "13912345678", "passwd": "correct horse", "nickname": "tls"})
    assert status == 201
    status, reply = https(port, context, "POST", "/user/login",
                          {"mobile": "13912345678", "passwd": "correct horse"})
    assert status == 200
    token = reply["data"]["token"]

    async def chat() -> dict[str, Any]:
        async with connect(f"wss://127.0.0.1:{port}/chat?token={token}", ssl=context) as ws:
            return json.loads(await ws.recv())

    assert asyncio.run(chat())["cmd"] == 50  # the presence snapshot, over TLS

    # Verification is on by default: a client that does not trust the certificate fails.
    with pytest.raises(ssl.SSLError):
        https(port, ssl.create_default_context(), "GET", "/login")

    async def untrusted() -> None:
        await connect(f"wss://127.0.0.1:{port}/chat?token={token}")

    with pytest.raises(ssl.SSLError):
        asyncio.run(untrusted())


def test_plain_http_on_the_tls_port_gets_no_answer(tls_api: ApiServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", tls_api.port, timeout=10)
    try:
        with pytest.raises((ConnectionError, http.client.HTTPException)):
            conn.request("GET", "/login")
            conn.getresponse()
    finally:
        conn.close()

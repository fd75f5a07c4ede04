"""`fastim serve --certfile/--keyfile`: HTTPS and wss:// on one port, verified by clients."""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
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


def https_headers(port: int, context: ssl.SSLContext, method: str, path: str,
                  body: Any = None) -> tuple[int, http.client.HTTPMessage]:
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
    try:
        conn.request(method, path, body=json.dumps(body) if body is not None else None,
                     headers={"Content-Type": "application/json"})
        reply = conn.getresponse()
        reply.read()
        return reply.status, reply.headers
    finally:
        conn.close()


def test_under_tls_the_cookie_is_secure_and_every_response_has_hsts(
        tls_api: ApiServer, tls_files: tuple[Path, Path]) -> None:
    context = ssl.create_default_context(cafile=str(tls_files[0]))
    port = tls_api.port
    user = {"mobile": "13912345679", "passwd": "correct horse", "nickname": "tls"}
    assert https(port, context, "POST", "/user/register", user)[0] == 201
    status, headers = https_headers(port, context, "POST", "/user/login", user)
    assert status == 200
    cookie = headers["Set-Cookie"]
    assert cookie.startswith("fastim_token=") and "; Secure" in cookie
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    hsts = f"max-age={180 * 24 * 3600}"
    assert headers["Strict-Transport-Security"] == hsts
    # Pages, static files, errors from a handler and from the parser: all carry it.
    for method, path in (("GET", "/login"), ("GET", "/asset/css/fastim.css"),
                         ("GET", "/no/such/page"), ("GET", "/user/me")):
        status, headers = https_headers(port, context, method, path)
        assert headers["Strict-Transport-Security"] == hsts, (path, status)
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    with context.wrap_socket(raw, server_hostname="localhost") as tls:
        tls.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n"
                    b"Transfer-Encoding: chunked\r\n\r\n")
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = tls.recv(4096)
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400")
    assert f"Strict-Transport-Security: {hsts}".encode() in answer


def test_the_hsts_max_age_is_configurable_and_0_sends_none(
        tls_files: tuple[Path, Path], tmp_path: Path) -> None:
    context = ssl.create_default_context(cafile=str(tls_files[0]))
    for max_age, expected in ((60, "max-age=60"), (0, None)):
        config = api_config(f"sqlite:///{tmp_path}/fastim{max_age}.db", tmp_path)
        config.certfile, config.keyfile = tls_files
        config.hsts_max_age = max_age
        with ApiServer(config) as server:
            _, headers = https_headers(server.port, context, "GET", "/login")
            assert headers["Strict-Transport-Security"] == expected


def test_without_tls_no_secure_cookie_and_no_hsts(tmp_path: Path) -> None:
    with ApiServer(api_config(f"sqlite:///{tmp_path}/fastim.db", tmp_path)) as api:
        user = api.register()
        reply = api.post("/user/login", {"mobile": user["mobile"], "passwd": user["passwd"]})
        cookie = reply.header("set-cookie")
        assert cookie is not None and "HttpOnly" in cookie and "Secure" not in cookie
        assert reply.header("strict-transport-security") is None
        assert api.get("/login").header("strict-transport-security") is None

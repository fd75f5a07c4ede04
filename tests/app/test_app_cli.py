"""`fastim serve` as a real subprocess on a free port, and its flags/environment."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from http_support import SAFETY_TIMEOUT, Client, request

from fastim.config import Config, add_serve_arguments, config_from_args
from fastim.handlers.chat import MAX_FRAME
from fastim.ws import ConnectionClosed
from tests.store_fixtures import ApiServer


def start_cli(tmp_path: Path, *args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    environ = {k: v for k, v in os.environ.items() if not k.startswith("FASTIM_")}
    environ.update(env or {})
    process = subprocess.Popen(
        [sys.executable, "-m", "fastim", "serve", *args],
        cwd=tmp_path, env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()  # blocks until the server printed its URL
    if "open http://" not in line:
        process.kill()
        raise AssertionError(f"no URL printed: {line!r} {process.stderr.read()!r}")  # type: ignore[union-attr]
    url = line.rsplit("open ", 1)[1].strip()
    host, port = url.removeprefix("http://").rstrip("/").rsplit(":", 1)
    return process, host, int(port)


def get(host: str, port: int, target: str) -> tuple[int, str | None, bytes]:
    with socket.create_connection((host, port), timeout=SAFETY_TIMEOUT) as sock:
        client = Client(sock)
        client.send(request("GET", target))
        response = client.read_response()
        return response.status, response.header("location"), response.body


def stop(process: subprocess.Popen[str]) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(SAFETY_TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()


def test_serve_answers_and_shuts_down_on_sigterm(tmp_path: Path) -> None:
    process, host, port = start_cli(
        tmp_path, "--host", "127.0.0.1", "--port", "0", "--data-dir", str(tmp_path / "d"))
    try:
        assert host == "127.0.0.1" and port > 0
        assert get(host, port, "/") == (302, "/login", b"")
        status, _, body = get(host, port, "/login")
        assert status == 200 and b"<form" in body
        status, _, body = get(host, port, "/asset/css/fastim.css")
        assert status == 200 and b"body" in body
    finally:
        code = stop(process)
    assert code == 0
    assert (tmp_path / "d").is_dir()
    stderr = process.stderr.read()  # type: ignore[union-attr]
    assert '"GET / HTTP/1.1" 302' in stderr  # the access log


def test_serve_reads_the_environment(tmp_path: Path) -> None:
    process, host, port = start_cli(tmp_path, env={
        "FASTIM_HOST": "127.0.0.1", "FASTIM_PORT": "0",
        "FASTIM_DATA_DIR": str(tmp_path / "envdata"),
        "FASTIM_RESOURCE_DIR": str(tmp_path / "uploads"),
    })
    try:
        assert get(host, port, "/")[0] == 302
    finally:
        assert stop(process) == 0
    assert (tmp_path / "envdata").is_dir()
    assert (tmp_path / "uploads").is_dir()


def test_sigint_also_shuts_down_gracefully(tmp_path: Path) -> None:
    process, host, port = start_cli(tmp_path, "--port", "0", "--data-dir", str(tmp_path / "d"))
    process.send_signal(signal.SIGINT)
    assert process.wait(SAFETY_TIMEOUT) == 0
    with pytest.raises(OSError):
        socket.create_connection((host, port), timeout=2).close()


def parse(argv: list[str], environ: dict[str, str]) -> Config:
    parser = argparse.ArgumentParser()
    add_serve_arguments(parser, environ)
    return config_from_args(parser.parse_args(argv))


def test_defaults() -> None:
    config = parse([], {})
    assert (config.host, config.port, config.db, config.redis) == ("127.0.0.1", 8081, "", "")
    assert config.data_dir == Path("data")
    assert config.database_url == "sqlite:///" + str(Path("data/fastim.db").resolve())


def test_environment_fallbacks_and_flags_winning() -> None:
    env = {"FASTIM_HOST": "0.0.0.0", "FASTIM_PORT": "9000", "FASTIM_DB": "mysql://root:@h/db",
           "FASTIM_REDIS": "redis://127.0.0.1:6379/0", "FASTIM_DATA_DIR": "/tmp/x"}
    config = parse([], env)
    assert (config.host, config.port, config.redis) == ("0.0.0.0", 9000, env["FASTIM_REDIS"])
    assert config.database_url == "mysql://root:@h/db"
    assert config.data_dir == Path("/tmp/x")
    config = parse(["--port", "1234", "--db", "sqlite:///other.db", "--data-dir", "d"], env)
    assert (config.port, config.db, config.data_dir) == (1234, "sqlite:///other.db", Path("d"))


def test_bad_port_in_the_environment_is_a_clear_error() -> None:
    with pytest.raises(SystemExit, match="FASTIM_PORT"):
        parse([], {"FASTIM_PORT": "eighty"})


# -- the limits: every one a flag with a FASTIM_* fallback, checked, and reaching the code --

LIMIT_FLAGS = [
    # (flag, environment variable, value, where it lands in the Config)
    ("--kdf", "FASTIM_KDF", "pbkdf2_sha256:1000", lambda c: c.kdf),
    ("--token-ttl", "FASTIM_TOKEN_TTL", "120", lambda c: c.token_ttl),
    ("--max-sessions", "FASTIM_MAX_SESSIONS", "3", lambda c: c.max_sessions),
    ("--login-per-mobile", "FASTIM_LOGIN_PER_MOBILE", "2", lambda c: c.login_per_mobile),
    ("--login-per-address", "FASTIM_LOGIN_PER_ADDRESS", "7", lambda c: c.login_per_address),
    ("--login-window", "FASTIM_LOGIN_WINDOW", "30.5", lambda c: c.login_window),
    ("--register-per-address", "FASTIM_REGISTER_PER_ADDRESS", "3",
     lambda c: c.register_per_address),
    ("--register-window", "FASTIM_REGISTER_WINDOW", "60.5", lambda c: c.register_window),
    ("--group-limit", "FASTIM_GROUP_LIMIT", "1", lambda c: c.group_limit),
    ("--friend-requests-per-day", "FASTIM_FRIEND_REQUESTS_PER_DAY", "4",
     lambda c: c.friend_requests_per_day),
    ("--friend-request-ttl", "FASTIM_FRIEND_REQUEST_TTL", "600",
     lambda c: c.friend_request_ttl),
    ("--max-request-line", "FASTIM_MAX_REQUEST_LINE", "1000",
     lambda c: c.limits.max_request_line),
    ("--max-header-size", "FASTIM_MAX_HEADER_SIZE", "2048", lambda c: c.limits.max_header_size),
    ("--max-header-count", "FASTIM_MAX_HEADER_COUNT", "20", lambda c: c.limits.max_header_count),
    ("--max-body-size", "FASTIM_MAX_BODY_SIZE", "64", lambda c: c.limits.max_body_size),
    ("--header-timeout", "FASTIM_HEADER_TIMEOUT", "2.5", lambda c: c.limits.header_timeout),
    ("--body-timeout", "FASTIM_BODY_TIMEOUT", "3.5", lambda c: c.limits.body_timeout),
    ("--keep-alive-timeout", "FASTIM_KEEP_ALIVE_TIMEOUT", "4.5",
     lambda c: c.limits.keep_alive_timeout),
    ("--write-timeout", "FASTIM_WRITE_TIMEOUT", "5.5", lambda c: c.limits.write_timeout),
    ("--upload-max-bytes", "FASTIM_UPLOAD_MAX_BYTES", "100000",
     lambda c: c.media.max_upload_bytes),
    ("--upload-max-pixels", "FASTIM_UPLOAD_MAX_PIXELS", "1000000", lambda c: c.media.max_pixels),
    ("--upload-max-frames", "FASTIM_UPLOAD_MAX_FRAMES", "10", lambda c: c.media.max_frames),
    ("--upload-rate", "FASTIM_UPLOAD_RATE", "1", lambda c: c.media.rate_limit),
    ("--upload-rate-window", "FASTIM_UPLOAD_RATE_WINDOW", "5.5", lambda c: c.media.rate_window),
    ("--chat-outbound-buffer", "FASTIM_CHAT_OUTBOUND_BUFFER", "65536",
     lambda c: c.chat_outbound_buffer),
    ("--chat-max-frame", "FASTIM_CHAT_MAX_FRAME", "1024", lambda c: c.chat_max_frame),
    ("--chat-ping-interval", "FASTIM_CHAT_PING_INTERVAL", "0.25",
     lambda c: c.chat_ping_interval),
    ("--chat-ping-timeout", "FASTIM_CHAT_PING_TIMEOUT", "0.5", lambda c: c.chat_ping_timeout),
    ("--hsts-max-age", "FASTIM_HSTS_MAX_AGE", "60", lambda c: c.hsts_max_age),
    ("--max-connections-per-user", "FASTIM_MAX_CONNECTIONS_PER_USER", "3",
     lambda c: c.hub.max_connections_per_user),
    ("--db-wait", "FASTIM_DB_WAIT", "2.5", lambda c: c.db_wait),
]


def _typed(value: str) -> object:
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


@pytest.mark.parametrize("flag, name, value, field", LIMIT_FLAGS, ids=[f[0] for f in LIMIT_FLAGS])
def test_each_limit_flag_and_its_environment_variable_reach_the_config(
        flag: str, name: str, value: str, field: Any) -> None:
    default = field(parse([], {}))
    assert default != _typed(value)
    assert field(parse([flag, value], {})) == _typed(value)
    assert field(parse([], {name: value})) == _typed(value)
    assert field(parse([flag, value], {name: "999"})) == _typed(value)  # the flag wins


def test_the_defaults_are_the_documented_ones() -> None:
    config = parse([], {})
    assert (config.token_ttl, config.max_sessions) == (30 * 24 * 3600, 20)
    assert (config.login_per_mobile, config.login_per_address, config.login_window) == (
        5, 20, 900.0)
    assert (config.register_per_address, config.register_window) == (10, 3600.0)
    assert config.hub.max_connections_per_user == 10
    assert config.db_wait == 30.0 and parse(["--db-wait", "0"], {}).db_wait == 0
    assert config.kdf == "scrypt:16384:8:1" and config.group_limit == 5
    assert (config.friend_requests_per_day, config.friend_request_ttl) == (50, 30 * 24 * 3600)
    assert config.chat_max_frame == MAX_FRAME == 64 * 1024
    assert (config.chat_ping_interval, config.chat_ping_timeout) == (20.0, 20.0)
    assert config.chat_outbound_buffer == 1024 * 1024
    assert config.limits.max_body_size == 1024 * 1024
    assert config.limits.write_timeout == 30.0
    assert config.media.max_upload_bytes == 10 * 1024 * 1024
    assert config.hsts_max_age == 180 * 24 * 3600
    assert parse(["--chat-ping-interval", "0"], {}).chat_ping_interval is None  # no pings


@pytest.mark.parametrize("argv, environ, message", [
    (["--token-ttl", "0"], {}, "--token-ttl must be positive"),
    (["--max-body-size", "-1"], {}, "--max-body-size must be positive"),
    (["--login-window", "nan"], {}, "--login-window must be positive"),
    (["--chat-ping-timeout", "0"], {}, "--chat-ping-timeout must be positive"),
    (["--write-timeout", "0"], {}, "--write-timeout must be positive"),
    (["--hsts-max-age", "-5"], {}, "--hsts-max-age must be 0 or more"),
    ([], {"FASTIM_MAX_SESSIONS": "many"}, "FASTIM_MAX_SESSIONS must be an integer"),
    ([], {"FASTIM_HEADER_TIMEOUT": "soon"}, "FASTIM_HEADER_TIMEOUT must be a number"),
    (["--kdf", "md5"], {}, "--kdf"),
    (["--kdf", "scrypt:3:8:1"], {}, "--kdf"),
    (["--upload-max-bytes", "0"], {}, "--upload-max-bytes must be positive"),
])
def test_bad_limit_values_are_a_clear_error(argv: list[str], environ: dict[str, str],
                                            message: str) -> None:
    with pytest.raises(SystemExit, match=message):
        parse(argv, environ)


def test_a_bad_limit_flag_exits_the_cli_with_its_message(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "fastim", "serve", "--token-ttl", "0"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=SAFETY_TIMEOUT)
    assert done.returncode != 0 and "--token-ttl must be positive" in done.stderr


def test_http_limit_flags_reach_the_server(tmp_path: Path) -> None:
    process, host, port = start_cli(
        tmp_path, "--port", "0", "--data-dir", str(tmp_path / "d"), "--max-body-size", "64",
        "--max-header-size", "1024", "--keep-alive-timeout", "0.2")
    try:
        with socket.create_connection((host, port), timeout=SAFETY_TIMEOUT) as sock:
            client = Client(sock)
            client.send(request("POST", "/user/login", body=b"x" * 100,
                                headers=[("Content-Type", "application/json")]))
            assert client.read_response().status == 413
        with socket.create_connection((host, port), timeout=SAFETY_TIMEOUT) as sock:
            client = Client(sock)
            client.send(request("GET", "/login", headers=[("X-Padding", "p" * 2000)]))
            assert client.read_response().status == 431
        with socket.create_connection((host, port), timeout=SAFETY_TIMEOUT) as sock:
            client = Client(sock)
            client.send(request("GET", "/login"))
            assert client.read_response().status == 200
            # Idle past --keep-alive-timeout: the server closes the connection.
            assert sock.recv(1) == b""
    finally:
        assert stop(process) == 0


def app_from_flags(tmp_path: Path, *flags: str) -> ApiServer:
    config = parse(["--port", "0", "--db", f"sqlite:///{tmp_path}/fastim.db",
                    "--data-dir", str(tmp_path / "data"),
                    "--resource-dir", str(tmp_path / "resource"), *flags], {})
    config.access_log = False
    return ApiServer(config)


def test_account_limit_flags_reach_logins_and_groups(tmp_path: Path) -> None:
    with app_from_flags(tmp_path, "--token-ttl", "120", "--max-sessions", "2",
                        "--login-per-mobile", "2", "--kdf", "pbkdf2_sha256:1000",
                        "--group-limit", "1") as api:
        user = api.register()
        login = api.post("/user/login", {"mobile": user["mobile"], "passwd": user["passwd"]})
        assert 100 < login.data["expires"] - time.time() <= 120
        first = login.data["token"]
        api.login(user)
        api.login(user)  # --max-sessions 2: the first token is dropped
        assert api.get("/user/me", token=first).status == 401
        kdf = api.call(api.app.store.read(
            lambda tx: tx.rows("SELECT kdf FROM users WHERE id = ?", (user["id"],))))
        assert kdf[0][0] == "pbkdf2_sha256:1000"
        token = api.login(user)
        assert api.post("/contact/createcommunity", {"name": "one"}, token=token).status == 201
        second = api.post("/contact/createcommunity", {"name": "two"}, token=token)
        assert second.status == 409 and "own 1 groups" in second.json["msg"]
        other = api.register()
        wrong = {"mobile": other["mobile"], "passwd": "not it"}
        assert [api.post("/user/login", wrong).status for _ in range(3)] == [401, 401, 429]


def test_chat_limit_flags_reach_the_websocket(tmp_path: Path) -> None:
    from tests.chat.test_security_chat import read_frames_until_close
    from tests.chat_support import ChatClient

    with app_from_flags(tmp_path, "--chat-max-frame", "1024", "--chat-ping-interval", "0.2",
                        "--chat-ping-timeout", "0.2", "--chat-outbound-buffer", "4096") as api:
        assert api.app.config.chat_outbound_buffer == 4096
        _, token = api.user_with_token()

        async def too_big() -> int:
            client = await ChatClient.open(api, token)
            await client.connection.send('{"cmd":0}' + " " * 1024)
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    await client.frame()
            return closed.value.code

        assert asyncio.run(too_big()) == 1009
        # A client that never answers pings is closed with 1011 (the pong came too late).
        with socket.create_connection(("127.0.0.1", api.port), timeout=SAFETY_TIMEOUT) as raw:
            raw.sendall(
                f"GET /chat?token={token} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n".encode())
            code, _, frames = read_frames_until_close(raw)
        assert code == 1011 and frames >= 2  # the presence snapshot and a ping at least


def test_upload_limit_flags_reach_uploads(tmp_path: Path) -> None:
    from PIL import Image

    from tests.media.test_media_upload import encode, error, picture, upload

    with app_from_flags(tmp_path, "--upload-max-bytes", "100000", "--upload-rate", "2") as api:
        token = api.user_with_token()[1]
        big = encode(Image.frombytes("RGB", (200, 200), os.urandom(120_000)), "PNG")
        assert "100,000 bytes" in error(upload(api, token, big), 413)
        assert upload(api, token, encode(picture((50, 50)), "PNG")).status == 200
        error(upload(api, token, encode(picture((60, 60)), "PNG")), 429)


def test_voice_file_and_quota_flags_reach_uploads(tmp_path: Path) -> None:
    from tests.media.audio_samples import webm
    from tests.media.test_media_upload import error
    from tests.media.test_media_voice_files import send_upload

    media = parse(["--voice-max-seconds", "2.5", "--file-max-bytes", "1000",
                   "--upload-quota-bytes", "1500"], {}).media
    assert (media.voice_max_seconds, media.file_max_bytes, media.upload_quota_bytes) == (
        2.5, 1000, 1500)
    environ = {"FASTIM_VOICE_MAX_SECONDS": "30", "FASTIM_FILE_MAX_BYTES": "2048",
               "FASTIM_UPLOAD_QUOTA_BYTES": "4096"}
    media = parse([], environ).media
    assert (media.voice_max_seconds, media.file_max_bytes, media.upload_quota_bytes) == (
        30, 2048, 4096)
    for flag in ("--voice-max-seconds", "--file-max-bytes", "--upload-quota-bytes"):
        with pytest.raises(SystemExit, match=f"{flag} must be positive"):
            parse([flag, "0"], {})
    with app_from_flags(tmp_path, "--voice-max-seconds", "2.5", "--file-max-bytes", "1000",
                        "--upload-quota-bytes", "1500") as api:
        token = api.user_with_token()[1]
        assert "at most 2.5 seconds" in error(send_upload(api, token, webm(3.0), "voice"), 413)
        assert "1,000 bytes" in error(send_upload(api, token, b"x" * 1001, "file"), 413)
        assert send_upload(api, token, b"x" * 1000, "file").status == 200
        assert "storage quota" in error(send_upload(api, token, b"y" * 1000, "file"), 413)


def test_trusted_proxy_flag_and_environment_variable(tmp_path: Path) -> None:
    assert parse([], {}).trusted_proxies == ()
    flags = ["--trusted-proxy", "127.0.0.1", "--trusted-proxy", "10.0.0.0/8"]
    assert parse(flags, {}).trusted_proxies == ("127.0.0.1", "10.0.0.0/8")
    environ = {"FASTIM_TRUSTED_PROXIES": "127.0.0.1, ::1,10.0.0.0/8"}
    assert parse([], environ).trusted_proxies == ("127.0.0.1", "::1", "10.0.0.0/8")
    # Like --allowed-origin, flags add to the environment's list.
    assert parse(["--trusted-proxy", "192.0.2.1"], environ).trusted_proxies == (
        "127.0.0.1", "::1", "10.0.0.0/8", "192.0.2.1")
    for argv, env in ((["--trusted-proxy", "localhost"], {}),
                      (["--trusted-proxy", "10.0.0.0/40"], {}),
                      ([], {"FASTIM_TRUSTED_PROXIES": "127.0.0.1,proxy.example"})):
        with pytest.raises(SystemExit, match="--trusted-proxy: not an IP address or network"):
            parse(argv, env)
    done = subprocess.run([sys.executable, "-m", "fastim", "serve", "--trusted-proxy", "x"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=SAFETY_TIMEOUT)
    assert done.returncode != 0 and "--trusted-proxy: not an IP address" in done.stderr


def test_trusted_proxy_flag_reaches_the_login_throttle(tmp_path: Path) -> None:
    with app_from_flags(tmp_path, "--trusted-proxy", "127.0.0.1", "--login-per-address", "1",
                        "--kdf", "pbkdf2_sha256:1000") as api:
        def attempt(mobile: str, client: str) -> int:
            return api.post("/user/login", {"mobile": mobile, "passwd": "wrong password"},
                            headers={"X-Forwarded-For": client}).status

        assert attempt("13900000001", "203.0.113.7") == 401
        assert attempt("13900000002", "203.0.113.7") == 429
        assert attempt("13900000003", "203.0.113.8") == 401  # its own window


def _chat_extensions(port: int, token: str) -> str:
    """The Sec-WebSocket-Extensions the /chat 101 answers to a browser's deflate offer."""
    with socket.create_connection(("127.0.0.1", port), timeout=SAFETY_TIMEOUT) as raw:
        raw.sendall(
            f"GET /chat?token={token} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"
            .encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = raw.recv(4096)
            assert chunk, "the server closed before its 101"
            head += chunk
    lines = head.split(b"\r\n\r\n")[0].decode().split("\r\n")
    assert lines[0].startswith("HTTP/1.1 101")
    return ";".join(line.partition(":")[2] for line in lines
                    if line.lower().startswith("sec-websocket-extensions:"))


def test_chat_compression_flag_chooses_shared_frames(tmp_path: Path) -> None:
    assert parse([], {}).chat_compression == "per-connection"
    assert parse([], {"FASTIM_CHAT_COMPRESSION": "shared"}).chat_compression == "shared"
    with pytest.raises(SystemExit, match="--chat-compression must be one of"):
        parse([], {"FASTIM_CHAT_COMPRESSION": "always"})
    # shared: the server's side drops its context (RFC 7692 §7.1.1.1) so one compressed
    # frame serves every member; per-connection keeps it.
    (tmp_path / "shared").mkdir()
    (tmp_path / "default").mkdir()
    with app_from_flags(tmp_path / "shared", "--chat-compression", "shared") as api:
        shared = _chat_extensions(api.port, api.user_with_token()[1])
    with app_from_flags(tmp_path / "default") as api:
        default = _chat_extensions(api.port, api.user_with_token()[1])
    assert "permessage-deflate" in shared and "server_no_context_takeover" in shared
    assert "permessage-deflate" in default and "server_no_context_takeover" not in default

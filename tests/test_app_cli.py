"""`fastim serve` as a real subprocess on a free port, and its flags/environment."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from http_support import SAFETY_TIMEOUT, Client, request

from fastim.config import Config, add_serve_arguments, config_from_args


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

"""Shared fixtures: the real MariaDB and Redis servers of the project's machines.

On the project's machines and in CI, tests that need a server must fail, not skip, when CI is set and the
server is unreachable; elsewhere they skip with the reason.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import settings

if TYPE_CHECKING:
    from tests.cluster_support import RedisServer


# No property test has a time limit: speed belongs to the benchmark, and Hypothesis's
# default 200 ms deadline failed a trace test on a loaded machine (255 ms). A test's own
# @settings keeps its other choices and inherits this.
settings.register_profile("fastim", deadline=None)
settings.load_profile("fastim")

MYSQL_ADDR = ("127.0.0.1", int(os.environ.get("FASTIM_TEST_MYSQL_PORT", "3306")))
REDIS_ADDR = ("127.0.0.1", int(os.environ.get("FASTIM_TEST_REDIS_PORT", "6379")))


def _reachable(addr: tuple[str, int]) -> bool:
    try:
        with socket.create_connection(addr, timeout=1.0):
            return True
    except OSError:
        return False


def require_service(name: str, addr: tuple[str, int]) -> None:
    """Fail in CI, skip elsewhere, when a service the test needs is not listening."""
    if _reachable(addr):
        return
    reason = f"{name} is not reachable on {addr[0]}:{addr[1]}"
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this is a failure, not a skip)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def mysql_addr() -> tuple[str, int]:
    require_service("MariaDB", MYSQL_ADDR)
    return MYSQL_ADDR


@pytest.fixture(scope="session")
def redis_addr() -> tuple[str, int]:
    require_service("Redis", REDIS_ADDR)
    return REDIS_ADDR


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis server of the test's own, for tests that restart or break it."""
    # Imported here: at the top it would load tests.store_fixtures before pytest can
    # rewrite its asserts (it is a plugin of this conftest).
    from tests.cluster_support import RedisServer

    server = RedisServer(tmp_path / "redis").start()
    try:
        yield server
    finally:
        server.kill()


# The store's fixtures (both database backends) live in their own module.
pytest_plugins = ["tests.store_fixtures"]


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost, made at test time, and its key."""
    openssl = shutil.which("openssl")
    if openssl is None:  # pragma: no cover - openssl is on the project's machines
        pytest.skip("openssl is not installed")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key

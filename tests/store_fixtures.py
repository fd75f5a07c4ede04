"""Fixtures for the store and API tests: every test that asks for ``db_url`` (or ``store``,
``accounts``, ``contacts``) runs twice, on SQLite in a temporary directory and on the real
MariaDB of the machine.

MariaDB: one fresh database per test session, named ``fastim_test_<random>``, created with
utf8mb4 and dropped at the end; between tests its tables are emptied. The ``mysql_addr``
fixture of conftest.py fails in CI and skips elsewhere when the server is unreachable.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pymysql
import pytest

from fastim.accounts import Accounts, Contacts
from fastim.store import Store, User, open_store

T = TypeVar("T")

# Cheap scrypt parameters keep the suite fast on a shared 2-core machine; the default
# parameters are exercised by test_store_passwords.py.
TEST_KDF = "scrypt:1024:8:1"
TABLES_CHILD_FIRST = ("memberships", "communities", "friendships", "tokens", "users")


def run(awaitable: Awaitable[T]) -> T:
    """Run one coroutine to completion on a fresh event loop (the store is loop-agnostic)."""

    async def main() -> T:
        return await awaitable

    return asyncio.run(main())


def gather(*awaitables: Awaitable[Any]) -> list[Any]:
    """Run coroutines concurrently on one loop; exceptions are returned, not raised."""

    async def main() -> list[Any]:
        return await asyncio.gather(*awaitables, return_exceptions=True)

    return asyncio.run(main())


def mysql_connect(addr: tuple[str, int], database: str | None = None) -> Any:
    return pymysql.connect(
        host=addr[0],
        port=addr[1],
        user="root",
        password="",
        database=database,
        charset="utf8mb4",
        autocommit=True,
    )


@pytest.fixture(scope="session")
def mysql_database(mysql_addr: tuple[str, int]) -> Iterator[str]:
    """A fresh, uniquely named MariaDB database for this session; dropped afterwards."""
    name = f"fastim_test_{secrets.token_hex(4)}"
    conn = mysql_connect(mysql_addr)
    try:
        with conn.cursor() as cur:
            cur.execute(
                f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
            )
        yield f"mysql://root:@{mysql_addr[0]}:{mysql_addr[1]}/{name}"
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
            # Databases made by single tests (migration tests) share the prefix.
            cur.execute("SHOW DATABASES LIKE %s", (f"{name}\\_%",))
            for (extra,) in cur.fetchall():
                cur.execute(f"DROP DATABASE IF EXISTS `{extra}`")
        conn.close()


def empty_mysql_tables(url: str) -> None:
    """Delete every row of the app's tables (children first) between tests."""
    host_port, database = url.rsplit("@", 1)[1].split("/", 1)
    host, port = host_port.split(":")
    conn = mysql_connect((host, int(port)), database)
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW TABLES")
            present = {row[0] for row in cur.fetchall()}
            for table in TABLES_CHILD_FIRST:
                if table in present:
                    cur.execute(f"DELETE FROM {table}")
    finally:
        conn.close()


@pytest.fixture(params=["sqlite", "mysql"])
def backend(request: pytest.FixtureRequest) -> str:
    """Which database the test runs on."""
    return str(request.param)


@pytest.fixture
def db_url(backend: str, request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    """A database URL: a new SQLite file, or the session's MariaDB database (emptied after)."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path}/fastim.db"
        return
    url = request.getfixturevalue("mysql_database")
    empty_mysql_tables(url)
    yield url
    empty_mysql_tables(url)


@pytest.fixture
def fresh_db_url(backend: str, request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """A URL naming a database that does not exist yet (open_store creates it)."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path}/fresh/fastim.db"
    base = request.getfixturevalue("mysql_database")
    return f"{base}_{secrets.token_hex(3)}"


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    """An open store on ``db_url``; closed after the test."""
    opened = run(open_store(db_url, pool_size=4))
    try:
        yield opened
    finally:
        run(opened.close())


@pytest.fixture
def accounts(store: Store) -> Iterator[Accounts]:
    """Accounts over the test store, with cheap KDF parameters."""
    service = Accounts(store, kdf=TEST_KDF)
    try:
        yield service
    finally:
        service.close()


@pytest.fixture
def contacts(store: Store) -> Contacts:
    """Friends and groups over the test store."""
    return Contacts(store)


_mobiles = itertools.count(13_800_000_000)


def new_mobile() -> str:
    """A mobile number no other test in this session uses."""
    return str(next(_mobiles))


@pytest.fixture
def make_user(accounts: Accounts) -> Callable[..., User]:
    """Register a user (defaults filled in) and return it."""

    def make(**values: Any) -> User:
        values.setdefault("mobile", new_mobile())
        values.setdefault("passwd", "correct horse")
        values.setdefault("nickname", "user " + values["mobile"][-4:])
        return run(accounts.register(values))

    return make


def table_counts(store: Store) -> dict[str, int]:
    """Rows per table: a snapshot to compare before and after a refused request."""

    def count(tx: Any) -> dict[str, int]:
        return {t: int(tx.value(f"SELECT COUNT(*) FROM {t}")) for t in TABLES_CHILD_FIRST}

    return run(store.read(count))

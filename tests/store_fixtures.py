"""Fixtures for the store and API tests: every test that asks for ``db_url`` (or ``store``,
``accounts``, ``contacts``) runs twice, on SQLite in a temporary directory and on the real
MariaDB of the machine.

MariaDB: one fresh database per test session, named ``fastim_test_<random>``, created with
utf8mb4 and dropped at the end; between tests its tables are emptied. The ``mysql_addr``
fixture of conftest.py fails in CI and skips elsewhere when the server is unreachable.
"""

from __future__ import annotations

import asyncio
import http.client
import itertools
import json
import secrets
import shutil
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

import pymysql
import pytest

from fastim.accounts import Accounts, Contacts
from fastim.app import create_app
from fastim.config import Config
from fastim.http import Limits
from fastim.store import Store, User, open_store

T = TypeVar("T")

# Cheap scrypt parameters keep the suite fast on a shared 2-core machine; the default
# parameters are exercised by test_store_passwords.py.
TEST_KDF = "scrypt:1024:8:1"
TABLES_CHILD_FIRST = ("message_search", "message_files", "read_marks", "message_keys",
                      "messages", "memberships", "group_past", "group_invites", "group_bans", "group_join_requests",
                      "communities", "friend_requests", "blocks", "friendships", "tokens",
                      "uploads", "mutes", "push_subscriptions", "users")


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
    """Delete every row of the app's tables (children first) between tests, in one
    transaction: one commit instead of one per table."""
    host_port, database = url.rsplit("@", 1)[1].split("/", 1)
    host, port = host_port.split(":")
    conn = mysql_connect((host, int(port)), database)
    try:
        conn.begin()
        with conn.cursor() as cur:
            cur.execute("SHOW TABLES")
            present = {row[0] for row in cur.fetchall()}
            if "search_cursor" in present:
                # The ids go on from here (DELETE keeps AUTO_INCREMENT): the next test's
                # indexer starts where they will, not before a gap of deleted rows.
                cur.execute(
                    "UPDATE search_cursor SET upto_message = GREATEST(upto_message,"
                    " (SELECT COALESCE(MAX(id), 0) FROM messages)), upto_change ="
                    " GREATEST(upto_change, (SELECT COALESCE(MAX(id), 0) FROM message_changes))")
            for table in TABLES_CHILD_FIRST:
                if table in present:
                    cur.execute(f"DELETE FROM {table}")
        conn.commit()
    finally:
        conn.close()


@pytest.fixture(params=["sqlite", "mysql"])
def backend(request: pytest.FixtureRequest) -> str:
    """Which database the test runs on."""
    return str(request.param)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database with every migration applied, made once per session: each test
    gets a copy of it, as the MariaDB tests get the session's migrated database. (Running
    the migrations on a new file cost each SQLite test about 16 ms; the first-open path
    keeps its own tests, on ``fresh_db_url``.)"""
    path = tmp_path_factory.mktemp("sqlite-template") / "fastim.db"
    run(run(open_store(f"sqlite:///{path}", pool_size=1)).close())
    # A clean close checkpoints the WAL into the file and removes it: the file is whole.
    assert not path.with_name("fastim.db-wal").exists()
    return path


@pytest.fixture
def db_url(backend: str, request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """A database URL: a new SQLite file (a copy of the migrated template), or the
    session's MariaDB database, emptied before the test (so every test starts on empty
    tables whatever ran before it; nothing after it needs them empty)."""
    if backend == "sqlite":
        shutil.copyfile(request.getfixturevalue("sqlite_template"), tmp_path / "fastim.db")
        return f"sqlite:///{tmp_path}/fastim.db"
    url = str(request.getfixturevalue("mysql_database"))
    empty_mysql_tables(url)
    return url


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


def befriend_over(post: Callable[..., Reply], one_token: str, one_id: int,
                  other_token: str, other_id: int) -> None:
    """Make two users friends the only way the API allows, by consent: one asks
    (``/contact/addfriend``), the other asks back, which accepts the request. ``post`` is
    a server's ``post(path, body, token=...)`` (`ApiServer`, a cluster `Node`...); every
    test helper that befriends goes through here."""
    asked = post("/contact/addfriend", {"dstid": other_id}, token=one_token)
    assert asked.status == 200 and asked.data == {"status": "requested"}, asked.body
    accepted = post("/contact/addfriend", {"dstid": one_id}, token=other_token)
    assert accepted.status == 200 and accepted.data == {"status": "friends"}, accepted.body


def befriend_users(contacts: Contacts, one: User, other: User) -> None:
    """`befriend_over` for the service-level tests: a request, accepted by asking back."""
    assert run(contacts.add_friend(one, {"dstid": other.id})) == "requested"
    assert run(contacts.add_friend(other, {"dstid": one.id})) == "friends"


def table_counts(store: Store) -> dict[str, int]:
    """Rows per table: a snapshot to compare before and after a refused request."""

    def count(tx: Any) -> dict[str, int]:
        return {t: int(tx.value(f"SELECT COUNT(*) FROM {t}")) for t in TABLES_CHILD_FIRST}

    return run(store.read(count))


# --- a real fastim server for the REST tests ---------------------------------------------

SAFETY_TIMEOUT = 10.0  # a safety net only: no test asserts on time


@dataclass
class Reply:
    """One HTTP response as the API tests see it."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def header_all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def data(self) -> Any:
        """The envelope's ``data`` of a success reply (asserting it is one)."""
        body = self.json
        assert body["code"] == 0, body
        return body["data"]

    @property
    def list(self) -> dict[str, Any]:
        """A list reply's ``rows`` and ``total``, which fastIM puts at the top level
        (``{"code": 0, "msg": "", "rows": [...], "total": N}``), asserting that shape."""
        body = self.json
        assert body["code"] == 0 and "data" not in body, body
        assert isinstance(body["rows"], list) and isinstance(body["total"], int), body
        return {"rows": body["rows"], "total": body["total"]}


#: Registrations one address may make on a test server (ApiServer).
TEST_REGISTRATIONS = 100_000


class ApiServer:
    """``create_app`` started on a free port, on its own loop in a background thread."""

    def __init__(self, config: Config) -> None:
        if config.register_per_address == Config.register_per_address:
            # The suite registers its users over loopback, far more than the default
            # allows one address; the registration throttle's own tests set a limit.
            config.register_per_address = TEST_REGISTRATIONS
        self.app = create_app(config)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> ApiServer:
        self.thread.start()
        try:
            self.call(self.app.start())
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.call(self.app.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(SAFETY_TIMEOUT)
            self.loop.close()

    def call(self, coro: Awaitable[T]) -> T:
        """Run a coroutine on the server's loop and wait for it."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(SAFETY_TIMEOUT)  # type: ignore[arg-type]

    @property
    def port(self) -> int:
        assert self.app.server is not None
        return self.app.server.port

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        form: dict[str, str] | None = None,
        body: bytes | None = None,
        token: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        """Send one request over a new TCP connection; return the reply."""
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        if json_body is not None:
            body = json.dumps(json_body).encode()
            sent.setdefault("Content-Type", "application/json")
        elif form is not None:
            body = urlencode(form).encode()
            sent.setdefault("Content-Type", "application/x-www-form-urlencoded")
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=SAFETY_TIMEOUT)
        try:
            conn.request(method, path, body=body, headers=sent)
            response = conn.getresponse()
            return Reply(response.status, response.getheaders(), response.read())
        finally:
            conn.close()

    def post(self, path: str, values: Any = None, **kw: Any) -> Reply:
        """POST a JSON body."""
        return self.request("POST", path, json_body=values if values is not None else {}, **kw)

    def get(self, path: str, **kw: Any) -> Reply:
        return self.request("GET", path, **kw)

    # shortcuts for building state
    def register(self, **values: Any) -> dict[str, Any]:
        values.setdefault("mobile", new_mobile())
        values.setdefault("passwd", "correct horse")
        values.setdefault("nickname", "user " + values["mobile"][-4:])
        reply = self.post("/user/register", values)
        assert reply.status == 201, reply.body
        return {**reply.data, "passwd": values["passwd"]}

    def login(self, user: dict[str, Any], **extra: Any) -> str:
        reply = self.post(
            "/user/login", {"mobile": user["mobile"], "passwd": user["passwd"], **extra}
        )
        assert reply.status == 200, reply.body
        return str(reply.data["token"])

    def user_with_token(self, **values: Any) -> tuple[dict[str, Any], str]:
        user = self.register(**values)
        return user, self.login(user)


def api_config(db_url: str, tmp_path: Any) -> Config:
    return Config(
        host="127.0.0.1", port=0, db=db_url, data_dir=tmp_path / "data",
        resource_dir=tmp_path / "resource", access_log=False,
        limits=Limits(shutdown_timeout=2), kdf=TEST_KDF,
    )


@pytest.fixture
def api(db_url: str, tmp_path: Any) -> Iterator[ApiServer]:
    """A running fastim server on the test database (both backends)."""
    with ApiServer(api_config(db_url, tmp_path)) as server:
        yield server

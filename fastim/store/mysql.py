"""The MySQL/MariaDB backend: pymysql connections in a DBUtils ``PooledDB`` pool.

Every transaction runs on a thread of a ``ThreadPoolExecutor`` with exactly as many threads
as the pool has connections, so a thread never waits for a connection and the event loop
never waits for either. Sessions are set up for correctness:

* ``utf8mb4`` on the connection (and the tables), so 4-byte characters (emoji) survive;
* strict SQL mode, so an over-long value is an error, never silently truncated;
* READ COMMITTED isolation: the rules that need serialising take explicit row locks
  (``SELECT ... FOR UPDATE``), and READ COMMITTED avoids the gap locks that make
  REPEATABLE READ deadlock on concurrent inserts;
* a deadlock or lock-wait timeout (1213, 1205) rolls back and retries the whole transaction
  a few times, as the InnoDB manual advises.

When the server is down, hangs or drops the connection, a transaction fails with
:class:`~fastim.store.errors.Unavailable` (503 on REST, ``store_failed`` on the chat), not
with the driver's error: pooled connections have read and write timeouts, so a server that
stops answering (SIGSTOP, a network partition) costs a bounded wait, and DBUtils' ``ping``
before every transaction replaces a dead connection by a new one, so the store recovers by
itself once the server is back (docs/reliability.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pymysql
from dbutils.pooled_db import PooledDB

from fastim.store.base import Store, apply_migrations
from fastim.store.errors import StoreError, Unavailable
from fastim.store.migrations import Migration
from fastim.store.sql import ER_LOCK_DEADLOCK, ER_LOCK_WAIT_TIMEOUT, MySQLDialect, Tx
from fastim.store.url import MySQLURL

T = TypeVar("T")

ER_BAD_DB_ERROR = 1049
SQL_MODE = (
    "STRICT_ALL_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,ERROR_FOR_DIVISION_BY_ZERO,"
    "NO_ENGINE_SUBSTITUTION"
)
SESSION_SETUP = [
    "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
    "SET SESSION innodb_lock_wait_timeout = 10",
]
RETRIES = 3
MIGRATION_LOCK_TIMEOUT = 60
#: Seconds to connect, and to wait for any one answer of the server, on pooled connections;
#: also the longest a transaction waits for a free worker. READ_TIMEOUT is above the
#: innodb_lock_wait_timeout of SESSION_SETUP, so a lock wait ends with the server's 1205
#: first. Migrations run on a connection without read timeout: DDL may take long.
CONNECT_TIMEOUT = 10
READ_TIMEOUT = 15
#: Driver errors that mean "the server cannot be reached or went away", not "this
#: statement is wrong": 1040 too many connections, 1053 server shutdown in progress,
#: 1927 connection killed (MariaDB, e.g. at shutdown), 2002/2003 cannot connect,
#: 2006 server has gone away, 2013/2055 lost connection (or a read timeout).
UNAVAILABLE_CODES = frozenset({1040, 1053, 1927, 2002, 2003, 2006, 2013, 2055})


def is_unavailable(exc: BaseException) -> bool:
    """Whether a driver error says the server is down or the connection is lost.

    pymysql raises InterfaceError (code 0) for a connection it has already closed after
    an earlier failure."""
    if isinstance(exc, pymysql.err.InterfaceError):
        return True
    if isinstance(exc, pymysql.err.OperationalError):
        return bool(exc.args) and exc.args[0] in UNAVAILABLE_CODES
    return False


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine (``localhost`` or a loopback address)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class MySQLStore(Store):
    """MySQL 8 / MariaDB 10.5+ through pymysql and a bounded DBUtils pool."""

    def __init__(self, url: MySQLURL, pool_size: int = 8) -> None:
        super().__init__(MySQLDialect())
        self.url = url
        self.pool_size = max(1, pool_size)
        self._executor = ThreadPoolExecutor(self.pool_size, thread_name_prefix="fastim-mysql")
        self._opener = self._executor
        self._pool: PooledDB | None = None

    def __repr__(self) -> str:
        return f"MySQLStore({self.url!r})"

    def _connect_args(self, with_database: bool = True) -> dict[str, Any]:
        args: dict[str, Any] = {
            "host": self.url.host,
            "port": self.url.port,
            "user": self.url.user,
            "password": self.url.password,
            "charset": "utf8mb4",
            "collation": "utf8mb4_unicode_ci",
            "sql_mode": SQL_MODE,
            "autocommit": False,
            "connect_timeout": CONNECT_TIMEOUT,
        }
        if with_database:
            args["database"] = self.url.database
        if is_loopback(self.url.host):
            # pymysql (2.2.5+) otherwise tries TLS on every connection ("preferred", with
            # no certificate check) and builds a new SSL context for each, loading the
            # system's CA store: about 60 ms a connection, 0.5 s for a pool. Traffic to a
            # loopback address never leaves the machine, so TLS there protects nothing.
            args["ssl_disabled"] = True
        return args

    # --- transactions --------------------------------------------------------------------

    def _transaction(self, conn: Any, fn: Callable[..., T], args: Sequence[Any]) -> T:
        # Reads and writes run alike here: InnoDB lets them proceed concurrently anyway.
        # begin() on the DBUtils connection, not a START TRANSACTION statement: DBUtils
        # must know a transaction is open, or on an OperationalError (which includes CHECK
        # failures) it silently reconnects and re-runs the statement on a new connection
        # while the old one still holds the row locks.
        # The cursor comes first: DBUtils pings the connection when a cursor is made
        # outside a transaction (ping=2 below) and replaces a dead one there, on this
        # thread, not under the pool's lock at checkout where one slow reconnect to a
        # hung server would hold up every other thread.
        cursor = None
        try:
            cursor = conn.cursor()
            conn.begin()
            result = fn(Tx(cursor, self.dialect), *args)
            conn.commit()
            return result
        except BaseException as exc:
            if is_unavailable(exc):
                # A broken connection cannot roll back, and trying would make DBUtils
                # reconnect on the spot: one more timeout on a hung server. cancel() only
                # tells DBUtils the transaction is over; the ping before its next
                # transaction replaces the connection. (A migration's plain pymysql
                # connection has no cancel(): it is closed after the error anyway.)
                if hasattr(conn, "cancel"):
                    conn.cancel()
            else:
                with contextlib.suppress(pymysql.err.Error):
                    conn.rollback()
            raise
        finally:
            if cursor is not None:
                cursor.close()

    def _run(self, fn: Callable[..., T], args: Sequence[Any], write: bool,
             deadline: float) -> T:
        if time.monotonic() > deadline:
            # Waited for a worker longer than one answer may take: the workers are stuck
            # on a server that does not answer. Fail now rather than add to the wait.
            raise Unavailable("the database server is not answering; try again in a few "
                              "seconds")
        try:
            return self._run_with_retries(fn, args)
        except pymysql.err.Error as exc:
            if is_unavailable(exc):
                raise Unavailable("the database server cannot be reached; try again in a "
                                  "few seconds") from exc
            raise

    def _run_with_retries(self, fn: Callable[..., T], args: Sequence[Any]) -> T:
        assert self._pool is not None
        for attempt in range(RETRIES):
            conn = self._pool.connection()
            try:
                return self._transaction(conn, fn, args)
            except pymysql.err.OperationalError as exc:
                code = exc.args[0] if exc.args else None
                if code not in (ER_LOCK_DEADLOCK, ER_LOCK_WAIT_TIMEOUT) or attempt == RETRIES - 1:
                    raise
                time.sleep(0.01 * (attempt + 1))  # on a worker thread, never the loop
            finally:
                conn.close()  # back to the pool
        raise AssertionError("unreachable")

    async def _submit(self, fn: Callable[..., T], args: Sequence[Any], *, write: bool) -> T:
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + READ_TIMEOUT
        return await loop.run_in_executor(self._executor, self._run, fn, args, write, deadline)

    # --- life cycle ----------------------------------------------------------------------

    def _ensure_database(self) -> None:
        try:
            pymysql.connect(**self._connect_args()).close()
        except pymysql.err.OperationalError as exc:
            if not exc.args or exc.args[0] != ER_BAD_DB_ERROR:
                raise
            # The name was checked against [A-Za-z0-9_$] when the URL was parsed, so it
            # is safe to put in the statement (identifiers cannot be parameters).
            conn = pymysql.connect(**self._connect_args(with_database=False))
            try:
                with conn.cursor() as cursor:
                    cursor.execute(
                        f"CREATE DATABASE IF NOT EXISTS `{self.url.database}`"
                        " CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
                    )
            finally:
                conn.close()

    def _open_sync(self, migrations: Sequence[Migration]) -> list[int]:
        """Create the database if missing, start the pool, apply pending migrations.
        A server that cannot be reached is :class:`Unavailable` (`open_store` may wait
        for it)."""
        try:
            self._ensure_database()
        except pymysql.err.Error as exc:
            if is_unavailable(exc):
                raise Unavailable(f"cannot reach the database server at {self.url.host}:"
                                  f"{self.url.port} ({exc.args[-1] if exc.args else exc})"
                                  ) from exc
            raise
        self._pool = PooledDB(
            pymysql,
            # Every connection is made now: one made later is made under the pool's lock,
            # so on a hung server one slow connect would hold up every other thread.
            mincached=self.pool_size,
            maxcached=self.pool_size,
            maxconnections=self.pool_size,
            blocking=True,
            setsession=SESSION_SETUP,
            # Every transaction ends in a commit or a rollback (_transaction), so the pool
            # need not roll back again when a connection comes back.
            reset=False,
            ping=2,  # when a cursor is made outside a transaction: see _transaction
            read_timeout=READ_TIMEOUT,
            write_timeout=READ_TIMEOUT,
            **self._connect_args(),
        )
        # Migrations get a connection of their own, without read timeout (DDL on a big
        # table may take minutes), set up like the pooled ones.
        conn = pymysql.connect(**self._connect_args())
        try:
            with conn.cursor() as cursor:
                for statement in SESSION_SETUP:
                    cursor.execute(statement)
            # One process migrates at a time: a named server-wide lock (DDL commits
            # implicitly, so a transaction alone cannot serialise migrations on MySQL).
            lock = f"fastim.migrate.{self.url.database}"
            with conn.cursor() as cursor:
                cursor.execute("SELECT GET_LOCK(%s, %s)", (lock, MIGRATION_LOCK_TIMEOUT))
                (got,) = cursor.fetchone()
            conn.commit()
            if got != 1:
                raise StoreError(f"timed out waiting for the migration lock {lock!r}")
            try:
                return apply_migrations(
                    lambda fn: self._transaction(conn, fn, ()), "mysql", migrations
                )
            finally:
                with conn.cursor() as cursor:
                    cursor.execute("SELECT RELEASE_LOCK(%s)", (lock,))
                    cursor.fetchall()
                conn.commit()
        finally:
            conn.close()

    def _shutdown(self) -> None:
        self._executor.shutdown(wait=True)
        if self._pool is not None:
            self._pool.close()

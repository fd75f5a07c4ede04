"""The SQLite backend: a file in the data dir, WAL mode, one writer and a few readers.

Concurrency design. SQLite allows many readers but only ONE writer at a time per database.
Rather than let several connections race for the write lock (and spin on SQLITE_BUSY), the
store funnels every write transaction through a single-thread executor that owns the one
writer connection: writes queue up in order and never contend with each other, and a
write transaction that reads first (count-then-insert, the owner check on leave) is
serialised with every other write for free -- no row locks needed. Read transactions run on
a small pool of reader threads, each with its own connection (``PRAGMA query_only``), and
thanks to WAL they see a consistent snapshot and never block, nor are blocked by, the
writer. ``busy_timeout`` still covers other processes using the same file.

Another process may hold the write lock (``BEGIN EXCLUSIVE`` in a shell, a backup tool): a
write then waits for it at most ``BUSY_TIMEOUT_MS``, counted from when the write was asked
for, not from when its turn on the writer thread came, so writes queued behind a blocked one
do not wait a busy timeout each; then it fails with
:class:`~fastim.store.errors.Unavailable` (503 on REST, ``store_failed`` on the chat). Reads
go on meanwhile: in WAL mode readers never wait for the write lock.

``pool_size`` is the total number of connections (and threads): 1 writer + ``pool_size - 1``
readers (at least one). The pool is fixed: each worker thread opens its connection once and
keeps it, and the executors never start more threads than that.

Memory has a known ceiling. Each connection's page cache is bounded by ``CACHE_KIB``
(``PRAGMA cache_size``, set explicitly rather than left to the build's default), so
SQLite's own memory stays under ``pool_size`` x ``CACHE_KIB`` plus a little per prepared
statement (the driver keeps at most ``CACHED_STATEMENTS`` per connection). The caches fill
as the connections touch pages, which on a growing database takes minutes: bounded growth,
not a leak (docs/reliability.md, "Memory"). No memory-mapped I/O (``mmap_size = 0``): reads
go through the page cache, so its bound is the whole story. On disk, the WAL is
checkpointed every ``wal_autocheckpoint`` pages (SQLite's default, 1,000: about 4 MiB) and
cut back to ``JOURNAL_SIZE_LIMIT`` bytes once a checkpoint lets it restart, so a burst of
writes does not leave a big WAL file behind.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from fastim.store.base import Store, apply_migrations
from fastim.store.errors import StoreError, Unavailable
from fastim.store.migrations import Migration
from fastim.store.sql import SQLiteDialect, Tx

T = TypeVar("T")

BUSY_TIMEOUT_MS = 5000
# SQLITE_BUSY and SQLITE_LOCKED: the primary result codes (the low byte of an extended one)
# of "database is locked" and "database table is locked" (https://sqlite.org/rescode.html).
SQLITE_BUSY = 5
SQLITE_LOCKED = 6
# Each connection's page cache, at most (PRAGMA cache_size with a negative value counts
# KiB: https://sqlite.org/pragma.html#pragma_cache_size). 2,000 KiB is SQLite's own default,
# made explicit so the bound does not depend on how the library was built.
CACHE_KIB = 2000
# Prepared statements the driver keeps per connection (sqlite3.connect's cached_statements).
CACHED_STATEMENTS = 128
# The WAL file is truncated back to this size when a checkpoint lets it restart
# (https://sqlite.org/pragma.html#pragma_journal_size_limit); -1, the default, never does.
JOURNAL_SIZE_LIMIT = 8 * 1024 * 1024
# Settings every connection gets, readers and the writer alike (tests/store/test_store_schema.py
# reads them back from each one).
CONNECTION_PRAGMAS = {
    "busy_timeout": BUSY_TIMEOUT_MS,
    "foreign_keys": 1,
    # FULL: a commit is on disk before the caller hears of it (acks follow durability).
    "synchronous": 2,
    "cache_size": -CACHE_KIB,
    "mmap_size": 0,
    "journal_size_limit": JOURNAL_SIZE_LIMIT,
}


def is_locked(exc: BaseException) -> bool:
    """Whether a driver error says another connection holds a lock we waited for."""
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+
    if code is not None:
        return code & 0xFF in (SQLITE_BUSY, SQLITE_LOCKED)
    return "locked" in str(exc) or "busy" in str(exc)


class SQLiteStore(Store):
    """SQLite through the standard library's ``sqlite3``, off the event loop."""

    def __init__(self, path: str, pool_size: int = 4) -> None:
        super().__init__(SQLiteDialect())
        self.path = path
        self.pool_size = max(2, pool_size)
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="fastim-sqlite-writer")
        self._readers = ThreadPoolExecutor(
            self.pool_size - 1, thread_name_prefix="fastim-sqlite-reader"
        )
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        # The schema is changed by the one writer, like every other write.
        self._opener = self._writer

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r})"

    # --- connections, one per worker thread ----------------------------------------

    def _connection(self, write: bool) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            # isolation_level=None: no implicit BEGINs; transactions are explicit below.
            # check_same_thread=False only so that close() may close it from another
            # thread after the workers have stopped; each is used by one thread.
            conn = sqlite3.connect(
                self.path,
                timeout=BUSY_TIMEOUT_MS / 1000,
                isolation_level=None,
                check_same_thread=False,
                cached_statements=CACHED_STATEMENTS,
            )
            for name, value in CONNECTION_PRAGMAS.items():
                conn.execute(f"PRAGMA {name} = {value}")
            if not write:
                conn.execute("PRAGMA query_only = ON")
            self._local.conn = conn
            with self._connections_lock:
                self._connections.append(conn)
        return conn

    def _run(self, fn: Callable[..., T], args: Sequence[Any], write: bool,
             deadline: float | None = None) -> T:
        try:
            return self._transaction(fn, args, write, deadline)
        except sqlite3.OperationalError as exc:
            if is_locked(exc):
                raise Unavailable("the database is locked by another process; try again "
                                  "in a moment", retry_after=1) from exc
            raise

    def _transaction(self, fn: Callable[..., T], args: Sequence[Any], write: bool,
                     deadline: float | None) -> T:
        conn = self._connection(write)
        cursor = conn.cursor()
        if write:
            # Wait for the lock only what is left of this write's budget: a write that
            # queued behind one blocked by another process has waited already.
            budget = BUSY_TIMEOUT_MS
            if deadline is not None:
                budget = max(0, min(budget, int((deadline - time.monotonic()) * 1000)))
            cursor.execute(f"PRAGMA busy_timeout = {budget}")
        # IMMEDIATE takes the write lock up front, so a transaction that reads before it
        # writes cannot fail half-way on a lock upgrade.
        cursor.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            result = fn(Tx(cursor, self.dialect), *args)
        except BaseException:
            if conn.in_transaction:
                cursor.execute("ROLLBACK")
            raise
        else:
            cursor.execute("COMMIT")
            return result
        finally:
            cursor.close()

    async def _submit(self, fn: Callable[..., T], args: Sequence[Any], *, write: bool) -> T:
        loop = asyncio.get_running_loop()
        if write:
            deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
            return await loop.run_in_executor(self._writer, self._run, fn, args, True, deadline)
        return await loop.run_in_executor(self._readers, self._run, fn, args, False)

    # --- life cycle --------------------------------------------------------------------

    def _open_sync(self, migrations: Sequence[Migration]) -> list[int]:
        """Switch to WAL and apply pending migrations, on the writer."""
        conn = self._connection(write=True)
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError(f"could not switch {self.path} to WAL mode (got {mode})")
        return apply_migrations(lambda fn: self._run(fn, (), True), "sqlite", migrations)

    async def open(self, migrations: Sequence[Migration]) -> None:
        """Create the file if needed, switch to WAL, apply pending migrations."""
        directory = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(directory, exist_ok=True)
        await super().open(migrations)

    def _shutdown(self) -> None:
        self._writer.shutdown(wait=True)
        self._readers.shutdown(wait=True)
        with self._connections_lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()

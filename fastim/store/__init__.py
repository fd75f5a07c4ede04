"""Storage for fastim: one async interface, two backends (SQLite, MySQL/MariaDB).

    from fastim.store import open_store
    store = await open_store("sqlite:///data/fastim.db")          # or mysql://user:pass@host:port/db
    user = await store.get_user(1)
    await store.close()

See :class:`fastim.store.base.Store` for the operations, :mod:`fastim.store.migrations` for
the schema, and ``Store.read`` / ``Store.write`` to run your own SQL in a transaction.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from fastim.store.base import Store
from fastim.store.errors import (
    Duplicate,
    IntegrityViolation,
    Missing,
    Refused,
    SchemaError,
    StoreError,
    Unavailable,
)
from fastim.store.migrations import MIGRATIONS, Migration
from fastim.store.records import (
    Credentials,
    FriendRequest,
    Group,
    Member,
    Page,
    RequestOutcome,
    Session,
    User,
)
from fastim.store.sql import Tx
from fastim.store.url import MySQLURL, SQLiteURL, parse_db_url

__all__ = [
    "MIGRATIONS",
    "Group",
    "Credentials",
    "Duplicate",
    "FriendRequest",
    "IntegrityViolation",
    "Member",
    "Migration",
    "Missing",
    "Page",
    "Refused",
    "RequestOutcome",
    "SchemaError",
    "Session",
    "Store",
    "StoreError",
    "Tx",
    "Unavailable",
    "User",
    "open_store",
    "parse_db_url",
]


log = logging.getLogger(__name__)

#: Seconds between two attempts to reach a database that is not up yet: doubling from
#: the first to the last (`open_store(wait=)`).
WAIT_FIRST_DELAY = 0.5
WAIT_MAX_DELAY = 5.0


async def open_store(
    url: str, pool_size: int = 8, *, migrations: Sequence[Migration] | None = None,
    wait: float = 0.0,
) -> Store:
    """Open the database named by ``url``, bring its schema up to date, and return the store.

    ``pool_size`` bounds both the connections and the worker threads (for SQLite: one
    writer plus ``pool_size - 1`` readers). ``migrations`` replaces the built-in list (tests).
    ``wait``: seconds to keep trying, with a log line each time, while the database
    server cannot be reached (:class:`Unavailable`; e.g. started together with this
    process); any other error, and the last attempt's, is raised.
    """
    deadline = time.monotonic() + wait
    delay = WAIT_FIRST_DELAY
    attempt = 1
    while True:
        try:
            return await _open_store(url, pool_size, migrations)
        except Unavailable as exc:
            left = deadline - time.monotonic()
            if left <= 0:
                raise
            pause = min(delay, left)
            log.warning("the database is not reachable yet (attempt %d: %s); trying again "
                        "in %.1f s, for %.0f s more (--db-wait)", attempt, exc, pause, left)
            await asyncio.sleep(pause)
            delay = min(delay * 2, WAIT_MAX_DELAY)
            attempt += 1


async def _open_store(url: str, pool_size: int,
                      migrations: Sequence[Migration] | None) -> Store:
    parsed = parse_db_url(url)
    steps = MIGRATIONS if migrations is None else migrations
    if isinstance(parsed, SQLiteURL):
        from fastim.store.sqlite import SQLiteStore

        sqlite_store = SQLiteStore(parsed.path, pool_size)
        await sqlite_store.open(steps)
        return sqlite_store
    assert isinstance(parsed, MySQLURL)
    from fastim.store.mysql import MySQLStore

    mysql_store = MySQLStore(parsed, pool_size)
    await mysql_store.open(steps)
    return mysql_store

"""Storage for fastim: one async interface, two backends (SQLite, MySQL/MariaDB).

    from fastim.store import open_store
    store = await open_store("sqlite:///data/fastim.db")          # or mysql://user:pass@host:port/db
    user = await store.get_user(1)
    await store.close()

See :class:`fastim.store.base.Store` for the operations, :mod:`fastim.store.migrations` for
the schema, and ``Store.read`` / ``Store.write`` to run your own SQL in a transaction.
"""

from __future__ import annotations

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


async def open_store(
    url: str, pool_size: int = 8, *, migrations: Sequence[Migration] | None = None
) -> Store:
    """Open the database named by ``url``, bring its schema up to date, and return the store.

    ``pool_size`` bounds both the connections and the worker threads (for SQLite: one
    writer plus ``pool_size - 1`` readers). ``migrations`` replaces the built-in list (tests).
    """
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

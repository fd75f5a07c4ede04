"""What differs between SQLite and MySQL at the statement level, and the transaction handle.

All SQL in the store is written once with ``?`` placeholders (SQLite's qmark style); the
MySQL dialect rewrites them to pymysql's ``%s`` (doubling any literal ``%`` first, because
pymysql applies ``%``-formatting to the whole statement).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from fastim.store.errors import IntegrityViolation

Params = Sequence[Any]


class Dialect:
    """Per-backend SQL details. Subclasses: :class:`SQLiteDialect`, :class:`MySQLDialect`."""

    name: str = ""
    #: appended to SELECTs that must lock the rows they read until commit
    for_update: str = ""

    def translate(self, sql: str) -> str:
        """Rewrite a ``?``-placeholder statement for this driver."""
        return sql

    def classify(self, exc: BaseException) -> IntegrityViolation | None:
        """Return the classified integrity violation if ``exc`` is one, else None."""
        raise NotImplementedError

    def upsert(self, table: str, columns: Sequence[str], key: Sequence[str]) -> str:
        """INSERT that replaces the non-key columns when a row with the same ``key`` exists."""
        raise NotImplementedError


class SQLiteDialect(Dialect):
    """SQLite 3.24+ (upsert syntax); one writer at a time, so no row locks are needed."""

    name = "sqlite"

    def classify(self, exc: BaseException) -> IntegrityViolation | None:
        import sqlite3

        if not isinstance(exc, sqlite3.IntegrityError):
            return None
        text = str(exc)
        if text.startswith(("UNIQUE constraint failed", "PRIMARY KEY constraint failed")):
            kind = "unique"
        elif text.startswith("FOREIGN KEY constraint failed"):
            kind = "foreign_key"
        elif text.startswith("CHECK constraint failed"):
            kind = "check"
        else:
            kind = "other"
        return IntegrityViolation(kind, text)

    def upsert(self, table: str, columns: Sequence[str], key: Sequence[str]) -> str:
        marks = ", ".join("?" for _ in columns)
        updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in key)
        return (
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}) "
            f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}"
        )


# MySQL/MariaDB error numbers (server error reference).
ER_DUP_ENTRY = 1062
ER_DUP_UNIQUE = 1169
ER_ROW_IS_REFERENCED_2 = 1451
ER_NO_REFERENCED_ROW_2 = 1452
ER_CONSTRAINT_FAILED = 4025  # MariaDB CHECK
ER_CHECK_CONSTRAINT_VIOLATED = 3819  # MySQL 8 CHECK
ER_LOCK_WAIT_TIMEOUT = 1205
ER_LOCK_DEADLOCK = 1213


class MySQLDialect(Dialect):
    """MySQL 8 / MariaDB 10.5+ with InnoDB."""

    name = "mysql"
    for_update = " FOR UPDATE"

    def translate(self, sql: str) -> str:
        return _to_format_style(sql)

    def classify(self, exc: BaseException) -> IntegrityViolation | None:
        import pymysql

        if not isinstance(exc, pymysql.err.IntegrityError | pymysql.err.OperationalError):
            return None
        code = exc.args[0] if exc.args else None
        detail = str(exc.args[1]) if len(exc.args) > 1 else str(exc)
        if code in (ER_DUP_ENTRY, ER_DUP_UNIQUE):
            return IntegrityViolation("unique", detail)
        if code in (ER_NO_REFERENCED_ROW_2, ER_ROW_IS_REFERENCED_2):
            return IntegrityViolation("foreign_key", detail)
        if code in (ER_CONSTRAINT_FAILED, ER_CHECK_CONSTRAINT_VIOLATED):
            return IntegrityViolation("check", detail)
        if isinstance(exc, pymysql.err.IntegrityError):
            return IntegrityViolation("other", detail)
        return None

    def upsert(self, table: str, columns: Sequence[str], key: Sequence[str]) -> str:
        marks = ", ".join("?" for _ in columns)
        # VALUES(col) is deprecated in MySQL 8.0.20 but is the spelling both MySQL and
        # MariaDB accept; MariaDB has no row alias syntax.
        updates = ", ".join(f"{c} = VALUES({c})" for c in columns if c not in key)
        return (
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}) "
            f"ON DUPLICATE KEY UPDATE {updates}"
        )


@functools.lru_cache(maxsize=512)
def _to_format_style(sql: str) -> str:
    return sql.replace("%", "%%").replace("?", "%s")


class Tx:
    """A transaction in progress on one connection. Runs only on the store's worker threads.

    Integrity errors of the driver come out as :class:`IntegrityViolation`, the same on both
    backends, so store code can say ``except IntegrityViolation as v: if v.kind == "unique"``.
    """

    def __init__(self, cursor: Any, dialect: Dialect) -> None:
        self._cursor = cursor
        self.dialect = dialect

    def _run(self, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except Exception as exc:
            violation = self.dialect.classify(exc)
            if violation is not None:
                raise violation from exc
            raise

    def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; return the number of rows it changed."""
        stmt = self.dialect.translate(sql)
        self._run(lambda: self._cursor.execute(stmt, tuple(params)))
        return int(self._cursor.rowcount)

    def executemany(self, sql: str, rows: Iterable[Params]) -> int:
        """Run one statement for each parameter row (batched inserts); return rows changed."""
        stmt = self.dialect.translate(sql)
        batch = [tuple(r) for r in rows]
        if not batch:
            return 0
        self._run(lambda: self._cursor.executemany(stmt, batch))
        return int(self._cursor.rowcount)

    def insert(self, sql: str, params: Params = ()) -> int:
        """Run an INSERT; return the id the database gave the new row."""
        self.execute(sql, params)
        return int(self._cursor.lastrowid)

    def rows(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
        """Run a query; return all its rows."""
        stmt = self.dialect.translate(sql)
        self._run(lambda: self._cursor.execute(stmt, tuple(params)))
        return [tuple(r) for r in self._cursor.fetchall()]

    def row(self, sql: str, params: Params = ()) -> tuple[Any, ...] | None:
        """Run a query; return its first row or None."""
        found = self.rows(sql, params)
        return found[0] if found else None

    def value(self, sql: str, params: Params = ()) -> Any:
        """Run a query; return the first column of its first row (None when no row)."""
        found = self.row(sql, params)
        return None if found is None else found[0]

"""What differs between SQLite and MySQL at the statement level, and the transaction handle.

All SQL in the store is written once with ``?`` placeholders (SQLite's qmark style); the
MySQL dialect rewrites them to pymysql's ``%s`` (doubling any literal ``%`` first, because
pymysql applies ``%``-formatting to the whole statement).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from fastim.store.errors import IntegrityViolation

Params = Sequence[Any]


class Dialect:
    """Per-backend SQL details. Subclasses: :class:`SQLiteDialect`, :class:`MySQLDialect`."""

    name: str = ""
    #: appended to SELECTs that must lock the rows they read until commit
    for_update: str = ""
    #: the query of the id the connection's last INSERT gave (see :meth:`Tx.inserted_ids`)
    last_insert_id: str = ""

    def translate(self, sql: str) -> str:
        """Rewrite a ``?``-placeholder statement for this driver."""
        return sql

    def classify(self, exc: BaseException) -> IntegrityViolation | None:
        """Return the classified integrity violation if ``exc`` is one, else None."""
        raise NotImplementedError

    def upsert(self, table: str, columns: Sequence[str], key: Sequence[str],
               greatest: Sequence[str] = ()) -> str:
        """INSERT that replaces the non-key columns when a row with the same ``key`` exists;
        a column named in ``greatest`` only moves up (it keeps the greater of both values)."""
        raise NotImplementedError

    def insert_ignore(self, table: str, columns: Sequence[str]) -> str:
        """INSERT of one row that does nothing when it would break a unique key."""
        raise NotImplementedError

    def first_of_run(self, last_insert_id: int, rows: int) -> int:
        """The id of the first row of a multi-row INSERT of ``rows`` rows with consecutive
        ids (:meth:`consecutive_ids`), from the connection's last insert id."""
        raise NotImplementedError

    def consecutive_ids(self, tx: Tx) -> bool:
        """Whether the rows of one multi-row INSERT get consecutive ids on this database."""
        raise NotImplementedError

    def server_variable(self, tx: Tx, name: str) -> Any:
        """A server system variable's value; None where there are none (SQLite)."""
        return None


class SQLiteDialect(Dialect):
    """SQLite 3.24+ (upsert syntax); one writer at a time, so no row locks are needed."""

    name = "sqlite"
    last_insert_id = "SELECT last_insert_rowid()"

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

    def upsert(self, table: str, columns: Sequence[str], key: Sequence[str],
               greatest: Sequence[str] = ()) -> str:
        marks = ", ".join("?" for _ in columns)
        updates = ", ".join(
            f"{c} = MAX({c}, excluded.{c})" if c in greatest else f"{c} = excluded.{c}"
            for c in columns if c not in key
        )
        return (
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}) "
            f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}"
        )

    def insert_ignore(self, table: str, columns: Sequence[str]) -> str:
        marks = ", ".join("?" for _ in columns)
        return f"INSERT OR IGNORE INTO {table} ({', '.join(columns)}) VALUES ({marks})"

    def first_of_run(self, last_insert_id: int, rows: int) -> int:
        # last_insert_rowid() is the id of the run's last row.
        return last_insert_id - rows + 1

    def consecutive_ids(self, tx: Tx) -> bool:
        # One writer at a time: nothing can take an id in the middle of a statement's run.
        return True


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
    last_insert_id = "SELECT LAST_INSERT_ID()"

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

    def upsert(self, table: str, columns: Sequence[str], key: Sequence[str],
               greatest: Sequence[str] = ()) -> str:
        marks = ", ".join("?" for _ in columns)
        # VALUES(col) is deprecated in MySQL 8.0.20 but is the spelling both MySQL and
        # MariaDB accept; MariaDB has no row alias syntax.
        updates = ", ".join(
            f"{c} = GREATEST({c}, VALUES({c}))" if c in greatest else f"{c} = VALUES({c})"
            for c in columns if c not in key
        )
        return (
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}) "
            f"ON DUPLICATE KEY UPDATE {updates}"
        )

    def insert_ignore(self, table: str, columns: Sequence[str]) -> str:
        marks = ", ".join("?" for _ in columns)
        return f"INSERT IGNORE INTO {table} ({', '.join(columns)}) VALUES ({marks})"

    def first_of_run(self, last_insert_id: int, rows: int) -> int:
        # LAST_INSERT_ID() is the id of a multi-row INSERT's first row.
        return last_insert_id

    def consecutive_ids(self, tx: Tx) -> bool:
        # InnoDB gives one multi-row INSERT consecutive ids in lock modes 0 and 1;
        # mode 2 (MySQL 8's default) may interleave concurrent statements.
        return int(self.server_variable(tx, "innodb_autoinc_lock_mode")) in (0, 1)

    def server_variable(self, tx: Tx, name: str) -> Any:
        # A name cannot be a parameter; only plain variable names go into the statement.
        if not _VARIABLE_NAME.fullmatch(name):
            raise ValueError(f"not a server variable name: {name!r}")
        return tx.value(f"SELECT @@{name}")


_VARIABLE_NAME = re.compile(r"[a-z][a-z0-9_]*")


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

    def inserted_ids(self, rows: int) -> range:
        """The ids of the ``rows`` rows the last multi-row INSERT stored, when the database
        gives them consecutive ids (:meth:`Dialect.consecutive_ids`)."""
        first = self.dialect.first_of_run(int(self.value(self.dialect.last_insert_id)), rows)
        return range(first, first + rows)

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

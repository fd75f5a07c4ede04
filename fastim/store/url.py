"""Parse the ``--db`` / ``FASTIM_DB`` URL into the settings of one backend.

Two forms, as in SQLAlchemy's convention:

* ``sqlite:///relative/path.db`` and ``sqlite:////absolute/path.db`` (the path is everything
  after ``sqlite:///``);
* ``mysql://user:password@host:port/database`` (user and password percent-decoded, port 3306
  when omitted). ``mariadb://`` is accepted as a synonym.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from fastim.store.errors import StoreError

# Database names we are willing to put into CREATE DATABASE: identifier characters only, so a
# URL can never smuggle SQL into the one statement that cannot take it as a parameter.
_DATABASE_NAME = re.compile(r"^[A-Za-z0-9_$]{1,64}$")


@dataclass(frozen=True)
class SQLiteURL:
    """A SQLite database file."""

    path: str


@dataclass(frozen=True)
class MySQLURL:
    """A MySQL/MariaDB server and database."""

    host: str
    port: int
    user: str
    password: str
    database: str

    def __repr__(self) -> str:  # never print the password
        return f"MySQLURL({self.user}@{self.host}:{self.port}/{self.database})"


def parse_db_url(url: str) -> SQLiteURL | MySQLURL:
    """Parse a database URL; raise :class:`StoreError` with a readable reason when it is bad."""
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///") :]
        if not path or path == ":memory:":
            # Several connections share the database, so it has to be a file.
            raise StoreError(f"sqlite URL needs a file path, got {url!r}")
        return SQLiteURL(path=unquote(path))
    if url.startswith("sqlite:"):
        raise StoreError("sqlite URL must look like sqlite:///path/to/file.db")
    parts = urlsplit(url)
    if parts.scheme not in ("mysql", "mariadb"):
        raise StoreError(f"unsupported database URL scheme {parts.scheme!r} (sqlite or mysql)")
    database = parts.path.lstrip("/")
    if not _DATABASE_NAME.match(database):
        raise StoreError("mysql URL must name a database: mysql://user:pass@host:port/db")
    if parts.query or parts.fragment:
        raise StoreError("mysql URL takes no query string or fragment")
    try:
        port = parts.port or 3306
    except ValueError as exc:
        raise StoreError(f"bad port in database URL: {exc}") from None
    return MySQLURL(
        host=parts.hostname or "127.0.0.1",
        port=port,
        user=unquote(parts.username or "root"),
        password=unquote(parts.password or ""),
        database=database,
    )

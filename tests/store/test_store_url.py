"""Parsing of the --db / FASTIM_DB URL."""

from __future__ import annotations

import pytest

from fastim.store import StoreError, parse_db_url
from fastim.store.url import MySQLURL, SQLiteURL


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///data/fastim.db", "data/fastim.db"),
        ("sqlite:////var/lib/fastim/fastim.db", "/var/lib/fastim/fastim.db"),
        ("sqlite:///my%20data/x.db", "my data/x.db"),
    ],
)
def test_sqlite_urls(url: str, path: str) -> None:
    assert parse_db_url(url) == SQLiteURL(path)


def test_mysql_url_with_everything() -> None:
    parsed = parse_db_url("mysql://fast:p%40ss%3Aword@db.local:3307/fastim")
    assert parsed == MySQLURL("db.local", 3307, "fast", "p@ss:word", "fastim")


def test_mysql_url_defaults_and_mariadb_scheme() -> None:
    assert parse_db_url("mariadb://root@127.0.0.1/test") == MySQLURL(
        "127.0.0.1", 3306, "root", "", "test"
    )


def test_mysql_url_repr_hides_the_password() -> None:
    assert "secret" not in repr(parse_db_url("mysql://u:secret@h:1/d"))


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///",
        "sqlite:///:memory:",
        "sqlite://relative.db",
        "postgres://u@h/d",
        "mysql://u@h:3306/",
        "mysql://u@h:3306/bad-name",
        "mysql://u@h:3306/db`; DROP DATABASE x",
        "mysql://u@h:99999/db",
        "mysql://u@h:3306/db?charset=latin1",
        "",
    ],
)
def test_bad_urls_are_refused_with_a_reason(url: str) -> None:
    with pytest.raises(StoreError) as exc:
        parse_db_url(url)
    assert str(exc.value)


@pytest.mark.parametrize("host, loopback", [
    ("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("localhost", True),
    ("10.0.0.5", False), ("db.example.org", False), ("::ffff:10.0.0.5", False),
])
def test_tls_is_left_to_the_driver_except_on_loopback(host: str, loopback: bool) -> None:
    """pymysql builds an SSL context per connection to try TLS; on loopback that costs
    the pool half a second and protects nothing, elsewhere it is kept."""
    from fastim.store.mysql import MySQLStore

    url = parse_db_url(f"mysql://root@{host if ':' not in host else f'[{host}]'}:3306/x")
    args = MySQLStore(url)._connect_args()  # type: ignore[arg-type]  # a MySQLURL
    assert args.get("ssl_disabled", False) is loopback

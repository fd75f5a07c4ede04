"""Syncs never pass a message or a change that is still being committed (MariaDB).

InnoDB gives an AUTO_INCREMENT id at INSERT and makes the row visible at COMMIT, so two
transactions can commit their ids out of order. Here the first transaction inserts (the
lower id) and stays open while the second inserts and commits; a sync that runs between
the two commits must not move the device's cursor past the lower id: it waits for it
(docs/store.md, "Reading in id order"). SQLite has one writer, so its ids commit in
order and it has no such test.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pymysql
import pytest

from fastim.accounts import Accounts
from fastim.chat.hub import conversation
from fastim.chat.protocol import Cmd
from fastim.store import Store, open_store
from fastim.store import changes as lifecycle
from fastim.store import messages as stored
from fastim.store.url import MySQLURL, parse_db_url
from tests.store_fixtures import TEST_KDF, empty_mysql_tables, new_mobile, run

#: Seconds to wait for the sync to be seen waiting on the open transaction's row lock.
SAFETY = 10.0
#: A user with no message: a sync of theirs reads no row the test holds open.
NOBODY = 10**9


@pytest.fixture
def mysql_store(mysql_database: str) -> Iterator[Store]:
    empty_mysql_tables(mysql_database)
    store = run(open_store(mysql_database, pool_size=4))
    try:
        yield store
    finally:
        run(store.close())
        empty_mysql_tables(mysql_database)


def parse_url(url: str) -> MySQLURL:
    parsed = parse_db_url(url)
    assert isinstance(parsed, MySQLURL)
    return parsed


def connect(url: str) -> Any:
    """A plain connection with the store's isolation level, a transaction left open."""
    parsed = parse_url(url)
    conn = pymysql.connect(host=parsed.host, port=parsed.port, user=parsed.user,
                           password=parsed.password, database=parsed.database,
                           charset="utf8mb4", autocommit=False)
    with conn.cursor() as cur:
        cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
    return conn


def insert_message(conn: Any, sender: int, dstid: int, text: str) -> int:
    with conn.cursor() as cur:
        cur.execute("INSERT INTO messages (conv, sender, cid, cmd, dstid, media, content, pic, "
                    "url, memo, amount, created) VALUES (%s, %s, NULL, 10, %s, 1, %s, '', '', "
                    "'', 0, 1000)", (conversation(Cmd.SINGLE, sender, dstid), sender, dstid,
                                     text))
        return int(cur.lastrowid)


def insert_change(conn: Any, message_id: int, sender: int, dstid: int) -> int:
    with conn.cursor() as cur:
        cur.execute("INSERT INTO message_changes (message_id, cmd, sender, dstid, kind, actor, "
                    "created) VALUES (%s, 10, %s, %s, %s, %s, 1000)",
                    (message_id, sender, dstid, lifecycle.EDIT, sender))
        return int(cur.lastrowid)


def waiting_for_a_lock(url: str, count: int) -> bool:
    """Whether `count` transactions of this test's database wait for a row lock."""
    conn = connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM information_schema.innodb_trx t "
                        "JOIN information_schema.processlist p ON p.id = t.trx_mysql_thread_id "
                        "WHERE t.trx_state = 'LOCK WAIT' AND p.db = %s",
                        (parse_url(url).database,))
            return int(cur.fetchone()[0]) >= count
    finally:
        conn.close()


def commit_late(url: str, first: Any, reads: list[Future[Any]]) -> bool:
    """Commit `first` once every read waits for it, or as soon as one has returned
    (it did not wait); whether they all waited."""
    deadline = time.monotonic() + SAFETY
    waited = False
    while time.monotonic() < deadline and not any(r.done() for r in reads):
        if waiting_for_a_lock(url, len(reads)):
            waited = True
            break
        time.sleep(0.01)
    first.commit()
    return waited


@pytest.fixture
def two_users(mysql_store: Store) -> Iterator[tuple[int, int]]:
    accounts = Accounts(mysql_store, kdf=TEST_KDF, kdf_threads=1)
    try:
        yield tuple(run(accounts.register({"mobile": new_mobile(), "passwd": "correct horse",
                                           "nickname": name})).id
                    for name in ("ann", "bo"))  # type: ignore[misc]
    finally:
        accounts.close()


def in_thread(pool: ThreadPoolExecutor, fn: Callable[..., Any], *args: Any) -> Future[Any]:
    return pool.submit(run, fn(*args))


@pytest.fixture
def out_of_order(mysql_database: str,
                 two_users: tuple[int, int]) -> Iterator[tuple[Any, int, int]]:
    """Two messages from ann to bo whose ids commit out of order: (the open transaction
    of the lower one, its id, the higher one's id, already committed)."""
    ann, bo = two_users
    first, second = connect(mysql_database), connect(mysql_database)
    try:
        lower = insert_message(first, ann, bo, "sent first, committed last")
        higher = insert_message(second, ann, bo, "sent second, committed first")
        second.commit()
        assert lower < higher
        yield first, lower, higher
    finally:
        first.close()
        second.close()


def test_a_sync_waits_for_a_lower_message_id_that_commits_late(
        mysql_database: str, mysql_store: Store, two_users: tuple[int, int],
        out_of_order: tuple[Any, int, int]) -> None:
    _, bo = two_users
    first, lower, higher = out_of_order
    with ThreadPoolExecutor(1) as pool:
        sync = in_thread(pool, mysql_store.read, stored.messages_since, bo, [], 0, 10)
        waited = commit_late(mysql_database, first, [sync])
        rows = sync.result(SAFETY)
    # Before the fix the sync returned [higher] alone: the device's cursor moved to
    # `higher` and `lower` was never synced to it.
    assert [row["id"] for row in rows] == [lower, higher]
    assert waited


def test_a_device_with_nothing_starts_at_a_head_below_which_all_is_committed(
        mysql_database: str, mysql_store: Store,
        out_of_order: tuple[Any, int, int]) -> None:
    """A sync from nothing answers `head`, the device's first cursor (docs/chat-
    protocol.md "The sync cursor"): not before a lower id still being committed is in."""
    first, _, higher = out_of_order
    with ThreadPoolExecutor(1) as pool:
        head = in_thread(pool, mysql_store.read, stored.newest_committed, "messages")
        waited = commit_late(mysql_database, first, [head])
        assert head.result(SAFETY) == higher
    assert waited
    page = run(mysql_store.read(stored.sync_page, NOBODY, [], 0, 1, frozenset(), None))
    assert (page.rows, page.next, page.more, page.head) == ([], 0, False, higher)


def test_a_change_sync_waits_for_a_lower_change_id_that_commits_late(
        mysql_database: str, mysql_store: Store, two_users: tuple[int, int]) -> None:
    ann, bo = two_users
    setup = connect(mysql_database)
    message = insert_message(setup, ann, bo, "edited twice")
    setup.commit()
    setup.close()
    first, second = connect(mysql_database), connect(mysql_database)
    try:
        lower = insert_change(first, message, ann, bo)
        higher = insert_change(second, message, ann, bo)
        second.commit()
        with ThreadPoolExecutor(2) as pool:
            sync = in_thread(pool, mysql_store.read, lifecycle.changes_since, bo, [], 0, 10,
                             None)
            # A device with nothing yet starts the log at the newest change: not before
            # the lower one is committed either.
            start = in_thread(pool, mysql_store.read, lifecycle.latest_change)
            waited = commit_late(mysql_database, first, [sync, start])
            changes = sync.result(SAFETY)
            assert start.result(SAFETY) == higher
        assert [change["change"] for change in changes] == [lower, higher]
        assert waited
        # And once both are committed the change log reads the same without waiting.
        again = run(mysql_store.read(lifecycle.changes_since, bo, [], lower, 10, None))
        assert [change["change"] for change in again] == [higher]
    finally:
        first.close()
        second.close()

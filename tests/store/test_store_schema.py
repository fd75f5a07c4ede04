"""The versioned schema: created at start-up, re-opened without re-running, extended by
appending migrations; the MySQL tables are utf8mb4; SQLite runs in WAL with foreign keys."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from fastim.store import (
    MIGRATIONS,
    Migration,
    SchemaError,
    Store,
    StoreError,
    Tx,
    groups,
    open_store,
)
from fastim.store.migrations import FRIENDS_BY_CONSENT, HOT_PATH_INDEXES, SAFE_GROUPS
from tests.store_fixtures import gather, run, table_counts

EXTRA = Migration(
    version=1000,
    name="test: notes table",
    sqlite=["CREATE TABLE test_notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)"],
    mysql=[
        "CREATE TABLE IF NOT EXISTS test_notes (id BIGINT PRIMARY KEY, body TEXT NOT NULL)"
        " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
    ],
)
BROKEN = Migration(
    version=1001,
    name="test: fails half-way",
    sqlite=[
        "CREATE TABLE test_half (id INTEGER PRIMARY KEY)",
        "THIS IS NOT SQL",
    ],
    mysql=[
        "CREATE TABLE IF NOT EXISTS test_half (id BIGINT PRIMARY KEY) ENGINE=InnoDB",
        "THIS IS NOT SQL",
    ],
)


def _versions_and_times(store: Store) -> list[tuple[int, int]]:
    return run(
        store.read(
            lambda tx: [
                (int(v), int(t))
                for v, t in tx.rows("SELECT version, applied FROM schema_version ORDER BY version")
            ]
        )
    )


def _drop_test_tables(store: Store) -> None:
    def drop(tx: Tx) -> None:
        for table in ("test_notes", "test_half"):
            tx.execute(f"DROP TABLE IF EXISTS {table}")
        tx.execute("DELETE FROM schema_version WHERE version >= 1000")

    run(store.write(drop))


def test_first_open_creates_the_schema(fresh_db_url: str) -> None:
    store = run(open_store(fresh_db_url))
    try:
        assert store.applied_migrations == [m.version for m in MIGRATIONS]
        assert run(store.schema_versions()) == [m.version for m in MIGRATIONS]
        # The newest migrations: the language of push subscriptions (issue 20), MariaDB's
        # search index knowing the 1:1 chats' users (issue 20), phone numbers in their
        # canonical form (issue 24), mutes and push subscriptions, and message search.
        names = {m.version: m.name for m in MIGRATIONS}
        assert names[14] == "the language of each push subscription"
        assert names[13] == "message search on MariaDB: the index knows each 1:1 chat's two users"
        assert names[12] == "phone numbers in their canonical form"
        assert names[11] == "mutes and push subscriptions"
        assert names[10].startswith("message search")
        assert [m.version for m in MIGRATIONS] == sorted(m.version for m in MIGRATIONS)
        assert table_counts(store) == {
            "message_files": 0,
            "message_search": 0,
            "read_marks": 0,
            "message_keys": 0,
            "messages": 0,
            "memberships": 0,
            "group_past": 0,
            "group_invites": 0,
            "group_bans": 0,
            "group_join_requests": 0,
            "communities": 0,
            "friend_requests": 0,
            "blocks": 0,
            "friendships": 0,
            "tokens": 0,
            "uploads": 0,
            "mutes": 0,
            "push_subscriptions": 0,
            "users": 0,
        }
    finally:
        run(store.close())


def test_reopen_keeps_data_and_runs_no_migration(db_url: str) -> None:
    store = run(open_store(db_url))
    user = run(
        store.create_user(
            mobile="13900000001",
            passwd="00",
            salt="11",
            kdf="scrypt:1024:8:1",
            nickname="漢字 😀",
        )
    )
    before = _versions_and_times(store)
    run(store.close())

    again = run(open_store(db_url))
    try:
        assert again.applied_migrations == []
        assert _versions_and_times(again) == before
        assert run(again.get_user(user.id)) == user
    finally:
        run(again.close())


def test_an_appended_migration_is_applied_alone_and_once(db_url: str) -> None:
    store = run(open_store(db_url))
    run(store.close())
    extended = [*MIGRATIONS, EXTRA]
    store = run(open_store(db_url, migrations=extended))
    try:
        assert store.applied_migrations == [EXTRA.version]
        run(
            store.write(
                lambda tx: tx.execute(
                    "INSERT INTO test_notes (id, body) VALUES (?, ?)", (1, "kept")
                )
            )
        )
        run(store.close())
        store = run(open_store(db_url, migrations=extended))
        assert store.applied_migrations == []
        assert run(store.read(lambda tx: tx.value("SELECT body FROM test_notes"))) == "kept"
    finally:
        _drop_test_tables(store)
        run(store.close())


def test_a_failing_migration_is_not_recorded_and_stops_start_up(db_url: str, backend: str) -> None:
    with pytest.raises(Exception, match="(?i)syntax"):
        run(open_store(db_url, migrations=[*MIGRATIONS, BROKEN]))
    store = run(open_store(db_url))
    try:
        assert BROKEN.version not in run(store.schema_versions())
        if backend == "sqlite":
            # SQLite DDL is transactional: the first statement was rolled back too.
            tables = run(
                store.read(
                    lambda tx: tx.rows("SELECT name FROM sqlite_master WHERE name = 'test_half'")
                )
            )
            assert tables == []
    finally:
        _drop_test_tables(store)
        run(store.close())


def test_a_database_from_a_newer_fastim_is_refused(db_url: str) -> None:
    store = run(open_store(db_url, migrations=[*MIGRATIONS, EXTRA]))
    run(store.close())
    try:
        with pytest.raises(SchemaError, match="newer"):
            run(open_store(db_url))
    finally:
        store = run(open_store(db_url, migrations=[*MIGRATIONS, EXTRA]))
        _drop_test_tables(store)
        run(store.close())


def test_migrations_must_be_in_order(db_url: str) -> None:
    with pytest.raises(SchemaError):
        run(open_store(db_url, migrations=[EXTRA, *MIGRATIONS]))


def test_a_closed_store_refuses_work(store: Store) -> None:
    run(store.close())
    assert store.closed
    with pytest.raises(StoreError, match="closed"):
        run(store.get_user(1))
    run(store.close())  # idempotent


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path: Any) -> None:
    store = run(open_store(f"sqlite:///{tmp_path}/w.db", pool_size=3))
    try:
        assert run(store.read(lambda tx: tx.value("PRAGMA journal_mode"))) == "wal"
        assert run(store.read(lambda tx: tx.value("PRAGMA foreign_keys"))) == 1
        assert run(store.write(lambda tx: tx.value("PRAGMA foreign_keys"))) == 1
        assert run(store.read(lambda tx: tx.value("PRAGMA busy_timeout"))) >= 1000
        # Readers are read-only: a write submitted as a read fails instead of racing the writer.
        with pytest.raises(Exception, match="readonly|read-only|query_only"):
            run(store.read(lambda tx: tx.execute("DELETE FROM users")))
    finally:
        run(store.close())


def test_every_sqlite_connection_has_the_memory_bounds(tmp_path: Any) -> None:
    """The page cache bound (and the rest of CONNECTION_PRAGMAS) is set on the writer and
    on every reader, and the readers are a fixed pool: more concurrent reads than readers
    open no more connections (docs/store.md, memory bounds)."""
    from fastim.store import sqlite as backend

    pool_size = 4
    store = run(open_store(f"sqlite:///{tmp_path}/m.db", pool_size=pool_size))
    readers = pool_size - 1
    # Each read waits until all readers hold one, so every reader thread (and connection)
    # must exist; the timeout turns a missing reader into a failure rather than a hang.
    all_readers = threading.Barrier(readers, timeout=30)
    names = [name for name in backend.CONNECTION_PRAGMAS if name != "busy_timeout"]

    def settings(tx: Tx, wait: bool) -> dict[str, int]:
        if wait:
            all_readers.wait()
        return {name: tx.value(f"PRAGMA {name}") for name in names}

    expected = {name: backend.CONNECTION_PRAGMAS[name] for name in names}
    try:
        seen = gather(*(store.read(settings, True) for _ in range(readers)))
        assert seen == [expected] * readers
        assert run(store.write(settings, False)) == expected
        # The writer sets its busy_timeout per transaction (what is left of its budget).
        assert run(store.read(lambda tx: tx.value("PRAGMA busy_timeout"))) == \
            backend.BUSY_TIMEOUT_MS
        gather(*(store.read(settings, False) for _ in range(5 * pool_size)))
        assert len(store._connections) == pool_size  # type: ignore[attr-defined]
    finally:
        run(store.close())


@pytest.mark.parametrize("backend", ["mysql"])
def test_mysql_tables_are_utf8mb4_with_binary_unique_keys(store: Store) -> None:
    def inspect(tx: Tx) -> tuple[dict[str, str], dict[tuple[str, str], str]]:
        tables = dict(
            tx.rows(
                "SELECT table_name, table_collation FROM information_schema.tables"
                " WHERE table_schema = DATABASE()"
            )
        )
        columns = {
            (t, c): coll
            for t, c, coll in tx.rows(
                "SELECT table_name, column_name, collation_name FROM information_schema.columns"
                " WHERE table_schema = DATABASE() AND collation_name IS NOT NULL"
            )
        }
        return tables, columns

    tables, columns = run(store.read(inspect))
    for table in ("users", "tokens", "friendships", "communities", "memberships",
                  "friend_requests", "blocks"):
        assert tables[table] == "utf8mb4_unicode_ci"
    assert columns[("friend_requests", "to_mobile")] == "ascii_bin"
    assert columns[("users", "nickname")] == "utf8mb4_unicode_ci"
    assert columns[("communities", "name")] == "utf8mb4_bin"
    assert columns[("users", "mobile")] == "ascii_bin"
    assert run(store.read(lambda tx: tx.value("SELECT @@character_set_connection"))) == "utf8mb4"
    mode = run(store.read(lambda tx: tx.value("SELECT @@sql_mode")))
    assert "STRICT_ALL_TABLES" in mode


def test_the_database_enforces_the_schema_rules_itself(store: Store) -> None:
    """Even code that skips validation cannot store a bad sex or a self-friendship."""
    from fastim.store import IntegrityViolation

    user = run(store.create_user(mobile="13900000002", passwd="0", salt="0", kdf="k", nickname="n"))
    with pytest.raises(IntegrityViolation) as exc:
        run(
            store.write(
                lambda tx: tx.execute("UPDATE users SET sex = 'X' WHERE id = ?", (user.id,))
            )
        )
    assert exc.value.kind == "check"
    with pytest.raises(IntegrityViolation) as exc:
        run(
            store.write(
                lambda tx: tx.execute(
                    "INSERT INTO friendships (owner_id, dst_id, created) VALUES (?, ?, 0)",
                    (user.id, user.id),
                )
            )
        )
    assert exc.value.kind == "check"
    for statement in (
        "INSERT INTO blocks (owner_id, blocked_id, created) VALUES (?, ?, 0)",
        "INSERT INTO friend_requests (from_id, to_id, state, created, expires)"
        " VALUES (?, ?, 'pending', 0, 1)",
    ):
        with pytest.raises(IntegrityViolation) as exc:
            run(store.write(lambda tx, s=statement: tx.execute(s, (user.id, user.id))))
        assert exc.value.kind == "check", statement
    with pytest.raises(IntegrityViolation) as exc:
        run(
            store.write(
                lambda tx: tx.execute(
                    "INSERT INTO friend_requests (from_id, state, created, expires)"
                    " VALUES (?, 'pending', 0, 1)",
                    (user.id,),
                )
            )
        )
    assert exc.value.kind == "check"  # a request to no one
    with pytest.raises(IntegrityViolation) as exc:
        run(
            store.write(
                lambda tx: tx.execute(
                    "INSERT INTO memberships (community_id, user_id, role, joined) VALUES (?, ?, 'member', 0)",
                    (999_999, user.id),
                )
            )
        )
    assert exc.value.kind == "foreign_key"


def test_the_friend_request_migration_keeps_existing_friendships(fresh_db_url: str) -> None:
    """A database made before friends by consent (schema 4) is brought to 5: its
    friendships stay as they were, and requests and blocks start empty."""
    before = [m for m in MIGRATIONS if m.version < FRIENDS_BY_CONSENT.version]
    store = run(open_store(fresh_db_url, migrations=before))
    try:
        a = run(store.create_user(mobile="13900000011", passwd="0", salt="0", kdf="k", nickname="a"))
        b = run(store.create_user(mobile="13900000012", passwd="0", salt="0", kdf="k", nickname="b"))
        run(store.add_friendship(a.id, b.id, now=1234))
        rows = run(store.read(lambda tx: tx.rows(
            "SELECT owner_id, dst_id, created FROM friendships ORDER BY owner_id")))
    finally:
        run(store.close())
    store = run(open_store(fresh_db_url))
    try:
        assert store.applied_migrations == [m.version for m in MIGRATIONS
                                            if m.version >= FRIENDS_BY_CONSENT.version]
        assert run(store.read(lambda tx: tx.rows(
            "SELECT owner_id, dst_id, created FROM friendships ORDER BY owner_id"))) == rows
        assert run(store.are_friends(a.id, b.id)) and run(store.are_friends(b.id, a.id))
        counts = table_counts(store)
        assert counts["friend_requests"] == counts["blocks"] == 0
    finally:
        run(store.close())


def _index_names(store: Store, table: str) -> set[str]:
    if store.dialect.name == "sqlite":
        rows = run(store.read(lambda tx: tx.rows(f"PRAGMA index_list({table})")))
        return {str(row[1]) for row in rows}
    rows = run(store.read(lambda tx: tx.rows(
        "SELECT DISTINCT index_name FROM information_schema.statistics"
        " WHERE table_schema = DATABASE() AND table_name = ?", [table])))
    return {str(row[0]) for row in rows}


def test_the_index_migration_applies_to_a_database_with_messages(fresh_db_url: str) -> None:
    """A database at schema 5 that holds messages and read marks gets the indexes of
    migration 6 at the next start, keeps its rows, and a second run of the migration's
    steps (a migration that stopped half-way, on MySQL) changes nothing."""
    before = [m for m in MIGRATIONS if m.version < HOT_PATH_INDEXES.version]
    store = run(open_store(fresh_db_url, migrations=before))
    try:
        a = run(store.create_user(mobile="13900000021", passwd="0", salt="0", kdf="k", nickname="a"))
        b = run(store.create_user(mobile="13900000022", passwd="0", salt="0", kdf="k", nickname="b"))

        def seed(tx: Tx) -> None:
            tx.executemany(
                "INSERT INTO messages (conv, sender, cmd, dstid, media, content, created)"
                " VALUES (?, ?, 10, ?, 1, 'hi', 0)",
                [(f"p{a.id}_{b.id}", a.id if i % 2 else b.id, b.id if i % 2 else a.id)
                 for i in range(50)])
            tx.execute("INSERT INTO read_marks (user_id, conv, upto) VALUES (?, ?, 7)",
                       (a.id, f"p{a.id}_{b.id}"))

        run(store.write(seed))
        assert "ix_messages_sender" not in _index_names(store, "messages")
    finally:
        run(store.close())
    store = run(open_store(fresh_db_url))
    try:
        assert store.applied_migrations[0] == HOT_PATH_INDEXES.version
        assert {"ix_messages_sender", "ix_messages_unread", "ix_messages_conv"} \
            <= _index_names(store, "messages")
        assert "ix_read_marks_conv" in _index_names(store, "read_marks")
        assert table_counts(store)["messages"] == 50
        for step in HOT_PATH_INDEXES.statements(store.dialect.name):
            run(store.write(lambda tx, step=step: tx.execute(step) if isinstance(step, str)
                            else step(tx)))
        assert run(store.read(lambda tx: tx.rows(
            "SELECT user_id, upto FROM read_marks WHERE conv = ?", [f"p{a.id}_{b.id}"]))) \
            == [(a.id, 7)]
    finally:
        run(store.close())


def test_the_group_migration_keeps_groups_and_their_members_full_history(
        fresh_db_url: str) -> None:
    """A database made before safe groups (schema 6) is brought to 7: existing groups
    become private, their members keep their roles and read the whole history."""
    before = [m for m in MIGRATIONS if m.version < SAFE_GROUPS.version]
    store = run(open_store(fresh_db_url, migrations=before))
    try:
        a = run(store.create_user(mobile="13900000021", passwd="0", salt="0", kdf="k", nickname="a"))
        b = run(store.create_user(mobile="13900000022", passwd="0", salt="0", kdf="k", nickname="b"))
        group = run(store.create_group(a.id, "old group", now=1000))
        run(store.add_member(group.id, b.id, now=1001))
    finally:
        run(store.close())
    store = run(open_store(fresh_db_url))
    try:
        assert SAFE_GROUPS.version in store.applied_migrations
        rows = run(store.read(lambda tx: tx.rows(
            "SELECT user_id, role, joined, since_id FROM memberships ORDER BY user_id")))
        assert [tuple(r) for r in rows] == [(a.id, "owner", 1000, 0), (b.id, "member", 1001, 0)]
        found = run(store.read(groups.settings, group.id))
        assert found is not None
        assert (found.visibility, found.join_policy, found.members) == ("private", "open", 2)
        assert run(store.read(groups.history_window, group.id, b.id)) == (0, None)
        run(store.write(lambda tx: tx.execute(
            "UPDATE memberships SET role = 'admin' WHERE user_id = ?", (b.id,))))
        assert run(store.read(groups.is_group_moderator, group.id, b.id))
    finally:
        run(store.close())

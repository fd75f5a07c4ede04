"""MySQL-only behaviour: deadlock retries and the pool's bounds."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from fastim.store import Store, Tx
from tests.store_fixtures import gather, run

pytestmark = pytest.mark.parametrize("backend", ["mysql"])
SAFETY_TIMEOUT = 10.0


def test_a_deadlock_victim_is_retried_and_both_transactions_commit(store: Store) -> None:
    a = run(store.create_user(mobile="13911110001", passwd="0", salt="0", kdf="k", nickname="a"))
    b = run(store.create_user(mobile="13911110002", passwd="0", salt="0", kdf="k", nickname="b"))
    both_locked_first = threading.Barrier(2, timeout=SAFETY_TIMEOUT)
    attempts: list[str] = []

    def lock_then(first: int, second: int, name: str) -> Callable[[Tx], None]:
        def fn(tx: Tx) -> None:
            attempts.append(name)
            tx.row("SELECT id FROM users WHERE id = ? FOR UPDATE", (first,))
            if attempts.count(name) == 1:
                both_locked_first.wait()  # each holds one row: now ask for the other's
            tx.execute("UPDATE users SET memo = ? WHERE id = ?", (name, second))

        return fn

    results = gather(
        store.write(lock_then(a.id, b.id, "ab")),
        store.write(lock_then(b.id, a.id, "ba")),
    )
    assert results == [None, None]
    assert len(attempts) == 3  # InnoDB chose one victim; it ran again and committed
    memos = {u.id: u.memo for u in run(store.get_users([a.id, b.id]))}
    assert sorted(memos.values()) == ["ab", "ba"]


def test_the_pool_never_opens_more_connections_than_pool_size(store: Store) -> None:
    def connection_id(tx: Tx) -> Any:
        return tx.value("SELECT CONNECTION_ID()")

    ids = gather(*[store.read(connection_id) for _ in range(40)])
    assert len(set(ids)) <= 4  # the fixture's pool_size

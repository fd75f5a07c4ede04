"""Hot statements cost what they return, not what is stored (issue 25, docs/store.md
"Indexes and query plans").

On a database seeded the way the server writes it (bench/seed.py) and analyzed as the
server does at start-up, every SELECT that the hub and the REST handlers run is recorded
and explained: ``EXPLAIN QUERY PLAN`` on SQLite, ``EXPLAIN`` on MariaDB. None may scan a
table or a whole index, nor sort in a temporary structure. A deterministic check of the
plans, not a timing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from bench.seed import Seeded, conversation, seed
from fastim.store import Store
from fastim.store import queries as q
from fastim.store.messages import (
    GROUP,
    SINGLE,
    count_messages,
    has_messages,
    history,
    mark_read,
    messages_since,
    read_marks,
    unread,
)
from fastim.store.sql import Tx
from tests.store_fixtures import run

_TABLES = {"messages", "read_marks", "friendships", "memberships", "communities", "users",
           "tokens", "friend_requests", "blocks", "message_keys", "m", "r", "u", "f", "c"}


def plan_problems(tx: Tx, sql: str, params: Any) -> list[str]:
    """What is wrong with the plan of one statement: a scan of a table or of a whole
    index, an index merge, a sort or a grouping in a temporary structure. Empty when
    every table is reached through an index range or key."""
    problems = []
    if tx.dialect.name == "sqlite":
        for row in tx.rows("EXPLAIN QUERY PLAN " + sql, params):
            detail = str(row[-1])
            scanned = re.match(r"SCAN (\w+)", detail)
            if scanned and scanned.group(1) in _TABLES or "TEMP B-TREE" in detail:
                problems.append(detail)
        return problems
    for row in tx.rows("EXPLAIN " + sql, params):
        _id, _kind, table, access, _possible, key, _len, _ref, _rows, extra = row[:10]
        extra = str(extra or "")
        if table is None or str(table).startswith("<"):
            # The merge of a UNION's arms: it sorts only what the arms returned (each
            # under its LIMIT, in a window of ids; fastim/store/messages.py).
            continue
        # A range of the messages' PRIMARY key is `id > ?`: the rest of the history;
        # not the ids of one sync page (`id IN (...)`, at most its limit).
        by_ids = " FROM messages WHERE id IN (" in sql
        if access in ("ALL", "index", "index_merge") or "filesort" in extra \
                or "temporary" in extra or (table in ("messages", "m") and key == "PRIMARY"
                                            and access == "range" and not by_ids):
            problems.append(f"{table}: {access} {key} {extra}")
    return problems


#: Statements allowed a sort, each bounded by a per-user or per-group cap, not by history.
BOUNDED_SORTS = {
    # a group's members, owner first then by joining: at most a group's size
    "ORDER BY CASE m.role": "group size",
    # a user's live friend requests, both ways: capped per day and expiring
    "FROM friend_requests r WHERE r.expires > ?": "friend requests per day x TTL",
}


@pytest.fixture
def seeded(store: Store) -> Iterator[tuple[Store, Seeded]]:
    """A small year: enough rows that a full scan is never the planner's cheap way."""
    info = run(seed(store, 3000, friends=80, groups=8, group_size=12))
    run(store.write(mark_read, info.light, conversation(GROUP, info.light, info.groups[0]), 5))
    run(store.analyze())
    yield store, info


def _hot_calls(store: Store, info: Seeded) -> None:
    """What the hub and the REST handlers run against the store, for U and for L."""
    heavy, light, groups = info.heavy, info.light, info.groups
    friend = run(store.friend_ids(heavy))[0]
    pair, group = conversation(SINGLE, heavy, friend), conversation(GROUP, heavy, groups[0])
    token = "a" * 64
    run(store.save_token(heavy, token, "web", 2**40))
    for user, its_groups in ((heavy, groups), (light, groups[:1])):
        run(store.read(messages_since, user, its_groups, 0, 201))  # sync (cmd 20)
        run(store.read(messages_since, user, its_groups, 1500, 201))
        convs = [conversation(SINGLE, user, f) for f in run(store.friend_ids(user))]
        convs += [conversation(GROUP, user, g) for g in its_groups]
        run(store.read(unread, user, convs))  # /chat/unread
        run(store.friend_ids(user))  # connect: presence
        run(store.group_ids(user))
        run(store.list_friends(user, 0, 50))  # /contact/loadfriend
        run(store.list_user_groups(user, 0, 50))  # /contact/loadcommunity
        run(store.list_requests(user, 0, 50))
    for conv in (pair, group):
        run(store.read(history, conv, None, 50))  # /chat/history
        run(store.read(history, conv, 1000, 50))
        run(store.read(count_messages, conv))
        run(store.read(has_messages, conv))
        run(store.read(read_marks, conv))  # /chat/reads
        run(store.write(mark_read, heavy, conv, 10))  # cmd 30
    run(store.get_credentials(info.heavy_mobile))  # /user/login
    run(store.session_for_token(token))  # every authenticated call, the /chat upgrade
    run(store.get_user_by_mobile(info.light_mobile))  # /user/find, /contact/addfriend
    run(store.get_users([heavy, light, friend]))
    run(store.are_friends(heavy, friend))
    run(store.blocks(heavy, friend))
    run(store.is_member(groups[0], light))
    run(store.member_ids(groups[0]))
    run(store.list_members(groups[0], 0, 50))


def test_every_hot_statement_uses_an_index_and_sorts_nothing(
        seeded: tuple[Store, Seeded], monkeypatch: pytest.MonkeyPatch) -> None:
    store, info = seeded
    seen: dict[str, tuple[Any, ...]] = {}
    rows = Tx.rows

    def recording(tx: Tx, sql: str, params: Any = ()) -> list[tuple[Any, ...]]:
        if sql.lstrip().upper().startswith("SELECT") and "information_schema" not in sql:
            seen.setdefault(sql, tuple(params))
        return rows(tx, sql, params)

    monkeypatch.setattr(Tx, "rows", recording)
    _hot_calls(store, info)
    monkeypatch.undo()
    assert any("UNION ALL" in sql for sql in seen)  # the sync and unread shapes were seen
    bad = {}
    for sql, params in seen.items():
        if any(marker in sql for marker in BOUNDED_SORTS):
            continue
        problems = run(store.read(plan_problems, sql, params))
        if problems:
            bad[sql[:160]] = problems
    assert bad == {}


def test_the_plan_check_catches_the_old_sync_and_a_scan(seeded: tuple[Store, Seeded]) -> None:
    """The check above can fail: the shapes this issue replaced are caught."""
    store, info = seeded
    groups = ", ".join(str(g) for g in info.groups)
    old_sync = ("SELECT id FROM messages WHERE id > ? AND ((cmd = 10 AND (dstid = ? OR "
                f"sender = ?)) OR (cmd = 11 AND dstid IN ({groups}))) ORDER BY id LIMIT 201")
    assert run(store.read(plan_problems, old_sync, (0, info.light, info.light)))
    full_scan = "SELECT COUNT(*) FROM messages WHERE content = ?"
    assert run(store.read(plan_problems, full_scan, ("x",)))


def test_analyze_runs_on_a_store_that_has_it(store: Store) -> None:
    run(store.analyze())
    run(store.analyze())  # again: the server runs it hourly
    assert q.ANALYZED_TABLES[0] == "messages"


@pytest.mark.parametrize("arms", [400, 3])
def test_sync_pages_are_what_the_old_query_gave(seeded: tuple[Store, Seeded],
                                                monkeypatch: pytest.MonkeyPatch,
                                                arms: int) -> None:
    """The new shape returns the same pages as the plain filter it replaced, also in
    several statements (more arms than SYNC_ARMS) and across MySQL's windows of ids."""
    from fastim.store import messages

    store, info = seeded
    monkeypatch.setattr(messages, "SYNC_ARMS", arms)
    everything = run(store.read(lambda tx: tx.rows(
        "SELECT id, sender, cmd, dstid FROM messages ORDER BY id")))
    for user, groups in ((info.heavy, info.groups), (info.light, info.groups[:1])):
        visible = [i for i, sender, cmd, dstid in everything
                   if cmd == SINGLE and user in (sender, dstid)
                   or cmd == GROUP and dstid in groups]
        for since, limit in ((0, 7), (0, 201), (visible[len(visible) // 2], 13),
                             (visible[-3], 50), (visible[-1], 10)):
            page = run(store.read(messages_since, user, groups, since, limit))
            assert [row["id"] for row in page] == [i for i in visible if i > since][:limit]

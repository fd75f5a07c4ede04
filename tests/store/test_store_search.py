"""Message search (fastim/store/search.py, migration 10) on both backends: CJK, English,
emoji and mixed text, one- and two-character queries, who may find what (history's
rules: join windows, delete-for-me), edits and recalls through the change log, paging,
and the indexer that keeps the index after commit (its cursor, ids that commit late)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from fastim.chat.protocol import Cmd
from fastim.store import Store, groups
from fastim.store import search as searching
from fastim.store.changes import DELETE, EDIT, RECALL, ChangeRequest, apply_change
from fastim.store.messages import insert_messages
from fastim.store.migrations import MESSAGE_SEARCH, MIGRATIONS
from fastim.store.search import IdFollower, index_pass, match_offsets, readable_messages
from tests.store.test_store_messages import new
from tests.store_fixtures import run


def store_all(store: Store, *items: Any) -> list[int]:
    return [s.id for s in run(store.write(insert_messages, list(items), True))]


def index(store: Store, batch: int = searching.BATCH) -> int:
    """Run the indexer's passes until it has nothing left; how many it took."""
    messages, changes = IdFollower(), IdFollower()
    for passes in range(1, 1000):
        if not run(store.write(index_pass, messages, changes, time.monotonic(), batch)):
            return passes
    raise AssertionError("the indexer never caught up")


def find(store: Store, user: int, text: str, only: tuple[int, int] | None = None,
         before: int | None = None, limit: int = 20) -> list[str]:
    index(store)
    page = run(store.read(searching.search, user, text, only, before, limit))
    return [m["content"] for m in page.rows]


def change(store: Store, kind: int, message_id: int, actor: int, content: str = "") -> None:
    """An edit, recall or delete-for-me as the lifecycle applies it (its rules are
    fastim/chat/lifecycle.py's, tested there; here every change is allowed)."""
    request = ChangeRequest(kind=kind, message_id=message_id, actor=actor, cid=None,
                            ts=int(time.time() * 1000), content=content)
    run(store.write(apply_change, request, lambda tx, state, req: None, None))


@pytest.fixture
def people(store: Store, make_user: Any) -> dict[str, int]:
    """alice and bob are friends, carol is a stranger to both; alice and carol are in a
    group (id in "club"), bob is not; dave and erin chat among themselves."""
    names = ("alice", "bob", "carol", "dave", "erin")
    ids = {n: make_user(nickname=n).id for n in names}
    run(store.add_friendship(ids["alice"], ids["bob"]))
    run(store.add_friendship(ids["dave"], ids["erin"]))
    club = run(store.create_group(ids["carol"], "读书会"))
    run(store.add_member(club.id, ids["alice"]))
    ids["club"] = club.id
    return ids


def test_chinese_english_emoji_and_mixed_text_are_found(store: Store,
                                                       people: dict[str, int]) -> None:
    a, b = people["alice"], people["bob"]
    texts = ["每周五晚上", "Hello, world", "今晚 pizza 🍕🍕 吗？", "I ❤️ 北京 Olympics",
             "nothing here"]
    store_all(store, *(new(a, b, t, f"m{i}") for i, t in enumerate(texts)))
    assert find(store, b, "周五") == ["每周五晚上"]
    assert find(store, a, "hello") == ["Hello, world"]
    assert find(store, a, "WORLD") == ["Hello, world"]
    assert find(store, a, "pizza 🍕") == ["今晚 pizza 🍕🍕 吗？"]
    assert find(store, a, "🍕🍕 吗") == ["今晚 pizza 🍕🍕 吗？"]
    assert find(store, a, "❤️ 北京") == ["I ❤️ 北京 Olympics"]
    assert find(store, a, "olympic") == ["I ❤️ 北京 Olympics"]
    assert find(store, a, "周末") == []
    assert find(store, a, 'say "hi" (or % _ \\ *)') == []
    page = run(store.read(searching.search, a, "周五", None, None, 10))
    row = page.rows[0]
    assert page.total == 1
    assert row["matches"] == [[1, 3]] and row["conversation"] == {"cmd": 10, "dstid": b}
    assert run(store.read(searching.search, b, "周五", None, None, 10)).rows[0][
        "conversation"] == {"cmd": 10, "dstid": a}


def test_one_and_two_character_queries_are_found(store: Store,
                                                 people: dict[str, int]) -> None:
    a, b = people["alice"], people["bob"]
    store_all(store, new(a, b, "每周五晚上", "1"), new(a, b, "ok 🍕", "2"),
              new(a, b, "Hi there", "3"), new(a, b, "50% off_", "4"))
    assert find(store, a, "周") == ["每周五晚上"]
    assert find(store, a, "五晚") == ["每周五晚上"]
    assert find(store, a, "🍕") == ["ok 🍕"]
    assert find(store, a, "hi") == ["Hi there"]
    assert find(store, a, "%") == ["50% off_"]
    assert find(store, a, "_") == ["50% off_"]
    assert find(store, a, "x") == []


def test_only_readable_conversations_are_searched(store: Store, people: dict[str, int]) -> None:
    a, b, c, d, e = (people[n] for n in ("alice", "bob", "carol", "dave", "erin"))
    club = people["club"]
    other = run(store.create_group(d, "closed"))
    store_all(store, new(a, b, "secret plan 1:1", "1"),
              new(c, club, "secret plan group", "2", kind=Cmd.GROUP),
              new(d, e, "secret plan stranger", "3"),
              new(d, other.id, "secret plan other group", "4", kind=Cmd.GROUP))
    for query in ("secret plan", "se"):
        assert find(store, a, query) == ["secret plan group", "secret plan 1:1"]
        assert find(store, b, query) == ["secret plan 1:1"]
        assert find(store, c, query) == ["secret plan group"]
        assert find(store, a, query, only=(Cmd.SINGLE, b)) == ["secret plan 1:1"]
        assert find(store, a, query, only=(Cmd.GROUP, club)) == ["secret plan group"]
        assert find(store, a, query, only=(Cmd.SINGLE, d)) == []
        assert find(store, a, query, only=(Cmd.GROUP, other.id)) == []
    # A query is only ever text: on MariaDB it is a string literal inside a Groonga script
    # that also holds the readable conversations, so one that tries to close the literal
    # and widen the filter must find nothing (and least of all dave's chat).
    for query in ('plan" || true || "', 'plan\\" || true || "', 'plan") || (true'):
        assert find(store, a, query) == []
    # A former friend's chat stays readable, as in /chat/history.
    run(store.remove_friendship(a, b))
    assert find(store, b, "secret") == ["secret plan 1:1"]
    # Leaving the group ends searching it.
    run(store.remove_member(club, a))
    assert find(store, a, "secret") == ["secret plan 1:1"]
    readable = run(store.read(readable_messages, c))
    assert readable.whole == [f"g{club}"] and readable.windows == []
    assert readable.conversation(f"g{club}") == (Cmd.GROUP, club)
    assert readable.conversation(f"p{min(c, d)}_{max(c, d)}") == (Cmd.SINGLE, d)


def test_edits_and_recalls_change_what_is_found(store: Store,
                                                people: dict[str, int]) -> None:
    a, b = people["alice"], people["bob"]
    edited, recalled, kept, late = store_all(store, new(a, b, "meet at noon", "1"),
                                             new(a, b, "meet at 五点", "2"),
                                             new(a, b, "meet me", "3"),
                                             new(a, b, "see you at noon", "4"))
    assert find(store, a, "meet") == ["meet me", "meet at 五点", "meet at noon"]
    change(store, EDIT, edited, a, "lunch at one")
    change(store, RECALL, recalled, a)
    # Before the indexer's next pass the old text is in the index, yet not found: every
    # hit is checked against the message as it is now.
    page = run(store.read(searching.search, a, "noon", None, None, 20))
    assert [m["id"] for m in page.rows] == [late]
    assert find(store, a, "meet") == ["meet me"]
    assert find(store, a, "noon") == ["see you at noon"]
    assert find(store, a, "lunch at") == ["lunch at one"]
    assert find(store, b, "lunch")[0] == "lunch at one"
    assert find(store, a, "五点") == [] and find(store, a, "五") == []
    assert find(store, a, "me") == ["meet me"]
    assert kept
    # The edited row is shown as history shows it.
    (row,) = run(store.read(searching.search, a, "lunch", None, None, 20)).rows
    assert row["id"] == edited and "edited" in row


def test_an_edit_before_the_first_index_pass_is_found_by_its_new_text(
        store: Store, people: dict[str, int]) -> None:
    a, b = people["alice"], people["bob"]
    (id_,) = store_all(store, new(a, b, "draft words", "1"))
    change(store, EDIT, id_, a, "final words")
    assert find(store, a, "draft") == []
    assert find(store, a, "final") == ["final words"]


def test_delete_for_me_hides_from_my_search_only(store: Store,
                                                people: dict[str, int]) -> None:
    a, b = people["alice"], people["bob"]
    gone, shown = store_all(store, new(a, b, "holiday photos", "1"),
                            new(b, a, "holiday plans", "2"))
    change(store, DELETE, gone, a)
    assert find(store, a, "holiday") == ["holiday plans"]
    assert run(store.read(searching.search, a, "holiday", None, None, 20)).total == 1
    assert find(store, a, "ho") == ["holiday plans"]
    assert find(store, b, "holiday") == ["holiday plans", "holiday photos"]
    assert run(store.read(searching.search, b, "holiday", None, None, 20)).total == 2
    assert shown


def test_total_stops_counting_at_the_cap_and_says_so(store: Store, people: dict[str, int],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = people["alice"], people["bob"]
    ids = store_all(store, *(new(a, b, f"cap {i} 周五", f"c{i}") for i in range(4)))
    change(store, DELETE, ids[3], a)
    index(store)
    monkeypatch.setattr(searching, "TOTAL_CAP", 3)
    for query in ("周五", "周"):
        # Three left after the delete-for-me: exactly the cap, so not capped.
        page = run(store.read(searching.search, a, query, None, None, 2))
        assert (page.total, page.capped) == (3, False)
        # One round of candidates (MariaDB reads just past the cap, then further past
        # the one deleted for alice): still exact.
        page = run(store.read(searching.search, a, query, None, None, 2, 1))
        assert (page.total, page.capped) == (3, False)
        page = run(store.read(searching.search, b, query, None, None, 2))
        assert (page.total, page.capped, len(page.rows)) == (3, True, 2)
        # Older than the newest: counted below `before`.
        page = run(store.read(searching.search, b, query, None, ids[3], 2))
        assert (page.total, page.capped) == (3, False)


def test_a_group_is_found_within_the_members_window(store: Store,
                                                   people: dict[str, int]) -> None:
    """As history: from the join on (the group's history 'joined'), a former member
    their old window, a rejoin not the gap (fastim/store/groups.py)."""
    a, c = people["alice"], people["carol"]
    gid = run(store.create_group(c, "窗口")).id
    group = (Cmd.GROUP, gid)
    now = int(time.time() * 1000)
    store_all(store, new(c, gid, "window before join", "1", kind=Cmd.GROUP))
    run(store.write(groups.join, gid, a, now, False))
    store_all(store, new(c, gid, "window while member", "2", kind=Cmd.GROUP))
    assert find(store, a, "window") == ["window while member"]
    assert find(store, a, "wi", only=group) == ["window while member"]
    run(store.write(groups.leave, gid, a))
    store_all(store, new(c, gid, "window after leaving", "3", kind=Cmd.GROUP))
    assert find(store, a, "window") == ["window while member"]
    assert find(store, a, "window", only=group) == ["window while member"]
    run(store.write(groups.join, gid, a, now, False))
    store_all(store, new(c, gid, "window after rejoin", "4", kind=Cmd.GROUP))
    assert find(store, a, "window") == ["window after rejoin"]
    assert find(store, c, "window") == ["window after rejoin", "window after leaving",
                                        "window while member", "window before join"]
    # A group whose history is 'all' shows a new member everything.
    run(store.write(groups.set_settings, gid, c, None, None, "all"))
    e = people["erin"]
    run(store.write(groups.join, gid, e, now, False))
    assert len(find(store, e, "window")) == 4


def test_pages_go_back_with_before(store: Store, people: dict[str, int]) -> None:
    a, b = people["alice"], people["bob"]
    ids = store_all(store, *(new(a, b, f"page {i} 周五", f"p{i}") for i in range(7)),
                    new(a, b, "unrelated", "x"))
    index(store)
    for query in ("周五", "周", "page"):
        first = run(store.read(searching.search, a, query, None, None, 3))
        assert [m["id"] for m in first.rows] == ids[6:3:-1]
        assert first.total == 7
        second = run(store.read(searching.search, a, query, None, first.rows[-1]["id"], 3))
        assert [m["id"] for m in second.rows] == ids[3:0:-1]
        last = run(store.read(searching.search, a, query, None, second.rows[-1]["id"], 3))
        assert [m["id"] for m in last.rows] == ids[:1]


def test_sealed_rows_are_not_indexed(store: Store, people: dict[str, int]) -> None:
    a, b = people["alice"], people["bob"]
    (id_,) = store_all(store, new(a, b, "", "1"))
    run(store.write(lambda tx: tx.execute(
        "UPDATE messages SET sealed = 'enc:v1:k:xxxx' WHERE id = ?", [id_])))
    assert find(store, a, "enc") == [] and find(store, a, "xx") == []
    count = "SELECT COUNT(*) FROM message_search"
    assert run(store.read(lambda tx: tx.value(count))) == 0


def test_messages_stored_before_the_migration_are_indexed(fresh_db_url: str,
                                                          make_user: Any) -> None:
    from fastim.store import open_store

    before = [m for m in MIGRATIONS if m.version < MESSAGE_SEARCH.version]
    store = run(open_store(fresh_db_url, migrations=before))
    try:
        a = run(store.create_user(mobile="13900000021", passwd="0", salt="0", kdf="k",
                                  nickname="a")).id
        b = run(store.create_user(mobile="13900000022", passwd="0", salt="0", kdf="k",
                                  nickname="b")).id
        run(store.add_friendship(a, b))
        store_all(store, new(a, b, "每周五晚上 old", "1"))
    finally:
        run(store.close())
    store = run(open_store(fresh_db_url))
    try:
        assert MESSAGE_SEARCH.version in store.applied_migrations
        # The migration only makes the index: the indexer fills it, in batches.
        store_all(store, *(new(a, b, f"filler {i}", f"f{i}") for i in range(4)))
        assert index(store, batch=2) == 4  # 5 messages, 2 a pass, then an empty pass
        assert find(store, b, "周五晚") == ["每周五晚上 old"]
    finally:
        run(store.close())


def test_match_offsets_count_utf16_units_and_every_occurrence() -> None:
    assert match_offsets("Hello, hello", "HELLO") == [[0, 5], [7, 12]]
    assert match_offsets("🍕 pizza", "pizza") == [[3, 8]]
    assert match_offsets("每周五晚上", "周五") == [[1, 3]]
    assert match_offsets("İstanbul", "i̇st") == [[0, 3]]
    assert match_offsets("abc", "x") == []


def test_the_cursor_is_durable_and_a_restart_resumes(store: Store,
                                                     people: dict[str, int]) -> None:
    a, b = people["alice"], people["bob"]
    ids = store_all(store, *(new(a, b, f"resume {i}", f"r{i}") for i in range(3)))
    index(store)
    cursor = "SELECT upto_message, upto_change FROM search_cursor"
    assert run(store.read(lambda tx: tx.row(cursor)))[0] == ids[-1]
    # A new indexer (a restart) starts from the cursor: nothing is read again.
    assert run(store.write(index_pass, IdFollower(), IdFollower(), time.monotonic())) == 0
    (more,) = store_all(store, new(a, b, "resume 3", "r3"))
    assert run(store.write(index_pass, IdFollower(), IdFollower(), time.monotonic())) == 1
    assert run(store.read(lambda tx: tx.row(cursor)))[0] == more
    change(store, EDIT, more, a, "resumed")
    index(store)
    assert run(store.read(lambda tx: tx.row(cursor)))[1] > 0
    assert find(store, b, "resume") == ["resumed", "resume 2", "resume 1", "resume 0"]


def test_an_id_that_commits_late_is_still_indexed() -> None:
    """MariaDB gives ids at INSERT and shows rows at COMMIT: a lower id may appear after
    higher ones were indexed. The follower keeps looking for it, and its cursor stays
    below it, until it comes or SETTLE passes (a rollback)."""
    follower = IdFollower()
    follower.found([1, 2, 5], now=0.0)
    assert follower.look_again() == [3, 4] and follower.cursor() == 2
    follower.found([4, 6], now=1.0)
    assert follower.look_again() == [3] and follower.cursor() == 2
    follower.expire(now=5.0, settle=10.0)
    assert follower.cursor() == 2
    follower.expire(now=10.0, settle=10.0)  # 3 was rolled back
    assert follower.cursor() == 6 and follower.look_again() == []
    # Another node got further: resume there.
    follower.resume(9)
    assert follower.cursor() == 9


def test_two_indexers_share_the_work_idempotently(store: Store,
                                                  people: dict[str, int]) -> None:
    """Two nodes' indexers (each with its own follower) over one database: each pass
    re-reads from the durable cursor and writes rows idempotently; nothing is doubled."""
    a, b = people["alice"], people["bob"]
    one, two = (IdFollower(), IdFollower()), (IdFollower(), IdFollower())
    store_all(store, *(new(a, b, f"shared {i}", f"s{i}") for i in range(5)))
    assert run(store.write(index_pass, *one, time.monotonic(), 3)) == 3
    assert run(store.write(index_pass, *two, time.monotonic(), 3)) == 2
    # A restarted node that lost its follower re-reads nothing below the cursor, and a
    # row written twice is still one row.
    run(store.write(index_pass, IdFollower(), IdFollower(), time.monotonic(), 3))
    assert run(store.read(lambda tx: tx.value("SELECT COUNT(*) FROM message_search"))) == 5
    assert len(find(store, a, "shared")) == 5


def test_mariadb_a_row_committed_after_higher_ids_is_found(store: Store,
                                                         people: dict[str, int]) -> None:
    """The real case on MariaDB: a transaction holds a lower id uncommitted while a
    higher one commits and is indexed; once it commits, the next pass indexes it."""
    if store.dialect.name != "mysql":
        pytest.skip("SQLite has one writer: ids commit in order")
    import asyncio
    import threading

    a, b = people["alice"], people["bob"]
    inserted, release = threading.Event(), threading.Event()
    follower = (IdFollower(), IdFollower())

    def slow(tx: Any) -> int:
        (stored,) = insert_messages(tx, [new(a, b, "late commit", "late")], True)
        inserted.set()
        assert release.wait(30), "the test never released the slow transaction"
        return stored.id

    async def scenario() -> tuple[int, int]:
        slow_task = asyncio.ensure_future(store.write(slow))
        assert await asyncio.to_thread(inserted.wait, 30)
        (fast,) = [m.id for m in await store.write(
            insert_messages, [new(a, b, "early commit", "early")], True)]
        await store.write(index_pass, *follower, time.monotonic())
        release.set()
        return await slow_task, fast

    late, early = run(scenario())
    assert late < early
    cursor = run(store.read(lambda tx: tx.value("SELECT upto_message FROM search_cursor")))
    assert cursor < late  # the cursor waits below the open id
    run(store.write(index_pass, *follower, time.monotonic()))
    assert run(store.read(searching.search, a, "commit", None, None, 20)).rows[0]["id"] \
        == early
    assert [m["id"] for m in run(store.read(searching.search, a, "commit", None, None,
                                            20)).rows] == [early, late]
    assert run(store.read(lambda tx: tx.value("SELECT upto_message FROM search_cursor"))) \
        == early


def test_reseal_takes_the_clear_text_out_of_the_index(store: Store, people: dict[str, int],
                                                      db_url: str, tmp_path: Any) -> None:
    """`fastim reseal` seals rows that were in clear: the index held their text, and must
    not keep it (docs/security.md)."""
    from fastim.__main__ import main as fastim_main
    from fastim.store.sealing import write_key_file

    a, b = people["alice"], people["bob"]
    store_all(store, new(a, b, "the vault code is 4711", "1"))
    assert find(store, a, "vault") == ["the vault code is 4711"]
    keys = tmp_path / "message.keys"
    write_key_file(keys, "k1")
    assert fastim_main(["reseal", "--db", db_url, "--message-key-file", str(keys)]) == 0
    count = "SELECT COUNT(*) FROM message_search"
    assert run(store.read(lambda tx: tx.value(count))) == 0
    # Nothing is indexed again: the indexer's cursor is past the sealed rows.
    index(store)
    assert run(store.read(lambda tx: tx.value(count))) == 0

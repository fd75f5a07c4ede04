"""Message search (fastim/store/search.py, migration 10) on both backends: CJK, English,
emoji and mixed text, one- and two-character queries, who may find what, edits and
recalls (an UPDATE of content), paging."""

from __future__ import annotations

from typing import Any

import pytest

from fastim.chat.protocol import Cmd
from fastim.store import Store
from fastim.store import search as searching
from fastim.store.messages import insert_messages
from fastim.store.migrations import MESSAGE_SEARCH, MIGRATIONS
from fastim.store.search import match_offsets, readable_messages
from tests.store.test_store_messages import new
from tests.store_fixtures import run


def store_all(store: Store, *items: Any) -> list[int]:
    return [s.id for s in run(store.write(insert_messages, list(items), True))]


def find(store: Store, user: int, text: str, only: tuple[int, int] | None = None,
         before: int | None = None, limit: int = 20) -> list[str]:
    page = run(store.read(searching.search, user, text, only, before, limit))
    return [m["content"] for m in page.rows]


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
    # A former friend's chat stays readable, as in /chat/history.
    run(store.remove_friendship(a, b))
    assert find(store, b, "secret") == ["secret plan 1:1"]
    # Leaving the group ends searching it.
    run(store.remove_member(club, a))
    assert find(store, a, "secret") == ["secret plan 1:1"]
    readable = run(store.read(readable_messages, c))
    assert readable.conversations == {f"g{club}": (Cmd.GROUP, club)}


def test_an_update_of_content_changes_what_is_found(store: Store,
                                                    people: dict[str, int]) -> None:
    a, b = people["alice"], people["bob"]
    edited, recalled, kept = store_all(store, new(a, b, "meet at noon", "1"),
                                       new(a, b, "meet at 五点", "2"),
                                       new(a, b, "meet me", "3"))

    def update(tx: Any, id_: int, text: str) -> None:
        tx.execute("UPDATE messages SET content = ? WHERE id = ?", [text, id_])

    run(store.write(update, edited, "lunch at one"))
    run(store.write(update, recalled, ""))  # a recall erases the content
    assert find(store, a, "meet") == ["meet me"]
    assert find(store, a, "noon") == []
    assert find(store, a, "lunch at") == ["lunch at one"]
    assert find(store, a, "五点") == []
    assert find(store, a, "五") == []
    assert find(store, a, "me") == ["meet me"]
    assert kept


def test_pages_go_back_with_before(store: Store, people: dict[str, int]) -> None:
    a, b = people["alice"], people["bob"]
    ids = store_all(store, *(new(a, b, f"page {i} 周五", f"p{i}") for i in range(7)),
                    new(a, b, "unrelated", "x"))
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
        assert find(store, b, "周五晚") == ["每周五晚上 old"]
    finally:
        run(store.close())


def test_match_offsets_count_utf16_units_and_every_occurrence() -> None:
    assert match_offsets("Hello, hello", "HELLO") == [[0, 5], [7, 12]]
    assert match_offsets("🍕 pizza", "pizza") == [[3, 8]]
    assert match_offsets("每周五晚上", "周五") == [[1, 3]]
    assert match_offsets("İstanbul", "i̇st") == [[0, 3]]
    assert match_offsets("abc", "x") == []

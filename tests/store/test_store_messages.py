"""Chat messages in the store (fastim/store/messages.py) on both backends: batches, resends,
sync, read marks, restarts."""

from __future__ import annotations

import asyncio
from typing import Any

from fastim.chat.hub import NewMessage, conversation
from fastim.chat.protocol import ChatMessage, Cmd, Media
from fastim.store import Store
from fastim.store import messages as stored
from fastim.store.messages import ChatStorage, StoredMessage, insert_messages
from tests.chat_support import ChatClient, befriend
from tests.store_fixtures import ApiServer, api_config, gather, run


def new(sender: int, dstid: int, text: str, cid: str | None, kind: Cmd = Cmd.SINGLE,
        ts: int = 1_000) -> NewMessage:
    message = ChatMessage(cmd=kind, dstid=dstid, media=Media.TEXT, content=text, pic="",
                          url="", memo="", amount=0, cid=cid)
    return NewMessage(sender=sender, message=message, session_id="s",
                      conv=conversation(kind, sender, dstid), ts=ts)


def users(make_user: Any, count: int) -> list[int]:
    return [make_user().id for _ in range(count)]


def test_a_batch_gets_ascending_ids_and_resends_are_not_stored_twice(
        store: Store, make_user: Any) -> None:
    a, b = users(make_user, 2)
    for consecutive in (True, False):
        tag = "run" if consecutive else "slow"
        batch = [new(a, b, "one", f"{tag}1"), new(a, b, "two", None),
                 new(a, b, "one again", f"{tag}1"), new(b, a, "three", f"{tag}1")]
        stored: list[StoredMessage] = run(store.write(insert_messages, batch, consecutive))
        first, second, copy, third = stored
        assert first.created and second.created and third.created and not copy.created
        assert first.id < second.id < third.id
        assert copy.id == first.id
        again = run(store.write(insert_messages, [new(a, b, "one", f"{tag}1", ts=5)],
                                consecutive))
        assert again == [StoredMessage(id=first.id, ts=first.ts, created=False)]
    count = run(store.read(lambda tx: tx.value("SELECT COUNT(*) FROM messages")))
    assert count == 6


def test_a_sync_page_skips_the_rows_a_connection_holds_but_counts_their_ids(
        store: Store, make_user: Any) -> None:
    """A client's checkpoint (docs/chat-protocol.md "The sync cursor") asks again for
    what its connection was sent live: the page's `next` and `more` are as if it were
    sent, but only the rows it lacks come back; from nothing, the page carries `head`."""
    a, b = users(make_user, 2)
    storage = ChatStorage(store)
    run(storage.start())
    ids = [s.id for s in run(storage.insert_messages(
        [new(b, a, f"m{n}", f"sp{n}") for n in range(5)]))]
    held = frozenset(ids[:2] + ids[3:4])
    page = run(storage.sync_page(a, [], 0, 4, held))
    assert [m["id"] for m in page.rows] == [ids[2]]
    assert page.rows[0]["content"] == "m2"
    assert (page.next, page.more, page.head) == (ids[3], True, ids[4])
    last = run(storage.sync_page(a, [], page.next, 4, frozenset(ids)))
    assert (last.rows, last.next, last.more, last.head) == ([], ids[4], False, None)
    empty = run(storage.sync_page(a, [], ids[4], 4, frozenset()))
    assert (empty.rows, empty.next, empty.more) == ([], ids[4], False)


def test_concurrent_resends_of_one_cid_store_one_message(store: Store, make_user: Any) -> None:
    a, b = users(make_user, 2)
    for round_ in range(5):
        results = gather(*(store.write(insert_messages, [new(a, b, "race", f"r{round_}")],
                                       consecutive) for consecutive in (True, False, True)))
        flat = [r[0] for r in results]
        assert len({r.id for r in flat}) == 1
        assert sorted(r.created for r in flat) == [False, False, True]


def test_sync_history_and_read_marks(store: Store, make_user: Any) -> None:
    a, b, c = users(make_user, 3)
    storage = ChatStorage(store)
    run(storage.start())
    # Sync shows a group's messages to its members, from when they joined (a's group).
    group = run(store.create_group(a, "sync group", now=1)).id
    batch = [new(a, b, "a to b", "1"), new(c, a, "c to a", "2"),
             new(b, group, "in group", "3", kind=Cmd.GROUP), new(b, c, "b to c", "4")]
    ids = [s.id for s in run(storage.insert_messages(batch))]
    seen_by_a = run(storage.messages_since(a, [group], 0, 10))
    assert [m["id"] for m in seen_by_a] == ids[:3]
    assert run(storage.messages_since(a, [], ids[0], 10))[0]["content"] == "c to a"
    assert run(storage.messages_since(a, [group], ids[2], 10)) == []
    conv = conversation(Cmd.SINGLE, a, b)
    assert [m["content"] for m in run(storage.history(conv, None, 10))] == ["a to b"]
    assert run(storage.history(conv, ids[0], 10)) == []
    # Read marks move forward only, and never past the newest message.
    assert run(storage.mark_read(b, conv, 10**12)) == ids[0]
    assert run(storage.mark_read(b, conv, 0)) == ids[0]
    assert run(storage.read_marks(conv)) == {b: ids[0]}
    unread = run(storage.unread(c, [conversation(Cmd.SINGLE, c, b)]))
    assert unread == [{"conv": conversation(Cmd.SINGLE, c, b), "unread": 1, "last": ids[3]}]
    assert run(storage.unread(c, [])) == []


def test_a_history_page_counts_the_whole_conversation_through_its_index(
        store: Store, make_user: Any) -> None:
    a, b, c = users(make_user, 3)
    storage = ChatStorage(store)
    run(storage.start())
    run(storage.insert_messages([new(a, b, f"m{n}", f"h{n}") for n in range(4)]
                                + [new(a, c, "elsewhere", "h9")]))
    conv = conversation(Cmd.SINGLE, a, b)
    page = run(storage.history_page(conv, None, 3))
    assert [m["content"] for m in page.rows] == ["m3", "m2", "m1"] and page.total == 4
    older = run(storage.history_page(conv, page.rows[-1]["id"], 3))
    assert [m["content"] for m in older.rows] == ["m0"] and older.total == 4
    # The count reads the (conv, id) index only, never the table's rows: every page of
    # a long conversation pays for it.
    sql = "SELECT COUNT(*) FROM messages WHERE conv = ?"

    def plan(tx: Any) -> str:
        if tx.dialect.name == "sqlite":
            return " ".join(str(row[-1]) for row in tx.rows(f"EXPLAIN QUERY PLAN {sql}", [conv]))
        return " ".join(str(value) for row in tx.rows(f"EXPLAIN {sql}", [conv])
                        for value in row)

    found = run(store.read(plan))
    assert "ix_messages_conv" in found, found
    if store.dialect.name == "sqlite":
        assert "COVERING INDEX" in found, found
    else:
        assert "Using index" in found, found


def test_a_restart_keeps_history_and_read_state(db_url: str, tmp_path: Any) -> None:
    config = api_config(db_url, tmp_path)
    with ApiServer(config) as api:
        alice, ta = api.user_with_token(nickname="alice")
        bob, tb = api.user_with_token(nickname="bob")
        befriend(api, ta, bob, tb)

        async def before() -> int:
            a = await ChatClient.open(api, ta)
            ack = await a.say(10, bob["id"], "survives a restart", "keep1")
            b = await ChatClient.open(api, tb)
            await b.send(cmd=30, kind=10, dstid=alice["id"], upto=ack["id"])
            await a.cmd(31)
            await a.close()
            await b.close()
            return int(ack["id"])

        message_id = asyncio.run(before())
    with ApiServer(api_config(db_url, tmp_path)) as api:
        history = api.get(f"/chat/history?cmd=10&dstid={bob['id']}", token=ta).list
        assert [(m["id"], m["content"]) for m in history["rows"]] == [
            (message_id, "survives a restart")]
        reads = api.get(f"/chat/reads?cmd=10&dstid={alice['id']}", token=tb).list
        assert reads["rows"] == [{"userid": bob["id"], "upto": message_id}]
        assert api.get("/chat/unread", token=tb).list["rows"] == []


def test_the_stores_wire_values_are_the_protocols() -> None:
    # The store keeps cmd and media as the client sent them, without importing the chat
    # package; its own names for the values it queries must stay the protocol's.
    assert (stored.SINGLE, stored.GROUP, stored.TEXT) == (Cmd.SINGLE, Cmd.GROUP, Media.TEXT)

"""Messages at rest (docs/security.md): sealed with AES-256-GCM on both backends.

What an operator relies on: the database holds no message text; sync and history give it
back; a changed or moved sealed value is caught (a marked row and a log line, never
garbage, never a failed page); old keys keep old rows readable; and a server started
without the keys its database needs refuses to start, saying which.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fastim.__main__ import main as fastim_main
from fastim.chat.hub import NewMessage, conversation
from fastim.chat.protocol import ChatMessage, Cmd, Media
from fastim.config import Config
from fastim.store import Store
from fastim.store.messages import UNREADABLE_TEXT, ChatStorage
from fastim.store.sealing import (
    KeyFileError,
    KeyMismatch,
    MessageKey,
    Sealer,
    SealError,
    associated_data,
    load_key_file,
    parse_key_file,
    write_key_file,
)
from tests.chat_support import ChatClient, befriend
from tests.store_fixtures import ApiServer, api_config, run

SECRET = "meet me at the old mill at nine 🦊"
MEMO = "a private memo"
IMAGE = "/resource/0123abcd.png"
THUMB = "/resource/0123abcd_t.png"


def key(key_id: str, byte: int) -> MessageKey:
    return MessageKey(key_id, bytes([byte]) * 32)


def text(sender: int, dstid: int, content: str, cid: str | None, *, memo: str = "",
         kind: Cmd = Cmd.SINGLE, ts: int = 1_700_000_000_000) -> NewMessage:
    message = ChatMessage(cmd=kind, dstid=dstid, media=Media.TEXT, content=content, pic="",
                          url="", memo=memo, amount=0, cid=cid)
    return NewMessage(sender=sender, message=message, session_id="s",
                      conv=conversation(kind, sender, dstid), ts=ts)


def image(sender: int, dstid: int, cid: str) -> NewMessage:
    message = ChatMessage(cmd=Cmd.SINGLE, dstid=dstid, media=Media.IMAGE, content="",
                          pic=THUMB, url=IMAGE, memo="", amount=0, cid=cid)
    return NewMessage(sender=sender, message=message, session_id="s",
                      conv=conversation(Cmd.SINGLE, sender, dstid), ts=1_700_000_000_000)


def started(store: Store, sealer: Sealer | None) -> ChatStorage:
    storage = ChatStorage(store, sealer)
    run(storage.start())
    return storage


def raw_rows(store: Store) -> list[tuple[Any, ...]]:
    return run(store.read(lambda tx: [tuple(r) for r in tx.rows(
        "SELECT id, conv, content, pic, url, memo, sealed FROM messages ORDER BY id")]))


def execute(store: Store, sql: str, params: list[Any]) -> None:
    run(store.write(lambda tx: tx.execute(sql, params)))


# --- the sealed format ----------------------------------------------------------------


def test_a_sealed_value_names_its_version_and_key_and_never_repeats() -> None:
    sealer = Sealer([key("k1", 1)])
    ad = associated_data("s:1:2", 1, "c1", 10, 2, 1, 0, 5)
    first, second = sealer.seal(["hello", "", "", ""], ad), sealer.seal(["hello", "", "", ""], ad)
    assert first.startswith("enc:v1:k1:") and second.startswith("enc:v1:k1:")
    assert first != second  # a fresh 96-bit nonce each time
    body = first.removeprefix("enc:v1:k1:")
    raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    assert len(raw) == 12 + len("5:hello0:0:0:") + 16  # nonce, ciphertext, GCM tag
    assert sealer.open(first, ad) == ["hello", "", "", ""]
    # Each field is framed by its length, so separators inside the text are just text.
    tricky = ["3:a:b", "::", "0:", "\x00ü😀" * 1000]
    assert sealer.open(sealer.seal(tricky, ad), ad) == tricky
    assert associated_data("p1_2", 1, None, 10, 2, 1, 0, 5) != associated_data(
        "p1_2", 1, "", 10, 2, 1, 0, 5)


def test_wrong_associated_data_a_flipped_bit_or_an_unknown_key_do_not_open() -> None:
    sealer = Sealer([key("k1", 1)])
    ad = associated_data("s:1:2", 1, "c1", 10, 2, 1, 0, 5)
    value = sealer.seal([SECRET, "", "", MEMO], ad)
    for other in (associated_data("s:1:3", 1, "c1", 10, 3, 1, 0, 5),  # another conversation
                  associated_data("s:1:2", 2, "c1", 10, 2, 1, 0, 5),  # another sender
                  associated_data("s:1:2", 1, None, 10, 2, 1, 0, 5),  # cid None, not "c1"
                  associated_data("s:1:2", 1, "c1", 10, 2, 1, 0, 6)):  # another time
        with pytest.raises(SealError) as failed:
            sealer.open(value, other)
        assert failed.value.reason == "authentication"
    flipped = value[:-3] + ("A" if value[-3] != "A" else "B") + value[-2:]
    with pytest.raises(SealError, match="authentication failed"):
        sealer.open(flipped, ad)
    with pytest.raises(SealError) as unknown:
        Sealer([key("k2", 2)]).open(value, ad)
    assert unknown.value.reason == "unknown_key" and "'k1'" in str(unknown.value)
    for garbage in ("enc:v2:k1:AAAA", "enc:v1:k1:!!!!", "enc:v1:k1:AAAA"):
        with pytest.raises(SealError) as bad:
            sealer.open(garbage, ad)
        assert bad.value.reason in ("malformed", "unknown_key")


# --- key files ------------------------------------------------------------------------


def test_key_file_lines_comments_and_errors() -> None:
    k1, k2 = base64.b64encode(b"\x01" * 32).decode(), base64.b64encode(b"\x02" * 32).decode()
    keys = parse_key_file(f"# keys\n\nnew {k2}  # current\nold {k1}\n")
    assert [k.key_id for k in keys] == ["new", "old"] and keys[0].secret == b"\x02" * 32
    assert "secret" not in repr(keys[0]) and k2 not in repr(keys)
    for bad, says in ((f"k1 {k1}\nk1 {k2}\n", "listed twice"),
                      ("k1 c2hvcnQ=\n", "must be 32 bytes"),
                      ("k1 not*base64\n", "not valid base64"),
                      (f"k:1 {k1}\n", "key id"),
                      (f"k1 {k1} extra\n", "expected"),
                      ("# nothing\n", "no key")):
        with pytest.raises(KeyFileError, match=says):
            parse_key_file(bad, "keys.txt")


def test_keygen_makes_a_private_file_and_rotate_puts_a_new_key_first(tmp_path: Path) -> None:
    path = tmp_path / "message.keys"
    assert fastim_main(["keygen", str(path), "--id", "first"]) == 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [k.key_id for k in load_key_file(path)] == ["first"]
    assert fastim_main(["keygen", str(path)]) == 1  # never overwrites a key file
    old_secret = load_key_file(path)[0].secret
    assert fastim_main(["keygen", str(path), "--rotate", "--id", "second"]) == 0
    keys = load_key_file(path)
    assert [k.key_id for k in keys] == ["second", "first"]
    assert keys[1].secret == old_secret and keys[0].secret != old_secret
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(KeyFileError, match="already in the file"):
        write_key_file(path, "first", rotate=True)
    with pytest.raises(KeyFileError, match="does not exist"):
        load_key_file(tmp_path / "missing.keys")


# --- both backends --------------------------------------------------------------------


def test_the_database_holds_no_message_text_and_sync_and_history_return_it(
        store: Store, make_user: Any, db_url: str, tmp_path: Path) -> None:
    a, b = make_user().id, make_user().id
    storage = started(store, Sealer([key("k1", 1)]))
    ids = [s.id for s in run(storage.insert_messages(
        [text(a, b, SECRET, "t1", memo=MEMO), image(a, b, "i1"),
         text(b, a, "and a reply", None)]))]
    for row in raw_rows(store):
        _, _, content, pic, url, memo, sealed = row
        assert (content, pic, url, memo) == ("", "", "", "")
        assert sealed.startswith("enc:v1:k1:")
        assert SECRET not in repr(row) and IMAGE not in repr(row) and MEMO not in repr(row)
    synced = run(storage.messages_since(b, [], 0, 10))
    assert [(m["id"], m["content"], m["memo"]) for m in synced] == [
        (ids[0], SECRET, MEMO), (ids[1], "", ""), (ids[2], "and a reply", "")]
    assert (synced[1]["media"], synced[1]["url"], synced[1]["pic"]) == (4, IMAGE, THUMB)
    assert not any("unreadable" in m for m in synced)
    history = run(storage.history(conversation(Cmd.SINGLE, a, b), None, 10))
    assert [m["content"] for m in history] == ["and a reply", "", SECRET]
    if db_url.startswith("sqlite:"):
        # The stolen-file view: not a byte of the text in the database or its WAL.
        run(store.close())
        files = list(Path(db_url.removeprefix("sqlite:///")).parent.glob("fastim.db*"))
        assert files
        for file in files:
            data = file.read_bytes()
            assert SECRET.encode() not in data and MEMO.encode() not in data
            assert IMAGE.encode() not in data


def test_rows_stored_before_the_key_stay_readable(store: Store, make_user: Any) -> None:
    a, b = make_user().id, make_user().id
    plain = started(store, None)
    run(plain.insert_messages([text(a, b, "written in clear", "p1")]))
    sealed = started(store, Sealer([key("k1", 1)]))
    run(sealed.insert_messages([text(a, b, SECRET, "s1")]))
    assert [r[6] is None for r in raw_rows(store)] == [True, False]
    history = run(sealed.history(conversation(Cmd.SINGLE, a, b), None, 10))
    assert [m["content"] for m in history] == [SECRET, "written in clear"]


def test_a_tampered_or_moved_sealed_value_is_a_marked_row_and_a_log_line(
        store: Store, make_user: Any, caplog: pytest.LogCaptureFixture) -> None:
    a, b, c = make_user().id, make_user().id, make_user().id
    storage = started(store, Sealer([key("k1", 1)]))
    first, moved_from, victim, edited = (s.id for s in run(storage.insert_messages(
        [text(a, b, "first", "1"), text(a, b, SECRET, "2"), image(a, c, "3"),
         text(a, b, "amount", "4")])))
    rows = {r[0]: r for r in raw_rows(store)}
    value = rows[first][6]
    flipped = value[:-5] + ("A" if value[-5] != "A" else "B") + value[-4:]
    execute(store, "UPDATE messages SET sealed = ? WHERE id = ?", [flipped, first])
    # Someone with write access copies a sealed value into another conversation's row.
    execute(store, "UPDATE messages SET sealed = ? WHERE id = ?", [rows[moved_from][6], victim])
    # ... or edits a clear column of a sealed row.
    execute(store, "UPDATE messages SET amount = 100 WHERE id = ?", [edited])
    caplog.set_level(logging.ERROR, logger="fastim.store.messages")
    page = run(storage.history(conversation(Cmd.SINGLE, a, b), None, 10))
    by_id = {m["id"]: m for m in page}
    assert by_id[moved_from]["content"] == SECRET and "unreadable" not in by_id[moved_from]
    for broken in (by_id[first], by_id[edited]):
        assert broken["content"] == UNREADABLE_TEXT
        assert broken["unreadable"] == "authentication"
    [shown] = run(storage.history(conversation(Cmd.SINGLE, a, c), None, 10))
    assert shown["id"] == victim and shown["unreadable"] == "authentication"
    assert (shown["media"], shown["content"], shown["url"]) == (1, UNREADABLE_TEXT, "")
    logged = caplog.text
    for broken_id in (first, victim, edited):
        assert f"message {broken_id} cannot be opened: authentication failed" in logged
    assert SECRET not in logged


def test_key_rotation_keeps_old_rows_readable_while_the_old_key_is_listed(
        store: Store, make_user: Any) -> None:
    a, b = make_user().id, make_user().id
    old, new = key("k1", 1), key("k2", 2)
    run(started(store, Sealer([old])).insert_messages([text(a, b, "under k1", "1")]))
    rotated = started(store, Sealer([new, old]))
    run(rotated.insert_messages([text(a, b, "under k2", "2")]))
    assert [r[6][:10] for r in raw_rows(store)] == ["enc:v1:k1:", "enc:v1:k2:"]
    history = run(rotated.history(conversation(Cmd.SINGLE, a, b), None, 10))
    assert [m["content"] for m in history] == ["under k2", "under k1"]
    with pytest.raises(KeyMismatch, match="key.s. k1, which the message key file does not"):
        started(store, Sealer([new]))


def test_a_server_without_the_keys_its_rows_need_refuses_to_start(
        store: Store, make_user: Any) -> None:
    a, b = make_user().id, make_user().id
    started(store, None)  # nothing sealed yet: no key needed
    run(started(store, Sealer([key("k1", 1)])).insert_messages([text(a, b, SECRET, "1")]))
    with pytest.raises(KeyMismatch, match="sealed with key.s. k1; start fastim with "
                                          "--message-key-file"):
        started(store, None)
    with pytest.raises(KeyMismatch, match="fingerprints differ"):
        started(store, Sealer([key("k1", 9)]))  # the right name, another key
    # A new key that reuses the name of one that sealed rows is refused on its first write.
    reuse = ChatStorage(store, Sealer([key("k1", 9)]))
    with pytest.raises(KeyMismatch, match="give the new key another id"):
        run(reuse.insert_messages([text(a, b, "never stored", "2")]))
    assert len(raw_rows(store)) == 1


def test_reseal_puts_every_message_under_the_current_key_and_lets_old_keys_go(
        store: Store, make_user: Any, db_url: str, tmp_path: Path,
        caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = make_user().id, make_user().id
    run(started(store, None).insert_messages([text(a, b, "clear before", "1", memo=MEMO)]))
    old_file, both_file = tmp_path / "old.keys", tmp_path / "both.keys"
    write_key_file(old_file, "k1")
    old = Sealer.from_file(old_file)
    run(started(store, old).insert_messages([text(a, b, "under k1", "2"),
                                            text(a, b, "damaged", "3")]))
    damaged = raw_rows(store)[2]
    execute(store, "UPDATE messages SET sealed = ? WHERE id = ?",
            [damaged[6][:-4] + "AAAA", damaged[0]])
    both_file.write_text(old_file.read_text())
    write_key_file(both_file, "k2", rotate=True)
    current = Sealer.from_file(both_file)
    run(started(store, current).insert_messages([text(a, b, "under k2", "4")]))
    # k1 must stay while a row needs it: the damaged one cannot be moved.
    assert fastim_main(["reseal", "--db", db_url, "--message-key-file", str(both_file)]) == 1
    assert "resealed 2 messages (1 were in clear); 1 could not be opened" in (
        capsys.readouterr().out)
    assert [r[6][:10] for r in raw_rows(store)] == ["enc:v1:k2:", "enc:v1:k2:", "enc:v1:k1:",
                                                    "enc:v1:k2:"]
    assert "cannot be opened, left as it is" in caplog.text
    execute(store, "DELETE FROM messages WHERE id = ?", [damaged[0]])
    capsys.readouterr()
    assert fastim_main(["reseal", "--db", db_url, "--message-key-file", str(both_file)]) == 0
    assert "no message needs key(s) k1 any more" in capsys.readouterr().out
    rows = raw_rows(store)
    assert all(r[6].startswith("enc:v1:k2:") and r[2:6] == ("", "", "", "") for r in rows)
    assert MEMO not in repr(rows)
    # k1 is no longer needed: a key file with k2 alone is accepted, and reads all.
    only_new = Sealer([current.current])
    history = run(started(store, only_new).history(conversation(Cmd.SINGLE, a, b), None, 10))
    assert [(m["content"], m["memo"]) for m in history] == [
        ("under k2", ""), ("under k1", ""), ("clear before", MEMO)]


def test_over_the_app_history_and_sync_are_clear_and_the_table_is_not(
        db_url: str, tmp_path: Path) -> None:
    keys = tmp_path / "message.keys"
    write_key_file(keys, "k1")
    config: Config = api_config(db_url, tmp_path)
    config.message_key_file = keys
    with ApiServer(config) as api:
        alice, ta = api.user_with_token(nickname="alice")
        bob, tb = api.user_with_token(nickname="bob")
        befriend(api, ta, bob, tb)

        async def chat() -> tuple[int, dict[str, Any], list[dict[str, Any]]]:
            a = await ChatClient.open(api, ta)
            b = await ChatClient.open(api, tb)
            ack = await a.say(10, bob["id"], SECRET, "e2e1", memo=MEMO)
            live = await b.message()
            await b.close()
            # A device that was offline catches up by sync: read back from the database.
            later = await ChatClient.open(api, tb)
            await later.send(cmd=20, since=0, limit=10)
            synced = await later.cmd(21)
            await a.close()
            await later.close()
            return int(ack["id"]), live, synced["rows"]

        message_id, live, synced = asyncio.run(chat())
        assert (live["id"], live["content"], live["memo"]) == (message_id, SECRET, MEMO)
        history = api.get(f"/chat/history?cmd=10&dstid={bob['id']}", token=ta).list["rows"]
        assert [(m["id"], m["content"], m["memo"]) for m in history] == [
            (message_id, SECRET, MEMO)]
        assert [(m["id"], m["content"], m["memo"]) for m in synced] == [
            (message_id, SECRET, MEMO)]
        [row] = raw_rows(api.app.store)
        assert row[2] == "" and row[6].startswith("enc:v1:k1:") and SECRET not in repr(row)
        # A damaged row is one marked message in a 200 page, not a failed request.
        execute(api.app.store, "UPDATE messages SET sealed = ? WHERE id = ?",
                [row[6][:-6] + "AAAAAA", message_id])
        reply = api.get(f"/chat/history?cmd=10&dstid={bob['id']}", token=ta)
        assert reply.status == 200
        [marked] = reply.list["rows"]
        assert marked["content"] == UNREADABLE_TEXT and marked["unreadable"] == "authentication"


def test_fastim_serve_without_the_key_file_says_why_and_exits(tmp_path: Path) -> None:
    data = tmp_path / "data"
    keys = tmp_path / "message.keys"
    write_key_file(keys, "k1")
    storage_url = f"sqlite:///{data}/fastim.db"

    async def seal_one() -> None:
        from fastim.store import open_store

        store = await open_store(storage_url, pool_size=2)
        try:
            user = await store.create_user(mobile="13900000001", passwd="x", salt="x",
                                           kdf="scrypt:1024:8:1", nickname="a")
            storage = ChatStorage(store, Sealer.from_file(keys))
            await storage.start()
            await storage.insert_messages([text(user.id, user.id, SECRET, "1")])
        finally:
            await store.close()

    asyncio.run(seal_one())
    for extra, says in (([], "sealed with key(s) k1; start fastim with --message-key-file"),
                        (["--message-key-file", str(tmp_path / "gone.keys")],
                         "the message key file does not exist")):
        done = subprocess.run(
            [sys.executable, "-m", "fastim", "serve", "--port", "0", "--data-dir", str(data),
             *extra], cwd=tmp_path, capture_output=True, text=True, timeout=60,
            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
        assert done.returncode == 1, done.stderr
        assert says in done.stderr and "Traceback" not in done.stderr

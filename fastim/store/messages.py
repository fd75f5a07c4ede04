"""Chat messages and read marks, on SQLite and MySQL alike: the chat hub's storage.

Each function runs inside one transaction on a store worker thread (`store.read` /
`store.write`, see fastim/store/base.py); :class:`ChatStorage` is the hub's async view of
them (the `ChatStore` protocol of fastim/chat/hub.py). The tables are created by
migration 2 in fastim/store/migrations.py.

The store does not import the chat package: a message to store is anything shaped like
the hub's `NewMessage` (:class:`MessageToStore`), and the few wire values the queries
need are the constants below.
"""

from __future__ import annotations

import heapq
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from fastim.store import files
from fastim.store.base import Store
from fastim.store.errors import IntegrityViolation
from fastim.store.groups import member_window_sql, member_windows
from fastim.store.records import Page
from fastim.store.sealing import PREFIX, KeyMismatch, Sealer, SealError, associated_data
from fastim.store.sql import Tx

logger = logging.getLogger(__name__)

# `messages.cmd` of a 1:1 and of a group message, and `messages.media` of a text: the
# wire values of docs/chat-protocol.md (Cmd.SINGLE, Cmd.GROUP and Media.TEXT of
# fastim/chat/protocol.py), which the store keeps as the client sent them.
SINGLE = 10
GROUP = 11
TEXT = 1


class MessageFields(Protocol):
    """What the store keeps of a message as the client sent it (the hub's `ChatMessage`)."""

    @property
    def cid(self) -> str | None: ...
    @property
    def cmd(self) -> int: ...
    @property
    def dstid(self) -> int: ...
    @property
    def media(self) -> int: ...
    @property
    def content(self) -> str: ...
    @property
    def pic(self) -> str: ...
    @property
    def url(self) -> str: ...
    @property
    def memo(self) -> str: ...
    @property
    def amount(self) -> int: ...


class MessageToStore(Protocol):
    """A validated message with its sender, ready to be stored (the hub's `NewMessage`)."""

    @property
    def sender(self) -> int: ...
    @property
    def message(self) -> MessageFields: ...
    @property
    def conv(self) -> str: ...
    @property
    def ts(self) -> int: ...  # server time, ms


@dataclass(frozen=True)
class StoredMessage:
    """What storing a message gave: its server id and time."""

    id: int
    ts: int
    created: bool  # False when (sender, cid) was stored before: a retry


_COLUMNS = ("id, cid, sender, cmd, dstid, media, content, pic, url, memo, amount, created, "
            "conv, sealed")
_INSERT = ("INSERT INTO messages (conv, sender, cid, cmd, dstid, media, content, pic, url, "
           "memo, amount, created, sealed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")

#: What a client gets in place of a message that cannot be opened (docs/chat-protocol.md).
UNREADABLE_TEXT = "[this message cannot be decrypted]"


def _row(item: MessageToStore, sealer: Sealer | None) -> tuple[Any, ...]:
    m = item.message
    identity = (item.conv, item.sender, m.cid, int(m.cmd), m.dstid, int(m.media), m.amount,
                item.ts)
    if sealer is None:
        return (item.conv, item.sender, m.cid, int(m.cmd), m.dstid, int(m.media), m.content,
                m.pic, m.url, m.memo, m.amount, item.ts, None)
    # The user's text goes only into `sealed`; the clear columns keep '' (migration 3).
    sealed = sealer.seal((m.content, m.pic, m.url, m.memo), associated_data(*identity))
    return (item.conv, item.sender, m.cid, int(m.cmd), m.dstid, int(m.media), "", "", "",
            "", m.amount, item.ts, sealed)


def as_message(row: Sequence[Any], sealer: Sealer | None = None) -> dict[str, Any]:
    """A stored row in the shape clients receive (docs/chat-protocol.md), opened if sealed.

    A sealed row that cannot be opened (no key for it, or authentication failed: the
    ciphertext or the row's clear columns were changed) is not an error for the whole
    page: it comes back as a text message saying so, with ``"unreadable": reason``, and
    the error is logged with the row's id.
    """
    (id_, cid, sender, cmd, dstid, media, content, pic, url, memo, amount, created,
     conv, sealed) = row
    message = {"id": int(id_), "cid": cid, "userid": int(sender), "cmd": int(cmd),
               "dstid": int(dstid), "media": int(media), "content": content, "pic": pic,
               "url": url, "memo": memo, "amount": int(amount), "ts": int(created)}
    if sealed is None:
        return message
    try:
        if sealer is None:
            raise SealError("unknown_key", "the server has no message key file")
        ad = associated_data(conv, sender, cid, cmd, dstid, media, amount, created)
        content, pic, url, memo = sealer.open(sealed, ad)
    except (SealError, ValueError) as error:
        reason = error.reason if isinstance(error, SealError) else "malformed"
        logger.error("message %s cannot be opened: %s", id_, error)
        # An image whose url is lost is shown as this text instead of a broken image.
        message.update(media=TEXT, content=UNREADABLE_TEXT, pic="", url="",
                       memo="", unreadable=reason)
        return message
    message.update(content=content, pic=pic, url=url, memo=memo)
    return message


def _already_stored(tx: Tx,
                    batch: Sequence[MessageToStore]) -> dict[tuple[int, str], tuple[int, int]]:
    """(sender, cid) -> (id, ts) of the messages in `batch` that a retry sent before."""
    keys = sorted({(i.sender, i.message.cid) for i in batch if i.message.cid is not None})
    found: dict[tuple[int, str], tuple[int, int]] = {}
    for start in range(0, len(keys), 200):
        chunk = keys[start:start + 200]
        where = " OR ".join("(sender = ? AND cid = ?)" for _ in chunk)
        params = [value for key in chunk for value in key]
        for id_, sender, cid, created in tx.rows(
                f"SELECT id, sender, cid, created FROM messages WHERE {where}", params):
            found[(int(sender), cid)] = (int(id_), int(created))
    return found


def insert_messages(tx: Tx, batch: Sequence[MessageToStore], consecutive_ids: bool,
                    sealer: Sealer | None = None) -> list[StoredMessage]:
    """Store a batch in one transaction; a (sender, cid) seen before is not stored again.

    With `consecutive_ids` (SQLite's single writer; InnoDB with innodb_autoinc_lock_mode
    0 or 1) one multi-row INSERT stores the new rows, and their ids are the run that ends
    at (SQLite) or starts at (MySQL) the last insert id. Otherwise, or when another node
    stored one of the same (sender, cid) in the meantime, rows go in one at a time, still
    in this one transaction, so still one commit. With a `sealer`, the user text of
    each new row is sealed (fastim/store/sealing.py).
    """
    stored = _already_stored(tx, batch)
    results: list[StoredMessage | None] = [None] * len(batch)
    fresh: list[int] = []  # indexes of rows to insert
    first_copy: dict[tuple[int, str], int] = {}
    copies: dict[int, int] = {}  # index of a resend inside this batch -> its first copy
    for index, item in enumerate(batch):
        cid = item.message.cid
        key = (item.sender, cid) if cid is not None else None
        if key is not None and key in stored:
            id_, ts = stored[key]
            results[index] = StoredMessage(id=id_, ts=ts, created=False)
        elif key is not None and key in first_copy:
            copies[index] = first_copy[key]
        else:
            if key is not None:
                first_copy[key] = index
            fresh.append(index)
    inserted = False
    if consecutive_ids and fresh:
        try:
            _insert_run(tx, batch, fresh, results, sealer)
            inserted = True
        except IntegrityViolation as violation:
            if violation.kind != "unique":
                raise
            # Another node stored one of these cids just now; go row by row. A failed
            # statement is undone alone and the transaction goes on (SQLite's ABORT
            # conflict resolution, InnoDB's statement rollback).
    if not inserted:
        for index in fresh:
            results[index] = _insert_one(tx, batch[index], sealer)
    for index, first in copies.items():
        original = results[first]
        assert original is not None
        results[index] = StoredMessage(id=original.id, ts=original.ts, created=False)
    final = [r for r in results if r is not None]
    # A file message grants its conversation access to its file (fastim/store/files.py).
    if any(item.message.media == files.FILE for item in batch):
        files.link_file_messages(tx, batch, [(r.id, r.created) for r in final])
    return final


def _insert_one(tx: Tx, item: MessageToStore, sealer: Sealer | None) -> StoredMessage:
    try:
        return StoredMessage(id=tx.insert(_INSERT, _row(item, sealer)), ts=item.ts,
                             created=True)
    except IntegrityViolation as violation:
        cid = item.message.cid
        if violation.kind != "unique" or cid is None:
            raise
        id_, ts = _already_stored(tx, [item])[(item.sender, cid)]
        return StoredMessage(id=id_, ts=ts, created=False)


def _insert_run(tx: Tx, batch: Sequence[MessageToStore], fresh: list[int],
                results: list[StoredMessage | None], sealer: Sealer | None) -> None:
    tx.executemany(_INSERT, [_row(batch[i], sealer) for i in fresh])
    for id_, index in zip(tx.inserted_ids(len(fresh)), fresh, strict=True):
        results[index] = StoredMessage(id=id_, ts=batch[index].ts, created=True)


#: Arms of one sync statement at most (SQLite allows 500 SELECTs in a compound one).
SYNC_ARMS = 400

#: MySQL: what makes a read of an id-ordered log (the messages a sync reads, the change
#: log) wait for the rows other transactions are still inserting in its range, instead
#: of passing them by. InnoDB hands out AUTO_INCREMENT ids at INSERT, not at COMMIT: two
#: transactions (two nodes' group commits, two changes) may commit their ids out of
#: order, and a plain (consistent) read between the two commits would see id n+1 but
#: not n, so a device whose cursor moved to n+1 would never get n. A locking read meets
#: the uncommitted row's lock and waits for its commit (or rollback), then reads it. In
#: READ COMMITTED it takes no gap locks, so it never holds up an INSERT: the group
#: commit is unchanged (docs/store.md, "Reading in id order"). SQLite has one writer:
#: ids commit in order there, and it needs nothing. A sync's locking UNION selects ids
#: only (`sync_statements`): with the rows' text its temporary table goes to disk in
#: Aria, and MariaDB 10.11.19 crashed (signal 11 in `create_tmp_table`'s clean-up) on
#: such a locking UNION when that table could not be made.
IN_ORDER = " LOCK IN SHARE MODE"

#: MySQL: the first window of ids a sync page looks at is this many times its limit.
SYNC_WINDOW = 4


def sync_statements(dialect: str, user_id: int, groups: Sequence[int], since: int,
                    limit: int, upto: int | None = None,
                    ids_only: bool = False) -> list[tuple[str, list[Any]]]:
    """The statements of one sync page (:func:`messages_since`), with their parameters:
    messages with ``since < id`` (and ``id <= upto`` when given), oldest first.

    One SELECT ("arm") per source of what the user may see, each a range of an index
    whose last column is ``id``, so each yields its rows in id order without sorting:
    1:1 messages to the user (``ix_messages_dst``), 1:1 messages from them
    (``ix_messages_sender``), and each group's messages (``ix_messages_dst``). An OR of
    them all (the old shape) could use no index for the order, and read and sorted the
    user's whole history for every page. SQLite merges a compound SELECT's ordered arms
    as co-routines and stops at the LIMIT. MySQL runs each arm to its own LIMIT and sorts
    what they return in a temporary table: :func:`messages_since` bounds that by a window
    of ids (`upto`). There it asks for the ids only (`ids_only`), each arm a locking
    read (IN_ORDER), so a message still being committed in its range is waited for,
    never skipped; and the temporary table holds one BIGINT a row, in memory, where the
    rows' text would put it on disk (Aria). More than SYNC_ARMS arms go in several
    statements."""
    bounds = "id > ?" if upto is None else "id > ? AND id <= ?"
    ids = [since] if upto is None else [since, upto]
    arms: list[tuple[str, list[Any]]] = [
        (f"cmd = ? AND dstid = ? AND {bounds}", [SINGLE, user_id, *ids]),
        # `dstid <> ?`: a row to oneself (which the hub never stores) would be in both.
        (f"sender = ? AND cmd = ? AND {bounds} AND dstid <> ?",
         [user_id, SINGLE, *ids, user_id]),
        # A group's messages from the user's join on (their window, fastim/store/groups.py).
        *((f"cmd = ? AND dstid = ? AND {bounds} AND {member_window_sql()}",
           [GROUP, group, *ids, user_id]) for group in groups),
    ]
    statements = []
    for start in range(0, len(arms), SYNC_ARMS):
        parts: list[str] = []
        params: list[Any] = []
        for where, values in arms[start:start + SYNC_ARMS]:
            if dialect == "sqlite":
                columns = "id" if ids_only else _COLUMNS
                parts.append(f"SELECT {columns} FROM messages WHERE {where}")
                params += values
            else:
                columns, lock = ("id", IN_ORDER) if ids_only else (_COLUMNS, "")
                parts.append(f"(SELECT {columns} FROM messages WHERE {where} "
                             f"ORDER BY id LIMIT ?{lock})")
                params += [*values, limit]
        statements.append((" UNION ALL ".join(parts) + " ORDER BY id LIMIT ?",
                           [*params, limit]))
    return statements


def _sync_rows(tx: Tx, user_id: int, groups: Sequence[int], since: int, limit: int,
               upto: int | None = None, ids_only: bool = False) -> list[tuple[Any, ...]]:
    pages = [tx.rows(sql, params) for sql, params in
             sync_statements(tx.dialect.name, user_id, groups, since, limit, upto,
                             ids_only)]
    if len(pages) == 1:
        return pages[0]
    return list(heapq.merge(*pages, key=lambda row: int(row[0])))[:limit]


def rows_by_id(tx: Tx, ids: Sequence[int]) -> list[tuple[Any, ...]]:
    """The messages with these ids (a sync page's: at most its limit), in id order."""
    if not ids:
        return []
    marks = ", ".join("?" for _ in ids)
    return tx.rows(f"SELECT {_COLUMNS} FROM messages WHERE id IN ({marks}) ORDER BY id",
                   list(ids))


def messages_since(tx: Tx, user_id: int, groups: Sequence[int], since: int,
                   limit: int, sealer: Sealer | None = None) -> list[dict[str, Any]]:
    """What `user_id` may see with an id above `since`: their 1:1 messages both ways and
    the messages of their groups from when they joined (their history window,
    fastim/store/groups.py), oldest first, at most `limit` (sync_statements).

    On MySQL the page is read in windows of ids, ``since < id <= since + width``, the
    width doubling from SYNC_WINDOW × limit until the page is full or the newest message
    is passed: each arm then reads only what the window holds, not up to `limit` rows
    of its own, so a page costs about what it returns (and a log of the gaps). The
    windows give the page's ids (locking reads: a message still being committed below
    the newest is waited for, docs/store.md "Reading in id order"); the rows are then
    read by their primary key."""
    if tx.dialect.name == "sqlite":
        rows = _sync_rows(tx, user_id, groups, since, limit)
    else:
        rows = rows_by_id(tx, sync_ids(tx, user_id, groups, since, limit))
    return [as_message(r, sealer) for r in rows]


def sync_ids(tx: Tx, user_id: int, groups: Sequence[int], since: int,
             limit: int) -> list[int]:
    """The ids of `messages_since`'s page, oldest first: on MySQL read in windows of
    ids with locking reads (see there), on SQLite in one compound SELECT."""
    if tx.dialect.name == "sqlite":
        return [int(row[0]) for row in _sync_rows(tx, user_id, groups, since, limit,
                                                  ids_only=True)]
    newest = int(tx.value("SELECT MAX(id) FROM messages") or 0)
    ids: list[int] = []
    low, width = since, SYNC_WINDOW * limit
    while low < newest and len(ids) < limit:
        high = min(low + width, newest)
        ids += [int(row[0]) for row in _sync_rows(tx, user_id, groups, low,
                                                  limit - len(ids), high, ids_only=True)]
        low, width = high, width * 2
    return ids


@dataclass
class SyncPage:
    """One page of a sync (cmd 20) for one connection (docs/chat-protocol.md): of its
    messages (`sync_page`) or of its changes (`change_page`, fastim/store/changes.py)."""

    #: The page's messages or change frames, oldest first, without those the connection
    #: was sent already.
    rows: list[dict[str, Any]]
    #: The id the page reached: its last row's, sent already or not (`since` if none).
    next: int
    #: Whether messages above `next` wait for the next page.
    more: bool
    #: For a sync from nothing (`since` 0): the newest message id below which every
    #: message is committed, where a device with nothing starts its cursor.
    head: int | None = None


def sync_page(tx: Tx, user_id: int, groups: Sequence[int], since: int, limit: int,
              sent: frozenset[int], sealer: Sealer | None) -> SyncPage:
    """A sync page for a connection that was sent the messages `sent` already: their ids
    count for `next` and `more`, but their rows are not read again. A client that asks
    from time to time whether it missed anything (its checkpoint, docs/chat-protocol.md
    "The sync cursor") mostly holds the whole page already: then only ids are read."""
    ids = sync_ids(tx, user_id, groups, since, limit + 1)
    more = len(ids) > limit
    ids = ids[:limit]
    rows = rows_by_id(tx, [i for i in ids if i not in sent])
    head = newest_committed(tx, "messages") if since == 0 else None
    return SyncPage([as_message(r, sealer) for r in rows], ids[-1] if ids else since, more,
                    head)


#: MySQL: how many of a table's newest ids `newest_committed` waits for.
LATEST_WINDOW = 1000


def newest_committed(tx: Tx, table: str) -> int:
    """The newest id of `table` ("messages" or "message_changes") once every id below it
    is committed: where a device that holds nothing starts a cursor. On MySQL a lower id
    may still be committing after a higher one (docs/store.md "Reading in id order"): a
    locking read of the newest LATEST_WINDOW ids waits for it, so the device either reads
    it now (history) or gets it after its cursor (live, or its next sync)."""
    newest = int(tx.value(f"SELECT MAX(id) FROM {table}") or 0)
    if tx.dialect.name == "mysql" and newest:
        tx.value(f"SELECT COUNT(*) FROM {table} WHERE id > ? AND id <= ?{IN_ORDER}",
                 [newest - LATEST_WINDOW, newest])
    return newest


def _window(after: int, upto: int | None) -> tuple[str, list[Any]]:
    """The condition (and its parameters) of a history window: after < id <= upto."""
    if upto is None:
        return ("AND id > ? ", [after]) if after else ("", [])
    return "AND id > ? AND id <= ? ", [after, upto]


def history(tx: Tx, conv: str, before: int | None, limit: int,
            sealer: Sealer | None = None, after: int = 0,
            upto: int | None = None) -> list[dict[str, Any]]:
    """One conversation, newest first, strictly older than `before` when given, within
    the reader's window `after < id <= upto` (a group member's, fastim/store/groups.py)."""
    window, bounds = _window(after, upto)
    # MySQL, given a small `before` (a page far back, or a small table), may judge a range
    # of the primary key cheaper and then filter by conv: a scan that grows with the
    # table. The (conv, id) range is right whatever the statistics say.
    source = "messages" if tx.dialect.name == "sqlite" else "messages FORCE INDEX (ix_messages_conv)"
    if before is None:
        rows = tx.rows(f"SELECT {_COLUMNS} FROM {source} WHERE conv = ? {window}"
                       "ORDER BY id DESC LIMIT ?", [conv, *bounds, limit])
    else:
        rows = tx.rows(f"SELECT {_COLUMNS} FROM {source} WHERE conv = ? AND id < ? {window}"
                       "ORDER BY id DESC LIMIT ?", [conv, before, *bounds, limit])
    return [as_message(r, sealer) for r in rows]


def count_messages(tx: Tx, conv: str, after: int = 0, upto: int | None = None) -> int:
    """How many messages a conversation holds (within a window): a COUNT over the range
    of the ``ix_messages_conv (conv, id)`` index, never over the table's rows."""
    window, bounds = _window(after, upto)
    return int(tx.value(f"SELECT COUNT(*) FROM messages WHERE conv = ? {window}",
                        [conv, *bounds]) or 0)


def history_page(tx: Tx, conv: str, before: int | None, limit: int,
                 sealer: Sealer | None = None, after: int = 0,
                 upto: int | None = None) -> Page[dict[str, Any]]:
    """One page of `history` and the number of messages of the whole conversation (what
    `total` means for every list of docs/api.md), read in the same transaction so the two
    agree; both within the reader's window."""
    return Page(history(tx, conv, before, limit, sealer, after, upto),
                count_messages(tx, conv, after, upto))


def has_messages(tx: Tx, conv: str) -> bool:
    """Whether the conversation has any stored message."""
    return tx.row("SELECT 1 FROM messages WHERE conv = ? LIMIT 1", [conv]) is not None


def mark_read(tx: Tx, user_id: int, conv: str, upto: int) -> int:
    """Move the read mark forward (never back, never past the newest message)."""
    newest = tx.value("SELECT MAX(id) FROM messages WHERE conv = ?", [conv]) or 0
    upto = min(upto, int(newest))
    tx.execute(tx.dialect.upsert("read_marks", ("user_id", "conv", "upto"),
                                 key=("user_id", "conv"), greatest=("upto",)),
               [user_id, conv, upto])
    return int(tx.value("SELECT upto FROM read_marks WHERE user_id = ? AND conv = ?",
                        [user_id, conv]))


def read_marks(tx: Tx, conv: str) -> dict[int, int]:
    """Who has read a conversation how far (a group's read counts come from this): a
    range of ix_read_marks_conv."""
    return {int(u): int(upto) for u, upto in
            tx.rows("SELECT user_id, upto FROM read_marks WHERE conv = ?", [conv])}


#: Conversations counted by one unread statement (SQLite allows 500 SELECTs in one).
UNREAD_ARMS = 200


def unread_statements(dialect: str, user_id: int, convs: Sequence[str],
                      marks: dict[str, int]) -> list[tuple[str, list[Any]]]:
    """The statements of :func:`unread`: per conversation, a count over the range
    ``conv = ? AND id > upto`` of ix_messages_unread (upto is the user's read mark there,
    0 where they never marked one read), as one UNION ALL of such counts per
    UNREAD_ARMS conversations. The index holds the sender, so the count never reads the
    table; each conversation costs the messages above its mark (all of it, where the
    user never read it). The index is named: that range is never longer than
    ``id > upto`` over the whole table, which MySQL's estimates sometimes prefer."""
    hint = ("INDEXED BY ix_messages_unread" if dialect == "sqlite"
            else "FORCE INDEX (ix_messages_unread)")
    statements = []
    for start in range(0, len(convs), UNREAD_ARMS):
        parts, params = [], []
        for conv in convs[start:start + UNREAD_ARMS]:
            parts.append(f"SELECT ?, COUNT(*), MAX(id) FROM messages {hint} "
                         "WHERE conv = ? AND id > ? AND sender <> ?")
            params += [conv, conv, marks.get(conv, 0), user_id]
        statements.append((" UNION ALL ".join(parts), params))
    return statements


def unread(tx: Tx, user_id: int, convs: Sequence[str]) -> list[dict[str, Any]]:
    """Per conversation: messages from others above the user's read mark, and the newest id.

    Driven from the read marks (one range of the read_marks key): each conversation then
    reads only the messages above its mark, where a join on the marks read the user's
    whole history (an ``id > COALESCE(upto, 0)`` cannot narrow an index range)."""
    if not convs:
        return []
    marks = {str(conv): int(upto) for conv, upto in
             tx.rows("SELECT conv, upto FROM read_marks WHERE user_id = ?", [user_id])}
    result = []
    for sql, params in unread_statements(tx.dialect.name, user_id, convs, marks):
        for conv, count, last in tx.rows(sql, params):
            if count:
                result.append({"conv": str(conv), "unread": int(count), "last": int(last)})
    return result


def newest_ids(tx: Tx, windows: dict[str, int]) -> dict[str, int]:
    """Per conversation, the id of its newest message above ``windows[conv]`` (a group
    member's window starts after its ``since_id``; 0 for a 1:1 chat): the list previews
    of /chat/summaries. One UNION ALL of ``MAX(id)`` per UNREAD_ARMS conversations, each
    the last entry of a range of ``ix_messages_conv (conv, id)``, whatever the history
    holds. Conversations without a message are left out."""
    convs = list(windows)
    found: dict[str, int] = {}
    for start in range(0, len(convs), UNREAD_ARMS):
        parts, params = [], []
        for conv in convs[start:start + UNREAD_ARMS]:
            parts.append("SELECT ?, MAX(id) FROM messages WHERE conv = ? AND id > ?")
            params += [conv, conv, windows[conv]]
        for conv, newest in tx.rows(" UNION ALL ".join(parts), params):
            if newest is not None:
                found[str(conv)] = int(newest)
    return found


def newest_messages(tx: Tx, windows: dict[str, int],
                    sealer: Sealer | None = None) -> dict[str, dict[str, Any]]:
    """Per conversation, its newest message (within ``id > windows[conv]``), as stored."""
    conv_of = {message_id: conv for conv, message_id in newest_ids(tx, windows).items()}
    if not conv_of:
        return {}
    ids = list(conv_of)
    marks = ", ".join("?" for _ in ids)
    return {conv_of[int(r[0])]: as_message(r, sealer) for r in
            tx.rows(f"SELECT {_COLUMNS} FROM messages WHERE id IN ({marks})", ids)}


def check_keys(tx: Tx, sealer: Sealer | None) -> None:
    """Refuse to run (KeyMismatch) unless every key that has sealed messages in this
    database is in the key file, as the same key: rather than stop at start-up, a server
    without them would show every sealed message as unreadable."""
    rows = tx.rows("SELECT key_id, fingerprint FROM message_keys ORDER BY first_used, key_id")
    known = {k.key_id: k for k in sealer.keys} if sealer is not None else {}
    missing = [key_id for key_id, _ in rows if key_id not in known]
    changed = [key_id for key_id, fingerprint in rows
               if key_id in known and known[key_id].fingerprint != fingerprint]
    if missing and sealer is None:
        raise KeyMismatch(
            f"the database holds messages sealed with key(s) {', '.join(missing)}; start "
            "fastim with --message-key-file (FASTIM_MESSAGE_KEY_FILE) naming a key file "
            "that lists them")
    if missing:
        raise KeyMismatch(
            f"the database holds messages sealed with key(s) {', '.join(missing)}, which "
            "the message key file does not list; keep old keys in the file, after the "
            "current one")
    if changed:
        raise KeyMismatch(
            f"key(s) {', '.join(changed)} in the message key file are not the keys of that "
            "name that sealed the stored messages (their fingerprints differ)")


def record_key(tx: Tx, sealer: Sealer, now: int) -> None:
    """Note in `message_keys` that the current key seals messages (before the first
    message it seals commits, in the same transaction)."""
    key = sealer.current
    tx.execute(tx.dialect.insert_ignore("message_keys", ("key_id", "fingerprint", "first_used")),
               [key.key_id, key.fingerprint, now])
    stored = tx.value("SELECT fingerprint FROM message_keys WHERE key_id = ?", [key.key_id])
    if stored != key.fingerprint:
        raise KeyMismatch(f"another key named {key.key_id!r} has sealed messages in this "
                          "database; give the new key another id")


def _record_key_and_insert(tx: Tx, batch: Sequence[MessageToStore], consecutive_ids: bool,
                           sealer: Sealer) -> list[StoredMessage]:
    record_key(tx, sealer, min(item.ts for item in batch) // 1000)
    return insert_messages(tx, batch, consecutive_ids, sealer)


@dataclass
class ResealReport:
    """What `reseal` did: rows moved to the current key, of which were clear before;
    rows that failed to open (left as they were); keys no row needs any more."""

    resealed: int = 0
    were_clear: int = 0
    unreadable: int = 0
    retired_keys: list[str] = field(default_factory=list)


def _reseal_batch(tx: Tx, sealer: Sealer, after: int,
                  limit: int) -> tuple[int | None, ResealReport, set[str]]:
    """Seal under the current key the rows after id `after` (up to `limit`) that are clear
    or sealed with an older key. Returns the last id looked at (None when no row was
    left), what was done, and the keys of rows that failed to open. (Counts are returned,
    not accumulated here: MySQL may run this function again after a deadlock.)"""
    rows = tx.rows(f"SELECT {_COLUMNS} FROM messages WHERE id > ? ORDER BY id LIMIT ?"
                   f"{tx.dialect.for_update}", [after, limit])
    current = f"{PREFIX}{sealer.current.key_id}:"
    done = ResealReport()
    needed: set[str] = set()
    for row in rows:
        (id_, cid, sender, cmd, dstid, media, content, pic, url, memo, amount, created,
         conv, sealed) = row
        if sealed is not None and sealed.startswith(current):
            continue
        ad = associated_data(conv, sender, cid, cmd, dstid, media, amount, created)
        if sealed is None:
            fields = [content, pic, url, memo]
        else:
            try:
                fields = sealer.open(sealed, ad)
            except SealError as error:
                logger.error("message %s cannot be opened, left as it is: %s", id_, error)
                done.unreadable += 1
                needed.add(sealed[len(PREFIX):].partition(":")[0])
                continue
        tx.execute("UPDATE messages SET content = '', pic = '', url = '', memo = '', "
                   "sealed = ? WHERE id = ?", [sealer.seal(fields, ad), id_])
        done.resealed += 1
        done.were_clear += sealed is None
    return (int(rows[-1][0]) if rows else None), done, needed


def _retire_keys(tx: Tx, sealer: Sealer, still_needed: set[str]) -> list[str]:
    listed = [key_id for (key_id,) in tx.rows("SELECT key_id FROM message_keys")]
    retired = sorted(k for k in listed if k != sealer.current.key_id and k not in still_needed)
    for key_id in retired:
        tx.execute("DELETE FROM message_keys WHERE key_id = ?", [key_id])
    return retired


async def reseal(store: Store, sealer: Sealer, batch: int = 500) -> ResealReport:
    """Put every message under the current key: seal the clear ones, re-seal those of
    older keys, a batch per transaction, then forget (in `message_keys`) the keys no row
    needs any more, so they may leave the key file. Safe while servers run, if they all
    use this key file already: nothing else updates a stored message."""
    await store.read(check_keys, sealer)
    await store.write(record_key, sealer, int(time.time()))
    report = ResealReport()
    still_needed: set[str] = set()
    after: int | None = 0
    while after is not None:
        after, done, needed = await store.write(_reseal_batch, sealer, after, batch)
        report.resealed += done.resealed
        report.were_clear += done.were_clear
        report.unreadable += done.unreadable
        still_needed |= needed
    report.retired_keys = await store.write(_retire_keys, sealer, still_needed)
    return report


def _check_keys_and_ids(tx: Tx, sealer: Sealer | None) -> bool:
    check_keys(tx, sealer)
    return tx.dialect.consecutive_ids(tx)


class ChatStorage:
    """The hub's view of the store (the `ChatStore` protocol of fastim/chat/hub.py).

    With a `sealer` (from `--message-key-file`), new messages are sealed and sealed
    messages are opened on the way out (fastim/store/sealing.py); without one, messages
    are stored in clear, and `start()` refuses a database that holds sealed ones.
    Call `start()` before the first message is stored.
    """

    def __init__(self, store: Store, sealer: Sealer | None = None) -> None:
        self.store = store
        self.sealer = sealer
        # Whether a batch may go in as one multi-row INSERT: start() asks the database.
        self.consecutive_ids = False
        self._key_recorded = False

    async def start(self) -> None:
        self.consecutive_ids = await self.store.read(_check_keys_and_ids, self.sealer)

    async def friends_of(self, user_id: int) -> set[int]:
        return set(await self.store.friend_ids(user_id))

    async def group_windows(self, user_id: int) -> dict[int, int]:
        """The user's groups, each with its history window (`member_windows`)."""
        return await self.store.read(member_windows, user_id)

    async def insert_messages(self, batch: Sequence[MessageToStore]) -> list[StoredMessage]:
        if self.sealer is not None and not self._key_recorded and batch:
            results = await self.store.write(_record_key_and_insert, batch,
                                             self.consecutive_ids, self.sealer)
            self._key_recorded = True
            return results
        return await self.store.write(insert_messages, batch, self.consecutive_ids,
                                      self.sealer)

    async def messages_since(self, user_id: int, groups: Sequence[int], since: int,
                             limit: int) -> list[dict[str, Any]]:
        return await self.store.read(messages_since, user_id, groups, since, limit,
                                     self.sealer)

    async def sync_page(self, user_id: int, groups: Sequence[int], since: int, limit: int,
                        sent: frozenset[int]) -> SyncPage:
        return await self.store.read(sync_page, user_id, groups, since, limit, sent,
                                     self.sealer)

    async def mark_read(self, user_id: int, conv: str, upto: int) -> int:
        return await self.store.write(mark_read, user_id, conv, upto)

    async def history(self, conv: str, before: int | None, limit: int) -> list[dict[str, Any]]:
        return await self.store.read(history, conv, before, limit, self.sealer)

    async def history_page(self, conv: str, before: int | None, limit: int,
                           after: int = 0, upto: int | None = None) -> Page[dict[str, Any]]:
        return await self.store.read(history_page, conv, before, limit, self.sealer,
                                     after, upto)

    async def read_marks(self, conv: str) -> dict[int, int]:
        return await self.store.read(read_marks, conv)

    async def has_messages(self, conv: str) -> bool:
        return await self.store.read(has_messages, conv)

    async def unread(self, user_id: int, convs: Sequence[str]) -> list[dict[str, Any]]:
        return await self.store.read(unread, user_id, convs)

    async def newest_for(self, user_id: int,
                         windows: dict[str, int]) -> dict[str, dict[str, Any]]:
        """Each conversation's newest message (the list previews of /chat/summaries)."""
        return await self.store.read(newest_messages, windows, self.sealer)

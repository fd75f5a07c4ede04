"""Changes to stored messages, on SQLite and MySQL alike: replies, mentions, edits,
recalls, reactions, delete-for-me, and the change log devices sync them by.

The tables are migration 8 (fastim/store/migrations.py, docs/store.md). The rules (who
may change what, and until when) are the chat's (fastim/chat/lifecycle.py): a change is
applied by `apply_change`, which locks the message's row, hands its state to the rules'
`check` and, if they raise nothing, writes the change and its log row in the same
transaction. :class:`LifecycleStorage` is the hub's `ChatStorage` with these added.

A message's *view* is what a client is shown of it now (docs/chat-protocol.md):
`as_message`'s fields plus `reply` (the quote of the message it answers), `edited`,
`recalled`, `reactions`, `mentions` and, for the reader, `mentioned` and `hidden`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fastim.store.files import unlink_message
from fastim.store.messages import (
    _COLUMNS,
    IN_ORDER,
    ChatStorage,
    MessageToStore,
    StoredMessage,
    SyncPage,
    as_message,
    count_messages,
    history,
    insert_messages,
    messages_since,
    newest_committed,
    newest_ids,
    record_key,
    sync_page,
)
from fastim.store.records import Page
from fastim.store.sealing import Sealer, associated_data
from fastim.store.sql import Tx

# The kinds of change: the wire commands of docs/chat-protocol.md (Cmd.EDIT ... of
# fastim/chat/protocol.py), kept in `message_changes.kind`.
EDIT = 60
RECALL = 61
REACT = 62
DELETE = 63

#: Characters of a quoted message's content a reply carries.
QUOTE_LENGTH = 100
#: `message_mentions.user_id` of a mention of everyone ("all").
EVERYONE = 0


class ChangeRefused(Exception):
    """A change the rules (or a missing message) refuse: `reason` is the wire's error."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class MessageState:
    """What the rules need to know of a stored message, read under its row lock."""

    id: int
    conv: str
    sender: int
    cmd: int
    dstid: int
    media: int
    created: int  # ms
    recalled: bool
    reactions: dict[str, list[int]]


@dataclass(frozen=True)
class ChangeRequest:
    kind: int  # EDIT, RECALL, REACT, DELETE
    message_id: int
    actor: int
    cid: str | None
    ts: int  # server time, ms
    content: str = ""
    emoji: str = ""
    on: bool = True


@dataclass(frozen=True)
class ChangeResult:
    """An applied change (or the one a resend repeats): the change id (None when nothing
    changed, e.g. a reaction that was already there), and the message's view now."""

    change: int | None
    kind: int
    actor: int
    dup: bool
    view: dict[str, Any]
    only_user: int | None = None


Check = Callable[[Tx, MessageState, ChangeRequest], None]


# -- new messages: what a reply and mentions add -------------------------------------

def insert_with_extras(tx: Tx, batch: Sequence[MessageToStore], consecutive_ids: bool,
                       sealer: Sealer | None, record: bool) -> list[StoredMessage]:
    """`insert_messages`, and in the same transaction the reply and mentions of each new
    message that has them (a message without either costs nothing more)."""
    if record and sealer is not None:
        record_key(tx, sealer, min(item.ts for item in batch) // 1000)
    results = insert_messages(tx, batch, consecutive_ids, sealer)
    meta: list[tuple[int, int]] = []
    mentions: list[tuple[int, int]] = []
    for item, stored in zip(batch, results, strict=True):
        if not stored.created:
            continue
        reply_to = getattr(item.message, "reply_to", None)
        if reply_to is not None:
            meta.append((stored.id, reply_to))
        named = getattr(item.message, "mentions", None)
        if named == "all":
            mentions.append((stored.id, EVERYONE))
        elif named:
            mentions.extend((stored.id, user) for user in sorted(set(named)))
    if meta:
        tx.executemany("INSERT INTO message_meta (message_id, reply_to) VALUES (?, ?)", meta)
    if mentions:
        tx.executemany("INSERT INTO message_mentions (message_id, user_id) VALUES (?, ?)",
                       mentions)
    return results


def quote(tx: Tx, conv: str, message_id: int, sealer: Sealer | None,
          after: int = 0) -> dict[str, Any] | None:
    """The quote a reply to `message_id` carries, None if no such message is in `conv`
    above id `after` (the start of the replier's history window in a group)."""
    row = tx.row(f"SELECT {_COLUMNS} FROM messages WHERE id = ? AND conv = ? AND id > ?",
                 [message_id, conv, after])
    if row is None:
        return None
    recalled = tx.value("SELECT recalled FROM message_meta WHERE message_id = ?",
                        [message_id])
    return _quote(as_message(row, sealer), bool(recalled))


def _quote(original: dict[str, Any], recalled: bool) -> dict[str, Any]:
    if recalled:
        return {"id": original["id"], "userid": original["userid"],
                "media": original["media"], "content": "", "recalled": True}
    return {"id": original["id"], "userid": original["userid"], "media": original["media"],
            "content": original["content"][:QUOTE_LENGTH]}


def members_among(tx: Tx, group_id: int, users: Sequence[int]) -> set[int]:
    """Which of `users` are members of the group."""
    if not users:
        return set()
    marks = ", ".join("?" for _ in users)
    return {int(u) for (u,) in tx.rows(
        f"SELECT user_id FROM memberships WHERE community_id = ? AND user_id IN ({marks})",
        [group_id, *users])}


def group_owner(tx: Tx, group_id: int) -> int | None:
    owner = tx.value("SELECT owner_id FROM communities WHERE id = ?", [group_id])
    return None if owner is None else int(owner)


# -- views: a page of messages as they are now ----------------------------------------

def _in(ids: Sequence[Any]) -> str:
    return ", ".join("?" for _ in ids)


def decorate(tx: Tx, rows: list[dict[str, Any]], reader: int | None,
             sealer: Sealer | None) -> list[dict[str, Any]]:
    """Add to each message what happened to it since it was sent, as `reader` sees it
    (`hidden`: deleted for them). Four small queries per page, by primary key."""
    if not rows:
        return rows
    ids = [row["id"] for row in rows]
    marks = _in(ids)
    by_id = {row["id"]: row for row in rows}
    replies: dict[int, list[dict[str, Any]]] = {}
    for message_id, reply_to, edited, recalled in tx.rows(
            f"SELECT message_id, reply_to, edited, recalled FROM message_meta "
            f"WHERE message_id IN ({marks})", ids):
        row = by_id[int(message_id)]
        if recalled:
            row.update(content="", pic="", url="", memo="", recalled=True)
            row.pop("unreadable", None)
        elif edited is not None:
            row["edited"] = int(edited)
        if reply_to is not None:
            replies.setdefault(int(reply_to), []).append(row)
    if replies:
        originals = list(replies)
        recalled_ids = {int(m) for (m,) in tx.rows(
            f"SELECT message_id FROM message_meta WHERE recalled = 1 AND message_id IN "
            f"({_in(originals)})", originals)}
        for found in tx.rows(f"SELECT {_COLUMNS} FROM messages WHERE id IN "
                             f"({_in(originals)})", originals):
            original = as_message(found, sealer)
            for row in replies.pop(original["id"]):
                row["reply"] = _quote(original, original["id"] in recalled_ids)
        for gone, rows_left in replies.items():  # the original's sender was deleted
            for row in rows_left:
                row["reply"] = {"id": gone, "userid": 0, "media": 1, "content": "",
                                "recalled": True}
    for message_id, emoji, user in tx.rows(
            f"SELECT message_id, emoji, user_id FROM message_reactions "
            f"WHERE message_id IN ({marks}) ORDER BY created, user_id", ids):
        reactions = by_id[int(message_id)].setdefault("reactions", {})
        reactions.setdefault(emoji, []).append(int(user))
    for message_id, user in tx.rows(
            f"SELECT message_id, user_id FROM message_mentions WHERE message_id IN ({marks}) "
            "ORDER BY message_id, user_id", ids):
        row = by_id[int(message_id)]
        if int(user) == EVERYONE:
            row["mentions"] = "all"
        elif row.get("mentions") != "all":
            row.setdefault("mentions", []).append(int(user))
        if reader is not None and int(user) in (EVERYONE, reader) \
                and row["userid"] != reader:
            row["mentioned"] = True
    if reader is not None:
        for (message_id,) in tx.rows(
                f"SELECT message_id FROM message_hidden WHERE user_id = ? "
                f"AND message_id IN ({marks})", [reader, *ids]):
            by_id[int(message_id)]["hidden"] = True
    return rows


def view(tx: Tx, message_id: int, sealer: Sealer | None,
         reader: int | None = None) -> dict[str, Any] | None:
    row = tx.row(f"SELECT {_COLUMNS} FROM messages WHERE id = ?", [message_id])
    if row is None:
        return None
    return decorate(tx, [as_message(row, sealer)], reader, sealer)[0]


def messages_since_for(tx: Tx, user_id: int, groups: Sequence[int], since: int, limit: int,
                       sealer: Sealer | None) -> list[dict[str, Any]]:
    """`messages_since` as the user sees them now; the ones they deleted for themselves
    are marked `hidden` (the hub leaves them out after moving its cursor past them)."""
    return decorate(tx, messages_since(tx, user_id, groups, since, limit, sealer), user_id,
                    sealer)


def sync_page_for(tx: Tx, user_id: int, groups: Sequence[int], since: int, limit: int,
                  sent: frozenset[int], sealer: Sealer | None) -> SyncPage:
    """`sync_page` with its messages as the user sees them now (`messages_since_for`)."""
    page = sync_page(tx, user_id, groups, since, limit, sent, sealer)
    page.rows = decorate(tx, page.rows, user_id, sealer)
    return page


def history_for(tx: Tx, user_id: int, conv: str, before: int | None, limit: int,
                sealer: Sealer | None, after: int = 0,
                upto: int | None = None) -> Page[dict[str, Any]]:
    """One page of a conversation as `user_id` sees it now, within their window
    (``after < id <= upto``, a group member's, fastim/store/groups.py), without the
    messages they deleted for themselves; `total` does not count those either."""
    kept: list[dict[str, Any]] = []
    cursor = before
    while True:
        rows = decorate(tx, history(tx, conv, cursor, limit, sealer, after, upto), user_id,
                        sealer)
        kept += [row for row in rows if not row.pop("hidden", False)]
        if len(rows) < limit or len(kept) >= limit:
            break
        cursor = rows[-1]["id"]
    total = count_messages(tx, conv, after, upto)
    hidden = int(tx.value(
        "SELECT COUNT(*) FROM message_hidden h JOIN messages m ON m.id = h.message_id "
        "WHERE h.user_id = ? AND m.conv = ? AND m.id > ? AND m.id <= ?",
        [user_id, conv, after, upto if upto is not None else 2 ** 62]) or 0)
    return Page(kept[:limit], total - hidden)


def newest_for(tx: Tx, user_id: int, windows: dict[str, int],
               sealer: Sealer | None) -> dict[str, dict[str, Any]]:
    """Per conversation, its newest message as `user_id` sees it now (edited, recalled,
    reactions; within their window ``id > windows[conv]``): two statements, whatever
    the number of conversations (the newest ids, then those rows by primary key). Where
    the newest is one the user deleted for themselves, that conversation alone reads
    back a page of its history for the newest they kept."""
    newest = newest_ids(tx, windows)
    if not newest:
        return {}
    conv_of = {message_id: conv for conv, message_id in newest.items()}
    ids = list(conv_of)
    rows = [as_message(r, sealer) for r in
            tx.rows(f"SELECT {_COLUMNS} FROM messages WHERE id IN ({_in(ids)})", ids)]
    found: dict[str, dict[str, Any]] = {}
    for row in decorate(tx, rows, user_id, sealer):
        conv = conv_of[row["id"]]
        if not row.pop("hidden", False):
            found[conv] = row
            continue
        cursor = row["id"]
        for _ in range(10):  # 200 deleted in a row: no preview rather than a long read
            page = decorate(tx, history(tx, conv, cursor, 20, sealer, windows[conv]),
                            user_id, sealer)
            visible = [r for r in page if not r.pop("hidden", False)]
            if visible:
                found[conv] = visible[0]
                break
            if len(page) < 20:
                break
            cursor = page[-1]["id"]
    return found


def unread_mentions(tx: Tx, user_id: int, convs: Sequence[str]) -> dict[str, int]:
    """Per conversation: the unread messages (above the read mark) that mention the user
    or everyone, not counting their own."""
    if not convs:
        return {}
    rows = tx.rows(
        "SELECT m.conv, COUNT(DISTINCT m.id) FROM message_mentions x "
        "JOIN messages m ON m.id = x.message_id "
        "LEFT JOIN read_marks r ON r.user_id = ? AND r.conv = m.conv "
        f"WHERE x.user_id IN (?, {EVERYONE}) AND m.conv IN ({_in(convs)}) "
        "AND m.sender <> ? AND m.id > COALESCE(r.upto, 0) GROUP BY m.conv",
        [user_id, user_id, *convs, user_id])
    return {conv: int(count) for conv, count in rows}


# -- applying a change ----------------------------------------------------------------

def _state(tx: Tx, message_id: int) -> MessageState | None:
    row = tx.row("SELECT id, conv, sender, cmd, dstid, media, created FROM messages "
                 f"WHERE id = ?{tx.dialect.for_update}", [message_id])
    if row is None:
        return None
    recalled = tx.value("SELECT recalled FROM message_meta WHERE message_id = ?",
                        [message_id])
    reactions: dict[str, list[int]] = {}
    for emoji, user in tx.rows("SELECT emoji, user_id FROM message_reactions "
                               "WHERE message_id = ? ORDER BY created, user_id",
                               [message_id]):
        reactions.setdefault(emoji, []).append(int(user))
    id_, conv, sender, cmd, dstid, media, created = row
    return MessageState(id=int(id_), conv=conv, sender=int(sender), cmd=int(cmd),
                        dstid=int(dstid), media=int(media), created=int(created),
                        recalled=bool(recalled), reactions=reactions)


def _set_meta(tx: Tx, message_id: int, column: str, value: int) -> None:
    tx.execute(tx.dialect.insert_ignore("message_meta", ("message_id",)), [message_id])
    tx.execute(f"UPDATE message_meta SET {column} = ? WHERE message_id = ?",
               [value, message_id])


def _edit(tx: Tx, state: MessageState, request: ChangeRequest, sealer: Sealer | None) -> None:
    row = tx.row("SELECT cid, amount, pic, url, memo, sealed FROM messages WHERE id = ?",
                 [state.id])
    assert row is not None
    cid, amount, pic, url, memo, sealed = row
    if sealed is None and sealer is None:
        tx.execute("UPDATE messages SET content = ? WHERE id = ?",
                   [request.content, state.id])
    else:
        # An edit is sealed like the original: same associated data, the new text.
        ad = associated_data(state.conv, state.sender, cid, state.cmd, state.dstid,
                             state.media, amount, state.created)
        if sealed is not None:
            if sealer is None:
                raise ChangeRefused("unavailable", "the server has no message key file")
            _, pic, url, memo = sealer.open(sealed, ad)
        assert sealer is not None
        tx.execute("UPDATE messages SET content = '', pic = '', url = '', memo = '', "
                   "sealed = ? WHERE id = ?",
                   [sealer.seal((request.content, pic, url, memo), ad), state.id])
    _set_meta(tx, state.id, "edited", request.ts)


def _recall(tx: Tx, state: MessageState) -> None:
    # Erased, not hidden: the text (clear or sealed) is gone from the row.
    tx.execute("UPDATE messages SET content = '', pic = '', url = '', memo = '', "
               "sealed = NULL WHERE id = ?", [state.id])
    _set_meta(tx, state.id, "recalled", 1)
    tx.execute("DELETE FROM message_reactions WHERE message_id = ?", [state.id])
    tx.execute("DELETE FROM message_mentions WHERE message_id = ?", [state.id])
    # A recalled file is no longer downloadable through this message (fastim/store/files.py).
    unlink_message(tx, state.id)


def _react(tx: Tx, state: MessageState, request: ChangeRequest) -> bool:
    """Whether the reaction changed anything."""
    if request.on:
        if request.actor in state.reactions.get(request.emoji, []):
            return False
        tx.execute("INSERT INTO message_reactions (message_id, emoji, user_id, created) "
                   "VALUES (?, ?, ?, ?)", [state.id, request.emoji, request.actor, request.ts])
        return True
    return tx.execute("DELETE FROM message_reactions WHERE message_id = ? AND emoji = ? "
                      "AND user_id = ?", [state.id, request.emoji, request.actor]) > 0


def _delete_for_me(tx: Tx, state: MessageState, request: ChangeRequest) -> bool:
    return tx.execute(tx.dialect.insert_ignore("message_hidden", ("user_id", "message_id")),
                      [request.actor, state.id]) > 0


def _repeat(tx: Tx, request: ChangeRequest, sealer: Sealer | None) -> ChangeResult | None:
    """The change a resend (same actor and cid) repeats, if it was applied before."""
    if request.cid is None:
        return None
    row = tx.row("SELECT id, message_id, kind, only_user FROM message_changes "
                 "WHERE actor = ? AND cid = ?", [request.actor, request.cid])
    if row is None:
        return None
    change, message_id, kind, only_user = row
    shown = view(tx, int(message_id), sealer) or {"id": int(message_id)}
    return ChangeResult(change=int(change), kind=int(kind), actor=request.actor, dup=True,
                        view=shown, only_user=None if only_user is None else int(only_user))


def apply_change(tx: Tx, request: ChangeRequest, check: Check,
                 sealer: Sealer | None) -> ChangeResult:
    """Apply one change if `check` allows it (it raises ChangeRefused if not), log it,
    and return the message's view now. The message's row is locked first (MySQL), so
    two changes of one message never interleave (the reaction bound holds)."""
    repeated = _repeat(tx, request, sealer)
    if repeated is not None:
        return repeated
    state = _state(tx, request.message_id)
    if state is None:
        raise ChangeRefused("not_found", f"there is no message {request.message_id}")
    check(tx, state, request)
    only_user = None
    if request.kind == EDIT:
        _edit(tx, state, request, sealer)
        changed = True
    elif request.kind == RECALL:
        _recall(tx, state)
        changed = True
    elif request.kind == REACT:
        changed = _react(tx, state, request)
    else:
        only_user = request.actor
        changed = _delete_for_me(tx, state, request)
    change = None
    if changed:
        change = tx.insert(
            "INSERT INTO message_changes (message_id, cmd, sender, dstid, kind, actor, "
            "only_user, cid, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [state.id, state.cmd, state.sender, state.dstid, request.kind, request.actor,
             only_user, request.cid, request.ts])
    shown = view(tx, state.id, sealer)
    assert shown is not None
    return ChangeResult(change=change, kind=request.kind, actor=request.actor, dup=False,
                        view=shown, only_user=only_user)


def change_frame(change: int, kind: int, actor: int, shown: dict[str, Any],
                 extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """A change as a client receives it, live and in a sync (docs/chat-protocol.md): the
    message's conversation and its state now, so applying it twice, or an older change
    after a newer one's state, shows the same."""
    frame: dict[str, Any] = {"cmd": kind, "id": shown["id"], "change": change,
                             "userid": actor}
    if kind == DELETE:
        return frame
    frame.update(kind=shown.get("cmd"), dstid=shown.get("dstid"),
                 sender=shown.get("userid"), content=shown.get("content", ""),
                 recalled=bool(shown.get("recalled")),
                 reactions=shown.get("reactions", {}))
    if "edited" in shown:
        frame["edited"] = shown["edited"]
    if extra:
        frame.update(extra)
    return frame


def changes_since(tx: Tx, user_id: int, groups: Sequence[int], since: int, limit: int,
                  sealer: Sealer | None) -> list[dict[str, Any]]:
    """The changes `user_id` may see with an id above `since`, oldest first, as frames:
    those of their 1:1 conversations and of their groups' messages within their history
    window (from their join on, fastim/store/groups.py), and their own deletes."""
    return _change_frames(tx, _change_rows(tx, user_id, groups, since, limit), sealer)


def change_page(tx: Tx, user_id: int, groups: Sequence[int], since: int, limit: int,
                sent: frozenset[int], sealer: Sealer | None) -> SyncPage:
    """The changes part of a sync page (`changes_since`) for a connection that was sent
    the changes `sent` already: their ids count for `next` and `more`, but their
    messages are not read again (a checkpoint, docs/chat-protocol.md "The sync
    cursor", mostly holds them all)."""
    rows = _change_rows(tx, user_id, groups, since, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    frames = _change_frames(tx, [r for r in rows if int(r[0]) not in sent], sealer)
    return SyncPage(frames, int(rows[-1][0]) if rows else since, more)


def _change_rows(tx: Tx, user_id: int, groups: Sequence[int], since: int,
                 limit: int) -> list[tuple[Any, ...]]:
    """The change log's rows (id, message_id, kind, actor) of `changes_since`."""
    clauses = ["(cmd = 10 AND (sender = ? OR dstid = ?))"]
    params: list[Any] = [user_id, user_id]
    if groups:
        # A change of a message sent before the user joined would show them its text.
        clauses.append(f"(cmd = 11 AND dstid IN ({_in(groups)}) AND message_id > "
                       "(SELECT gw.since_id FROM memberships gw WHERE gw.community_id = "
                       "message_changes.dstid AND gw.user_id = ?))")
        params += [*groups, user_id]
    # MySQL: a locking read waits for a change still being committed above `since`
    # instead of passing it by (IN_ORDER): the device's cursor never skips it.
    lock = IN_ORDER if tx.dialect.name == "mysql" else ""
    return tx.rows(
        "SELECT id, message_id, kind, actor FROM message_changes WHERE id > ? "
        f"AND (only_user IS NULL OR only_user = ?) AND ({' OR '.join(clauses)}) "
        f"ORDER BY id LIMIT ?{lock}", [since, user_id, *params, limit])


def _change_frames(tx: Tx, rows: Sequence[Sequence[Any]],
                   sealer: Sealer | None) -> list[dict[str, Any]]:
    """The frames of change-log rows, each with its message as it is now."""
    views: dict[int, dict[str, Any]] = {}
    message_ids = sorted({int(r[1]) for r in rows})
    if message_ids:
        found = tx.rows(f"SELECT {_COLUMNS} FROM messages WHERE id IN ({_in(message_ids)})",
                        message_ids)
        for shown in decorate(tx, [as_message(r, sealer) for r in found], None, sealer):
            views[shown["id"]] = shown
    return [change_frame(int(change), int(kind), int(actor),
                         views.get(int(message_id), {"id": int(message_id)}))
            for change, message_id, kind, actor in rows]


def latest_change(tx: Tx) -> int:
    """Where a device with nothing yet starts the change log: the newest change, once
    every change below it is committed (`newest_committed`), so the new device either
    reads its message as changed or gets the change after this cursor."""
    return newest_committed(tx, "message_changes")


class LifecycleStorage(ChatStorage):
    """`ChatStorage` with the message lifecycle: new messages keep their reply and
    mentions, syncs and history show each message as it is now, and changes are applied
    and read back from the change log."""

    async def insert_messages(self, batch: Sequence[MessageToStore]) -> list[StoredMessage]:
        record = self.sealer is not None and not self._key_recorded and bool(batch)
        results = await self.store.write(insert_with_extras, batch, self.consecutive_ids,
                                         self.sealer, record)
        if record:
            self._key_recorded = True
        return results

    async def messages_since(self, user_id: int, groups: Sequence[int], since: int,
                             limit: int) -> list[dict[str, Any]]:
        return await self.store.read(messages_since_for, user_id, groups, since, limit,
                                     self.sealer)

    async def sync_page(self, user_id: int, groups: Sequence[int], since: int, limit: int,
                        sent: frozenset[int]) -> SyncPage:
        return await self.store.read(sync_page_for, user_id, groups, since, limit, sent,
                                     self.sealer)

    async def history_for(self, user_id: int, conv: str, before: int | None,
                          limit: int, after: int = 0,
                          upto: int | None = None) -> Page[dict[str, Any]]:
        return await self.store.read(history_for, user_id, conv, before, limit,
                                     self.sealer, after, upto)

    async def newest_for(self, user_id: int,
                         windows: dict[str, int]) -> dict[str, dict[str, Any]]:
        return await self.store.read(newest_for, user_id, windows, self.sealer)

    async def unread_mentions(self, user_id: int, convs: Sequence[str]) -> dict[str, int]:
        return await self.store.read(unread_mentions, user_id, convs)

    async def change_page(self, user_id: int, groups: Sequence[int], since: int,
                          limit: int, sent: frozenset[int]) -> SyncPage:
        return await self.store.read(change_page, user_id, groups, since, limit, sent,
                                     self.sealer)

    async def latest_change(self) -> int:
        return await self.store.read(latest_change)

    async def apply_change(self, request: ChangeRequest, check: Check) -> ChangeResult:
        return await self.store.write(apply_change, request, check, self.sealer)

    async def prepare(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run the chat's `fn(tx, sealer, *args)` in a read transaction (a reply's quote
        and a message's mentions are checked before it is stored)."""
        return await self.store.read(fn, self.sealer, *args)


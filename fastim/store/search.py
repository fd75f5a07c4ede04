"""Message search: every SQL statement of `GET /chat/search` (docs/store.md "Search").

The index is migration 10 (fastim/store/migrations.py): SQLite FTS5 with the trigram
tokenizer over `messages.content`; on MariaDB a Mroonga table with a bigram tokenizer.
Both are kept in step with `messages` by triggers, so whatever UPDATE changes a message's
text (an edit, a recall that empties it) changes what is found, and a sealed message
(its text only in `sealed`, `content` '') is never indexed.

Which messages a user may find is decided in one place, :func:`readable_messages`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fastim.store.messages import _COLUMNS, GROUP, SINGLE, as_message
from fastim.store.records import Page
from fastim.store.sql import Tx

#: Queries shorter than this many characters cannot use SQLite's trigram index: they
#: are matched with LIKE over the newest SHORT_QUERY_WINDOW readable messages.
TRIGRAM = 3
SHORT_QUERY_WINDOW = 5_000
# The message columns, of the alias `m`, in as_message's order.
_M = ", ".join(f"m.{c.strip()}" for c in _COLUMNS.split(","))


@dataclass(frozen=True)
class Readable:
    """The messages a user may read, as a SQL condition.

    ``where(alias)`` and ``params`` go into a WHERE clause over a table that has the
    message's ``id`` and ``conv`` (`messages`, or MariaDB's `message_search`);
    ``conversations`` maps each conversation key the user may read to its (cmd, dstid)
    as the user sees it.
    """

    condition: str  # with {t} for the table's alias
    params: list[Any]
    conversations: dict[str, tuple[int, int]]

    def where(self, alias: str = "m") -> str:
        return self.condition.format(t=alias)


def _pair(a: int, b: int) -> str:
    # The conversation key of a 1:1 chat, as fastim.chat.hub.conversation makes it.
    low, high = (a, b) if a <= b else (b, a)
    return f"p{low}_{high}"


def readable_messages(tx: Tx, user_id: int,
                      only: tuple[int, int] | None = None) -> Readable:
    """THE rule of which stored messages `user_id` may read (search uses it; it is the
    rule /chat/history applies one conversation at a time, fastim/chat/history.py):

    * 1:1 messages of a friend, and of a former friend (1:1 messages are only ever stored
      between friends, so a stored one means they were);
    * the messages of every group the user is a member of now.

    ``only`` = (cmd, dstid) narrows it to one conversation (the caller has checked
    access to it as /chat/history does).

    TO BE ADDED HERE when those branches land (the lead wires them):
    * join windows (groups-consent): a group's messages only from the user's join on,
      i.e. per group ``m.id >= <first id of the window>`` instead of a plain IN list;
    * delete-for-me (msg-lifecycle): ``NOT EXISTS`` a hidden-for-this-user row.
    (Recalls and edits need nothing here: they change `content`, which is what is indexed.)
    """
    convs: dict[str, tuple[int, int]] = {}
    if only is None or only[0] == SINGLE:
        peers = {int(f) for (f,) in tx.rows(
            "SELECT dst_id FROM friendships WHERE owner_id = ?", [user_id])}
        peers |= {int(d) for (d,) in tx.rows(
            "SELECT DISTINCT dstid FROM messages WHERE cmd = ? AND sender = ?",
            [SINGLE, user_id])}
        peers |= {int(s) for (s,) in tx.rows(
            "SELECT DISTINCT sender FROM messages WHERE cmd = ? AND dstid = ?",
            [SINGLE, user_id])}
        for peer in peers:
            if peer != user_id and (only is None or only[1] == peer):
                convs[_pair(user_id, peer)] = (SINGLE, peer)
    if only is None or only[0] == GROUP:
        for (group,) in tx.rows("SELECT community_id FROM memberships WHERE user_id = ?",
                                [user_id]):
            if only is None or only[1] == int(group):
                convs[f"g{int(group)}"] = (GROUP, int(group))
    if not convs:
        return Readable("1 = 0", [], convs)
    keys = sorted(convs)
    return Readable(f"{{t}}.conv IN ({', '.join('?' for _ in keys)})", keys, convs)


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def match_offsets(content: str, query: str) -> list[list[int]]:
    """Where `query` occurs in `content`, case-insensitively, as [start, end) pairs in
    UTF-16 code units (what JavaScript's string indexes count: an emoji outside the BMP
    is two). Empty when it does not occur (then the row is not a hit)."""
    folded = [c.lower() for c in content]
    needle = query.lower()
    spans: list[tuple[int, int]] = []
    if all(len(c) == 1 for c in folded):
        haystack = "".join(folded)
        start = haystack.find(needle)
        while start != -1:
            spans.append((start, start + len(needle)))
            start = haystack.find(needle, start + max(1, len(needle)))
    else:  # a character whose lower case is longer ('İ'): compare char by char
        i = 0
        while i < len(content):
            for j in range(i + 1, len(content) + 1):
                piece = "".join(folded[i:j])
                if piece == needle:
                    spans.append((i, j))
                    break
                if not needle.startswith(piece):
                    break
            i = spans[-1][1] if spans and spans[-1][0] == i else i + 1
    units = [0]
    for c in content:
        units.append(units[-1] + (2 if ord(c) > 0xFFFF else 1))
    return [[units[a], units[b]] for a, b in spans]


def _hits(rows: Sequence[Sequence[Any]], query: str,
          readable: Readable) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        message = as_message(row)
        # Re-checked against the row's current text: Mroonga's index may hold text of a
        # rolled-back update, and FTS5 trigram may match across a case fold LIKE differs on.
        matches = match_offsets(message["content"], query)
        if not matches:
            continue
        cmd, dstid = readable.conversations[row[12]]
        message["conversation"] = {"cmd": cmd, "dstid": dstid}
        message["matches"] = matches
        out.append(message)
    return out


def _fts_query(query: str) -> str:
    # One FTS5 phrase: double quotes inside are doubled (https://sqlite.org/fts5.html §3.1).
    return '"' + query.replace('"', '""') + '"'


def _mroonga_query(query: str) -> str:
    # One phrase of Mroonga's boolean mode (Groonga query syntax): \ and " escaped.
    return '"' + query.replace("\\", "\\\\").replace('"', '\\"') + '"'


def search(tx: Tx, user_id: int, query: str, only: tuple[int, int] | None,
           before: int | None, limit: int) -> Page[dict[str, Any]]:
    """Messages `user_id` may read whose text contains `query` (case-insensitive), newest
    first, older than message `before`; `total` counts every such message (for a
    SQLite query under 3 characters: those within the newest SHORT_QUERY_WINDOW
    readable messages older than `before`). Rows are as_message dicts plus
    ``conversation`` ({cmd, dstid} as the user sees it) and ``matches`` (offsets)."""
    readable = readable_messages(tx, user_id, only)
    if not readable.conversations:
        return Page([], 0)
    upper = before if before is not None else 2**62
    params = [*readable.params, upper]
    if tx.dialect.name == "sqlite" and len(query) >= TRIGRAM:
        base = ("FROM message_search s JOIN messages m ON m.id = s.rowid "
                f"WHERE message_search MATCH ? AND s.rowid < ? AND {readable.where('m')}")
        args = [_fts_query(query), upper, *readable.params]
        rows = tx.rows(f"SELECT {_M} {base} ORDER BY s.rowid DESC LIMIT ?", [*args, limit])
        total = int(tx.value(f"SELECT COUNT(*) {base}", args) or 0)
    elif tx.dialect.name == "sqlite":
        # Trigrams cannot find one or two characters: LIKE over a bounded window.
        window = (f"SELECT {_M} FROM messages m WHERE {readable.where('m')} AND m.id < ? "
                  "ORDER BY m.id DESC LIMIT ?")
        like = "WHERE w.content LIKE ? ESCAPE '\\'"
        args = [*params, SHORT_QUERY_WINDOW, _like_pattern(query)]
        rows = tx.rows(f"SELECT w.* FROM ({window}) w {like} ORDER BY w.id DESC LIMIT ?",
                       [*args, limit])
        total = int(tx.value(f"SELECT COUNT(*) FROM ({window}) w {like}", args) or 0)
    else:
        # Mroonga filters, orders and limits by itself when the query names only its own
        # table (its ORDER BY LIMIT optimisation): the conversation is a column of the
        # index for that; the page's ids are then read from `messages`.
        hits = ("FROM message_search s WHERE MATCH (s.content) AGAINST (? IN BOOLEAN MODE) "
                f"AND s.id < ? AND {readable.where('s')}")
        args = [_mroonga_query(query), upper, *readable.params]
        ids = [int(i) for (i,) in tx.rows(f"SELECT s.id {hits} ORDER BY s.id DESC LIMIT ?",
                                          [*args, limit])]
        rows = []
        if ids:
            marks = ", ".join("?" for _ in ids)
            rows = tx.rows(f"SELECT {_M} FROM messages m WHERE m.id IN ({marks}) "
                           f"AND {readable.where('m')} ORDER BY m.id DESC",
                           [*ids, *readable.params])
        total = int(tx.value(f"SELECT COUNT(*) {hits}", args) or 0)
    return Page(_hits(rows, query, readable), total)

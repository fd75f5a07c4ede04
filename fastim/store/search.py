"""Message search: the index and every SQL statement of `GET /chat/search` (docs/store.md
"Search").

The index is kept after commit, off the group commit's path (migration 10): an indexer
(fastim/chat/search.py runs :func:`index_pass` every INDEX_PERIOD seconds) reads the
messages stored and the edits and recalls logged (`message_changes`) since its cursor,
and writes them into the index in short transactions of its own, at most BATCH rows of
each. SQLite: FTS5 with the trigram tokenizer; MariaDB: a Mroonga table with a bigram
tokenizer (:func:`ensure_index`). A message is thus found within about one period of
being stored or edited; what a search answers is always checked against the message as
it is now (its current text, recall, delete-for-me), so a stale index entry can make a
message late to be found, never found by text it no longer has.

Which messages a user may find is :func:`readable_messages`: the rule /chat/history
applies (fastim/store/groups.py's windows, fastim/store/changes.py's decorate).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from fastim.store.changes import EDIT, RECALL, decorate
from fastim.store.groups import history_windows
from fastim.store.messages import _COLUMNS, GROUP, SINGLE, as_message
from fastim.store.records import Page
from fastim.store.sql import Tx

log = logging.getLogger(__name__)

#: Queries shorter than this many characters cannot use SQLite's trigram index: they
#: are matched with LIKE over the newest SHORT_QUERY_WINDOW readable messages.
TRIGRAM = 3
SHORT_QUERY_WINDOW = 5_000
#: The most messages, and the most changes, one indexing transaction takes.
BATCH = 500
#: Seconds an id may stay missing below ids already seen before the indexer gives up on
#: it (a rolled-back insert, a deleted message). On MariaDB ids are allocated at INSERT
#: and become visible at COMMIT, so a row may appear after higher ids did.
SETTLE = 30.0
#: A search's `total` stops counting here (then `capped`: "more than TOTAL_CAP"). A
#: common word matches a large share of every message; counting them all made `total`
#: the largest cost of a search on MariaDB (docs/performance.md "Message search"), for a
#: figure no one reads past "more than a thousand".
TOTAL_CAP = 1_000
#: The most missing ids looked for again in one pass.
MAX_MISSING = 2_000
#: MariaDB: one indexer at a time across the nodes (a GET_LOCK, named per database).
INDEX_LOCK = "fastim.search."
# The message columns, of the alias `m`, in as_message's order.
_M = ", ".join(f"m.{c.strip()}" for c in _COLUMNS.split(","))


# -- the index ---------------------------------------------------------------------------

def _mysql_has_index(tx: Tx) -> bool:
    return bool(tx.value("SELECT COUNT(*) FROM information_schema.TABLES WHERE table_schema"
                         " = DATABASE() AND table_name = 'message_search'"))


def ensure_index(tx: Tx) -> bool:
    """Whether the search index exists, making it first on MariaDB if it can: Mroonga is
    loaded (INSTALL SONAME 'ha_mroonga', which stays loaded across restarts; root may)
    when the server has the plugin (Debian: mariadb-plugin-mroonga). Without it the
    server runs, and search answers 503 saying so (fastim/chat/search.py)."""
    if tx.dialect.name == "sqlite":
        return True  # FTS5 is built into SQLite; migration 10 made the table
    if _mysql_has_index(tx):
        return True
    if not tx.value("SELECT COUNT(*) FROM information_schema.ENGINES WHERE ENGINE = "
                    "'Mroonga' AND SUPPORT IN ('YES', 'DEFAULT')"):
        try:
            tx.execute("INSTALL SONAME 'ha_mroonga'")
        except Exception as error:  # the driver's error, whatever its class
            log.warning("message search is off: MariaDB has no Mroonga engine (install "
                        "mariadb-plugin-mroonga, then INSTALL SONAME 'ha_mroonga'): %s",
                        error)
            return False
    # `lo` and `hi`: a 1:1 chat's two users (its key is p{lo}_{hi}; 0 for a group), so
    # that a search finds every 1:1 chat of a user by two index lookups in Groonga
    # (Readable.groonga) instead of listing them first (migration 13).
    tx.execute(
        "CREATE TABLE IF NOT EXISTS message_search ("
        " id BIGINT NOT NULL PRIMARY KEY,"
        " conv VARCHAR(48) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,"
        " lo BIGINT NOT NULL DEFAULT 0,"
        " hi BIGINT NOT NULL DEFAULT 0,"
        " content TEXT NOT NULL,"
        " KEY ix_message_search_conv (conv),"
        " KEY ix_message_search_lo (lo),"
        " KEY ix_message_search_hi (hi),"
        " FULLTEXT INDEX ft_message_search (content)"
        " COMMENT 'tokenizer \"TokenBigramSplitSymbolAlphaDigit\", normalizer \"NormalizerAuto\"'"
        ") ENGINE=Mroonga DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci")
    return True


@dataclass
class IdFollower:
    """Follows one id sequence (messages, or the change log) in commit order, whatever
    order the ids were given in. Ids above the highest seen that are not there yet are
    `missing` (with the time they were first missed) and looked for again each pass
    until SETTLE seconds have passed; the durable cursor is the highest id with nothing
    missing below it, so a restart re-reads (idempotently) what was still open."""

    seen: int = 0
    missing: dict[int, float] = field(default_factory=dict)

    def resume(self, durable: int) -> None:
        # Another node (or an earlier run) got further: start from there.
        if durable > self.seen:
            self.seen = durable
            self.missing = {i: t for i, t in self.missing.items() if i > durable}

    def look_again(self) -> list[int]:
        return sorted(self.missing)[:MAX_MISSING]

    def found(self, ids: Sequence[int], now: float) -> None:
        for id_ in sorted(ids):
            self.missing.pop(id_, None)
            if id_ > self.seen:
                # A gap this wide is a rolled-back run, not one per id to remember.
                for gap in range(max(self.seen + 1, id_ - MAX_MISSING), id_):
                    self.missing[gap] = now
                self.seen = id_

    def expire(self, now: float, settle: float) -> None:
        self.missing = {i: t for i, t in self.missing.items() if now - t < settle}

    def cursor(self) -> int:
        return min(self.missing) - 1 if self.missing else self.seen


def _write(tx: Tx, rows: Sequence[tuple[Any, ...]]) -> None:
    """Put (id, conv, content) rows into the index as they are now; an empty content
    (a recalled message, a sealed one, a photo) takes the row out."""
    if not rows:
        return
    ids = [int(r[0]) for r in rows]
    texts = [(int(r[0]), r[1], r[2]) for r in rows if r[2]]
    marks = ", ".join("?" for _ in ids)
    if tx.dialect.name == "sqlite":
        tx.execute(f"DELETE FROM message_search WHERE rowid IN ({marks})", ids)
        tx.executemany("INSERT INTO message_search (rowid, content) VALUES (?, ?)",
                       [(i, text) for i, _, text in texts])
        return
    gone = [int(r[0]) for r in rows if not r[2]]
    if gone:
        tx.execute(f"DELETE FROM message_search WHERE id IN ({', '.join('?' for _ in gone)})",
                   gone)
    if texts:
        # Idempotent: a row indexed again (a restart, two nodes) is overwritten.
        tx.executemany("INSERT INTO message_search (id, conv, lo, hi, content) VALUES"
                       " (?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE content = VALUES(content)",
                       [(i, conv, *pair_users(conv), text) for i, conv, text in texts])


def _by_ids(tx: Tx, table_sql: str, ids: Sequence[int]) -> list[tuple[Any, ...]]:
    if not ids:
        return []
    return tx.rows(f"{table_sql} WHERE id IN ({', '.join('?' for _ in ids)})", list(ids))


def index_pass(tx: Tx, messages: IdFollower, changes: IdFollower, now: float,
               batch: int = BATCH, settle: float = SETTLE) -> int | None:
    """One short indexing transaction: up to `batch` new messages and `batch` new
    changes (edits and recalls re-index their message from its current text). Returns
    how many rows it read (a full batch: call again at once), or None when another node
    holds the indexer's lock."""
    if tx.dialect.name == "mysql":
        if not tx.value("SELECT GET_LOCK(CONCAT(?, DATABASE()), 0)", [INDEX_LOCK]):
            return None
        try:
            return _index_pass(tx, messages, changes, now, batch, settle)
        finally:
            tx.value("SELECT RELEASE_LOCK(CONCAT(?, DATABASE()))", [INDEX_LOCK])
    return _index_pass(tx, messages, changes, now, batch, settle)


def _index_pass(tx: Tx, messages: IdFollower, changes: IdFollower, now: float,
                batch: int, settle: float) -> int:
    row = tx.row(f"SELECT upto_message, upto_change FROM search_cursor WHERE id = 1"
                 f"{tx.dialect.for_update}")
    durable = (int(row[0]), int(row[1])) if row else (0, 0)
    messages.resume(durable[0])
    changes.resume(durable[1])
    select = "SELECT id, conv, content FROM messages"
    new = tx.rows(f"{select} WHERE id > ? ORDER BY id LIMIT ?", [messages.seen, batch])
    late = _by_ids(tx, select, messages.look_again())
    _write(tx, [*late, *new])
    messages.found([int(r[0]) for r in (*late, *new)], now)

    log_select = "SELECT id, message_id, kind FROM message_changes"
    logged = tx.rows(f"{log_select} WHERE id > ? ORDER BY id LIMIT ?", [changes.seen, batch])
    logged += _by_ids(tx, log_select, changes.look_again())
    # Reactions and deletes-for-me change no text (delete-for-me is a reader's filter).
    touched = sorted({int(r[1]) for r in logged if int(r[2]) in (EDIT, RECALL)})
    _write(tx, _by_ids(tx, select, touched))
    changes.found([int(r[0]) for r in logged], now)

    messages.expire(now, settle)
    changes.expire(now, settle)
    cursor = (messages.cursor(), changes.cursor())
    if cursor != durable:
        tx.execute("UPDATE search_cursor SET upto_message = ?, upto_change = ? WHERE id = 1",
                   list(cursor))
    return len(new) + len(logged)


def forget_index(tx: Tx) -> None:
    """Empty the index and move its cursor past every message: messages are sealed at
    rest now (`fastim reseal`, or a server started with --message-key-file), and the
    index must not keep the clear text they had. Search is refused meanwhile."""
    if tx.dialect.name == "sqlite":
        tx.execute("DELETE FROM message_search")
        # Merge the segments, so the deleted text's pages are rewritten, not only marked.
        tx.execute("INSERT INTO message_search (message_search) VALUES ('optimize')")
    elif _mysql_has_index(tx):
        tx.execute("TRUNCATE TABLE message_search")  # Mroonga re-creates its files
    tx.execute("UPDATE search_cursor SET"
               " upto_message = (SELECT COALESCE(MAX(id), 0) FROM messages),"
               " upto_change = (SELECT COALESCE(MAX(id), 0) FROM message_changes)")


def index_lag(tx: Tx) -> dict[str, int]:
    """How far the index is behind: messages and changes above the cursor."""
    upto_message, upto_change = tx.row(
        "SELECT upto_message, upto_change FROM search_cursor WHERE id = 1") or (0, 0)
    return {"messages": int(tx.value("SELECT COUNT(*) FROM messages WHERE id > ?",
                                     [upto_message]) or 0),
            "changes": int(tx.value("SELECT COUNT(*) FROM message_changes WHERE id > ?",
                                    [upto_change]) or 0)}


# -- who may find what -------------------------------------------------------------------

@dataclass(frozen=True)
class Readable:
    """The messages a user may read: whole conversations (``whole``: 1:1 chats and
    groups read in full, by key), group windows (``windows``: key, after, upto) and
    ``all_pairs``: every 1:1 chat of the user, matched by its key (MariaDB: by the
    index's `lo` and `hi` columns, migration 13) rather than listed.

    ``where(alias)`` and ``params`` are it as a SQL condition over a table that has the
    message's ``id`` and ``conv`` (SQLite's `messages`; `all_pairs` as a LIKE on the
    key); ``groonga()`` as a filter of Groonga's script syntax over MariaDB's
    `message_search`.
    """

    user_id: int
    whole: list[str]
    windows: list[tuple[str, int, int | None]]
    all_pairs: bool = False

    @property
    def empty(self) -> bool:
        return not (self.whole or self.windows or self.all_pairs)

    def where(self, alias: str = "m") -> str:
        parts = []
        if self.all_pairs:
            # The key is p{low}_{high}: the user's own chats start or end with their id.
            parts.append(f"(({alias}.conv LIKE ? ESCAPE '!' OR {alias}.conv LIKE ? "
                         f"ESCAPE '!') AND {alias}.conv <> ?)")
        if self.whole:
            parts.append(f"{alias}.conv IN ({', '.join('?' for _ in self.whole)})")
        for _, _, upto in self.windows:
            parts.append(f"({alias}.conv = ? AND {alias}.id > ?"
                         + (")" if upto is None else f" AND {alias}.id <= ?)"))
        return f"({' OR '.join(parts)})" if parts else "1 = 0"

    @property
    def params(self) -> list[Any]:
        user = self.user_id
        out: list[Any] = ([f"p{user}!_%", f"p%!_{user}", _pair(user, user)]
                          if self.all_pairs else [])
        out += self.whole
        for conv, after, upto in self.windows:
            out += [conv, after] if upto is None else [conv, after, upto]
        return out

    def groonga(self) -> str:
        """The condition in Groonga's script syntax: evaluated inside Mroonga, so that
        the whole search is one Groonga select that Mroonga can also order and limit
        (its ORDER BY LIMIT optimisation needs a WHERE of one MATCH AGAINST and
        comparisons of constants; an IN or OR in SQL turns it off and MariaDB then reads
        every match). The ids are integers and the keys our own (p12_34, g5); quoted
        anyway."""
        parts = []
        if self.all_pairs:
            user = int(self.user_id)
            parts.append(f"((lo == {user} || hi == {user}) && conv != "
                         f"{_groonga_string(_pair(user, user))})")
        if self.whole:
            parts.append(f"in_values(conv, {', '.join(map(_groonga_string, self.whole))})")
        for conv, after, upto in self.windows:
            bound = "" if upto is None else f" && id <= {int(upto)}"
            parts.append(f"(conv == {_groonga_string(conv)} && id > {int(after)}{bound})")
        return " || ".join(parts) if parts else "false"

    def conversation(self, conv: str) -> tuple[int, int]:
        """(cmd, dstid) of a conversation key as the user sees it: a 1:1 chat by the
        other user, a group by its id."""
        if conv.startswith("g"):
            return GROUP, int(conv[1:])
        low, high = (int(n) for n in conv[1:].split("_"))
        return SINGLE, high if low == self.user_id else low


def _pair(a: int, b: int) -> str:
    # The conversation key of a 1:1 chat, as fastim.chat.hub.conversation makes it.
    low, high = (a, b) if a <= b else (b, a)
    return f"p{low}_{high}"


def pair_users(conv: str) -> tuple[int, int]:
    """The two users of a 1:1 chat's key (p{low}_{high}); (0, 0) for a group's."""
    if not conv.startswith("p"):
        return 0, 0
    low, high = conv[1:].split("_")
    return int(low), int(high)


def _groonga_string(text: str) -> str:
    # A string literal of Groonga's script syntax: \ and " escaped.
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def readable_messages(tx: Tx, user_id: int, only: tuple[int, int] | None = None,
                      list_pairs: bool = False) -> Readable:
    """The stored messages `user_id` may read, by the rules of /chat/history
    (fastim/chat/history.py):

    * 1:1 messages of a friend, and of a former friend (unfriended or blocked: 1:1
      messages are only ever stored between friends, so a stored one means they were).
      That is every stored message of a 1:1 chat the user is one of the two of, so
      they are matched by the chat's key (`all_pairs`: MariaDB's index by its `lo` and
      `hi` columns, SQLite's hits by a LIKE on the key) without listing the chats first.
      With `list_pairs` the chats are listed instead (the user's friends, and the other
      users of their stored 1:1 messages: a DISTINCT over all of them), for SQLite's
      short queries, which read the messages table through these keys;
    * a group's messages within the user's window (fastim/store/groups.py
      `history_windows`: a member's from their join, as the group's history setting
      gave it; a former member's kept window).

    Per message, what history then applies is applied to every search hit too
    (:func:`search` through changes.decorate): the messages the user deleted for
    themselves are left out, a recalled one has no text to match, an edited one only
    its new text. ``only`` = (cmd, dstid) narrows it to one conversation.
    """
    whole: list[str] = []
    windows: list[tuple[str, int, int | None]] = []
    all_pairs = False
    if only is not None and only[0] == SINGLE:
        if only[1] != user_id:
            # Its messages, if any are stored, are the two users' own (see above).
            whole.append(_pair(user_id, only[1]))
    elif only is None and not list_pairs:
        all_pairs = True
    elif only is None:
        peers = {int(f) for (f,) in tx.rows(
            "SELECT dst_id FROM friendships WHERE owner_id = ?", [user_id])}
        peers |= {int(d) for (d,) in tx.rows(
            "SELECT DISTINCT dstid FROM messages WHERE cmd = ? AND sender = ?",
            [SINGLE, user_id])}
        peers |= {int(s) for (s,) in tx.rows(
            "SELECT DISTINCT sender FROM messages WHERE cmd = ? AND dstid = ?",
            [SINGLE, user_id])}
        whole += [_pair(user_id, peer) for peer in sorted(peers) if peer != user_id]
    if only is None or only[0] == GROUP:
        group = None if only is None else only[1]
        for gid, (after, upto) in sorted(history_windows(tx, user_id, group).items()):
            if after == 0 and upto is None:
                whole.append(f"g{gid}")
            else:
                windows.append((f"g{gid}", int(after), None if upto is None else int(upto)))
    return Readable(user_id, whole, windows, all_pairs)


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


def _hits(tx: Tx, user_id: int, rows: Sequence[Sequence[Any]], query: str,
          readable: Readable) -> list[dict[str, Any]]:
    """The rows as history shows them to the user now (changes.decorate), less those
    deleted for the user and those whose current text does not hold the query (a
    recall emptied it, an edit changed it since it was indexed)."""
    out = []
    shown = decorate(tx, [as_message(row) for row in rows], user_id, None)
    for row, message in zip(rows, shown, strict=True):
        if message.pop("hidden", False) or message.get("recalled"):
            continue
        matches = match_offsets(message["content"], query)
        if not matches:
            continue
        cmd, dstid = readable.conversation(row[12])
        message["conversation"] = {"cmd": cmd, "dstid": dstid}
        message["matches"] = matches
        out.append(message)
    return out


def _fts_query(query: str) -> str:
    # One FTS5 phrase: double quotes inside are doubled (https://sqlite.org/fts5.html §3.1).
    return '"' + query.replace('"', '""') + '"'


def search(tx: Tx, user_id: int, query: str, only: tuple[int, int] | None,
           before: int | None, limit: int, rounds: int = 10) -> Page[dict[str, Any]]:
    """Messages `user_id` may read whose text contains `query` (case-insensitive), newest
    first, older than message `before`. `total` counts the index's matches the user may
    read and has not deleted for themselves (for a SQLite query under 3 characters:
    within the newest SHORT_QUERY_WINDOW readable messages older than `before`), up to
    TOTAL_CAP (then the page is `capped`). Rows are
    as history shows them, plus ``conversation`` ({cmd, dstid} as the user sees it) and
    ``matches`` (offsets). Hits that fail the checks of :func:`_hits` are skipped and
    the next ones read, at most `rounds` reads a page."""
    readable = readable_messages(
        tx, user_id, only, list_pairs=tx.dialect.name == "sqlite" and len(query) < TRIGRAM)
    if readable.empty:
        return Page([], 0)
    upper = before if before is not None else 2**62
    if tx.dialect.name == "mysql":
        return _search_mroonga(tx, user_id, readable, query, upper, limit, rounds)
    found: list[dict[str, Any]] = []
    for _ in range(rounds):
        rows = _page(tx, readable, query, upper, limit)
        found += _hits(tx, user_id, rows, query, readable)
        if len(rows) < limit or len(found) >= limit:
            break
        upper = int(rows[-1][0])
    total, capped = _total(tx, user_id, readable, query, before)
    return Page(found[:limit], total, capped)


_NOT_HIDDEN = ("NOT EXISTS (SELECT 1 FROM message_hidden h WHERE h.user_id = ?"
               " AND h.message_id = {t}.id)")


def _page(tx: Tx, readable: Readable, query: str, upper: int,
          limit: int) -> list[tuple[Any, ...]]:
    """SQLite: the next `limit` candidate rows (message columns) below id `upper`, newest
    first. FTS5 reads its matches lazily in rowid order, so this stops at the LIMIT."""
    if len(query) >= TRIGRAM:
        return tx.rows(
            f"SELECT {_M} FROM message_search s JOIN messages m ON m.id = s.rowid "
            f"WHERE message_search MATCH ? AND s.rowid < ? AND {readable.where('m')} "
            "ORDER BY s.rowid DESC LIMIT ?",
            [_fts_query(query), upper, *readable.params, limit])
    # Trigrams cannot find one or two characters: LIKE over a bounded window.
    return tx.rows(
        f"SELECT w.* FROM ({_short_window(readable)}) w "
        "WHERE w.content LIKE ? ESCAPE '\\' ORDER BY w.id DESC LIMIT ?",
        [*readable.params, upper, SHORT_QUERY_WINDOW, _like_pattern(query), limit])


#: Groonga's script syntax for MATCH AGAINST, this statement only (MariaDB's SET
#: STATEMENT), so that the readable conversations are part of the one Groonga select.
_SCRIPT = "SET STATEMENT mroonga_boolean_mode_syntax_flags = 'SYNTAX_SCRIPT' FOR "


def _search_mroonga(tx: Tx, user_id: int, readable: Readable, query: str, upper: int,
                    limit: int, rounds: int) -> Page[dict[str, Any]]:
    """MariaDB: one Groonga select finds the readable matches below `upper`, newest
    first, up to TOTAL_CAP + 1 of them (Mroonga orders and limits inside Groonga: the
    WHERE is one MATCH AGAINST, whose script holds the readable conversations, and a
    comparison of the id). Those ids are the page's candidates and, less the ones the
    user deleted for themselves, the capped `total`: a second select that counted
    would cost a second full-text search."""
    script = (f"content @ {_groonga_string(query)} && ({readable.groonga()})")
    # The page's candidates (at most `rounds` pages of them) and one more than counted.
    least = max(TOTAL_CAP, rounds * limit) + 1
    window = least
    while True:
        ids = [int(i) for (i,) in tx.rows(
            f"{_SCRIPT}SELECT s.id FROM message_search s WHERE MATCH (s.content) AGAINST "
            f"(? IN BOOLEAN MODE) AND s.id < ? ORDER BY s.id DESC LIMIT {window}",
            [script, upper])]
        hidden = {int(i) for (i,) in tx.rows(
            "SELECT message_id FROM message_hidden WHERE user_id = ? AND message_id >= ? "
            "AND message_id <= ?", [user_id, ids[-1], ids[0]])} if ids else set()
        visible = [i for i in ids if i not in hidden]
        if len(visible) >= least or len(ids) < window:
            break
        # Some of the newest were deleted for the user: read as many further, to know
        # whether more than TOTAL_CAP are left (each pass finds more, or ends).
        window = least + len(hidden)
    found: list[dict[str, Any]] = []
    for at in range(0, min(len(visible), rounds * limit), limit):
        chunk = visible[at:at + limit]
        rows = tx.rows(f"SELECT {_M} FROM messages m WHERE m.id IN "
                       f"({', '.join('?' for _ in chunk)}) ORDER BY m.id DESC", chunk)
        found += _hits(tx, user_id, rows, query, readable)
        if len(found) >= limit:
            break
    return Page(found[:limit], min(len(visible), TOTAL_CAP), len(visible) > TOTAL_CAP)


def _short_window(readable: Readable) -> str:
    return (f"SELECT {_M} FROM messages m WHERE {readable.where('m')} AND m.id < ? "
            "ORDER BY m.id DESC LIMIT ?")


def _total(tx: Tx, user_id: int, readable: Readable, query: str,
           before: int | None) -> tuple[int, bool]:
    """SQLite: the readable hits the user has not deleted for themselves, counted up to
    TOTAL_CAP: (count, whether there are more). The LIMIT lets the engine stop early:
    at most TOTAL_CAP + 1 rows are read, each checked against message_hidden by its key."""
    upper = before if before is not None else 2**62
    if len(query) >= TRIGRAM:
        sql = ("SELECT s.rowid FROM message_search s JOIN messages m ON m.id = s.rowid "
               f"WHERE message_search MATCH ? AND s.rowid < ? AND {readable.where('m')}")
        params = [_fts_query(query), upper, *readable.params]
        alias = "m"
    else:
        sql = (f"SELECT w.id FROM ({_short_window(readable)}) w WHERE w.content LIKE ?"
               " ESCAPE '\\'")
        params = [*readable.params, upper, SHORT_QUERY_WINDOW, _like_pattern(query)]
        alias = "w"
    count = int(tx.value(
        f"SELECT COUNT(*) FROM ({sql} AND {_NOT_HIDDEN.format(t=alias)} "
        f"LIMIT {TOTAL_CAP + 1}) c", [*params, user_id]) or 0)
    return min(count, TOTAL_CAP), count > TOTAL_CAP

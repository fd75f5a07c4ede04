"""`GET /chat/search`: the rules of a message search, on behalf of the token's user, and
the indexer that keeps the search index after commit.

Which messages may be found is decided by the store's `readable_messages`
(fastim/store/search.py), in the same transaction as the search; a search of one
conversation (`cmd` + `dstid`) is first checked exactly as /chat/history checks it
(403 for a conversation the user may not read).

The group commit never touches the index: :class:`SearchIndexer` follows the messages
and the change log after they commit, in batches (fastim/store/search.py `index_pass`),
so a message is found within about INDEX_PERIOD seconds of being stored or edited.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from fastim.chat.history import ChatQueries
from fastim.chat.protocol import Cmd
from fastim.errors import AppError
from fastim.store import Page, Store, groups
from fastim.store import search as stored
from fastim.store.messages import ChatStorage

log = logging.getLogger(__name__)

#: The longest page of a search, and the longest query (characters).
MAX_SEARCH_PAGE = 100
MAX_QUERY = 100

#: The answer while messages are sealed at rest (docs/security.md): the server holds no
#: plaintext to index, and this release keeps no blind index.
SEALED_REFUSAL = ("search is turned off on this server: messages are sealed at rest "
                  "(--message-key-file), so there is no text to search")
#: The answer while the database has no search index (MariaDB without Mroonga).
NO_INDEX = ("search is not available: the database has no search engine (MariaDB "
            "needs the Mroonga plugin, docs/store.md \"Search\")")
#: Seconds between the indexer's passes while it has nothing left to do: the lag of a
#: new message before it can be found. A full batch is followed by the next sooner
#: (DUTY).
INDEX_PERIOD = 1.0
#: The most of the time the indexer spends indexing while more is waiting (catching up
#: after a burst, or the messages stored before migration 10): after a full batch that
#: took t seconds it pauses t * (1 - DUTY) / DUTY. On SQLite every write takes the one
#: write lock and on a small machine the CPU is shared, so this bounds what indexing
#: takes from the group commit (issue 20: at most 10%) whatever the load; under a load
#: the indexer cannot follow at this share, the lag grows and is made up when it eases.
DUTY = 0.1
#: Seconds between two attempts to make a missing index (MariaDB without Mroonga).
RETRY_INDEX = 60.0


class SearchIndexer:
    """Indexes what was committed since its cursor, every `period` seconds, in short
    transactions of its own (fastim/store/search.py `index_pass`)."""

    def __init__(self, store: Store, period: float = INDEX_PERIOD,
                 duty: float = DUTY) -> None:
        self.store = store
        self.period = period
        self.duty = duty
        self.messages = stored.IdFollower()
        self.changes = stored.IdFollower()
        #: Whether the index exists (False: MariaDB without Mroonga; retried).
        self.available = False
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._checked = 0.0

    async def start(self) -> None:
        """Check for (or make) the index, then run the passes in the background."""
        await self._check()
        self._task = asyncio.create_task(self._run(), name="search-indexer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _check(self) -> bool:
        if self.available:
            return True
        if self._checked and time.monotonic() - self._checked < RETRY_INDEX:
            return False
        self._checked = time.monotonic()
        self.available = await self.store.write(stored.ensure_index)
        return self.available

    async def step(self) -> int | None:
        """One pass: rows read (None: the index is missing, or another node indexes)."""
        async with self._lock:
            if not await self._check():
                return None
            return await self.store.write(stored.index_pass, self.messages, self.changes,
                                          time.monotonic())

    async def catch_up(self, passes: int = 10_000) -> None:
        """Index until nothing is left (tests, benchmarks; at most `passes` passes). A
        pass another indexer's lock turned away (a pass of this one still finishing on
        its thread after `stop`, or another node) is tried again shortly."""
        for _ in range(passes):
            done = await self.step()
            if done is None and self.available:
                await asyncio.sleep(0.01)
            elif not done:
                return

    async def _run(self) -> None:
        while True:
            began = time.monotonic()
            try:
                done = await self.step()
            except asyncio.CancelledError:
                raise
            except Exception:  # a lost connection, a deadlock: the next pass retries
                log.exception("search indexing failed; retrying")
                done = None
            if done and done >= stored.BATCH:
                # More is waiting: go on, but at most `duty` of the time.
                spent = time.monotonic() - began
                await asyncio.sleep(spent * (1 - self.duty) / self.duty)
            else:
                await asyncio.sleep(self.period)


class MessageSearch:
    """Search of stored messages over the conversations a user may read."""

    def __init__(self, store: Store, storage: ChatStorage, chat: ChatQueries,
                 indexer: SearchIndexer | None = None) -> None:
        self.store = store
        self.storage = storage
        self.chat = chat
        self.indexer = indexer or SearchIndexer(store)

    @property
    def enabled(self) -> bool:
        """False when messages are sealed at rest: then every search is refused (501)."""
        return self.storage.sealer is None

    async def search(self, user_id: int, query: str, kind: int | None, dstid: int | None,
                     before: int | None, size: int) -> Page[dict[str, Any]]:
        """Messages containing `query` (case-insensitive; CJK and emoji as typed), newest
        first, older than message `before`; in one conversation when `kind` and `dstid`
        are given. 400 for an empty or too long query or a bad page size, 403 for a
        conversation the user may not read, 501 when messages are sealed, 503 when the
        database has no search index."""
        if not self.enabled:
            raise AppError(501, SEALED_REFUSAL)
        if not self.indexer.available:
            raise AppError(503, NO_INDEX)
        query = query.strip()
        if not query:
            raise AppError(400, "q (what to search for) is required")
        if len(query) > MAX_QUERY:
            raise AppError(400, f"q may be at most {MAX_QUERY} characters")
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in query):
            # A NUL ends an FTS5 query string early (a 500): no message text needs them.
            raise AppError(400, "q may not hold control characters")
        if not 1 <= size <= MAX_SEARCH_PAGE:
            raise AppError(400, f"pagesize must be 1 to {MAX_SEARCH_PAGE}")
        only = None
        if kind is not None or dstid is not None:
            if kind is None or dstid is None:
                raise AppError(400, "cmd and dstid go together (one conversation) or not at all")
            if kind == Cmd.GROUP:
                # As history: a member, or a former member within their old window.
                if await self.store.read(groups.history_window, dstid, user_id) is None:
                    raise AppError(403, f"you are not a member of group {dstid}")
            else:
                await self.chat.conversation_of(user_id, kind, dstid)
            only = (kind, dstid)
        return await self.store.read(stored.search, user_id, query, only, before, size)

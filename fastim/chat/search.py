"""`GET /chat/search`: the rules of a message search, on behalf of the token's user.

Which messages may be found is decided by the store's `readable_messages`
(fastim/store/search.py), in the same transaction as the search; a search of one
conversation (`cmd` + `dstid`) is first checked exactly as /chat/history checks it
(403 for a conversation the user is not part of).
"""

from __future__ import annotations

from typing import Any

from fastim.chat.history import ChatQueries
from fastim.errors import AppError
from fastim.store import Page, Store
from fastim.store import search as stored
from fastim.store.messages import ChatStorage

#: The longest page of a search, and the longest query (characters).
MAX_SEARCH_PAGE = 100
MAX_QUERY = 100

#: The answer while messages are sealed at rest (docs/security.md): the server holds no
#: plaintext to index, and this release keeps no blind index.
SEALED_REFUSAL = ("search is turned off on this server: messages are sealed at rest "
                  "(--message-key-file), so there is no text to search")


class MessageSearch:
    """Search of stored messages over the conversations a user may read."""

    def __init__(self, store: Store, storage: ChatStorage, chat: ChatQueries) -> None:
        self.store = store
        self.storage = storage
        self.chat = chat

    @property
    def enabled(self) -> bool:
        """False when messages are sealed at rest: then every search is refused (501)."""
        return self.storage.sealer is None

    async def search(self, user_id: int, query: str, kind: int | None, dstid: int | None,
                     before: int | None, size: int) -> Page[dict[str, Any]]:
        """Messages containing `query` (case-insensitive; CJK and emoji as typed), newest
        first, older than message `before`; in one conversation when `kind` and `dstid`
        are given. 400 for an empty or too long query or a bad page size, 403 for a
        conversation the user is not part of, 501 when messages are sealed."""
        if not self.enabled:
            raise AppError(501, SEALED_REFUSAL)
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
            await self.chat.conversation_of(user_id, kind, dstid)
            only = (kind, dstid)
        return await self.store.read(stored.search, user_id, query, only, before, size)

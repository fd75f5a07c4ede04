"""The chat's REST companions of the WebSocket: history, read marks and unread counts.

Each acts as the token's user and only on a conversation the user is part of (a friend's
1:1 chat, or a former friend's that has messages; a group the user is a member of): asked at every call from the database, not
from the hub's memory, since a node may serve these without a hub (docs/scaling.md).
"""

from __future__ import annotations

from typing import Any

from fastim.chat.hub import conversation
from fastim.chat.protocol import Cmd
from fastim.errors import AppError
from fastim.store import Page, Store, groups
from fastim.store.changes import LifecycleStorage
from fastim.store.messages import ChatStorage

#: The longest page of `history`.
MAX_HISTORY_PAGE = 100


class ChatQueries:
    """Reads of stored messages on behalf of a user."""

    def __init__(self, store: Store, storage: ChatStorage) -> None:
        self.store = store
        self.storage = storage

    async def conversation_of(self, user_id: int, kind: int, dstid: int) -> str:
        """The key of the conversation `kind` (10: 1:1, 11: group) with `dstid`; 403 if
        `user_id` is not part of it, 400 for another kind."""
        if kind == Cmd.SINGLE:
            conv = conversation(kind, user_id, dstid)
            # A former friend's chat stays readable (unfriended, blocked): 1:1 messages
            # are only ever stored between friends, so one in it means they were.
            if (dstid == user_id or not await self.store.are_friends(user_id, dstid)
                    and not await self.storage.has_messages(conv)):
                raise AppError(403, f"user {dstid} is not your friend")
            return conv
        elif kind == Cmd.GROUP:
            if not await self.store.is_member(dstid, user_id):
                raise AppError(403, f"you are not a member of group {dstid}")
        else:
            raise AppError(400, "cmd must be 10 (1:1) or 11 (group)")
        return conversation(kind, user_id, dstid)

    async def history(self, user_id: int, kind: int, dstid: int, before: int | None,
                      size: int) -> Page[dict[str, Any]]:
        """One page of a conversation, newest first, older than message `before`, and
        the number of messages in the whole conversation. `size` is 1 to
        MAX_HISTORY_PAGE (400 otherwise: a 0 once gave one row without a word)."""
        if not 1 <= size <= MAX_HISTORY_PAGE:
            raise AppError(400, f"pagesize must be 1 to {MAX_HISTORY_PAGE}")
        if kind == Cmd.GROUP:
            # A member reads from when they joined (or all, if the group says so); a
            # former member what they could read until they left (fastim/store/groups.py).
            window = await self.store.read(groups.history_window, dstid, user_id)
            if window is None:
                raise AppError(403, f"you are not a member of group {dstid}")
            conv = conversation(kind, user_id, dstid)
            if isinstance(self.storage, LifecycleStorage):
                return await self.storage.history_for(user_id, conv, before, size, *window)
            return await self.storage.history_page(conv, before, size, *window)
        conv = await self.conversation_of(user_id, kind, dstid)
        if isinstance(self.storage, LifecycleStorage):
            # Each message as it is now, without those the user deleted for themselves.
            return await self.storage.history_for(user_id, conv, before, size)
        return await self.storage.history_page(conv, before, size)

    async def read_marks(self, user_id: int, kind: int, dstid: int) -> dict[int, int]:
        """How far each participant of the conversation has read (user id -> message id)."""
        return await self.storage.read_marks(await self.conversation_of(user_id, kind, dstid))

    async def unread(self, user_id: int) -> list[dict[str, Any]]:
        """Unread counts of every conversation of the user that has any: ``cmd``,
        ``dstid``, ``unread`` and ``last``."""
        friends = await self.store.friend_ids(user_id)
        groups = await self.store.group_ids(user_id)
        convs = {conversation(Cmd.SINGLE, user_id, f): (Cmd.SINGLE, f) for f in friends}
        convs.update({conversation(Cmd.GROUP, user_id, g): (Cmd.GROUP, g) for g in groups})
        rows = []
        mentions: dict[str, int] = {}
        if isinstance(self.storage, LifecycleStorage):
            mentions = await self.storage.unread_mentions(user_id, list(convs))
        for row in await self.storage.unread(user_id, list(convs)):
            kind, dstid = convs[row["conv"]]
            rows.append({"cmd": int(kind), "dstid": dstid, "unread": row["unread"],
                         "last": row["last"], "mentions": mentions.get(row["conv"], 0)})
        return rows

    async def summaries(self, user_id: int) -> list[dict[str, Any]]:
        """Every conversation of the user's lists (each friend, each group), with its
        newest message as the user sees it (``message``, None when there is none) and the
        unread counts (``unread``, ``mentions``, as /chat/unread), and ``sender``, the
        public profile of a sender who is not a friend of the caller; newest first: what
        the client's list needs at start-up, in one request (docs/api.md)."""
        friends = await self.store.friend_ids(user_id)
        windows_of_groups = await self.store.read(groups.member_windows, user_id)
        convs = {conversation(Cmd.SINGLE, user_id, f): (Cmd.SINGLE, f) for f in friends}
        convs.update({conversation(Cmd.GROUP, user_id, g): (Cmd.GROUP, g)
                      for g in windows_of_groups})
        windows = {conv: (windows_of_groups[dstid] if kind == Cmd.GROUP else 0)
                   for conv, (kind, dstid) in convs.items()}
        newest = await self.storage.newest_for(user_id, windows)
        mentions: dict[str, int] = {}
        if isinstance(self.storage, LifecycleStorage):
            mentions = await self.storage.unread_mentions(user_id, list(convs))
        counts = {row["conv"]: row for row in await self.storage.unread(user_id, list(convs))}
        # A group's newest message may come from someone who is not the caller's friend:
        # their public profile comes along, so the list names them, not "User 3".
        senders = {m["userid"] for m in newest.values()} - set(friends) - {user_id}
        profiles = {u.id: u.public() for u in await self.store.get_users(senders)}
        rows: list[dict[str, Any]] = []
        for conv, (kind, dstid) in convs.items():
            count = counts.get(conv)
            message = newest.get(conv)
            row: dict[str, Any] = {"cmd": int(kind), "dstid": dstid, "message": message,
                   "unread": count["unread"] if count else 0,
                   "mentions": mentions.get(conv, 0) if count else 0}
            if message is not None and message["userid"] in profiles:
                row["sender"] = profiles[message["userid"]]
            rows.append(row)
        rows.sort(key=lambda r: -(int(r["message"]["id"]) if r["message"] else 0))
        return rows

"""The rules of a message's life after it was sent: who may reply to, mention, edit,
recall, react to or delete (for themselves) which message, and until when.

The server enforces them, never the client (docs/chat-protocol.md, "Changing a
message"). They run inside the store's transaction, with the message's row locked
(`fastim.store.changes.apply_change`), so a decision and the write it allows cannot be
separated by another change. Who may moderate a group's messages is one function,
`may_moderate`.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from fastim.chat.protocol import Change, ChatError, ChatMessage, Cmd, Media
from fastim.store.changes import (
    DELETE,
    EDIT,
    REACT,
    RECALL,
    ChangeRefused,
    ChangeRequest,
    MessageState,
    members_among,
    quote,
)
from fastim.store.groups import is_group_moderator, member_since
from fastim.store.sealing import Sealer
from fastim.store.sql import Tx

#: Seconds after sending during which the sender may edit a text (`--edit-window`).
EDIT_WINDOW = 24 * 3600.0
#: Seconds after sending during which the sender may recall a message
#: (`--recall-window`; WeChat's 撤回 allows two minutes).
RECALL_WINDOW = 120.0
#: Distinct emoji one message may carry (each at most once per user).
MAX_REACTIONS = 20


@dataclass(frozen=True)
class LifecycleOptions:
    edit_window: float = EDIT_WINDOW  # seconds
    recall_window: float = RECALL_WINDOW  # seconds
    max_reactions: int = MAX_REACTIONS


def may_moderate(tx: Tx, group_id: int, user_id: int) -> bool:
    """Whether `user_id` may moderate group `group_id`'s messages (recall anyone's, at
    any time; mention everyone): the group's owner and its admins."""
    return is_group_moderator(tx, group_id, user_id)


def request_of(user: int, change: Change, ts: int) -> ChangeRequest:
    return ChangeRequest(kind=int(change.cmd), message_id=change.id, actor=user,
                         cid=change.cid, ts=ts, content=change.content,
                         emoji=change.emoji, on=change.on)


class Rules:
    """The checks of one change by one user, given what the hub knows of that user now
    (their friends and groups: a change reaches only a conversation they are part of)."""

    def __init__(self, options: LifecycleOptions, friends: Collection[int],
                 groups: Collection[int]) -> None:
        self.options = options
        self.friends = friends
        self.groups = groups

    def check(self, tx: Tx, state: MessageState, request: ChangeRequest) -> None:
        actor = request.actor
        if state.cmd == Cmd.GROUP:
            since = member_since(tx, state.dstid, actor)
            if state.dstid not in self.groups or since is None:
                raise ChangeRefused("not_member", f"you are not a member of group {state.dstid}")
            if state.id <= since:
                # Sent before the actor joined (a group whose history is "joined"): a
                # message they may not read does not exist for them, for any change.
                raise ChangeRefused("not_found", f"there is no message {state.id}")
        elif actor not in (state.sender, state.dstid):
            raise ChangeRefused("not_found", f"there is no message {state.id}")
        elif request.kind != DELETE:
            other = state.dstid if actor == state.sender else state.sender
            if other not in self.friends:
                raise ChangeRefused("not_friend", f"user {other} is not your friend")
        if request.kind == DELETE:
            return
        if state.recalled:
            raise ChangeRefused("recalled", f"message {state.id} was recalled")
        age = (request.ts - state.created) / 1000
        if request.kind == EDIT:
            if actor != state.sender:
                raise ChangeRefused("not_sender", "only the sender may edit a message")
            if state.media != Media.TEXT:
                raise ChangeRefused("not_text", "only a text message can be edited")
            if age > self.options.edit_window:
                raise ChangeRefused("too_late", f"a message can be edited for "
                                    f"{self.options.edit_window:g} s after it was sent")
        elif request.kind == RECALL:
            moderator = state.cmd == Cmd.GROUP and may_moderate(tx, state.dstid, actor)
            if actor != state.sender and not moderator:
                raise ChangeRefused("not_sender", "only the sender (or the group's owner) "
                                    "may recall a message")
            if not moderator and age > self.options.recall_window:
                raise ChangeRefused("too_late", f"a message can be recalled for "
                                    f"{self.options.recall_window:g} s after it was sent")
        elif request.kind == REACT and request.on:
            reactions = state.reactions
            if request.emoji not in reactions and \
                    len(reactions) >= self.options.max_reactions:
                raise ChangeRefused("too_many_reactions", f"a message takes at most "
                                    f"{self.options.max_reactions} different reactions")


def prepare_message(tx: Tx, sealer: Sealer | None, user: int, message: ChatMessage,
                    conv: str) -> dict[str, Any]:
    """Check a new message's reply and mentions before it is stored; return what its
    delivered frame adds (`reply`, `mentions`). Raises ChatError."""
    extra: dict[str, Any] = {}
    if message.reply_to is not None:
        # A group member may quote only what they may read: from their join on.
        after = (member_since(tx, message.dstid, user) or 0) if message.cmd == Cmd.GROUP \
            else 0
        quoted = quote(tx, conv, message.reply_to, sealer, after)
        if quoted is None:
            raise ChatError("not_found", f"there is no message {message.reply_to} in this "
                            "conversation to reply to", message.cid)
        extra["reply"] = quoted
    mentions = message.mentions
    if mentions == "all":
        if not may_moderate(tx, message.dstid, user):
            raise ChatError("not_moderator", "only the group's owner may mention everyone",
                            message.cid)
        extra["mentions"] = "all"
    elif isinstance(mentions, tuple) and mentions:
        named = list(mentions)
        strangers = set(named) - members_among(tx, message.dstid, named)
        if strangers:
            raise ChatError("not_member", f"users {sorted(strangers)} are not members of "
                            f"group {message.dstid}", message.cid)
        extra["mentions"] = named
    return extra

"""Control events: the changes the chat hub must hear of, on this node and on every other.

A service publishes one of these on the bus after its change is committed (a friendship
made or ended, a friend request, a membership, a dissolved group, revoked login tokens); the bus carries it, in process or
through Redis, and the hub applies it (`fastim.chat.hub.Hub.apply`). The bus itself only
carries them: it knows neither the accounts nor the hub.

Sans-I/O: `to_json` and `from_json` turn an event into the body of a message on the
Redis control channel (docs/scaling.md) and back. The JSON is compact and short-keyed
(``{"t":"join","g":7,"u":3}``) because every node receives every control message.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FriendAdded:
    """``user_id`` and ``friend_id`` are now friends (both ways)."""

    user_id: int
    friend_id: int


@dataclass(frozen=True)
class FriendRemoved:
    """``user_id`` and ``friend_id`` are friends no more (an unfriend, or a block): on every
    node, presence, typing and 1:1 messages between them stop at once."""

    user_id: int
    friend_id: int


@dataclass(frozen=True)
class FriendRequested:
    """``from_id`` asked ``to_id`` to be friends (request ``request_id``). Published only for
    a request that reaches ``to_id``: never for one to a user who blocks the asker."""

    request_id: int
    from_id: int
    to_id: int


@dataclass(frozen=True)
class MemberJoined:
    """``user_id`` joined ``group_id`` (also sent for the owner of a new group). They
    read its messages above id ``since`` (their history window; None: not known, from
    a node that did not send it)."""

    group_id: int
    user_id: int
    since: int | None = None


@dataclass(frozen=True)
class MemberLeft:
    """``user_id`` left ``group_id``."""

    group_id: int
    user_id: int


@dataclass(frozen=True)
class GroupDissolved:
    """``group_id`` no longer exists; ``member_ids`` were its members (known where it
    was dissolved; not carried to other nodes, whose hubs know their own online members)."""

    group_id: int
    member_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class GroupNotice:
    """Something happened in ``group_id`` that its members see live (cmd 71,
    docs/chat-protocol.md): ``event`` is "joined", "left", "removed" (``banned`` too when
    the removal came with a ban), "role" (``role`` is the new one), "request" (a join
    request waits: only ``to``, the moderators, are told) or "settings". ``user_id`` is
    who it is about, ``by_id`` who did it (0: the user themselves). "joined", "left" and
    "removed" also change the membership the hubs keep, on every node: a removed
    member's connections stop receiving the group at once. ``to`` empty: the group's
    members (and the user it is about) are told. ``since``, for "joined": the new
    member reads the group's messages above this id (their history window; None: not
    known)."""

    group_id: int
    event: str
    user_id: int
    by_id: int = 0
    role: str = ""
    banned: bool = False
    to: tuple[int, ...] = ()
    since: int | None = None


@dataclass(frozen=True)
class TokensRevoked:
    """Login tokens of ``user_id`` were revoked: the chat connections opened with them end.

    ``token_hashes`` None means every token of the user but ``keep`` (a password change
    keeps the device that made it). ``reason`` is the close reason the client reads.
    """

    user_id: int
    token_hashes: tuple[str, ...] | None
    keep: str | None = None
    reason: str = "logged out"


@dataclass(frozen=True)
class UsersWentOffline:
    """``user_ids`` were on a node that stopped without saying so: their friends elsewhere
    see them offline. Published by the Redis registry's reaper, never by a service."""

    user_ids: tuple[int, ...]


#: What a change to friends and groups publishes (`fastim.accounts.Contacts`).
ContactEvent = (FriendAdded | FriendRemoved | FriendRequested | MemberJoined | MemberLeft
                | GroupDissolved | GroupNotice)
#: Everything the control channel carries.
ControlEvent = ContactEvent | TokensRevoked | UsersWentOffline


def to_json(event: ControlEvent) -> str:
    """The control channel's body for `event`."""
    body: dict[str, Any]
    match event:
        case FriendAdded(user_id=a, friend_id=b):
            body = {"t": "friend", "a": a, "b": b}
        case FriendRemoved(user_id=a, friend_id=b):
            body = {"t": "unfriend", "a": a, "b": b}
        case FriendRequested(request_id=r, from_id=a, to_id=b):
            body = {"t": "request", "r": r, "a": a, "b": b}
        case MemberJoined(group_id=g, user_id=u, since=since):
            body = {"t": "join", "g": g, "u": u, "s": since}
        case MemberLeft(group_id=g, user_id=u):
            body = {"t": "leave", "g": g, "u": u}
        case GroupDissolved(group_id=g):
            body = {"t": "dissolve", "g": g}
        case GroupNotice():
            body = {"t": "group", "g": event.group_id, "e": event.event, "u": event.user_id,
                    "by": event.by_id, "r": event.role, "b": event.banned,
                    "to": list(event.to), "s": event.since}
        case TokensRevoked():
            hashes = None if event.token_hashes is None else list(event.token_hashes)
            body = {"t": "revoke", "u": event.user_id, "h": hashes, "k": event.keep,
                    "r": event.reason}
        case UsersWentOffline(user_ids=users):
            body = {"t": "gone", "users": list(users)}
    return json.dumps(body, separators=(",", ":"))


def _since(body: dict[str, Any]) -> int | None:
    since = body.get("s")
    return None if since is None else int(since)


def from_json(text: str) -> ControlEvent:
    """The event a control channel's body holds; ValueError (or KeyError, TypeError for a
    malformed one) when it is not one this node knows."""
    body = json.loads(text)
    if not isinstance(body, dict):
        raise ValueError("a control event is a JSON object")
    kind = body.get("t")
    if kind == "friend":
        return FriendAdded(int(body["a"]), int(body["b"]))
    if kind == "unfriend":
        return FriendRemoved(int(body["a"]), int(body["b"]))
    if kind == "request":
        return FriendRequested(int(body["r"]), int(body["a"]), int(body["b"]))
    if kind == "join":
        return MemberJoined(int(body["g"]), int(body["u"]), _since(body))
    if kind == "leave":
        return MemberLeft(int(body["g"]), int(body["u"]))
    if kind == "dissolve":
        return GroupDissolved(int(body["g"]))
    if kind == "group":
        return GroupNotice(int(body["g"]), str(body["e"]), int(body["u"]), int(body["by"]),
                           str(body.get("r") or ""), bool(body.get("b")),
                           tuple(int(u) for u in body.get("to") or ()), _since(body))
    if kind == "revoke":
        hashes = body.get("h")
        return TokensRevoked(int(body["u"]),
                             None if hashes is None else tuple(str(h) for h in hashes),
                             body.get("k"), str(body.get("r") or "logged out"))
    if kind == "gone":
        return UsersWentOffline(tuple(int(u) for u in body["users"]))
    raise ValueError(f"unknown control event {kind!r}")

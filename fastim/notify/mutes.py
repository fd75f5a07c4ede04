"""Muted conversations: `POST /contact/mute` and `/contact/unmute` (docs/api.md).

A mute is kept in the database, so every device of the user (and every node) honours it:
no sound, no desktop notification, no Web Push for that conversation while it lasts.
After each change every open device of the user is told at once (cmd 70, event "mute",
docs/chat-protocol.md), through the bus like any frame to a user, on whichever node
the device is connected.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from fastim.accounts import User
from fastim.accounts.fields import integer
from fastim.bus.base import Bus
from fastim.errors import bad_request, not_found
from fastim.store import Store
from fastim.store.notify import GROUP, SINGLE, Mute, clear_mute, in_conversation, mutes_of, set_mute

#: cmd 70 of docs/chat-protocol.md (Cmd.CONTACT): a change to one's contacts.
CONTACT = 70
#: The latest end a mute may have: about a year ahead (further is "until unmuted").
MAX_MUTE = 366 * 24 * 3600


class Mutes:
    def __init__(self, store: Store, bus: Bus, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.bus = bus
        self.clock = clock

    def _now(self) -> int:
        return int(self.clock())

    async def _conversation(self, user: User, values: Mapping[str, Any]) -> tuple[int, int]:
        kind = integer(values, "cmd", minimum=0, maximum=99)
        if kind not in (SINGLE, GROUP):
            raise bad_request("cmd must be 10 (a friend) or 11 (a group)")
        dstid = integer(values, "dstid", minimum=1, maximum=2**53)
        if not await self.store.read(in_conversation, user.id, kind, dstid):
            what = f"user {dstid} is not your friend" if kind == SINGLE \
                else f"you are not a member of group {dstid}"
            raise not_found(what)
        return kind, dstid

    async def mute(self, user: User, values: Mapping[str, Any]) -> Mute:
        """Mute a conversation, until ``until`` (Unix seconds, in the future) or, without
        it, until unmuted; muting again moves the end."""
        kind, dstid = await self._conversation(user, values)
        now = self._now()
        until = integer(values, "until", minimum=0, maximum=2**40, default=0)
        if until and until <= now:
            raise bad_request("until must be in the future (Unix seconds), or left out")
        if until > now + MAX_MUTE:
            raise bad_request("until is more than a year ahead: leave it out to mute "
                              "until unmuted")
        await self.store.write(set_mute, user.id, kind, dstid, until)
        mute = Mute(kind, dstid, until)
        self._tell(user.id, mute, True)
        return mute

    async def unmute(self, user: User, values: Mapping[str, Any]) -> None:
        """Unmute a conversation (unmuting one that is not muted is no error)."""
        kind, dstid = await self._conversation(user, values)
        await self.store.write(clear_mute, user.id, kind, dstid)
        self._tell(user.id, Mute(kind, dstid, 0), False)

    async def of(self, user_id: int) -> list[Mute]:
        """The conversations the user has muted now."""
        return await self.store.read(mutes_of, user_id, self._now())

    def _tell(self, user_id: int, mute: Mute, muted: bool) -> None:
        frame = {"cmd": CONTACT, "event": "mute", "kind": mute.kind, "dstid": mute.dstid,
                 "muted": muted, "until": (mute.until or None) if muted else None}
        self.bus.to_users([user_id], json.dumps(frame, separators=(",", ":")))

"""Friends and groups (fastIM's ``/contact/*``), on top of the store.

Every method acts as ``user`` -- the caller the token identified -- and validates its
``values``. Friendships are made by consent: a request, accepted by the other
(docs/security.md, "Abuse between users"). Rules that concurrency could break (one friendship per pair, unique group
names, the per-owner group limit, "the owner cannot leave") are decided inside the
store's transactions; this layer only turns their verdicts into statuses and messages.

The chat hub keeps friend and member sets in memory; it learns of every change through
the bus: each committed change publishes one event (`fastim.bus.events`), and the method
returns once the other nodes have it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from fastim.accounts import fields
from fastim.accounts.names import name_key
from fastim.bus.base import Publisher, publish_committed
from fastim.bus.events import (
    ContactEvent,
    FriendAdded,
    FriendRemoved,
    FriendRequested,
    GroupDissolved,
    MemberJoined,
    MemberLeft,
)
from fastim.errors import (
    AppError,
    bad_request,
    conflict,
    forbidden,
    not_found,
    too_many_requests,
)
from fastim.store import (
    Duplicate,
    FriendRequest,
    Group,
    Member,
    Missing,
    Page,
    Refused,
    Store,
    User,
)

log = logging.getLogger(__name__)

GROUP_LIMIT = 5  # groups one user may own by default (`--group-limit`)
#: New friend requests one user may make in 24 hours (`--friend-requests-per-day`).
FRIEND_REQUESTS_PER_DAY = 50
#: Seconds a friend request waits for an answer (`--friend-request-ttl`): 30 days.
FRIEND_REQUEST_TTL = 30 * 24 * 3600


class Contacts:
    """Friendships and groups."""

    def __init__(
        self,
        store: Store,
        *,
        group_limit: int = GROUP_LIMIT,
        requests_per_day: int | None = FRIEND_REQUESTS_PER_DAY,
        request_ttl: int = FRIEND_REQUEST_TTL,
        clock: Callable[[], float] = time.time,
        bus: Publisher | None = None,
    ) -> None:
        self.store = store
        self.group_limit = group_limit
        #: None: no quota (scripts, benchmarks).
        self.requests_per_day = requests_per_day
        self.request_ttl = request_ttl
        self.clock = clock
        #: Where committed changes are published (None: nowhere, e.g. a script's use).
        self.bus = bus

    async def backfill_name_keys(self) -> int:
        """Give each group created before names had keys (schema migration 4) its key,
        oldest first; returns how many got one. Of two older groups whose names look
        alike the older keeps the key and the other none (logged): both stay, and no
        new look-alike of either can be created."""
        given = 0
        after = 0
        while rows := await self.store.groups_without_name_key(after):
            for group_id, name in rows:
                after = group_id
                try:
                    await self.store.set_group_name_key(group_id, name_key(name))
                    given += 1
                except Duplicate:
                    log.warning("group %d's name %r looks like an older group's; it "
                                "keeps its name, without a name key", group_id, name)
        return given

    async def _emit(self, event: ContactEvent) -> None:
        await publish_committed(self.bus, event)

    def _now(self) -> int:
        return int(self.clock())

    # --- friends -------------------------------------------------------------------------

    async def add_friend(self, user: User, values: Mapping[str, Any]) -> str:
        """Ask a user given by ``dstid`` (id) or ``dstname`` / ``mobile`` (number) to be
        friends; return ``"requested"`` or ``"friends"``.

        The answer is the same for a user with an account, a number without one, a user
        who blocks the caller and a repeat ("requested"): it must not tell who uses
        fastim. "friends" when the other had asked the caller (this accepts that
        request), or when they are friends already. 400 for yourself or a malformed
        value, 404 for an unknown id (ids are public, numbers are not), 409 when the
        caller blocks them, 429 over ``requests_per_day`` new requests in 24 hours.
        """
        dstid = fields.identifier(values, "dstid")
        mobile: str | None = None
        if dstid is None:
            name = "dstname" if values.get("dstname") not in (None, "") else "mobile"
            if values.get(name) in (None, ""):
                raise bad_request("dstid or dstname (a mobile number) is required")
            mobile = fields.mobile(values, name)
            if mobile == user.mobile:
                raise bad_request("you cannot add yourself as a friend")
        try:
            outcome = await self.store.request_friend(
                user.id, to_id=dstid, to_mobile=mobile, ttl=self.request_ttl,
                per_day=self.requests_per_day, now=self._now())
        except Missing:
            raise not_found("no such user") from None
        except Refused as r:
            if r.reason == "throttled":
                raise too_many_requests(
                    f"you have sent {self.requests_per_day} friend requests in the last"
                    " 24 hours, the most allowed; try again later",
                    retry_after=r.retry_after or 3600) from None
            if r.reason == "you_block":
                raise conflict("you have blocked this user: unblock them first") from None
            raise bad_request("you cannot add yourself as a friend") from None
        if outcome.befriended is not None:
            await self._emit(FriendAdded(user.id, outcome.befriended))
        elif outcome.delivered is not None and outcome.to_id is not None:
            await self._emit(FriendRequested(outcome.delivered, user.id, outcome.to_id))
        return outcome.status

    async def friend_requests(self, user: User, values: Mapping[str, Any]) -> Page[FriendRequest]:
        """One page (``pagefrom``, ``pagesize``) of the caller's pending requests, made to
        them and by them, newest first."""
        offset, limit = fields.page(values)
        return await self.store.list_requests(user.id, offset, limit, now=self._now())

    def _request_id(self, values: Mapping[str, Any]) -> int:
        request_id = fields.identifier(values, "requestid")
        if request_id is None:
            raise bad_request("requestid is required")
        return request_id

    async def accept_request(self, user: User, values: Mapping[str, Any]) -> User:
        """Accept request ``requestid`` made to the caller; return the new friend.
        404 for a request that is not pending for the caller."""
        request_id = self._request_id(values)
        try:
            asker, new = await self.store.accept_request(user.id, request_id, now=self._now())
        except Missing:
            raise not_found("no such request") from None
        if new:
            await self._emit(FriendAdded(user.id, asker))
        friend = await self.store.get_user(asker)
        if friend is None:
            raise not_found("no such user")
        return friend

    async def decline_request(self, user: User, values: Mapping[str, Any]) -> None:
        """Decline request ``requestid`` made to the caller. The asker is not told: to
        them it stays pending until it expires. 404 like `accept_request`."""
        request_id = self._request_id(values)
        try:
            await self.store.decline_request(user.id, request_id, now=self._now())
        except Missing:
            raise not_found("no such request") from None

    def _other_user(self, user: User, values: Mapping[str, Any]) -> int:
        dstid = fields.identifier(values, "dstid")
        if dstid is None:
            raise bad_request("dstid (a user id) is required")
        if dstid == user.id:
            raise bad_request("that is you")
        return dstid

    async def unfriend(self, user: User, values: Mapping[str, Any]) -> None:
        """End the friendship with ``dstid``, on both sides and every node at once; the
        history stays readable to both. 404 when they are not friends."""
        other = self._other_user(user, values)
        if not await self.store.remove_friendship(user.id, other):
            raise not_found("this user is not your friend")
        await self._emit(FriendRemoved(user.id, other))

    async def block(self, user: User, values: Mapping[str, Any]) -> None:
        """Block ``dstid``: no messages or requests from them, no presence, typing or
        receipts to them; a friendship ends (they see an unfriend, nothing more).
        Blocking again changes nothing. 404 for an unknown id."""
        other = self._other_user(user, values)
        try:
            were_friends = await self.store.block_user(user.id, other, now=self._now())
        except Missing:
            raise not_found("no such user") from None
        if were_friends:
            await self._emit(FriendRemoved(user.id, other))

    async def unblock(self, user: User, values: Mapping[str, Any]) -> None:
        """Lift the block of ``dstid`` (nothing else comes back: not the friendship).
        Unblocking someone not blocked changes nothing."""
        other = self._other_user(user, values)
        await self.store.unblock_user(user.id, other)

    async def blocked(self, user: User, values: Mapping[str, Any]) -> Page[User]:
        """One page of the users the caller blocks."""
        offset, limit = fields.page(values)
        return await self.store.list_blocked(user.id, offset, limit)

    async def load_friends(self, user: User, values: Mapping[str, Any]) -> Page[User]:
        """One page (``pagefrom``, ``pagesize``) of the caller's friends."""
        offset, limit = fields.page(values)
        return await self.store.list_friends(user.id, offset, limit)

    # --- groups ---------------------------------------------------------------------

    async def create_group(self, user: User, values: Mapping[str, Any]) -> Group:
        """Create a group (``name``, optional ``icon``, ``memo``, ``cate``); return it.

        409 when the name is taken or the caller already owns ``group_limit`` groups.
        """
        name = fields.display_name(values, "name", max_len=fields.GROUP_NAME_MAX)
        icon = fields.local_url(values, "icon") or ""
        memo = fields.memo(values) or ""
        cate = fields.integer(values, "cate", minimum=0, maximum=255, default=1)
        try:
            group = await self.store.create_group(
                user.id,
                name,
                icon=icon,
                memo=memo,
                cate=cate,
                limit=self.group_limit,
                now=self._now(),
                name_key=name_key(name),
            )
        except Duplicate:
            raise conflict("a group with this name already exists") from None
        except Refused:
            raise conflict(
                f"you already own {self.group_limit} groups, the most one user may own;"
                " dissolve or hand over one first"
            ) from None
        except Missing:
            raise not_found("no such user") from None
        await self._emit(MemberJoined(group.id, user.id, since=0))  # a new group
        return group

    async def _target_group(self, values: Mapping[str, Any]) -> Group:
        dstid = fields.identifier(values, "dstid")
        if dstid is not None:
            found = await self.store.get_group(dstid)
        else:
            if values.get("dstname") in (None, ""):
                raise bad_request("dstid or dstname (a group name) is required")
            name = fields.text(
                values, "dstname", min_len=1, max_len=fields.GROUP_NAME_MAX, required=True
            )
            found = await self.store.get_group_by_name(name)
            if found is None:  # a name is one group whatever its look-alike spelling
                found = await self.store.get_group_by_name_key(name_key(name))
        if found is None:
            raise not_found("no such group")
        return found

    async def join_group(self, user: User, values: Mapping[str, Any]) -> Group:
        """Join a group by ``dstname`` (its name, as fastIM) or ``dstid``; 409 if a member."""
        group = await self._target_group(values)
        try:
            await self.store.add_member(group.id, user.id, now=self._now())
        except Duplicate:
            raise conflict("you are already a member of this group") from None
        except Missing:
            raise not_found("no such group") from None
        # fastIM's join (store.add_member) keeps since_id 0: the whole history.
        await self._emit(MemberJoined(group.id, user.id, since=0))
        return group

    async def leave_group(self, user: User, values: Mapping[str, Any]) -> Group:
        """Leave a group. Its owner cannot (409): hand it over or dissolve it first."""
        group = await self._target_group(values)
        try:
            await self.store.remove_member(group.id, user.id)
        except Missing:
            raise not_found("no such group") from None
        except Refused as r:
            if r.reason == "owner_cannot_leave":
                raise conflict(
                    "the owner cannot leave the group: hand it over to another member"
                    " (/contact/transfercommunity) or dissolve it (/contact/dissolvecommunity)"
                ) from None
            raise conflict("you are not a member of this group") from None
        await self._emit(MemberLeft(group.id, user.id))
        return group

    async def dissolve_group(self, user: User, values: Mapping[str, Any]) -> Group:
        """Delete a group and all its memberships; only its owner may (403)."""
        group = await self._target_group(values)
        try:
            members = await self.store.dissolve_group(group.id, user.id)
        except Missing:
            raise not_found("no such group") from None
        except Refused:
            raise forbidden("only the group's owner may dissolve it") from None
        await self._emit(GroupDissolved(group.id, tuple(members)))
        return group

    async def transfer_group(self, user: User, values: Mapping[str, Any]) -> Group:
        """Make member ``ownerid`` the group's owner (owner only); the caller stays a member."""
        group = await self._target_group(values)
        new_owner = fields.identifier(values, "ownerid")
        if new_owner is None:
            raise bad_request("ownerid (the new owner's user id) is required")
        try:
            return await self.store.transfer_group(
                group.id, user.id, new_owner, limit=self.group_limit
            )
        except Missing:
            raise not_found("no such group") from None
        except Refused as r:
            raise {
                "not_owner": forbidden("only the group's owner may hand it over"),
                "not_member": conflict("the new owner must be a member of the group"),
                "group_limit": conflict(
                    f"the new owner already owns {self.group_limit} groups"
                ),
            }.get(r.reason, AppError(409, r.reason)) from None

    async def group_members(self, user: User, values: Mapping[str, Any]) -> Page[Member]:
        """One page of a group's members (owner first); only for its members (403)."""
        group = await self._target_group(values)
        offset, limit = fields.page(values)
        if not await self.store.is_member(group.id, user.id):
            raise forbidden("only members can see who is in the group")
        return await self.store.list_members(group.id, offset, limit)

    async def load_groups(self, user: User, values: Mapping[str, Any]) -> Page[Group]:
        """One page of the groups the caller belongs to."""
        offset, limit = fields.page(values)
        return await self.store.list_user_groups(user.id, offset, limit)

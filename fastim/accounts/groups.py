"""Groups that are safe to run: who may find, join, invite, remove and read what.

Every method acts as ``user`` -- the caller the token identified -- and validates its
``values``; the rules that concurrency could break are decided inside the store's
transactions (fastim/store/groups.py). Each change a member should see live publishes
one `GroupNotice` on the bus (cmd 71 on /chat, on every node).

* A group is private by default: joining by name or id finds only public groups, and a
  private group is answered like a missing one (404), so its name is never confirmed.
* Owners and admins make invite links (``/join/CODE``); a code is 128 random bits,
  stored as its SHA-256 only, with an optional expiry and number of uses.
* Owners and admins remove members (optionally banning them), answer join requests of a
  group set to ``approval``; the owner alone changes settings and roles.
* A new member reads the messages from when they joined, unless the group's ``history``
  is ``all``; a former member keeps the window they had (docs/security.md).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any

from fastim.accounts import fields
from fastim.accounts.contacts import Contacts
from fastim.bus.base import Publisher, publish_committed
from fastim.bus.events import GroupNotice
from fastim.errors import AppError, bad_request, conflict, forbidden, not_found
from fastim.store import Duplicate, Group, Missing, Page, Refused, Store, User
from fastim.store import groups as sql
from fastim.store.groups import GroupSettings, Invite, JoinOutcome, Listed

#: Bytes of randomness in an invite code (128 bits: unguessable).
INVITE_BYTES = 16
#: Default and longest life of an invite link, seconds.
INVITE_TTL = 7 * 24 * 3600
INVITE_MAX_TTL = 365 * 24 * 3600
INVITE_MAX_USES = 100_000
NO_SUCH_GROUP = "no such group"


def code_hash(code: str) -> str:
    """What the store keeps of an invite code."""
    return hashlib.sha256(code.encode("utf-8")).hexdigest()


def _choice(values: Mapping[str, Any], name: str, allowed: tuple[str, ...]) -> str | None:
    raw = values.get(name)
    if raw in (None, ""):
        return None
    if not isinstance(raw, str) or raw not in allowed:
        raise bad_request(f"{name} must be one of: {', '.join(allowed)}")
    return raw


def _refusal(r: Refused) -> AppError:
    return {
        "not_member": forbidden("you are not a member of this group"),
        "not_moderator": forbidden("only the group's owner and admins may do this"),
        "not_owner": forbidden("only the group's owner may do this"),
        "owner_cannot_leave": conflict(
            "the owner cannot leave the group: hand it over to another member"
            " (/contact/transfercommunity) or dissolve it (/contact/dissolvecommunity)"),
        "self": bad_request("that is you"),
        "rank": forbidden("you cannot remove the owner, or an admin unless you own the group"),
        "banned": forbidden("you cannot join this group"),
    }.get(r.reason, AppError(409, r.reason))


class Groups:
    """Visibility, invites, roles, removal, bans, join requests and history windows."""

    def __init__(self, store: Store, contacts: Contacts, *,
                 clock: Callable[[], float] = time.time,
                 bus: Publisher | None = None) -> None:
        self.store = store
        self.contacts = contacts
        self.clock = clock
        self.bus = bus

    def _now(self) -> int:
        return int(self.clock())

    async def _emit(self, event: GroupNotice) -> None:
        await publish_committed(self.bus, event)

    def _group_id(self, values: Mapping[str, Any], name: str = "groupid") -> int:
        group_id = fields.identifier(values, name)
        if group_id is None:
            group_id = fields.identifier(values, "dstid")
        if group_id is None:
            raise bad_request(f"{name} (a group id) is required")
        return group_id

    def _user_id(self, values: Mapping[str, Any]) -> int:
        # Not `userid`: that names the caller, and must be theirs (fastim/handlers/auth.py).
        user_id = fields.identifier(values, "memberid")
        if user_id is None:
            raise bad_request("memberid (a member's user id) is required")
        return user_id

    async def _write(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return await self.store.write(fn, *args)
        except Missing as m:
            raise not_found({"group": NO_SUCH_GROUP, "user": "no such user",
                             "request": "no such join request",
                             "invite": "no such invite, or it has expired"}.get(
                                 m.what, NO_SUCH_GROUP)) from None
        except Refused as r:
            raise _refusal(r) from None

    # --- creating, finding, joining, leaving -------------------------------------------

    async def create(self, user: User, values: Mapping[str, Any]) -> dict[str, Any]:
        """fastIM's createcommunity, plus ``visibility`` (private by default), ``join``
        (open or approval) and ``history`` (joined or all)."""
        visibility = _choice(values, "visibility", sql.VISIBILITIES) or "private"
        policy = _choice(values, "join", sql.JOIN_POLICIES)
        history = _choice(values, "history", sql.HISTORIES)
        group = await self.contacts.create_group(user, values)
        found = await self._write(sql.set_settings, group.id, user.id, visibility, policy,
                                  history)
        # The owner is its first member: their other devices list the group at once, and
        # the hubs deliver its messages to them from now on, not after a reconnect. The
        # owner reads all of it (their membership's since_id is 0).
        await self._emit(GroupNotice(group.id, "joined", user.id, since=0))
        return {**group.to_dict(), **_settings_fields(found)}

    async def _find(self, values: Mapping[str, Any]) -> Group:
        try:
            return await self.contacts._target_group(values)
        except AppError as e:
            if e.status == 404:
                raise not_found(NO_SUCH_GROUP) from None
            raise

    async def join_public(self, user: User, values: Mapping[str, Any]) -> dict[str, Any]:
        """fastIM's joincommunity (``dstname`` or ``dstid``): public groups only; a
        private one is 404 like a missing one. A group that asks for approval gets a
        join request (``"status": "requested"``)."""
        group = await self._find(values)
        try:
            outcome: JoinOutcome = await self._write(sql.join, group.id, user.id,
                                                     self._now(), True)
        except AppError as e:
            if e.status == 403:  # banned: seen as an outsider sees a private group
                raise not_found(NO_SUCH_GROUP) from None
            raise
        except Duplicate:
            raise conflict("you are already a member of this group") from None
        return await self._joined(user, group.id, outcome)

    async def _joined(self, user: User, group_id: int, outcome: JoinOutcome) -> dict[str, Any]:
        if outcome.status == "requested":
            moderators = await self.store.read(sql.moderator_ids, group_id)
            await self._emit(GroupNotice(group_id, "request", user.id, to=tuple(moderators)))
            return {"id": group_id, "status": "requested"}
        await self._emit(GroupNotice(group_id, "joined", user.id, since=outcome.since))
        group = await self.store.get_group(group_id)
        if group is None:
            raise not_found(NO_SUCH_GROUP)
        return {**group.to_dict(), "status": "joined"}

    async def leave(self, user: User, values: Mapping[str, Any]) -> dict[str, Any]:
        """Leave a group; the owner cannot (409). What was readable stays readable."""
        group = await self.contacts._target_group(values)
        try:
            await self.store.write(sql.leave, group.id, user.id)
        except Missing:
            raise not_found(NO_SUCH_GROUP) from None
        except Refused as r:
            if r.reason == "not_member":
                raise conflict("you are not a member of this group") from None
            raise _refusal(r) from None
        await self._emit(GroupNotice(group.id, "left", user.id))
        return group.to_dict()

    # --- settings, members, roles --------------------------------------------------------

    async def info(self, user: User, values: Mapping[str, Any]) -> dict[str, Any]:
        """The group's settings, member count and the caller's role (members only)."""
        group_id = self._group_id(values)
        role = await self.store.read(sql.role_of, group_id, user.id)
        found = await self.store.read(sql.settings, group_id)
        if found is None or role is None:
            raise not_found(NO_SUCH_GROUP)
        return {**found.to_dict(), "role": role}

    async def changes(self, user: User, values: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Who joined and left the group, where in its messages (members only, 404 for
        anyone else, as `info`): the "X joined" and "X left" lines of a conversation."""
        group_id = self._group_id(values)
        if await self.store.read(sql.role_of, group_id, user.id) is None:
            raise not_found(NO_SUCH_GROUP)
        return await self.store.read(sql.membership_changes, group_id)

    async def update_settings(self, user: User, values: Mapping[str, Any]) -> dict[str, Any]:
        """The owner sets ``visibility``, ``join`` and ``history``."""
        group_id = self._group_id(values)
        found: GroupSettings = await self._write(
            sql.set_settings, group_id, user.id,
            _choice(values, "visibility", sql.VISIBILITIES),
            _choice(values, "join", sql.JOIN_POLICIES),
            _choice(values, "history", sql.HISTORIES))
        await self._emit(GroupNotice(group_id, "settings", user.id, by_id=user.id))
        return found.to_dict()

    async def set_role(self, user: User, values: Mapping[str, Any]) -> None:
        """The owner makes member ``memberid`` an ``admin`` or a ``member``."""
        group_id = self._group_id(values)
        target = self._user_id(values)
        role = _choice(values, "role", ("admin", "member"))
        if role is None:
            raise bad_request("role must be admin or member")
        await self._write(sql.set_role, group_id, user.id, target, role)
        await self._emit(GroupNotice(group_id, "role", target, by_id=user.id, role=role))

    async def kick(self, user: User, values: Mapping[str, Any]) -> dict[str, Any]:
        """Remove member ``memberid`` (owner or admin); ``ban`` (1/true) keeps them out.
        Their connections stop receiving the group at once, on every node."""
        group_id = self._group_id(values)
        target = self._user_id(values)
        ban = str(values.get("ban", "")).lower() in ("1", "true", "yes", "on")
        was_member: bool = await self._write(sql.kick, group_id, user.id, target, ban,
                                             self._now())
        if was_member:
            await self._emit(GroupNotice(group_id, "removed", target, by_id=user.id,
                                         banned=ban))
        elif not ban:
            raise not_found("this user is not a member of the group")
        return {"removed": was_member, "banned": ban}

    async def unban(self, user: User, values: Mapping[str, Any]) -> None:
        await self._write(sql.unban, self._group_id(values), user.id, self._user_id(values))

    async def bans(self, user: User, values: Mapping[str, Any]) -> Page[Listed]:
        offset, limit = fields.page(values)
        page: Page[Listed] = await self._write(sql.list_bans, self._group_id(values),
                                               user.id, offset, limit)
        return page

    async def join_requests(self, user: User, values: Mapping[str, Any]) -> Page[Listed]:
        offset, limit = fields.page(values)
        page: Page[Listed] = await self._write(sql.list_join_requests,
                                               self._group_id(values), user.id, offset, limit)
        return page

    async def answer_request(self, user: User, values: Mapping[str, Any],
                             approve: bool) -> None:
        """Approve or decline the join request of ``memberid`` (owner or admin)."""
        group_id = self._group_id(values)
        target = self._user_id(values)
        since = await self._write(sql.answer_join_request, group_id, user.id, target,
                                  approve, self._now())
        if since is not None:
            await self._emit(GroupNotice(group_id, "joined", target, by_id=user.id,
                                         since=since))

    # --- invites ------------------------------------------------------------------------

    async def create_invite(self, user: User, values: Mapping[str, Any]) -> dict[str, Any]:
        """A new invite link (owner or admin): ``expires`` (seconds from now, default 7
        days) and ``uses`` (how many joins, default no limit). The code is shown once."""
        group_id = self._group_id(values)
        ttl = fields.integer(values, "expires", minimum=60, maximum=INVITE_MAX_TTL,
                             default=INVITE_TTL)
        uses_raw = values.get("uses")
        uses = None if uses_raw in (None, "", 0, "0") else fields.integer(
            values, "uses", minimum=1, maximum=INVITE_MAX_USES, default=1)
        code = secrets.token_urlsafe(INVITE_BYTES)
        now = self._now()
        invite: Invite = await self._write(sql.create_invite, group_id, user.id,
                                           code_hash(code), now + ttl, uses, now)
        return {**invite.to_dict(), "code": code, "url": f"/join/{code}"}

    async def invites(self, user: User, values: Mapping[str, Any]) -> Page[Invite]:
        """The group's live invites (owner or admin), newest first, without their codes."""
        found: list[Invite] = await self._write(sql.list_invites, self._group_id(values),
                                                user.id, self._now())
        return Page(found, len(found))

    async def revoke_invite(self, user: User, values: Mapping[str, Any]) -> None:
        invite_id = fields.identifier(values, "inviteid")
        if invite_id is None:
            raise bad_request("inviteid is required")
        await self._write(sql.revoke_invite, self._group_id(values), user.id, invite_id)

    def _code(self, values: Mapping[str, Any]) -> str:
        code = values.get("code")
        if not isinstance(code, str) or not 1 <= len(code) <= 64:
            raise bad_request("code (from the invite link) is required")
        return code

    async def preview(self, code: str) -> GroupSettings:
        """The group an invite leads to: its name and member count (404 when the code is
        unknown, expired, used up or revoked)."""
        if not 1 <= len(code) <= 64:
            raise not_found("no such invite, or it has expired")
        try:
            found: GroupSettings = await self.store.read(sql.preview_invite, code_hash(code),
                                                         self._now())
        except Missing:
            raise not_found("no such invite, or it has expired") from None
        return found

    async def join_by_invite(self, user: User, values: Mapping[str, Any]) -> dict[str, Any]:
        """Join the group of invite ``code`` (private or not); 403 when banned."""
        code = self._code(values)
        try:
            outcome: JoinOutcome = await self._write(sql.join_by_invite, code_hash(code),
                                                     user.id, self._now())
        except Duplicate:
            raise conflict("you are already a member of this group") from None
        return await self._joined(user, outcome.group_id, outcome)


def _settings_fields(found: GroupSettings) -> dict[str, Any]:
    return {"visibility": found.visibility, "join": found.join_policy,
            "history": found.history}

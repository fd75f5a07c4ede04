"""``/contact/*``: friends and groups (fastIM's paths, plus leave/dissolve/transfer/members,
and friends by consent: requests, accept/decline, unfriend, block).

Thin: each handler reads the values, calls :class:`fastim.accounts.Contacts` as the
token's user, and renders the result; lists are ``{"code": 0, "msg": "", "rows": [...], "total": N}``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from fastim.accounts import Contacts, Group, User
from fastim.chat.protocol import Cmd
from fastim.handlers.auth import ListReply, endpoint, page_data
from fastim.http import Request, Router

if TYPE_CHECKING:
    from fastim.app import App

GroupChange = Callable[[Contacts, User, Mapping[str, Any]], Awaitable[Group]]


def register(router: Router, app: App) -> None:
    """Add the /contact routes. A change to friendships and memberships reaches this
    node's chat hub right after its commit, and every other node's before the reply
    leaves (`Contacts` publishes it on the bus, docs/scaling.md)."""

    async def online_among(ids: list[int]) -> set[int]:
        """Who of `ids` is online on any node."""
        return await app.services.bus.online(ids) if ids else set()

    @router.post("/contact/addfriend")
    @endpoint(app)
    async def add_friend(request: Request, values: dict[str, Any], user: Any) -> Any:
        # The same answer whether the number has an account or not (docs/security.md).
        return {"status": await app.services.contacts.add_friend(user, values)}

    @router.route(["GET", "POST"], "/contact/requests")
    @endpoint(app)
    async def friend_requests(request: Request, values: dict[str, Any], user: Any) -> Any:
        page = await app.services.contacts.friend_requests(user, values)
        return page_data(page, lambda r: r.to_dict())

    @router.post("/contact/accept")
    @endpoint(app)
    async def accept(request: Request, values: dict[str, Any], user: Any) -> Any:
        friend = await app.services.contacts.accept_request(user, values)
        profile = friend.public()
        profile["online"] = friend.id in await online_among([friend.id])
        return profile

    @router.post("/contact/decline")
    @endpoint(app)
    async def decline(request: Request, values: dict[str, Any], user: Any) -> Any:
        await app.services.contacts.decline_request(user, values)
        return None

    @router.post("/contact/unfriend")
    @endpoint(app)
    async def unfriend(request: Request, values: dict[str, Any], user: Any) -> Any:
        await app.services.contacts.unfriend(user, values)
        return None

    @router.post("/contact/block")
    @endpoint(app)
    async def block(request: Request, values: dict[str, Any], user: Any) -> Any:
        await app.services.contacts.block(user, values)
        return None

    @router.post("/contact/unblock")
    @endpoint(app)
    async def unblock(request: Request, values: dict[str, Any], user: Any) -> Any:
        await app.services.contacts.unblock(user, values)
        return None

    @router.route(["GET", "POST"], "/contact/blocked")
    @endpoint(app)
    async def blocked(request: Request, values: dict[str, Any], user: Any) -> Any:
        page = await app.services.contacts.blocked(user, values)
        return page_data(page, lambda u: u.public())

    async def muted_until(user: User, kind: int) -> dict[int, int | None]:
        """The conversations of `kind` the user muted: dstid -> end (None: until unmuted)."""
        return {m.dstid: m.until or None for m in await app.services.mutes.of(user.id)
                if m.kind == kind}

    def with_mute(row: dict[str, Any], muted: dict[int, int | None]) -> dict[str, Any]:
        """A muted conversation's row says so (the others keep fastIM's shape)."""
        if row["id"] in muted:
            row["muted"] = True
            row["muted_until"] = muted[row["id"]]
        return row

    @router.route(["GET", "POST"], "/contact/loadfriend")
    @endpoint(app)
    async def load_friends(request: Request, values: dict[str, Any], user: Any) -> Any:
        contacts = app.services.contacts
        page = await contacts.load_friends(user, values)
        online = await online_among([friend.id for friend in page.rows])
        muted = await muted_until(user, Cmd.SINGLE)

        def with_presence(friend: User) -> dict[str, Any]:
            profile = friend.public()
            profile["online"] = friend.id in online
            return with_mute(profile, muted)

        return page_data(page, with_presence)

    # Changes to one group: the same shape, one Contacts method each; the reply is the
    # group. Creating, joining and leaving are in fastim/handlers/groups.py.
    def group_change(path: str, call: GroupChange, status: int = 200) -> None:
        @router.post(path)
        @endpoint(app, status=status)
        async def change(request: Request, values: dict[str, Any], user: User) -> Any:
            return (await call(app.services.contacts, user, values)).to_dict()

    group_change("/contact/dissolvecommunity", Contacts.dissolve_group)
    group_change("/contact/transfercommunity", Contacts.transfer_group)

    @router.route(["GET", "POST"], "/contact/loadcommunity")
    @endpoint(app)
    async def load_groups(request: Request, values: dict[str, Any], user: Any) -> Any:
        contacts = app.services.contacts
        muted = await muted_until(user, Cmd.GROUP)
        return page_data(await contacts.load_groups(user, values),
                         lambda c: with_mute(c.to_dict(), muted))

    # Muted conversations (issue 20): every device of the user is told of a change.
    @router.post("/contact/mute")
    @endpoint(app)
    async def mute(request: Request, values: dict[str, Any], user: Any) -> Any:
        return (await app.services.mutes.mute(user, values)).to_dict()

    @router.post("/contact/unmute")
    @endpoint(app)
    async def unmute(request: Request, values: dict[str, Any], user: Any) -> Any:
        await app.services.mutes.unmute(user, values)
        return None

    @router.route(["GET", "POST"], "/contact/mutes")
    @endpoint(app)
    async def mutes(request: Request, values: dict[str, Any], user: Any) -> Any:
        rows = [m.to_dict() for m in await app.services.mutes.of(user.id)]
        return ListReply(rows, len(rows))

    @router.route(["GET", "POST"], "/contact/loadmembers")
    @endpoint(app)
    async def load_members(request: Request, values: dict[str, Any], user: Any) -> Any:
        contacts = app.services.contacts
        return page_data(await contacts.group_members(user, values), lambda m: m.to_dict())

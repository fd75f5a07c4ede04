"""``/contact/*``: friends and groups (fastIM's paths, plus leave/dissolve/transfer/members).

Thin: each handler reads the values, calls :class:`fastim.accounts.Contacts` as the
token's user, and renders the result; lists are ``{"rows": [...], "total": N}``.
"""

from __future__ import annotations

from typing import Any

from fastim.handlers.auth import endpoint, page_data, services
from fastim.http import Request, Router


def register(router: Router, app: Any) -> None:
    """Add the /contact routes. Changes to friendships and memberships reach this node's
    chat hub through `Contacts.subscribe` right after their commit (fastim/handlers/
    chat.py); with the Redis bus, every other node's hub is told before the reply
    leaves (docs/scaling.md)."""

    async def online_among(ids: list[int]) -> set[int]:
        """Who of `ids` is online on any node (this hub's bus, or an api node's)."""
        bus = app.hub.bus if app.hub is not None else app.bus
        return await bus.online(ids) if bus is not None and ids else set()

    async def told_everywhere() -> None:
        # The contacts listener has queued the change for the other nodes; wait until
        # Redis has it, so a client that is answered "left" can post nowhere after.
        if app.bus is not None:
            await app.bus.settle()

    @router.post("/contact/addfriend")
    @endpoint(app)
    async def add_friend(request: Request, values: dict[str, Any], user: Any) -> Any:
        _, contacts = services(app)
        friend = await contacts.add_friend(user, values)
        await told_everywhere()
        profile = friend.public()
        profile["online"] = friend.id in await online_among([friend.id])
        return profile

    @router.route(["GET", "POST"], "/contact/loadfriend")
    @endpoint(app)
    async def load_friends(request: Request, values: dict[str, Any], user: Any) -> Any:
        _, contacts = services(app)
        page = await contacts.load_friends(user, values)
        online = await online_among([friend.id for friend in page.rows])

        def with_presence(friend: Any) -> dict[str, Any]:
            profile = friend.public()
            profile["online"] = friend.id in online
            return profile

        return page_data(page, with_presence)

    @router.post("/contact/createcommunity")
    @endpoint(app, status=201)
    async def create_community(request: Request, values: dict[str, Any], user: Any) -> Any:
        _, contacts = services(app)
        community = await contacts.create_community(user, values)
        await told_everywhere()
        return community.to_dict()

    @router.post("/contact/joincommunity")
    @endpoint(app)
    async def join_community(request: Request, values: dict[str, Any], user: Any) -> Any:
        _, contacts = services(app)
        community = await contacts.join_community(user, values)
        await told_everywhere()
        return community.to_dict()

    @router.post("/contact/leavecommunity")
    @endpoint(app)
    async def leave_community(request: Request, values: dict[str, Any], user: Any) -> Any:
        _, contacts = services(app)
        community = await contacts.leave_community(user, values)
        await told_everywhere()
        return community.to_dict()

    @router.post("/contact/dissolvecommunity")
    @endpoint(app)
    async def dissolve_community(request: Request, values: dict[str, Any], user: Any) -> Any:
        _, contacts = services(app)
        community = await contacts.dissolve_community(user, values)
        await told_everywhere()
        return community.to_dict()

    @router.post("/contact/transfercommunity")
    @endpoint(app)
    async def transfer_community(request: Request, values: dict[str, Any], user: Any) -> Any:
        _, contacts = services(app)
        return (await contacts.transfer_community(user, values)).to_dict()

    @router.route(["GET", "POST"], "/contact/loadcommunity")
    @endpoint(app)
    async def load_communities(request: Request, values: dict[str, Any], user: Any) -> Any:
        _, contacts = services(app)
        return page_data(await contacts.load_communities(user, values), lambda c: c.to_dict())

    @router.route(["GET", "POST"], "/contact/loadmembers")
    @endpoint(app)
    async def load_members(request: Request, values: dict[str, Any], user: Any) -> Any:
        _, contacts = services(app)
        return page_data(await contacts.community_members(user, values), lambda m: m.to_dict())

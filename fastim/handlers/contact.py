"""``/contact/*``: friends and groups (fastIM's paths, plus leave/dissolve/transfer/members).

Thin: each handler reads the values, calls :class:`fastim.accounts.Contacts` as the
token's user, and renders the result; lists are ``{"rows": [...], "total": N}``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastim.handlers.auth import endpoint, page_data
from fastim.http import Request, Router
from fastim.store import User

if TYPE_CHECKING:
    from fastim.app import App


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
        contacts = app.services.contacts
        friend = await contacts.add_friend(user, values)
        profile = friend.public()
        profile["online"] = friend.id in await online_among([friend.id])
        return profile

    @router.route(["GET", "POST"], "/contact/loadfriend")
    @endpoint(app)
    async def load_friends(request: Request, values: dict[str, Any], user: Any) -> Any:
        contacts = app.services.contacts
        page = await contacts.load_friends(user, values)
        online = await online_among([friend.id for friend in page.rows])

        def with_presence(friend: User) -> dict[str, Any]:
            profile = friend.public()
            profile["online"] = friend.id in online
            return profile

        return page_data(page, with_presence)

    @router.post("/contact/createcommunity")
    @endpoint(app, status=201)
    async def create_community(request: Request, values: dict[str, Any], user: Any) -> Any:
        contacts = app.services.contacts
        community = await contacts.create_community(user, values)
        return community.to_dict()

    @router.post("/contact/joincommunity")
    @endpoint(app)
    async def join_community(request: Request, values: dict[str, Any], user: Any) -> Any:
        contacts = app.services.contacts
        community = await contacts.join_community(user, values)
        return community.to_dict()

    @router.post("/contact/leavecommunity")
    @endpoint(app)
    async def leave_community(request: Request, values: dict[str, Any], user: Any) -> Any:
        contacts = app.services.contacts
        community = await contacts.leave_community(user, values)
        return community.to_dict()

    @router.post("/contact/dissolvecommunity")
    @endpoint(app)
    async def dissolve_community(request: Request, values: dict[str, Any], user: Any) -> Any:
        contacts = app.services.contacts
        community = await contacts.dissolve_community(user, values)
        return community.to_dict()

    @router.post("/contact/transfercommunity")
    @endpoint(app)
    async def transfer_community(request: Request, values: dict[str, Any], user: Any) -> Any:
        contacts = app.services.contacts
        return (await contacts.transfer_community(user, values)).to_dict()

    @router.route(["GET", "POST"], "/contact/loadcommunity")
    @endpoint(app)
    async def load_communities(request: Request, values: dict[str, Any], user: Any) -> Any:
        contacts = app.services.contacts
        return page_data(await contacts.load_communities(user, values), lambda c: c.to_dict())

    @router.route(["GET", "POST"], "/contact/loadmembers")
    @endpoint(app)
    async def load_members(request: Request, values: dict[str, Any], user: Any) -> Any:
        contacts = app.services.contacts
        return page_data(await contacts.community_members(user, values), lambda m: m.to_dict())

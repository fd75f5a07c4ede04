"""``/contact/*``: friends and groups (fastIM's paths, plus leave/dissolve/transfer/members).

Thin: each handler reads the values, calls :class:`fastim.accounts.Contacts` as the
token's user, and renders the result; lists are ``{"rows": [...], "total": N}``.
"""

from __future__ import annotations

from typing import Any

from fastim.handlers.auth import endpoint, page_data, services
from fastim.http import Request, Router


def register(router: Router, app: Any) -> None:
    """Add the /contact routes."""

    def with_presence(profile: dict[str, Any]) -> dict[str, Any]:
        """A friend's profile with `online`: a device of theirs is connected to /chat."""
        profile["online"] = app.hub is not None and app.hub.is_online(profile["id"])
        return profile

    @router.post("/contact/addfriend")
    @endpoint(app)
    async def add_friend(request: Request, values: dict[str, Any], user: Any) -> Any:
        _, contacts = services(app)
        return with_presence((await contacts.add_friend(user, values)).public())

    @router.route(["GET", "POST"], "/contact/loadfriend")
    @endpoint(app)
    async def load_friends(request: Request, values: dict[str, Any], user: Any) -> Any:
        _, contacts = services(app)
        return page_data(await contacts.load_friends(user, values),
                         lambda u: with_presence(u.public()))

    @router.post("/contact/createcommunity")
    @endpoint(app, status=201)
    async def create_community(request: Request, values: dict[str, Any], user: Any) -> Any:
        _, contacts = services(app)
        return (await contacts.create_community(user, values)).to_dict()

    @router.post("/contact/joincommunity")
    @endpoint(app)
    async def join_community(request: Request, values: dict[str, Any], user: Any) -> Any:
        _, contacts = services(app)
        return (await contacts.join_community(user, values)).to_dict()

    @router.post("/contact/leavecommunity")
    @endpoint(app)
    async def leave_community(request: Request, values: dict[str, Any], user: Any) -> Any:
        _, contacts = services(app)
        return (await contacts.leave_community(user, values)).to_dict()

    @router.post("/contact/dissolvecommunity")
    @endpoint(app)
    async def dissolve_community(request: Request, values: dict[str, Any], user: Any) -> Any:
        _, contacts = services(app)
        return (await contacts.dissolve_community(user, values)).to_dict()

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

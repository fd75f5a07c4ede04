"""Groups that are safe to run: fastIM's createcommunity/joincommunity (now with
visibility), leave, settings, roles, removal and bans, join requests, invite links, and
the ``/join/CODE`` page (docs/api.md).

Thin: each handler reads the values, calls :class:`fastim.accounts.groups.Groups` as the
token's user, and renders the result.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastim.errors import AppError
from fastim.handlers.auth import ListReply, endpoint, page_data
from fastim.handlers.views import PAGE_HEADERS, SESSION_COOKIE
from fastim.http import Request, Response, Router, json_response

if TYPE_CHECKING:
    from fastim.app import App


def _joined(result: dict[str, Any]) -> Any:
    """A join's reply: the group (200), or 202 for a join request that awaits approval."""
    return json_response(result, 202) if result.get("status") == "requested" else result


def register(router: Router, app: App) -> None:
    """Add the group routes."""

    def groups() -> Any:
        return app.services.groups

    @router.post("/contact/createcommunity")
    @endpoint(app, status=201)
    async def create(request: Request, values: dict[str, Any], user: Any) -> Any:
        return await groups().create(user, values)

    @router.post("/contact/joincommunity")
    @endpoint(app)
    async def join(request: Request, values: dict[str, Any], user: Any) -> Any:
        return _joined(await groups().join_public(user, values))

    @router.post("/contact/leavecommunity")
    @endpoint(app)
    async def leave(request: Request, values: dict[str, Any], user: Any) -> Any:
        return await groups().leave(user, values)

    @router.route(["GET", "POST"], "/contact/groupinfo")
    @endpoint(app)
    async def info(request: Request, values: dict[str, Any], user: Any) -> Any:
        return await groups().info(user, values)

    @router.get("/contact/groupchanges")
    @endpoint(app)
    async def changes(request: Request, values: dict[str, Any], user: Any) -> Any:
        rows = await groups().changes(user, values)
        return ListReply(rows, len(rows))

    @router.post("/contact/groupsettings")
    @endpoint(app)
    async def settings(request: Request, values: dict[str, Any], user: Any) -> Any:
        return await groups().update_settings(user, values)

    @router.post("/contact/setrole")
    @endpoint(app)
    async def set_role(request: Request, values: dict[str, Any], user: Any) -> Any:
        await groups().set_role(user, values)
        return None

    @router.post("/contact/kick")
    @endpoint(app)
    async def kick(request: Request, values: dict[str, Any], user: Any) -> Any:
        return await groups().kick(user, values)

    @router.post("/contact/unban")
    @endpoint(app)
    async def unban(request: Request, values: dict[str, Any], user: Any) -> Any:
        await groups().unban(user, values)
        return None

    @router.route(["GET", "POST"], "/contact/bans")
    @endpoint(app)
    async def bans(request: Request, values: dict[str, Any], user: Any) -> Any:
        return page_data(await groups().bans(user, values), lambda b: b.to_dict())

    @router.route(["GET", "POST"], "/contact/joinrequests")
    @endpoint(app)
    async def join_requests(request: Request, values: dict[str, Any], user: Any) -> Any:
        return page_data(await groups().join_requests(user, values), lambda b: b.to_dict())

    @router.post("/contact/approvejoin")
    @endpoint(app)
    async def approve(request: Request, values: dict[str, Any], user: Any) -> Any:
        await groups().answer_request(user, values, True)
        return None

    @router.post("/contact/declinejoin")
    @endpoint(app)
    async def decline(request: Request, values: dict[str, Any], user: Any) -> Any:
        await groups().answer_request(user, values, False)
        return None

    @router.post("/contact/invite")
    @endpoint(app, status=201)
    async def invite(request: Request, values: dict[str, Any], user: Any) -> Any:
        return await groups().create_invite(user, values)

    @router.route(["GET", "POST"], "/contact/invites")
    @endpoint(app)
    async def invites(request: Request, values: dict[str, Any], user: Any) -> Any:
        return page_data(await groups().invites(user, values), lambda i: i.to_dict())

    @router.post("/contact/revokeinvite")
    @endpoint(app)
    async def revoke(request: Request, values: dict[str, Any], user: Any) -> Any:
        await groups().revoke_invite(user, values)
        return None

    @router.route(["GET", "POST"], "/contact/invitepreview")
    @endpoint(app, auth=False)
    async def preview(request: Request, values: dict[str, Any], user: Any) -> Any:
        code = values.get("code")
        found = await groups().preview(code if isinstance(code, str) else "")
        return {"name": found.name, "members": found.members, "id": found.group_id}

    @router.post("/contact/joinbyinvite")
    @endpoint(app)
    async def join_by_invite(request: Request, values: dict[str, Any], user: Any) -> Any:
        return _joined(await groups().join_by_invite(user, values))

    @router.get("/join/{code}")
    async def join_page(request: Request) -> Response:
        code = request.path_params["code"]
        try:
            found = await groups().preview(code)
            name, members, valid = found.name, found.members, True
        except AppError:
            name, members, valid = "", 0, False
        response = app.render("join.html", status=200 if valid else 404, request=request,
                              title_key="join.page_title", code=code, name=name, members=members,
                              valid=valid, logged_in=bool(request.cookies.get(SESSION_COOKIE)))
        response.headers.extend(PAGE_HEADERS)
        return response

"""``/user/*``: register, log in and out, find a user, the caller's own profile.

Thin: each handler reads the values, calls :class:`fastim.accounts.Accounts`, and renders
the result (see docs/api.md for every request and reply).
"""

from __future__ import annotations

from typing import Any

from fastim.accounts import token_hash
from fastim.handlers.auth import endpoint, revoke_chat_sessions, services
from fastim.handlers.views import SESSION_COOKIE
from fastim.http import Request, Response, Router, json_response


def register(router: Router, app: Any) -> None:
    """Add the /user routes."""

    @router.post("/user/register")
    @endpoint(app, auth=False, status=201)
    async def register_user(request: Request, values: dict[str, Any], _: Any) -> Any:
        accounts, _contacts = services(app)
        user = await accounts.register(values)
        return user.private()

    @router.post("/user/login")
    @endpoint(app, auth=False)
    async def login(request: Request, values: dict[str, Any], _: Any) -> Response:
        accounts, _contacts = services(app)
        result = await accounts.login(values, request.remote_addr)
        if result.replaced:
            await revoke_chat_sessions(app, result.user.id, list(result.replaced),
                                       reason="signed in again")
        response = json_response(result.to_dict())
        response.set_cookie(
            SESSION_COOKIE,
            result.token,
            max_age=accounts.token_ttl,
            http_only=True,
            same_site="Lax",
            # Over HTTPS (our TLS, or a trusted proxy's) the cookie never travels over
            # plain HTTP afterwards (RFC 6265 §4.1.2.5).
            secure=request.scheme == "https",
        )
        return response

    @router.post("/user/logout")
    @endpoint(app)
    async def logout(request: Request, values: dict[str, Any], user: Any) -> Response:
        accounts, _contacts = services(app)
        await accounts.logout(request.state.token)
        await revoke_chat_sessions(app, user.id, [token_hash(request.state.token)],
                                   reason="logged out")
        response = json_response(None)
        response.delete_cookie(SESSION_COOKIE, secure=request.scheme == "https")
        return response

    @router.route(["GET", "POST"], "/user/find")
    @endpoint(app)
    async def find(request: Request, values: dict[str, Any], user: Any) -> Any:
        accounts, _contacts = services(app)
        return (await accounts.find(values)).public()

    @router.get("/user/me")
    @endpoint(app)
    async def me(request: Request, values: dict[str, Any], user: Any) -> Any:
        return user.private()

    @router.post("/user/update")
    @endpoint(app)
    async def update(request: Request, values: dict[str, Any], user: Any) -> Any:
        accounts, _contacts = services(app)
        return (await accounts.update_profile(user, values)).private()

    @router.post("/user/passwd")
    @endpoint(app)
    async def change_password(request: Request, values: dict[str, Any], user: Any) -> Any:
        accounts, _contacts = services(app)
        await accounts.change_password(user, values, request.state.token)
        # Every other session of the user was revoked: their open chats end too.
        await revoke_chat_sessions(app, user.id, None, keep=token_hash(request.state.token),
                                   reason="password changed")
        return None

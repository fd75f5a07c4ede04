"""``/user/*``: register, log in and out, find a user, the caller's own profile.

Thin: each handler reads the values, calls :class:`fastim.accounts.Accounts`, and renders
the result (see docs/api.md for every request and reply).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastim import i18n
from fastim.handlers.auth import endpoint
from fastim.handlers.views import SESSION_COOKIE
from fastim.http import Request, Response, Router, json_response

if TYPE_CHECKING:
    from fastim.app import App


def register(router: Router, app: App) -> None:
    """Add the /user routes."""

    @router.post("/user/register")
    @endpoint(app, auth=False, status=201)
    async def register_user(request: Request, values: dict[str, Any], _: Any) -> Any:
        user = await app.services.accounts.register(values, request.remote_addr)
        return user.private()

    @router.post("/user/login")
    @endpoint(app, auth=False)
    async def login(request: Request, values: dict[str, Any], _: Any) -> Response:
        accounts = app.services.accounts
        # Tokens the login replaced end their chat connections before this answer.
        result = await accounts.login(values, request.remote_addr)
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
        # This browser's Web Push subscription ends with its session (issue 20).
        await app.services.push.forget_token(request.state.token)
        await app.services.accounts.logout(request.state.token, user)
        response = json_response(None)
        response.delete_cookie(SESSION_COOKIE, secure=request.scheme == "https")
        return response

    @router.route(["GET", "POST"], "/user/find")
    @endpoint(app)
    async def find(request: Request, values: dict[str, Any], user: Any) -> Any:
        return (await app.services.accounts.find(values)).public()

    @router.get("/user/me")
    @endpoint(app)
    async def me(request: Request, values: dict[str, Any], user: Any) -> Any:
        return user.private()

    @router.post("/user/update")
    @endpoint(app)
    async def update(request: Request, values: dict[str, Any], user: Any) -> Any:
        return (await app.services.accounts.update_profile(user, values)).private()

    @router.post("/user/passwd")
    @endpoint(app)
    async def change_password(request: Request, values: dict[str, Any], user: Any) -> Any:
        await app.services.accounts.change_password(user, values, request.state.token,
                                                    request.remote_addr)
        return None

    # Web Push (issue 20, docs/api.md): the server's VAPID public key, and this
    # browser's subscription (one per browser; several per user).
    @router.get("/user/push")
    @endpoint(app)
    async def push_state(request: Request, values: dict[str, Any], user: Any) -> Any:
        push = app.services.push
        return {"key": push.key.public_key, "subscriptions": await push.count(user)}

    @router.post("/user/push")
    @endpoint(app, status=201)
    async def push_subscribe(request: Request, values: dict[str, Any], user: Any) -> Any:
        push = app.services.push
        # Without ``lang`` the pushes are in the language this browser's pages come in.
        page = i18n.negotiate(request.cookies.get(i18n.COOKIE),
                              request.headers.get("accept-language"))
        await push.subscribe(user, request.state.token, values, page)
        return {"subscriptions": await push.count(user)}

    async def push_unsubscribe(request: Request, values: dict[str, Any], user: Any) -> Any:
        return {"removed": await app.services.push.unsubscribe(user, values)}

    router.delete("/user/push")(endpoint(app)(push_unsubscribe))
    router.post("/user/push/unsubscribe")(endpoint(app)(push_unsubscribe))

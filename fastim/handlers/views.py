"""The web pages: `/` sends a visitor to the login or the chat page; the pages render.

Whether the visitor is logged in is judged here only by the presence of the session
cookie; the real check of the token belongs to the auth handlers.
"""

from __future__ import annotations

from typing import Any

from fastim.http import Request, Response, Router, redirect

#: The cookie holding the session token once logged in.
SESSION_COOKIE = "fastim_token"


def register(router: Router, app: Any) -> None:
    """Add the page routes."""

    @router.get("/")
    async def index(request: Request) -> Response:
        return redirect("/chat" if request.cookies.get(SESSION_COOKIE) else "/login")

    @router.get("/login")
    async def login_page(request: Request) -> Response:
        return app.render("login.html", title="Log in")

    @router.get("/register")
    async def register_page(request: Request) -> Response:
        return app.render("register.html", title="Register")

    @router.get("/chat")
    async def chat_page(request: Request) -> Response:
        # The WebSocket endpoint may share this path: upgrade requests go to it.
        return app.render("chat.html", title="Chat")

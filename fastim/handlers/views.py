"""The web pages: `/` sends a visitor to the login or the chat page; the pages render.

Whether the visitor is logged in is judged here only by the presence of the session
cookie; the real check of the token belongs to the auth handlers (the chat page asks
`/user/me` and goes back to the login page on a 401).

Every page carries a Content-Security-Policy that allows scripts, styles and
connections only from this server: the client renders user text with `textContent`,
and the policy is the second wall should a bug ever let markup through.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastim.http import Request, Response, Router, redirect

if TYPE_CHECKING:
    from fastim.app import App

#: The cookie holding the session token once logged in.
SESSION_COOKIE = "fastim_token"

#: 'self' covers the same-origin ws:// and wss:// of /chat (CSP Level 3, §6.7.2.8);
#: blob: is the local preview of a photo, or of a voice message, while it uploads;
#: media-src lets <audio> play voice messages from /resource/.
CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' blob: data:",
    "media-src 'self' blob:",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])

PAGE_HEADERS = [
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("Referrer-Policy", "same-origin"),
    ("X-Content-Type-Options", "nosniff"),
    # The pages are small and change with the account; the assets they load are cached.
    ("Cache-Control", "no-cache"),
]


def register(router: Router, app: App) -> None:
    """Add the page routes."""

    def page(request: Request, template: str, title_key: str) -> Response:
        response = app.render(template, request=request, title_key=title_key)
        response.headers.extend(PAGE_HEADERS)
        return response

    @router.get("/")
    async def index(request: Request) -> Response:
        return redirect("/chat" if request.cookies.get(SESSION_COOKIE) else "/login")

    @router.get("/login")
    async def login_page(request: Request) -> Response:
        return page(request, "login.html", title_key="auth.login_title")

    @router.get("/register")
    async def register_page(request: Request) -> Response:
        return page(request, "register.html", title_key="auth.register_title")

    # The Web Push service worker (asset/js/sw.js) at the site's root: a worker controls
    # only the pages under the path it is served from (Service Workers §4.1, scope), and
    # the pages live at /chat, not under the content-hashed /asset/v/... URLs. Never
    # cached by HTTP: the browser checks it for updates itself.
    worker = app.config.asset_dir / "js" / "sw.js"

    @router.get("/sw.js")
    async def service_worker(request: Request) -> Response:
        response = Response(worker.read_bytes(), 200, content_type="text/javascript")
        response.headers.extend(PAGE_HEADERS)
        return response

    @router.get("/chat")
    async def chat_page(request: Request) -> Response:
        # The WebSocket endpoint shares this path: upgrade requests go to it.
        return page(request, "chat.html", title_key="chat.page_title")

"""The chat app, the composition root: `create_app(config)` builds the router, templates
and routes; `App.start()` builds every service (`fastim.services.Services`) and listens.

Handler modules are listed in `HANDLERS`; each exposes ``register(router, app)``, adds its
routes, and reaches the running services at request time through `App.services`. Extra
start-up and shut-down work may go in the `on_startup` / `on_shutdown` hook lists
(``async def hook(app) -> None``): they run after the services have started, and before
they stop.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from types import ModuleType
from typing import Any

import jinja2

from fastim import i18n
from fastim.config import Config
from fastim.handlers import (
    chat,
    contact,
    groups,
    health,
    learn,
    search,
    stickers,
    upload,
    user,
    views,
)
from fastim.http import HTTPError, Request, Response, Router, Server, tree_version
from fastim.media.links import FASTIM_DOUTU
from fastim.services import Services
from fastim.store import Store
from fastim.store.errors import Unavailable

logger = logging.getLogger("fastim.app")

Hook = Callable[["App"], Awaitable[None]]

#: RFC 6455 §7.4.1 and the IANA registry: "the service is restarted; a client may
#: reconnect" -- what a draining node tells its WebSocket clients.
SERVICE_RESTART = 1012


def unavailable_is_503(handler: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """Wrap a route handler (or pre-upgrade check): the database being down, hung or
    locked answers 503 Service Unavailable with Retry-After (RFC 9110 §15.6.4, §10.2.3)
    and the store's message, instead of a 500 that blames the server's code."""

    @functools.wraps(handler, updated=())
    async def guarded(*args: Any) -> Any:
        try:
            return await handler(*args)
        except Unavailable as exc:
            # One line per refused request, with the driver's reason, for the operator.
            logger.warning("answering 503: %s (%r)", exc, exc.__cause__)
            raise HTTPError(503, str(exc), [("Retry-After", str(exc.retry_after))]) from None

    return guarded


class AppRouter(Router):
    """The app's router: every route's handler, and every WebSocket's pre-upgrade check,
    goes through `unavailable_is_503`."""

    def add_route(self, methods: Any, path: str, handler: Any, **options: Any) -> None:
        super().add_route(methods, path, unavailable_is_503(handler), **options)

    def websocket(self, path: str, handler: Any, *, before_upgrade: Any = None,
                  **options: Any) -> None:
        if before_upgrade is not None:
            before_upgrade = unavailable_is_503(before_upgrade)
        super().websocket(path, handler, before_upgrade=before_upgrade, **options)


class RoleRouter(AppRouter):
    """A router that keeps only the routes a node of one role serves (`--role`).

    ``api``: everything but the /chat WebSocket. ``chat``: the /chat WebSocket and the
    REST under /chat/ (history, reads, unread) that a chat client needs beside it.
    Every role answers the load balancer's ``/healthz``. Handler modules register as
    usual; what the role does not serve is left out here.
    """

    def __init__(self, role: str) -> None:
        super().__init__()
        self.role = role

    def add_route(self, methods: Any, path: str, handler: Any, **options: Any) -> None:
        if self.role == "chat" and not (path.startswith("/chat/") or path == health.PATH):
            return
        super().add_route(methods, path, handler, **options)

    def websocket(self, path: str, handler: Any, *, before_upgrade: Any = None,
                  **options: Any) -> None:
        if self.role == "api":
            return
        super().websocket(path, handler, before_upgrade=before_upgrade, **options)


class App:
    """The running application: configuration, router, templates, store and server."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.router = AppRouter() if config.role == "all" else RoleRouter(config.role)
        self.templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(config.views_dir)),
            autoescape=True,  # every template, whatever its extension
            auto_reload=False,
        )
        #: The UI strings of every language the client ships (asset/i18n/).
        self.i18n = i18n.Tables(config.asset_dir / "i18n")
        self._services: Services | None = None
        #: Awaited in order by `start()`, before the server listens.
        self.on_startup: list[Hook] = []
        #: Awaited in reverse order by `stop()`, after the server has shut down.
        self.on_shutdown: list[Hook] = []
        self.server: Server | None = None
        #: Set by `drain()`: /healthz answers 503 from then on.
        self.draining = False

    @property
    def running_services(self) -> Services | None:
        """The services while the app runs, else None (for checks that must not raise)."""
        return self._services

    @property
    def services(self) -> Services:
        """The running services; 503 while the app is not running (requests only come
        while it is: the server listens after the services start, and stops first)."""
        if self._services is None:
            raise HTTPError(503, "the server is starting or stopping")
        return self._services

    @property
    def store(self) -> Store | None:
        """The open store while running, else None."""
        return self._services.store if self._services is not None else None

    def render(self, template: str, status: int = 200, request: Request | None = None,
               **context: Any) -> Response:
        """Render a template from views/ as an HTML response, in the language the request
        asks for (fastim.i18n): the template gets `lang` and `t(key, **params)`."""
        lang = i18n.DEFAULT if request is None else i18n.negotiate(
            request.cookies.get(i18n.COOKIE), request.headers.get("accept-language"))
        html = self.templates.get_template(template).render(
            app=self, lang=lang, t=self.i18n.translator(lang), **context)
        response = Response(html, status, content_type="text/html")
        # The page's text depends on these (RFC 9110 §12.5.5): a cache keeps one per language.
        response.headers.append(("Vary", "Accept-Language, Cookie"))
        return response

    @property
    def url(self) -> str:
        """The URL to open in a browser (known once started)."""
        host = self.config.host
        if host in ("", "0.0.0.0", "::"):
            host = "127.0.0.1"
        elif ":" in host:
            host = f"[{host}]"
        port = self.server.port if self.server is not None else self.config.port
        scheme = "https" if self.config.certfile else "http"
        return f"{scheme}://{host}:{port}/"

    async def start(self) -> None:
        """Start the services, run the start-up hooks, then listen."""
        config = self.config
        config.data_dir.mkdir(parents=True, exist_ok=True)
        config.resource_dir.mkdir(parents=True, exist_ok=True)
        self._services = await Services.start(config)
        for hook in self.on_startup:
            await hook(self)
        self.server = Server(
            self.router, limits=config.limits, app=self, tmp_dir=config.upload_tmp_dir,
            https_headers=config.security_headers(),
            trusted_proxies=config.trusted_proxies,
        )
        await self.server.start(config.host, config.port, ssl=config.ssl_context())

    async def drain(self, delay: float) -> None:
        """Leave a cluster gracefully (SIGTERM): fail the health check at once, keep
        serving for `delay` seconds while the load balancer notices, then stop with
        1012 Service Restart on every WebSocket (RFC 6455 §7.4.1, IANA registry), which
        tells clients to reconnect, through the balancer, to another node."""
        self.draining = True
        if delay > 0:
            logger.info("draining: /healthz answers 503; closing in %.1f s", delay)
            await asyncio.sleep(delay)
        await self.stop(code=SERVICE_RESTART, reason="this node is restarting: reconnect")

    async def stop(self, code: int = 1001, reason: str = "server shutting down") -> None:
        """Graceful shutdown: stop accepting, close WebSockets (`code`, by default 1001
        Going Away), let in-flight requests finish, run the shut-down hooks (last
        registered first), then stop the services (`Services.close`, which commits
        what the group commit holds)."""
        self.draining = True
        if self.server is not None:
            await self.server.shutdown(code=code, reason=reason)
        for hook in reversed(self.on_shutdown):
            try:
                await hook(self)
            except Exception:
                logger.exception("shut-down hook %r failed", hook)
        services, self._services = self._services, None
        if services is not None:
            await services.close()


#: The handler modules, registered in this order.
HANDLERS: tuple[ModuleType, ...] = (chat, contact, groups, health, stickers, upload, user,
                                    views, learn, search)


def create_app(config: Config | None = None) -> App:
    """Build the app: static mounts and every handler module's routes (the services are
    built by `App.start`)."""
    config = config or Config()
    app = App(config)
    # The pages load the client's files from a URL that names this build of them, so a
    # browser never runs old and new files together (during a rolling upgrade, or from
    # its cache) and may keep them forever; the pages themselves are never cached.
    # Under the bare /asset/ they stay too (stickers are named so in stored messages).
    version = tree_version(config.asset_dir)
    app.router.static(f"/asset/v/{version}/", config.asset_dir,
                      cache_control="public, max-age=31536000, immutable")
    app.templates.globals["asset"] = lambda path: f"/asset/v/{version}/{path}"
    # fastIM's pages name its stickers /asset/plugins/doutu//emoj/2.gif, double slash
    # included, and stored messages keep that form: served as fastIM served them. (The
    # static files refuse an empty segment anywhere else.) Before /asset/: first match wins.
    app.router.static(FASTIM_DOUTU, config.asset_dir / "plugins" / "doutu")
    app.router.static("/asset/", config.asset_dir)
    # Uploads are named by the SHA-256 of their bytes (fastim.media): a name never gets
    # other content, so clients may keep them for a year without asking again.
    app.router.static(
        "/resource/", config.resource_dir, cache_control="public, max-age=31536000, immutable"
    )
    for module in HANDLERS:
        module.register(app.router, app)
    return app

"""The chat app: `create_app(config)` wires the router, templates, handlers and hooks.

Handler modules are the modules of the `fastim.handlers` package; each exposes
``register(router, app)`` and is registered in name order.  Start-up and shut-down
work (opening the store, starting the bus) goes in the `on_startup` / `on_shutdown`
hook lists: ``async def hook(app) -> None``.
"""

from __future__ import annotations

import functools
import importlib
import logging
import pkgutil
from collections.abc import Awaitable, Callable
from typing import Any

import jinja2

import fastim.handlers
from fastim.config import Config
from fastim.http import HTTPError, Response, Router, Server
from fastim.store.errors import Unavailable

logger = logging.getLogger("fastim.app")

Hook = Callable[["App"], Awaitable[None]]


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
    Handler modules register as usual; what the role does not serve is left out here.
    """

    def __init__(self, role: str) -> None:
        super().__init__()
        self.role = role

    def add_route(self, methods: Any, path: str, handler: Any, **options: Any) -> None:
        if self.role == "chat" and not path.startswith("/chat/"):
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
        #: The storage object from ``fastim.store.open_store`` once started (None when
        #: the store package is absent).
        self.store: Any = None
        #: Awaited in order by `start()`, before the server listens.
        self.on_startup: list[Hook] = []
        #: Awaited in reverse order by `stop()`, after the server has shut down.
        self.on_shutdown: list[Hook] = []
        self.server: Server | None = None

    def render(self, template: str, status: int = 200, **context: Any) -> Response:
        """Render a template from views/ as an HTML response."""
        html = self.templates.get_template(template).render(app=self, **context)
        return Response(html, status, content_type="text/html")

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
        """Run the start-up hooks, then listen."""
        config = self.config
        config.data_dir.mkdir(parents=True, exist_ok=True)
        config.resource_dir.mkdir(parents=True, exist_ok=True)
        for hook in self.on_startup:
            await hook(self)
        self.server = Server(
            self.router, limits=config.limits, app=self, tmp_dir=config.upload_tmp_dir,
            https_headers=config.security_headers(),
            trusted_proxies=config.trusted_proxies,
        )
        await self.server.start(config.host, config.port, ssl=config.ssl_context())

    async def stop(self) -> None:
        """Graceful shutdown: stop accepting, close WebSockets with 1001, let in-flight
        requests finish, then run the shut-down hooks (last registered first)."""
        if self.server is not None:
            await self.server.shutdown()
        for hook in reversed(self.on_shutdown):
            try:
                await hook(self)
            except Exception:
                logger.exception("shut-down hook %r failed", hook)


async def open_store(app: App) -> None:
    """Start-up hook: open the store when the `fastim.store` package exists."""
    try:
        from fastim.store import open_store as open_store_impl  # type: ignore[import-not-found]
    except ModuleNotFoundError as exc:
        if exc.name != "fastim.store":
            raise
        logger.warning("fastim.store is not available: running without a database")
        return
    app.store = await open_store_impl(app.config.database_url, pool_size=8)


async def close_store(app: App) -> None:
    """Shut-down hook: close the store if it was opened."""
    if app.store is not None:
        store, app.store = app.store, None
        await store.close()


def handler_modules() -> list[str]:
    """Names of the handler modules: every public module of `fastim.handlers`."""
    return sorted(
        f"{fastim.handlers.__name__}.{info.name}"
        for info in pkgutil.iter_modules(fastim.handlers.__path__)
        if not info.name.startswith("_")
    )


def create_app(config: Config | None = None) -> App:
    """Build the app: static mounts, the store hooks, and every handler module."""
    config = config or Config()
    app = App(config)
    app.router.static("/asset/", config.asset_dir)
    # Uploads are named by the SHA-256 of their bytes (fastim.media): a name never gets
    # other content, so clients may keep them for a year without asking again.
    app.router.static(
        "/resource/", config.resource_dir, cache_control="public, max-age=31536000, immutable"
    )
    app.on_startup.append(open_store)
    app.on_shutdown.append(close_store)
    for name in handler_modules():
        module = importlib.import_module(name)
        register = getattr(module, "register", None)
        if register is None:
            raise RuntimeError(f"handler module {name} has no register(router, app)")
        register(app.router, app)
    return app

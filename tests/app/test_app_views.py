"""The app factory: handler registration, the pages, templates, hooks and the store seam."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from http_support import SAFETY_TIMEOUT, Client, request

from fastim.app import HANDLERS, App, create_app
from fastim.config import Config
from fastim.handlers import views
from fastim.handlers.views import SESSION_COOKIE
from fastim.http import Limits, tree_version


class AppThread:
    """Runs `app.start()` on a loop in a background thread; `stop()` runs `app.stop()`."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> AppThread:
        self.thread.start()
        self.call(self.app.start())
        return self

    def call(self, coro):  # type: ignore[no-untyped-def]
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(SAFETY_TIMEOUT)

    def __exit__(self, *exc: object) -> None:
        self.call(self.app.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(SAFETY_TIMEOUT)
        self.loop.close()

    def get(self, target: str, headers: list[tuple[str, str]] | None = None):  # type: ignore[no-untyped-def]
        assert self.app.server is not None
        address = ("127.0.0.1", self.app.server.port)
        with socket.create_connection(address, timeout=SAFETY_TIMEOUT) as sock:
            client = Client(sock)
            client.send(request("GET", target, headers=headers))
            return client.read_response()


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return Config(port=0, data_dir=tmp_path / "data", resource_dir=tmp_path / "resource",
                  limits=Limits(shutdown_timeout=2))


@pytest.fixture
def running(config: Config) -> Iterator[AppThread]:
    with AppThread(create_app(config)) as thread:
        yield thread


def test_views_is_a_registered_handler_module() -> None:
    assert views in HANDLERS


def test_root_redirects_by_session_cookie(running: AppThread) -> None:
    response = running.get("/")
    assert (response.status, response.header("location")) == (302, "/login")
    response = running.get("/", [("Cookie", f"{SESSION_COOKIE}=abc")])
    assert (response.status, response.header("location")) == (302, "/chat")


@pytest.mark.parametrize(("path", "marker"), [
    ("/login", b'action="/user/login"'),
    ("/register", b'action="/user/register"'),
    ("/chat", b'id="messages"'),
])
def test_pages_render(running: AppThread, path: str, marker: bytes) -> None:
    response = running.get(path)
    assert response.status == 200
    assert response.header("content-type") == "text/html; charset=utf-8"
    assert marker in response.body
    version = tree_version(running.app.config.asset_dir)
    assert f'href="/asset/v/{version}/css/fastim.css"'.encode() in response.body


def test_css_and_uploaded_resources_are_served(running: AppThread, config: Config) -> None:
    assert running.get("/asset/css/fastim.css").status == 200
    (config.resource_dir / "pic.png").write_bytes(b"\x89PNGfake")
    response = running.get("/resource/pic.png")
    assert (response.status, response.body) == (200, b"\x89PNGfake")
    assert response.header("cache-control") == "public, max-age=31536000, immutable"
    assert response.header("x-content-type-options") == "nosniff"
    assert running.get("/resource/../data").status == 404


def test_templates_autoescape(config: Config) -> None:
    app = create_app(config)
    html = app.templates.from_string("<p>{{ name }}</p>").render(name="<script>x</script>")
    assert html == "<p>&lt;script&gt;x&lt;/script&gt;</p>"
    assert app.render("login.html", title="<b>").body.count(b"&lt;b&gt;") == 1


def test_hooks_run_in_order_and_shutdown_in_reverse(config: Config) -> None:
    app = create_app(config)
    calls: list[str] = []

    def hook(name: str):  # type: ignore[no-untyped-def]
        async def run(app: App) -> None:
            calls.append(name)
        return run

    app.on_startup += [hook("start-a"), hook("start-b")]
    app.on_shutdown += [hook("stop-a"), hook("stop-b")]
    with AppThread(app):
        assert calls == ["start-a", "start-b"]
    assert calls == ["start-a", "start-b", "stop-b", "stop-a"]


def test_store_is_open_while_the_app_runs(config: Config) -> None:
    app = create_app(config)
    assert app.store is None
    with AppThread(app):
        assert app.store is not None
    assert app.store is None  # closed and cleared on shutdown


def test_url_is_printable(config: Config) -> None:
    app = create_app(config)
    with AppThread(app):
        assert app.url == f"http://127.0.0.1:{app.server.port}/"  # type: ignore[union-attr]

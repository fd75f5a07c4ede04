"""Browser tests: a real fastim server and Debian's headless Chromium driven by Playwright.

Playwright never downloads a browser here (`playwright install` cannot work on the
project's machines): it drives /usr/bin/chromium from Debian's `chromium` package, which
.ci/run installs when it is missing. Without it the browser tests fail in CI and skip
elsewhere, like the other tests that need something from the machine.

Each test module gets one server (SQLite in a temporary data dir) and one browser; each
user is a separate browser context, so cookies and storage are theirs alone.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from fastim.chat.hub import HubOptions
from fastim.config import Config
from fastim.http import Limits
from fastim.i18n import Tables, match
from tests.store_fixtures import SAFETY_TIMEOUT, TEST_KDF, ApiServer, befriend_over, new_mobile

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]
#: Playwright's wait for something to appear: a safety net, never a measured time.
WAIT_MS = 10_000
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 780}
#: Where the screenshots go: FASTIM_SCREENSHOTS (docs/screenshots to refresh the ones in
#: the repository), else a directory of the test session.
SCREENSHOTS_ENV = "FASTIM_SCREENSHOTS"
#: The browser languages the tests run in: issue 24 asks for each item in both.
LOCALES = ("en-GB", "zh-CN")
_TABLES = Tables(Path(__file__).resolve().parent.parent / "asset" / "i18n")


@dataclass(frozen=True)
class Lang:
    """A browser language (`locale`, what Playwright sends as Accept-Language and
    navigator.languages) and the UI text a page in it shows, from the same tables the
    client and server use (asset/i18n/*.json). A key missing from the table fails the
    test (KeyError) instead of quietly falling back to English."""

    locale: str

    @property
    def language(self) -> str:
        """The table's name: "en" or "zh-CN"."""
        language = match(self.locale)
        assert language is not None, self.locale
        return language

    def shot(self, name: str) -> str:
        """A screenshot's name: as it was for English, `zh-` before it for Chinese (the
        names docs/client.md shows)."""
        return name if self.language == "en" else f"zh-{name}"

    def t(self, key: str, **params: object) -> str:
        """asset/js/i18n.js's `t`: the string for `key`, `{name}` placeholders filled."""
        template = _TABLES.tables[self.language][key]
        return _TABLES.text(self.language, key, params) if params else template

    def tn(self, key: str, count: int, **params: object) -> str:
        """asset/js/i18n.js's `tn`: `key_one` for one, `key` for any other count."""
        return self.t(f"{key}_one" if count == 1 else key, count=count, **params)



def require_chromium() -> None:
    """Fail in CI, skip elsewhere, when Debian's chromium is not installed."""
    if CHROMIUM.exists():
        return
    reason = f"{CHROMIUM} is missing (apt-get install chromium)"
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI is set, so this is a failure, not a skip")
    pytest.skip(reason)


class WebServer:
    """A fastim server that can be stopped and started again on the same port and data."""

    def __init__(self, root: Path, hub: HubOptions | None = None) -> None:
        self.root = root
        self.config = Config(
            host="127.0.0.1", port=0, db=f"sqlite:///{root}/data/fastim.db",
            data_dir=root / "data", resource_dir=root / "resource", access_log=False,
            limits=Limits(shutdown_timeout=2), hub=hub or HubOptions(), kdf=TEST_KDF,
        )
        self.api: ApiServer | None = None

    def start(self) -> WebServer:
        self.api = ApiServer(self.config).__enter__()
        self.config.port = self.api.port  # a restart comes back on the same port
        return self

    def stop(self) -> None:
        if self.api is not None:
            api, self.api = self.api, None
            api.__exit__(None, None, None)

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.config.port}"

    @property
    def running(self) -> ApiServer:
        assert self.api is not None, "the server is stopped"
        return self.api


@dataclass
class Person:
    """A user with an account, and (once `open_chat` ran) their own browser context."""

    id: int
    mobile: str
    passwd: str
    nickname: str
    token: str
    context: Any = None
    page: Any = None
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)


def make_person(server: WebServer, nickname: str, **values: Any) -> Person:
    """Register and log in over the REST API (the UI's own forms have their own test)."""
    api = server.running
    mobile = values.pop("mobile", new_mobile())
    user = api.register(mobile=mobile, nickname=nickname, passwd="correct horse", **values)
    token = api.login(user)
    return Person(id=user["id"], mobile=mobile, passwd="correct horse",
                  nickname=user["nickname"], token=token)


def befriend(server: WebServer, one: Person, other: Person) -> None:
    """A request from `one`, accepted by `other` (`tests.store_fixtures.befriend_over`)."""
    befriend_over(server.running.post, one.token, one.id, other.token, other.id)


def new_context(browser: Any, server: WebServer, person: Person | None = None,
                viewport: dict[str, int] | None = None, scheme: str = "light",
                locale: str = "en-GB") -> Any:
    """A fresh browser profile; logged in as `person` when given (their token's cookie).
    `scheme` is the system's colour scheme (light or dark) from the first paint on;
    `locale` the browser's language (Accept-Language and navigator.languages)."""
    context = browser.new_context(base_url=server.url, viewport=viewport or DESKTOP,
                                  locale=locale, timezone_id="Europe/London",
                                  color_scheme=scheme)
    context.set_default_timeout(WAIT_MS)
    if person is not None:
        context.add_cookies([{"name": "fastim_token", "value": person.token, "url": server.url}])
    return context


#: Console errors the browser itself logs for requests that fail on purpose in the tests
#: (a 401 or 409 the page then shows inline, a refused connection while the server is down).
EXPECTED_CONSOLE = re.compile(r"^(Failed to load resource|WebSocket connection to .* failed)")


def watch(page: Any, person: Person) -> None:
    """Record script errors, UI text keys missing from the page's language table, and
    any alert/confirm/prompt the page opens."""
    page.on("pageerror", lambda error: person.errors.append(str(error)))

    def on_console(msg: Any) -> None:
        unexpected = msg.type == "error" and not EXPECTED_CONSOLE.match(msg.text)
        # asset/js/i18n.js shows a missing key as itself and warns: in a test, a failure.
        missing_key = msg.type == "warning" and msg.text.startswith("i18n: no ")
        if unexpected or missing_key:
            person.errors.append(msg.text)

    page.on("console", on_console)

    def on_dialog(dialog: Any) -> None:
        person.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    page.on("dialog", on_dialog)


def open_chat(browser: Any, server: WebServer, person: Person,
              viewport: dict[str, int] | None = None, scheme: str = "light",
              locale: str = "en-GB") -> Any:
    """`person`'s chat page, connected."""
    person.context = new_context(browser, server, person, viewport, scheme, locale)
    person.page = person.context.new_page()
    watch(person.page, person)
    person.page.goto("/chat")
    wait_online(person.page)
    return person.page


def two_friends_chatting(browser: Any, server: WebServer,
                         people: list[Person]) -> tuple[Person, Person, Any, Any]:
    """Alice and Bob, friends, each with a chat page open on their 1:1 conversation:
    (alice, bob, alice's page, bob's page)."""
    alice, bob = make_person(server, "Alice"), make_person(server, "Bob")
    people += [alice, bob]
    befriend(server, alice, bob)
    pa, pb = open_chat(browser, server, alice), open_chat(browser, server, bob)
    open_conversation(pa, "u", bob.id)
    open_conversation(pb, "u", alice.id)
    return alice, bob, pa, pb


def wait_online(page: Any) -> None:
    page.wait_for_selector('#conn[data-state="online"]', state="attached")
    # The first snapshot after connecting has been handled: summaries are loading.
    page.wait_for_function("() => window.fastim && window.fastim.ready === true")


def conversation_link(page: Any, kind: str, dstid: int) -> Any:
    return page.locator(f'a.conv-item[data-key="{kind}{dstid}"]')


def open_conversation(page: Any, kind: str, dstid: int) -> None:
    """Open a conversation from the list of chats as a user would: the tab, then its entry."""
    page.locator("#tab-friends").click()
    conversation_link(page, kind, dstid).click()
    page.wait_for_selector('#history-state:not([data-state="loading"])', state="attached")


def send_text(page: Any, text: str) -> None:
    """Type a message and press Enter."""
    box = page.locator("#message")
    box.click()
    box.fill(text)
    box.press("Enter")


def bubbles(page: Any, text: str | None = None) -> Any:
    """Message bubbles in the open conversation (whose text is exactly `text`)."""
    messages = page.locator("#messages li.msg")
    if text is None:
        return messages
    return messages.filter(has=page.locator("p.text", has_text=re.compile(f"^{re.escape(text)}$")))


def chat_over_socket(server: WebServer, sender: Person, cmd: int, dstid: int,
                     texts: list[str]) -> list[int]:
    """Send text messages from `sender` over a WebSocket of the test (not a browser),
    waiting for each ack; returns their server ids."""
    from tests.chat_support import ChatClient

    async def run() -> list[int]:
        client = await ChatClient.open(server.running, sender.token)
        try:
            ids = []
            for n, text in enumerate(texts):
                ack = await client.say(cmd, dstid, text, cid=f"seed-{sender.id}-{n}-{text[:20]}")
                assert ack["cmd"] == 1, ack
                ids.append(ack["id"])
            return ids
        finally:
            await client.close()

    return server.running.call(run())


def screenshots_dir(tmp_root: Path) -> Path:
    configured = os.environ.get(SCREENSHOTS_ENV)
    path = Path(configured) if configured else tmp_root / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


def screenshot(page: Any, directory: Path, name: str) -> Path:
    """Save a PNG of the page (the caret hidden, so that two runs look alike). Saved for
    the repository (FASTIM_SCREENSHOTS set), it is cut to 256 colours: a third the size."""
    target = directory / f"{name}.png"
    png = page.screenshot(caret="hide", animations="disabled")
    if os.environ.get(SCREENSHOTS_ENV):
        png = small_png(png)
    target.write_bytes(png)
    return target


def small_png(png: bytes) -> bytes:
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    out = io.BytesIO()
    image.quantize(colors=256, dither=Image.Dither.FLOYDSTEINBERG).save(out, "PNG", optimize=True)
    return out.getvalue()


def launch_chromium(env: dict[str, str] | None = None) -> Iterator[Any]:
    """Headless Debian Chromium (in the environment `env`, when given), closed after."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                              args=LAUNCH_ARGS, timeout=SAFETY_TIMEOUT * 3000,
                                              env=env)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Debian Chromium for this module's tests."""
    yield from launch_chromium()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    """One fastim server (SQLite) for this module's tests."""
    web = WebServer(tmp_path_factory.mktemp("web")).start()
    try:
        yield web
    finally:
        web.stop()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return screenshots_dir(tmp_path_factory.getbasetemp())


@pytest.fixture(params=LOCALES)
def lang(request: pytest.FixtureRequest) -> Lang:
    """Runs a test once per browser language (English, 简体中文); the test opens its
    pages with `lang.locale` and expects the texts `lang.t(...)` gives."""
    return Lang(request.param)


@pytest.fixture
def people(browser: Any, server: WebServer) -> Iterator[list[Person]]:
    """Collects the persons a test opens pages for, and closes their contexts after.
    Starts the server again if an earlier test failed while it was stopped."""
    if server.api is None:
        server.start()
    opened: list[Person] = []
    yield opened
    for person in opened:
        if person.context is not None:
            person.context.close()

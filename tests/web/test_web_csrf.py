"""CSRF and cross-site WebSocket hijacking, tried by a real browser (docs/security.md,
"Cross-site WebSocket hijacking and CSRF").

The victim logs in to the app at ``http://127.0.0.1:PORT`` in headless Chromium, so the
browser holds the server's own ``fastim_token`` cookie (HttpOnly, SameSite=Lax). The same
browser then opens an attacker page served by a second, tiny HTTP server:

* at ``http://localhost:OTHER``: another *site* (a site is the scheme and registrable
  domain, RFC 6265bis §5.2; ``localhost`` and ``127.0.0.1`` are different hosts, and the
  port plays no part), so SameSite=Lax keeps the cookie off its POSTs, fetches, frames and
  WebSocket handshakes;
* at ``http://127.0.0.1:OTHER``: the *same site* but another *origin* (RFC 6454 §4: the
  port differs). SameSite does not apply, the browser sends the cookie, and what stops the
  attack is the server's Origin check on cookie-authenticated unsafe requests
  (``fastim.handlers.auth.check_origin``) and on ``/chat``.

The attacker page tries an auto-submitted form POST (``/contact/addfriend``), a
``fetch`` POST with ``credentials: "include"`` (``/user/update``), a GET of a changing
endpoint in an ``<iframe>`` (not an ``<img>``: Chromium's opaque-response blocking hides
the status of a JSON reply to an image from the test), and ``new WebSocket(".../chat")``.
The test asserts what the server answered (the statuses the browser received: 401 when
no cookie arrived, 403 when the cookie arrived with a foreign Origin), what the server's state is afterwards (no
friendship, the profile unchanged), and that the WebSocket failed without ever opening.
Every wait is for an event, with Playwright's timeout only as a safety net.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.store_fixtures import new_mobile

# web_support is also this module's plugin (its fixtures): let pytest rewrite its asserts.
pytest.register_assert_rewrite("tests.web_support")
from tests.web_support import WAIT_MS, WebServer, new_context  # noqa: E402

# The browser and server fixtures.
pytest_plugins = ["tests.web_support"]
pytestmark = pytest.mark.browser

PASSWORD = "correct horse"

#: The attacker's page. {app} is the app's origin (http://127.0.0.1:PORT), {ws} the same
#: as ws://, {mallory} the id the forged requests would befriend.
ATTACK_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Win a prize</title></head><body>
<iframe name="sink"></iframe>
<form id="forged" method="post" action="{app}/contact/addfriend" target="sink">
  <input type="hidden" name="dstid" value="{mallory}">
</form>
<iframe src="{app}/contact/addfriend?dstid={mallory}"></iframe>
<script>
  window.events = [];
  document.getElementById("forged").submit();
  fetch("{app}/user/update", {{
    method: "POST", mode: "no-cors", credentials: "include",
    body: new URLSearchParams({{nickname: "pwned"}}),
  }}).then(() => window.events.push("fetch sent"), () => window.events.push("fetch failed"));
  const socket = new WebSocket("{ws}/chat");
  socket.onopen = () => window.events.push("ws open");
  socket.onerror = () => window.events.push("ws error");
  socket.onclose = (event) => {{
    window.events.push("ws close " + event.code);
    window.socketDone = true;
  }};
</script>
</body></html>
"""


#: Login CSRF: the attacker's page logs the victim's browser in to the attacker's account.
LOGIN_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Win a prize</title></head><body>
<form id="forged" method="post" action="{app}/user/login">
  <input type="hidden" name="mobile" value="{mobile}">
  <input type="hidden" name="passwd" value="{passwd}">
</form>
<script>document.getElementById("forged").submit();</script>
</body></html>
"""


class AttackerSite:
    """A second HTTP server on 127.0.0.1, serving the attacker's page."""

    def __init__(self) -> None:
        self.page = b""
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = site.page if self.path.startswith("/attack") else b"not here"
                self.send_response(200 if self.path.startswith("/attack") else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture(scope="module")
def attacker() -> Iterator[AttackerSite]:
    site = AttackerSite()
    try:
        yield site
    finally:
        site.close()


@pytest.fixture
def victim(browser: Any, server: WebServer) -> Iterator[dict[str, Any]]:
    """A user logged in through the app's own login endpoint, in a fresh browser context:
    the browser holds the cookie exactly as the server set it."""
    api = server.running
    mobile = new_mobile()
    user = api.register(mobile=mobile, nickname="Victim", passwd=PASSWORD)
    context = new_context(browser, server)
    page = context.new_page()
    page.goto("/login")
    status = page.evaluate(
        """async ([mobile, passwd]) => (await fetch("/user/login", {
            method: "POST", headers: {"Content-Type": "application/json"},
            body: JSON.stringify({mobile, passwd}),
        })).status""",
        [mobile, PASSWORD],
    )
    assert status == 200
    [cookie] = [c for c in context.cookies() if c["name"] == "fastim_token"]
    # What makes the cookie ambient, and what limits where it goes.
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Lax"
    assert cookie["domain"] == "127.0.0.1"
    try:
        yield {"id": user["id"], "token": cookie["value"], "context": context, "page": page}
    finally:
        context.close()


def friend_ids(server: WebServer, token: str) -> list[int]:
    """The user's friends and the users they asked to be friends: a forged addfriend
    makes a request (friends are by consent), which must not exist either."""
    reply = server.running.get("/contact/loadfriend", token=token)
    assert reply.status == 200, reply.body
    asked = server.running.get("/contact/requests", token=token)
    assert asked.status == 200, asked.body
    return [row["id"] for row in reply.list["rows"]] + [
        row["user"]["id"] for row in asked.list["rows"] if row["user"] is not None]


def nickname(server: WebServer, token: str) -> str:
    reply = server.running.get("/user/me", token=token)
    assert reply.status == 200, reply.body
    return str(reply.data["nickname"])


def run_attack(server: WebServer, attacker: AttackerSite, victim: dict[str, Any],
               attacker_host: str, mallory_id: int) -> dict[str, Any]:
    """Open the attacker's page at http://attacker_host:OTHER in the victim's browser;
    return the statuses the app answered, the page's WebSocket events and the console."""
    app = server.url
    attacker.page = ATTACK_PAGE.format(
        app=app, ws=app.replace("http://", "ws://"), mallory=mallory_id).encode()
    page = victim["context"].new_page()
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    form = f"{app}/contact/addfriend"
    update = f"{app}/user/update"
    got = f"{app}/contact/addfriend?dstid={mallory_id}"
    try:
        with page.expect_response(lambda r: r.url == form and r.request.method == "POST",
                                  timeout=WAIT_MS) as posted, \
             page.expect_response(lambda r: r.url == update, timeout=WAIT_MS) as fetched, \
             page.expect_response(lambda r: r.url == got, timeout=WAIT_MS) as got_by_get:
            page.goto(f"http://{attacker_host}:{attacker.port}/attack")
        page.wait_for_function("() => window.socketDone === true", timeout=WAIT_MS)
        return {
            "form": posted.value.status,
            "fetch": fetched.value.status,
            "get": got_by_get.value.status,
            "ws": page.evaluate("() => window.events.filter(e => e.startsWith('ws'))"),
            "console": console,
            "page_origin": page.evaluate("() => location.origin"),
        }
    finally:
        page.close()


def assert_nothing_changed(server: WebServer, victim: dict[str, Any], mallory_id: int) -> None:
    assert mallory_id not in friend_ids(server, victim["token"])
    assert nickname(server, victim["token"]) == "Victim"


def assert_socket_refused(seen: dict[str, Any]) -> None:
    # The handshake failed: error then close (1006, abnormal), never open.
    assert "ws open" not in seen["ws"]
    assert seen["ws"] == ["ws error", "ws close 1006"]
    # Chromium reports why in the console: the server's 403 at the upgrade.
    assert any("/chat" in text and "403" in text for text in seen["console"]), seen["console"]


def test_a_cross_site_page_cannot_use_the_session(
    browser: Any, server: WebServer, attacker: AttackerSite, victim: dict[str, Any]
) -> None:
    mallory = server.running.register(nickname="Mallory")
    seen = run_attack(server, attacker, victim, "localhost", mallory["id"])
    assert seen["page_origin"] == f"http://localhost:{attacker.port}"
    # 401, "login required": the browser sent no cookie with the cross-site form POST or
    # fetch (SameSite=Lax), which is the assumption that localhost is another site.
    assert seen["form"] == 401
    assert seen["fetch"] == 401
    # A GET of a changing endpoint is refused whatever it carries (POST-only rule).
    assert seen["get"] == 405
    assert_socket_refused(seen)
    assert_nothing_changed(server, victim, mallory["id"])


def test_a_same_site_page_on_another_port_cannot_use_the_session(
    browser: Any, server: WebServer, attacker: AttackerSite, victim: dict[str, Any]
) -> None:
    mallory = server.running.register(nickname="Mallory")
    seen = run_attack(server, attacker, victim, "127.0.0.1", mallory["id"])
    assert seen["page_origin"] == f"http://127.0.0.1:{attacker.port}"
    # 403, not 401: the cookie did travel (same site), and the Origin check refused it.
    assert seen["form"] == 403
    assert seen["fetch"] == 403
    assert seen["get"] == 405
    assert_socket_refused(seen)
    assert_nothing_changed(server, victim, mallory["id"])


def test_the_apps_own_page_still_changes_things_with_the_cookie(
    server: WebServer, victim: dict[str, Any]
) -> None:
    """The control: the same cookie, from the app's own origin, works (so the refusals
    above are the defences at work, not a cookie the browser would never send)."""
    mallory = server.running.register(nickname="Mallory")
    page = victim["page"]
    statuses = page.evaluate(
        """async (mallory) => {
            const post = (path, body) => fetch(path, {method: "POST", body: new URLSearchParams(body)});
            return [(await post("/contact/addfriend", {dstid: mallory})).status,
                    (await post("/user/update", {nickname: "Still me"})).status];
        }""",
        mallory["id"],
    )
    assert statuses == [200, 200]
    assert mallory["id"] in friend_ids(server, victim["token"])
    assert nickname(server, victim["token"]) == "Still me"


@pytest.mark.parametrize("attacker_host", ["localhost", "127.0.0.1"])
def test_a_foreign_page_cannot_log_the_victim_in_to_another_account(
    browser: Any, server: WebServer, attacker: AttackerSite, victim: dict[str, Any],
    attacker_host: str,
) -> None:
    """Without the Origin check on /user/login, Chromium stored the attacker's session
    cookie from the reply to this cross-site form POST (a top-level navigation), and the
    victim's next /chat would have been the attacker's account."""
    mallory = server.running.register(nickname="Mallory")
    app = server.url
    attacker.page = LOGIN_PAGE.format(app=app, mobile=mallory["mobile"],
                                      passwd=mallory["passwd"]).encode()
    page = victim["context"].new_page()
    login = f"{app}/user/login"
    try:
        with page.expect_response(lambda r: r.url == login, timeout=WAIT_MS) as answered:
            page.goto(f"http://{attacker_host}:{attacker.port}/attack")
        assert answered.value.status == 403
    finally:
        page.close()
    [cookie] = [c for c in victim["context"].cookies() if c["name"] == "fastim_token"]
    assert cookie["value"] == victim["token"]
    assert nickname(server, victim["token"]) == "Victim"

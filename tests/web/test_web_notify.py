"""Notifications in a real browser (docs/client.md): the unread count in the title and
on the favicon, muting a conversation (honoured by the count, shown on the user's other
device live), a desktop notification with a chime while another window has the focus
(none for a muted conversation), and Web Push shown by the service worker.

What the push test does and does not exercise: headless Chromium here cannot subscribe
to a push service (a Playwright context is incognito, where Chrome has no Push API, and
a persistent profile's `pushManager.subscribe` never answers without Google's push
service, which this machine cannot reach). So the page's own subscribe is seen to
fail cleanly, the test makes the browser's subscription keys itself and gives them to
the server (POST /user/push, as the page would), the server's push reaches the loopback
stand-in encrypted and signed, the test decrypts it with those keys and hands the
plaintext to the page's real service worker through the DevTools protocol
(`ServiceWorker.deliverPushMessage`), and the notification the worker shows is read
back with `registration.getNotifications()`.

Clicks: this module's Chromium shows its notifications through a desktop notification
server on D-Bus (tests/desktop_support.py), from where a test clicks them as a desktop
does; see the click test for why that click is a user's.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

pytest.register_assert_rewrite("tests.web_support")
from fastim.notify.options import PushOptions  # noqa: E402
from tests.desktop_support import NotificationServer, require_dbus  # noqa: E402
from tests.push_support import Browser, PushService  # noqa: E402
from tests.store_fixtures import SAFETY_TIMEOUT  # noqa: E402
from tests.web_support import (  # noqa: E402
    CHROMIUM,
    DESKTOP,
    LAUNCH_ARGS,
    WAIT_MS,
    Lang,
    Person,
    WebServer,
    befriend,
    bubbles,
    chat_over_socket,
    conversation_link,
    launch_chromium,
    make_person,
    new_context,
    open_chat,
    open_conversation,
    screenshot,
    wait_online,
    watch,
)

pytest_plugins = ["tests.web_support"]
pytestmark = pytest.mark.browser
expect.set_options(timeout=WAIT_MS)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    """This module's server pushes to a stand-in on loopback (a test-only option)."""
    web = WebServer(tmp_path_factory.mktemp("web-notify"))
    web.config.push = replace(PushOptions(), allow_http_loopback=True)
    web.start()
    try:
        yield web
    finally:
        web.stop()


@pytest.fixture(scope="module")
def desktop() -> Iterator[NotificationServer]:
    """The desktop's notification server, where this module's Chromium shows its
    notifications and from where their clicks come (tests/desktop_support.py)."""
    require_dbus()
    server = NotificationServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def browser(desktop: NotificationServer) -> Iterator[Any]:
    """This module's Chromium talks to `desktop` on its session bus."""
    yield from launch_chromium(desktop.browser_env())


@pytest.fixture(scope="module")
def service() -> Iterator[PushService]:
    stand_in = PushService()
    yield stand_in
    stand_in.close()


def favicon(page: Any) -> dict[str, str]:
    return page.evaluate("""() => { const l = document.querySelector('link[rel="icon"]');
        return { href: l.href.slice(0, 22), badge: l.dataset.badge || '' }; }""")


def wait_for_notifications(page: Any, ready: Callable[[list[dict[str, Any]]], bool]
                           ) -> list[dict[str, Any]]:
    """The notifications shown, once `ready` holds of them (read again every 50 ms, up to
    the suite's safety timeout)."""
    deadline = time.monotonic() + SAFETY_TIMEOUT
    while True:
        shown = shown_notifications(page)
        if ready(shown):
            return shown
        assert time.monotonic() < deadline, f"the notifications shown stayed {shown}"
        page.wait_for_timeout(50)


def deliver_push(cdp: Any, server: WebServer, payload: dict[str, Any]) -> None:
    """Hand a push's decrypted payload to the origin's service worker, as the browser
    does when its push service delivers one (DevTools: ServiceWorker.deliverPushMessage)."""
    registrations: list[dict[str, Any]] = []
    cdp.on("ServiceWorker.workerRegistrationUpdated",
           lambda event: registrations.extend(event["registrations"]))
    cdp.send("ServiceWorker.enable")
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + SAFETY_TIMEOUT
    while not found:  # a round trip to the browser lets the events be dispatched
        assert time.monotonic() < deadline, registrations
        found = [r for r in registrations
                 if r["scopeURL"] == f"{server.url}/" and not r["isDeleted"]]
        cdp.send("Runtime.evaluate", {"expression": "0"})
    cdp.send("ServiceWorker.deliverPushMessage", {
        "origin": server.url, "registrationId": found[0]["registrationId"],
        "data": json.dumps(payload)})


def shown_notifications(page: Any) -> list[dict[str, Any]]:
    """The notifications the page's service worker registration shows now."""
    return page.evaluate("""() => navigator.serviceWorker.getRegistration('/')
        .then(r => r.getNotifications())
        .then(ns => ns.map(n => ({title: n.title, body: n.body, tag: n.tag, url: n.data.url})))""")


def test_title_and_favicon_count_unread_and_a_mute_is_honoured_on_every_device(
        browser: Any, server: WebServer, people: list[Person]) -> None:
    alice, bob, carol = (make_person(server, n) for n in ("Alice", "Bob", "Carol"))
    people += [alice, bob, carol]
    befriend(server, alice, bob)
    befriend(server, carol, bob)
    page = open_chat(browser, server, bob)
    expect(page).to_have_title("fastim")

    chat_over_socket(server, alice, 10, bob.id, ["one", "two"])
    expect(page).to_have_title("(2) fastim")
    page.wait_for_function("() => document.querySelector('link[rel=\"icon\"]').href"
                           ".startsWith('data:image/png')")
    assert favicon(page)["badge"] == "2"

    # Bob's phone: a second device, open before he mutes.
    phone = new_context(browser, server, bob)
    try:
        phone_page = phone.new_page()
        watch(phone_page, bob)
        phone_page.goto("/chat")
        expect(conversation_link(phone_page, "u", alice.id)).to_be_visible()

        open_conversation(page, "u", alice.id)
        expect(page).to_have_title("fastim")  # read
        assert favicon(page)["badge"] == "0"
        page.locator("#conv-mute").click()
        page.get_by_role("button", name="Mute until I unmute").click()
        expect(page.locator("#conv-mute")).to_have_attribute("aria-pressed", "true")
        # The phone learns of it live (cmd 70 "mute").
        expect(conversation_link(phone_page, "u", alice.id).locator(".conv-muted")).to_be_visible()
        mutes = server.running.get("/contact/mutes", token=bob.token).list
        assert mutes["rows"] == [{"cmd": 10, "dstid": alice.id, "until": None}]

        page.evaluate("location.hash = ''")  # back to the list: nothing open
        chat_over_socket(server, alice, 10, bob.id, ["muted one"])
        chat_over_socket(server, carol, 10, bob.id, ["not muted"])
        expect(conversation_link(page, "u", carol.id)).to_have_attribute("data-unread", "1")
        expect(conversation_link(page, "u", alice.id)).to_have_attribute("data-unread", "1")
        expect(page).to_have_title("(1) fastim")  # Carol's only: Alice is muted
        expect(phone_page).to_have_title("(1) fastim")

        # Unmuted on the phone: the laptop counts Alice again.
        open_conversation(phone_page, "u", alice.id)
        phone_page.locator("#conv-mute").click()
        expect(conversation_link(page, "u", alice.id).locator(".conv-muted")).to_have_count(0)
        assert server.running.get("/contact/mutes", token=bob.token).list["total"] == 0
    finally:
        phone.close()
    assert bob.errors == [] and bob.dialogs == []


def test_desktop_notifications_and_the_service_worker_showing_a_push(
        browser: Any, server: WebServer, people: list[Person], service: PushService) -> None:
    alice, bob = make_person(server, "Alice"), make_person(server, "Bob")
    people += [alice, bob]
    befriend(server, alice, bob)
    page = open_chat(browser, server, bob)
    bob.context.grant_permissions(["notifications"], origin=server.url)

    # Permission only on a click: the profile's button, then the page subscribes.
    page.locator("#tab-profile").click()
    page.locator("#notify-sound").check()
    page.get_by_role("button", name="Turn on notifications").click()
    expect(page.locator("#notify-state")).to_contain_text("Desktop notifications are on")
    # Incognito Chromium has no Push API: the page says so instead of hanging.
    expect(page.locator("#notify-state")).to_contain_text("could not be set up")
    assert page.evaluate("navigator.serviceWorker.getRegistration('/')"
                         ".then(r => Boolean(r && r.active))")
    assert page.evaluate("localStorage.getItem('fastim.notify.sound')") == "1"
    bob.errors.clear()  # Chrome's console note about incognito and push

    # Another window has the focus: a message makes a desktop notification, with the
    # sender and a preview, and a sound; a muted conversation makes neither.
    # (Playwright makes every page think it has the focus: that emulation is turned off,
    # so the focus is where it really is.)
    cdp = bob.context.new_cdp_session(page)
    cdp.send("Emulation.setFocusEmulationEnabled", {"enabled": False})
    other = bob.context.new_page()
    other.goto("/login")
    other.bring_to_front()
    assert page.evaluate("document.hasFocus()") is False
    chat_over_socket(server, alice, 10, bob.id, ["dinner?"])
    # Read until shown (wait_for_function would take the promise itself as the truthy
    # answer, and not wait).
    shown = wait_for_notifications(page, lambda ns: len(ns) == 1)
    assert shown == [{"title": "Alice", "body": "dinner?",
                      "tag": f"u{alice.id}", "url": f"/chat#/u/{alice.id}"}]
    # Two chimes: one when the setting was switched on (a sample), one for "dinner?".
    assert page.evaluate("window.fastim.notify.beeps") == 2
    assert server.running.post("/contact/mute", {"cmd": 10, "dstid": alice.id},
                               token=bob.token).status == 200
    page.wait_for_function(f"() => window.fastim.notify.mutes.has('u{alice.id}')")
    chat_over_socket(server, alice, 10, bob.id, ["still there?"])
    expect(conversation_link(page, "u", alice.id)).to_have_attribute("data-unread", "2")
    # Nothing new for the muted message ("dinner?" itself may be gone by now).
    assert {n["body"] for n in shown_notifications(page)} <= {"dinner?"}
    assert page.evaluate("window.fastim.notify.beeps") == 2
    assert server.running.post("/contact/unmute", {"cmd": 10, "dstid": alice.id},
                               token=bob.token).status == 200
    other.close()

    # The browser's keys, made by the test, given to the server as the page would.
    keys = Browser(service)
    assert server.running.post("/user/push", keys.subscription(),
                               token=bob.token).status == 201
    # Bob closes fastim; a blank page of the origin stays (no chat connection).
    page.goto("/sw.js")
    chat_over_socket(server, alice, 10, bob.id, ["dinner at 8?"])
    [push] = service.wait_for(keys.endpoint)
    payload = keys.decrypt(push)
    assert payload["title"] == "New message from Alice"

    deliver_push(cdp, server, payload)
    # The push replaced the page's notification of the same conversation (its tag).
    shown = wait_for_notifications(page, lambda ns: any(n["title"].startswith("New") for n in ns))
    assert shown == [{"title": "New message from Alice", "body": "",
                      "tag": f"u{alice.id}", "url": f"/chat#/u/{alice.id}"}]
    assert bob.errors == [] and bob.dialogs == []


def test_a_push_without_a_title_is_shown_in_the_page_language(
        browser: Any, server: WebServer, people: list[Person], lang: Lang) -> None:
    """The server titles each push in the subscriber's language; one without a title (its
    JSON unreadable, or cut) gets "New message" from the worker, in the language of the
    page that registered it, not always in English."""
    cam = make_person(server, "Cam")
    people.append(cam)
    page = open_chat(browser, server, cam, locale=lang.locale)
    cam.context.grant_permissions(["notifications"], origin=server.url)
    page.locator("#tab-profile").click()
    page.get_by_role("button", name=lang.t("notify.enable")).click()
    expect(page.locator("#notify-state")).to_contain_text(lang.t("notify.on"))
    worker = page.evaluate("navigator.serviceWorker.ready.then(r => r.active.scriptURL)")
    assert worker == f"{server.url}/sw.js?lang={lang.language}"
    cam.errors.clear()  # Chrome's console note about incognito and push

    cdp = cam.context.new_cdp_session(page)
    deliver_push(cdp, server, {"cmd": 11, "dstid": 7, "id": 1})
    shown = wait_for_notifications(page, lambda ns: len(ns) == 1)
    assert shown == [{"title": lang.t("push.title_fallback"), "body": "", "tag": "g7",
                      "url": "/chat#/g/7"}]
    assert cam.errors == [] and cam.dialogs == []


def test_a_click_on_a_notification_brings_up_the_conversation_page_open_or_closed(
        browser: Any, server: WebServer, people: list[Person], service: PushService,
        desktop: NotificationServer, tmp_path: Path, shots: Path) -> None:
    """How the clicks are delivered, and why they are a user's: Chromium shows its
    notifications through the desktop's notification server on D-Bus
    (tests/desktop_support.py), as on any Linux desktop, and each click comes back from
    there as the desktop sends it (``ActionInvoked``, "default"). Chromium itself then
    fires the service worker's ``notificationclick``, with the user activation of a
    click, so the worker's own handler runs as it would for a person, ``client.focus()``
    and ``clients.openWindow()`` included: no event is made up in the page or the worker.

    A real profile (a persistent context): in a Playwright context, an off-the-record
    profile made through DevTools, Chromium 156 closes a clicked notification without
    firing the worker's ``notificationclick`` (seen here; the same click in a persistent
    profile fires it), most likely because it looks the profile up by its id to
    dispatch the click and does not find that one."""
    alice, bob = make_person(server, "Alice"), make_person(server, "Bob")
    people += [alice, bob]
    befriend(server, alice, bob)
    context = browser.browser_type.launch_persistent_context(
        str(tmp_path / "profile"), executable_path=str(CHROMIUM), headless=True,
        args=LAUNCH_ARGS, env=desktop.browser_env(), base_url=server.url, viewport=DESKTOP,
        locale="en-GB", timezone_id="Europe/London")
    alice.context = context  # closed after the test with the others
    context.set_default_timeout(WAIT_MS)
    context.add_cookies([{"name": "fastim_token", "value": alice.token, "url": server.url}])
    # Alice allowed notifications on an earlier visit (the profile's button has its own
    # test above): at its start the page registers the service worker. (Its push
    # subscription never completes here: no push service; it gives up in the background.)
    context.grant_permissions(["notifications"], origin=server.url)
    page = context.pages[0]
    watch(page, alice)
    page.goto("/chat")
    wait_online(page)
    page.wait_for_function("() => navigator.serviceWorker.controller !== null")
    cdp = context.new_cdp_session(page)
    # Alice reloads with Shift (DevTools: ignoreCache): a hard reload bypasses the
    # service worker, so this page is not controlled by it: a click must still reach it
    # (a worker cannot navigate a page it does not control).
    cdp.send("Page.reload", {"ignoreCache": True})
    wait_online(page)
    assert page.evaluate("navigator.serviceWorker.controller") is None
    cdp.send("Emulation.setFocusEmulationEnabled", {"enabled": False})

    # 1. Open but in the background: another tab has the focus. (Headless Chromium keeps
    # every tab "visible"; the page alerts whenever it lacks the focus, which is real.)
    other = context.new_page()
    other.goto("/login")
    other.bring_to_front()
    assert page.evaluate("document.hasFocus()") is False
    chat_over_socket(server, bob, 10, alice.id, ["are you coming tonight?"])
    shown = desktop.wait_for("Bob")  # the sender; the preview is the body's last line
    assert shown.body.splitlines()[-1] == "are you coming tonight?", shown
    assert page.evaluate("location.hash") == ""  # no conversation open
    page.evaluate("window.beforeTheClick = true")  # gone if the page were loaded again
    desktop.click(shown)
    # The page switches to the conversation with Bob, his message read there. (The
    # worker also calls client.focus(): with no window manager, headless Chromium lets
    # it resolve without moving the focus, so the focus is not asserted here.)
    page.wait_for_function(f"() => location.hash === '#/u/{bob.id}'")
    expect(bubbles(page, "are you coming tonight?")).to_be_visible()
    expect(conversation_link(page, "u", bob.id)).to_have_attribute("data-unread", "0")
    # In place: the same page, its connection kept (no reload, no reconnect).
    assert page.evaluate("window.beforeTheClick") is True
    screenshot(page, shots, "notification-click")

    # 2. Closed: fastim's page is gone (a page of the origin stays for DevTools), so the
    # server pushes; the push's notification, clicked, opens fastim on the conversation.
    keys = Browser(service)
    assert server.running.post("/user/push", keys.subscription(),
                               token=alice.token).status == 201
    page.goto("/sw.js")
    chat_over_socket(server, bob, 10, alice.id, ["dinner at 8?"])
    [push] = service.wait_for(keys.endpoint)
    deliver_push(cdp, server, keys.decrypt(push))
    shown = desktop.wait_for("New message from Bob")
    with context.expect_page() as opened:
        desktop.click(shown)
    chat = opened.value
    watch(chat, alice)
    chat.wait_for_url(f"**/chat#/u/{bob.id}")
    wait_online(chat)
    expect(bubbles(chat, "dinner at 8?")).to_be_visible()
    other.close()
    assert alice.errors == [] and alice.dialogs == []

"""/learn in Chromium: the handshake steps are the ones that crossed the wire (checked
against what Chromium itself sent and received, and against a computation of this test),
a fragmented message shows its frames, a broken frame shows its close code; the page in
Chinese and on a phone. Saves docs/screenshots/learn.png (FASTIM_SCREENSHOTS)."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

pytest.register_assert_rewrite("tests.web_support")
from tests.web_support import (  # noqa: E402
    DESKTOP,
    PHONE,
    WAIT_MS,
    Person,
    WebServer,
    screenshot,
    watch,
)

pytest_plugins = ["tests.web_support"]
pytestmark = pytest.mark.browser
expect.set_options(timeout=WAIT_MS)

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 §1.3, written out here on purpose


def open_learn(browser: Any, server: WebServer, *, locale: str = "en-GB",
               viewport: dict[str, int] | None = None) -> tuple[Any, Any, Person]:
    context = browser.new_context(base_url=server.url, viewport=viewport or DESKTOP,
                                  locale=locale)
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    watcher = Person(0, "", "", "learner", "")
    watch(page, watcher)
    return context, page, watcher


def frames(page: Any, direction: str | None = None) -> Any:
    selector = "#frames > li.learn-frame"
    if direction is not None:
        selector += f'[data-dir="{direction}"]'
    return page.locator(selector)


def test_handshake_steps_are_what_crossed_the_wire(browser: Any, server: WebServer,
                                                   shots: Path) -> None:
    context, page, watcher = open_learn(browser, server)
    try:
        # Chromium's own record of the inspected socket's handshake (DevTools protocol).
        cdp = context.new_cdp_session(page)
        cdp.send("Network.enable")
        sent: dict[str, str] = {}
        received: dict[str, str] = {}

        def on_request(event: dict[str, Any]) -> None:
            sent[event["requestId"]] = event["request"]["headers"].get("Sec-WebSocket-Key", "")

        def on_response(event: dict[str, Any]) -> None:
            headers = event["response"]["headers"]
            received[event["requestId"]] = headers.get("Sec-WebSocket-Accept", "")

        cdp.on("Network.webSocketWillSendHandshakeRequest", on_request)
        cdp.on("Network.webSocketHandshakeResponseReceived", on_response)
        page.goto("/learn")
        expect(page.locator("#accept-check")).to_have_attribute("data-ok", "true")
        expect(page.locator("#status")).to_have_attribute("data-state", "open")

        step = {name: page.locator(f'#steps li[data-step="{name}"] .learn-value').inner_text()
                for name in ("key", "joined", "sha1", "accept")}
        digest = hashlib.sha1((step["key"] + GUID).encode("ascii")).digest()
        assert step["joined"] == step["key"] + GUID
        assert step["sha1"] == digest.hex(" ")
        assert step["accept"] == base64.b64encode(digest).decode("ascii")
        # The key is the one Chromium sent on one of its sockets, and that socket's answer
        # carried the accept value the page shows.
        pairs = {sent[i]: received.get(i) for i in sent}
        assert pairs.get(step["key"]) == step["accept"]
        assert f"Sec-WebSocket-Key: {step['key']}" in page.locator("#request-head").text_content()
        assert f"Sec-WebSocket-Accept: {step['accept']}" in page.locator(
            "#response-head").text_content()

        # A text message, compressed by Chromium, shown inflated; then its echo.
        page.fill("#text", "Hello, wire")
        page.locator("#form-text button").click()
        expect(frames(page, "send")).to_have_count(1)
        first = frames(page, "recv").first
        expect(first).to_contain_text("RSV1: the message is compressed (RFC 7692 §6)")
        expect(first.locator(".learn-columns")).to_contain_text("Hello, wire")
        expect(first.locator(".f-key")).to_have_count(4)

        # A fragmented message, from the server, in 4 frames.
        page.fill("#fragment-text", "one two three four")
        page.fill("#fragment-count", "4")
        page.locator("#form-fragments button").click()
        expect(frames(page, "send")).to_have_count(5)
        fragments = frames(page, "send")
        shown = [(fragments.nth(i).get_attribute("data-opcode"),
                  fragments.nth(i).get_attribute("data-fin")) for i in range(1, 5)]
        assert shown == [("TEXT", "0"), ("CONTINUATION", "0"), ("CONTINUATION", "0"),
                         ("CONTINUATION", "1")]

        # A ping from the server, and Chromium's pong.
        page.locator("#form-ping button").click()
        expect(frames(page, "recv").filter(has_text="PONG")).to_have_count(1)

        # A broken frame, simulated, and the close code the server would send.
        page.select_option("#broken-kind", "bad_utf8")
        page.locator("#form-broken button").click()
        simulated = page.locator('li.learn-simulated[data-kind="bad_utf8"]')
        expect(simulated).to_have_attribute("data-code", "1007")
        expect(simulated).to_contain_text("SIMULATED, not on the wire")
        page.select_option("#broken-kind", "unmasked")
        page.locator("#form-broken button").click()
        expect(page.locator('li.learn-simulated[data-kind="unmasked"]')).to_have_attribute(
            "data-code", "1002")

        page.evaluate("window.scrollTo(0, 0)")
        screenshot(page, shots, "learn")
        page.locator("#h-frames").scroll_into_view_if_needed()
        page.evaluate("document.getElementById('h-frames').scrollIntoView()")
        screenshot(page, shots, "learn-frames")

        # Close with a code and a reason; then reconnect without compression.
        page.fill("#close-code", "4001")
        page.fill("#close-reason", "see you")
        page.locator("#form-close button").click()
        expect(page.locator('li.learn-event[data-kind="closed"]')).to_have_attribute(
            "data-code", "4001")
        page.locator("#reconnect-plain").click()
        expect(page.locator("#status")).to_contain_text("compression: off")
        assert watcher.errors == []
    finally:
        context.close()


def test_the_page_in_chinese_on_a_phone(browser: Any, server: WebServer, shots: Path) -> None:
    context, page, watcher = open_learn(browser, server, locale="zh-CN", viewport=PHONE)
    try:
        page.goto("/learn")
        expect(page.locator("h1")).to_have_text("WebSocket 线路观察器")
        expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
        expect(page.locator("#accept-check")).to_have_attribute("data-ok", "true")
        page.locator("#form-text button").click()
        expect(frames(page, "send")).to_have_count(1)
        expect(frames(page, "recv").first).to_contain_text("浏览器 → 服务器")
        # The field-by-field explanation in Chinese too (fastim.ws.explain_zh).
        expect(frames(page, "recv").first).to_contain_text("结束：这是消息的最后一帧（§5.2）")
        # Nothing wider than the phone's screen.
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"]
        frames(page, "recv").first.evaluate("el => el.scrollIntoView()")
        screenshot(page, shots, "learn-phone-zh")
        assert watcher.errors == []
    finally:
        context.close()


def test_keyboard_only(browser: Any, server: WebServer) -> None:
    context, page, watcher = open_learn(browser, server)
    try:
        page.goto("/learn")
        expect(page.locator("#status")).to_have_attribute("data-state", "open")
        page.locator("#text").focus()
        page.keyboard.type(" typed")
        page.keyboard.press("Enter")  # submits the form
        expect(frames(page, "send")).to_have_count(1)
        # Every control has a name a screen reader can read out.
        for control in page.locator("main input, main select, main button").all():
            assert control.evaluate(
                "el => (el.labels && el.labels.length > 0) || el.textContent.trim() !== ''"
            ), control.evaluate("el => el.outerHTML")
        assert watcher.errors == []
    finally:
        context.close()

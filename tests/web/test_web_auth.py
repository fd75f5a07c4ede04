"""Registering, logging in and out in a real browser, with the errors shown inline; and
what the pages send besides HTML (their Content-Security-Policy)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from fastim.handlers.views import CONTENT_SECURITY_POLICY
from tests.store_fixtures import new_mobile

# web_support is also this module's plugin (its fixtures): let pytest rewrite its asserts.
pytest.register_assert_rewrite("tests.web_support")
from tests.web_support import (  # noqa: E402
    PHONE,
    WAIT_MS,
    Person,
    WebServer,
    make_person,
    new_context,
    screenshot,
    wait_online,
    watch,
)

# The browser, server, people and shots fixtures.
pytest_plugins = ["tests.web_support"]
pytestmark = pytest.mark.browser
expect.set_options(timeout=WAIT_MS)


def error_of(page: Any, field: str) -> Any:
    return page.locator(f'[data-error-for="{field}"]')


def test_register_then_log_out_and_in_again(browser: Any, server: WebServer, shots: Path) -> None:
    taken = make_person(server, "Taken")
    context = new_context(browser, server)
    page = context.new_page()
    visitor = Person(id=0, mobile=new_mobile(), passwd="a good password", nickname="Dora 🌼", token="")
    watch(page, visitor)
    try:
        page.goto("/")
        expect(page).to_have_url(re.compile("/login$"))
        page.click("text=Create one")
        expect(page).to_have_url(re.compile("/register$"))
        expect(page.locator("#mobile")).to_be_focused()

        # Checked in the browser first: every bad field at once, focus on the first.
        page.fill("#mobile", "12ab")
        page.fill("#passwd", "short")
        page.click('button[type="submit"]')
        expect(error_of(page, "mobile")).to_have_text(
            "Enter a phone number: 5 to 15 digits, optionally after +.")
        expect(error_of(page, "nickname")).to_have_text("Choose a nickname.")
        expect(error_of(page, "passwd")).to_have_text("The password needs at least 8 characters.")
        expect(page.locator("#mobile")).to_be_focused()
        expect(page.locator("#mobile")).to_have_attribute("aria-invalid", "true")

        # Then by the server: a number already registered, shown under the number.
        page.fill("#mobile", taken.mobile)
        expect(error_of(page, "mobile")).to_be_hidden()  # editing clears the field's error
        page.fill("#nickname", visitor.nickname)
        page.fill("#passwd", visitor.passwd)
        page.click('button[type="submit"]')
        expect(error_of(page, "mobile")).to_have_text("This mobile number is already registered")
        screenshot(page, shots, "register-error")

        page.fill("#mobile", visitor.mobile)
        page.locator("#passwd").press("Enter")
        expect(page).to_have_url(re.compile("/chat$"))
        wait_online(page)
        expect(page.locator("#me-name")).to_have_text(visitor.nickname)
        expect(page.locator("#conn-text")).to_have_text("Online")

        # The profile tab: change the nickname, then log out.
        page.click("#tab-profile")
        expect(page.locator("#profile-mobile")).to_have_text(f"Mobile {visitor.mobile}")
        page.fill("#profile-nickname", "Dora the explorer")
        page.fill("#profile-memo", "Maps <and> compasses")
        page.click('#profile button[type="submit"]')
        expect(page.locator("#profile [data-ok]")).to_have_text("Saved.")
        expect(page.locator("#me-name")).to_have_text("Dora the explorer")
        screenshot(page, shots, "profile")
        page.click("#logout")  # it asks first
        expect(page.locator("#logout-dialog")).to_be_visible()
        page.click("#logout-confirm")
        expect(page).to_have_url(re.compile("/login$"))
        page.goto("/chat")  # the session is over: back to the login page
        expect(page).to_have_url(re.compile("/login$"))

        # A wrong password: one message for the form, not a hint about which field.
        page.fill("#mobile", visitor.mobile)
        page.fill("#passwd", "not the password")
        page.click('button[type="submit"]')
        expect(error_of(page, "form")).to_have_text("Mobile number or password is incorrect")
        expect(error_of(page, "mobile")).to_be_hidden()
        page.fill("#passwd", visitor.passwd)
        page.click('button[type="submit"]')
        expect(page).to_have_url(re.compile("/chat$"))
        wait_online(page)
        expect(page.locator("#me-name")).to_have_text("Dora the explorer")
        assert visitor.errors == [] and visitor.dialogs == []
    finally:
        context.close()


def test_login_page_on_a_phone(browser: Any, server: WebServer, shots: Path) -> None:
    context = new_context(browser, server, viewport=PHONE)
    try:
        page = context.new_page()
        page.goto("/login")
        form = page.locator("#login")
        expect(form).to_be_visible()
        box = form.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
        screenshot(page, shots, "login-phone")
    finally:
        context.close()


@pytest.mark.parametrize("path", ["/login", "/register", "/chat"])
def test_pages_allow_only_their_own_scripts(server: WebServer, path: str) -> None:
    reply = server.running.get(path)
    assert reply.status == 200
    assert reply.header("content-security-policy") == CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in CONTENT_SECURITY_POLICY
    assert b"<script>" not in reply.body  # no inline script: only src="/asset/js/…"
    for src in re.findall(rb'src="([^"]+)"', reply.body):
        assert src.startswith(b"/asset/")
        assert server.running.get(src.decode()).status == 200

"""Accessibility in a real browser (issue 24): axe-core on every page and state of the
client, in the light and the dark scheme and on a phone; a serious or critical violation
fails the test (tests/axe_support.py says why those two).

The states are reached as a user would reach them (clicks and keys), so that what axe
sees is what a person sees: the login and register pages with their errors shown, the
chat list with a friend request waiting, a conversation with messages in it, the emoji
and sticker pickers, a person's sheet, a group's members and the profile.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

pytest.register_assert_rewrite("tests.web_support", "tests.axe_support")
from tests.axe_support import assert_accessible  # noqa: E402
from tests.web_support import (  # noqa: E402
    PHONE,
    WAIT_MS,
    Person,
    WebServer,
    befriend,
    chat_over_socket,
    make_person,
    new_context,
    open_chat,
    open_conversation,
    screenshot,
    send_text,
)

pytest_plugins = ["tests.web_support"]
pytestmark = pytest.mark.browser
expect.set_options(timeout=WAIT_MS)

SCHEMES = ["light", "dark"]


@pytest.mark.parametrize("scheme", SCHEMES)
def test_login_and_register_pages_with_their_errors(
        browser: Any, server: WebServer, scheme: str) -> None:
    context = new_context(browser, server, scheme=scheme)
    page = context.new_page()
    try:
        page.goto("/login")
        assert_accessible(page, f"the login page ({scheme})")
        page.fill("#mobile", "12ab")
        page.click('button[type="submit"]')
        expect(page.locator('[data-error-for="mobile"]')).to_be_visible()
        assert_accessible(page, f"the login page with an error ({scheme})")

        page.goto("/register")
        assert_accessible(page, f"the register page ({scheme})")
        page.fill("#passwd", "short")
        page.click('button[type="submit"]')
        expect(page.locator('[data-error-for="passwd"]')).to_be_visible()
        assert_accessible(page, f"the register page with errors ({scheme})")
    finally:
        context.close()


@pytest.mark.parametrize("scheme", SCHEMES)
def test_the_chat_page_in_every_state(browser: Any, server: WebServer, people: list[Person],
                                      shots: Path, scheme: str) -> None:
    alice, bob, carol = (make_person(server, n) for n in ("Alice", "Bob", "Carol"))
    people += [alice, bob, carol]
    befriend(server, alice, bob)
    # Carol asks Alice: the list shows a request waiting, with its buttons.
    server.running.post("/contact/addfriend", {"dstid": alice.id}, token=carol.token)
    group = server.running.post("/contact/createcommunity",
                                {"name": f"Readers {scheme}", "visibility": "public"},
                                token=alice.token).data
    server.running.post("/contact/joincommunity", {"dstid": group["id"]}, token=bob.token)
    chat_over_socket(server, bob, 10, alice.id, ["Hi Alice 👋", "Lunch at noon?"])

    page = open_chat(browser, server, alice, scheme=scheme)
    expect(page.locator("#requests")).to_be_visible()
    assert_accessible(page, f"the chat list with a request ({scheme})")

    open_conversation(page, "u", bob.id)
    send_text(page, "Sounds good")
    expect(page.locator("#messages li.msg")).to_have_count(3)
    assert_accessible(page, f"a conversation ({scheme})")
    screenshot(page, shots, f"a11y-conversation-{scheme}")

    page.click("#emoji-button")
    expect(page.locator("#emoji-picker")).to_be_visible()
    assert_accessible(page, f"the emoji picker ({scheme})")
    page.keyboard.press("Escape")
    page.click("#sticker-button")
    expect(page.locator("#sticker-picker")).to_be_visible()
    expect(page.locator("#sticker-picker button").first).to_be_visible()
    assert_accessible(page, f"the sticker picker ({scheme})")
    page.keyboard.press("Escape")

    page.click("#conv-who")
    expect(page.locator("#person-dialog")).to_be_visible()
    assert_accessible(page, f"a person's sheet ({scheme})")
    page.keyboard.press("Escape")

    open_conversation(page, "g", group["id"])
    page.click("#conv-members")
    expect(page.locator("#member-list li")).to_have_count(2)
    assert_accessible(page, f"a group's members ({scheme})")
    page.keyboard.press("Escape")

    page.click("#tab-profile")
    expect(page.locator("#profile-nickname")).to_be_visible()
    assert_accessible(page, f"the profile ({scheme})")


def test_the_chat_page_on_a_phone(browser: Any, server: WebServer, people: list[Person]) -> None:
    dora, erin = make_person(server, "Dora"), make_person(server, "Erin")
    people += [dora, erin]
    befriend(server, dora, erin)
    page = open_chat(browser, server, dora, viewport=PHONE)
    assert_accessible(page, "the list on a phone")
    open_conversation(page, "u", erin.id)
    send_text(page, "on my phone")
    expect(page.locator("#messages li.msg")).to_have_count(1)
    assert_accessible(page, "a conversation on a phone")


def test_the_login_page_on_a_phone(browser: Any, server: WebServer) -> None:
    context = new_context(browser, server, viewport=PHONE)
    try:
        page = context.new_page()
        page.goto("/login")
        assert_accessible(page, "the login page on a phone")
    finally:
        context.close()

"""Accessibility in a real browser (issue 24): axe-core on every page and state of the
client, in the light and the dark scheme and on a phone; a serious or critical violation
fails the test (tests/axe_support.py says why those two).

The states are reached as a user would reach them (clicks and keys), so that what axe
sees is what a person sees: the login and register pages with their errors shown, the
chat list with a friend request waiting, a conversation with messages in it, the emoji
and sticker pickers, a message's menu, a person's sheet, a group's members and the
profile, in English and in 简体中文 (a browser set to zh-CN).

axe skips text on role="img" elements, so the badges' contrast (white or dark text on
the accent or red) is measured here from their computed colours.
"""

from __future__ import annotations

import re
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
LOCALES = ["en-GB", "zh-CN"]
#: WCAG 1.4.3 for text under 18.66px bold.
MIN_CONTRAST = 4.5


def luminance(css: str) -> float:
    """The relative luminance of an rgb()/rgba() colour (WCAG 2.1's definition)."""
    r, g, b = (int(v) / 255 for v in re.findall(r"[\d.]+", css)[:3])
    lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in (r, g, b)]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def assert_badges_contrast(page: Any, what: str) -> None:
    """Every visible badge's text against its own background keeps 4.5:1."""
    colours = page.evaluate("""[...document.querySelectorAll('.badge, .tab-badge')]
        .filter((el) => el.offsetParent !== null && el.textContent.trim())
        .map((el) => { const s = getComputedStyle(el); return [el.className, s.color, s.backgroundColor]; })""")
    assert colours, f"no badge on screen in {what}"
    for name, fg, bg in colours:
        light, dark = sorted((luminance(fg), luminance(bg)), reverse=True)
        ratio = (light + 0.05) / (dark + 0.05)
        assert ratio >= MIN_CONTRAST, f"{name} in {what}: {fg} on {bg} is {ratio:.2f}:1"


def assert_accessible_in_both_schemes(page: Any, what: str, shots: Path | None = None,
                                      name: str = "") -> None:
    """axe on the page as it stands, in the light and then the dark scheme (switched
    in place: one set-up serves both; transitions off, so no colour is caught midway),
    and back to light. With `shots`, a screenshot in each scheme."""
    for scheme in SCHEMES:
        page.emulate_media(color_scheme=scheme, reduced_motion="reduce")
        assert_accessible(page, f"{what} ({scheme})")
        if shots is not None:
            screenshot(page, shots, f"{name}-{scheme}")
    page.emulate_media(color_scheme="light", reduced_motion="reduce")


@pytest.mark.parametrize("locale", LOCALES)
def test_login_and_register_pages_with_their_errors(
        browser: Any, server: WebServer, locale: str) -> None:
    context = new_context(browser, server, locale=locale)
    page = context.new_page()
    try:
        page.goto("/login")
        assert page.evaluate("document.documentElement.lang") == locale.replace("en-GB", "en")
        assert_accessible_in_both_schemes(page, f"the login page ({locale})")
        page.fill("#mobile", "12ab")
        page.click('button[type="submit"]')
        expect(page.locator('[data-error-for="mobile"]')).to_be_visible()
        assert_accessible_in_both_schemes(page, f"the login page with an error ({locale})")

        page.goto("/register")
        assert_accessible_in_both_schemes(page, f"the register page ({locale})")
        page.fill("#passwd", "short")
        page.click('button[type="submit"]')
        expect(page.locator('[data-error-for="passwd"]')).to_be_visible()
        assert_accessible_in_both_schemes(page, f"the register page with errors ({locale})")
    finally:
        context.close()


@pytest.mark.parametrize("locale", LOCALES)
def test_the_chat_page_in_every_state(browser: Any, server: WebServer, people: list[Person],
                                      shots: Path, locale: str) -> None:
    where = locale
    alice, bob, carol = (make_person(server, n) for n in ("Alice", "Bob", "Carol"))
    people += [alice, bob, carol]
    befriend(server, alice, bob)
    # Carol asks Alice: the list shows a request waiting, with its buttons.
    server.running.post("/contact/addfriend", {"dstid": alice.id}, token=carol.token)
    group = server.running.post("/contact/createcommunity",
                                {"name": f"Readers {locale}", "visibility": "public"},
                                token=alice.token).data
    server.running.post("/contact/joincommunity", {"dstid": group["id"]}, token=bob.token)
    chat_over_socket(server, bob, 10, alice.id, ["Hi Alice 👋", "Lunch at noon?"])

    page = open_chat(browser, server, alice, locale=locale)
    expect(page.locator("#requests")).to_be_visible()
    expect(page.locator(f'a.conv-item[data-key="u{bob.id}"] .badge')).to_be_visible()
    assert_accessible_in_both_schemes(page, f"the chat list with a request ({where})")
    for scheme in SCHEMES:
        page.emulate_media(color_scheme=scheme, reduced_motion="reduce")
        assert_badges_contrast(page, f"the chat list ({where}, {scheme})")

    open_conversation(page, "u", bob.id)
    send_text(page, "Sounds good")
    expect(page.locator("#messages li.msg")).to_have_count(3)
    assert_accessible_in_both_schemes(page, f"a conversation ({where})", shots,
                                      f"a11y-conversation-{locale}")

    more = page.locator("#messages li.msg.mine .msg-more").last
    more.focus()
    page.keyboard.press("Enter")
    expect(page.locator("#msg-menu")).to_be_visible()
    assert_accessible_in_both_schemes(page, f"a message's menu ({where})")
    page.keyboard.press("Escape")

    page.click("#emoji-button")
    expect(page.locator("#emoji-picker")).to_be_visible()
    assert_accessible_in_both_schemes(page, f"the emoji picker ({where})")
    page.keyboard.press("Escape")
    page.click("#sticker-button")
    expect(page.locator("#sticker-picker")).to_be_visible()
    expect(page.locator("#sticker-picker button").first).to_be_visible()
    assert_accessible_in_both_schemes(page, f"the sticker picker ({where})")
    page.keyboard.press("Escape")

    page.click("#conv-who")
    expect(page.locator("#person-dialog")).to_be_visible()
    assert_accessible_in_both_schemes(page, f"a person's sheet ({where})")
    page.keyboard.press("Escape")

    open_conversation(page, "g", group["id"])
    page.click("#conv-members")
    expect(page.locator("#member-list li")).to_have_count(2)
    assert_accessible_in_both_schemes(page, f"a group's members ({where})")
    page.keyboard.press("Escape")

    page.click("#tab-profile")
    expect(page.locator("#profile-nickname")).to_be_visible()
    assert_accessible_in_both_schemes(page, f"the profile ({where})")


@pytest.mark.parametrize("locale", LOCALES)
def test_the_chat_page_on_a_phone(browser: Any, server: WebServer, people: list[Person],
                                  shots: Path, locale: str) -> None:
    dora, erin = make_person(server, "Dora"), make_person(server, "Erin")
    people += [dora, erin]
    befriend(server, dora, erin)
    page = open_chat(browser, server, dora, viewport=PHONE, locale=locale)
    assert_accessible_in_both_schemes(page, f"the list on a phone ({locale})")
    open_conversation(page, "u", erin.id)
    send_text(page, "on my phone")
    expect(page.locator("#messages li.msg")).to_have_count(1)
    assert_accessible_in_both_schemes(page, f"a conversation on a phone ({locale})", shots,
                                      f"a11y-phone-{locale}")


def test_the_login_page_on_a_phone(browser: Any, server: WebServer) -> None:
    context = new_context(browser, server, viewport=PHONE)
    try:
        page = context.new_page()
        page.goto("/login")
        assert_accessible(page, "the login page on a phone")
    finally:
        context.close()

"""The client with the keyboard alone, and what a screen reader is told (issue 24,
"Keyboard" and "Accessibility, measured").

One flow from the login page to logging out without the mouse: log in, open a
conversation, send a message, open the emoji picker and pick one with the arrow keys,
send it, scroll the history, move between conversations with Alt+↑/↓, open a group's
members, close it with Esc (focus back on its button), log out. Then Esc on every
menu, picker and dialog returns focus where it came from; the live region says each new
message and each connection change once, and never the history; on a phone, focus
follows a conversation opening and closing.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

pytest.register_assert_rewrite("tests.web_support")
from tests.web_support import (  # noqa: E402
    PHONE,
    WAIT_MS,
    Lang,
    Person,
    WebServer,
    befriend,
    chat_over_socket,
    make_person,
    new_context,
    open_chat,
    open_conversation,
    send_text,
    wait_online,
    watch,
)

pytest_plugins = ["tests.web_support"]
pytestmark = pytest.mark.browser
expect.set_options(timeout=WAIT_MS)

MAX_TABS = 30  # a bound on Tab presses to reach a control; the page has fewer stops


def focused(page: Any, js_test: str) -> bool:
    return bool(page.evaluate(f"(() => {{ const el = document.activeElement; return {js_test}; }})()"))


def tab_to(page: Any, js_test: str, key: str = "Tab") -> None:
    """Press Tab (or Shift+Tab) until the focused element passes `js_test`."""
    for _ in range(MAX_TABS):
        if focused(page, js_test):
            return
        page.keyboard.press(key)
    raise AssertionError(f"{key} never reached {js_test}; focus is on "
                         + page.evaluate("document.activeElement.outerHTML.slice(0, 200)"))


def active_id(page: Any) -> str:
    return page.evaluate("document.activeElement.id")


def test_a_whole_flow_with_the_keyboard_alone(browser: Any, server: WebServer,
                                             people: list[Person]) -> None:
    kim, lee = make_person(server, "Kim"), make_person(server, "Lee")
    people += [kim, lee]
    befriend(server, kim, lee)
    group = server.running.post("/contact/createcommunity", {"name": "Keys"},
                                token=kim.token).data
    # Enough history to scroll.
    chat_over_socket(server, lee, 10, kim.id, [f"line {n}" for n in range(30)])

    kim.context = new_context(browser, server)
    page = kim.page = kim.context.new_page()
    watch(page, kim)
    page.goto("/login")
    expect(page.locator("#mobile")).to_be_focused()
    page.keyboard.type(kim.mobile)
    page.keyboard.press("Tab")
    page.keyboard.type(kim.passwd)
    page.keyboard.press("Enter")
    page.wait_for_url("**/chat")
    wait_online(page)

    # To Lee's entry in the list, Enter: the conversation opens, the composer has focus.
    tab_to(page, f"el.matches('a.conv-item[data-key=\"u{lee.id}\"]')")
    page.keyboard.press("Enter")
    expect(page.locator("#message")).to_be_focused()
    expect(page.locator("#messages li.msg")).to_have_count(30)
    page.keyboard.type("typed, not clicked")
    page.keyboard.press("Enter")
    expect(page.locator("#messages li.msg.mine p.text")).to_have_text(["typed, not clicked"])

    # The emoji picker: Enter opens it on its first emoji; arrows move, Enter picks.
    tab_to(page, "el.id === 'emoji-button'", "Shift+Tab")
    page.keyboard.press("Enter")
    emoji = page.locator("#emoji-picker button.emoji")
    expect(emoji.first).to_be_focused()
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    expect(emoji.nth(2)).to_be_focused()
    page.keyboard.press("ArrowDown")
    down = page.evaluate("[...document.querySelectorAll('#emoji-picker button.emoji')]"
                         ".indexOf(document.activeElement)")
    assert down > 2  # the row below, not the next button
    top = [emoji.nth(i).bounding_box()["y"] for i in (2, down)]
    assert top[1] > top[0]
    # Only the focused emoji is a tab stop: one Tab leaves the grid.
    assert page.evaluate("document.querySelectorAll('#emoji-picker button.emoji[tabindex=\"0\"]').length") == 1
    picked = page.evaluate("document.activeElement.textContent")
    page.keyboard.press("Enter")
    expect(page.locator("#message")).to_be_focused()
    expect(page.locator("#message")).to_have_value(picked)
    page.keyboard.press("Enter")
    expect(page.locator("#messages li.msg.mine").last.locator(".bubble")).to_contain_text(picked)
    expect(page.locator("#emoji-picker")).to_be_hidden()

    # The messages' ⋯ buttons are one tab stop (not 32); ↑/↓ move between them.
    assert page.evaluate("document.querySelectorAll('#messages .msg-more[tabindex=\"0\"]').length") == 1
    tab_to(page, "el.matches('#messages .msg-more')", "Shift+Tab")
    key_of = "document.activeElement.closest('.msg').dataset.key"
    last = page.evaluate(key_of)
    page.keyboard.press("ArrowUp")
    above = page.evaluate(key_of)
    assert above != last
    page.keyboard.press("ArrowDown")
    assert page.evaluate(key_of) == last
    page.keyboard.press("ArrowUp")
    page.keyboard.press("Enter")  # its menu, and Esc back to it
    expect(page.locator("#msg-menu")).to_be_visible()
    page.keyboard.press("Escape")
    assert page.evaluate(key_of) == above

    # The history scrolls with the keyboard: it is a focusable region.
    tab_to(page, "el.id === 'scroller'", "Shift+Tab")
    before = page.evaluate("document.getElementById('scroller').scrollTop")
    assert before > 0
    page.keyboard.press("PageUp")
    page.wait_for_function(f"() => document.getElementById('scroller').scrollTop < {before}")

    # Alt+↓ and Alt+↑ move between the chats, in the list's order (friends and groups in
    # one list, most recent first; which of the two is first depends on the second each
    # last changed in, so it is read from the list); Alt+M to the composer from anywhere.
    page.keyboard.press("Alt+m")
    expect(page.locator("#message")).to_be_focused()
    page.keyboard.press("Shift+Tab")
    first, second = page.eval_on_selector_all(
        "#friends a.conv-item", "links => links.map(a => a.getAttribute('href'))")
    assert {first, second} == {f"#/u/{lee.id}", f"#/g/{group['id']}"}
    page.keyboard.press("Alt+ArrowUp")
    expect(page).to_have_url(re.compile(f"{first}$"))
    page.keyboard.press("Alt+ArrowUp")  # the first one: stays
    expect(page).to_have_url(re.compile(f"{first}$"))
    page.keyboard.press("Alt+ArrowDown")
    expect(page).to_have_url(re.compile(f"{second}$"))
    expect(page.locator("#message")).to_be_focused()
    page.keyboard.press("Alt+ArrowDown")  # the last one: stays
    expect(page).to_have_url(re.compile(f"{second}$"))
    if second != f"#/g/{group['id']}":
        page.keyboard.press("Alt+ArrowUp")
    expect(page).to_have_url(re.compile(f"#/g/{group['id']}$"))

    # Group members: the header's button, Enter; Esc closes and gives focus back.
    tab_to(page, "el.id === 'conv-members'", "Shift+Tab")
    page.keyboard.press("Enter")
    expect(page.locator("#members-dialog")).to_be_visible()
    expect(page.locator("#member-list li")).to_have_count(1)
    assert focused(page, "el.closest('#members-dialog') !== null")
    page.keyboard.press("Escape")
    expect(page.locator("#members-dialog")).to_be_hidden()
    expect(page.locator("#conv-members")).to_be_focused()

    # Log out: the Profile tab, its Log out button, and the question's confirmation.
    tab_to(page, "el.getAttribute('role') === 'tab'", "Shift+Tab")
    page.keyboard.press("ArrowLeft")  # from Chats, round to the last tab
    expect(page.locator("#tab-profile")).to_be_focused()
    tab_to(page, "el.id === 'logout'")
    page.keyboard.press("Enter")
    expect(page.locator("#logout-dialog")).to_be_visible()
    tab_to(page, "el.id === 'logout-confirm'")
    page.keyboard.press("Enter")
    page.wait_for_url("**/login")
    assert kim.errors == [] and kim.dialogs == []


def test_escape_closes_each_menu_picker_and_dialog_and_focus_goes_back(
        browser: Any, server: WebServer, people: list[Person], lang: Lang) -> None:
    mia, ned = make_person(server, "Mia"), make_person(server, "Ned")
    people += [mia, ned]
    befriend(server, mia, ned)
    group = server.running.post("/contact/createcommunity", {"name": f"Esc {lang.locale}",
                                                              "visibility": "public"},
                                token=mia.token).data["id"]
    assert server.running.post("/contact/joincommunity", {"dstid": group},
                               token=ned.token).status == 200
    page = open_chat(browser, server, mia, locale=lang.locale)
    open_conversation(page, "u", ned.id)
    send_text(page, "escape me")
    mine = page.locator("#messages li.msg.mine").last
    expect(mine).to_have_attribute("data-id", re.compile(r"^\d+$"))

    for button, popup, label in (("#emoji-button", "#emoji-picker", "composer.emoji"),
                                 ("#sticker-button", "#sticker-picker", "composer.stickers")):
        expect(page.locator(button)).to_have_accessible_name(lang.t(label))
        page.focus(button)
        page.keyboard.press("Enter")
        expect(page.locator(popup)).to_be_visible()
        page.keyboard.press("Escape")
        expect(page.locator(popup)).to_be_hidden()
        expect(page.locator(button)).to_be_focused()
        expect(page.locator(button)).to_have_attribute("aria-expanded", "false")

    more = mine.locator(".msg-more")
    more.focus()
    page.keyboard.press("Enter")
    expect(page.locator("#msg-menu")).to_be_visible()
    expect(page.locator("#msg-menu")).to_have_accessible_name(lang.t("menu.label"))
    for action in ("reply", "edit", "recall"):
        expect(page.locator(f'#msg-menu [data-action="{action}"]')).to_have_text(lang.t(f"menu.{action}"))
    items = page.locator("#msg-menu button")
    expect(items.first).to_be_focused()
    page.keyboard.press("ArrowDown")
    expect(items.nth(1)).to_be_focused()
    page.keyboard.press("End")
    expect(items.last).to_be_focused()
    page.keyboard.press("ArrowDown")  # round to the first
    expect(items.first).to_be_focused()
    page.keyboard.press("Escape")
    expect(page.locator("#msg-menu")).to_be_hidden()
    expect(more).to_be_focused()

    # Reply from the menu by keyboard; Esc in the composer drops the reply.
    page.keyboard.press("Enter")
    page.locator('#msg-menu [data-action="reply"]').focus()
    page.keyboard.press("Enter")
    expect(page.locator("#compose-bar")).to_be_visible()
    expect(page.locator("#compose-bar-text")).to_have_text(
        lang.t("compose.replying", name="Mia", text="escape me"))
    expect(page.locator("#message")).to_be_focused()
    page.keyboard.press("Escape")
    expect(page.locator("#compose-bar")).to_be_hidden()

    page.focus("#conv-who")
    page.keyboard.press("Enter")
    expect(page.locator("#person-dialog")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator("#person-dialog")).to_be_hidden()
    expect(page.locator("#conv-who")).to_be_focused()

    # The mute menu: opened, focus on its first choice; Esc closes it, focus back.
    mute = page.locator("#conv-mute")
    expect(mute).to_have_accessible_name(lang.t("mute.button"))
    mute.focus()
    page.keyboard.press("Enter")
    expect(page.locator("#mute-menu")).to_be_visible()
    expect(page.locator('#mute-menu [data-hours="8"]')).to_have_text(lang.t("mute.eight_hours"))
    expect(mute).to_have_attribute("aria-expanded", "true")
    expect(page.locator("#mute-menu button").first).to_be_focused()
    page.keyboard.press("Escape")
    expect(page.locator("#mute-menu")).to_be_hidden()
    expect(mute).to_have_attribute("aria-expanded", "false")
    expect(mute).to_be_focused()
    # Esc on the button itself closes it as well, and a choice by keyboard mutes.
    page.keyboard.press("Enter")
    page.locator("#mute-menu button").first.focus()
    mute.focus()
    page.keyboard.press("Escape")
    expect(page.locator("#mute-menu")).to_be_hidden()
    page.keyboard.press("Enter")
    page.keyboard.press("Enter")  # "1 hour", focused first
    expect(mute).to_have_attribute("aria-pressed", "true")
    expect(mute).to_be_focused()

    # A group's members sheet, and the picker of whom to mention.
    open_conversation(page, "g", group)
    members = page.locator("#conv-members")
    expect(members).to_have_accessible_name(lang.t("members.button"))
    members.focus()
    page.keyboard.press("Enter")
    expect(page.locator("#members-dialog")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator("#members-dialog")).to_be_hidden()
    expect(members).to_be_focused()
    box = page.locator("#message")
    box.click()
    box.press_sequentially("@N")
    picker = page.locator("#mention-picker")
    expect(picker.locator("button")).to_have_text(["@Ned"])
    page.keyboard.press("Escape")
    expect(picker).to_be_hidden()
    expect(box).to_be_focused()
    expect(box).to_have_value("@N")


def test_the_live_region_says_new_messages_and_connection_changes_once(
        browser: Any, server: WebServer, people: list[Person], lang: Lang) -> None:
    oli, pat = make_person(server, "Oli"), make_person(server, "Pat")
    people += [oli, pat]
    befriend(server, oli, pat)
    chat_over_socket(server, pat, 10, oli.id, ["old news 1", "old news 2"])
    page = open_chat(browser, server, oli, locale=lang.locale)
    announcer = page.locator("#announcer")
    open_conversation(page, "u", pat.id)
    expect(page.locator("#messages li.msg")).to_have_count(2)
    # The history is on screen, not spoken; the message list is no live region.
    expect(announcer).to_have_text("")
    assert page.locator("#messages").get_attribute("aria-live") is None
    for quiet in ("#conn", "#conv-conn"):  # the countdown would be read every second
        assert page.locator(quiet).get_attribute("aria-live") is None
        assert page.locator(quiet).get_attribute("role") is None

    fresh, again = lang.t("announce.message", name="Pat", text="fresh"), lang.t("announce.online")
    chat_over_socket(server, pat, 10, oli.id, ["fresh"])
    expect(announcer.locator("p")).to_have_text([fresh])

    page.context.set_offline(True)
    expect(announcer.locator("p").last).to_have_text(lang.t("announce.no_network"))
    page.context.set_offline(False)
    expect(announcer.locator("p").last).to_have_text(again)
    wait_online(page)
    # Each said once: the countdown and the reconnect's sync add nothing.
    texts = announcer.locator("p").all_inner_texts()
    assert texts.count(fresh) == 1 and texts.count(again) == 1, texts
    assert not any("old news" in t for t in texts), texts


def test_on_a_phone_focus_follows_the_conversation(browser: Any, server: WebServer,
                                                   people: list[Person]) -> None:
    quinn, ray = make_person(server, "Quinn"), make_person(server, "Ray")
    people += [quinn, ray]
    befriend(server, quinn, ray)
    page = open_chat(browser, server, quinn, viewport=PHONE)
    link = page.locator(f'a.conv-item[data-key="u{ray.id}"]')
    link.focus()
    page.keyboard.press("Enter")
    # Opened: focus on the conversation's name (the keyboard stays down until a tap).
    expect(page.locator("#conv-who")).to_be_focused()
    page.focus("#conv-back")
    page.keyboard.press("Enter")
    # Back: focus on the entry of the conversation just left, not lost on the page.
    expect(link).to_be_focused()

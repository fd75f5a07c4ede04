"""The message lifecycle in a real browser: reply, edit, react, recall, delete for me
and @mentions, done in one user's page and seen in the other's live, after a reload,
and after coming back from being away (docs/client.md)."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from fastim.chat.lifecycle import LifecycleOptions

pytest.register_assert_rewrite("tests.web_support", "tests.axe_support")
from tests.axe_support import assert_accessible  # noqa: E402
from tests.web_support import (  # noqa: E402
    PHONE,
    WAIT_MS,
    Person,
    WebServer,
    befriend,
    bubbles,
    chat_over_socket,
    make_person,
    open_chat,
    open_conversation,
    screenshot,
    send_text,
    two_friends_chatting,
    wait_online,
    watch,
)

pytest_plugins = ["tests.web_support"]
pytestmark = pytest.mark.browser
expect.set_options(timeout=WAIT_MS)


def clean(*persons: Person) -> None:
    for person in persons:
        assert person.errors == [], (person.nickname, person.errors)
        assert person.dialogs == [], (person.nickname, person.dialogs)


def bubble(page: Any, text: str) -> Any:
    found = bubbles(page, text)
    expect(found).to_have_count(1)
    return found


def menu(page: Any, message: Any, action: str) -> None:
    """Open a message's menu (hover, then its ⋯ button) and choose `action`."""
    message.hover()
    message.locator(".msg-more").click()
    page.locator(f'#msg-menu [data-action="{action}"]').click()


def react(page: Any, message: Any, emoji: str) -> None:
    message.hover()
    message.locator(".msg-more").click()
    page.locator(f'#msg-menu [data-emoji="{emoji}"]').click()


def test_reply_edit_react_recall_and_delete_between_two_browsers(
        browser: Any, server: WebServer, people: list[Person], shots: Path) -> None:
    alice, bob, pa, pb = two_friends_chatting(browser, server, people)

    send_text(pa, "helo bob")
    original = bubble(pb, "helo bob")
    menu(pb, original, "reply")
    expect(pb.locator("#compose-bar")).to_be_visible()
    send_text(pb, "hi alice")
    for page in (pa, pb):
        reply = bubble(page, "hi alice")
        expect(reply.locator(".quote")).to_contain_text("helo bob")

    # Alice fixes her typo: Bob sees the new text and "edited" live.
    menu(pa, bubble(pa, "helo bob"), "edit")
    expect(pa.locator("#message")).to_have_value("helo bob")
    pa.locator("#message").fill("hello bob")
    pa.locator("#message").press("Enter")
    edited = bubble(pb, "hello bob")
    expect(edited.locator(".edited")).to_be_visible()
    expect(bubble(pb, "hi alice").locator(".quote")).to_contain_text("hello bob")

    # Bob reacts; Alice sees the chip, and adds hers by clicking it.
    react(pb, edited, "👍")
    chip = bubble(pa, "hello bob").locator(".chip")
    expect(chip).to_have_text(re.compile(r"👍\s*1"))
    chip.click()
    expect(bubble(pb, "hello bob").locator(".chip")).to_have_text(re.compile(r"👍\s*2"))
    screenshot(pb, shots, "lifecycle-reply-edit-react")

    # After a reload Bob sees the same.
    pb.reload()
    open_conversation(pb, "u", alice.id)
    again = bubble(pb, "hello bob")
    expect(again.locator(".edited")).to_be_visible()
    expect(again.locator(".chip")).to_have_text(re.compile(r"👍\s*2"))
    expect(bubble(pb, "hi alice").locator(".quote")).to_contain_text("hello bob")

    # Bob goes away; Alice recalls her message; when Bob comes back it is gone.
    bob.context.close()
    bob.context = None
    menu(pa, bubble(pa, "hello bob"), "recall")
    expect(pa.locator("#messages .recalled-text")).to_have_text("Message recalled")
    pb = open_chat(browser, server, bob)
    open_conversation(pb, "u", alice.id)
    expect(pb.locator("#messages .recalled-text")).to_have_text("Message recalled")
    expect(bubbles(pb, "hello bob")).to_have_count(0)
    expect(bubble(pb, "hi alice").locator(".quote")).to_contain_text("Message recalled")

    # Delete for me: gone from Alice's page (and after her reload), still on Bob's.
    menu(pa, bubble(pa, "hi alice"), "delete")
    expect(bubbles(pa, "hi alice")).to_have_count(0)
    pa.reload()
    open_conversation(pa, "u", bob.id)
    expect(pa.locator("#messages .recalled-text")).to_have_count(1)
    expect(bubbles(pa, "hi alice")).to_have_count(0)
    bubble(pb, "hi alice")
    screenshot(pb, shots, "lifecycle-recalled")
    clean(alice, bob)


def test_mentions_in_a_group_of_three(
        browser: Any, server: WebServer, people: list[Person], shots: Path) -> None:
    alice, bob, carol = (make_person(server, n) for n in ("Ann", "Ben", "Cat"))
    people += [alice, bob, carol]
    api = server.running
    group = api.post("/contact/createcommunity", {"name": "Book club 📚", "visibility": "public"},
                     token=alice.token).data["id"]
    for person in (bob, carol):
        assert api.post("/contact/joincommunity", {"dstid": group},
                        token=person.token).status == 200
    pa, pb, pc = (open_chat(browser, server, p) for p in (alice, bob, carol))
    open_conversation(pa, "g", group)
    open_conversation(pc, "g", group)
    pb.click("#tab-friends")  # Ben has the group in his list of chats, not open

    box = pa.locator("#message")
    box.click()
    box.press_sequentially("see you, @Be")
    picker = pa.locator("#mention-picker")
    expect(picker).to_be_visible()
    picker.locator("button", has_text="@Ben").click()
    box.press_sequentially("and bring the book")
    box.press("Enter")
    text = "see you, @Ben and bring the book"
    bubble(pc, text)
    expect(pc.locator("#messages li.msg.mentioned")).to_have_count(0)
    link = pb.locator(f'a.conv-item[data-key="g{group}"]')
    expect(link).to_have_attribute("data-mentions", "1")
    expect(link.locator(".mention-badge")).to_be_visible()
    screenshot(pb, shots, "lifecycle-mention-badge")
    link.click()
    expect(pb.locator("#messages li.msg.mentioned")).to_have_count(1)
    # The reaction of a third reaches the other two.
    react(pc, bubble(pc, text), "🎉")
    for page in (pa, pb):
        expect(bubble(page, text).locator(".chip")).to_have_text(re.compile(r"🎉\s*1"))
    screenshot(pb, shots, "lifecycle-mentioned")
    clean(alice, bob, carol)


def test_the_menu_follows_the_servers_windows(
        browser: Any, server: WebServer, people: list[Person]) -> None:
    """The client asks GET /chat/config: on a server with --recall-window 0 the menu
    offers no recall of one's own new message (the default two minutes would), and
    still offers the edit."""
    server.stop()
    default = server.config.hub
    server.config.hub = replace(default, lifecycle=LifecycleOptions(recall_window=0))
    try:
        server.start()
        alice, bob = make_person(server, "Ada"), make_person(server, "Bo")
        people.append(alice)
        befriend(server, alice, bob)
        pa = open_chat(browser, server, alice)
        open_conversation(pa, "u", bob.id)
        send_text(pa, "too late to take back")
        message = bubble(pa, "too late to take back")
        expect(message.locator(".msg-more")).to_have_count(1)  # acked: it has its id
        message.hover()
        message.locator(".msg-more").click()
        expect(pa.locator('#msg-menu [data-action="edit"]')).to_be_visible()
        expect(pa.locator('#msg-menu [data-action="recall"]')).to_have_count(0)
        # An item not offered leaves nothing behind (it once left the word "null").
        expect(pa.locator("#msg-menu")).not_to_contain_text("null")
        pa.keyboard.press("Escape")
        # Bob's message: neither edit nor recall for Alice.
        chat_over_socket(server, bob, 10, alice.id, ["mine, not yours"])
        theirs = bubble(pa, "mine, not yours")
        theirs.hover()
        theirs.locator(".msg-more").click()
        expect(pa.locator('#msg-menu [data-action="reply"]')).to_be_visible()
        expect(pa.locator('#msg-menu [data-action="edit"]')).to_have_count(0)
        expect(pa.locator("#msg-menu")).not_to_contain_text("null")
        clean(alice)
    finally:
        server.stop()
        server.config.hub = default
        server.start()


def test_the_owner_and_an_admin_mention_everyone_and_recall_anyones_message(
        browser: Any, server: WebServer, people: list[Person]) -> None:
    """The server lets whoever moderates a group (its owner and its admins) mention
    @all and recall anyone's message at any time: the client offers both to both, also
    to a member made admin while the conversation is open, and to nobody else."""
    owner, admin, member = (make_person(server, n) for n in ("Olga", "Adam", "Mia"))
    people += [owner, admin, member]
    api = server.running
    group = api.post("/contact/createcommunity", {"name": "Moderated", "visibility": "public"},
                     token=owner.token).data["id"]
    for person in (admin, member):
        assert api.post("/contact/joincommunity", {"dstid": group},
                        token=person.token).status == 200
    chat_over_socket(server, owner, 11, group, ["a word from Olga"])
    chat_over_socket(server, member, 11, group, ["a word from Mia"])
    po, pa, pm = (open_chat(browser, server, p) for p in (owner, admin, member))
    for page in (po, pa, pm):
        open_conversation(page, "g", group)
        bubble(page, "a word from Mia")

    def offers(page: Any, everyone: bool, recall: bool, text: str = "a word from Mia") -> None:
        box = page.locator("#message")
        box.fill("")
        box.press_sequentially("@")
        picker = page.locator("#mention-picker")
        expect(picker).to_be_visible()
        expect(picker.locator('button[data-user="all"]')).to_have_count(1 if everyone else 0)
        box.press("Escape")
        box.fill("")
        message = bubble(page, text)
        message.hover()
        message.locator(".msg-more").click()
        expect(page.locator('#msg-menu [data-action="reply"]')).to_be_visible()
        expect(page.locator('#msg-menu [data-action="recall"]')).to_have_count(
            1 if recall else 0)
        page.keyboard.press("Escape")

    offers(po, everyone=True, recall=True)
    offers(pm, everyone=False, recall=False, text="a word from Olga")
    offers(pa, everyone=False, recall=False)
    # Made an admin while the conversation is open, the @ picker open too: the picker
    # offers @all as soon as the page learns of the role, then the menu offers recall.
    box = pa.locator("#message")
    box.press_sequentially("@")
    expect(pa.locator("#mention-picker")).to_be_visible()
    expect(pa.locator('#mention-picker button[data-user="all"]')).to_have_count(0)
    assert api.post("/contact/setrole", {"groupid": group, "memberid": admin.id,
                                         "role": "admin"}, token=owner.token).status == 200
    expect(pa.locator('#mention-picker button[data-user="all"]')).to_have_count(1)
    box.press("Escape")
    offers(pa, everyone=True, recall=True)

    # The admin calls everyone: the server takes it, and the others are mentioned.
    box = pa.locator("#message")
    box.press_sequentially("@al")
    expect(pa.locator('#mention-picker button[data-user="all"]')).to_be_visible()
    assert_accessible(pa, "the @ picker offering @all", "#composer")
    pa.locator('#mention-picker button[data-user="all"]').click()
    box.press_sequentially("meeting at noon")
    box.press("Enter")
    text = "@all meeting at noon"
    for page in (po, pm):
        expect(bubble(page, text)).to_have_class(re.compile(r"\bmentioned\b"))
    # The owner recalls Mia's message: gone for everyone.
    menu(po, bubble(po, "a word from Mia"), "recall")
    for page in (po, pa, pm):
        expect(bubbles(page, "a word from Mia")).to_have_count(0)
        expect(page.locator("#messages .recalled-text")).to_have_count(1)
    clean(owner, admin, member)


def test_a_long_press_on_a_phone_opens_the_menu_with_focus_in_it(
        browser: Any, server: WebServer, people: list[Person]) -> None:
    """A long press on a message (a real touch, through the browser's own gesture
    handling) opens its menu with focus on the first item, as the ⋯ button and a right
    click do, so a screen reader and a keyboard go on from there; lifting the finger
    leaves it open, and Esc closes it."""
    pia, max_ = make_person(server, "Pia"), make_person(server, "Max")
    people += [pia, max_]
    befriend(server, pia, max_)
    chat_over_socket(server, max_, 10, pia.id, ["press and hold me"])
    pia.context = browser.new_context(base_url=server.url, viewport=PHONE, has_touch=True,
                                      is_mobile=True, locale="en-GB",
                                      timezone_id="Europe/London")
    pia.context.set_default_timeout(WAIT_MS)
    pia.context.add_cookies([{"name": "fastim_token", "value": pia.token, "url": server.url}])
    page = pia.page = pia.context.new_page()
    watch(page, pia)
    page.goto("/chat")
    wait_online(page)
    open_conversation(page, "u", max_.id)
    message = bubble(page, "press and hold me")
    box = message.locator(".bubble").first.bounding_box() or message.bounding_box()
    assert box is not None
    point = {"x": box["x"] + box["width"] / 2, "y": box["y"] + box["height"] / 2}
    touch = pia.context.new_cdp_session(page)
    touch.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [point]})
    menu_items = page.locator("#msg-menu button")
    expect(page.locator("#msg-menu")).to_be_visible()  # the finger still down
    touch.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    expect(menu_items.first).to_be_focused()
    expect(page.locator("#msg-menu")).to_be_visible()
    expect(page.locator("#msg-menu")).not_to_contain_text("null")
    page.keyboard.press("Escape")
    expect(page.locator("#msg-menu")).to_be_hidden()
    clean(pia)
